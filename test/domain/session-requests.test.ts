import t from 'tap'
import { authed, send, world } from './session-world.js'

// More of the session state machine, frame by frame: batch subscribes, what a replay marks,
// a close in the middle of auth, the kill switch, and what each outcome logs.

t.test('subscribe {channels} answers each channel once, in order, under the one ref, and a malformed batch is refused whole', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'subscribe', channels: [{ channel: 'a' }, { channel: '-bad' }, { channel: 'b', since: 'nope' }, { channel: 'c' }], id: 1 })
  t.same(connection.frames.map((f) => [f.type, f.code ?? f.channel, f.ref]), [
    ['subscribed', 'a', 1], ['error', 'INVALID_CHANNEL', 1], ['error', 'INVALID_POSITION', 1], ['subscribed', 'c', 1]
  ])
  t.same(connection.frames.filter((f) => f.type === 'error').map((f) => f.channel), ['-bad', 'b'], 'each refusal names its channel')
  connection.take()
  await send(session, { type: 'subscribe', channel: 'd', channels: [{ channel: 'e' }], id: 2 })
  await send(session, { type: 'subscribe', id: 3 })
  await send(session, { type: 'subscribe', channels: [{ channel: 'e' }], since: `${w.broker.epoch}:0`, id: 4 })
  t.same(connection.frames.map((f) => [f.code, f.ref]), [['INVALID_MESSAGE', 2], ['INVALID_MESSAGE', 3], ['INVALID_MESSAGE', 4]])
  t.equal(w.hub.channelConnectionCount('acme', 'd') + w.hub.channelConnectionCount('acme', 'e'), 0, 'nothing of a refused batch was joined')
})

t.test('a batch subscribe stops at the channel whose read fails: the socket closes with 1013 and the rest is not joined', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  w.failRead = true
  await send(session, { type: 'subscribe', channels: [{ channel: 'a' }, { channel: 'b' }], id: 1 })
  t.same(connection.closedWith, [1013, 'BROKER_UNAVAILABLE'])
  t.same(connection.frames, [])
  t.same(w.watches.filter((c) => c.endsWith(':b')), [], 'b was never asked for')
  t.same(w.logs.filter((l) => l.startsWith('error')), ['error websocket.resume.failed'])
})

t.test('replayed events carry replayed: true, held live events released after them do not', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  await w.post({ event: 'one', data: {}, target: { kind: 'tenant' } })
  connection.take()
  w.duringRead = async () => { await w.post({ event: 'two', data: {}, target: { kind: 'tenant' } }) }
  await send(session, { type: 'resume', stream: 'tenant', since: `${w.broker.epoch}:0`, id: 1 })
  t.same(connection.frames.map((f) => [f.type, f.event, f.replayed]), [
    ['event', 'one', true], ['event', 'two', true], ['recovered', undefined, undefined]
  ], 'the read included two: it is history')
  connection.take()
  w.duringRead = async () => { await w.post({ event: 'three', data: {}, target: { kind: 'tenant' } }) }
  await send(session, { type: 'resume', stream: 'tenant', since: `${w.broker.epoch}:3`, id: 2 })
  t.same(connection.frames.map((f) => [f.type, f.offset, f.replayed]), [['recovered', undefined, undefined]], 'nothing after 3: three is offset 3 and was read')
})

t.test('the broker is asked to watch each stream once per socket, and told to unwatch each when the socket leaves it or ends', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  await send(session, { type: 'subscribe', channel: 'ops', id: 1 })
  await send(session, { type: 'resume', stream: 'tenant', since: `${w.broker.epoch}:0`, id: 2 })
  await send(session, { type: 'resume', stream: 'channel:ops', since: `${w.broker.epoch}:0`, id: 3 })
  t.same(w.watches, ['watch connection', 'watch tenant', 'watch user:alice', 'watch channel:ops'], 'a resume re-reads without watching again')
  await send(session, { type: 'unsubscribe', channel: 'ops', id: 4 })
  await send(session, { type: 'subscribe', channel: 'ops', id: 5 })
  t.same(w.watches.slice(4), ['unwatch channel:ops', 'watch channel:ops'])
  session.ended()
  t.same(w.watches.slice(6).sort(), ['unwatch channel:ops', 'unwatch connection', 'unwatch tenant', 'unwatch user:alice'])
  t.equal(connection.frames.filter((f) => f.type === 'recovered').length, 2)
})

