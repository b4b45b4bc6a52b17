import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fastifyWebsocket from '@fastify/websocket'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { CloseCode } from './domain/close-codes.js'
import { errorBody, HttpErrors } from './errors.js'
import { redactUrl } from './domain/redact.js'
import { describeErrors } from './domain/validation.js'
import authPlugin from './plugins/auth.js'
import brokerPlugin from './plugins/broker.js'
import alarmsPlugin from './plugins/alarms.js'
import busPlugin from './plugins/bus.js'
import configPlugin, { trustedProxies, type Config, type ConfigOptions } from './plugins/config.js'
export type { Config }
import fanoutPlugin from './plugins/fanout.js'
import hubPlugin from './plugins/hub.js'
import idempotencyPlugin from './plugins/idempotency.js'
import killSwitchPlugin from './plugins/kill-switch.js'
import limitsPlugin from './plugins/limits.js'
import metricsPlugin from './plugins/metrics.js'
import presencePlugin from './plugins/presence.js'
import realtimePlugin from './plugins/realtime.js'
import redisPlugin from './plugins/redis.js'
import socketIoPlugin from './plugins/socketio.js'
import adminRoutes from './routes/admin.js'
import alarmsRoute from './routes/alarms.js'
import consoleRoutes from './routes/console.js'
import historyRoute from './routes/history.js'
import presenceRoutes from './routes/presence.js'
import publishRoute from './routes/publish.js'
import eventsRoute, { SUBPROTOCOL } from './routes/events.js'
import healthRoutes from './routes/health.js'
import metricsRoute from './routes/metrics.js'

export type { Realtime } from './plugins/realtime.js'
export { CloseCode } from './domain/close-codes.js'
export type TenantcastOptions = ConfigOptions

/** Logs a request without any credential: the query-string token is redacted, headers are not logged. */
export function serializeRequest (request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, url: redactUrl(request.url), remoteAddress: request.ip }
}

/**
 * The gateway, encapsulated: its config, auth, bus and hub decorators stay inside, so a host
 * app's own @fastify/jwt or @fastify/env never collide with ours. Boot order is dependency order.
 */
async function gateway (app: FastifyInstance, opts: TenantcastOptions): Promise<void> {
  app.addHook('onRoute', (route) => {
    route.logSerializers = { ...route.logSerializers, req: serializeRequest }
  })
  app.setValidatorCompiler(TypeBoxValidatorCompiler)
  app.setErrorHandler(errorHandler)

  await app.register(configPlugin, opts)
  await app.register(authPlugin)
  await app.register(metricsPlugin)
  await app.register(busPlugin)
  await app.register(redisPlugin)
  await app.register(brokerPlugin)
  await app.register(hubPlugin)
  await app.register(presencePlugin)
  await app.register(killSwitchPlugin)
  await app.register(fanoutPlugin)
  await app.register(realtimePlugin)
  await app.register(idempotencyPlugin)
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'tenantcast', description: 'Multi-tenant realtime event gateway: REST in, WebSocket out. The socket protocol is in docs/PROTOCOL.md.', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }]
    }
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' })

  const config = app.config
  await app.register(fastifyWebsocket, {
    options: {
      maxPayload: config.MAX_PAYLOAD,
      // Select our protocol and never the `bearer.<jwt>` entry: echoing it would put the token
      // in the response headers.
      handleProtocols: (protocols) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false
    },
    // The plugin's default closes with 1005 (no status); clients must see 1001 to reconnect.
    // Each socket gets its own random reconnect delay, so that thousands of tabs do not come
    // back in the same millisecond.
    preClose (done) {
      const server = this.websocketServer
      for (const socket of server.clients) socket.close(CloseCode.GOING_AWAY, shutdownReason(config.RECONNECT_JITTER_MS))
      const deadline = setTimeout(() => {
        for (const socket of server.clients) socket.terminate()
      }, config.WS_SHUTDOWN_TIMEOUT)
      deadline.unref()
      server.close(() => {
        clearTimeout(deadline)
        done()
      })
    },
    // ws has already closed the socket (1009, 1002) when it reports a protocol error; only log.
    errorHandler (error, _socket, request) {
      request.log.warn({ action: 'websocket.protocol.error', code: (error as NodeJS.ErrnoException).code }, error.message)
    }
  })
  // After @fastify/websocket: its onRequest hook marks an upgrade request, so that when load
  // shedding answers one with 503 the plugin's onResponse hook destroys the raw socket. Shed
  // first, the upgrade's socket stayed open after the 503, and held up the server's close.
  await app.register(limitsPlugin)
  await app.register(alarmsPlugin)

  await app.register(healthRoutes)
  await app.register(alarmsRoute)
  await app.register(publishRoute)
  await app.register(presenceRoutes)
  await app.register(adminRoutes)
  await app.register(historyRoute)
  await app.register(eventsRoute)
  await app.register(metricsRoute)
  await app.register(consoleRoutes, opts)
  await app.register(socketIoPlugin)
}

