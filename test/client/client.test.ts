import t from 'tap'
import WebSocket from 'ws'
import { connect, TenantcastError, type EventFrame, type TenantcastClient } from '../../client/index.js'
import { build, postAlarm, settled, sign, type Gateway } from '../helper.js'
import { authenticatedFrame, eventually, next, reach, scriptedServer, TcpProxy } from './helpers.js'

/** An SDK client that is closed in teardown. */
function open (t: { teardown (fn: () => unknown): void }, options: Parameters<typeof connect>[0]): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

async function opened (t: { teardown (fn: () => unknown): void }, gw: Gateway, claims: Record<string, unknown> = {}, options: Partial<Parameters<typeof connect>[0]> = {}): Promise<TenantcastClient> {
  const client = open(t, { url: gw.ws, token: sign(claims), ...options })
  await reach(client, 'open')
  return client
}

t.test('the client authenticates by subprotocol and never puts the token in the URL', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const token = sign({ sub: 'alice' })
  const client = open(t, { url: proxy.ws, token })
  const states: string[] = []
  client.on('state', (state) => { states.push(state) })
  const [authenticated] = await next(client, 'authenticated')
  t.match(authenticated, { userId: 'alice', tenantId: 't1', connectionCount: 1 })
  t.same(states, ['open'])
  t.match(client.session, { userId: 'alice', tenantId: 't1', clientId: authenticated.clientId })
  t.equal(proxy.requests.length, 1)
  const head = proxy.requests[0] as string
  t.match(head, /^GET \/api\/v1\/events HTTP\/1\.1\r\n/, 'no query string on the first connect')
  t.notMatch(head.split('\r\n')[0], token, 'the request line does not carry the token')
  t.match(head, new RegExp(`sec-websocket-protocol: tenantcast\\.v1, ?bearer\\.${token.replace(/\./g, '\\.')}`, 'i'))
  t.notOk(gw.logs.some((line) => line.includes(token)), 'no log line carries the token')
})

t.test('events reach handlers by name with typed data, and the generic event handler sees every event', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  const alarms: string[] = []
  const all: EventFrame[] = []
  client.on('alarm:created', (data, frame) => { alarms.push(`${data.severity} ${data.camera}: ${data.message} @${frame.offset}`) })
  client.on('event', (frame) => { all.push(frame) })
  const custom: unknown[] = []
  const offCustom = client.on('door:opened', (data) => { custom.push(data) })
  await postAlarm(gw, sign(), { message: 'Motion', camera: 'Gate', severity: 'critical' })
  await gw.app.realtime.broadcast('t1', 'door:opened', { door: 3 })
  t.ok(await eventually(() => all.length === 2))
  offCustom()
  await gw.app.realtime.broadcast('t1', 'door:opened', { door: 4 })
  t.ok(await eventually(() => all.length === 3))
  t.same(alarms, ['critical Gate: Motion @1'])
  t.same(custom, [{ door: 3 }], 'a removed handler is not called again')
  t.same(all.map((e) => [e.event, e.offset, e.stream]), [['alarm:created', 1, 'tenant'], ['door:opened', 2, 'tenant'], ['door:opened', 3, 'tenant']])
  t.equal(client.position(), `${all[0]?.epoch as string}:3`, 'the tenant position follows the last event')
})

t.test('request resolves with the reply carrying its ref and rejects with the server code of its error', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  t.match(await client.request({ type: 'ping' }), { type: 'pong', ref: /^r\d+$/ })
  const refused = await client.subscribe('not a channel!').catch((err: unknown) => err)
  t.type(refused, TenantcastError)
  t.match(refused, { code: 'INVALID_CHANNEL', ref: /^r\d+$/ })
  t.same(client.channels, [], 'a refused channel is dropped')
  t.match(await client.publish('ops', 'note', { text: 'x' }).catch((err: unknown) => err), { code: 'PUBLISH_DISABLED' })
  t.match(await client.request({ type: 'unsubscribe', channel: 'never-joined' }).catch((err: unknown) => err), { code: 'NOT_SUBSCRIBED' })
})

