import { Type, type Static } from 'typebox'
import { tenantKey } from './tenant-key.js'

/**
 * One revocation: the user's tokens issued (`iat`) before `before` are refused until
 * `expiresAt`. Both in epoch seconds, the unit of `iat`. `expiresAt` is `before` plus the
 * longest token lifetime (REVOKE_TTL): by then every refused token has expired anyway.
 */
export const Revocation = Type.Object({
  tenantId: Type.String({ minLength: 1 }),
  userId: Type.String({ minLength: 1 }),
  before: Type.Number(),
  expiresAt: Type.Number()
})
export type Revocation = Static<typeof Revocation>

/**
 * The revocations in force on this instance, checked on every token verification (a map
 * lookup, no I/O). Bounded: an entry is dropped once it expires, so the map holds at most the
 * revocations of one REVOKE_TTL.
 */
export class Revocations {
  private readonly byUser = new Map<string, Revocation>()

  /** `now` in epoch ms. */
  constructor (private readonly now: () => number) {}

  /** Adds a revocation; of two for one user, the later `before` (the stricter) wins. Idempotent. */
  add (revocation: Revocation): void {
    this.sweep()
    if (revocation.expiresAt * 1000 <= this.now()) return
    const key = tenantKey(revocation.tenantId, revocation.userId)
    const current = this.byUser.get(key)
    if (current !== undefined && current.before >= revocation.before) return
    this.byUser.set(key, { ...revocation })
  }

  /**
   * Whether a token is refused: the user has a revocation in force and the token was issued
   * before it. A token without `iat` cannot prove it is newer, so it is refused too.
   */
  refuses (token: { tenantId: string, userId: string, iat?: number | undefined }): boolean {
    if (this.byUser.size === 0) return false
    const key = tenantKey(token.tenantId, token.userId)
    const revocation = this.byUser.get(key)
    if (revocation === undefined) return false
    if (revocation.expiresAt * 1000 <= this.now()) {
      this.byUser.delete(key)
      return false
    }
    return token.iat === undefined || token.iat < revocation.before
  }

  /** Revocations in force. */
  get size (): number {
    this.sweep()
    return this.byUser.size
  }

  private sweep (): void {
    const now = this.now()
    for (const [key, revocation] of this.byUser) {
      if (revocation.expiresAt * 1000 <= now) this.byUser.delete(key)
    }
  }
}
