import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { finished } from 'node:stream'
import { Counter } from 'prom-client'
import { LogThrottle } from '../domain/log-throttle.js'
import { tenantKey } from '../domain/tenant-key.js'
import { errorBody, HttpErrors } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Route-level rate limit for REST ingestion: keyed by the token's tenant, not by IP. */
    tenantRateLimit: RateLimitOptions
    /**
     * preHandler, after auth and before the route's `tenantRateLimit` hook: the principal's own
     * bucket. A request it refuses never reaches, and so never spends, the tenant's budget.
     */
    principalRateLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /**
     * onRequest, after auth: the tenant's cap on ingestion requests in flight at once on this
     * instance (MAX_INFLIGHT_PER_TENANT). Counted from the headers, before the body is read,
     * so that slow uploads count too; released when the response finishes or the request is
     * aborted, whichever comes first.
     */
    tenantInflightLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /**
     * onRequest, after auth: refuses a new event while the tenant's queued fan-out on this
     * instance is past MAX_QUEUED_WRITES_PER_TENANT socket writes. The in-flight cap bounds
     * the requests; this bounds the work each accepted one leaves behind, so a 202 stays a
     * delivery this instance will make instead of a backlog that ends in slow-consumer closes.
     */
    tenantBacklogLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/** At most one warning per kind of refusal (and tenant) per this many ms; the metrics count each one. */
const REFUSAL_LOG_MS = 10_000

/**
 * Load protection: REST ingestion per principal inside a budget per tenant (both cluster-wide
 * through Redis when it is set), and @fastify/under-pressure, which sheds requests with 503
 * and fails /ready before the event loop drowns.
 */
