import type { FastifyInstance } from 'fastify'
import { createSigner } from 'fast-jwt'
import { spawnSync } from 'node:child_process'
import { createServer, request, type ClientRequest } from 'node:http'
import { Writable } from 'node:stream'
import tap from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { createStandalone } from '../app.js'
import type { ConfigOptions } from '../plugins/config.js'

/**
 * A test process must end when its tests do. A handle left open (a socket, or a Redis client
 * that reconnects for ever once its servers are gone) would keep it alive, silently, until
 * tap's timeout kills it minutes later. Fifteen seconds after the root test ends, whatever is
 * still open is printed and the process fails. The timer is unref'd: it never keeps a clean
 * process alive.
 */
tap.teardown(() => {
  const ended = Date.now()
  // A process that ends late but within the limit costs CI time all the same: said, not failed.
  process.once('exit', () => {
    const late = Date.now() - ended
    if (late > 2000) process.stderr.write(`# this process ended ${(late / 1000).toFixed(1)} s after its tests\n`)
  })
  setTimeout(() => {
    const handles = (process as unknown as { _getActiveHandles: () => object[] })._getActiveHandles().map((handle) => {
      const socket = handle as { remoteAddress?: string, remotePort?: number, localPort?: number }
      return socket.remotePort === undefined ? handle.constructor.name : `${handle.constructor.name} ${socket.remoteAddress ?? ''}:${socket.remotePort} (local :${socket.localPort ?? ''})`
    })
    process.stderr.write(`# still running 15 s after its tests ended, held open by: ${process.getActiveResourcesInfo().join(', ')}\n#   ${handles.join('\n#   ')}\n`)
    process.exit(1)
  }, 15_000).unref()
})

export const SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789'

type Tap = { teardown (fn: () => unknown): void }

export interface Gateway {
  app: FastifyInstance
  /** http://127.0.0.1:<port> */
  http: string
  /** ws://127.0.0.1:<port>/api/v1/events */
  ws: string
  token (claims?: Record<string, unknown>): string
  /** Every log line written so far, as raw JSON text. */
  logs: string[]
}

/** Signs a token with the test secret. Claims default to user `u1` of tenant `t1`. */
export function sign (claims: Record<string, unknown> = {}, options: { key?: string, algorithm?: 'HS256' | 'HS384' | 'HS512', expiresIn?: number } = {}): string {
  const signer = createSigner({
    key: options.key ?? SECRET,
    algorithm: options.algorithm ?? 'HS256',
    ...(options.expiresIn === undefined ? {} : { expiresIn: options.expiresIn })
  })
  return signer({ sub: 'u1', tenantId: 't1', ...claims })
}

/** Starts a real gateway on an ephemeral port and closes it in teardown. */
export async function build (t: Tap, config: ConfigOptions['config'] = {}): Promise<Gateway> {
  const logs: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { logs.push(String(chunk)); done() } })
  const app = await createStandalone({ logStream: stream, config: { JWT_SECRET: SECRET, WS_SHUTDOWN_TIMEOUT: 1000, LOG_LEVEL: 'info', ...config } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const path = config.WS_PATH ?? '/api/v1/events'
  return { app, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}${path}`, token: (claims) => sign(claims), logs }
}

export type Frame = Record<string, any> & { type: string }

/** A real WebSocket client that queues every frame, so a test awaits frames in order. */
export class Client {
  readonly socket: WebSocket
  readonly frames: Frame[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  readonly opened: Promise<void>
  private waiters: Array<() => void> = []
  private cursor = 0

  constructor (url: string, options: { protocols?: string[], headers?: Record<string, string>, autoPong?: boolean } = {}) {
    this.socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers ?? {}, autoPong: options.autoPong ?? true })
    this.socket.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Frame)
      for (const wake of this.waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code, reason) => {
        resolve({ code, reason: String(reason) })
        for (const wake of this.waiters.splice(0)) wake()
      })
    })
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', () => { resolve() })
      this.socket.once('error', reject)
    })
    this.socket.on('error', () => {})
  }

  /** The next frame not yet consumed, optionally the next one of a type (skipping others). */
  async next (type?: string): Promise<Frame> {
    for (;;) {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++] as Frame
        if (type === undefined || frame.type === type) return frame
      }
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${type ?? 'a frame'}`)
      await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    }
  }

  /** Waits until `count` frames of `type` have arrived in total, and returns them. */
  async collect (type: string, count: number): Promise<Frame[]> {
    for (;;) {
      const found = this.frames.filter((f) => f.type === type)
      if (found.length >= count) return found
      if (this.socket.readyState === WebSocket.CLOSED) return found
      await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    }
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  close (): void {
    this.socket.close()
  }
}

