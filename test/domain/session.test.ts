import t from 'tap'
import { ManualRounds } from './manual-rounds.js'
import { FakeConnection, tokens, world, send, authed } from './session-world.js'

// The session state machine driven frame by frame over fake connections, with the real hub,
// the real memory broker and presence, and a clock the test moves (test/domain/session-world.ts).
// Every test asserts the exact frames a socket got, in order, and how it closed.

t.test('a socket authenticates with an upgrade token and learns its position and connection count', async (t) => {
  const w = world()
  await w.post({ event: 'alarm:created', data: { n: 1 }, target: { kind: 'tenant' } })
  const { connection } = await authed(w)
  t.same(connection.frames, [
    { type: 'connected', clientId: 'c1' },
    {
      type: 'authenticated',
      userId: 'alice',
      tenantId: 'acme',
      clientId: 'c1',
      connectionCount: 1,
      position: { epoch: w.broker.epoch, offset: 1 },
      positions: { tenant: { epoch: w.broker.epoch, offset: 1 }, 'user:alice': { epoch: w.broker.epoch, offset: 0 } }
    }
  ])
  t.equal(connection.closedWith, undefined)
  t.equal(w.hub.tenantConnectionCount('acme'), 1)
  t.same(w.logs, ['info websocket.connection.established'])
  t.same(w.clock.timers.size, 0, 'the auth timeout was cleared and a token without exp arms nothing')
})

t.test('authenticate as a frame carries its ref and live events follow', async (t) => {
  const w = world()
  const { session, connection } = w.open()
  await send(session, { type: 'authenticate', token: 'alice', id: 7 })
  await w.post({ event: 'alarm:created', data: { n: 1 }, target: { kind: 'tenant' } })
  await w.post({ event: 'alarm:created', data: { n: 2 }, target: { kind: 'user', userId: 'bob' } })
  t.same(connection.types(), ['connected', 'authenticated', 'event'])
  t.equal(connection.frames[1]?.ref, 7)
  t.same(connection.frames[2]?.data, { n: 1 })
})

t.test('no authenticate in time closes with 4401 AUTHENTICATION_REQUIRED and counts one failure', async (t) => {
  const w = world()
  const { connection } = w.open()
  w.clock.advance(4999)
  t.equal(connection.closedWith, undefined)
  w.clock.advance(1)
  t.same(connection.closedWith, [4401, 'AUTHENTICATION_REQUIRED'])
  t.same(w.authFailures, ['AUTHENTICATION_REQUIRED'])
})

t.test('a refused token closes with its reason, once, without counting it twice', async (t) => {
  const w = world()
  const { connection } = await authed(w, 'nobody')
  t.same(connection.closedWith, [4401, 'TOKEN_INVALID'])
  t.same(w.authFailures, [], 'the verifier reports its own failures')
  const odd = await authed(w, 'weird')
  t.same(odd.connection.closedWith, [4401, 'TOKEN_INVALID'], 'an unexpected verifier error is an invalid token')
  t.equal(w.hub.size(), 0)
})

t.test('keys that cannot be fetched close a first authentication with 1013 and a retry hint', async (t) => {
  const w = world()
  const { connection } = await authed(w, 'down')
  t.same(connection.closedWith, [1013, 'AUTH_UNAVAILABLE retry=2500'])
  t.same(w.authFailures, [])
})

t.test('a refresh while keys are unreachable keeps the socket and answers AUTH_UNAVAILABLE', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'authenticate', token: 'down', id: 'r' })
  t.same(connection.frames, [{ type: 'error', code: 'AUTH_UNAVAILABLE', message: 'keys unreachable; retry in 2500 ms', ref: 'r' }])
  t.equal(connection.closedWith, undefined)
})

t.test('a refused refresh keeps the live connection and answers with the reason', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'authenticate', token: 'expired', id: 1 })
  t.same(connection.frames, [{ type: 'error', code: 'TOKEN_EXPIRED', message: 'expired', ref: 1 }])
  t.equal(connection.closedWith, undefined)
  t.same(w.logs.slice(-1), ['warn websocket.auth.failed'])
})

t.test('a refresh for another user is refused with IDENTITY_MISMATCH', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'authenticate', token: 'bob', id: 2 })
  t.same(connection.frames, [{ type: 'error', code: 'IDENTITY_MISMATCH', message: 'a refreshed token must name the same tenant and user', ref: 2 }])
  await send(session, { type: 'authenticate', token: 'carol', id: 3 })
  t.equal(connection.frames[1]?.code, 'IDENTITY_MISMATCH', 'another tenant too')
})

