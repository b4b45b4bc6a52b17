import type { Clock } from './clock.js'
import type { Alarm, StoredEvent, Target } from './events.js'
import { isAckable, updateOf, type AlarmAction, type AlarmRecord, type OverflowPolicy, type Transition } from './alarms.js'
import type { AlarmPage, AlarmStore, ListQuery } from './alarm-store.js'
import type { EscalationRule } from './escalation-rules.js'

/** Publishes one event inside a tenant; resolves once the broker stored it. */
export type AlarmPublish = (tenantId: string, event: string, data: unknown, target?: Target) => Promise<StoredEvent>

export interface AlarmLog {
  info (fields: object, message: string): void
  warn (fields: object, message: string): void
  error (fields: object, message: string): void
}

/** Counters and histograms the service reports to; the plugin maps them to Prometheus. */
export interface AlarmObserver {
  /** An open alarm was acknowledged `seconds` after it was created. */
  acknowledged (seconds: number): void
  /** The open-alarm bound was reached; `policy` says what gave way. */
  overflow (policy: OverflowPolicy): void
}

export interface AlarmServiceOptions {
  store: AlarmStore
  publish: AlarmPublish
  /** ALARM_ACK_SEVERITIES: severities that are ackable without `requireAck`. */
  severities: ReadonlySet<string>
  /** ALARM_MAX_OPEN and ALARM_OVERFLOW. */
  maxOpen: number
  overflow: OverflowPolicy
  /** ALARM_TTL in ms: an alarm still unresolved after it is expired by policy. */
  ttlMs: number
  /** The escalation rules of a tenant (the deployment's unless the tenant has its own). */
  rules: (tenantId: string) => readonly EscalationRule[]
  clock: Clock
  log: AlarmLog
  observer: AlarmObserver
}

/** Refused under ALARM_OVERFLOW=reject: the tenant has ALARM_MAX_OPEN unresolved alarms. */
export class OpenAlarmLimit extends Error {
  constructor (readonly max: number) {
    super(`the tenant already has ${max} unresolved alarms (ALARM_MAX_OPEN); resolve some, or retry later`)
    this.name = 'OpenAlarmLimit'
  }
}

/**
 * Open-alarm state for every tenant: which ingested alarms need a person, who received them,
 * who acknowledged and resolved them. Each change a person makes is published to the whole
 * tenant as a positioned `alarm:updated`, so every other tab updates and replays carry it.
 * A change that changes nothing (a second ack) publishes nothing and answers the record as it
 * stands: the first ack.
 */
export class AlarmService {
  /** The last creation time given out, epoch ms: this instance never gives the same one twice. */
  private lastCreated = 0

  constructor (private readonly options: AlarmServiceOptions) {}

  ackable (severity: string, requireAck: boolean | undefined): boolean {
    return isAckable(severity, requireAck, this.options.severities)
  }

  /**
   * Records a new ackable alarm as open, before its `alarm:created` is published, and
   * schedules its escalations. Idempotent per alarm id: a retried ingestion finds it stored.
   * Rejects with OpenAlarmLimit under the `reject` policy when the tenant is full.
   */
  async open (tenantId: string, alarm: Alarm): Promise<AlarmRecord> {
    const { store, clock, log, observer } = this.options
    // Strictly increasing per instance, so that alarms ingested in one millisecond still list
    // in the order they came in.
    const now = this.lastCreated = Math.max(clock.now(), this.lastCreated + 1)
    const record: AlarmRecord = { id: alarm.id, status: 'open', alarm, createdAt: new Date(now).toISOString(), escalations: [] }
    const created = await store.create(tenantId, record, { max: this.options.maxOpen, policy: this.options.overflow, at: record.createdAt })
    if (created.kind === 'exists') {
      // A retried ingestion: the first attempt may have stored the alarm and failed to schedule it.
      if (created.record.status === 'open') await this.schedule(tenantId, created.record)
      return created.record
    }
    if (created.kind === 'full') {
      observer.overflow('reject')
      log.warn({ action: 'alarm.overflow', policy: 'reject', tenantId, alarmId: alarm.id, max: this.options.maxOpen }, 'open-alarm bound reached: the new alarm is refused (ALARM_OVERFLOW=reject)')
      throw new OpenAlarmLimit(this.options.maxOpen)
    }
    for (const expired of created.expired) {
      observer.overflow('expire-oldest')
      log.warn({ action: 'alarm.overflow', policy: 'expire-oldest', tenantId, alarmId: alarm.id, expiredId: expired.id, max: this.options.maxOpen }, 'open-alarm bound reached: the oldest unresolved alarm is expired (ALARM_OVERFLOW=expire-oldest)')
      await this.announce(tenantId, expired, { kind: 'expire', at: record.createdAt, reason: 'OPEN_ALARM_LIMIT' })
    }
    try {
      await this.schedule(tenantId, record)
    } catch (err) {
      // An open alarm that can never escalate or expire must not stay behind: the caller is
      // answered 503 and retries.
      await store.remove(tenantId, alarm.id).catch(() => {})
      throw err
    }
    return record
  }

