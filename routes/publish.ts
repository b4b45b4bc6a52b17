import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { CHANNEL_NAME } from '../domain/channels.js'
import type { Target } from '../domain/events.js'
import { streamOf } from '../domain/streams.js'
import { hasAnyRole, PUBLISHER_ROLES } from '../domain/principal.js'
import { HttpErrors } from '../errors.js'
import { ErrorReply } from './schemas.js'

export const PublishBody = Type.Object({
  event: Type.String({ minLength: 1, maxLength: 64 }),
  data: Type.Unknown(),
  channel: Type.Optional(Type.String({ pattern: CHANNEL_NAME })),
  userId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  correlationId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 }))
}, { additionalProperties: false })

export const PublishReply = Type.Object({
  id: Type.String(),
  /** The event's position; absent for a connection target: such events have none and are never replayed. */
  stream: Type.Optional(Type.String()),
  offset: Type.Optional(Type.Integer()),
  epoch: Type.Optional(Type.String()),
  /** Connections on this instance the event was sent to (or is held for, mid-replay). */
  delivered: Type.Integer(),
  /** For a userId or clientId target: whether it has a connection on this instance. */
  online: Type.Optional(Type.Boolean())
})

/** The server API: publish to the token's tenant, one user, one connection or one channel. */
async function publishRoute (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.post('/api/v1/publish', {
    // The in-flight cap counts from the headers on, so a tenant's slow uploads count too.
    onRequest: [app.auth.requirePrincipal, app.tenantBacklogLimit, app.tenantInflightLimit],
    config: { rateLimit: app.tenantRateLimit },
    schema: {
      summary: 'Publish an event inside the token\'s tenant (role publisher or admin)',
      headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
      body: PublishBody,
      response: { 202: PublishReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 409: ErrorReply, 413: ErrorReply, 429: ErrorReply, 503: ErrorReply }
    },
    // In order: the role, the principal's bucket, then (added by @fastify/rate-limit) the tenant's.
    preHandler: [
      async (request) => {
        if (!hasAnyRole(request.principal, PUBLISHER_ROLES)) {
          throw new HttpErrors.FORBIDDEN('the publish API needs the publisher or admin role')
        }
      },
      // Again after the body: a slow upload saw the backlog as it was when its headers came.
      app.tenantBacklogLimit,
      app.principalRateLimit
    ]
  }, async (request, reply) => {
    const { tenantId } = request.principal
    const body = request.body
    const targets = [body.channel, body.userId, body.clientId].filter((t) => t !== undefined)
    if (targets.length > 1) throw new HttpErrors.VALIDATION_FAILED('name at most one of channel, userId and clientId')
    const target: Target = body.channel !== undefined
      ? { kind: 'channel', channel: body.channel }
      : body.userId !== undefined
        ? { kind: 'user', userId: body.userId }
        : body.clientId !== undefined ? { kind: 'client', clientId: body.clientId } : { kind: 'tenant' }
    const result = await app.idempotency.once(request, reply, streamOf(target), async (id) => {
      const stored = await app.realtime.publish({
        id,
        tenantId,
        event: body.event,
        data: body.data,
        target,
        ...(body.correlationId === undefined ? {} : { correlationId: body.correlationId })
      })
      return { id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
    })
    const position = result.offset === 0 ? {} : { stream: result.stream, offset: result.offset, epoch: result.epoch }
    return await reply.code(202).send({ id: result.id, ...position, ...await reach(tenantId, target) })
  })

  /**
   * Who the target reaches: `delivered` counts this instance's sockets (the broker delivers
   * on every instance); `online` is cluster-wide with Redis.
   */
  async function reach (tenantId: string, target: Target): Promise<{ delivered: number, online?: boolean }> {
    const hub = app.hub
    switch (target.kind) {
      case 'tenant': return { delivered: hub.tenantConnectionCount(tenantId) }
      case 'channel': return { delivered: hub.channelConnectionCount(tenantId, target.channel) }
      case 'user': return { delivered: hub.userConnectionCount(tenantId, target.userId), online: await app.realtime.isUserConnected(tenantId, target.userId) }
      case 'client': return { delivered: hub.hasClient(tenantId, target.clientId) ? 1 : 0, online: await app.realtime.isClientConnected(tenantId, target.clientId) }
      case 'role': return { delivered: 0 }
    }
  }
}

export default publishRoute
