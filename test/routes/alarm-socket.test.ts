import t from 'tap'
import { build, connect, drain, events, get, post, postAlarm, sign } from '../helper.js'

t.test('an ack over the socket is answered acked, reaches the other tabs as alarm:updated, and a repeat changes nothing', async (t) => {
  const gw = await build(t)
  const alice = await connect(gw, { sub: 'alice' })
  const board = await connect(gw, { sub: 'bob' })
  const id = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })).body.id as string
  await board.next('event')
  alice.send({ type: 'ack', id: 'a1', alarmId: id, note: 'seen' })
  const acked = await alice.next('acked')
  t.match(acked, { ref: 'a1', alarmId: id, changed: true, alarm: { status: 'acknowledged', acknowledgedBy: 'alice', note: 'seen' } })
  const updated = await board.next('event')
  t.match(updated, { event: 'alarm:updated', stream: 'tenant', offset: 2, data: { id, status: 'acknowledged', by: 'alice', note: 'seen' } })

  board.send({ type: 'ack', id: 'a2', alarmId: id })
  t.match(await board.next('acked'), { ref: 'a2', changed: false, alarm: { acknowledgedBy: 'alice' } })
  board.send({ type: 'resolve', id: 'r1', alarmId: id, note: 'false alarm' })
  t.match(await board.next('resolved'), { ref: 'r1', changed: true, alarm: { status: 'resolved', resolvedBy: 'bob', note: 'seen' } })
  await drain(alice)
  t.same(events(alice).map((e) => [e.event, e.data.status]), [['alarm:created', undefined], ['alarm:updated', 'acknowledged'], ['alarm:updated', 'resolved']])
  alice.close()
  board.close()
})

t.test('an ack over the socket for an unknown or another tenant\'s alarm answers ALARM_NOT_FOUND and keeps the socket open', async (t) => {
  const gw = await build(t)
  const id = (await postAlarm(gw, sign({ tenantId: 'acme', sub: 'camera' }), { severity: 'critical' })).body.id as string
  const stranger = await connect(gw, { tenantId: 'globex', sub: 'mallory' })
  stranger.send({ type: 'ack', id: 'x', alarmId: id })
  t.match(await stranger.next('error'), { code: 'ALARM_NOT_FOUND', ref: 'x' })
  stranger.send({ type: 'resolve', id: 'y', alarmId: 'nope' })
  t.match(await stranger.next('error'), { code: 'ALARM_NOT_FOUND', ref: 'y' })
  stranger.send({ type: 'ack', id: 'z' })
  t.match(await stranger.next('error'), { code: 'INVALID_MESSAGE', ref: 'z' })
  await drain(stranger)
  const alarm = await get(gw, `/api/v1/alarms/${id}`, sign({ tenantId: 'acme', sub: 'viewer' }))
  t.equal(alarm.body.alarm.status, 'open')
  stranger.close()
})

t.test('with HISTORY_SIZE=100 an open critical alarm followed by 300 newer events still reaches a newly connected socket', async (t) => {
  const gw = await build(t, { HISTORY_SIZE: 100 })
  const critical = await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical', message: 'Fire in server room' })
  for (let i = 0; i < 300; i++) await gw.app.realtime.broadcast('t1', 'report:created', { _id: `r${i}`, title: `report ${i}` })
  const history = await get(gw, '/api/v1/events/history?limit=100', sign({ sub: 'viewer' }))
  t.notOk(history.body.events.some((e: { id: string }) => e.id === critical.body.id), 'the alarm has left the history window')
  const late = await connect(gw, { sub: 'late-operator' })
  const snapshot = await late.next('open-alarms')
  t.equal(snapshot.complete, true)
  t.same(snapshot.alarms.map((a: { id: string, status: string }) => [a.id, a.status]), [[critical.body.id, 'open']])
  t.equal(snapshot.alarms[0].alarm.message, 'Fire in server room')
  const other = await connect(gw, { tenantId: 't2', sub: 'other' })
  await drain(other)
  t.equal(other.frames.filter((f) => f.type === 'open-alarms').length, 0, 'another tenant is sent none of them, not even an empty page')
  late.close()
  other.close()
})

t.test('the open-alarms snapshot comes in pages, newest first, and leaves out resolved alarms', async (t) => {
  const gw = await build(t)
  const camera = sign({ sub: 'camera' })
  const ids: string[] = []
  for (let i = 0; i < 120; i++) ids.push((await postAlarm(gw, camera, { severity: 'low', requireAck: true, message: `m${i}` })).body.id)
  t.equal((await post(gw, `/api/v1/alarms/${ids[119] as string}/resolve`, camera, {})).status, 200)
  const client = await connect(gw)
  const pages = [await client.next('open-alarms'), await client.next('open-alarms'), await client.next('open-alarms')]
  t.same(pages.map((p) => [p.alarms.length, p.complete]), [[50, false], [50, false], [19, true]])
  t.same(pages.flatMap((p) => p.alarms.map((a: { id: string }) => a.id)), ids.slice(0, 119).reverse())
  client.close()
})

t.test('received records, per user, the first time one of their devices got the alarm', async (t) => {
  const gw = await build(t)
  const id = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })).body.id as string
  const phone = await connect(gw, { sub: 'alice' })
  const laptop = await connect(gw, { sub: 'alice' })
  const bob = await connect(gw, { sub: 'bob' })
  phone.send({ type: 'received', ids: [id, 'not-an-alarm'] })
  await drain(phone)
  const first = (await get(gw, `/api/v1/alarms/${id}`, sign({ sub: 'viewer' }))).body.receipts
  t.same(Object.keys(first), ['alice'])
  laptop.send({ type: 'received', ids: [id] })
  bob.send({ type: 'received', ids: [id, id] })
  await drain(laptop)
  await drain(bob)
  const receipts = (await get(gw, `/api/v1/alarms/${id}`, sign({ sub: 'viewer' }))).body.receipts
  t.same(Object.keys(receipts).sort(), ['alice', 'bob'])
  t.equal(receipts.alice, first.alice, 'a second device of the same user does not move the first receipt')
  t.equal((await get(gw, `/api/v1/alarms/${id}`, sign({ tenantId: 't2', sub: 'x' }))).status, 404)
  for (const c of [phone, laptop, bob]) c.close()
})
