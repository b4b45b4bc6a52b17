import type { Broker, StreamRead } from './broker.js'
import { isValidChannel, globMatcher } from './channels.js'
import { CloseCode } from './close-codes.js'
import { MAX_TIMER_MS, type Clock } from './clock.js'
import { ErrorCode } from './error-codes.js'
import { checkEventData, isServerEventName, RESERVED_EVENT_NAMES, type EventEnvelope, type StoredEvent } from './events.js'
import {
  authenticatedFrame, connectedFrame, errorFrame, eventFrame, membershipFrame, pongFrame,
  presenceFrame, publishedFrame, recoveredFrame, type Ref
} from './frames.js'
import type { Client, Connection, Hub } from './hub.js'
import { AuthFailure, AuthReason, AuthUnavailable, PUBLISHER_ROLES, hasAnyRole, type Principal, type VerifyToken } from './principal.js'
import type { Observer } from './observer.js'
import type { Presence } from './presence.js'
import { parseFrame, type ClientMessage } from './protocol.js'
import { TokenBucket } from './token-bucket.js'
import { TENANT_STREAM, channelStream, parsePosition, type Position } from './streams.js'

/** The pino-compatible subset the session logs through. */
export interface SessionLog {
  info (fields: object, message: string): void
  warn (fields: object, message: string): void
  error (fields: object, message: string): void
}

/** What a client-published event becomes: a channel event with its sender. */
export type ClientPublish = (envelope: Omit<EventEnvelope, 'id' | 'timestamp'>) => Promise<StoredEvent>

export interface SessionOptions {
  clientId: string
  connection: Connection
  hub: Hub
  broker: Pick<Broker, 'read' | 'watch' | 'unwatch'>
  verify: VerifyToken
  /**
   * Whether a verified token has been revoked since (the kill switch). Asked again right
   * before the client enters the hub, so a revocation that arrived while auth awaited the
   * connection caps cannot let it in.
   */
  refuses: (principal: Principal) => boolean
  publish: ClientPublish
  /** Open connections, cluster-wide where the deployment can tell. */
  presence: Pick<Presence, 'connectionCount' | 'userConnectionCount'>
  limits: SessionLimits
  observer: Observer
  /** How long an unauthenticated socket may wait for `authenticate`, in ms. */
  authTimeoutMs: number
  /** Most channels one connection may join. */
  maxChannels: number
  /** Channels clients may publish to: undefined means client publishing is off. */
  clientPublish: readonly string[] | undefined
  /** Most events one replay sends (the history bound). */
  replayLimit: number
  /**
   * Bytes a replay queues on the socket before it waits for the socket to drain, so that a
   * replay stays inside the slow-consumer guard (MAX_BUFFERED_BYTES) instead of queueing the
   * whole history in one turn.
   */
  replayPaceBytes: number
  clock: Clock
  log: SessionLog
}

export interface SessionLimits {
  /** Client frames per second, and the burst allowed above it (a token bucket). */
  frameRate: number
  frameBurst: number
  /** Refused frames in a row after which the socket is closed with 4029. */
  frameStrikes: number
  /** Open connections per user and per tenant; 0 means no limit. */
  connectionsPerUser: number
  connectionsPerTenant: number
  /** Largest frame, in UTF-8 bytes, that arrives before auth; a larger one closes with 1009. */
  preAuthFrameBytes: number
}

type State = 'awaiting-auth' | 'open' | 'closed'

/**
 * The protocol state machine of one connection: awaiting-auth, then open, then closed.
 *
 * `closed` is terminal and is entered the moment anything decides the socket is done: the
 * socket closed, the session closed it, or the hub dropped it (Client.close). From then on
 * no frame is handled, and the client is in no hub index, so in no presence. Every step
 * that awaits re-checks it before touching the hub, so a socket that closed during token
 * verification, a presence lookup or a history read never enters (or re-enters) an index.
 *
 * Frames are handled one at a time, in arrival order, even when one of them waits on the
 * broker. The session owns the auth timeout and the token-expiry timer, and it is the only
 * thing that adds its client to the hub or removes it.
 *
 * Resume guarantee: when a stream is attached (at auth, on subscribe, on resume), live events
 * for it are held while history is read; the replayed events go out first, then the held
 * ones above the replay's end, so each event reaches the socket exactly once and in order.
 */
