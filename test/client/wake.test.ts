import t from 'tap'
import { connect, type CloseInfo, type ConnectOptions, type EventFrame, type TenantcastClient } from '../../client/index.js'
import { build, postAlarm, settled, sign } from '../helper.js'
import { eventually, FakeClock, next, reach, TcpProxy } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

/** A real EventTarget standing for the browser's window, counting the listeners it holds. */
class Target extends EventTarget {
  listeners = 0
  override addEventListener (...args: Parameters<EventTarget['addEventListener']>): void { this.listeners++; super.addEventListener(...args) }
  override removeEventListener (...args: Parameters<EventTarget['removeEventListener']>): void { this.listeners--; super.removeEventListener(...args) }
}

/** The same, standing for the document, with a visibility state the test sets. */
class Page extends Target {
  visibilityState = 'visible'
}

const token = (): string => sign({}, { expiresIn: 3_600_000 })

t.test('reconnect() while a reconnect waits out its backoff goes at once', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const clock = new FakeClock()
  const client = open(t, { url: proxy.ws, token: token(), timers: clock, heartbeatInterval: 0, wake: false, random: () => 0.99 })
  await reach(client, 'open')
  proxy.cut()
  await reach(client, 'reconnecting')
  t.same(clock.pending(), [990], 'the backoff wait is armed')
  const authenticated = next(client, 'authenticated')
  client.reconnect()
  await authenticated
  t.same(clock.pending(), [], 'and no longer: the fake clock never ran')
  t.equal(client.state, 'open')
})

t.test('reconnect() on an open client replaces its socket and resumes: every alarm once, in order', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: token(), wake: false })
  const events: EventFrame[] = []
  const closes: CloseInfo[] = []
  client.on('event', (frame) => { events.push(frame) })
  client.on('close', (info) => { closes.push(info) })
  await reach(client, 'open')
  await postAlarm(gw, sign(), { message: '#1' })
  t.ok(await eventually(() => events.length === 1))
  const again = next(client, 'authenticated')
  client.reconnect()
  t.equal(client.state, 'reconnecting')
  await postAlarm(gw, sign(), { message: '#2' })
  await again
  await postAlarm(gw, sign(), { message: '#3' })
  t.ok(await eventually(() => events.length === 3))
  t.same(events.map((e) => e.offset), [1, 2, 3])
  t.same(closes, [{ code: 1000, reason: 'RECONNECT', willReconnect: true, delay: 0, attempt: 0 }])
  t.equal(await settled(async () => await gw.app.realtime.connectionCount('t1'), 1), 1, 'the old socket is gone')
})

t.test('the browser coming back online, or the page becoming visible, reconnects at once instead of waiting out the backoff', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const clock = new FakeClock()
  const window = new Target()
  const document = new Page()
  const client = open(t, { url: proxy.ws, token: token(), timers: clock, heartbeatInterval: 0, wake: { window, document }, random: () => 0.99 })
  await reach(client, 'open')
  proxy.cut()
  await reach(client, 'reconnecting')
  const back = next(client, 'authenticated')
  window.dispatchEvent(new Event('online'))
  await back
  proxy.cut()
  await reach(client, 'reconnecting')
  document.visibilityState = 'hidden'
  document.dispatchEvent(new Event('visibilitychange'))
  t.equal(client.state, 'reconnecting', 'hiding the page does nothing')
  const visible = next(client, 'authenticated')
  document.visibilityState = 'visible'
  document.dispatchEvent(new Event('visibilitychange'))
  await visible
  t.same(clock.pending(), [], 'neither reconnect waited for its backoff timer')
  client.close()
  t.equal(window.listeners + document.listeners, 0, 'close() removes its listeners')
})

t.test('a wake-up on an open socket pings it: an answer keeps it, silence within wakeProbeTimeout replaces it', async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const clock = new FakeClock()
  const window = new Target()
  const client = open(t, { url: proxy.ws, token: token(), timers: clock, heartbeatInterval: 0, wake: { window }, wakeProbeTimeout: 3000 })
  let authentications = 0
  client.on('authenticated', () => { authentications++ })
  await reach(client, 'open')
  const pong = next(client, 'frame', (frame) => frame.type === 'pong')
  window.dispatchEvent(new Event('online'))
  await pong
  t.same(clock.pending(), [3000], 'the probe deadline')
  clock.runNext()
  t.equal(client.state, 'open', 'the socket answered: kept')
  t.equal(authentications, 1)
  // A sleeping laptop: the link is silent, though neither end has noticed.
  proxy.pause()
  window.dispatchEvent(new Event('online'))
  proxy.resume()
  const replaced = next(client, 'authenticated')
  clock.runNext()
  await replaced
  t.equal(authentications, 2, 'the silent socket was replaced when the probe ran out')
})
