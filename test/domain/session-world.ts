import { MemoryBroker } from '../../domain/broker-memory.js'
import type { Clock } from '../../domain/clock.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { Hub, type Connection, type HubOptions } from '../../domain/hub.js'
import type { Observer } from '../../domain/observer.js'
import { MergedPresence } from '../../domain/presence.js'
import { AuthFailure, AuthReason, AuthUnavailable, type Principal } from '../../domain/principal.js'
import { Session, type SessionLimits } from '../../domain/session.js'
import type { SinceInput } from '../../domain/streams.js'

// The world the session tests drive: fake connections, the real hub, the real memory broker
// and presence, and a clock the test moves.

export class FakeConnection implements Connection {
  frames: Array<Record<string, unknown>> = []
  closedWith: [number, string] | undefined
  bufferedAmount = 0
  drains = 0
  send (data: string): void { this.frames.push(JSON.parse(data) as Record<string, unknown>) }
  close (code: number, reason: string): void { this.closedWith ??= [code, reason] }
  async drained (): Promise<void> { this.drains++ }
  types (): string[] { return this.frames.map((f) => String(f.type)) }
  take (): Array<Record<string, unknown>> { return this.frames.splice(0) }
}

export class FakeClock implements Clock {
  time = 1_000_000_000_000
  timers = new Map<number, { at: number, fn: () => void }>()
  private next = 1
  now (): number { return this.time }
  setTimeout (fn: () => void, ms: number): unknown {
    const id = this.next++
    this.timers.set(id, { at: this.time + ms, fn })
    return id
  }

  clearTimeout (handle: unknown): void { this.timers.delete(handle as number) }
  advance (ms: number): void {
    this.time += ms
    for (const [id, timer] of [...this.timers]) {
      if (timer.at <= this.time && this.timers.has(id)) {
        this.timers.delete(id)
        timer.fn()
      }
    }
  }
}

export const tokens: Record<string, Principal> = {
  alice: { tenantId: 'acme', userId: 'alice', roles: [] },
  alice2: { tenantId: 'acme', userId: 'alice', roles: [], channels: ['ops', 'team-*'] },
  bob: { tenantId: 'acme', userId: 'bob', roles: [] },
  pub: { tenantId: 'acme', userId: 'pub', roles: ['publisher'] },
  carol: { tenantId: 'globex', userId: 'carol', roles: [] },
  limited: { tenantId: 'acme', userId: 'alice', roles: [], channels: ['ops'] },
  aliceGlobex: { tenantId: 'globex', userId: 'alice', roles: [] }
}

export interface World {
  hub: Hub
  broker: MemoryBroker
  clock: FakeClock
  authFailures: string[]
  rateLimited: string[]
  sentBytes: number[]
  logs: string[]
  published: Array<Omit<EventEnvelope, 'id' | 'timestamp'>>
  failPublish: Error | undefined
  failRead: boolean
  presenceDown: boolean
  open: (options?: Partial<{ token: string, since: SinceInput, limits: Partial<SessionLimits>, maxChannels: number, clientPublish: string[], replayPaceBytes: number, replayLimit: number }>) => { session: Session, connection: FakeConnection }
  post: (envelope: Omit<EventEnvelope, 'tenantId' | 'id' | 'timestamp'> & { tenantId?: string }) => Promise<StoredEvent>
  duringRead: (() => Promise<void>) | undefined
  /** Runs inside the next token verification, before its verdict. */
  duringVerify: (() => void) | undefined
  /** Users whose tokens the kill switch refuses. */
  revoked: Set<string>
  /** The broker's watch and unwatch calls, as `watch <stream>` and `unwatch <stream>`. */
  watches: string[]
}