export class Session {
  private state: State = 'awaiting-auth'
  private client: Client | undefined
  private principal: Principal | undefined
  private timer: unknown
  private queue: Promise<void> = Promise.resolve()
  /** Per attached stream: every event above this offset has been sent or is held. */
  private readonly attachedAt = new Map<string, number>()
  /** The tenant stream's epoch as of the last read, for `authenticated` on a refresh. */
  private tenantEpoch = ''
  /** Streams this session asked the broker to deliver live. */
  private readonly watching = new Set<string>()
  private readonly canPublish: (channel: string) => boolean
  private canJoin: (channel: string) => boolean = () => true
  private readonly bucket: TokenBucket
  private strikes = 0
  /** Replay bytes sent since the last wait for drain. */
  private unpaced = 0

  constructor (private readonly options: SessionOptions) {
    this.canPublish = options.clientPublish === undefined ? () => false : globMatcher(options.clientPublish)
    this.bucket = new TokenBucket(options.limits.frameRate, options.limits.frameBurst, options.clock)
  }

  /**
   * Call once the socket is open, with the token and the `since` position from the upgrade
   * request if it carried them.
   */
  start (token: string | undefined, since?: string): void {
    this.reply(connectedFrame(this.options.clientId))
    // Armed for an upgrade token too: a refused one (a malformed `since`) leaves the socket
    // waiting for `authenticate`, and that wait is bounded.
    this.arm(this.options.authTimeoutMs, () => {
      this.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, 'no authenticate message arrived in time'))
    })
    if (token !== undefined) this.enqueue(async () => { await this.authenticate(token, since, undefined) })
  }

  /** Handles one text frame from the client. Never throws. */
  receive (text: string): void {
    // Before auth only a small frame is read at all: an anonymous socket cannot make us parse 64 KiB.
    if (this.state === 'awaiting-auth' && Buffer.byteLength(text) > this.options.limits.preAuthFrameBytes) {
      this.options.log.warn({ action: 'websocket.preauth.too_large', clientId: this.options.clientId }, 'frame too large before auth; closing with 1009')
      this.close(CloseCode.TOO_LARGE, 'PRE_AUTH_FRAME_TOO_LARGE')
      return
    }
    if (!this.admit()) return
    this.enqueue(async () => {
      const parsed = parseFrame(text)
      if (!parsed.ok) {
        this.reply(errorFrame(parsed.code, parsed.message, parsed.ref))
        this.refuseBeforeAuth(parsed.code)
        return
      }
      await this.dispatch(parsed.message)
    })
  }

  /** Resolves once every frame received so far has been handled. */
  async idle (): Promise<void> {
    await this.queue
  }

  /** The client sent something that is not a text frame. */
  receiveBinary (): void {
    if (!this.admit()) return
    this.enqueue(async () => {
      this.reply(errorFrame(ErrorCode.INVALID_FRAME, 'frames must be JSON text, not binary'))
      this.refuseBeforeAuth('a binary frame')
    })
  }

  /** Closes from the server side (shutdown, a limit, the hub dropping it). The session ends at once. */
  close (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.ended()
    this.options.connection.close(code, reason)
  }

  /** Call when the socket has closed, for whatever reason. Idempotent. */
  ended (): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.options.clock.clearTimeout(this.timer)
    const client = this.client
    if (client !== undefined) {
      this.options.hub.remove(client)
      client.held.clear()
      for (const stream of this.watching) this.options.broker.unwatch(client.tenantId, stream)
      this.watching.clear()
      // Deferred: a session the hub ends mid-delivery must not send (and maybe drop the next
      // slow member, and so on) from inside that delivery's loop.
      if (client.channels.size > 0) queueMicrotask(() => { for (const channel of client.channels) this.announce('user-left', channel) })
    }
    if (wasOpen) {
      this.options.log.info({ action: 'websocket.connection.disconnected', ...this.identity() }, 'websocket disconnected')
    }
  }

  /**
   * The per-connection frame rate limit. A refused frame is dropped unread; the first refusal
   * in a row is answered with RATE_LIMITED, and a client that keeps flooding is closed with 4029.
   */
  private admit (): boolean {
    if (this.state === 'closed') return false
    this.options.observer.frameIn()
    if (this.bucket.take()) {
      this.strikes = 0
      return true
    }
    this.strikes++
    this.options.observer.rateLimited('frames', this.principal?.tenantId ?? '')
    if (this.strikes === 1) this.reply(errorFrame(ErrorCode.RATE_LIMITED, `more than ${this.options.limits.frameRate} frames per second; frames are being dropped`))
    if (this.strikes >= this.options.limits.frameStrikes) {
      this.options.log.warn({ action: 'websocket.rate_limited', ...this.identity() }, 'client kept flooding; closing with 4029')
      this.close(CloseCode.RATE_LIMITED, 'RATE_LIMITED')
    }
    return false
  }

  /** Not a getter on `state`: TypeScript would keep its narrowing across an await. */
  private isClosed (): boolean {
    return this.state === 'closed'
  }

  /** Before auth only a valid `ping` or `authenticate` is accepted: anything else, answered already, ends the socket with 4401. */
  private refuseBeforeAuth (what: string): void {
    if (this.state === 'open') return
    this.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, `${what} before authenticate`))
  }

  private enqueue (task: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (this.state !== 'closed') await task()
    }).catch((err: unknown) => {
      this.options.log.error({ action: 'websocket.session.failed', err, ...this.identity() }, 'session task failed')
    })
  }

  private async dispatch (message: ClientMessage): Promise<void> {
    if (message.type === 'ping') {
      this.reply(pongFrame(message.id))
      return
    }
    if (message.type === 'authenticate') {
      await this.authenticate(message.token, message.since, message.id)
      return
    }
    if (this.state !== 'open') {
      this.reply(errorFrame(ErrorCode.AUTHENTICATION_REQUIRED, 'authenticate first', message.id))
      this.refuseBeforeAuth(message.type)
      return
    }
    switch (message.type) {
      case 'resume': await this.resume(message.since, message.id); return
      case 'subscribe': await this.subscribe(message.channel, message.since, message.id, false); return
      case 'join-room': await this.subscribe(message.roomId, message.since, message.id, true); return
      case 'unsubscribe': this.unsubscribe(message.channel, message.id, false); return
      case 'leave-room': this.unsubscribe(message.roomId, message.id, true); return
      case 'publish': await this.publish(message.channel, message.event, message.data, message.id); return
      case 'message':
        if (message.roomId === undefined) {
          this.reply(errorFrame(ErrorCode.INVALID_MESSAGE, 'a message needs a roomId: clients publish to rooms they joined, not to the whole tenant', message.id))
          return
        }
        await this.publish(message.roomId, 'message', { message: message.message, roomId: message.roomId }, message.id)
    }
  }

  private async authenticate (token: string, sinceText: string | undefined, ref: Ref): Promise<void> {
    const since = this.position(sinceText, ref)
    if (since === null) return
    let principal: Principal
    try {
      principal = await this.options.verify(token)
    } catch (err) {
      if (this.isClosed()) return
      if (err instanceof AuthUnavailable) {
        this.unavailable(err, ref)
        return
      }
      const failure = err instanceof AuthFailure ? err : new AuthFailure(AuthReason.TOKEN_INVALID, 'the token could not be verified')
      // A failed refresh leaves the live connection on its current, still valid token.
      if (this.state === 'open') {
        this.options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, refresh: true, ...this.identity() }, 'token refresh rejected')
        this.reply(errorFrame(failure.reason, failure.message, ref))
        return
      }
      this.fail(failure, true)
      return
    }
    if (this.isClosed()) return
    if (this.state === 'open') {
      await this.refresh(principal, ref)
      return
    }
    if (await this.overCapacity(principal) || this.isClosed()) return
    // A revocation that arrived while the caps were looked up still keeps the socket out.
    if (this.options.refuses(principal)) {
      this.fail(new AuthFailure(AuthReason.TOKEN_REVOKED, 'the token was revoked'))
      return
    }
    this.state = 'open'
    this.principal = principal
    this.canJoin = globMatcher(principal.channels)
    const client: Client = {
      id: this.options.clientId,
      tenantId: principal.tenantId,
      userId: principal.userId,
      connection: this.options.connection,
      channels: new Set(),
      issuedAt: principal.iat,
      held: new Map([[TENANT_STREAM, []]]),
      floors: new Map(),
      close: (code, reason) => { this.close(code, reason) }
    }
    this.client = client
    this.options.hub.add(client)
    this.armExpiry(principal)
    const read = await this.read(TENANT_STREAM, since)
    if (read === undefined) return
    this.tenantEpoch = read.epoch
    const connectionCount = await this.count(principal.tenantId)
    if (this.isClosed()) return
    this.options.log.info({ action: 'websocket.connection.established', ...this.identity() }, 'websocket authenticated')
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: client.id,
      connectionCount,
      position: { epoch: read.epoch, offset: read.latest }
    }, ref))
    await this.attach(TENANT_STREAM, since, read, ref)
  }

  /** Enforces the per-user and per-tenant connection caps; a socket over either gets 4029. */
  private async overCapacity (principal: Principal): Promise<boolean> {
    const { connectionsPerUser, connectionsPerTenant } = this.options.limits
    const [user, tenant] = await Promise.all([
      connectionsPerUser === 0 ? 0 : this.options.presence.userConnectionCount(principal.tenantId, principal.userId).catch(() => this.options.hub.userConnectionCount(principal.tenantId, principal.userId)),
      connectionsPerTenant === 0 ? 0 : this.options.presence.connectionCount(principal.tenantId).catch(() => this.options.hub.tenantConnectionCount(principal.tenantId))
    ])
    if (this.isClosed()) return true
    const reason = connectionsPerUser > 0 && user >= connectionsPerUser
      ? 'USER_CONNECTION_LIMIT'
      : connectionsPerTenant > 0 && tenant >= connectionsPerTenant ? 'TENANT_CONNECTION_LIMIT' : undefined
    if (reason === undefined) return false
    this.options.observer.rateLimited('connections', principal.tenantId)
    this.options.log.warn({ action: 'websocket.connection.limited', reason, clientId: this.options.clientId, tenantId: principal.tenantId, userId: principal.userId }, 'connection cap reached')
    this.close(CloseCode.RATE_LIMITED, reason)
    return true
  }

  /** The cluster-wide count when it can be had, this instance's otherwise: auth never fails on it. */
  private async count (tenantId: string): Promise<number> {
    try {
      return await this.options.presence.connectionCount(tenantId)
    } catch {
      return this.options.hub.tenantConnectionCount(tenantId)
    }
  }

  /** A fresh token on a live connection: it must name the same tenant and user. */
  private async refresh (principal: Principal, ref: Ref): Promise<void> {
    const current = this.principal as Principal
    if (principal.tenantId !== current.tenantId || principal.userId !== current.userId) {
      this.reply(errorFrame(ErrorCode.IDENTITY_MISMATCH, 'a refreshed token must name the same tenant and user', ref))
      return
    }
    this.principal = principal
    const client = this.client as Client
    client.issuedAt = principal.iat
    this.canJoin = globMatcher(principal.channels)
    // The new claim is the whole grant: channels it no longer allows are left at once.
    for (const channel of [...client.channels]) {
      if (!this.canJoin(channel)) this.leave(channel, membershipFrame('unsubscribed', channel, { reason: ErrorCode.CHANNEL_FORBIDDEN }))
    }
    this.armExpiry(principal)
    const connectionCount = await this.count(principal.tenantId)
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: this.options.clientId,
      connectionCount,
      position: { epoch: this.tenantEpoch, offset: this.attachedAt.get(TENANT_STREAM) ?? 0 }
    }, ref))
  }

  /** `resume {since}` on a live connection: replays the tenant stream's events it missed before attaching. */
  private async resume (sinceText: string, ref: Ref): Promise<void> {
    const since = this.position(sinceText, ref)
    if (since === null || since === undefined) return
    const client = this.client as Client
    client.held.set(TENANT_STREAM, [])
    const read = await this.read(TENANT_STREAM, since)
    if (read === undefined) return
    await this.attach(TENANT_STREAM, since, read, ref)
  }

  private async subscribe (channel: string, sinceText: string | undefined, ref: Ref, alias: boolean): Promise<void> {
    const client = this.client as Client
    const since = this.position(sinceText, ref)
    if (since === null) return
    if (!isValidChannel(channel)) {
      this.reply(errorFrame(ErrorCode.INVALID_CHANNEL, 'a channel name is 1-128 characters of A-Z a-z 0-9 _ . : @ / -, starting with a letter or digit', ref))
      return
    }
    if (!this.canJoin(channel)) {
      this.reply(errorFrame(ErrorCode.CHANNEL_FORBIDDEN, 'the token\'s channels claim does not allow this channel', ref))
      return
    }
    const joined = alias ? 'room-joined' : 'subscribed'
    if (client.channels.has(channel)) {
      this.reply(membershipFrame(joined, channel, {}, ref))
      return
    }
    if (client.channels.size >= this.options.maxChannels) {
      this.reply(errorFrame(ErrorCode.CHANNEL_LIMIT, `a connection may join at most ${this.options.maxChannels} channels`, ref))
      return
    }
    const stream = channelStream(channel)
    client.held.set(stream, [])
    if (!this.options.hub.join(client, channel)) return
    const read = await this.read(stream, since)
    if (read === undefined) return
    this.reply(membershipFrame(joined, channel, { position: { epoch: read.epoch, offset: read.latest } }, ref))
    this.announce('user-joined', channel)
    await this.attach(stream, since, read, ref)
  }

  private unsubscribe (channel: string, ref: Ref, alias: boolean): void {
    if (!this.leave(channel, membershipFrame(alias ? 'room-left' : 'unsubscribed', channel, {}, ref))) {
      this.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'not subscribed to this channel', ref))
    }
  }

  /** Leaves a joined channel, tells the client with `frame` and the members; false when not joined. */
  private leave (channel: string, frame: string): boolean {
    const client = this.client as Client
    if (!this.options.hub.leave(client, channel)) return false
    const stream = channelStream(channel)
    client.held.delete(stream)
    client.floors.delete(stream)
    this.attachedAt.delete(stream)
    if (this.watching.delete(stream)) this.options.broker.unwatch(client.tenantId, stream)
    this.reply(frame)
    this.announce('user-left', channel)
    return true
  }

  private async publish (channel: string, event: string, data: unknown, ref: Ref): Promise<void> {
    const client = this.client as Client
    if (!this.canPublish(channel)) {
      this.reply(errorFrame(ErrorCode.PUBLISH_DISABLED, 'client publishing is not enabled for this channel', ref))
      return
    }
    if (!client.channels.has(channel)) {
      this.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'join the channel before publishing to it', ref))
      return
    }
    if (RESERVED_EVENT_NAMES.has(event)) {
      this.reply(errorFrame(ErrorCode.EVENT_NAME_RESERVED, `the event name ${event} is reserved by Socket.IO`, ref))
      return
    }
    if (isServerEventName(event) && !hasAnyRole(this.principal as Principal, PUBLISHER_ROLES)) {
      this.reply(errorFrame(ErrorCode.EVENT_FORBIDDEN, 'alarm:*, event:* and report:* events come from the server; publishing them needs the publisher or admin role', ref))
      return
    }
    const check = checkEventData(event, data)
    if (!check.ok) {
      this.reply(errorFrame(ErrorCode.INVALID_EVENT, check.message, ref))
      return
    }
    try {
      const stored = await this.options.publish({
        tenantId: client.tenantId,
        event,
        data,
        target: { kind: 'channel', channel },
        from: { clientId: client.id, userId: client.userId }
      })
      this.reply(publishedFrame({ id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }, ref))
    } catch (err) {
      if ((err as { code?: unknown }).code === ErrorCode.PAYLOAD_TOO_LARGE) {
        this.reply(errorFrame(ErrorCode.PAYLOAD_TOO_LARGE, (err as Error).message, ref))
        return
      }
      this.reply(errorFrame(ErrorCode.BROKER_UNAVAILABLE, 'the event could not be stored; retry', ref))
    }
  }

  /**
   * Reads a stream for an attach, after making sure the broker delivers it live here: a read
   * made before that could miss an event published in between. On broker failure the socket
   * is closed so the client retries.
   */
  private async read (stream: string, since: Position | undefined): Promise<StreamRead | undefined> {
    const tenantId = (this.client as Client).tenantId
    let read: StreamRead
    try {
      if (!this.watching.has(stream)) {
        this.watching.add(stream)
        await this.options.broker.watch(tenantId, stream)
      }
      if (this.state !== 'open') return undefined
      read = await this.options.broker.read(tenantId, stream, since?.offset, this.options.replayLimit)
    } catch (err) {
      this.options.log.error({ action: 'websocket.resume.failed', stream, err, ...this.identity() }, 'history read failed')
      this.close(CloseCode.TRY_AGAIN, 'BROKER_UNAVAILABLE')
      return undefined
    }
    return this.state === 'open' ? read : undefined
  }

  /**
   * Finishes attaching a stream whose live events are being held: replays what the client
   * missed after `since` (if it can), reports the recovery, then releases the held events
   * above everything already sent. Both go out as the socket drains (see `sendPaced`); live
   * events that arrive meanwhile join the held queue, so order and exactly-once still hold.
   */
  private async attach (stream: string, since: Position | undefined, read: StreamRead, ref: Ref): Promise<void> {
    const client = this.client as Client
    // Events above `attachedAt` already went out live; a replay stops there.
    const ceiling = this.attachedAt.get(stream) ?? read.latest
    let floor = ceiling
    let sentThrough = ceiling
    if (since !== undefined) {
      const recoverable = since.epoch === read.epoch && since.offset <= read.latest && since.offset + 1 >= read.oldest
      if (recoverable) {
        let count = 0
        let to = Math.min(since.offset, ceiling)
        for (const event of read.events) {
          if (event.offset > ceiling) break
          to = event.offset
          if (!this.entitled(event)) continue
          if (!await this.sendPaced(client, eventFrame(event))) return
          count++
        }
        floor = Math.min(since.offset, ceiling)
        this.reply(recoveredFrame({ recovered: true, stream, epoch: read.epoch, from: since.offset + 1, to, count }, ref))
      } else {
        this.reply(recoveredFrame({
          recovered: false,
          stream,
          epoch: read.epoch,
          oldest: { epoch: read.epoch, offset: read.oldest },
          latest: { epoch: read.epoch, offset: read.latest }
        }, ref))
      }
    }
    this.attachedAt.set(stream, floor)
    const held = client.held.get(stream) ?? []
    // Emptied and deleted with no await in between: the hub holds for this stream until then.
    for (let event = held.shift(); event !== undefined; event = held.shift()) {
      if (event.offset <= ceiling) continue
      if (!await this.sendPaced(client, eventFrame(event))) return
      sentThrough = event.offset
    }
    client.held.delete(stream)
    client.floors.set(stream, sentThrough)
  }

  /**
   * Sends one replayed frame through the hub's slow-consumer guard; every `replayPaceBytes`
   * it waits for the socket to drain. False when the socket is gone or was dropped.
   */
  private async sendPaced (client: Client, frame: string): Promise<boolean> {
    if (this.isClosed() || !this.options.hub.send(client, frame)) return false
    this.unpaced += frame.length
    if (this.unpaced < this.options.replayPaceBytes) return true
    this.unpaced = 0
    await this.options.connection.drained?.()
    return !this.isClosed()
  }

  /** Whether this connection may see a replayed event: the hub's live filter, for history. */
  private entitled (event: StoredEvent): boolean {
    const client = this.client as Client
    switch (event.target.kind) {
      case 'tenant': return true
      case 'user': return event.target.userId === client.userId
      case 'client': return event.target.clientId === client.id
      case 'channel': return client.channels.has(event.target.channel)
    }
  }

  /**
   * Parses a `since` position. A malformed one is answered with INVALID_POSITION and returns
   * null: the request it came with is refused whole, so it gets that one answer only.
   */
  private position (text: string | undefined, ref: Ref): Position | undefined | null {
    if (text === undefined) return undefined
    const position = parsePosition(text)
    if (position !== undefined) return position
    this.reply(errorFrame(ErrorCode.INVALID_POSITION, 'since must be <epoch>:<offset>', ref))
    return null
  }

  private announce (type: 'user-joined' | 'user-left', channel: string): void {
    const client = this.client as Client
    this.options.hub.sendToChannel(client.tenantId, channel, presenceFrame(type, channel, client.userId, client.id), client)
  }

  private armExpiry (principal: Principal): void {
    if (principal.exp === undefined) {
      this.options.clock.clearTimeout(this.timer)
      return
    }
    const expiresAt = principal.exp * 1000
    const check = (): void => {
      const left = expiresAt - this.options.clock.now()
      if (left <= 0) {
        this.fail(new AuthFailure(AuthReason.TOKEN_EXPIRED, 'the token expired'))
        return
      }
      this.arm(Math.min(left, MAX_TIMER_MS), check)
    }
    check()
  }

  private arm (ms: number, fn: () => void): void {
    this.options.clock.clearTimeout(this.timer)
    this.timer = this.options.clock.setTimeout(fn, ms)
  }

  /**
   * The token could not be checked (its keys are unreachable): not a verdict, so never 4401.
   * A refresh keeps the connection on its current token; a first authentication closes with
   * 1013 and a retry hint, and the client comes back with the same token.
   */
  private unavailable (err: AuthUnavailable, ref: Ref): void {
    this.options.log.warn({ action: 'websocket.auth.unavailable', retryAfterMs: err.retryAfterMs, refresh: this.state === 'open', ...this.identity() }, err.message)
    if (this.state === 'open') {
      this.reply(errorFrame(ErrorCode.AUTH_UNAVAILABLE, `${err.message}; retry in ${err.retryAfterMs} ms`, ref))
      return
    }
    this.close(CloseCode.TRY_AGAIN, `AUTH_UNAVAILABLE retry=${err.retryAfterMs}`)
  }

  /** Closes with 4401. `verified` failures were already reported by the verifier itself. */
  private fail (failure: AuthFailure, verified = false): void {
    if (!verified) this.options.observer.authFailed(failure.reason)
    this.options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, clientId: this.options.clientId }, 'websocket auth failed')
    this.close(CloseCode.UNAUTHORIZED, failure.reason)
  }

  private reply (frame: string): void {
    if (this.state === 'closed') return
    if (this.client !== undefined) {
      this.options.hub.send(this.client, frame)
      return
    }
    this.options.connection.send(frame)
    this.options.observer.sent(Buffer.byteLength(frame))
  }

  private identity (): Record<string, string | undefined> {
    return { clientId: this.options.clientId, tenantId: this.principal?.tenantId, userId: this.principal?.userId }
  }
}
