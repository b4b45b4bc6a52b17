import type { Socket } from 'node:net'
import t from 'tap'
import { brokerConfig, brokers, build, Client, connect, drain, events, get, post, postAlarm, prng, quietly, sign, type Frame, type Gateway } from '../helper.js'

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

function positionOf (frame: Frame): string {
  return `${frame.epoch as string}:${frame.offset as number}`
}

async function broadcast (gw: Gateway, tenantId: string, n: number, channel?: string): Promise<void> {
  const data = { id: `a${n}`, type: 'alarm' as const, message: `#${n}`, camera: 'c', severity: 'low' as const, timestamp: new Date().toISOString() }
  if (channel === undefined) await gw.app.realtime.broadcast(tenantId, 'alarm:created', data)
  else await gw.app.realtime.sendToChannel(tenantId, channel, 'alarm:created', data)
}

for (const { name: broker, skip } of brokers) {
t.test(`with the ${broker} broker`, { skip }, async (t) => {
  t.test('a reconnect with the last position gets exactly the missed events in order, then live ones', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    const first = await connect(gw)
    for (let n = 1; n <= 3; n++) await postAlarm(gw, sign(), { message: `#${n}` })
    const seen = await first.collect('event', 3)
    const last = seen.at(-1) as Frame
    first.close()
    await first.closed
    for (let n = 4; n <= 6; n++) await postAlarm(gw, sign(), { message: `#${n}` })
    const again = new Client(`${gw.ws}?token=${sign()}&since=${positionOf(last)}`)
    const authenticated = await again.next('authenticated')
    t.match(authenticated.position, { epoch: last.epoch, offset: 6 })
    const replayed = [await again.next('event'), await again.next('event'), await again.next('event')]
    t.same(replayed.map((e) => e.data.message), ['#4', '#5', '#6'])
    t.match(await again.next(), { type: 'recovered', recovered: true, stream: 'tenant', from: 4, to: 6, count: 3 })
    await postAlarm(gw, sign(), { message: '#7' })
    t.match(await again.next(), { type: 'event', offset: 7, data: { message: '#7' } }, 'live continues with no gap')
    t.same((await quietly(() => events(again), 4)).map((e) => e.offset), [4, 5, 6, 7], 'and nothing arrives twice later')
    again.close()
  })

  t.test('since in authenticate and resume on a live connection both replay what was missed', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    for (let n = 1; n <= 4; n++) await postAlarm(gw, sign(), { message: `#${n}` })
    const epoch = (await postAlarm(gw, sign(), { message: '#5' })).body.epoch as string
    const byMessage = new Client(gw.ws)
    await byMessage.next('connected')
    byMessage.send({ type: 'authenticate', token: sign(), since: `${epoch}:3` })
    await byMessage.next('authenticated')
    t.same((await byMessage.collect('event', 2)).map((e) => e.offset), [4, 5])
    t.match(await byMessage.next('recovered'), { recovered: true, count: 2 })
    byMessage.close()

    const live = await connect(gw)
    await postAlarm(gw, sign(), { message: '#6' })
    t.match(await live.next('event'), { offset: 6 })
    live.send({ type: 'resume', since: `${epoch}:2`, id: 'r' })
    const recovered = await live.next('recovered')
    t.match(recovered, { recovered: true, stream: 'tenant', from: 3, to: 6, count: 4, ref: 'r' })
    t.same(events(live).map((e) => e.offset), [6, 3, 4, 5, 6], 'everything after since, #6 again: a healing client drops what it has by offset')
    live.send({ type: 'resume', stream: 'tenant', since: `${epoch}:5`, id: 'again' })
    t.match(await live.next('recovered'), { recovered: true, from: 6, to: 6, count: 1, ref: 'again' }, 'the per-stream form names the stream')
    await postAlarm(gw, sign(), { message: '#7' })
    t.match(await live.next('event'), { offset: 7 })
    t.same(events(live).map((e) => e.offset), [6, 3, 4, 5, 6, 6, 7], 'live events go on once each after a resume')
    live.send({ type: 'resume', since: 'garbage', id: 'bad' })
    t.match(await live.next('error'), { code: 'INVALID_POSITION', ref: 'bad' })
    live.close()
  })

  t.test('a channel subscribe with since replays the channel\'s missed events', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    const first = await connect(gw)
    first.send({ type: 'subscribe', channel: 'ops' })
    await first.next('subscribed')
    await broadcast(gw, 't1', 1, 'ops')
    await broadcast(gw, 't1', 2, 'ops')
    const last = (await first.collect('event', 2)).at(-1) as Frame
    t.equal(last.stream, 'channel:ops')
    first.close()
    await first.closed
    await broadcast(gw, 't1', 3, 'ops')
    await broadcast(gw, 't1', 99)
    const again = await connect(gw)
    again.send({ type: 'subscribe', channel: 'ops', since: positionOf(last), id: 's' })
    t.match(await again.next(), { type: 'subscribed', channel: 'ops', ref: 's' })
    t.match(await again.next(), { type: 'event', stream: 'channel:ops', offset: 3, data: { message: '#3' } })
    t.match(await again.next(), { type: 'recovered', stream: 'channel:ops', recovered: true, count: 1, ref: 's' })
    again.close()
  })

  t.test('resume is exactly-once and in order while events are published during the replay', async (t) => {
    const gw = await build(t, { ...await brokerConfig(t, broker), HISTORY_SIZE: 500 })
    const seed = Number(process.env.RESUME_SEED ?? 20261122)
    const random = prng(seed)
    const rounds = 20
    for (let round = 0; round < rounds; round++) {
      const tenantId = `p${round}`
      const channel = random() < 0.5 ? 'live' : undefined
      const before = 1 + Math.floor(random() * 5)
      const away = Math.floor(random() * 8)
      const during = 1 + Math.floor(random() * 15)
      const first = await connect(gw, { tenantId })
      if (channel !== undefined) {
        first.send({ type: 'subscribe', channel })
        await first.next('subscribed')
      }
      let n = 0
      for (let i = 0; i < before; i++) await broadcast(gw, tenantId, ++n, channel)
      const last = (await first.collect('event', before)).at(-1) as Frame
      first.close()
      await first.closed
      for (let i = 0; i < away; i++) await broadcast(gw, tenantId, ++n, channel)

      const since = positionOf(last)
      const url = channel === undefined ? `${gw.ws}?token=${sign({ tenantId })}&since=${since}` : `${gw.ws}?token=${sign({ tenantId })}`
      const again = new Client(url)
      if (channel !== undefined) {
        await again.next('authenticated')
        again.send({ type: 'subscribe', channel, since })
      }
      // Publish concurrently with the reconnect and the replay, at random points.
      const publishing = (async () => {
        for (let i = 0; i < during; i++) {
          const waits = Math.floor(random() * 3)
          for (let w = 0; w < waits; w++) await tick()
          await broadcast(gw, tenantId, ++n, channel)
        }
      })()
      await publishing
      const expected = away + during
      const got = await quietly(() => events(again), expected, 150)
      const offsets = got.map((e) => e.offset as number)
      const want = Array.from({ length: expected }, (_, i) => (last.offset as number) + 1 + i)
      if (!t.same(offsets, want, `round ${round}: ${away} missed + ${during} concurrent, each once, in order`)) {
        t.comment(`replay with RESUME_SEED=${seed} (round ${round})`)
      }
      t.equal(got.length, expected)
      t.match(again.frames.find((f) => f.type === 'recovered'), { recovered: true }, `round ${round}: recovered`)
      again.close()
      await again.closed
    }
  })

  t.test('outside the window or after an epoch change, recovered is false with the oldest position held', async (t) => {
    const gw = await build(t, { ...await brokerConfig(t, broker), HISTORY_SIZE: 3 })
    const first = await connect(gw)
    await postAlarm(gw, sign())
    const last = await first.next('event')
    first.close()
    await first.closed
    for (let n = 0; n < 6; n++) await postAlarm(gw, sign())
    const late = new Client(`${gw.ws}?token=${sign()}&since=${positionOf(last)}`)
    const recovered = await late.next('recovered')
    t.match(recovered, { recovered: false, stream: 'tenant', oldest: { epoch: last.epoch, offset: 5 }, latest: { offset: 7 } })
    t.equal(events(late).length, 0, 'nothing is replayed out of window')
    await postAlarm(gw, sign())
    t.match(await late.next('event'), { offset: 8 }, 'and live delivery goes on')
    late.close()

    const stale = new Client(`${gw.ws}?token=${sign()}&since=an-old-epoch:2`)
    t.match(await stale.next('recovered'), { recovered: false, epoch: last.epoch })
    stale.close()

    const ahead = new Client(`${gw.ws}?token=${sign()}&since=${last.epoch as string}:999`)
    t.match(await ahead.next('recovered'), { recovered: false }, 'a position from the future is not trusted')
    ahead.close()
  })

  t.test('a replay never includes events the connection was not entitled to', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    const publisher = sign({ sub: 'backend', roles: ['publisher'] })
    const alice = await connect(gw, { sub: 'alice', channels: ['public-*'] })
    await post(gw, '/api/v1/publish', publisher, { event: 'hello', data: {} })
    const last = await alice.next('event')
    alice.close()
    await alice.closed
    await post(gw, '/api/v1/publish', publisher, { event: 'for-bob', data: {}, userId: 'bob' })
    await post(gw, '/api/v1/publish', publisher, { event: 'for-alice', data: {}, userId: 'alice' })
    await post(gw, '/api/v1/publish', publisher, { event: 'secret', data: {}, channel: 'secret' })
    await post(gw, '/api/v1/publish', publisher, { event: 'to-a-client', data: {}, clientId: 'someone-else' })
    await post(gw, '/api/v1/publish', publisher, { event: 'for-all', data: {} })
    const back = new Client(`${gw.ws}?token=${sign({ sub: 'alice', channels: ['public-*'] })}&since.tenant=${positionOf(last)}&since.user:alice=${last.epoch as string}:0`)
    const recovered = [await back.next('recovered'), await back.next('recovered')]
    t.same(events(back).map((e) => `${e.stream as string}:${e.event as string}`), ['tenant:for-all', 'user:alice:for-alice'])
    t.match(recovered, [{ stream: 'tenant', recovered: true, count: 1 }, { stream: 'user:alice', recovered: true, from: 1, count: 1 }], 'offset 0 of the empty user stream\'s provisional epoch covers its first events')
    back.send({ type: 'subscribe', channel: 'secret', since: `${last.epoch as string}:0`, id: 's' })
    t.match(await back.next(), { type: 'error', code: 'CHANNEL_FORBIDDEN', ref: 's' })
    await drain(back)
    t.notOk(events(back).some((e) => e.event === 'secret'), 'no channel event without the right to join')
    back.close()
  })

  t.test('REST history serves one stream the token is entitled to, paged, and refuses the others with a code', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    const publisher = sign({ sub: 'backend', roles: ['publisher'] })
    const epoch = (await post(gw, '/api/v1/publish', publisher, { event: 'one', data: {} })).body.epoch as string
    await post(gw, '/api/v1/publish', publisher, { event: 'for-bob', data: {}, userId: 'bob' })
    const aliceEpoch = (await post(gw, '/api/v1/publish', publisher, { event: 'for-alice', data: {}, userId: 'alice' })).body.epoch as string
    await post(gw, '/api/v1/publish', publisher, { event: 'in-channel', data: {}, channel: 'x' })
    await post(gw, '/api/v1/publish', publisher, { event: 'two', data: {} })
    await post(gw, '/api/v1/publish', publisher, { event: 'three', data: {} })
    const all = await get(gw, '/api/v1/events/history', sign({ sub: 'alice' }))
    t.equal(all.status, 200)
    t.match(all.body, { recovered: true, epoch, oldest: 1, latest: 3 })
    t.same(all.body.events.map((e: any) => `${e.stream as string}:${e.offset as number}:${e.event as string}`), ['tenant:1:one', 'tenant:2:two', 'tenant:3:three'])
    const page = await get(gw, `/api/v1/events/history?since=${epoch}:1&limit=1`, sign({ sub: 'alice' }))
    t.same(page.body.events.map((e: any) => e.offset), [2])
    t.equal(page.body.next, `${epoch}:2`)
    const rest = await get(gw, `/api/v1/events/history?since=${page.body.next as string}`, sign({ sub: 'alice' }))
    t.same(rest.body.events.map((e: any) => e.offset), [3])
    t.equal(rest.body.next, undefined)
    const mine = await get(gw, '/api/v1/events/history?stream=user:alice', sign({ sub: 'alice' }))
    t.match(mine.body, { recovered: true, epoch: aliceEpoch, oldest: 1, latest: 1 })
    t.same(mine.body.events.map((e: any) => `${e.stream as string}:${e.offset as number}:${e.event as string}`), ['user:alice:1:for-alice'])
    const channel = await get(gw, '/api/v1/events/history?stream=channel:x', sign({ sub: 'alice' }))
    t.same(channel.body.events.map((e: any) => e.event), ['in-channel'])
    const bobs = await get(gw, '/api/v1/events/history?stream=user:bob', sign({ sub: 'alice' }))
    t.match(bobs, { status: 403, body: { code: 'STREAM_FORBIDDEN' } }, 'another user\'s stream is refused')
    const closed = await get(gw, '/api/v1/events/history?stream=channel:x', sign({ sub: 'alice', channels: ['public-*'] }))
    t.match(closed, { status: 403, body: { code: 'CHANNEL_FORBIDDEN' } }, 'a channel the token may not join is refused')
    t.match(await get(gw, '/api/v1/events/history?stream=connection', sign()), { status: 400, body: { code: 'UNKNOWN_STREAM' } })
    const stale = await get(gw, '/api/v1/events/history?since=old:2', sign({ sub: 'alice' }))
    t.match(stale.body, { recovered: false })
    t.same(stale.body.events.map((e: any) => e.event), ['one', 'two', 'three'], 'a stale position gets everything retained')
    t.equal((await get(gw, '/api/v1/events/history?since=nonsense', sign())).status, 400)
    t.equal((await get(gw, '/api/v1/events/history', sign({ tenantId: 'other' }))).body.events.length, 0, 'another tenant sees none of it')
    t.equal((await get(gw, '/api/v1/events/history?stream=user:alice', sign({ sub: 'alice', tenantId: 'other' }))).body.events.length, 0, 'nor its user streams')
  })

  t.test('an Idempotency-Key retry returns the original id and offset and delivers nothing new', async (t) => {
    const gw = await build(t, await brokerConfig(t, broker))
    const client = await connect(gw)
    const headers = { 'idempotency-key': 'cam-7-evt-1' }
    const first = await post(gw, '/api/v1/alarms', sign(), { message: 'm', camera: 'c', severity: 'high' }, headers)
    const retry = await post(gw, '/api/v1/alarms', sign(), { message: 'm', camera: 'c', severity: 'high' }, headers)
    t.equal(first.status, 202)
    t.equal(retry.status, 202)
    t.same(retry.body, first.body)
    t.equal(retry.headers.get('idempotent-replayed'), 'true')
    const concurrent = await Promise.all([1, 2, 3].map(async () => await post(gw, '/api/v1/alarms', sign(), { message: 'n', camera: 'c', severity: 'low' }, { 'idempotency-key': 'burst' })))
    t.equal(new Set(concurrent.map((r) => r.body.id)).size, 1, 'concurrent retries share one event')
    const conflict = await post(gw, '/api/v1/alarms', sign(), { message: 'different', camera: 'c', severity: 'high' }, headers)
    t.equal(conflict.status, 409)
    t.match(conflict.body, { code: 'IDEMPOTENCY_CONFLICT' })
    const otherTenant = await post(gw, '/api/v1/alarms', sign({ tenantId: 't2' }), { message: 'm', camera: 'c', severity: 'high' }, headers)
    t.not(otherTenant.body.id, first.body.id, 'keys are per tenant')
    const publish = sign({ roles: ['publisher'] })
    const p1 = await post(gw, '/api/v1/publish', publish, { event: 'x', data: { a: 1 } }, { 'idempotency-key': 'p' })
    const p2 = await post(gw, '/api/v1/publish', publish, { event: 'x', data: { a: 1 } }, { 'idempotency-key': 'p' })
    t.same([p2.body.id, p2.body.offset], [p1.body.id, p1.body.offset])
    t.equal((await post(gw, '/api/v1/publish', publish, { event: 'x', data: { a: 2 } }, { 'idempotency-key': 'p' })).status, 409)
    await drain(client)
    t.same(events(client).map((e) => e.offset), [1, 2, 3], 'one delivery per key: the alarm, the burst and the publish')
    t.equal((await post(gw, '/api/v1/alarms', sign(), { message: 'm', camera: 'c', severity: 'high' }, { 'idempotency-key': 'bad key with spaces' })).status, 400)
    client.close()
  })

  t.test('a paused reader is closed with 4008 while the rest of the tenant keeps receiving, and what the server holds for it stays bounded', async (t) => {
    const gw = await build(t, { ...await brokerConfig(t, broker), MAX_BUFFERED_BYTES: 65536, HISTORY_SIZE: 100 })
    const serverSockets: Socket[] = []
    gw.app.server.on('connection', (socket: Socket) => { serverSockets.push(socket) })
    const stalled = await connect(gw, { sub: 'stalled' })
    const reader = await connect(gw, { sub: 'reader' })
    stalled.socket.pause()
    const metadata = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'.repeat(250)]))
    let published = 0
    while (await gw.app.realtime.userConnectionCount('t1', 'stalled') > 0 && published < 5000) {
      await gw.app.realtime.broadcast('t1', 'alarm:created', {
        id: `b${published}`, type: 'alarm', message: 'flood', camera: 'c', severity: 'low', timestamp: new Date().toISOString(), metadata
      })
      published++
      if (published % 50 === 0) await tick()
    }
    t.equal(await gw.app.realtime.userConnectionCount('t1', 'stalled'), 0, 'the stalled socket was dropped')
    const afterDrop = published
    // What the server holds for the stalled socket is its unsent bytes in Node: the server side of
    // that TCP connection (still closing, since the paused peer never answers) holds the most.
    const held = (): number => Math.max(...serverSockets.map((s) => s.writableLength))
    await tick()
    const heldAtDrop = held()
    for (let i = 0; i < 200; i++) {
      await gw.app.realtime.broadcast('t1', 'alarm:created', {
        id: `c${i}`, type: 'alarm', message: 'after', camera: 'c', severity: 'low', timestamp: new Date().toISOString(), metadata
      })
      published++
    }
    await tick()
    const heldAfter = held()
    const got = await reader.collect('event', published)
    t.equal(got.length, published, 'the reading socket got every event')
    t.same(got.map((e) => e.offset), Array.from({ length: published }, (_, i) => i + 1), 'in order')
    stalled.socket.resume()
    t.equal((await stalled.closed).code, 4008)
    t.ok(afterDrop < 5000, `dropped after ${afterDrop} events`)
    // The guard checks before each write, and frames written in one turn are flushed together,
    // so the bound is MAX_BUFFERED_BYTES plus one turn of frames: this loop's 50 (of ~5.5 KB),
    // and the fair scheduler's round of what queued in the turn before, which can land in the
    // same coalescing turn (at most another 50 here).
    t.ok(heldAtDrop <= 65536 + 100 * 6 * 1024, `${heldAtDrop} bytes held for the dropped socket`)
    t.ok(heldAfter <= heldAtDrop, `nothing more queued for it: ${heldAfter} bytes after 200 more events`)
    t.match(gw.logs.join(''), /websocket\.slow_consumer/)
    t.match(await (await fetch(`${gw.http}/metrics`)).text(), /^tenantcast_slow_consumer_disconnects_total 1$/m, 'and counted')
    reader.close()
  })
})
}
