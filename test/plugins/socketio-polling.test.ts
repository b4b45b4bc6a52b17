import { io, type Socket } from 'socket.io-client'
import t from 'tap'
import { build, postAlarm, quietly, settled, sign, type Gateway } from '../helper.js'

/** A socket.io-client held to HTTP long-polling: no upgrade to WebSocket is attempted. */
function pollingClient (gw: Gateway, tenantId: string, options: { autoUnref?: boolean } = {}): Socket {
  return io(gw.http, { path: '/socket.io/', transports: ['polling'], upgrade: false, reconnection: false, agent: false, auth: { token: sign({ tenantId, sub: `viewer-${tenantId}` }) }, ...options })
}

async function once<T = unknown> (socket: Socket, event: string): Promise<T> {
  return await new Promise((resolve) => { socket.once(event, (data: T) => { resolve(data) }) })
}

t.test('a Socket.IO client on the polling transport receives its tenant\'s alarm and never another tenant\'s', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true })
  const acme = pollingClient(gw, 'acme')
  const globex = pollingClient(gw, 'globex')
  t.teardown(() => { acme.close(); globex.close() })
  t.match(await once(acme, 'join:company'), { success: true, companyId: 'acme' })
  t.match(await once(globex, 'join:company'), { success: true, companyId: 'globex' })
  t.equal(acme.io.engine.transport.name, 'polling', 'still polling')
  const got: { acme: string[], globex: string[] } = { acme: [], globex: [] }
  acme.on('alarm:created', (data: { message: string }) => { got.acme.push(data.message) })
  globex.on('alarm:created', (data: { message: string }) => { got.globex.push(data.message) })
  t.equal((await postAlarm(gw, sign({ tenantId: 'acme' }), { message: 'for acme' })).status, 202)
  t.equal((await postAlarm(gw, sign({ tenantId: 'globex' }), { message: 'for globex' })).status, 202)
  t.same(await quietly(() => got.acme, 1), ['for acme'])
  t.same(await quietly(() => got.globex, 1), ['for globex'])
  t.equal(acme.io.engine.transport.name, 'polling', 'delivered over polling')
  acme.close()
  globex.close()
})

t.test('a polling client that stops polling is closed as a slow consumer (4008) once engine.io holds MAX_BUFFERED_BYTES for it', async (t) => {
  const gw = await build(t, { SOCKETIO_ENABLED: true, MAX_BUFFERED_BYTES: 65536 })
  // Its close packet waits for a poll that never comes, so engine.io-client's heartbeat timer
  // (45 s) outlives the test: unref'd, it does not hold the process open after the last test.
  const socket = pollingClient(gw, 'acme', { autoUnref: true })
  t.teardown(() => { socket.close() })
  await once(socket, 'join:company')
  const transport = socket.io.engine.transport as unknown as { pause: (done: () => void) => void }
  const paused = new Promise<void>((resolve) => { transport.pause(resolve) })
  // The poll in flight ends with the next packet; after it the client asks for nothing more.
  await gw.app.realtime.broadcast('acme', 'note', { text: 'wake' })
  await paused
  const text = 'y'.repeat(4000)
  for (let n = 0; n < 40; n++) await gw.app.realtime.broadcast('acme', 'note', { text })
  t.equal(await settled(async () => await gw.app.realtime.connectionCount('acme'), 0), 0, 'the stalled client left the hub')
  const metrics = await (await fetch(`${gw.http}/metrics`)).text()
  t.match(metrics, /tenantcast_connections_closed_total\{code="4008"\} 1\n/, 'closed as a slow consumer')
})
