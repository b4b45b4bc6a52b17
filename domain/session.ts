import type { Broker } from './broker.js'
import { CloseCode } from './close-codes.js'
import type { Clock } from './clock.js'
import { ErrorCode } from './error-codes.js'
import type { EventEnvelope, StoredEvent } from './events.js'
import { connectedFrame, errorFrame, pongFrame } from './frames.js'
import type { Client, Connection, Hub } from './hub.js'
import { AuthFailure, AuthReason, type Principal, type VerifyToken } from './principal.js'
import type { Observer } from './observer.js'
import type { Presence } from './presence.js'
import { parseFrame, requestRef, type ClientMessage } from './protocol.js'
import { SessionAlarms, type SessionAlarmsPort } from './session-alarms.js'
import { SessionAuth } from './session-auth.js'
import { ChannelMembership } from './session-channels.js'
import { StreamAttachments } from './session-streams.js'
import { TENANT_STREAM, userStream, type SinceInput } from './streams.js'
import { TokenBucket } from './token-bucket.js'

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
  /** Open-alarm state (ack, resolve, receipts, the `open-alarms` snapshot); absent: those frames find no alarm. */
  alarms?: SessionAlarmsPort | undefined
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
  /**
   * Socket writes the tenant may have queued in the hub before its client publishes are
   * refused with TENANT_BACKLOGGED, as its REST ones are; 0 or absent means no cap.
   */
  queuedWrites?: number
}

/**
 * What the concepts of a session (its auth lifecycle, its channel membership, its stream
 * attachments) see of the session they belong to. `client` and `principal` are defined once
 * the session is open; the concepts only use them then.
 */
export interface SessionContext {
  readonly options: SessionOptions
  readonly client: Client
  readonly principal: Principal
  /** Not a getter: TypeScript would keep a narrowing of it across an await. */
  isClosed: () => boolean
  isOpen: () => boolean
  reply: (frame: string) => void
  close: (code: number, reason: string) => void
  identity: () => Record<string, string | undefined>
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
 * broker. The session is the only thing that adds its client to the hub or removes it.
 *
 * What a frame asks for is done by one of three concepts, each in its own file:
 * - `SessionAuth` (session-auth.ts): authentication, refresh, connection caps, token expiry;
 * - `ChannelMembership` (session-channels.ts): subscribe, unsubscribe, presence, client publish;
 * - `StreamAttachments` (session-streams.ts): the hold/replay/floor protocol that attaches a
 *   stream to the socket with nothing skipped or sent twice, and `resume`.
 */
export class Session implements SessionContext {
  private state: State = 'awaiting-auth'
  private current: Client | undefined
  private queue: Promise<void> = Promise.resolve()
  private readonly bucket: TokenBucket
  private strikes = 0
  private readonly auth: SessionAuth
  private readonly channels: ChannelMembership
  private readonly streams: StreamAttachments
  private readonly alarms: SessionAlarms

  constructor (readonly options: SessionOptions) {
    this.bucket = new TokenBucket(options.limits.frameRate, options.limits.frameBurst, options.clock)
    this.streams = new StreamAttachments(this)
    this.channels = new ChannelMembership(this, this.streams)
    this.auth = new SessionAuth(this, this.streams, this.channels, (principal) => this.enter(principal))
    this.alarms = new SessionAlarms(this, options.alarms)
  }

  get client (): Client {
    return this.current as Client
  }

  get principal (): Principal {
    return this.auth.principal as Principal
  }

  /**
   * Call once the socket is open, with the token and the `since` position from the upgrade
   * request if it carried them.
   */
  start (token: string | undefined, since?: SinceInput): void {
    this.reply(connectedFrame(this.options.clientId))
    this.auth.armAuthTimeout()
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
    if (!this.admit(text)) return
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
    this.auth.stop()
    const client = this.current
    if (client !== undefined) {
      this.options.hub.remove(client)
      this.streams.detachAll()
      this.channels.leftAll()
    }
    if (wasOpen) {
      this.options.log.info({ action: 'websocket.connection.disconnected', ...this.identity() }, 'websocket disconnected')
    }
  }

  isClosed (): boolean {
    return this.state === 'closed'
  }

  isOpen (): boolean {
    return this.state === 'open'
  }

  reply (frame: string): void {
    if (this.state === 'closed') return
    if (this.current !== undefined) {
      this.options.hub.send(this.current, frame)
      return
    }
    this.options.connection.send(frame)
    this.options.observer.sent(Buffer.byteLength(frame))
  }

