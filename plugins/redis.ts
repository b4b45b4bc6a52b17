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
 * One command connection for presence, idempotency and rate limits. It fails fast while Redis
 * is unreachable (no offline queue) and within REDIS_COMMAND_TIMEOUT_MS while Redis is stalled,
 * so callers answer instead of hanging.
 */
async function redisPlugin (app: FastifyInstance): Promise<void> {
  const url = app.config.REDIS_URL
  if (url === undefined) {
    app.decorate('redis', undefined)
    return
  }
  // Loaded only with REDIS_URL, as the Redis broker is.
  const [{ Redis }, { commandConnection, resetOnStall, untilReady, versionProblem }] = await Promise.all([import('ioredis'), import('../domain/broker-redis.js')])
  const redis = new Redis(url, commandConnection(app.config.REDIS_COMMAND_TIMEOUT_MS))
  redis.on('error', (err: Error) => { app.log.warn({ action: 'redis.error', err: err.message }, 'redis connection error') })
  // Both Redis waits at start-up together stay well inside Fastify's 10 s plugin timeout, so an
  // unreachable Redis delays start-up instead of failing it.
  const stopProbe = resetOnStall(redis, app.config.REDIS_COMMAND_TIMEOUT_MS, app.log)
  if (await untilReady([redis], 3000)) {
    // A server too old for the broker fails the start with one line, before anything else
    // connects. One that only shows up later (a failover) keeps the broker not ready.
    const problem = versionProblem(await redis.info('server'), `${redis.options.host ?? ''}:${redis.options.port ?? ''}`)
    if (problem !== undefined) {
      stopProbe()
      redis.disconnect()
      throw new Error(problem)
    }
  }
  app.decorate('redis', redis)
  app.addHook('onClose', async () => {
    stopProbe()
    redis.disconnect()
  })
}

export default fp(redisPlugin, { name: 'tenantcast-redis', fastify: '5.x', dependencies: ['tenantcast-config'] })
