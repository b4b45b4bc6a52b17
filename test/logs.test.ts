import t from 'tap'
import { build, Client, postAlarm, sign } from './helper.js'

t.test('no log line contains a token, whichever way the token came in', async (t) => {
  // With Fastify's request lines on, the URLs they log are the ones that could carry a token.
  const gw = await build(t, { LOG_REQUESTS: true })
  const tokens = {
    query: sign({ sub: 'by-query' }),
    header: sign({ sub: 'by-header' }),
    subprotocol: sign({ sub: 'by-subprotocol' }),
    message: sign({ sub: 'by-message' }),
    rest: sign({ sub: 'by-rest' }),
    bad: sign({}, { key: 'wrong-secret-wrong-secret-wrong-secret-wrong' })
  }
  const clients = [
    new Client(`${gw.ws}?token=${tokens.query}`),
    new Client(gw.ws, { headers: { authorization: `Bearer ${tokens.header}` } }),
    new Client(gw.ws, { protocols: ['tenantcast.v1', `bearer.${tokens.subprotocol}`] }),
    new Client(`${gw.ws}?token=${tokens.bad}`)
  ]
  const byMessage = new Client(gw.ws)
  await byMessage.next('connected')
  byMessage.send({ type: 'authenticate', token: tokens.message })
  for (const client of [...clients.slice(0, 3), byMessage]) await client.next('authenticated')
  await clients[3]?.closed
  await postAlarm(gw, tokens.rest)
  await fetch(`${gw.http}/nowhere?token=${tokens.query}`)
  for (const client of [...clients, byMessage]) client.close()
  await Promise.all([...clients, byMessage].map(async (c) => await c.closed))

  const log = gw.logs.join('')
  t.match(log, /websocket\.connection\.established/, 'connections were logged')
  t.match(log, /websocket\.auth\.failed/, 'the failed auth was logged')
  t.match(log, /alarm\.ingested/, 'the ingestion was logged')
  t.match(log, /token=\[REDACTED\]/, 'query tokens are replaced by a marker')
  for (const [path, token] of Object.entries(tokens)) {
    t.notOk(log.includes(token), `the ${path} token is in no log line`)
    // A JWT's signature alone is as good as the token for a replay, so check that part too.
    t.notOk(log.includes(token.split('.')[2] as string), `no part of the ${path} token's signature is logged`)
  }
})

t.test('a token under a percent-encoded or #-delimited query key is in no log line', async (t) => {
  const gw = await build(t, { LOG_REQUESTS: true })
  const tokens = {
    encodedKey: sign({ sub: 'by-encoded-key' }),
    encodedUpper: sign({ sub: 'by-encoded-upper' }),
    hash: sign({ sub: 'by-hash' }),
    http: sign({ sub: 'by-http' }),
    notFound: sign({ sub: 'by-404' })
  }
  const encoded = new Client(`${gw.ws}?%74oken=${tokens.encodedKey}`)
  t.match(await encoded.next('authenticated'), { userId: 'by-encoded-key' }, 'the router decodes the key, so this token authenticates')
  const upper = new Client(`${gw.ws}?view=x&%74%6F%6B%65%6E=${tokens.encodedUpper}`)
  await upper.next('authenticated')
  // The router also starts a query string at `#`; fetch and ws strip fragments, node:http sends them.
  const { get } = await import('node:http')
  await new Promise((resolve) => { get({ host: '127.0.0.1', port: new URL(gw.http).port, path: `/health#token=${tokens.hash}` }, (res) => { res.resume(); res.on('end', resolve) }) })
  await fetch(`${gw.http}/health?%zz=malformed&%74oken=${tokens.http}`)
  await fetch(`${gw.http}/nowhere?a=1&%6Aw%74=${tokens.notFound}`)
  for (const client of [encoded, upper]) client.close()
  await Promise.all([encoded, upper].map(async (c) => await c.closed))

  const log = gw.logs.join('')
  t.match(log, /%74oken=\[REDACTED\]/, 'the encoded key is kept and its value replaced')
  for (const [path, token] of Object.entries(tokens)) {
    t.notOk(log.includes(token.split('.')[2] as string), `the ${path} token's signature is in no log line`)
  }
})
