import t from 'tap'
import { globMatcher } from '../../domain/channels.js'
import type { StoredEvent } from '../../domain/events.js'
import { Hub, type Client, type Connection, type MembershipChange } from '../../domain/hub.js'
import { noopObserver } from '../../domain/observer.js'
import { channelOf, formatPosition, parsePosition } from '../../domain/streams.js'

// What the hub's indexes, filters and observers promise, one behaviour per test; written
// against the survivors of `npm run mutate`.

class FakeConnection implements Connection {
  sent: string[] = []
  events: string[] = []
  closedWith: [number, string] | undefined
  bufferedAmount = 0
  sendEvent?: (event: StoredEvent, frame: string) => void
  send (data: string): void { this.sent.push(data) }
  close (code: number, reason: string): void { this.closedWith = [code, reason] }
}

function client (id: string, tenantId: string, userId: string): Client & { connection: FakeConnection } {
  const connection = new FakeConnection()
  return { id, tenantId, userId, connection, channels: new Set(), held: new Map(), floors: new Map(), close: (code, reason) => { connection.close(code, reason) } }
}

function event (offset: number, target: StoredEvent['target'] = { kind: 'tenant' }, stream = 'tenant'): StoredEvent {
  return { id: `e${offset}`, tenantId: 'acme', event: 'x', data: {}, target, timestamp: '2026-01-01T00:00:00.000Z', stream, offset, epoch: 'ep' }
}

t.test('observers see add, join, leave and remove with their kind, client and channel, and can stop', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const seen: string[] = []
  const stop = hub.observe((change: MembershipChange) => { seen.push(`${change.kind} ${change.client.id}${'channel' in change ? ` ${change.channel}` : ''}`) })
  const a = client('a', 'acme', 'u')
  hub.add(a)
  hub.join(a, 'ops')
  hub.leave(a, 'ops')
  hub.remove(a)
  hub.remove(a)
  t.same(seen, ['add a', 'join a ops', 'leave a ops', 'remove a'], 'a second remove notifies nothing')
  stop()
  hub.add(a)
  t.equal(seen.length, 4)
})

t.test('removing a stale client with the same id leaves the live one in every index', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const live = client('same', 'acme', 'u')
  const stale = client('same', 'acme', 'u')
  hub.add(live)
  hub.remove(stale)
  t.equal(hub.tenantConnectionCount('acme'), 1)
  t.ok(hub.hasClient('acme', 'same'))
})

t.test('users, members, tenants and a tenant\'s clients are reported per tenant', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const a1 = client('1', 'acme', 'alice')
  const a2 = client('2', 'acme', 'alice')
  const b = client('3', 'acme', 'bob')
  const g = client('4', 'globex', 'alice')
  for (const c of [a1, a2, b, g]) hub.add(c)
  hub.join(a1, 'ops')
  hub.join(b, 'ops')
  hub.join(g, 'ops')
  t.same([...hub.users('acme')].sort(), [['alice', 2], ['bob', 1]])
  t.same([...hub.users('nobody')], [])
  t.same(hub.channelMembers('acme', 'ops'), [{ userId: 'alice', clientId: '1' }, { userId: 'bob', clientId: '3' }])
  t.same(hub.channelMembers('acme', 'none'), [])
  t.same([...hub.tenants()].sort(), ['acme', 'globex'])
  t.same([...hub.tenantClients('globex')], [g])
  t.equal(hub.tenantClients('nobody').size, 0)
  t.ok(hub.hasClient('acme', '3'))
  t.notOk(hub.hasClient('globex', '3'), 'a client id is looked up in its tenant only')
  hub.remove(a1)
  hub.remove(a2)
  t.same([...hub.tenants()].sort(), ['acme', 'globex'])
  hub.remove(b)
  t.same([...hub.tenants()], ['globex'], 'an empty tenant leaves the index')
})

t.test('a channel stream gap closes that channel\'s members only; a tenant gap closes the tenant', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const member = client('m', 'acme', 'u')
  const other = client('o', 'acme', 'v')
  hub.add(member)
  hub.add(other)
  hub.join(member, 'ops')
  hub.closeStream('acme', 'channel:ops', 4008, 'STREAM_GAP')
  t.same(member.connection.closedWith, [4008, 'STREAM_GAP'])
  t.equal(other.connection.closedWith, undefined)
  hub.closeStream('acme', 'channel:nobody', 4008, 'STREAM_GAP')
  hub.closeStream('acme', 'tenant', 4008, 'STREAM_GAP')
  t.same(other.connection.closedWith, [4008, 'STREAM_GAP'])
})

