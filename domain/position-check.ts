import type { Broker } from './broker.js'
import { CloseCode } from './close-codes.js'
import type { Hub } from './hub.js'
import { tenantKey } from './tenant-key.js'

export interface PositionCheckOptions {
  hub: Pick<Hub, 'streamStandings' | 'standing' | 'closeStream'>
  broker: Pick<Broker, 'read'>
  log: { warn (fields: object, message: string): void }
}

/**
 * The server's own continuity check. Live delivery can lose a message between the broker and
 * this instance (a pub/sub message dropped on a quiet stream is noticed by nothing else: no
 * later message reveals the gap). Each run compares, per stream with local sockets, the last
 * offset this instance delivered with the broker's latest: one read per stream, never per
 * socket. A stream found behind in two runs in a row, with the offset seen behind the first
 * time still undelivered the second, is a loss, not an event in flight: its local sockets are
 * closed with 4008 `STREAM_BEHIND`, and they reconnect and resume from their own positions,
 * so the loss becomes a replay.
 */
export class PositionCheck {
  /** Per stream (tenant-keyed), the broker's latest when it was first seen ahead of this instance. */
  private readonly suspects = new Map<string, number>()
  private running = false

  constructor (private readonly options: PositionCheckOptions) {}

  /** Runs one check; a run that starts while another is under way does nothing. Returns the streams closed. */
  async run (): Promise<number> {
    if (this.running) return 0
    this.running = true
    let closed = 0
    const seen = new Set<string>()
    try {
      for (const { tenantId, stream } of [...this.options.hub.streamStandings()]) {
        const key = tenantKey(tenantId, stream)
        seen.add(key)
        let read
        try {
          read = await this.options.broker.read(tenantId, stream, undefined, 0)
        } catch {
          // A broker that cannot answer is no verdict on the stream; the next run asks again.
          continue
        }
        // Looked up again after the await (O(1), so a run stays O(streams)): deliveries meanwhile
        // moved it, or its last socket left.
        const standing = this.options.hub.standing(tenantId, stream)
        if (standing === undefined) continue
        // Offset 0 is "nothing delivered": any epoch's events are ahead of it. Another epoch
        // above 0 means the stream's history was lost: nothing here can catch up with it.
        const comparable = standing.epoch === read.epoch || standing.offset === 0
        const behind = comparable ? read.latest > standing.offset : read.latest > 0
        if (!behind) {
          this.suspects.delete(key)
          continue
        }
        const suspect = this.suspects.get(key)
        if (suspect === undefined || (comparable && standing.offset >= suspect)) {
          this.suspects.set(key, read.latest)
          continue
        }
        this.suspects.delete(key)
        this.options.log.warn({ action: 'stream.behind', tenantId, stream, delivered: standing.offset, latest: read.latest }, 'this instance missed events of a stream; its sockets reconnect and resume')
        this.options.hub.closeStream(tenantId, stream, CloseCode.SLOW_CONSUMER, 'STREAM_BEHIND')
        closed++
      }
    } finally {
      this.running = false
    }
    // Suspects of streams that no longer have local sockets are forgotten with them.
    for (const key of this.suspects.keys()) if (!seen.has(key)) this.suspects.delete(key)
    return closed
  }
}
