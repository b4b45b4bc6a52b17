import type { RedisClient } from './broker-redis.js'
import type { Client, Hub, Member, MembershipChange } from './hub.js'
import type { RemotePresence } from './presence.js'

export interface RedisPresenceOptions {
  prefix: string
  /** This instance's id; each instance writes only its own hashes. */
  instanceId: string
  /** How long an instance's entries outlive its last heartbeat, in ms. A crashed instance's entries expire after it. */
  ttlMs: number
  log: { warn (fields: object, message: string): void }
}

/**
 * Sums the fields of every other live instance's hash `<head><instance><tail>`, in one round
 * trip that costs O(instances), whatever the tenant's size. A value that is not a number (a
 * connection entry) counts as one. The per-instance keys are derived, not declared; they
 * carry the tenant's hash tag, as the instances set does, so on a Redis Cluster they all live
 * in the slot the script runs on.
 * KEYS: the tenant's instances set. ARGV: now ms, own id, head, tail, fields...
 */
const SUM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local sums = {}
for i = 5, #ARGV do sums[i - 4] = 0 end
for _, id in ipairs(ids) do
  if id ~= ARGV[2] then
    local values = redis.call('HMGET', ARGV[3] .. id .. ARGV[4], unpack(ARGV, 5))
    for j = 1, #values do
      if values[j] then sums[j] = sums[j] + (tonumber(values[j]) or 1) end
    end
  end
