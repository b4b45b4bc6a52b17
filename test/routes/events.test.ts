import t from 'tap'
import { CloseCode } from '../../domain/close-codes.js'
import { build, Client, connect, settled, postAlarm, sign } from '../helper.js'

t.test('a token reaches the gateway in each of the four ways', async (t) => {
  const gw = await build(t)
  const token = gw.token({ sub: 'alice' })

  await t.test('as Authorization: Bearer on the upgrade request', async (t) => {
    const client = new Client(gw.ws, { headers: { authorization: `Bearer ${token}` } })
    t.equal((await client.next()).type, 'connected')
    t.match(await client.next(), { type: 'authenticated', userId: 'alice', tenantId: 't1', connectionCount: 1 })
    client.close()
    await client.closed
  })

  await t.test('as a bearer subprotocol, and the server selects tenantcast.v1 without echoing the token', async (t) => {
    const client = new Client(gw.ws, { protocols: ['tenantcast.v1', `bearer.${token}`] })
    await client.opened
    t.equal(client.socket.protocol, 'tenantcast.v1')
    t.match(await client.next('authenticated'), { userId: 'alice', tenantId: 't1' })
    client.close()
    await client.closed
  })

  await t.test('as ?token= in the query string', async (t) => {
    const client = new Client(`${gw.ws}?token=${token}`)
    t.match(await client.next('authenticated'), { userId: 'alice', tenantId: 't1' })
    client.close()
    await client.closed
  })

  await t.test('as a first authenticate message, answered with its ref', async (t) => {
    const client = new Client(gw.ws)
    const connected = await client.next()
    t.equal(connected.type, 'connected')
    t.type(connected.clientId, 'string')
    client.send({ type: 'authenticate', token, id: 'a1' })
    t.match(await client.next(), { type: 'authenticated', userId: 'alice', tenantId: 't1', ref: 'a1' })
    client.close()
    await client.closed
  })
})

t.test('each class of bad token closes the socket with 4401 and its own reason', async (t) => {
  const gw = await build(t)
  const cases: Array<[string, string]> = [
    ['an expired token', sign({ exp: Math.floor(Date.now() / 1000) - 60 })],
    ['a token signed with another secret', sign({}, { key: 'another-secret-another-secret-another-secret' })],
    ['a malformed token', 'not-a-jwt'],
    ['a token with a wrong algorithm', sign({}, { algorithm: 'HS512' })],
    ['a token without the tenant claim', sign({ tenantId: undefined })],
    ['a token with an empty tenant claim', sign({ tenantId: '' })],
    ['a token without a subject', sign({ sub: undefined })]
  ]
  const reasons = ['TOKEN_EXPIRED', 'TOKEN_INVALID', 'TOKEN_MALFORMED', 'TOKEN_ALGORITHM', 'TENANT_MISSING', 'TENANT_MISSING', 'USER_MISSING']
  for (const [i, [name, token]] of cases.entries()) {
    await t.test(`${name} is refused with ${reasons[i]}`, async (t) => {
      const client = new Client(`${gw.ws}?token=${token}`)
      t.same(await client.closed, { code: CloseCode.UNAUTHORIZED, reason: reasons[i] })
      t.notOk(client.frames.some((f) => f.type === 'authenticated'), 'it never authenticated')
    })
  }
  t.equal(await gw.app.realtime.connectionCount('t1'), 0, 'no refused socket stays in the hub')
})

t.test('a socket that never authenticates is closed with 4401 AUTHENTICATION_REQUIRED after AUTH_TIMEOUT_MS', async (t) => {
  const gw = await build(t, { AUTH_TIMEOUT_MS: 150 })
  const client = new Client(gw.ws)
  await client.next('connected')
  client.send({ type: 'ping', id: 1 })
  t.match(await client.next(), { type: 'pong', ref: 1 }, 'ping works before auth')
  t.same(await client.closed, { code: 4401, reason: 'AUTHENTICATION_REQUIRED' })
})

t.test('a socket closes with 4401 TOKEN_EXPIRED at its token exp', async (t) => {
  const gw = await build(t)
  const client = new Client(`${gw.ws}?token=${sign({}, { expiresIn: 1500 })}`)
  await client.next('authenticated')
  t.same(await client.closed, { code: 4401, reason: 'TOKEN_EXPIRED' })
  t.equal(await settled(() => gw.app.realtime.connectionCount('t1'), 0), 0, 'the expired socket left the hub')
})

t.test('a fresh token for the same identity sent before exp keeps the socket open', async (t) => {
  const gw = await build(t)
  const client = new Client(`${gw.ws}?token=${sign({}, { expiresIn: 1500 })}`)
  const first = await client.next('authenticated')
  client.send({ type: 'authenticate', token: sign({}, { expiresIn: 60_000 }), id: 'refresh' })
  t.match(await client.next(), { type: 'authenticated', ref: 'refresh', position: first.position })
  // Outlive the first token's exp, then prove the socket still works.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  client.send({ type: 'ping', id: 'after' })
  t.match(await client.next(), { type: 'pong', ref: 'after' })
  client.close()
  t.equal((await client.closed).code, 1005)
})

