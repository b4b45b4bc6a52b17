import t from 'tap'
import { build, connect, drain } from '../helper.js'

t.test('subscribe {channels} answers each channel once under the request\'s ref, in order, with replays after each subscribed', async (t) => {
  const gw = await build(t, { MAX_CHANNELS: 3 })
  const writer = await connect(gw)
  writer.send({ type: 'subscribe', channel: 'a' })
  const at = (await writer.next('subscribed')).position
  await gw.app.realtime.sendToChannel('t1', 'a', 'door:opened', { door: 1 })
  await gw.app.realtime.sendToChannel('t1', 'a', 'door:opened', { door: 2 })
  const client = await connect(gw, { channels: ['a', 'b', 'c', 'd', 'e'] })
  client.send({
    type: 'subscribe',
    id: 'batch',
    channels: [
      { channel: 'a', since: `${at.epoch as string}:0` }, { channel: 'b' }, { channel: 'not a channel' },
      { channel: 'secret' }, { channel: 'c', since: 'bad' }, { channel: 'c' }, { channel: 'd' }, { channel: 'b' }
    ]
  })
  for (let i = 0; i < 200 && client.frames.filter((f) => f.ref === 'batch').length < 9; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await drain(client)
  const answers = client.frames.filter((f) => f.ref === 'batch' || f.type === 'event').map((f) => f.type === 'error' ? `${f.channel as string} ${f.code as string}` : f.type === 'event' ? `event ${f.offset as number}` : `${f.type} ${(f.channel ?? f.stream) as string}`)
  t.same(answers, [
    'subscribed a', 'event 1', 'event 2', 'recovered channel:a',
    'subscribed b',
    'not a channel INVALID_CHANNEL',
    'secret CHANNEL_FORBIDDEN',
    'c INVALID_POSITION',
    'subscribed c',
    'd CHANNEL_LIMIT',
    'subscribed b'
  ], 'one answer per entry, refusals naming their channel')
  t.same(client.frames.filter((f) => f.type === 'event').map((f) => f.replayed), [true, true], 'the replay is marked')
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'c'), 1)
  client.close()
  writer.close()
})

t.test('subscribe with both channel and channels, or channels and a since, is refused whole with INVALID_MESSAGE', async (t) => {
  const gw = await build(t)
  const client = await connect(gw)
  client.send({ type: 'subscribe', id: 1, channel: 'a', channels: [{ channel: 'b' }] })
  t.match(await client.next('error'), { code: 'INVALID_MESSAGE', ref: 1 })
  client.send({ type: 'subscribe', id: 2, since: 'e:0', channels: [{ channel: 'b' }] })
  t.match(await client.next('error'), { code: 'INVALID_MESSAGE', ref: 2 })
  client.send({ type: 'subscribe', id: 3 })
  t.match(await client.next('error'), { code: 'INVALID_MESSAGE', ref: 3 })
  client.send({ type: 'subscribe', id: 4, channels: [] })
  t.match(await client.next('error'), { code: 'INVALID_MESSAGE', ref: 4 })
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'a'), 0)
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'b'), 0)
  client.close()
})