t.test('a refresh answers authenticated at the current position and leaves channels the new claim forbids', async (t) => {
  const w = world()
  const { session, connection } = await authed(w, 'alice2')
  await send(session, { type: 'subscribe', channel: 'ops', id: 1 })
  await send(session, { type: 'subscribe', channel: 'team-a', id: 2 })
  await w.post({ event: 'alarm:created', data: {}, target: { kind: 'tenant' } })
  connection.take()
  await send(session, { type: 'authenticate', token: 'limited', id: 3 })
  t.same(connection.frames, [
    { type: 'unsubscribed', channel: 'team-a', reason: 'CHANNEL_FORBIDDEN' },
    {
      type: 'authenticated',
      userId: 'alice',
      tenantId: 'acme',
      clientId: 'c1',
      connectionCount: 1,
      position: { epoch: w.broker.epoch, offset: 0 },
      positions: { tenant: { epoch: w.broker.epoch, offset: 0 }, 'user:alice': { epoch: w.broker.epoch, offset: 0 } },
      ref: 3
    }
  ])
  t.same(w.hub.channelConnectionCount('acme', 'team-a'), 0)
  t.same(w.hub.channelConnectionCount('acme', 'ops'), 1)
  connection.take()
  await send(session, { type: 'subscribe', channel: 'team-b', id: 4 })
  t.equal(connection.frames[0]?.code, 'CHANNEL_FORBIDDEN', 'the new claim is the grant for later joins too')
})

t.test('a token expiring closes with 4401 TOKEN_EXPIRED at its exp, and a refresh moves the deadline', async (t) => {
  const w = world()
  const exp = Math.floor(w.clock.time / 1000) + 60
  const { session, connection } = await authed(w, `alice@${exp}`)
  w.clock.advance(59_000)
  t.equal(connection.closedWith, undefined)
  await send(session, { type: 'authenticate', token: `alice@${exp + 60}` })
  w.clock.advance(30_000)
  t.equal(connection.closedWith, undefined, 'the refreshed token is still valid')
  w.clock.advance(31_000)
  t.same(connection.closedWith, [4401, 'TOKEN_EXPIRED'])
  t.same(w.authFailures, ['TOKEN_EXPIRED'])
})

t.test('an already expired exp closes at once; a refresh without exp disarms the timer', async (t) => {
  const w = world()
  const past = Math.floor(w.clock.time / 1000)
  const first = await authed(w, `alice@${past}`)
  t.same(first.connection.closedWith, [4401, 'TOKEN_EXPIRED'])
  const exp = Math.floor(w.clock.time / 1000) + 10
  const { session, connection } = await authed(w, `bob@${exp}`)
  await send(session, { type: 'authenticate', token: 'bob' })
  w.clock.advance(3_600_000)
  t.equal(connection.closedWith, undefined)
})

t.test('an exp further away than a timer can wait is re-armed in steps', async (t) => {
  const w = world()
  const exp = Math.floor(w.clock.time / 1000) + 30 * 24 * 3600
  const { connection } = await authed(w, `alice@${exp}`)
  const [timer] = [...w.clock.timers.values()]
  t.equal(timer?.at, w.clock.time + 2 ** 31 - 1)
  w.clock.advance(2 ** 31 - 1)
  t.equal(connection.closedWith, undefined)
  t.equal(w.clock.timers.size, 1)
  w.clock.advance(30 * 24 * 3600 * 1000 - (2 ** 31 - 1))
  t.same(connection.closedWith, [4401, 'TOKEN_EXPIRED'])
})

t.test('before auth only ping is answered; anything else ends the socket with 4401', async (t) => {
  const w = world()
  const { session, connection } = w.open()
  await send(session, { type: 'ping', id: 1 })
  t.same(connection.frames.slice(1), [{ type: 'pong', ref: 1 }])
  await send(session, { type: 'subscribe', channel: 'ops', id: 2 })
  t.same(connection.frames.slice(2), [{ type: 'error', code: 'AUTHENTICATION_REQUIRED', message: 'authenticate first', ref: 2 }])
  t.same(connection.closedWith, [4401, 'AUTHENTICATION_REQUIRED'])
  t.same(w.authFailures, ['AUTHENTICATION_REQUIRED'])
})

t.test('an unparseable frame before auth is answered and closes; after auth it is only answered', async (t) => {
  const w = world()
  const pre = w.open()
  pre.session.receive('{nope')
  await pre.session.idle()
  t.equal(pre.connection.frames[1]?.code, 'INVALID_JSON')
  t.same(pre.connection.closedWith, [4401, 'AUTHENTICATION_REQUIRED'])
  const { session, connection } = await authed(w)
  connection.take()
  session.receive('{nope')
  await session.idle()
  t.same(connection.types(), ['error'])
  t.equal(connection.closedWith, undefined)
})

t.test('a binary frame is refused; before auth it also closes with 4401', async (t) => {
  const w = world()
  const pre = w.open()
  pre.session.receiveBinary()
  await pre.session.idle()
  t.same(pre.connection.frames[1], { type: 'error', code: 'INVALID_FRAME', message: 'frames must be JSON text, not binary' })
  t.same(pre.connection.closedWith, [4401, 'AUTHENTICATION_REQUIRED'])
  const { session, connection } = await authed(w)
  connection.take()
  session.receiveBinary()
  await session.idle()
  t.same(connection.types(), ['error'])
  t.equal(connection.closedWith, undefined)
})