t.test('a refresh with another identity or a bad token is refused and the socket keeps its identity', async (t) => {
  const gw = await build(t)
  const client = await connect(gw)
  client.send({ type: 'authenticate', token: sign({ sub: 'mallory' }), id: 1 })
  t.match(await client.next(), { type: 'error', code: 'IDENTITY_MISMATCH', ref: 1 })
  client.send({ type: 'authenticate', token: sign({ tenantId: 't2' }), id: 2 })
  t.match(await client.next(), { type: 'error', code: 'IDENTITY_MISMATCH', ref: 2 })
  client.send({ type: 'authenticate', token: 'garbage', id: 3 })
  t.match(await client.next(), { type: 'error', code: 'TOKEN_MALFORMED', ref: 3 })
  await postAlarm(gw, sign({ sub: 'bob' }))
  t.match(await client.next(), { type: 'event', event: 'alarm:created' }, 'still receives its tenant events')
  await postAlarm(gw, sign({ tenantId: 't2' }))
  client.send({ type: 'ping', id: 4 })
  t.match(await client.next(), { type: 'pong', ref: 4 }, 'and nothing of t2 arrived before the pong')
  client.close()
})

t.test('bad frames get an error code and the connection stays usable', async (t) => {
  const gw = await build(t)
  const client = await connect(gw)
  client.send('{not json')
  t.match(await client.next(), { type: 'error', code: 'INVALID_JSON' })
  client.send('[1,2,3]')
  t.match(await client.next(), { type: 'error', code: 'INVALID_FRAME' })
  client.send('"text"')
  t.match(await client.next(), { type: 'error', code: 'INVALID_FRAME' })
  client.send({ type: 'launch-missiles', id: 7 })
  t.match(await client.next(), { type: 'error', code: 'UNKNOWN_TYPE', ref: 7 })
  client.send({ type: 'authenticate', token: 42, id: 8 })
  t.match(await client.next(), { type: 'error', code: 'INVALID_MESSAGE', ref: 8 })
  client.socket.send(Buffer.from([1, 2, 3]), { binary: true })
  t.match(await client.next(), { type: 'error', code: 'INVALID_FRAME' })
  client.send({ type: 'ping', id: 'still-here' })
  t.match(await client.next(), { type: 'pong', ref: 'still-here' })
  client.close()
})

t.test('a frame over MAX_PAYLOAD closes the socket with 1009 and other sockets are unaffected', async (t) => {
  const gw = await build(t, { MAX_PAYLOAD: 2048 })
  const big = await connect(gw)
  const other = await connect(gw)
  big.send({ type: 'ping', pad: 'x'.repeat(4096) })
  t.equal((await big.closed).code, CloseCode.TOO_LARGE)
  other.send({ type: 'ping', id: 'ok' })
  t.match(await other.next('pong'), { ref: 'ok' })
  other.close()
})

t.test('the heartbeat terminates a peer that stops answering pings', async (t) => {
  const gw = await build(t, { WS_HEARTBEAT_INTERVAL: 100 })
  const silent = new Client(`${gw.ws}?token=${sign({ sub: 'silent' })}`, { autoPong: false })
  const lively = await connect(gw, { sub: 'lively' })
  await silent.next('authenticated')
  t.equal((await silent.closed).code, 1006, 'terminated without a close frame')
  t.equal(await settled(() => gw.app.realtime.connectionCount('t1'), 1), 1, 'only the answering socket remains')
  lively.send({ type: 'ping', id: 'alive' })
  t.match(await lively.next('pong'), { ref: 'alive' })
  lively.close()
})

t.test('closing the app sends 1001 to every socket', async (t) => {
  const gw = await build(t)
  const clients = await Promise.all([connect(gw), connect(gw, { tenantId: 't2' }), connect(gw, { sub: 'u2' })])
  const unauthenticated = new Client(gw.ws)
  await unauthenticated.next('connected')
  await gw.app.close()
  for (const client of [...clients, unauthenticated]) {
    const closed = await client.closed
    t.equal(closed.code, 1001)
    t.match(closed.reason, /^SERVER_SHUTDOWN retry=\d+$/, 'the reason carries a reconnect delay')
  }
})

t.test('a custom WS_PATH moves the endpoint', async (t) => {
  const gw = await build(t, { WS_PATH: '/rt' })
  const client = new Client(`${gw.ws}?token=${sign()}`)
  t.match(await client.next('authenticated'), { tenantId: 't1' })
  client.close()
})
