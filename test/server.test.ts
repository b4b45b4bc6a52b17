import { io } from 'socket.io-client'
import t from 'tap'
import { TsChild } from './child.js'
import { Client, freePort, SECRET, sign, within } from './helper.js'

type Tap = { teardown (fn: () => unknown): void }

/** The real standalone entry, server.ts, listening on a port of its own. */
async function server (t: Tap, env: Record<string, string | undefined>): Promise<{ child: TsChild, http: string, ws: string }> {
  const port = await freePort()
  const child = new TsChild('server.ts', [], { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env })
  t.teardown(() => { if (child.child.exitCode === null) child.child.kill('SIGKILL') })
  const http = `http://127.0.0.1:${port}`
  // Ready once /health answers; bounded by the child's own limit.
  for (;;) {
    if (child.child.exitCode !== null) throw new Error(`server.ts exited: ${child.stderr}`)
    const ok = await fetch(`${http}/health`).then((r) => r.ok, () => false)
    if (ok) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, http, ws: `ws://127.0.0.1:${port}/api/v1/events` }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`on ${signal} the server answers /ready with 503, closes every socket with 1001 and a retry hint, Socket.IO ones too, and exits 0 within WS_SHUTDOWN_TIMEOUT`, async (t) => {
    const gw = await server(t, { NODE_ENV: 'production', JWT_SECRET: SECRET, SOCKETIO_ENABLED: 'true', WS_SHUTDOWN_TIMEOUT: '1500', RECONNECT_JITTER_MS: '3000', LOG_LEVEL: 'info' })
    const sockets = [0, 1, 2].map(() => new Client(`${gw.ws}?token=${sign({ exp: Math.floor(Date.now() / 1000) + 600 })}`))
    for (const socket of sockets) await socket.next('authenticated')
    // One reader that stops reading never completes its close handshake: shutdown waits for it
    // until WS_SHUTDOWN_TIMEOUT, and /ready is observable meanwhile.
    const stuck = new Client(`${gw.ws}?token=${sign({ exp: Math.floor(Date.now() / 1000) + 600 })}`)
    await stuck.next('authenticated')
    ;(stuck.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
    const sio = io(gw.http, { transports: ['websocket'], auth: { token: sign({ exp: Math.floor(Date.now() / 1000) + 600 }) }, reconnection: false })
    await new Promise<void>((resolve) => { sio.once('join:company', () => { resolve() }) })
    const sioGone = new Promise<string>((resolve) => { sio.once('disconnect', (reason) => { resolve(reason) }) })
    t.equal((await fetch(`${gw.http}/ready`)).status, 200)

    gw.child.child.kill(signal)
    const closes = await Promise.all(sockets.map(async (s) => await s.closed))
    const hints = closes.map((close) => {
      t.equal(close.code, 1001)
      const retry = Number(/^SERVER_SHUTDOWN retry=(\d+)$/.exec(close.reason)?.[1])
      t.ok(retry >= 0 && retry <= 3000, `a retry hint within RECONNECT_JITTER_MS (${close.reason})`)
      return retry
    })
    // Spread, not a storm: three draws from 0..3000 all equal has odds of about 1 in 9 million.
    t.ok(new Set(hints).size > 1, `the hints differ per socket (${hints.join(', ')})`)
    const ready = await fetch(`${gw.http}/ready`).then((r) => r.status, () => 'refused')
    t.equal(ready, 503, '/ready answers 503 while shutdown waits for the last socket')
    t.ok(await sioGone, 'the Socket.IO socket was disconnected')
    t.equal(await within(gw.child.exited, 1500 + 3000, 'late'), 0, 'exit 0 within WS_SHUTDOWN_TIMEOUT (plus start-up slack)')
    t.match(gw.child.stdout + gw.child.stderr, /server\.shutdown/)
    sio.close()
  })
}

t.test('in development without a secret the banner prints the console URL and a token the gateway accepts', async (t) => {
  const gw = await server(t, { NODE_ENV: 'development', JWT_SECRET: undefined, LOG_LEVEL: 'info' })
  await gw.child.until(() => gw.child.stdout.includes('Post an alarm:'))
  const port = new URL(gw.http).port
  t.match(gw.child.stdout, `Live console: http://localhost:${port}/`)
  t.match(gw.child.stdout, /JWT_SECRET was generated for this run/)
  const token = /Token for tenant "demo" \(user "dev", valid 1 h\):\n {2}(\S+)/.exec(gw.child.stdout)?.[1] as string
  t.ok(token, 'a token is printed')
  const socket = new Client(`${gw.ws}?token=${token}`)
  t.match(await socket.next('authenticated'), { tenantId: 'demo', userId: 'dev' })
  socket.close()
  gw.child.child.kill('SIGTERM')
  t.equal(await gw.child.exited, 0)
})

t.test('in production the server prints no banner and no token', async (t) => {
  const gw = await server(t, { NODE_ENV: 'production', JWT_SECRET: SECRET, LOG_LEVEL: 'info' })
  gw.child.child.kill('SIGTERM')
  t.equal(await gw.child.exited, 0)
  t.notMatch(gw.child.stdout, /Token for tenant/)
  t.notMatch(gw.child.stdout, /eyJ/)
})

t.test('in development with the operator\'s own JWT_SECRET the banner prints no token', async (t) => {
  const gw = await server(t, { NODE_ENV: 'development', JWT_SECRET: SECRET, LOG_LEVEL: 'info' })
  await gw.child.until(() => gw.child.stdout.includes('Live console:'))
  gw.child.child.kill('SIGTERM')
  t.equal(await gw.child.exited, 0)
  t.notMatch(gw.child.stdout, /Token for tenant/)
  t.notMatch(gw.child.stdout, /eyJ/)
})

t.test('in development with TENANT_CLAIM renamed, the banner\'s token carries that claim and the gateway accepts it', async (t) => {
  const gw = await server(t, { NODE_ENV: 'development', JWT_SECRET: undefined, TENANT_CLAIM: 'companyId', LOG_LEVEL: 'info' })
  await gw.child.until(() => gw.child.stdout.includes('Post an alarm:'))
  const token = /Token for tenant "demo" \(user "dev", valid 1 h\):\n {2}(\S+)/.exec(gw.child.stdout)?.[1] as string
  const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>
  t.equal(claims.companyId, 'demo')
  t.equal(claims.tenantId, undefined, 'the default claim name is not used')
  const socket = new Client(`${gw.ws}?token=${token}`)
  t.match(await socket.next('authenticated'), { tenantId: 'demo', userId: 'dev' })
  socket.close()
  gw.child.child.kill('SIGTERM')
  t.equal(await gw.child.exited, 0)
})
