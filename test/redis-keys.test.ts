import t from 'tap'
import { Redis } from 'ioredis'
import { build, connect, postAlarm, post, redisPrefix, redisSkip, REDIS_URL, sign } from './helper.js'

/** Every key under a prefix with its TTL in ms (-1: none) and its MEMORY USAGE in bytes. */
async function keysOf (redis: Redis, prefix: string): Promise<Array<{ key: string, ttl: number, bytes: number }>> {
  const found: Array<{ key: string, ttl: number, bytes: number }> = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      const [ttl, bytes] = await Promise.all([redis.pttl(key), redis.memory('USAGE', key)])
      found.push({ key, ttl, bytes: Number(bytes ?? 0) })
    }
  } while (cursor !== '0')
  return found
}

t.test('Redis keys', { skip: redisSkip }, async (t) => {
  t.test('10,000 subscribe/unsubscribe cycles on distinct channels leave no key without a TTL and no key per channel', async (t) => {
    const prefix = await redisPrefix(t)
    // The frame limits are raised so that one socket can run the whole loop quickly.
    const gw = await build(t, { REDIS_URL, REDIS_PREFIX: prefix, CLIENT_FRAME_RATE: 100_000, CLIENT_FRAME_BURST: 100_000, MAX_CHANNELS: 100 })
    const redis = new Redis(REDIS_URL)
    t.teardown(() => { redis.disconnect() })
    const client = await connect(gw)
    const publisher = sign({ sub: 'backend', roles: ['publisher'] })
    // A few channels that do carry events: their keys must exist and carry TTLs.
    for (let n = 0; n < 3; n++) t.equal((await post(gw, '/api/v1/publish', publisher, { event: 'tick', data: {}, channel: `busy-${n}` })).status, 202)
    t.equal((await postAlarm(gw, sign())).status, 202)

    const cycles = 10_000
    const batch = 100
    for (let start = 0; start < cycles; start += batch) {
      for (let n = start; n < start + batch; n++) client.send({ type: 'subscribe', channel: `fresh-${n}` })
      await client.collect('subscribed', start + batch)
      for (let n = start; n < start + batch; n++) client.send({ type: 'unsubscribe', channel: `fresh-${n}` })
      await client.collect('unsubscribed', start + batch)
    }
    t.equal(client.frames.filter((f) => f.type === 'error').length, 0, 'every cycle was accepted')

    const keys = await keysOf(redis, prefix)
    t.same(keys.filter((k) => k.ttl < 0).map((k) => k.key), [], 'every key has a TTL')
    t.same(keys.filter((k) => k.key.includes(':fresh-')).map((k) => k.key), [], 'reading a stream that does not exist creates nothing')
    t.ok(keys.some((k) => k.key.endsWith('s:{t1:channel:busy-0}:log')), 'a stream with events keeps its log')
    const bytes = keys.reduce((sum, k) => sum + k.bytes, 0)
    t.ok(bytes < 64 * 1024, `the keys under the prefix hold ${bytes} bytes in ${keys.length} keys (bound: 64 KiB)`)
    client.close()
  })

  t.test('a log expires HISTORY_TTL after its last event and its metadata after HISTORY_META_TTL, each refreshed on use', async (t) => {
    const prefix = await redisPrefix(t)
    const gw = await build(t, { REDIS_URL, REDIS_PREFIX: prefix, HISTORY_TTL: 60, HISTORY_META_TTL: 3600 })
    const redis = new Redis(REDIS_URL)
    t.teardown(() => { redis.disconnect() })
    t.equal((await postAlarm(gw, sign())).status, 202)
    const log = `${prefix}s:{t1:tenant}:log`
    const meta = `${prefix}s:{t1:tenant}:meta`
    const [logTtl, metaTtl] = [await redis.pttl(log), await redis.pttl(meta)]
    t.ok(logTtl > 55_000 && logTtl <= 60_000, `log TTL ${logTtl} ms is HISTORY_TTL`)
    t.ok(metaTtl > 3_595_000 && metaTtl <= 3_600_000, `meta TTL ${metaTtl} ms is HISTORY_META_TTL`)
    await redis.pexpire(log, 10_000)
    await redis.pexpire(meta, 10_000)
    t.equal((await postAlarm(gw, sign())).status, 202)
    t.ok(await redis.pttl(log) > 55_000, 'a publish refreshes the log')
    t.ok(await redis.pttl(meta) > 3_595_000, 'a publish refreshes the metadata')
    await redis.pexpire(meta, 10_000)
    const reader = await connect(gw)
    t.ok(await redis.pttl(meta) > 3_595_000, 'a read refreshes the metadata')
    reader.close()
  })
})