async function limitsPlugin (app: FastifyInstance): Promise<void> {
  // A warning per refused request would add a flood of log lines to the flood being refused.
  const refusals = new LogThrottle(REFUSAL_LOG_MS)
  await app.register(rateLimit, {
    global: false,
    // With Redis down the limiter steps aside; publishing then answers 503 on its own.
    ...(app.redis === undefined ? {} : { redis: app.redis, nameSpace: `${app.config.REDIS_PREFIX}rl:`, skipOnError: true })
  })
  app.decorate('tenantRateLimit', {
    max: app.config.REST_RATE_LIMIT,
    timeWindow: 60_000,
    // After auth (onRequest), so the key is the verified tenant.
    hook: 'preHandler',
    keyGenerator: (request: FastifyRequest) => `tenant:${request.principal.tenantId}`,
    errorResponseBuilder: (request: FastifyRequest, context: { max: number, after: string }) => {
      app.metrics.observer.rateLimited('rest', request.principal.tenantId)
      const suppressed = refusals.take(`rest ${request.principal.tenantId}`)
      if (suppressed !== undefined) request.log.warn({ action: 'rest.rate_limited', tenantId: request.principal.tenantId, suppressed }, 'tenant ingestion rate limit hit')
      return errorBody(new HttpErrors.RATE_LIMITED(`more than ${context.max} requests per minute for this tenant; retry in ${context.after}`))
    }
  } satisfies RateLimitOptions)
  const perPrincipal = app.config.REST_RATE_LIMIT_PER_PRINCIPAL
  const principalBucket = app.createRateLimit({
    max: perPrincipal,
    timeWindow: 60_000,
    keyGenerator: (request: FastifyRequest) => `principal:${tenantKey(request.principal.tenantId, request.principal.userId)}`
  })
  app.decorate('principalRateLimit', async (request: FastifyRequest, reply: FastifyReply) => {
    const result = await principalBucket(request)
    if (result.isAllowed || !result.isExceeded) return
    const { tenantId, userId } = request.principal
    app.metrics.observer.rateLimited('rest', tenantId)
    const suppressed = refusals.take(`principal ${tenantKey(tenantId, userId)}`)
    if (suppressed !== undefined) request.log.warn({ action: 'rest.rate_limited', scope: 'principal', tenantId, userId, suppressed }, 'principal ingestion rate limit hit')
    void reply.header('retry-after', result.ttlInSeconds)
    throw new HttpErrors.RATE_LIMITED(`more than ${perPrincipal} requests per minute for this token; retry in ${result.ttlInSeconds} seconds`)
  })
  const maxInflight = app.config.MAX_INFLIGHT_PER_TENANT
  // Per tenant with requests in flight, how many; an entry is deleted when it falls to 0, so
  // the map is bounded by the requests themselves.
  const inflight = new Map<string, number>()
  app.decorate('tenantInflightLimit', async (request: FastifyRequest, reply: FastifyReply) => {
    if (maxInflight === 0) return
    const tenantId = request.principal.tenantId
    const count = inflight.get(tenantId) ?? 0
    if (count >= maxInflight) {
      app.metrics.observer.rateLimited('inflight', tenantId)
      const suppressed = refusals.take(`inflight ${tenantId}`)
      if (suppressed !== undefined) request.log.warn({ action: 'rest.inflight_limited', tenantId, inflight: count, suppressed }, 'tenant in-flight ingestion cap hit')
      void reply.header('retry-after', '1')
      throw new HttpErrors.TENANT_INFLIGHT_LIMIT(`more than ${maxInflight} ingestion requests in flight for this tenant; retry after Retry-After`)
    }
    inflight.set(tenantId, count + 1)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      const left = (inflight.get(tenantId) ?? 1) - 1
      if (left <= 0) inflight.delete(tenantId)
      else inflight.set(tenantId, left)
    }
    // When the response is written, or the client went away first; `finished` also calls back
    // for a response already closed, as it is when the client left while auth awaited a key.
    finished(reply.raw, release)
  })
  const maxQueued = app.config.MAX_QUEUED_WRITES_PER_TENANT
  app.decorate('tenantBacklogLimit', async (request: FastifyRequest, reply: FastifyReply) => {
    if (maxQueued === 0) return
    const tenantId = request.principal.tenantId
    const queued = app.hub.backlog(tenantId)
    // Past, not at: one event is always taken below the cap, whatever its socket count.
    if (queued <= maxQueued) return
    app.metrics.observer.rateLimited('backlog', tenantId)
    const suppressed = refusals.take(`backlog ${tenantId}`)
    if (suppressed !== undefined) request.log.warn({ action: 'rest.backlogged', tenantId, queuedWrites: queued, suppressed }, 'tenant delivery backlog cap hit')
    void reply.header('retry-after', '1')
    throw new HttpErrors.TENANT_BACKLOGGED(`${queued} socket writes are queued for this tenant, past ${maxQueued}; retry after Retry-After`)
  })
  const shed = new Counter({ name: 'tenantcast_requests_shed_total', help: 'Requests and upgrades refused with 503 OVERLOADED by load protection', registers: [app.metrics.registry] })
  await app.register(underPressure, {
    maxEventLoopDelay: app.config.MAX_EVENT_LOOP_DELAY,
    exposeStatusRoute: false,
    // A defined answer, 503 OVERLOADED with Retry-After, instead of the plugin's error, which
    // the error handler can only report as a 500 (and log at error level, per request).
    pressureHandler: (request: FastifyRequest, reply: FastifyReply, _type: string, value: unknown) => {
      shed.inc()
      const suppressed = refusals.take('shed')
      // No sample in a window (Infinity) means the loop was blocked for all of it.
      if (suppressed !== undefined) request.log.warn({ action: 'request.shed', eventLoopDelayMs: Number.isFinite(value) ? Math.round(value as number) : null, shed: suppressed + 1 }, 'event loop saturated: shedding requests with 503 OVERLOADED')
      const delay = Number.isFinite(value) ? `${Math.round(value as number)} ms` : 'over a whole sample window'
      // Sent here: Fastify runs no later hook or handler for a reply already sent.
      void reply.code(503).header('retry-after', '1').send(errorBody(new HttpErrors.OVERLOADED(delay)))
    }
  })
}

export default fp(limitsPlugin, { name: 'tenantcast-limits', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-redis', 'tenantcast-metrics', 'tenantcast-hub'] })
