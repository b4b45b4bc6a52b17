import t from 'tap'
import { backoffCeiling, connect, DEFAULT_BACKOFF, retryHint, type CloseInfo, type ConnectOptions, type EventFrame, type RecoveredFrame, type TenantcastClient } from '../../client/index.js'
import { build, freePort, postAlarm, sign } from '../helper.js'
import { authenticatedFrame, eventually, FakeClock, next, reach, scriptedServer, TcpProxy } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

/** Records what a client does: its events, recoveries, gaps and closes. */
function record (client: TenantcastClient): { events: EventFrame[], recovered: RecoveredFrame[], closes: CloseInfo[], states: string[] } {
  const log = { events: [] as EventFrame[], recovered: [] as RecoveredFrame[], closes: [] as CloseInfo[], states: [] as string[] }
  client.on('event', (frame) => { log.events.push(frame) })
  client.on('recovered', (frame) => { log.recovered.push(frame) })
  client.on('close', (info) => { log.closes.push(info) })
  client.on('state', (state) => { log.states.push(state) })
  return log
}

const offsets = (events: EventFrame[], stream: string): number[] => events.filter((e) => e.stream === stream).map((e) => e.offset as number)


t.test('after the server side drops the socket, the client reconnects, resumes every stream and loses nothing', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = open(t, { url: proxy.ws, token: sign(), channels: ['ops'], reconnect: { initialDelay: 10, maxDelay: 20 } })
  const log = record(client)
  await next(client, 'frame', (frame) => frame.type === 'subscribed')
  await postAlarm(gw, sign(), { message: '#1' })
  await postAlarm(gw, sign(), { message: '#2' })
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 1 })
  t.ok(await eventually(() => log.events.length === 3))
  const epoch = log.events[0]?.epoch as string

  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  for (const n of [3, 4]) await postAlarm(gw, sign(), { message: `#${n}` })
  for (const door of [2, 3]) await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door })
  proxy.release()
  await reach(client, 'open')
  t.ok(await eventually(() => log.events.length === 7 && log.recovered.length === 3), 'the missed events are replayed')
  await postAlarm(gw, sign(), { message: '#5' })
  t.ok(await eventually(() => log.events.length === 8))

  t.same(offsets(log.events, 'tenant'), [1, 2, 3, 4, 5], 'every tenant event once, in order')
  t.same(log.events.filter((e) => e.stream === 'tenant').map((e) => (e.data as { message: string }).message), ['#1', '#2', '#3', '#4', '#5'])
  t.same(offsets(log.events, 'channel:ops'), [1, 2, 3], 'every channel event once, in order')
  t.match(log.recovered, [
    { stream: 'tenant', recovered: true, from: 3, to: 4, count: 2 },
    { stream: 'user:u1', recovered: true, from: 1, to: 0, count: 0 },
    { stream: 'channel:ops', recovered: true, from: 2, to: 3, count: 2 }
  ], 'each stream resumes on its own')
  t.match(log.closes, [{ code: 1006, willReconnect: true, attempt: 1 }])
  t.same(log.states, ['open', 'reconnecting', 'open'])
  t.equal(proxy.requests.length, 2)
  t.match(proxy.requests[1], new RegExp(`^GET /api/v1/events\\?since\\.tenant=${epoch}%3A2&since\\.user%3Au1=${epoch}%3A0 HTTP/1.1`), 'the reconnect resumes the tenant and user streams from the last offsets seen')
  t.equal(client.position(), `${epoch}:5`)
  t.equal(client.position('channel:ops'), `${epoch}:3`)

  // A second drop this soon counts on: the reconnected socket has not stayed up minUptime yet.
  proxy.cut()
  await reach(client, 'reconnecting')
  await reach(client, 'open')
  t.match(log.closes, [{ attempt: 1 }, { attempt: 2 }])
})

