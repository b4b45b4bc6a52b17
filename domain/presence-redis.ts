import type { Redis } from 'ioredis'
import type { Client, Hub, MembershipChange } from './hub.js'
import type { RemoteConnection } from './presence.js'

export interface RedisPresenceOptions {
  prefix: string
  /** This instance's id; each instance writes only its own hashes. */
  instanceId: string
  /** How long an instance's entries outlive its last heartbeat, in ms. A crashed instance's entries expire after it. */
  ttlMs: number
  log: { warn (fields: object, message: string): void }
}

/**
 * Mirrors this instance's hub into Redis and reads the other instances' mirrors.
 *
 * Layout, per tenant: a hash `pres:<tenant>:<instance>` of clientId → {userId, channels}, and
 * a sorted set `pres:<tenant>:instances` of instance → expiry time. Every heartbeat (a third
 * of the TTL) rewrites each local tenant's hash in full, so the mirror heals by itself after
 * a Redis outage, and a crashed instance's entries vanish once their TTL passes.
 */
export class RedisPresenceMirror {
  private readonly timer: NodeJS.Timeout
  private readonly unobserve: () => void
  /** Tenants written at least once, so that a tenant whose last local client left is cleared. */
  private readonly written = new Set<string>()

  constructor (private readonly redis: Redis, private readonly hub: Hub, private readonly options: RedisPresenceOptions) {
    this.unobserve = hub.observe((change) => { this.onChange(change) })
    this.timer = setInterval(() => { void this.heartbeat() }, Math.max(100, Math.floor(options.ttlMs / 3)))
    this.timer.unref()
  }

  /** The connections every other live instance reports for a tenant. */
  async remote (tenantId: string): Promise<RemoteConnection[]> {
    const instances = await this.redis.zrangebyscore(this.instancesKey(tenantId), Date.now(), '+inf')
    const others = instances.filter((id) => id !== this.options.instanceId)
    if (others.length === 0) return []
    const pipeline = this.redis.pipeline()
    for (const id of others) pipeline.hgetall(this.hashKey(tenantId, id))
    const replies = (await pipeline.exec()) ?? []
    const connections: RemoteConnection[] = []
    for (const [err, hash] of replies) {
      if (err !== null) throw err
      for (const [clientId, value] of Object.entries(hash as Record<string, string>)) {
        const { u, c } = JSON.parse(value) as { u: string, c: string[] }
        connections.push({ clientId, userId: u, channels: c })
      }
    }
    return connections
  }

  /** Rewrites every local tenant's hash and refreshes the expiries. */
  async heartbeat (): Promise<void> {
    const tenants = new Set([...this.hub.tenants(), ...this.written])
    const pipeline = this.redis.multi()
    const expiresAt = Date.now() + this.options.ttlMs
    for (const tenantId of tenants) {
      const hash = this.hashKey(tenantId, this.options.instanceId)
      pipeline.del(hash)
      const clients = [...this.hub.tenantClients(tenantId)]
      if (clients.length === 0) {
        pipeline.zrem(this.instancesKey(tenantId), this.options.instanceId)
        this.written.delete(tenantId)
        continue
      }
      pipeline.hset(hash, Object.fromEntries(clients.map((c) => [c.id, entry(c)])))
      pipeline.pexpire(hash, this.options.ttlMs)
      pipeline.zadd(this.instancesKey(tenantId), expiresAt, this.options.instanceId)
      pipeline.zremrangebyscore(this.instancesKey(tenantId), '-inf', Date.now())
      pipeline.pexpire(this.instancesKey(tenantId), this.options.ttlMs)
      this.written.add(tenantId)
    }
    await pipeline.exec().catch((err: Error) => {
      this.options.log.warn({ action: 'presence.redis.heartbeat_failed', err: err.message }, 'presence heartbeat failed')
    })
  }

  /** Removes this instance's entries (clean shutdown). */
  async close (): Promise<void> {
    clearInterval(this.timer)
    this.unobserve()
    const pipeline = this.redis.multi()
    for (const tenantId of this.written) {
      pipeline.del(this.hashKey(tenantId, this.options.instanceId))
      pipeline.zrem(this.instancesKey(tenantId), this.options.instanceId)
    }
    await pipeline.exec().catch(() => {})
  }

  private onChange (change: MembershipChange): void {
    const { client } = change
    const hash = this.hashKey(client.tenantId, this.options.instanceId)
    const write = change.kind === 'remove'
      ? this.redis.hdel(hash, client.id)
      : this.redis.multi()
        .hset(hash, client.id, entry(client))
        .pexpire(hash, this.options.ttlMs)
        .zadd(this.instancesKey(client.tenantId), Date.now() + this.options.ttlMs, this.options.instanceId)
        .pexpire(this.instancesKey(client.tenantId), this.options.ttlMs)
        .exec()
    if (change.kind !== 'remove') this.written.add(client.tenantId)
    // While Redis is away the mirror is stale; the next heartbeat after it returns repairs it.
    write.catch(() => {})
  }

  private hashKey (tenantId: string, instanceId: string): string {
    return `${this.options.prefix}pres:${encodeURIComponent(tenantId)}:${instanceId}`
  }

  private instancesKey (tenantId: string): string {
    return `${this.options.prefix}pres:${encodeURIComponent(tenantId)}:instances`
  }
}

function entry (client: Client): string {
  return JSON.stringify({ u: client.userId, c: [...client.channels] })
}
