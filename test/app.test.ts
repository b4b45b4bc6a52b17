import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import t from 'tap'
import tenantcast from '../app.js'
import { Client, SECRET, sign } from './helper.js'

t.test('registered inside a host app, a host route can broadcast to a tenant\'s sockets', async (t) => {
  const host = Fastify()
  // The host brings its own @fastify/jwt; tenantcast's stays encapsulated and does not collide.
  await host.register(fastifyJwt, { secret: 'the-host-has-its-own-secret-for-its-own-users' })
  await host.register(tenantcast, { config: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent' } })
  host.post('/incidents/:tenant', async (request) => {
    const { tenant } = request.params as { tenant: string }
    const stored = await host.realtime.broadcast(tenant, 'alarm:created', {
      id: 'incident-1', type: 'alarm', message: 'Incident assigned', camera: 'dispatch', severity: 'medium', timestamp: new Date().toISOString()
    })
    return { offset: stored.offset, listeners: await host.realtime.connectionCount(tenant) }
  })
  await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await host.close() })
  const port = (host.server.address() as { port: number }).port

  const client = new Client(`ws://127.0.0.1:${port}/api/v1/events?token=${sign({ tenantId: 'acme' })}`)
  await client.next('authenticated')
  const other = new Client(`ws://127.0.0.1:${port}/api/v1/events?token=${sign({ tenantId: 'globex' })}`)
  await other.next('authenticated')

  const reply = await fetch(`http://127.0.0.1:${port}/incidents/acme`, { method: 'POST' })
  t.same(await reply.json(), { offset: 1, listeners: 1 })
  t.match(await client.next('event'), { event: 'alarm:created', data: { message: 'Incident assigned' }, offset: 1 })
  other.send({ type: 'ping', id: 1 })
  await other.next('pong')
  t.equal(other.frames.filter((f) => f.type === 'event').length, 0, 'another tenant got nothing')
  t.equal(typeof host.jwt.sign, 'function', 'the host keeps its own jwt decorator')
  client.close()
  other.close()
})

t.test('sendToUser reaches every tab of that user and no one else', async (t) => {
  const host = Fastify()
  await host.register(tenantcast, { config: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent' } })
  await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await host.close() })
  const url = `ws://127.0.0.1:${(host.server.address() as { port: number }).port}/api/v1/events?token=`
  const tabs = [new Client(url + sign({ sub: 'alice' })), new Client(url + sign({ sub: 'alice' }))]
  const bob = new Client(url + sign({ sub: 'bob' }))
  const otherTenantAlice = new Client(url + sign({ sub: 'alice', tenantId: 't2' }))
  for (const c of [...tabs, bob, otherTenantAlice]) await c.next('authenticated')
  await host.realtime.sendToUser('t1', 'alice', 'alarm:created', {
    id: 'a', type: 'alarm', message: 'for alice', camera: 'c', severity: 'low', timestamp: new Date().toISOString()
  })
  for (const tab of tabs) t.match(await tab.next('event'), { data: { message: 'for alice' } })
  for (const c of [bob, otherTenantAlice]) {
    c.send({ type: 'ping', id: 'x' })
    await c.next('pong')
    t.equal(c.frames.filter((f) => f.type === 'event').length, 0)
  }
  for (const c of [...tabs, bob, otherTenantAlice]) c.close()
})
