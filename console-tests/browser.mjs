// What both browser test files share: the settings run.sh exports, Debian's chromium (headless,
// never downloaded) launched once per file, pages with cookies of their own, screenshots, and
// signing in at the WeCom simulator's "who scans?" page.
import { before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import puppeteer from 'puppeteer-core'

export function required(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: run these checks through console-tests/run.sh`)
  return value
}

export const ISSUER = required('ISSUER')
export const SIMULATOR = required('SIMULATOR')
export const ADMIN_TOKEN = required('ADMIN_TOKEN')
const SCREENSHOTS = required('SCREENSHOTS')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

let browser
before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true })
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--lang=zh-CN',
    ],
  })
})
after(async () => {
  await browser?.close()
})

/** A page in a browser context of its own (its own cookies), in `lang`. */
export async function newPage(lang = 'zh-CN,zh;q=0.9', viewport = { width: 1280, height: 860 }) {
  const context = await browser.createBrowserContext()
  const page = await context.newPage()
  await page.setViewport(viewport)
  await page.setExtraHTTPHeaders({ 'accept-language': lang })
  return page
}

/** A full-page screenshot, `$SCREENSHOTS/<name>.png`. */
export async function screenshot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

export async function text(page) {
  return page.evaluate(() => document.body.innerText)
}

/** At the simulator's "who scans?" page, `userid` scans. */
export async function scanAs(page, userid) {
  assert.ok(page.url().startsWith(SIMULATOR), `at WeCom: ${page.url()}`)
  await Promise.all([
    page.waitForNavigation(),
    page.click(`button.who[name="userid"][value="${userid}"]`),
  ])
}

/** Registers a client through the admin API and returns its registration answer. */
export async function registerClient(metadata) {
  const response = await fetch(`${ISSUER}/admin/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(metadata),
  })
  assert.equal(response.status, 201, `client ${metadata.client_name} is registered`)
  return response.json()
}
