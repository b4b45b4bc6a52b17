import t from 'tap'
import { build, postAlarm, sign } from './helper.js'

t.test('Fastify\'s per-request lines are off by default and the action lines stay', async (t) => {
  const gw = await build(t)
  t.equal((await postAlarm(gw, sign())).status, 202)
  await fetch(`${gw.http}/health`)
  const log = gw.logs.join('')
  t.notMatch(log, /incoming request/)
  t.notMatch(log, /request completed/)
  t.match(log, /"action":"alarm\.ingested"/)
})

t.test('LOG_REQUESTS=true turns the per-request lines back on, without the query string token', async (t) => {
  const gw = await build(t, { LOG_REQUESTS: true })
  const token = sign()
  await fetch(`${gw.http}/health?token=${token}`)
  const log = gw.logs.join('')
  t.match(log, /incoming request/)
  t.match(log, /request completed/)
  t.match(log, /token=\[REDACTED\]/)
  t.notOk(log.includes(token), 'the token is in no line')
})
