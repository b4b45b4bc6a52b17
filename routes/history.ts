import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { StoredEvent } from '../domain/events.js'
import { HttpErrors } from '../errors.js'
import { TENANT_STREAM, parsePosition } from '../domain/streams.js'
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
 * The tenant stream's retained events for the token's user: tenant-wide events and those
 * addressed to this user, never another user's. A single-page app calls it after a gap.
 */
async function historyRoute (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.get('/api/v1/events/history', {
    onRequest: app.auth.requirePrincipal,
    schema: {
      summary: 'Retained tenant-stream events after a position',
      querystring: Type.Object({
        since: Type.Optional(Type.String({ maxLength: 200 })),
        // Query values are strings: the TypeBox validator checks them without coercing.
        limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: '1-1000, default 100' }))
      }),
      response: { 200: HistoryReply, 400: ErrorReply, 401: ErrorReply }
    }
  }, async (request) => {
    const { tenantId, userId } = request.principal
    const since = request.query.since === undefined ? undefined : parsePosition(request.query.since)
    if (request.query.since !== undefined && since === undefined) throw new HttpErrors.VALIDATION_FAILED('since must be <epoch>:<offset>')
    const head = await app.broker.read(tenantId, TENANT_STREAM, undefined, 0)
    const recovered = since === undefined || (since.epoch === head.epoch && since.offset + 1 >= head.oldest && since.offset <= head.latest)
    const after = recovered && since !== undefined ? since.offset : head.oldest - 1
    const read = await app.broker.read(tenantId, TENANT_STREAM, after, Number(request.query.limit ?? 100))
    const visible = (e: StoredEvent): boolean => e.target.kind === 'tenant' || (e.target.kind === 'user' && e.target.userId === userId)
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
