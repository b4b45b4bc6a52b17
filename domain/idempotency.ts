import { randomUUID } from 'node:crypto'
import type { Broker } from './broker.js'
import type { Clock } from './clock.js'

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

/** Publishes the event under the given id (the store picks it, so a retry can look it up). */
export type IdempotentPublish = (eventId: string) => Promise<IdempotentResult>
/** The stored event with this id, if history still holds it. */
export type IdempotentFind = (eventId: string) => Promise<IdempotentResult | undefined>

/**
 * Remembers which request each Idempotency-Key produced, per tenant, so that a retry inside
 * the window publishes nothing new. A retry that arrives while the first is still in flight
 * waits for it. A first attempt that failed, or died, is taken over by its retry: when the
 * event it published is found it is replayed, otherwise the retry publishes it (same id).
 */
export interface IdempotencyStore {
  run (tenantId: string, key: string, fingerprint: string, publish: IdempotentPublish, find: IdempotentFind): Promise<IdempotencyOutcome>
}

/**
 * Looks an event up by id in what a stream still holds (a bounded read of at most `limit`
 * events). Used only when a retry takes over an attempt that did not record its result.
 */
export async function findInHistory (broker: Pick<Broker, 'read'>, tenantId: string, stream: string, eventId: string, limit: number): Promise<IdempotentResult | undefined> {
  const read = await broker.read(tenantId, stream, 0, limit)
  const stored = read.events.find((e) => e.id === eventId)
  return stored === undefined ? undefined : { id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }
}

interface Entry {
  fingerprint: string
  result: Promise<IdempotentResult>
  expiresAt: number
}

/**
 * One instance's keys, bounded by age and by count per tenant (each tenant's oldest evicted
 * first), so one tenant's burst of keys never evicts another tenant's. A tenant without keys
 * holds nothing.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly tenants = new Map<string, Map<string, Entry>>()

  constructor (private readonly options: { ttlMs: number, maxKeys: number, clock: Clock }) {}

  async run (tenantId: string, key: string, fingerprint: string, publish: IdempotentPublish): Promise<IdempotencyOutcome> {
    const now = this.options.clock.now()
    let entries = this.tenants.get(tenantId)
    const existing = entries?.get(key)
    if (existing !== undefined && existing.expiresAt > now) {
      if (existing.fingerprint !== fingerprint) return { kind: 'conflict' }
      return { kind: 'replayed', result: await existing.result }
    }
    const result = publish(randomUUID())
    if (entries === undefined) this.tenants.set(tenantId, entries = new Map())
    entries.delete(key)
    entries.set(key, { fingerprint, result, expiresAt: now + this.options.ttlMs })
    this.evict(entries, now)
    try {
      return { kind: 'new', result: await result }
    } catch (err) {
      const current = this.tenants.get(tenantId)
      if (current?.get(key)?.result === result) {
        current.delete(key)
        if (current.size === 0) this.tenants.delete(tenantId)
      }
      throw err
    }
  }

  /** Map iteration is insertion order, so the oldest keys come first. */
  private evict (entries: Map<string, Entry>, now: number): void {
    for (const [key, entry] of entries) {
      if (entries.size <= this.options.maxKeys && entry.expiresAt > now) return
      entries.delete(key)
    }
  }
}
