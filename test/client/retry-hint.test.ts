import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import { createSigner } from 'fast-jwt'
import t from 'tap'
import { connect, retryHint, type TenantcastClient } from '../../client/index.js'
import { build } from '../helper.js'
import { FakeClock, next, reach } from './helpers.js'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })

t.test('while the gateway cannot reach its JWKS, the client waits the hint of its 1013 and comes back with the same token', async (t) => {
  let down = true
  let fetches = 0
  const jwks = createServer((_req, res) => {
    fetches++
    if (down) {
      res.statusCode = 503
      res.end()
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' }] }))
  })
  await new Promise<void>((resolve) => { jwks.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { jwks.closeAllConnections(); jwks.close() })
  const url = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`
  const gw = await build(t, { JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_JWKS_COOLDOWN_MS: 0 })
  const token = createSigner({ key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', kid: 'k1' })({ sub: 'u1', tenantId: 't1' })

  const clock = new FakeClock()
  const tokens: string[] = []
  const client: TenantcastClient = connect({ url: gw.ws, getToken: () => { tokens.push('asked'); return token }, timers: clock, heartbeatInterval: 0, random: () => 0 })
  t.teardown(() => { client.close() })
  const [info] = await next(client, 'close')
  t.match(info.reason, /^AUTH_UNAVAILABLE retry=\d+$/)
  const hint = retryHint(info.reason) as number
  t.ok(hint >= 1000, `a hint of at least a second (${hint} ms)`)
  t.match(info, { code: 1013, willReconnect: true, delay: hint, attempt: 1 }, 'not a 4401 stop, and not the 0 ms that full jitter would pick here')
  t.same(clock.pending(), [hint], 'the only timer is the reconnect, after the hinted delay')
  t.same(tokens, ['asked'], 'the token is not thrown away: getToken was asked only for the first connect')

  down = false
  clock.runNext()
  await reach(client, 'open')
  t.equal(tokens.length, 1, 'the same token authenticated')
  t.equal(fetches, 2)
})
