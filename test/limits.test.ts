import t from 'tap'
import WebSocket from 'ws'
import { connect as sdkConnect } from '../client/index.js'
import { build, Client, connect, drain, post, postAlarm, sign } from './helper.js'

/** Opens a socket with an Origin header; resolves to the HTTP status of a refused upgrade, or 101. */
async function upgradeStatus (url: string, origin: string | undefined): Promise<number> {
  return await new Promise((resolve) => {
    const socket = new WebSocket(url, origin === undefined ? {} : { origin })
    socket.on('open', () => { socket.close(); resolve(101) })
    socket.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); socket.terminate() })
    socket.on('error', () => {})
  })
}

t.test('a foreign Origin is refused with 403 before the upgrade; an allowed one and none are accepted', async (t) => {
  const gw = await build(t, { ALLOWED_ORIGINS: 'https://app.example.com, https://ops.example.com' })
  const url = `${gw.ws}?token=${sign()}`
  t.equal(await upgradeStatus(url, 'https://evil.example'), 403)
  t.equal(await upgradeStatus(url, 'https://app.example.com'), 101)
  t.equal(await upgradeStatus(url, 'https://ops.example.com'), 101)
  t.equal(await upgradeStatus(url, undefined), 101, 'a non-browser client sends no Origin')
  t.match(gw.logs.join(''), /websocket\.origin\.refused/)
})

t.test('without ALLOWED_ORIGINS only the gateway\'s own origin is accepted, and * accepts any', async (t) => {
  const gw = await build(t)
  const url = `${gw.ws}?token=${sign()}`
  t.equal(await upgradeStatus(url, gw.http), 101, 'same origin')
  t.equal(await upgradeStatus(url, 'http://localhost:1'), 403)
  const open = await build(t, { ALLOWED_ORIGINS: '*' })
  t.equal(await upgradeStatus(`${open.ws}?token=${sign()}`, 'https://anywhere.example'), 101)
})

t.test('a flooding connection gets RATE_LIMITED, then 4029, while another tenant is unaffected', async (t) => {
  const gw = await build(t, { CLIENT_FRAME_RATE: 5, CLIENT_FRAME_BURST: 5, CLIENT_FRAME_STRIKES: 10 })
  const flooder = await connect(gw, { tenantId: 'noisy' })
  const calm = await connect(gw, { tenantId: 'calm' })
  for (let i = 0; i < 40; i++) flooder.send({ type: 'ping' })
  t.same(await flooder.closed, { code: 4029, reason: 'RATE_LIMITED' })
  const errors = flooder.frames.filter((f) => f.type === 'error')
  t.same(errors.map((f) => f.code), ['RATE_LIMITED'], 'one RATE_LIMITED error for frames without an id, not one per dropped frame')
  t.equal(flooder.frames.filter((f) => f.type === 'pong').length, 5, 'the burst was served')
  await postAlarm(gw, sign({ tenantId: 'calm' }))
  t.match(await calm.next('event'), { event: 'alarm:created' })
  await drain(calm)
  calm.close()
})

t.test('every request the rate limiter refuses is answered with RATE_LIMITED and its own ref, until the strikes close the socket', async (t) => {
  const gw = await build(t, { CLIENT_FRAME_RATE: 1, CLIENT_FRAME_BURST: 3, CLIENT_FRAME_STRIKES: 6 })
  const client = await connect(gw)
  for (let i = 0; i < 4; i++) client.send({ type: 'ping', id: `p${i}` })
  client.send({ type: 'ping' })
  client.send({ type: 'ping', payload: { id: 7 } })
  for (const id of ['p8', 'p9', 'p10']) client.send({ type: 'ping', id })
  t.same(await client.closed, { code: 4029, reason: 'RATE_LIMITED' })
  const errors = client.frames.filter((f) => f.type === 'error')
  t.same(errors.map((f) => [f.code, f.ref]), [['RATE_LIMITED', 'p3'], ['RATE_LIMITED', 7], ['RATE_LIMITED', 'p8'], ['RATE_LIMITED', 'p9'], ['RATE_LIMITED', 'p10']],
    'each refused request with an id got its ref back, the burst none; the refused frame without one, after a refusal in a row, got nothing')
})

