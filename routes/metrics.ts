import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken } from '../domain/bearer.js'
import { Unauthorized } from '../errors.js'

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * Prometheus scrape endpoint. It carries no tenant ids unless METRICS_TENANT_LABELS is set.
 * With METRICS_TOKEN set, a scraper must send it as a Bearer token; tenant JWTs do not open it.
 */
async function metricsRoute (app: FastifyInstance): Promise<void> {
  const expected = app.config.METRICS_TOKEN === undefined ? undefined : digest(app.config.METRICS_TOKEN)
  const requireScrapeToken = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (expected === undefined) return
    const token = bearerToken(request.headers.authorization)
    // Digests compare in constant time whatever the length of what was sent.
    if (token !== undefined && timingSafeEqual(digest(token), expected)) return
    void reply.header('WWW-Authenticate', 'Bearer')
    throw token === undefined
      ? new Unauthorized.AUTHENTICATION_REQUIRED('/metrics requires Authorization: Bearer <METRICS_TOKEN>')
      : new Unauthorized.TOKEN_INVALID('this is not the METRICS_TOKEN')
  }
  app.get('/metrics', { schema: { hide: true }, onRequest: requireScrapeToken }, async (_request, reply) => {
    void reply.header('content-type', app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metricsRoute
