import { AlarmState } from './alarms.js'
import { backoffDelay, DEFAULT_BACKOFF, rateLimitedDelay, retryHint, type BackoffPolicy, type ReconnectOptions } from './backoff.js'
import { refreshAt } from './token.js'
import { browserWakeSources, onWake, type WakeSources } from './wake.js'
import {
  ClientErrorCode, TenantcastError,
  type AlarmActionFrame, type AuthenticatedFrame, type CatalogueHandler, type CloseInfo, type ConnectionState, type ErrorFrame,
  type EventCatalogue, type EventFrame, type EventName, type LifecycleEventName, type LifecycleEvents, type Healed, type OpenAlarm,
  type Position, type PublishedFrame, type RecoveredFrame, type Replies, type Request, type ServerFrame,
  type ServerErrorCode, type SubscribedFrame
} from './types.js'

/** The subprotocol the gateway selects; the token travels next to it as `bearer.<jwt>`. */
export const SUBPROTOCOL = 'tenantcast.v1'
export const TENANT_STREAM = 'tenant'
/** setTimeout fires at once past 2^31-1 ms, so longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1
/**
 * The least time, in ms, between two token refreshes. A refresh margin at or past the token's
 * lifetime, or a client clock running ahead of the issuer's, makes every new token look due at
 * once; without this floor the client would ask getToken in a loop.
 */
export const MIN_REFRESH_INTERVAL_MS = 5000
/**
 * Channels rejoined after connecting go out in `subscribe {channels}` frames of up to
 * JOIN_BATCH each: one frame, one token of the server's frame limit, however many channels.
 * A batch the rate limiter refuses (RATE_LIMITED) is sent again after JOIN_RETRY_MS; one whose
 * channels are not all answered within the request timeout has the rest sent again.
 */
const JOIN_BATCH = 100
const JOIN_RETRY_MS = 1000
const OPEN = 1

/**
 * The part of the WebSocket API the client uses: the browser's, Node 22's, or `ws`. The
 * handlers take `any` because each implementation types its events its own way (DOM `Event`,
 * `ws`'s `WebSocket.Event`); what the client reads of them is `data`, `code` and `reason`.
 */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  onopen: ((event: any) => void) | null
  onmessage: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
}

export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike

/** Time, injectable so that tests drive the backoff, heartbeat and refresh timers by hand. */
export interface Timers {
  now (): number
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as ReturnType<typeof setTimeout>) }
}

export interface ConnectOptions {
  /** The gateway's WebSocket URL, e.g. `wss://rt.example.com/api/v1/events` (http(s) is accepted and mapped to ws(s)). */
  url: string
  /** A token. Without `getToken` the client stops at a 4401, since it cannot get another. */
  token?: string
  /**
   * Returns a token. Called when the client has none, when its token is about to expire (a
   * refresh on the live connection), and after a 4401; a 4401 is retried only when it returns
   * a different token.
   */
  getToken?: () => string | Promise<string>
  /** Where to start the tenant stream, `<epoch>:<offset>`: the client replays what came after. */
  since?: string
  /** Channels to join on connect (and rejoin on every reconnect). */
  channels?: string[]
  /** Reconnect policy, or `false` never to reconnect. */
  reconnect?: ReconnectOptions | false
  /**
   * Dead-connection detection, in ms: the client pings every window and reconnects when a
   * whole window passes without any frame. Default 30000 (the server's heartbeat); 0 turns it off.
   */
  heartbeatInterval?: number
  /** Refresh the token this many ms before `exp`. Default: the smaller of 30 s and a tenth of its lifetime. */
  tokenRefreshMargin?: number
  /** A WebSocket implementation. Default: the global one, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor
  /** Clock and timers. Default: the real ones. */
  timers?: Timers
  /** A source of numbers in [0, 1) for the jitter. Default Math.random. */
  random?: () => number
  /**
   * Wake-up signals (the page becoming visible, the browser coming back online): a reconnect
   * waiting out its backoff goes at once, and an open socket is checked with a ping, replaced
   * if nothing answers within `wakeProbeTimeout`. Default: the browser's document and window
   * (none in Node); `false` ignores them.
   */
  wake?: WakeSources | false
  /** How long, in ms, a wake-up ping may go unanswered before the socket is replaced. Default 3000. */
  wakeProbeTimeout?: number
  /**
   * How long, in ms, a request waits for its reply before it rejects with REQUEST_TIMEOUT
   * (a request the server's rate limiter drops is answered at once with RATE_LIMITED; the timeout
   * ends the wait for one lost otherwise). Default 10000; 0 waits for ever.
   * A channel join that times out is sent again on the same connection.
   */
  requestTimeout?: number
  /**
   * Most events held for one stream while a jump in its offsets is healed. Past it the client
   * reconnects instead, resuming from its last position. Default 5000.
   */
  maxHeldEvents?: number
}

/** Per request: its own timeout (ms, instead of `requestTimeout`) and a signal that abandons it. */
export interface RequestOptions {
  timeout?: number
  signal?: AbortSignal
}

/** Who the client is connected as: the latest `authenticated` frame. */
export interface SessionInfo {
  userId: string
  tenantId: string
  clientId: string
  connectionCount: number
}

/** One socket's life. A new socket gets a new Link; callbacks of an old one are ignored. */
interface Link {
  socket?: WebSocketLike
  /** The token this socket opened with, or was refreshed to: the one a 4401 refuses. */
  token?: string
  authenticated: boolean
  /** When it authenticated (the timers' clock), for the minUptime check. */
  authenticatedAt?: number
  sawFrame: boolean
  heartbeat?: unknown
  done: boolean
  /** The tenant and user streams this socket's URL resumed (`since.<stream>`). */
  resumed?: string[]
  /**
   * Streams resumed on this link whose `recovered` has not come yet; the client reports `open`
   * once it is empty, so `open` means caught up. Undefined once caught up.
   */
  catchingUp?: Set<string>
}

interface Waiter<T> { resolve: (value: T) => void, reject: (error: TenantcastError) => void }

/** One `subscribe {channels}` in flight: the channels not yet answered, by name. */
interface JoinBatch {
  link: Link
  waiting: Map<string, ChannelEntry>
  timer?: unknown
}

interface ChannelEntry {
  /** The link the last subscribe went out on, and its reply once it came. */
  link?: Link
  reply?: SubscribedFrame
  waiters: Array<Waiter<SubscribedFrame>>
}

/**
 * A heal in progress on one stream: the offsets after the last delivered one are missing, and
 * the events that arrived above them wait here until `resume` brings the missing ones.
 */
