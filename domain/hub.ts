import { CloseCode } from './close-codes.js'
import type { StoredEvent } from './events.js'
import { FairScheduler, type SliceTask } from './fair-scheduler.js'
import { eventFrame } from './frames.js'
import { noopObserver, type Observer } from './observer.js'
import { TENANT_STREAM, channelOf, channelStream, userOf, userStream, type Position } from './streams.js'
import { tenantKey } from './tenant-key.js'

/** The little the hub needs of a socket. Adapters wrap ws (or anything else) behind it. */
export interface Connection {
  /** Queues one text frame. */
  send (data: string): void
  close (code: number, reason: string): void
  /** Bytes queued for this socket and not yet handed to the kernel. */
  readonly bufferedAmount: number
  /**
   * Sends a live event, for transports that do not speak our frames (Socket.IO emits it under
   * its own name). Without it the shared serialized frame goes to `send`.
   */
  sendEvent?: (event: StoredEvent, frame: string) => void
  /**
   * Resolves once the socket has handed what it queued to the kernel (or has closed), so that
   * a long write (a replay) can go out at the reader's pace. Without it nothing is awaited.
   */
  drained?: () => Promise<void>
}

/** An authenticated connection, as the hub indexes it. The session owns it. */
export interface Client {
  readonly id: string
  readonly tenantId: string
  readonly userId: string
  readonly connection: Connection
  /** Channels joined, by tenant-local name. */
  readonly channels: Set<string>
  /** The roles of the token the connection authenticated with, for role-targeted events. */
  roles?: readonly string[]
  /** The `iat` of the token the connection holds now, in epoch seconds; a refresh updates it. */
  issuedAt?: number | undefined
  /**
   * Streams being replayed. Live events for them are held here, in offset order, and the
   * session sends them once the replay is out, so that nothing is duplicated or skipped.
   */
  readonly held: Map<string, StoredEvent[]>
  /**
   * Per stream, the offset a replay already sent through. With Redis a live message can trail
   * the history read that included it; the first live event above the floor clears it.
   */
  readonly floors: Map<string, number>
  /**
   * Closes the socket and ends its session at once, so that no later frame of it is handled.
   * The hub calls it for every client it drops; it must tolerate being called again.
   */
  readonly close: (code: number, reason: string) => void
}

export interface HubOptions {
  /** A socket holding more than this many unsent bytes is closed with 4008 instead of sent to. */
  maxBufferedBytes: number
  /** Most live events held for one stream while it replays; past it the socket is a slow consumer. */
  maxHeldEvents: number
  onSlowConsumer?: (client: Client) => void
  /** A connection threw while being sent to; it was closed with 1011 and the others were served. */
  onSendFailed?: (client: Client, err: unknown) => void
  /** A queued delivery failed as a whole (a bug, e.g. a throwing observer): it was dropped, the others served. */
  onDeliveryFailed?: (err: unknown) => void
  observer?: Observer
  /**
   * Sockets written per tenant per scheduler round (FANOUT_SLICE). A broadcast to more is
   * written in slices, other tenants' work running between them. Default 256.
   */
  fanoutSlice?: number
  /** Runs the scheduler's next round later; setImmediate by default. Tests pass a manual one. */
  defer?: (run: () => void) => void
  /** A monotonic clock in ms, for the wait-time metrics; performance.now by default. */
  now?: () => number
}

export const DEFAULT_FANOUT_SLICE = 256

export interface Member {
  userId: string
  clientId: string
}

/** Where this instance stands in one attached stream: the last offset delivered to its sockets. */
export interface StreamStanding extends Position {
  readonly tenantId: string
  readonly stream: string
}

/** A membership change, for observers that mirror the hub elsewhere (cluster presence). */
export type MembershipChange =
  | { kind: 'add' | 'remove', client: Client }
  | { kind: 'join' | 'leave', client: Client, channel: string }

/**
 * This instance's authenticated sockets, indexed by tenant, user, connection id and channel.
 * It knows nothing of Fastify or ws. A client is in every index that applies or in none.
 */
export class Hub {
  private readonly byTenant = new Map<string, Set<Client>>()
  private readonly byUser = new Map<string, Set<Client>>()
  private readonly byChannel = new Map<string, Set<Client>>()
  private readonly byId = new Map<string, Client>()
  private readonly observers = new Set<(change: MembershipChange) => void>()
  /**
   * Per stream with local sockets, keyed by tenant and stream, the last position delivered here
   * (or read by an attach, before the first delivery). One entry per stream, never per socket:
   * the server's position check costs O(streams). An entry leaves with the stream's last socket.
   */
  private readonly standings = new Map<string, StreamStanding>()

