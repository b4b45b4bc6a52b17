import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage } from 'node:http'
import t from 'tap'
import { build, connect, drain, events, post, postAlarm, quietly, sign } from '../helper.js'

const WEBHOOK_SECRET = 'webhook-secret-0123456789abcdef'

/** A webhook receiver on 127.0.0.1 that answers each call with the next status of `statuses` (200 once they run out). */
async function receiver (t: Tap, statuses: number[]): Promise<{ url: string, calls: Array<{ headers: IncomingMessage['headers'], body: string }> }> {
  const calls: Array<{ headers: IncomingMessage['headers'], body: string }> = []
  const server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk) => { body += String(chunk) })
    request.on('end', () => {
      calls.push({ headers: request.headers, body })
      response.writeHead(statuses.shift() ?? 200).end()
    })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { await new Promise((resolve) => { server.close(resolve) }) })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, calls }
}
type Tap = { teardown (fn: () => unknown): void }

/** What a receiver does: recompute the HMAC over `<t>.<raw body>` and compare in constant time. */
function verifies (header: string | string[] | undefined, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(header))
  if (match === null) return false
  const expected = createHmac('sha256', WEBHOOK_SECRET).update(`${match[1] as string}.${body}`).digest()
  return timingSafeEqual(expected, Buffer.from(match[2] as string, 'hex'))
}

t.test('a role-targeted escalation reaches the tenant\'s supervisors only, unpositioned, and the others keep contiguous offsets', async (t) => {
  const gw = await build(t, { ALARM_ESCALATION: JSON.stringify([{ after: 0.3, role: 'supervisor' }]), ALARM_ESCALATION_POLL_MS: 50 })
  const supervisor = await connect(gw, { sub: 'sam', roles: ['supervisor'] })
  const viewer = await connect(gw, { sub: 'vic' })
  const foreignSupervisor = await connect(gw, { tenantId: 't2', sub: 'sue', roles: ['supervisor'] })
  const camera = sign({ sub: 'camera' })
  const ignored = (await postAlarm(gw, camera, { severity: 'critical', message: 'nobody acts' })).body.id as string
  const handled = (await postAlarm(gw, camera, { severity: 'critical', message: 'acknowledged in time' })).body.id as string
  t.equal((await post(gw, `/api/v1/alarms/${handled}/ack`, sign({ sub: 'vic' }), {})).status, 200)
  const newer = (await postAlarm(gw, camera, { severity: 'critical', message: 'newer' })).body.id as string

  const escalated = await quietly(() => events(supervisor).filter((e) => e.event === 'alarm:escalated'), 2, 500)
  t.same(escalated.map((e) => e.data.id), [ignored, newer], 'each unacknowledged alarm once, the acknowledged one never')
  t.match(escalated[0], { event: 'alarm:escalated', data: { id: ignored, level: 1, reason: 'unacknowledged', role: 'supervisor', alarm: { message: 'nobody acts' } } })
  t.equal(escalated[0]?.stream, undefined, 'an escalation carries no stream position')
  t.equal(escalated[0]?.offset, undefined)
  await drain(viewer)
  t.same(events(viewer).map((e) => e.event), ['alarm:created', 'alarm:created', 'alarm:updated', 'alarm:created'], 'the viewer got no escalation')
  t.same(events(viewer).map((e) => e.offset), [1, 2, 3, 4], 'and saw every tenant offset, without a gap')
  await drain(foreignSupervisor)
  t.equal(events(foreignSupervisor).length, 0, 'another tenant\'s supervisor got nothing')
  const metrics = await (await fetch(`${gw.http}/metrics`)).text()
  t.match(metrics, /tenantcast_alarm_escalations_total\{reason="unacknowledged"\} 2/, 'the two unacknowledged alarms escalated, the acknowledged one did not')
  for (const c of [supervisor, viewer, foreignSupervisor]) c.close()
})

t.test('an alarm that no device received escalates, and one that a device received does not', async (t) => {
  const gw = await build(t, { ALARM_ESCALATION: JSON.stringify([{ after: 0.4, if: 'unreceived', role: 'supervisor' }]), ALARM_ESCALATION_POLL_MS: 50 })
  const supervisor = await connect(gw, { sub: 'sam', roles: ['supervisor'] })
  const camera = sign({ sub: 'camera' })
  const seen = (await postAlarm(gw, camera, { severity: 'critical', message: 'seen by a phone' })).body.id as string
  const phone = await connect(gw, { sub: 'operator' })
  phone.send({ type: 'received', ids: [seen] })
  await drain(phone)
  phone.close()
  const unseen = (await postAlarm(gw, camera, { severity: 'critical', message: 'operators offline' })).body.id as string
  const escalated = await quietly(() => events(supervisor).filter((e) => e.event === 'alarm:escalated'), 1, 600)
  t.same(escalated.map((e) => [e.data.id, e.data.reason]), [[unseen, 'unreceived']])
  supervisor.close()
})

