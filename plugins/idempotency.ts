import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { systemClock } from '../domain/clock.js'
import { HttpErrors } from '../errors.js'
import { findInHistory, MemoryIdempotencyStore, type IdempotencyStore, type IdempotentPublish, type IdempotentResult } from '../domain/idempotency.js'
import { RedisIdempotencyStore } from '../domain/idempotency-redis.js'

export interface Idempotency {
  /**
   * Publishes once per Idempotency-Key and body: a retry returns the first result with
   * `Idempotent-Replayed: true`; the same key with another body is 409 IDEMPOTENCY_CONFLICT.
   * Without the header it simply publishes. `publish` must use the event id it is given, and
   * `stream` names the stream the event lands in, so a retry that takes over a failed attempt
   * can find what it stored.
   */
  once (request: FastifyRequest, reply: FastifyReply, stream: string, publish: IdempotentPublish): Promise<IdempotentResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    idempotency: Idempotency
  }
}

const KEY = /^[\x21-\x7e]{1,255}$/

async function idempotencyPlugin (app: FastifyInstance): Promise<void> {
  const ttlMs = app.config.IDEMPOTENCY_TTL * 1000
  // With Redis the keys are shared, so a retry that lands on another instance is deduplicated.
  const store: IdempotencyStore = app.redis === undefined
    ? new MemoryIdempotencyStore({ ttlMs, maxKeys: 100_000, clock: systemClock })
    : new RedisIdempotencyStore(app.redis, { prefix: app.config.REDIS_PREFIX, ttlMs, leaseMs: app.config.IDEMPOTENCY_LEASE_MS, log: app.log })
  app.decorate('idempotency', {
    async once (request, reply, stream, publish) {
      const key = request.headers['idempotency-key']
      if (key === undefined) return await publish(randomUUID())
      if (typeof key !== 'string' || !KEY.test(key)) throw new HttpErrors.VALIDATION_FAILED('Idempotency-Key must be 1-255 printable ASCII characters')
      const fingerprint = createHash('sha256').update(`${request.routeOptions.url ?? ''}\n${JSON.stringify(request.body)}`).digest('base64url')
      let outcome
      try {
        const tenantId = request.principal.tenantId
        const find = async (eventId: string): Promise<IdempotentResult | undefined> => await findInHistory(app.broker, tenantId, stream, eventId, app.config.HISTORY_SIZE)
        outcome = await store.run(tenantId, key, fingerprint, publish, find)
      } catch (err) {
        // A store that cannot answer must not let the event through unchecked.
        if ((err as { statusCode?: number }).statusCode !== undefined) throw err
        throw new HttpErrors.BROKER_UNAVAILABLE((err as Error).message)
      }
      if (outcome.kind === 'conflict') throw new HttpErrors.IDEMPOTENCY_CONFLICT()
      if (outcome.kind === 'replayed') void reply.header('idempotent-replayed', 'true')
      return outcome.result
    }
  } satisfies Idempotency)
}

export default fp(idempotencyPlugin, { name: 'tenantcast-idempotency', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-redis', 'tenantcast-broker'] })