t.test('a publish the rate limiter refuses rejects the SDK\'s await at once with RATE_LIMITED, long before its request timeout', async (t) => {
  const gw = await build(t, { CLIENT_FRAME_RATE: 1, CLIENT_FRAME_BURST: 2, CLIENT_PUBLISH: '*' })
  const client = sdkConnect({ url: gw.ws, token: sign(), channels: ['c'], requestTimeout: 60_000, reconnect: false })
  t.teardown(() => { client.close() })
  await client.subscribe('c')
  const started = Date.now()
  const results = await Promise.allSettled([1, 2, 3].map(async (n) => await client.publish('c', 'note', { n })))
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected'], 'the first used the last token of the burst, the others were refused')
  t.same(results.filter((r) => r.status === 'rejected').map((r) => (r.reason as { code: string }).code), ['RATE_LIMITED', 'RATE_LIMITED'])
  t.ok(Date.now() - started < 5000, 'rejected without waiting for the 60 s timeout')
})

t.test('connections per user and per tenant are capped with 4029 and a reason', async (t) => {
  const gw = await build(t, { MAX_CONNECTIONS_PER_USER: 2, MAX_CONNECTIONS_PER_TENANT: 3 })
  const tabs = [await connect(gw, { sub: 'alice' }), await connect(gw, { sub: 'alice' })]
  const third = new Client(`${gw.ws}?token=${sign({ sub: 'alice' })}`)
  t.same(await third.closed, { code: 4029, reason: 'USER_CONNECTION_LIMIT' })
  const bob = await connect(gw, { sub: 'bob' })
  const carol = new Client(`${gw.ws}?token=${sign({ sub: 'carol' })}`)
  t.same(await carol.closed, { code: 4029, reason: 'TENANT_CONNECTION_LIMIT' })
  const elsewhere = await connect(gw, { sub: 'alice', tenantId: 'other' })
  t.match(elsewhere.frames.find((f) => f.type === 'authenticated'), { tenantId: 'other' }, 'another tenant is unaffected')
  for (const c of [...tabs, bob, elsewhere]) c.close()
})

t.test('a publish larger than MAX_PUBLISH_BYTES is refused over REST and over the socket', async (t) => {
  const gw = await build(t, { MAX_PUBLISH_BYTES: 100, CLIENT_PUBLISH: '*' })
  const big = { text: 'x'.repeat(200) }
  const rest = await post(gw, '/api/v1/publish', sign({ roles: ['publisher'] }), { event: 'note', data: big })
  t.equal(rest.status, 413)
  t.match(rest.body, { code: 'PAYLOAD_TOO_LARGE' })
  const client = await connect(gw)
  client.send({ type: 'subscribe', channel: 'c' })
  await client.next('subscribed')
  client.send({ type: 'publish', channel: 'c', event: 'note', data: big, id: 'p' })
  t.match(await client.next('error'), { code: 'PAYLOAD_TOO_LARGE', ref: 'p' })
  client.send({ type: 'publish', channel: 'c', event: 'note', data: { text: 'small' }, id: 'q' })
  t.match(await client.next('published'), { ref: 'q' })
  client.close()
})

t.test('a payload nested deeper than 32 levels is refused, not serialized', async (t) => {
  const gw = await build(t)
  let data: unknown = 1
  for (let i = 0; i < 40; i++) data = { a: data }
  const reply = await post(gw, '/api/v1/publish', sign({ roles: ['publisher'] }), { event: 'deep', data })
  t.equal(reply.status, 400)
  t.match(reply.body, { code: 'VALIDATION_FAILED', message: /deeper than 32/ })
})

t.test('REST ingestion is rate-limited per tenant, not per IP', async (t) => {
  const gw = await build(t, { REST_RATE_LIMIT: 3 })
  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await postAlarm(gw, sign({ tenantId: 'busy', sub: `camera-${i}` }))).status)
  t.same(statuses, [202, 202, 202, 429], 'the fourth request of the tenant is refused, whatever the user')
  const limited = await postAlarm(gw, sign({ tenantId: 'busy' }))
  t.match(limited.body, { statusCode: 429, code: 'RATE_LIMITED' })
  t.equal((await postAlarm(gw, sign({ tenantId: 'quiet' }))).status, 202, 'another tenant from the same IP is unaffected')
  t.match(gw.logs.join(''), /rest\.rate_limited/)
})

