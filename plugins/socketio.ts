import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Server as SocketIoServer, Socket } from 'socket.io'
import { CloseCode } from '../domain/close-codes.js'
import { systemClock } from '../domain/clock.js'
import { AuthFailure, AuthReason, AuthUnavailable } from '../domain/principal.js'
import { ClientMessages } from '../domain/protocol.js'
import { Session } from '../domain/session.js'
import { closeCodeOf, connectErrorMessage, connectionOf, setCloseCode, tokenOf, type Answer } from '../transports/socketio.js'
import { originPolicy } from '../routes/events.js'
import { clientPublishPatterns, sessionLimits } from './config.js'

export const SOCKET_IO_PATH = '/socket.io/'

/**
 * Socket.IO 4 on the same HTTP server (opt-in with SOCKETIO_ENABLED): existing Socket.IO
 * frontends connect unchanged, as connections in the same hub, with the same tenant isolation,
 * limits and metrics. socket.io is imported only when enabled.
 */
async function socketIoPlugin (app: FastifyInstance): Promise<void> {
  if (!app.config.SOCKETIO_ENABLED) return
  const { Server } = await import('socket.io')
  const originAllowed = originPolicy(app.config.ALLOWED_ORIGINS)
  const log = app.log.child({ transport: 'socket.io' })
  const server = app.server
  /** Set when shutdown begins: from then on a handshake is refused, so a client reconnects elsewhere. */
  let closing = false
  const sessions = new Map<Socket, Session>()
  // @fastify/websocket routes every upgrade through Fastify; Socket.IO's upgrades must reach
  // engine.io alone, or both would answer the same socket.
  const others = server.listeners('upgrade') as Array<(req: IncomingMessage, ...rest: unknown[]) => void>
  server.removeAllListeners('upgrade')
  server.on('upgrade', (req: IncomingMessage, ...rest: unknown[]) => {
    if ((req.url ?? '').startsWith(SOCKET_IO_PATH)) return
    for (const listener of others) listener.call(server, req, ...rest)
  })
  const io: SocketIoServer = new Server(server, {
    path: SOCKET_IO_PATH,
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    destroyUpgrade: false,
    maxHttpBufferSize: app.config.MAX_PAYLOAD,
    // The WebSocket route's Origin policy, checked on every handshake before a session
    // exists: a polling handshake is refused with 403, a websocket upgrade with engine.io's 400.
    allowRequest: (req, callback) => {
      // A refused handshake (not a connect_error) keeps socket.io-client retrying with backoff.
      if (closing) {
        callback('SERVER_SHUTTING_DOWN', false)
        return
      }
      const origin = req.headers.origin
      if (origin === undefined || originAllowed(origin, req.headers.host)) {
        callback(null, true)
        return
      }
      log.warn({ action: 'socketio.origin.refused', origin }, 'foreign origin refused')
      callback('ORIGIN_FORBIDDEN', false)
    }
  })

  io.use((socket, next) => {
    // A namespace CONNECT on an engine connection that already exists skips allowRequest.
    if (closing) {
      next(new Error('SERVER_SHUTTING_DOWN'))
      return
    }
    const token = tokenOf(socket)
    if (token === undefined) {
      app.metrics.observer.authFailed(AuthReason.AUTHENTICATION_REQUIRED)
      next(new Error(connectErrorMessage(AuthReason.AUTHENTICATION_REQUIRED)))
      return
    }
    app.auth.verify(token).then(() => { next() }, (err: unknown) => {
      if (err instanceof AuthUnavailable) {
        // Not a verdict on the token, so not a connect_error: socket.io-client never retries a
        // middleware refusal on its own. Closing the engine connection instead makes it see
        // `transport close` and come back with its own backoff and the same token, as the 1013
        // does for WebSocket clients. socket.io drops this socket, since its engine is no
        // longer open when next() runs.
        log.warn({ action: 'socketio.auth.unavailable', code: err.code, retryAfterMs: err.retryAfterMs }, 'token could not be checked; transport closed for a retry')
        socket.conn.close()
        next(new Error(err.code))
        return
      }
      const reason = err instanceof AuthFailure ? err.reason : AuthReason.TOKEN_INVALID
      const error = new Error(connectErrorMessage(reason)) as Error & { data?: unknown }
      error.data = { code: reason }
      next(error)
    })
  })

  const inbound = new Set(Object.keys(ClientMessages))
  io.on('connection', (socket) => {
    const connection = connectionOf(socket)
    const session = new Session({
      clientId: randomUUID(),
      connection,
      hub: app.hub,
      broker: app.broker,
      verify: app.auth.verify,
      refuses: app.auth.refuses,
      publish: async (envelope) => await app.realtime.publish(envelope),
      presence: app.presence,
      limits: sessionLimits(app.config),
      observer: app.metrics.observer,
      authTimeoutMs: app.config.AUTH_TIMEOUT_MS,
      maxChannels: app.config.MAX_CHANNELS,
      clientPublish: clientPublishPatterns(app.config),
      replayLimit: app.config.HISTORY_SIZE,
      replayPaceBytes: Math.floor(app.config.MAX_BUFFERED_BYTES / 2),
      alarms: app.alarms,
      clock: systemClock,
      log
    })
    sessions.set(socket, session)
    app.metrics.connectionOpened()
    // Protocol requests arrive as events named after their type; any other event is a client
    // publish `{channel, data}`, refused unless client publishing allows it. A request emitted
    // with an ack callback (`socket.emit('ack', {alarmId}, (reply) => …)`) gets its reply there
    // (`acked`, `published`, … or the `error`), instead of as an event.
    socket.onAny((name: string, ...args: unknown[]) => {
      const body = args[0]
      const last = args[args.length - 1]
      const answer = typeof last === 'function' && name !== 'received' ? last as Answer : undefined
      const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : {}
      const id = answer === undefined ? fields.id : connection.expect(fields.id, answer)
      const frame = inbound.has(name)
        ? { ...fields, type: name, ...(id === undefined ? {} : { id }) }
        : { type: 'publish', channel: fields.channel, event: name, data: fields.data, id }
      session.receive(JSON.stringify(frame))
    })
    socket.on('disconnect', (reason) => {
      sessions.delete(socket)
      app.metrics.connectionClosed(closeCodeOf(socket, reason))
      session.ended()
    })
    const since = (socket.handshake.auth as { since?: unknown }).since
    session.start(tokenOf(socket), typeof since === 'string' ? since : undefined)
  })

  // Each socket's transport is closed at its own random moment of the jitter window (bounded
  // by WS_SHUTDOWN_TIMEOUT), so that socket.io-client's own backoff brings the tabs back spread
  // out, as the retry hint does for WebSocket clients. io.close() then ends whatever is left.
  app.addHook('preClose', async () => {
    closing = true
    const windowMs = Math.min(app.config.RECONNECT_JITTER_MS, app.config.WS_SHUTDOWN_TIMEOUT)
    await Promise.all([...sessions].map(async ([socket, session]) => await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        session.close(CloseCode.GOING_AWAY, 'SERVER_SHUTDOWN')
        resolve()
      }, Math.floor(Math.random() * (windowMs + 1)))
      socket.once('disconnect', () => {
        clearTimeout(timer)
        resolve()
      })
    })))
    for (const socket of io.of('/').sockets.values()) setCloseCode(socket, CloseCode.GOING_AWAY)
    await new Promise<void>((resolve) => { io.close(() => { resolve() }) })
  })
}

export default fp(socketIoPlugin, {
  name: 'tenantcast-socketio',
  fastify: '5.x',
  dependencies: ['tenantcast-hub', 'tenantcast-auth', 'tenantcast-realtime', 'tenantcast-presence', 'tenantcast-metrics']
})
