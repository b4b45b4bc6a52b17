import t from 'tap'
import { build, connect, postAlarm, sign, type Client } from '../helper.js'

t.test('every socket receives exactly its own tenant\'s alarms, in order', async (t) => {
  const gw = await build(t)
  const tenants = ['acme', 'globex', 'initech', 'umbrella', 'hooli']
  const perTenant = 3
  const alarmsPerTenant = 4
  const sockets = new Map<string, Client[]>()
  for (const tenant of tenants) {
    const clients: Client[] = []
    for (let i = 0; i < perTenant; i++) clients.push(await connect(gw, { tenantId: tenant, sub: `user-${i}` }))
    sockets.set(tenant, clients)
  }
  // Interleave tenants so that isolation, not timing, keeps the streams apart.
  for (let n = 1; n <= alarmsPerTenant; n++) {
    for (const tenant of tenants) {
      const reply = await postAlarm(gw, sign({ tenantId: tenant, sub: 'camera' }), { message: `${tenant}#${n}` })
      t.equal(reply.status, 202)
      t.equal(reply.body.offset, n, `${tenant} alarm ${n} has offset ${n} in its tenant stream`)
    }
  }
  for (const [tenant, clients] of sockets) {
    for (const client of clients) {
      const events = await client.collect('event', alarmsPerTenant)
      t.same(events.map((e) => e.data.message), [1, 2, 3, 4].map((n) => `${tenant}#${n}`), `a ${tenant} socket got its alarms in order and nothing else`)
      t.same(events.map((e) => e.offset), [1, 2, 3, 4])
    }
  }
  // One more round trip per socket: anything that leaked would have arrived before the pong.
  for (const clients of sockets.values()) {
    for (const client of clients) {
      client.send({ type: 'ping', id: 'end' })
      await client.next('pong')
      t.equal(client.frames.filter((f) => f.type === 'event').length, alarmsPerTenant)
      client.close()
    }
  }
})

t.test('an ingested alarm is answered 202 with its id and position, and delivered with them', async (t) => {
  const gw = await build(t)
  const client = await connect(gw)
  const reply = await postAlarm(gw, sign({ sub: 'camera-7' }), { severity: 'critical', metadata: { zone: 3 }, type: 'alarm' })
  t.equal(reply.status, 202)
  t.match(reply.body, { id: String, stream: 'tenant', offset: 1, epoch: String })
  const frame = await client.next('event')
  t.match(frame, {
    type: 'event',
    id: reply.body.id,
    event: 'alarm:created',
    stream: 'tenant',
    offset: 1,
    epoch: reply.body.epoch,
    data: { id: reply.body.id, type: 'alarm', message: 'Motion detected', camera: 'Front Door', severity: 'critical', metadata: { zone: 3 } }
  })
  t.ok(!Number.isNaN(Date.parse(frame.data.timestamp)), 'the timestamp defaults to now, as ISO')
  client.close()
})

t.test('an invalid alarm body is refused with 400 VALIDATION_FAILED and no stack', async (t) => {
  const gw = await build(t)
  const token = sign()
  const bodies: Array<[string, Record<string, unknown>]> = [
    ['an unknown severity', { severity: 'apocalyptic' }],
    ['an empty message', { message: '' }],
    ['an oversized camera name', { camera: 'c'.repeat(201) }],
    ['a non-ISO timestamp', { timestamp: 'yesterday' }],
    ['a tenantId in the body', { tenantId: 'someone-else' }]
  ]
  for (const [name, body] of bodies) {
    const reply = await postAlarm(gw, token, body)
    t.equal(reply.status, 400, name)
    t.match(reply.body, { statusCode: 400, code: 'VALIDATION_FAILED', error: 'Bad Request', message: String }, name)
    t.notOk('stack' in reply.body, `${name}: no stack trace`)
  }
})

t.test('a tenantId in the body never redirects an alarm to another tenant', async (t) => {
  const gw = await build(t)
  const victim = await connect(gw, { tenantId: 'victim' })
  const reply = await postAlarm(gw, sign({ tenantId: 'attacker' }), { tenantId: 'victim' })
  t.equal(reply.status, 400)
  victim.send({ type: 'ping', id: 1 })
  await victim.next('pong')
  t.equal(victim.frames.filter((f) => f.type === 'event').length, 0)
  victim.close()
})

t.test('ingestion without a valid token is refused with 401 and the auth reason', async (t) => {
  const gw = await build(t)
  const missing = await fetch(`${gw.http}/api/v1/alarms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(missing.status, 401)
  t.match(await missing.json(), { statusCode: 401, code: 'AUTHENTICATION_REQUIRED' })
  t.match((await postAlarm(gw, sign({ exp: 1 }))).body, { statusCode: 401, code: 'TOKEN_EXPIRED' })
  t.match((await postAlarm(gw, 'x.y.z')).body, { statusCode: 401, code: 'TOKEN_MALFORMED' })
  t.match((await postAlarm(gw, sign({ tenantId: undefined }))).body, { statusCode: 401, code: 'TENANT_MISSING' })
  t.match((await postAlarm(gw, sign({}, { algorithm: 'HS384' }))).body, { statusCode: 401, code: 'TOKEN_ALGORITHM' })
})

t.test('malformed JSON bodies get a 400 with a stable code', async (t) => {
  const gw = await build(t)
  const response = await fetch(`${gw.http}/api/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${sign()}`, 'content-type': 'application/json' },
    body: '{"message":'
  })
  t.equal(response.status, 400)
  t.match(await response.json(), { statusCode: 400, code: String, error: 'Bad Request' })
})