interface Heal {
  /** Events above the missing ones, by offset. */
  held: Map<number, EventFrame>
  /** The missing offsets, first and last, as `healed` reports them. */
  from: number
  to: number
  /** The id of the `resume` in flight for it, if any. */
  ref?: string
  /** Resumes sent since the last delivered event: a server that cannot fill the hole is left. */
  tries: number
  /** A new epoch replayed from its oldest event after a gap: reported by that `gap`, not as `healed`. */
  refill?: true
}

/** Resumes in a row that fill nothing, after which the client reconnects instead. */
const MAX_HEAL_TRIES = 3

type AnyHandler = (...args: any[]) => void

const LIFECYCLE: ReadonlySet<string> = new Set<LifecycleEventName>(['state', 'authenticated', 'event', 'recovered', 'gap', 'healed', 'presence', 'alarms', 'close', 'error', 'frame'])

/** Codes after which reconnecting cannot help: a normal close, a policy or protocol problem, a forbidden principal. */
const STOP_CODES: ReadonlySet<number> = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010])

/** Parses `<epoch>:<offset>`; throws on anything else. */
export function parsePosition (text: string): Position {
  const at = text.lastIndexOf(':')
  const offset = Number(text.slice(at + 1))
  if (at <= 0 || !Number.isSafeInteger(offset) || offset < 0 || text.slice(at + 1) === '') {
    throw new TypeError(`a position is <epoch>:<offset>, not ${JSON.stringify(text)}`)
  }
  return { epoch: text.slice(0, at), offset }
}

export function formatPosition (position: Position): string {
  return `${position.epoch}:${position.offset}`
}

function channelStream (channel: string): string {
  return `channel:${channel}`
}

function channelOf (stream: string): string | undefined {
  return stream.startsWith('channel:') ? stream.slice('channel:'.length) : undefined
}

/**
 * A tenantcast connection that stays connected: it reconnects with backoff, resumes every
 * stream from the last position it saw, rejoins its channels, refreshes its token before it
 * expires and notices a dead socket. Create it with `connect()`.
 */
export class TenantcastClient<Custom extends Record<string, unknown> = Record<never, never>> {
  readonly url: string
  private currentState: ConnectionState = 'connecting'
  private link: Link | undefined
  private token: string | undefined
  private attempt = 0
  private nextId = 1
  private reconnectTimer: unknown
  private refreshTimer: unknown
  private probeTimer: unknown
  /** Rejoin batches in flight, by request id, and timers of batches waiting to be sent again. */
  private readonly batches = new Map<string, JoinBatch>()
  private readonly joinTimers = new Set<unknown>()
  private readonly unwatchWake: () => void
  /** When the last refresh began (the timers' clock). */
  private refreshedAt = -Infinity
  private sessionInfo: SessionInfo | undefined
  /** Per stream, the last position delivered to the handlers: they saw every offset up to it. */
  private readonly positions = new Map<string, Position>()
  private readonly heals = new Map<string, Heal>()
  private readonly maxHeld: number
  private readonly channelEntries = new Map<string, ChannelEntry>()
  private readonly pending = new Map<string, Waiter<ServerFrame>>()
  private readonly lifecycleHandlers = new Map<string, Set<AnyHandler>>()
  private readonly eventHandlers = new Map<string, Set<AnyHandler>>()
  private readonly policy: BackoffPolicy | undefined
  private readonly timers: Timers
  private readonly random: () => number
  private readonly heartbeatInterval: number
  private readonly alarmState: AlarmState