t.test('a frame larger than the pre-auth limit closes with 1009; the limit is exact', async (t) => {
  const w = world()
  const padded = (bytes: number): string => { const text = JSON.stringify({ type: 'ping', id: 1 }); return text + ' '.repeat(bytes - text.length) }
  const fits = w.open()
  fits.session.receive(padded(256))
  await fits.session.idle()
  t.equal(fits.connection.closedWith, undefined)
  t.equal(fits.connection.frames[1]?.type, 'pong')
  const big = w.open()
  big.session.receive(padded(257))
  await big.session.idle()
  t.same(big.connection.closedWith, [1009, 'PRE_AUTH_FRAME_TOO_LARGE'])
  t.same(big.connection.frames.length, 1)
  t.same(w.logs, ['warn websocket.preauth.too_large'])
  const { session, connection } = await authed(w)
  session.receive(padded(1000))
  await session.idle()
  t.equal(connection.closedWith, undefined, 'after auth the frame limit is the transport\'s')
})

t.test('frames over the rate are dropped, each request with an id answered with RATE_LIMITED and its ref, and a flood closes with 4029', async (t) => {
  const w = world()
  const opened = w.open({ token: 'alice', limits: { frameRate: 1, frameBurst: 2, frameStrikes: 3 } })
  await opened.session.idle()
  const { session, connection } = opened
  connection.take()
  for (let i = 0; i < 4; i++) session.receive(JSON.stringify({ type: 'ping', id: i }))
  await session.idle()
  t.same(connection.frames, [
    { type: 'error', code: 'RATE_LIMITED', message: 'more than 1 frames per second; frames are being dropped', ref: 2 },
    { type: 'error', code: 'RATE_LIMITED', message: 'more than 1 frames per second; frames are being dropped', ref: 3 },
    { type: 'pong', ref: 0 },
    { type: 'pong', ref: 1 }
  ], 'each refusal is answered at once with its ref; the admitted frames in order')
  t.same(w.rateLimited, ['frames acme', 'frames acme'])
  t.equal(connection.closedWith, undefined, 'two strikes are not three')
  w.clock.advance(2000)
  connection.take()
  session.receive(JSON.stringify({ type: 'ping', id: 'again' }))
  await session.idle()
  t.same(connection.frames, [{ type: 'pong', ref: 'again' }], 'tokens came back')
  connection.take()
  for (let i = 0; i < 3; i++) session.receiveBinary()
  await session.idle()
  t.same(connection.frames.map((f) => f.code), ['RATE_LIMITED', 'INVALID_FRAME'], 'one admitted, then a fresh run of strikes is answered once')
  t.equal(connection.closedWith, undefined, 'the admitted frame reset the strikes: two, not four')
  session.receiveBinary()
  t.same(connection.closedWith, [4029, 'RATE_LIMITED'])
  t.same(w.logs.slice(-2), ['warn websocket.rate_limited', 'info websocket.connection.disconnected'])
  session.receiveBinary()
  await session.idle()
  t.equal(connection.frames.length, 2, 'a closed session handles nothing')
  t.equal(w.rateLimited.length, 5, 'and counts nothing')
})

t.test('the per-user and per-tenant caps close the next socket with 4029, and 0 means no cap', async (t) => {
  const w = world()
  const first = w.open({ token: 'alice', limits: { connectionsPerUser: 1 } })
  await first.session.idle()
  const second = w.open({ token: 'alice', limits: { connectionsPerUser: 1 } })
  await second.session.idle()
  t.same(second.connection.closedWith, [4029, 'USER_CONNECTION_LIMIT'])
  t.same(w.rateLimited, ['connections acme'])
  const bob = w.open({ token: 'bob', limits: { connectionsPerUser: 1, connectionsPerTenant: 2 } })
  await bob.session.idle()
  t.equal(bob.connection.closedWith, undefined, 'bob is under both caps')
  const third = w.open({ token: 'pub', limits: { connectionsPerTenant: 2 } })
  await third.session.idle()
  t.same(third.connection.closedWith, [4029, 'TENANT_CONNECTION_LIMIT'])
  const other = w.open({ token: 'carol', limits: { connectionsPerTenant: 1 } })
  await other.session.idle()
  t.equal(other.connection.closedWith, undefined, 'caps are per tenant')
  const free = w.open({ token: 'alice', limits: { connectionsPerUser: 0, connectionsPerTenant: 0 } })
  await free.session.idle()
  t.equal(free.connection.closedWith, undefined)
  t.equal(w.hub.userConnectionCount('acme', 'alice'), 2)
})

t.test('when presence fails the caps fall back to this instance\'s count and auth still succeeds', async (t) => {
  const w = world()
  w.presenceDown = true
  const first = w.open({ token: 'alice', limits: { connectionsPerUser: 1, connectionsPerTenant: 5 } })
  await first.session.idle()
  t.equal(first.connection.frames[1]?.connectionCount, 1)
  const second = w.open({ token: 'alice', limits: { connectionsPerUser: 1 } })
  await second.session.idle()
  t.same(second.connection.closedWith, [4029, 'USER_CONNECTION_LIMIT'])
  const third = w.open({ token: 'bob', limits: { connectionsPerTenant: 1 } })
  await third.session.idle()
  t.same(third.connection.closedWith, [4029, 'TENANT_CONNECTION_LIMIT'])
})