  private readonly observer: Observer
  private readonly scheduler: FairScheduler
  /** Bumped by every index change, so a queued broadcast can tell its recipients are unchanged. */
  private membership = 0
  /**
   * The last queued broadcast, while nothing was queued after it and none of it is written: an
   * event for the same recipients joins it, so that each socket gets the burst in one turn
   * (one coalesced write) instead of one frame per round.
   */
  private tail: EventTask | undefined
  private readonly now: () => number

  constructor (private readonly options: HubOptions) {
    this.observer = options.observer ?? noopObserver
    this.now = options.now ?? (() => performance.now())
    this.scheduler = new FairScheduler({
      slice: options.fanoutSlice ?? DEFAULT_FANOUT_SLICE,
      ...(options.defer === undefined ? {} : { defer: options.defer }),
      onError: (err) => { this.options.onDeliveryFailed?.(err) }
    })
  }

  /** Adds an observer of membership changes; returns its removal. */
  observe (observer: (change: MembershipChange) => void): () => void {
    this.observers.add(observer)
    return () => { this.observers.delete(observer) }
  }

  add (client: Client): void {
    this.membership++
    addTo(this.byTenant, client.tenantId, client)
    addTo(this.byUser, tenantKey(client.tenantId, client.userId), client)
    this.byId.set(tenantKey(client.tenantId, client.id), client)
    this.notify({ kind: 'add', client })
  }

  /**
   * Removes the client from every index. Its own `channels` set is left as it was, so the
   * session can still tell those channels' members that it left. Idempotent.
   */
  remove (client: Client): void {
    if (this.byId.get(tenantKey(client.tenantId, client.id)) !== client) return
    this.membership++
    if (removeFrom(this.byTenant, client.tenantId, client)) this.forget(client.tenantId, TENANT_STREAM)
    if (removeFrom(this.byUser, tenantKey(client.tenantId, client.userId), client)) this.forget(client.tenantId, userStream(client.userId))
    this.byId.delete(tenantKey(client.tenantId, client.id))
    for (const channel of client.channels) {
      if (removeFrom(this.byChannel, tenantKey(client.tenantId, channel), client)) this.forget(client.tenantId, channelStream(channel))
    }
    this.notify({ kind: 'remove', client })
  }

  /** Joins a channel; false when the client was already in it, or is not (or no longer) in the hub. */
  join (client: Client, channel: string): boolean {
    if (client.channels.has(channel) || this.byId.get(tenantKey(client.tenantId, client.id)) !== client) return false
    client.channels.add(channel)
    this.membership++
    addTo(this.byChannel, tenantKey(client.tenantId, channel), client)
    this.notify({ kind: 'join', client, channel })
    return true
  }

  /** Leaves a channel; false when the client was not in it. */
  leave (client: Client, channel: string): boolean {
    if (!client.channels.delete(channel)) return false
    this.membership++
    if (removeFrom(this.byChannel, tenantKey(client.tenantId, channel), client)) this.forget(client.tenantId, channelStream(channel))
    this.notify({ kind: 'leave', client, channel })
    return true
  }

  /** Authenticated sockets on this instance. */
  size (): number {
    return this.byId.size
  }

  tenantConnectionCount (tenantId: string): number {
    return this.byTenant.get(tenantId)?.size ?? 0
  }

  userConnectionCount (tenantId: string, userId: string): number {
    return this.byUser.get(tenantKey(tenantId, userId))?.size ?? 0
  }

  channelConnectionCount (tenantId: string, channel: string): number {
    return this.byChannel.get(tenantKey(tenantId, channel))?.size ?? 0
  }

  hasClient (tenantId: string, clientId: string): boolean {
    return this.byId.has(tenantKey(tenantId, clientId))
  }

  /** The tenant's online users and how many connections each has. */
  users (tenantId: string): Map<string, number> {
    const users = new Map<string, number>()
    for (const client of this.byTenant.get(tenantId) ?? []) users.set(client.userId, (users.get(client.userId) ?? 0) + 1)
    return users
  }

