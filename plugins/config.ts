import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import fastifyEnv from '@fastify/env'
import fp from 'fastify-plugin'
import { Type, type Static } from 'typebox'
import type { SessionLimits } from '../domain/session.js'

/**
 * Every setting, its type, unit and default. Values come from the environment, overridden by
 * the `config` option when tenantcast is registered as a plugin.
 */
const JWT_SECRET_MIN_LENGTH = 32
const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512']

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  /**
   * Fastify's own two lines per request ("incoming request", "request completed"). Off by
   * default: at `info` they cost connection setup and ingestion a third of their rate, and the
   * `action` lines already say what happened.
   */
  LOG_REQUESTS: Type.Boolean({ default: false }),
  /**
   * HMAC secret for HS* tokens, at least 32 characters. In production one of it,
   * JWT_PUBLIC_KEY or JWT_JWKS_URL is required; generated in development.
   */
  JWT_SECRET: Type.Optional(Type.String({ minLength: JWT_SECRET_MIN_LENGTH })),
  /** PEM public key (SPKI) for RS*, PS* or ES* tokens. `\n` escapes are accepted. */
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** A JWKS URL for RS*, PS* or ES* tokens; keys are cached and refetched on an unknown kid. */
  JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** Minimum ms between two JWKS fetches (unknown kids, stale keys, failed attempts). */
  JWT_JWKS_COOLDOWN_MS: Type.Integer({ minimum: 0, default: 30000 }),
  /** Ms after a JWKS fetch past which its keys are refetched before use: a withdrawn key stops working by then. */
  JWT_JWKS_MAX_AGE_MS: Type.Integer({ minimum: 1, default: 600000 }),
  /**
   * Longest ms a token waits for the JWKS (a fetch in flight, or the next fetch the cooldown
   * allows) before it is told to retry (1013 / 503). Below AUTH_TIMEOUT_MS.
   */
  JWT_JWKS_WAIT_MS: Type.Integer({ minimum: 0, default: 5000 }),
  /**
   * The only algorithms a token may use, comma-separated. Default HS256 with a secret, RS256
   * and ES256 with a public key or JWKS. HMAC and public-key algorithms never mix.
   */
  JWT_ALGORITHMS: Type.Optional(Type.String({ pattern: `^(${ALGORITHMS.join('|')})(,(${ALGORITHMS.join('|')}))*$` })),
  /** Accepted `iss` values, comma-separated; unset means not checked. */
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  /** Accepted `aud` values, comma-separated; unset means not checked. */
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  /** Refuse tokens without `exp` (TOKEN_EXP_MISSING). Default: on when NODE_ENV=production, off otherwise. */
  JWT_REQUIRE_EXP: Type.Optional(Type.Boolean()),
  /** Seconds of clock skew tolerated on exp and nbf. */
  JWT_CLOCK_SKEW: Type.Integer({ minimum: 0, maximum: 300, default: 0 }),
  /** The claim that carries the tenant id. */
  TENANT_CLAIM: Type.String({ minLength: 1, default: 'tenantId' }),
  /** The claim that carries the user id (`userId` for identity providers that send no `sub`). */
  USER_CLAIM: Type.String({ minLength: 1, default: 'sub' }),
  WS_PATH: Type.String({ pattern: '^/', default: '/api/v1/events' }),
  /** Milliseconds between server pings; a socket that missed the previous pong is terminated. */
  WS_HEARTBEAT_INTERVAL: Type.Integer({ minimum: 100, default: 30000 }),
  /** ms between position checks (per stream: last offset delivered here against the broker's latest); 0 turns them off. */
  POSITION_CHECK_INTERVAL: Type.Integer({ minimum: 0, default: 10000 }),
  /** Milliseconds that shutdown waits for sockets to close before exiting anyway. */
  WS_SHUTDOWN_TIMEOUT: Type.Integer({ minimum: 0, default: 10000 }),
  /** Milliseconds an unauthenticated socket may wait for its `authenticate` message. */
  AUTH_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10000 }),
  /** Largest client frame, in bytes; a larger one closes the socket with 1009. */
  MAX_PAYLOAD: Type.Integer({ minimum: 1024, default: 65536 }),
  /**
   * Largest client frame before the socket is authenticated, in bytes (1009
   * PRE_AUTH_FRAME_TOO_LARGE past it). The floor fits an `authenticate` frame with the
   * longest token the protocol accepts (8192 characters).
   */
  PRE_AUTH_MAX_PAYLOAD: Type.Integer({ minimum: 10240, default: 16384 }),
  /** Sockets from one client address that may wait for `authenticate` at once (4029 UNAUTHENTICATED_IP_LIMIT past it). */
  MAX_UNAUTHENTICATED_PER_IP: Type.Integer({ minimum: 1, default: 50 }),
  /** Sockets on this instance that may wait for `authenticate` at once (4029 UNAUTHENTICATED_LIMIT past it). */
  MAX_UNAUTHENTICATED: Type.Integer({ minimum: 1, default: 1000 }),
  /**
   * Standalone server only: the proxies whose X-Forwarded-For names the client, as
   * comma-separated addresses, CIDR ranges or `loopback`, `linklocal`, `uniquelocal`. Unset:
   * the header is ignored and the peer address is the client. An embedding host sets
   * Fastify's own `trustProxy` instead.
   */
  TRUST_PROXY: Type.Optional(Type.String({ minLength: 1 })),
  /** Unsent bytes a socket may hold before it is closed as a slow consumer (4008). */
  MAX_BUFFERED_BYTES: Type.Integer({ minimum: 1024, default: 1048576 }),
  /**
   * Sockets written per tenant per delivery round. A broadcast to more sockets is written in
   * slices of this many, other tenants' pending deliveries running between them, and the
   * event loop (accept, HTTP) between rounds. Smaller: fairer; larger: fewer rounds.
   */
  FANOUT_SLICE: Type.Integer({ minimum: 1, maximum: 100000, default: 256 }),
  /** Most events retained per stream for resume and REST history. */
  HISTORY_SIZE: Type.Integer({ minimum: 1, maximum: 1000000, default: 1000 }),
  /** Seconds an event stays retained for resume and REST history. */
  HISTORY_TTL: Type.Integer({ minimum: 1, default: 600 }),
  /**
   * Seconds a stream's metadata (its epoch and last offset) outlives its last publish or read;
   * an idle stream is then forgotten and starts a new epoch. At least HISTORY_TTL.
   */
  HISTORY_META_TTL: Type.Integer({ minimum: 1, default: 2592000 }),
  /** Most channels one connection may join. */
  MAX_CHANNELS: Type.Integer({ minimum: 1, default: 100 }),
  /**
   * Which channels clients may publish to: empty for none (the default), `*` for all, or a
   * comma-separated list of glob patterns such as `chat:*,room-*`.
   */
  CLIENT_PUBLISH: Type.String({ default: '' }),
  /** Seconds an Idempotency-Key is remembered. */
  IDEMPOTENCY_TTL: Type.Integer({ minimum: 1, default: 86400 }),
  /**
   * Ms an in-flight Idempotency-Key claim lives without renewal (renewed every third of it
   * while the request runs): how long a crashed attempt holds up its retries. With Redis.
   */
  IDEMPOTENCY_LEASE_MS: Type.Integer({ minimum: 100, default: 5000 }),
  /** On shutdown each socket is told to wait a random 0..this many ms before reconnecting. */
  RECONNECT_JITTER_MS: Type.Integer({ minimum: 0, default: 5000 }),
  /** Selects the Redis broker (scale-out) when set, e.g. redis://127.0.0.1:6379. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  /**
   * Selects the Redis broker on a Redis Cluster: comma-separated seed nodes `host:port`, e.g.
   * 127.0.0.1:7000,127.0.0.1:7001. Live delivery then uses sharded pub/sub (Redis 7+).
   */
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^\\s*[^\\s,:]+:\\d+\\s*(,\\s*[^\\s,:]+:\\d+\\s*)*$' })),
  /**
   * Prefix of every Redis key and channel, so several deployments can share one Redis. No
   * braces: they would make a hash tag that puts every key in one cluster slot.
   */
  REDIS_PREFIX: Type.String({ default: 'tenantcast:', pattern: '^[^{}]*$' }),
  /**
   * Longest ms a Redis command may wait for its answer. Past it the request answers 503, the
   * connection is reset (what it had queued is dropped, never run later) and /ready is false
   * until Redis answers again.
   */
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 2000 }),
  /** Seconds an instance's presence entries outlive its last heartbeat (a crashed instance's expire after it). */
  PRESENCE_TTL: Type.Integer({ minimum: 1, default: 30 }),
  /**
   * Seconds a revocation (POST /api/v1/admin/revoke) lasts after its `before` time. Set it to
   * at least the longest lifetime (exp - iat) of the tokens you issue: a refused token must
   * have expired by the time its revocation does.
   */
  REVOKE_TTL: Type.Integer({ minimum: 1, default: 86400 }),
  /** GET /api/v1/presence requests per user (tenant and sub) per minute. */
  PRESENCE_RATE_LIMIT: Type.Integer({ minimum: 1, default: 60 }),
  /**
   * Browser origins allowed to open sockets, comma-separated (`https://app.example.com`), or
   * `*` for any. Unset: same origin only. Clients that send no Origin are always allowed.
   */
  ALLOWED_ORIGINS: Type.Optional(Type.String({ minLength: 1 })),
  /** Client frames per second per connection (token bucket refill rate). */
  CLIENT_FRAME_RATE: Type.Integer({ minimum: 1, default: 50 }),
  /** Client frames a connection may send in a burst (token bucket size). */
  CLIENT_FRAME_BURST: Type.Integer({ minimum: 1, default: 100 }),
  /** Refused frames in a row after which the connection is closed with 4029. */
  CLIENT_FRAME_STRIKES: Type.Integer({ minimum: 1, default: 20 }),
  /** Open connections per user (cluster-wide with Redis); 0 for no limit. */
  MAX_CONNECTIONS_PER_USER: Type.Integer({ minimum: 0, default: 50 }),
  /** Open connections per tenant (cluster-wide with Redis); 0 for no limit. */
  MAX_CONNECTIONS_PER_TENANT: Type.Integer({ minimum: 0, default: 10000 }),
  /** Largest event payload (`data`, as JSON) that may be published, in bytes. */
  MAX_PUBLISH_BYTES: Type.Integer({ minimum: 64, default: 16384 }),
  /** REST ingestion and publish requests per tenant per minute (cluster-wide with Redis). */
  REST_RATE_LIMIT: Type.Integer({ minimum: 1, default: 1200 }),
  /**
   * Requests per principal (tenant and `sub`) per minute, inside the tenant's REST_RATE_LIMIT,
   * so one token cannot spend the whole tenant's budget. Default: a quarter of REST_RATE_LIMIT.
   */
  REST_RATE_LIMIT_PER_PRINCIPAL: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * Ingestion and publish requests one tenant may have in flight at once on this instance;
   * past it a request answers 429 TENANT_INFLIGHT_LIMIT with Retry-After. 0 for no cap.
   */
  MAX_INFLIGHT_PER_TENANT: Type.Integer({ minimum: 0, default: 64 }),
  /**
   * Socket writes one tenant may have queued for fair delivery on this instance before its
   * ingestion and publish requests answer 429 TENANT_BACKLOGGED with Retry-After. One event
   * is always taken below it, whatever the tenant's socket count. 0 for no cap. The default
   * is about 5 s of fan-out on a 2-core VM (~200,000 writes/s): deep enough for a burst of
   * 200 alarms to 2,000 tabs, shallow enough that what was accepted is written long before a
   * client gives up on it.
   */
  MAX_QUEUED_WRITES_PER_TENANT: Type.Integer({ minimum: 0, default: 1000000 }),
  /**
   * Roles that may POST /api/v1/alarms, comma-separated, e.g. `camera,ingest,publisher,admin`.
   * Empty (the default): any member of the tenant may ingest, as before this setting existed.
   */
  INGEST_ROLES: Type.String({ default: '' }),
  /** When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise). */
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /** Label per-tenant metrics with the tenant id. Off by default: tenants are unbounded cardinality. */
  METRICS_TENANT_LABELS: Type.Boolean({ default: false }),
  /** Event-loop delay, in ms, past which /ready fails and requests are shed with 503. */
  MAX_EVENT_LOOP_DELAY: Type.Integer({ minimum: 10, default: 1000 }),
  /** Write each socket's frames of one event-loop turn with one syscall (fan-out throughput). */
  WS_COALESCE: Type.Boolean({ default: true }),
  /** Attach a Socket.IO 4 endpoint at /socket.io/ for existing Socket.IO frontends. */
  SOCKETIO_ENABLED: Type.Boolean({ default: false }),
  /** Severities whose alarms need a person (ackable), comma-separated; `requireAck: true` makes any alarm ackable. */
  ALARM_ACK_SEVERITIES: Type.String({ default: 'critical', pattern: '^\\s*(low|medium|high|critical)?(\\s*,\\s*(low|medium|high|critical))*\\s*$' }),
  /** Most unresolved (open or acknowledged) ackable alarms one tenant holds. */
  ALARM_MAX_OPEN: Type.Integer({ minimum: 1, maximum: 100000, default: 1000 }),
  /**
   * What gives way at ALARM_MAX_OPEN: `expire-oldest` (the oldest unresolved alarm is expired
   * and announced) or `reject` (ingestion answers 429 OPEN_ALARM_LIMIT). Both log and count it.
   */
  ALARM_OVERFLOW: Type.Enum(['expire-oldest', 'reject'], { default: 'expire-oldest' }),
  /** Seconds an alarm may stay unresolved; then it is expired (announced, logged). Its record lives a day longer. */
  ALARM_TTL: Type.Integer({ minimum: 60, default: 604800 }),
  /**
   * Escalation rules, JSON: a list for every tenant, or {"default": [...], "tenants": {"<id>": [...]}}.
   * Each rule: {"after": <seconds>, "if"?: "unacknowledged"|"unreceived", "role"?: "<role>", "webhook"?: "<url>"}.
   */
  ALARM_ESCALATION: Type.String({ default: '' }),
  /** Ms between two looks for due escalations (every instance looks; one fires each level). */
  ALARM_ESCALATION_POLL_MS: Type.Integer({ minimum: 10, default: 1000 }),
  /** HMAC-SHA256 key of the webhook signature header; required when a rule names a webhook. */
  WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  /** Ms a webhook call may take before it counts as failed (and is retried). */
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 5000 }),
  /** Retries of a webhook call after a 5xx, a timeout or a network error (4xx is not retried). */
  WEBHOOK_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 4 }),
  /** Ms before the first webhook retry; each further retry waits twice as long. */
  WEBHOOK_BACKOFF_MS: Type.Integer({ minimum: 1, default: 1000 })
})
export type Config = Static<typeof ConfigSchema> & {
  /** Resolved at start-up: always set. */
  REST_RATE_LIMIT_PER_PRINCIPAL: number
  /** True when JWT_SECRET was generated at start-up because none was configured. */
  DEV_SECRET: boolean
  /** The resolved algorithm list. */
  JWT_ALGORITHM_LIST: string[]
  /** JWT_REQUIRE_EXP with its environment default resolved. */
  JWT_REQUIRE_EXP: boolean
}

