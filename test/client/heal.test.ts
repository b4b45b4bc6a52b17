import t from 'tap'
import { connect, type EventFrame, type TenantcastClient } from '../../client/index.js'
import type { Gap, Healed } from '../../client/index.js'
import { build, FrameDroppingProxy, post, prng, sign, type Frame } from '../helper.js'
import { eventually, next, reach, scriptedServer } from './helpers.js'

/** An SDK client that is closed in teardown. */
function open (t: { teardown (fn: () => unknown): void }, options: Parameters<typeof connect>[0]): TenantcastClient {
  const client = connect(options)
  t.teardown(() => { client.close() })
  return client
}

function event (offset: number, stream = 'tenant', epoch = 'e1'): string {
  return JSON.stringify({ type: 'event', id: `${stream}-${offset}`, event: 'door:opened', data: { offset }, stream, offset, epoch, timestamp: new Date(0).toISOString() })
}

function recovered (stream: string, from: number, to: number, ref: unknown): string {
  return JSON.stringify({ type: 'recovered', recovered: true, stream, epoch: 'e1', from, to, count: to - from + 1, ref })
}

const authenticated = JSON.stringify({
  type: 'authenticated', userId: 'u1', tenantId: 't1', clientId: 'c1', connectionCount: 1,
  position: { epoch: 'e1', offset: 0 },
  positions: { tenant: { epoch: 'e1', offset: 0 }, 'user:u1': { epoch: 'e1', offset: 0 } }
})

/** What the app's handlers saw, per stream, and the heals and gaps reported. */
function record (client: TenantcastClient): { seen: Map<string, number[]>, healed: Healed[], gaps: Gap[] } {
  const log = { seen: new Map<string, number[]>(), healed: [] as Healed[], gaps: [] as Gap[] }
  client.on('door:opened', (_data, frame: EventFrame) => {
    const stream = frame.stream ?? 'connection'
    log.seen.set(stream, [...log.seen.get(stream) ?? [], frame.offset ?? 0])
  })
  client.on('healed', (healed) => { log.healed.push(healed) })
  client.on('gap', (gap) => { log.gaps.push(gap) })
  return log
}

t.test('a jump sends resume {stream, since} on the live connection, holds later events and delivers each once, in order', async (t) => {
  const resumes: Frame[] = []
  const server = await scriptedServer(t, (socket) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type !== 'resume') return
      resumes.push(frame)
      // The replay re-sends 3 and 4 (4 was already held), then the live stream goes on with 6 and a repeat of 5.
      for (const text of [event(3), event(4), recovered('tenant', 3, 5, frame.id), event(5), event(6)]) socket.send(text)
    })
    socket.send(authenticated)
    for (const offset of [1, 2, 4, 5]) socket.send(event(offset))
    // Another stream is not held while the tenant stream heals.
    socket.send(event(1, 'user:u1'))
  })
  const client = open(t, { url: server.url, token: 'x' })
  const log = record(client)
  const [healed] = await next(client, 'healed')
  t.same(healed, { stream: 'tenant', from: 3, to: 3 })
  t.ok(await eventually(() => (log.seen.get('tenant') ?? []).length === 6))
  t.same(log.seen.get('tenant'), [1, 2, 3, 4, 5, 6], 'each once, in order')
  t.same(log.seen.get('user:u1'), [1])
  t.match(resumes, [{ type: 'resume', stream: 'tenant', since: 'e1:2' }], 'one resume, from the last delivered position')
  t.equal(server.connections(), 1, 'healed without reconnecting')
  t.equal(client.position('tenant'), 'e1:6')
  t.same(log.gaps, [])
})

t.test('events lost again during the replay are asked for once more, and the heal completes', async (t) => {
  const resumes: Frame[] = []
  const server = await scriptedServer(t, (socket) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type !== 'resume') return
      resumes.push(frame)
      // The first replay loses 3 on the way; the second one brings it.
      const replay = resumes.length === 1 ? [event(2, 'user:u1'), event(4, 'user:u1')] : [event(3, 'user:u1'), event(4, 'user:u1')]
      for (const text of [...replay, recovered('user:u1', Number(String(frame.since).split(':')[1]) + 1, 5, frame.id)]) socket.send(text)
    })
    socket.send(authenticated)
    for (const offset of [1, 5]) socket.send(event(offset, 'user:u1'))
  })
  const client = open(t, { url: server.url, token: 'x' })
  const log = record(client)
  t.ok(await eventually(() => (log.seen.get('user:u1') ?? []).length === 5))
  t.same(log.seen.get('user:u1'), [1, 2, 3, 4, 5])
  t.match(resumes, [{ stream: 'user:u1', since: 'e1:1' }, { stream: 'user:u1', since: 'e1:2' }])
  t.same(log.healed, [{ stream: 'user:u1', from: 2, to: 4 }], 'one healed, for the whole range that was missing')
  t.equal(server.connections(), 1)
})

