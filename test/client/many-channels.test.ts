import t from 'tap'
import { connect, type CloseInfo, type EventFrame } from '../../client/index.js'
import WebSocket from 'ws'
import { build, settled, sign } from '../helper.js'
import { eventually, next, reach, TcpProxy, tick } from './helpers.js'

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

/** The `ws` class, counting the frames the SDK sends: the real socket, observed. */
function countingWebSocket (sent: Array<Record<string, unknown>>): typeof WebSocket {
  return class extends WebSocket {
    override send (data: unknown, ...rest: any[]): void {
      sent.push(JSON.parse(String(data)) as Record<string, unknown>)
      ;(super.send as (...args: unknown[]) => void)(data, ...rest)
    }
  } as unknown as typeof WebSocket
}

t.test('after a cut, 150 channels are rejoined in two subscribe frames, and each channel the server refuses fails visibly', { timeout: 90_000 }, async (t) => {
  const gw = await build(t, { MAX_CHANNELS: 152 })
  const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
  const channels = Array.from({ length: 150 }, (_, i) => `c${i + 1}`)
  const sent: Array<Record<string, unknown>> = []
  const client = connect({ url: proxy.ws, token: sign({ channels: ['c*', 'x*'] }, { expiresIn: 3_600_000 }), channels, WebSocket: countingWebSocket(sent), heartbeatInterval: 0, reconnect: { initialDelay: 50 } })
  t.teardown(() => { client.close() })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.code) })
  await reach(client, 'open')
  t.ok(await eventually(() => client.channels.length === 150 && sent.filter((f) => f.type === 'subscribe').length === 2), 'two subscribe frames on connect')
  await settled(async () => await gw.app.realtime.channelConnectionCount('t1', 'c150'), 1)
  await gw.app.realtime.sendToChannel('t1', 'c7', 'door:opened', { door: 7 })
  await next(client, 'event', (frame) => frame.stream === 'channel:c7')
  proxy.cut()
  await reach(client, 'reconnecting')
  sent.length = 0
  // Asked for while the link is down: joined in the rejoin's batches, past the server's channel cap.
  const late = ['x1', 'x2', 'x3', 'private'].map(async (channel) => await client.subscribe(channel).then((f) => f.channel, (e: { code: string }) => e.code))
  await reach(client, 'open')
  t.same(await Promise.all(late), ['x1', 'x2', 'CHANNEL_LIMIT', 'CHANNEL_FORBIDDEN'], 'each late channel joined or was refused with its own code')
  const subscribes = sent.filter((f) => f.type === 'subscribe')
  t.same(subscribes.map((f) => (f.channels as unknown[]).length), [100, 54], 'every channel rejoined in two frames')
  t.match((subscribes[0]?.channels as unknown[])[6], { channel: 'c7', since: /:1$/ }, 'a channel resumes from its last position')
  t.equal(client.channels.length, 152, 'refused channels are dropped, none is left waiting')
  const counts = await Promise.all([...channels, 'x1', 'x2'].map(async (c) => await gw.app.realtime.channelConnectionCount('t1', c)))
  t.equal(counts.filter((n) => n === 1).length, 152, 'the server has the client in every channel it kept')
  t.same(errors, [], 'the refusals went to their subscribe() callers, not to the error handlers')
})

t.test('a rejoin batch the frame rate limiter drops is sent again until every channel is joined', { timeout: 90_000 }, async (t) => {
  const gw = await build(t, { MAX_CHANNELS: 200, CLIENT_FRAME_RATE: 1, CLIENT_FRAME_BURST: 1 })
  const channels = Array.from({ length: 150 }, (_, i) => `c${i + 1}`)
  const sent: Array<Record<string, unknown>> = []
  const client = connect({ url: gw.ws, token: sign({}, { expiresIn: 3_600_000 }), channels, WebSocket: countingWebSocket(sent), heartbeatInterval: 0, reconnect: false })
  t.teardown(() => { client.close() })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.code) })
  const refused: unknown[] = []
  client.on('frame', (frame) => { if (frame.type === 'error') refused.push(frame.code) })
  await reach(client, 'open')
  const counts = async (): Promise<number> => (await Promise.all(channels.map(async (c) => await gw.app.realtime.channelConnectionCount('t1', c)))).filter((n) => n === 1).length
  t.equal(await settled(counts, 150), 150, 'all 150 joined')
  t.same(refused, ['RATE_LIMITED'], 'the second batch was refused once')
  t.same(sent.filter((f) => f.type === 'subscribe').map((f) => (f.channels as unknown[]).length), [100, 50, 50], 'and sent again')
  t.same(errors, [], 'nothing failed')
})