t.test('a socket that closes while its token is verified never enters the hub', async (t) => {
  const w = world()
  const { session, connection } = w.open({ token: 'alice' })
  session.ended()
  await session.idle()
  t.equal(w.hub.size(), 0)
  t.same(connection.types(), ['connected'])
  const refused = w.open()
  refused.session.receive(JSON.stringify({ type: 'authenticate', token: 'nobody' }))
  refused.session.ended()
  await refused.session.idle()
  t.equal(refused.connection.closedWith, undefined, 'a verdict after the close sends nothing')
  const down = w.open()
  down.session.receive(JSON.stringify({ type: 'authenticate', token: 'down' }))
  down.session.ended()
  await down.session.idle()
  t.equal(down.connection.closedWith, undefined)
})

t.test('ending a session removes it everywhere, unwatches, tells channel members and logs once', async (t) => {
  const w = world()
  const a = await authed(w)
  const b = await authed(w, 'bob')
  await send(a.session, { type: 'subscribe', channel: 'ops', id: 1 })
  await send(b.session, { type: 'subscribe', channel: 'ops', id: 1 })
  b.connection.take()
  a.session.close(1001, 'GOING_AWAY')
  a.session.close(1000, 'AGAIN')
  a.session.ended()
  t.same(a.connection.closedWith, [1001, 'GOING_AWAY'])
  await new Promise((resolve) => { queueMicrotask(() => { resolve(undefined) }) })
  t.same(b.connection.frames, [{ type: 'user-left', channel: 'ops', userId: 'alice', clientId: 'c1' }])
  t.equal(w.hub.channelConnectionCount('acme', 'ops'), 1)
  t.equal(w.hub.userConnectionCount('acme', 'alice'), 0)
  t.equal(w.logs.filter((l) => l === 'info websocket.connection.disconnected').length, 1)
  await w.post({ event: 'x', data: {}, target: { kind: 'channel', channel: 'ops' } })
  t.equal(a.connection.frames.filter((f) => f.type === 'event').length, 0)
  const pending = w.open()
  pending.session.ended()
  t.equal(w.logs.filter((l) => l === 'info websocket.connection.disconnected').length, 1, 'a socket that never authenticated logs no disconnect')
  t.equal(w.clock.timers.size, 0, 'and its auth timer is cleared')
})

t.test('subscribe answers with the position, announces the member, and delivers channel events', async (t) => {
  const w = world()
  const a = await authed(w)
  const b = await authed(w, 'bob')
  await send(a.session, { type: 'subscribe', channel: 'ops', id: 1 })
  a.connection.take()
  await send(b.session, { type: 'join-room', roomId: 'ops', id: 2 })
  t.same(b.connection.frames.slice(2), [{ type: 'room-joined', roomId: 'ops', position: { epoch: w.broker.epoch, offset: 0 }, ref: 2 }])
  t.same(a.connection.frames, [{ type: 'user-joined', channel: 'ops', userId: 'bob', clientId: 'c2' }])
  await send(b.session, { type: 'join-room', roomId: 'ops', id: 3 })
  t.same(b.connection.frames.slice(3), [{ type: 'room-joined', roomId: 'ops', ref: 3 }], 'joining twice answers without a position')
  await w.post({ event: 'note', data: { k: 1 }, target: { kind: 'channel', channel: 'ops' } })
  t.equal(b.connection.frames[4]?.type, 'event')
  t.equal(b.connection.frames[4]?.stream, 'channel:ops')
})

t.test('subscribe refuses a bad name, a forbidden channel, the channel limit, and a bad since', async (t) => {
  const w = world()
  const opened = w.open({ token: 'limited', maxChannels: 1 })
  await opened.session.idle()
  const { session, connection } = opened
  connection.take()
  await send(session, { type: 'subscribe', channel: '-bad', id: 1 })
  await send(session, { type: 'subscribe', channel: 'other', id: 2 })
  await send(session, { type: 'subscribe', channel: 'ops', id: 3, since: 'nope' })
  await send(session, { type: 'subscribe', channel: 'ops', id: 4 })
  t.same(connection.frames.map((f) => [f.code ?? f.type, f.ref]), [['INVALID_CHANNEL', 1], ['CHANNEL_FORBIDDEN', 2], ['INVALID_POSITION', 3], ['subscribed', 4]])
  const other = w.open({ token: 'alice', maxChannels: 1 })
  await other.session.idle()
  await send(other.session, { type: 'subscribe', channel: 'a', id: 1 })
  other.connection.take()
  await send(other.session, { type: 'subscribe', channel: 'b', id: 2 })
  t.same(other.connection.frames, [{ type: 'error', code: 'CHANNEL_LIMIT', message: 'a connection may join at most 1 channels', channel: 'b', ref: 2 }], 'the refusal names its channel')
  await send(other.session, { type: 'subscribe', channel: 'a', id: 3 })
  t.equal(other.connection.frames[1]?.type, 'subscribed', 'a channel already joined is not over the limit')
})

