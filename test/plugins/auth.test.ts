import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import { createSigner } from 'fast-jwt'
import t from 'tap'
import { build, Client, sign, SECRET, type Gateway } from '../helper.js'

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