  /** Its escalations and its expiry, from its creation time: scheduling twice changes nothing. */
  private async schedule (tenantId: string, record: AlarmRecord): Promise<void> {
    const createdAt = Date.parse(record.createdAt)
    const items = this.options.rules(tenantId).map((rule, index) => ({ level: index + 1, dueAt: createdAt + rule.after * 1000 }))
    await this.options.store.schedule(tenantId, record.id, [{ level: 0, dueAt: createdAt + this.options.ttlMs }, ...items])
  }

  /** The alarm's `alarm:created` could not be published: it never existed. */
  async forget (tenantId: string, id: string): Promise<void> {
    await this.options.store.remove(tenantId, id)
  }

  /**
   * A person acknowledges or resolves an alarm (over REST or the socket). Undefined when the
   * tenant has no such alarm, another tenant's id included.
   */
  async act (tenantId: string, id: string, action: Extract<AlarmAction, { kind: 'ack' | 'resolve' }>): Promise<Transition | undefined> {
    const done = await this.options.store.apply(tenantId, id, action)
    if (done === undefined || !done.changed) return done
    if (action.kind === 'ack') {
      this.options.observer.acknowledged(Math.max(0, Date.parse(action.at) - Date.parse(done.record.createdAt)) / 1000)
    }
    this.options.log.info({ action: `alarm.${action.kind === 'ack' ? 'acknowledged' : 'resolved'}`, tenantId, alarmId: id, by: action.by }, `alarm ${done.record.status}`)
    await this.announce(tenantId, done.record, action)
    return done
  }

  /** A policy (ALARM_TTL) expires an alarm; false when it was already resolved or expired. */
  async expire (tenantId: string, id: string, reason: string): Promise<boolean> {
    const action: AlarmAction = { kind: 'expire', at: new Date(this.options.clock.now()).toISOString(), reason }
    const done = await this.options.store.apply(tenantId, id, action)
    if (done === undefined || !done.changed) return false
    this.options.log.warn({ action: 'alarm.expired', tenantId, alarmId: id, reason }, 'alarm expired by policy')
    await this.announce(tenantId, done.record, action)
    return true
  }

  async get (tenantId: string, id: string): Promise<AlarmRecord | undefined> {
    return await this.options.store.get(tenantId, id)
  }

  async list (tenantId: string, query: ListQuery): Promise<AlarmPage> {
    return await this.options.store.list(tenantId, query)
  }

  /** One of the user's devices confirmed receipt (`received {ids}`). */
  async receive (tenantId: string, userId: string, ids: readonly string[]): Promise<void> {
    await this.options.store.receive(tenantId, userId, ids, new Date(this.options.clock.now()).toISOString())
  }

  async receipts (tenantId: string, id: string): Promise<Record<string, string>> {
    return await this.options.store.receipts(tenantId, id)
  }

  /**
   * Publishes a change to the tenant. The change is stored already: if the publish fails the
   * state is still right (REST and `open-alarms` show it), and the failure is logged.
   */
  private async announce (tenantId: string, record: AlarmRecord, action: AlarmAction): Promise<void> {
    try {
      await this.options.publish(tenantId, 'alarm:updated', updateOf(record, action))
    } catch (err) {
      this.options.log.error({ action: 'alarm.update.unpublished', tenantId, alarmId: record.id, status: record.status, err }, 'an alarm change was stored but its alarm:updated could not be published')
    }
  }
}
