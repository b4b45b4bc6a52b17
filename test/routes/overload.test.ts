import { get as httpGet } from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { build, Client, get, sign } from '../helper.js'

/**
 * Keeps the event loop saturated for `ms`: every turn blocks for 250 ms, as a gateway drowning in
 * work does. The load monitor's samples then average far above any small MAX_EVENT_LOOP_DELAY,
 * while requests are still read between turns.
 */
function saturate (ms: number): Promise<void> {
  const until = Date.now() + ms
  return new Promise((resolve) => {
    const turn = (): void => {
      if (Date.now() >= until) { resolve(); return }
      const end = Date.now() + 250
      while (Date.now() < end) { /* busy */ }
      setImmediate(turn)
    }
    setImmediate(turn)
  })
}

/**
 * Saturates the loop and waits until the monitor has seen it (its sample window is one second,
 * and the first one may have been half idle): until /ready answers 503. Returns the saturation,
 * to await, and how many of the probes were shed.
 */
async function saturated (http: string): Promise<{ busy: Promise<void>, probesShed: number }> {
  const busy = saturate(4500)
  let probesShed = 0
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    // A connection of its own, closed after the answer: the test counts the server's sockets.
    const status = await new Promise<number>((resolve) => {
      httpGet(`${http}/ready`, { agent: false, headers: { connection: 'close' } }, (response) => { response.resume(); resolve(response.statusCode ?? 0) })
    })
    if (status === 503) { probesShed++; break }
  }
  return { busy, probesShed }
}

t.test('a request shed under load answers 503 OVERLOADED with Retry-After, and the gateway logs it once, not per request', async (t) => {
  const gw = await build(t, { MAX_EVENT_LOOP_DELAY: 100 })
  const { busy, probesShed } = await saturated(gw.http)
  t.equal(probesShed, 1, 'the saturation was seen')
  const replies = await Promise.all(Array.from({ length: 5 }, async () => await fetch(`${gw.http}/api/v1/events/history`, { headers: { authorization: `Bearer ${sign()}` } })))
  t.same(replies.map((r) => r.status), [503, 503, 503, 503, 503], 'every request in the stalled window is shed')
  t.same(replies.map((r) => r.headers.get('retry-after')), ['1', '1', '1', '1', '1'])
  const body = await (replies[0] as Response).json()
  t.match(body, { statusCode: 503, code: 'OVERLOADED', error: 'Service Unavailable' })
  const shedLogs = gw.logs.filter((line) => line.includes('"action":"request.shed"'))
  t.equal(shedLogs.length, 1, 'one warning for the burst')
  t.notOk(gw.logs.some((line) => line.includes('"level":50')), 'no error-level log: shedding is the gateway working')
  await busy
  await new Promise((resolve) => setTimeout(resolve, 2100))
  const metrics = await fetch(`${gw.http}/metrics`).then(async (r) => await r.text())
  t.match(metrics, new RegExp(`tenantcast_requests_shed_total ${5 + probesShed}\\b`), 'each shed request counted')
  t.equal((await get(gw, '/ready', sign())).status, 200, 'ready again once the loop breathes')
})

t.test('a WebSocket upgrade shed under load is refused with 503 OVERLOADED, and the socket retried later is served', async (t) => {
  const gw = await build(t, { MAX_EVENT_LOOP_DELAY: 100 })
  const { busy, probesShed } = await saturated(gw.http)
  t.equal(probesShed, 1, 'the saturation was seen')
  const refused = await new Promise<{ status: number, body: string, retryAfter: string | undefined }>((resolve) => {
    const socket = new WebSocket(`${gw.ws}?token=${sign()}`)
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk) => { body += String(chunk) })
      response.on('end', () => { socket.terminate(); resolve({ status: response.statusCode ?? 0, body, retryAfter: response.headers['retry-after'] }) })
    })
    socket.on('open', () => { socket.terminate(); resolve({ status: 101, body: '{}', retryAfter: undefined }) })
    socket.on('error', () => {})
  })
  t.equal(refused.status, 503)
  t.equal(refused.retryAfter, '1')
  t.match(JSON.parse(refused.body), { code: 'OVERLOADED' })
  await busy
  const open = async (): Promise<number> => await new Promise((resolve) => { gw.app.server.getConnections((_err, count) => { resolve(count) }) })
  for (let i = 0; i < 100 && await open() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await open(), 0, 'the refused upgrade left no socket open on the server')
  await new Promise((resolve) => setTimeout(resolve, 2100))
  const served = new Client(`${gw.ws}?token=${sign()}`)
  t.match(await served.next('authenticated'), { userId: 'u1', tenantId: 't1' }, 'the retry is served')
  served.close()
})
