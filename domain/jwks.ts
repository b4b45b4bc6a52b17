import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { systemClock, type Clock } from './clock.js'
import { AuthFailure, AuthReason, AuthUnavailable } from './principal.js'

interface Jwk { kid?: string, kty?: string, use?: string, [key: string]: unknown }

export interface JwksOptions {
  /** Least ms between two fetches; every attempt counts, a failed one too. */
  cooldownMs: number
  /** Ms after a fetch past which its keys are no longer trusted without a refetch. */
  maxAgeMs: number
  /** Longest ms one lookup waits for a fetch: the one in flight, or the next one the cooldown allows. */
  waitMs: number
  /** Ms a fetch may take before it counts as failed. */
  fetchTimeoutMs?: number
  /** Called after a fetch whose key set differs from the one before (drop cached verifications). */
  onChange?: () => void
  clock?: Clock
}

/** The least retry hint: a client told to come back sooner would only find the same outage. */
const MIN_RETRY_MS = 1000

/**
 * Public keys from a JWKS URL, cached by `kid`.
 *
 * Contract of `key(kid)`:
 * - A kid in a key set fetched less than `maxAgeMs` ago resolves at once. An older key set is
 *   not trusted: the lookup refetches, so a key the JWKS withdrew is refused within `maxAgeMs`.
 * - Otherwise the lookup waits, at most `waitMs`, for a fetch: the one in flight, or the next
 *   one the cooldown allows. Every waiting lookup shares that one fetch, so unknown kids cost
 *   the identity provider at most one request per cooldown.
 * - After a successful fetch that it waited for, a kid still absent is refused for good
 *   (AuthFailure `TOKEN_KEY_UNKNOWN`): this JWKS does not sign that token.
 * - When no such answer can be had in time (the fetch failed or is slow, or the cooldown
 *   forbids a fetch within `waitMs`) it rejects with AuthUnavailable: the token was not judged,
 *   and `retryAfterMs` says when a retry can be answered.
 */
export class JwksKeys {
  private keys = new Map<string, string>()
  /** When the current key set's fetch began (its keys are at least that fresh). */
  private loadedAt = -Infinity
  /** When the last fetch began, successful or not: the cooldown counts from here. */
  private attemptedAt = -Infinity
  private lastError = ''
  /** When the pending fetch begins (it may be waiting out the cooldown). */
  private pendingAt = -Infinity
  /** The pending fetch, possibly still waiting out the cooldown; resolves to whether it succeeded. */
  private inflight: Promise<boolean> | undefined
  private readonly clock: Clock

  constructor (private readonly url: string, private readonly options: JwksOptions) {
    this.clock = options.clock ?? systemClock
  }

  /** The PEM public key for a kid; see the class contract for when it waits and how it fails. */
  async key (kid: string | undefined): Promise<string> {
    if (kid === undefined) throw new AuthFailure(AuthReason.TOKEN_KEY_UNKNOWN, 'the token names no kid')
    const now = this.clock.now()
    if (now - this.loadedAt < this.options.maxAgeMs) {
      const key = this.keys.get(kid)
      if (key !== undefined) return key
    }
    const deadline = now + this.options.waitMs
    const fetched = this.inflight ?? this.schedule(now, deadline)
    const succeeded = await this.within(fetched, deadline - now)
    if (succeeded === undefined) throw new AuthUnavailable(Math.max(MIN_RETRY_MS, this.pendingAt - this.clock.now()), 'the JWKS did not answer in time')
    if (!succeeded) {
      throw new AuthUnavailable(Math.max(MIN_RETRY_MS, this.attemptedAt + this.options.cooldownMs - this.clock.now()), `the JWKS could not be fetched: ${this.lastError}`)
    }
    const key = this.keys.get(kid)
    if (key === undefined) throw new AuthFailure(AuthReason.TOKEN_KEY_UNKNOWN, `no key "${kid}" in the JWKS`)
    return key
  }

  /** Starts the next fetch the cooldown allows, or refuses at once when that is past the deadline. */
  private schedule (now: number, deadline: number): Promise<boolean> {
    const at = Math.max(now, this.attemptedAt + this.options.cooldownMs)
    if (at > deadline) {
      throw new AuthUnavailable(Math.max(MIN_RETRY_MS, at - now), `the token's kid is not in the cached JWKS, which may be refetched only in ${at - now} ms`)
    }
    this.pendingAt = at
    const start = at === now ? Promise.resolve() : new Promise<void>((resolve) => { this.clock.setTimeout(resolve, at - now) })
    const fetched = start.then(async () => await this.refresh()).finally(() => { this.inflight = undefined })
    this.inflight = fetched
    return fetched
  }

  /** The promise's value, or undefined when `ms` pass first. */
  private async within<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: unknown
    const timeout = new Promise<undefined>((resolve) => { timer = this.clock.setTimeout(() => { resolve(undefined) }, Math.max(0, ms)) })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      this.clock.clearTimeout(timer)
    }
  }

  /** One fetch. Never rejects: a failure is kept in `lastError` and leaves the key set as it was. */
  private async refresh (): Promise<boolean> {
    const startedAt = this.clock.now()
    this.attemptedAt = startedAt
    const keys = new Map<string, string>()
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5000) })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const body = await response.json() as { keys?: unknown }
      if (!Array.isArray(body?.keys)) throw new Error('the response has no "keys" array')
      for (const jwk of body.keys as Jwk[]) {
        if (typeof jwk?.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue
        try {
          keys.set(jwk.kid, createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString())
        } catch {
          // A key this runtime cannot read is skipped, not fatal: the others still verify.
        }
      }
    } catch (err) {
      this.lastError = (err as Error).message
      return false
    }
    const changed = keys.size !== this.keys.size || [...keys].some(([kid, pem]) => this.keys.get(kid) !== pem)
    this.keys = keys
    this.loadedAt = startedAt
    if (changed) this.options.onChange?.()
    return true
  }
}
