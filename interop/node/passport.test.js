// passport with openid-client's own passport strategy, the way an Express application wires it:
// a real HTTP application on a loopback port whose /login and /auth/callback are passport's
// `authenticate` middleware. The strategy sends PKCE only (no state, no nonce: it relies on PKCE
// when discovery advertises S256), a different request shape from the core API check.
import assert from 'node:assert/strict'
import http from 'node:http'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import * as client from 'openid-client'
import { Strategy } from 'openid-client/passport'
import passport from 'passport'

import { Browser, ISSUER, registerClient } from './browser.js'

const require = createRequire(import.meta.url)
const versions = `passport ${require('passport/package.json').version} + openid-client ${require('openid-client/package.json').version}/passport`

/** The application: in-memory sessions keyed by a cookie, as express-session would keep them. */
function application(authenticator) {
  const sessions = new Map()
  return http.createServer((req, res) => {
    // What Express sets on the request; the strategy builds the callback URL from them.
    req.protocol = 'http'
    req.host = req.headers.host
    let id = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    if (!id || !sessions.has(id)) {
      id = client.randomState()
      sessions.set(id, {})
      res.setHeader('set-cookie', `sid=${id}; Path=/; HttpOnly; SameSite=Lax`)
    }
    req.session = sessions.get(id)
    const { pathname } = new URL(req.url, 'http://app')
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
    registered.client_secret, // client_secret_basic, the default
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
  const body = await response.json()
  assert.equal(response.status, 200, `passport refused the callback: ${JSON.stringify(body)}`)
  for (const [where, claims] of Object.entries(body)) {
    assert.equal(claims.sub, 'wangwu', where)
    assert.equal(claims.name, '王五', where)
    assert.equal(typeof claims.email, 'string', where)
    assert.ok(Array.isArray(claims.groups), `${where}: groups is an array`)
    assert.ok(claims.groups.includes('总部/研发部'), `${where}: ${claims.groups}`)
  }
  assert.equal(body.idToken.aud, registered.client_id)
})
