import { spawn } from 'node:child_process'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { RedisBroker } from '../domain/broker-redis.js'
import {
  build, Client, clusterSkip, connect, drain, events, freePort, get, post, postAlarm, quietly, redisPrefix, redisSkip, REDIS_URL, SECRET, settled, sign, within,
  type Frame, type Gateway
} from './helper.js'
import { sharedCluster } from './redis-cluster.js'

type Topology = 'standalone' | 'cluster'

/** The two-instance tests run on the shared Redis and on this process's Redis Cluster. */
const topologies: Array<{ topology: Topology, skip: string | false }> = [
  { topology: 'standalone', skip: redisSkip },
  { topology: 'cluster', skip: redisSkip === false ? clusterSkip : redisSkip }
]

/** Why a test runs on the standalone Redis only: it cuts or watches that one server through a proxy or MONITOR. */
const STANDALONE_ONLY = 'drives one Redis server through a proxy or MONITOR; the cluster\'s failure paths are in cluster-failover.test.ts'

/** The setting that points a gateway at the topology. */
async function redisTarget (topology: Topology): Promise<Record<string, string>> {
  return topology === 'standalone' ? { REDIS_URL } : { REDIS_CLUSTER_NODES: (await sharedCluster()).seeds }
}

/** Two gateways sharing one Redis (or one cluster) under one fresh prefix. */
async function pair (t: Test, topology: Topology, config: Record<string, unknown> = {}): Promise<[Gateway, Gateway]> {
  const prefix = await redisPrefix(t)
  const shared = { ...await redisTarget(topology), REDIS_PREFIX: prefix, PRESENCE_TTL: 2, ...config }
  return [await build(t, shared), await build(t, shared)]
}

const publisher = sign({ sub: 'backend', roles: ['publisher'] })

