// The device flow's pages in a real browser (Debian's chromium, headless, puppeteer-core): a CLI
// asks for codes, a person opens verification_uri_complete, signs in through the WeCom simulator,
// compares the code on the approval page and approves; the CLI's poll then gets tokens. Also the
// page where the code is typed, a denial, and the English pages. Screenshots go to $SCREENSHOTS.
// Run through run.sh.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ISSUER, newPage, registerClient, scanAs, screenshot, text } from './browser.mjs'

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const shot = (page, name) => screenshot(page, `device-${name}`)

/** A public CLI client registered with a name and the grant only, and a device request of it. */
async function deviceRequest() {
  const { client_id } = await registerClient({
    client_name: 'kubectl',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_GRANT],
  })
  const response = await fetch(`${ISSUER}/device_authorization`, {
    method: 'POST',
    body: new URLSearchParams({ client_id, scope: 'openid profile groups' }),
  })
  assert.equal(response.status, 200, 'the device gets its codes')
  return { clientId: client_id, ...(await response.json()) }
}

async function poll(clientId, deviceCode) {
  const response = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }),
  })
  return { status: response.status, body: await response.json() }
}

test('a person types the code, signs in with WeCom, compares the code and approves; the CLI gets tokens', async () => {
  const device = await deviceRequest()
  assert.equal((await poll(device.clientId, device.device_code)).body.error, 'authorization_pending')

  const page = await newPage('zh-CN,zh;q=0.9', { width: 900, height: 700 })
  await page.goto(device.verification_uri)
  await shot(page, 'enter-code')
  // Typed the way people type: lower case, without the dash.
  await page.type('input[name="user_code"]', device.user_code.replace('-', '').toLowerCase())
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')])
  await scanAs(page, 'lisi')

  const approval = await text(page)
  assert.ok(approval.includes(device.user_code), 'the approval page shows the code to compare')
  assert.ok(approval.includes('kubectl'), 'and the application asking')
  assert.ok(approval.includes('127.0.0.1'), 'and the address the request came from')
  await shot(page, 'approve')
  await Promise.all([page.waitForNavigation(), page.click('button[value="approve"]')])
  await shot(page, 'approved')

  const tokens = await poll(device.clientId, device.device_code)
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
  assert.ok(tokens.body.id_token && tokens.body.access_token, 'the CLI gets an ID token and an access token')
})

test('in English, from verification_uri_complete, a person denies and the CLI hears access_denied', async () => {
  const device = await deviceRequest()
  const page = await newPage('en-US,en;q=0.9', { width: 900, height: 700 })
  await page.goto(device.verification_uri_complete)
  await scanAs(page, 'lisi')
  const approval = await text(page)
  assert.ok(approval.includes(device.user_code), 'the code is shown without typing it')
  await shot(page, 'approve-en')
  await Promise.all([page.waitForNavigation(), page.click('button[value="deny"]')])
  await shot(page, 'denied-en')
  assert.equal((await poll(device.clientId, device.device_code)).body.error, 'access_denied')
})
