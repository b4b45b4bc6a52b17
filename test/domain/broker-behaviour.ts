import type { Broker } from '../../domain/broker.js'
import type { EventEnvelope, StoredEvent } from '../../domain/events.js'
import { quietly } from '../helper.js'

type Tap = import('tap').Test

function envelope (n: number, extra: Partial<EventEnvelope> = {}): EventEnvelope {
  return { id: `e${n}`, tenantId: 'acme', event: 'tick', data: { n, text: 'ünïcødé "quoted" \\ slash' }, target: { kind: 'tenant' }, timestamp: '2026-01-01T00:00:00.000Z', ...extra }
}

/**
 * The broker contract, as one suite that runs against every implementation. `make` returns
 * a fresh broker holding at most `historySize` events per stream.
 */
export function brokerBehaviour (t: Tap, make: (historySize: number) => Promise<Broker>): void {
  t.test('offsets start at 1 and increase by one per stream, independently per tenant, user and channel', async (t) => {
    const broker = await make(100)
    t.teardown(async () => { await broker.close() })
    const positions = []
    const at = (e: { stream: string, offset: number }): string => `${e.stream}:${e.offset}`
    for (let n = 1; n <= 3; n++) positions.push(at(await broker.publish(envelope(n))))
    positions.push(at(await broker.publish(envelope(4, { target: { kind: 'channel', channel: 'x' } }))))
    positions.push(at(await broker.publish(envelope(5, { tenantId: 'globex' }))))
    positions.push(at(await broker.publish(envelope(6, { target: { kind: 'user', userId: 'u' } }))))
    positions.push(at(await broker.publish(envelope(7, { target: { kind: 'client', clientId: 'k' } }))))
    positions.push(at(await broker.publish(envelope(8))))
    t.same(positions, ['tenant:1', 'tenant:2', 'tenant:3', 'channel:x:1', 'tenant:1', 'user:u:1', 'connection:0', 'tenant:4'], 'a connection-targeted event has no position and moves no stream')
    t.same((await broker.read('acme', 'connection', 0, 10)).events, [], 'and is never stored')
  })

  t.test('a stored event keeps its envelope and gets stream, offset and a stable epoch', async (t) => {
    const broker = await make(100)
    t.teardown(async () => { await broker.close() })
    const a = await broker.publish(envelope(1, { correlationId: 'c1', from: { clientId: 'k', userId: 'u' } }))
    const b = await broker.publish(envelope(2, { target: { kind: 'channel', channel: 'ops' } }))
    t.match(a, { ...envelope(1), correlationId: 'c1', stream: 'tenant', offset: 1 })
    t.equal(b.stream, 'channel:ops')
    t.equal((await broker.publish(envelope(3))).epoch, a.epoch, 'the epoch is stable while history is kept')
    const read = await broker.read('acme', 'tenant', 0, 10)
    t.same(read.events[0], a, 'history returns the event exactly as stored')
  })

  t.test('history keeps the newest events, evicting oldest first, and reads page after a position', async (t) => {
    const broker = await make(5)
    t.teardown(async () => { await broker.close() })
    for (let n = 1; n <= 8; n++) await broker.publish(envelope(n))
    const read = await broker.read('acme', 'tenant', 0, 100)
    t.same({ oldest: read.oldest, latest: read.latest }, { oldest: 4, latest: 8 })
    t.same(read.events.map((e) => e.offset), [4, 5, 6, 7, 8])
    t.same((await broker.read('acme', 'tenant', 6, 100)).events.map((e) => e.offset), [7, 8])
    t.same((await broker.read('acme', 'tenant', 4, 2)).events.map((e) => e.offset), [5, 6])
    t.same((await broker.read('acme', 'tenant', undefined, 2)).events, [], 'no position, no events')
    t.same((await broker.read('acme', 'channel:none', 0, 2)).events, [], 'an unknown stream is empty')
  })

  t.test('watched streams are delivered exactly once each, in offset order', async (t) => {
    const broker = await make(100)
    t.teardown(async () => { await broker.close() })
    const seen: StoredEvent[] = []
    broker.onDelivery((e) => { seen.push(e) })
    await broker.watch('acme', 'tenant')
    await broker.watch('acme', 'channel:ops')
    await Promise.all(Array.from({ length: 20 }, async (_, i) => await broker.publish(envelope(i, i % 2 === 0 ? {} : { target: { kind: 'channel', channel: 'ops' } }))))
    await quietly(() => seen, 20)
    const tenant = seen.filter((e) => e.stream === 'tenant').map((e) => e.offset)
    const ops = seen.filter((e) => e.stream === 'channel:ops').map((e) => e.offset)
    t.same(tenant, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    t.same(ops, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  t.test('watch is reference-counted: the stream stays live until the last unwatch', async (t) => {
    const broker = await make(100)
    t.teardown(async () => { await broker.close() })
    const seen: number[] = []
    broker.onDelivery((e) => { if (e.stream === 'tenant') seen.push(e.offset) })
    await broker.watch('acme', 'tenant')
    await broker.watch('acme', 'tenant')
    broker.unwatch('acme', 'tenant')
    await broker.publish(envelope(1))
    await quietly(() => seen, 1)
    t.same(seen, [1])
    t.equal(broker.ready(), true)
  })
}
