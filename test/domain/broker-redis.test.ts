import t from 'tap'
import { Redis } from 'ioredis'
import { RedisBroker } from '../../domain/broker-redis.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { clusterSkip, REDIS_URL, redisPrefix, redisSkip } from '../helper.js'
import { sharedCluster } from '../redis-cluster.js'
import { brokerBehaviour } from './broker-behaviour.js'

const quiet = { warn: () => {} }

type Topology = 'standalone' | 'cluster'

/** A Redis broker that is connected before the test uses it: on the shared Redis, or on this process's cluster. */
async function connected (topology: Topology, options: { prefix: string, url?: string, historySize?: number, historyTtlMs?: number }): Promise<RedisBroker> {
  const target = topology === 'standalone' ? { url: REDIS_URL } : { clusterNodes: (await sharedCluster()).seeds.split(',') }
  const broker = new RedisBroker({ ...target, historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: quiet, ...options })
  if (!await broker.connected(5000)) throw new Error('the Redis broker did not connect')
  return broker
}

const topologies: Array<{ topology: Topology, skip: string | false }> = [
  { topology: 'standalone', skip: redisSkip },
  { topology: 'cluster', skip: redisSkip === false ? clusterSkip : redisSkip }
]

for (const { topology, skip } of topologies) {
  t.test(`the Redis broker on ${topology === 'standalone' ? 'one Redis' : 'a Redis Cluster'}`, { skip }, async (t) => {
    brokerBehaviour(t, async (historySize) => await connected(topology, { prefix: await redisPrefix(t), historySize }))

    t.test('two brokers share offsets and each delivers every event once', async (t) => {
      const prefix = await redisPrefix(t)
      const a = await connected(topology, { prefix })
      const b = await connected(topology, { prefix })
      t.teardown(async () => { await a.close(); await b.close() })
      const seenA: number[] = []
      const seenB: number[] = []
      a.onDelivery((e) => { seenA.push(e.offset) })
      b.onDelivery((e) => { seenB.push(e.offset) })
      await a.watch('acme', 'tenant')
      await b.watch('acme', 'tenant')
      const stored = await Promise.all(Array.from({ length: 30 }, async (_, i) => await (i % 2 === 0 ? a : b).publish({
        id: `e${i}`, tenantId: 'acme', event: 'tick', data: { i }, target: { kind: 'tenant' }, timestamp: 'now'
      })))
      t.same(stored.map((e) => e.offset).sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1), 'no offset skipped or repeated across instances')
      for (let i = 0; i < 300 && (seenA.length < 30 || seenB.length < 30); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      t.same(seenA, Array.from({ length: 30 }, (_, i) => i + 1))
      t.same(seenB, seenA)
    })

    t.test('an unwatched stream is not delivered to this instance', async (t) => {
      const broker = await connected(topology, { prefix: await redisPrefix(t), historySize: 10 })
      t.teardown(async () => { await broker.close() })
      const seen: StoredEvent[] = []
      broker.onDelivery((e) => { seen.push(e) })
      await broker.watch('acme', 'tenant')
      await broker.publish({ id: 'x', tenantId: 'globex', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
      await broker.publish({ id: 'y', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
      for (let i = 0; i < 200 && seen.length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      await new Promise((resolve) => setTimeout(resolve, 50))
      t.same(seen.map((e) => e.tenantId), ['acme'], 'traffic follows local interest')
    })
  })
}

t.test('the Redis broker on one Redis', { skip: redisSkip }, async (t) => {

  t.test('losing the stream metadata starts a new epoch', async (t) => {
    const prefix = await redisPrefix(t)
    const broker = await connected('standalone', { prefix, historySize: 10 })
    t.teardown(async () => { await broker.close() })
    const before = await broker.publish({ id: 'a', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
    const redis = new Redis(REDIS_URL)
    const keys = await redis.keys(`${prefix}*`)
    await redis.del(...keys.filter((k) => k.endsWith(':meta')))
    redis.disconnect()
    const after = await broker.publish({ id: 'b', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
    t.not(after.epoch, before.epoch)
    t.equal(after.offset, 1)
    t.same((await broker.read('acme', 'tenant', 0, 10)).events.map((e) => e.id), ['b'], 'the old epoch\'s log went with it')
  })

  t.test('a watch that has delivered nothing yet still catches up what was published while its subscriber reconnected', async (t) => {
    const prefix = await redisPrefix(t)
    // The name lets the test kill this broker's subscriber alone: other suites share the Redis.
    const name = `tctest-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
    const broker = await connected('standalone', { prefix, url: `${REDIS_URL}?connectionName=${name}` })
    const admin = new Redis(REDIS_URL)
    t.teardown(async () => { await broker.close(); admin.disconnect() })
    const channel = (n: number, target: string): EventEnvelope => ({ id: `${target}${n}`, tenantId: 'acme', event: 'tick', data: { n }, target: { kind: 'channel', channel: target }, timestamp: 'now' })
    for (let n = 1; n <= 2; n++) await broker.publish(channel(n, 'quiet'))
    const seen: string[] = []
    broker.onDelivery((e) => { seen.push(`${e.stream}:${e.offset}`) })
    await broker.watch('acme', 'channel:quiet')
    await broker.watch('acme', 'channel:fresh')
    t.equal((await broker.read('acme', 'channel:quiet', undefined, 10)).latest, 2, 'attached at offset 2')
    t.equal((await broker.read('acme', 'channel:fresh', undefined, 10)).latest, 0, 'attached to a stream nobody published to')

    const killed = await subscribers(admin, name)
    t.equal(killed.length, 1, 'one subscriber connection')
    for (const id of killed) await admin.client('KILL', 'ID', id)
    // Published while the subscriber is away: Redis drops these live messages.
    for (let n = 3; n <= 5; n++) await broker.publish(channel(n, 'quiet'))
    await broker.publish(channel(1, 'fresh'))
    for (let i = 0; i < 500 && (await subscribers(admin, name)).every((id) => killed.includes(id)); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await broker.publish(channel(6, 'quiet'))

    for (let i = 0; i < 500 && seen.length < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(seen.filter((s) => s.startsWith('channel:quiet')), ['channel:quiet:3', 'channel:quiet:4', 'channel:quiet:5', 'channel:quiet:6'], 'every event after the attach position, once, in order')
    t.same(seen.filter((s) => s.startsWith('channel:fresh')), ['channel:fresh:1'], 'the empty stream\'s first event too')
  })

  t.test('history also drops events older than the TTL', async (t) => {
    const broker = await connected('standalone', { prefix: await redisPrefix(t), historyTtlMs: 200 })
    t.teardown(async () => { await broker.close() })
    await broker.publish({ id: 'old', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await broker.publish({ id: 'new', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
    const read = await broker.read('acme', 'tenant', 0, 10)
    t.same(read.events.map((e) => e.id), ['new'])
    t.equal(read.oldest, 2)
  })
})

/** Ids of the pub/sub connections named `name`. */
async function subscribers (admin: Redis, name: string): Promise<string[]> {
  const list = await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub') as string
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).map((line) => (/^id=(\d+)/.exec(line) as RegExpExecArray)[1] as string)
}

t.test('the Redis broker on a Redis Cluster', { skip: redisSkip === false ? clusterSkip : redisSkip }, async (t) => {
  t.test('a sharded subscriber that the cluster disconnects is resubscribed, what was published meanwhile is caught up once with no later event to reveal it, and live delivery carries on in order', async (t) => {
    const cluster = await sharedCluster()
    const broker = await connected('cluster', { prefix: await redisPrefix(t) })
    const admins = cluster.nodes.map(({ port }) => new Redis(port, '127.0.0.1'))
    t.teardown(async () => { await broker.close(); for (const admin of admins) admin.disconnect() })
    const channel = (n: number, target: string): EventEnvelope => ({ id: `${target}${n}`, tenantId: 'acme', event: 'tick', data: { n }, target: { kind: 'channel', channel: target }, timestamp: 'now' })
    // Streams spread over the shards: some land on every master.
    const names = Array.from({ length: 12 }, (_, i) => `room-${i}`)
    for (const name of names) await broker.publish(channel(1, name))
    const seen: string[] = []
    broker.onDelivery((e) => { seen.push(`${e.stream}:${e.offset}`) })
    for (const name of names) await broker.watch('acme', `channel:${name}`)
    for (const name of names) t.equal((await broker.read('acme', `channel:${name}`, undefined, 10)).latest, 1)

    // This process's cluster has no other client: every pub/sub connection is the broker's.
    let killed = 0
    for (const admin of admins) killed += Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))
    t.ok(killed >= 3, `${killed} sharded subscriber connections closed, one per master at least`)
    // Published while the subscribers are away: Redis drops these live messages.
    for (const name of names) await broker.publish(channel(2, name))
    for (let i = 0; i < 500; i++) {
      let listening = 0
      for (const admin of admins) listening += ((await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).split('\n').filter((line) => line.length > 0).length
      if (listening >= 3) break
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    // No later event reveals the gap: only the catch-up after the resubscription delivers them.
    for (let i = 0; i < 500 && seen.length < names.length; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (const name of names) t.same(seen.filter((s) => s.startsWith(`channel:${name}:`)), [`channel:${name}:2`], `${name}: the event published while away, once`)
    for (const name of names) await broker.publish(channel(3, name))
    for (let i = 0; i < 500 && seen.length < names.length * 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (const name of names) t.same(seen.filter((s) => s.startsWith(`channel:${name}:`)), [`channel:${name}:2`, `channel:${name}:3`], `${name}: live delivery carries on, in order`)
  })
})