end
return sums
`

type RedisWithSum = RedisClient & {
  tcPresenceSum (instances: string, now: number, self: string, head: string, tail: string, ...fields: string[]): Promise<number[]>
}

/** Counter fields of an instance's per-tenant counters hash. */
const TENANT = 't'
const userField = (userId: string): string => `u:${userId}`
const channelField = (channel: string): string => `c:${channel}`

/**
 * Mirrors this instance's hub into Redis and reads the other instances' mirrors.
 *
 * Layout, every key of one tenant under the hash tag `{<tenant>}` (one slot on a Redis
 * Cluster, so each write is one MULTI on one node): a sorted set `pres:{<tenant>}:instances`
 * of the instances with clients of the tenant → expiry time; per instance, a hash
 * `pres:{<tenant>}:<instance>` of clientId → {userId, channels} (for the member lists) and a
 * hash `pres:{<tenant>}:<instance>:n` of counters: `t` (connections), `u:<userId>` and
 * `c:<channel>`. A change writes the hub's current counts, not increments, so a lost or
 * repeated write never leaves a counter drifting. Every heartbeat (a third of the TTL)
 * rewrites each local tenant's hashes in full, so the mirror heals by itself after a Redis
 * outage, and a crashed instance drops out of every sum once its expiry passes.
 */
export class RedisPresenceMirror implements RemotePresence {
  private readonly redis: RedisWithSum
  private readonly timer: NodeJS.Timeout
  private readonly unobserve: () => void
  /** Tenants written at least once, so that a tenant whose last local client left is cleared. */
  private readonly written = new Set<string>()

  constructor (redis: RedisClient, private readonly hub: Hub, private readonly options: RedisPresenceOptions) {
    this.redis = redis as RedisWithSum
    if (typeof this.redis.tcPresenceSum !== 'function') redis.defineCommand('tcPresenceSum', { numberOfKeys: 1, lua: SUM })
    this.unobserve = hub.observe((change) => { this.onChange(change) })
    this.timer = setInterval(() => { void this.heartbeat() }, Math.max(100, Math.floor(options.ttlMs / 3)))
    this.timer.unref()
  }

  async connectionCount (tenantId: string): Promise<number> {
    return (await this.sum(tenantId, ':n', TENANT))[0] ?? 0
  }

  async userConnectionCount (tenantId: string, userId: string): Promise<number> {
    return (await this.sum(tenantId, ':n', userField(userId)))[0] ?? 0
  }

  async channelConnectionCount (tenantId: string, channel: string): Promise<number> {
    return (await this.sum(tenantId, ':n', channelField(channel)))[0] ?? 0
  }

  async isClientConnected (tenantId: string, clientId: string): Promise<boolean> {
    return ((await this.sum(tenantId, '', clientId))[0] ?? 0) > 0
  }

  /** From the other instances' user counters: O(online users), not O(connections). */
  async users (tenantId: string): Promise<Map<string, number>> {
    const users = new Map<string, number>()
    for (const hash of await this.others(tenantId, ':n')) {
      for (const [field, value] of Object.entries(hash)) {
        if (!field.startsWith('u:')) continue
        const userId = field.slice(2)
        users.set(userId, (users.get(userId) ?? 0) + Number(value))
      }
    }
    return users
  }

  async channelMembers (tenantId: string, channel: string): Promise<Member[]> {
    const members: Member[] = []
    for (const hash of await this.others(tenantId, '')) {
      for (const [clientId, value] of Object.entries(hash)) {
        const { u, c } = JSON.parse(value) as { u: string, c: string[] }
        if (c.includes(channel)) members.push({ userId: u, clientId })
      }
    }
    return members
  }

  /**
   * Rewrites every local tenant's hashes and refreshes the expiries: one MULTI per tenant, as
   * a tenant's keys share one slot and different tenants' do not.
   */
  async heartbeat (): Promise<void> {
    const tenants = new Set([...this.hub.tenants(), ...this.written])
    const now = Date.now()
    const writes: Array<Promise<unknown>> = []
    for (const tenantId of tenants) {
      const pipeline = this.redis.multi()
      const hash = this.hashKey(tenantId, this.options.instanceId)
      const counters = `${hash}:n`
      pipeline.del(hash, counters)
      const clients = [...this.hub.tenantClients(tenantId)]
      if (clients.length === 0) {
        this.written.delete(tenantId)
        pipeline.zrem(this.instancesKey(tenantId), this.options.instanceId)
        writes.push(pipeline.exec())
        continue
      }
      const counts: Record<string, number> = { [TENANT]: clients.length }
      for (const client of clients) {
        counts[userField(client.userId)] = (counts[userField(client.userId)] ?? 0) + 1
        for (const channel of client.channels) counts[channelField(channel)] = (counts[channelField(channel)] ?? 0) + 1
      }
      pipeline.hset(hash, Object.fromEntries(clients.map((c) => [c.id, entry(c)])))
      pipeline.hset(counters, counts)
      pipeline.pexpire(hash, this.options.ttlMs)
      pipeline.pexpire(counters, this.options.ttlMs)
      this.announce(pipeline, tenantId, now)
      this.written.add(tenantId)
      writes.push(pipeline.exec())
    }
    const failed = (await Promise.allSettled(writes)).find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) this.options.log.warn({ action: 'presence.redis.heartbeat_failed', err: (failed.reason as Error).message }, 'presence heartbeat failed')
  }

  /** Removes this instance's entries (clean shutdown). */
  async close (): Promise<void> {
    clearInterval(this.timer)
    this.unobserve()
    await Promise.all([...this.written].map(async (tenantId) => {
      const hash = this.hashKey(tenantId, this.options.instanceId)
      await this.redis.multi().del(hash, `${hash}:n`).zrem(this.instancesKey(tenantId), this.options.instanceId).exec().catch(() => {})
    }))
  }

  private async sum (tenantId: string, tail: string, ...fields: string[]): Promise<number[]> {
    return await this.redis.tcPresenceSum(this.instancesKey(tenantId), Date.now(), this.options.instanceId, this.hashKey(tenantId, ''), tail, ...fields)
  }

  /** The other live instances' hashes `pres:{<tenant>}:<instance><tail>`, read in one pipeline on the tenant's slot. */
  private async others (tenantId: string, tail: string): Promise<Array<Record<string, string>>> {
    const instances = await this.redis.zrangebyscore(this.instancesKey(tenantId), Date.now(), '+inf')
    const others = instances.filter((id) => id !== this.options.instanceId)
    if (others.length === 0) return []
    const pipeline = this.redis.pipeline()
    for (const id of others) pipeline.hgetall(this.hashKey(tenantId, id) + tail)
    const hashes: Array<Record<string, string>> = []
    for (const [err, hash] of (await pipeline.exec()) ?? []) {
      if (err !== null) throw err
      hashes.push(hash as Record<string, string>)
    }
    return hashes
  }

  private onChange (change: MembershipChange): void {
    const { client } = change
    const hub = this.hub
    const hash = this.hashKey(client.tenantId, this.options.instanceId)
    const counters = `${hash}:n`
    const write = this.redis.multi()
    // Absolute counts from the hub: the last write wins, and it is the latest state.
    const set = (field: string, count: number): void => {
      if (count > 0) write.hset(counters, field, count)
      else write.hdel(counters, field)
    }
    if (change.kind === 'remove') {
      write.hdel(hash, client.id)
      set(TENANT, hub.tenantConnectionCount(client.tenantId))
      set(userField(client.userId), hub.userConnectionCount(client.tenantId, client.userId))
      for (const channel of client.channels) set(channelField(channel), hub.channelConnectionCount(client.tenantId, channel))
    } else {
      write.hset(hash, client.id, entry(client)).pexpire(hash, this.options.ttlMs)
      if (change.kind === 'join' || change.kind === 'leave') {
        set(channelField(change.channel), hub.channelConnectionCount(client.tenantId, change.channel))
      } else {
        set(TENANT, hub.tenantConnectionCount(client.tenantId))
        set(userField(client.userId), hub.userConnectionCount(client.tenantId, client.userId))
      }
      write.pexpire(counters, this.options.ttlMs)
      this.announce(write, client.tenantId, Date.now())
      this.written.add(client.tenantId)
    }
    // While Redis is away the mirror is stale; the next heartbeat after it returns repairs it.
    write.exec().catch(() => {})
  }

  /** Marks this instance live for the tenant until one TTL from now, and drops the instances that are not. */
  private announce (pipeline: ReturnType<RedisClient['multi']>, tenantId: string, now: number): void {
    const key = this.instancesKey(tenantId)
    pipeline.zadd(key, now + this.options.ttlMs, this.options.instanceId)
    pipeline.zremrangebyscore(key, '-inf', now)
    pipeline.pexpire(key, this.options.ttlMs)
  }

  private hashKey (tenantId: string, instanceId: string): string {
    return `${this.options.prefix}pres:{${encodeURIComponent(tenantId)}}:${instanceId}`
  }

  private instancesKey (tenantId: string): string {
    return `${this.options.prefix}pres:{${encodeURIComponent(tenantId)}}:instances`
  }
}

function entry (client: Client): string {
  return JSON.stringify({ u: client.userId, c: [...client.channels] })
}
