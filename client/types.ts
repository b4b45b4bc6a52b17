import type { ErrorCode as ServerErrorCode } from '../domain/error-codes.js'
import type { EventCatalogue, EventName } from '../domain/events.js'
import type { ClientMessage } from '../domain/protocol.js'

/**
 * The wire types the client sees. Types only: importing them from the server's domain keeps
 * one source of truth and adds nothing to the browser bundle.
 */
export type { EventCatalogue, EventName, ClientMessage, ServerErrorCode }

/** A place in a stream. On the wire it is also written `<epoch>:<offset>`. */
export interface Position {
  epoch: string
  offset: number
}

export type RequestId = string | number

/** `connecting` until the first `authenticated`, `open` while authenticated, `reconnecting` between sockets, `closed` for good. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface EventFrame<Data = unknown, Name extends string = string> {
  type: 'event'
  id: string
  event: Name
  data: Data
  /**
   * The stream the offset counts in: `tenant`, `user:<id>` or `channel:<name>`. Absent (with
   * `offset` and `epoch`) on an event addressed to this connection alone: it is never replayed.
   */
  stream?: string
  offset?: number
  epoch?: string
  timestamp: string
  correlationId?: string
  from?: { clientId: string, userId: string }
  /**
   * True on an event sent from history (a resume after a reconnect, a channel rejoin, a heal),
   * not as it happened: a dashboard shows it without an alert. Absent on live events.
   */
  replayed?: true
}

/** An event frame whose data is typed from the server's event catalogue. */
export type CatalogueEventFrame<K extends EventName> = EventFrame<EventCatalogue[K], K>

export interface ConnectedFrame { type: 'connected', clientId: string }

export interface AuthenticatedFrame {
  type: 'authenticated'
  userId: string
  tenantId: string
  clientId: string
  connectionCount: number
  /** The tenant stream's position. */
  position: Position
  /** One position per stream attached at auth: `tenant` and `user:<id>`. */
  positions?: Record<string, Position>
  ref?: RequestId
}

export type RecoveredFrame = {
  type: 'recovered'
  stream: string
  epoch: string
  ref?: RequestId
} & (
  | { recovered: true, from: number, to: number, count: number }
  | { recovered: false, oldest: Position, latest: Position }
)

export interface SubscribedFrame { type: 'subscribed', channel: string, position?: Position, ref?: RequestId }
/** The answer to `unsubscribe`; or, with a `reason` (an error code) and no ref, the server removed the connection from the channel. */
export interface UnsubscribedFrame { type: 'unsubscribed', channel: string, reason?: ServerErrorCode, ref?: RequestId }
export interface RoomJoinedFrame { type: 'room-joined', roomId: string, position?: Position, ref?: RequestId }
export interface RoomLeftFrame { type: 'room-left', roomId: string, ref?: RequestId }
export interface PresenceFrame { type: 'user-joined' | 'user-left', channel: string, userId: string, clientId: string }
export interface PublishedFrame { type: 'published', id: string, stream: string, offset: number, epoch: string, ref?: RequestId }
export interface PongFrame { type: 'pong', ref?: RequestId }
/** `channel` names the channel an error is about, in the answers to a `subscribe {channels}`. */
export interface ErrorFrame { type: 'error', code: ServerErrorCode, message: string, channel?: string, ref?: RequestId }
/** The answer to `ack` or `resolve`: the alarm's state, and whether this request changed it. */
export interface AlarmActionFrame { type: 'acked' | 'resolved', alarmId: string, changed: boolean, alarm: Record<string, unknown>, ref?: RequestId }
/**
 * An unresolved ackable alarm as `client.openAlarms` holds it: the server's alarm record
 * (`open-alarms`, `GET /api/v1/alarms`), kept current from live `alarm:*` events.
 */
export interface OpenAlarm {
  id: string
  status: 'open' | 'acknowledged'
  /** The `alarm:created` payload. */
  alarm: EventCatalogue['alarm:created']
  /** When the gateway accepted it, ISO 8601. */
  createdAt: string
  acknowledgedBy?: string
  acknowledgedAt?: string
  note?: string
  /** Escalation levels that fired, in firing order. */
  escalations: number[]
}
/** One page of the tenant's unresolved ackable alarms, sent after `authenticated`; `complete` on the last. */
export interface OpenAlarmsFrame { type: 'open-alarms', alarms: OpenAlarm[], complete: boolean }

export type ServerFrame =
  | ConnectedFrame | AuthenticatedFrame | EventFrame | RecoveredFrame | SubscribedFrame
  | UnsubscribedFrame | RoomJoinedFrame | RoomLeftFrame | PresenceFrame | PublishedFrame
  | PongFrame | ErrorFrame | AlarmActionFrame | OpenAlarmsFrame

