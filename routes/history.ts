import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { StoredEvent } from '../domain/events.js'
import { HttpErrors } from '../errors.js'
import { ErrorCode } from '../domain/error-codes.js'
import { TENANT_STREAM, covers, parsePosition, streamAccess } from '../domain/streams.js'
import { ErrorReply } from './schemas.js'

const HistoryEvent = Type.Object({
  id: Type.String(),
  event: Type.String(),
  data: Type.Unknown(),
  stream: Type.String(),
  offset: Type.Integer(),
  epoch: Type.String(),
  timestamp: Type.String(),
  correlationId: Type.Optional(Type.String())
})

export const HistoryReply = Type.Object({
  /** False when `since` is from another epoch or older than what is retained: refetch. */
  recovered: Type.Boolean(),
  epoch: Type.String(),
  oldest: Type.Integer(),
  latest: Type.Integer(),
  events: Type.Array(HistoryEvent),
  /** Pass as `since` to read the next page; absent when this page reached `latest`. */
  next: Type.Optional(Type.String())
})

/**
 * One stream's retained events, for a stream the token is entitled to: `tenant` (the
 * default), the token's own `user:<id>`, or a `channel:<name>` its `channels` claim allows.
 * Another user's stream is 403 STREAM_FORBIDDEN, a channel it may not join 403
 * CHANNEL_FORBIDDEN; another tenant's streams cannot be named. A single-page app calls it
 * after a `gap`.
 */
async function historyRoute (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.get('/api/v1/events/history', {
    onRequest: app.auth.requirePrincipal,
    schema: {
      summary: 'Retained events of one stream after a position',
      querystring: Type.Object({
        stream: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'tenant (default), user:<own id> or channel:<name>' })),
        since: Type.Optional(Type.String({ maxLength: 200 })),
        // Query values are strings: the TypeBox validator checks them without coercing.
        limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: '1-1000, default 100' }))
      }),
      response: { 200: HistoryReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply }
    }
  }, async (request) => {
    const { tenantId, userId } = request.principal
    const stream = request.query.stream ?? TENANT_STREAM
    const refused = streamAccess(request.principal, stream)
    if (refused === ErrorCode.STREAM_FORBIDDEN) throw new HttpErrors.STREAM_FORBIDDEN('a token reads its own user stream only')
    if (refused === ErrorCode.CHANNEL_FORBIDDEN) throw new HttpErrors.CHANNEL_FORBIDDEN('the token\'s channels claim does not allow this channel')
    if (refused !== undefined) throw new HttpErrors.UNKNOWN_STREAM('stream must be tenant, user:<id> or channel:<name>')
    const since = request.query.since === undefined ? undefined : parsePosition(request.query.since)
    if (request.query.since !== undefined && since === undefined) throw new HttpErrors.VALIDATION_FAILED('since must be <epoch>:<offset>')
    const head = await app.broker.read(tenantId, stream, undefined, 0)
    const recovered = since === undefined || covers(head, since)
    const after = recovered && since !== undefined ? since.offset : head.oldest - 1
    const read = await app.broker.read(tenantId, stream, after, Number(request.query.limit ?? 100))
    // Each stream holds only its own events; the filter is a second line behind the check above.
    const visible = (e: StoredEvent): boolean => e.target.kind !== 'user' || e.target.userId === userId
    const last = read.events.at(-1)
    return {
      recovered,
      epoch: read.epoch,
      oldest: read.oldest,
      latest: read.latest,
      events: read.events.filter(visible),
      ...(last !== undefined && last.offset < read.latest ? { next: `${read.epoch}:${last.offset}` } : {})
    }
  })
}

export default historyRoute
