import type { EventEnvelope, StoredEvent } from './events.js'

/** Receives every accepted event, on every instance, in offset order per stream. */
export type DeliveryListener = (event: StoredEvent) => void

/**
 * Told when this instance lost events of a stream it cannot recover (evicted before it could
 * fetch them, or an epoch change): the stream's local sockets must reconnect and resume.
 */
export type GapListener = (tenantId: string, stream: string) => void

/** What a stream holds right now. */
export interface StreamRead {
  epoch: string
  /** The last offset assigned in this epoch; 0 when the stream is empty. */
  latest: number
  /** The lowest offset still held; latest + 1 when nothing is held. */
  oldest: number
  /** Held events with offset > `after`, ascending, at most `limit`. Empty when `after` is undefined. */
  events: StoredEvent[]
}

/**
 * The contract between "an event happened" and "every instance knows it, in order".
 *
 * - `publish` resolves only once the event is stored with its position; a rejection means
 *   nothing was stored and nothing will be delivered.
 * - Offsets are assigned per stream, without gaps: 1, 2, 3, … within an epoch.
 * - Listeners receive each stored event exactly once per instance, in offset order within a
 *   stream. Across streams there is no order.
 * - History is bounded by size and age and evicts oldest first; `read` never returns an
 *   event older than one it omits.
 */
export interface Broker {
  publish (envelope: EventEnvelope): Promise<StoredEvent>
  read (tenantId: string, stream: string, after: number | undefined, limit: number): Promise<StreamRead>
  /** Adds a live-delivery listener; returns its removal. */
  onDelivery (listener: DeliveryListener): () => void
  onGap (listener: GapListener): () => void
  /**
   * Declares local interest in a stream; resolves once live delivery for it is active on this
   * instance, so a read made after it misses nothing: every event after the position such a
   * read reports is delivered, including across reconnects of the broker's own connections,
   * or the stream's gap listeners are told. Reference-counted with `unwatch`.
   */
  watch (tenantId: string, stream: string): Promise<void>
  unwatch (tenantId: string, stream: string): void
  /** False while the broker cannot store events (e.g. Redis unreachable). */
  ready (): boolean
  /** Events held across all streams, for metrics; undefined when it cannot be counted cheaply. */
  heldCount (): number | undefined
  close (): Promise<void>
}
