import type { AlarmService } from './alarm-service.js'
import { ErrorCode } from './error-codes.js'
import { alarmActionFrame, errorFrame, openAlarmsFrame, type Ref } from './frames.js'
import type { SessionContext } from './session.js'

/** What a session needs of the alarm service. */
export type SessionAlarmsPort = Pick<AlarmService, 'act' | 'receive' | 'list'>

/** Alarms per `open-alarms` page: each page stays small next to MAX_BUFFERED_BYTES. */
const PAGE = 50

/**
 * A connection's part in the alarm lifecycle: the `open-alarms` snapshot after each
 * authentication, `ack` and `resolve` from the socket, and the SDK's `received` receipts.
 * Everything is inside the connection's tenant; the acting user is the token's `sub`.
 */
export class SessionAlarms {
  constructor (private readonly session: SessionContext, private readonly alarms: SessionAlarmsPort | undefined) {}

  /**
   * Sends the tenant's unresolved ackable alarms, newest first, in pages, or nothing when there
   * are none. A dashboard that
   * connects long after an alarm left the history window still sees it. Read after the
   * streams were attached, so it is at least as new as every event sent before it.
   */
  async opened (): Promise<void> {
    const alarms = this.alarms
    if (alarms === undefined) return
    const { tenantId } = this.session.principal
    let cursor: string | undefined
    do {
      let page
      try {
        page = await alarms.list(tenantId, { limit: PAGE, cursor })
      } catch (err) {
        this.session.options.log.warn({ action: 'alarm.open_alarms.failed', err, ...this.session.identity() }, 'open alarms could not be read for a new connection')
        this.session.reply(errorFrame(ErrorCode.BROKER_UNAVAILABLE, 'open alarms could not be read; fetch GET /api/v1/alarms'))
        return
      }
      if (this.session.isClosed()) return
      // A tenant with none is sent nothing: a client clears its open alarms at `authenticated`.
      if (page.alarms.length === 0 && cursor === undefined) return
      cursor = page.next
      this.session.reply(openAlarmsFrame(page.alarms, cursor === undefined))
    } while (cursor !== undefined)
  }

  async act (kind: 'ack' | 'resolve', alarmId: string, note: string | undefined, ref: Ref): Promise<void> {
    const { tenantId, userId } = this.session.principal
    let done
    try {
      done = await this.alarms?.act(tenantId, alarmId, { kind, by: userId, at: new Date(this.session.options.clock.now()).toISOString(), note })
    } catch (err) {
      this.session.options.log.warn({ action: 'alarm.action.failed', kind, alarmId, err, ...this.session.identity() }, 'an alarm action failed')
      this.session.reply(errorFrame(ErrorCode.BROKER_UNAVAILABLE, 'the alarm could not be updated; retry', ref))
      return
    }
    if (done === undefined) {
      this.session.reply(errorFrame(ErrorCode.ALARM_NOT_FOUND, `no alarm ${alarmId}`, ref))
      return
    }
    this.session.reply(alarmActionFrame(kind === 'ack' ? 'acked' : 'resolved', done.record, done.changed, ref))
  }

  /** Receipts have no reply; a failure to record them is logged, and the SDK sends them once. */
  async received (ids: readonly string[]): Promise<void> {
    const { tenantId, userId } = this.session.principal
    try {
      await this.alarms?.receive(tenantId, userId, [...new Set(ids)])
    } catch (err) {
      this.session.options.log.warn({ action: 'alarm.receipt.failed', err, ...this.session.identity() }, 'alarm receipts could not be recorded')
    }
  }
}
