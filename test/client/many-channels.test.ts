import t from 'tap'
import { connect, type CloseInfo, type EventFrame } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { next, reach, TcpProxy, tick } from './helpers.js'

t.test('a client in 150 channels joins every one, and rejoins every one after a reconnect, without being cut off as a flood', { timeout: 90_000 }, async (t) => {
  // The server's frame limit at its defaults (burst 100, 50 a second); only the channel cap is raised.
  const gw = await build(t, { MAX_CHANNELS: 200 })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const channels = Array.from({ length: 150 }, (_, i) => `c${i + 1}`)
  const client = connect({ url: proxy.ws, token: sign({}, { expiresIn: 3_600_000 }), channels, reconnect: { initialDelay: 50 } })
  t.teardown(() => { client.close() })
  const closes: CloseInfo[] = []
  const errors: string[] = []
  const events: EventFrame[] = []
  client.on('close', (info) => { closes.push(info) })
  client.on('error', (error) => { errors.push(error.code) })
  client.on('event', (frame) => { events.push(frame) })
  const joined = async (): Promise<number> => (await Promise.all(channels.map(async (c) => await gw.app.realtime.channelConnectionCount('t1', c)))).filter((n) => n === 1).length
  const allJoined = async (): Promise<number> => {
    let count = 0
    for (let i = 0; i < 300 && (count = await joined()) < channels.length; i++) await tick(50)
    return count
  }
  await reach(client, 'open')
  t.equal(await allJoined(), 150, 'all 150 joined on connect')
  proxy.cut()
  await next(client, 'authenticated')
  t.equal(await allJoined(), 150, 'all 150 rejoined after the reconnect')
  await gw.app.realtime.sendToChannel('t1', 'c150', 'door:opened', { door: 150 })
  for (let i = 0; i < 200 && events.length === 0; i++) await tick(10)
  t.match(events, [{ stream: 'channel:c150', event: 'door:opened' }], 'the last channel delivers')
  t.same(closes.map((c) => c.code), [1006], 'the one cut, and no 4029')
  t.same(errors, [], 'no frame was refused')
})