t.test('unsubscribe and leave-room answer, stop delivery and announce; not joined is NOT_SUBSCRIBED', async (t) => {
  const w = world()
  const a = await authed(w)
  const b = await authed(w, 'bob')
  await send(a.session, { type: 'subscribe', channel: 'ops', id: 1 })
  await send(a.session, { type: 'join-room', roomId: 'lobby', id: 2 })
  await send(b.session, { type: 'subscribe', channel: 'ops', id: 1 })
  a.connection.take()
  b.connection.take()
  await send(a.session, { type: 'unsubscribe', channel: 'ops', id: 3 })
  await send(a.session, { type: 'leave-room', roomId: 'lobby', id: 4 })
  await send(a.session, { type: 'unsubscribe', channel: 'ops', id: 5 })
  t.same(a.connection.frames, [
    { type: 'unsubscribed', channel: 'ops', ref: 3 },
    { type: 'room-left', roomId: 'lobby', ref: 4 },
    { type: 'error', code: 'NOT_SUBSCRIBED', message: 'not subscribed to this channel', ref: 5 }
  ])
  t.same(b.connection.frames, [{ type: 'user-left', channel: 'ops', userId: 'alice', clientId: 'c1' }])
  await w.post({ event: 'x', data: {}, target: { kind: 'channel', channel: 'ops' } })
  t.equal(a.connection.frames.length, 3, 'no event after unsubscribe')
  a.connection.take()
  await send(a.session, { type: 'subscribe', channel: 'ops', id: 6, since: `${w.broker.epoch}:0` })
  t.same(a.connection.types(), ['subscribed', 'event', 'recovered'], 'a rejoin with since replays from there')
})

t.test('resume replays what was missed, in order, exactly once, with the live events held meanwhile', async (t) => {
  const w = world()
  for (let i = 1; i <= 3; i++) await w.post({ event: 'alarm:created', data: { i }, target: { kind: 'tenant' } })
  await w.post({ event: 'secret', data: {}, target: { kind: 'user', userId: 'bob' } })
  await w.post({ event: 'mine', data: {}, target: { kind: 'user', userId: 'alice' } })
  await w.post({ event: 'chan', data: {}, target: { kind: 'channel', channel: 'ops' } })
  const { session, connection } = await authed(w)
  connection.take()
  w.duringRead = async () => { await w.post({ event: 'live', data: {}, target: { kind: 'tenant' } }) }
  await send(session, { type: 'resume', since: `${w.broker.epoch}:1`, id: 'r' })
  w.duringRead = undefined
  await w.post({ event: 'after', data: {}, target: { kind: 'tenant' } })
  t.same(connection.frames.map((f) => f.type === 'event' ? `${String(f.event)}@${String(f.stream)}:${String(f.offset)}` : f.type), [
    'alarm:created@tenant:2', 'alarm:created@tenant:3', 'live@tenant:4', 'recovered', 'after@tenant:5'
  ], 'the tenant stream holds only tenant-wide events: user and channel events have streams of their own')
  t.same(connection.frames[3], { type: 'recovered', recovered: true, stream: 'tenant', epoch: w.broker.epoch, from: 2, to: 4, count: 3, ref: 'r' })
  connection.take()
  await send(session, { type: 'resume', stream: 'user:alice', since: `${w.broker.epoch}:0`, id: 'u' })
  t.same(connection.frames.map((f) => f.type === 'event' ? `${String(f.event)}@${String(f.stream)}:${String(f.offset)}` : f.type), ['mine@user:alice:1', 'recovered'])
  t.match(connection.frames[1], { stream: 'user:alice', recovered: true, from: 1, to: 1, count: 1, ref: 'u' })
})

t.test('resume on a live connection re-sends every held event after since, even ones already sent, and live ones once', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  for (let i = 1; i <= 3; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  connection.take()
  await send(session, { type: 'resume', stream: 'tenant', since: `${w.broker.epoch}:1`, id: 'heal' })
  await w.post({ event: 'e', data: { i: 4 }, target: { kind: 'tenant' } })
  t.same(connection.frames.map((f) => f.type === 'event' ? f.offset : f.type), [2, 3, 'recovered', 4])
})

t.test('resume refuses another user\'s stream, a channel not joined and a stream that does not exist, each with its code', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'resume', stream: 'user:bob', since: `${w.broker.epoch}:0`, id: 1 })
  await send(session, { type: 'resume', stream: 'channel:ops', since: `${w.broker.epoch}:0`, id: 2 })
  await send(session, { type: 'resume', stream: 'connection', since: `${w.broker.epoch}:0`, id: 3 })
  t.same(connection.frames.map((f) => [f.type, f.code, f.ref]), [
    ['error', 'STREAM_FORBIDDEN', 1], ['error', 'NOT_SUBSCRIBED', 2], ['error', 'UNKNOWN_STREAM', 3]
  ])
})

t.test('a since at the latest offset recovers nothing; one from another epoch or too old is reported unrecoverable', async (t) => {
  const w = world()
  await w.post({ event: 'a', data: {}, target: { kind: 'tenant' } })
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'resume', since: `${w.broker.epoch}:1`, id: 1 })
  t.same(connection.frames, [{ type: 'recovered', recovered: true, stream: 'tenant', epoch: w.broker.epoch, from: 2, to: 1, count: 0, ref: 1 }])
  connection.take()
  await send(session, { type: 'resume', since: 'old-epoch:1', id: 2 })
  t.same(connection.frames, [{ type: 'recovered', recovered: false, stream: 'tenant', epoch: w.broker.epoch, oldest: { epoch: w.broker.epoch, offset: 1 }, latest: { epoch: w.broker.epoch, offset: 1 }, ref: 2 }])
  connection.take()
  await send(session, { type: 'resume', since: `${w.broker.epoch}:5`, id: 3 })
  t.equal(connection.frames[0]?.recovered, false, 'a position past the latest is not recoverable')
  connection.take()
  await send(session, { type: 'resume', since: 'bad', id: 4 })
  t.same(connection.frames, [{ type: 'error', code: 'INVALID_POSITION', message: 'since must be <epoch>:<offset>', ref: 4 }])
})

