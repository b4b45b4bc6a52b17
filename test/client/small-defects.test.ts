import t from 'tap'
import { connect, type ConnectOptions, type TenantcastClient } from '../../client/index.js'
import { build, settled, sign } from '../helper.js'
import { authenticatedFrame, FakeClock, next, reach, scriptedServer, tick } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

for (const name of ['state', 'authenticated'] as const) {
  t.test(`close() from an "${name}" handler leaves no timer armed, and no refresh happens later`, async (t) => {
    const gw = await build(t)
    const clock = new FakeClock()
    let calls = 0
    const client = open(t, { url: gw.ws, timers: clock, channels: ['ops'], getToken: () => { calls++; return sign({}, { expiresIn: 3_600_000 }) } })
    const errors: string[] = []
    client.on('error', (error) => { errors.push(error.code) })
    if (name === 'state') client.on('state', (state) => { if (state === 'open') client.close() })
    else client.on('authenticated', () => { client.close() })
    await reach(client, 'closed')
    await tick(50)
    t.same(clock.pending(), [], 'no heartbeat, refresh or reconnect timer')
    t.equal(calls, 1, 'getToken asked once, to connect')
    t.same(errors, [], 'the channel join was not attempted on a closed client, nor reported')
    t.equal(await settled(async () => await gw.app.realtime.connectionCount('t1'), 0), 0, 'the server saw the socket go')
  })
}

t.test('an async handler that rejects is reported as HANDLER_FAILED, not as an unhandled rejection', async (t) => {
  const gw = await build(t)
  const unhandled: unknown[] = []
  const record = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', record)
  t.teardown(() => { process.off('unhandledRejection', record) })
  const client = open(t, { url: gw.ws, token: sign() })
  const failed = next(client, 'error', (error) => error.code === 'HANDLER_FAILED')
  client.on('authenticated', async () => {
    await tick(1)
    throw new Error('the dashboard fell over')
  })
  const [error] = await failed
  t.match(error, { code: 'HANDLER_FAILED', message: 'a "authenticated" handler threw: the dashboard fell over' })
  await tick(50)
  t.same(unhandled, [])
  t.equal(client.state, 'open', 'the client carries on')
})

t.test('a recovered for a channel that arrives after unsubscribe does not bring back its position', async (t) => {
  const server = await scriptedServer(t, (socket) => {
    socket.send(authenticatedFrame())
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string, id?: string, channel?: string }
      if (frame.type === 'subscribe') socket.send(JSON.stringify({ type: 'subscribed', channel: frame.channel, ref: frame.id, position: { epoch: 'e1', offset: 2 } }))
      if (frame.type === 'unsubscribe') {
        socket.send(JSON.stringify({ type: 'unsubscribed', channel: frame.channel, ref: frame.id }))
        // The answer to the subscribe's replay, late: after the client left the channel.
        socket.send(JSON.stringify({ type: 'recovered', stream: 'channel:ops', recovered: true, epoch: 'e1', from: 2, to: 9, count: 7 }))
        socket.send(JSON.stringify({ type: 'pong', ref: 'end' }))
      }
    })
  })
  const client = open(t, { url: server.url, token: 'x' })
  await reach(client, 'open')
  await client.subscribe('ops')
  t.equal(client.position('channel:ops'), 'e1:2')
  const end = next(client, 'frame', (f) => f.type === 'pong')
  await client.unsubscribe('ops')
  await end
  t.equal(client.position('channel:ops'), undefined)
  t.same(client.channels, [])
})

t.test('subscribe with a malformed since rejects and keeps no channel', async (t) => {
  const gw = await build(t)
  const client = open(t, { url: gw.ws, token: sign() })
  await reach(client, 'open')
  await t.rejects(client.subscribe('ops', { since: 'bad' }), /<epoch>:<offset>/)
  t.same(client.channels, [], 'the channel is not kept')
  t.equal(client.position('channel:ops'), undefined)
  t.match(await client.subscribe('ops'), { type: 'subscribed', channel: 'ops' }, 'a later, valid subscribe still works')
})