  identity (): Record<string, string | undefined> {
    return { clientId: this.options.clientId, tenantId: this.auth.principal?.tenantId, userId: this.auth.principal?.userId }
  }

  /** A verified principal opens the session: its client enters the hub, its tenant stream held. */
  private enter (principal: Principal): Client {
    this.state = 'open'
    const client: Client = {
      id: this.options.clientId,
      tenantId: principal.tenantId,
      userId: principal.userId,
      roles: principal.roles,
      connection: this.options.connection,
      channels: new Set(),
      issuedAt: principal.iat,
      held: new Map(),
      floors: new Map(),
      close: (code, reason) => { this.close(code, reason) }
    }
    this.current = client
    // Held from before the client is in the hub: no tenant or user event slips past the first attach.
    this.streams.hold(TENANT_STREAM)
    this.streams.hold(userStream(principal.userId))
    this.options.hub.add(client)
    return client
  }

  /**
   * The per-connection frame rate limit. A refused frame is dropped unhandled. A refused request
   * with an `id` is answered with RATE_LIMITED and its `ref`, so the caller learns at once that
   * it was not handled; of refused frames without one, only the first in a row is answered. A
   * client that keeps flooding is closed with 4029 after `frameStrikes` refusals in a row, which
   * bounds those answers too.
   */
  private admit (text?: string): boolean {
    if (this.state === 'closed') return false
    this.options.observer.frameIn()
    if (this.bucket.take()) {
      this.strikes = 0
      return true
    }
    this.strikes++
    this.options.observer.rateLimited('frames', this.auth.principal?.tenantId ?? '')
    const ref = text === undefined ? undefined : requestRef(text)
    if (this.strikes === 1 || ref !== undefined) this.reply(errorFrame(ErrorCode.RATE_LIMITED, `more than ${this.options.limits.frameRate} frames per second; frames are being dropped`, ref))
    if (this.strikes >= this.options.limits.frameStrikes) {
      this.options.log.warn({ action: 'websocket.rate_limited', ...this.identity() }, 'client kept flooding; closing with 4029')
      this.close(CloseCode.RATE_LIMITED, 'RATE_LIMITED')
    }
    return false
  }

  /** Before auth only a valid `ping` or `authenticate` is accepted: anything else, answered already, ends the socket with 4401. */
  private refuseBeforeAuth (what: string): void {
    if (this.state === 'open') return
    this.auth.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, `${what} before authenticate`))
  }

  private enqueue (task: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (this.state !== 'closed') await task()
    }).catch((err: unknown) => {
      this.options.log.error({ action: 'websocket.session.failed', err, ...this.identity() }, 'session task failed')
    })
  }

  /** A first authentication that opened the session is followed by the open-alarm snapshot. */
  private async authenticate (token: string, since: SinceInput | undefined, ref: ClientMessage['id']): Promise<void> {
    const opening = this.state === 'awaiting-auth'
    await this.auth.authenticate(token, since, ref)
    if (opening && this.isOpen()) await this.alarms.opened()
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
      case 'resume': await this.streams.resume(message.stream ?? TENANT_STREAM, message.since, message.id); return
      case 'subscribe':
        if ((message.channel === undefined) === (message.channels === undefined) || (message.channels !== undefined && message.since !== undefined)) {
          this.reply(errorFrame(ErrorCode.INVALID_MESSAGE, 'subscribe takes a channel (with its since) or channels, not both', message.id))
          return
        }
        if (message.channel !== undefined) await this.channels.subscribe(message.channel, message.since, message.id, false)
        else await this.channels.subscribeMany(message.channels ?? [], message.id)
        return
      case 'join-room': await this.channels.subscribe(message.roomId, message.since, message.id, true); return
      case 'unsubscribe': this.channels.unsubscribe(message.channel, message.id, false); return
      case 'leave-room': this.channels.unsubscribe(message.roomId, message.id, true); return
      case 'publish': await this.channels.publish(message.channel, message.event, message.data, message.id); return
      case 'ack': case 'resolve': await this.alarms.act(message.type, message.alarmId, message.note, message.id); return
      case 'received': await this.alarms.received(message.ids); return
      case 'message':
        if (message.roomId === undefined) {
          this.reply(errorFrame(ErrorCode.INVALID_MESSAGE, 'a message needs a roomId: clients publish to rooms they joined, not to the whole tenant', message.id))
          return
        }
        await this.channels.publish(message.roomId, 'message', { message: message.message, roomId: message.roomId }, message.id)
    }
  }
}
