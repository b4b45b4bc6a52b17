import t from 'tap'
import { brokerConfig, brokers, build, connect, events, post, prng, quietly, sign, type Client, type Frame } from '../helper.js'

/**
 * The continuity invariant: every socket attached to a stream is sent every offset of it,
 * n, n+1, … with no skip, whatever else the tenant publishes. Tenant-wide, user-targeted,
 * connection-targeted and channel events are mixed across users with several tabs each.
 */
for (const { name: broker, skip } of brokers) {
  t.test(`with the ${broker} broker`, { skip }, async (t) => {
    t.test('every socket sees each of its streams contiguously, and only its own streams', async (t) => {
      const gw = await build(t, await brokerConfig(t, broker))
      const seed = Number(process.env.CONTINUITY_SEED ?? 20261203)
      const random = prng(seed)
      const publisher = sign({ sub: 'backend', roles: ['publisher'] })
      const tabs: Array<{ user: string, channels: string[], client: Client }> = []
      for (const [user, channels] of [['alice', ['ops']], ['alice', []], ['bob', ['ops']], ['carol', []]] as const) {
        const client = await connect(gw, { sub: user })
        for (const channel of channels) {
          client.send({ type: 'subscribe', channel })
          await client.next('subscribed')
        }
        tabs.push({ user, channels: [...channels], client })
      }
      const clientIds = tabs.map((tab) => tab.client.frames.find((f) => f.type === 'authenticated')?.clientId as string)
      const published = { tenant: 0, user: new Map<string, number>(), channel: 0, direct: new Map<string, number>() }
      const total = 200
      const requests: Array<Promise<unknown>> = []
      for (let i = 0; i < total; i++) {
        const roll = random()
        let body: Record<string, unknown>
        if (roll < 0.3) {
          body = { event: 'tenant-wide', data: { i } }
          published.tenant++
        } else if (roll < 0.6) {
          const user = ['alice', 'bob', 'carol', 'dave'][Math.floor(random() * 4)] as string
          body = { event: 'for-user', data: { i }, userId: user }
          published.user.set(user, (published.user.get(user) ?? 0) + 1)
        } else if (roll < 0.8) {
          const clientId = clientIds[Math.floor(random() * clientIds.length)] as string
          body = { event: 'for-connection', data: { i }, clientId }
          published.direct.set(clientId, (published.direct.get(clientId) ?? 0) + 1)
        } else {
          body = { event: 'in-channel', data: { i }, channel: 'ops' }
          published.channel++
        }
        // A few requests in flight at once, so instances interleave streams as production does.
        requests.push(post(gw, '/api/v1/publish', publisher, body))
        if (requests.length === 4) await Promise.all(requests.splice(0))
      }
      for (const reply of await Promise.all(requests) as Array<{ status: number }>) t.equal(reply.status, 202)
      for (const [index, tab] of tabs.entries()) {
        const clientId = clientIds[index] as string
        const expected = new Map<string, number>([['tenant', published.tenant], [`user:${tab.user}`, published.user.get(tab.user) ?? 0]])
        if (tab.channels.includes('ops')) expected.set('channel:ops', published.channel)
        const directCount = published.direct.get(clientId) ?? 0
        const wanted = [...expected.values()].reduce((a, b) => a + b, 0) + directCount
        const got = await quietly(() => events(tab.client), wanted, 200)
        const byStream = new Map<string, number[]>()
        const direct: Frame[] = []
        for (const event of got) {
          if (event.stream === undefined) direct.push(event)
          else byStream.set(event.stream as string, [...byStream.get(event.stream as string) ?? [], event.offset as number])
        }
        for (const [stream, count] of expected) {
          const offsets = byStream.get(stream) ?? []
          t.same(offsets, Array.from({ length: count }, (_, k) => k + 1), `tab ${index} (${tab.user}) sees ${stream} as 1..${count}, no skip, no repeat (CONTINUITY_SEED=${seed})`)
        }
        t.same([...byStream.keys()].filter((stream) => !expected.has(stream)), [], `tab ${index} sees no stream it is not attached to`)
        t.equal(direct.length, directCount, `tab ${index} gets the events addressed to its connection`)
        t.ok(direct.every((e) => e.event === 'for-connection' && e.offset === undefined && e.epoch === undefined), 'connection-targeted events carry no position')
      }
      for (const tab of tabs) tab.client.close()
    })
  })
}
