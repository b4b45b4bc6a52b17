import type { FastifyInstance } from 'fastify'

/** Prometheus scrape endpoint. It carries no tenant ids unless METRICS_TENANT_LABELS is set. */
async function metricsRoute (app: FastifyInstance): Promise<void> {
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    void reply.header('content-type', app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metricsRoute
