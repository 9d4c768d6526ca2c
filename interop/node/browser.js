// The person's browser and the provider's administrator, as the checks need them. Everything a
// relying party does is left to the library under test; this file only plays what a library
// never does: registering the client, and the person's browser going to the provider, on to WeCom
// (the simulator's "who scans?" page), and back.
import assert from 'node:assert/strict'

export const ISSUER = required('ISSUER')
export const SIMULATOR = required('SIMULATOR')
const ADMIN_TOKEN = required('ADMIN_TOKEN')

function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: run these checks through interop/run.sh`)
  }
  return value
}

/** Registers a client through the admin API; returns the 201 body (client_id, client_secret). */
export async function registerClient(metadata) {
  const response = await fetch(new URL('/admin/clients', ISSUER), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(metadata),
  })
  const body = await response.json()
  assert.equal(response.status, 201, `registration failed: ${JSON.stringify(body)}`)
  return body
}

/** A browser with its own cookie jar (one per origin, enough for loopback hosts) that follows
 * nothing by itself: each step is checked. */
export class Browser {
  #jar = new Map() // origin -> Map(name -> value)

  async get(url) {
    return this.#send(url, {})
  }

  /** POST an HTML form's fields to `url`, as a browser submitting it. */
  async postForm(url, fields) {
    return this.#send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    })
  }

  async #send(url, init) {
    url = new URL(url)
    const cookies = this.#jar.get(url.origin)
    const headers = { ...init.headers }
    if (cookies?.size) {
      headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    }
    const response = await fetch(url, { ...init, redirect: 'manual', headers })
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const removed =
        value === '' || attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a))
      if (!this.#jar.has(url.origin)) this.#jar.set(url.origin, new Map())
      if (removed) this.#jar.get(url.origin).delete(name)
      else this.#jar.get(url.origin).set(name, value)
    }
    return response
  }

  /** GET `url`, expect a redirect, return its absolute target. */
  async redirectFrom(url) {
    const response = await this.get(url)
    const location = response.headers.get('location')
    assert.ok(
      response.status >= 300 && response.status < 400 && location,
      `expected a redirect from ${url}, got ${response.status}: ${(await response.text()).slice(0, 300)}`,
    )
    return new URL(location, url)
  }

  /**
   * The person opens the authorization URL, is sent to WeCom, "scans" as `member` on the
   * simulator's picker page (its buttons lead to the page's own URL + `/approve` + `userid=`), and
   * comes back through the provider's WeCom callback. Returns the URL the provider finally
   * redirects to: the relying party's redirect_uri with `code` and `state`.
   */
  async signIn(authorizationUrl, member) {
    const callback = await this.#scanAtWecom(authorizationUrl, member)
    return this.redirectFrom(callback)
  }

  /**
   * The person opens a device's `verification_uri_complete` (the QR code a terminal prints, or
   * the verification page with a code they typed), signs in at WeCom as `member`, comes back to
   * the approval page and presses `decision` (approve or deny). Returns the approval page's HTML.
   */
  async answerDevice(verificationUriComplete, member, decision) {
    const opened = new URL(verificationUriComplete)
    const callback = await this.#scanAtWecom(opened, member)
    const back = await this.redirectFrom(callback)
    assert.equal(back.pathname, opened.pathname, 'back at the approval page')
    assert.ok(back.searchParams.get('user_code'), 'with the user code')
    const page = await this.get(back)
    const html = await page.text()
    assert.equal(page.status, 200, html.slice(0, 300))
    const hidden = (name) => {
      const match = html.match(new RegExp(`name="${name}" value="([^"]*)"`))
      assert.ok(match, `the approval form has ${name}`)
      return match[1]
    }
    const action = new URL(opened)
    action.search = ''
    const answered = await this.postForm(action, {
      user_code: hidden('user_code'),
      csrf_token: hidden('csrf_token'),
      decision,
    })
    assert.equal(answered.status, 200, `the ${decision} was taken`)
    return html
  }

  /** To WeCom from `url`, "scan" as `member`, and return the provider callback WeCom sends to. */
  async #scanAtWecom(url, member) {
    const atWecom = await this.redirectFrom(url)
    assert.equal(atWecom.origin, new URL(SIMULATOR).origin, `not sent to WeCom: ${atWecom}`)
    assert.equal(atWecom.pathname, '/wwlogin/sso/login', 'a desktop browser gets the web login')
    const picker = await this.get(atWecom)
    assert.equal(picker.status, 200, 'the WeCom login page shows')
    assert.match(await picker.text(), new RegExp(member), 'the member is on the picker page')
    const approve = new URL(atWecom)
    approve.pathname += '/approve'
    approve.searchParams.set('userid', member)
    const callback = await this.redirectFrom(approve)
    assert.equal(callback.origin, new URL(ISSUER).origin, `WeCom did not return: ${callback}`)
    return callback
  }
}
