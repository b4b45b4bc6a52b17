import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AlarmInput, type Alarm } from '../domain/events.js'
import { hasAnyRole } from '../domain/principal.js'
import { TENANT_STREAM } from '../domain/streams.js'
import { HttpErrors } from '../errors.js'
import { ingestRoles } from '../plugins/config.js'
import { ErrorReply } from './schemas.js'

export const IngestReply = Type.Object({
  id: Type.String(),
  stream: Type.String(),
  offset: Type.Integer(),
  epoch: Type.String()
})

async function alarmsRoute (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const roles = ingestRoles(app.config)
  app.post('/api/v1/alarms', {
    onRequest: app.auth.requirePrincipal,
    // In order: the role, the principal's bucket, then (added by @fastify/rate-limit) the tenant's.
    preHandler: [
      async (request) => {
        if (roles.length > 0 && !hasAnyRole(request.principal, roles)) {
          throw new HttpErrors.FORBIDDEN(`ingesting alarms needs one of the roles ${roles.join(', ')} (INGEST_ROLES)`)
        }
      },
      app.principalRateLimit
    ],
    config: { rateLimit: app.tenantRateLimit },
    schema: {
      summary: 'Ingest an alarm for the token\'s tenant',
      headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
      body: AlarmInput,
      response: { 202: IngestReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 409: ErrorReply, 429: ErrorReply, 503: ErrorReply }
    }
  }, async (request, reply) => {
    const { tenantId, userId } = request.principal
    const body = request.body
    const result = await app.idempotency.once(request, reply, TENANT_STREAM, async (id) => {
      const alarm: Alarm = {
        id,
        type: 'alarm',
        message: body.message,
        camera: body.camera,
        severity: body.severity,
        timestamp: body.timestamp ?? new Date().toISOString(),
        ...(body.metadata === undefined ? {} : { metadata: body.metadata })
      }
      const stored = await app.realtime.publish({ id, tenantId, event: 'alarm:created', data: alarm })
      request.log.info({ action: 'alarm.ingested', eventId: id, tenantId, userId, severity: alarm.severity, offset: stored.offset }, 'alarm ingested')
      return { id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
    })
    return await reply.code(202).send(result)
  })
}

export default alarmsRoute
