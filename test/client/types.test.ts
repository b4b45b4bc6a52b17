import t from 'tap'
import WS from 'ws'
import { connect, TenantcastError, type TenantcastClient, type TenantcastErrorCode } from '../../client/index.js'
import { build, sign } from '../helper.js'
import { next, reach } from './helpers.js'

// What these tests check is mostly that this file compiles (`tsc --noEmit -p .` covers test/):
// every `@ts-expect-error` must meet an error, so a type that loosens fails the build too.

/** An app's own events, next to the catalogue's. */
interface DoorEvents extends Record<string, unknown> {
  'door:opened': { door: number }
}

t.test('the ws class and the browser\'s WebSocket are accepted as the WebSocket option without a cast', async (t) => {
  const gw = await build(t)
  const withWs = connect({ url: gw.ws, token: sign(), WebSocket: WS })
  t.teardown(() => { withWs.close() })
  await reach(withWs, 'open')
  const Browser: typeof globalThis.WebSocket | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket
  // Node 20 has no global WebSocket; the type still has to fit where there is one (browsers, Node 22).
  const options = { url: gw.ws, token: sign(), ...(Browser === undefined ? {} : { WebSocket: Browser }) }
  const withBrowser = connect(options)
  t.teardown(() => { withBrowser.close() })
  await reach(withBrowser, 'open')
  t.equal(withWs.state, 'open')
})

t.test('connect<MyEvents>() types an app\'s own events in on() and publish()', async (t) => {
  const gw = await build(t, { CLIENT_PUBLISH: 'ops' })
  const client: TenantcastClient<DoorEvents> = connect<DoorEvents>({ url: gw.ws, token: sign(), channels: ['ops'] })
  t.teardown(() => { client.close() })
  const doors: number[] = []
  client.on('door:opened', (data, frame) => {
    const door: number = data.door
    const name: 'door:opened' = frame.event
    doors.push(door)
    t.equal(name, 'door:opened')
  })
  // @ts-expect-error the data of door:opened has no `window`
  client.on('door:opened', (data) => { doors.push(data.window) })
  await reach(client, 'open')
  await client.subscribe('ops')
  // @ts-expect-error door must be a number
  const wrong = async (): Promise<unknown> => await client.publish('ops', 'door:opened', { door: 'three' })
  t.type(wrong, 'function')
  const delivered = next(client, 'event', (frame) => frame.event === 'door:opened')
  const published = await client.publish('ops', 'door:opened', { door: 3 })
  t.match(published, { type: 'published', stream: 'channel:ops' })
  await delivered
  // @ts-expect-error an untyped name still takes any data, but a typed one never falls through
  const fallsThrough = async (): Promise<unknown> => await client.publish('ops', 'door:opened', { door: 'four' })
  t.type(fallsThrough, 'function')
  const untyped = async (): Promise<unknown> => await client.publish('ops', 'anything:else', { whatever: true })
  t.type(untyped, 'function')
  t.same(doors.filter((d) => d !== undefined), [3])
})

t.test('TenantcastError.code is a union of the documented codes', async (t) => {
  const error = new TenantcastError('CHANNEL_FORBIDDEN', 'no')
  const code: TenantcastErrorCode = error.code
  // @ts-expect-error not a documented code
  const unknown = new TenantcastError('NO_SUCH_CODE', 'x')
  // @ts-expect-error a comparison with a code that does not exist cannot be true
  t.notOk(code === 'NO_SUCH_CODE')
  const codes: TenantcastErrorCode[] = ['NOT_CONNECTED', 'CONNECTION_CLOSED', 'TOKEN_UNAVAILABLE', 'HANDLER_FAILED', 'INVALID_SERVER_FRAME', 'RATE_LIMITED', 'INVALID_CHANNEL']
  t.equal(codes.length, 7)
  t.equal(unknown.code, 'NO_SUCH_CODE', 'at run time the code is what it was given')
})
