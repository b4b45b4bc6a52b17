import { Type, type Static } from 'typebox'

/** Who is on the other end of a socket or a request, as proven by a verified token. */
export const Principal = Type.Object({
  userId: Type.String({ minLength: 1 }),
  tenantId: Type.String({ minLength: 1 }),
  roles: Type.Array(Type.String()),
  /** Glob patterns from the optional `channels` claim; when present, only these may be joined. */
  channels: Type.Optional(Type.Array(Type.String())),
  /** Token expiry, in epoch seconds, when the token has one. */
  exp: Type.Optional(Type.Number()),
  /** When the token was issued (`iat`), in epoch seconds, when the token says. */
  iat: Type.Optional(Type.Number())
})
export type Principal = Static<typeof Principal>

/** Roles that may use the publish API and publish server event names from a socket. */
export const PUBLISHER_ROLES: readonly string[] = ['publisher', 'admin']

/** Whether the principal holds at least one of the roles. */
export function hasAnyRole (principal: Principal, roles: readonly string[]): boolean {
  return principal.roles.some((role) => roles.includes(role))
}

/**
 * Stable reason codes for a rejected credential. They are the close reason of a 4401 and the
 * `code` of a 401, so clients can branch on them. Never rename one.
 */
export const AuthReason = {
  AUTHENTICATION_REQUIRED: 'AUTHENTICATION_REQUIRED',
  TOKEN_MALFORMED: 'TOKEN_MALFORMED',
  TOKEN_INVALID: 'TOKEN_INVALID',
  TOKEN_ALGORITHM: 'TOKEN_ALGORITHM',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  TOKEN_NOT_YET_VALID: 'TOKEN_NOT_YET_VALID',
  TOKEN_ISSUER: 'TOKEN_ISSUER',
  TOKEN_AUDIENCE: 'TOKEN_AUDIENCE',
  TOKEN_KEY_UNKNOWN: 'TOKEN_KEY_UNKNOWN',
  /** The token has no `exp` while expiry is required (JWT_REQUIRE_EXP, on in production). */
  TOKEN_EXP_MISSING: 'TOKEN_EXP_MISSING',
  /** The user's tokens issued before a time were revoked (POST /api/v1/admin/revoke). */
  TOKEN_REVOKED: 'TOKEN_REVOKED',
  TENANT_MISSING: 'TENANT_MISSING',
  USER_MISSING: 'USER_MISSING'
} as const
export type AuthReason = (typeof AuthReason)[keyof typeof AuthReason]

export class AuthFailure extends Error {
  constructor (readonly reason: AuthReason, message: string) {
    super(message)
    this.name = 'AuthFailure'
  }
}

/**
 * The token could not be checked right now, e.g. its JWKS is unreachable. Not a verdict on the
 * token: the same token may be retried after `retryAfterMs`. Sockets close with 1013
 * `AUTH_UNAVAILABLE retry=<ms>`, REST answers 503 with Retry-After; never 4401 or 401.
 */
export class AuthUnavailable extends Error {
  readonly code = 'AUTH_UNAVAILABLE'
  constructor (readonly retryAfterMs: number, message: string) {
    super(message)
    this.name = 'AuthUnavailable'
  }
}

/** Verifies a raw token and resolves to its principal, or rejects with an AuthFailure or an AuthUnavailable. */
export type VerifyToken = (token: string) => Promise<Principal>

/** Optional issuer and audience checks: each list, when set, must contain the token's value. */
export function checkIssuerAndAudience (claims: Record<string, unknown>, issuers: readonly string[], audiences: readonly string[]): void {
  if (issuers.length > 0 && (typeof claims.iss !== 'string' || !issuers.includes(claims.iss))) {
    throw new AuthFailure(AuthReason.TOKEN_ISSUER, 'the token\'s issuer is not accepted')
  }
  if (audiences.length > 0) {
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
    if (!aud.some((a) => typeof a === 'string' && audiences.includes(a))) {
      throw new AuthFailure(AuthReason.TOKEN_AUDIENCE, 'the token is not meant for this audience')
    }
  }
}

/** Control characters would let an id forge index keys and log lines; no real id has them. */
const CONTROL = /[\u0000-\u001f\u007f]/
const MAX_ID_LENGTH = 256

/**
 * An identity claim as an id: a string, or a number as its decimal string (identity providers
 * that number their users). Undefined when absent, empty, too long or holding control characters.
 */
function idOf (value: unknown): string | undefined {
  const id = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value
  if (typeof id !== 'string' || id === '' || id.length > MAX_ID_LENGTH || CONTROL.test(id)) return undefined
  return id
}

/**
 * Builds the principal from verified claims. The tenant comes only from here: never from a
 * message, a query string or a body.
 */
export function principalFromClaims (claims: Record<string, unknown>, tenantClaim: string, userClaim = 'sub'): Principal {
  const tenantId = idOf(claims[tenantClaim])
  if (tenantId === undefined) {
    throw new AuthFailure(AuthReason.TENANT_MISSING, `the token has no usable "${tenantClaim}" claim`)
  }
  const userId = idOf(claims[userClaim])
  if (userId === undefined) {
    throw new AuthFailure(AuthReason.USER_MISSING, `the token has no usable "${userClaim}" claim`)
  }
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : []
  const principal: Principal = { userId, tenantId, roles }
  if (Array.isArray(claims.channels)) principal.channels = claims.channels.filter((c): c is string => typeof c === 'string')
  if (typeof claims.exp === 'number') principal.exp = claims.exp
  if (typeof claims.iat === 'number') principal.iat = claims.iat
  return principal
}