t.test('a floor skips live events at or below it, delivers the next one and is then cleared', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const a = client('a', 'acme', 'u')
  hub.add(a)
  a.floors.set('tenant', 5)
  t.equal(hub.deliver(event(4)), 0)
  t.equal(hub.deliver(event(5)), 0)
  t.equal(a.connection.sent.length, 0)
  t.equal(hub.deliver(event(6)), 1)
  t.equal(a.floors.size, 0, 'the floor is gone after the first event above it')
  a.floors.set('channel:x', 9)
  t.equal(hub.deliver(event(7)), 1, 'a floor on another stream does not hold this one back')
  t.equal(a.floors.get('channel:x'), 9)
  t.same(a.connection.sent.map((f) => (JSON.parse(f) as { offset: number }).offset), [6, 7])
})

t.test('held events count as delivered, on their stream only, and the observer counts sockets actually sent to', async (t) => {
  const delivered: Array<[number, number]> = []
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10, observer: { ...noopObserver, delivered: (_e, sockets, bytes) => { delivered.push([sockets, bytes]) } } })
  const holding = client('h', 'acme', 'u')
  const live = client('l', 'acme', 'v')
  hub.add(holding)
  hub.add(live)
  holding.held.set('tenant', [])
  t.equal(hub.deliver(event(1)), 2)
  t.equal(holding.held.get('tenant')?.length, 1)
  t.equal(holding.connection.sent.length, 0)
  t.same(delivered, [[1, live.connection.sent[0]?.length]])
  holding.held.set('tenant', [])
  live.held.set('tenant', [])
  t.equal(hub.deliver(event(2)), 2)
  t.same(delivered.length, 1, 'nothing serialized, nothing observed, when every recipient holds')
  t.equal(hub.deliver(event(3, { kind: 'user', userId: 'nobody' })), 0)
})

t.test('the buffer limit is exclusive: exactly maxBufferedBytes queued still gets the frame', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 100, maxHeldEvents: 10 })
  const a = client('a', 'acme', 'u')
  hub.add(a)
  a.connection.bufferedAmount = 100
  t.equal(hub.send(a, 'x'), true)
  t.equal(hub.deliver(event(1)), 1)
  t.equal(a.connection.closedWith, undefined)
})

t.test('a transport with sendEvent gets events through it and other frames through send', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const a = client('a', 'acme', 'u')
  a.connection.sendEvent = (e) => { a.connection.events.push(e.id) }
  hub.add(a)
  hub.deliver(event(1))
  hub.send(a, 'frame')
  t.same(a.connection.events, ['e1'])
  t.same(a.connection.sent, ['frame'])
})

t.test('a send failure without an onSendFailed hook still closes that socket with 1011', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const a = client('a', 'acme', 'u')
  a.connection.send = () => { throw new Error('broken') }
  hub.add(a)
  t.equal(hub.send(a, 'x'), false)
  t.same(a.connection.closedWith, [1011, 'SEND_FAILED'])
})

t.test('a client-targeted event reaches that client of that tenant only', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 10 })
  const a = client('a', 'acme', 'u')
  const b = client('b', 'acme', 'u')
  const g = client('a', 'globex', 'u')
  for (const c of [a, b, g]) hub.add(c)
  t.equal(hub.deliver(event(1, { kind: 'client', clientId: 'a' })), 1)
  t.same([a, b, g].map((c) => c.connection.sent.length), [1, 0, 0])
  t.equal(hub.deliver(event(2, { kind: 'client', clientId: 'zz' })), 0)
})

t.test('positions parse only as <epoch>:<non-negative safe integer>, split at the last colon', async (t) => {
  t.same(parsePosition('ep:3'), { epoch: 'ep', offset: 3 })
  t.same(parsePosition('a:b:0'), { epoch: 'a:b', offset: 0 })
  t.equal(parsePosition(':3'), undefined, 'an empty epoch')
  t.equal(parsePosition('3'), undefined)
  t.equal(parsePosition('ep:-1'), undefined)
  t.equal(parsePosition('ep:1.5'), undefined)
  t.equal(parsePosition('ep:9007199254740992'), undefined)
  t.equal(formatPosition({ epoch: 'ep', offset: 7 }), 'ep:7')
  t.equal(channelOf('channel:ops'), 'ops')
  t.equal(channelOf('tenant'), undefined)
  t.equal(channelOf('xchannel:'), undefined)
})

t.test('an empty pattern list allows nothing; pattern metacharacters match only themselves', async (t) => {
  t.equal(globMatcher([])('ops'), false)
  const match = globMatcher(['a.b', 'team-?', 'x*'])
  t.equal(match('a.b'), true)
  t.equal(match('axb'), false, 'a dot is a dot')
  t.equal(match('team-1'), true)
  t.equal(match('team-12'), false)
  t.equal(match('xyz'), true)
  t.equal(match('yx'), false)
})
