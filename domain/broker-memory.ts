import { randomUUID } from 'node:crypto'
import type { Broker, DeliveryListener, StreamRead } from './broker.js'
import type { Clock } from './clock.js'
import type { EventEnvelope, StoredEvent } from './events.js'
import { isPositioned, streamKey, streamOf } from './streams.js'

export interface MemoryBrokerOptions {
  /** Most events held per stream. */
  historySize: number
  /** Longest an event is held, in ms. */
  historyTtlMs: number
  /** How long a stream outlives its last publish or read, in ms; then it is forgotten. */
  historyMetaTtlMs: number
  clock: Clock
  onListenerError: (err: unknown) => void
}

const COMPACT_AFTER = 64

interface Stream {
  epoch: string
  /** The last offset assigned. Kept even when every event has been evicted. */
  latest: number
  /** When the stream was last published to or read, in ms. */
  usedAt: number
  /**
   * Held events from index `head` on, ascending by offset, with the time each was stored.
   * Eviction moves `head` and compacts the arrays once COMPACT_AFTER entries (or half) are dead: removing
   * from the front of a full stream's array on every publish moved HISTORY_SIZE elements each
   * time (3% of the CPU of an ingestion run).
   */
  events: StoredEvent[]
  storedAt: number[]
  head: number
}

/**
 * The embedded broker for one instance. Offsets live in this process, so its epoch is new on
 * every start: a client holding a position from a previous process learns that history is
 * gone. Memory is bounded by HISTORY_SIZE per stream and by HISTORY_TTL, and a stream idle
 * for HISTORY_META_TTL is forgotten; reading a stream that does not exist keeps nothing.
 */
export class MemoryBroker implements Broker {
  readonly epoch = randomUUID()
  private readonly streams = new Map<string, Stream>()
  private readonly listeners = new Set<DeliveryListener>()
  private held = 0
  /**
   * Bumped by every sweep that forgets a stream. A stream is made in the current era's epoch,
   * so one made again after being forgotten never reuses the epoch of its old offsets, without
   * remembering which names were forgotten.
   */
  private era = 0

  constructor (private readonly options: MemoryBrokerOptions) {}

  async publish (envelope: EventEnvelope): Promise<StoredEvent> {
    const name = streamOf(envelope.target)
    // A connection-targeted event is delivered, never stored: it has no position to resume from.
    if (!isPositioned(name)) return this.deliver({ ...envelope, stream: name, offset: 0, epoch: '' })
    const key = streamKey(envelope.tenantId, name)
    const now = this.options.clock.now()
    let stream = this.streams.get(key)
    if (stream === undefined) this.streams.set(key, stream = { epoch: this.eraEpoch(), latest: 0, usedAt: now, events: [], storedAt: [], head: 0 })
    stream.usedAt = now
    const stored: StoredEvent = { ...envelope, stream: name, offset: ++stream.latest, epoch: stream.epoch }
    stream.events.push(stored)
    stream.storedAt.push(now)
    this.held++
    this.evict(stream)
    return this.deliver(stored)
  }

  /** Delivery happens inside publish, synchronously, so per-stream order is offset order. */
  private deliver (stored: StoredEvent): StoredEvent {
    for (const listener of this.listeners) {
      try {
        listener(stored)
      } catch (err) {
        this.options.onListenerError(err)
      }
    }
    return stored
  }

  async read (tenantId: string, streamName: string, after: number | undefined, limit: number): Promise<StreamRead> {
    const stream = this.streams.get(streamKey(tenantId, streamName))
    if (stream === undefined) return { epoch: this.eraEpoch(), latest: 0, oldest: 1, events: [] }
    stream.usedAt = this.options.clock.now()
    this.evict(stream)
    const oldest = stream.events[stream.head]?.offset ?? stream.latest + 1
    if (after === undefined) return { epoch: stream.epoch, latest: stream.latest, oldest, events: [] }
    // Offsets are contiguous, so the first wanted event's index is arithmetic, not a search.
    const start = stream.head + Math.max(0, after + 1 - oldest)
    return { epoch: stream.epoch, latest: stream.latest, oldest, events: stream.events.slice(start, start + limit) }
  }

  onDelivery (listener: DeliveryListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** One process never loses part of a stream it delivers. */
  onGap (): () => void {
    return () => {}
  }

  /** Every stream is live in one process. */
  async watch (): Promise<void> {}

  unwatch (): void {}

  ready (): boolean {
    return true
  }

  heldCount (): number {
    return this.held
  }

  /** Streams held, for tests and metrics. */
  streamCount (): number {
    return this.streams.size
  }

  /**
   * Drops expired events from every stream and forgets streams idle for HISTORY_META_TTL; the
   * gateway calls it periodically.
   */
  sweep (): void {
    const idleBefore = this.options.clock.now() - this.options.historyMetaTtlMs
    let forgot = false
    for (const [key, stream] of this.streams) {
      this.evict(stream)
      if (stream.usedAt > idleBefore) continue
      this.held -= stream.events.length - stream.head
      this.streams.delete(key)
      forgot = true
    }
    if (forgot) this.era++
  }

  async close (): Promise<void> {
    this.listeners.clear()
  }

  private eraEpoch (): string {
    return this.era === 0 ? this.epoch : `${this.epoch}.${this.era}`
  }

  /** Evicts oldest first: beyond the size bound, then whatever is past the age bound. */
  private evict (stream: Stream): void {
    const expiredBefore = this.options.clock.now() - this.options.historyTtlMs
    const length = stream.events.length
    let head = Math.max(stream.head, length - this.options.historySize)
    while (head < length && (stream.storedAt[head] as number) <= expiredBefore) head++
    if (head === stream.head) return
    this.held -= head - stream.head
    stream.head = head
    // Dead entries still hold their events, so at most COMPACT_AFTER of them wait for a compaction.
    if (head < COMPACT_AFTER && head * 2 < length) return
    stream.events.splice(0, head)
    stream.storedAt.splice(0, head)
    stream.head = 0
  }
}
