import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createVerifier, type Algorithm, type DecodedJwt } from 'fast-jwt'
import { HttpErrors, Unauthorized } from '../errors.js'
import { bearerToken } from '../domain/bearer.js'
import { JwksKeys } from '../domain/jwks.js'
import { Revocations } from '../domain/revocations.js'
import { AuthFailure, AuthReason, AuthUnavailable, checkIssuerAndAudience, principalFromClaims, type Principal, type VerifyToken } from '../domain/principal.js'

export interface Auth {
  /** Verifies a raw token; rejects with an AuthFailure carrying a stable reason. */
  verify: VerifyToken
  /** Signs a token with JWT_SECRET (dev token, CLI, tests); throws when keys are public-only. */
  sign (claims: Record<string, unknown>, options?: { expiresIn?: number | string }): string
  /** onRequest hook: requires `Authorization: Bearer`, sets `request.principal`, or replies 401 (503 when the keys are unavailable). */
  requirePrincipal (request: FastifyRequest): Promise<void>
  /**
   * Revocations in force (the kill switch). `verify` refuses a revoked token with
   * TOKEN_REVOKED; the admin routes and the control channel add to them.
   */
  revocations: Revocations
  /** Whether a verified principal's token has been revoked since. */
  refuses (principal: Principal): boolean
  /** Called with the reason of every rejected credential, and AUTH_UNAVAILABLE when one could not be checked (metrics). */
  onFailure?: (reason: AuthReason | 'AUTH_UNAVAILABLE') => void
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

/** The header a token claims, read before any verification; undefined when unreadable. */
function tokenHeader (token: string): { alg?: unknown, kid?: unknown } | undefined {
  const dot = token.indexOf('.')
  if (dot <= 0) return undefined
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as unknown
    return typeof header === 'object' && header !== null ? header : undefined
  } catch {
    return undefined
  }
}

const list = (value: string | undefined): string[] => value === undefined ? [] : value.split(',').map((v) => v.trim()).filter((v) => v !== '')

