import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { OpenAlarmLimit } from '../domain/alarm-service.js'
import { AlarmRecord } from '../domain/alarms.js'
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
    // The in-flight cap counts from the headers on, so a tenant's slow uploads count too.
    onRequest: [app.auth.requirePrincipal, app.tenantBacklogLimit, app.tenantInflightLimit],
    // In order: the role, the principal's bucket, then (added by @fastify/rate-limit) the tenant's.
    preHandler: [
      async (request) => {
        if (roles.length > 0 && !hasAnyRole(request.principal, roles)) {
          throw new HttpErrors.FORBIDDEN(`ingesting alarms needs one of the roles ${roles.join(', ')} (INGEST_ROLES)`)
        }
      },
      // Again after the body: a slow upload saw the backlog as it was when its headers came.
      app.tenantBacklogLimit,
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
      const stored = await publishAlarm(app, tenantId, alarm, body.requireAck)
      request.log.info({ action: 'alarm.ingested', eventId: id, tenantId, userId, severity: alarm.severity, offset: stored.offset }, 'alarm ingested')
      return { id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
    })
    return await reply.code(202).send(result)
  })

  const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) })
  const ActionBody = Type.Union([Type.Object({ note: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }), Type.Null()])
  app.get('/api/v1/alarms', {
    onRequest: app.auth.requirePrincipal,
    schema: {
      summary: 'The tenant\'s unresolved ackable alarms, newest first, one page at a time',
      querystring: Type.Object({
        status: Type.Optional(Type.Enum(['open', 'acknowledged', 'unresolved'], { default: 'unresolved' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
        cursor: Type.Optional(Type.String({ maxLength: 200 }))
      }),
      response: { 200: Type.Object({ alarms: Type.Array(AlarmRecord), next: Type.Optional(Type.String()) }), 400: ErrorReply, 401: ErrorReply }
    }
  }, async (request) => {
    const { status, limit, cursor } = request.query
    return await app.alarms.list(request.principal.tenantId, {
      status: status === 'unresolved' ? undefined : status,
      limit: limit ?? 50,
      cursor
    })
  })

  app.get('/api/v1/alarms/:id', {
    onRequest: app.auth.requirePrincipal,
    schema: {
      summary: 'One ackable alarm\'s state, and who received it when (user id to ISO time)',
      params: Params,
      response: { 200: Type.Object({ alarm: AlarmRecord, receipts: Type.Record(Type.String(), Type.String()) }), 401: ErrorReply, 404: ErrorReply }
    }
  }, async (request) => {
    const { tenantId } = request.principal
    const alarm = await app.alarms.get(tenantId, request.params.id)
    if (alarm === undefined) throw new HttpErrors.ALARM_NOT_FOUND(request.params.id)
    return { alarm, receipts: await app.alarms.receipts(tenantId, alarm.id) }
  })

  for (const kind of ['ack', 'resolve'] as const) {
    app.post(`/api/v1/alarms/:id/${kind}`, {
      onRequest: app.auth.requirePrincipal,
      schema: {
        summary: kind === 'ack' ? 'Acknowledge an alarm (idempotent: a second ack answers the first)' : 'Resolve an alarm (idempotent)',
        params: Params,
        body: Type.Optional(ActionBody),
        response: { 200: Type.Object({ alarm: AlarmRecord, changed: Type.Boolean() }), 400: ErrorReply, 401: ErrorReply, 404: ErrorReply }
      }
    }, async (request) => {
      const { tenantId, userId } = request.principal
      const note = request.body?.note
      const done = await app.alarms.act(tenantId, request.params.id, { kind, by: userId, at: new Date().toISOString(), note })
      if (done === undefined) throw new HttpErrors.ALARM_NOT_FOUND(request.params.id)
      return { alarm: done.record, changed: done.changed }
    })
  }
}

/**
 * Publishes an ingested alarm. An ackable one is recorded as open first (so that it is never
 * delivered without being tracked) and marked `ackable: true` in its payload; if the publish
 * then fails, the record is dropped again, since the alarm was never accepted.
 */
async function publishAlarm (app: FastifyInstance, tenantId: string, alarm: Alarm, requireAck: boolean | undefined): Promise<Awaited<ReturnType<FastifyInstance['realtime']['publish']>>> {
  if (!app.alarms.ackable(alarm.severity, requireAck)) return await app.realtime.publish({ id: alarm.id, tenantId, event: 'alarm:created', data: alarm })
  const ackable: Alarm = { ...alarm, ackable: true }
  try {
    await app.alarms.open(tenantId, ackable)
  } catch (err) {
    if (err instanceof OpenAlarmLimit) throw new HttpErrors.OPEN_ALARM_LIMIT(err.message)
    throw new HttpErrors.BROKER_UNAVAILABLE((err as Error).message)
  }
  try {
    return await app.realtime.publish({ id: alarm.id, tenantId, event: 'alarm:created', data: ackable })
  } catch (err) {
    await app.alarms.forget(tenantId, alarm.id).catch(() => {})
    throw err
  }
}

export default alarmsRoute
