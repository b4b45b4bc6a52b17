import { createPublicKey } from 'node:crypto'
import { AuthFailure, AuthReason } from './principal.js'

interface Jwk { kid?: string, kty?: string, use?: string, [key: string]: unknown }

/**
 * Public keys from a JWKS URL, cached by `kid`. A token naming an unknown `kid` triggers one
 * refetch (key rotation), at most once per cooldown, so random kids cannot hammer the
 * identity provider.
 */
export class JwksKeys {
  private keys = new Map<string, string>()
  private fetchedAt = -Infinity
  private inflight: Promise<void> | undefined

  constructor (private readonly url: string, private readonly options: { cooldownMs: number, now?: () => number }) {}

  /** The PEM public key for a kid; throws AuthFailure TOKEN_KEY_UNKNOWN when there is none. */
  async key (kid: string | undefined): Promise<string> {
    if (kid === undefined) throw new AuthFailure(AuthReason.TOKEN_KEY_UNKNOWN, 'the token names no kid')
    const now = (this.options.now ?? Date.now)()
    if (!this.keys.has(kid) && now - this.fetchedAt >= this.options.cooldownMs) {
      this.inflight ??= this.refresh(now).finally(() => { this.inflight = undefined })
      await this.inflight
    }
    const key = this.keys.get(kid)
    if (key === undefined) throw new AuthFailure(AuthReason.TOKEN_KEY_UNKNOWN, `no key "${kid}" in the JWKS`)
    return key
  }

  private async refresh (now: number): Promise<void> {
    this.fetchedAt = now
    let body: { keys?: Jwk[] }
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(5000) })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      body = await response.json() as { keys?: Jwk[] }
    } catch (err) {
      throw new AuthFailure(AuthReason.TOKEN_KEY_UNKNOWN, `the JWKS could not be fetched: ${(err as Error).message}`)
    }
    const keys = new Map<string, string>()
    for (const jwk of body.keys ?? []) {
      if (typeof jwk.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue
      try {
        keys.set(jwk.kid, createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString())
      } catch {
        // A key this runtime cannot read is skipped, not fatal: the others still verify.
      }
    }
    this.keys = keys
  }
}