for (const { topology, skip } of topologies) {
t.test(`instances sharing ${topology === 'standalone' ? 'one Redis' : 'a Redis Cluster'} behave as one`, { skip }, async (t) => {
  t.test('a socket on A receives an alarm posted to B, with the same position on both', async (t) => {
    const [a, b] = await pair(t, topology)
    const onA = await connect(a)
    const onB = await connect(b)
    const reply = await postAlarm(b, sign(), { message: 'via B' })
    t.equal(reply.status, 202)
    const [fromA, fromB] = [await onA.next('event'), await onB.next('event')]
    t.match(fromA, { data: { message: 'via B' }, offset: reply.body.offset, epoch: reply.body.epoch })
    t.same([fromB.offset, fromB.epoch, fromB.id], [fromA.offset, fromA.epoch, fromA.id])
    onA.close()
    onB.close()
  })

  t.test('tenant isolation and user, channel and client targeting hold across instances', async (t) => {
    const [a, b] = await pair(t, topology)
    const alice = await connect(a, { sub: 'alice' })
    const bob = await connect(b, { sub: 'bob' })
    const stranger = await connect(b, { sub: 'alice', tenantId: 'other' })
    alice.send({ type: 'subscribe', channel: 'ops' })
    await alice.next('subscribed')
    const aliceId = alice.frames.find((f) => f.type === 'connected')?.clientId as string
    const toUser = await post(b, '/api/v1/publish', publisher, { event: 'for-alice', data: {}, userId: 'alice' })
    t.match(toUser.body, { online: true, delivered: 0 }, 'online cluster-wide, delivered by the other instance')
    await post(b, '/api/v1/publish', publisher, { event: 'for-ops', data: {}, channel: 'ops' })
    const toClient = await post(b, '/api/v1/publish', publisher, { event: 'for-client', data: {}, clientId: aliceId })
    t.match(toClient.body, { online: true })
    await postAlarm(b, sign({ tenantId: 'other' }), { message: 'other tenant' })
    t.same((await alice.collect('event', 3)).map((e) => e.event), ['for-alice', 'for-ops', 'for-client'])
    for (const c of [alice, bob]) await drain(c)
    t.equal(events(bob).length, 0, 'bob got nothing addressed to alice')
    t.same(events(alice).map((e) => e.event), ['for-alice', 'for-ops', 'for-client'], 'alice got nothing of the other tenant')
    t.same((await stranger.collect('event', 1)).map((e) => e.data.message), ['other tenant'])
    for (const c of [alice, bob, stranger]) c.close()
  })

  t.test('connection counts and presence are cluster-wide', async (t) => {
    const [a, b] = await pair(t, topology)
    const first = await connect(a, { sub: 'alice' })
    const second = await connect(b, { sub: 'alice' })
    const third = await connect(b, { sub: 'bob' })
    t.equal(third.frames.find((f) => f.type === 'authenticated')?.connectionCount, 3, 'authenticated counts sockets on both instances')
    for (const c of [first, third]) {
      c.send({ type: 'subscribe', channel: 'room' })
      await c.next('subscribed')
    }
    const presence = await get(a, '/api/v1/presence', sign())
    t.same(presence.body.users.sort((x: any, y: any) => x.userId.localeCompare(y.userId)), [{ userId: 'alice', connections: 2 }, { userId: 'bob', connections: 1 }])
    t.equal(presence.body.connectionCount, 3)
    const room = await get(b, '/api/v1/presence/channels/room', sign())
    t.same(room.body.members.map((m: any) => m.userId).sort(), ['alice', 'bob'])
    t.equal(await a.app.realtime.isUserConnected('t1', 'bob'), true)
    t.equal(await a.app.realtime.connectionCount('other'), 0)
    third.close()
    await third.closed
    // The instance writes its counters when the session ends, a moment after the client sees the close.
    t.equal(await settled(async () => await a.app.realtime.isUserConnected('t1', 'bob'), false), false, 'a closed socket leaves the cluster view')
    first.close()
    second.close()
  })

  t.test('an Idempotency-Key retry on another instance is still deduplicated', async (t) => {
    const [a, b] = await pair(t, topology)
    const client = await connect(a)
    const body = { message: 'once', camera: 'c', severity: 'high' }
    const headers = { 'idempotency-key': 'retry-elsewhere' }
    const first = await post(a, '/api/v1/alarms', sign(), body, headers)
    const retry = await post(b, '/api/v1/alarms', sign(), body, headers)
    t.same(retry.body, first.body)
    t.equal((await post(b, '/api/v1/alarms', sign(), { ...body, message: 'changed' }, headers)).status, 409)
    await drain(client)
    t.equal(events(client).length, 1)
    client.close()
  })

  t.test('a crashed instance\'s presence expires, and its clients resume on another instance losing nothing', async (t) => {
    const prefix = await redisPrefix(t)
    const shared = { ...await redisTarget(topology), REDIS_PREFIX: prefix, PRESENCE_TTL: 1 }
    const b = await build(t, shared)
    const port = await freePort()
    // `env -u` keeps tap's coverage hooks out of the child, which runs through tsx.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', process.execPath, '--import', 'tsx', 'server.ts'], {
      env: { ...process.env, NODE_ENV: 'production', JWT_SECRET: SECRET, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', JWT_REQUIRE_EXP: 'false', ...shared, PRESENCE_TTL: '1', REDIS_PREFIX: prefix, HISTORY_SIZE: '10000' },
      stdio: ['ignore', 'ignore', 'pipe']
    })
    t.teardown(() => { child.kill('SIGKILL') })
    const a = { http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/api/v1/events` }
    await waitFor(async () => (await fetch(`${a.http}/ready`).catch(() => undefined))?.status === 200)

    // Each client follows its socket and, when it dies, reconnects to B from its last position.
    const clients = Array.from({ length: 4 }, (_, i) => new Follower(`${a.ws}?token=${sign({ sub: `u${i}`, tenantId: 'crash' })}`, `${b.ws}?token=${sign({ sub: `u${i}`, tenantId: 'crash' })}`))
    await Promise.all(clients.map(async (c) => await c.ready))

    const acknowledged: number[] = []
    let stop = false
    const token = sign({ tenantId: 'crash' })
    const publishing = (async () => {
      for (let n = 0; !stop; n++) {
        const target = n % 2 === 0 ? a.http : b.http
        const reply = await fetch(`${target}/api/v1/alarms`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ message: `#${n}`, camera: 'c', severity: 'low' })
        }).catch(() => undefined)
        if (reply?.status === 202) acknowledged.push(((await reply.json()) as { offset: number }).offset)
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    })()
    await waitFor(async () => acknowledged.length >= 40)
    child.kill('SIGKILL')
    await waitFor(async () => clients.every((c) => c.reconnected))
    const afterCrash = acknowledged.length
    await waitFor(async () => acknowledged.length >= afterCrash + 40)
    stop = true
    await publishing

    const last = Math.max(...acknowledged)
    await waitFor(async () => clients.every((c) => (c.offsets.at(-1) ?? 0) >= last))
    for (const [i, c] of clients.entries()) {
      const seen = new Set(c.offsets)
      t.equal(seen.size, c.offsets.length, `client ${i}: no event twice`)
      t.same(c.offsets, [...c.offsets].sort((x, y) => x - y), `client ${i}: in order`)
      t.same(acknowledged.filter((o) => !seen.has(o)), [], `client ${i}: every acknowledged event arrived`)
      c.close()
    }
    t.ok(acknowledged.length > afterCrash, `${afterCrash} acknowledged before the crash, ${acknowledged.length - afterCrash} after`)
    await waitFor(async () => (await b.app.realtime.connectionCount('crash')) === 0)
    t.equal(await b.app.realtime.connectionCount('crash'), 0, 'the crashed instance\'s sockets left the cluster view')
  })

  t.test('connection caps are cluster-wide', async (t) => {
    const [a, b] = await pair(t, topology, { MAX_CONNECTIONS_PER_USER: 2, MAX_CONNECTIONS_PER_TENANT: 3 })
    const tabs = [await connect(a, { sub: 'alice' }), await connect(b, { sub: 'alice' })]
    t.same(await new Client(`${a.ws}?token=${sign({ sub: 'alice' })}`).closed, { code: 4029, reason: 'USER_CONNECTION_LIMIT' })
    const bob = await connect(b, { sub: 'bob' })
    t.same(await new Client(`${a.ws}?token=${sign({ sub: 'carol' })}`).closed, { code: 4029, reason: 'TENANT_CONNECTION_LIMIT' })
    tabs[1]?.close()
    await tabs[1]?.closed
    t.equal(await settled(async () => await a.app.realtime.connectionCount('t1'), 2), 2, 'a close on B frees a place seen from A')
    const carol = await connect(a, { sub: 'carol' })
    t.match(carol.frames.find((f) => f.type === 'authenticated'), { connectionCount: 3 })
    for (const c of [tabs[0], bob, carol]) c?.close()
  })

  t.test('a connect costs the same Redis work however many sockets the tenant has elsewhere', { skip: topology === 'cluster' && STANDALONE_ONLY }, async (t) => {
    const prefix = await redisPrefix(t)
    // A Redis of this test's own: MONITOR on the shared one sees every other suite's traffic,
    // and ioredis's monitor parser loses its place under that load.
    const port = await freePort()
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    t.teardown(() => { server.kill('SIGKILL') })
    const url = `redis://127.0.0.1:${port}`
    const { Redis } = await import('ioredis')
    const probe = new Redis(url, { retryStrategy: (times) => times > 100 ? null : 20 })
    // The server may not listen yet: the refused first connects are retried, not reported.
    probe.on('error', () => {})
    await probe.ping()
    // A long TTL keeps heartbeats out of the observed window.
    const shared = { REDIS_URL: url, REDIS_PREFIX: prefix, PRESENCE_TTL: 60 }
    const [a, b] = [await build(t, shared), await build(t, shared)]
    const monitor = await probe.monitor()
    t.teardown(() => { monitor.disconnect(); probe.disconnect() })
    const seen: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => { if (args.some((arg) => arg.startsWith(prefix))) seen.push(args) })
    /** The Redis commands under our prefix that one authenticate on B issues. */
    const connectOnB = async (): Promise<string[][]> => {
      const fence = async (): Promise<void> => {
        const key = `${prefix}fence:${Math.random()}`
        await probe.get(key)
        for (let i = 0; i < 200 && !seen.some((args) => args.includes(key)); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await fence()
      seen.length = 0
      const client = await connect(b, { sub: 'newcomer' })
      await fence()
      const commands = seen.filter((args) => !args.some((arg) => arg.includes('fence:')))
      client.close()
      await client.closed
      await settled(async () => await b.app.realtime.userConnectionCount('t1', 'newcomer'), 0)
      return commands
    }
    // Warm-up: A is a live instance (with no socket left) and the scripts are loaded.
    const first = await connect(a, { sub: 'early' })
    first.close()
    await first.closed
    await settled(async () => await b.app.realtime.connectionCount('t1'), 0)
    await connectOnB()
    const alone = await connectOnB()
    const crowd = []
    for (let i = 0; i < 150; i++) crowd.push(await connect(a, { sub: `u${i % 50}` }))
    t.equal(await b.app.realtime.connectionCount('t1'), 150)
    const crowded = await connectOnB()
    const names = (commands: string[][]): string[] => commands.map((args) => (args[0] ?? '').toLowerCase())
    t.same(names(crowded), names(alone), 'the same commands with 150 sockets on A as with none')
    t.notOk(names(crowded).some((name) => ['hgetall', 'hscan', 'hvals', 'hkeys'].includes(name)), 'no per-connection entry is read at connect')
    for (const c of crowd) c.close()
  })

  t.test('a disconnect on one instance closes the matching sockets on every instance within 1 s', async (t) => {
    const [a, b] = await pair(t, topology)
    const admin = sign({ sub: 'boss', roles: ['admin'] })
    const onA = await connect(a, { sub: 'alice' })
    const onB = await connect(b, { sub: 'alice' })
    const bob = await connect(b, { sub: 'bob' })
    const reply = await post(a, '/api/v1/admin/disconnect', admin, { userId: 'alice' })
    t.same(reply.body, { closed: 1 }, 'A closed its own socket')
    const closedWithin = async (client: Client): Promise<unknown> => await within(client.closed, 1000, 'still open after 1 s')
    t.same(await closedWithin(onA), { code: 4403, reason: 'REVOKED' })
    t.same(await closedWithin(onB), { code: 4403, reason: 'REVOKED' }, 'B closed its socket of the user')
    const clientId = bob.frames.find((f) => f.type === 'connected')?.clientId as string
    await post(a, '/api/v1/admin/disconnect', admin, { clientId })
    t.same(await closedWithin(bob), { code: 4403, reason: 'REVOKED' }, 'a connection id is found on the other instance')
    const rest = [await connect(a, { sub: 'carol' }), await connect(b, { sub: 'dave' })]
    const stranger = await connect(b, { sub: 'dave', tenantId: 'other' })
    await post(b, '/api/v1/admin/disconnect', admin, { all: true })
    for (const c of rest) t.same(await closedWithin(c), { code: 4403, reason: 'REVOKED' })
    await drain(stranger)
    t.equal(stranger.socket.readyState, stranger.socket.OPEN, 'another tenant is untouched')
    stranger.close()
  })

  t.test('a revocation holds on every instance, including one started after it', async (t) => {
    const [a, b] = await pair(t, topology)
    const earlier = { sub: 'alice', iat: Math.floor(Date.now() / 1000) - 60 }
    const onB = await connect(b, earlier)
    const reply = await post(a, '/api/v1/admin/revoke', sign({ sub: 'boss', roles: ['admin'] }), { userId: 'alice' })
    t.equal(reply.status, 202)
    t.same(await within(onB.closed, 1000, undefined), { code: 4403, reason: 'REVOKED' }, 'B closed the user\'s live socket')
    t.same(await new Client(`${b.ws}?token=${sign(earlier)}`).closed, { code: 4401, reason: 'TOKEN_REVOKED' })
    const c = await build(t, { ...await redisTarget(topology), REDIS_PREFIX: (a.app.tenantcast.config.REDIS_PREFIX), PRESENCE_TTL: 2 })
    const refused = await get(c, '/api/v1/presence', sign(earlier))
    t.equal(refused.status, 401)
    t.equal(refused.body.code, 'TOKEN_REVOKED', 'an instance started later loads the revocation from Redis')
    t.equal((await get(c, '/api/v1/presence', sign({ sub: 'alice', iat: reply.body.before }))).status, 200)
  })

  t.test('an instance whose Redis link was cut during a revocation refuses the revoked tokens once it is back', { skip: topology === 'cluster' && STANDALONE_ONLY }, async (t) => {
    const proxy = await RedisProxy.start()
    t.teardown(async () => { await proxy.close() })
    const prefix = await redisPrefix(t)
    const viaProxy = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix })
    const direct = await build(t, { REDIS_URL, REDIS_PREFIX: prefix })
    const earlier = { sub: 'alice', iat: Math.floor(Date.now() / 1000) - 60 }
    proxy.cut()
    t.equal((await post(direct, '/api/v1/admin/revoke', sign({ sub: 'boss', roles: ['admin'] }), { userId: 'alice' })).status, 202)
    proxy.restore()
    await waitFor(async () => (await get(viaProxy, '/api/v1/presence', sign(earlier))).status === 401)
    const refused = await get(viaProxy, '/api/v1/presence', sign(earlier))
    t.equal(refused.body.code, 'TOKEN_REVOKED', 'the missed revocation was read back from Redis')
  })

  t.test('while Redis is unreachable ingestion answers 503, sockets stay open, and delivery resumes without a gap', { skip: topology === 'cluster' && STANDALONE_ONLY }, async (t) => {
    const proxy = await RedisProxy.start()
    t.teardown(async () => { await proxy.close() })
    const prefix = await redisPrefix(t)
    const viaProxy = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix })
    const direct = await build(t, { REDIS_URL, REDIS_PREFIX: prefix })
    const client = await connect(viaProxy)
    t.equal((await postAlarm(viaProxy, sign(), { message: 'before' })).status, 202)
    t.match(await client.next('event'), { offset: 1 })

    proxy.cut()
    const refused = await fetch(`${viaProxy.http}/api/v1/alarms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sign()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'during', camera: 'c', severity: 'high' })
    })
    t.equal(refused.status, 503)
    t.match(await refused.json(), { code: 'BROKER_UNAVAILABLE' })
    t.equal(refused.headers.get('retry-after'), '1')
    t.equal((await fetch(`${viaProxy.http}/ready`)).status, 503, 'not ready')
    // Meanwhile another instance, still connected, stores two events.
    t.equal((await postAlarm(direct, sign(), { message: 'elsewhere 1' })).status, 202)
    t.equal((await postAlarm(direct, sign(), { message: 'elsewhere 2' })).status, 202)
    client.send({ type: 'ping', id: 'alive' })
    t.match(await client.next('pong'), { ref: 'alive' }, 'the socket stayed open')

    proxy.restore()
    await waitFor(async () => (await fetch(`${viaProxy.http}/ready`)).status === 200)
    // Nothing is posted before this read: only the catch-up after the reconnect can fill the gap.
    const caughtUp = await quietly(() => events(client), 3)
    t.same(caughtUp.map((e) => [e.offset, e.data.message]), [[1, 'before'], [2, 'elsewhere 1'], [3, 'elsewhere 2']], 'the catch-up delivered each missed event once, in order')
    t.equal((await postAlarm(viaProxy, sign(), { message: 'after' })).status, 202)
    const got = await quietly(() => events(client), 4)
    t.same(got.map((e) => [e.offset, e.data.message]), [[1, 'before'], [2, 'elsewhere 1'], [3, 'elsewhere 2'], [4, 'after']], 'no gap, no duplicate')
    client.close()
  })
})
}

/** A WebSocket client that reconnects to a fallback URL from its last position when its socket dies. */
class Follower {
  readonly offsets: number[] = []
  readonly ready: Promise<void>
  reconnected = false
  private client: Client
  private last: Frame | undefined
  private closing = false

  constructor (url: string, private readonly fallback: string) {
    this.client = this.open(url)
    this.ready = this.client.next('authenticated').then(() => undefined)
  }

  close (): void {
    this.closing = true
    this.client.close()
  }

  private open (url: string): Client {
    const client = new Client(url)
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type !== 'event') return
      this.offsets.push(frame.offset as number)
      this.last = frame
    })
    void client.closed.then(() => {
      if (this.closing || this.reconnected) return
      this.reconnected = true
      const since = this.last === undefined ? '' : `&since=${this.last.epoch as string}:${this.last.offset as number}`
      this.client = this.open(`${this.fallback}${since}`)
    })
    return client
  }
}

/**
 * A TCP proxy to Redis that a test can cut (connections reset, new ones refused) and restore,
 * or pause (connections stay open and nothing is forwarded, as under CLIENT PAUSE or a
 * partition that sends no reset) and resume. Pausing the proxy rather than the server keeps
 * the stall to this test's gateways: other suites share the same Redis.
 */
class RedisProxy {
  private readonly pairs = new Set<[Socket, Socket]>()
  private open = true
  private paused = false

  private constructor (private readonly server: Server, readonly port: number) {}

  /** `version` makes the server announce that version in INFO (same length as the real one). */
  static async start (options: { version?: (real: string) => string } = {}): Promise<RedisProxy> {
    const target = new URL(REDIS_URL)
    let proxy: RedisProxy | undefined
    const server = createServer((socket) => {
      if (proxy === undefined || !proxy.open) {
        socket.destroy()
        return
      }
      const upstream = tcpConnect(Number(target.port || 6379), target.hostname)
      const rewrite = options.version
      if (rewrite !== undefined) {
        upstream.on('data', (chunk: Buffer) => {
          const text = chunk.toString('latin1').replace(/redis_version:([0-9.]+)/g, (_, real: string) => `redis_version:${rewrite(real)}`)
          chunk.set(Buffer.from(text, 'latin1'))
        })
      }
      const pair: [Socket, Socket] = [socket, upstream]
      proxy.pairs.add(pair)
      for (const s of pair) {
        s.on('error', () => {})
        s.on('close', () => { proxy?.pairs.delete(pair); socket.destroy(); upstream.destroy() })
      }
      flow(pair, !proxy.paused)
    })
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
    proxy = new RedisProxy(server, (server.address() as { port: number }).port)
    return proxy
  }

  cut (): void {
    this.open = false
    for (const pair of this.pairs) for (const s of pair) s.destroy()
  }

  /** New connections are refused; open ones stay, so a connection Redis dropped stays away. */
  refuse (): void {
    this.open = false
  }

  restore (): void {
    this.open = true
  }

  /** The address Redis sees for each proxied connection, as CLIENT LIST and CLIENT KILL ADDR name it. */
  upstreams (): string[] {
    return [...this.pairs].map(([, upstream]) => `${upstream.localAddress as string}:${upstream.localPort as number}`)
  }

  pause (): void {
    this.paused = true
    for (const pair of this.pairs) flow(pair, false)
  }

  resume (): void {
    this.paused = false
    for (const pair of this.pairs) flow(pair, true)
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise((resolve) => { this.server.close(resolve) })
  }
}

/** Forwards both ways, or holds what arrives in each socket's buffer until forwarding resumes. */
function flow ([socket, upstream]: [Socket, Socket], on: boolean): void {
  if (on) {
    socket.pipe(upstream)
    upstream.pipe(socket)
  } else {
    socket.unpipe(upstream)
    upstream.unpipe(socket)
    socket.pause()
    upstream.pause()
  }
}

/** Polls an asynchronous condition, at most ~15 s; the assertions that follow say what was expected. */
async function waitFor (condition: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 300; i++) {
    if (await condition().catch(() => false)) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

t.test('a Redis that stops answering', { skip: redisSkip }, async (t) => {
  t.test('ingestion answers 503 within the command timeout, /ready turns false, and nothing refused is stored later', async (t) => {
    const proxy = await RedisProxy.start()
    t.teardown(async () => { await proxy.close() })
    const prefix = await redisPrefix(t)
    const gw = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: 500 })
    const client = await connect(gw)
    t.equal((await postAlarm(gw, sign(), { message: 'before' })).status, 202)
    t.match(await client.next('event'), { offset: 1 })

    proxy.pause()
    // A bounded wait: a request still unanswered after 5 s is a stall.
    const attempt = async (headers: Record<string, string>): Promise<Response | undefined> => await fetch(`${gw.http}/api/v1/alarms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sign()}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ message: 'during', camera: 'c', severity: 'high' }),
      signal: AbortSignal.timeout(5000)
    }).catch(() => undefined)
    const refused = await Promise.all([attempt({}), attempt({}), attempt({}), attempt({ 'idempotency-key': 'stalled' })])
    t.same(refused.map((r) => r?.status), [503, 503, 503, 503], 'every request is answered 503, none hangs')
    t.match(await refused[0]?.json(), { code: 'BROKER_UNAVAILABLE' })
    t.equal(await waitFor(async () => (await fetch(`${gw.http}/ready`, { signal: AbortSignal.timeout(2000) })).status === 503), true, '/ready turns false')
    client.send({ type: 'ping', id: 'alive' })
    t.match(await client.next('pong'), { ref: 'alive' }, 'the socket stayed open')

    proxy.resume()
    t.equal(await waitFor(async () => (await fetch(`${gw.http}/ready`)).status === 200), true, 'ready again once Redis answers')
    t.equal((await postAlarm(gw, sign(), { message: 'after' })).status, 202)
    await client.collect('event', 2)
    await drain(client)
    t.same(events(client).map((e) => [e.offset, e.data.message]), [[1, 'before'], [2, 'after']], 'no refused request was stored when Redis came back')
    client.close()
  })
})

