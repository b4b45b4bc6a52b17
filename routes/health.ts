import type { FastifyInstance } from 'fastify'

/** Liveness and readiness. Readiness turns false as soon as shutdown begins. */
async function healthRoutes (app: FastifyInstance): Promise<void> {
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async (_request, reply) => {
    if (closing) return await reply.code(503).send({ ready: false, reason: 'shutting down' })
    return { ready: true }
  })
}

export default healthRoutes
