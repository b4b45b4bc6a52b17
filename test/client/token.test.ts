import t from 'tap'
import { connect, decodeTokenPayload, refreshAt, tokenTimes, type ConnectOptions, type ServerFrame, type TenantcastClient } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { eventually, FakeClock, next, reach, TcpProxy, tick } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

const HOUR = 3_600_000

function expiry (token: string): number {
  return (decodeTokenPayload(token)?.exp as number) * 1000
}

/** The `authenticated` replies to refreshes: the ones that carry a ref. */
function refreshReplies (client: TenantcastClient): ServerFrame[] {
  const replies: ServerFrame[] = []
  client.on('frame', (frame) => { if (frame.type === 'authenticated' && frame.ref !== undefined) replies.push(frame) })
  return replies
}

t.test('the token is refreshed over the live connection 30 s before it expires', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const first = sign({}, { expiresIn: HOUR })
  const second = sign({}, { expiresIn: 2 * HOUR })
  const tokens = [first, second]
  let calls = 0
  const client = open(t, { url: gw.ws, getToken: () => { calls++; return tokens.shift() as string }, timers: clock, heartbeatInterval: 0 })
  const replies = refreshReplies(client)
  await reach(client, 'open')
  t.equal(calls, 1)
  t.equal(client.session?.connectionCount, 1)
  const other = connect({ url: gw.ws, token: sign({ sub: 'u2' }) })
  t.teardown(() => { other.close() })
  await reach(other, 'open')
  t.same(clock.pending(), [expiry(first) - 30_000 - clock.now()], 'one timer: the refresh, 30 s before exp')
  clock.runNext()
  t.ok(await eventually(() => replies.length === 1), 'the server accepted the new token')
  t.equal(calls, 2)
  t.match(replies[0], { type: 'authenticated', userId: 'u1', tenantId: 't1', connectionCount: 2 })
  t.equal(client.session?.connectionCount, 2, 'the refresh reply updates the connection count')
  t.same(clock.pending(), [expiry(second) - 30_000 - clock.now()], 'the next refresh is armed from the new token')
  t.equal(client.state, 'open', 'the connection never dropped')
})

t.test('a short-lived token is refreshed a tenth of its lifetime before it expires', async (t) => {
  const token = sign({ iat: 1_000, exp: 1_100 })
  t.equal(refreshAt(token, 0), 1_090_000, '100 s lifetime: 10 s before')
  t.equal(refreshAt(token, 0, 5_000), 1_095_000, 'or the configured margin')
  t.equal(refreshAt(`h.${Buffer.from('{"exp":1100}').toString('base64url')}.s`, 1_000_000), 1_090_000, 'without iat the lifetime counts from now')
  t.equal(refreshAt(sign({ iat: 1_000, exp: 10_000 }), 0), 9_970_000, 'long-lived: 30 s before')
  t.equal(refreshAt(sign(), 0), undefined, 'no exp, no refresh')
})

t.test('a token is read without verification, and anything unreadable is no token', async (t) => {
  t.match(decodeTokenPayload(sign({ sub: 'ü-user' })), { sub: 'ü-user', tenantId: 't1' })
  t.equal(decodeTokenPayload('opaque'), undefined)
  t.equal(decodeTokenPayload('a..c'), undefined)
  t.equal(decodeTokenPayload('a.!!!.c'), undefined)
  t.equal(decodeTokenPayload(`a.${Buffer.from('[1,2]').toString('base64url')}.c`), undefined)
  t.equal(decodeTokenPayload(`a.${Buffer.from('"text"').toString('base64url')}.c`), undefined)
  t.same(tokenTimes(`a.${Buffer.from('{"exp":"soon"}').toString('base64url')}.c`), {})
})

t.test('a refresh the server refuses is reported and the connection carries on', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const tokens = [sign({}, { expiresIn: HOUR }), sign({ sub: 'mallory' }, { expiresIn: HOUR })]
  const client = open(t, { url: gw.ws, getToken: () => tokens.shift() as string, timers: clock, heartbeatInterval: 0 })
  await reach(client, 'open')
  const errors = next(client, 'error')
  clock.runNext()
  t.match((await errors)[0], { code: 'IDENTITY_MISMATCH' })
  t.equal(client.state, 'open')
  t.equal(client.session?.userId, 'u1')
  t.match(await client.request({ type: 'ping' }), { type: 'pong', ref: /^r\d+$/ }, 'still serving requests')
})

