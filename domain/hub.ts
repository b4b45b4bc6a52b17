import { CloseCode } from './close-codes.js'
import type { StoredEvent } from './events.js'
import { eventFrame } from './frames.js'

/** The little the hub needs of a socket. Adapters wrap ws (or anything else) behind it. */
export interface Connection {
  /** Queues one text frame. */
  send (data: string): void
  close (code: number, reason: string): void
  /** Bytes queued for this socket and not yet handed to the kernel. */
  readonly bufferedAmount: number
}

/** An authenticated connection, as the hub indexes it. */
export interface Client {
  readonly id: string
  readonly tenantId: string
  readonly userId: string
  readonly connection: Connection
}

export interface HubOptions {
  /** A socket holding more than this many unsent bytes is closed with 4008 instead of sent to. */
  maxBufferedBytes: number
  onSlowConsumer?: (client: Client) => void
}

/**
 * This instance's authenticated sockets, indexed by tenant and by user. It knows nothing of
 * Fastify or ws. A client is in every index or in none.
 */
export class Hub {
  private readonly byTenant = new Map<string, Set<Client>>()
  private readonly byUser = new Map<string, Set<Client>>()

  constructor (private readonly options: HubOptions) {}

  add (client: Client): void {
    addTo(this.byTenant, client.tenantId, client)
    addTo(this.byUser, userKey(client.tenantId, client.userId), client)
  }

  remove (client: Client): void {
    removeFrom(this.byTenant, client.tenantId, client)
    removeFrom(this.byUser, userKey(client.tenantId, client.userId), client)
  }

  tenantConnectionCount (tenantId: string): number {
    return this.byTenant.get(tenantId)?.size ?? 0
  }

  userConnectionCount (tenantId: string, userId: string): number {
    return this.byUser.get(userKey(tenantId, userId))?.size ?? 0
  }

  /** Every client of every tenant, e.g. to close them all on shutdown. */
  * clients (): IterableIterator<Client> {
    for (const set of this.byTenant.values()) yield * set
  }

  /**
   * Sends one stored event to every entitled local socket and returns how many got it. The
   * frame is serialized once per call, never once per socket.
   */
  deliver (event: StoredEvent): number {
    const recipients = event.target.kind === 'user'
      ? this.byUser.get(userKey(event.tenantId, event.target.userId))
      : this.byTenant.get(event.tenantId)
    if (recipients === undefined || recipients.size === 0) return 0
    const frame = eventFrame(event)
    let delivered = 0
    // Copy first: closing a slow consumer removes it from the set we would be iterating.
    for (const client of [...recipients]) {
      if (this.send(client, frame)) delivered++
    }
    return delivered
  }

  /**
   * The slow-consumer guard: a socket past the buffer limit gets nothing more queued; it is
   * closed with 4008 so that it reconnects and resumes from its last position.
   */
  private send (client: Client, frame: string): boolean {
    if (client.connection.bufferedAmount > this.options.maxBufferedBytes) {
      this.remove(client)
      client.connection.close(CloseCode.SLOW_CONSUMER, 'SLOW_CONSUMER')
      this.options.onSlowConsumer?.(client)
      return false
    }
    client.connection.send(frame)
    return true
  }
}

function userKey (tenantId: string, userId: string): string {
  return `${tenantId}\u0000${userId}`
}

function addTo<K, V> (index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key)
  if (set === undefined) index.set(key, set = new Set())
  set.add(value)
}

function removeFrom<K, V> (index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key)
  if (set === undefined) return
  set.delete(value)
  if (set.size === 0) index.delete(key)
}