t.test('a request made before the client is open rejects with NOT_CONNECTED, and close rejects pending ones', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: sign() })
  t.match(await client.request({ type: 'ping' }).catch((err: unknown) => err), { code: 'NOT_CONNECTED' })
  await reach(client, 'open')
  const pending = client.request({ type: 'ping' })
  const subscribing = client.subscribe('late')
  client.close()
  t.match(await pending.catch((err: unknown) => err), { code: 'CONNECTION_CLOSED' })
  t.match(await subscribing.catch((err: unknown) => err), { code: 'CONNECTION_CLOSED' })
  t.equal(client.state, 'closed')
  t.match(await client.subscribe('after').catch((err: unknown) => err), { code: 'NOT_CONNECTED' })
  client.close()
  t.equal(client.state, 'closed', 'closing twice is harmless')
})

t.test('channels: subscribe joins, events arrive with the channel stream, publish round-trips, unsubscribe leaves', async (t) => {
  const gw = await build(t, { CLIENT_PUBLISH: 'chat:*' })
  const alice = await opened(t, gw, { sub: 'alice' })
  const bob = await opened(t, gw, { sub: 'bob' })
  const subscribed = await alice.subscribe('chat:1')
  t.match(subscribed, { type: 'subscribed', channel: 'chat:1', position: { offset: 0 } })
  t.same(await alice.subscribe('chat:1'), subscribed, 'subscribing again resolves with the same reply')
  t.equal(alice.position('channel:chat:1'), `${subscribed.position?.epoch as string}:0`)
  const joined = next(alice, 'presence')
  await bob.subscribe('chat:1')
  t.match((await joined)[0], { type: 'user-joined', channel: 'chat:1', userId: 'bob' })
  const heard = next(alice, 'event')
  const published = await bob.publish('chat:1', 'message', { message: 'hello' })
  t.match(published, { type: 'published', stream: 'channel:chat:1', offset: 1 })
  t.match((await heard)[0], { event: 'message', stream: 'channel:chat:1', offset: 1, data: { message: 'hello' }, from: { userId: 'bob' } })
  const left = next(alice, 'presence')
  await bob.unsubscribe('chat:1')
  t.match((await left)[0], { type: 'user-left', userId: 'bob' })
  t.same(bob.channels, [])
  await bob.unsubscribe('chat:1')
  t.pass('leaving a channel twice is a no-op')
})

t.test('channels given to connect are joined on open', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: sign(), channels: ['ops', 'site-7'] })
  const subscribed: string[] = []
  client.on('frame', (frame) => { if (frame.type === 'subscribed') subscribed.push(frame.channel) })
  await reach(client, 'open')
  t.ok(await eventually(() => subscribed.length === 2))
  t.same(subscribed.sort(), ['ops', 'site-7'])
  const got = next(client, 'event')
  await gw.app.realtime.sendToChannel('t1', 'site-7', 'door:opened', { door: 1 })
  t.match((await got)[0], { stream: 'channel:site-7', data: { door: 1 } })
})

t.test('an unsubscribe before the subscription completes rejects its waiter', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: sign() })
  const early = client.subscribe('ops')
  await client.unsubscribe('ops')
  t.match(await early.catch((err: unknown) => err), { code: 'NOT_SUBSCRIBED' })
  await reach(client, 'open')
  t.same(client.channels, [])
})

t.test('a handler that throws is reported as an error and the other handlers still run', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  const seen: string[] = []
  const errors: TenantcastError[] = []
  client.on('alarm:created', () => { throw new Error('boom') })
  client.on('alarm:created', (data) => { seen.push(data.message) })
  client.on('error', (error) => { errors.push(error) })
  client.on('error', () => { throw new Error('an error handler that throws is ignored') })
  await postAlarm(gw, sign(), { message: 'still delivered' })
  t.ok(await eventually(() => seen.length === 1))
  t.same(seen, ['still delivered'])
  t.equal(errors.length, 1, 'one error for the one throwing handler')
  t.match(errors[0], { code: 'HANDLER_FAILED', message: /"alarm:created" handler threw: boom/ })
})

