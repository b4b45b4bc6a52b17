import t from 'tap'
import { connect, type ConnectionState, type EventFrame } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { eventually, next, reach, TcpProxy } from './helpers.js'

t.test('after a reconnect, replayed events are marked replayed and the client is open only once every resumed stream has caught up', { timeout: 30_000 }, async (t) => {
  const gw = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const client = connect({ url: proxy.ws, token: sign({}, { expiresIn: 3_600_000 }), channels: ['ops', 'site'], heartbeatInterval: 0, reconnect: { initialDelay: 50 } })
  t.teardown(() => { client.close() })
  const log: string[] = []
  client.on('state', (state: ConnectionState) => { log.push(`state ${state}`) })
  client.on('recovered', (frame) => { log.push(`recovered ${frame.stream} ${frame.recovered ? frame.count : 'false'}`) })
  client.on('event', (frame: EventFrame) => { log.push(`${frame.replayed === true ? 'replayed' : 'live'} ${frame.stream as string}#${frame.offset as number}`) })
  await reach(client, 'open')
  await client.subscribe('ops')
  await client.subscribe('site')
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 1 })
  await next(client, 'event')
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 2 })
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 3 })
  await gw.app.realtime.broadcast('t1', 'door:opened', { door: 4 })
  log.length = 0
  proxy.release()
  await reach(client, 'open')
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 5 })
  t.ok(await eventually(() => log.includes('live channel:ops#4')))
  const opened = log.indexOf('state open')
  t.same(log.slice(0, opened).filter((line) => !line.startsWith('recovered')), ['replayed tenant#1', 'replayed channel:ops#2', 'replayed channel:ops#3'], 'the missed events came first, each marked replayed')
  t.same(log.slice(0, opened).filter((line) => line.startsWith('recovered')).sort(), ['recovered channel:ops 2', 'recovered channel:site 0', 'recovered tenant 1', 'recovered user:u1 0'], 'every resumed stream caught up, each with its recovered')
  t.same(log.slice(opened), ['state open', 'live channel:ops#4'], 'open after the last one; the live event after it is unmarked')
})

t.test('a first connect with nothing to resume is open at once, and its live events are unmarked', async (t) => {
  const gw = await build(t)
  const client = connect({ url: gw.ws, token: sign(), heartbeatInterval: 0, reconnect: false })
  t.teardown(() => { client.close() })
  const states: string[] = []
  client.on('state', (state) => { states.push(state) })
  await next(client, 'authenticated')
  t.equal(client.state, 'open', 'open by the time authenticated is emitted')
  await gw.app.realtime.broadcast('t1', 'door:opened', { door: 1 })
  const [frame] = await next(client, 'event')
  t.equal(frame.replayed, undefined)
  t.same(states, ['open'])
})
