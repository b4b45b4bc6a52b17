import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import t from 'tap'
import { Redis } from 'ioredis'
import { build, connect, drain, events, freePort, get, post, postAlarm, quietly, REDIS_URL, redisPrefix, redisSkip, SECRET, sign } from '../helper.js'

t.test('alarm state on Redis', { skip: redisSkip }, async (t) => {
  t.test('an alarm ingested on one instance is acknowledged on another, once, and every key has a TTL', async (t) => {
    const shared = { REDIS_URL, REDIS_PREFIX: await redisPrefix(t) }
    const a = await build(t, shared)
    const b = await build(t, shared)
    const viewer = await connect(a, { sub: 'viewer' })
    const id = (await postAlarm(a, sign({ sub: 'camera' }), { severity: 'critical' })).body.id as string
    const first = await post(b, `/api/v1/alarms/${id}/ack`, sign({ sub: 'alice' }), { note: 'mine' })
    t.match(first.body, { changed: true, alarm: { status: 'acknowledged', acknowledgedBy: 'alice' } })
    const again = await post(a, `/api/v1/alarms/${id}/ack`, sign({ sub: 'bob' }), {})
    t.match(again.body, { changed: false, alarm: { acknowledgedBy: 'alice', acknowledgedAt: first.body.alarm.acknowledgedAt } })
    t.equal((await post(a, `/api/v1/alarms/${id}/ack`, sign({ tenantId: 't2', sub: 'mallory' }), {})).status, 404)
    await quietly(() => events(viewer), 2)
    t.same(events(viewer).map((e) => [e.event, e.offset]), [['alarm:created', 1], ['alarm:updated', 2]], 'one update, seen by a socket of the other instance')
    t.same((await get(a, '/api/v1/alarms?status=acknowledged', sign())).body.alarms.map((r: { id: string }) => r.id), [id])
    viewer.send({ type: 'received', ids: [id] })
    await drain(viewer)
    t.same(Object.keys((await get(b, `/api/v1/alarms/${id}`, sign())).body.receipts), ['viewer'])

    const redis = new Redis(REDIS_URL)
    t.teardown(() => { redis.disconnect() })
    const keys = (await redis.keys(`${shared.REDIS_PREFIX}alarms:*`))
    t.ok(keys.length >= 4, 'record, index, receipts and due set are stored')
    for (const key of keys) t.ok(await redis.pttl(key) > 0, `${key.slice(shared.REDIS_PREFIX.length)} has a TTL`)
    t.ok(keys.filter((k) => !k.endsWith('alarms:tenants')).every((k) => k.includes('alarms:{t1}:')), 'each tenant key carries its tenant hash tag')
    viewer.close()
  })

  t.test('each escalation level fires exactly once across two instances', async (t) => {
    const shared = { REDIS_URL, REDIS_PREFIX: await redisPrefix(t), ALARM_ESCALATION: JSON.stringify([{ after: 0.3, role: 'supervisor' }, { after: 0.6, role: 'supervisor' }]), ALARM_ESCALATION_POLL_MS: 20 }
    const a = await build(t, shared)
    const b = await build(t, shared)
    const onA = await connect(a, { sub: 'sam', roles: ['supervisor'] })
    const onB = await connect(b, { sub: 'sue', roles: ['supervisor'] })
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push((await postAlarm(i % 2 === 0 ? a : b, sign({ sub: 'camera' }), { severity: 'critical' })).body.id)
    for (const supervisor of [onA, onB]) {
      const got = await quietly(() => events(supervisor).filter((e) => e.event === 'alarm:escalated'), 10, 800)
      t.same(got.map((e) => `${e.data.id as string}:${e.data.level as number}`).sort(), ids.flatMap((id) => [`${id}:1`, `${id}:2`]).sort(), 'every level of every alarm, once')
    }
    const record = (await get(a, `/api/v1/alarms/${ids[0] as string}`, sign())).body.alarm
    t.same(record.escalations, [1, 2])
    onA.close()
    onB.close()
  })

  t.test('an alarm whose ingesting instance was SIGKILLed before it was due still escalates once, on the survivor', async (t) => {
    const calls: Array<string | undefined> = []
    const hook = createServer((request, response) => {
      request.resume()
      request.on('end', () => { calls.push(request.headers['idempotency-key'] as string | undefined); response.writeHead(200).end() })
    })
    await new Promise<void>((resolve) => { hook.listen(0, '127.0.0.1', resolve) })
    t.teardown(async () => { await new Promise((resolve) => { hook.close(resolve) }) })
    const url = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`
    const shared = {
      REDIS_URL,
      REDIS_PREFIX: await redisPrefix(t),
      ALARM_ESCALATION: JSON.stringify([{ after: 2, role: 'supervisor' }, { after: 2.5, webhook: url }]),
      ALARM_ESCALATION_POLL_MS: 50,
      WEBHOOK_SECRET: 'webhook-secret-0123456789abcdef'
    }
    const port = await freePort()
    // `env -u` keeps tap's coverage hooks out of the child, which runs through tsx.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', process.execPath, '--import', 'tsx', 'server.ts'], {
      env: { ...process.env, NODE_ENV: 'production', JWT_SECRET: SECRET, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', JWT_REQUIRE_EXP: 'false', ...shared, ALARM_ESCALATION_POLL_MS: '50' },
      stdio: ['ignore', 'ignore', 'pipe']
    })
    t.teardown(() => { child.kill('SIGKILL') })
    const ingesting = { http: `http://127.0.0.1:${port}` }
    for (let i = 0; i < 300; i++) {
      if ((await fetch(`${ingesting.http}/ready`).catch(() => undefined))?.status === 200) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const survivor = await build(t, shared)
    const supervisor = await connect(survivor, { sub: 'sam', roles: ['supervisor'] })
    const ingested = await post(ingesting as never, '/api/v1/alarms', sign({ sub: 'camera' }), { message: 'Intrusion', camera: 'Gate', severity: 'critical' })
    t.equal(ingested.status, 202)
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('close', resolve))
    const escalated = await quietly(() => events(supervisor).filter((e) => e.event === 'alarm:escalated'), 1, 3000)
    t.same(escalated.map((e) => [e.data.id, e.data.level]), [[ingested.body.id, 1]], 'level 1 reached the supervisor once, from the survivor')
    t.same(calls, [`escalation:${ingested.body.id as string}:2`], 'level 2 called the webhook once')
    supervisor.close()
  })
})
