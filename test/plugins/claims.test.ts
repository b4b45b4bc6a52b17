import t from 'tap'
import { build, Client, postAlarm, sign } from '../helper.js'

t.test('a token that names its user in userId and has no sub (reference 002) is accepted with USER_CLAIM=userId', async (t) => {
  const gw = await build(t, { USER_CLAIM: 'userId' })
  const token = sign({ sub: undefined, userId: 'u-77', tenantId: 'acme' })
  const client = new Client(`${gw.ws}?token=${token}`)
  t.match(await client.next('authenticated'), { userId: 'u-77', tenantId: 'acme' })
  t.equal((await postAlarm(gw, token)).status, 202)
  const withSub = new Client(`${gw.ws}?token=${sign({ sub: 'only-sub', tenantId: 'acme' })}`)
  t.same(await withSub.closed, { code: 4401, reason: 'USER_MISSING' }, 'sub is no longer the user claim')
  client.close()
})

t.test('numeric user and tenant ids (reference 001) are accepted as their decimal strings', async (t) => {
  const gw = await build(t, { TENANT_CLAIM: 'companyId' })
  const token = sign({ sub: 1, tenantId: undefined, companyId: 42 })
  const client = new Client(`${gw.ws}?token=${token}`)
  t.match(await client.next('authenticated'), { userId: '1', tenantId: '42' })
  const alarm = await postAlarm(gw, token)
  t.equal(alarm.status, 202)
  t.match(await client.next('event'), { id: alarm.body.id, event: 'alarm:created' })
  client.close()
})

t.test('identity claims that are not usable ids are refused with their reason', async (t) => {
  const gw = await build(t)
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ sub: 'x\u0000y' }, 'USER_MISSING'],
    [{ sub: 'line\nbreak' }, 'USER_MISSING'],
    [{ tenantId: 'acme\u0000x' }, 'TENANT_MISSING'],
    [{ sub: 1.5 }, 'USER_MISSING'],
    [{ sub: true }, 'USER_MISSING'],
    [{ tenantId: '' }, 'TENANT_MISSING'],
    [{ sub: 'u'.repeat(257) }, 'USER_MISSING']
  ]
  for (const [claims, reason] of cases) {
    const client = new Client(`${gw.ws}?token=${sign(claims)}`)
    t.same(await client.closed, { code: 4401, reason }, JSON.stringify(claims).slice(0, 40))
    t.match((await postAlarm(gw, sign(claims))).body, { statusCode: 401, code: reason })
  }
})