t.test('before any event, the client resumes from the position it was given at authentication', async (t) => {
  const gw = await build(t)
  await postAlarm(gw, sign(), { message: 'old' })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = open(t, { url: proxy.ws, token: sign(), reconnect: { initialDelay: 10 } })
  const log = record(client)
  await reach(client, 'open')
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  await postAlarm(gw, sign(), { message: 'during the outage' })
  proxy.release()
  t.ok(await eventually(() => log.events.length === 1))
  t.match(log.events, [{ offset: 2, data: { message: 'during the outage' } }], 'the old event is not replayed, the missed one is')
})

t.test('a resume outside the window reports a gap and continues from the latest position', async (t) => {
  const gw = await build(t, { HISTORY_SIZE: 2 })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = open(t, { url: proxy.ws, token: sign(), reconnect: { initialDelay: 10 } })
  const log = record(client)
  const gaps: unknown[] = []
  client.on('gap', (gap) => { gaps.push(gap) })
  await reach(client, 'open')
  await postAlarm(gw, sign(), { message: '#1' })
  t.ok(await eventually(() => log.events.length === 1))
  const epoch = log.events[0]?.epoch as string
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  for (let n = 2; n <= 5; n++) await postAlarm(gw, sign(), { message: `#${n}` })
  proxy.release()
  t.ok(await eventually(() => gaps.length === 1))
  t.same(gaps, [{ stream: 'tenant', since: { epoch, offset: 1 }, oldest: { epoch, offset: 4 }, latest: { epoch, offset: 5 }, replaying: false }], 'the same epoch: nothing is replayed')
  t.equal(client.position(), `${epoch}:5`, 'the client continues from the latest position')
  await postAlarm(gw, sign(), { message: '#6' })
  t.ok(await eventually(() => log.events.length === 2))
  t.same(offsets(log.events, 'tenant'), [1, 6], 'nothing is replayed partially')
})

t.test('a channel resumed outside its window reports a gap naming the channel', async (t) => {
  const gw = await build(t, { HISTORY_SIZE: 1 })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = open(t, { url: proxy.ws, token: sign(), reconnect: { initialDelay: 10 } })
  await reach(client, 'open')
  await client.subscribe('ops')
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  for (let door = 1; door <= 3; door++) await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door })
  const gap = next(client, 'gap')
  proxy.release()
  t.match((await gap)[0], { stream: 'channel:ops', channel: 'ops', since: { offset: 0 }, oldest: { offset: 3 }, latest: { offset: 3 } })
})

t.test('after 4401 a client with a fixed token stops and never reconnects', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const client = open(t, { url: gw.ws, token: sign({}, { key: 'another-secret-of-sufficient-length-0123456789' }), timers: clock })
  const [info] = await next(client, 'close')
  t.same(info, { code: 4401, reason: 'TOKEN_INVALID', willReconnect: false })
  t.equal(client.state, 'closed')
  t.same(clock.pending(), [], 'no reconnect is scheduled')
})

t.test('after 4401 getToken is asked again; the same token stops the client', async (t) => {
  const gw = await build(t)
  const bad = sign({}, { key: 'another-secret-of-sufficient-length-0123456789' })
  let calls = 0
  const clock = new FakeClock()
  const client = open(t, { url: gw.ws, getToken: () => { calls++; return bad }, timers: clock })
  const [info] = await next(client, 'close')
  t.match(info, { code: 4401, willReconnect: false })
  t.equal(calls, 2, 'once to connect, once after the 4401')
  t.same(clock.pending(), [])
})

t.test('after 4401 a new token from getToken reconnects', async (t) => {
  const gw = await build(t)
  const expired = sign({ exp: Math.floor(Date.now() / 1000) - 60 })
  const tokens = [expired, sign({ sub: 'renewed' })]
  const client = open(t, { url: gw.ws, getToken: async () => tokens.shift() as string, reconnect: { initialDelay: 10 } })
  const log = record(client)
  const [authenticated] = await next(client, 'authenticated')
  t.equal(authenticated.userId, 'renewed')
  t.match(log.closes, [{ code: 4401, reason: 'TOKEN_EXPIRED', willReconnect: true, attempt: 1 }])
  t.same(log.states, ['reconnecting', 'open'])
})

