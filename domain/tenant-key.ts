/**
 * The key of a tenant-local name (a user, a channel, a client id, a stream, an idempotency
 * key) in a process-wide index. The tenant id is length-prefixed, so two different
 * (tenant, name) pairs can never share a key, whatever characters either one holds: tenant
 * `acme` with user `x\0y` and tenant `acme\0x` with user `y` stay apart.
 */
export function tenantKey (tenantId: string, name: string): string {
  return `${tenantId.length}:${tenantId}\u0000${name}`
}
