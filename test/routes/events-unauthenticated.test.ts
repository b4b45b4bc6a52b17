import t from 'tap'
import { CloseCode } from '../../domain/close-codes.js'
import { build, Client, connect, drain, postAlarm, sign } from '../helper.js'

/** Opens a socket without a token and waits for its first frame, or its close if refused. */
async function anonymous (url: string, forwardedFor?: string): Promise<Client> {
  const client = new Client(url, forwardedFor === undefined ? {} : { headers: { 'x-forwarded-for': forwardedFor } })
  await Promise.race([client.next('connected').catch(() => {}), client.closed])
  return client
}

function isOpen (client: Client): boolean {
  return client.socket.readyState === client.socket.OPEN
}

t.test('sockets waiting for authenticate past MAX_UNAUTHENTICATED_PER_IP close with 4029 UNAUTHENTICATED_IP_LIMIT, while authenticated clients keep working', async (t) => {
  const gw = await build(t, { MAX_UNAUTHENTICATED_PER_IP: 3 })
  const before = await connect(gw, { sub: 'before' })
  const waiting = [await anonymous(gw.ws), await anonymous(gw.ws), await anonymous(gw.ws)]
  t.ok(waiting.every(isOpen), 'the first three wait for authenticate')
  const extra = [await anonymous(gw.ws), await anonymous(gw.ws)]
  for (const client of extra) {
    t.same(await client.closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_IP_LIMIT' })
    t.same(client.frames, [], 'a refused socket gets no frame before its close')
  }
  t.ok(waiting.every(isOpen), 'the waiting ones are not disturbed')
  const after = new Client(gw.ws, { headers: { authorization: `Bearer ${sign({ sub: 'after' })}` } })
  t.match(await after.next('authenticated'), { userId: 'after' }, 'a socket that brings its token is not held to the cap')
  await postAlarm(gw, sign())
  t.match(await before.next('event'), { event: 'alarm:created' }, 'an authenticated client still gets events')
  t.match(await after.next('event'), { event: 'alarm:created' })
  t.match(gw.logs.join(''), /websocket\.unauthenticated\.limited/)
  for (const client of [before, after, ...waiting]) client.close()
})

t.test('a slot frees when its socket authenticates or closes', async (t) => {
  const gw = await build(t, { MAX_UNAUTHENTICATED_PER_IP: 2 })
  const [first, second] = [await anonymous(gw.ws), await anonymous(gw.ws)] as [Client, Client]
  t.same((await anonymous(gw.ws).then(async (c) => await c.closed)).reason, 'UNAUTHENTICATED_IP_LIMIT', 'the cap is full')
  first.send({ type: 'authenticate', token: sign() })
  await first.next('authenticated')
  const third = await anonymous(gw.ws)
  t.ok(isOpen(third), 'an authenticated socket no longer counts')
  second.close()
  await second.closed
  const fourth = new Client(gw.ws)
  await fourth.next('connected')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(isOpen(fourth), 'a closed socket no longer counts')
  t.same((await anonymous(gw.ws).then(async (c) => await c.closed)).reason, 'UNAUTHENTICATED_IP_LIMIT', 'the cap is full again')
  for (const client of [first, third, fourth]) client.close()
})

t.test('X-Forwarded-For names the client only behind a TRUST_PROXY peer, and MAX_UNAUTHENTICATED caps the total', async (t) => {
  const direct = await build(t, { MAX_UNAUTHENTICATED_PER_IP: 2 })
  const spoofed = [await anonymous(direct.ws, '10.0.0.1'), await anonymous(direct.ws, '10.0.0.2'), await anonymous(direct.ws, '10.0.0.3')]
  t.same(await spoofed[2]?.closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_IP_LIMIT' }, 'without a trusted proxy the header is ignored')
  for (const client of spoofed.slice(0, 2)) client.close()

  const proxied = await build(t, { TRUST_PROXY: '127.0.0.1', MAX_UNAUTHENTICATED_PER_IP: 2, MAX_UNAUTHENTICATED: 5 })
  const admitted = [
    await anonymous(proxied.ws, '10.0.0.1'),
    await anonymous(proxied.ws, '10.0.0.2'),
    await anonymous(proxied.ws, '10.0.0.3'),
    await anonymous(proxied.ws, '10.0.0.1')
  ]
  t.ok(admitted.every(isOpen), 'behind the trusted proxy each forwarded address has its own quota')
  t.same(await (await anonymous(proxied.ws, '10.0.0.1')).closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_IP_LIMIT' })
  const fifth = await anonymous(proxied.ws, '10.0.0.4')
  t.ok(isOpen(fifth), 'the fifth unauthenticated socket fits the total')
  t.same(await (await anonymous(proxied.ws, '10.0.0.5')).closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_LIMIT' })
  for (const client of [...admitted, fifth]) client.close()
})

t.test('a 40 KB frame before auth closes the socket with 1009 PRE_AUTH_FRAME_TOO_LARGE unanswered', async (t) => {
  const gw = await build(t)
  const client = new Client(gw.ws)
  await client.next('connected')
  client.send({ type: 'ping', id: 'big', pad: 'x'.repeat(40_000) })
  t.same(await client.closed, { code: CloseCode.TOO_LARGE, reason: 'PRE_AUTH_FRAME_TOO_LARGE' })
  t.same(client.frames.map((f) => f.type), ['connected'], 'the frame was not answered')
})

t.test('before auth an authenticate frame with an 8 KB token fits, and after auth a 40 KB frame is handled', async (t) => {
  const gw = await build(t)
  const token = sign({ pad: 'x'.repeat(5_900) })
  t.ok(token.length > 8_000, `the token is ${token.length} characters`)
  const client = new Client(gw.ws)
  await client.next('connected')
  client.send({ type: 'authenticate', token, id: 'auth' })
  t.match(await client.next(), { type: 'authenticated', ref: 'auth' })
  client.send({ type: 'ping', id: 'big', pad: 'x'.repeat(40_000) })
  t.match(await client.next(), { type: 'pong', ref: 'big' })
  await drain(client)
  client.close()
})

t.test('before auth a malformed, unknown or binary frame is answered with its code, then closed with 4401 AUTHENTICATION_REQUIRED', async (t) => {
  const gw = await build(t)
  const cases: Array<[string, (client: Client) => void, string]> = [
    ['invalid JSON', (c) => { c.send('{nope') }, 'INVALID_JSON'],
    ['an unknown type', (c) => { c.send({ type: 'launch', id: 1 }) }, 'UNKNOWN_TYPE'],
    ['an authenticate without a token', (c) => { c.send({ type: 'authenticate', id: 2 }) }, 'INVALID_MESSAGE'],
    ['a binary frame', (c) => { c.socket.send(Buffer.from([1, 2, 3]), { binary: true }) }, 'INVALID_FRAME']
  ]
  for (const [name, send, code] of cases) {
    const client = new Client(gw.ws)
    await client.next('connected')
    send(client)
    client.send({ type: 'ping', id: 'after' })
    t.match(await client.next(), { type: 'error', code }, `${name} gets ${code}`)
    t.same(await client.closed, { code: CloseCode.UNAUTHORIZED, reason: 'AUTHENTICATION_REQUIRED' }, `${name} ends the socket`)
    t.notOk(client.frames.some((f) => f.ref === 'after'), 'no later frame is answered')
  }
})

t.test('a socket whose upgrade token came with a malformed since waits for authenticate inside the cap', async (t) => {
  const gw = await build(t, { MAX_UNAUTHENTICATED_PER_IP: 2 })
  const refused = [new Client(`${gw.ws}?token=${sign()}&since=bad`), new Client(`${gw.ws}?token=${sign()}&since=bad`)]
  for (const client of refused) t.match(await client.next('error'), { code: 'INVALID_POSITION' }, 'the upgrade is refused; the socket waits for authenticate')
  t.ok(refused.every(isOpen))
  t.same(await (await anonymous(gw.ws)).closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_IP_LIMIT' }, 'the two waiting sockets hold the cap')
  t.same(await new Client(`${gw.ws}?token=${sign()}&since=bad`).closed, { code: CloseCode.RATE_LIMITED, reason: 'UNAUTHENTICATED_IP_LIMIT' }, 'a third one does not get past it')
  const first = refused[0] as Client
  first.send({ type: 'authenticate', token: sign() })
  await first.next('authenticated')
  const next = await anonymous(gw.ws)
  t.ok(isOpen(next), 'a waiting socket that authenticates frees its slot')
  for (const client of [...refused, next]) client.close()
})
