import t from 'tap'
import { build, Client, connect, drain, sign, type Frame } from '../helper.js'

/** Every frame that answers a request, by its ref. */
function answers (client: Client, ref: string): Frame[] {
  return client.frames.filter((f) => f.ref === ref)
}

t.test('a malformed since gets one answer, INVALID_POSITION, and the request it came with is refused whole', { timeout: 15000 }, async (t) => {
  const gw = await build(t)
  const client = new Client(gw.ws)
  await client.next('connected')
  client.send({ type: 'authenticate', token: sign(), since: 'garbage', id: 'a' })
  await drain(client)
  t.same(answers(client, 'a').map((f) => [f.type, f.code]), [['error', 'INVALID_POSITION']], 'no authenticated after the error')
  t.notOk(client.frames.some((f) => f.type === 'authenticated'), 'the socket is still unauthenticated')
  client.send({ type: 'authenticate', token: sign(), id: 'b' })
  t.match(await client.next('authenticated'), { ref: 'b' }, 'and may authenticate again')

  client.send({ type: 'subscribe', channel: 'ops', since: 'x:y', id: 's' })
  await drain(client)
  t.same(answers(client, 's').map((f) => [f.type, f.code]), [['error', 'INVALID_POSITION']], 'no subscribed after the error')
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'ops'), 0, 'and not subscribed')

  client.send({ type: 'authenticate', token: sign(), since: 'epoch-without-offset', id: 'r' })
  await drain(client)
  t.same(answers(client, 'r').map((f) => [f.type, f.code]), [['error', 'INVALID_POSITION']], 'a refresh with a malformed since is refused too')
  client.close()
})

t.test('an upgrade whose since is malformed is answered with INVALID_POSITION and then waits for authenticate, bounded', { timeout: 15000 }, async (t) => {
  const gw = await build(t, { AUTH_TIMEOUT_MS: 300 })
  const client = new Client(`${gw.ws}?token=${sign()}&since=nonsense`)
  t.match(await client.next('error'), { code: 'INVALID_POSITION' })
  t.same(await client.closed, { code: 4401, reason: 'AUTHENTICATION_REQUIRED' })
  t.notOk(client.frames.some((f) => f.type === 'authenticated'))
  const fine = await connect(gw)
  t.ok(fine.frames.some((f) => f.type === 'authenticated'), 'a well-formed upgrade still authenticates, and its timer does not fire')
  await new Promise((resolve) => setTimeout(resolve, 400))
  await drain(fine)
  fine.close()
})
