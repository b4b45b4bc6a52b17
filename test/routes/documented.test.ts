import t from 'tap'
import { brokerConfig, brokers, build, Client, connect, drain, events, freePort, get, post, postAlarm, sign } from '../helper.js'

const publisher = sign({ sub: 'backend', roles: ['publisher'] })
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

for (const { name: broker, skip } of brokers) {
  t.test(`with the ${broker} broker, an event older than HISTORY_TTL is no longer replayed or served as history`, { skip }, async (t) => {
    const gw = await build(t, { ...await brokerConfig(t, broker), HISTORY_TTL: 1 })
    const first = await postAlarm(gw, sign())
    t.equal(first.status, 202)
    const early = await get(gw, '/api/v1/events/history', sign())
    t.same(early.body.events.map((e: any) => e.id), [first.body.id], 'held while young')
    await sleep(2100)
    const second = await postAlarm(gw, sign())
    const late = await get(gw, '/api/v1/events/history', sign())
    t.same(late.body.events.map((e: any) => e.id), [second.body.id], 'the expired event is gone, the new one is held')
    const resumed = new Client(`${gw.ws}?token=${sign()}&since=${first.body.epoch as string}:0`)
    const recovered = await resumed.next('recovered')
    t.match(recovered, { recovered: false }, 'a resume from before the expired event is told it missed something')
    resumed.close()
  })
}

t.test('an Idempotency-Key is forgotten after IDEMPOTENCY_TTL: the same key then publishes anew', async (t) => {
  const gw = await build(t, { IDEMPOTENCY_TTL: 1 })
  const body = { message: 'Door', camera: 'Gate', severity: 'low' }
  const first = await post(gw, '/api/v1/alarms', sign(), body, { 'idempotency-key': 'k-1' })
  const replay = await post(gw, '/api/v1/alarms', sign(), body, { 'idempotency-key': 'k-1' })
  t.equal(replay.body.id, first.body.id)
  t.equal(replay.headers.get('idempotent-replayed'), 'true')
  await sleep(1200)
  const after = await post(gw, '/api/v1/alarms', sign(), body, { 'idempotency-key': 'k-1' })
  t.equal(after.status, 202)
  t.not(after.body.id, first.body.id, 'a new event')
  t.equal(after.body.offset, first.body.offset + 1)
  t.equal(after.headers.get('idempotent-replayed'), null)
})

t.test('with WS_COALESCE=false every frame is still delivered once and in order', async (t) => {
  const gw = await build(t, { WS_COALESCE: false })
  const sockets = [await connect(gw), await connect(gw)]
  // Published in one turn: coalescing would batch them; without it each is its own write.
  const stored = await Promise.all(Array.from({ length: 20 }, async (_, n) => await gw.app.realtime.broadcast('t1', 'tick', { n })))
  for (const socket of sockets) {
    await drain(socket)
    t.same(events(socket).map((e) => e.offset), stored.map((s) => s.offset).sort((a, b) => a - b))
    socket.close()
  }
})

t.test('a tenantId in the query string of an upgrade or a request is ignored: the tenant comes from the token', async (t) => {
  const gw = await build(t)
  const socket = new Client(`${gw.ws}?tenantId=victim&token=${sign({ tenantId: 'attacker' })}`)
  t.match(await socket.next('authenticated'), { tenantId: 'attacker' })
  const victim = await connect(gw, { tenantId: 'victim' })
  const reply = await post(gw, '/api/v1/alarms?tenantId=victim', sign({ tenantId: 'attacker' }), { message: 'm', camera: 'c', severity: 'low' })
  t.equal(reply.status, 202)
  t.match(await socket.next('event'), { id: reply.body.id })
  const history = await get(gw, '/api/v1/events/history?tenantId=victim', sign({ tenantId: 'attacker' }))
  t.same(history.body.events.map((e: any) => e.id), [reply.body.id])
  await drain(victim)
  t.equal(events(victim).length, 0, 'the victim tenant got nothing')
  socket.close()
  victim.close()
})

t.test('while the broker cannot store events, the publish API and app.realtime answer 503 BROKER_UNAVAILABLE and nothing is delivered', async (t) => {
  // A Redis URL with nothing listening: start-up goes on, not ready, every publish refused.
  const gw = await build(t, { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, REDIS_PREFIX: 'tenantcast-test-down:' })
  const ready = await fetch(`${gw.http}/ready`)
  t.equal(ready.status, 503)
  const rest = await post(gw, '/api/v1/publish', publisher, { event: 'door:opened', data: {} })
  t.equal(rest.status, 503)
  t.equal(rest.body.code, 'BROKER_UNAVAILABLE')
  t.equal(rest.headers.get('retry-after'), '1')
  const alarm = await postAlarm(gw, sign())
  t.match(alarm, { status: 503, body: { code: 'BROKER_UNAVAILABLE' } })
  await t.rejects(gw.app.realtime.broadcast('t1', 'door:opened', {}), { code: 'BROKER_UNAVAILABLE', statusCode: 503 })
})
