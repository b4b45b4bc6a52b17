/**
 * Reads the payload of a JWT without verifying it (the server verifies; the client only needs
 * to know when to refresh). Undefined when the token is not a readable JWT.
 */
export function decodeTokenPayload (token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1]
  if (part === undefined || part === '') return undefined
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const padded = base64 + '='.repeat((4 - base64.length % 4) % 4)
    const binary = atob(padded)
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0))
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes))
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** A token's `exp` and `iat` in ms since the epoch, where present. */
export function tokenTimes (token: string): { expiresAt?: number, issuedAt?: number } {
  const payload = decodeTokenPayload(token)
  const times: { expiresAt?: number, issuedAt?: number } = {}
  if (typeof payload?.exp === 'number') times.expiresAt = payload.exp * 1000
  if (typeof payload?.iat === 'number') times.issuedAt = payload.iat * 1000
  return times
}

/**
 * When to refresh a token: `margin` ms before it expires, or by default the smaller of 30 s
 * and a tenth of its lifetime (`iat` to `exp`, or now to `exp` without `iat`). Undefined for a
 * token without `exp`, which never needs refreshing.
 */
export function refreshAt (token: string, now: number, margin?: number): number | undefined {
  const { expiresAt, issuedAt } = tokenTimes(token)
  if (expiresAt === undefined) return undefined
  const lifetime = Math.max(0, expiresAt - (issuedAt ?? now))
  return expiresAt - (margin ?? Math.min(30_000, lifetime / 10))
}
