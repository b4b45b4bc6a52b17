import { spawn } from 'node:child_process'
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisBroker, resetOnStall, untilReady, versionProblem } from '../../domain/broker-redis.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { freePort, REDIS_URL, redisPrefix, redisSkip } from '../helper.js'

/**
 * How the Redis broker recovers: reconnects, trimmed logs, new epochs, stalls and outages. Each
 * case asserts what the listeners saw, exactly: events once and in order, or a gap reported.
 */

type Options = Partial<ConstructorParameters<typeof RedisBroker>[0]>
const quiet = { warn: () => {} }

function broker (options: Options & { prefix: string }): RedisBroker {
  return new RedisBroker({ url: REDIS_URL, historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: quiet, ...options })
}

async function connected (options: Options & { prefix: string }): Promise<RedisBroker> {
  const b = broker(options)
  if (!await b.connected(5000)) throw new Error('the Redis broker did not connect')
  return b
}

const tick = (n: number, tenantId = 'acme'): EventEnvelope => ({ id: `e${n}`, tenantId, event: 'tick', data: { n }, target: { kind: 'tenant' }, timestamp: 'now' })

async function until (what: string, done: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A broker whose subscriber connection carries a name of its own, so a test can kill it alone. */
async function named (prefix: string, options: Options = {}): Promise<{ broker: RedisBroker, name: string }> {
  const name = `tcrec-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
  return { broker: await connected({ prefix, url: `${REDIS_URL}?connectionName=${name}`, ...options }), name }
}

async function pubsubIds (admin: Redis, name: string): Promise<string[]> {
  const list = await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub') as string
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).map((line) => (/^id=(\d+)/.exec(line) as RegExpExecArray)[1] as string)
}

/** Kills the named subscriber; resolves once it is back (a new connection id). */
async function bounceSubscriber (admin: Redis, name: string, meanwhile: () => Promise<void>): Promise<void> {
  const killed = await pubsubIds(admin, name)
  if (killed.length !== 1) throw new Error(`expected one subscriber, found ${killed.length}`)
  await admin.client('KILL', 'ID', killed[0] as string)
  await meanwhile()
  await until('the subscriber reconnects', async () => (await pubsubIds(admin, name)).some((id) => !killed.includes(id)))
}

t.test('the Redis broker recovering', { skip: redisSkip }, async (t) => {
  const admin = new Redis(REDIS_URL)
  t.teardown(() => { admin.disconnect() })

  t.test('a subscriber that comes back after the log was trimmed past its position reports one gap, then delivers live events again', async (t) => {
    const prefix = await redisPrefix(t)
    const { broker: watcher, name } = await named(prefix, { historySize: 3 })
    const publisher = await connected({ prefix, historySize: 3 })
    t.teardown(async () => { await watcher.close(); await publisher.close() })
    const seen: number[] = []
    const gaps: string[] = []
    watcher.onDelivery((e) => { seen.push(e.offset) })
    watcher.onGap((tenantId, stream) => { gaps.push(`${tenantId}/${stream}`) })
    await watcher.watch('acme', 'tenant')
    await publisher.publish(tick(1))
    await until('offset 1 is delivered', () => seen.length === 1)
    // Seven events while away: the log keeps only 6..8, so 2..5 are gone.
    await bounceSubscriber(admin, name, async () => { for (let n = 2; n <= 8; n++) await publisher.publish(tick(n)) })
    await until('the gap is reported', () => gaps.length === 1)
    await publisher.publish(tick(9))
    await until('offset 9 is delivered', () => seen.includes(9))
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(gaps, ['acme/tenant'], 'one gap, for the stream that lost events')
    t.same(seen, [1, 9], 'nothing of the lost range is delivered piecemeal: its sockets resume instead')
  })

  t.test('events published without pause while the subscriber reconnects arrive once each, in offset order', async (t) => {
    const prefix = await redisPrefix(t)
    // The log holds all of them: this case is about order across the catch-up, not trimming.
    const { broker: watcher, name } = await named(prefix, { historySize: 100_000 })
    const publisher = await connected({ prefix, historySize: 100_000 })
    t.teardown(async () => { await watcher.close(); await publisher.close() })
    const seen: number[] = []
    const gaps: string[] = []
    watcher.onDelivery((e) => { seen.push(e.offset) })
    watcher.onGap((tenantId) => { gaps.push(tenantId) })
    await watcher.watch('acme', 'tenant')
    let stop = false
    let published = 0
    const pump = (async () => {
      while (!stop) {
        await publisher.publish(tick(published + 1))
        published++
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })()
    await until('some events flow', () => seen.length >= 5)
    await bounceSubscriber(admin, name, async () => { await new Promise((resolve) => setTimeout(resolve, 50)) })
    await until('more events flow after the reconnect', () => seen.length >= published - 1 && published > 20)
    stop = true
    await pump
    await until('every event is delivered', () => seen.length >= published)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(seen, Array.from({ length: published }, (_, i) => i + 1), `all ${published} events, once, in order`)
    t.same(gaps, [], 'no gap: the log held everything missed')
  })

  t.test('a stream that lost its metadata (a new epoch) reports a gap and delivers the new epoch\'s events', async (t) => {
    const prefix = await redisPrefix(t)
    const b = await connected({ prefix })
    t.teardown(async () => { await b.close() })
    const seen: string[] = []
    const gaps: string[] = []
    b.onDelivery((e) => { seen.push(`${e.epoch}:${e.offset}`) })
    b.onGap((tenantId, stream) => { gaps.push(`${tenantId}/${stream}`) })
    await b.watch('acme', 'tenant')
    const first = await b.publish(tick(1))
    await until('the first epoch\'s event', () => seen.length === 1)
    const metas = (await admin.keys(`${prefix}*`)).filter((k) => k.includes('meta'))
    t.equal(metas.length, 1, 'one metadata key')
    await admin.del(...metas)
    const second = await b.publish(tick(2))
    t.not(second.epoch, first.epoch, 'a new epoch')
    await until('the new epoch\'s event', () => seen.length === 2)
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.same(seen, [`${first.epoch}:1`, `${second.epoch}:1`])
    t.same(gaps, ['acme/tenant'], 'the epoch change is a gap for the stream\'s sockets')
  })

  t.test('an offset rewritten by a failover (a promoted replica without the last events) starts one new epoch and reports a gap on every instance', async (t) => {
    const prefix = await redisPrefix(t)
    const a = await connected({ prefix })
    const b = await connected({ prefix })
    const publisher = await connected({ prefix })
    t.teardown(async () => { await a.close(); await b.close(); await publisher.close() })
    const seen = { a: [] as string[], b: [] as string[] }
    const gaps = { a: 0, b: 0 }
    a.onDelivery((e) => { seen.a.push(`${e.epoch}:${e.offset}:${e.id}`) })
    b.onDelivery((e) => { seen.b.push(`${e.epoch}:${e.offset}:${e.id}`) })
    a.onGap(() => { gaps.a++ })
    b.onGap(() => { gaps.b++ })
    await a.watch('acme', 'tenant')
    await b.watch('acme', 'tenant')
    let epoch = ''
    for (let n = 1; n <= 5; n++) epoch = (await publisher.publish(tick(n))).epoch
    await until('both instances delivered 1..5', () => seen.a.length === 5 && seen.b.length === 5)
    // What the promoted replica holds: offsets up to 3; 4 and 5 were acknowledged, then lost.
    const keys = await admin.keys(`${prefix}*`)
    const meta = keys.find((k) => k.endsWith(':meta')) as string
    const log = keys.find((k) => k.endsWith(':log')) as string
    const kept = (await admin.xrange(log, '-', '+')).slice(0, 3)
    await admin.del(log)
    for (const [id, fields] of kept) await admin.xadd(log, id, ...fields)
    await admin.hset(meta, 'latest', 3)
    const rewritten = await publisher.publish(tick(6))
    t.equal(rewritten.offset, 4, 'the stream goes on from the replica\'s offsets')
    await until('both instances report the gap', () => gaps.a === 1 && gaps.b === 1)
    const after = await publisher.read('acme', 'tenant', 0, 10)
    t.not(after.epoch, epoch, 'a new epoch: a client at the old offset 5 is told recovered: false on resume')
    const next = await publisher.publish(tick(7))
    t.equal(next.epoch, after.epoch, 'one new epoch, whichever instance set it')
    await until('the next event reaches both', () => seen.a.length === 6 && seen.b.length === 6)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const expected = [1, 2, 3, 4, 5].map((n) => `${epoch}:${n}:e${n}`).concat(`${after.epoch}:5:e7`)
    t.same(seen.a, expected, 'the rewritten offset 4 is never delivered as if it were the one seen')
    t.same(seen.b, expected)
    t.same([gaps.a, gaps.b], [1, 1])
  })

  t.test('a repeated offset with the same event (a catch-up overlap) is dropped quietly, with no gap', async (t) => {
    const prefix = await redisPrefix(t)
    const { broker: watcher, name } = await named(prefix)
    const publisher = await connected({ prefix })
    t.teardown(async () => { await watcher.close(); await publisher.close() })
    const seen: number[] = []
    let gaps = 0
    watcher.onDelivery((e) => { seen.push(e.offset) })
    watcher.onGap(() => { gaps++ })
    await watcher.watch('acme', 'tenant')
    for (let n = 1; n <= 3; n++) await publisher.publish(tick(n))
    await until('1..3 delivered', () => seen.length === 3)
    // A reconnect re-reads from the last position; nothing delivered comes twice, nothing is a gap.
    await bounceSubscriber(admin, name, async () => { await publisher.publish(tick(4)) })
    await publisher.publish(tick(5))
    await until('4 and 5 delivered', () => seen.length >= 5)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(seen, [1, 2, 3, 4, 5])
    t.equal(gaps, 0)
  })

  t.test('a clock measurement gone stale (Redis stepped its clock) costs one re-measure, not every publish', async (t) => {
    const prefix = await redisPrefix(t)
    const warnings: string[] = []
    const b = await connected({ prefix, log: { warn: (fields) => { warnings.push((fields as { action: string }).action) } } })
    t.teardown(async () => { await b.close() })
    t.equal((await b.publish(tick(1))).offset, 1)
    // As if Redis's clock jumped 5 s ahead of the measurement: every deadline would be past.
    const internals = b as unknown as { clockOffsetMs: number }
    internals.clockOffsetMs -= 5000
    t.equal((await b.publish(tick(2))).offset, 2, 'stored after measuring again')
    t.equal((await b.publish(tick(3))).offset, 3, 'and the next publish needs no retry')
    t.same(warnings, ['broker.redis.clock_stepped'], 'said once')
    t.same((await b.read('acme', 'tenant', 0, 10)).events.map((e) => e.id), ['e1', 'e2', 'e3'], 'each stored once')
  })

  t.test('a listener that throws is reported and does not keep the event from the other listeners', async (t) => {
    const prefix = await redisPrefix(t)
    const errors: string[] = []
    const b = await connected({ prefix, onListenerError: (err) => { errors.push((err as Error).message) } })
    t.teardown(async () => { await b.close() })
    const seen: number[] = []
    b.onDelivery(() => { throw new Error('first listener broke') })
    b.onDelivery((e) => { seen.push(e.offset) })
    const gaps: string[] = []
    b.onGap(() => { throw new Error('gap listener broke') })
    b.onGap((tenantId) => { gaps.push(tenantId) })
    await b.watch('acme', 'tenant')
    await b.publish(tick(1))
    await until('delivered to the second listener', () => seen.length === 1)
    await admin.del(...(await admin.keys(`${prefix}*`)).filter((k) => k.includes('meta')))
    await b.publish(tick(2))
    await until('the gap reaches the second gap listener', () => gaps.length === 1)
    await until('both deliveries reached the second listener', () => seen.length === 2)
    t.same(errors, ['first listener broke', 'gap listener broke', 'first listener broke'])
  })

  t.test('a stream watched twice keeps delivering until it is unwatched as often, and then stops', async (t) => {
    const prefix = await redisPrefix(t)
    const b = await connected({ prefix })
    t.teardown(async () => { await b.close() })
    const seen: number[] = []
    b.onDelivery((e) => { seen.push(e.offset) })
    await b.watch('acme', 'tenant')
    await b.watch('acme', 'tenant')
    b.unwatch('acme', 'tenant')
    b.unwatch('acme', 'other')
    await b.publish(tick(1))
    await until('still watched once', () => seen.length === 1)
    b.unwatch('acme', 'tenant')
    await new Promise((resolve) => setTimeout(resolve, 100))
    await b.publish(tick(2))
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.same(seen, [1], 'nothing after the last unwatch')
    const stop = b.onDelivery(() => { seen.push(-1) })
    stop()
    await b.watch('acme', 'tenant')
    await b.publish(tick(3))
    await until('watched again', () => seen.length === 2)
    t.same(seen, [1, 3], 'a removed listener hears nothing; a new watch starts at its attach position')
  })

  t.test('a closed broker tells its listeners nothing more', async (t) => {
    const prefix = await redisPrefix(t)
    const b = await connected({ prefix })
    const publisher = await connected({ prefix })
    t.teardown(async () => { await publisher.close() })
    const seen: number[] = []
    b.onDelivery((e) => { seen.push(e.offset) })
    await b.watch('acme', 'tenant')
    await b.close()
    t.notOk(b.ready(), 'not ready once closed')
    await publisher.publish(tick(1))
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(seen, [])
  })
})

t.test('the Redis broker on a Redis of its own', { skip: redisSkip }, async (t) => {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGKILL') })
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 50 })
  probe.on('error', () => {})
  await until('the private Redis answers', async () => await probe.ping().then(() => true, () => false), 10000)
  probe.disconnect()

  t.test('a Redis that stops answering is noticed without a request: ready() turns false, a publish fails fast, and both recover', async (t) => {
    const warnings: string[] = []
    const b = await connected({ prefix: 'stall:', url, commandTimeoutMs: 300, log: { warn: (fields) => { warnings.push((fields as { action: string }).action) } } })
    t.teardown(async () => { await b.close(); server.kill('SIGCONT') })
    t.ok(b.ready())
    server.kill('SIGSTOP')
    const started = Date.now()
    await t.rejects(b.publish(tick(1)), 'a publish to a stalled Redis is refused')
    t.ok(Date.now() - started < 1500, `refused in ${Date.now() - started} ms, not hung`)
    await until('the stall probe resets the connections', () => !b.ready(), 3000)
    t.ok(warnings.includes('redis.stalled'), 'the reset is logged')
    server.kill('SIGCONT')
    await until('ready again', () => b.ready(), 10000)
    const stored = await b.publish(tick(2))
    t.equal(stored.offset, 1, 'the refused publish was never stored')
  })

  t.test('the stall probe leaves an answering connection alone and stops when told', async (t) => {
    const connection = new Redis(url)
    t.teardown(() => { connection.disconnect() })
    await until('ready', () => connection.status === 'ready')
    const warnings: string[] = []
    const stop = resetOnStall(connection, 50, { warn: (fields) => { warnings.push((fields as { action: string }).action) } })
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.same(warnings, [], 'no reset while Redis answers')
    stop()
    server.kill('SIGSTOP')
    await new Promise((resolve) => setTimeout(resolve, 300))
    server.kill('SIGCONT')
    t.same(warnings, [], 'a stopped probe resets nothing')
    t.equal(connection.status, 'ready')
  })
})

t.test('without a Redis to talk to', async (t) => {
  const url = `redis://127.0.0.1:${await freePort()}`

  t.test('connected() answers false within its timeout, and watch() rejects instead of waiting forever', async (t) => {
    const b = broker({ prefix: 'none:', url, commandTimeoutMs: 200 })
    t.teardown(async () => { await b.close() })
    const started = Date.now()
    t.equal(await b.connected(300), false)
    t.ok(Date.now() - started < 1000)
    t.notOk(b.ready())
    await t.rejects(b.watch('acme', 'tenant'), { message: 'redis did not confirm the subscription in time' })
    await t.rejects(b.publish(tick(1)), 'a publish is refused, not queued')
  })

  t.test('untilReady answers true at once for ready connections and false for ones that never come', async (t) => {
    const down = new Redis(url, { lazyConnect: true })
    down.on('error', () => {})
    t.equal(await untilReady([down], 100), false)
    t.equal(await untilReady([], 100), true)
  })
})

t.test('the Redis version check', async (t) => {
  t.match(versionProblem('redis_version:6.0.9\r\n', 'h:1'), /^Redis 6\.0\.9 at h:1 is too old: tenantcast needs Redis 6\.2 or newer/)
  t.match(versionProblem('redis_version:5.9.0\r\n', 'h:1'), /too old/)
  t.match(versionProblem('# Server\r\n', 'h:1'), /^Redis unknown at h:1 is too old/)
  t.equal(versionProblem('redis_version:6.2.0\r\n', 'h:1'), undefined)
  t.equal(versionProblem('redis_version:7.0.15\r\n', 'h:1'), undefined)
  t.equal(versionProblem('redis_version:10.0.0\r\n', 'h:1'), undefined)
})
