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

/** Waits until the monitor has seen the saturation (its sample window is one second). */
async function saturated (): Promise<Promise<void>> {
  const busy = saturate(4000)
  await new Promise((resolve) => setTimeout(resolve, 1300))
  return busy
}

t.test('a request shed under load answers 503 OVERLOADED with Retry-After, and the gateway logs it once, not per request', async (t) => {
  const gw = await build(t, { MAX_EVENT_LOOP_DELAY: 100 })
  const busy = await saturated()
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
  t.match(metrics, /tenantcast_requests_shed_total 5\b/)
  t.equal((await get(gw, '/ready', sign())).status, 200, 'ready again once the loop breathes')
})

t.test('a WebSocket upgrade shed under load is refused with 503 OVERLOADED, and the socket retried later is served', async (t) => {
  const gw = await build(t, { MAX_EVENT_LOOP_DELAY: 100 })
  const busy = await saturated()
  const refused = await new Promise<{ status: number, body: string, retryAfter: string | undefined }>((resolve) => {
    const socket = new WebSocket(`${gw.ws}?token=${sign()}`)
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk) => { body += String(chunk) })
      response.on('end', () => { socket.terminate(); resolve({ status: response.statusCode ?? 0, body, retryAfter: response.headers['retry-after'] }) })
    })
    socket.on('error', () => {})
  })
  t.equal(refused.status, 503)
  t.equal(refused.retryAfter, '1')
  t.match(JSON.parse(refused.body), { code: 'OVERLOADED' })
  await busy
  await new Promise((resolve) => setTimeout(resolve, 2100))
  const served = new Client(`${gw.ws}?token=${sign()}`)
  t.match(await served.next('authenticated'), { userId: 'u1', tenantId: 't1' }, 'the retry is served')
  served.close()
})
