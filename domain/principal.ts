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

/** Verifies a raw token and resolves to its principal, or rejects with an AuthFailure. */
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

/**
 * Builds the principal from verified claims. The tenant comes only from here: never from a
 * message, a query string or a body.
 */
export function principalFromClaims (claims: Record<string, unknown>, tenantClaim: string): Principal {
  const tenantId = claims[tenantClaim]
  if (typeof tenantId !== 'string' || tenantId === '') {
    throw new AuthFailure(AuthReason.TENANT_MISSING, `the token has no "${tenantClaim}" claim`)
  }
  const userId = claims.sub
  if (typeof userId !== 'string' || userId === '') {
    throw new AuthFailure(AuthReason.USER_MISSING, 'the token has no "sub" claim')
  }
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : []
  const principal: Principal = { userId, tenantId, roles }
  if (Array.isArray(claims.channels)) principal.channels = claims.channels.filter((c): c is string => typeof c === 'string')
  if (typeof claims.exp === 'number') principal.exp = claims.exp
  if (typeof claims.iat === 'number') principal.iat = claims.iat
  return principal
}
