import type { Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { build, sign } from '../helper.js'

t.test('a socket whose replay stalls is closed with 4008 SLOW_CONSUMER once more than HISTORY_SIZE live events are held for it', async (t) => {
  const HISTORY = 100
  const gw = await build(t, { HISTORY_SIZE: HISTORY, MAX_PUBLISH_BYTES: 200_000 })
  const serverSockets: Socket[] = []
  gw.app.server.on('connection', (socket: Socket) => { serverSockets.push(socket) })
  const text = 'x'.repeat(100_000)
  let epoch = ''
  for (let n = 0; n < HISTORY; n++) epoch = (await gw.app.realtime.broadcast('t1', 'note', { text })).epoch
  // ~10 MB of replay to a reader that never reads: kernel buffers take a few MB, then the paced
  // replay waits for a drain that does not come, and the live events below are held meanwhile.
  const stalled = new WebSocket(`${gw.ws}?token=${sign()}&since=${epoch}:0`)
  stalled.on('error', () => {})
  const closed = new Promise<[number, string]>((resolve) => { stalled.on('close', (code, reason) => { resolve([code, String(reason)]) }) })
  await new Promise<void>((resolve) => { stalled.once('open', () => { stalled.pause(); resolve() }) })
  for (let i = 0; i < 500 && !serverSockets.some((s) => s.writableNeedDrain); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(serverSockets.some((s) => s.writableNeedDrain), 'the replay is waiting for the socket to drain')
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'u1'), 1)
  for (let n = 0; n < HISTORY; n++) await gw.app.realtime.broadcast('t1', 'tick', { n })
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'u1'), 1, 'HISTORY_SIZE held events are still within the bound')
  await gw.app.realtime.broadcast('t1', 'tick', { n: HISTORY })
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'u1'), 0, 'one more, and the socket is dropped at once')
  stalled.resume()
  t.same(await closed, [4008, 'SLOW_CONSUMER'])
  t.match(gw.logs.join(''), /websocket\.slow_consumer/)
  t.match(await (await fetch(`${gw.http}/metrics`)).text(), /^tenantcast_slow_consumer_disconnects_total 1$/m, 'counted as a slow consumer')
})
