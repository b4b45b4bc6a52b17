import t from 'tap'
import { connect, type CloseInfo } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { FakeClock, next, reach, TcpProxy } from './helpers.js'

t.test('a connection that goes silent for a whole heartbeat window is declared dead and replaced', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const clock = new FakeClock()
  const client = connect({ url: proxy.ws, token: sign(), timers: clock, heartbeatInterval: 1000, random: () => 0 })
  t.teardown(() => { client.close() })
  const closes: CloseInfo[] = []
  client.on('close', (info) => { closes.push(info) })
  await reach(client, 'open')
  t.same(clock.pending(), [1000], 'the heartbeat is armed')

  // Frames arrived: the client pings and waits for the next window.
  const pong = next(client, 'frame', (frame) => frame.type === 'pong')
  clock.runNext()
  await pong
  t.same(clock.pending(), [1000])

  // The link goes silent: this tick still saw the pong and pings once more; the next one saw nothing.
  proxy.pause()
  clock.runNext()
  t.equal(client.state, 'open')
  clock.runNext()
  t.equal(client.state, 'reconnecting')
  t.same(closes, [{ code: 1006, reason: 'HEARTBEAT_TIMEOUT', willReconnect: true, delay: 0, attempt: 1 }])

  proxy.resume()
  clock.runNext()
  await reach(client, 'open')
  t.equal(proxy.requests.length, 2)
  t.match(proxy.requests[1], /since\.tenant=/, 'the new connection resumes')
})

t.test('a socket that never delivers a frame is dead after one window', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  proxy.hold()
  const clock = new FakeClock()
  const client = connect({ url: proxy.ws, token: sign(), timers: clock, heartbeatInterval: 500, random: () => 0 })
  t.teardown(() => { client.close() })
  // Wait until the socket exists (its heartbeat timer is armed), then let the window pass.
  for (let i = 0; i < 200 && clock.pending().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(clock.pending(), [500])
  const closed = next(client, 'close')
  clock.runNext()
  t.match((await closed)[0], { code: 1006, reason: 'HEARTBEAT_TIMEOUT', willReconnect: true })
  proxy.release()
  clock.runNext()
  await reach(client, 'open')
})

t.test('a heartbeat interval of 0 turns detection off', async (t) => {
  const gw = await build(t)
  const clock = new FakeClock()
  const client = connect({ url: gw.ws, token: sign(), timers: clock, heartbeatInterval: 0 })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  t.same(clock.pending(), [])
})
