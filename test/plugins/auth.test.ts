import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import { createSigner } from 'fast-jwt'
import { io } from 'socket.io-client'
import t from 'tap'
import { build, Client, freePort, jwksServer, sign, SECRET, within, type Gateway } from '../helper.js'


const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPublic = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const rsaPrivate = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const rotated = generateKeyPairSync('rsa', { modulusLength: 2048 })

const now = (): number => Math.floor(Date.now() / 1000)
const claims = { sub: 'u1', tenantId: 't1' }

function signWith (key: string, algorithm: 'RS256' | 'ES256' | 'HS256', payload: Record<string, unknown> = {}, kid?: string): string {
  return createSigner({ key, algorithm, ...(kid === undefined ? {} : { kid }) })({ ...claims, ...payload })
}

function unsigned (payload: Record<string, unknown>): string {
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ ...claims, ...payload })}.`
}

/** The reason a token is refused with, over the socket (4401 reason) and over REST (401 code). */
async function refusal (gw: Gateway, token: string): Promise<{ socket: string, rest: string }> {
  const client = new Client(`${gw.ws}?token=${encodeURIComponent(token)}`)
  const closed = await client.closed
  const response = await fetch(`${gw.http}/api/v1/presence`, { headers: { authorization: `Bearer ${token}` } })
  const body = await response.json() as { code: string }
  return { socket: closed.code === 4401 ? closed.reason : `closed ${closed.code}`, rest: response.status === 401 ? body.code : `HTTP ${response.status}` }
}

async function accepted (gw: Gateway, token: string): Promise<boolean> {
  const client = new Client(`${gw.ws}?token=${encodeURIComponent(token)}`)
  const frame = await client.next('authenticated').catch(() => undefined)
  client.close()
  const response = await fetch(`${gw.http}/api/v1/presence`, { headers: { authorization: `Bearer ${token}` } })
  return frame !== undefined && response.status === 200
}

t.test('with an HMAC secret, every bad token is refused with its own reason over the socket and REST', async (t) => {
  const gw = await build(t, { JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'tenantcast' })
  const good = { iss: 'https://idp.example', aud: 'tenantcast' }
  t.ok(await accepted(gw, sign(good)), 'a good token is accepted')
  const matrix: Array<[string, string, string]> = [
    ['expired', sign({ ...good, exp: now() - 60 }), 'TOKEN_EXPIRED'],
    ['not yet valid', sign({ ...good, nbf: now() + 3600 }), 'TOKEN_NOT_YET_VALID'],
    ['signed with the wrong secret', sign(good, { key: 'not-the-secret-not-the-secret-not-the-secret' }), 'TOKEN_INVALID'],
    ['signed with another HMAC algorithm', sign(good, { algorithm: 'HS512' }), 'TOKEN_ALGORITHM'],
    ['signed with RS256 (HS/RS confusion)', signWith(rsaPrivate, 'RS256', good), 'TOKEN_ALGORITHM'],
    ['alg none', unsigned(good), 'TOKEN_ALGORITHM'],
    ['without the tenant claim', sign({ ...good, tenantId: undefined }), 'TENANT_MISSING'],
    ['with an empty tenant claim', sign({ ...good, tenantId: '' }), 'TENANT_MISSING'],
    ['with a wrong audience', sign({ ...good, aud: 'someone-else' }), 'TOKEN_AUDIENCE'],
    ['with a wrong issuer', sign({ ...good, iss: 'https://evil.example' }), 'TOKEN_ISSUER'],
    ['malformed', 'definitely.not.a-jwt', 'TOKEN_MALFORMED'],
    ['truncated', (sign(good).split('.')[0] as string), 'TOKEN_MALFORMED']
  ]
  for (const [name, token, reason] of matrix) {
    t.same(await refusal(gw, token), { socket: reason, rest: reason }, `a token ${name} is refused with ${reason}`)
  }
})

t.test('clock skew tolerance accepts a just-expired token and refuses one past it', async (t) => {
  const gw = await build(t, { JWT_CLOCK_SKEW: 120 })
  t.ok(await accepted(gw, sign({ exp: now() - 60 })), 'expired 60 s ago, within 120 s of skew')
  t.same(await refusal(gw, sign({ exp: now() - 600 })), { socket: 'TOKEN_EXPIRED', rest: 'TOKEN_EXPIRED' })
})

t.test('with a PEM public key, RS256 and ES256 work and HMAC tokens never do', async (t) => {
  const gw = await build(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY: rsaPublic.replace(/\n/g, '\\n'), JWT_ALGORITHMS: 'RS256' })
  t.ok(await accepted(gw, signWith(rsaPrivate, 'RS256')), 'an RS256 token is accepted')
  // The classic confusion attack: HMAC-sign with the public key as the secret.
  t.same(await refusal(gw, signWith(rsaPublic, 'HS256')), { socket: 'TOKEN_ALGORITHM', rest: 'TOKEN_ALGORITHM' })
  t.same(await refusal(gw, sign()), { socket: 'TOKEN_ALGORITHM', rest: 'TOKEN_ALGORITHM' })
  t.same(await refusal(gw, unsigned({})), { socket: 'TOKEN_ALGORITHM', rest: 'TOKEN_ALGORITHM' })
  t.same(await refusal(gw, signWith(rotated.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256')), { socket: 'TOKEN_INVALID', rest: 'TOKEN_INVALID' }, 'another key pair is refused')

  const ecGateway = await build(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(), JWT_ALGORITHMS: 'ES256' })
  t.ok(await accepted(ecGateway, signWith(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'ES256')), 'an ES256 token is accepted')
})

t.test('a JWKS key rotation is picked up when a token names the new kid', async (t) => {
  let keys = [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' }]
  let fetches = 0
  const server = createServer((_req, res) => {
    fetches++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys }))
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/.well-known/jwks.json`
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_JWKS_COOLDOWN_MS: 0 })
  t.ok(await accepted(gw, signWith(rsaPrivate, 'RS256', {}, 'k1')), 'a token for k1 is accepted')
  t.ok(await accepted(gw, signWith(rsaPrivate, 'RS256', { sub: 'again' }, 'k1')), 'and again, from the cache')
  t.equal(fetches, 1, 'the JWKS was fetched once for k1')
  keys = [{ ...rotated.publicKey.export({ format: 'jwk' }), kid: 'k2', use: 'sig', alg: 'RS256' }]
  t.ok(await accepted(gw, signWith(rotated.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256', {}, 'k2')), 'a token for the rotated key k2 is accepted')
  t.equal(fetches, 2, 'the unknown kid triggered one refetch')
  t.same(await refusal(gw, signWith(rsaPrivate, 'RS256', {}, 'k9')), { socket: 'TOKEN_KEY_UNKNOWN', rest: 'TOKEN_KEY_UNKNOWN' })
  t.same(await refusal(gw, signWith(rsaPrivate, 'RS256', { sub: 'stale' }, 'k1')), { socket: 'TOKEN_KEY_UNKNOWN', rest: 'TOKEN_KEY_UNKNOWN' }, 'a retired key is refused after rotation')
})

const jwk = (pair: typeof rsa, kid: string): Record<string, unknown> => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' })
const rotatedPrivate = rotated.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

/** How a token fares over the socket and over REST, side by side. */
async function outcome (gw: Gateway, token: string): Promise<{ socket: string, rest: string, retryAfter: string | null }> {
  const client = new Client(`${gw.ws}?token=${encodeURIComponent(token)}`)
  const [frame, response] = await Promise.all([
    client.next('authenticated').catch(() => undefined),
    fetch(`${gw.http}/api/v1/presence`, { headers: { authorization: `Bearer ${token}` } })
  ])
  client.close()
  const closed = frame === undefined ? await client.closed : undefined
  const body = await response.json() as { code?: string }
  return {
    socket: closed === undefined ? 'authenticated' : `${closed.code} ${closed.reason}`,
    rest: response.status === 200 ? '200' : `${response.status} ${body.code ?? ''}`,
    retryAfter: response.headers.get('retry-after')
  }
}

t.test('tokens that arrive while the first JWKS fetch is in flight wait for it and are accepted', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  jwks.delayMs = 300
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url })
  const results = await Promise.all(Array.from({ length: 6 }, async (_, n) => await outcome(gw, signWith(rsaPrivate, 'RS256', { sub: `u${n}` }, 'k1'))))
  t.same(results.map((r) => [r.socket, r.rest]), Array.from({ length: 6 }, () => ['authenticated', '200']), 'six sockets and six requests, all accepted')
  t.equal(jwks.fetches, 1, 'they all waited on one fetch')
})

