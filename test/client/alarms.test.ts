import t from 'tap'
import WebSocket from 'ws'
import { connect, RECEIPT_DELAY_MS, type OpenAlarm, type TenantcastClient, type WebSocketConstructor } from '../../client/index.js'
import { build, get, post, postAlarm, sign, type Gateway } from '../helper.js'
import { authenticatedFrame, eventually, FakeClock, reach, scriptedServer, TcpProxy } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

/** A real `ws` socket that also records the frames the client sends, so a test counts its `received` frames. */
function recording (): { WebSocket: WebSocketConstructor, received: () => string[][] } {
  const sent: string[] = []
  class Recorded extends WebSocket {
    override send (data: any, ...rest: any[]): void {
      sent.push(String(data))
      super.send(data, ...rest)
    }
  }
  const received = (): string[][] => sent.map((text) => JSON.parse(text) as { type: string, ids?: string[] }).filter((frame) => frame.type === 'received').map((frame) => frame.ids as string[])
  return { WebSocket: Recorded as unknown as WebSocketConstructor, received }
}

async function opened (t: Tap, gw: Gateway, claims: Record<string, unknown> = {}, options: Partial<Parameters<typeof connect>[0]> = {}): Promise<TenantcastClient> {
  const client = connect({ url: gw.ws, token: sign(claims), ...options })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  return client
}

/** The users who received an alarm, polled until at least `count` did (about 2 s at most), as the server records them. */
async function receivers (gw: Gateway, id: string, count: number): Promise<string[]> {
  let users: string[] = []
  for (let i = 0; i < 200; i++) {
    users = Object.keys((await get(gw, `/api/v1/alarms/${id}`, sign({ sub: 'viewer' }))).body.receipts as Record<string, string>)
    if (users.length >= count) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return users
}

function summary (alarms: OpenAlarm[]): Array<[string, string, string | undefined]> {
  return alarms.map((a) => [a.alarm.message, a.status, a.acknowledgedBy])
}

async function alarmId (gw: Gateway, body: Record<string, unknown>): Promise<string> {
  const posted = await postAlarm(gw, sign({ sub: 'camera' }), body)
  if (posted.status !== 202) throw new Error(`ingestion answered ${posted.status}`)
  return posted.body.id as string
}

t.test('openAlarms starts from the open-alarms snapshot and follows live alarm:created and alarm:updated, newest first', async (t) => {
  const gw = await build(t)
  const old = await alarmId(gw, { severity: 'critical', message: 'old fire' })
  await alarmId(gw, { severity: 'low', message: 'not ackable' })
  const client = await opened(t, gw, { sub: 'alice' })
  t.ok(await eventually(() => client.openAlarms.length === 1), 'the snapshot arrives')
  t.same(summary(client.openAlarms), [['old fire', 'open', undefined]])
  t.equal(client.openAlarms[0]?.id, old)

  const changes: number[] = []
  client.on('alarms', (alarms) => { changes.push(alarms.length) })
  const seenByHandler: Array<string | undefined> = []
  client.on('alarm:updated', (data) => { seenByHandler.push(client.openAlarms.find((a) => a.id === data.id)?.status ?? 'gone') })
  const fresh = await alarmId(gw, { severity: 'low', requireAck: true, message: 'new flood' })
  await alarmId(gw, { severity: 'high', message: 'also not ackable' })
  t.ok(await eventually(() => client.openAlarms.length === 2))
  t.same(summary(client.openAlarms), [['new flood', 'open', undefined], ['old fire', 'open', undefined]])

  t.equal((await post(gw, `/api/v1/alarms/${old}/ack`, sign({ sub: 'bob' }), { note: 'on it' })).status, 200)
  t.ok(await eventually(() => client.openAlarms[1]?.status === 'acknowledged'))
  t.match(client.openAlarms[1], { id: old, status: 'acknowledged', acknowledgedBy: 'bob', note: 'on it', acknowledgedAt: /^\d{4}-/ })
  t.equal((await post(gw, `/api/v1/alarms/${fresh}/resolve`, sign({ sub: 'bob' }), {})).status, 200)
  t.ok(await eventually(() => client.openAlarms.length === 1))
  t.same(summary(client.openAlarms), [['old fire', 'acknowledged', 'bob']])
  t.same(changes, [2, 2, 1], 'one alarms event per change: created, acknowledged, resolved')
  t.same(seenByHandler, ['acknowledged', 'gone'], 'an alarm:updated handler already sees openAlarms updated')
})

t.test('the client confirms receipt of ackable alarms by itself, in one batched received frame, once per alarm', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const socket = recording()
  const client = await opened(t, gw, { sub: 'alice' }, { timers: clock, heartbeatInterval: 0, WebSocket: socket.WebSocket })
  const seen: string[] = []
  client.on('event', (frame) => { seen.push(frame.event) })
  const ids = [await alarmId(gw, { severity: 'critical', message: 'a' }), await alarmId(gw, { severity: 'critical', message: 'b' })]
  const plain = await alarmId(gw, { severity: 'low', message: 'c' })
  ids.push(await alarmId(gw, { severity: 'medium', requireAck: true, message: 'd' }))
  t.ok(await eventually(() => seen.length === 4))
  t.same(socket.received(), [], 'nothing is sent before the batch is due')
  t.same(clock.pending(), [RECEIPT_DELAY_MS], 'one timer gathers the batch')
  clock.runNext()
  t.same(socket.received(), [ids], 'one frame with every ackable id, in arrival order')
  for (const id of ids) {
    t.same(await receivers(gw, id, 1), ['alice'], `alarm ${id} was received by alice`)
  }
  t.equal((await get(gw, `/api/v1/alarms/${plain}`, sign({ sub: 'viewer' }))).status, 404, 'the plain alarm has no state to receive')

  client.reconnect()
  await reach(client, 'open')
  t.ok(await eventually(() => client.openAlarms.length === 3), 'the snapshot on the new socket lists the three')
  t.same(clock.pending(), [], 'alarms already confirmed are not confirmed again')
  t.equal(socket.received().length, 1)
})

