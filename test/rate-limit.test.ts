import t from 'tap'
import { build, post, postAlarm, redisPrefix, REDIS_URL, redisSkip, sign } from './helper.js'

const publisher = (claims: Record<string, unknown> = {}): string => sign({ sub: 'backend', roles: ['publisher'], ...claims })

t.test('the publish API is rate-limited per tenant, with a budget of its own beside ingestion\'s', async (t) => {
  const gw = await build(t, { REST_RATE_LIMIT: 3, REST_RATE_LIMIT_PER_PRINCIPAL: 3 })
  const statuses = []
  for (let n = 0; n < 3; n++) statuses.push((await post(gw, '/api/v1/publish', publisher({ sub: `backend-${n}` }), { event: 'door:opened', data: {} })).status)
  t.same(statuses, [202, 202, 202])
  t.equal((await postAlarm(gw, sign({ sub: 'camera' }))).status, 202, 'ingestion keeps its own budget')
  const limited = await post(gw, '/api/v1/publish', publisher({ sub: 'backend-9' }), { event: 'door:opened', data: {} })
  t.equal(limited.status, 429)
  t.match(limited.body, { code: 'RATE_LIMITED' })
  t.ok(Number(limited.headers.get('retry-after')) > 0, 'with Retry-After')
  t.equal((await post(gw, '/api/v1/publish', publisher({ tenantId: 'other' }), { event: 'door:opened', data: {} })).status, 202, 'another tenant is unaffected')
})

t.test('with Redis the tenant\'s REST budget is shared by every instance', { skip: redisSkip }, async (t) => {
  const prefix = await redisPrefix(t)
  const config = { REDIS_URL, REDIS_PREFIX: prefix, REST_RATE_LIMIT: 4, REST_RATE_LIMIT_PER_PRINCIPAL: 4 }
  const a = await build(t, config)
  const b = await build(t, config)
  const tenant = `busy-${prefix}`
  const statuses = []
  for (const gw of [a, b, a, b, a, b]) statuses.push((await postAlarm(gw, sign({ tenantId: tenant, sub: 'camera' }))).status)
  t.same(statuses, [202, 202, 202, 202, 429, 429], 'four in all across both instances, not four each')
})
