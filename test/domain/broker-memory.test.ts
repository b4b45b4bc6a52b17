import t from 'tap'
import { MemoryBroker } from '../../domain/broker-memory.js'
import type { Broker } from '../../domain/broker.js'
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

function broker (clock = fakeClock(), historySize = 5, historyTtlMs = 60_000, historyMetaTtlMs = 3_600_000): MemoryBroker {
  return new MemoryBroker({ historySize, historyTtlMs, historyMetaTtlMs, clock, onListenerError: () => {} })
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

t.test('a stream idle for HISTORY_META_TTL is forgotten, and made again in a new epoch', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 10_000, 60_000)
  const first = await b.publish(envelope(1))
  await b.publish(envelope(2, { target: { kind: 'channel', channel: 'kept' } }))
  t.equal(first.epoch, b.epoch, 'a stream made before anything was forgotten is in the broker\'s epoch')
  clock.advance(40_000)
  t.equal((await b.read('acme', 'channel:kept', 0, 10)).latest, 1, 'a read is a use')
  clock.advance(30_000)
  b.sweep()
  const gone = await b.read('acme', 'tenant', 0, 10)
  t.same({ latest: gone.latest, oldest: gone.oldest, events: gone.events }, { latest: 0, oldest: 1, events: [] }, 'the idle stream is forgotten')
  t.equal((await b.read('acme', 'channel:kept', 0, 10)).latest, 1, 'a stream used within HISTORY_META_TTL is kept')
  const again = await b.publish(envelope(3))
  t.equal(again.offset, 1)
  t.not(again.epoch, first.epoch, 'offsets that restart are in a new epoch, so no old position resumes into them')
  t.equal((await b.read('acme', 'channel:kept', 0, 10)).epoch, first.epoch, 'a kept stream keeps its epoch')
})

t.test('reading streams that do not exist keeps nothing', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 10_000, 60_000)
  for (let n = 0; n < 1000; n++) await b.read('acme', `channel:fresh-${n}`, 0, 10)
  t.equal(b.streamCount(), 0)
  await b.publish(envelope(1))
  t.equal(b.streamCount(), 1)
  clock.advance(60_000)
  b.sweep()
  t.equal(b.streamCount(), 0, 'the sweep forgets the idle stream')
})

t.test('each broker instance has its own epoch', async (t) => {
  t.not(broker().epoch, broker().epoch)
})

t.test('listeners get every event in offset order, and a throwing listener does not stop the others', async (t) => {
  const errors: unknown[] = []
  const b = new MemoryBroker({ historySize: 10, historyTtlMs: 1000, historyMetaTtlMs: 1000, clock: fakeClock(), onListenerError: (err) => { errors.push(err) } })
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

t.test('an event exactly HISTORY_TTL old is expired', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 10_000)
  await b.publish(envelope(1))
  clock.advance(9_999)
  t.same((await b.read('acme', 'tenant', 0, 10)).events.map((e) => e.offset), [1], 'one ms younger than the TTL is kept')
  clock.advance(1)
  const read = await b.read('acme', 'tenant', 0, 10)
  t.same({ oldest: read.oldest, events: read.events }, { oldest: 2, events: [] }, 'at the TTL it is gone')
  t.equal(b.heldCount(), 0)
})

t.test('forgetting a stream releases its held events, and a sweep that forgets nothing keeps the epoch', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 3_600_000, 60_000)
  await b.publish(envelope(1))
  await b.publish(envelope(2))
  await b.publish(envelope(3, { target: { kind: 'channel', channel: 'busy' } }))
  t.equal(b.heldCount(), 3)
  clock.advance(30_000)
  b.sweep()
  t.equal((await b.publish(envelope(4, { target: { kind: 'channel', channel: 'new' } }))).epoch, b.epoch, 'nothing was forgotten, so a new stream is still in the broker\'s epoch')
  await b.publish(envelope(5, { target: { kind: 'channel', channel: 'busy' } }))
  clock.advance(40_000)
  b.sweep()
  t.equal(b.heldCount(), 3, 'the idle tenant stream\'s two events are no longer counted')
  t.equal(b.streamCount(), 2)
})

t.test('every forgetting sweep gives remade streams an epoch of their own', async (t) => {
  const clock = fakeClock()
  const b = broker(clock, 100, 10_000, 60_000)
  const epochs = [(await b.publish(envelope(1))).epoch]
  for (let n = 0; n < 2; n++) {
    clock.advance(60_000)
    b.sweep()
    epochs.push((await b.publish(envelope(n + 2))).epoch)
  }
  t.equal(new Set(epochs).size, 3, `three distinct epochs: ${epochs.join(', ')}`)
  t.ok(epochs.every((e) => e.length > 0))
})

t.test('the memory broker never reports a gap, and a closed broker delivers to no listener', async (t) => {
  const b = broker()
  const gaps: unknown[] = []
  // Through the Broker interface, as the hub subscribes.
  const offGap = (b as Broker).onGap((gap) => { gaps.push(gap) })
  const seen: number[] = []
  b.onDelivery((e) => { seen.push(e.offset) })
  await b.publish(envelope(1))
  offGap()
  await b.close()
  await b.publish(envelope(2))
  t.same(seen, [1], 'the listener added before close is dropped by it')
  t.same(gaps, [])
})

t.test('the memory broker', async (t) => {
  brokerBehaviour(t, async (historySize) => broker(fakeClock(), historySize))
})
