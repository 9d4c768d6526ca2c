// A command-line tool signs in with the device authorization grant (RFC 8628) through panva's
// openid-client, as kubelogin, argocd or vault would: the library asks for the codes and polls
// the token endpoint; the test plays the person who opens the printed link, signs in with WeCom
// and answers on the approval page.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequire } from 'node:module'

import * as client from 'openid-client'

import { Browser, ISSUER, registerClient } from './browser.js'

const version = createRequire(import.meta.url)('openid-client/package.json').version
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

/** A public CLI client, registered with a name and the grant only (no redirect URI, no secret). */
async function cliConfig() {
  const registered = await registerClient({
    client_name: 'interop: device CLI',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_GRANT, 'refresh_token'],
  })
  const config = await client.discovery(
    new URL(ISSUER),
    registered.client_id,
    undefined,
    client.None(),
    { execute: [client.allowInsecureRequests] }, // loopback http; https in production
  )
  return { config, clientId: registered.client_id }
}

test(`openid-client ${version}: device authorization grant approved after a WeCom sign-in`, async () => {
  const { config, clientId } = await cliConfig()
  const metadata = config.serverMetadata()
  assert.equal(metadata.device_authorization_endpoint, `${ISSUER}/device_authorization`)
  assert.ok(metadata.grant_types_supported.includes(DEVICE_GRANT))

  const device = await client.initiateDeviceAuthorization(config, {
    scope: 'openid profile email groups offline_access',
  })
  assert.match(device.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/)
  assert.equal(device.verification_uri, `${ISSUER}/device`)
  assert.equal(device.verification_uri_complete, `${ISSUER}/device?user_code=${device.user_code}`)

  // The library polls (authorization_pending until the person answers) while the person acts.
  const polling = client.pollDeviceAuthorizationGrant(config, device)
  const approval = await new Browser().answerDevice(device.verification_uri_complete, 'ZhangSan', 'approve')
  assert.match(approval, /interop: device CLI/, 'the approval page names the application')
  assert.ok(approval.includes(device.user_code), 'the approval page shows the code to compare')
  const tokens = await polling

  // The library validated the ID token (signature, iss, aud, exp, iat).
  assert.ok(tokens.access_token)
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token')
  const claims = tokens.claims()
  assert.equal(claims.iss, ISSUER)
  assert.equal(claims.aud, clientId)
  assert.equal(claims.sub, 'zhangsan')
  assert.equal(claims.nonce, undefined, 'the device grant has no nonce')
  assert.deepEqual(claims.amr, ['qr', 'swk'])
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  assert.equal(userinfo.preferred_username, 'ZhangSan')
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token)

  // One grant per device code: polling again is refused.
  await assert.rejects(
    client.pollDeviceAuthorizationGrant(config, device),
    (err) => err.error === 'invalid_grant',
  )
})

test(`openid-client ${version}: a denied device request ends the polling with access_denied`, async () => {
  const { config } = await cliConfig()
  const device = await client.initiateDeviceAuthorization(config, {})

  const polling = client.pollDeviceAuthorizationGrant(config, device)
  await new Browser().answerDevice(device.verification_uri_complete, 'lisi', 'deny')

  await assert.rejects(polling, (err) => err.error === 'access_denied')
})
