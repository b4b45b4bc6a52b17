import type { Clock } from './clock.js'
import { tenantKey } from './tenant-key.js'

/** What a retried request gets back: the original event's identity and position. */
export interface IdempotentResult {
  id: string
  stream: string
  offset: number
  epoch: string
}

export type IdempotencyOutcome =
  | { kind: 'new', result: IdempotentResult }
  | { kind: 'replayed', result: IdempotentResult }
  | { kind: 'conflict' }

/**
 * Remembers which request each Idempotency-Key produced, per tenant, so that a retry inside
 * the window publishes nothing new. A retry that arrives while the first is still in flight
 * waits for it. A first attempt that failed is forgotten, so its retry runs again.
 */
export interface IdempotencyStore {
  run (tenantId: string, key: string, fingerprint: string, publish: () => Promise<IdempotentResult>): Promise<IdempotencyOutcome>
}

interface Entry {
  fingerprint: string
  result: Promise<IdempotentResult>
  expiresAt: number
}

/** One instance's keys, bounded by age and by count (oldest evicted first). */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, Entry>()

  constructor (private readonly options: { ttlMs: number, maxKeys: number, clock: Clock }) {}

  async run (tenantId: string, key: string, fingerprint: string, publish: () => Promise<IdempotentResult>): Promise<IdempotencyOutcome> {
    const now = this.options.clock.now()
    const id = tenantKey(tenantId, key)
    const existing = this.entries.get(id)
    if (existing !== undefined && existing.expiresAt > now) {
      if (existing.fingerprint !== fingerprint) return { kind: 'conflict' }
      return { kind: 'replayed', result: await existing.result }
    }
    const result = publish()
    this.entries.delete(id)
    this.entries.set(id, { fingerprint, result, expiresAt: now + this.options.ttlMs })
    this.evict(now)
    try {
      return { kind: 'new', result: await result }
    } catch (err) {
      if (this.entries.get(id)?.result === result) this.entries.delete(id)
      throw err
    }
  }

  /** Map iteration is insertion order, so the oldest keys come first. */
  private evict (now: number): void {
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.options.maxKeys && entry.expiresAt > now) return
      this.entries.delete(id)
    }
  }
}