t.test('after 4403 REVOKED from the kill switch the client stops, even with a getToken that would give a new token', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  let calls = 0
  const client = open(t, { url: gw.ws, getToken: () => { calls++; return sign({ sub: 'leaver', jti: String(calls) }) }, timers: clock })
  await reach(client, 'open')
  const closed = next(client, 'close')
  const reply = await fetch(`${gw.http}/api/v1/admin/disconnect`, {
    method: 'POST',
    headers: { authorization: `Bearer ${sign({ sub: 'boss', roles: ['admin'] })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 'leaver' })
  })
  t.equal(reply.status, 202)
  t.same((await closed)[0], { code: 4403, reason: 'REVOKED', willReconnect: false })
  t.equal(client.state, 'closed')
  t.same(clock.pending(), [], 'no reconnect is scheduled')
  t.equal(calls, 1, 'no new token is asked for')
})

t.test('a frame larger than MAX_PAYLOAD closes with 1009 and the client does not reconnect', async (t) => {
  const gw = await build(t, { MAX_PAYLOAD: 1024 })
  const clock = new FakeClock()
  const client = open(t, { url: gw.ws, token: sign(), timers: clock })
  await reach(client, 'open')
  const closed = next(client, 'close')
  const publishing = client.publish('ops', 'note', { text: 'x'.repeat(2000) })
  t.match(await publishing.catch((err: unknown) => err), { code: 'CONNECTION_CLOSED' })
  t.match((await closed)[0], { code: 1009, willReconnect: false })
  t.equal(client.state, 'closed')
  t.same(clock.pending(), [])
})

t.test('a gateway shutting down is honoured: the client waits exactly the retry hint of its 1001', async (t) => {
  const gw = await build(t, { RECONNECT_JITTER_MS: 3000 })
  const clock = new FakeClock()
  const client = open(t, { url: gw.ws, token: sign(), timers: clock, heartbeatInterval: 0 })
  await reach(client, 'open')
  const closed = next(client, 'close')
  await gw.app.close()
  const [info] = await closed
  const hint = retryHint(info.reason)
  t.match(info.reason, /^SERVER_SHUTDOWN retry=\d+$/)
  t.ok(hint !== undefined && hint >= 0 && hint <= 3000)
  t.match(info, { code: 1001, willReconnect: true, delay: hint, attempt: 1 })
  t.same(clock.pending(), [hint], 'the only timer is the reconnect, after the hinted delay')
  t.equal(client.state, 'reconnecting')
})

t.test('the backoff is full jitter: each delay is random * min(maxDelay, initialDelay * factor^attempt)', async (t) => {
  const port = await freePort()
  const run = async (random: () => number, attempts: number): Promise<number[]> => {
    const clock = new FakeClock()
    const client = open(t, { url: `ws://127.0.0.1:${port}/api/v1/events`, token: sign(), timers: clock, random, reconnect: { initialDelay: 100, maxDelay: 1000 } })
    const delays: number[] = []
    for (let n = 0; n < attempts; n++) {
      const [info] = await next(client, 'close')
      t.match(info, { code: 1006, willReconnect: true, attempt: n + 1 })
      t.same(clock.pending(), [info.delay], 'the reconnect timer is the only timer')
      delays.push(clock.runNext())
    }
    client.close()
    return delays
  }
  t.same(await run(() => 0.5, 7), [50, 100, 200, 400, 500, 500, 500], 'half of each ceiling')
  t.same(await run(() => 0, 3), [0, 0, 0], 'the lower bound is zero')
  const samples: number[] = []
  const random = (): number => { const r = Math.random(); samples.push(r); return r }
  const delays = await run(random, 6)
  const policy = { ...DEFAULT_BACKOFF, initialDelay: 100, maxDelay: 1000 }
  delays.forEach((delay, n) => {
    t.ok(delay >= 0 && delay <= backoffCeiling(policy, n), `attempt ${n + 1}: ${delay} within [0, ${backoffCeiling(policy, n)}]`)
    t.equal(delay, Math.floor((samples[n] as number) * backoffCeiling(policy, n)))
  })
})

t.test('the defaults are 1000 ms initial, 5000 ms maximum, unlimited attempts, reset after 5000 ms up', async (t) => {
  t.same(DEFAULT_BACKOFF, { initialDelay: 1000, maxDelay: 5000, factor: 2, maxAttempts: Infinity, minUptime: 5000 })
  const port = await freePort()
  const clock = new FakeClock()
  const client = open(t, { url: `ws://127.0.0.1:${port}/api/v1/events`, token: sign(), timers: clock, random: () => 0.999 })
  const delays: number[] = []
  for (let n = 0; n < 5; n++) {
    await next(client, 'close')
    delays.push(clock.runNext())
  }
  t.same(delays, [999, 1998, 3996, 4995, 4995])
})

t.test('after maxAttempts failed reconnects the client gives up', async (t) => {
  const port = await freePort()
  const clock = new FakeClock()
  const client = open(t, { url: `ws://127.0.0.1:${port}/api/v1/events`, token: sign(), timers: clock, reconnect: { maxAttempts: 2 } })
  const log = record(client)
  await next(client, 'close')
  clock.runNext()
  await next(client, 'close')
  clock.runNext()
  await next(client, 'close')
  t.same(log.closes.map((c) => [c.willReconnect, c.attempt]), [[true, 1], [true, 2], [false, undefined]])
  t.equal(client.state, 'closed')
  t.same(clock.pending(), [])
})

t.test('close() called from a close handler cancels the reconnect', async (t) => {
  const port = await freePort()
  const clock = new FakeClock()
  const client = open(t, { url: `ws://127.0.0.1:${port}/api/v1/events`, token: sign(), timers: clock })
  const closes: CloseInfo[] = []
  client.on('close', (info) => {
    closes.push(info)
    if (info.willReconnect) client.close()
  })
  await next(client, 'close', (info) => !info.willReconnect)
  t.match(closes, [{ code: 1006, willReconnect: true }, { code: 1000, willReconnect: false }])
  t.equal(client.state, 'closed')
  t.same(clock.pending(), [], 'nothing is left to fire')
})

t.test('reconnect: false never reconnects', async (t) => {
  const port = await freePort()
  const clock = new FakeClock()
  const client = open(t, { url: `ws://127.0.0.1:${port}/api/v1/events`, token: sign(), timers: clock, reconnect: false })
  t.match((await next(client, 'close'))[0], { code: 1006, willReconnect: false })
  t.same(clock.pending(), [])
})

t.test('close codes decide: final ones stop, transient ones reconnect, 4029 backs off to at least half the maximum', async (t) => {
  const cases: Array<[number, string, boolean]> = [
    [1000, '', false], [1008, 'ORIGIN', false], [1009, '', false], [4403, 'FORBIDDEN', false], [4499, 'OTHER', false],
    [1011, '', true], [1013, 'BROKER_UNAVAILABLE', true], [4008, 'SLOW_CONSUMER', true], [4008, 'STREAM_GAP', true],
    [1001, 'SERVER_SHUTDOWN', true], [4029, 'RATE_LIMITED', true]
  ]
  for (const [code, reason, reconnects] of cases) {
    const server = await scriptedServer(t, (socket) => {
      socket.send(authenticatedFrame())
      socket.close(code, reason)
    })
    const clock = new FakeClock()
    const client = open(t, { url: server.url, token: 'x', timers: clock, random: () => 0, reconnect: { initialDelay: 100, maxDelay: 1000 } })
    const [info] = await next(client, 'close')
    t.equal(info.willReconnect, reconnects, `${code} ${reason}: ${reconnects ? 'reconnects' : 'stops'}`)
    t.equal(client.state, reconnects ? 'reconnecting' : 'closed')
    if (code === 4029) t.equal(info.delay, 500, 'rate limited: half the maximum at the least')
    else if (reconnects) t.equal(info.delay, 0, 'otherwise full jitter from zero')
    client.close()
  }
})

t.test('the client reconnects to a scripted server and its replies are matched by ref only', async (t) => {
  const server = await scriptedServer(t, (socket, index) => {
    socket.send(authenticatedFrame({ epoch: 'e1', offset: 7 }))
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string, id?: string }
      if (frame.type !== 'ping' || frame.id === undefined) return
      // A reply with a ref nobody waits for, then the real one.
      socket.send(JSON.stringify({ type: 'pong', ref: 'unknown' }))
      socket.send(JSON.stringify({ type: 'pong', ref: frame.id }))
      if (index === 0) socket.close(4008, 'SLOW_CONSUMER')
    })
  })
  const client = open(t, { url: server.url, token: 'x', reconnect: { initialDelay: 5 } })
  await reach(client, 'open')
  t.match(await client.request({ type: 'ping' }), { type: 'pong', ref: 'r1' })
  await reach(client, 'reconnecting')
  await reach(client, 'open')
  t.equal(server.connections(), 2)
  t.equal(client.position(), 'e1:7')
})