/** Connects with `?token=` and waits for `authenticated`. */
export async function connect (gateway: Gateway, claims: Record<string, unknown> = {}): Promise<Client> {
  const client = new Client(`${gateway.ws}?token=${gateway.token(claims)}`)
  await client.next('authenticated')
  return client
}

/** Posts an alarm as the given token's tenant and returns status and body. */
export async function postAlarm (gateway: Gateway, token: string, body: Record<string, unknown> = {}): Promise<{ status: number, body: any }> {
  const response = await fetch(`${gateway.http}/api/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'Motion detected', camera: 'Front Door', severity: 'high', ...body })
  })
  return { status: response.status, body: await response.json() }
}

/**
 * Reads a value that the server settles asynchronously (for example after the peer's TCP close),
 * polling until it equals `expected` or about 2 s pass, and returns the last value read.
 */
export async function settled<T> (read: () => T | Promise<T>, expected: T): Promise<T> {
  for (let i = 0; i < 200 && await read() !== expected; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return await read()
}

/**
 * For "exactly once": waits until `read()` returns at least `count` items (about 5 s at most),
 * then a quiet period of `quietMs` in which a late duplicate would still arrive, and returns
 * the final read. The caller asserts the exact list.
 */
export async function quietly<T> (read: () => T[], count: number, quietMs = 300): Promise<T[]> {
  for (let i = 0; i < 500 && read().length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, quietMs))
  return read()
}

/** POSTs JSON with a Bearer token and returns status, headers and parsed body. */
export async function post (gateway: Gateway, path: string, token: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: any }> {
  const response = await fetch(`${gateway.http}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body)
  })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

