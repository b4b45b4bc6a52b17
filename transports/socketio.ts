import type { DisconnectReason, Socket } from 'socket.io'
import { bearerToken } from '../domain/bearer.js'
import { CloseCode } from '../domain/close-codes.js'
import type { StoredEvent } from '../domain/events.js'
import type { Connection } from '../domain/hub.js'
import { AuthReason } from '../domain/principal.js'

/**
 * The `connect_error` message for a refused credential, as Socket.IO frontends written against
 * reference 004 expect: AUTHENTICATION_REQUIRED, INVALID_USER, or a message containing "jwt".
 */
export function connectErrorMessage (reason: AuthReason): string {
  if (reason === AuthReason.AUTHENTICATION_REQUIRED) return 'AUTHENTICATION_REQUIRED'
  if (reason === AuthReason.TENANT_MISSING || reason === AuthReason.USER_MISSING) return 'INVALID_USER'
  const words: Partial<Record<AuthReason, string>> = {
    [AuthReason.TOKEN_EXPIRED]: 'jwt expired',
    [AuthReason.TOKEN_MALFORMED]: 'jwt malformed',
    [AuthReason.TOKEN_INVALID]: 'invalid signature: jwt rejected',
    [AuthReason.TOKEN_NOT_YET_VALID]: 'jwt not active'
  }
  return `${words[reason] ?? 'jwt rejected'} (${reason})`
}

/** The token of a handshake: `auth.token` (with or without `Bearer `), else the Authorization header. */
export function tokenOf (socket: Socket): string | undefined {
  const auth = socket.handshake.auth as { token?: unknown }
  if (typeof auth.token === 'string' && auth.token !== '') return bearerToken(auth.token) ?? auth.token
  return bearerToken(socket.handshake.headers.authorization)
}

/**
 * An event's identity and position, the second argument of every event a Socket.IO client gets.
 * An unpositioned event (connection- or role-targeted: `alarm:escalated`, offset 0) carries no
 * `stream`, `offset` or `epoch`, as its WebSocket frame does not: it is never replayed, and a
 * client that resumes from `<epoch>:<offset>` must not take it for a position.
 */
export function positionOf (event: Pick<StoredEvent, 'id' | 'stream' | 'offset' | 'epoch' | 'timestamp' | 'correlationId' | 'from'>): Record<string, unknown> {
  const meta: Record<string, unknown> = { id: event.id }
  if (typeof event.offset === 'number' && event.offset !== 0) Object.assign(meta, { stream: event.stream, offset: event.offset, epoch: event.epoch })
  meta.timestamp = event.timestamp
  if (event.correlationId !== undefined) meta.correlationId = event.correlationId
  if (event.from !== undefined) meta.from = event.from
  return meta
}

/** A Socket.IO acknowledgement callback: `socket.emit('ack', {alarmId}, (reply) => …)`. */
export type Answer = (reply: Record<string, unknown>) => void

/** A Socket.IO connection: the hub's Connection, plus the requests that wait for their reply in an ack callback. */
export interface SocketIoConnection extends Connection {
  /**
   * Registers an ack callback for a request and returns the id to send it with: the client's
   * own `id` when it gave one not already waiting, else one of ours. The first frame that
   * carries it as `ref` (the reply, or its `error`) goes to the callback instead of being
   * emitted; later frames with that ref (a subscribe's `recovered`) are emitted as usual.
   * `received` has no reply, so its callback is never registered (nor called).
   */
  expect: (id: unknown, answer: Answer) => string | number
}

/**
 * Whether a close is meant to be final: a revoked token, a forbidden principal, or a frame too
 * large (the client would send it again, as the SDK knows and does not reconnect). Only those
 * go out as Socket.IO's DISCONNECT packet, after which socket.io-client never reconnects (its
 * reason is `io server disconnect`). Every other close is one the client should retry.
 */