t.test('a server that closes right after authentication sees the backoff grow; only a connection that stayed up minUptime resets it', async (t) => {
  const sockets: Array<import('ws').WebSocket> = []
  // The first four connections are closed at once after `authenticated`, as a server answering 1013 would.
  const server = await scriptedServer(t, (socket, index) => {
    socket.send(authenticatedFrame())
    if (index < 4) socket.close(1013, 'BROKER_UNAVAILABLE')
    else sockets.push(socket)
  })
  const clock = new FakeClock()
  const client = open(t, { url: server.url, token: 'x', timers: clock, random: () => 0.5, heartbeatInterval: 0, reconnect: { initialDelay: 100, maxDelay: 1000, minUptime: 5000 } })
  const closes: CloseInfo[] = []
  client.on('close', (info) => { closes.push(info) })
  for (let n = 0; n < 4; n++) {
    t.ok(await eventually(() => closes.length === n + 1))
    t.same(clock.pending(), [closes[n]?.delay], 'the reconnect timer is the only timer')
    clock.runNext()
  }
  t.same(closes.map((c) => [c.code, c.attempt, c.delay]), [[1013, 1, 50], [1013, 2, 100], [1013, 3, 200], [1013, 4, 400]], 'each authenticated-then-closed connection counts as a failed attempt')

  // Connection 5 stays up 1 ms short of minUptime: still not healthy.
  await reach(client, 'open')
  t.ok(await eventually(() => sockets.length === 1))
  clock.time += 4999
  sockets[0]?.close(1013, 'BROKER_UNAVAILABLE')
  t.ok(await eventually(() => closes.length === 5))
  t.match(closes[4], { attempt: 5, delay: 500 }, 'the backoff keeps growing, up to maxDelay')
  clock.runNext()

  // Connection 6 stays up minUptime: the next drop starts from the first delay again.
  await reach(client, 'open')
  t.ok(await eventually(() => sockets.length === 2))
  clock.time += 5000
  sockets[1]?.close(1013, 'BROKER_UNAVAILABLE')
  t.ok(await eventually(() => closes.length === 6))
  t.match(closes[5], { attempt: 1, delay: 50 }, 'a healthy connection resets the backoff')
  t.equal(server.connections(), 6)
})
