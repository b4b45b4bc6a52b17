import t from 'tap'
import { MemoryBroker } from '../../domain/broker-memory.js'
import type { EventEnvelope } from '../../domain/events.js'
import { Hub, type Client, type Connection } from '../../domain/hub.js'
import { PositionCheck } from '../../domain/position-check.js'

// The position check over the real hub and memory broker. The broker's delivery to the hub is
// wired by hand, as the fanout plugin does, so a test can lose a delivery by unwiring it.

class FakeConnection implements Connection {
  closedWith: [number, string] | undefined
  bufferedAmount = 0
  send (): void {}
  close (code: number, reason: string): void { this.closedWith ??= [code, reason] }
}

function client (id: string, userId: string): Client & { connection: FakeConnection } {
  const connection = new FakeConnection()
  return { id, tenantId: 'acme', userId, connection, channels: new Set(), held: new Map(), floors: new Map(), close: (code, reason) => { connection.close(code, reason) } }
}

function world (): { hub: Hub, broker: MemoryBroker, check: PositionCheck, warnings: string[], lose: () => () => void, publish: (target?: EventEnvelope['target']) => Promise<void> } {
  const hub = new Hub({ maxBufferedBytes: 1 << 20, maxHeldEvents: 100 })
  const broker = new MemoryBroker({ historySize: 100, historyTtlMs: 60_000, historyMetaTtlMs: 60_000, clock: { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} }, onListenerError: (err) => { throw err } })
  const warnings: string[] = []
  let unwire = broker.onDelivery((event) => { hub.deliver(event) })
  const check = new PositionCheck({ hub, broker, log: { warn: (fields) => { warnings.push(`${(fields as { stream: string }).stream}`) } } })
  let n = 0
  return {
    hub,
    broker,
    check,
    warnings,
    // Deliveries are lost until the returned function wires them again.
    lose: () => {
      unwire()
      return () => { unwire = broker.onDelivery((event) => { hub.deliver(event) }) }
    },
    publish: async (target = { kind: 'tenant' }) => {
      await broker.publish({ id: `e${++n}`, tenantId: 'acme', event: 'tick', data: {}, target, timestamp: '2026-01-01T00:00:00.000Z' })
    }
  }
}

t.test('a stream behind in two checks in a row has its sockets closed with 4008 STREAM_BEHIND; other streams are left alone', async (t) => {
  const w = world()
  const alice = client('c1', 'alice')
  const bob = client('c2', 'bob')
  for (const c of [alice, bob]) w.hub.add(c)
  await w.publish()
  await w.publish({ kind: 'user', userId: 'alice' })
  await w.publish({ kind: 'user', userId: 'bob' })
  const rewire = w.lose()
  await w.publish({ kind: 'user', userId: 'alice' })
  rewire()
  t.equal(await w.check.run(), 0, 'the first check only suspects: the event may be in flight')
  t.equal(alice.connection.closedWith, undefined)
  t.equal(await w.check.run(), 1, 'the second finds it still undelivered')
  t.same(alice.connection.closedWith, [4008, 'STREAM_BEHIND'])
  t.equal(bob.connection.closedWith, undefined, 'bob\'s stream and the tenant stream were complete')
  t.same(w.warnings, ['user:alice'])
})

t.test('a suspect delivered before the next check is no loss', async (t) => {
  const w = world()
  const alice = client('c1', 'alice')
  w.hub.add(alice)
  await w.publish()
  const rewire = w.lose()
  await w.publish()
  rewire()
  t.equal(await w.check.run(), 0)
  // The suspected event arrives late, as a slow live message would, and the stream goes on.
  const late = (await w.broker.read('acme', 'tenant', 1, 1)).events[0]
  if (late === undefined) throw new Error('the broker no longer holds offset 2')
  w.hub.deliver(late)
  await w.publish()
  t.equal(await w.check.run(), 0, 'caught up past what the first check saw')
  t.equal(alice.connection.closedWith, undefined)
})

t.test('a broker that cannot answer is no verdict, and a stream without local sockets is not checked', async (t) => {
  const w = world()
  const alice = client('c1', 'alice')
  w.hub.add(alice)
  await w.publish()
  const rewire = w.lose()
  await w.publish()
  rewire()
  const failing = new PositionCheck({ hub: w.hub, broker: { read: async () => { throw new Error('down') } }, log: { warn: () => {} } })
  t.equal(await failing.run(), 0)
  t.equal(await failing.run(), 0)
  t.equal(alice.connection.closedWith, undefined)
  w.hub.remove(alice)
  t.same([...w.hub.streamStandings()], [], 'the stream\'s standing left with its last socket')
  t.equal(await w.check.run(), 0)
})