t.test('a token naming a new kid within the refetch cooldown waits for the next allowed fetch and is accepted', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 600, JWT_JWKS_WAIT_MS: 3000 })
  t.equal((await outcome(gw, signWith(rsaPrivate, 'RS256', {}, 'k1'))).socket, 'authenticated')
  jwks.keys = [jwk(rsa, 'k1'), jwk(rotated, 'k2')]
  const fresh = await Promise.all([1, 2, 3].map(async (n) => await outcome(gw, signWith(rotatedPrivate, 'RS256', { sub: `u${n}` }, 'k2'))))
  t.same(fresh.map((r) => [r.socket, r.rest]), [1, 2, 3].map(() => ['authenticated', '200']), 'the rotated key is accepted once the cooldown allows a fetch')
  t.equal(jwks.fetches, 2, 'one fetch for the first key, one for the rotation')
  t.same(await refusal(gw, signWith(rsaPrivate, 'RS256', {}, 'k9')), { socket: 'TOKEN_KEY_UNKNOWN', rest: 'TOKEN_KEY_UNKNOWN' }, 'a kid still absent after that fetch is refused for good')
})

t.test('an unknown kid whose next allowed fetch is further off than JWT_JWKS_WAIT_MS is told to retry, not refused', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 60_000, JWT_JWKS_WAIT_MS: 100 })
  t.equal((await outcome(gw, signWith(rsaPrivate, 'RS256', {}, 'k1'))).socket, 'authenticated')
  const result = await outcome(gw, signWith(rotatedPrivate, 'RS256', {}, 'k2'))
  t.match(result.socket, /^1013 AUTH_UNAVAILABLE retry=\d+$/, 'the socket is closed with 1013 and a retry hint')
  const hint = Number(/retry=(\d+)/.exec(result.socket)?.[1])
  t.ok(hint > 55_000 && hint <= 60_000, `the hint (${hint} ms) is the time until the next allowed fetch`)
  t.equal(result.rest, '503 AUTH_UNAVAILABLE')
  t.ok(Number(result.retryAfter) > 55 && Number(result.retryAfter) <= 60, `Retry-After is that time in seconds (${String(result.retryAfter)})`)
  t.equal(jwks.fetches, 1, 'the cooldown held')
})

