import type { AlarmActionFrame, EventFrame, OpenAlarmsFrame, OpenAlarm } from './types.js'

/** Most ids in one `received` frame: the server accepts 1 to 100. */
export const RECEIPT_BATCH = 100
/** How long, in ms, receipts gather before they go out as one `received` frame. */
export const RECEIPT_DELAY_MS = 100

/** Unresolved statuses, in the order an alarm passes through them. */
const RANK: Readonly<Record<string, number>> = { open: 0, acknowledged: 1 }

/** What the alarm state needs of its client: its clock, a way to send a frame that has no reply, and its `alarms` event. */
export interface AlarmHost {
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
  /** Sends a frame on the live socket; false when there is none. */
  notify (frame: { type: 'received', ids: string[] }): boolean
  changed (alarms: OpenAlarm[]): void
}

function newestFirst (a: OpenAlarm, b: OpenAlarm): number {
  const byTime = Date.parse(b.createdAt) - Date.parse(a.createdAt)
  return byTime !== 0 ? byTime : a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The client's view of the tenant's unresolved ackable alarms, and its receipts for them.
 *
 * - At each `authenticated` the list is cleared: the server then sends `open-alarms` pages
 *   (none when the tenant has no unresolved alarm). Replayed and live `alarm:created` (ackable),
 *   `alarm:updated` and `alarm:escalated` events, and the replies to `ack`/`resolve`, keep it
 *   current. Statuses only move forward, so whichever of a snapshot and a live update comes
 *   first, the later state wins, and an alarm seen resolved on this socket is not brought back
 *   by a snapshot read just before.
 * - Every ackable alarm the client gets (by event or in a snapshot) is confirmed once with
 *   `received {ids}`, batched: up to RECEIPT_BATCH ids, RECEIPT_DELAY_MS after the first.
 *   Receipts that find no socket wait for the next one.
 */
export class AlarmState {
  private readonly alarms = new Map<string, OpenAlarm>()
  /** Ids resolved or expired since the last `authenticated`: a snapshot does not revive them. */
  private readonly closed = new Set<string>()
  /** Ids confirmed (or queued) once: never confirmed again. */
  private readonly confirmed = new Set<string>()
  private queue: string[] = []
  private timer: unknown

  constructor (private readonly host: AlarmHost) {}

  /** Unresolved alarms, newest first. */
  list (): OpenAlarm[] {
    return [...this.alarms.values()].sort(newestFirst)
  }

  /** A new socket authenticated: its `open-alarms` pages come next, or none when there are none. */
  authenticated (): void {
    this.closed.clear()
    const had = this.alarms.size > 0
    this.alarms.clear()
    if (had) this.changed()
    if (this.queue.length > 0) this.arm()
  }

  snapshot (frame: OpenAlarmsFrame): void {
    let changed = false
    for (const record of Array.isArray(frame.alarms) ? frame.alarms : []) {
      if (!isRecord(record) || typeof record.id !== 'string' || this.closed.has(record.id)) continue
      changed = this.merge(record) || changed
      this.receive(record.id)
    }
    if (changed) this.changed()
  }

  event (frame: EventFrame): void {
    const data = frame.data
    if (!isRecord(data) || typeof data.id !== 'string') return
    const id = data.id
    if (frame.event === 'alarm:created') {
      if (data.ackable !== true) return
      this.receive(id)
      if (this.closed.has(id) || this.alarms.has(id)) return
      this.alarms.set(id, { id, status: 'open', alarm: data as OpenAlarm['alarm'], createdAt: frame.timestamp, escalations: [] })
      this.changed()
    } else if (frame.event === 'alarm:updated' && typeof data.status === 'string') {
      const current = this.alarms.get(id)
      if (data.status === 'resolved' || data.status === 'expired') {
        this.close(id)
        return
      }
      if (current === undefined || data.status !== 'acknowledged' || current.status === 'acknowledged') return
      const next: OpenAlarm = { ...current, status: 'acknowledged' }
      if (typeof data.by === 'string') next.acknowledgedBy = data.by
      if (typeof data.at === 'string') next.acknowledgedAt = data.at
      if (typeof data.note === 'string') next.note = data.note
      this.alarms.set(id, next)
      this.changed()
    } else if (frame.event === 'alarm:escalated' && typeof data.level === 'number') {
      const current = this.alarms.get(id)
      if (current === undefined || current.escalations.includes(data.level)) return
      this.alarms.set(id, { ...current, escalations: [...current.escalations, data.level] })
      this.changed()
    }
  }

  /** The reply to this client's own `ack` or `resolve`: the alarm as the server holds it. */
  replied (frame: AlarmActionFrame): void {
    const record = frame.alarm
    if (!isRecord(record) || typeof record.id !== 'string') return
    if (record.status === 'resolved' || record.status === 'expired') this.close(record.id)
    else if (this.merge(record)) this.changed()
  }

  /** The client closed for good: nothing more is sent. */
  stop (): void {
    this.host.clearTimeout(this.timer)
    this.timer = undefined
  }

  /** Takes a record unless the one held is as far along; true when the list changed. */
  private merge (record: Record<string, unknown>): boolean {
    const status = String(record.status)
    const rank = RANK[status]
    if (rank === undefined) return false
    const current = this.alarms.get(record.id as string)
    if (current !== undefined && (RANK[current.status] ?? 0) >= rank) return false
    this.alarms.set(record.id as string, { escalations: [], ...record } as unknown as OpenAlarm)
    return true
  }

  private close (id: string): void {
    this.closed.add(id)
    this.confirmed.delete(id)
    if (this.alarms.delete(id)) this.changed()
  }

  private receive (id: string): void {
    if (this.confirmed.has(id)) return
    this.confirmed.add(id)
    this.queue.push(id)
    if (this.queue.length >= RECEIPT_BATCH) this.flush()
    else this.arm()
  }

  private arm (): void {
    if (this.timer !== undefined) return
    this.timer = this.host.setTimeout(() => {
      this.timer = undefined
      this.flush()
    }, RECEIPT_DELAY_MS)
  }

  private flush (): void {
    this.host.clearTimeout(this.timer)
    this.timer = undefined
    while (this.queue.length > 0) {
      const ids = this.queue.slice(0, RECEIPT_BATCH)
      if (!this.host.notify({ type: 'received', ids })) return
      this.queue = this.queue.slice(ids.length)
    }
  }

  private changed (): void {
    this.host.changed(this.list())
  }
}
