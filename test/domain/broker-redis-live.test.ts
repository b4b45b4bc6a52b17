import t from 'tap'
import { Redis } from 'ioredis'
import { RedisBroker, serverProblem, streamKeys, versionProblem } from '../../domain/broker-redis.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { freePort, quietly, REDIS_URL, redisPrefix, redisSkip } from '../helper.js'

/**
 * What the Redis broker does with each live message it is handed, one case at a time. A second
 * client plays the other instances: it publishes live messages on a stream's channel and breaks
 * keys, so a gap, a repeat or a rewritten offset arrives exactly when the test says.
 */

type Options = Partial<ConstructorParameters<typeof RedisBroker>[0]>

function broker (options: Options & { prefix: string }): RedisBroker {
  return new RedisBroker({ url: REDIS_URL, historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: { warn: () => {} }, ...options })
}

async function connected (options: Options & { prefix: string }): Promise<RedisBroker> {
  const b = broker(options)
  if (!await b.connected(5000)) throw new Error('the Redis broker did not connect')
  return b
}

const envelope = (id: string, target: EventEnvelope['target'] = { kind: 'tenant' }): EventEnvelope => ({ id, tenantId: 'acme', event: 'tick', data: { id }, target, timestamp: 'now' })

async function until (what: string, done: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A watcher of acme's tenant stream that records deliveries as `epoch:offset:id`, gaps and warnings. */
async function watched (prefix: string, options: Options = {}): Promise<{ b: RedisBroker, seen: string[], gaps: string[], warnings: string[] }> {
  const warnings: string[] = []
  const b = await connected({ prefix, log: { warn: (fields) => { warnings.push((fields as { action: string }).action) } }, ...options })
  const seen: string[] = []
  const gaps: string[] = []
  b.onDelivery((e) => { seen.push(`${e.epoch}:${e.offset}:${e.id}`) })
  b.onGap((tenantId, stream) => { gaps.push(`${tenantId}/${stream}`) })
  await b.watch('acme', 'tenant')
  // The watch locates itself with a read once subscribed: wait for it, so what follows is live.
  await b.read('acme', 'tenant', undefined, 0)
  return { b, seen, gaps, warnings }
}

t.test('the Redis broker handling live messages', { skip: redisSkip }, async (t) => {
  const admin = new Redis(REDIS_URL)
  t.teardown(() => { admin.disconnect() })

  /** Publishes live messages on acme's tenant channel as another instance's publish script would. */
  const live = async (prefix: string, ...messages: Array<[number, string, string]>): Promise<void> => {
    const channel = streamKeys(prefix, 'acme', 'tenant').live
    const pipeline = admin.pipeline()
    for (const [offset, epoch, id] of messages) pipeline.publish(channel, JSON.stringify({ offset, epoch, e: envelope(id) }))
    await pipeline.exec()
  }

  t.test('a connection-targeted event is delivered live each time it is published, with offset 0 and no epoch, and never stored', async (t) => {
    const prefix = await redisPrefix(t)
    const b = await connected({ prefix })
    t.teardown(async () => { await b.close() })
    const seen: StoredEvent[] = []
    b.onDelivery((e) => { seen.push(e) })
    await b.watch('acme', 'connection')
    await b.read('acme', 'connection', undefined, 0)
    const target = { kind: 'client', clientId: 'k1' } as const
    t.same(await b.publish(envelope('c1', target)), { ...envelope('c1', target), stream: 'connection', offset: 0, epoch: '' })
    await b.publish(envelope('c2', target))
    await b.publish(envelope('c1', target))
    const got = await quietly(() => seen, 3)
    t.same(got.map((e) => `${e.stream}:${e.offset}:${e.epoch}:${e.id}`), ['connection:0::c1', 'connection:0::c2', 'connection:0::c1'], 'no offset, so nothing is taken for a repeat')
    t.same(got[0], { ...envelope('c1', target), stream: 'connection', offset: 0, epoch: '' }, 'the envelope as published')
    t.same((await admin.keys(`${prefix}*`)), [], 'no key was written')
  })

  t.test('a live message that reveals a gap the log cannot fill is one gap, and delivery goes on from the log\'s latest offset', async (t) => {
    const prefix = await redisPrefix(t)
    const publisher = await connected({ prefix })
    t.teardown(async () => { await publisher.close() })
    const epoch = (await publisher.publish(envelope('e1'))).epoch
    const { b, seen, gaps, warnings } = await watched(prefix)
    t.teardown(async () => { await b.close() })
    // The log holds offset 1 only: 2..4 are gone, as after a trim of a stream nobody read.
    await admin.del(streamKeys(prefix, 'acme', 'tenant').log)
    await admin.hset(streamKeys(prefix, 'acme', 'tenant').meta, 'latest', 5)
    await live(prefix, [5, epoch, 'e5'])
    await until('the gap is reported', () => gaps.length === 1)
    await live(prefix, [5, epoch, 'e5'], [6, epoch, 'e6'])
    await until('offset 6 is delivered', () => seen.length === 1)
    t.same(await quietly(() => seen, 1), [`${epoch}:6:e6`], 'the revealing message was in the lost range; the next one is live')
    t.same(gaps, ['acme/tenant'])
    t.same(warnings, ['broker.redis.gap'])
  })

  t.test('a gap whose fill cannot be read is reported once, and delivery carries on from the message that revealed it', async (t) => {
    const prefix = await redisPrefix(t)
    const publisher = await connected({ prefix })
    t.teardown(async () => { await publisher.close() })
    const epoch = (await publisher.publish(envelope('e1'))).epoch
    const { b, seen, gaps, warnings } = await watched(prefix)
    t.teardown(async () => { await b.close() })
    // A log key of the wrong type: every read of the stream fails.
    const log = streamKeys(prefix, 'acme', 'tenant').log
    await admin.del(log)
    await admin.set(log, 'not a stream')
    await live(prefix, [4, epoch, 'e4'], [5, epoch, 'e5'])
    t.same(await quietly(() => seen, 2), [`${epoch}:4:e4`, `${epoch}:5:e5`], 'the revealing message and the one after it')
    t.same(gaps, ['acme/tenant'])
    t.same(warnings, ['broker.redis.gap_fill_failed', 'broker.redis.gap'], 'the failed fill is logged, then its gap')
  })

  t.test('an instance remembers the ids of the last 1024 offsets it delivered: a rewrite of an older one passes unnoticed, of one inside is a divergence', async (t) => {
    const prefix = await redisPrefix(t)
    const { b, seen, gaps, warnings } = await watched(prefix)
    t.teardown(async () => { await b.close() })
    const messages: Array<[number, string, string]> = Array.from({ length: 1030 }, (_, i) => [i + 1, 'E', `e${i + 1}`])
    await live(prefix, ...messages)
    await until('1030 offsets delivered', () => seen.length === 1030)
    // 7..1030 are remembered. Offset 6 under another id is taken for an old repeat; then 8..1031 are.
    await live(prefix, [6, 'E', 'rewritten6'], [1031, 'E', 'e1031'])
    await until('offset 1031 is delivered', () => seen.length === 1031)
    t.equal(seen[1030], 'E:1031:e1031')
    t.same(gaps, [], 'no divergence for an offset beyond memory')
    await live(prefix, [7, 'E', 'rewritten7'], [8, 'E', 'rewritten8'])
    await until('the divergence is reported as a gap', () => gaps.length === 1)
    t.same(warnings, ['broker.redis.diverged', 'broker.redis.gap'])
    t.equal(seen.length, 1031, 'the rewritten offset itself is never delivered')
  })

  t.test('a live message past the end of the log (a failover lost it) starts a new epoch and is one gap, without reading the log over and over', async (t) => {
    const prefix = await redisPrefix(t)
    const publisher = await connected({ prefix })
    t.teardown(async () => { await publisher.close() })
    const epoch = (await publisher.publish(envelope('e1'))).epoch
    const { b, seen, gaps, warnings } = await watched(prefix)
    t.teardown(async () => { await b.close() })
    const monitor = await admin.monitor()
    t.teardown(() => { monitor.disconnect() })
    let reads = 0
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase().startsWith('eval') === true && args[3]?.startsWith(prefix) === true && args.length === 10) reads++
    })
    // The old master sent 2 and 3 live; the promoted replica's log ends at 1.
    await live(prefix, [3, epoch, 'e3'])
    await until('the gap is reported', () => gaps.length === 1, 2000)
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.ok(reads <= 3, `${reads} reads of the log`)
    t.same(gaps, ['acme/tenant'])
    t.same(warnings, ['broker.redis.diverged', 'broker.redis.gap'])
    const next = await publisher.publish(envelope('n2'))
    t.not(next.epoch, epoch, 'a new epoch: a client that saw offset 3 is told recovered: false')
    t.same(await quietly(() => seen, 1), [`${next.epoch}:2:n2`], 'the stream goes on in its new epoch')
  })

  t.test('a repeat of a delivered offset with the same id is dropped quietly; a message of another epoch is a gap and then delivered', async (t) => {
    const prefix = await redisPrefix(t)
    const { b, seen, gaps } = await watched(prefix)
    t.teardown(async () => { await b.close() })
    await live(prefix, [1, 'E', 'e1'], [2, 'E', 'e2'], [1, 'E', 'e1'], [2, 'E', 'e2'], [3, 'F', 'f3'], [4, 'F', 'f4'])
    t.same(await quietly(() => seen, 4), ['E:1:e1', 'E:2:e2', 'F:3:f3', 'F:4:f4'])
    t.same(gaps, ['acme/tenant'], 'one gap, at the epoch change')
  })

  t.test('a new epoch that could not be set is retried until Redis takes it, with live messages held meanwhile', async (t) => {
    const prefix = await redisPrefix(t)
    const { b, seen, gaps, warnings } = await watched(prefix, { commandTimeoutMs: 200 })
    t.teardown(async () => { await b.close() })
    const meta = streamKeys(prefix, 'acme', 'tenant').meta
    await live(prefix, [1, 'E', 'e1'], [2, 'E', 'e2'])
    await until('1 and 2 delivered', () => seen.length === 2)
    // Metadata of the wrong type: the compare-and-set of the new epoch fails.
    await admin.set(meta, 'not a hash')
    await live(prefix, [2, 'E', 'other2'])
    await until('the failure is logged', () => warnings.includes('broker.redis.diverge_failed'))
    await live(prefix, [3, 'E', 'e3'])
    t.same(gaps, [], 'no gap before the new epoch is set')
    await admin.del(meta)
    await until('the gap is reported once the new epoch is set', () => gaps.length === 1)
    t.same(warnings.slice(0, 2), ['broker.redis.diverged', 'broker.redis.diverge_failed'])
    t.equal(warnings.at(-1), 'broker.redis.gap')
    t.same(seen, ['E:1:e1', 'E:2:e2'], 'nothing of the old epoch is delivered after the rewrite')
    // The stream is empty now (its metadata was deleted): the first publish starts it again.
    const publisher = await connected({ prefix })
    t.teardown(async () => { await publisher.close() })
    const next = await publisher.publish(envelope('n1'))
    await until('the new epoch\'s first event', () => seen.length === 3)
    t.equal(seen[2], `${next.epoch}:1:n1`)
  })

  t.test('a server found unsupported stores and reads nothing, and is not ready', async (t) => {
    const prefix = await redisPrefix(t)
    const b = await connected({ prefix })
    t.teardown(async () => { await b.close() })
    await b.checkVersion()
    const client = new Redis(REDIS_URL)
    t.teardown(() => { client.disconnect() })
    t.equal(await serverProblem(client), undefined, 'Redis 7 runs the broker')
    t.ok(b.ready())
    // What checkVersion records when a failover lands on an older server.
    ;(b as unknown as { unsupported: string }).unsupported = 'Redis 6.0.9 at h:1 is too old'
    t.notOk(b.ready())
    await t.rejects(b.publish(envelope('e1')), { message: 'Redis 6.0.9 at h:1 is too old' })
    await t.rejects(b.read('acme', 'tenant', 0, 10), { message: 'Redis 6.0.9 at h:1 is too old' })
    t.same(await admin.keys(`${prefix}*`), [], 'nothing was written')
  })

  t.test('every positioned publish carries a deadline in Redis time, even one sent the moment the connection is ready', async (t) => {
    const prefix = await redisPrefix(t)
    const monitor = await admin.monitor()
    t.teardown(() => { monitor.disconnect() })
    const calls: Array<{ at: number, deadline: number }> = []
    monitor.on('monitor', (time: string, args: string[]) => {
      if (args[0]?.toLowerCase().startsWith('eval') === true && args[3]?.startsWith(prefix) === true && args.length === 13) {
        calls.push({ at: Number(time) * 1000, deadline: Number(args[12]) })
      }
    })
    const b = broker({ prefix, commandTimeoutMs: 2000 })
    t.teardown(async () => { await b.close() })
    const first = new Promise<StoredEvent>((resolve, reject) => {
      (b as unknown as { command: Redis }).command.once('ready', () => { b.publish(envelope('e1')).then(resolve, reject) })
    })
    t.equal((await first).offset, 1)
    t.equal((await b.publish(envelope('e2'))).offset, 2)
    await b.publish(envelope('c', { kind: 'client', clientId: 'k' }))
    await until('both publishes are seen', () => calls.length === 2)
    for (const { at, deadline } of calls) {
      t.ok(deadline > at && deadline <= at + 2000, `deadline ${deadline - at} ms after Redis received it, within the 2000 ms timeout`)
    }
  })

  t.test('watch gives up after watchTimeoutMs, not the command timeout', async (t) => {
    const b = broker({ prefix: 'none:', url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 60_000, watchTimeoutMs: 100 })
    t.teardown(async () => { await b.close() })
    await t.rejects(b.watch('acme', 'tenant'), { message: 'redis did not confirm the subscription in time' })
  })
})

t.test('the Redis version check on a cluster asks for 7.0 on every node', async (t) => {
  t.match(versionProblem('redis_version:6.2.14\r\n', 'h:1', true), /^Redis 6\.2\.14 at h:1 is too old: tenantcast on a Redis Cluster needs Redis 7\.0 or newer on every node .*unset REDIS_CLUSTER_NODES$/)
  t.equal(versionProblem('redis_version:7.0.0\r\n', 'h:1', true), undefined)
  t.match(versionProblem('redis_version:6.1.0\r\n', 'h:1'), /needs Redis 6\.2 or newer \(history reads use exclusive XRANGE ranges\); upgrade Redis or unset REDIS_URL$/)
})
