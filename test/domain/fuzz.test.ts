import fc from 'fast-check'
import t from 'tap'
import { MemoryBroker } from '../../domain/broker-memory.js'
import type { Clock } from '../../domain/clock.js'
import { ErrorCode } from '../../domain/error-codes.js'
import { Hub, type Connection } from '../../domain/hub.js'
import { noopObserver } from '../../domain/observer.js'
import { MergedPresence } from '../../domain/presence.js'
import { AuthFailure, AuthReason, type Principal } from '../../domain/principal.js'
import { Session } from '../../domain/session.js'

/**
 * Property-based fuzzing of the frame parser and the session state machine. Each run drives
 * two tenants' sessions with generated frames: random text and bytes, deep and huge JSON,
 * wrong types, prototype-pollution keys, unicode edges, and sequences of valid and invalid
 * commands. Set FUZZ_SEED to replay a failing run; fast-check prints the seed and the path.
 */
const seed = Number(process.env.FUZZ_SEED ?? 7_20261122)
const RUNS = 120
const FRAMES_PER_RUN = { minLength: 90, maxLength: 110 }
const KNOWN_CODES = new Set<string>([...Object.values(ErrorCode), ...Object.values(AuthReason)])

class Recorder implements Connection {
  frames: Array<Record<string, any>> = []
  closed: [number, string] | undefined
  bufferedAmount = 0
  send (data: string): void { this.frames.push(JSON.parse(data) as Record<string, any>) }
  close (code: number, reason: string): void { this.closed = [code, reason] }
}

const frozenClock: Clock = { now: () => 1_000_000, setTimeout: () => 0, clearTimeout: () => {} }

function verify (token: string): Promise<Principal> {
  const [kind, tenantId, userId] = token.split(':')
  if (kind !== 'tok' || tenantId === undefined || userId === undefined) return Promise.reject(new AuthFailure(AuthReason.TOKEN_MALFORMED, 'bad'))
  return Promise.resolve({ tenantId, userId, roles: [] })
}

function world (): { a: Session, b: Session, aConn: Recorder, bConn: Recorder, errors: unknown[], broker: MemoryBroker } {
  const errors: unknown[] = []
  const hub = new Hub({ maxBufferedBytes: 1 << 30, maxHeldEvents: 1000 })
  const broker = new MemoryBroker({ historySize: 50, historyTtlMs: 60_000, historyMetaTtlMs: 60_000, clock: frozenClock, onListenerError: (err) => { errors.push(err) } })
  broker.onDelivery((event) => { hub.deliver(event) })
  const log = { info: () => {}, warn: () => {}, error: (fields: object) => { errors.push(fields) } }
  const make = (clientId: string, connection: Recorder): Session => new Session({
    clientId,
    connection,
    hub,
    broker,
    verify,
    refuses: () => false,
    publish: async (envelope) => await broker.publish({ ...envelope, id: `e-${Math.random()}`, timestamp: new Date(0).toISOString() }),
    presence: new MergedPresence(hub),
    limits: { frameRate: 1e9, frameBurst: 1e9, frameStrikes: 1e9, connectionsPerUser: 0, connectionsPerTenant: 0, preAuthFrameBytes: 16384 },
    observer: noopObserver,
    authTimeoutMs: 10_000,
    maxChannels: 20,
    clientPublish: ['*'],
    replayLimit: 50,
    replayPaceBytes: 1 << 20,
    clock: frozenClock,
    log
  })
  const aConn = new Recorder()
  const bConn = new Recorder()
  return { a: make('client-a', aConn), b: make('client-b', bConn), aConn, bConn, errors, broker }
}

