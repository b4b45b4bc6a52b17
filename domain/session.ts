import type { Broker, StreamRead } from './broker.js'
import { isValidChannel, globMatcher } from './channels.js'
import { CloseCode } from './close-codes.js'
import { MAX_TIMER_MS, type Clock } from './clock.js'
import { ErrorCode } from './error-codes.js'
import { checkEventData, type EventEnvelope, type StoredEvent } from './events.js'
import {
  authenticatedFrame, connectedFrame, errorFrame, eventFrame, membershipFrame, pongFrame,
  presenceFrame, publishedFrame, recoveredFrame, type Ref
} from './frames.js'
import type { Client, Connection, Hub } from './hub.js'
import { AuthFailure, AuthReason, type Principal, type VerifyToken } from './principal.js'
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
}

type State = 'awaiting-auth' | 'open' | 'closed'

/**
 * The protocol state machine of one connection: awaiting-auth, then open, then closed.
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
    if (token !== undefined) {
      this.enqueue(async () => { await this.authenticate(token, since, undefined) })
      return
    }
    this.arm(this.options.authTimeoutMs, () => {
      this.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, 'no authenticate message arrived in time'))
    })
  }

  /** Handles one text frame from the client. Never throws. */
  receive (text: string): void {
    if (!this.admit()) return
    this.enqueue(async () => {
      const parsed = parseFrame(text)
      if (!parsed.ok) {
        this.reply(errorFrame(parsed.code, parsed.message, parsed.ref))
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
    this.enqueue(async () => { this.reply(errorFrame(ErrorCode.INVALID_FRAME, 'frames must be JSON text, not binary')) })
  }

  /** Closes from the server side, e.g. on shutdown. */
  close (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.options.connection.close(code, reason)
    this.ended()
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
      for (const channel of client.channels) this.announce('user-left', channel)
      for (const stream of this.watching) this.options.broker.unwatch(client.tenantId, stream)
      this.watching.clear()
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
    let principal: Principal
    try {
      principal = await this.options.verify(token)
    } catch (err) {
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
    if (this.state === 'open') {
      await this.refresh(principal, ref)
      return
    }
    if (await this.overCapacity(principal)) return
    if (this.options.refuses(principal)) {
      this.fail(new AuthFailure(AuthReason.TOKEN_REVOKED, 'the token was revoked'))
      return
    }
    const since = this.position(sinceText, ref)
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
      floors: new Map()
    }
    this.client = client
    this.options.hub.add(client)
    this.armExpiry(principal)
    const read = await this.read(TENANT_STREAM, since)
    if (read === undefined) return
    this.tenantEpoch = read.epoch
    const connectionCount = await this.count(principal.tenantId)
    this.options.log.info({ action: 'websocket.connection.established', ...this.identity() }, 'websocket authenticated')
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: client.id,
      connectionCount,
      position: { epoch: read.epoch, offset: read.latest }
    }, ref))
    this.attach(TENANT_STREAM, since, read, ref)
  }

  /** Enforces the per-user and per-tenant connection caps; a socket over either gets 4029. */
  private async overCapacity (principal: Principal): Promise<boolean> {
    const { connectionsPerUser, connectionsPerTenant } = this.options.limits
    const [user, tenant] = await Promise.all([
      connectionsPerUser === 0 ? 0 : this.options.presence.userConnectionCount(principal.tenantId, principal.userId).catch(() => this.options.hub.userConnectionCount(principal.tenantId, principal.userId)),
      connectionsPerTenant === 0 ? 0 : this.options.presence.connectionCount(principal.tenantId).catch(() => this.options.hub.tenantConnectionCount(principal.tenantId))
    ])
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
    this.armExpiry(principal)
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: this.options.clientId,
      connectionCount: await this.count(principal.tenantId),
      position: { epoch: this.tenantEpoch, offset: this.attachedAt.get(TENANT_STREAM) ?? 0 }
    }, ref))
  }

  /** `resume {since}` on a live connection: replays the tenant stream's events it missed before attaching. */
  private async resume (sinceText: string, ref: Ref): Promise<void> {
    const since = this.position(sinceText, ref)
    if (since === undefined) return
    const client = this.client as Client
    client.held.set(TENANT_STREAM, [])
    const read = await this.read(TENANT_STREAM, since)
    if (read === undefined) return
    this.attach(TENANT_STREAM, since, read, ref)
  }

  private async subscribe (channel: string, sinceText: string | undefined, ref: Ref, alias: boolean): Promise<void> {
    const client = this.client as Client
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
    const since = this.position(sinceText, ref)
    const stream = channelStream(channel)
    client.held.set(stream, [])
    this.options.hub.join(client, channel)
    const read = await this.read(stream, since)
    if (read === undefined) return
    this.reply(membershipFrame(joined, channel, { position: { epoch: read.epoch, offset: read.latest } }, ref))
    this.announce('user-joined', channel)
    this.attach(stream, since, read, ref)
  }

  private unsubscribe (channel: string, ref: Ref, alias: boolean): void {
    const client = this.client as Client
    if (!this.options.hub.leave(client, channel)) {
      this.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'not subscribed to this channel', ref))
      return
    }
    const stream = channelStream(channel)
    client.held.delete(stream)
    client.floors.delete(stream)
    this.attachedAt.delete(stream)
    if (this.watching.delete(stream)) this.options.broker.unwatch(client.tenantId, stream)
    this.reply(membershipFrame(alias ? 'room-left' : 'unsubscribed', channel, {}, ref))
    this.announce('user-left', channel)
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
   * above everything already sent.
   */
  private attach (stream: string, since: Position | undefined, read: StreamRead, ref: Ref): void {
    const client = this.client as Client
    const hub = this.options.hub
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
          if (!hub.send(client, eventFrame(event))) return
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
    client.held.delete(stream)
    for (const event of held) {
      if (event.offset <= ceiling) continue
      if (!hub.send(client, eventFrame(event))) return
      sentThrough = event.offset
    }
    client.floors.set(stream, sentThrough)
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

  /** Parses a `since` position; a malformed one is reported and treated as absent. */
  private position (text: string | undefined, ref: Ref): Position | undefined {
    if (text === undefined) return undefined
    const position = parsePosition(text)
    if (position === undefined) this.reply(errorFrame(ErrorCode.INVALID_POSITION, 'since must be <epoch>:<offset>', ref))
    return position
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
