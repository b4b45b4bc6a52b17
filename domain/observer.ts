import type { StoredEvent } from './events.js'

/**
 * What the gateway reports as it works, for metrics. Domain code calls it; a plugin turns it
 * into Prometheus series. Every method is cheap and called at most once per event or frame,
 * never once per socket of a broadcast.
 */
export interface Observer {
  /** An event went out to `sockets` local sockets as one frame of `bytes` bytes. */
  delivered (event: StoredEvent, sockets: number, bytes: number): void
  /**
   * An event's writes are done: it waited `firstSeconds` before its first socket write and
   * `lastSeconds` before its last, from when the hub took it in (0 and the loop's time for an
   * event written at once; longer for one the fair scheduler queued or sliced).
   */
  waited (event: StoredEvent, firstSeconds: number, lastSeconds: number): void
  /** A non-event frame (reply, presence, replayed event) went to one socket. */
  sent (bytes: number): void
  frameIn (): void
  slowConsumer (tenantId: string): void
  rateLimited (kind: 'frames' | 'connections' | 'unauthenticated' | 'rest' | 'inflight' | 'backlog', tenantId: string): void
  authFailed (reason: string): void
}

export const noopObserver: Observer = {
  delivered () {},
  waited () {},
  sent () {},
  frameIn () {},
  slowConsumer () {},
  rateLimited () {},
  authFailed () {}
}