t.test('a getToken that fails at refresh time is reported and the connection carries on', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  let calls = 0
  const client = open(t, {
    url: gw.ws,
    getToken: () => {
      if (calls++ === 0) return sign({}, { expiresIn: HOUR })
      throw new Error('offline')
    },
    timers: clock,
    heartbeatInterval: 0
  })
  await reach(client, 'open')
  const errors = next(client, 'error')
  clock.runNext()
  t.match((await errors)[0], { code: 'TOKEN_UNAVAILABLE', message: 'token refresh failed: offline' })
  t.equal(client.state, 'open')
})

t.test('a getToken that returns the same token sends nothing', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const token = sign({}, { expiresIn: HOUR })
  let calls = 0
  const client = open(t, { url: gw.ws, getToken: () => { calls++; return token }, timers: clock, heartbeatInterval: 0 })
  const replies = refreshReplies(client)
  await reach(client, 'open')
  clock.runNext()
  t.ok(await eventually(() => calls === 2))
  await client.request({ type: 'ping' })
  t.equal(replies.length, 0)
  t.same(clock.pending(), [], 'no refresh is armed again: the server will close at exp and a reconnect asks again')
})

t.test('a token that expires in more than 24.8 days re-arms its refresh timer in steps', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const token = sign({}, { expiresIn: 30 * 24 * HOUR })
  const client = open(t, { url: gw.ws, token, getToken: () => token, timers: clock, heartbeatInterval: 0 })
  await reach(client, 'open')
  t.same(clock.pending(), [2 ** 31 - 1])
  clock.runNext()
  t.same(clock.pending(), [expiry(token) - 30_000 - clock.now()])
})

t.test('without getToken, or with a token that has no exp, nothing is refreshed', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const fixed = open(t, { url: gw.ws, token: sign({}, { expiresIn: HOUR }), timers: clock, heartbeatInterval: 0 })
  const forever = open(t, { url: gw.ws, getToken: () => sign(), timers: clock, heartbeatInterval: 0 })
  await reach(fixed, 'open')
  await reach(forever, 'open')
  t.same(clock.pending(), [])
})

t.test('a token about to expire is replaced before connecting', async (t) => {
  const gw = await build(t)
  const stale = sign({}, { expiresIn: HOUR })
  const clock = new FakeClock(expiry(stale) - 1_000)
  let calls = 0
  const client = open(t, { url: gw.ws, token: stale, getToken: () => { calls++; return sign({ sub: 'fresh' }) }, timers: clock })
  const [authenticated] = await next(client, 'authenticated')
  t.equal(calls, 1)
  t.equal(authenticated.userId, 'fresh')
})

t.test('a getToken that fails at connect time is retried with backoff', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  let calls = 0
  const client = open(t, {
    url: gw.ws,
    getToken: async () => {
      if (calls++ === 0) throw new Error('not yet')
      return calls === 2 ? '' : sign()
    },
    timers: clock,
    random: () => 0.5
  })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.message) })
  const [first] = await next(client, 'close')
  t.match(first, { code: 1006, reason: 'TOKEN_UNAVAILABLE', willReconnect: true, delay: 500 })
  clock.runNext()
  const [second] = await next(client, 'close')
  t.match(second, { reason: 'TOKEN_UNAVAILABLE', delay: 1000 })
  clock.runNext()
  await reach(client, 'open')
  t.same(errors, ['getToken failed: not yet', 'getToken failed: getToken returned no token'])
})

t.test('a token a WebSocket refuses as a subprotocol closes the client for good', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: 'not a token, it has spaces' })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.code) })
  t.match((await next(client, 'close'))[0], { code: 1006, reason: 'CONNECT_FAILED', willReconnect: false })
  t.same(errors, ['TOKEN_UNAVAILABLE'])
  t.equal(client.state, 'closed')
})

t.test('a token obtained while the connection was down is kept for the next connection', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const clock = new FakeClock()
  let release: (token: string) => void = () => {}
  const tokens: Array<string | Promise<string>> = [
    sign({}, { expiresIn: HOUR }),
    new Promise<string>((resolve) => { release = resolve })
  ]
  const client = open(t, { url: proxy.ws, getToken: async () => await (tokens.shift() as string | Promise<string>), timers: clock, heartbeatInterval: 0 })
  await reach(client, 'open')
  clock.runNext()
  proxy.cut()
  await reach(client, 'reconnecting')
  release(sign({ sub: 'later' }, { expiresIn: 2 * HOUR }))
  await tick()
  clock.runNext()
  const [authenticated] = await next(client, 'authenticated')
  t.equal(authenticated.userId, 'later', 'the reconnect used the token the refresh fetched')
})
