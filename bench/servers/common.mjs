// Shared plumbing of the reference servers: config from the environment, JWT verification with
// fast-jwt (the library tenantcast uses through @fastify/jwt), the POST /api/v1/alarms handler
// and an event envelope shaped like tenantcast's `event` frame, so every server puts a frame of
// about the same size on the wire.
import { randomUUID } from 'node:crypto'
import { createVerifier } from 'fast-jwt'

export const WS_PATH = '/api/v1/events'
export const ALARMS_PATH = '/api/v1/alarms'
const SEVERITIES = new Set(['low', 'medium', 'high', 'critical'])
const MAX_BODY = 65536

export function readConfig () {
  const secret = process.env.JWT_SECRET
  if (!secret) {
    process.stderr.write('bench server: JWT_SECRET is required\n')
    process.exit(1)
  }
  return {
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1',
    secret,
    // Same default as tenantcast's WS_HEARTBEAT_INTERVAL.
    heartbeatMs: Number(process.env.HEARTBEAT_MS ?? 30000)
  }
}

/** Returns (token) => {userId, tenantId}; throws on a bad token. */
export function makeVerify (secret) {
  const verifier = createVerifier({ key: secret, algorithms: ['HS256'] })
  return (token) => {
    const claims = verifier(token)
    if (typeof claims.tenantId !== 'string' || claims.tenantId === '') throw new Error('TENANT_MISSING')
    if (typeof claims.sub !== 'string' || claims.sub === '') throw new Error('USER_MISSING')
    return { userId: claims.sub, tenantId: claims.tenantId }
  }
}

/** Per-tenant offsets and an epoch, like tenantcast's in-memory broker. */
export function makeEventFactory () {
  const epoch = randomUUID()
  const offsets = new Map()
  return (tenantId, alarm) => {
    const offset = (offsets.get(tenantId) ?? 0) + 1
    offsets.set(tenantId, offset)
    return {
      type: 'event',
      id: alarm.id,
      event: 'alarm:created',
      data: alarm,
      stream: 'tenant',
      offset,
      epoch,
      timestamp: new Date().toISOString()
    }
  }
}

function reply (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * node:http request handler: POST /api/v1/alarms with a Bearer token, validated body, then
 * `publish(tenantId, eventObject)` which must deliver synchronously; answers 202.
 */
/** The alarm a validated POST body makes, as every reference server stores and sends it. */
export function alarmOf (body) {
  return {
    id: randomUUID(),
    type: 'alarm',
    message: body.message,
    camera: body.camera,
    severity: body.severity,
    timestamp: typeof body.timestamp === 'string' ? body.timestamp : new Date().toISOString()
  }
}

export function makeRequestHandler ({ verify, publish }) {
  const makeEvent = makeEventFactory()
  return (req, res) => {
    const path = req.url.split('?')[0]
    if (req.method === 'GET' && path === '/health') return reply(res, 200, { status: 'ok' })
    if (req.method !== 'POST' || path !== ALARMS_PATH) return reply(res, 404, { statusCode: 404, code: 'NOT_FOUND' })
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    let principal
    try {
      if (m === null) throw new Error('AUTHENTICATION_REQUIRED')
      principal = verify(m[1])
    } catch (err) {
      req.resume()
      return reply(res, 401, { statusCode: 401, code: 'TOKEN_INVALID', message: err.message })
    }
    const chunks = []
    let size = 0
    req.on('data', (c) => {
      size += c.length
      if (size > MAX_BODY) { reply(res, 413, { statusCode: 413 }); req.destroy() } else chunks.push(c)
    })
    req.on('end', () => {
      if (size > MAX_BODY) return
      let body
      try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { return reply(res, 400, { statusCode: 400, code: 'INVALID_JSON' }) }
      if (body === null || typeof body !== 'object' ||
          typeof body.message !== 'string' || body.message.length < 1 || body.message.length > 500 ||
          typeof body.camera !== 'string' || body.camera.length < 1 || body.camera.length > 200 ||
          !SEVERITIES.has(body.severity)) {
        return reply(res, 400, { statusCode: 400, code: 'VALIDATION_FAILED' })
      }
      const alarm = alarmOf(body)
      const event = makeEvent(principal.tenantId, alarm)
      publish(principal.tenantId, event)
      reply(res, 202, { id: alarm.id, stream: event.stream, offset: event.offset, epoch: event.epoch })
    })
  }
}

/** The benchmark owns this process: exit on SIGTERM/SIGINT, and when the harness's stdin pipe closes. */
export function exitWith (close) {
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    const force = setTimeout(() => process.exit(0), 2000)
    force.unref()
    Promise.resolve().then(close).finally(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  if (!process.stdin.isTTY) {
    process.stdin.on('end', stop)
    process.stdin.on('error', stop)
    process.stdin.resume()
  }
}