t.test('close with a code the WebSocket refuses still closes the socket', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  const closed = next(client, 'close')
  client.close(1234, 'not a valid close code')
  t.match((await closed)[0], { code: 1234, willReconnect: false })
  t.equal(await settled(async () => await gw.app.realtime.connectionCount('t1'), 0), 0, 'the server saw the socket go')
})

t.test('an event of a channel the client is not in is delivered but its position is not kept', async (t) => {
  const server = await scriptedServer(t, (socket) => {
    socket.send(authenticatedFrame())
    socket.send(JSON.stringify({ type: 'event', id: 'x', event: 'door:opened', data: { door: 1 }, stream: 'channel:ghost', offset: 4, epoch: 'e1', timestamp: new Date(0).toISOString() }))
  })
  const client = open(t, { url: server.url, token: 'x' })
  const [event] = await next(client, 'event')
  t.match(event, { stream: 'channel:ghost', offset: 4 })
  t.equal(client.position('channel:ghost'), undefined)
})

t.test('an event repeated on a stream, at or below the last offset of the same epoch, reaches the handlers once', async (t) => {
  const frame = (offset: number, epoch = 'e1'): string => JSON.stringify({ type: 'event', id: `id-${epoch}-${offset}`, event: 'door:opened', data: { offset }, stream: 'tenant', offset, epoch, timestamp: new Date(0).toISOString() })
  const server = await scriptedServer(t, (socket) => {
    socket.send(authenticatedFrame())
    // 1, 2, 2 again, 1 again, 3, then a new epoch restarting at 1: only the repeats are dropped.
    for (const text of [frame(1), frame(2), frame(2), frame(1), frame(3), frame(1, 'e2')]) socket.send(text)
    socket.send(JSON.stringify({ type: 'pong', ref: 'end' }))
  })
  const client = open(t, { url: server.url, token: 'x' })
  const seen: string[] = []
  const all: string[] = []
  client.on('door:opened', (_data, f) => { seen.push(`${f.epoch}:${f.offset}`) })
  client.on('event', (f) => { all.push(`${f.epoch}:${f.offset}`) })
  await next(client, 'frame', (f) => f.type === 'pong')
  t.same(seen, ['e1:1', 'e1:2', 'e1:3', 'e2:1'])
  t.same(all, seen, 'the catch-all event handler sees the same')
  t.equal(client.position('tenant'), 'e2:1')
})

t.test('connect validates its options', async (t) => {
  t.throws(() => connect({ url: 'ftp://example.com', token: 'x' }), TypeError)
  t.throws(() => connect({ url: 'ws://127.0.0.1:1/api/v1/events' }), /token or a getToken/)
  t.throws(() => connect({ url: 'ws://127.0.0.1:1/api/v1/events', token: 'x', since: 'nonsense' }), /<epoch>:<offset>/)
  t.throws(() => connect({ url: 'ws://127.0.0.1:1/api/v1/events', token: 'x', since: 'e:' }), /<epoch>:<offset>/)
})

t.test('an http URL is mapped to ws, and the global WebSocket is used where there is one', async (t) => {
  const gw = await build(t)
  const global = globalThis as { WebSocket?: unknown }
  const before = global.WebSocket
  let constructed = 0
  global.WebSocket = class extends WebSocket {
    constructor (url: string, protocols: string[]) {
      super(url, protocols)
      constructed++
    }
  }
  t.teardown(() => { global.WebSocket = before })
  const client = open(t, { url: gw.ws.replace('ws://', 'http://'), token: sign() })
  t.equal(client.url, gw.ws)
  await reach(client, 'open')
  t.equal(constructed, 1)
})

