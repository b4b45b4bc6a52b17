import t from 'tap'
import { Hub, type Client, type Connection } from '../../domain/hub.js'
import type { StoredEvent } from '../../domain/events.js'
import { tenantKey } from '../../domain/tenant-key.js'

class FakeConnection implements Connection {
  sent: string[] = []
  bufferedAmount = 0
  send (data: string): void { this.sent.push(data) }
  close (): void {}
}

function client (id: string, tenantId: string, userId: string): Client & { connection: FakeConnection } {
  const connection = new FakeConnection()
  return { id, tenantId, userId, connection, channels: new Set(), held: new Map(), floors: new Map(), close: () => {} }
}

t.test('no two (tenant, name) pairs share an index key, whatever characters they hold', async (t) => {
  const pairs: Array<[string, string]> = [['acme', 'x\u0000y'], ['acme\u0000x', 'y'], ['a', 'b:c'], ['a:b', 'c'], ['1:a', 'b'], ['1', 'a\u0000b'], ['', 'ab'], ['ab', '']]
  const keys = pairs.map(([tenant, name]) => tenantKey(tenant, name))
  t.equal(new Set(keys).size, pairs.length)
})

t.test('a user-targeted event for tenant acme and user x\\0y never reaches user y of tenant acme\\0x', async (t) => {
  // The token layer refuses ids with control characters; the hub must not depend on that.
  const hub = new Hub({ maxBufferedBytes: 1024, maxHeldEvents: 100 })
  const intended = client('c1', 'acme', 'x\u0000y')
  const other = client('c2', 'acme\u0000x', 'y')
  hub.add(intended)
  hub.add(other)
  const event: StoredEvent = { id: 'e1', tenantId: 'acme', event: 'secret', data: {}, target: { kind: 'user', userId: 'x\u0000y' }, timestamp: '2026-01-01T00:00:00.000Z', stream: 'tenant', offset: 1, epoch: 'ep' }
  t.equal(hub.deliver(event), 1)
  t.equal(intended.connection.sent.length, 1)
  t.equal(other.connection.sent.length, 0)
  t.equal(hub.deliver({ ...event, tenantId: 'acme\u0000x', target: { kind: 'user', userId: 'y' } }), 1)
  t.equal(intended.connection.sent.length, 1, 'and the other way round')
})
