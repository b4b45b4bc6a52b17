import type { RedisClient } from './broker-redis.js'
import { indexKey, isTerminal, transition, type AlarmAction, type AlarmRecord, type Transition } from './alarms.js'
import type { AlarmBound, AlarmPage, AlarmStore, CreateResult, DueItem, ListQuery } from './alarm-store.js'
import { MAX_RECEIPTS } from './alarm-store.js'

export interface RedisAlarmStoreOptions {
  /** REDIS_PREFIX. */
  prefix: string
  /** Lifetime of every key, in ms, renewed on each write (ALARM_TTL plus a day). */
  ttlMs: number
}

/**
 * Stores a new record under the bound. KEYS: record, unresolved index. ARGV: record JSON,
 * index member, bound, ttl ms. Returns {'exists', record} | {'full', oldest member} | {'created'}.
 */
const CREATE = `
local raw = redis.call('GET', KEYS[1])
if raw then return {'exists', raw} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  return {'full', oldest[1] or ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {'created', ''}
`

/**
 * Compare-and-set of a record: the lifecycle itself stays in TypeScript (alarms.ts), and two
 * writers never both win. KEYS: record, unresolved index. ARGV: expected JSON, new JSON,
 * index member, '1' when the new state is terminal, ttl ms.
 */
const SWAP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
`

/** First receipt per user, bounded. KEYS: record, receipts. ARGV: user, at, max, ttl ms. */
const RECEIVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
local added = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return added
`

/** Leases a due item to one caller. KEYS: due set. ARGV: member, now ms, lease ms. */
const CLAIM = `
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return 1
`

type RedisWithScripts = RedisClient & {
  tcAlarmCreate (record: string, index: string, json: string, member: string, max: number, ttl: number): Promise<[string, string]>
  tcAlarmSwap (record: string, index: string, expected: string, next: string, member: string, terminal: string, ttl: number): Promise<number>
  tcAlarmReceive (record: string, receipts: string, user: string, at: string, max: number, ttl: number): Promise<number>
  tcAlarmClaim (due: string, member: string, now: number, lease: number): Promise<number>
}

/** Attempts of one compare-and-set before it gives up (only under heavy contention on one alarm). */
const SWAP_ATTEMPTS = 20
/** Index entries read per round while a page is filled. */
const SCAN = 100

/**
 * Alarm state in Redis, shared by every instance and surviving restarts. Per tenant, under
 * one hash tag (`{<tenant>}`) so that each script runs on one node of a Redis Cluster:
 * - `alarms:{t}:rec:<id>`: the record (JSON);
 * - `alarms:{t}:unresolved`: a sorted set of the open and acknowledged ones (lexical order of
 *   creation time and id, all scores 0);
 * - `alarms:{t}:rcpt:<id>`: a hash, user id to first receipt time;
 * - `alarms:{t}:due`: a sorted set of `<level>:<id>` by due time (epoch ms).
 * One key outside the tags, `alarms:tenants`, lists the tenants with scheduled items (score:
 * the last schedule), read by one command at a time. Every key has a TTL, renewed on writes.
 */
export class RedisAlarmStore implements AlarmStore {
  private readonly redis: RedisWithScripts

  constructor (redis: RedisClient, private readonly options: RedisAlarmStoreOptions) {
    this.redis = redis as RedisWithScripts
    if (typeof this.redis.tcAlarmCreate !== 'function') {
      redis.defineCommand('tcAlarmCreate', { numberOfKeys: 2, lua: CREATE })
      redis.defineCommand('tcAlarmSwap', { numberOfKeys: 2, lua: SWAP })
      redis.defineCommand('tcAlarmReceive', { numberOfKeys: 2, lua: RECEIVE })
      redis.defineCommand('tcAlarmClaim', { numberOfKeys: 1, lua: CLAIM })
    }
  }

  async create (tenantId: string, record: AlarmRecord, bound: AlarmBound): Promise<CreateResult> {
    const keys = this.keys(tenantId)
    const expired: AlarmRecord[] = []
    // Each round either stores the record or frees one place, so it ends within the bound's reach.
    for (let round = 0; round <= SWAP_ATTEMPTS; round++) {
      const [outcome, value] = await this.redis.tcAlarmCreate(keys.record(record.id), keys.unresolved, JSON.stringify(record), indexKey(record), bound.max, this.options.ttlMs)
      if (outcome === 'exists') return { kind: 'exists', record: JSON.parse(value) as AlarmRecord }
      if (outcome === 'created') return { kind: 'created', expired }
      if (bound.policy === 'reject') return { kind: 'full' }
      const id = value.slice(value.indexOf(':') + 1)
      const done = await this.apply(tenantId, id, { kind: 'expire', at: bound.at, reason: 'OPEN_ALARM_LIMIT' })
      if (done?.changed === true) expired.push(done.record)
      // An entry without its record (or a record already terminal) only leaves the index.
      else await this.redis.zrem(keys.unresolved, value)
    }
    throw new Error('the open-alarm bound could not be applied: too much contention')
  }

  async get (tenantId: string, id: string): Promise<AlarmRecord | undefined> {
    const raw = await this.redis.get(this.keys(tenantId).record(id))
    return raw === null ? undefined : JSON.parse(raw) as AlarmRecord
  }

