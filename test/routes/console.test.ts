import Fastify from 'fastify'
import { request as httpRequest } from 'node:http'
import t from 'tap'
import tenantcast from '../../app.js'
import { connect, decodeTokenPayload } from '../../client/index.js'
import { CONSOLE_CSP } from '../../routes/console.js'
import { reach } from '../client/helpers.js'
import { build, SECRET } from '../helper.js'

t.test('the console is served at / with a strict content security policy', async (t) => {
  const gw = await build(t)
  const page = await fetch(`${gw.http}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.equal(page.headers.get('content-security-policy'), CONSOLE_CSP)
  t.match(CONSOLE_CSP, /default-src 'none'/)
  t.equal(page.headers.get('x-content-type-options'), 'nosniff')
  const html = await page.text()
  t.match(html, /<script type="module" src="console.js"><\/script>/)
  t.notMatch(html, /https?:\/\//, 'no external resource')
  for (const [path, type] of [['/console.js', /javascript/], ['/tenantcast-client.js', /javascript/], ['/console.css', /text\/css/], ['/favicon.svg', /image\/svg\+xml/]] as const) {
    const response = await fetch(`${gw.http}${path}`)
    t.equal(response.status, 200, path)
    t.match(response.headers.get('content-type'), type, path)
  }
})

t.test('the console tells the page where the socket is and whether a dev token is on offer', async (t) => {
  const gw = await build(t, { WS_PATH: '/rt' })
  const response = await fetch(`${gw.http}/console/config.json`)
  t.same(await response.json(), { wsPath: '/rt', devToken: false })
})

t.test('unknown paths still get the gateway 404, not a file server answer', async (t) => {
  const gw = await build(t)
  const response = await fetch(`${gw.http}/nothing-here.js?token=secret`)
  t.equal(response.status, 404)
  const body = await response.json() as { code: string, message: string }
  t.match(body, { code: 'NOT_FOUND', message: /GET \/nothing-here\.js not found/ })
  t.notMatch(body.message, 'secret', 'the query string is not echoed')
})

t.test('in development with a generated secret, /dev/token hands out a demo admin token that connects', async (t) => {
  const gw = await build(t, { JWT_SECRET: undefined, NODE_ENV: 'development' })
  t.equal(gw.app.tenantcast.config.DEV_SECRET, true)
  t.same(await (await fetch(`${gw.http}/console/config.json`)).json(), { wsPath: '/api/v1/events', devToken: true })
  const response = await fetch(`${gw.http}/dev/token`)
  t.equal(response.status, 200)
  t.equal(response.headers.get('cache-control'), 'no-store')
  const body = await response.json() as { token: string, tenantId: string, userId: string, roles: string[], expiresIn: number }
  t.match(body, { tenantId: 'demo', userId: 'dev', roles: ['admin'], expiresIn: 3600 })
  const claims = decodeTokenPayload(body.token) as Record<string, number>
  t.match(claims, { sub: 'dev', tenantId: 'demo', roles: ['admin'] })
  t.equal((claims.exp as number) - (claims.iat as number), 3600)
  const client = connect({ url: gw.ws, token: body.token })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  t.match(client.session, { tenantId: 'demo', userId: 'dev' })
})

t.test('/dev/token does not exist with a configured secret, nor in production', async (t) => {
  const configured = await build(t, { NODE_ENV: 'development' })
  t.equal((await fetch(`${configured.http}/dev/token`)).status, 404)
  const production = await build(t, { NODE_ENV: 'production' })
  t.equal((await fetch(`${production.http}/dev/token`)).status, 404)
  t.equal((await fetch(`${production.http}/`)).status, 200, 'the console itself is served in production')
})

t.test('an embedding host app keeps its own / unless it asks for the console', async (t) => {
  const host = Fastify()
  await host.register(tenantcast, { config: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent' } })
  host.get('/', async () => ({ host: true }))
  await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await host.close() })
  const base = `http://127.0.0.1:${(host.server.address() as { port: number }).port}`
  t.same(await (await fetch(`${base}/`)).json(), { host: true })
  t.equal((await fetch(`${base}/console.js`)).status, 404)
})

t.test('an embedding host app that asks for the console gets it', async (t) => {
  const host = Fastify()
  await host.register(tenantcast, { config: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent' }, console: true })
  await host.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await host.close() })
  const base = `http://127.0.0.1:${(host.server.address() as { port: number }).port}`
  t.equal((await fetch(`${base}/console.js`)).status, 200)
})

t.test('/dev/token answers 404 to a client that is not on loopback, or that came through a proxy', async (t) => {
  const gw = await build(t, { JWT_SECRET: undefined, NODE_ENV: 'development' })
  const remote = await gw.app.inject({ method: 'GET', url: '/dev/token', remoteAddress: '203.0.113.7' })
  t.equal(remote.statusCode, 404)
  t.notMatch(remote.body, /eyJ/)
  const proxied = await fetch(`${gw.http}/dev/token`, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(proxied.status, 404)
  t.equal((await fetch(`${gw.http}/dev/token`)).status, 200, 'a loopback client still gets its token')
})

t.test('/dev/token answers 404 to a request whose Host is not loopback (DNS rebinding), and serves localhost and 127.0.0.1 hosts', async (t) => {
  const gw = await build(t, { JWT_SECRET: undefined, NODE_ENV: 'development' })
  const port = new URL(gw.http).port
  const statusFor = async (host: string): Promise<number> => await new Promise((resolve, reject) => {
    // fetch() sets Host itself; a rebinding page's request carries the attacker's name instead.
    const request = httpRequest({ host: '127.0.0.1', port, path: '/dev/token', headers: { host } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', reject)
    request.end()
  })
  const hosts = [`evil.example:${port}`, 'evil.example', `127.0.0.1.nip.io:${port}`, `localhost.evil.example:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', `app.localhost:${port}`]
  const statuses = await Promise.all(hosts.map(statusFor))
  t.same(statuses, [404, 404, 404, 404, 200, 200, 200, 200, 200], hosts.join(', '))
})

t.test('/dev/token with TENANT_CLAIM renamed writes that claim, and the token connects', async (t) => {
  const gw = await build(t, { JWT_SECRET: undefined, NODE_ENV: 'development', TENANT_CLAIM: 'companyId' })
  const body = await (await fetch(`${gw.http}/dev/token`)).json() as { token: string }
  t.match(decodeTokenPayload(body.token), { sub: 'dev', companyId: 'demo' })
  const client = connect({ url: gw.ws, token: body.token })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  t.match(client.session, { tenantId: 'demo', userId: 'dev' })
})
