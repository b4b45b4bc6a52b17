import t from 'tap'
import { build, connect, drain, events, get, post, postAlarm, sign } from '../helper.js'

t.test('an acknowledgement over REST reaches the whole tenant as a positioned alarm:updated, and a second ack publishes nothing', async (t) => {
  const gw = await build(t)
  const viewer = await connect(gw, { sub: 'viewer' })
  const other = await connect(gw, { tenantId: 't2', sub: 'stranger' })
  const ingested = await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })
  t.equal(ingested.status, 202)
  const created = await viewer.next('event')
  t.match(created, { event: 'alarm:created', offset: 1, data: { id: ingested.body.id, ackable: true } })

  const first = await post(gw, `/api/v1/alarms/${ingested.body.id}/ack`, sign({ sub: 'alice' }), { note: 'on my way' })
  t.equal(first.status, 200)
  t.match(first.body, { changed: true, alarm: { id: ingested.body.id, status: 'acknowledged', acknowledgedBy: 'alice', note: 'on my way' } })
  const updated = await viewer.next('event')
  t.match(updated, { event: 'alarm:updated', stream: 'tenant', offset: 2, data: { id: ingested.body.id, status: 'acknowledged', by: 'alice', note: 'on my way' } })
  t.equal(updated.data.at, first.body.alarm.acknowledgedAt)

  const second = await post(gw, `/api/v1/alarms/${ingested.body.id}/ack`, sign({ sub: 'bob' }), {})
  t.equal(second.status, 200)
  t.match(second.body, { changed: false, alarm: { status: 'acknowledged', acknowledgedBy: 'alice', acknowledgedAt: first.body.alarm.acknowledgedAt } })
  await drain(viewer)
  t.same(events(viewer).map((e) => e.event), ['alarm:created', 'alarm:updated'], 'the second ack published nothing')
  await drain(other)
  t.equal(events(other).length, 0, 'another tenant saw neither the alarm nor its ack')
  viewer.close()
  other.close()
})

t.test('another tenant\'s alarm id answers 404 ALARM_NOT_FOUND, exactly like an id that does not exist', async (t) => {
  const gw = await build(t)
  const ingested = await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })
  for (const action of ['ack', 'resolve']) {
    const foreign = await post(gw, `/api/v1/alarms/${ingested.body.id}/${action}`, sign({ tenantId: 't2', sub: 'mallory' }), {})
    const missing = await post(gw, `/api/v1/alarms/no-such-alarm/${action}`, sign({ tenantId: 't2', sub: 'mallory' }), {})
    t.equal(foreign.status, 404)
    t.equal(foreign.body.code, 'ALARM_NOT_FOUND')
    t.equal(missing.body.code, 'ALARM_NOT_FOUND')
    t.notOk(JSON.stringify(foreign.body).includes('t1'), 'the reply does not name the owning tenant')
  }
  const list = await get(gw, '/api/v1/alarms?status=open', sign({ sub: 'viewer' }))
  t.same(list.body.alarms.map((a: { id: string, status: string }) => [a.id, a.status]), [[ingested.body.id, 'open']], 'the alarm is still open in its own tenant')
  t.same((await get(gw, '/api/v1/alarms', sign({ tenantId: 't2', sub: 'mallory' }))).body.alarms, [], 'and invisible to the other')
})

t.test('the open-alarm list pages newest first, and leaves out acknowledged, resolved and non-ackable alarms', async (t) => {
  const gw = await build(t)
  const camera = sign({ sub: 'camera' })
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    ids.push((await postAlarm(gw, camera, { severity: 'critical', message: `critical ${i}` })).body.id)
  }
  const low = await postAlarm(gw, camera, { severity: 'low', message: 'needs a person anyway', requireAck: true })
  t.equal(low.status, 202)
  ids.push(low.body.id)
  const high = await postAlarm(gw, camera, { severity: 'high', message: 'informational' })
  t.equal((await post(gw, `/api/v1/alarms/${high.body.id}/ack`, camera, {})).status, 404, 'an alarm that is not ackable has no state to acknowledge')
  await post(gw, `/api/v1/alarms/${ids[1] as string}/ack`, sign({ sub: 'alice' }), {})
  await post(gw, `/api/v1/alarms/${ids[2] as string}/resolve`, sign({ sub: 'alice' }), {})

  const seen: string[] = []
  let cursor: string | undefined
  const pages: number[] = []
  do {
    const page = await get(gw, `/api/v1/alarms?status=open&limit=2${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, camera)
    t.equal(page.status, 200)
    pages.push(page.body.alarms.length)
    seen.push(...page.body.alarms.map((a: { id: string }) => a.id))
    cursor = page.body.next
  } while (cursor !== undefined)
  t.same(seen, [ids[5], ids[4], ids[3], ids[0]], 'open ones only, newest first, each once')
  t.ok(pages.every((n) => n <= 2), 'no page is longer than its limit')
  const unresolved = await get(gw, '/api/v1/alarms', camera)
  t.same(unresolved.body.alarms.map((a: { id: string }) => a.id), [ids[5], ids[4], ids[3], ids[1], ids[0]], 'without a status: open and acknowledged')
  t.equal((await get(gw, '/api/v1/alarms?status=expired', camera)).status, 400)
})

t.test('at ALARM_MAX_OPEN with expire-oldest the oldest alarm is expired, announced and logged', async (t) => {
  const gw = await build(t, { ALARM_MAX_OPEN: 2, ALARM_OVERFLOW: 'expire-oldest' })
  const viewer = await connect(gw)
  const camera = sign({ sub: 'camera' })
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await postAlarm(gw, camera, { severity: 'critical' })).body.id)
  const updates = (await viewer.collect('event', 4)).filter((e) => e.event === 'alarm:updated')
  t.same(updates.map((e) => e.data), [{ id: ids[0], status: 'expired', by: 'system', at: updates[0]?.data.at, note: 'OPEN_ALARM_LIMIT' }])
  t.same((await get(gw, '/api/v1/alarms', camera)).body.alarms.map((a: { id: string }) => a.id), [ids[2], ids[1]])
  t.equal(gw.logs.filter((line) => line.includes('"action":"alarm.overflow"') && line.includes('"policy":"expire-oldest"')).length, 1)
  const metrics = await (await fetch(`${gw.http}/metrics`)).text()
  t.match(metrics, /tenantcast_alarm_overflow_total\{policy="expire-oldest"\} 1/)
  t.match(metrics, /tenantcast_alarms_open 2/)
  viewer.close()
})

t.test('at ALARM_MAX_OPEN with reject a new ackable alarm answers 429 OPEN_ALARM_LIMIT and is not delivered', async (t) => {
  const gw = await build(t, { ALARM_MAX_OPEN: 1, ALARM_OVERFLOW: 'reject' })
  const viewer = await connect(gw)
  const camera = sign({ sub: 'camera' })
  t.equal((await postAlarm(gw, camera, { severity: 'critical' })).status, 202)
  const refused = await postAlarm(gw, camera, { severity: 'critical' })
  t.equal(refused.status, 429)
  t.equal(refused.body.code, 'OPEN_ALARM_LIMIT')
  t.equal((await postAlarm(gw, camera, { severity: 'high' })).status, 202, 'alarms that need no person still pass')
  await drain(viewer)
  t.same(events(viewer).map((e) => e.data.severity), ['critical', 'high'])
  t.equal(gw.logs.filter((line) => line.includes('"action":"alarm.overflow"') && line.includes('"policy":"reject"')).length, 1)
  viewer.close()
})
