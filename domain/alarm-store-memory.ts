import { indexKey, isTerminal, transition, type AlarmAction, type AlarmRecord, type Transition } from './alarms.js'
import type { AlarmBound, AlarmPage, AlarmStore, CreateResult, DueItem, ListQuery } from './alarm-store.js'
import { MAX_RECEIPTS } from './alarm-store.js'

interface TenantAlarms {
  records: Map<string, AlarmRecord>
  /** Ids of unresolved alarms by index key (creation time, id). */
  unresolved: Map<string, string>
  /** Ids of resolved and expired alarms, oldest first: at most `closedLimit` are remembered. */
  closed: string[]
  receipts: Map<string, Map<string, string>>
  /** `<level>:<id>` -> due time, epoch ms. */
  due: Map<string, number>
}

/**
 * The alarm store for one process (the memory broker's deployments). Everything is lost on
 * restart. Bounded: a tenant holds at most its ALARM_MAX_OPEN unresolved alarms, and remembers
 * as many resolved or expired ones (for idempotent acks), forgetting the oldest first.
 */
export class MemoryAlarmStore implements AlarmStore {
  private readonly tenants = new Map<string, TenantAlarms>()

  constructor (private readonly closedLimit: number) {}

  async create (tenantId: string, record: AlarmRecord, bound: AlarmBound): Promise<CreateResult> {
    const tenant = this.tenant(tenantId)
    const existing = tenant.records.get(record.id)
    if (existing !== undefined) return { kind: 'exists', record: existing }
    const expired: AlarmRecord[] = []
    while (tenant.unresolved.size >= bound.max) {
      if (bound.policy === 'reject') return { kind: 'full' }
      const oldest = [...tenant.unresolved.keys()].sort()[0] as string
      const id = tenant.unresolved.get(oldest) as string
      const done = this.update(tenantId, id, { kind: 'expire', at: bound.at, reason: 'OPEN_ALARM_LIMIT' })
      if (done?.changed === true) expired.push(done.record)
    }
    tenant.records.set(record.id, record)
    tenant.unresolved.set(indexKey(record), record.id)
    return { kind: 'created', expired }
  }

  async get (tenantId: string, id: string): Promise<AlarmRecord | undefined> {
    return this.tenants.get(tenantId)?.records.get(id)
  }

  async apply (tenantId: string, id: string, action: AlarmAction): Promise<Transition | undefined> {
    return this.update(tenantId, id, action)
  }

  async remove (tenantId: string, id: string): Promise<void> {
    const tenant = this.tenants.get(tenantId)
    const record = tenant?.records.get(id)
    if (tenant === undefined || record === undefined) return
    tenant.records.delete(id)
    tenant.unresolved.delete(indexKey(record))
    tenant.receipts.delete(id)
    for (const key of [...tenant.due.keys()]) if (key.endsWith(`:${id}`)) tenant.due.delete(key)
  }

  async list (tenantId: string, query: ListQuery): Promise<AlarmPage> {
    const tenant = this.tenants.get(tenantId)
    if (tenant === undefined) return { alarms: [] }
    const keys = [...tenant.unresolved.keys()].sort().reverse().filter((key) => query.cursor === undefined || key < query.cursor)
    const alarms: AlarmRecord[] = []
    for (const key of keys) {
      const record = tenant.records.get(tenant.unresolved.get(key) as string) as AlarmRecord
      if (query.status !== undefined && record.status !== query.status) continue
      alarms.push(record)
      if (alarms.length === query.limit) return { alarms, next: key }
    }
    return { alarms }
  }

  async receive (tenantId: string, userId: string, ids: readonly string[], at: string): Promise<void> {
    const tenant = this.tenants.get(tenantId)
    if (tenant === undefined) return
    for (const id of ids) {
      if (!tenant.records.has(id)) continue
      let receipts = tenant.receipts.get(id)
      if (receipts === undefined) tenant.receipts.set(id, receipts = new Map())
      if (!receipts.has(userId) && receipts.size < MAX_RECEIPTS) receipts.set(userId, at)
    }
  }

  async receipts (tenantId: string, id: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.tenants.get(tenantId)?.receipts.get(id) ?? [])
  }

  async schedule (tenantId: string, id: string, items: ReadonlyArray<{ level: number, dueAt: number }>): Promise<void> {
    const tenant = this.tenant(tenantId)
    for (const item of items) tenant.due.set(`${item.level}:${id}`, item.dueAt)
  }

  async due (now: number, limit: number): Promise<DueItem[]> {
    const items: DueItem[] = []
    for (const [tenantId, tenant] of this.tenants) {
      for (const [key, dueAt] of tenant.due) {
        if (dueAt > now) continue
        const at = key.indexOf(':')
        items.push({ tenantId, alarmId: key.slice(at + 1), level: Number(key.slice(0, at)), dueAt })
      }
    }
    return items.sort((a, b) => a.dueAt - b.dueAt).slice(0, limit)
  }

  async claim (item: DueItem, now: number, leaseMs: number): Promise<boolean> {
    const due = this.tenants.get(item.tenantId)?.due
    const key = `${item.level}:${item.alarmId}`
    const at = due?.get(key)
    if (due === undefined || at === undefined || at > now) return false
    due.set(key, now + leaseMs)
    return true
  }

  async done (item: DueItem): Promise<void> {
    this.tenants.get(item.tenantId)?.due.delete(`${item.level}:${item.alarmId}`)
  }

  async unresolvedCount (): Promise<number> {
    let count = 0
    for (const tenant of this.tenants.values()) count += tenant.unresolved.size
    return count
  }

  async close (): Promise<void> {
    this.tenants.clear()
  }

  private update (tenantId: string, id: string, action: AlarmAction): Transition | undefined {
    const tenant = this.tenants.get(tenantId)
    const record = tenant?.records.get(id)
    if (tenant === undefined || record === undefined) return undefined
    const result = transition(record, action)
    if (!result.changed) return result
    tenant.records.set(id, result.record)
    if (isTerminal(result.record.status) && tenant.unresolved.delete(indexKey(record))) {
      for (const key of [...tenant.due.keys()]) if (key.endsWith(`:${id}`)) tenant.due.delete(key)
      tenant.closed.push(id)
      while (tenant.closed.length > this.closedLimit) {
        const forgotten = tenant.closed.shift() as string
        tenant.records.delete(forgotten)
        tenant.receipts.delete(forgotten)
      }
    }
    return result
  }

  private tenant (tenantId: string): TenantAlarms {
    let tenant = this.tenants.get(tenantId)
    if (tenant === undefined) this.tenants.set(tenantId, tenant = { records: new Map(), unresolved: new Map(), closed: [], receipts: new Map(), due: new Map() })
    return tenant
  }
}
