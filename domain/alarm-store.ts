import type { AlarmAction, AlarmRecord, AlarmStatus, OverflowPolicy, Transition } from './alarms.js'

/**
 * Where alarm state lives: records, receipts and escalation due-times. `alarm-store-memory`
 * keeps them for the life of the process; `alarm-store-redis` keeps them in Redis, shared by
 * every instance and surviving restarts. Same contract, same behaviour suite.
 *
 * - Every method is tenant-scoped: an id is looked up inside its tenant only, so another
 *   tenant's id is simply not found.
 * - `create` and `apply` are atomic per alarm: two instances acknowledging the same alarm
 *   at once end with one acknowledgement (the first), and exactly one of them sees `changed`.
 * - `claim` is atomic per due item: of any number of callers, across instances, exactly one
 *   gets true for a given (alarm, level), once its due time has passed.
 */
export interface AlarmStore {
  /**
   * Stores a new open alarm under the bound. `exists` when the id is already stored (an
   * idempotent retry); `full` when the tenant has `bound.max` unresolved alarms and the
   * policy is `reject`. Under `expire-oldest` the alarms expired to make room are returned.
   */
  create (tenantId: string, record: AlarmRecord, bound: AlarmBound): Promise<CreateResult>
  get (tenantId: string, id: string): Promise<AlarmRecord | undefined>
  /** Applies a lifecycle action atomically; undefined when the tenant has no such alarm. */
  apply (tenantId: string, id: string, action: AlarmAction): Promise<Transition | undefined>
  /** Forgets an alarm whose `alarm:created` could not be published. Idempotent. */
  remove (tenantId: string, id: string): Promise<void>
  /** Unresolved alarms (open and acknowledged), newest first, optionally one status only. */
  list (tenantId: string, query: ListQuery): Promise<AlarmPage>
  /** Records that one of `userId`'s devices received these alarms; the first time per user counts. */
  receive (tenantId: string, userId: string, ids: readonly string[], at: string): Promise<void>
  /** Per user who received the alarm, when they first did (ISO 8601). */
  receipts (tenantId: string, id: string): Promise<Record<string, string>>
  /** Adds escalation due items for an alarm (level 0 is the ALARM_TTL expiry). */
  schedule (tenantId: string, id: string, items: ReadonlyArray<{ level: number, dueAt: number }>): Promise<void>
  /** Due items with `dueAt <= now`, at most `limit`, oldest first per tenant. */
  due (now: number, limit: number): Promise<DueItem[]>
  /**
   * Takes a due item for `leaseMs`: true for exactly one caller while it is due. A claimer
   * that dies before `done` leaves it to be claimed again once the lease has run out.
   */
  claim (item: DueItem, now: number, leaseMs: number): Promise<boolean>
  /** The claimed item was handled: it is gone for good. */
  done (item: DueItem): Promise<void>
  /** Unresolved alarms across every tenant, for the open-alarms gauge. */
  unresolvedCount (): Promise<number>
  close (): Promise<void>
}

export interface AlarmBound {
  max: number
  policy: OverflowPolicy
  /** ISO 8601: when an alarm expired to make room is expired. */
  at: string
}

export type CreateResult =
  | { kind: 'created', expired: AlarmRecord[] }
  | { kind: 'exists', record: AlarmRecord }
  | { kind: 'full' }

export interface ListQuery {
  status?: Extract<AlarmStatus, 'open' | 'acknowledged'> | undefined
  limit: number
  /** The `next` of the previous page. */
  cursor?: string | undefined
}

export interface AlarmPage {
  alarms: AlarmRecord[]
  /** Present when there may be more: pass it as `cursor`. */
  next?: string
}

export interface DueItem {
  tenantId: string
  alarmId: string
  level: number
  /** Epoch ms. */
  dueAt: number
}

/** Most receipts kept per alarm (distinct users); more are not recorded. */
export const MAX_RECEIPTS = 1000