const channel = fc.oneof(
  fc.constantFrom('room-1', 'chat:x', 'shared', '__proto__', 'constructor', 'prototype', '', '../etc', 'a'.repeat(129)),
  fc.string({ maxLength: 140 }),
  fc.string({ unit: 'grapheme', maxLength: 12 })
)
const id = fc.option(fc.oneof(fc.string({ maxLength: 140 }), fc.integer(), fc.double(), fc.constant(null), fc.dictionary(fc.string(), fc.string())), { nil: undefined })
const since = fc.option(fc.oneof(fc.string(), fc.constant('epoch:1'), fc.nat().map((n) => `x:${n}`)), { nil: undefined })
const command = fc.oneof(
  fc.record({ type: fc.constant('ping'), id }),
  fc.record({ type: fc.constant('subscribe'), channel, since, id }),
  fc.record({ type: fc.constant('unsubscribe'), channel, id }),
  fc.record({ type: fc.constantFrom('join-room', 'leave-room'), roomId: channel, id }),
  fc.record({ type: fc.constant('publish'), channel, event: fc.oneof(fc.constantFrom('say', 'event:created', 'message', 'bad name'), fc.string({ maxLength: 70 })), data: fc.jsonValue({ maxDepth: 4 }), id }),
  fc.record({ type: fc.constant('message'), roomId: fc.option(channel, { nil: undefined }), message: fc.string({ maxLength: 50 }), id }),
  fc.record({ type: fc.constant('resume'), since: fc.string({ maxLength: 60 }), id }),
  fc.record({ type: fc.constant('authenticate'), token: fc.constantFrom('tok:a:fuzzer-a', 'tok:b:intruder', 'tok:a:someone-else', 'garbage'), since, id })
)
const knownType = fc.constantFrom('ping', 'authenticate', 'resume', 'subscribe', 'unsubscribe', 'join-room', 'leave-room', 'publish', 'message')
const wrongTypes = fc.record({ type: fc.oneof(knownType, fc.jsonValue()), channel: fc.jsonValue(), roomId: fc.jsonValue(), token: fc.jsonValue(), since: fc.jsonValue(), id: fc.jsonValue(), payload: fc.jsonValue() }, { requiredKeys: ['type'] })
const pollution = fc.constantFrom(
  '{"type":"ping","__proto__":{"polluted":true}}',
  '{"type":"subscribe","channel":"x","constructor":{"prototype":{"polluted":true}}}',
  '{"type":"subscribe","payload":{"channel":"x","__proto__":{"polluted":true}}}',
  '{"__proto__":{"type":"ping"}}',
  '{"type":"publish","channel":"shared","event":"say","data":{"__proto__":{"polluted":true}}}'
)
const deep = fc.integer({ min: 1, max: 5_000 }).map((n) => '['.repeat(n) + ']'.repeat(n))
const deepData = fc.integer({ min: 1, max: 3_000 }).map((n) => `{"type":"publish","channel":"shared","event":"say","data":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`)
const huge = fc.integer({ min: 1_000, max: 30_000 }).map((n) => JSON.stringify({ type: 'ping', pad: 'x'.repeat(n) }))
const bytes = fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b).toString('utf8'))
const frame = fc.oneof(
  { weight: 6, arbitrary: command.map((c) => JSON.stringify(c)) },
  { weight: 2, arbitrary: wrongTypes.map((c) => JSON.stringify(c)) },
  { weight: 1, arbitrary: pollution },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: deepData },
  { weight: 1, arbitrary: huge },
  { weight: 2, arbitrary: bytes },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) }
)

t.test('no generated frame sequence throws, leaves a frame unanswered, answers with an undefined code, or crosses tenants', async (t) => {
  let frames = 0
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort()
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.boolean(), frame), FRAMES_PER_RUN), async (sequence) => {
    const w = world()
    w.a.start('tok:a:fuzzer-a')
    w.b.start('tok:b:watcher')
    await Promise.all([w.a.idle(), w.b.idle()])
    // B joins the channel names the fuzzer uses most, so a leak would reach it.
    for (const name of ['shared', 'room-1', 'chat:x']) w.b.receive(JSON.stringify({ type: 'subscribe', channel: name }))
    await w.b.idle()
    for (const [toB, text] of sequence) {
      const session = toB ? w.b : w.a
      const connection = toB ? w.bConn : w.aConn
      const before = connection.frames.length
      session.receive(text)
      await session.idle()
      frames++
      const replies = connection.frames.slice(before)
      if (replies.length === 0) throw new Error(`no answer to ${JSON.stringify(text.slice(0, 120))}`)
      for (const reply of replies) {
        if (reply.type === 'error' && !KNOWN_CODES.has(reply.code as string)) throw new Error(`undefined error code ${String(reply.code)}`)
      }
    }
    await w.broker.publish({ id: 'marker', tenantId: 'a', event: 'secret', data: { tenant: 'a' }, target: { kind: 'tenant' }, timestamp: 'now' })
    if (w.errors.length > 0) throw new Error(`a session task failed: ${JSON.stringify(w.errors[0])}`)
    if (w.aConn.closed !== undefined || w.bConn.closed !== undefined) throw new Error(`a session was closed: ${JSON.stringify(w.aConn.closed ?? w.bConn.closed)}`)
    for (const f of w.bConn.frames) {
      if (f.type === 'event' && (f.from?.userId === 'fuzzer-a' || f.data?.tenant === 'a')) throw new Error('tenant a\'s event reached tenant b')
      if (f.type === 'authenticated' && f.tenantId !== 'b') throw new Error('tenant b\'s session changed tenant')
      if ((f.type === 'user-joined' || f.type === 'user-left') && f.userId === 'fuzzer-a') throw new Error('tenant a\'s presence reached tenant b')
    }
    for (const f of w.aConn.frames) {
      if (f.type === 'authenticated' && (f.tenantId !== 'a' || f.userId !== 'fuzzer-a')) throw new Error('tenant a\'s session changed identity')
    }
    if (({} as Record<string, unknown>).polluted !== undefined) throw new Error('Object.prototype was polluted')
  }), { seed, numRuns: RUNS })
  t.ok(frames >= 10_000, `${frames} generated frames handled`)
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys, 'Object.prototype is unchanged')
})
