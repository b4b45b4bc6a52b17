import t, { type Test } from 'tap'
import { TcpProxy } from './client/helpers.js'
import { build, Client, connect, drain, events, postAlarm, quietly, redisPrefix, redisSkip, REDIS_URL, sign, within, type Gateway } from './helper.js'

const REDIS_PORT = Number(new URL(REDIS_URL).port || 6379)

/**
 * One gateway whose every Redis connection runs through a proxy the test can cut, and one
 * connected directly, sharing a fresh prefix.
 */
async function cuttable (t: Test, config: Record<string, unknown> = {}): Promise<{ proxy: TcpProxy, viaProxy: Gateway, direct: Gateway }> {
  const proxy = await TcpProxy.start(t, REDIS_PORT)
  const prefix = await redisPrefix(t)
  const viaProxy = await build(t, { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix, ...config })
  const direct = await build(t, { REDIS_URL, REDIS_PREFIX: prefix, ...config })
  return { proxy, viaProxy, direct }
}

/** Resolves with the close, or with code 0 when the socket is still open after `ms`. */
async function closedWithin (client: Client, ms: number): Promise<{ code: number, reason: string }> {
  return await within(client.closed, ms, { code: 0, reason: 'still open' })
}

async function waitFor (condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300 && !await condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
}

async function ready (gw: Gateway): Promise<boolean> {
  return (await fetch(`${gw.http}/ready`)).status === 200
}

t.test('cluster failure paths', { skip: redisSkip }, async (t) => {
  t.test('a gap the trimmed history cannot fill closes the stream\'s sockets with 4008 STREAM_GAP, and the resume says recovered: false', async (t) => {
    const { proxy, viaProxy, direct } = await cuttable(t, { HISTORY_SIZE: 3 })
    const client = await connect(viaProxy)
    const first = await postAlarm(direct, sign(), { message: '#1' })
    t.match(await client.next('event'), { offset: 1 })
    // New connections wait, so the subscriber stays away while the other instance publishes.
    proxy.hold()
    proxy.cut()
    for (let n = 2; n <= 8; n++) t.equal((await postAlarm(direct, sign(), { message: `#${n}` })).status, 202)
    proxy.release()
    t.same(await closedWithin(client, 10_000), { code: 4008, reason: 'STREAM_GAP' }, 'closed, not left with a silent gap')
    t.same(events(client).map((e) => e.offset), [1], 'nothing after the gap reached the socket first')
    await waitFor(async () => await ready(viaProxy))
    const back = new Client(`${viaProxy.ws}?token=${sign()}&since=${first.body.epoch as string}:1`)
    t.match(await back.next('recovered'), { recovered: false, oldest: { offset: 6 }, latest: { offset: 8 } }, 'its own position is out of the window: refetch')
    t.equal(events(back).length, 0, 'no partial replay')
    await postAlarm(direct, sign(), { message: '#9' })
    t.match(await back.next('event'), { offset: 9 }, 'and live delivery goes on')
    back.close()
  })

  t.test('a resume whose history read fails closes with 1013 BROKER_UNAVAILABLE', async (t) => {
    const { proxy, viaProxy } = await cuttable(t)
    const client = await connect(viaProxy)
    const stored = await postAlarm(viaProxy, sign())
    await client.next('event')
    proxy.hold()
    proxy.cut()
    client.send({ type: 'resume', since: `${stored.body.epoch as string}:0`, id: 'r' })
    t.same(await closedWithin(client, 5000), { code: 1013, reason: 'BROKER_UNAVAILABLE' })
    t.notOk(client.frames.some((f) => f.type === 'recovered'), 'no recovered frame claims a replay')
    proxy.release()
  })

  t.test('a client publish that cannot be stored is answered BROKER_UNAVAILABLE and the socket stays open', async (t) => {
    const { proxy, viaProxy } = await cuttable(t, { CLIENT_PUBLISH: '*' })
    const client = await connect(viaProxy)
    client.send({ type: 'subscribe', channel: 'room' })
    await client.next('subscribed')
    proxy.hold()
    proxy.cut()
    client.send({ type: 'publish', channel: 'room', event: 'say', data: { text: 'lost?' }, id: 'p' })
    t.match(await client.next('error'), { code: 'BROKER_UNAVAILABLE', ref: 'p' })
    await drain(client)
    t.notOk(client.frames.some((f) => f.type === 'published'), 'never acknowledged')
    proxy.release()
    await waitFor(async () => await ready(viaProxy))
    client.send({ type: 'publish', channel: 'room', event: 'say', data: { text: 'stored' }, id: 'q' })
    t.match(await client.next('published'), { ref: 'q', offset: 1 }, 'the failed publish took no offset')
    t.same((await quietly(() => events(client), 1)).map((e) => e.data.text), ['stored'])
    client.close()
  })

  t.test('MAX_CONNECTIONS_PER_USER and MAX_CONNECTIONS_PER_TENANT count the sockets of every instance', async (t) => {
    const prefix = await redisPrefix(t)
    const shared = { REDIS_URL, REDIS_PREFIX: prefix, PRESENCE_TTL: 2, MAX_CONNECTIONS_PER_USER: 2, MAX_CONNECTIONS_PER_TENANT: 3 }
    const a = await build(t, shared)
    const b = await build(t, shared)
    const open = [await connect(a, { sub: 'alice' }), await connect(b, { sub: 'alice' })]
    await waitFor(async () => await a.app.realtime.userConnectionCount('t1', 'alice') === 2)
    const third = new Client(`${a.ws}?token=${sign({ sub: 'alice' })}`)
    t.same(await closedWithin(third, 5000), { code: 4029, reason: 'USER_CONNECTION_LIMIT' }, 'A has one of alice\'s sockets, B the other')
    open.push(await connect(b, { sub: 'bob' }))
    await waitFor(async () => await a.app.realtime.connectionCount('t1') === 3)
    const carol = new Client(`${a.ws}?token=${sign({ sub: 'carol' })}`)
    t.same(await closedWithin(carol, 5000), { code: 4029, reason: 'TENANT_CONNECTION_LIMIT' }, 'A has one of the tenant\'s three sockets')
    const elsewhere = await connect(a, { sub: 'alice', tenantId: 'other' })
    t.match(elsewhere.frames.find((f) => f.type === 'authenticated'), { tenantId: 'other' }, 'another tenant is unaffected')
    open[1]?.close()
    await waitFor(async () => await a.app.realtime.userConnectionCount('t1', 'alice') === 1)
    const again = await connect(a, { sub: 'alice' })
    t.match(again.frames.find((f) => f.type === 'authenticated'), { userId: 'alice' }, 'a socket closed on B frees its place on A')
    for (const c of [...open, elsewhere, again]) c.close()
  })
})