async function authPlugin (app: FastifyInstance): Promise<void> {
  const config = app.config
  const algorithms = config.JWT_ALGORITHM_LIST as Algorithm[]
  const secret = config.JWT_SECRET
  // @fastify/jwt signs the dev and CLI tokens (HMAC only). A namespace and our own decorator
  // names let a host app's @fastify/jwt and ours coexist.
  if (secret !== undefined) {
    await app.register(fastifyJwt, {
      secret,
      sign: { algorithm: algorithms[0] },
      verify: { algorithms },
      namespace: 'tenantcast',
      decoratorName: 'tenantcastUser'
    })
  }
  const jwks = config.JWT_JWKS_URL === undefined
    ? undefined
    : new JwksKeys(config.JWT_JWKS_URL, {
      cooldownMs: config.JWT_JWKS_COOLDOWN_MS,
      maxAgeMs: config.JWT_JWKS_MAX_AGE_MS,
      waitMs: config.JWT_JWKS_WAIT_MS,
      // A verification cached against a key set that changed could outlive a withdrawn key.
      onChange: () => { (verifier as { cache?: { clear: () => void } }).cache?.clear() }
    })
  const publicKey = config.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n')
  // One verifier for every kind of key, algorithms pinned. A static key is prepared once (a
  // key function would rebuild it per token). Public-key checks cost ~20x an HMAC, so their
  // results are cached for reconnect storms; an HMAC costs about what the cache's hash would.
  const common = { algorithms, clockTolerance: config.JWT_CLOCK_SKEW * 1000, cache: secret === undefined ? 10_000 : false }
  const verifier: (token: string) => unknown = jwks !== undefined
    ? createVerifier({ ...common, key: async (decoded: DecodedJwt) => await jwks.key(typeof decoded.header.kid === 'string' ? decoded.header.kid : undefined) })
    : createVerifier({ ...common, key: (publicKey ?? secret) as string })
  const requireExp = config.JWT_REQUIRE_EXP
  const issuers = list(config.JWT_ISSUER)
  const audiences = list(config.JWT_AUDIENCE)
  const claim = config.TENANT_CLAIM
  const revocations = new Revocations(() => Date.now())

  const auth: Auth = {
    async verify (token) {
      try {
        const header = tokenHeader(token)
        if (header?.alg === undefined) throw new AuthFailure(AuthReason.TOKEN_MALFORMED, 'the token is malformed')
        const alg = header.alg
        if (typeof alg !== 'string' || !algorithms.includes(alg as Algorithm)) {
          throw new AuthFailure(AuthReason.TOKEN_ALGORITHM, `tokens signed with ${String(alg)} are not accepted`)
        }
        // The key first, even when fast-jwt has this token's result cached: a cache hit skips
        // the key lookup, and only the lookup knows whether the key set is still fresh.
        if (jwks !== undefined) await jwks.key(typeof header.kid === 'string' ? header.kid : undefined)
        let claims: Record<string, unknown>
        try {
          claims = await verifier(token) as Record<string, unknown>
        } catch (err) {
          // fast-jwt wraps what the key lookup threw (an unknown kid, an outage) in its own error.
          const original = (err as { originalError?: unknown }).originalError
          if (original instanceof AuthFailure || original instanceof AuthUnavailable) throw original
          const code = (err as { code?: unknown }).code
          throw new AuthFailure(typeof code === 'string' ? reasons[code] ?? AuthReason.TOKEN_INVALID : AuthReason.TOKEN_INVALID, (err as Error).message)
        }
        if (requireExp && typeof claims.exp !== 'number') throw new AuthFailure(AuthReason.TOKEN_EXP_MISSING, 'the token has no exp claim, and tokens must expire here')
        checkIssuerAndAudience(claims, issuers, audiences)
        const principal = principalFromClaims(claims, claim, config.USER_CLAIM)
        if (revocations.refuses(principal)) throw new AuthFailure(AuthReason.TOKEN_REVOKED, 'the token was revoked; sign in again for a new one')
        // A live socket stays open as long as its token would still be accepted.
        if (principal.exp !== undefined) principal.exp += config.JWT_CLOCK_SKEW
        return principal
      } catch (err) {
        if (err instanceof AuthFailure) auth.onFailure?.(err.reason)
        else if (err instanceof AuthUnavailable) auth.onFailure?.(err.code)
        throw err
      }
    },
    revocations,
    refuses: (principal) => revocations.refuses(principal),
    sign (claims, options) {
      if (secret === undefined) throw new Error('tokens can only be signed with JWT_SECRET')
      const jwt = (app.jwt as unknown as Record<string, { sign: (payload: object, options: object) => string }>).tenantcast
      return (jwt as { sign: (payload: object, options: object) => string }).sign(claims, options?.expiresIn === undefined ? {} : { expiresIn: options.expiresIn })
    },
    async requirePrincipal (request) {
      const token = bearerToken(request.headers.authorization)
      if (token === undefined) {
        auth.onFailure?.(AuthReason.AUTHENTICATION_REQUIRED)
        throw new Unauthorized.AUTHENTICATION_REQUIRED('an Authorization: Bearer token is required')
      }
      try {
        request.principal = await auth.verify(token)
      } catch (err) {
        if (err instanceof AuthUnavailable) throw Object.assign(new HttpErrors.AUTH_UNAVAILABLE(err.message), { retryAfterMs: err.retryAfterMs })
        const failure = err as AuthFailure
        throw new Unauthorized[failure.reason](failure.message)
      }
    }
  }
  app.decorateRequest('principal', null as unknown as Principal)
  app.decorate('auth', auth)
}

export default fp(authPlugin, { name: 'tenantcast-auth', fastify: '5.x', dependencies: ['tenantcast-config'] })
