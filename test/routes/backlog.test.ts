import t from 'tap'
import { build, connect, events, heldAlarm, post, quietly, sign, type Client, type Gateway } from '../helper.js'

const ALARM = { message: 'Motion detected', camera: 'Front Door', severity: 'high' }

/**
 * Tenant A's fan-out is cut to one socket write per scheduler round (FANOUT_SLICE 1), so each
 * accepted event leaves 20 writes queued behind it while a burst of requests arrives: the
 * burst outruns the rounds, and the backlog cap of 40 writes must refuse part of it.
 */
async function gateway (t: { teardown: (fn: () => unknown) => void }): Promise<{ gw: Gateway, a: Client[], b: Client[] }> {
  const gw = await build(t, { MAX_QUEUED_WRITES_PER_TENANT: 40, FANOUT_SLICE: 1, MAX_INFLIGHT_PER_TENANT: 0 })
  const a = await Promise.all(Array.from({ length: 20 }, async (_, i) => await connect(gw, { tenantId: 'A', sub: `a${i}` })))
  const b = await Promise.all(Array.from({ length: 2 }, async (_, i) => await connect(gw, { tenantId: 'B', sub: `b${i}` })))
  t.teardown(() => { for (const c of [...a, ...b]) c.socket.terminate() })
  return { gw, a, b }
}

t.test('past its queued-writes cap a tenant\'s alarms answer 429 TENANT_BACKLOGGED with Retry-After, another tenant\'s alarm is accepted, and every accepted alarm reaches every socket once', async (t) => {
  const { gw, a, b } = await gateway(t)
  const noisy = sign({ tenantId: 'A', sub: 'camera-1' })
  const quiet = sign({ tenantId: 'B', sub: 'camera-1' })
  const burst = Array.from({ length: 30 }, async (_, i) => await post(gw, '/api/v1/alarms', noisy, { ...ALARM, camera: `cam-${i}` }))
  const quietReply = post(gw, '/api/v1/alarms', quiet, ALARM)
  const replies = await Promise.all(burst)

  const refused = replies.filter((r) => r.status === 429)
  const accepted = replies.filter((r) => r.status === 202)
  t.equal(refused.length + accepted.length, 30, 'every request is either accepted or refused as backlogged')
  t.ok(refused.length > 0, 'the burst outran the rounds and was partly refused')
  t.ok(accepted.length >= 2, 'an event is always taken below the cap')
  t.ok(refused.every((r) => r.body.code === 'TENANT_BACKLOGGED' && r.headers.get('retry-after') === '1'))
  t.equal((await quietReply).status, 202, 'the quiet tenant is not held back by A\'s backlog')
  const warned = gw.logs.filter((line) => line.includes('"action":"rest.backlogged"'))
  t.equal(warned.length, 1, `one warning for ${refused.length} refusals, not one per request`)
  t.match(JSON.parse(warned[0] as string), { tenantId: 'A', suppressed: 0, level: 40 })

  const ids = accepted.map((r) => r.body.id as string).sort()
  for (const socket of a) {
    const got = await quietly(() => events(socket), accepted.length)
    t.same(got.map((f) => f.id as string).sort(), ids, 'each A socket got every accepted alarm exactly once, and no refused one')
  }
  for (const socket of b) t.same((await quietly(() => events(socket), 1, 0)).map((f) => f.data.camera), ['Front Door'], 'B got its own alarm and none of A\'s')

  t.equal((await post(gw, '/api/v1/alarms', noisy, ALARM)).status, 202, 'once the backlog is written, A is accepted again')
})

t.test('the publish API answers 429 TENANT_BACKLOGGED past the cap as well', async (t) => {
  const { gw } = await gateway(t)
  const publisher = sign({ tenantId: 'A', sub: 'backend', roles: ['publisher'] })
  const replies = await Promise.all(Array.from({ length: 30 }, async (_, i) => await post(gw, '/api/v1/publish', publisher, { event: 'incident:assigned', data: { i } })))
  const refused = replies.filter((r) => r.status === 429)
  t.ok(refused.length > 0, 'part of the burst was refused')
  t.ok(refused.every((r) => r.body.code === 'TENANT_BACKLOGGED'))
  t.equal(replies.filter((r) => r.status === 202).length + refused.length, 30)
})

t.test('alarms whose bodies were still uploading when the backlog built up are refused once their bodies arrive', async (t) => {
  const { gw, a } = await gateway(t)
  const noisy = sign({ tenantId: 'A', sub: 'camera-1' })
  const body = JSON.stringify(ALARM)
  // Their headers pass the check while nothing is queued; their bodies then arrive together.
  const held = Array.from({ length: 12 }, () => heldAlarm(gw, noisy, body))
  t.teardown(() => { for (const req of held) req.destroy() })
  await new Promise((resolve) => setTimeout(resolve, 200))
  const statuses = held.map(async (req) => await new Promise<number>((resolve) => {
    req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) })
  }))
  for (const req of held) req.end(body.slice(10))
  const answered = await Promise.all(statuses)
  t.ok(answered.includes(429), 'part of them was refused after their bodies came')
  const accepted = answered.filter((s) => s === 202).length
  t.ok(accepted >= 1)
  t.equal(accepted + answered.filter((s) => s === 429).length, 12)
  t.equal((await quietly(() => events(a[0] as Client), accepted)).length, accepted, 'each accepted one was delivered, the refused ones not')
})