t.test('a JWKS endpoint that is down is answered with 1013 on the socket and 503 with Retry-After on REST, never 4401', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  jwks.down = true
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 200 })
  const token = signWith(rsaPrivate, 'RS256', {}, 'k1')
  const result = await outcome(gw, token)
  t.match(result.socket, /^1013 AUTH_UNAVAILABLE retry=\d+$/)
  t.equal(result.rest, '503 AUTH_UNAVAILABLE')
  t.ok(Number(result.retryAfter) >= 1, 'with a Retry-After in whole seconds')
  jwks.down = false
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.same((await outcome(gw, token)).socket, 'authenticated', 'the same token is accepted once the endpoint is back')

  const unreachable = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: `http://127.0.0.1:${await freePort()}/jwks.json` })
  const refused = await outcome(unreachable, token)
  t.match(refused.socket, /^1013 AUTH_UNAVAILABLE retry=\d+$/, 'a refused connection is an outage too')
  t.equal(refused.rest, '503 AUTH_UNAVAILABLE')
})

t.test('a JWKS slower than JWT_JWKS_WAIT_MS is answered with a retry, and the late answer serves the retry', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  jwks.delayMs = 600
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_WAIT_MS: 100 })
  const token = signWith(rsaPrivate, 'RS256', {}, 'k1')
  const result = await outcome(gw, token)
  t.match(result.socket, /^1013 AUTH_UNAVAILABLE retry=\d+$/)
  t.equal(result.rest, '503 AUTH_UNAVAILABLE')
  await new Promise((resolve) => setTimeout(resolve, 700))
  t.equal((await outcome(gw, token)).socket, 'authenticated', 'the fetch that was in flight filled the cache')
  t.equal(jwks.fetches, 1)
})

for (const transport of ['websocket', 'polling'] as const) t.test(`a Socket.IO handshake (${transport}) during a JWKS outage is retried by an unchanged socket.io-client, which joins once the JWKS is back`, async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  jwks.down = true
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 200, SOCKETIO_ENABLED: true })
  // socket.io-client's defaults (reconnection on, 1 s delay): reference 004 frontends set nothing.
  const socket = io(gw.http, { path: '/socket.io/', transports: [transport], auth: { token: signWith(rsaPrivate, 'RS256', {}, 'k1') } })
  t.teardown(() => { socket.close() })
  const seen: string[] = []
  socket.on('connect_error', (err) => { seen.push(`connect_error ${err.message}`) })
  socket.on('disconnect', (reason) => { seen.push(`disconnect ${reason}`) })
  await new Promise<void>((resolve) => { socket.io.once('close', () => { resolve() }) })
  t.ok(jwks.fetches >= 1, 'the first handshake met the outage')
  jwks.down = false
  const joined = await within(new Promise<{ companyId: string }>((resolve) => { socket.once('join:company', resolve) }), 8000, 'stranded')
  t.match(joined, { companyId: 't1' }, 'the client came back on its own with the same token')
  t.same(seen.filter((entry) => entry.startsWith('connect_error')), [], 'no connect_error, after which socket.io-client never retries')
  t.ok(seen.length >= 1 && seen.every((entry) => entry === 'disconnect transport close'), `each refused attempt looked like a dropped transport (${seen.join(', ')})`)
})

