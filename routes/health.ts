import type { FastifyInstance } from 'fastify'

/**
 * Liveness and readiness. Not ready while the broker cannot store events, while the shared
 * Redis connection (idempotency, presence) is down or being reset after a stall, or once
 * shutdown begins.
 */
async function healthRoutes (app: FastifyInstance): Promise<void> {
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async (_request, reply) => {
    if (closing) return await reply.code(503).send({ ready: false, reason: 'shutting down' })
    if (app.isUnderPressure()) return await reply.code(503).header('retry-after', '1').send({ ready: false, reason: 'under pressure' })
    if (!app.broker.ready()) return await reply.code(503).header('retry-after', '1').send({ ready: false, reason: 'broker unavailable' })
    if (app.redis !== undefined && app.redis.status !== 'ready') return await reply.code(503).header('retry-after', '1').send({ ready: false, reason: 'redis unavailable' })
    return { ready: true }
  })
}

export default healthRoutes
