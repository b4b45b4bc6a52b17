import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis command connection, when REDIS_URL is set. */
    redis: Redis | undefined
  }
}

/**
 * One command connection for presence and idempotency. It fails fast while Redis is
 * unreachable (no offline queue), so callers answer at once instead of hanging.
 */
async function redisPlugin (app: FastifyInstance): Promise<void> {
  const url = app.config.REDIS_URL
  if (url === undefined) {
    app.decorate('redis', undefined)
    return
  }
  // Loaded only with REDIS_URL, as the Redis broker is.
  const [{ Redis }, { untilReady }] = await Promise.all([import('ioredis'), import('../domain/broker-redis.js')])
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  redis.on('error', (err: Error) => { app.log.warn({ action: 'redis.error', err: err.message }, 'redis connection error') })
  // Both Redis waits at start-up together stay well inside Fastify's 10 s plugin timeout, so an
  // unreachable Redis delays start-up instead of failing it.
  await untilReady([redis], 3000)
  app.decorate('redis', redis)
  app.addHook('onClose', async () => { redis.disconnect() })
}

export default fp(redisPlugin, { name: 'tenantcast-redis', fastify: '5.x', dependencies: ['tenantcast-config'] })
