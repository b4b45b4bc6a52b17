import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import { createSigner } from 'fast-jwt'
import { Redis } from 'ioredis'
import t from 'tap'
import WebSocket from 'ws'
import type { Socket } from 'node:net'
import { build, Client, connect, drain, REDIS_URL, redisPrefix, redisSkip, settled, sign } from '../helper.js'

/** The connections this prefix's presence hashes hold, summed over every instance. */
async function presenceEntries (prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL)
  try {
    let total = 0
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}pres:*`, 'COUNT', 500)
      cursor = next
      for (const key of keys) {
        if (!key.endsWith(':instances')) total += await redis.hlen(key)
      }
    } while (cursor !== '0')
    return total
  } finally {
    redis.disconnect()
  }
}

/** Opens an upgrade with `?token=` and resets the TCP connection the moment the 101 arrives. */
async function resetAfterUpgrade (url: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = new WebSocket(url)
    socket.on('error', () => {})
    socket.once('upgrade', (response) => {
      const raw = response.socket as Socket
      raw.resetAndDestroy()
      resolve()
    })
    socket.once('close', () => { resolve() })
  })
}

t.test('sockets reset while their authentication awaits Redis presence leave no ghost in the hub or presence', { skip: redisSkip }, async (t) => {
  const prefix = await redisPrefix(t)
  const gw = await build(t, { REDIS_URL, REDIS_PREFIX: prefix, MAX_CONNECTIONS_PER_USER: 1 })
  const url = `${gw.ws}?token=${sign({ sub: 'ghost' })}`
  await Promise.all(Array.from({ length: 40 }, async () => { await resetAfterUpgrade(url) }))
  t.equal(await settled(async () => await gw.app.realtime.connectionCount('t1'), 0), 0, 'no socket is left in the hub')
  t.equal(await settled(async () => await presenceEntries(prefix), 0), 0, 'and none in cluster presence')
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'ghost'), 0)
  const next = await connect(gw, { sub: 'ghost' })
  t.match(next.frames.find((f) => f.type === 'authenticated'), { userId: 'ghost' }, 'the user can still connect: no 4029')
  next.close()
  await next.closed
  t.equal(await settled(async () => await presenceEntries(prefix), 0), 0)
})

t.test('a socket closed while a JWKS fetch verifies its token is never added to the hub', async (t) => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = { ...keys.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' }
  // The JWKS endpoint answers only when released, after the socket is gone.
  const held: Array<() => void> = []
  const server = createServer((_req, res) => {
    held.push(() => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })) })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks`
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: url, MAX_CONNECTIONS_PER_USER: 1 })
  const token = createSigner({ key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', kid: 'k1' })({ sub: 'slow', tenantId: 't1' })
  const closing = new Client(`${gw.ws}?token=${token}`)
  await closing.next('connected')
  for (let i = 0; i < 200 && held.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(held.length, 1, 'the verifier is waiting on the JWKS')
  closing.socket.terminate()
  await closing.closed
  // The server sees the TCP close before the JWKS answers.
  await new Promise((resolve) => setTimeout(resolve, 100))
  for (const answer of held.splice(0)) answer()
  t.equal(await settled(async () => await gw.app.realtime.connectionCount('t1'), 1), 0, 'the closed socket never entered the hub')
  const next = new Client(`${gw.ws}?token=${token}`)
  t.match(await next.next('authenticated'), { userId: 'slow' }, 'the user is not locked out with 4029')
  next.close()
})

/** Connects a reader that stops reading, then floods the tenant until the hub drops it with 4008. */
async function stalledUntilDropped (gw: Awaited<ReturnType<typeof build>>, sub: string): Promise<Client> {
  const stalled = await connect(gw, { sub })
  stalled.socket.pause()
  const text = 'x'.repeat(15000)
  for (let n = 0; n < 5000 && await gw.app.realtime.userConnectionCount('t1', sub) > 0; n++) {
    await gw.app.realtime.broadcast('t1', 'note', { text })
    if (n % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  return stalled
}

t.test('a socket dropped as a slow consumer handles no later frame: a subscribe in the close window joins nothing', async (t) => {
  const gw = await build(t, { MAX_BUFFERED_BYTES: 65536, HISTORY_SIZE: 50, MAX_PUBLISH_BYTES: 20000 })
  const stalled = await stalledUntilDropped(gw, 'stalled')
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'stalled'), 0, 'the hub dropped it')
  // ws keeps emitting `message` while its close handshake waits for the paused peer.
  for (let i = 0; i < 5; i++) stalled.send({ type: 'subscribe', channel: `ops-${i}`, id: `s${i}` })
  stalled.send({ type: 'resume', since: 'e:0', id: 'r' })
  t.equal(await settled(async () => await gw.app.realtime.channelConnectionCount('t1', 'ops-0'), 1), 0, 'not put back into a channel index')
  const listener = await connect(gw, { sub: 'listener' })
  listener.send({ type: 'subscribe', channel: 'ops-0' })
  await listener.next('subscribed')
  t.equal(await gw.app.realtime.channelConnectionCount('t1', 'ops-0'), 1, 'only the live subscriber is in the channel')
  const published = await gw.app.realtime.sendToChannel('t1', 'ops-0', 'note', { text: 'hi' })
  t.equal(published.offset, 1)
  t.match(await listener.next('event'), { event: 'note', data: { text: 'hi' } })
  t.equal(await gw.app.realtime.connectionCount('t1'), 1, 'the dropped socket is in no index')
  await drain(listener)
  stalled.socket.resume()
  t.equal((await stalled.closed).code, 4008)
  listener.close()
})
