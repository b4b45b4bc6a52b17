import type { Redis } from 'ioredis'
import type { IdempotencyOutcome, IdempotencyStore, IdempotentResult } from './idempotency.js'

interface Record {
  fingerprint: string
  /** Absent while the first attempt is still in flight. */
  result?: IdempotentResult
}

/**
 * Idempotency keys shared through Redis, so a retry that lands on another instance is still
 * deduplicated. The first attempt claims the key with SET NX; a concurrent retry polls until
 * the result is written (or the claim is released because the first attempt failed).
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  constructor (private readonly redis: Redis, private readonly options: { prefix: string, ttlMs: number, pollMs?: number, waitMs?: number }) {}

  async run (tenantId: string, key: string, fingerprint: string, publish: () => Promise<IdempotentResult>): Promise<IdempotencyOutcome> {
    const id = `${this.options.prefix}idem:${encodeURIComponent(tenantId)}:${key}`
    const deadline = Date.now() + (this.options.waitMs ?? 10_000)
    for (;;) {
      const claimed = await this.redis.set(id, JSON.stringify({ fingerprint } satisfies Record), 'PX', this.options.ttlMs, 'NX')
      if (claimed === 'OK') break
      const raw = await this.redis.get(id)
      if (raw === null) continue
      const record = JSON.parse(raw) as Record
      if (record.fingerprint !== fingerprint) return { kind: 'conflict' }
      if (record.result !== undefined) return { kind: 'replayed', result: record.result }
      if (Date.now() > deadline) throw new Error('the first request with this Idempotency-Key is still in flight')
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 25))
    }
    let result: IdempotentResult
    try {
      result = await publish()
    } catch (err) {
      await this.redis.del(id).catch(() => {})
      throw err
    }
    await this.redis.set(id, JSON.stringify({ fingerprint, result } satisfies Record), 'PX', this.options.ttlMs)
    return { kind: 'new', result }
  }
}