export interface ConfigOptions {
  /** Settings that take precedence over the environment. */
  config?: Partial<Static<typeof ConfigSchema>>
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

async function configPlugin (app: import('fastify').FastifyInstance, opts: ConfigOptions): Promise<void> {
  try {
    // An empty variable (`JWT_SECRET=` in an env file) means unset, not an empty value.
    const env = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== ''))
    await app.register(fastifyEnv, { schema: ConfigSchema, data: { ...env, ...opts.config } })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message.replace(/env\//g, '')}`)
  }
  const config = app.config as Config
  const asymmetric = config.JWT_PUBLIC_KEY !== undefined || config.JWT_JWKS_URL !== undefined
  config.DEV_SECRET = false
  if (config.JWT_SECRET === undefined && !asymmetric) {
    if (config.NODE_ENV === 'production') {
      throw new ConfigError(`JWT_SECRET is not set: set JWT_SECRET to a random secret of at least ${JWT_SECRET_MIN_LENGTH} characters, or JWT_PUBLIC_KEY or JWT_JWKS_URL (required when NODE_ENV=production)`)
    }
    config.JWT_SECRET = randomBytes(32).toString('base64url')
    config.DEV_SECRET = true
  }
  if (config.JWT_PUBLIC_KEY !== undefined && config.JWT_JWKS_URL !== undefined) {
    throw new ConfigError('set JWT_PUBLIC_KEY or JWT_JWKS_URL, not both')
  }
  const algorithms = (config.JWT_ALGORITHMS ?? (asymmetric ? 'RS256,ES256' : 'HS256')).split(',')
  // Algorithm confusion is impossible by construction: one kind of key, one kind of algorithm.
  const hmac = algorithms.filter((a) => a.startsWith('HS'))
  if (asymmetric && hmac.length > 0) throw new ConfigError(`JWT_ALGORITHMS has ${hmac.join(',')} but the key is public (JWT_PUBLIC_KEY/JWT_JWKS_URL): use RS*, PS* or ES*`)
  if (!asymmetric && hmac.length !== algorithms.length) throw new ConfigError('JWT_ALGORITHMS has public-key algorithms but only JWT_SECRET is set: set JWT_PUBLIC_KEY or JWT_JWKS_URL, or use HS*')
  if (asymmetric && config.JWT_SECRET !== undefined) throw new ConfigError('JWT_SECRET and a public key are both set: choose one kind of key')
  config.JWT_ALGORITHM_LIST = algorithms
  const perPrincipal = config.REST_RATE_LIMIT_PER_PRINCIPAL ?? Math.max(1, Math.floor(config.REST_RATE_LIMIT / 4))
  if (perPrincipal > config.REST_RATE_LIMIT) throw new ConfigError(`REST_RATE_LIMIT_PER_PRINCIPAL (${perPrincipal}) exceeds REST_RATE_LIMIT (${config.REST_RATE_LIMIT}): a principal's bucket lies inside its tenant's`)
  config.REST_RATE_LIMIT_PER_PRINCIPAL = perPrincipal
  config.JWT_REQUIRE_EXP ??= config.NODE_ENV === 'production'
  // Metadata that expired before its log would leave events whose epoch nobody knows.
  if (config.REDIS_URL !== undefined && config.REDIS_CLUSTER_NODES !== undefined) throw new ConfigError('set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both')
  if (config.HISTORY_META_TTL < config.HISTORY_TTL) {
    throw new ConfigError(`HISTORY_META_TTL (${config.HISTORY_META_TTL}) must be at least HISTORY_TTL (${config.HISTORY_TTL})`)
  }
  // A lookup still waiting for the JWKS when the auth timeout fires would end as a 4401.
  if (config.JWT_JWKS_URL !== undefined && config.JWT_JWKS_WAIT_MS >= config.AUTH_TIMEOUT_MS) {
    throw new ConfigError(`JWT_JWKS_WAIT_MS (${config.JWT_JWKS_WAIT_MS}) must be below AUTH_TIMEOUT_MS (${config.AUTH_TIMEOUT_MS})`)
  }
  trustedProxies(config.TRUST_PROXY)
}