  channelMembers (tenantId: string, channel: string): Member[] {
    return [...this.byChannel.get(tenantKey(tenantId, channel)) ?? []].map((c) => ({ userId: c.userId, clientId: c.id }))
  }

  /** Tenants with at least one local client. */
  tenants (): IterableIterator<string> {
    return this.byTenant.keys()
  }

  /** The local clients of one tenant. */
  tenantClients (tenantId: string): ReadonlySet<Client> {
    return this.byTenant.get(tenantId) ?? new Set()
  }

  /**
   * A socket attached a stream at a read's position. The first attach of a stream sets where
   * this instance stands in it; later ones change nothing, since only deliveries advance it.
   */
  attached (tenantId: string, stream: string, position: Position): void {
    const key = tenantKey(tenantId, stream)
    if (!this.standings.has(key) && this.streamClients(tenantId, stream).size > 0) this.standings.set(key, { tenantId, stream, ...position })
  }

  /** Where this instance stands in every stream that has local sockets. */
  streamStandings (): IterableIterator<StreamStanding> {
    return this.standings.values()
  }

  /** Where this instance stands in one stream, or undefined when it has no local sockets. */
  standing (tenantId: string, stream: string): StreamStanding | undefined {
    return this.standings.get(tenantKey(tenantId, stream))
  }

  /** Closes every local socket attached to a stream, e.g. after a gap. */
  closeStream (tenantId: string, stream: string, code: number, reason: string): void {
    for (const client of [...this.streamClients(tenantId, stream)]) this.drop(client, code, reason)
  }

  /** The local sockets attached to a stream: its tenant's, its user's or its channel's. */
  streamClients (tenantId: string, stream: string): ReadonlySet<Client> {
    const channel = channelOf(stream)
    if (channel !== undefined) return this.byChannel.get(tenantKey(tenantId, channel)) ?? new Set()
    const user = userOf(stream)
    if (user !== undefined) return this.byUser.get(tenantKey(tenantId, user)) ?? new Set()
    return this.byTenant.get(tenantId) ?? new Set()
  }

  /**
   * Closes the tenant's local sockets that match: one user's, one connection, or all of them
   * when neither is named; `issuedBefore` (epoch seconds) spares sockets holding a token
   * issued at or after it. Returns how many were closed. Each leaves every index first, so
   * nothing more is delivered to it.
   */
  disconnect (tenantId: string, match: { userId?: string | undefined, clientId?: string | undefined, issuedBefore?: number | undefined }, code: number, reason: string): number {
    let clients: Iterable<Client> | undefined
    if (match.clientId !== undefined) {
      const client = this.byId.get(tenantKey(tenantId, match.clientId))
      clients = client === undefined || (match.userId !== undefined && client.userId !== match.userId) ? undefined : [client]
    } else {
      clients = match.userId === undefined ? this.byTenant.get(tenantId) : this.byUser.get(tenantKey(tenantId, match.userId))
    }
    const before = match.issuedBefore
    const doomed = [...clients ?? []].filter((c) => before === undefined || c.issuedAt === undefined || c.issuedAt < before)
    // Through the client's own close, so its session ends at once and handles no later frame.
    for (const client of doomed) this.drop(client, code, reason)
    return doomed.length
  }