t.test('receipts go out in frames of at most 100 ids: a full batch at once, the rest when the timer fires', async (t) => {
  const gw = await build(t)
  const ids: string[] = []
  for (let i = 0; i < 120; i++) ids.push(await alarmId(gw, { severity: 'critical', message: `m${i}` }))
  const clock = new FakeClock()
  const socket = recording()
  const client = await opened(t, gw, { sub: 'alice' }, { timers: clock, heartbeatInterval: 0, WebSocket: socket.WebSocket })
  t.ok(await eventually(() => client.openAlarms.length === 120), 'three snapshot pages')
  t.same(socket.received().map((batch) => batch.length), [100], 'the first 100 went at once')
  clock.runNext()
  t.same(socket.received().map((batch) => batch.length), [100, 20])
  t.same(socket.received().flat(), [...ids].reverse(), 'every alarm once, in snapshot order (newest first)')
  t.same(await receivers(gw, ids[0] as string, 1), ['alice'], 'the oldest, in the last batch, was recorded')
  t.same(await receivers(gw, ids[119] as string, 1), ['alice'], 'the newest, in the first batch, was recorded')
})

t.test('ack and resolve use the request path: a repeat answers the first ack, other tabs follow, another tenant\'s id rejects ALARM_NOT_FOUND', async (t) => {
  const gw = await build(t)
  const id = await alarmId(gw, { severity: 'critical', message: 'fire' })
  const alice = await opened(t, gw, { sub: 'alice' })
  const bob = await opened(t, gw, { sub: 'bob' })
  const stranger = await opened(t, gw, { tenantId: 't2', sub: 'mallory' })
  t.ok(await eventually(() => alice.openAlarms.length === 1 && bob.openAlarms.length === 1))

  const acked = await alice.ack(id, 'seen')
  t.match(acked, { type: 'acked', alarmId: id, changed: true, alarm: { status: 'acknowledged', acknowledgedBy: 'alice', note: 'seen' } })
  t.same(summary(alice.openAlarms), [['fire', 'acknowledged', 'alice']], 'the reply updates the acting client at once')
  t.ok(await eventually(() => bob.openAlarms[0]?.status === 'acknowledged'), 'the other tab follows alarm:updated')
  t.same(summary(bob.openAlarms), [['fire', 'acknowledged', 'alice']])

  const again = await bob.ack(id)
  t.match(again, { type: 'acked', changed: false, alarm: { acknowledgedBy: 'alice', note: 'seen' } })
  t.match(await stranger.ack(id).catch((err: unknown) => err), { name: 'TenantcastError', code: 'ALARM_NOT_FOUND' })
  t.match(await stranger.resolve(id).catch((err: unknown) => err), { code: 'ALARM_NOT_FOUND' })

  const resolved = await bob.resolve(id, 'false alarm')
  t.match(resolved, { type: 'resolved', changed: true, alarm: { status: 'resolved', resolvedBy: 'bob' } })
  t.same(bob.openAlarms, [])
  t.ok(await eventually(() => alice.openAlarms.length === 0))
  t.match(await alice.resolve(id), { changed: false, alarm: { status: 'resolved', resolvedBy: 'bob' } })
  t.same((await get(gw, `/api/v1/alarms/${id}`, sign({ tenantId: 't2' }))).status, 404)
})

