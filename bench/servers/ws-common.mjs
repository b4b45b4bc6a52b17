// The three plain-`ws` reference servers differ only in how they broadcast. Everything else
// (upgrade with ?token=, connected/authenticated frames, tenant index, heartbeat) is here and
// mirrors tenantcast's behaviour.
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { WebSocketServer } from 'ws'
import { WS_PATH, exitWith, makeRequestHandler, makeVerify, readConfig } from './common.mjs'

/**
 * @param {(sockets: Set<import('ws').WebSocket>, event: object) => void} broadcast
 */
export function startWsReference (name, broadcast) {
  const config = readConfig()
  const verify = makeVerify(config.secret)
  const tenants = new Map() // tenantId -> Set<WebSocket>

  const publish = (tenantId, event) => {
    const sockets = tenants.get(tenantId)
    if (sockets !== undefined && sockets.size > 0) broadcast(sockets, event)
  }

  const server = http.createServer(makeRequestHandler({ verify, publish }))
  server.keepAliveTimeout = 60000
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536, clientTracking: true })

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://x')
    let principal
    try {
      if (url.pathname !== WS_PATH) throw new Error('NOT_FOUND')
      principal = verify(url.searchParams.get('token') ?? '')
    } catch {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const { tenantId, userId } = principal
      let set = tenants.get(tenantId)
      if (set === undefined) tenants.set(tenantId, set = new Set())
      set.add(ws)
      alive.add(ws)
      ws.on('pong', () => { alive.add(ws) })
      ws.on('message', () => {})
      ws.on('error', () => {})
      ws.on('close', () => {
        set.delete(ws)
        if (set.size === 0 && tenants.get(tenantId) === set) tenants.delete(tenantId)
      })
      ws.send(JSON.stringify({ type: 'connected', clientId: randomUUID() }))
      ws.send(JSON.stringify({ type: 'authenticated', userId, tenantId, connectionCount: set.size }))
    })
  })

  // Same algorithm as tenantcast: one timer, terminate sockets that missed the previous pong.
  const alive = new WeakSet()
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) { ws.terminate(); continue }
      alive.delete(ws)
      ws.ping()
    }
  }, config.heartbeatMs)
  heartbeat.unref()

  server.listen(config.port, config.host)
  exitWith(() => new Promise((resolve) => {
    clearInterval(heartbeat)
    for (const ws of wss.clients) ws.terminate()
    server.close(() => resolve())
  }))
  return { name, server, wss }
}