export default fp(configPlugin, { name: 'tenantcast-config', fastify: '5.x' })

/** The per-connection limits every session enforces, whatever its transport. */
export function sessionLimits (config: Config): SessionLimits {
  return {
    frameRate: config.CLIENT_FRAME_RATE,
    frameBurst: config.CLIENT_FRAME_BURST,
    frameStrikes: config.CLIENT_FRAME_STRIKES,
    connectionsPerUser: config.MAX_CONNECTIONS_PER_USER,
    connectionsPerTenant: config.MAX_CONNECTIONS_PER_TENANT,
    preAuthFrameBytes: config.PRE_AUTH_MAX_PAYLOAD,
    queuedWrites: config.MAX_QUEUED_WRITES_PER_TENANT
  }
}

/** INGEST_ROLES as a list; empty means any member of the tenant may ingest. */
export function ingestRoles (config: Config): string[] {
  return config.INGEST_ROLES.split(',').map((r) => r.trim()).filter((r) => r !== '')
}

/** CLIENT_PUBLISH as glob patterns; undefined when client publishing is off. */
export function clientPublishPatterns (config: Config): string[] | undefined {
  const patterns = config.CLIENT_PUBLISH.split(',').map((p) => p.trim()).filter((p) => p !== '')
  return patterns.length === 0 ? undefined : patterns
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/**
 * TRUST_PROXY as Fastify's `trustProxy` option: the list of trusted proxies, or false when
 * unset. Checked here so that a typo fails start-up with a message that names the setting.
 */
export function trustedProxies (value: string | undefined): string[] | false {
  if (value === undefined || value === '') return false
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  for (const entry of entries) {
    const [address = '', bits, ...rest] = entry.split('/')
    const family = isIP(address)
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32))
    if (!PROXY_NAMES.has(entry) && (family === 0 || !prefixOk || rest.length > 0)) {
      throw new ConfigError(`TRUST_PROXY has "${entry}": use comma-separated IP addresses, CIDR ranges (10.0.0.0/8), loopback, linklocal or uniquelocal`)
    }
  }
  return entries.length === 0 ? false : entries
}