t.test('/docs serves the OpenAPI description generated from the route schemas', async (t) => {
  const gw = await build(t)
  const response = await fetch(`${gw.http}/docs/json`)
  t.equal(response.status, 200)
  const spec = await response.json() as { openapi: string, paths: Record<string, Record<string, { requestBody?: unknown }>> }
  t.match(spec.openapi, /^3\./)
  t.ok(spec.paths['/api/v1/alarms']?.post?.requestBody, 'the alarm body schema is described')
  t.ok(spec.paths['/api/v1/publish']?.post, 'publish is described')
  t.notOk('/api/v1/events' in spec.paths, 'the socket route is not an HTTP operation')
  t.equal((await fetch(`${gw.http}/docs`)).status, 200, 'the UI page is served')
})

t.test('one principal\'s flood gets 429 from its own bucket while another principal of the same tenant still gets 202', async (t) => {
  const gw = await build(t, { REST_RATE_LIMIT: 10, REST_RATE_LIMIT_PER_PRINCIPAL: 3 })
  const browser = sign({ tenantId: 'site', sub: 'viewer-tab' })
  const flood = []
  for (let i = 0; i < 12; i++) flood.push(await postAlarm(gw, browser))
  t.same(flood.map((r) => r.status), [202, 202, 202, ...Array(9).fill(429)], 'the flooding token is held to its own 3 per minute')
  t.match(flood[3]?.body, { statusCode: 429, code: 'RATE_LIMITED', message: /for this token/ })
  const cameras = []
  for (const camera of ['cam-1', 'cam-2', 'cam-3']) {
    for (let i = 0; i < 3; i++) cameras.push([camera, (await postAlarm(gw, sign({ tenantId: 'site', sub: camera }))).status])
  }
  t.same(cameras.slice(0, 7).map(([, status]) => status), Array(7).fill(202), 'the cameras share the 7 requests the flood did not use')
  t.same(cameras.slice(7).map(([, status]) => status), [429, 429], 'and the tenant budget still holds')
  const exhausted = await postAlarm(gw, sign({ tenantId: 'site', sub: 'cam-4' }))
  t.match(exhausted, { status: 429, body: { code: 'RATE_LIMITED', message: /for this tenant/ } })
  t.equal((await postAlarm(gw, sign({ tenantId: 'other', sub: 'viewer-tab' }))).status, 202, 'the same sub in another tenant is another principal')
})

t.test('the per-principal limit defaults to a quarter of REST_RATE_LIMIT and may not exceed it', async (t) => {
  const gw = await build(t, { REST_RATE_LIMIT: 8 })
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await postAlarm(gw, sign())).status)
  t.same(statuses, [202, 202, 429])
  await t.rejects(build(t, { REST_RATE_LIMIT: 8, REST_RATE_LIMIT_PER_PRINCIPAL: 9 }), /REST_RATE_LIMIT_PER_PRINCIPAL/)
})

t.test('INGEST_ROLES restricts who may ingest alarms, and a refused token spends no budget', async (t) => {
  const gw = await build(t, { INGEST_ROLES: 'camera, ingest', REST_RATE_LIMIT: 2, REST_RATE_LIMIT_PER_PRINCIPAL: 2 })
  for (let i = 0; i < 5; i++) {
    const refused = await postAlarm(gw, sign({ sub: 'viewer', roles: ['viewer'] }))
    t.match(refused, { status: 403, body: { code: 'FORBIDDEN', message: /camera, ingest/ } })
  }
  t.equal((await postAlarm(gw, sign({ sub: 'viewer' }))).status, 403, 'a token without roles is refused too')
  t.equal((await postAlarm(gw, sign({ sub: 'cam-1', roles: ['camera'] }))).status, 202)
  t.equal((await postAlarm(gw, sign({ sub: 'svc', roles: ['ingest', 'other'] }))).status, 202, 'the tenant budget was not spent by the refusals')
  const open = await build(t)
  t.equal((await postAlarm(open, sign({ sub: 'viewer' }))).status, 202, 'unset, any member of the tenant may ingest')
})
