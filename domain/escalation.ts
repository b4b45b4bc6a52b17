import type { AlarmPublish, AlarmService } from './alarm-service.js'
import type { AlarmStore, DueItem } from './alarm-store.js'
import type { Clock } from './clock.js'
import type { EscalationRule } from './escalation-rules.js'
import type { Webhooks } from './webhooks.js'

export interface EscalationLog {
  info (fields: object, message: string): void
  warn (fields: object, message: string): void
  error (fields: object, message: string): void
}

export interface EscalationOptions {
  store: AlarmStore
  alarms: Pick<AlarmService, 'expire'>
  rules: (tenantId: string) => readonly EscalationRule[]
  publish: AlarmPublish
  /** Undefined when no rule names a webhook. */
  webhooks: Webhooks | undefined
  clock: Clock
  /** ALARM_ESCALATION_POLL_MS. */
  pollMs: number
  log: EscalationLog
  /** A level fired, by reason. */
  onEscalated: (reason: 'unacknowledged' | 'unreceived') => void
}

/** Due items taken per look. */
const BATCH = 100

/**
 * Fires escalation levels when they fall due. Every instance runs one; the store decides who
 * fires what:
 *
 * 1. `claim` leases a due item to one instance (atomic in the store), so instances never
 *    work on the same level at once, and a level whose claimer died is claimed again after
 *    the lease (a SIGKILLed instance's alarms still escalate, on another instance).
 * 2. Recording the level on the alarm (`escalated`, atomic per alarm) is the commit point:
 *    only the instance whose record changed publishes and calls the webhook. So each level
 *    fires at most once per alarm; it is lost only if its instance dies between recording
 *    it and publishing (a few ms), and webhook receivers can drop a repeat by its
 *    Idempotency-Key `escalation:<alarm id>:<level>`.
 * 3. `done` removes the item.
 *
 * Level 0 is the ALARM_TTL expiry. A level whose condition no longer holds (acknowledged,
 * resolved, or received for an `unreceived` rule) is dropped without firing.
 */
export class EscalationScheduler {
  private timer: unknown
  private running: Promise<void> | undefined
  private stopped = false

  constructor (private readonly options: EscalationOptions) {}

  start (): void {
    this.arm()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.options.clock.clearTimeout(this.timer)
    await this.running
  }

  /** One look at what is due; resolves when every item taken was handled. */
  async tick (): Promise<void> {
    const { store, clock, pollMs } = this.options
    const now = clock.now()
    const items = await store.due(now, BATCH)
    for (const item of items) {
      if (this.stopped) return
      if (!await store.claim(item, now, Math.max(10 * pollMs, 5000))) continue
      try {
        await this.fire(item)
        await store.done(item)
      } catch (err) {
        // Left claimed: it is claimed again when its lease runs out.
        this.options.log.error({ action: 'alarm.escalation.failed', tenantId: item.tenantId, alarmId: item.alarmId, level: item.level, err }, 'an escalation level failed; it will be retried')
      }
    }
  }

  private arm (): void {
    if (this.stopped) return
    this.timer = this.options.clock.setTimeout(() => {
      this.running = this.tick().catch((err: unknown) => {
        this.options.log.warn({ action: 'alarm.escalation.poll_failed', err }, 'could not look for due escalations')
      }).finally(() => {
        this.running = undefined
        this.arm()
      })
    }, this.options.pollMs)
  }

  private async fire (item: DueItem): Promise<void> {
    const { store, log } = this.options
    const { tenantId, alarmId, level } = item
    if (level === 0) {
      await this.options.alarms.expire(tenantId, alarmId, 'ALARM_TTL')
      return
    }
    const rule = this.options.rules(tenantId)[level - 1]
    const record = await store.get(tenantId, alarmId)
    if (rule === undefined || record === undefined || record.status !== 'open') return
    const reason = rule.if ?? 'unacknowledged'
    if (reason === 'unreceived' && Object.keys(await store.receipts(tenantId, alarmId)).length > 0) return
    const recorded = await store.apply(tenantId, alarmId, { kind: 'escalated', level })
    if (recorded === undefined || !recorded.changed) return
    this.options.onEscalated(reason)
    const at = new Date(this.options.clock.now()).toISOString()
    const payload = { id: alarmId, level, reason, after: rule.after, ...(rule.role === undefined ? {} : { role: rule.role }), alarm: record.alarm, at }
    log.warn({ action: 'alarm.escalated', tenantId, alarmId, level, reason, role: rule.role, webhook: rule.webhook !== undefined }, 'alarm escalated')
    if (rule.webhook !== undefined) this.options.webhooks?.send(rule.webhook, { event: 'alarm:escalated', tenantId, ...payload }, `escalation:${alarmId}:${level}`)
    if (rule.role !== undefined) {
      try {
        await this.options.publish(tenantId, 'alarm:escalated', payload, { kind: 'role', role: rule.role })
      } catch (err) {
        log.error({ action: 'alarm.escalation.unpublished', tenantId, alarmId, level, err }, 'an escalation was recorded but could not be published')
      }
    }
  }
}
