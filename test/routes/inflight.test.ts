import { generateKeyPairSync } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import t from 'tap'
import { build, heldAlarm, jwksServer, postAlarm, sign, type Gateway } from '../helper.js'

const ALARM = JSON.stringify({ message: 'Motion detected', camera: 'Front Door', severity: 'high' })

async function post (gw: Gateway, token: string): Promise<{ status: number, retryAfter: string | null, body: any }> {
  const response = await fetch(`${gw.http}/api/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: ALARM
  })
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() }
}

/** Posts until the answer is `status` (the held requests' headers reach the server in their own time); at most 200 tries. */
async function postUntil (gw: Gateway, token: string, status: number): Promise<Awaited<ReturnType<typeof post>>> {
  let reply = await post(gw, token)
  for (let i = 0; i < 200 && reply.status !== status; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    reply = await post(gw, token)
  }
  return reply
}

t.test('the in-flight cap answers 429 TENANT_INFLIGHT_LIMIT with Retry-After to the flooding tenant while another tenant\'s alarm is accepted', async (t) => {
  const gw = await build(t, { MAX_INFLIGHT_PER_TENANT: 3 })
  const noisy = sign({ tenantId: 'noisy', sub: 'camera-1' })
  const quiet = sign({ tenantId: 'quiet', sub: 'camera-1' })
  const held = [heldAlarm(gw, noisy, ALARM), heldAlarm(gw, noisy, ALARM), heldAlarm(gw, noisy, ALARM)]
  t.teardown(() => { for (const req of held) req.destroy() })

  const refused = await postUntil(gw, noisy, 429)
  t.equal(refused.status, 429)
  t.equal(refused.body.code, 'TENANT_INFLIGHT_LIMIT')
  t.equal(refused.retryAfter, '1')

  const accepted = await postAlarm(gw, quiet)
  t.equal(accepted.status, 202, 'the quiet tenant is not held back by the noisy one')
  t.equal(accepted.body.offset, 1)

  // Still refused while the three are in flight.
  t.equal((await post(gw, noisy)).status, 429)
  t.equal(gw.logs.filter((line) => line.includes('"action":"rest.inflight_limited"')).length, 1, 'one warning for the refusals, not one per request')

  // One finishes its body and is answered: its place is given back.
  const answered = new Promise<number>((resolve) => { held[0]?.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) }) })
  held[0]?.end(ALARM.slice(10))
  t.equal(await answered, 202)
  t.equal((await post(gw, noisy)).status, 202, 'a finished request gives its place back')
})

t.test('a tenant\'s in-flight count goes back to zero after its requests end, so nothing leaks', async (t) => {
  const gw = await build(t, { MAX_INFLIGHT_PER_TENANT: 1 })
  const token = sign({ tenantId: 'acme', sub: 'camera-1' })
  for (let i = 0; i < 5; i++) t.equal((await post(gw, token)).status, 202, `sequential request ${i} fits the cap of 1`)
  const req = heldAlarm(gw, token, ALARM)
  t.equal((await postUntil(gw, token, 429)).status, 429)
  req.destroy()
  t.equal((await postUntil(gw, token, 202)).status, 202, 'the aborted request released its place')
})

t.test('a request whose client went away while its token\'s key was being fetched gives its in-flight place back', async (t) => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwks = await jwksServer(t, [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' }])
  jwks.delayMs = 400
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, MAX_INFLIGHT_PER_TENANT: 1 })
  const token = createSigner({ key: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', kid: 'k1' })({ tenantId: 'acme', sub: 'camera-1' })

  // The headers reach the server, which starts fetching the key; the client leaves before it is there.
  const gone = heldAlarm(gw, token, ALARM)
  await new Promise((resolve) => setTimeout(resolve, 100))
  gone.destroy()
  await new Promise((resolve) => setTimeout(resolve, 500))
  jwks.delayMs = 0

  t.equal((await post(gw, token)).status, 202, 'the first request after it fits the cap of 1')
  t.equal((await post(gw, token)).status, 202, 'and so does the next: the abandoned request holds no place')
})