t.test('a Redis older than 6.2 is refused at start-up with one clear line', { skip: redisSkip }, async (t) => {
  // The proxy makes the local Redis announce 6.0.x, the last release without exclusive XRANGE.
  const proxy = await RedisProxy.start({ version: (real) => `6.0.${'9'.repeat(real.length - 4)}` })
  t.teardown(async () => { await proxy.close() })
  const prefix = await redisPrefix(t)
  const failed = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix }).then(() => undefined, (err: Error) => err)
  t.match(failed?.message, /^Redis 6\.0\.9+ at 127\.0\.0\.1:\d+ is too old: tenantcast needs Redis 6\.2 or newer/)
  t.notOk(failed?.message.includes('\n'), 'one line')
  t.ok(await build(t, { REDIS_URL, REDIS_PREFIX: prefix }), 'the real server starts')

  // A gateway that meets the old server only on a reconnect (a failover) stores nothing on it.
  const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, prefix, historySize: 10, historyTtlMs: 60_000, historyMetaTtlMs: 60_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: { warn: () => {} } })
  t.teardown(async () => { await broker.close() })
  t.equal(await broker.connected(5000), true)
  t.equal(await settled(() => broker.ready(), false), false, 'not ready')
  await t.rejects(broker.publish({ id: 'x', tenantId: 't1', event: 'tick', data: {}, target: { kind: 'tenant' }, timestamp: 'now' }), /too old/)
  await t.rejects(broker.read('t1', 'tenant', 0, 10), /too old/)
})

