import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, HttpErrors } from '../errors.js'
import type { WebSocket } from 'ws'
import { bearerToken } from '../domain/bearer.js'
import { CloseCode } from '../domain/close-codes.js'
import { systemClock } from '../domain/clock.js'
import { Session } from '../domain/session.js'
import { parseSince, resumableAtConnect, type SinceInput } from '../domain/streams.js'
import { UnauthenticatedSockets } from '../domain/unauthenticated.js'
import { clientPublishPatterns, sessionLimits } from '../plugins/config.js'
import { CoalescingConnection } from '../transports/ws.js'

/** The subprotocol the server selects. A client offers it next to `bearer.<jwt>`. */
export const SUBPROTOCOL = 'tenantcast.v1'
const BEARER_PROTOCOL = 'bearer.'

/**
 * The token of an upgrade request, from (in this order) the Authorization header, the
 * `bearer.<jwt>` subprotocol, or the `token` query parameter. Undefined means the client will
 * send an `authenticate` message instead.
 */
export function upgradeToken (request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request.headers.authorization)
  if (bearer !== undefined) return bearer
  const protocols = request.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    for (const protocol of protocols.split(',')) {
      const trimmed = protocol.trim()
      if (trimmed.startsWith(BEARER_PROTOCOL) && trimmed.length > BEARER_PROTOCOL.length) return trimmed.slice(BEARER_PROTOCOL.length)
    }
  }
  const query = request.query as Record<string, unknown>
  return typeof query.token === 'string' && query.token !== '' ? query.token : undefined
}

/**
 * Which Origins may open a socket: a list, `*` (only when set explicitly), or by default the
 * gateway's own origin (so the console page served at `/` works).
 */
export function originPolicy (allowed: string | undefined): (origin: string, host: string | undefined) => boolean {
  if (allowed === undefined) {
    return (origin, host) => {
      try {
        return new URL(origin).host === host
      } catch {
        return false
      }
    }
  }
  const list = allowed.split(',').map((o) => o.trim().replace(/\/$/, '')).filter((o) => o !== '')
  if (list.includes('*')) return () => true
  return (origin) => list.includes(origin)
}

async function eventsRoute (app: FastifyInstance): Promise<void> {
  const alive = new WeakSet<WebSocket>()
  const config = app.config
  const clientPublish = clientPublishPatterns(config)
  const limits = sessionLimits(config)

  // One timer for all sockets: a socket that has not answered the previous ping by the next
  // tick is dead (a vanished laptop, a NAT that dropped the mapping) and is terminated.
  const heartbeat = setInterval(() => {
    for (const socket of app.websocketServer.clients) {
      if (!alive.has(socket)) {
        socket.terminate()
        continue
      }
      alive.delete(socket)
      socket.ping()
    }
  }, app.config.WS_HEARTBEAT_INTERVAL)
  heartbeat.unref()
  app.addHook('onClose', async () => { clearInterval(heartbeat) })

  const originAllowed = originPolicy(config.ALLOWED_ORIGINS)
  // Cross-site WebSocket hijacking: a page on another site can open a socket to us with the
  // victim's cookies or a token it found. Browsers always send Origin on an upgrade, so a
  // foreign one is refused with 403 here, before the upgrade. Non-browser clients send none.
  const checkOrigin = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const origin = request.headers.origin
    if (origin === undefined || originAllowed(origin, request.headers.host)) return
    request.log.warn({ action: 'websocket.origin.refused', origin }, 'foreign origin refused')
    await reply.code(403).send(errorBody(new HttpErrors.ORIGIN_FORBIDDEN(origin)))
  }

  // Sockets that came without a token wait for `authenticate` holding a slot of this cap, so
  // anonymous sockets cannot pile up. request.ip is the peer, or X-Forwarded-For behind a
  // trusted proxy (Fastify's trustProxy: TRUST_PROXY standalone, the host's own when embedded).
  const unauthenticated = new UnauthenticatedSockets(config.MAX_UNAUTHENTICATED_PER_IP, config.MAX_UNAUTHENTICATED)

  app.get(app.config.WS_PATH, { websocket: true, onRequest: checkOrigin }, (socket, request) => {
    // Listeners go on synchronously, before anything awaits, or early frames are lost.
    app.metrics.connectionOpened()
    socket.on('close', (code) => { app.metrics.connectionClosed(code) })
    const token = upgradeToken(request)
    const since = sinceOf(request.query as Record<string, unknown>)
    let release = (): void => {}
    // A malformed `since` refuses the upgrade token unverified, so that socket waits too.
    if (token === undefined || (since !== undefined && typeof parseSince(since, resumableAtConnect) === 'string')) {
      const slot = unauthenticated.admit(request.ip)
      if ('refused' in slot) {
        app.metrics.observer.rateLimited('unauthenticated', '')
        request.log.warn({ action: 'websocket.unauthenticated.limited', reason: slot.refused, remoteAddress: request.ip }, 'too many sockets waiting for authenticate')
        socket.close(CloseCode.RATE_LIMITED, slot.refused)
        return
      }
      release = slot.release
      socket.on('close', release)
    }
    const session = new Session({
      clientId: randomUUID(),
      connection: new CoalescingConnection(socket, config.WS_COALESCE),
      hub: app.hub,
      broker: app.broker,
      // A socket that has shown a valid token no longer waits for one: it leaves the cap.
      verify: async (candidate) => {
        const principal = await app.auth.verify(candidate)
        release()
        return principal
      },
      refuses: app.auth.refuses,
      publish: async (envelope) => await app.realtime.publish(envelope),
      presence: app.presence,
      limits,
      observer: app.metrics.observer,
      authTimeoutMs: app.config.AUTH_TIMEOUT_MS,
      maxChannels: app.config.MAX_CHANNELS,
      clientPublish,
      replayLimit: app.config.HISTORY_SIZE,
      replayPaceBytes: Math.floor(app.config.MAX_BUFFERED_BYTES / 2),
      alarms: app.alarms,
      clock: systemClock,
      log: request.log
    })
    alive.add(socket)
    socket.on('pong', () => { alive.add(socket) })
    socket.on('message', (data, isBinary) => {
      if (isBinary) session.receiveBinary()
      else session.receive(data.toString())
    })
    socket.on('close', () => { session.ended() })
    session.start(token, since)
  })
}

/**
 * The upgrade's `since`: `since=<epoch>:<offset>` for the tenant stream (the original form),
 * or one `since.<stream>=<epoch>:<offset>` per stream (`since.tenant`, `since.user:<id>`).
 * A parameter given twice counts as malformed.
 */
function sinceOf (query: Record<string, unknown>): SinceInput | undefined {
  const map: Record<string, string> = {}
  let named = false
  for (const [key, value] of Object.entries(query)) {
    if (!key.startsWith('since.')) continue
    named = true
    map[key.slice('since.'.length)] = typeof value === 'string' ? value : ''
  }
  const plain = query.since
  // Both forms at once, or one given twice, is malformed: the empty position never parses.
  if (plain !== undefined) return typeof plain === 'string' && !named ? plain : ''
  return named ? map : undefined
}

export default eventsRoute
