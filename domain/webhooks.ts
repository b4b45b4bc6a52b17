import { createHmac } from 'node:crypto'
import type { Clock } from './clock.js'

/**
 * Makes one HTTP POST and resolves with the response status; rejects on a network error or
 * when `timeoutMs` passes first. Injected, so that domain/ holds no HTTP client.
 */
export type HttpPost = (url: string, body: string, headers: Record<string, string>, timeoutMs: number) => Promise<number>

export interface WebhookLog {
  warn (fields: object, message: string): void
  error (fields: object, message: string): void
}

export interface WebhookOptions {
  post: HttpPost
  /** WEBHOOK_SECRET: the HMAC-SHA256 key of the signature header. */
  secret: string
  timeoutMs: number
  /** Retries after the first attempt, on a 5xx, a timeout or a network error. */
  retries: number
  /** Ms before the first retry; each further one waits twice as long. */
  backoffMs: number
  clock: Clock
  log: WebhookLog
  /** An attempt failed: `gaveUp` once no retry is left (or the answer was a 4xx). */
  onFailure: (gaveUp: boolean) => void
}

export const SIGNATURE_HEADER = 'x-tenantcast-signature'

/** Calls waiting for an attempt or a retry at most; past it a new call is refused loudly. */
export const MAX_PENDING_CALLS = 1000

/**
 * The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. A
 * receiver recomputes it over the raw body with the shared secret, compares in constant time,
 * and refuses a `t` too far from its own clock (a replayed delivery).
 */
export function signature (secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/**
 * Outgoing webhooks. `send` returns at once: the calls run on timers, so a slow or failing
 * receiver never holds up ingestion or escalation. Every attempt of one call carries the same
 * `Idempotency-Key`, so a receiver that got an attempt whose answer was lost can drop the
 * retry. Retries are bounded (WEBHOOK_RETRIES) with doubling backoff; a 4xx is final.
 */
export class Webhooks {
  private pending = 0
  private readonly timers = new Set<unknown>()
  private closed = false
  private readonly waiters: Array<() => void> = []

  constructor (private readonly options: WebhookOptions) {}

  send (url: string, payload: unknown, idempotencyKey: string): boolean {
    if (this.closed) return false
    if (this.pending >= MAX_PENDING_CALLS) {
      this.options.onFailure(true)
      this.options.log.error({ action: 'webhook.refused', url, idempotencyKey, pending: this.pending }, `more than ${MAX_PENDING_CALLS} webhook calls pending; this one is dropped`)
      return false
    }
    this.pending++
    const body = JSON.stringify(payload)
    void this.attempt(url, body, idempotencyKey, 0)
    return true
  }

  /** Resolves once no call is pending (delivered, or given up). */
  async idle (): Promise<void> {
    if (this.pending === 0) return
    await new Promise<void>((resolve) => { this.waiters.push(resolve) })
  }

  close (): void {
    this.closed = true
    for (const timer of this.timers) this.options.clock.clearTimeout(timer)
    this.timers.clear()
    this.pending = 0
    for (const wake of this.waiters.splice(0)) wake()
  }

  private async attempt (url: string, body: string, key: string, attempt: number): Promise<void> {
    const { post, secret, timeoutMs, clock, log } = this.options
    let status: number | undefined
    let failure: string | undefined
    try {
      const headers = {
        'content-type': 'application/json',
        'idempotency-key': key,
        [SIGNATURE_HEADER]: signature(secret, Math.floor(clock.now() / 1000), body)
      }
      status = await post(url, body, headers, timeoutMs)
    } catch (err) {
      failure = (err as Error).message
    }
    if (this.closed) return
    if (status !== undefined && status < 300) {
      this.finish()
      return
    }
    const retryable = status === undefined || status >= 500
    const gaveUp = !retryable || attempt >= this.options.retries
    this.options.onFailure(gaveUp)
    const fields = { action: gaveUp ? 'webhook.failed' : 'webhook.retrying', url, idempotencyKey: key, attempt: attempt + 1, status, error: failure }
    if (gaveUp) {
      log.error(fields, 'webhook call failed for good')
      this.finish()
      return
    }
    log.warn(fields, 'webhook call failed; retrying')
    const timer = clock.setTimeout(() => {
      this.timers.delete(timer)
      void this.attempt(url, body, key, attempt + 1)
    }, this.options.backoffMs * 2 ** attempt)
    this.timers.add(timer)
  }

  private finish (): void {
    this.pending--
    if (this.pending === 0) for (const wake of this.waiters.splice(0)) wake()
  }
}
