import fc from 'fast-check'
import t from 'tap'
import { MemoryBroker } from '../../domain/broker-memory.js'
import type { Clock } from '../../domain/clock.js'
import { CloseCode } from '../../domain/close-codes.js'
import { ErrorCode } from '../../domain/error-codes.js'
import { Hub, type Connection } from '../../domain/hub.js'
import { noopObserver } from '../../domain/observer.js'
import { MergedPresence } from '../../domain/presence.js'
import { AuthReason, type VerifyToken } from '../../domain/principal.js'
import { Session } from '../../domain/session.js'
import Fastify from 'fastify'
import authPlugin from '../../plugins/auth.js'
import configPlugin from '../../plugins/config.js'
import { SECRET, sign } from '../helper.js'

/**
 * The session fuzz with the defences on: the frame rate limit, the connection caps, a small
 * send-buffer cap and held-event bound, the gateway's real token verifier, and several
 * identities (two tenants, users whose ids carry control characters, expired and forged
 * tokens). Set FUZZ_SEED to replay a failing run.
 */
const seed = Number(process.env.FUZZ_SEED ?? 7_20261122)
const RUNS = 60
const KNOWN_CODES = new Set<string>([...Object.values(ErrorCode), ...Object.values(AuthReason)])
const CLOSE_CODES = new Set<number>(Object.values(CloseCode))
const SESSIONS = 5

class Recorder implements Connection {
  frames: Array<Record<string, any>> = []
  closed: [number, string] | undefined
  bufferedAmount = 0
  send (data: string): void { this.frames.push(JSON.parse(data) as Record<string, any>) }
  close (code: number, reason: string): void { this.closed ??= [code, reason] }
}

/** Time moves 5 ms per frame, so the token bucket refills at a rate the fuzzer can outrun. */
function steppingClock (): Clock & { step: () => void } {
  let now = 1_000_000
  return { now: () => now, step: () => { now += 5 }, setTimeout: () => 0, clearTimeout: () => {} }
}

/** User ids start with their tenant, so any frame's userId says which tenant it came from. */
const tokens = [
  sign({ tenantId: 'a', sub: 'a-alice' }),
  sign({ tenantId: 'a', sub: 'a-bob', roles: ['publisher'] }),
  sign({ tenantId: 'b', sub: 'b-carol' }),
  sign({ tenantId: 'b', sub: 'b-carol', channels: ['room-*'] }),
  sign({ tenantId: 'a', sub: 'a-x\u0000b-y' }),
  sign({ tenantId: 'a\u0000b', sub: 'a-z' }),
  sign({ tenantId: 'a', sub: 'a-late' }, { expiresIn: -10_000 }),
  sign({ tenantId: 'b', sub: 'b-forged' }, { key: 'another-secret-that-is-long-enough-for-hs256-xx' }),
  sign({ sub: 'a-no-tenant', tenantId: undefined }),
  'not.a.jwt'
]

function world (verify: VerifyToken): { sessions: Session[], connections: Recorder[], errors: unknown[], broker: MemoryBroker, clock: ReturnType<typeof steppingClock> } {
  const errors: unknown[] = []
  const clock = steppingClock()
  const hub = new Hub({ maxBufferedBytes: 4096, maxHeldEvents: 20 })
  const broker = new MemoryBroker({ historySize: 30, historyTtlMs: 60_000, historyMetaTtlMs: 600_000, clock, onListenerError: (err) => { errors.push(err) } })
  broker.onDelivery((event) => { hub.deliver(event) })
  const log = { info: () => {}, warn: () => {}, error: (fields: object) => { errors.push(fields) } }
  const connections = Array.from({ length: SESSIONS }, () => new Recorder())
  const sessions = connections.map((connection, i) => new Session({
    clientId: `client-${i}`,
    connection,
    hub,
    broker,
    verify,
    refuses: () => false,
    publish: async (envelope) => await broker.publish({ ...envelope, id: `e-${Math.random()}`, timestamp: new Date(0).toISOString() }),
    presence: new MergedPresence(hub),
    limits: { frameRate: 40, frameBurst: 10, frameStrikes: 25, connectionsPerUser: 1, connectionsPerTenant: 3, preAuthFrameBytes: 16384 },
    observer: noopObserver,
    authTimeoutMs: 10_000,
    maxChannels: 5,
    clientPublish: ['room-*', 'shared'],
    replayLimit: 30,
    replayPaceBytes: 2048,
    clock,
    log
  }))
  return { sessions, connections, errors, broker, clock }
}

