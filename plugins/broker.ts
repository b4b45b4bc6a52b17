import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Broker } from '../domain/broker.js'
import { MemoryBroker } from '../domain/broker-memory.js'
import { systemClock } from '../domain/clock.js'
import { redisTarget } from './redis.js'

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

/** The Redis broker when REDIS_URL or REDIS_CLUSTER_NODES is set, the embedded memory broker otherwise. */
async function brokerPlugin (app: FastifyInstance): Promise<void> {
  const config = app.config
  const onListenerError = (err: unknown): void => { app.log.error({ action: 'broker.listener.failed', err }, 'broker delivery listener failed') }
  let broker: Broker
  const target = redisTarget(config)
  if (target !== undefined) {
    // ioredis is loaded only by deployments that use it: it costs an idle process ~10 MB.
    const { RedisBroker } = await import('../domain/broker-redis.js')
    const redis = new RedisBroker({
      ...target,
      prefix: config.REDIS_PREFIX,
      historySize: config.HISTORY_SIZE,
      historyTtlMs: config.HISTORY_TTL * 1000,
      historyMetaTtlMs: config.HISTORY_META_TTL * 1000,
      commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
      onListenerError,
      log: app.log
    })
    // Start even when Redis is down: /ready says so, ingestion answers 503, and the gateway
    // recovers by itself once Redis is reachable. (A server too old fails the start in the Redis
    // plugin, and keeps the broker not ready when it only shows up on a reconnect.)
    if (!await redis.connected(3000)) app.log.warn({ action: 'broker.redis.unreachable' }, 'Redis is not reachable yet; not ready until it is')
    broker = redis
  } else {
    const memory = new MemoryBroker({
      historySize: config.HISTORY_SIZE,
      historyTtlMs: config.HISTORY_TTL * 1000,
      historyMetaTtlMs: config.HISTORY_META_TTL * 1000,
      clock: systemClock,
      onListenerError
    })
    // Age-based eviction also runs on quiet streams, so memory stays bounded by HISTORY_TTL,
    // and streams idle for HISTORY_META_TTL are forgotten.
    const sweeper = setInterval(() => { memory.sweep() }, Math.min(60_000, config.HISTORY_TTL * 1000))
    sweeper.unref()
    app.addHook('onClose', async () => { clearInterval(sweeper) })
    broker = memory
  }
  app.decorate('broker', broker)
  app.addHook('onClose', async () => { await broker.close() })
}

export default fp(brokerPlugin, { name: 'tenantcast-broker', fastify: '5.x', dependencies: ['tenantcast-config'] })
