import t from 'tap'
import { connect, type CloseInfo, type ConnectOptions, type TenantcastClient } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { eventually, FakeClock, next, reach, tick } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

const expired = (): string => sign({ exp: Math.floor(Date.now() / 1000) - 60 })

t.test('after 4401 a getToken that fails once (a token service blip) goes through backoff, and the next attempt asks again and connects', async (t) => {
  const gw = await build(t)
  let calls = 0
  const client = open(t, {
    url: gw.ws,
    reconnect: { initialDelay: 20 },
    getToken: () => {
      calls++
      if (calls === 1) return expired()
      if (calls === 2) throw new Error('503 from the identity provider')
      return sign({ sub: 'renewed' })
    }
  })
  const errors: string[] = []
  const closes: CloseInfo[] = []
  client.on('error', (error) => { errors.push(`${error.code}: ${error.message}`) })
  client.on('close', (info) => { closes.push(info) })
  const [authenticated] = await next(client, 'authenticated')
  t.equal(authenticated.userId, 'renewed')
  t.equal(calls, 3, 'connect, the failed call after the 4401, the call of the next attempt')
  t.same(errors, ['TOKEN_UNAVAILABLE: getToken failed: 503 from the identity provider'])
  t.match(closes, [{ code: 4401, reason: 'TOKEN_EXPIRED', willReconnect: true, attempt: 1 }])
  t.equal(client.state, 'open')
})

t.test('after 4401 a getToken that keeps failing is retried with a growing backoff until maxAttempts, never with the refused token', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  let calls = 0
  const client = open(t, {
    url: gw.ws,
    timers: clock,
    heartbeatInterval: 0,
    random: () => 0.999,
    reconnect: { maxAttempts: 3 },
    getToken: () => {
      if (calls++ === 0) return expired()
      throw new Error('down')
    }
  })
  client.on('error', () => {})
  const closes: CloseInfo[] = []
  client.on('close', (info) => { closes.push(info) })
  t.ok(await eventually(() => closes.length === 1), 'the 4401')
  for (let attempt = 2; attempt <= 3; attempt++) {
    clock.runNext()
    t.ok(await eventually(() => closes.length === attempt), `attempt ${attempt} failed on getToken`)
  }
  clock.runNext()
  t.ok(await eventually(() => client.state === 'closed'))
  t.match(closes.map((c) => [c.code, c.willReconnect, c.delay]), [[4401, true, 999], [1006, true, 1998], [1006, true, 3996], [1006, false, undefined]])
  t.equal(calls, 5, 'connect, after the 4401, then each of the 3 attempts asked getToken; none reused the refused token')
})

t.test('a refresh in flight during a 4401 is not the end: its token, stored while the link was down, reconnects the client', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const resolvers: Array<(token: string) => void> = []
  let calls = 0
  const renewed = sign({ sub: 'renewed' }, { expiresIn: 3_600_000 })
  const client = open(t, {
    url: gw.ws,
    timers: clock,
    heartbeatInterval: 0,
    getToken: async () => {
      // The first token expires on the server's clock in 2 s; later calls wait for the test.
      if (calls++ === 0) return sign({ exp: Math.floor(Date.now() / 1000) + 2 })
      return await new Promise<string>((resolve) => { resolvers.push(resolve) })
    }
  })
  const closes: CloseInfo[] = []
  client.on('close', (info) => { closes.push(info) })
  await reach(client, 'open')
  clock.runNext() // the refresh: its getToken stays pending
  t.equal(calls, 2)
  // The server closes at exp; the client reports the close once it knows whether it comes back.
  t.ok(await eventually(() => calls === 3, 5000), 'the 4401 asked getToken too')
  t.same(closes, [], 'nothing reported while getToken is pending')
  // The token service answers both with the same new token: the refresh's answer lands first.
  resolvers[0]?.(renewed)
  await tick()
  resolvers[1]?.(renewed)
  await tick()
  t.equal(client.state, 'reconnecting', 'not closed: the new token is not the refused one')
  t.match(closes, [{ code: 4401, reason: 'TOKEN_EXPIRED', willReconnect: true }])
  clock.runNext()
  const [authenticated] = await next(client, 'authenticated')
  t.equal(authenticated.userId, 'renewed')
})
