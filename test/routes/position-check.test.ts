import { Redis } from 'ioredis'
import t from 'tap'
import { streamKeys } from '../../domain/broker-redis.js'
import { connect as sdk, type TenantcastClient } from '../../client/index.js'
import { eventually, reach, tick } from '../client/helpers.js'
import { build, post, REDIS_URL, redisPrefix, redisSkip, sign, type Gateway } from '../helper.js'

/**
 * The server's position check against a real Redis. A pub/sub message lost on a quiet stream
 * is made the way Redis loses it: the event is stored (offset assigned, appended to the log)
 * and its live message never reaches the instance. Nothing later on the stream reveals it.
 */
async function storeWithoutPublishing (redis: Redis, prefix: string, tenantId: string, stream: string, event: string): Promise<number> {
  const keys = streamKeys(prefix, tenantId, stream)
  const offset = await redis.hincrby(keys.meta, 'latest', 1)
  const envelope = { id: `lost-${offset}`, tenantId, event, data: { lost: true }, target: { kind: 'tenant' }, timestamp: new Date().toISOString() }
  await redis.xadd(keys.log, `${offset}-0`, 'e', JSON.stringify(envelope), 't', String(Date.now()))
  return offset
}

async function gateway (t: { teardown (fn: () => unknown): void }, interval: number): Promise<{ gw: Gateway, redis: Redis, prefix: string }> {
  const prefix = await redisPrefix(t)
  const gw = await build(t, { REDIS_URL, REDIS_PREFIX: prefix, POSITION_CHECK_INTERVAL: interval })
  const redis = new Redis(REDIS_URL)
  t.teardown(() => { redis.disconnect() })
  return { gw, redis, prefix }
}

function client (t: { teardown (fn: () => unknown): void }, gw: Gateway): { sdk: TenantcastClient, seen: number[], closes: string[] } {
  const c = sdk({ url: gw.ws, token: sign(), reconnect: { initialDelay: 10, maxDelay: 20 } })
  t.teardown(() => { c.close() })
  const seen: number[] = []
  const closes: string[] = []
  c.on('event', (frame) => { if (frame.stream === 'tenant') seen.push(frame.offset as number) })
  c.on('close', (info) => { closes.push(`${info.code} ${info.reason}`) })
  return { sdk: c, seen, closes }
}

t.test('a live message lost on a quiet stream becomes a resume: the check closes the stream\'s sockets with 4008 STREAM_BEHIND', { skip: redisSkip }, async (t) => {
  const { gw, redis, prefix } = await gateway(t, 100)
  const alice = client(t, gw)
  await reach(alice.sdk, 'open')
  const publisher = sign({ sub: 'backend', roles: ['publisher'] })
  t.equal((await post(gw, '/api/v1/publish', publisher, { event: 'first', data: {} })).status, 202)
  t.ok(await eventually(() => alice.seen.length === 1))
  t.equal(await storeWithoutPublishing(redis, prefix, 't1', 'tenant', 'lost'), 2)
  t.ok(await eventually(() => alice.seen.length === 2, 5000), 'the lost event reached the handlers')
  t.same(alice.seen, [1, 2], 'once, in order')
  t.same(alice.closes, ['4008 STREAM_BEHIND'], 'through one resume that says why')
  t.ok(gw.logs.some((line) => line.includes('"action":"stream.behind"')), 'and the instance logged it')
})

t.test('without the check, the same loss goes unnoticed', { skip: redisSkip }, async (t) => {
  const { gw, redis, prefix } = await gateway(t, 0)
  const alice = client(t, gw)
  await reach(alice.sdk, 'open')
  const publisher = sign({ sub: 'backend', roles: ['publisher'] })
  t.equal((await post(gw, '/api/v1/publish', publisher, { event: 'first', data: {} })).status, 202)
  t.ok(await eventually(() => alice.seen.length === 1))
  await storeWithoutPublishing(redis, prefix, 't1', 'tenant', 'lost')
  await tick(1000)
  t.same(alice.seen, [1], 'the handlers never see offset 2')
  t.same(alice.closes, [])
})

t.test('events in flight are not mistaken for a loss: a busy stream is never closed', { skip: redisSkip }, async (t) => {
  const { gw } = await gateway(t, 50)
  const alice = client(t, gw)
  await reach(alice.sdk, 'open')
  const publisher = sign({ sub: 'backend', roles: ['publisher'] })
  for (let i = 0; i < 100; i++) await post(gw, '/api/v1/publish', publisher, { event: 'busy', data: { i } })
  t.ok(await eventually(() => alice.seen.length === 100))
  await tick(300)
  t.same(alice.closes, [], 'no socket was closed')
})