  /**
   * Sends one stored event to every entitled local socket and returns how many got it, hold
   * it for a replay in progress, or are queued to get it. The frame is serialized once per
   * event, never per socket, and shared by all of its slices. A connection that throws is
   * dropped alone: the others still get the event.
   *
   * Fairness: a broadcast the scheduler's round cannot take at once (more sockets than a
   * slice, or a tenant that already has writes queued) is queued for its tenant and written
   * a slice at a time, other tenants' work in between (see fair-scheduler.ts). A small
   * broadcast of a tenant with nothing queued is written here, at once: the common case costs
   * what it did before the scheduler.
   *
   * Order: per tenant, the hub's writes (events, replies, presence) leave in the order they
   * were asked for, so no frame overtakes an earlier one on any socket.
   *
   * Entitlement is decided when the event is queued, not when its slice runs: the recipients
   * are the sockets attached now, and a socket that is replaying the stream gets the event in
   * its held queue now. That is what keeps the hold/replay/floor protocol whole. Its release
   * sends held events through `send`, so they queue behind the live events queued before the
   * release; a live event that were routed at slice time could find the held queue already
   * released and be written before the released events still in the queue. A socket that
   * attaches after the event was queued is not among its recipients, and needs not be: the
   * event was stored before it was queued, so the attach's history read covers it. At slice
   * time each recipient is checked again, so that nothing more reaches a socket that left the
   * hub (or the event's channel) meanwhile, and a replay begun since catches the event in its
   * held queue (its release then skips it: the replay's read covered it).
   */
  deliver (event: StoredEvent): number {
    const recipients = this.recipients(event)
    if (recipients === undefined || recipients.size === 0) return 0
    // Where this instance stands: the last position it took in for delivery, queued or written.
    if (event.offset !== 0) this.standings.set(tenantKey(event.tenantId, event.stream), { tenantId: event.tenantId, stream: event.stream, epoch: event.epoch, offset: event.offset })
    if (!this.scheduler.tryNow(event.tenantId, recipients.size)) return this.deliverLater(event, recipients)
    const started = this.now()
    let frame: string | undefined
    let delivered = 0
    let sent = 0
    // A slow consumer dropped mid-loop leaves the set; Set iteration tolerates that, so no copy.
    for (const client of recipients) {
      // The common case, a socket with no replay in progress, costs two size checks. An
      // unpositioned (connection-targeted) event is never held: nothing replays it.
      if ((client.held.size !== 0 || client.floors.size !== 0) && event.offset !== 0) {
        const route = this.route(client, event)
        if (route === HELD) delivered++
        if (route !== WRITE) continue
      }
      frame ??= eventFrame(event)
      if (this.write(client, frame, event)) {
        delivered++
        sent++
      }
    }
    if (frame !== undefined) {
      this.observer.delivered(event, sent, Buffer.byteLength(frame))
      if (sent !== 0) this.observer.waited(event, 0, (this.now() - started) / 1000)
    }
    return delivered
  }

  /** Writes still queued, over all tenants (one per event, reply or presence frame). */
  queueDepth (): number {
    return this.scheduler.depth()
  }

  /** Writes still queued, per tenant with any. */
  queueDepths (): Map<string, number> {
    return this.scheduler.depths()
  }

  /**
   * Socket writes the tenant has queued here, 0 with none: ingestion refuses new events for a
   * tenant past MAX_QUEUED_WRITES_PER_TENANT, so that a 202 stays a promise this instance can
   * keep instead of a backlog that ends in slow-consumer closes. O(1).
   */
  backlog (tenantId: string): number {
    return this.scheduler.backlog(tenantId)
  }

  /**
   * Shutdown: drops the writes still queued and returns how many there were. Their sockets
   * are closing; a client resumes from its own last position, so it loses nothing. From then
   * on every write is done at once, so nothing is left scheduled. Idempotent, never throws.
   */
  close (): number {
    this.tail = undefined
    return this.scheduler.close()
  }

  /** Queues an event for the recipients entitled now (see `deliver`); returns how many. */
  private deliverLater (event: StoredEvent, recipients: Set<Client>): number {
    const clients: Client[] = []
    let held = 0
    for (const client of recipients) {
      if ((client.held.size !== 0 || client.floors.size !== 0) && event.offset !== 0) {
        const route = this.route(client, event)
        if (route === HELD) held++
        if (route !== WRITE) continue
      }
      clients.push(client)
    }
    if (clients.length === 0) return held
    const tail = this.tail
    if (tail !== undefined && tail.recipients === recipients && tail.membership === this.membership && clients.length === recipients.size && tail.next === 0 && tail.events.length < MAX_BURST) {
      // Same sockets, in the same order, none routed away: the event joins the queued burst.
      tail.events.push(event)
      tail.frames.push(eventFrame(event))
      tail.queuedAt.push(this.now())
      tail.sent.push(0)
      tail.firstAt.push(0)
      this.scheduler.grow(event.tenantId, clients.length)
      return held + clients.length
    }
    this.later(event.tenantId, clients, undefined, event, event.target.kind === 'channel' ? event.target.channel : undefined)
    if (clients.length === recipients.size) {
      const queued = this.tail
      if (queued !== undefined) {
        queued.recipients = recipients
        queued.membership = this.membership
      }
    }
    return held + clients.length
  }

  /**
   * Where a positioned event goes for a socket with a replay in progress or a floor: into the
   * held queue (the replay sends it), nowhere (the replay already sent it), or to the socket.
   */
  private route (client: Client, event: StoredEvent): Route {
    const held = client.held.get(event.stream)
    if (held !== undefined) {
      if (held.length >= this.options.maxHeldEvents) {
        this.dropSlow(client)
        return SKIP
      }
      held.push(event)
      return HELD
    }
    const floor = client.floors.get(event.stream)
    if (floor !== undefined) {
      if (event.offset <= floor) return SKIP
      client.floors.delete(event.stream)
    }
    return WRITE
  }