t.test('a server that keeps failing to fill a hole is left: the client reconnects and resumes from its position', async (t) => {
  const resumes: Frame[] = []
  const server = await scriptedServer(t, (socket, index) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type === 'resume') {
        resumes.push(frame)
        socket.send(recovered('tenant', 2, 3, frame.id))
      }
    })
    socket.send(authenticated)
    if (index === 0) for (const offset of [1, 4]) socket.send(event(offset))
  })
  const client = open(t, { url: server.url, token: 'x', reconnect: { initialDelay: 1, maxDelay: 2 } })
  const log = record(client)
  t.ok(await eventually(() => server.connections() === 2))
  t.equal(resumes.length, 3, 'three resumes that filled nothing, then a reconnect')
  t.same(log.seen.get('tenant'), [1], 'nothing out of order reached the handlers')
})

t.test('when the window no longer holds the missing events, the client emits gap and goes on from the server\'s position', async (t) => {
  const server = await scriptedServer(t, (socket) => {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type !== 'resume') return
      socket.send(JSON.stringify({ type: 'recovered', recovered: false, stream: 'tenant', epoch: 'e1', oldest: { epoch: 'e1', offset: 50 }, latest: { epoch: 'e1', offset: 60 }, ref: frame.id }))
      socket.send(event(61))
    })
    socket.send(authenticated)
    for (const offset of [1, 58, 59]) socket.send(event(offset))
  })
  const client = open(t, { url: server.url, token: 'x' })
  const log = record(client)
  const [gap] = await next(client, 'gap')
  t.match(gap, { stream: 'tenant', since: { epoch: 'e1', offset: 1 }, oldest: { offset: 50 }, latest: { offset: 60 } })
  t.ok(await eventually(() => (log.seen.get('tenant') ?? []).includes(61)))
  t.same(log.seen.get('tenant'), [1, 61], 'held events behind the gap are not delivered out of order; the app refetches')
  t.same(log.healed, [])
})

t.test('through a proxy that drops event frames, a real gateway\'s SDK client heals every stream and sees each event once, in order', async (t) => {
  const gw = await build(t)
  const seed = Number(process.env.HEAL_SEED ?? 7)
  const random = prng(seed)
  let dropping = true
  const proxy = await FrameDroppingProxy.start(t, gw.ws, () => dropping && random() < 0.15)
  const client = open(t, { url: proxy.ws, token: sign({ sub: 'alice' }), channels: ['ops'] })
  const log = record(client)
  await reach(client, 'open')
  await client.subscribe('ops')
  const publisher = sign({ sub: 'backend', roles: ['publisher'] })
  const counts = { tenant: 0, 'user:alice': 0, 'channel:ops': 0 }
  // Under the publisher's 300 requests a minute.
  for (let i = 0; i < 250; i++) {
    const roll = random()
    const [stream, target] = roll < 0.4 ? ['tenant', {}] : roll < 0.7 ? ['user:alice', { userId: 'alice' }] : ['channel:ops', { channel: 'ops' }]
    counts[stream as keyof typeof counts]++
    t.equal((await post(gw, '/api/v1/publish', publisher, { event: 'door:opened', data: { i }, ...target })).status, 202)
  }
  // A last event per stream, passed untouched: a loss at a stream's very end shows as a jump only once something follows it.
  dropping = false
  t.ok(proxy.dropped > 0, `the proxy dropped ${proxy.dropped} event frames`)
  for (const [stream, target] of [['tenant', {}], ['user:alice', { userId: 'alice' }], ['channel:ops', { channel: 'ops' }]] as const) {
    counts[stream]++
    const last = await post(gw, '/api/v1/publish', publisher, { event: 'door:opened', data: { last: true }, ...target })
    t.equal(last.status, 202, JSON.stringify(last.body))
  }
  const complete = (): boolean => Object.entries(counts).every(([stream, n]) => (log.seen.get(stream) ?? []).length >= n)
  const done = await eventually(complete, 15000)
  t.ok(done, `every stream complete (HEAL_SEED=${seed})`)
  for (const [stream, n] of Object.entries(counts)) {
    t.same(log.seen.get(stream), Array.from({ length: n }, (_, k) => k + 1), `${stream}: 1..${n}, each once, in order`)
  }
  t.ok(log.healed.length > 0, 'heals were reported')
  t.same(log.gaps, [])
})