export function isFinalClose (code: number, reason: string): boolean {
  return code === CloseCode.FORBIDDEN || code === CloseCode.TOO_LARGE || (code === CloseCode.UNAUTHORIZED && reason === AuthReason.TOKEN_REVOKED)
}

/**
 * How long, in ms, a rate-limited socket's transport stays open (and silent) before it is
 * closed: a random time in [2500, 5000), the SDK's own delay after a 4029 with its default
 * policy. socket.io-client starts its backoff again from its first delay (about 1 s) after every
 * close of a connection that had opened, so without this a limit that still holds (a user at
 * its connection cap) would be met again every second, for ever.
 */
export function rateLimitCooldownMs (random: () => number = Math.random): number {
  return Math.floor(2500 + random() * 2500)
}

/** engine.io's side of a socket, as far as we read it: its write queue and its events. */
interface EngineSocket {
  writeBuffer: Array<{ data?: unknown }>
  readyState: string
  transport: { socket?: { bufferedAmount?: number } }
  close: (discard?: boolean) => void
  on: (event: string, fn: (packet: { data?: unknown }) => void) => void
  once: (event: string, fn: () => void) => void
  off: (event: string, fn: (...args: never[]) => void) => void
}

/** Most ack callbacks one socket keeps waiting for their reply. */
export const MAX_WAITING_ANSWERS = 1000

/** How long a graceful transport close may wait for a client that stopped reading. */
const CLOSE_GRACE_MS = 2000

/**
 * Bytes engine.io holds for a socket in its write queue, kept as a running count: a packet
 * adds its size when created, and a flush (the queue handed to the transport) empties it. On
 * polling this queue is everything a client that stopped polling has not fetched; on websocket
 * it is what waits while the previous batch is written.
 */
function queuedBytes (socket: Socket, conn: EngineSocket): () => number {
  let bytes = 0
  const created = (packet: { data?: unknown }): void => {
    const data = packet.data
    if (typeof data === 'string') bytes += Buffer.byteLength(data)
    else if (Buffer.isBuffer(data)) bytes += data.length
  }
  const flushed = (): void => { bytes = 0 }
  conn.on('packetCreate', created)
  conn.on('flush', flushed)
  // One engine connection can carry socket after socket (leave and rejoin the namespace), so
  // each one takes its listeners with it.
  socket.once('disconnect', () => {
    conn.off('packetCreate', created)
    conn.off('flush', flushed)
  })
  return () => bytes
}

/**
 * A Socket.IO socket behind the hub's Connection interface. Protocol frames become Socket.IO
 * events: an `event` frame is emitted under its catalogue name with the payload as data and
 * its position as a second argument; the first `authenticated` becomes reference 004's
 * `join:company`, and a token refresh's answers `authenticated`, since those frontends treat
 * `join:company` as a new session.
 */
