import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { systemClock } from '../domain/clock.js'
import type { Connection } from '../domain/hub.js'
import { Session } from '../domain/session.js'

/** The subprotocol the server selects. A client offers it next to `bearer.<jwt>`. */
export const SUBPROTOCOL = 'tenantcast.v1'
const BEARER_PROTOCOL = 'bearer.'

/**
 * The token of an upgrade request, from (in this order) the Authorization header, the
 * `bearer.<jwt>` subprotocol, or the `token` query parameter. Undefined means the client will
 * send an `authenticate` message instead.
 */
export function upgradeToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  const bearer = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(header)
  if (bearer !== null) return bearer[1]
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

/** Adapts a ws socket to the hub's Connection. */
function connectionOf (socket: WebSocket): Connection {
  return {
    send: (data) => { socket.send(data) },
    close: (code, reason) => { socket.close(code, reason) },
    get bufferedAmount () { return socket.bufferedAmount }
  }
}

async function eventsRoute (app: FastifyInstance): Promise<void> {
  const alive = new WeakSet<WebSocket>()
  const patterns = app.config.CLIENT_PUBLISH.split(',').map((p) => p.trim()).filter((p) => p !== '')
  const clientPublish = patterns.length === 0 ? undefined : patterns

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

  app.get(app.config.WS_PATH, { websocket: true }, (socket, request) => {
    // Listeners go on synchronously, before anything awaits, or early frames are lost.
    const session = new Session({
      clientId: randomUUID(),
      connection: connectionOf(socket),
      hub: app.hub,
      broker: app.broker,
      verify: app.auth.verify,
      publish: async (envelope) => await app.realtime.publish(envelope),
      connectionCount: async (tenantId) => await app.presence.connectionCount(tenantId),
      authTimeoutMs: app.config.AUTH_TIMEOUT_MS,
      maxChannels: app.config.MAX_CHANNELS,
      clientPublish,
      replayLimit: app.config.HISTORY_SIZE,
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
    const since = (request.query as Record<string, unknown>).since
    session.start(upgradeToken(request), typeof since === 'string' ? since : undefined)
  })
}

export default eventsRoute
