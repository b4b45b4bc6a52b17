import t from 'tap'
import { build, Client, connect, postAlarm, sign } from '../helper.js'

/** Parses Prometheus text exposition into `name{labels}` → value. Throws on a malformed line. */
function parse (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/.exec(line)
    if (match === null) throw new Error(`not Prometheus text: ${line}`)
    samples.set(match[1] as string, Number(match[2]))
  }
  return samples
}

async function scrape (http: string): Promise<Map<string, number>> {
  const response = await fetch(`${http}/metrics`)
  t.match(response.headers.get('content-type'), /text\/plain/)
  return parse(await response.text())
}

t.test('/metrics parses as Prometheus text and its counters move with traffic', async (t) => {
  const gw = await build(t)
  const before = await scrape(gw.http)
  t.equal(before.get('tenantcast_connections_open'), 0)
  const clients = [await connect(gw), await connect(gw), await connect(gw, { tenantId: 't2' })]
  for (let i = 0; i < 3; i++) await postAlarm(gw, sign())
  for (const c of clients.slice(0, 2)) await c.collect('event', 3)
  const refused = new Client(`${gw.ws}?token=expired.${'x'}.y`)
  await refused.closed
  await postAlarm(gw, 'nope')
  clients[2]?.send('{broken')
  await clients[2]?.next('error')
  const after = await scrape(gw.http)
  t.equal(after.get('tenantcast_connections_open'), 3)
  t.equal(after.get('tenantcast_connections_opened_total'), 4)
  t.equal(after.get('tenantcast_deliveries_total'), 6, '3 alarms to 2 sockets of t1')
  t.ok((after.get('tenantcast_bytes_out_total') ?? 0) > 6 * 100, 'bytes out counts every delivered frame')
  t.equal(after.get('tenantcast_frames_out_total'), 6 + 4 + 3 + 1, 'deliveries, connected, authenticated and the error')
  t.equal(after.get('tenantcast_frames_in_total'), 1)
  t.equal(after.get('tenantcast_auth_failures_total{reason="TOKEN_MALFORMED"}'), 2, 'one over the socket, one over REST')
  t.equal(after.get('tenantcast_broker_publish_seconds_count'), 3)
  t.equal(after.get('tenantcast_ingest_to_send_seconds_count'), 3)
  t.equal(after.get('tenantcast_history_events'), 3)
  t.notOk([...after.keys()].some((k) => k.includes('tenant="')), 'no tenant labels by default')
  for (const c of clients) c.close()
  await Promise.all(clients.map(async (c) => await c.closed))
  const closed = await scrape(gw.http)
  t.equal(closed.get('tenantcast_connections_closed_total{code="1005"}'), 3)
  t.equal(closed.get('tenantcast_connections_closed_total{code="4401"}'), 1)
})

t.test('rate-limit counters move, with tenant labels when switched on', async (t) => {
  const gw = await build(t, { METRICS_TENANT_LABELS: true, REST_RATE_LIMIT: 1, CLIENT_FRAME_RATE: 1, CLIENT_FRAME_BURST: 1, CLIENT_FRAME_STRIKES: 3 })
  await postAlarm(gw, sign())
  await postAlarm(gw, sign())
  const flooder = await connect(gw)
  for (let i = 0; i < 10; i++) flooder.send({ type: 'ping' })
  await flooder.closed
  const samples = await scrape(gw.http)
  t.equal(samples.get('tenantcast_rate_limited_total{kind="rest",tenant="t1"}'), 1)
  t.equal(samples.get('tenantcast_rate_limited_total{kind="frames",tenant="t1"}'), 3)
  t.equal(samples.get('tenantcast_deliveries_total{tenant="t1"}'), undefined, 'nothing was delivered before the socket opened')
})

t.test('the fair scheduler\'s queue depth and write waits are exported, per tenant only with tenant labels', async (t) => {
  for (const perTenant of [false, true]) {
    const gw = await build(t, { METRICS_TENANT_LABELS: perTenant, FANOUT_SLICE: 1 })
    // Two sockets of a slice of one: the alarm is queued and written over two rounds.
    const clients = [await connect(gw), await connect(gw)]
    await postAlarm(gw, sign())
    for (const c of clients) await c.collect('event', 1)
    const samples = await scrape(gw.http)
    const label = perTenant ? '{tenant="t1"}' : ''
    t.equal(samples.get(`tenantcast_delivery_first_write_wait_seconds_count${label}`), 1, `first-write wait observed once (labels ${perTenant})`)
    t.equal(samples.get(`tenantcast_delivery_last_write_wait_seconds_count${label}`), 1)
    const buckets = [...samples.keys()].filter((k) => k.startsWith('tenantcast_delivery_last_write_wait_seconds_bucket{'))
    t.ok(buckets.length > 0 && buckets.every((k) => k.includes('tenant="t1"') === perTenant), 'buckets carry the tenant label only when switched on')
    t.equal(samples.get('tenantcast_delivery_queue_depth'), perTenant ? undefined : 0, 'nothing queued once written; no per-tenant series left at 0')
    for (const c of clients) c.close()
  }
})

t.test('with METRICS_TOKEN set, /metrics needs it as a Bearer token', async (t) => {
  const token = 'metrics-scrape-token-0123456789'
  const gw = await build(t, { METRICS_TOKEN: token })
  const none = await fetch(`${gw.http}/metrics`)
  t.equal(none.status, 401)
  t.match(await none.json(), { statusCode: 401, code: 'AUTHENTICATION_REQUIRED' })
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  const wrong = await fetch(`${gw.http}/metrics`, { headers: { authorization: 'Bearer metrics-scrape-token-012345678x' } })
  t.equal(wrong.status, 401)
  t.match(await wrong.json(), { code: 'TOKEN_INVALID' })
  const jwt = await fetch(`${gw.http}/metrics`, { headers: { authorization: `Bearer ${sign({ roles: ['admin'] })}` } })
  t.equal(jwt.status, 401, 'a tenant token is not a scrape token')
  const right = await fetch(`${gw.http}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(right.status, 200)
  t.match(await right.text(), /tenantcast_connections_open 0/)
})
