import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { HttpErrors } from '../errors.js'
import { ErrorReply } from './schemas.js'

const UserId = Type.String({ minLength: 1, maxLength: 256 })

/** Exactly one target: one user's sockets, one connection, or the whole tenant. */
export const DisconnectBody = Type.Union([
  Type.Object({ userId: UserId }, { additionalProperties: false }),
  Type.Object({ clientId: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
  Type.Object({ all: Type.Literal(true) }, { additionalProperties: false })
])

export const DisconnectReply = Type.Object({
  /** Sockets this instance closed; the other instances close theirs as the message reaches them. */
  closed: Type.Integer()
})

export const RevokeBody = Type.Object({
  userId: UserId,
  /** Epoch seconds (the unit of `iat`): tokens issued before it are refused. Default: now. */
  before: Type.Optional(Type.Integer({ minimum: 0 }))
}, { additionalProperties: false })

export const RevokeReply = Type.Object({
  userId: Type.String(),
  before: Type.Integer(),
  /** Epoch seconds: `before + REVOKE_TTL`, when every refused token has expired anyway. */
  expiresAt: Type.Integer(),
  closed: Type.Integer()
})

const replies = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 429: ErrorReply, 503: ErrorReply }

/** The kill switch, for the token's tenant only (role admin). */
async function adminRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const requireAdmin = async (request: FastifyRequest): Promise<void> => {
    if (!request.principal.roles.includes('admin')) throw new HttpErrors.FORBIDDEN('the admin API needs the admin role')
  }

  app.post('/api/v1/admin/disconnect', {
    onRequest: app.auth.requirePrincipal,
    preHandler: requireAdmin,
    config: { rateLimit: app.tenantRateLimit },
    schema: {
      summary: 'Close a user\'s sockets, one connection, or every socket of the token\'s tenant, on every instance (4403 REVOKED)',
      body: DisconnectBody,
      response: { 202: DisconnectReply, ...replies }
    }
  }, async (request, reply) => {
    const body = request.body
    const closed = await app.killSwitch.disconnect({
      tenantId: request.principal.tenantId,
      ...('userId' in body ? { userId: body.userId } : {}),
      ...('clientId' in body ? { clientId: body.clientId } : {})
    })
    request.log.info({ action: 'admin.disconnect', tenantId: request.principal.tenantId, by: request.principal.userId, closed }, 'admin disconnect')
    return await reply.code(202).send({ closed })
  })

  app.post('/api/v1/admin/revoke', {
    onRequest: app.auth.requirePrincipal,
    preHandler: requireAdmin,
    config: { rateLimit: app.tenantRateLimit },
    schema: {
      summary: 'Refuse a user\'s tokens issued before a time, on every instance, and close the sockets holding one (4403 REVOKED)',
      body: RevokeBody,
      response: { 202: RevokeReply, ...replies }
    }
  }, async (request, reply) => {
    // `iat` has whole seconds: the current second counts as before now, so no token issued
    // up to this moment slips through.
    const now = Math.floor(Date.now() / 1000) + 1
    const before = request.body.before ?? now
    if (before > now + app.config.JWT_CLOCK_SKEW) throw new HttpErrors.VALIDATION_FAILED('before must not be in the future')
    const { revocation, closed } = await app.killSwitch.revoke(request.principal.tenantId, request.body.userId, before)
    request.log.info({ action: 'admin.revoke', tenantId: revocation.tenantId, userId: revocation.userId, by: request.principal.userId, before, closed }, 'admin revoke')
    return await reply.code(202).send({ userId: revocation.userId, before, expiresAt: revocation.expiresAt, closed })
  })
}

export default adminRoutes