t.test('a socket that closes while its token is being verified gets no verdict, logs nothing and never enters the hub', async (t) => {
  for (const token of ['nobody', 'weird', 'alice']) {
    const w = world()
    const { session, connection } = w.open()
    w.duringVerify = () => { session.ended() }
    await send(session, { type: 'authenticate', token })
    t.equal(connection.closedWith, undefined, `${token}: nothing is closed`)
    t.same(connection.types(), ['connected'], `${token}: nothing is sent`)
    t.same(w.logs, [], `${token}: nothing is logged`)
    t.equal(w.hub.size(), 0)
  }
})

t.test('a revoked token is refused with 4401 TOKEN_REVOKED after the caps, and counted as one auth failure', async (t) => {
  const w = world()
  w.revoked.add('alice')
  const { session, connection } = w.open({ token: 'alice' })
  await session.idle()
  t.same(connection.closedWith, [4401, 'TOKEN_REVOKED'])
  t.same(w.authFailures, ['TOKEN_REVOKED'])
  t.same(w.logs, ['warn websocket.auth.failed'])
  t.equal(w.hub.size(), 0)
  t.same(connection.types(), ['connected'])
})

t.test('a refresh naming the same user in another tenant is IDENTITY_MISMATCH and changes nothing', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'authenticate', token: 'aliceGlobex', id: 1 })
  t.same(connection.frames.map((f) => [f.code, f.ref]), [['IDENTITY_MISMATCH', 1]])
  t.equal(session.principal.tenantId, 'acme')
})

t.test('each way a session ends or is refused logs its one action', async (t) => {
  const cases: Array<[string, (w: ReturnType<typeof world>) => Promise<void>, string[]]> = [
    ['a refused token', async (w) => { await w.open({ token: 'nobody' }).session.idle() }, ['warn websocket.auth.failed']],
    ['unreachable keys', async (w) => { await w.open({ token: 'down' }).session.idle() }, ['warn websocket.auth.unavailable']],
    ['a cap', async (w) => { await authed(w); await w.open({ token: 'alice', limits: { connectionsPerUser: 1 } }).session.idle() }, ['info websocket.connection.established', 'warn websocket.connection.limited']],
    ['an open and close', async (w) => { const { session } = await authed(w); session.ended(); session.ended() }, ['info websocket.connection.established', 'info websocket.connection.disconnected']],
    ['a large frame before auth', async (w) => { const { session } = w.open(); session.receive('x'.repeat(300)); await session.idle() }, ['warn websocket.preauth.too_large']],
    ['a flood', async (w) => {
      const { session } = w.open({ token: 'alice', limits: { frameRate: 1, frameBurst: 1 } })
      await session.idle()
      for (let i = 0; i < 5; i++) session.receive(JSON.stringify({ type: 'ping' }))
      await session.idle()
    }, ['info websocket.connection.established', 'warn websocket.rate_limited', 'info websocket.connection.disconnected']]
  ]
  for (const [what, run, logs] of cases) {
    const w = world()
    await run(w)
    t.same(w.logs, logs, what)
  }
})