/** GETs with a Bearer token and returns status and parsed body. */
export async function get (gateway: Gateway, path: string, token: string): Promise<{ status: number, body: any }> {
  const response = await fetch(`${gateway.http}${path}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.json() }
}

/**
 * The promise's value if it settles within `ms`, else `timedOut`. The timer is cleared either
 * way, so a wait that was met does not hold the test process open for the rest of `ms`.
 */
export async function within<T, U> (promise: Promise<T>, ms: number, timedOut: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<U>((resolve) => { timer = setTimeout(() => { resolve(timedOut) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** Sends a ping and waits for its pong: every frame the server sent before it has arrived. */
export async function drain (client: Client): Promise<void> {
  const id = `drain-${Math.random()}`
  client.send({ type: 'ping', id })
  for (;;) {
    const frame = await client.next('pong')
    if (frame.ref === id) return
  }
}

/** Events received so far by a client. */
export function events (client: Client): Frame[] {
  return client.frames.filter((f) => f.type === 'event')
}

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/**
 * Whether the Redis suites run. Without a reachable Redis they are skipped with a printed
 * reason; with REQUIRE_REDIS=1 (CI) an unreachable Redis fails the run instead.
 */
export const redisSkip: string | false = await (async () => {
  const { Redis } = await import('ioredis')
  const probe = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await probe.connect()
    await probe.ping()
    return false
  } catch (err) {
    if (process.env.REQUIRE_REDIS === '1') throw new Error(`REQUIRE_REDIS=1 but Redis at ${REDIS_URL} is unreachable: ${(err as Error).message}`)
    return `Redis at ${REDIS_URL} is unreachable (${(err as Error).message}); set REDIS_URL, or REQUIRE_REDIS=1 to fail instead`
  } finally {
    probe.disconnect()
  }
})()

/** A key prefix unique to this test, whose keys are all deleted in teardown. */
export async function redisPrefix (t: Tap): Promise<string> {
  const prefix = `tctest:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`
  t.teardown(async () => { await deleteKeys(prefix) })
  return prefix
}

/** Deletes every key under a prefix (SCAN, never KEYS). */
export async function deleteKeys (prefix: string): Promise<void> {
  const { Redis } = await import('ioredis')
  const redis = new Redis(REDIS_URL)
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
  redis.disconnect()
}

/**
 * Whether the Redis Cluster suites run: they start their own cluster (test/redis-cluster.ts)
 * and need redis-server and redis-cli. With REQUIRE_REDIS=1 (CI) a missing one fails the run.
 */
export const clusterSkip: string | false = (() => {
  const missing = ['redis-server', 'redis-cli'].filter((command) => spawnSync(command, ['--version']).status !== 0)
  if (missing.length === 0) return false
  if (process.env.REQUIRE_REDIS === '1') throw new Error(`REQUIRE_REDIS=1 but ${missing.join(' and ')} cannot be run: the Redis Cluster suites start a cluster of their own`)
  return `${missing.join(' and ')} not found; the Redis Cluster suites start a cluster of their own (Debian package redis-server)`
})()

export type BrokerName = 'memory' | 'redis' | 'redis-cluster'

/** The brokers a behaviour suite runs against: memory always, Redis when reachable, a local Redis Cluster when it can be started. */
export const brokers: Array<{ name: BrokerName, skip: string | false }> = [
  { name: 'memory', skip: false },
  { name: 'redis', skip: redisSkip },
  { name: 'redis-cluster', skip: redisSkip === false ? clusterSkip : redisSkip }
]

/**
 * Gateway config for a broker: nothing for memory; REDIS_URL, or the seeds of this test
 * process's cluster, and a fresh prefix for Redis.
 */
export async function brokerConfig (t: Tap, broker: BrokerName): Promise<ConfigOptions['config']> {
  if (broker === 'memory') return {}
  if (broker === 'redis') return { REDIS_URL, REDIS_PREFIX: await redisPrefix(t) }
  const { sharedCluster } = await import('./redis-cluster.js')
  return { REDIS_CLUSTER_NODES: (await sharedCluster()).seeds, REDIS_PREFIX: await redisPrefix(t) }
}

/** A port with nothing listening on 127.0.0.1: connecting to it is refused, or a child can take it. */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => { server.close(resolve) })
  return port
}

/** A small seeded PRNG (mulberry32), so a failing interleaving can be replayed from its seed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A WebSocket proxy between a client and the gateway that can drop single server-to-client
 * `event` frames, as a faulty middlebox would; the gateway itself never does. Every other
 * frame, and everything client-to-server, passes unchanged. Closed in teardown.
 */
export class FrameDroppingProxy {
  /** Event frames dropped so far. */
  dropped = 0
  private constructor (private readonly server: WebSocketServer, readonly ws: string) {}

  static async start (t: Tap, target: string, drop: (frame: Frame) => boolean): Promise<FrameDroppingProxy> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (protocols) => protocols.has('tenantcast.v1') ? 'tenantcast.v1' : false })
    await new Promise<void>((resolve) => { server.once('listening', () => { resolve() }) })
    const address = server.address() as { port: number }
    const proxy = new FrameDroppingProxy(server, `ws://127.0.0.1:${address.port}/api/v1/events`)
    server.on('connection', (downstream, request) => {
      const protocols = String(request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '')
      const upstream = new WebSocket(`${target}${(request.url ?? '').replace(/^\/api\/v1\/events/, '')}`, protocols)
      const early: string[] = []
      // Listeners first, synchronously: frames may arrive in the same turn as the upgrade.
      downstream.on('message', (data) => {
        if (upstream.readyState === WebSocket.OPEN) upstream.send(String(data))
        else early.push(String(data))
      })
      upstream.on('open', () => { for (const text of early.splice(0)) upstream.send(text) })
      upstream.on('message', (data) => {
        const text = String(data)
        const frame = JSON.parse(text) as Frame
        if (frame.type === 'event' && drop(frame)) {
          proxy.dropped++
          return
        }
        if (downstream.readyState === WebSocket.OPEN) downstream.send(text)
      })
      const closeBoth = (code: number, reason: Buffer): void => {
        const safe = code === 1005 || code === 1006 ? 1001 : code
        if (downstream.readyState === WebSocket.OPEN) downstream.close(safe, reason)
        if (upstream.readyState === WebSocket.OPEN) upstream.close(safe, reason)
      }
      upstream.on('close', closeBoth)
      downstream.on('close', closeBoth)
      upstream.on('error', () => { downstream.terminate() })
      downstream.on('error', () => { upstream.terminate() })
    })
    t.teardown(async () => {
      for (const socket of server.clients) socket.terminate()
      await new Promise((resolve) => server.close(resolve))
    })
    return proxy
  }
}

/** A local JWKS endpoint under the test's control: which keys it serves, how slowly, or whether it is down. */
export async function jwksServer (t: Tap, keys: Array<Record<string, unknown>>): Promise<{ url: string, keys: Array<Record<string, unknown>>, fetches: number, delayMs: number, down: boolean }> {
  const state = { url: '', keys, fetches: 0, delayMs: 0, down: false }
  const server = createServer((_req, res) => {
    state.fetches++
    const answer = (): void => {
      if (state.down) {
        res.statusCode = 503
        res.end('down')
        return
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: state.keys }))
    }
    if (state.delayMs > 0) setTimeout(answer, state.delayMs)
    else answer()
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/.well-known/jwks.json`
  return state
}

/**
 * An ingestion request held in flight for real: its headers are sent and its body only in
 * part (its first 10 characters), so the server has counted it and waits for the rest.
 */
export function heldAlarm (gw: Gateway, token: string, body: string): ClientRequest {
  const req = request(`${gw.http}/api/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  })
  req.on('error', () => {})
  req.flushHeaders()
  req.write(body.slice(0, 10))
  return req
}
