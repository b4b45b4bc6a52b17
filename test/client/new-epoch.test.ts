import t from 'tap'
import { connect, type EventFrame, type Gap } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { eventually, next, reach, TcpProxy } from './helpers.js'

t.test('after a memory-broker restart the client is told with a gap in the new epoch, then replays that epoch from its oldest event, then goes live', { timeout: 30_000 }, async (t) => {
  const first = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(first.http).port))
  const client = connect({ url: proxy.ws, token: sign({}, { expiresIn: 3_600_000 }), channels: ['ops'], heartbeatInterval: 0, reconnect: { initialDelay: 50, maxDelay: 200 } })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  for (let door = 1; door <= 3; door++) await first.app.realtime.broadcast('t1', 'door:opened', { door })
  await first.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 5 })
  t.ok(await eventually(() => client.position()?.endsWith(':3') === true && client.position('channel:ops')?.endsWith(':1') === true))
  const oldEpoch = client.position()?.split(':')[0]

  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  await first.app.close()
  // The restarted gateway: a memory broker that starts a new epoch, with events published before the client is back.
  const second = await build(t)
  await second.app.realtime.broadcast('t1', 'door:opened', { door: 10 })
  await second.app.realtime.broadcast('t1', 'door:opened', { door: 11 })
  await second.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 20 })
  proxy.retarget(Number(new URL(second.http).port))
  const log: string[] = []
  const gaps: Gap[] = []
  client.on('gap', (gap) => { gaps.push(gap); log.push(`gap ${gap.stream}`) })
  client.on('event', (frame: EventFrame) => { log.push(`${frame.replayed === true ? 'replayed' : 'live'} ${frame.stream as string}#${frame.offset as number} door ${(frame.data as { door: number }).door}`) })
  client.on('state', (state) => { log.push(`state ${state}`) })
  client.on('healed', (healed) => { log.push(`healed ${healed.stream}`) })
  proxy.release()
  await reach(client, 'open', 10_000)
  await second.app.realtime.broadcast('t1', 'door:opened', { door: 12 })
  await next(client, 'event', (frame) => frame.offset === 3 && frame.stream === 'tenant')

  const newEpoch = client.position()?.split(':')[0]
  t.not(newEpoch, oldEpoch, 'the restarted broker is in a new epoch')
  t.match(gaps.find((g) => g.stream === 'tenant'), { since: { epoch: oldEpoch, offset: 3 }, oldest: { epoch: newEpoch, offset: 1 }, latest: { epoch: newEpoch, offset: 2 }, replaying: true }, 'the gap names the new epoch\'s range')
  t.same(log.filter((line) => !line.includes('channel:ops')), [
    'gap tenant', 'replayed tenant#1 door 10', 'replayed tenant#2 door 11', 'state open', 'live tenant#3 door 12'
  ], 'the app is told first, then gets the new epoch from its oldest event (not reported again as healed), then live events')
  t.same(log.filter((line) => line.includes('channel:ops')), ['gap channel:ops', 'replayed channel:ops#1 door 20'], 'a rejoined channel in the new epoch is refilled the same way')
  t.ok(log.indexOf('replayed channel:ops#1 door 20') < log.indexOf('state open'), 'open only once the channel caught up too')
  t.equal(client.position(), `${newEpoch as string}:3`)
})

t.test('a new epoch that holds no event yet is a gap only: the client continues from its start', { timeout: 30_000 }, async (t) => {
  const first = await build(t)
  const proxy = await TcpProxy.start(t, Number(new URL(first.http).port))
  const client = connect({ url: proxy.ws, token: sign({}, { expiresIn: 3_600_000 }), heartbeatInterval: 0, reconnect: { initialDelay: 50, maxDelay: 200 } })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  await first.app.realtime.broadcast('t1', 'door:opened', { door: 1 })
  t.ok(await eventually(() => client.position()?.endsWith(':1') === true))
  proxy.hold()
  proxy.cut()
  await reach(client, 'reconnecting')
  await first.app.close()
  const second = await build(t)
  proxy.retarget(Number(new URL(second.http).port))
  const gaps: Gap[] = []
  client.on('gap', (gap) => { gaps.push(gap) })
  proxy.release()
  await reach(client, 'open', 10_000)
  t.match(gaps, [{ stream: 'tenant', latest: { offset: 0 }, replaying: false }])
  await second.app.realtime.broadcast('t1', 'door:opened', { door: 2 })
  const [frame] = await next(client, 'event')
  t.match(frame, { offset: 1, data: { door: 2 } })
  t.equal(frame.replayed, undefined)
})
