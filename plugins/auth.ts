import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Unauthorized } from '../domain/http-errors.js'
import { AuthFailure, AuthReason, principalFromClaims, type Principal, type VerifyToken } from '../domain/principal.js'

export interface Auth {
  /** Verifies a raw token; throws AuthFailure with a stable reason. */
  verify: VerifyToken
  /** Signs a token with the configured secret and first algorithm (dev token, CLI, tests). */
  sign (claims: Record<string, unknown>, options?: { expiresIn?: number | string }): string
  /** onRequest hook: requires `Authorization: Bearer`, sets `request.principal`, or replies 401. */
  requirePrincipal (request: FastifyRequest): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: Auth
  }
  interface FastifyRequest {
    principal: Principal
  }
}

/** fast-jwt's error codes, mapped onto our stable reasons. Anything unknown is TOKEN_INVALID. */
const reasons: Record<string, AuthReason> = {
  FAST_JWT_EXPIRED: AuthReason.TOKEN_EXPIRED,
  FAST_JWT_INACTIVE: AuthReason.TOKEN_NOT_YET_VALID,
  FAST_JWT_INVALID_ALGORITHM: AuthReason.TOKEN_ALGORITHM,
  FAST_JWT_MALFORMED: AuthReason.TOKEN_MALFORMED,
  FAST_JWT_INVALID_TYPE: AuthReason.TOKEN_MALFORMED,
  FAST_JWT_INVALID_PAYLOAD: AuthReason.TOKEN_MALFORMED,
  FAST_JWT_INVALID_SIGNATURE: AuthReason.TOKEN_INVALID,
  FAST_JWT_MISSING_SIGNATURE: AuthReason.TOKEN_INVALID
}

async function authPlugin (app: FastifyInstance): Promise<void> {
  const algorithms = app.config.JWT_ALGORITHMS.split(',') as Array<'HS256' | 'HS384' | 'HS512'>
  // A namespace and our own decorator names, so that a host app's @fastify/jwt and ours coexist.
  await app.register(fastifyJwt, {
    secret: app.config.JWT_SECRET,
    sign: { algorithm: algorithms[0] },
    verify: { algorithms },
    namespace: 'tenantcast',
    decoratorName: 'tenantcastUser'
  })
  const jwt = (app.jwt as unknown as Record<string, JWT>).tenantcast as JWT
  const claim = app.config.TENANT_CLAIM

  const verify: VerifyToken = (token) => {
    let claims: Record<string, unknown>
    try {
      claims = jwt.verify<Record<string, unknown>>(token)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      const reason = typeof code === 'string' ? reasons[code] ?? AuthReason.TOKEN_INVALID : AuthReason.TOKEN_INVALID
      throw new AuthFailure(reason, (err as Error).message)
    }
    return principalFromClaims(claims, claim)
  }

  app.decorateRequest('principal', null as unknown as Principal)
  app.decorate('auth', {
    verify,
    sign: (claims, options) => jwt.sign(claims, options?.expiresIn === undefined ? {} : { expiresIn: options.expiresIn }),
    async requirePrincipal (request) {
      const header = request.headers.authorization
      const match = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(header)
      if (match === null) throw new Unauthorized.AUTHENTICATION_REQUIRED('an Authorization: Bearer token is required')
      try {
        request.principal = verify(match[1] as string)
      } catch (err) {
        const failure = err as AuthFailure
        throw new Unauthorized[failure.reason](failure.message)
      }
    }
  } satisfies Auth)
}

export default fp(authPlugin, { name: 'tenantcast-auth', fastify: '5.x', dependencies: ['tenantcast-config'] })