const channel = fc.constantFrom('room-1', 'room-2', 'shared', 'chat:x', '__proto__', '', 'a'.repeat(129))
const id = fc.option(fc.oneof(fc.string({ maxLength: 20 }), fc.integer()), { nil: undefined })
const command = fc.oneof(
  fc.record({ type: fc.constant('ping'), id }),
  fc.record({ type: fc.constant('authenticate'), token: fc.constantFrom(...tokens), since: fc.option(fc.constantFrom('x:1', 'bad'), { nil: undefined }), id }),
  fc.record({ type: fc.constant('subscribe'), channel, id }),
  fc.record({ type: fc.constant('unsubscribe'), channel, id }),
  fc.record({ type: fc.constant('publish'), channel, event: fc.constantFrom('say', 'alarm:created', 'connect'), data: fc.jsonValue({ maxDepth: 3 }), id }),
  fc.record({ type: fc.constant('resume'), since: fc.constantFrom('x:0', 'bad', '0:0'), id })
)
/** A step: which session, and either a frame, a burst of one frame, or a change of its send buffer. */
const step = fc.tuple(fc.nat({ max: SESSIONS - 1 }), fc.oneof(
  { weight: 8, arbitrary: command.map((c) => ({ frame: JSON.stringify(c), times: 1 })) },
  { weight: 1, arbitrary: fc.tuple(command, fc.integer({ min: 10, max: 60 })).map(([c, times]) => ({ frame: JSON.stringify(c), times })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((frame) => ({ frame, times: 1 })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1 << 20).map((buffered) => ({ buffered })) }
))

t.test('with rate limits, caps, buffer bounds, the real verifier and varied identities, every answer and close is defined and no tenant sees another\'s', async (t) => {
  // The gateway's own verifier (fast-jwt, claim checks, identity rules), on a bare Fastify.
  const app = Fastify({ logger: false })
  await app.register(configPlugin, { config: { JWT_SECRET: SECRET } })
  await app.register(authPlugin)
  await app.ready()
  t.teardown(async () => { await app.close() })
  const verify: VerifyToken = async (token) => await app.auth.verify(token)
  t.match(await verify(tokens[0] as string), { tenantId: 'a', userId: 'a-alice' }, 'the verifier accepts the pool\'s valid tokens')
  let steps = 0
  const closes = new Set<string>()
  // Most sessions open with one of the valid identities, so the run gets past auth; the rest
  // open with any token of the pool, or none.
  const opening = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...tokens.slice(0, 4)) }, { weight: 1, arbitrary: fc.option(fc.constantFrom(...tokens), { nil: undefined }) })
  await fc.assert(fc.asyncProperty(fc.array(opening, { minLength: SESSIONS, maxLength: SESSIONS }), fc.array(step, { minLength: 60, maxLength: 120 }), async (openings, sequence) => {
    const w = world(verify)
    for (const [i, session] of w.sessions.entries()) {
      session.start(openings[i])
      await session.idle()
    }
    for (const [i, action] of sequence) {
      const session = w.sessions[i] as Session
      const connection = w.connections[i] as Recorder
      if ('buffered' in action) {
        connection.bufferedAmount = action.buffered
        continue
      }
      // A burst arrives within one step of the clock.
      w.clock.step()
      for (let n = 0; n < action.times; n++) session.receive(action.frame)
      await session.idle()
      steps++
    }
    for (const tenantId of ['a', 'b']) {
      await w.broker.publish({ id: `marker-${tenantId}`, tenantId, event: 'marker', data: { tenant: tenantId }, target: { kind: 'tenant' }, timestamp: 'now' })
    }
    await Promise.all(w.sessions.map(async (s) => { await s.idle() }))
    if (w.errors.length > 0) throw new Error(`a session task failed: ${JSON.stringify(w.errors[0])}`)
    for (const [i, connection] of w.connections.entries()) {
      const identities = new Set(connection.frames.filter((f) => f.type === 'authenticated').map((f) => `${f.tenantId as string}/${f.userId as string}`))
      if (identities.size > 1) throw new Error(`session ${i} changed identity: ${[...identities].join(', ')}`)
      const [identity] = [...identities]
      const tenantId = identity?.split('/')[0]
      for (const f of connection.frames) {
        if (f.type === 'error' && !KNOWN_CODES.has(f.code as string)) throw new Error(`undefined error code ${String(f.code)}`)
        if (f.type === 'authenticated' && (/[\u0000-\u001f]/.test(String(f.tenantId)) || /[\u0000-\u001f]/.test(String(f.userId)))) throw new Error('a control character in an identity was accepted')
        if (f.type === 'event' && f.data?.tenant !== undefined && f.data.tenant !== tenantId) throw new Error(`tenant ${String(f.data.tenant)}'s event reached tenant ${String(tenantId)}`)
        if (f.type === 'event' && f.from?.userId !== undefined && !String(f.from.userId).startsWith(`${String(tenantId)}-`)) throw new Error(`a publish from ${String(f.from.userId)} reached tenant ${String(tenantId)}`)
        if ((f.type === 'user-joined' || f.type === 'user-left') && !String(f.userId).startsWith(`${String(tenantId)}-`)) throw new Error(`presence of ${String(f.userId)} reached tenant ${String(tenantId)}`)
      }
      if (connection.closed !== undefined) {
        if (!CLOSE_CODES.has(connection.closed[0])) throw new Error(`undefined close code ${connection.closed[0]}`)
        closes.add(`${connection.closed[0]} ${connection.closed[1]}`)
      }
    }
    if (({} as Record<string, unknown>).polluted !== undefined) throw new Error('Object.prototype was polluted')
  }), { seed, numRuns: RUNS })
  t.ok(steps >= 3000, `${steps} generated steps handled`)
  // The defences did fire: otherwise this run proves nothing about them.
  for (const expected of ['4029 RATE_LIMITED', '4008 SLOW_CONSUMER']) t.ok(closes.has(expected), `some run closed a socket with ${expected} (seen: ${[...closes].sort().join('; ')})`)
  t.ok([...closes].some((c) => c.startsWith('4029 USER_CONNECTION_LIMIT') || c.startsWith('4029 TENANT_CONNECTION_LIMIT')), 'some run hit a connection cap')
  t.ok([...closes].some((c) => c.startsWith('4401 ')), 'some run refused a token')
})
