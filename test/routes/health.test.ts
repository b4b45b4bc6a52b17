import { connect as tcpConnect } from 'node:net'
import t from 'tap'
import { build, sign } from '../helper.js'

t.test('health answers liveness and ready answers readiness', async (t) => {
  const gw = await build(t)
  t.same(await (await fetch(`${gw.http}/health`)).json(), { status: 'ok' })
  const ready = await fetch(`${gw.http}/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { ready: true })
})

t.test('ready answers 503 while shutdown waits for sockets to close', async (t) => {
  const gw = await build(t, { WS_SHUTDOWN_TIMEOUT: 1500 })
  // A raw peer that completes the upgrade but never answers the close frame holds shutdown open.
  const { port } = new URL(gw.http)
  const raw = tcpConnect(Number(port), '127.0.0.1')
  raw.on('error', () => {})
  const upgraded = new Promise<void>((resolve) => { raw.once('data', () => { resolve() }) })
  raw.write([
    `GET /api/v1/events?token=${sign()} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''
  ].join('\r\n'))
  await upgraded
  const closing = gw.app.close()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const reply = await fetch(`${gw.http}/ready`).then(async (r) => ({ status: r.status, body: await r.text() }), () => ({ status: 0, body: 'refused' }))
  raw.destroy()
  await closing
  t.equal(reply.status, 503)
})
