// Reference 5: what a team would write with Fastify + @fastify/websocket (the stack tenantcast is
// built on) and nothing of tenantcast's: the JWT verified with fast-jwt (as @fastify/jwt does),
// the body validated by a Fastify JSON schema, the event serialized once per broadcast and sent
// with `ws.send(str)` to each of the tenant's sockets, 202. Fastify's logger is off (its
// default). The WebSocket route refuses a bad token with HTTP 401 before the upgrade.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { ALARMS_PATH, WS_PATH, alarmOf, exitWith, makeEventFactory, makeVerify, readConfig } from './common.mjs'

const config = readConfig()
const verify = makeVerify(config.secret)
const makeEvent = makeEventFactory()
const tenants = new Map() // tenantId -> Set<WebSocket>

const app = Fastify({ logger: false, keepAliveTimeout: 60000, bodyLimit: 65536 })
app.decorateRequest('principal', null)
await app.register(websocket, { options: { perMessageDeflate: false, maxPayload: 65536, clientTracking: true } })

const unauthorized = (reply, err) => reply.code(401).send({ statusCode: 401, code: 'TOKEN_INVALID', message: err.message })

app.get('/health', async () => ({ status: 'ok' }))

app.get(WS_PATH, {
  websocket: true,
  preValidation: async (request, reply) => {
    try {
      request.principal = verify(request.query.token ?? '')
    } catch (err) {
      return unauthorized(reply, err)
    }
  }
}, (socket, request) => {
  const { tenantId, userId } = request.principal
  let set = tenants.get(tenantId)
  if (set === undefined) tenants.set(tenantId, set = new Set())
  set.add(socket)
  alive.add(socket)
  socket.on('pong', () => { alive.add(socket) })
  socket.on('error', () => {})
  socket.on('close', () => {
    set.delete(socket)
    if (set.size === 0 && tenants.get(tenantId) === set) tenants.delete(tenantId)
  })
  socket.send(JSON.stringify({ type: 'connected', clientId: randomUUID() }))
  socket.send(JSON.stringify({ type: 'authenticated', userId, tenantId, connectionCount: set.size }))
})

app.post(ALARMS_PATH, {
  schema: {
    body: {
      type: 'object',
      required: ['message', 'camera', 'severity'],
      properties: {
        message: { type: 'string', minLength: 1, maxLength: 500 },
        camera: { type: 'string', minLength: 1, maxLength: 200 },
        severity: { enum: ['low', 'medium', 'high', 'critical'] },
        timestamp: { type: 'string' }
      }
    }
  },
  onRequest: async (request, reply) => {
    const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')
    try {
      if (m === null) throw new Error('AUTHENTICATION_REQUIRED')
      request.principal = verify(m[1])
    } catch (err) {
      return unauthorized(reply, err)
    }
  }
}, async (request, reply) => {
  const alarm = alarmOf(request.body)
  const { tenantId } = request.principal
  const event = makeEvent(tenantId, alarm)
  const sockets = tenants.get(tenantId)
  if (sockets !== undefined) {
    const text = JSON.stringify(event)
    for (const ws of sockets) if (ws.readyState === 1) ws.send(text)
  }
  return reply.code(202).send({ id: alarm.id, stream: event.stream, offset: event.offset, epoch: event.epoch })
})

// Same heartbeat as the other references: one timer, terminate sockets that missed the previous pong.
const alive = new WeakSet()
const heartbeat = setInterval(() => {
  for (const ws of app.websocketServer.clients) {
    if (!alive.has(ws)) { ws.terminate(); continue }
    alive.delete(ws)
    ws.ping()
  }
}, config.heartbeatMs)
heartbeat.unref()

await app.listen({ port: config.port, host: config.host })
exitWith(async () => {
  clearInterval(heartbeat)
  for (const ws of app.websocketServer.clients) ws.terminate()
  await app.close()
})
