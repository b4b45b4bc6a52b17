import Fastify from 'fastify'
import t from 'tap'
import tenantcast, { type TenantcastOptions } from '../app.js'
import { versionProblem } from '../domain/broker-redis.js'
import { ConfigError } from '../plugins/config.js'
import { SECRET } from './helper.js'

/** Registers and readies the gateway; resolves to the start-up error, if any. */
async function boot (config: TenantcastOptions['config']): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(tenantcast, { config: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent', ...config } })
    await app.ready()
    await app.close()
    return undefined
  } catch (err) {
    return err
  }
}

t.test('REDIS_URL and REDIS_CLUSTER_NODES together are refused at start-up with one line', async (t) => {
  const err = await boot({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' })
  t.type(err, ConfigError)
  t.equal((err as Error).message, 'set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both')
})

t.test('REDIS_CLUSTER_NODES must be comma-separated host:port seeds', async (t) => {
  for (const bad of ['redis://127.0.0.1:7000', '127.0.0.1', '127.0.0.1:7000,', 'a:1,,b:2']) {
    const err = await boot({ REDIS_CLUSTER_NODES: bad })
    t.type(err, ConfigError, `${bad} is refused`)
    t.match((err as Error).message, /REDIS_CLUSTER_NODES/)
  }
})

t.test('a REDIS_PREFIX with a brace is refused: its hash tag would put every key in one slot', async (t) => {
  const err = await boot({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: 'app{1}:' })
  t.type(err, ConfigError)
  t.match((err as Error).message, /REDIS_PREFIX/)
})

t.test('a cluster node older than Redis 7.0 is refused (sharded pub/sub), while 6.2 is enough for one Redis', async (t) => {
  t.match(versionProblem('redis_version:6.2.14\r\n', '10.0.0.1:7000', true), /^Redis 6\.2\.14 at 10\.0\.0\.1:7000 is too old: tenantcast on a Redis Cluster needs Redis 7\.0 or newer on every node/)
  t.equal(versionProblem('redis_version:7.0.15\r\n', '10.0.0.1:7000', true), undefined)
  t.equal(versionProblem('redis_version:6.2.14\r\n', '10.0.0.1:6379'), undefined)
})
