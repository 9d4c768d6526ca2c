// oidc-agent's oidc-gen (the Debian package oidc-agent-cli) signs in with the device flow, as a
// person on a server without a browser would: `oidc-gen --flow=device` prints the code and a QR
// code and polls; the test plays the person who types the code (lower case, no dash) into the
// verification page, signs in at WeCom and approves. Run by ../run.sh when oidc-gen is installed
// (not named *.test.js, so plain `node --test` leaves it out).
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { Browser, ISSUER, registerClient } from './browser.js'

/** Runs `command` and resolves with its exit code and output once it exits. */
function run(command, args, env) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const seen = []
  const onData = (chunk) => {
    output += chunk
    for (const waiter of seen.splice(0)) waiter()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })))
  /** Resolves with the first match of `pattern` in the output so far or to come. */
  const waitFor = async (pattern) => {
    for (;;) {
      const match = output.match(pattern)
      if (match) return match
      await Promise.race([new Promise((resolve) => seen.push(resolve)), exited])
      if (child.exitCode !== null && !output.match(pattern)) {
        throw new Error(`${command} exited before printing ${pattern}: ${output}`)
      }
    }
  }
  return { waitFor, exited }
}

test('oidc-agent: oidc-gen --flow=device gets an access token after a WeCom approval', async () => {
  const registered = await registerClient({
    client_name: 'interop: oidc-agent',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  })
  const home = mkdtempSync(join(tmpdir(), 'oidc-agent-'))
  const env = { ...process.env, HOME: home, TMPDIR: home }
  const agent = JSON.parse(execFileSync('oidc-agent', ['--no-autoload', '--json'], { env }))
  try {
    const gen = run(
      'oidc-gen',
      [
        '--only-at',
        '--flow=device',
        `--issuer=${ISSUER}`,
        `--client-id=${registered.client_id}`,
        '--client-secret=',
        '--redirect-uri=http://localhost:4242',
        '--scope=openid profile',
        '--confirm-default',
        '--no-url-call',
      ],
      { ...env, OIDC_SOCK: agent.socket },
    )
    const [, uri] = await gen.waitFor(/visit:\s*(\S+)/)
    assert.equal(uri, `${ISSUER}/device`)
    const [, code] = await gen.waitFor(/enter the code: ([A-Z]{4}-[A-Z]{4})/)

    const typed = new URL(uri)
    typed.searchParams.set('user_code', code.toLowerCase().replace('-', ''))
    const approval = await new Browser().answerDevice(typed, 'ZhangSan', 'approve')
    assert.ok(approval.includes(code), 'the approval page shows the code oidc-gen printed')

    const { code: status, output } = await gen.exited
    assert.equal(status, 0, output)
    const token = output.trim().split('\n').pop().trim()
    const userinfo = await fetch(new URL('/userinfo', ISSUER), {
      headers: { authorization: `Bearer ${token}` },
    })
    assert.equal(userinfo.status, 200, 'oidc-gen printed a working access token')
    assert.equal((await userinfo.json()).sub, 'zhangsan')
  } finally {
    process.kill(Number(agent.dpid))
    rmSync(home, { recursive: true, force: true })
  }
})
