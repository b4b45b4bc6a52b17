import t from 'tap'
import { build, connect, drain, events, post, sign } from '../helper.js'

const publisher = sign({ sub: 'backend', roles: ['publisher'] })

t.test('an alarm shaped as reference hosts send it (no id, type or timestamp) is delivered with the fields the server owns filled', async (t) => {
  const gw = await build(t, { CLIENT_PUBLISH: '*' })
  const viewer = await connect(gw, { roles: ['publisher'] })
  viewer.send({ type: 'subscribe', channel: 'ops', id: 1 })
  await viewer.next('subscribed')

  const stored = await gw.app.realtime.broadcast('t1', 'alarm:created', { message: 'Motion detected', camera: 'Front Door', severity: 'high' })
  const first = await viewer.next('event')
  t.equal(first.id, stored.id)
  t.same(Object.keys(first.data).sort(), ['camera', 'id', 'message', 'severity', 'timestamp', 'type'])
  t.match(first.data, { id: stored.id, type: 'alarm', message: 'Motion detected', camera: 'Front Door', severity: 'high' })
  t.ok(!Number.isNaN(Date.parse(first.data.timestamp)), 'the server stamped an ISO time')

  const rest = await post(gw, '/api/v1/publish', publisher, { event: 'alarm:created', data: { type: 'alarm', message: 'Line crossed', camera: 'Gate', severity: 'low', timestamp: '2026-01-02T03:04:05.000Z' } })
  t.equal(rest.status, 202)
  t.match((await viewer.next('event')).data, { id: rest.body.id, type: 'alarm', camera: 'Gate', timestamp: '2026-01-02T03:04:05.000Z' }, 'a timestamp the host sent is kept')

  viewer.send({ type: 'publish', channel: 'ops', event: 'alarm:created', data: { message: 'Door forced', camera: 'Back', severity: 'critical' }, id: 2 })
  // The event and the `published` reply may arrive in either order.
  await viewer.next('published')
  await drain(viewer)
  const published = viewer.frames.find((f) => f.type === 'published' && f.ref === 2)
  const event = events(viewer).at(-1)
  t.match(event, { id: published?.id, data: { id: published?.id, type: 'alarm', camera: 'Back' } })

  const own = await gw.app.realtime.broadcast('t1', 'alarm:created', { id: 'inc-42', message: 'Assigned', camera: 'dispatch', severity: 'medium' })
  await drain(viewer)
  t.match(events(viewer).at(-1)?.data, { id: 'inc-42' }, 'an id the host chose is kept')
  t.not(own.id, 'inc-42')
  t.equal(events(viewer).length, 4, 'each publish arrived once')
  viewer.close()
})

t.test('a payload that fails validation names every failing field in one answer', async (t) => {
  const gw = await build(t, { CLIENT_PUBLISH: '*' })
  await t.rejects(gw.app.realtime.broadcast('t1', 'alarm:created', { message: 'x', severity: 'urgent' } as any), {
    code: 'VALIDATION_FAILED',
    message: '/data/camera is required; /data/severity must be one of low, medium, high, critical'
  })

  const rest = await post(gw, '/api/v1/publish', publisher, { event: 'alarm:created', data: { camera: 7, severity: 'urgent', message: 'm' } })
  t.equal(rest.status, 400)
  t.match(rest.body, { code: 'VALIDATION_FAILED', message: /\/data\/camera must be string; \/data\/severity must be one of low, medium, high, critical/ })

  const ingest = await post(gw, '/api/v1/alarms', sign(), { message: '', severity: 'urgent', tenantId: 'other' })
  t.equal(ingest.status, 400)
  for (const part of ['/body/camera is required', '/body/severity must be one of low, medium, high, critical', '/body/tenantId is not allowed', '/body/message must not have fewer than 1 characters']) {
    t.ok(ingest.body.message.includes(part), `the alarm answer names ${part.split(' ')[0]}`)
  }

  const viewer = await connect(gw, { roles: ['publisher'] })
  viewer.send({ type: 'subscribe', channel: 'ops', id: 1 })
  await viewer.next('subscribed')
  viewer.send({ type: 'publish', channel: 'ops', event: 'alarm:created', data: { severity: 'urgent' }, id: 2 })
  t.match(await viewer.next('error'), { code: 'INVALID_EVENT', ref: 2, message: /\/data\/message is required; \/data\/camera is required; \/data\/severity must be one of/ })
  viewer.close()
})