  constructor (private readonly options: ConnectOptions) {
    const url = new URL(options.url)
    if (url.protocol === 'http:') url.protocol = 'ws:'
    else if (url.protocol === 'https:') url.protocol = 'wss:'
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`url must be ws:, wss:, http: or https:, not ${url.protocol}`)
    if (options.token === undefined && options.getToken === undefined) throw new TypeError('connect needs a token or a getToken function')
    this.url = url.toString()
    this.token = options.token
    this.policy = options.reconnect === false ? undefined : { ...DEFAULT_BACKOFF, ...options.reconnect }
    this.timers = options.timers ?? systemTimers
    this.random = options.random ?? Math.random
    this.heartbeatInterval = options.heartbeatInterval ?? 30_000
    this.maxHeld = options.maxHeldEvents ?? 5000
    this.alarmState = new AlarmState({
      setTimeout: (fn, ms) => this.timers.setTimeout(fn, ms),
      clearTimeout: (handle) => { this.timers.clearTimeout(handle) },
      notify: (frame) => this.notify(frame),
      changed: (alarms) => { this.emit('alarms', alarms) }
    })
    if (options.since !== undefined) this.positions.set(TENANT_STREAM, parsePosition(options.since))
    for (const channel of options.channels ?? []) this.channelEntries.set(channel, { waiters: [] })
    this.unwatchWake = options.wake === false ? () => {} : onWake(options.wake ?? browserWakeSources(), () => { this.woke() })
    void this.open()
  }

  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state (): ConnectionState { return this.currentState }

  /** The identity of the current (or last) authenticated connection. */
  get session (): SessionInfo | undefined { return this.sessionInfo }

  /** The channels this client is in, or will rejoin on reconnect. */
  get channels (): string[] { return [...this.channelEntries.keys()] }

  /** The tenant's unresolved ackable alarms, newest first (see AlarmState); the `alarms` event says when they change. */
  get openAlarms (): OpenAlarm[] { return this.alarmState.list() }

  /** Acknowledges an alarm; a repeat resolves with `changed: false` and the first ack. Rejects with ALARM_NOT_FOUND for an id the tenant does not have. */
  async ack (alarmId: string, note?: string, options?: RequestOptions): Promise<AlarmActionFrame> {
    const reply = await this.request(note === undefined ? { type: 'ack', alarmId } : { type: 'ack', alarmId, note }, options)
    this.alarmState.replied(reply)
    return reply
  }

  /** Resolves an alarm (open or acknowledged); a repeat resolves with `changed: false`. */
  async resolve (alarmId: string, note?: string, options?: RequestOptions): Promise<AlarmActionFrame> {
    const reply = await this.request(note === undefined ? { type: 'resolve', alarmId } : { type: 'resolve', alarmId, note }, options)
    this.alarmState.replied(reply)
    return reply
  }

  /** The last position delivered on a stream (`tenant` by default, `user:<id>` or `channel:<name>`), as `<epoch>:<offset>`. */
  position (stream: string = TENANT_STREAM): string | undefined {
    const position = this.positions.get(stream)
    return position === undefined ? undefined : formatPosition(position)
  }

  /**
   * Registers a handler and returns a function that removes it. Lifecycle names (`state`,
   * `event`, `gap`, `close`, …) are the client's own; any other name is a server event, with
   * `data` typed from the catalogue for catalogued names.
   */
  on<K extends LifecycleEventName>(name: K, handler: LifecycleEvents[K]): () => void
  on<K extends EventName>(name: K, handler: CatalogueHandler<K>): () => void
  on<K extends Exclude<keyof Custom & string, EventName | LifecycleEventName>>(name: K, handler: (data: Custom[K], frame: EventFrame<Custom[K], K>) => void): () => void
  on (name: string, handler: (data: unknown, frame: EventFrame) => void): () => void
  on (name: string, handler: AnyHandler): () => void {
    const map = LIFECYCLE.has(name) ? this.lifecycleHandlers : this.eventHandlers
    let set = map.get(name)
    if (set === undefined) {
      set = new Set()
      map.set(name, set)
    }
    set.add(handler)
    return () => { this.off(name, handler) }
  }

  off (name: string, handler: AnyHandler): void {
    const map = LIFECYCLE.has(name) ? this.lifecycleHandlers : this.eventHandlers
    map.get(name)?.delete(handler)
  }

  /**
   * Joins a channel now if open, else on the next connect; it is rejoined, resuming from its
   * last position, after every reconnect. Resolves with the `subscribed` reply; rejects when
   * the server refuses (the channel is then dropped) or the client closes.
   */
  async subscribe (channel: string, options: { since?: string } = {}): Promise<SubscribedFrame> {
    if (this.currentState === 'closed') throw new TenantcastError(ClientErrorCode.NOT_CONNECTED, 'the client is closed')
    let entry = this.channelEntries.get(channel)
    if (entry === undefined) {
      // Parsed first: a malformed `since` rejects without leaving the channel behind.
      const since = options.since === undefined ? undefined : parsePosition(options.since)
      entry = { waiters: [] }
      this.channelEntries.set(channel, entry)
      if (since !== undefined) this.positions.set(channelStream(channel), since)
    }
    const current = entry
    if (current.link === this.link && current.reply !== undefined) return current.reply
    const reply = new Promise<SubscribedFrame>((resolve, reject) => { current.waiters.push({ resolve, reject }) })
    if (this.live() !== undefined && current.link !== this.link) this.sendSubscribe(channel, current)
    return await reply
  }

  /** Leaves a channel and forgets its position. */
  async unsubscribe (channel: string): Promise<void> {
    const entry = this.channelEntries.get(channel)
    if (entry === undefined) return
    this.channelEntries.delete(channel)
    this.positions.delete(channelStream(channel))
    this.heals.delete(channelStream(channel))
    this.caughtUp(this.link, channelStream(channel))
    for (const waiter of entry.waiters.splice(0)) waiter.reject(new TenantcastError('NOT_SUBSCRIBED', `unsubscribed from ${channel} before the subscription completed`))
    if (this.live() !== undefined && entry.link === this.link) await this.request({ type: 'unsubscribe', channel })
  }

  /** Publishes to a joined channel (where the server allows client publishing). */
  async publish<K extends EventName>(channel: string, event: K, data: EventCatalogue[K], options?: RequestOptions): Promise<PublishedFrame>
  async publish<K extends Exclude<keyof Custom & string, EventName>>(channel: string, event: K, data: Custom[K], options?: RequestOptions): Promise<PublishedFrame>
  // Any other name, with any data; a name typed above never falls through to here.
  async publish<E extends string>(channel: string, event: E & ([E] extends [keyof Custom | EventName] ? never : E), data: unknown, options?: RequestOptions): Promise<PublishedFrame>
  async publish (channel: string, event: string, data: unknown, options: RequestOptions = {}): Promise<PublishedFrame> {
    return await this.request({ type: 'publish', channel, event, data }, options)
  }

  /**
   * Sends a request with a fresh `id` and resolves with the first reply carrying it as `ref`.
   * Rejects with the server's code on an `error` with that ref, with CONNECTION_CLOSED when
   * the socket closes first, with REQUEST_TIMEOUT when no reply came in time, with
   * REQUEST_ABORTED when `signal` aborts, and with NOT_CONNECTED unless the client is open.
   * A reply that comes after a timeout or an abort is ignored.
   */
  async request<T extends Request>(frame: T, options: RequestOptions = {}): Promise<Replies[T['type']]> {
    return await this.send(frame, options).reply
  }

  /** `request`, with the id it was sent with. */
  private send<T extends Request>(frame: T, options: RequestOptions = {}): { id: string, reply: Promise<Replies[T['type']]> } {
    const link = this.live()
    const socket = link?.socket
    if (link === undefined || socket === undefined) {
      const error = new TenantcastError(ClientErrorCode.NOT_CONNECTED, `cannot send "${frame.type}": the client is ${this.currentState}`)
      return { id: '', reply: Promise.reject(error) }
    }
    const signal = options.signal
    if (signal?.aborted === true) return { id: '', reply: Promise.reject(new TenantcastError(ClientErrorCode.REQUEST_ABORTED, `"${frame.type}" was aborted before it was sent`)) }
    const id = `r${this.nextId++}`
    const timeout = options.timeout ?? this.options.requestTimeout ?? 10_000
    let timer: unknown
    let onAbort = (): void => {}
    const reply = new Promise<ServerFrame>((resolve, reject) => {
      // Whichever settles first removes the request, so nothing of it outlives its answer.
      const settle = (): void => {
        this.pending.delete(id)
        this.timers.clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      this.pending.set(id, {
        resolve: (value) => { settle(); resolve(value) },
        reject: (error) => { settle(); reject(error) }
      })
      if (timeout > 0) {
        timer = this.timers.setTimeout(() => {
          settle()
          reject(new TenantcastError(ClientErrorCode.REQUEST_TIMEOUT, `no reply to "${frame.type}" within ${timeout} ms`))
        }, Math.min(timeout, MAX_TIMER_MS))
      }
      onAbort = () => {
        settle()
        reject(new TenantcastError(ClientErrorCode.REQUEST_ABORTED, `"${frame.type}" was aborted`))
      }
      signal?.addEventListener('abort', onAbort)
    })
    socket.send(JSON.stringify({ ...frame, id }))
    return { id, reply: reply as Promise<Replies[T['type']]> }
  }

  /** Sends a frame that has no reply (`received`) on the live socket; false when there is none. */
  private notify (frame: { type: 'received', ids: string[] }): boolean {
    const socket = this.live()?.socket
    if (socket === undefined || socket.readyState !== OPEN) return false
    socket.send(JSON.stringify(frame))
    return true
  }

  /**
   * Reconnects now: a reconnect waiting out its backoff goes at once, and a socket that is open
   * or opening is replaced (closed with 1000 `RECONNECT`; every stream resumes from its last
   * position). Does nothing once closed, or while a 4401's getToken decides what comes next.
   */
  reconnect (): void {
    if (this.currentState === 'closed') return
    this.timers.clearTimeout(this.probeTimer)
    if (this.reconnectTimer !== undefined) {
      this.timers.clearTimeout(this.reconnectTimer)
      this.reconnectTimer = undefined
      void this.open()
      return
    }
    const link = this.link
    if (link === undefined || link.done) return
    link.done = true
    this.abandon(link, { code: 1000, reason: 'RECONNECT' })
    this.timers.clearTimeout(this.refreshTimer)
    this.rejectPending('the connection closed (reconnect)')
    // A `state` or `close` handler may close the client meanwhile; then open() does nothing.
    this.setState('reconnecting')
    if (this.link === link) this.emit('close', { code: 1000, reason: 'RECONNECT', willReconnect: true, delay: 0, attempt: this.attempt })
    void this.open()
  }

  /** A wake-up signal: skip a backoff wait, or check that an open socket still answers. */
  private woke (): void {
    if (this.reconnectTimer !== undefined) {
      this.reconnect()
      return
    }
    const link = this.live()
    if (link === undefined || link.socket?.readyState !== OPEN) return
    this.timers.clearTimeout(this.probeTimer)
    link.sawFrame = false
    link.socket.send('{"type":"ping"}')
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = undefined
      if (link === this.link && !link.done && !link.sawFrame) this.reconnect()
    }, this.options.wakeProbeTimeout ?? 3000)
  }

  /** Closes for good: no reconnect. Pending requests reject with CONNECTION_CLOSED. */
  close (code = 1000, reason = ''): void {
    if (this.currentState === 'closed') return
    const link = this.link
    this.link = undefined
    if (link !== undefined) {
      link.done = true
      this.abandon(link, { code, reason })
    }
    this.stop({ code, reason, willReconnect: false })
  }

  /** The current link if it is authenticated and not yet closed. */
  private live (): Link | undefined {
    const link = this.link
    return link !== undefined && link.authenticated && !link.done ? link : undefined
  }

  // ---------------------------------------------------------------- connection life

  private async open (): Promise<void> {
    if (this.currentState === 'closed') return
    const link: Link = { authenticated: false, sawFrame: false, done: false }
    this.link = link
    let token: string
    try {
      token = await this.obtainToken()
    } catch (err) {
      if (this.link !== link) return
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken failed: ${(err as Error).message}`, undefined, { cause: err }))
      this.lost(link, 1006, 'TOKEN_UNAVAILABLE')
      return
    }
    link.token = token
    const WebSocketClass = this.options.WebSocket ?? await webSocketClass()
    if (this.link !== link) return
    let socket: WebSocketLike
    try {
      socket = new WebSocketClass(this.socketUrl(link), [SUBPROTOCOL, `bearer.${token}`])
    } catch (err) {
      // A token a WebSocket refuses as a subprotocol: another attempt would fail the same way.
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `cannot open the socket: ${(err as Error).message}`, undefined, { cause: err }))
      this.link = undefined
      link.done = true
      this.stop({ code: 1006, reason: 'CONNECT_FAILED', willReconnect: false })
      return
    }
    link.socket = socket
    socket.onopen = null
    socket.onmessage = (event) => { this.receive(link, event.data) }
    socket.onclose = (event) => { this.lost(link, event.code, event.reason) }
    // Never null: `ws` throws an 'error' event that has no listener.
    socket.onerror = () => {}
    this.armHeartbeat(link)
  }

  /** The token for a new socket: the current one while it is fresh, else a new one from getToken. */
  private async obtainToken (): Promise<string> {
    const getToken = this.options.getToken
    const token = this.token
    if (token !== undefined && (getToken === undefined || !this.tokenStale(token))) return token
    const fresh = await (getToken as () => string | Promise<string>)()
    if (typeof fresh !== 'string' || fresh === '') throw new Error('getToken returned no token')
    this.token = fresh
    return fresh
  }

  private tokenStale (token: string): boolean {
    const at = refreshAt(token, this.timers.now(), this.options.tokenRefreshMargin)
    return at !== undefined && at <= this.timers.now()
  }

  /**
   * The socket URL, with one `since.<stream>` per stream attached at auth (tenant, user) that
   * has a position, so the server replays what was missed. Channels resume on subscribe.
   */
  private socketUrl (link: Link): string {
    const url = new URL(this.url)
    link.resumed = []
    for (const [stream, position] of this.positions) {
      if (channelOf(stream) !== undefined) continue
      url.searchParams.set(`since.${stream}`, formatPosition(position))
      link.resumed.push(stream)
    }
    return url.toString()
  }

  /**
   * Dead-connection detection: every window, a link that received nothing since the last
   * tick is dead; otherwise it is pinged, so a live server always has something to answer.
   */
  private armHeartbeat (link: Link): void {
    if (this.heartbeatInterval <= 0) return
    link.heartbeat = this.timers.setTimeout(() => {
      if (link.done) return
      if (!link.sawFrame) {
        this.abandon(link, 'terminate')
        this.lost(link, 1006, 'HEARTBEAT_TIMEOUT')
        return
      }
      link.sawFrame = false
      if (link.socket?.readyState === OPEN) link.socket.send('{"type":"ping"}')
      this.armHeartbeat(link)
    }, this.heartbeatInterval)
  }

  /**
   * Detaches a socket and closes it: with a close handshake when asked to close, or at once
   * when the socket is presumed dead (`ws` can terminate; a browser socket can only close).
   */
  private abandon (link: Link, how: 'terminate' | { code: number, reason: string }): void {
    this.timers.clearTimeout(link.heartbeat)
    const socket = link.socket
    if (socket === undefined) return
    socket.onmessage = null
    socket.onclose = null
    const terminate = (socket as { terminate?: () => void }).terminate
    try {
      if (how !== 'terminate') socket.close(how.code, how.reason)
      else if (typeof terminate === 'function') terminate.call(socket)
      else socket.close(4000, 'HEARTBEAT_TIMEOUT')
    } catch {
      // A code or reason the WebSocket refuses: close it plainly instead.
      socket.close()
    }
  }

  /** A socket ended (closed, failed, timed out): decide whether and when to come back. */
  private lost (link: Link, code: number, reason: string): void {
    if (link !== this.link || link.done) return
    link.done = true
    this.timers.clearTimeout(link.heartbeat)
    this.timers.clearTimeout(this.refreshTimer)
    // The next socket resumes every stream from its last delivered position: what was held
    // above a jump comes again.
    this.heals.clear()
    this.rejectPending(`the connection closed (${code}${reason === '' ? '' : ` ${reason}`})`)
    // Only a connection that stayed up counts as a success; one cut right after auth is a failed attempt.
    if (link.authenticatedAt !== undefined && this.policy !== undefined && this.timers.now() - link.authenticatedAt >= this.policy.minUptime) this.attempt = 0
    if (code === 4401) {
      void this.afterUnauthorized(link, code, reason)
      return
    }
    if (STOP_CODES.has(code) || (code >= 4400 && code < 4500)) {
      this.stop({ code, reason, willReconnect: false })
      return
    }
    // 1001 (shutdown) and 1013 (try again: e.g. AUTH_UNAVAILABLE while the gateway cannot reach its JWKS) may carry the server's delay.
    this.scheduleReconnect(code, reason, code === 1001 || code === 1013 ? retryHint(reason) : undefined)
  }

  /**
   * 4401: come back only with a token other than the refused one. Refresh and reconnect share
   * one token state, so a refresh that stored a new token while the link was down counts. A
   * getToken that fails goes through backoff, as at the first connect: the next attempt asks again.
   */
  private async afterUnauthorized (link: Link, code: number, reason: string): Promise<void> {
    const getToken = this.options.getToken
    if (getToken === undefined) {
      this.stop({ code, reason, willReconnect: false })
      return
    }
    const refused = link.token
    let fresh: string | undefined
    try {
      fresh = await getToken()
    } catch (err) {
      if (this.link !== link) return
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken failed: ${(err as Error).message}`, undefined, { cause: err }))
    }
    if (this.link !== link) return
    if (typeof fresh === 'string' && fresh !== '' && fresh !== refused) this.token = fresh
    else if (fresh !== undefined && this.token === refused) {
      this.stop({ code, reason, willReconnect: false })
      return
    }
    // Never reconnect with the refused token: without another one, the next attempt asks getToken.
    if (this.token === refused) this.token = undefined
    this.scheduleReconnect(code, reason, undefined)
  }

  private scheduleReconnect (code: number, reason: string, hint: number | undefined): void {
    const policy = this.policy
    if (policy === undefined || this.attempt >= policy.maxAttempts) {
      this.stop({ code, reason, willReconnect: false })
      return
    }
    const delay = hint ?? (code === 4029 ? rateLimitedDelay(policy, this.random) : backoffDelay(policy, this.attempt, this.random))
    this.attempt++
    // Armed before any handler runs, so that a handler calling close() cancels it.
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined
      void this.open()
    }, delay)
    this.setState('reconnecting')
    this.emit('close', { code, reason, willReconnect: true, delay, attempt: this.attempt })
  }

  /** The terminal state: nothing reconnects, every waiter is told. */
  private stop (info: CloseInfo): void {
    this.unwatchWake()
    this.timers.clearTimeout(this.probeTimer)
    this.timers.clearTimeout(this.reconnectTimer)
    this.timers.clearTimeout(this.refreshTimer)
    this.reconnectTimer = undefined
    this.alarmState.stop()
    this.rejectPending('the client is closed')
    for (const entry of this.channelEntries.values()) {
      for (const waiter of entry.waiters.splice(0)) waiter.reject(new TenantcastError(ClientErrorCode.CONNECTION_CLOSED, 'the client is closed'))
    }
    this.setState('closed')
    this.emit('close', info)
  }

  private rejectPending (message: string): void {
    // Rejoin batches die with their link: the next connection rejoins every channel not joined on it.
    for (const batch of this.batches.values()) this.timers.clearTimeout(batch.timer)
    this.batches.clear()
    for (const timer of this.joinTimers) this.timers.clearTimeout(timer)
    this.joinTimers.clear()
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const waiter of pending) waiter.reject(new TenantcastError(ClientErrorCode.CONNECTION_CLOSED, message))
  }

  private setState (next: ConnectionState): void {
    const previous = this.currentState
    if (previous === next) return
    this.currentState = next
    this.emit('state', next, previous)
  }

  // ---------------------------------------------------------------- frames

  private receive (link: Link, data: unknown): void {
    if (link !== this.link || link.done) return
    link.sawFrame = true
    let frame: ServerFrame
    try {
      frame = JSON.parse(String(data)) as ServerFrame
    } catch {
      frame = undefined as unknown as ServerFrame
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') {
      this.emitError(new TenantcastError(ClientErrorCode.INVALID_SERVER_FRAME, 'the server sent a frame that is not a JSON object with a type'))
      return
    }
    this.emit('frame', frame)
    const batchRef = (frame as { ref?: unknown }).ref
    const batch = batchRef === undefined ? undefined : this.batches.get(String(batchRef))
    if (batch !== undefined && (frame.type === 'subscribed' || frame.type === 'error')) {
      if (frame.type === 'subscribed') this.subscribed(frame)
      this.batchAnswer(String(batchRef), batch, frame)
      return
    }
    switch (frame.type) {
      case 'authenticated':
        // A second one on the same socket answers a token refresh.
        if (!link.authenticated) this.authenticated(link, frame)
        else if (this.sessionInfo !== undefined) this.sessionInfo.connectionCount = frame.connectionCount
        break
      case 'event':
        this.event(frame)
        break
      case 'recovered':
        // A stream refilled from a new epoch catches up at the end of that replay instead.
        if (!this.recovered(frame)) this.caughtUp(link, frame.stream)
        break
      case 'subscribed':
        this.subscribed(frame)
        break
      case 'unsubscribed':
        if (frame.reason !== undefined) this.removed(frame.channel, frame.reason)
        break
      case 'user-joined':
      case 'user-left':
        this.emit('presence', frame)
        break
      case 'open-alarms':
        this.alarmState.snapshot(frame)
        break
      case 'error':
        this.failed(frame)
        return
    }
    const ref = (frame as { ref?: unknown }).ref
    if (ref !== undefined) {
      const waiter = this.pending.get(String(ref))
      this.pending.delete(String(ref))
      waiter?.resolve(frame)
    }
  }

  private authenticated (link: Link, frame: AuthenticatedFrame): void {
    link.authenticated = true
    link.authenticatedAt = this.timers.now()
    this.alarmState.authenticated()
    this.sessionInfo = { userId: frame.userId, tenantId: frame.tenantId, clientId: frame.clientId, connectionCount: frame.connectionCount }
    // Without a position of its own the client starts where the server is now.
    const attached = frame.positions ?? { [TENANT_STREAM]: frame.position }
    // Caught up once every resumed stream has answered `recovered`: the tenant and user streams
    // the URL resumed (a server that lists no `positions` is not waited for) and every channel
    // rejoined from a position. Until then the state stays `connecting` or `reconnecting`.
    const catchingUp = new Set(frame.positions === undefined ? [] : (link.resumed ?? []).filter((stream) => Object.hasOwn(attached, stream)))
    for (const [channel, entry] of this.channelEntries) {
      if (entry.link !== link && this.positions.has(channelStream(channel))) catchingUp.add(channelStream(channel))
    }
    for (const [stream, position] of Object.entries(attached)) {
      if (!this.positions.has(stream)) this.positions.set(stream, position)
    }
    if (catchingUp.size === 0) this.setState('open')
    else link.catchingUp = catchingUp
    // A `state` or `authenticated` handler may have closed the client: then nothing more is armed.
    if (link.done) return
    this.rejoin(link)
    this.emit('authenticated', frame)
    if (link.done) return
    this.scheduleRefresh()
  }

  /** A stream resumed on this link caught up (or will not be: refused, left): the last one makes the client `open`. */
  private caughtUp (link: Link | undefined, stream: string): void {
    const waiting = link?.catchingUp
    if (link === undefined || waiting === undefined || !waiting.delete(stream) || waiting.size > 0) return
    link.catchingUp = undefined
    if (link === this.live()) this.setState('open')
  }

  /**
   * Verifies continuity per stream. An offset one above the last delivered is delivered; one at
   * or below it is a repeat and dropped; one further above is a jump: it is held, with every
   * later event of the stream, while `resume` fetches the missing ones on this connection.
   */
  private event (frame: EventFrame): void {
    const { stream, offset, epoch } = frame
    // Connection-targeted events have no position: nothing to verify, nothing to replay.
    if (stream === undefined || offset === undefined || epoch === undefined) {
      this.deliver(frame)
      return
    }
    // A channel event still in flight after unsubscribe is delivered but not remembered.
    const channel = channelOf(stream)
    if (channel !== undefined && !this.channelEntries.has(channel)) {
      this.deliver(frame)
      return
    }
    const current = this.positions.get(stream)
    // Offset 0 is "nothing seen": the first event of a stream may start a new epoch.
    const comparable = current !== undefined && (current.epoch === epoch || current.offset === 0)
    if (current !== undefined && comparable && offset <= current.offset) return
    if (current !== undefined && comparable && offset > current.offset + 1) {
      this.hold(stream, current, frame)
      return
    }
    // Contiguous, the stream's first event, or a new epoch (history was lost: nothing can heal across it).
    if (!comparable) this.heals.delete(stream)
    this.positions.set(stream, { epoch, offset })
    this.deliver(frame)
    this.release(stream)
  }

  private deliver (frame: EventFrame): void {
    this.alarmState.event(frame)
    this.emit('event', frame)
    const handlers = this.eventHandlers.get(frame.event)
    if (handlers !== undefined) this.call(frame.event, handlers, [frame.data, frame])
  }

  /** Holds an event above a jump and asks for the missing ones, once per heal. */
  private hold (stream: string, current: Position, frame: EventFrame): void {
    let heal = this.heals.get(stream)
    if (heal === undefined) {
      heal = { held: new Map(), from: current.offset + 1, to: (frame.offset as number) - 1, tries: 0 }
      this.heals.set(stream, heal)
    }
    // Too far behind to hold: a new socket resumes from the last delivered position instead.
    if (heal.held.size >= this.maxHeld) {
      this.reconnectNow('HEAL_LIMIT')
      return
    }
    heal.held.set(frame.offset as number, frame)
    if (heal.ref === undefined) this.askResume(stream, current, heal)
  }

  /** Sends `resume {stream, since}` on the live connection for a heal. */
  private askResume (stream: string, since: Position, heal: Heal): void {
    if (++heal.tries > MAX_HEAL_TRIES) {
      this.reconnectNow('HEAL_STALLED')
      return
    }
    const { id, reply } = this.send({ type: 'resume', stream, since: formatPosition(since) })
    heal.ref = id
    reply.catch((error: TenantcastError) => {
      if (heal.ref === id) heal.ref = undefined
      // A closed socket is no refusal: the next connection resumes from the same position.
      if (error.code !== ClientErrorCode.CONNECTION_CLOSED && error.code !== ClientErrorCode.NOT_CONNECTED) this.emitError(error)
    })
  }

  /** Drops the current socket and comes back at once, resuming every stream from its position. */
  private reconnectNow (reason: string): void {
    const link = this.link
    if (link === undefined || link.done) return
    this.abandon(link, { code: 4000, reason })
    this.lost(link, 4000, reason)
  }

  /**
   * After a contiguous event: delivers the held events that are now contiguous too, and reports
   * `healed` once the missing range is filled. A hole still left above starts the next heal.
   */
  private release (stream: string): void {
    const heal = this.heals.get(stream)
    if (heal === undefined) return
    heal.tries = 0
    let position = this.positions.get(stream) as Position
    for (let next = heal.held.get(position.offset + 1); next !== undefined; next = heal.held.get(position.offset + 1)) {
      heal.held.delete(position.offset + 1)
      position = { epoch: next.epoch as string, offset: next.offset as number }
      this.positions.set(stream, position)
      this.deliver(next)
    }
    for (const offset of heal.held.keys()) if (offset <= position.offset) heal.held.delete(offset)
    if (position.offset < heal.to) return
    if (heal.refill !== true) this.emit('healed', { stream, from: heal.from, to: heal.to } satisfies Healed)
    if (heal.held.size === 0) {
      this.heals.delete(stream)
      return
    }
    heal.from = position.offset + 1
    heal.to = Math.min(...heal.held.keys()) - 1
    heal.refill = undefined
    if (heal.ref === undefined) this.askResume(stream, position, heal)
  }

  /** Handles a `recovered`; true when it started a replay of a new epoch, whose own `recovered` is the stream's catch-up. */
  private recovered (frame: RecoveredFrame): boolean {
    // A late answer for a channel the client has left: its position stays forgotten.
    if (frame.stream.startsWith('channel:') && !this.channelEntries.has(frame.stream.slice('channel:'.length))) return false
    const since = this.positions.get(frame.stream)
    const heal = this.heals.get(frame.stream)
    const answersHeal = heal !== undefined && frame.ref !== undefined && String(frame.ref) === heal.ref
    if (answersHeal) heal.ref = undefined
    if (frame.recovered) {
      this.emit('recovered', frame)
      // The replay's events came before this frame. Any still missing (lost on the way again)
      // are asked for once more; without a position the replay's end is where the client is.
      if (since === undefined) this.positions.set(frame.stream, { epoch: frame.epoch, offset: frame.to })
      else if ((since.epoch === frame.epoch || since.offset === 0) && since.offset < frame.to) this.reheal(frame.stream, since, frame.to)
      else if (heal !== undefined && heal.ref === undefined && heal.held.size > 0) this.askResume(frame.stream, since, heal)
      return false
    }
    this.heals.delete(frame.stream)
    const channel = channelOf(frame.stream)
    // A new epoch (the broker lost its history, e.g. a memory broker restarted): nothing of the
    // old one can be fetched, but the new one's events are held from `oldest`, so the client
    // replays them, as a heal from just below `oldest`: live events that arrive meanwhile wait
    // above it and follow in order.
    const oldest = Math.max(frame.oldest.offset, 1)
    if (since !== undefined && since.epoch !== frame.epoch && frame.latest.offset >= oldest) {
      const from = { epoch: frame.epoch, offset: oldest - 1 }
      const refill: Heal = { held: new Map(), from: oldest, to: frame.latest.offset, tries: 0, refill: true }
      this.positions.set(frame.stream, from)
      this.heals.set(frame.stream, refill)
      this.emit('recovered', frame)
      this.emit('gap', { stream: frame.stream, ...(channel === undefined ? {} : { channel }), since, oldest: frame.oldest, latest: frame.latest, replaying: true })
      if (this.heals.get(frame.stream) !== refill) return false
      this.askResume(frame.stream, from, refill)
      return true
    }
    // The server attached at `latest`: live events continue from there; what was held is behind it.
    this.positions.set(frame.stream, frame.latest)
    this.emit('recovered', frame)
    this.emit('gap', { stream: frame.stream, ...(channel === undefined ? {} : { channel }), since, oldest: frame.oldest, latest: frame.latest, replaying: false })
    return false
  }

  /** A replay ended above the last delivered offset: its missing events are fetched again. */
  private reheal (stream: string, since: Position, to: number): void {
    let heal = this.heals.get(stream)
    if (heal === undefined) {
      heal = { held: new Map(), from: since.offset + 1, to, tries: 0 }
      this.heals.set(stream, heal)
    }
    // Missing: from the next offset up to the replay's end, or up to the first event held above.
    const held = [...heal.held.keys()]
    heal.to = Math.max(heal.to, held.length === 0 ? to : Math.min(to, Math.min(...held) - 1))
    if (heal.ref === undefined) this.askResume(stream, since, heal)
  }

  private subscribed (frame: SubscribedFrame): void {
    const stream = channelStream(frame.channel)
    if (frame.position !== undefined && this.channelEntries.has(frame.channel) && !this.positions.has(stream)) {
      this.positions.set(stream, frame.position)
    }
  }

  /** The server took the connection out of a channel (a refresh narrowed the channels claim): forget it, so no reconnect rejoins it. */
  private removed (channel: string, reason: ServerErrorCode): void {
    const entry = this.channelEntries.get(channel)
    if (entry === undefined) return
    this.channelEntries.delete(channel)
    this.positions.delete(channelStream(channel))
    this.heals.delete(channelStream(channel))
    this.caughtUp(this.link, channelStream(channel))
    const error = new TenantcastError(reason, `the server removed this client from channel ${channel} (${reason})`)
    const waiters = entry.waiters.splice(0)
    if (waiters.length === 0) this.emitError(error)
    for (const waiter of waiters) waiter.reject(error)
  }

  private failed (frame: ErrorFrame): void {
    const error = new TenantcastError(frame.code, frame.message, frame.ref)
    const waiter = frame.ref === undefined ? undefined : this.pending.get(String(frame.ref))
    if (waiter === undefined) {
      this.emitError(error)
      return
    }
    this.pending.delete(String(frame.ref))
    waiter.reject(error)
  }

  /** Joins every channel not yet joined on this link, JOIN_BATCH channels per `subscribe {channels}` frame. */
  private rejoin (link: Link): void {
    const waiting = [...this.channelEntries].filter(([, entry]) => entry.link !== link)
    for (let i = 0; i < waiting.length; i += JOIN_BATCH) this.sendBatch(link, new Map(waiting.slice(i, i + JOIN_BATCH)))
  }

  /** Sends one rejoin batch, each channel resuming from its last position. */
  private sendBatch (link: Link, channels: Map<string, ChannelEntry>): void {
    const socket = link.socket
    if (link !== this.live() || socket === undefined) return
    const waiting = new Map<string, ChannelEntry>()
    const frame: Array<{ channel: string, since?: string }> = []
    for (const [channel, entry] of channels) {
      // Left meanwhile, or already joined by a subscribe() of its own.
      if (this.channelEntries.get(channel) !== entry || entry.link === link) continue
      entry.link = link
      entry.reply = undefined
      waiting.set(channel, entry)
      const since = this.positions.get(channelStream(channel))
      frame.push(since === undefined ? { channel } : { channel, since: formatPosition(since) })
    }
    if (frame.length === 0) return
    const id = `r${this.nextId++}`
    const batch: JoinBatch = { link, waiting }
    this.batches.set(id, batch)
    const timeout = this.options.requestTimeout ?? 10_000
    // Silence (a frame lost on the way): what is still unanswered is asked for again.
    if (timeout > 0) batch.timer = this.timers.setTimeout(() => { this.retryBatch(id, batch, 0) }, Math.min(timeout, MAX_TIMER_MS))
    socket.send(JSON.stringify({ type: 'subscribe', id, channels: frame }))
  }

  /** Drops a batch and, after `delay` ms, sends its unanswered channels again on the same link. */
  private retryBatch (id: string, batch: JoinBatch, delay: number): void {
    if (this.batches.get(id) !== batch) return
    this.batches.delete(id)
    this.timers.clearTimeout(batch.timer)
    for (const entry of batch.waiting.values()) entry.link = undefined
    const resend = (): void => { this.sendBatch(batch.link, batch.waiting) }
    if (delay === 0) {
      resend()
      return
    }
    const timer = this.timers.setTimeout(() => { this.joinTimers.delete(timer); resend() }, delay)
    this.joinTimers.add(timer)
  }

  /**
   * One answer within a rejoin batch: a `subscribed` or an `error` naming its channel. An error
   * naming no channel refused the whole frame: RATE_LIMITED is retried, anything else fails
   * every channel still waiting, each visibly.
   */
  private batchAnswer (id: string, batch: JoinBatch, frame: SubscribedFrame | ErrorFrame): void {
    const channel = frame.channel
    if (frame.type === 'error' && channel === undefined) {
      if (frame.code === 'RATE_LIMITED') {
        this.retryBatch(id, batch, JOIN_RETRY_MS)
        return
      }
      this.batches.delete(id)
      this.timers.clearTimeout(batch.timer)
      for (const [name, entry] of batch.waiting) this.joinFailed(name, entry, new TenantcastError(frame.code, frame.message, frame.ref))
      return
    }
    const entry = channel === undefined ? undefined : batch.waiting.get(channel)
    if (channel === undefined || entry === undefined) return
    batch.waiting.delete(channel)
    if (batch.waiting.size === 0) {
      this.batches.delete(id)
      this.timers.clearTimeout(batch.timer)
    }
    if (frame.type === 'subscribed') this.joined(channel, entry, frame)
    else this.joinFailed(channel, entry, new TenantcastError(frame.code, frame.message, frame.ref))
  }

  private joined (channel: string, entry: ChannelEntry, reply: SubscribedFrame): void {
    if (this.channelEntries.get(channel) !== entry) return
    entry.reply = reply
    for (const waiter of entry.waiters.splice(0)) waiter.resolve(reply)
  }

  /** The server refused a channel: it is dropped, and its waiters, or else the `error` handlers, are told. */
  private joinFailed (channel: string, entry: ChannelEntry, error: TenantcastError): void {
    if (this.channelEntries.get(channel) !== entry) return
    this.channelEntries.delete(channel)
    this.positions.delete(channelStream(channel))
    this.caughtUp(entry.link, channelStream(channel))
    const waiters = entry.waiters.splice(0)
    if (waiters.length === 0) this.emitError(error)
    for (const waiter of waiters) waiter.reject(error)
  }

  private sendSubscribe (channel: string, entry: ChannelEntry): void {
    entry.link = this.link
    entry.reply = undefined
    const since = this.positions.get(channelStream(channel))
    const frame = since === undefined ? { type: 'subscribe' as const, channel } : { type: 'subscribe' as const, channel, since: formatPosition(since) }
    this.request(frame).then((reply) => {
      this.joined(channel, entry, reply)
    }, (error: TenantcastError) => {
      // A closed socket is not a refusal: the next connection rejoins.
      if (this.channelEntries.get(channel) !== entry || error.code === ClientErrorCode.CONNECTION_CLOSED) return
      // Nor is silence (the frame was lost): ask again on the same connection.
      if (error.code === ClientErrorCode.REQUEST_TIMEOUT) {
        if (entry.link === this.live()) this.sendSubscribe(channel, entry)
        return
      }
      // Nor is the rate limiter dropping the frame: ask again once the server's bucket has refilled.
      if (error.code === 'RATE_LIMITED') {
        const link = entry.link
        const timer = this.timers.setTimeout(() => {
          this.joinTimers.delete(timer)
          if (this.channelEntries.get(channel) === entry && entry.link === link && link === this.live()) this.sendSubscribe(channel, entry)
        }, JOIN_RETRY_MS)
        this.joinTimers.add(timer)
        return
      }
      this.joinFailed(channel, entry, error)
    })
  }

  // ---------------------------------------------------------------- token refresh

  private scheduleRefresh (): void {
    this.timers.clearTimeout(this.refreshTimer)
    this.refreshTimer = undefined
    const token = this.token
    if (this.options.getToken === undefined || token === undefined) return
    const at = refreshAt(token, this.timers.now(), this.options.tokenRefreshMargin)
    if (at === undefined) return
    const now = this.timers.now()
    const delay = Math.min(Math.max(0, at - now, this.refreshedAt + MIN_REFRESH_INTERVAL_MS - now), MAX_TIMER_MS)
    this.refreshTimer = this.timers.setTimeout(() => {
      this.refreshTimer = undefined
      if (at > this.timers.now() || this.refreshedAt + MIN_REFRESH_INTERVAL_MS > this.timers.now()) this.scheduleRefresh()
      else void this.refresh()
    }, delay)
  }

  /**
   * Gets a new token and sends it as `authenticate` on the live connection. If that fails the
   * connection keeps its current token until the server closes it at `exp` with 4401, and the
   * reconnect asks getToken again.
   */
  private async refresh (): Promise<void> {
    const link = this.link
    this.refreshedAt = this.timers.now()
    let token: string
    try {
      token = await (this.options.getToken as () => string | Promise<string>)()
      if (typeof token !== 'string' || token === '') throw new Error('getToken returned no token')
    } catch (err) {
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `token refresh failed: ${(err as Error).message}`, undefined, { cause: err }))
      return
    }
    if (token === this.token) return
    if (link === undefined || link !== this.live()) {
      this.token = token
      return
    }
    try {
      await this.request({ type: 'authenticate', token })
    } catch (err) {
      if ((err as TenantcastError).code !== ClientErrorCode.CONNECTION_CLOSED) this.emitError(err as TenantcastError)
      return
    }
    this.token = token
    link.token = token
    this.scheduleRefresh()
  }

  // ---------------------------------------------------------------- handlers

  private emit<K extends LifecycleEventName>(name: K, ...args: Parameters<LifecycleEvents[K]>): void {
    const handlers = this.lifecycleHandlers.get(name)
    if (handlers !== undefined) this.call(name, handlers, args)
  }

  /** Calls each handler; one that throws is reported as an `error` and the others still run. */
  private call (name: string, handlers: Set<AnyHandler>, args: unknown[]): void {
    const failed = (err: unknown): void => {
      if (name === 'error') return
      this.emitError(new TenantcastError(ClientErrorCode.HANDLER_FAILED, `a "${name}" handler threw: ${(err as Error).message}`, undefined, { cause: err }))
    }
    for (const handler of [...handlers]) {
      try {
        const result: unknown = handler(...args)
        // An async handler's rejection is its throw: reported, never an unhandled rejection.
        if (typeof (result as { then?: unknown } | undefined)?.then === 'function') (result as Promise<unknown>).then(undefined, failed)
      } catch (err) {
        failed(err)
      }
    }
  }

  private emitError (error: TenantcastError): void {
    const handlers = this.lifecycleHandlers.get('error')
    if (handlers === undefined || handlers.size === 0) {
      console.error(`tenantcast: ${error.code}: ${error.message}`)
      return
    }
    this.call('error', handlers, [error])
  }
}

/** The global WebSocket where there is one (browsers, Node 22+), else the `ws` package. */
async function webSocketClass (): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: unknown }).WebSocket
  if (typeof global === 'function') return global as WebSocketConstructor
  const ws = await import('ws')
  return ws.default as unknown as WebSocketConstructor
}

/**
 * Opens a client; it connects at once and keeps itself connected until `close()`. Name your
 * own events' data with a type argument, `connect<{ 'door:opened': { door: number } }>(…)`,
 * and `on` and `publish` type them as they do the catalogue's.
 */
export function connect<Custom extends Record<string, unknown> = Record<never, never>> (options: ConnectOptions): TenantcastClient<Custom> {
  return new TenantcastClient<Custom>(options)
}