/** `SERVER_SHUTDOWN retry=<ms>`: the close reason of 1001, with this socket's reconnect delay. */
export function shutdownReason (jitterMs: number): string {
  return `SERVER_SHUTDOWN retry=${Math.floor(Math.random() * (jitterMs + 1))}`
}

function errorHandler (error: FastifyError, request: FastifyRequest, reply: import('fastify').FastifyReply): void {
  if (error.validation !== undefined) {
    const message = describeErrors(error.validation, `/${error.validationContext ?? 'body'}`)
    void reply.code(400).send(errorBody(new HttpErrors.VALIDATION_FAILED(message)))
    return
  }
  const statusCode = error.statusCode ?? 500
  if (statusCode >= 500) {
    if (statusCode === 503) {
      const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs
      void reply.header('Retry-After', typeof retryAfterMs === 'number' ? String(Math.max(1, Math.ceil(retryAfterMs / 1000))) : '1')
    }
    request.log.error({ action: 'request.failed', err: error }, 'request failed')
  }
  const known = statusCode < 500 || error.code === 'BROKER_UNAVAILABLE' || error.code === 'AUTH_UNAVAILABLE'
  const body = known
    ? errorBody({ statusCode, code: error.code ?? 'BAD_REQUEST', message: error.message })
    : errorBody(new HttpErrors.INTERNAL_ERROR())
  void reply.code(body.statusCode).send(body)
}

/**
 * tenantcast as a Fastify plugin. A host app registers it and gets `app.realtime`; the
 * standalone server (server.ts) is a thin wrapper around the same plugin.
 */
/** What the standalone server and operators need from the gateway besides `realtime`. */
export interface TenantcastHandle {
  config: Config
  /** Signs a token with the gateway's secret: the dev token, the CLI, tests. */
  signToken (claims: Record<string, unknown>, options?: { expiresIn?: number | string }): string
}

declare module 'fastify' {
  interface FastifyInstance {
    tenantcast: TenantcastHandle
  }
}

/**
 * tenantcast as a Fastify plugin. A host app registers it and gets `app.realtime`; the
 * standalone server (server.ts) is a thin wrapper around the same plugin.
 */
async function tenantcast (app: FastifyInstance, opts: TenantcastOptions): Promise<void> {
  let exposed: { realtime: FastifyInstance['realtime'], handle: TenantcastHandle } | undefined
  await app.register(async (inner) => {
    await gateway(inner, opts)
    exposed = { realtime: inner.realtime, handle: { config: inner.config, signToken: inner.auth.sign } }
  })
  if (exposed === undefined) throw new Error('tenantcast failed to load')
  app.decorate('realtime', exposed.realtime)
  app.decorate('tenantcast', exposed.handle)
}

export default fp(tenantcast, { name: 'tenantcast', fastify: '5.x' })

/**
 * The standalone server's Fastify instance: redacting logger, a 404 that never echoes the
 * query string into a log line, and the gateway registered. server.ts listens on it.
 */
export async function createStandalone (opts: TenantcastOptions & { logStream?: NodeJS.WritableStream } = {}): Promise<FastifyInstance> {
  // Fastify's per-request lines are off unless LOG_REQUESTS is set; the setting is only known
  // once the config plugin has loaded, so the switch reads it late.
  let logRequests = false
  const app = Fastify({
    logController: new LogController({ disableRequestLogging: () => !logRequests }),
    logger: {
      level: opts.config?.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
      serializers: { req: serializeRequest },
      // Headers are not logged by default; these paths keep it so if a serializer adds them.
      redact: ['req.headers.authorization', 'req.headers["sec-websocket-protocol"]', 'req.query.token'],
      ...(opts.logStream === undefined ? {} : { stream: opts.logStream })
    },
    // A load balancer's request id correlates its logs with ours.
    requestIdHeader: 'x-request-id',
    // X-Forwarded-For names the client only when the peer is a configured proxy: anyone else
    // could send the header and pick the address that per-IP caps and logs see.
    trustProxy: trustedProxies(opts.config?.TRUST_PROXY ?? process.env.TRUST_PROXY)
  })
  // Fastify's default 404 logs the raw URL, query-string token included.
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    void reply.code(404).send(errorBody(new HttpErrors.NOT_FOUND(`${request.method} ${path}`)))
  })
  await app.register(tenantcast, { ...(opts.config === undefined ? {} : { config: opts.config }), console: opts.console ?? true })
  await app.ready()
  app.log.level = app.tenantcast.config.LOG_LEVEL
  logRequests = app.tenantcast.config.LOG_REQUESTS
  return app
}