t.test('a since just inside the history replays all of it; one event older is unrecoverable', async (t) => {
  const w = world(2)
  for (let i = 1; i <= 4; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  const edge = await authed(w, 'alice', `${w.broker.epoch}:2`)
  t.same(edge.connection.types(), ['connected', 'authenticated', 'event', 'event', 'recovered'])
  t.match(edge.connection.frames[4], { recovered: true, from: 3, to: 4, count: 2 })
  const old = await authed(w, 'alice', `${w.broker.epoch}:1`)
  t.same(old.connection.frames[2], { type: 'recovered', recovered: false, stream: 'tenant', epoch: w.broker.epoch, oldest: { epoch: w.broker.epoch, offset: 3 }, latest: { epoch: w.broker.epoch, offset: 4 } })
  t.equal(old.connection.frames.length, 3)
  const all = await authed(w, 'alice', `${w.broker.epoch}:0`)
  t.equal(all.connection.frames[2]?.recovered, false)
})

t.test('a replay bounded by the replay limit stops at what it read', async (t) => {
  const w = world()
  for (let i = 1; i <= 5; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  const opened = w.open({ token: 'alice', since: `${w.broker.epoch}:0`, replayLimit: 2 })
  await opened.session.idle()
  const recovered = opened.connection.frames.find((f) => f.type === 'recovered')
  t.equal(opened.connection.frames.filter((f) => f.type === 'event').length, 2)
  t.equal(recovered?.to, 2)
  t.equal(recovered?.count, 2)
})

t.test('a replay waits for the socket to drain every replayPaceBytes', async (t) => {
  const w = world()
  for (let i = 1; i <= 4; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  const opened = w.open({ token: 'alice', since: `${w.broker.epoch}:0`, replayPaceBytes: 1 })
  await opened.session.idle()
  t.equal(opened.connection.drains, 4)
  t.equal(opened.connection.frames.filter((f) => f.type === 'event').length, 4)
  const unpaced = w.open({ token: 'alice', since: `${w.broker.epoch}:0` })
  await unpaced.session.idle()
  t.equal(unpaced.connection.drains, 0)
})

t.test('a socket closed during a paced replay sends nothing more', async (t) => {
  const w = world()
  for (let i = 1; i <= 4; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  const opened = w.open({ token: 'alice', since: `${w.broker.epoch}:0`, replayPaceBytes: 1 })
  opened.connection.drained = async () => { opened.session.ended() }
  await opened.session.idle()
  t.equal(opened.connection.frames.filter((f) => f.type === 'event').length, 1)
  t.notOk(opened.connection.types().includes('recovered'))
})

t.test('live events past the held limit during a replay drop the socket as a slow consumer', async (t) => {
  const w = world()
  for (let i = 1; i <= 2; i++) await w.post({ event: 'e', data: { i }, target: { kind: 'tenant' } })
  const opened = w.open({ token: 'alice', since: `${w.broker.epoch}:0`, replayPaceBytes: 1 })
  let posted = false
  opened.connection.drained = async () => {
    if (posted) return
    posted = true
    for (let i = 0; i < 4; i++) await w.post({ event: 'live', data: { i }, target: { kind: 'tenant' } })
  }
  await opened.session.idle()
  t.same(opened.connection.closedWith, [4008, 'SLOW_CONSUMER'])
  t.equal(w.hub.size(), 0)
})

t.test('a history read that fails closes with 1013 BROKER_UNAVAILABLE', async (t) => {
  const w = world()
  w.failRead = true
  const { connection } = await authed(w)
  t.same(connection.closedWith, [1013, 'BROKER_UNAVAILABLE'])
  t.same(w.logs, ['error websocket.resume.failed', 'info websocket.connection.disconnected'])
  t.same(connection.types(), ['connected'])
  t.equal(w.hub.size(), 0)
})

t.test('client publishing: off by default, allowed channels only, joined first, names checked', async (t) => {
  const w = world()
  const off = await authed(w)
  await send(off.session, { type: 'subscribe', channel: 'ops', id: 1 })
  off.connection.take()
  await send(off.session, { type: 'publish', channel: 'ops', event: 'note', data: {}, id: 2 })
  t.same(off.connection.frames, [{ type: 'error', code: 'PUBLISH_DISABLED', message: 'client publishing is not enabled for this channel', ref: 2 }])
  const opened = w.open({ token: 'alice', clientPublish: ['room-*'] })
  await opened.session.idle()
  const { session, connection } = opened
  await send(session, { type: 'subscribe', channel: 'room-1', id: 0 })
  connection.take()
  await send(session, { type: 'publish', channel: 'room-2', event: 'note', data: {}, id: 1 })
  await send(session, { type: 'publish', channel: 'room-1', event: 'disconnect', data: {}, id: 2 })
  await send(session, { type: 'publish', channel: 'room-1', event: 'alarm:cleared', data: {}, id: 3 })
  await send(session, { type: 'publish', channel: 'ops', event: 'note', data: {}, id: 4 })
  t.same(connection.frames.map((f) => [f.code, f.ref]), [['NOT_SUBSCRIBED', 1], ['EVENT_NAME_RESERVED', 2], ['EVENT_FORBIDDEN', 3], ['PUBLISH_DISABLED', 4]])
  t.same(w.published, [])
  connection.take()
  await send(session, { type: 'publish', channel: 'room-1', event: 'note', data: { x: 1 }, id: 5 })
  t.same(w.published, [{ tenantId: 'acme', event: 'note', data: { x: 1 }, target: { kind: 'channel', channel: 'room-1' }, from: { clientId: 'c2', userId: 'alice' } }])
  t.same(connection.frames.map((f) => f.type), ['event', 'published'])
  t.same(connection.frames[1], { type: 'published', id: connection.frames[0]?.id, stream: 'channel:room-1', offset: 1, epoch: w.broker.epoch, ref: 5 })
})

t.test('a publisher may publish server event names; the room message alias needs a roomId', async (t) => {
  const w = world()
  const opened = w.open({ token: 'pub', clientPublish: ['*'] })
  await opened.session.idle()
  const { session, connection } = opened
  await send(session, { type: 'join-room', roomId: 'r', id: 0 })
  connection.take()
  await send(session, { type: 'publish', channel: 'r', event: 'alarm:cleared', data: {}, id: 1 })
  t.same(w.published.map((p) => p.event), ['alarm:cleared'])
  connection.take()
  await send(session, { type: 'message', message: 'hi', id: 2 })
  t.same(connection.frames, [{ type: 'error', code: 'INVALID_MESSAGE', message: 'a message needs a roomId: clients publish to rooms they joined, not to the whole tenant', ref: 2 }])
  await send(session, { type: 'message', roomId: 'r', message: 'hi', id: 3 })
  t.same(w.published[1], { tenantId: 'acme', event: 'message', data: { message: 'hi', roomId: 'r' }, target: { kind: 'channel', channel: 'r' }, from: { clientId: 'c1', userId: 'pub' } })
})

t.test('a client publish while the tenant\'s queued fan-out is past its cap answers TENANT_BACKLOGGED, behind the queued event, and publishes nothing', async (t) => {
  const rounds = new ManualRounds()
  const w = world(100, { fanoutSlice: 1, defer: rounds.defer })
  const opened = w.open({ token: 'alice', clientPublish: ['*'], limits: { queuedWrites: 2 } })
  const others = [w.open({ token: 'bob' }), w.open({ token: 'pub' })]
  await opened.session.idle()
  for (const o of others) await o.session.idle()
  const { session, connection } = opened
  await send(session, { type: 'subscribe', channel: 'r', id: 0 })
  connection.take()
  await w.post({ event: 'alarm:created', data: {}, target: { kind: 'tenant' } })
  t.equal(w.hub.backlog('acme'), 3, 'one event for 3 sockets, one write per round: 3 writes queued')
  await send(session, { type: 'publish', channel: 'r', event: 'note', data: {}, id: 1 })
  t.same(w.published, [], 'nothing was published')
  t.same(w.rateLimited, ['backlog acme'])
  rounds.drain()
  t.same(connection.frames.map((f) => [f.type, f.code]), [['event', undefined], ['error', 'TENANT_BACKLOGGED']], 'the refusal came after the event queued before it')
  t.equal(connection.frames[1]?.ref, 1)
  t.equal(w.hub.backlog('acme'), 0)
  await send(session, { type: 'publish', channel: 'r', event: 'note', data: {}, id: 2 })
  t.equal(w.published.length, 1, 'with the backlog written, the next publish goes through')
})

t.test('a failed client publish answers BROKER_UNAVAILABLE, or PAYLOAD_TOO_LARGE with its message', async (t) => {
  const w = world()
  const opened = w.open({ token: 'alice', clientPublish: ['*'] })
  await opened.session.idle()
  const { session, connection } = opened
  await send(session, { type: 'subscribe', channel: 'r', id: 0 })
  connection.take()
  w.failPublish = new Error('redis down')
  await send(session, { type: 'publish', channel: 'r', event: 'note', data: {}, id: 1 })
  w.failPublish = Object.assign(new Error('the event is 9 bytes over'), { code: 'PAYLOAD_TOO_LARGE' })
  await send(session, { type: 'publish', channel: 'r', event: 'note', data: {}, id: 2 })
  t.same(connection.frames, [
    { type: 'error', code: 'BROKER_UNAVAILABLE', message: 'the event could not be stored; retry', ref: 1 },
    { type: 'error', code: 'PAYLOAD_TOO_LARGE', message: 'the event is 9 bytes over', ref: 2 }
  ])
  t.equal(connection.closedWith, undefined)
})

t.test('a replayed history shows each socket only what it is entitled to', async (t) => {
  const w = world()
  await w.post({ event: 'all', data: {}, target: { kind: 'tenant' } })
  await w.post({ event: 'bob', data: {}, target: { kind: 'user', userId: 'bob' } })
  await w.post({ event: 'c1', data: {}, target: { kind: 'client', clientId: 'c1' } })
  await w.post({ event: 'c9', data: {}, target: { kind: 'client', clientId: 'c9' } })
  const since = { tenant: `${w.broker.epoch}:0`, 'user:alice': `${w.broker.epoch}:0` }
  const { connection } = await authed(w, 'alice', since)
  t.same(connection.frames.filter((f) => f.type === 'event').map((f) => f.event), ['all'], 'connection-targeted events are never replayed')
  const bob = await authed(w, 'bob', { tenant: `${w.broker.epoch}:0`, 'user:bob': `${w.broker.epoch}:0` })
  t.same(bob.connection.frames.filter((f) => f.type === 'event').map((f) => f.event), ['all', 'bob'])
  const nosy = w.open({ token: 'alice', since: { tenant: `${w.broker.epoch}:0`, 'user:bob': `${w.broker.epoch}:0` } })
  await nosy.session.idle()
  t.match(nosy.connection.frames[1], { type: 'authenticated', userId: 'alice' }, 'a since naming another user\'s stream does not keep the socket out')
  t.same(nosy.connection.frames.filter((f) => f.type === 'event').map((f) => f.event), ['all'], 'and nothing of that stream is sent')
  t.notOk(nosy.connection.frames.some((f) => f.type === 'recovered' && f.stream === 'user:bob'), 'nor any position of it')
})

t.test('replies before auth are counted as sent bytes, and a throwing task is logged, not thrown', async (t) => {
  const w = world()
  const { session, connection } = w.open()
  t.same(w.sentBytes, [Buffer.byteLength(JSON.stringify(connection.frames[0]))])
  connection.send = () => { throw new Error('socket broke') }
  session.receive(JSON.stringify({ type: 'ping' }))
  await session.idle()
  t.same(w.logs, ['error websocket.session.failed'])
  connection.send = FakeConnection.prototype.send
  session.receive(JSON.stringify({ type: 'ping', id: 'next' }))
  await session.idle()
  t.same(connection.frames.slice(-1), [{ type: 'pong', ref: 'next' }], 'the queue goes on after a failed task')
})

t.test('a publish whose data fails the event schema is refused with INVALID_EVENT and not stored', async (t) => {
  const w = world()
  const opened = w.open({ token: 'pub', clientPublish: ['*'] })
  await opened.session.idle()
  const { session, connection } = opened
  await send(session, { type: 'subscribe', channel: 'r', id: 0 })
  connection.take()
  await send(session, { type: 'publish', channel: 'r', event: 'alarm:created', data: { nope: true }, id: 1 })
  t.same(connection.types(), ['error'])
  t.match(connection.frames[0], { code: 'INVALID_EVENT', ref: 1 })
  t.same(w.published, [])
})

t.test('an upgrade token with a malformed since is answered INVALID_POSITION and the socket keeps waiting', async (t) => {
  const w = world()
  const { session, connection } = w.open({ token: 'alice', since: 'garbage' })
  await session.idle()
  t.same(connection.frames.slice(1), [{ type: 'error', code: 'INVALID_POSITION', message: 'since must be <epoch>:<offset>' }])
  t.equal(connection.closedWith, undefined)
  t.equal(w.hub.size(), 0)
  await send(session, { type: 'authenticate', token: 'alice', id: 1 })
  t.equal(connection.frames[2]?.type, 'authenticated', 'a later authenticate still works')
  const waiting = w.open({ token: 'alice', since: 'garbage' })
  await waiting.session.idle()
  w.clock.advance(5000)
  t.same(waiting.connection.closedWith, [4401, 'AUTHENTICATION_REQUIRED'], 'and the wait is bounded')
})

t.test('a socket that closes while its caps are counted, or its history read, never enters the hub', async (t) => {
  const w = world()
  const opened = w.open({ token: 'alice', limits: { connectionsPerUser: 5 } })
  await Promise.resolve()
  await Promise.resolve()
  await Promise.resolve()
  opened.session.ended()
  await opened.session.idle()
  t.equal(w.hub.size(), 0)
  t.same(opened.connection.types(), ['connected'])
  const reading = w.open({ token: 'alice' })
  w.duringRead = async () => { reading.session.ended() }
  await reading.session.idle()
  t.equal(w.hub.size(), 0)
  t.same(reading.connection.types(), ['connected'], 'no authenticated frame after the close')
})

t.test('a client the hub dropped as a slow consumer cannot subscribe any more', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.bufferedAmount = 20_000
  await w.post({ event: 'x', data: {}, target: { kind: 'tenant' } })
  t.same(connection.closedWith, [4008, 'SLOW_CONSUMER'])
  connection.bufferedAmount = 0
  const before = connection.frames.length
  await send(session, { type: 'subscribe', channel: 'ops', id: 1 })
  t.equal(connection.frames.length, before)
  t.equal(w.hub.channelConnectionCount('acme', 'ops'), 0)
})