  /**
   * Queues a frame (or, with `event`, the event's frame) for some of a tenant's sockets,
   * behind the tenant's queued writes. Each socket is checked again when its slice runs: one
   * that left the hub (or, with a channel, the channel) meanwhile gets nothing, and an event
   * is routed again (see `deliver`). Events that join the task later (a burst, see `tail`)
   * go to each socket together, in order, in the same turn.
   */
  private later (tenantId: string, clients: Client[], frame: string | undefined, event: StoredEvent | undefined, channel: string | undefined): void {
    const events: Array<StoredEvent | undefined> = [event]
    const frames = [frame ?? eventFrame(event as StoredEvent)]
    const queuedAt = [this.now()]
    const sent = [0]
    const firstAt = [0]
    const task: EventTask = {
      done: false,
      next: 0,
      events,
      frames,
      queuedAt,
      sent,
      firstAt,
      recipients: undefined,
      membership: -1,
      get pending (): number {
        return task.done ? 0 : (clients.length - task.next) * frames.length
      },
      run: (budget: number): number => {
        if (this.tail === task) this.tail = undefined
        const members = this.byTenant.get(tenantId)
        const count = frames.length
        const start = task.next
        // Whole sockets: all of a socket's frames in this task go out in the same turn.
        const end = Math.min(clients.length, start + Math.max(1, Math.floor(budget / count)))
        for (; task.next < end; task.next++) {
          const client = clients[task.next] as Client
          if (members === undefined || !members.has(client)) continue
          if (channel !== undefined && !client.channels.has(channel)) continue
          for (let i = 0; i < count; i++) {
            const e = events[i]
            if (e !== undefined && e.offset !== 0 && (client.held.size !== 0 || client.floors.size !== 0) && this.route(client, e) !== WRITE) {
              // Routing may have dropped it as a slow consumer: then nothing more is written to it.
              if (!members.has(client)) break
              continue
            }
            if (!this.write(client, frames[i] as string, e)) break
            if (sent[i] === 0) firstAt[i] = this.now()
            sent[i] = (sent[i] as number) + 1
          }
        }
        if (task.next < clients.length) return (end - start) * count
        task.done = true
        clients.length = 0
        const doneAt = this.now()
        for (let i = 0; i < count; i++) {
          const e = events[i]
          const bytes = Buffer.byteLength(frames[i] as string)
          const n = sent[i] as number
          if (e === undefined) {
            for (let k = 0; k < n; k++) this.observer.sent(bytes)
            continue
          }
          this.observer.delivered(e, n, bytes)
          if (n !== 0) this.observer.waited(e, ((firstAt[i] as number) - (queuedAt[i] as number)) / 1000, (doneAt - (queuedAt[i] as number)) / 1000)
        }
        return (end - start) * count
      },
      abort: () => {
        // The sockets it still owed (the one being written included) are closed, not skipped:
        // a skipped frame would be a silent gap; a closed socket resumes from its position.
        const members = this.byTenant.get(tenantId)
        for (let i = task.next; i < clients.length; i++) {
          const client = clients[i] as Client
          if (members === undefined || !members.has(client)) continue
          try {
            this.drop(client, CloseCode.SERVER_ERROR, 'SEND_FAILED')
          } catch {
            // A throwing membership observer: the socket is closed regardless (see `drop`).
          }
        }
        task.done = true
        clients.length = 0
      }
    }
    // Only a task nothing was queued behind may take more events: anything queued for the
    // tenant after it must stay after it.
    this.tail = task
    this.scheduler.enqueue(tenantId, task)
  }

  /** Sends an unpositioned frame (presence) to a channel's members, except one. */
  sendToChannel (tenantId: string, channel: string, frame: string, except?: Client): void {
    const members = this.byChannel.get(tenantKey(tenantId, channel))
    if (members === undefined) return
    // Within the round's credit like a broadcast: a presence change in a big channel is one.
    if (!this.scheduler.tryNow(tenantId, members.size)) {
      const clients = [...members].filter((c) => c !== except)
      if (clients.length !== 0) this.later(tenantId, clients, frame, undefined, channel)
      return
    }
    for (const client of members) {
      if (client !== except) this.send(client, frame)
    }
  }

