import { io, type Socket } from 'socket.io-client'
import t from 'tap'
import { build, connect, get, post, postAlarm, sign, type Gateway } from '../helper.js'

type Meta = Record<string, unknown>

/** A real socket.io-client on the websocket transport, closed in teardown; resolves once it joined its tenant. */
async function ioClient (t: { teardown (fn: () => unknown): void }, gw: Gateway, claims: Record<string, unknown>): Promise<Socket> {
  const socket = io(gw.http, { path: '/socket.io/', transports: ['websocket'], reconnection: false, auth: { token: sign(claims) } })
  t.teardown(() => { socket.close() })
  await new Promise((resolve) => { socket.once('join:company', resolve) })
  return socket
}

async function once (socket: Socket, event: string): Promise<[any, Meta]> {
  return await new Promise((resolve) => { socket.once(event, (data: unknown, meta: Meta) => { resolve([data, meta]) }) })
}

/** Emits a request with an ack callback and resolves with what the callback got, or rejects after 5 s. */
async function ask (socket: Socket, event: string, body: Record<string, unknown>): Promise<Record<string, any>> {
  return await socket.timeout(5000).emitWithAck(event, body) as Record<string, any>
}

t.test('a Socket.IO client acks with a callback: acked, then alarm:updated to the tenant; a repeat answers the first ack; another tenant\'s id answers ALARM_NOT_FOUND', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true })
  const operator = await ioClient(t, gw, { tenantId: 'acme', sub: 'olga' })
  const stranger = await ioClient(t, gw, { tenantId: 'globex', sub: 'mallory' })
  const board = await connect(gw, { tenantId: 'acme', sub: 'bob' })
  const created = once(operator, 'alarm:created')
  const id = (await postAlarm(gw, sign({ tenantId: 'acme', sub: 'camera' }), { severity: 'critical', message: 'Fire' })).body.id as string
  const [alarm, createdMeta] = await created
  t.match(alarm, { id, ackable: true, message: 'Fire' })
  t.match(createdMeta, { id, stream: 'tenant', offset: 1 })

  const updated = once(operator, 'alarm:updated')
  const acked = await ask(operator, 'ack', { alarmId: id, note: 'on my way' })
  t.match(acked, { type: 'acked', alarmId: id, changed: true, alarm: { status: 'acknowledged', acknowledgedBy: 'olga', note: 'on my way' } })
  t.match(acked.ref, /^sio:\d+$/, 'the reply carries the id the server gave the request')
  const [update, updateMeta] = await updated
  t.match(update, { id, status: 'acknowledged', by: 'olga', note: 'on my way' })
  t.match(updateMeta, { stream: 'tenant', offset: 2, epoch: /./ })
  await board.next('event')
  t.match(await board.next('event'), { event: 'alarm:updated', offset: 2, data: { id, status: 'acknowledged', by: 'olga' } }, 'WebSocket tabs of the tenant follow')

  const again = await ask(operator, 'ack', { alarmId: id, id: 'mine-1' })
  t.match(again, { type: 'acked', ref: 'mine-1', changed: false, alarm: { acknowledgedBy: 'olga', note: 'on my way' } }, 'the client\'s own id comes back as ref')
  const refused = await ask(stranger, 'ack', { alarmId: id })
  t.match(refused, { type: 'error', code: 'ALARM_NOT_FOUND' })
  const invalid = await ask(operator, 'ack', {})
  t.match(invalid, { type: 'error', code: 'INVALID_MESSAGE' })

  const resolved = await ask(operator, 'resolve', { alarmId: id })
  t.match(resolved, { type: 'resolved', changed: true, alarm: { status: 'resolved', resolvedBy: 'olga' } })
  t.match((await get(gw, `/api/v1/alarms/${id}`, sign({ tenantId: 'acme' }))).body.alarm, { status: 'resolved', acknowledgedBy: 'olga', resolvedBy: 'olga' })
  t.equal((await get(gw, `/api/v1/alarms/${id}`, sign({ tenantId: 'globex' }))).status, 404)
  board.close()
})

t.test('without a callback an ack is still answered, as an acked event, and a REST ack reaches Socket.IO clients as alarm:updated', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true })
  const operator = await ioClient(t, gw, { sub: 'olga' })
  const first = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })).body.id as string
  const second = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'low', requireAck: true })).body.id as string
  const acked = once(operator, 'acked')
  operator.emit('ack', { alarmId: first, id: 7 })
  t.match((await acked)[0], { alarmId: first, changed: true, ref: 7 })
  const updated = once(operator, 'alarm:updated')
  t.equal((await post(gw, `/api/v1/alarms/${second}/ack`, sign({ sub: 'bob' }), {})).status, 200)
  const [update, meta] = await updated
  t.match(update, { id: second, status: 'acknowledged', by: 'bob' })
  t.match(meta, { stream: 'tenant', offset: 4 }, 'alarm:created, alarm:created, alarm:updated (olga), alarm:updated (bob)')
  t.match(await ask(operator, 'ping', {}), { type: 'pong' }, 'any request may take a callback')
})

t.test('a Socket.IO supervisor receives alarm:escalated, and its meta has no stream, offset or epoch', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true, ALARM_ESCALATION: JSON.stringify([{ after: 0.3, role: 'supervisor' }]), ALARM_ESCALATION_POLL_MS: 50 })
  const supervisor = await ioClient(t, gw, { sub: 'sam', roles: ['supervisor'] })
  const viewer = await ioClient(t, gw, { sub: 'vic' })
  const viewerGot: string[] = []
  viewer.onAny((name: string) => { viewerGot.push(name) })
  const escalated = once(supervisor, 'alarm:escalated')
  const id = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical', message: 'nobody acts' })).body.id as string
  const [payload, meta] = await escalated
  t.match(payload, { id, level: 1, reason: 'unacknowledged', role: 'supervisor' })
  t.same(Object.keys(meta).sort(), ['id', 'timestamp'], 'an unpositioned event carries its id and time only')
  const acked = await ask(supervisor, 'ack', { alarmId: id })
  t.match(acked, { changed: true, alarm: { status: 'acknowledged', acknowledgedBy: 'sam', escalations: [1] } })
  await once(viewer, 'alarm:updated')
  t.same(viewerGot, ['alarm:created', 'alarm:updated'], 'a socket without the role gets no escalation')
})

t.test('a connection-targeted event reaches a Socket.IO client without stream: connection or offset: 0', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true })
  const socket = await ioClient(t, gw, { tenantId: 'solo', sub: 'one' })
  // A token refresh with a callback answers `authenticated`, which names this connection.
  const refreshed = await ask(socket, 'authenticate', { token: sign({ tenantId: 'solo', sub: 'one' }) })
  t.match(refreshed, { type: 'authenticated', tenantId: 'solo', userId: 'one', clientId: /./ })
  const notice = once(socket, 'notice')
  await gw.app.realtime.sendToClient('solo', refreshed.clientId as string, 'notice', { text: 'just you' })
  const [data, meta] = await notice
  t.same(data, { text: 'just you' })
  t.same(Object.keys(meta).sort(), ['id', 'timestamp'])
  t.notOk('stream' in meta || 'offset' in meta || 'epoch' in meta)
  const tenantWide = once(socket, 'notice')
  await gw.app.realtime.broadcast('solo', 'notice', { text: 'everyone' })
  t.match((await tenantWide)[1], { stream: 'tenant', offset: 1 }, 'a positioned event keeps its position')
})
