import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { RedisClient } from '../domain/broker-redis.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis command connection, when REDIS_URL or REDIS_CLUSTER_NODES is set. */
    redis: RedisClient | undefined
  }
}

/**
 * One command connection for presence, idempotency and rate limits. It fails fast while Redis
 * is unreachable (no offline queue) and within REDIS_COMMAND_TIMEOUT_MS while Redis is stalled,
 * so callers answer instead of hanging.
 */
async function redisPlugin (app: FastifyInstance): Promise<void> {
  const target = redisTarget(app.config)
  if (target === undefined) {
    app.decorate('redis', undefined)
    return
  }
  // Loaded only with Redis, as the Redis broker is.
  const { closeClient, commandClient, resetOnStall, serverProblem, untilReady } = await import('../domain/broker-redis.js')
  const redis = commandClient(target, app.config.REDIS_COMMAND_TIMEOUT_MS)
  redis.on('error', (err: Error) => { app.log.warn({ action: 'redis.error', err: err.message }, 'redis connection error') })
  // Both Redis waits at start-up together stay well inside Fastify's 10 s plugin timeout, so an
  // unreachable Redis delays start-up instead of failing it.
  const stopProbe = resetOnStall(redis, app.config.REDIS_COMMAND_TIMEOUT_MS, app.log)
  if (await untilReady([redis], 3000)) {
    // A server too old for the broker fails the start with one line, before anything else
    // connects. One that only shows up later (a failover) keeps the broker not ready.
    const problem = await serverProblem(redis)
    if (problem !== undefined) {
      stopProbe()
      closeClient(redis)
      throw new Error(problem)
    }
  }
  app.decorate<RedisClient | undefined>('redis', redis)
  app.addHook('onClose', async () => {
    stopProbe()
    closeClient(redis)
  })
}

/**
 * The Redis deployment the configuration names: REDIS_CLUSTER_NODES (a Redis Cluster's seed
 * nodes) or REDIS_URL (one server), or undefined for none. Both at once is refused at start-up.
 */
export function redisTarget (config: { REDIS_URL?: string | undefined, REDIS_CLUSTER_NODES?: string | undefined }): { url?: string, clusterNodes?: string[] } | undefined {
  if (config.REDIS_CLUSTER_NODES !== undefined) return { clusterNodes: config.REDIS_CLUSTER_NODES.split(',').map((node) => node.trim()) }
  if (config.REDIS_URL !== undefined) return { url: config.REDIS_URL }
  return undefined
}

export default fp(redisPlugin, { name: 'tenantcast-redis', fastify: '5.x', dependencies: ['tenantcast-config'] })