t.test('openAlarms is cleared at authenticated: an alarm resolved while the client was away, past the history window, is gone after it reconnects', async (t) => {
  const gw = await build(t, { HISTORY_SIZE: 10 })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const gone = await alarmId(gw, { severity: 'critical', message: 'gone' })
  const client = connect({ url: proxy.ws, token: sign({ sub: 'alice' }), reconnect: { initialDelay: 5 } })
  t.teardown(() => { client.close() })
  t.ok(await eventually(() => client.openAlarms.length === 1))
  const gaps: string[] = []
  client.on('gap', (gap) => { gaps.push(gap.stream) })
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  t.equal((await post(gw, `/api/v1/alarms/${gone}/resolve`, sign({ sub: 'bob' }), {})).status, 200)
  for (let i = 0; i < 20; i++) await gw.app.realtime.broadcast('t1', 'report:created', { _id: `r${i}`, title: `report ${i}` })
  t.same(client.openAlarms.map((a) => a.id), [gone], 'still listed while away')
  proxy.release()
  await reach(client, 'open')
  t.ok(await eventually(() => gaps.length === 1))
  t.same(gaps, ['tenant'], 'the resolution was not replayed')
  t.same(client.openAlarms, [], 'and the list was cleared, with no snapshot to refill it')
})

/** An event frame as the gateway writes it; without an offset it is unpositioned. */
function eventFrame (event: string, data: Record<string, unknown>, offset?: number): string {
  return JSON.stringify({ type: 'event', id: `e-${event}-${String(offset)}`, event, data, ...(offset === undefined ? {} : { stream: 'tenant', offset, epoch: 'e1' }), timestamp: '2026-12-03T10:00:00.000Z' })
}

function record (id: string, status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, status, alarm: { id, type: 'alarm', message: id, camera: 'Gate', severity: 'critical', timestamp: '2026-12-03T10:00:00.000Z', ackable: true }, createdAt: `2026-12-03T10:00:0${id === 'A' ? 1 : 2}.000Z`, escalations: [], ...extra }
}

t.test('a snapshot read before a live change does not undo it: a resolved alarm stays gone, an acknowledged one stays acknowledged, escalations add up once', async (t) => {
  const server = await scriptedServer(t, (socket) => {
    socket.send(authenticatedFrame())
    socket.send(eventFrame('alarm:created', record('A', 'open').alarm as Record<string, unknown>, 1))
    socket.send(eventFrame('alarm:created', record('B', 'open').alarm as Record<string, unknown>, 2))
    socket.send(eventFrame('alarm:updated', { id: 'A', status: 'acknowledged', by: 'bob', at: '2026-12-03T10:00:09.000Z' }, 3))
    socket.send(eventFrame('alarm:updated', { id: 'B', status: 'resolved', by: 'bob', at: '2026-12-03T10:00:10.000Z' }, 4))
    // Read before the two updates, sent after them.
    socket.send(JSON.stringify({ type: 'open-alarms', alarms: [record('B', 'open'), record('A', 'open')], complete: true }))
    socket.send(eventFrame('alarm:escalated', { id: 'A', level: 1, reason: 'unacknowledged', after: 60, at: '2026-12-03T10:01:01.000Z' }))
    socket.send(eventFrame('alarm:escalated', { id: 'A', level: 1, reason: 'unacknowledged', after: 60, at: '2026-12-03T10:01:01.000Z' }))
    socket.send(eventFrame('alarm:escalated', { id: 'A', level: 2, reason: 'unacknowledged', after: 300, at: '2026-12-03T10:05:01.000Z' }))
    socket.send(JSON.stringify({ type: 'pong' }))
  })
  const client = connect({ url: server.url, token: 'x', heartbeatInterval: 0, reconnect: false })
  t.teardown(() => { client.close() })
  const frames: string[] = []
  client.on('frame', (frame) => { frames.push(frame.type) })
  t.ok(await eventually(() => frames.includes('pong')))
  t.same(client.openAlarms.map((a) => [a.id, a.status, a.acknowledgedBy, a.escalations]), [['A', 'acknowledged', 'bob', [1, 2]]])
})

t.test('receipts gathered while no socket is open go out on the next one', async (t) => {
  const got: Array<{ index: number, ids: string[] }> = []
  const server = await scriptedServer(t, (socket, index) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string, ids?: string[] }
      if (frame.type === 'received') got.push({ index, ids: frame.ids as string[] })
    })
    socket.send(authenticatedFrame())
    if (index > 0) return
    socket.send(eventFrame('alarm:created', record('A', 'open').alarm as Record<string, unknown>, 1))
    socket.close(1011, 'gone')
  })
  const clock = new FakeClock()
  const client = connect({ url: server.url, token: 'x', heartbeatInterval: 0, timers: clock, random: () => 0.99 })
  t.teardown(() => { client.close() })
  await reach(client, 'reconnecting')
  t.same(clock.pending(), [RECEIPT_DELAY_MS, 990], 'the receipt batch, then the backoff')
  clock.runNext()
  t.same(got, [], 'no socket to send it on')
  clock.runNext()
  await reach(client, 'open')
  t.same(clock.pending(), [RECEIPT_DELAY_MS], 'the new socket arms the batch again')
  clock.runNext()
  t.ok(await eventually(() => got.length === 1))
  t.same(got, [{ index: 1, ids: ['A'] }])
})
