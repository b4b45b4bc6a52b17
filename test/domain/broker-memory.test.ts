import t from 'tap'
import { MemoryBroker } from '../../domain/broker-memory.js'
import type { Clock } from '../../domain/clock.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { brokerBehaviour } from './broker-behaviour.js'

function fakeClock (): Clock & { advance: (ms: number) => void } {
  let now = 1_000_000
  return { now: () => now, setTimeout: () => 0, clearTimeout: () => {}, advance: (ms) => { now += ms } }
}

function envelope (n: number, extra: Partial<EventEnvelope> = {}): EventEnvelope {
  return { id: `e${n}`, tenantId: 'acme', event: 'tick', data: { n }, target: { kind: 'tenant' }, timestamp: '2026-01-01T00:00:00.000Z', ...extra }
}

function broker (clock = fakeClock(), historySize = 5, historyTtlMs = 60_000): MemoryBroker {
  return new MemoryBroker({ historySize, historyTtlMs, clock, onListenerError: () => {} })
}

t.test('history drops events older than HISTORY_TTL, also on quiet streams', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 10_000)
  await b.publish(envelope(1))
  clock.advance(6_000)
  await b.publish(envelope(2))
  clock.advance(5_000)
  const read = await b.read('acme', 'tenant', 0, 100)
  t.same(read.events.map((e) => e.offset), [2], 'the first is past the TTL')
  t.equal(read.oldest, 2)
  clock.advance(10_000)
  b.sweep()
  t.equal(b.heldCount(), 0, 'the sweep empties a quiet stream')
  const empty = await b.read('acme', 'tenant', 0, 100)
  t.same({ oldest: empty.oldest, latest: empty.latest, events: empty.events }, { oldest: 3, latest: 2, events: [] }, 'the offset counter survives eviction')
  t.equal((await b.publish(envelope(3))).offset, 3)
})

t.test('each broker instance has its own epoch', async (t) => {
  t.not(broker().epoch, broker().epoch)
})

t.test('listeners get every event in offset order, and a throwing listener does not stop the others', async (t) => {
  const errors: unknown[] = []
  const b = new MemoryBroker({ historySize: 10, historyTtlMs: 1000, clock: fakeClock(), onListenerError: (err) => { errors.push(err) } })
  const seen: number[] = []
  b.onDelivery(() => { throw new Error('boom') })
  const off = b.onDelivery((e: StoredEvent) => { seen.push(e.offset) })
  for (let n = 1; n <= 3; n++) await b.publish(envelope(n))
  off()
  await b.publish(envelope(4))
  t.same(seen, [1, 2, 3])
  t.equal(errors.length, 4)
  await b.close()
})

t.test('the memory broker', async (t) => {
  brokerBehaviour(t, async (historySize) => broker(fakeClock(), historySize))
})
