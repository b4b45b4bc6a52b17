import { Type, type Static } from 'typebox'
import { Alarm } from './events.js'

/**
 * The lifecycle of an ackable alarm, kept apart from the history window:
 *
 *   open ──ack──> acknowledged ──resolve──> resolved
 *     └───────────────resolve──────────────────^
 *   open | acknowledged ──(policy only)──> expired
 *
 * `resolved` and `expired` are terminal. `expired` is never reached by a person: only by an
 * explicit policy (the open-alarm bound ALARM_OVERFLOW=expire-oldest, or ALARM_TTL), each of
 * which logs and counts it. A transition that changes nothing (a second ack, an ack after a
 * resolve) is not an error: it answers the record as it stands and publishes nothing.
 */
export const AlarmStatus = Type.Enum(['open', 'acknowledged', 'resolved', 'expired'])
export type AlarmStatus = Static<typeof AlarmStatus>

/** An alarm's state as the REST API, the `open-alarms` frame and the store carry it. */
export const AlarmRecord = Type.Object({
  id: Type.String(),
  status: AlarmStatus,
  /** The alarm as it was ingested (the `alarm:created` payload). */
  alarm: Alarm,
  /** When the gateway accepted it, ISO 8601. */
  createdAt: Type.String(),
  acknowledgedBy: Type.Optional(Type.String()),
  acknowledgedAt: Type.Optional(Type.String()),
  resolvedBy: Type.Optional(Type.String()),
  resolvedAt: Type.Optional(Type.String()),
  expiredAt: Type.Optional(Type.String()),
  /** Why a policy expired it: `OPEN_ALARM_LIMIT` or `ALARM_TTL`. */
  expiredReason: Type.Optional(Type.String()),
  /** The note of the ack, or of the resolve when that came without one. */
  note: Type.Optional(Type.String({ maxLength: 500 })),
  /** Escalation levels (1-based rule numbers) that fired, in firing order. */
  escalations: Type.Array(Type.Integer({ minimum: 1 }))
})
export type AlarmRecord = Static<typeof AlarmRecord>

/** What a person (or a policy) asks of an alarm. `at` is ISO 8601. */
export type AlarmAction =
  | { kind: 'ack', by: string, at: string, note?: string | undefined }
  | { kind: 'resolve', by: string, at: string, note?: string | undefined }
  | { kind: 'expire', at: string, reason: string }
  | { kind: 'escalated', level: number }

export interface Transition {
  record: AlarmRecord
  /** False when the action changed nothing: nothing is to be published. */
  changed: boolean
}

export function isTerminal (status: AlarmStatus): boolean {
  return status === 'resolved' || status === 'expired'
}

/** Applies an action to a record. Pure: the input record is not modified. */
export function transition (record: AlarmRecord, action: AlarmAction): Transition {
  const unchanged = { record, changed: false }
  switch (action.kind) {
    case 'ack': {
      if (record.status !== 'open') return unchanged
      const next: AlarmRecord = { ...record, status: 'acknowledged', acknowledgedBy: action.by, acknowledgedAt: action.at }
      if (action.note !== undefined) next.note = action.note
      return { record: next, changed: true }
    }
    case 'resolve': {
      if (isTerminal(record.status)) return unchanged
      const next: AlarmRecord = { ...record, status: 'resolved', resolvedBy: action.by, resolvedAt: action.at }
      if (action.note !== undefined && next.note === undefined) next.note = action.note
      return { record: next, changed: true }
    }
    case 'expire':
      if (isTerminal(record.status)) return unchanged
      return { record: { ...record, status: 'expired', expiredAt: action.at, expiredReason: action.reason }, changed: true }
    case 'escalated':
      // Only an alarm nobody has taken escalates: an ack that landed while the escalation was
      // being decided wins.
      if (record.status !== 'open' || record.escalations.includes(action.level)) return unchanged
      return { record: { ...record, escalations: [...record.escalations, action.level] }, changed: true }
  }
}

/** The `alarm:updated` payload a transition publishes to the whole tenant. */
export function updateOf (record: AlarmRecord, action: AlarmAction): { id: string, status: AlarmStatus, by: string, at: string, note?: string } {
  const by = action.kind === 'ack' || action.kind === 'resolve' ? action.by : 'system'
  const at = action.kind === 'escalated' ? new Date().toISOString() : action.at
  const update: { id: string, status: AlarmStatus, by: string, at: string, note?: string } = { id: record.id, status: record.status, by, at }
  const note = action.kind === 'ack' || action.kind === 'resolve' ? action.note : action.kind === 'expire' ? action.reason : undefined
  if (note !== undefined) update.note = note
  return update
}

/**
 * Whether an alarm needs a person: its severity is one of ALARM_ACK_SEVERITIES, or it was
 * ingested with `requireAck: true`.
 */
export function isAckable (severity: string, requireAck: boolean | undefined, severities: ReadonlySet<string>): boolean {
  return requireAck === true || severities.has(severity)
}

/**
 * What gives way when a tenant already has ALARM_MAX_OPEN unresolved alarms:
 * - `expire-oldest`: the oldest unresolved alarm is expired (published as `alarm:updated`
 *   with status `expired`) to make room, so the newest always gets a person's attention;
 * - `reject`: the new alarm is refused (503 OPEN_ALARM_LIMIT), so the sender retries later
 *   and nothing already open is lost.
 * Either way a warning is logged and tenantcast_alarm_overflow_total counts it.
 */
export const OverflowPolicy = Type.Enum(['expire-oldest', 'reject'])
export type OverflowPolicy = Static<typeof OverflowPolicy>

/** The sort key of the unresolved index: creation time, then id, so that pages never tie. */
export function indexKey (record: Pick<AlarmRecord, 'id' | 'createdAt'>): string {
  return `${String(Date.parse(record.createdAt)).padStart(15, '0')}:${record.id}`
}