t.test('a subscriber that Redis disconnects', { skip: redisSkip }, async (t) => {
  t.test('a socket on a channel that was quiet gets every event published during the reconnect once, in order, or an explicit gap', async (t) => {
    const proxy = await RedisProxy.start()
    const admin = new Redis(REDIS_URL)
    t.teardown(async () => { await proxy.close(); admin.disconnect() })
    const gw = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: await redisPrefix(t) })
    const acknowledged: number[] = []
    const publish = async (n: number): Promise<void> => {
      const reply = await post(gw, '/api/v1/publish', publisher, { event: 'tick', data: { n }, channel: 'quiet' })
      t.equal(reply.status, 202, `event ${n} stored`)
      acknowledged.push(reply.body.offset as number)
    }
    for (let n = 1; n <= 2; n++) await publish(n)
    acknowledged.splice(0)
    const subscribe = async (since?: string): Promise<Client> => {
      const client = await connect(gw)
      client.send({ type: 'subscribe', channel: 'quiet', ...(since === undefined ? {} : { since }) })
      await client.next('subscribed')
      return client
    }
    const first = await subscribe()
    t.match(first.frames.find((f) => f.type === 'subscribed'), { position: { offset: 2 } }, 'attached at offset 2, nothing delivered live yet')

    // CLIENT KILL TYPE pubsub, for this gateway's connections only (other suites share the
    // Redis); the proxy holds the reconnect back until the events below are stored.
    proxy.refuse()
    for (const addr of proxy.upstreams()) await admin.client('KILL', 'TYPE', 'pubsub', 'ADDR', addr)
    t.equal(await waitFor(async () => (await fetch(`${gw.http}/ready`)).status === 503), true, 'the subscriber is gone')
    for (let n = 3; n <= 5; n++) await publish(n)
    proxy.restore()
    t.equal(await waitFor(async () => (await fetch(`${gw.http}/ready`)).status === 200), true, 'the subscriber is back')
    await publish(6)

    // A socket closed with 4008 STREAM_GAP resumes from its last position; any other outcome
    // than every event, once and in order, is a silent skip.
    const received: number[] = []
    const position = first.frames.find((f) => f.type === 'subscribed')?.position as { epoch: string, offset: number }
    let since = `${position.epoch}:${position.offset}`
    let client = first
    for (let resumes = 0; resumes <= 3; resumes++) {
      // Bounded: a socket that stays open short of the count is the silent skip asserted below.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([client.collect('event', acknowledged.length - received.length), new Promise((resolve) => { timer = setTimeout(resolve, 5000) })])
      clearTimeout(timer)
      if (client.socket.readyState === WebSocket.OPEN) {
        await new Promise((resolve) => setTimeout(resolve, 300))
        await drain(client)
        received.push(...events(client).map((e) => e.offset as number))
        break
      }
      t.match(await client.closed, { code: 4008, reason: 'STREAM_GAP' }, 'an explicit gap')
      const last = events(client).at(-1)
      received.push(...events(client).map((e) => e.offset as number))
      if (last !== undefined) since = `${last.epoch as string}:${last.offset as number}`
      client = await subscribe(since)
    }
    t.same(received, acknowledged, 'every acknowledged event exactly once, in order')
    t.same(acknowledged, [3, 4, 5, 6])
    client.close()
  })
})
