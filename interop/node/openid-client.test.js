// panva's openid-client (the certified relying-party library most Node applications use, directly
// or through passport) signs in against wecom-oidc. The library does every protocol step and
// every validation; the test only plays the person's browser and checks what the library hands
// back.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequire } from 'node:module'

import * as client from 'openid-client'

import { Browser, ISSUER, registerClient } from './browser.js'

const version = createRequire(import.meta.url)('openid-client/package.json').version
const REDIRECT_URI = 'http://127.0.0.1:3000/auth/callback'

// ZhangSan of the sample corporation (src/simulator/sample_corp.toml): platform team of 研发部,
// tagged 管理员.
function assertZhangSan(claims, where) {
  assert.equal(claims.sub, 'zhangsan', `${where}: sub is the lowercased userid`)
  assert.equal(claims.preferred_username, 'ZhangSan', `${where}: preferred_username`)
  assert.equal(claims.name, '张三', `${where}: name`)
  assert.equal(typeof claims.email, 'string', `${where}: email`)
  assert.match(claims.email, /^[^@]+@[^@]+$/, `${where}: email`)
  assert.equal(typeof claims.email_verified, 'boolean', `${where}: email_verified`)
  assert.ok(Array.isArray(claims.groups), `${where}: groups is an array`)
  assert.ok(claims.groups.includes('总部/研发部/平台组'), `${where}: ${claims.groups}`)
  assert.ok(claims.groups.includes('tag:管理员'), `${where}: ${claims.groups}`)
}

test(`openid-client ${version}: code flow with PKCE, state and nonce; userinfo; refresh; introspection; revocation; logout`, async () => {
  const registered = await registerClient({
    client_name: 'interop: openid-client',
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: ['http://127.0.0.1:3000/'],
    token_endpoint_auth_method: 'client_secret_basic',
  })

  // Discovery: the library checks that the document's issuer is the URL it was given.
  const config = await client.discovery(
    new URL(ISSUER),
    registered.client_id,
    undefined,
    client.ClientSecretBasic(registered.client_secret),
    { execute: [client.allowInsecureRequests] }, // loopback http; https in production
  )
  assert.equal(config.serverMetadata().issuer, ISSUER)
  assert.ok(config.serverMetadata().supportsPKCE(), 'discovery advertises S256')

  const codeVerifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email groups offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  })

  const browser = new Browser()
  const back = await browser.signIn(authorizationUrl, 'ZhangSan')
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT_URI)

  // The library checks state and iss (RFC 9207) on the response, redeems the code with
  // client_secret_basic and the verifier, and validates the ID token: signature against the
  // JWKS, iss, aud, exp, iat, nonce.
  const tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  assert.equal(tokens.token_type.toLowerCase(), 'bearer')
  assert.ok(tokens.access_token, 'access token')
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token')
  const idClaims = tokens.claims()
  assert.equal(idClaims.iss, ISSUER)
  assert.equal(idClaims.aud, registered.client_id)
  assert.equal(idClaims.nonce, nonce)
  assertZhangSan(idClaims, 'ID token')

  // userinfo, with the library's check that its sub is the ID token's.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub)
  assertZhangSan(userinfo, 'userinfo')

  // A wrong state is refused by the library, before any request (the code is already spent
  // anyway).
  await assert.rejects(
    client.authorizationCodeGrant(config, back, {
      pkceCodeVerifier: codeVerifier,
      expectedState: client.randomState(),
      expectedNonce: nonce,
    }),
    (err) => /unexpected "state"/.test(err.cause?.message),
  )

  // Refresh: new tokens; an ID token, when returned, is validated by the library again.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token)
  if (refreshed.id_token) {
    const claims = refreshed.claims()
    assert.equal(claims.sub, idClaims.sub, 'the refreshed ID token is about the same member')
    assert.equal(claims.aud, registered.client_id)
  }
  const again = await client.fetchUserInfo(config, refreshed.access_token, idClaims.sub)
  assertZhangSan(again, 'userinfo after refresh')

  // Introspection (RFC 7662) and revocation (RFC 7009) with the same client authentication.
  const active = await client.tokenIntrospection(config, refreshed.access_token)
  assert.equal(active.active, true)
  assert.equal(active.sub, 'zhangsan')
  assert.equal(active.client_id, registered.client_id)
  await client.tokenRevocation(config, refreshed.refresh_token ?? tokens.refresh_token)
  await client.tokenRevocation(config, refreshed.access_token)
  const inactive = await client.tokenIntrospection(config, refreshed.access_token)
  assert.equal(inactive.active, false, 'a revoked access token is inactive')
  await assert.rejects(
    client.fetchUserInfo(config, refreshed.access_token, idClaims.sub),
    'userinfo refuses a revoked access token',
  )

  // RP-initiated logout: the library builds the end_session URL; the provider ends the session
  // and returns to the registered post-logout URI with the state.
  const logoutState = client.randomState()
  const logoutUrl = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: 'http://127.0.0.1:3000/',
    state: logoutState,
  })
  const afterLogout = await browser.redirectFrom(logoutUrl)
  assert.equal(`${afterLogout.origin}${afterLogout.pathname}`, 'http://127.0.0.1:3000/')
  assert.equal(afterLogout.searchParams.get('state'), logoutState)
})