t.test('a webhook escalation is signed, carries one idempotency key, and is retried after a 500', async (t) => {
  const hook = await receiver(t, [500])
  const gw = await build(t, {
    ALARM_ESCALATION: JSON.stringify([{ after: 0.2, webhook: hook.url }]),
    ALARM_ESCALATION_POLL_MS: 50,
    WEBHOOK_SECRET,
    WEBHOOK_BACKOFF_MS: 50
  })
  const id = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })).body.id as string
  const calls = await quietly(() => hook.calls, 2, 400)
  t.equal(calls.length, 2, 'the 500 was retried once, and the 200 ended it')
  for (const call of calls) {
    t.ok(verifies(call.headers['x-tenantcast-signature'], call.body), 'the signature verifies with the shared secret')
    t.equal(call.headers['idempotency-key'], `escalation:${id}:1`)
    t.equal(call.headers['content-type'], 'application/json')
  }
  t.notOk(verifies(calls[0]?.headers['x-tenantcast-signature'], calls[0]?.body.replace('critical', 'low') ?? ''), 'a tampered body does not verify')
  t.match(JSON.parse(calls[0]?.body ?? '{}'), { event: 'alarm:escalated', tenantId: 't1', id, level: 1, reason: 'unacknowledged', alarm: { severity: 'critical' } })
  const metrics = await (await fetch(`${gw.http}/metrics`)).text()
  t.match(metrics, /tenantcast_webhook_failures_total\{outcome="retried"\} 1/)
  t.notMatch(metrics, /outcome="gave_up"/)
})

t.test('a webhook that keeps failing is given up after WEBHOOK_RETRIES, and ingestion never waits for it', async (t) => {
  const hook = await receiver(t, [503, 503, 503, 503])
  const gw = await build(t, {
    ALARM_ESCALATION: JSON.stringify([{ after: 0.1, webhook: hook.url }]),
    ALARM_ESCALATION_POLL_MS: 50,
    WEBHOOK_SECRET,
    WEBHOOK_RETRIES: 2,
    WEBHOOK_BACKOFF_MS: 30
  })
  await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })
  const calls = await quietly(() => hook.calls, 3, 400)
  t.equal(calls.length, 3, 'one attempt and two retries')
  const started = performance.now()
  t.equal((await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical' })).status, 202)
  t.ok(performance.now() - started < 500, 'an ingestion does not wait on webhooks')
  const metrics = await (await fetch(`${gw.http}/metrics`)).text()
  t.match(metrics, /tenantcast_webhook_failures_total\{outcome="gave_up"\} 1/)
  t.equal(gw.logs.filter((line) => line.includes('"action":"webhook.failed"')).length, 1)
})

t.test('a webhook rule without WEBHOOK_SECRET, or a malformed ALARM_ESCALATION, fails start-up and names the setting', async (t) => {
  await t.rejects(build(t, { ALARM_ESCALATION: JSON.stringify([{ after: 60, webhook: 'https://ops.example.com' }]) }), /WEBHOOK_SECRET/)
  await t.rejects(build(t, { ALARM_ESCALATION: '[{"after":60}]' }), /ALARM_ESCALATION has a rule after 60 s with neither role nor webhook/)
  await t.rejects(build(t, { ALARM_ESCALATION: '{not json' }), /ALARM_ESCALATION is not JSON/)
})

t.test('role-targeted escalations follow the roles of a socket\'s refreshed token, both ways', async (t) => {
  const gw = await build(t, { ALARM_ESCALATION: JSON.stringify([{ after: 0.3, role: 'supervisor' }]), ALARM_ESCALATION_POLL_MS: 50 })
  const demoted = await connect(gw, { sub: 'sam', roles: ['supervisor'] })
  const promoted = await connect(gw, { sub: 'pat' })
  demoted.send({ type: 'authenticate', token: sign({ sub: 'sam' }), id: 'r1' })
  promoted.send({ type: 'authenticate', token: sign({ sub: 'pat', roles: ['supervisor'] }), id: 'r2' })
  t.match(await demoted.next('authenticated'), { ref: 'r1' })
  t.match(await promoted.next('authenticated'), { ref: 'r2' })
  const id = (await postAlarm(gw, sign({ sub: 'camera' }), { severity: 'critical', message: 'who is on duty' })).body.id as string
  const escalated = await quietly(() => events(promoted).filter((e) => e.event === 'alarm:escalated'), 1, 500)
  t.same(escalated.map((e) => e.data.id), [id], 'the newly granted role gets the escalation')
  t.same(events(demoted).filter((e) => e.event === 'alarm:escalated'), [], 'the revoked role gets nothing')
  demoted.close()
  promoted.close()
})
