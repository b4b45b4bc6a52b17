import Fastify from 'fastify'
import t from 'tap'
import busPlugin from '../../plugins/bus.js'
import type { TypedEnvelope } from '../../plugins/bus.js'

const envelope = {
  id: 'e', tenantId: 't', event: 'alarm:created', target: { kind: 'tenant' }, timestamp: '2026-01-01T00:00:00.000Z',
  data: { id: 'e', type: 'alarm', message: 'm', camera: 'c', severity: 'low', timestamp: '2026-01-01T00:00:00.000Z' }
} satisfies TypedEnvelope<'alarm:created'>

t.test('a throwing or rejecting listener is logged and the other listeners still run', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (l: string) => { lines.push(l) } } } })
  await app.register(busPlugin)
  await app.ready()
  t.teardown(async () => { await app.close() })
  const seen: string[] = []
  app.bus.on('alarm:created', () => { throw new Error('sync boom') })
  app.bus.on('alarm:created', async () => { throw new Error('async boom') })
  app.bus.on('alarm:created', (e) => { seen.push(e.id) })
  app.bus.emit(envelope)
  app.bus.emit(envelope)
  t.same(seen, ['e', 'e'], 'the well-behaved listener got both events')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(lines.filter((l) => l.includes('bus.listener.failed')).length, 4, 'each failure was logged')
})

t.test('a removed listener no longer runs', async (t) => {
  const app = Fastify()
  await app.register(busPlugin)
  const seen: string[] = []
  const off = app.bus.on('alarm:created', (e) => { seen.push(e.id) })
  off()
  app.bus.emit(envelope)
  t.same(seen, [])
  await app.close()
})
