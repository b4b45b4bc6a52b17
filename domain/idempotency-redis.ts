import { randomUUID } from 'node:crypto'
import type { RedisClient } from './broker-redis.js'
import type { IdempotencyOutcome, IdempotencyStore, IdempotentFind, IdempotentPublish, IdempotentResult } from './idempotency.js'

export interface RedisIdempotencyOptions {
  prefix: string
  /** How long a key is remembered, in ms (IDEMPOTENCY_TTL). */
  ttlMs: number
  /**
   * How long an attempt's claim lives without renewal, in ms. The attempt renews it every
   * third of that while its publish is in flight, so a crashed attempt blocks its retries for
   * at most this long.
   */
  leaseMs: number
  pollMs?: number
  /** How long a retry waits for an attempt in flight before answering 503, in ms. */
  waitMs?: number
  log?: { warn (fields: object, message: string): void }
}

interface Record {
  fingerprint: string
  /** The id the event is published under, chosen before publishing. */
  eventId: string
  /** Absent until the attempt recorded it. */
  result?: IdempotentResult
}

/**
 * Creates the record and its lease if there is no record; takes the lease over if the record's
 * attempt no longer holds one; otherwise reports it busy. Returns the outcome and the record.
 * KEYS: record, lease. ARGV: record JSON, ttl ms, owner, lease ms.
 */
const CLAIM = `
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return {'claimed', ARGV[1]}
end
if redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4], 'NX') then return {'takeover', raw} end
return {'busy', raw}
`

/** Renews (ARGV[2] = lease ms) or, with ARGV[2] = '0', releases a lease its owner still holds. KEYS: lease. ARGV: owner. */
const LEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`

type RedisWithScripts = RedisClient & {
  tcIdemClaim (record: string, lease: string, value: string, ttl: number, owner: string, leaseMs: number): Promise<[string, string]>
  tcIdemLease (lease: string, owner: string, leaseMs: number): Promise<number>
}

/**
 * Idempotency keys shared through Redis, so a retry that lands on another instance is still
 * deduplicated. The first attempt writes the record (fingerprint and the event id it will
 * publish under) and a short lease that it renews while its publish is in flight. A retry
 * replays a recorded result; waits while the lease is held; and once the lease is gone (the
 * attempt failed, crashed, or could not record its result) takes over: it replays the event
 * when history holds it under the record's id, and publishes it otherwise.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly redis: RedisWithScripts

  constructor (redis: RedisClient, private readonly options: RedisIdempotencyOptions) {
    this.redis = redis as RedisWithScripts
    if (typeof this.redis.tcIdemClaim !== 'function') {
      redis.defineCommand('tcIdemClaim', { numberOfKeys: 2, lua: CLAIM })
      redis.defineCommand('tcIdemLease', { numberOfKeys: 1, lua: LEASE })
    }
  }

  async run (tenantId: string, key: string, fingerprint: string, publish: IdempotentPublish, find: IdempotentFind): Promise<IdempotencyOutcome> {
    // The record and its lease share the hash tag, so the claim script runs on one node of a
    // Redis Cluster: both names are the same up to the tag's first closing brace.
    const id = `${this.options.prefix}idem:{${encodeURIComponent(tenantId)}:${key}}`
    const lease = `${id}:lease`
    const owner = randomUUID()
    const deadline = Date.now() + (this.options.waitMs ?? 10_000)
    for (;;) {
      const fresh: Record = { fingerprint, eventId: randomUUID() }
      const [state, raw] = await this.redis.tcIdemClaim(id, lease, JSON.stringify(fresh), this.options.ttlMs, owner, this.options.leaseMs)
      const record = JSON.parse(raw) as Record
      if (state === 'claimed') return { kind: 'new', result: await this.attempt(id, lease, owner, record, publish) }
      if (record.fingerprint !== fingerprint || record.result !== undefined) {
        if (state === 'takeover') await this.release(lease, owner)
        return record.fingerprint !== fingerprint ? { kind: 'conflict' } : { kind: 'replayed', result: record.result as IdempotentResult }
      }
      if (state === 'takeover') {
        let found: IdempotentResult | undefined
        try {
          found = await find(record.eventId)
        } catch (err) {
          await this.release(lease, owner)
          throw err
        }
        if (found === undefined) return { kind: 'new', result: await this.attempt(id, lease, owner, record, publish) }
        await this.record(id, lease, owner, record, found)
        return { kind: 'replayed', result: found }
      }
      if (Date.now() > deadline) throw new Error('the first request with this Idempotency-Key is still in flight')
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 25))
    }
  }

  /** Publishes under the record's event id while renewing the lease, then records the result. */
  private async attempt (id: string, lease: string, owner: string, record: Record, publish: IdempotentPublish): Promise<IdempotentResult> {
    const renew = setInterval(() => { this.redis.tcIdemLease(lease, owner, this.options.leaseMs).catch(() => {}) }, Math.max(1, Math.floor(this.options.leaseMs / 3)))
    // A renewal alone never keeps the process alive.
    renew.unref()
    let result: IdempotentResult
    try {
      result = await publish(record.eventId)
    } catch (err) {
      // The record stays, with its event id: a retry takes over at once and finds the event if
      // a timed-out publish did store it.
      await this.release(lease, owner)
      throw err
    } finally {
      clearInterval(renew)
    }
    await this.record(id, lease, owner, record, result)
    return result
  }

  /**
   * Stores the result for later retries. The event is stored whatever happens here: when Redis
   * refuses, the lease runs out and a retry finds the event by its id.
   */
  private async record (id: string, lease: string, owner: string, record: Record, result: IdempotentResult): Promise<void> {
    try {
      await this.redis.set(id, JSON.stringify({ ...record, result } satisfies Record), 'PX', this.options.ttlMs)
      await this.release(lease, owner)
    } catch (err) {
      this.options.log?.warn({ action: 'idempotency.record_failed', eventId: result.id, err: (err as Error).message }, 'could not record an idempotent result; a retry will look the event up')
    }
  }

  private async release (lease: string, owner: string): Promise<void> {
    await this.redis.tcIdemLease(lease, owner, 0).catch(() => {})
  }
}