/** The reply each request type resolves with. */
export interface Replies {
  ping: PongFrame
  authenticate: AuthenticatedFrame
  resume: RecoveredFrame
  subscribe: SubscribedFrame
  unsubscribe: UnsubscribedFrame
  'join-room': RoomJoinedFrame
  'leave-room': RoomLeftFrame
  publish: PublishedFrame
  message: PublishedFrame
  ack: AlarmActionFrame
  resolve: AlarmActionFrame
  /** `received` has no reply: send it, do not request it. */
  received: never
}

/** A request without its `id`: the client assigns one and matches the reply by `ref`. */
export type Request = ClientMessage extends infer M ? M extends { type: string } ? Omit<M, 'id'> : never : never

/** `recovered: false`: the stream could not be replayed from the client's position; refetch. */
export interface Gap {
  stream: string
  /** The channel, for a channel stream. */
  channel?: string
  /** The position the client asked to resume from. */
  since: Position | undefined
  /** The oldest and latest positions the server still holds. */
  oldest: Position
  latest: Position
  /**
   * True when the stream is in a new epoch (the broker lost its history, e.g. a memory broker
   * restarted): the client now replays the new epoch from `oldest` to `latest` (events marked
   * `replayed`), then live ones follow. False: it continues from `latest`, nothing is replayed.
   */
  replaying: boolean
}

/**
 * A jump in a stream's offsets was healed on the live connection: the events `from`..`to`
 * (offsets) were missing, were fetched with `resume`, and reached the handlers in order.
 */
export interface Healed {
  stream: string
  from: number
  to: number
}

/** A socket closed. `willReconnect` says what the client does next, and after how long. */
export interface CloseInfo {
  code: number
  reason: string
  willReconnect: boolean
  /** Milliseconds until the next attempt, when reconnecting. */
  delay?: number
  /** Reconnect attempts since the last connection that stayed up `minUptime`, this one included. */
  attempt?: number
}

/** Handlers for the client's own events (as opposed to the server's named events). */
export interface LifecycleEvents {
  /** The connection state changed. */
  state: (state: ConnectionState, previous: ConnectionState) => void
  /** Every successful authentication on a new socket: the first one and every reconnect. */
  authenticated: (frame: AuthenticatedFrame) => void
  /** Every event frame, whatever its name, after duplicates are dropped. */
  event: (frame: EventFrame) => void
  /**
   * A replay finished (`recovered: true`) or could not be done (`recovered: false`): the
   * stream's caught-up signal. Once every stream resumed on a new socket has sent it, the state is `open`.
   */
  recovered: (frame: RecoveredFrame) => void
  /** A stream could not be resumed: events may have been missed, so refetch. */
  gap: (gap: Gap) => void
  /** Missing events of a stream were fetched on the live connection and delivered in order. */
  healed: (healed: Healed) => void
  /** Someone joined or left a channel this client is in. */
  presence: (frame: PresenceFrame) => void
  /** A socket closed. */
  close: (info: CloseInfo) => void
  /**
   * Something failed that no request is waiting for: an unsolicited `error` frame, a failed
   * token refresh, a `getToken` that threw, a handler that threw.
   */
  error: (error: TenantcastError) => void
  /** `client.openAlarms` changed: the unresolved ackable alarms, newest first. */
  alarms: (alarms: OpenAlarm[]) => void
  /** Every frame from the server, parsed, before the client acts on it. */
  frame: (frame: ServerFrame) => void
}

export type LifecycleEventName = keyof LifecycleEvents

/** A handler for a catalogued event: `data` is typed from the catalogue. */
export type CatalogueHandler<K extends EventName> = (data: EventCatalogue[K], frame: CatalogueEventFrame<K>) => void

/** An error with a stable code: a server `error` frame's code, or one of the client's own. */
export class TenantcastError extends Error {
  override name = 'TenantcastError'
  constructor (readonly code: TenantcastErrorCode, message: string, readonly ref?: RequestId, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The client's own error codes (server codes are listed in the README). */
export const ClientErrorCode = {
  /** A request was made while the client was not open. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** The socket closed before the reply arrived. */
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  /** `getToken` threw or returned nothing usable. */
  TOKEN_UNAVAILABLE: 'TOKEN_UNAVAILABLE',
  /** A handler registered with `on` threw. */
  HANDLER_FAILED: 'HANDLER_FAILED',
  /** The server sent something that is not a JSON object with a type. */
  INVALID_SERVER_FRAME: 'INVALID_SERVER_FRAME',
  /** No reply came within the request's timeout (`requestTimeout`, or the request's own). */
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  /** The request's AbortSignal aborted it. */
  REQUEST_ABORTED: 'REQUEST_ABORTED'
} as const

/** Every code a TenantcastError carries: the client's own, or an `error` frame's (the README lists both). */
export type TenantcastErrorCode = ServerErrorCode | (typeof ClientErrorCode)[keyof typeof ClientErrorCode]