t.test('a frame that is not a JSON object with a type is reported and ignored', async (t) => {
  const server = await scriptedServer(t, (socket) => {
    socket.send('not json')
    socket.send('[1]')
    socket.send(authenticatedFrame())
  })
  const client = open(t, { url: server.url, token: 'x' })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.code) })
  await reach(client, 'open')
  t.same(errors, ['INVALID_SERVER_FRAME', 'INVALID_SERVER_FRAME'])
})

t.test('without an error handler, errors go to console.error', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  const logged: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => { logged.push(args.join(' ')) }
  t.teardown(() => { console.error = original })
  client.on('alarm:created', () => { throw new Error('unhandled') })
  await postAlarm(gw, sign())
  t.ok(await eventually(() => logged.length === 1))
  console.error = original
  t.match(logged, [/^tenantcast: HANDLER_FAILED: /])
})

t.test('an error frame without a pending request is reported as an error event', async (t) => {
  const gw = await build(t)
  const client = await opened(t, gw)
  const errors = next(client, 'error')
  // A request whose reply the client did not ask for: the server answers with an unknown ref.
  ;(client as unknown as { link: { socket: { send (text: string): void } } }).link.socket.send('{"type":"nope","id":"x1"}')
  t.match((await errors)[0], { code: 'UNKNOWN_TYPE', ref: 'x1' })
})

t.test('a channel the server leaves with unsubscribed CHANNEL_FORBIDDEN is dropped, reported and not rejoined on reconnect', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = open(t, { url: proxy.ws, token: sign({ channels: ['site-*'] }), reconnect: { initialDelay: 5 } })
  await reach(client, 'open')
  await client.subscribe('site-1')
  await client.subscribe('site-2')
  const errors: TenantcastError[] = []
  client.on('error', (error) => { errors.push(error) })
  await client.request({ type: 'authenticate', token: sign({ channels: ['site-1'] }) })
  t.same(client.channels, ['site-1'], 'the forbidden channel is forgotten')
  t.equal(client.position('channel:site-2'), undefined, 'and so is its position')
  t.match(errors, [{ code: 'CHANNEL_FORBIDDEN', message: /site-2/ }])
  proxy.cut()
  await reach(client, 'reconnecting')
  await reach(client, 'open')
  t.ok(await eventually(() => proxy.requests.length === 2))
  await client.request({ type: 'ping' })
  t.equal(await settled(async () => await gw.app.realtime.channelConnectionCount('t1', 'site-1'), 1), 1, 'site-1 is rejoined')
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'site-2'), 0, 'site-2 is not')
  t.equal(errors.length, 1, 'no refused rejoin is reported')
})

t.test('handlers see who sent a client-published event in frame.from; server events carry none', async (t) => {
  const gw = await build(t, { CLIENT_PUBLISH: '*' })
  const viewer = await opened(t, gw, { sub: 'viewer' })
  const operator = await opened(t, gw, { sub: 'operator', roles: ['publisher'] })
  await viewer.subscribe('ops')
  await operator.subscribe('ops')
  const seen: Array<[string, string | undefined]> = []
  viewer.on('alarm:created', (data, frame) => { seen.push([data.message, frame.from?.userId]) })
  await postAlarm(gw, sign(), { message: 'from a camera' })
  const alarm = { id: 'a1', type: 'alarm' as const, message: 'from a socket', camera: 'Gate', severity: 'high' as const, timestamp: new Date().toISOString() }
  await operator.publish('ops', 'alarm:created', alarm)
  t.ok(await eventually(() => seen.length === 2))
  t.same(seen, [['from a camera', undefined], ['from a socket', 'operator']])
  const refused = await viewer.publish('ops', 'alarm:created', alarm).catch((err: unknown) => err)
  t.match(refused, { code: 'EVENT_FORBIDDEN' }, 'a viewer cannot forge one')
})
