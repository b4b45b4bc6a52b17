import t from 'tap'
import { MIN_REFRESH_INTERVAL_MS } from '../../client/client.js'
import { connect, type ConnectOptions, type TenantcastClient } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { eventually, FakeClock, reach } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

/** A getToken that mints a different token on each call (claim n counts them), counting the calls. */
function minter (lifetimeMs: number): { getToken: () => string, calls: () => number } {
  let calls = 0
  return {
    getToken: () => { calls++; return sign({ n: calls }, { expiresIn: lifetimeMs }) },
    calls: () => calls
  }
}

const cases: Array<{ name: string, clockAheadMs: number, margin?: number, lifetimeMs: number }> = [
  { name: 'a refresh margin past the token\'s lifetime', clockAheadMs: 0, margin: 2 * 3_600_000, lifetimeMs: 3_600_000 },
  { name: 'a client clock 10 min ahead of the issuer\'s, with 5 min tokens', clockAheadMs: 600_000, lifetimeMs: 300_000 }
]

for (const c of cases) {
  t.test(`with ${c.name}, the token is refreshed at most once per ${MIN_REFRESH_INTERVAL_MS} ms, never in a loop`, async (t) => {
    const gw = await build(t)
    const clock = new FakeClock(Date.now() + c.clockAheadMs)
    const tokens = minter(c.lifetimeMs)
    // requestTimeout 0: the only timers on the fake clock are the refreshes under test.
    const client = open(t, { url: gw.ws, getToken: tokens.getToken, timers: clock, heartbeatInterval: 0, requestTimeout: 0, ...(c.margin === undefined ? {} : { tokenRefreshMargin: c.margin }) })
    await reach(client, 'open')
    const start = clock.now()
    const atOpen = tokens.calls()
    // Fake time moves only by running timers: ten of them, each one refresh at most.
    for (let i = 0; i < 10; i++) {
      const before = tokens.calls()
      const delay = clock.runNext()
      t.ok(i === 0 || delay >= MIN_REFRESH_INTERVAL_MS, `timer ${i + 1} waited ${delay} ms`)
      t.ok(await eventually(() => tokens.calls() === before + 1), `timer ${i + 1} asked getToken once`)
      t.ok(await eventually(() => clock.pending().length === 1), 'the next refresh is armed once the server accepted this one')
    }
    t.equal(tokens.calls() - atOpen, 10, 'ten refreshes for ten timers')
    t.ok(clock.now() - start >= 9 * MIN_REFRESH_INTERVAL_MS, `they spanned ${clock.now() - start} ms of fake time`)
    t.equal(client.state, 'open')
  })
}