  /**
   * The slow-consumer guard, for every send: a socket past the buffer limit gets nothing more
   * queued; it is closed with 4008 so that it reconnects and resumes from its last position.
   */
  send (client: Client, frame: string): boolean {
    // Behind the tenant's queued writes, so that a reply or a replayed event never overtakes
    // an event queued before it. True: it is accepted; the guard runs when it is written.
    if (this.scheduler.hasPending(client.tenantId)) {
      this.later(client.tenantId, [client], frame, undefined, undefined)
      return true
    }
    if (!this.write(client, frame)) return false
    this.observer.sent(Buffer.byteLength(frame))
    return true
  }

  private write (client: Client, frame: string, event?: StoredEvent): boolean {
    const connection = client.connection
    try {
      if (connection.bufferedAmount > this.options.maxBufferedBytes) {
        this.dropSlow(client)
        return false
      }
      if (event !== undefined && connection.sendEvent !== undefined) connection.sendEvent(event, frame)
      else connection.send(frame)
      return true
    } catch (err) {
      // Closed rather than skipped: a skipped event would be a silent gap; a closed socket
      // reconnects and resumes.
      this.drop(client, CloseCode.SERVER_ERROR, 'SEND_FAILED')
      this.options.onSendFailed?.(client, err)
      return false
    }
  }

  private dropSlow (client: Client): void {
    this.drop(client, CloseCode.SLOW_CONSUMER, 'SLOW_CONSUMER')
    this.observer.slowConsumer(client.tenantId)
    this.options.onSlowConsumer?.(client)
  }

  private drop (client: Client, code: number, reason: string): void {
    try {
      this.remove(client)
    } finally {
      // Closed even when a membership observer threw: a socket out of the indexes but open
      // would get nothing more, and never know.
      client.held.clear()
      try {
        client.close(code, reason)
      } catch {
        // A socket that cannot even be closed is already out of every index; its transport reaps it.
      }
    }
  }

  private forget (tenantId: string, stream: string): void {
    this.standings.delete(tenantKey(tenantId, stream))
  }

  private notify (change: MembershipChange): void {
    for (const observer of this.observers) observer(change)
  }

  private recipients (event: StoredEvent): Set<Client> | undefined {
    const target = event.target
    switch (target.kind) {
      case 'tenant': return this.byTenant.get(event.tenantId)
      case 'user': return this.byUser.get(tenantKey(event.tenantId, target.userId))
      case 'channel': return this.byChannel.get(tenantKey(event.tenantId, target.channel))
      case 'client': {
        const client = this.byId.get(tenantKey(event.tenantId, target.clientId))
        return client === undefined ? undefined : new Set([client])
      }
      case 'role': return new Set([...this.byTenant.get(event.tenantId) ?? []].filter((c) => c.roles?.includes(target.role) === true))
    }
  }
}

/** Most events one queued burst takes (see `Hub.tail`), so its per-socket turn stays short. */
const MAX_BURST = 64

/** A queued write: one or more frames for a snapshot of sockets. */
interface EventTask extends SliceTask {
  done: boolean
  /** Index of the next socket to write. */
  next: number
  readonly events: Array<StoredEvent | undefined>
  readonly frames: string[]
  readonly queuedAt: number[]
  /** Per event, the sockets written so far, and when the first was (for the wait metrics). */
  readonly sent: number[]
  readonly firstAt: number[]
  /** The index set its snapshot copied whole, and the hub's membership then, when it may take more events. */
  recipients: ReadonlySet<Client> | undefined
  membership: number
}

/** How `route` sends a positioned event to a socket with a replay in progress or a floor. */
const WRITE = 0
const HELD = 1
const SKIP = 2
type Route = typeof WRITE | typeof HELD | typeof SKIP

function addTo<K, V> (index: Map<K, Set<V>>, k: K, value: V): void {
  let set = index.get(k)
  if (set === undefined) index.set(k, set = new Set())
  set.add(value)
}

/** Removes one value; true when that emptied (and so dropped) its key's set. */
function removeFrom<K, V> (index: Map<K, Set<V>>, k: K, value: V): boolean {
  const set = index.get(k)
  if (set === undefined) return false
  set.delete(value)
  if (set.size !== 0) return false
  index.delete(k)
  return true
}