export function world (historySize = 100, hubOptions: Pick<HubOptions, 'fanoutSlice' | 'defer'> = {}): World {
  const clock = new FakeClock()
  const w: Partial<World> = { clock, authFailures: [], rateLimited: [], sentBytes: [], logs: [], published: [], failPublish: undefined, duringVerify: undefined, revoked: new Set(), watches: [], failRead: false, presenceDown: false }
  const hub = new Hub({ maxBufferedBytes: 10_000, maxHeldEvents: 3, ...hubOptions })
  const broker = new MemoryBroker({ historySize, historyTtlMs: 60_000, historyMetaTtlMs: 600_000, clock, onListenerError: (err) => { throw err } })
  broker.onDelivery((event) => { hub.deliver(event) })
  const merged = new MergedPresence(hub)
  const presence = {
    connectionCount: async (tenantId: string) => { if (w.presenceDown === true) throw new Error('down'); return await merged.connectionCount(tenantId) },
    userConnectionCount: async (tenantId: string, userId: string) => { if (w.presenceDown === true) throw new Error('down'); return await merged.userConnectionCount(tenantId, userId) }
  }
  const observer: Observer = {
    delivered () {},
    waited () {},
    sent (bytes) { w.sentBytes?.push(bytes) },
    frameIn () {},
    slowConsumer () {},
    rateLimited (kind, tenantId) { w.rateLimited?.push(`${kind} ${tenantId}`) },
    authFailed (reason) { w.authFailures?.push(reason) }
  }
  const log = {
    info: (fields: object) => { w.logs?.push(`info ${(fields as { action: string }).action}`) },
    warn: (fields: object) => { w.logs?.push(`warn ${(fields as { action: string }).action}`) },
    error: (fields: object) => { w.logs?.push(`error ${(fields as { action: string }).action}`) }
  }
  const read = broker.read.bind(broker)
  let ids = 0
  let events = 0
  w.hub = hub
  w.broker = broker
  w.post = async (envelope) => await broker.publish({ tenantId: 'acme', id: `e${++events}`, timestamp: new Date(clock.time).toISOString(), ...envelope })
  w.open = (options = {}) => {
    const connection = new FakeConnection()
    const session = new Session({
      clientId: `c${++ids}`,
      connection,
      hub,
      broker: {
        watch: async (_tenantId, stream) => { w.watches?.push(`watch ${stream}`); await broker.watch() },
        unwatch: (_tenantId, stream) => { w.watches?.push(`unwatch ${stream}`); broker.unwatch() },
        read: async (...args) => {
          if (w.failRead === true) throw new Error('read failed')
          const during = w.duringRead
          w.duringRead = undefined
          await during?.()
          return await read(...args)
        }
      },
      refuses: (principal) => w.revoked?.has(principal.userId) === true,
      verify: async (token) => {
        await Promise.resolve()
        const during = w.duringVerify
        w.duringVerify = undefined
        during?.()
        if (token === 'down') throw new AuthUnavailable(2500, 'keys unreachable')
        if (token === 'expired') throw new AuthFailure(AuthReason.TOKEN_EXPIRED, 'expired')
        if (token === 'weird') throw new Error('boom')
        const [name, exp] = token.split('@')
        const principal = tokens[name ?? '']
        if (principal === undefined) throw new AuthFailure(AuthReason.TOKEN_INVALID, 'bad token')
        return exp === undefined ? principal : { ...principal, exp: Number(exp) }
      },
      publish: async (envelope) => {
        w.published?.push(envelope)
        if (w.failPublish !== undefined) throw w.failPublish
        return await broker.publish({ id: `e${++events}`, timestamp: new Date(clock.time).toISOString(), ...envelope })
      },
      presence,
      limits: { frameRate: 100, frameBurst: 100, frameStrikes: 3, connectionsPerUser: 0, connectionsPerTenant: 0, preAuthFrameBytes: 256, ...options.limits },
      observer,
      authTimeoutMs: 5000,
      maxChannels: options.maxChannels ?? 3,
      clientPublish: options.clientPublish,
      replayLimit: options.replayLimit ?? 50,
      replayPaceBytes: options.replayPaceBytes ?? 1_000_000,
      clock,
      log
    })
    session.start(options.token, options.since)
    return { session, connection }
  }
  return w as World
}

export async function send (session: Session, frame: unknown): Promise<void> {
  session.receive(JSON.stringify(frame))
  await session.idle()
}

export async function authed (w: World, token = 'alice', since?: SinceInput): Promise<{ session: Session, connection: FakeConnection }> {
  const opened = w.open({ token, ...(since === undefined ? {} : { since }) })
  await opened.session.idle()
  return opened
}
