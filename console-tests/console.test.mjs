// The admin console in a real browser: Debian's chromium, headless, driven by puppeteer-core
// (which never downloads a browser). An administrator signs in through the WeCom simulator's
// "who scans?" page, registers an application, finds a person and revokes them, reads the audit
// log, the keys and the status, in Chinese and in English; a member who is not an administrator
// gets the 403 page. Screenshots of the main pages go to $SCREENSHOTS. Run through run.sh.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ISSUER, newPage, registerClient, scanAs, screenshot, text } from './browser.mjs'

const shot = (page, name) => screenshot(page, `console-${name}`)

/** Opens `path` of the console and signs in as `userid` through WeCom. */
async function signIn(page, userid, path = '/console/clients') {
  await page.goto(ISSUER + path)
  await scanAs(page, userid)
}

/** A member signs in to an application (its redirect URI is the provider's /healthz, so the
 * browser lands somewhere that answers). */
async function memberSignsIn(userid) {
  const redirect = `${ISSUER}/healthz`
  const client = await registerClient({
    client_name: 'Wiki',
    redirect_uris: [redirect],
    token_endpoint_auth_method: 'none',
  })
  const page = await newPage()
  const url = new URL(`${ISSUER}/authorize`)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirect,
    scope: 'openid profile groups',
    state: 'browser-test',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }).toString()
  await page.goto(url.toString())
  await scanAs(page, userid)
  assert.ok(page.url().startsWith(redirect) && page.url().includes('code='), page.url())
  const code = new URL(page.url()).searchParams.get('code')
  await page.browserContext().close()
  // The application redeems the code (RFC 7636 Appendix B's verifier for the challenge above).
  const token = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirect,
      client_id: client.client_id,
      code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
    }),
  })
  assert.equal(token.status, 200)
  return client
}

test('an administrator signs in with WeCom and sees the applications', async () => {
  const page = await newPage()
  await page.goto(`${ISSUER}/console/clients`)
  await shot(page, 'sign-in-wecom')
  await scanAs(page, 'ZhangSan')
  assert.equal(new URL(page.url()).pathname, '/console/clients')
  const body = await text(page)
  assert.match(body, /应用/)
  assert.match(body, /张三/)
  const headers = (await page.goto(page.url())).headers()
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/)
  assert.equal(headers['cache-control'], 'no-store')
  await page.browserContext().close()
})

test('a member who is not an administrator gets the 403 page', async () => {
  const page = await newPage()
  await page.goto(`${ISSUER}/console/clients`)
  await scanAs(page, 'lisi')
  assert.match(await text(page), /没有管理权限/)
  await shot(page, 'forbidden')
  await page.browserContext().close()
})

test('an administrator registers an application, revokes a person and reads the log, in both languages', async () => {
  await memberSignsIn('lisi')
  const page = await newPage()
  await signIn(page, 'ZhangSan')

  // Register an application: the secret is shown once, with settings to paste.
  await page.click('a[href="/console/clients/new"]')
  await page.waitForSelector('#client_name')
  await page.type('#client_name', 'Grafana')
  await page.type('#redirect_uris', 'https://grafana.example.com/login/generic_oauth')
  await page.type('#allowed_groups', '研发部\ntag:SRE')
  await page.type('#post_logout_redirect_uris', 'https://grafana.example.com/login')
  await shot(page, 'client-new')
  await Promise.all([page.waitForNavigation(), page.click('form.card button[type="submit"]')])
  const secret = await page.$eval('#client-secret', (e) => e.textContent)
  const clientId = await page.$eval('#client-id', (e) => e.textContent)
  assert.ok(secret.length >= 32, 'a secret')
  assert.match(await text(page), /\[auth\.generic_oauth\]/)
  await shot(page, 'client-created')
  await page.goto(`${ISSUER}/console/clients/${clientId}`)
  assert.ok(!(await page.content()).includes(secret), 'the secret is never shown again')
  await shot(page, 'client-detail')
  await page.goto(`${ISSUER}/console/clients`)
  assert.match(await text(page), /Grafana/)
  await shot(page, 'clients')

  // Find lisi and revoke everything.
  await page.goto(`${ISSUER}/console/people`)
  await page.type('input[name="q"]', '李')
  await Promise.all([page.waitForNavigation(), page.click('form.card button[type="submit"]')])
  await shot(page, 'people')
  await Promise.all([page.waitForNavigation(), page.click('a[href="/console/people/lisi"]')])
  let body = await text(page)
  assert.match(body, /李四/)
  assert.match(body, /Wiki/)
  await shot(page, 'person')
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/revoke"] button')])
  body = await text(page)
  assert.match(body, /已撤销此成员的全部访问/)
  assert.match(body, /没有有效会话/)

  // The audit log names the administrator.
  await page.goto(`${ISSUER}/console/audit?event=console_member_revoked`)
  body = await text(page)
  assert.match(body, /console_member_revoked/)
  assert.match(body, /zhangsan/)
  await page.goto(`${ISSUER}/console/audit`)
  await shot(page, 'audit')

  await page.goto(`${ISSUER}/console/keys`)
  assert.match(await text(page), /签名中/)
  await shot(page, 'keys')
  await page.goto(`${ISSUER}/console/status?check=1&userid=ZhangSan`)
  body = await text(page)
  assert.match(body, /gettoken: corp id and secret are accepted/)
  await shot(page, 'status')

  // English, by the switch in the header; the choice is remembered.
  await Promise.all([page.waitForNavigation(), page.click('header a[lang="en"]')])
  assert.match(await text(page), /Readiness/)
  await page.goto(`${ISSUER}/console/clients`)
  body = await text(page)
  assert.match(body, /Register an application/)
  assert.equal(await page.$eval('html', (e) => e.lang), 'en')
  await shot(page, 'clients-en')
  await page.goto(`${ISSUER}/console/people/lisi`)
  assert.match(await text(page), /Revoke all access/)
  await shot(page, 'person-en')
  await page.browserContext().close()
})
