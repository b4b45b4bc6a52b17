import t from 'tap'
import { connect, type ConnectOptions, type TenantcastClient } from '../../client/index.js'
import { build, sign, within } from '../helper.js'
import { eventually, next, reach, tick } from './helpers.js'

type Tap = { teardown (fn: () => unknown): void }

function open (t: Tap, options: ConnectOptions): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

/** A gateway whose frame limiter lets one frame a second through and never closes for flooding. */
const STINGY = { CLIENT_FRAME_RATE: 1, CLIENT_FRAME_BURST: 1, CLIENT_FRAME_STRIKES: 1000, CLIENT_PUBLISH: 'ops' }

t.test('a publish the rate limiter dropped rejects at once with RATE_LIMITED, not after requestTimeout', async (t) => {
  const gw = await build(t, STINGY)
  const client = open(t, { url: gw.ws, token: sign(), requestTimeout: 60_000 })
  client.on('error', () => {})
  await reach(client, 'open')
  const [first, second] = [
    client.publish('ops', 'note', { n: 1 }).then(() => 'answered', (err: { code: string }) => err.code),
    client.publish('ops', 'note', { n: 2 }).then(() => 'answered', (err: { code: string }) => err.code)
  ]
  t.equal(await within(first, 3000, 'hung'), 'NOT_SUBSCRIBED', 'the first frame got through and was answered')
  t.equal(await within(second, 3000, 'hung'), 'RATE_LIMITED', 'the dropped one was answered with its ref')
})

t.test('a request takes its own timeout and an AbortSignal, and the client carries on after both', async (t) => {
  const gw = await build(t, STINGY)
  const client = open(t, { url: gw.ws, token: sign(), requestTimeout: 0 })
  client.on('error', () => {})
  await reach(client, 'open')
  await tick(1100) // a fresh token in the bucket
  const controller = new AbortController()
  const aborted = client.request({ type: 'ping' }, { signal: controller.signal }).then(() => 'answered', (err: { code: string }) => err.code)
  controller.abort()
  t.equal(await within(aborted, 3000, 'hung'), 'REQUEST_ABORTED')
  await t.rejects(client.request({ type: 'ping' }, { signal: controller.signal }), { code: 'REQUEST_ABORTED' }, 'an aborted signal refuses at once')
  await tick(1100)
  const timedOut = client.request({ type: 'ping' }, { timeout: 1 }).then(() => 'answered', (err: { code: string }) => err.code)
  // The gateway runs in this process: past its 1 ms, the timer is run before any socket is read,
  // so the pong cannot win the race however fast the loopback is.
  const until = Date.now() + 20
  while (Date.now() < until) { /* hold the loop */ }
  t.equal(await within(timedOut, 3000, 'hung'), 'REQUEST_TIMEOUT', 'its own 1 ms, although requestTimeout is 0')
  await tick(1100)
  t.match(await client.request({ type: 'ping' }), { type: 'pong' }, 'the client carries on')
})

t.test('channel joins the rate limiter dropped are sent again once it refills, until every channel is joined', async (t) => {
  const gw = await build(t, { CLIENT_FRAME_RATE: 3, CLIENT_FRAME_BURST: 3, CLIENT_FRAME_STRIKES: 1000 })
  const channels = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']
  const client = open(t, { url: gw.ws, token: sign(), heartbeatInterval: 0 })
  const errors: string[] = []
  client.on('error', (error) => { errors.push(error.code) })
  const refused: string[] = []
  client.on('frame', (frame) => { if (frame.type === 'error') refused.push(frame.code) })
  await reach(client, 'open')
  const replies = await within(Promise.all(channels.map(async (c) => (await client.subscribe(c)).channel)), 8000, 'hung')
  t.same(replies, channels, 'every subscribe() resolved, on the same connection')
  const joined = (await Promise.all(channels.map(async (c) => await gw.app.realtime.channelConnectionCount('t1', c)))).filter((n) => n === 1).length
  t.equal(joined, channels.length, 'the server has every channel')
  t.equal(client.state, 'open')
  t.same(client.channels, channels, 'and none was dropped as refused')
  t.ok(refused.length >= 5 && refused.every((code) => code === 'RATE_LIMITED'), `the limiter dropped the five past the burst (${refused.join(', ')})`)
  t.same(errors, [], 'nothing was reported as failed')
})