  async apply (tenantId: string, id: string, action: AlarmAction): Promise<Transition | undefined> {
    const keys = this.keys(tenantId)
    for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
      const raw = await this.redis.get(keys.record(id))
      if (raw === null) return undefined
      const record = JSON.parse(raw) as AlarmRecord
      const result = transition(record, action)
      if (!result.changed) return result
      const swapped = await this.redis.tcAlarmSwap(keys.record(id), keys.unresolved, raw, JSON.stringify(result.record), indexKey(record), isTerminal(result.record.status) ? '1' : '0', this.options.ttlMs)
      if (swapped === 1) return result
    }
    throw new Error(`alarm ${id} changed too often to be updated; retry`)
  }

  async remove (tenantId: string, id: string): Promise<void> {
    const keys = this.keys(tenantId)
    const record = await this.get(tenantId, id)
    if (record === undefined) return
    await this.redis.zrem(keys.unresolved, indexKey(record))
    await this.redis.del(keys.record(id))
    await this.redis.del(keys.receipts(id))
  }

  async list (tenantId: string, query: ListQuery): Promise<AlarmPage> {
    const keys = this.keys(tenantId)
    const alarms: AlarmRecord[] = []
    let from = query.cursor === undefined ? '+' : `(${query.cursor}`
    for (;;) {
      const members = await this.redis.zrevrangebylex(keys.unresolved, from, '-', 'LIMIT', 0, SCAN)
      if (members.length === 0) return { alarms }
      // One MGET per round (the records share the tenant's slot), not one GET per alarm: every
      // new socket reads this list, and a reconnect storm multiplies it.
      const raws = await this.redis.mget(...members.map((member) => keys.record(member.slice(member.indexOf(':') + 1))))
      for (const [i, member] of members.entries()) {
        const raw = raws[i]
        if (raw === null || raw === undefined) {
          await this.redis.zrem(keys.unresolved, member)
          continue
        }
        const record = JSON.parse(raw) as AlarmRecord
        if (query.status !== undefined && record.status !== query.status) continue
        alarms.push(record)
        if (alarms.length === query.limit) return { alarms, next: member }
      }
      if (members.length < SCAN) return { alarms }
      from = `(${members[members.length - 1] as string}`
    }
  }

  async receive (tenantId: string, userId: string, ids: readonly string[], at: string): Promise<void> {
    const keys = this.keys(tenantId)
    for (const id of ids) await this.redis.tcAlarmReceive(keys.record(id), keys.receipts(id), userId, at, MAX_RECEIPTS, this.options.ttlMs)
  }

  async receipts (tenantId: string, id: string): Promise<Record<string, string>> {
    return await this.redis.hgetall(this.keys(tenantId).receipts(id))
  }

  async schedule (tenantId: string, id: string, items: ReadonlyArray<{ level: number, dueAt: number }>): Promise<void> {
    if (items.length === 0) return
    const keys = this.keys(tenantId)
    await this.redis.zadd(keys.due, ...items.flatMap((item) => [item.dueAt, `${item.level}:${id}`]))
    await this.redis.pexpire(keys.due, this.options.ttlMs)
    await this.redis.zadd(this.tenantsKey(), Date.now(), tenantId)
    await this.redis.pexpire(this.tenantsKey(), this.options.ttlMs)
  }

  async due (now: number, limit: number): Promise<DueItem[]> {
    // A tenant with nothing scheduled for a whole TTL has no due set left either.
    await this.redis.zremrangebyscore(this.tenantsKey(), '-inf', now - this.options.ttlMs)
    const tenants = await this.redis.zrange(this.tenantsKey(), 0, -1)
    const items: DueItem[] = []
    for (const tenantId of tenants) {
      const found = await this.redis.zrangebyscore(this.keys(tenantId).due, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
      for (let i = 0; i < found.length; i += 2) {
        const member = found[i] as string
        const at = member.indexOf(':')
        items.push({ tenantId, alarmId: member.slice(at + 1), level: Number(member.slice(0, at)), dueAt: Number(found[i + 1]) })
      }
    }
    return items.sort((a, b) => a.dueAt - b.dueAt).slice(0, limit)
  }

  async claim (item: DueItem, now: number, leaseMs: number): Promise<boolean> {
    return await this.redis.tcAlarmClaim(this.keys(item.tenantId).due, `${item.level}:${item.alarmId}`, now, leaseMs) === 1
  }

  async done (item: DueItem): Promise<void> {
    await this.redis.zrem(this.keys(item.tenantId).due, `${item.level}:${item.alarmId}`)
  }

  async unresolvedCount (): Promise<number> {
    const tenants = await this.redis.zrange(this.tenantsKey(), 0, -1)
    let count = 0
    for (const tenantId of tenants) count += await this.redis.zcard(this.keys(tenantId).unresolved)
    return count
  }

  async close (): Promise<void> {}

  private tenantsKey (): string {
    return `${this.options.prefix}alarms:tenants`
  }

  private keys (tenantId: string): { record: (id: string) => string, receipts: (id: string) => string, unresolved: string, due: string } {
    const base = `${this.options.prefix}alarms:{${encodeURIComponent(tenantId)}}`
    return {
      record: (id) => `${base}:rec:${id}`,
      receipts: (id) => `${base}:rcpt:${id}`,
      unresolved: `${base}:unresolved`,
      due: `${base}:due`
    }
  }
}