export function connectionOf (socket: Socket): SocketIoConnection {
  const conn = socket.conn as unknown as EngineSocket
  const queued = queuedBytes(socket, conn)
  let joined = false
  /** Ack callbacks by the id their request went out with. */
  const answers = new Map<string | number, Answer>()
  let generated = 0
  socket.once('disconnect', () => { answers.clear() })
  return {
    expect (id, answer) {
      const own = (typeof id === 'string' && id.length <= 128) || (typeof id === 'number' && Number.isFinite(id)) ? id : undefined
      const ref = own !== undefined && !answers.has(own) ? own : `sio:${++generated}`
      // A request the rate limiter dropped is never answered: the oldest waiting callbacks
      // give way, so a long-lived socket does not collect them.
      if (answers.size >= MAX_WAITING_ANSWERS) answers.delete(answers.keys().next().value as string | number)
      answers.set(ref, answer)
      return ref
    },
    send (frame) {
      const message = JSON.parse(frame) as { type: string, ref?: string | number, [key: string]: unknown }
      const answer = message.ref === undefined ? undefined : answers.get(message.ref)
      if (answer !== undefined) {
        answers.delete(message.ref as string | number)
        answer(message)
        return
      }
      switch (message.type) {
        case 'connected': return
        case 'authenticated':
          if (joined) break
          joined = true
          socket.emit('join:company', { success: true, companyId: message.tenantId, connectionCount: message.connectionCount, userId: message.userId, position: message.position })
          return
        case 'event':
          socket.emit(message.event as string, message.data, positionOf(message as unknown as StoredEvent))
          return
        case 'error':
          socket.emit('tenantcast:error', { code: message.code, message: message.message, ref: message.ref })
          return
      }
      const { type, ...rest } = message
      socket.emit(type, rest)
    },
    sendEvent (event: StoredEvent) {
      socket.emit(event.event, event.data, positionOf(event))
    },
    /**
     * engine.io hands its write buffer to the transport only once the previous batch was
     * written; waiting for that (`drain`) keeps a replay to about one batch in memory.
     */
    async drained () {
      if (conn.writeBuffer.length === 0 || conn.readyState !== 'open') return
      await new Promise<void>((resolve) => {
        const done = (): void => {
          conn.off('drain', done)
          conn.off('close', done)
          resolve()
        }
        conn.once('drain', done)
        conn.once('close', done)
      })
    },
    close (code, reason) {
      setCloseCode(socket, code)
      socket.emit('tenantcast:close', { code, reason })
      if (isFinalClose(code, reason)) {
        socket.disconnect(true)
        return
      }
      if (code === CloseCode.RATE_LIMITED) {
        // The session has ended, so nothing more is read or sent; the client only waits.
        socket.offAny()
        const cooldown = setTimeout(() => { closeTransport(conn, code) }, rateLimitCooldownMs())
        cooldown.unref()
        conn.once('close', () => { clearTimeout(cooldown) })
        return
      }
      closeTransport(conn, code)
    },
    get bufferedAmount () {
      // engine.io's queue (both transports) plus what the websocket transport handed to ws.
      return queued() + (conn.transport.socket?.bufferedAmount ?? 0)
    }
  }
}

/**
 * Closes the transport, not the namespace: socket.io-client then reports `transport close` and
 * reconnects with its own backoff, where a DISCONNECT packet would strand it. engine.io sends
 * what it queued (the `tenantcast:close`) before it closes, except for a slow consumer, whose
 * queue is what made it slow: that one is dropped with the socket.
 */
function closeTransport (conn: EngineSocket, code: number): void {
  conn.close(code === CloseCode.SLOW_CONSUMER)
  // A graceful close waits for the queue to drain, which a client that stopped reading never
  // does; without this its socket would linger until the ping timeout, after the hub let go.
  const force = setTimeout(() => { conn.close(true) }, CLOSE_GRACE_MS)
  force.unref()
  conn.once('close', () => { clearTimeout(force) })
}

/** What a socket's `data` holds for us: the close code the server chose, until `disconnect` reports it. */
interface CloseData { closeCode?: number }

/** Records the code the server closes a socket with; the first one set wins. */
export function setCloseCode (socket: Socket, code: number): void {
  const data = socket.data as CloseData
  data.closeCode ??= code
}

/** Socket.IO's disconnect reasons as the WebSocket close code a ws socket would have reported. */
const REASON_CODES: Record<DisconnectReason, number> = {
  'client namespace disconnect': CloseCode.NORMAL,
  'server namespace disconnect': CloseCode.NORMAL,
  'server shutting down': CloseCode.GOING_AWAY,
  'forced server close': CloseCode.GOING_AWAY,
  'parse error': 1002,
  'transport close': 1006,
  'transport error': 1006,
  'ping timeout': 1006,
  'forced close': 1006
}

/** The close code of a disconnected socket, for metrics: the server's own when it chose one. */
export function closeCodeOf (socket: Socket, reason: DisconnectReason): number {
  return (socket.data as CloseData).closeCode ?? REASON_CODES[reason] ?? 1006
}
