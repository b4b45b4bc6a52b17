import type { EventEnvelope, StoredEvent } from './events.js'

/** Receives every accepted event, on every instance, in offset order per stream. */
export type DeliveryListener = (event: StoredEvent) => void

/**
 * The contract between "an event happened" and "every instance knows it, in order".
 *
 * - `publish` resolves only once the event is stored with its position; a rejection means
 *   nothing was stored and nothing will be delivered.
 * - Listeners receive each stored event exactly once per instance, in offset order within a
 *   stream. Across streams there is no order.
 */
export interface Broker {
  publish (envelope: EventEnvelope): Promise<StoredEvent>
  /** Adds a live-delivery listener; returns its removal. */
  onDelivery (listener: DeliveryListener): () => void
  close (): Promise<void>
}

/** The tenant stream carries tenant-wide and user-targeted events. */
export const TENANT_STREAM = 'tenant'

/** Internal key of a stream: the tenant prefix makes every stream name tenant-local. */
export function streamKey (tenantId: string, stream: string): string {
  return `${tenantId}\u0000${stream}`
}
