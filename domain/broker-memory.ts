import { randomUUID } from 'node:crypto'
import { TENANT_STREAM, streamKey, type Broker, type DeliveryListener } from './broker.js'
import type { EventEnvelope, StoredEvent } from './events.js'

/**
 * The embedded broker for one instance. Offsets live in this process, so its epoch is new on
 * every start: a client holding a position from a previous process learns that history is gone.
 */
export class MemoryBroker implements Broker {
  readonly epoch = randomUUID()
  private readonly offsets = new Map<string, number>()
  private readonly listeners = new Set<DeliveryListener>()

  constructor (private readonly onListenerError: (err: unknown) => void) {}

  async publish (envelope: EventEnvelope): Promise<StoredEvent> {
    const key = streamKey(envelope.tenantId, TENANT_STREAM)
    const offset = (this.offsets.get(key) ?? 0) + 1
    this.offsets.set(key, offset)
    const stored: StoredEvent = { ...envelope, stream: TENANT_STREAM, offset, epoch: this.epoch }
    // Delivery happens inside publish, synchronously, so per-stream order is offset order.
    for (const listener of this.listeners) {
      try {
        listener(stored)
      } catch (err) {
        this.onListenerError(err)
      }
    }
    return stored
  }

  onDelivery (listener: DeliveryListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  async close (): Promise<void> {
    this.listeners.clear()
  }
}
