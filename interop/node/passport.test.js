// passport, the way an Express application wires it: a real HTTP application on a loopback port
// whose /login and /auth/callback are passport's `authenticate` middleware.
//
// 1. openid-client's own passport strategy. It sends PKCE only (no state, no nonce: it relies on
//    PKCE when discovery advertises S256) and, left to its default, client_secret_post: a
//    different request shape from the core API check.
// 2. passport-oauth2, the strategy Outline's OIDC plugin is built on, set up with the values of
//    the Outline guide (docs/integrations/outline.md): explicit endpoints (no discovery),
//    `state`, no PKCE, the client secret in the token request's body (client_secret_post), and
//    the profile read from userinfo with the access token, as Outline does.
import assert from 'node:assert/strict'
import http from 'node:http'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import * as client from 'openid-client'
import { Strategy } from 'openid-client/passport'
import passport from 'passport'
import OAuth2Strategy from 'passport-oauth2'

import { Browser, ISSUER, registerClient } from './browser.js'

const require = createRequire(import.meta.url)
const passportVersion = `passport ${require('passport/package.json').version}`
const versions = `${passportVersion} + openid-client ${require('openid-client/package.json').version}/passport`

/** The application: in-memory sessions keyed by a cookie, as express-session would keep them. */
function application(authenticator) {
  const sessions = new Map()
  return http.createServer((req, res) => {
    // What Express sets on the request (strategies build the callback URL from them and read
    // the query).
    req.protocol = 'http'
    req.host = req.headers.host
    let id = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    if (!id || !sessions.has(id)) {
      id = client.randomState()
      sessions.set(id, {})
      res.setHeader('set-cookie', `sid=${id}; Path=/; HttpOnly; SameSite=Lax`)
    }
    req.session = sessions.get(id)
    const { pathname, searchParams } = new URL(req.url, 'http://app')
    req.query = Object.fromEntries(searchParams)
    if (pathname !== '/login' && pathname !== '/auth/callback') {
      res.statusCode = 404
      return res.end()
    }
    authenticator.authenticate('wecom', { session: false }, (err, user, info) => {
      res.setHeader('content-type', 'application/json')
      if (err || !user) {
        res.statusCode = err ? 500 : 401
        return res.end(JSON.stringify({ error: String(err ?? ''), info }))
      }
      res.end(JSON.stringify(user))
    })(req, res, (err) => {
      res.statusCode = 500
      res.end(JSON.stringify({ error: String(err) }))
    })
  })
}

test(`${versions}: an application's login and callback routes`, async (t) => {
  const authenticator = new passport.Passport()
  const server = application(authenticator)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const app = `http://127.0.0.1:${server.address().port}`

  const registered = await registerClient({
    client_name: 'interop: passport',
    redirect_uris: [`${app}/auth/callback`],
  })
  const config = await client.discovery(
    new URL(ISSUER),
    registered.client_id,
    // No method named: the library's default, client_secret_post (registered the default way,
    // client_secret_basic; the provider accepts either secret method from a confidential client).
    registered.client_secret,
    undefined,
    { execute: [client.allowInsecureRequests] },
  )
  authenticator.use(
    'wecom',
    new Strategy(
      { config, scope: 'openid profile email groups', callbackURL: `${app}/auth/callback` },
      // passport's verify callback: the library has validated the ID token already.
      (tokens, verified) => {
        client
          .fetchUserInfo(config, tokens.access_token, tokens.claims().sub)
          .then((userinfo) => verified(null, { idToken: tokens.claims(), userinfo }))
          .catch(verified)
      },
    ),
  )

  const browser = new Browser()
  const toProvider = await browser.redirectFrom(`${app}/login`)
  assert.equal(toProvider.origin, new URL(ISSUER).origin, 'passport sends the person to /authorize')
  assert.equal(toProvider.searchParams.get('code_challenge_method'), 'S256')
  const back = await browser.signIn(toProvider, 'wangwu')
  assert.equal(`${back.origin}${back.pathname}`, `${app}/auth/callback`)

  const response = await browser.get(back)
  const text = await response.text()
  assert.equal(response.status, 200, `passport refused the callback: ${text}`)
  const body = JSON.parse(text)
  for (const [where, claims] of Object.entries(body)) {
    assert.equal(claims.sub, 'wangwu', where)
    assert.equal(claims.name, '王五', where)
    assert.equal(typeof claims.email, 'string', where)
    assert.ok(Array.isArray(claims.groups), `${where}: groups is an array`)
    assert.ok(claims.groups.includes('总部/研发部'), `${where}: ${claims.groups}`)
  }
  assert.equal(body.idToken.aud, registered.client_id)
})

test(`${passportVersion} + passport-oauth2 ${require('passport-oauth2/package.json').version}: the Outline guide's settings`, async (t) => {
  const authenticator = new passport.Passport()
  const server = application(authenticator)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const app = `http://127.0.0.1:${server.address().port}`

  // Registered the default way, as the guide says (client_secret_basic): the provider accepts
  // either secret method from a confidential client, and passport-oauth2 sends the body one.
  const registered = await registerClient({
    client_name: 'interop: passport-oauth2 (Outline)',
    redirect_uris: [`${app}/auth/callback`],
  })
  const strategy = new OAuth2Strategy(
    {
      authorizationURL: `${ISSUER}/authorize`, // OIDC_AUTH_URI
      tokenURL: `${ISSUER}/token`, // OIDC_TOKEN_URI
      clientID: registered.client_id,
      clientSecret: registered.client_secret,
      callbackURL: `${app}/auth/callback`,
      scope: 'openid profile email', // OIDC_SCOPES
      state: true,
    },
    async (accessToken, refreshToken, params, _profile, done) => {
      try {
        // OIDC_USERINFO_URI, read with the access token.
        const response = await fetch(`${ISSUER}/userinfo`, {
          headers: { authorization: `Bearer ${accessToken}` },
        })
        assert.equal(response.status, 200, 'userinfo answers the access token')
        done(null, { params, userinfo: await response.json() })
      } catch (err) {
        done(err)
      }
    },
  )
  authenticator.use('wecom', strategy)

  const browser = new Browser()
  const toProvider = await browser.redirectFrom(`${app}/login`)
  assert.equal(`${toProvider.origin}${toProvider.pathname}`, `${ISSUER}/authorize`)
  assert.ok(toProvider.searchParams.get('state'), 'passport-oauth2 sends state')
  const back = await browser.signIn(toProvider, 'lisi')
  assert.equal(`${back.origin}${back.pathname}`, `${app}/auth/callback`)

  const response = await browser.get(back)
  const text = await response.text()
  assert.equal(response.status, 200, `passport-oauth2 refused the callback: ${text}`)
  const body = JSON.parse(text)
  assert.equal(body.params.token_type.toLowerCase(), 'bearer')
  assert.ok(body.params.id_token, 'the token response carries the ID token')
  const userinfo = body.userinfo
  // What Outline reads: email (required), name, the username claim (OIDC_USERNAME_CLAIM).
  assert.equal(userinfo.sub, 'lisi')
  assert.match(userinfo.email, /^[^@]+@[^@]+$/)
  assert.equal(userinfo.name, '李四')
  assert.equal(userinfo.preferred_username, 'lisi')
})