t.test('a frame flood before auth is rate limited under no tenant, and answered once per run of refusals', async (t) => {
  const w = world()
  const { session, connection } = w.open({ limits: { frameRate: 1, frameBurst: 1, frameStrikes: 10 } })
  for (let i = 0; i < 4; i++) session.receive(JSON.stringify({ type: 'ping' }))
  await session.idle()
  t.same(w.rateLimited, ['frames ', 'frames ', 'frames '])
  t.same(connection.frames.map((f) => f.code ?? f.type), ['connected', 'RATE_LIMITED', 'pong'], 'the refusal goes out at once; the admitted ping waits its turn')
})

t.test('an event published after the tenant stream was read at auth is released live after authenticated, not replayed, and floors the stream', async (t) => {
  const w = world()
  await w.post({ event: 'before', data: {}, target: { kind: 'tenant' } })
  // The first read is the tenant stream's; the event goes out during the second, the user stream's.
  w.duringRead = async () => { w.duringRead = async () => { await w.post({ event: 'late', data: {}, target: { kind: 'tenant' } }) } }
  const { connection } = await authed(w, 'alice', { tenant: `${w.broker.epoch}:0` })
  t.same(connection.frames.map((f) => [f.type, f.event ?? f.stream, f.replayed]), [
    ['connected', undefined, undefined],
    ['authenticated', undefined, undefined],
    ['event', 'before', true],
    ['recovered', 'tenant', undefined],
    ['event', 'late', undefined]
  ])
  await w.post({ event: 'next', data: {}, target: { kind: 'tenant' } })
  t.same(connection.frames.slice(5).map((f) => [f.event, f.offset]), [['next', 3]], 'live delivery goes on after the released event, once')
})

t.test('a socket that closes during its first history read at auth reads nothing more and logs no failure', async (t) => {
  const w = world()
  const { session, connection } = w.open({ token: 'alice' })
  w.duringRead = async () => { session.ended() }
  await session.idle()
  t.same(w.watches.filter((c) => c.startsWith('watch')), ['watch connection', 'watch tenant'], 'the user stream was never watched')
  t.same(connection.types(), ['connected'])
  t.same(w.logs.filter((l) => l.startsWith('error')), [])
})

t.test('a socket that closes while a subscribe or a resume reads sends nothing more and logs no failure', async (t) => {
  for (const frame of [{ type: 'subscribe', channel: 'ops', id: 1 }, { type: 'resume', stream: 'tenant', since: 'x:0', id: 1 }]) {
    const w = world()
    const { session, connection } = await authed(w)
    connection.take()
    w.duringRead = async () => { session.ended() }
    await send(session, frame)
    t.same(connection.frames, [], `${frame.type}: nothing sent`)
    t.same(w.logs.filter((l) => l.startsWith('error')), [], `${frame.type}: nothing failed`)
  }
})

t.test('a resume with a malformed since gets one INVALID_POSITION answer and nothing else', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  const reads = w.watches.length
  await send(session, { type: 'resume', stream: 'user:bob', since: 'nope', id: 1 })
  t.same(connection.frames.map((f) => [f.code, f.ref]), [['INVALID_POSITION', 1]])
  t.same(w.logs.filter((l) => l.startsWith('error')), [])
  t.equal(w.watches.length, reads)
})

t.test('ack and resolve without an alarm service each answer ALARM_NOT_FOUND with their ref', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.take()
  await send(session, { type: 'ack', alarmId: 'a1', id: 1 })
  await send(session, { type: 'resolve', alarmId: 'a1', id: 2 })
  t.same(connection.frames.map((f) => [f.code, f.ref]), [['ALARM_NOT_FOUND', 1], ['ALARM_NOT_FOUND', 2]])
})

t.test('a reply to an open socket goes through the hub: over the buffer cap it drops the socket as a slow consumer', async (t) => {
  const w = world()
  const { session, connection } = await authed(w)
  connection.bufferedAmount = 20_000
  const sent = w.sentBytes.length
  await send(session, { type: 'ping', id: 1 })
  t.same(connection.closedWith, [4008, 'SLOW_CONSUMER'])
  t.equal(w.sentBytes.length, sent, 'nothing was written')
})
