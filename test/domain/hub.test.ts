import t from 'tap'
import { Hub, type Client, type Connection } from '../../domain/hub.js'
import type { StoredEvent } from '../../domain/events.js'

class FakeConnection implements Connection {
  sent: string[] = []
  closedWith: [number, string] | undefined
  bufferedAmount = 0
  send (data: string): void { this.sent.push(data) }
  close (code: number, reason: string): void { this.closedWith = [code, reason] }
}

function client (id: string, tenantId: string, userId: string): Client & { connection: FakeConnection } {
  const connection = new FakeConnection()
  return { id, tenantId, userId, connection, channels: new Set(), held: new Map(), floors: new Map(), close: (code, reason) => { connection.close(code, reason) } }
}

function event (tenantId: string, target: StoredEvent['target'] = { kind: 'tenant' }): StoredEvent {
  return { id: 'e1', tenantId, event: 'alarm:created', data: { n: 1 }, target, timestamp: '2026-01-01T00:00:00.000Z', stream: 'tenant', offset: 1, epoch: 'ep' }
}

t.test('a broadcast is serialized once, however many sockets receive it', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const clients = Array.from({ length: 50 }, (_, i) => client(`c${i}`, 'acme', `u${i}`))
  for (const c of clients) hub.add(c)
  const stringify = JSON.stringify
  let calls = 0
  JSON.stringify = ((...args: Parameters<typeof stringify>) => { calls++; return stringify(...args) }) as typeof stringify
  let delivered: number
  try {
    delivered = hub.deliver(event('acme'))
  } finally {
    JSON.stringify = stringify
  }
  t.equal(delivered, 50)
  t.equal(calls, 1, 'one JSON.stringify for 50 recipients')
  t.ok(clients.every((c) => c.connection.sent.length === 1 && c.connection.sent[0] === clients[0]?.connection.sent[0]), 'everyone got the same frame')
})

t.test('a tenant broadcast reaches only that tenant and a user target only that user', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const a1 = client('1', 'acme', 'alice')
  const a2 = client('2', 'acme', 'alice')
  const b = client('3', 'acme', 'bob')
  const g = client('4', 'globex', 'alice')
  for (const c of [a1, a2, b, g]) hub.add(c)
  t.equal(hub.deliver(event('acme')), 3)
  t.equal(hub.deliver(event('acme', { kind: 'user', userId: 'alice' })), 2)
  t.same([a1, a2, b, g].map((c) => c.connection.sent.length), [2, 2, 1, 0])
  t.equal(hub.deliver(event('nobody')), 0)
})

t.test('a removed socket is gone from every index', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const a = client('1', 'acme', 'alice')
  hub.add(a)
  t.equal(hub.tenantConnectionCount('acme'), 1)
  t.equal(hub.userConnectionCount('acme', 'alice'), 1)
  hub.remove(a)
  t.equal(hub.tenantConnectionCount('acme'), 0)
  t.equal(hub.userConnectionCount('acme', 'alice'), 0)
  t.equal(hub.size(), 0)
  t.equal(hub.deliver(event('acme', { kind: 'user', userId: 'alice' })), 0)
  hub.remove(a)
  t.equal(hub.tenantConnectionCount('acme'), 0, 'removing twice is harmless')
})

t.test('a socket over the buffer limit is closed with 4008 and gets nothing more', async (t) => {
  const slow: string[] = []
  const hub = new Hub({ maxBufferedBytes: 100, maxHeldEvents: 100, onSlowConsumer: (c) => { slow.push(c.id) } })
  const fast = client('fast', 'acme', 'a')
  const stalled = client('stalled', 'acme', 'b')
  hub.add(fast)
  hub.add(stalled)
  stalled.connection.bufferedAmount = 101
  t.equal(hub.deliver(event('acme')), 1)
  t.same(stalled.connection.closedWith, [4008, 'SLOW_CONSUMER'])
  t.equal(stalled.connection.sent.length, 0)
  t.same(slow, ['stalled'])
  t.equal(hub.tenantConnectionCount('acme'), 1)
  t.equal(hub.deliver(event('acme')), 1)
  t.equal(fast.connection.sent.length, 2)
})

t.test('a client the hub dropped cannot join a channel again', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 100, maxHeldEvents: 100 })
  const dropped = client('d', 'acme', 'a')
  hub.add(dropped)
  dropped.connection.bufferedAmount = 101
  hub.deliver(event('acme'))
  t.same(dropped.connection.closedWith, [4008, 'SLOW_CONSUMER'])
  t.equal(hub.join(dropped, 'ops'), false)
  t.equal(hub.channelConnectionCount('acme', 'ops'), 0)
})

t.test('a stream gap closes its sockets through their own close, so their sessions end at once', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const ended: string[] = []
  const a = { ...client('a', 'acme', 'u'), close: (code: number, reason: string) => { ended.push(`${code} ${reason}`) } }
  hub.add(a)
  hub.closeStream('acme', 'tenant', 4008, 'STREAM_GAP')
  t.same(ended, ['4008 STREAM_GAP'])
  t.equal(hub.size(), 0)
  t.equal(hub.join(a, 'ops'), false, 'and it joins nothing afterwards')
})

t.test('a connection that throws on send is closed with 1011 and the others still get the event', async (t) => {
  const failed: string[] = []
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100, onSendFailed: (c) => { failed.push(c.id) } })
  const before = client('before', 'acme', 'a')
  const broken = client('broken', 'acme', 'b')
  const after = [client('after1', 'acme', 'c'), client('after2', 'acme', 'd')]
  broken.connection.send = () => { throw new Error('"disconnect" is a reserved event name') }
  for (const c of [before, broken, ...after]) hub.add(c)
  t.equal(hub.deliver(event('acme')), 3)
  t.same([before, ...after].map((c) => c.connection.sent.length), [1, 1, 1])
  t.same(broken.connection.closedWith, [1011, 'SEND_FAILED'])
  t.same(failed, ['broken'])
  t.equal(hub.size(), 3, 'the broken connection left every index')
  t.equal(hub.send(before, 'x'), true)
})

t.test('disconnect closes a tenant\'s matching clients, drops them from every index and spares newer tokens', async (t) => {
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const old = { ...client('c1', 'acme', 'alice'), issuedAt: 100 }
  const fresh = { ...client('c2', 'acme', 'alice'), issuedAt: 200 }
  const bob = client('c3', 'acme', 'bob')
  const other = client('c4', 'other', 'alice')
  for (const c of [old, fresh, bob, other]) hub.add(c)
  hub.join(old, 'room')
  t.equal(hub.disconnect('acme', { clientId: 'c3', userId: 'alice' }, 4403, 'REVOKED'), 0, 'a connection id of another user is not matched')
  t.equal(hub.disconnect('acme', { userId: 'alice', issuedBefore: 150 }, 4403, 'REVOKED'), 1)
  t.same(old.connection.closedWith, [4403, 'REVOKED'])
  t.equal(fresh.connection.closedWith, undefined, 'a token issued at or after `before` is spared')
  t.equal(hub.channelConnectionCount('acme', 'room'), 0)
  t.equal(hub.disconnect('acme', {}, 4403, 'REVOKED'), 2, 'no target: the whole tenant')
  t.same([fresh, bob].map((c) => c.connection.closedWith), [[4403, 'REVOKED'], [4403, 'REVOKED']])
  t.equal(other.connection.closedWith, undefined)
  t.same([hub.tenantConnectionCount('acme'), hub.tenantConnectionCount('other')], [0, 1])
})