t.test('a token refresh during a JWKS outage is answered with AUTH_UNAVAILABLE and the socket stays on its current token', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 0, JWT_JWKS_MAX_AGE_MS: 200 })
  const client = new Client(`${gw.ws}?token=${signWith(rsaPrivate, 'RS256', {}, 'k1')}`)
  t.teardown(() => { client.close() })
  await client.next('authenticated')
  jwks.down = true
  await new Promise((resolve) => setTimeout(resolve, 250))
  client.send({ type: 'authenticate', token: signWith(rsaPrivate, 'RS256', { iat: now() }, 'k1'), id: 'refresh' })
  t.match(await client.next('error'), { code: 'AUTH_UNAVAILABLE', ref: 'refresh' })
  client.send({ type: 'ping', id: 'still' })
  t.match(await client.next('pong'), { ref: 'still' }, 'the connection is still open')
})

t.test('JWT_JWKS_WAIT_MS at or above AUTH_TIMEOUT_MS fails at start-up', async (t) => {
  await t.rejects(build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: 'http://127.0.0.1:9/jwks.json', JWT_JWKS_WAIT_MS: 10_000 }), { name: 'ConfigError', message: /JWT_JWKS_WAIT_MS/ })
})

t.test('a key withdrawn from the JWKS stops being accepted once the cache is older than JWT_JWKS_MAX_AGE_MS', async (t) => {
  const jwks = await jwksServer(t, [jwk(rsa, 'k1')])
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: 0, JWT_JWKS_MAX_AGE_MS: 300 })
  const token = signWith(rsaPrivate, 'RS256', {}, 'k1')
  t.equal((await outcome(gw, token)).socket, 'authenticated')
  jwks.keys = [jwk(rotated, 'k2')]
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.match(await outcome(gw, token), { socket: '4401 TOKEN_KEY_UNKNOWN', rest: '401 TOKEN_KEY_UNKNOWN' }, 'the very token accepted before is refused after the cache age')
  t.equal((await outcome(gw, signWith(rotatedPrivate, 'RS256', {}, 'k2'))).socket, 'authenticated', 'the key that replaced it works')
})

t.test('a token without exp is refused in production with TOKEN_EXP_MISSING unless JWT_REQUIRE_EXP=false', async (t) => {
  const production = await build(t, { NODE_ENV: 'production' })
  t.match(await outcome(production, sign()), { socket: '4401 TOKEN_EXP_MISSING', rest: '401 TOKEN_EXP_MISSING' })
  t.ok(await accepted(production, sign({ exp: now() + 600 })), 'a token with exp is accepted')
  const allowed = await build(t, { NODE_ENV: 'production', JWT_REQUIRE_EXP: false })
  t.ok(await accepted(allowed, sign()), 'JWT_REQUIRE_EXP=false lets it through')
  const development = await build(t, { NODE_ENV: 'development' })
  t.ok(await accepted(development, sign()), 'outside production it is accepted by default')
  const strict = await build(t, { NODE_ENV: 'development', JWT_REQUIRE_EXP: true })
  t.match(await outcome(strict, sign()), { socket: '4401 TOKEN_EXP_MISSING', rest: '401 TOKEN_EXP_MISSING' }, 'JWT_REQUIRE_EXP=true refuses it anywhere')
})

t.test('a JWT_SECRET shorter than 32 characters fails at start-up, as its message says', async (t) => {
  await t.rejects(build(t, { JWT_SECRET: 'short-secret' }), { name: 'ConfigError', message: /JWT_SECRET/ })
  await t.rejects(build(t, { JWT_SECRET: 'x'.repeat(31) }), { name: 'ConfigError', message: /JWT_SECRET/ })
  await t.resolves(build(t, { JWT_SECRET: 'x'.repeat(32) }))
})

t.test('mixing HMAC and public-key configuration fails at start-up', async (t) => {
  const attempts: Array<Record<string, unknown>> = [
    { JWT_SECRET: SECRET, JWT_PUBLIC_KEY: rsaPublic },
    { JWT_SECRET: undefined, JWT_PUBLIC_KEY: rsaPublic, JWT_ALGORITHMS: 'HS256' },
    { JWT_SECRET: SECRET, JWT_ALGORITHMS: 'RS256' },
    { JWT_SECRET: undefined, JWT_PUBLIC_KEY: rsaPublic, JWT_JWKS_URL: 'http://127.0.0.1:1/jwks' }
  ]
  for (const config of attempts) {
    await t.rejects(build(t, config), { name: 'ConfigError' }, JSON.stringify(Object.keys(config)))
  }
})
