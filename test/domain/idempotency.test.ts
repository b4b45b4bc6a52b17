import t from 'tap'
import { Redis } from 'ioredis'
import { RedisBroker } from '../../domain/broker-redis.js'
import type { Clock } from '../../domain/clock.js'
import { MemoryIdempotencyStore, type IdempotentResult } from '../../domain/idempotency.js'
import { RedisIdempotencyStore } from '../../domain/idempotency-redis.js'
import { REDIS_URL, redisPrefix, redisSkip } from '../helper.js'

const clock: Clock = { now: () => Date.now(), setTimeout: () => 0, clearTimeout: () => {} }
const quiet = { warn: () => {} }

function result (id: string, offset = 1): IdempotentResult {
  return { id, stream: 'tenant', offset, epoch: 'e' }
}

/** Polls a condition for at most ~5 s. */
async function until (condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 250 && !await condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
}

t.test('the memory store caps keys per tenant: one tenant\'s burst never evicts another\'s keys', async (t) => {
  const store = new MemoryIdempotencyStore({ ttlMs: 60_000, maxKeys: 3, clock })
  let published = 0
  const publish = async (): Promise<IdempotentResult> => result(`p${++published}`)
  t.equal((await store.run('b', 'kept', 'f', publish)).kind, 'new')
  for (let n = 0; n < 10; n++) await store.run('a', `burst-${n}`, 'f', publish)
  const retry = await store.run('b', 'kept', 'f', publish)
  t.match(retry, { kind: 'replayed', result: { id: 'p1' } }, 'tenant b\'s key survived tenant a\'s burst')
  t.equal((await store.run('a', 'burst-0', 'f', publish)).kind, 'new', 'tenant a\'s own oldest key was evicted at its cap')
})

t.test('the Redis store', { skip: redisSkip }, async (t) => {
  t.test('a claim left by a crashed attempt is taken over after the short lease, not after IDEMPOTENCY_TTL', async (t) => {
    const prefix = await redisPrefix(t)
    const crashed = new Redis(REDIS_URL)
    const survivor = new Redis(REDIS_URL)
    t.teardown(() => { crashed.disconnect(); survivor.disconnect() })
    const options = { prefix, ttlMs: 600_000, leaseMs: 300, waitMs: 4000 }
    // The first attempt never finishes; its process then dies (its connection goes away).
    void new RedisIdempotencyStore(crashed, options).run('acme', 'k1', 'f', async () => await new Promise<never>(() => {}), async () => undefined).catch(() => {})
    await until(async () => (await survivor.exists(`${prefix}idem:acme:k1`)) === 1)
    crashed.disconnect()
    const ids: string[] = []
    const retry = await new RedisIdempotencyStore(survivor, options).run('acme', 'k1', 'f', async (id?: string) => {
      ids.push(id ?? 'none')
      return result(id ?? 'none')
    }, async () => undefined)
    t.equal(retry.kind, 'new', 'the retry ran the request itself')
    t.equal(ids.length, 1)
    const again = await new RedisIdempotencyStore(survivor, options).run('acme', 'k1', 'f', async () => result('twice'), async () => undefined)
    t.match(again, { kind: 'replayed', result: { id: ids[0] } }, 'and its result is what later retries get')
  })

  t.test('an event stored whose result could not be recorded is reported stored, and a retry after the lease replays it', async (t) => {
    const prefix = await redisPrefix(t)
    const broker = new RedisBroker({ url: REDIS_URL, prefix, historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: quiet })
    t.teardown(async () => { await broker.close() })
    t.equal(await broker.connected(5000), true)
    const first = new Redis(REDIS_URL)
    const second = new Redis(REDIS_URL)
    t.teardown(() => { first.disconnect(); second.disconnect() })
    const options = { prefix, ttlMs: 600_000, leaseMs: 300, waitMs: 4000 }
    const publish = (connection?: Redis) => async (id?: string): Promise<IdempotentResult> => {
      const stored = await broker.publish({ id: id ?? 'generated', tenantId: 'acme', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' })
      // Redis becomes unreachable for this instance between the publish and the result's SET.
      connection?.disconnect()
      return { id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
    }
    const find = async (id: string): Promise<IdempotentResult | undefined> => {
      const read = await broker.read('acme', 'tenant', 0, 100)
      const stored = read.events.find((e) => e.id === id)
      return stored === undefined ? undefined : { id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
    }
    const outcome = await new RedisIdempotencyStore(first, options).run('acme', 'k2', 'f', publish(first), find).catch((err: Error) => err)
    t.match(outcome, { kind: 'new', result: { offset: 1 } }, 'the caller is told the event was stored')
    const retry = await new RedisIdempotencyStore(second, options).run('acme', 'k2', 'f', publish(), find)
    t.match(retry, { kind: 'replayed', result: { offset: 1 } }, 'the retry gets the stored event')
    t.same((await broker.read('acme', 'tenant', 0, 100)).events.length, 1, 'and nothing was published twice')
  })
})
