import t from 'tap'
import { build, Client, connect, drain, events, get, post, postAlarm, sign } from '../helper.js'

const admin = sign({ sub: 'boss', roles: ['admin'] })
const now = (): number => Math.floor(Date.now() / 1000)
const clientIdOf = (client: Client): string => client.frames.find((f) => f.type === 'connected')?.clientId as string

t.test('POST /api/v1/admin/disconnect {userId} closes that user\'s sockets with 4403 REVOKED and no one else\'s', async (t) => {
  const gw = await build(t)
  const tabs = [await connect(gw, { sub: 'alice' }), await connect(gw, { sub: 'alice' })]
  const bob = await connect(gw, { sub: 'bob' })
  const aliceElsewhere = await connect(gw, { sub: 'alice', tenantId: 'other' })
  const reply = await post(gw, '/api/v1/admin/disconnect', admin, { userId: 'alice' })
  t.equal(reply.status, 202)
  t.same(reply.body, { closed: 2 })
  for (const tab of tabs) t.same(await tab.closed, { code: 4403, reason: 'REVOKED' })
  await postAlarm(gw, sign(), { message: 'after' })
  t.match(await bob.next('event'), { data: { message: 'after' } }, 'another user of the tenant keeps receiving')
  await drain(aliceElsewhere)
  t.equal(aliceElsewhere.socket.readyState, aliceElsewhere.socket.OPEN, 'the same user id in another tenant is untouched')
  t.equal(await gw.app.realtime.userConnectionCount('t1', 'alice'), 0)
  for (const c of [bob, aliceElsewhere]) c.close()
})

t.test('{clientId} closes one socket and {all: true} closes every socket of the token\'s tenant only', async (t) => {
  const gw = await build(t)
  const [one, two, three] = [await connect(gw, { sub: 'alice' }), await connect(gw, { sub: 'alice' }), await connect(gw, { sub: 'bob' })] as [Client, Client, Client]
  const stranger = await connect(gw, { sub: 'bob', tenantId: 'other' })
  t.same((await post(gw, '/api/v1/admin/disconnect', admin, { clientId: clientIdOf(one) })).body, { closed: 1 })
  t.same(await one.closed, { code: 4403, reason: 'REVOKED' })
  t.same((await post(gw, '/api/v1/admin/disconnect', sign({ roles: ['admin'], tenantId: 'other' }), { clientId: clientIdOf(two) })).body, { closed: 0 }, 'an admin of another tenant cannot name this tenant\'s connection')
  t.same((await post(gw, '/api/v1/admin/disconnect', admin, { all: true })).body, { closed: 2 })
  t.same(await two.closed, { code: 4403, reason: 'REVOKED' })
  t.same(await three.closed, { code: 4403, reason: 'REVOKED' })
  await drain(stranger)
  t.equal(stranger.socket.readyState, stranger.socket.OPEN, 'another tenant is untouched')
  stranger.close()
})

t.test('only the admin role may use the admin routes, and a disconnect names exactly one target', async (t) => {
  const gw = await build(t)
  for (const token of [sign(), sign({ roles: ['publisher'] })]) {
    for (const [path, body] of [['/api/v1/admin/disconnect', { all: true }], ['/api/v1/admin/revoke', { userId: 'alice' }]] as const) {
      const reply = await post(gw, path, token, body)
      t.equal(reply.status, 403, path)
      t.equal(reply.body.code, 'FORBIDDEN')
    }
  }
  for (const body of [{}, { all: false }, { userId: 'a', clientId: 'b' }, { userId: 'a', all: true }, { userId: '' }, { userId: 'x'.repeat(257) }]) {
    const reply = await post(gw, '/api/v1/admin/disconnect', admin, body)
    t.equal(reply.status, 400, JSON.stringify(body))
    t.equal(reply.body.code, 'VALIDATION_FAILED')
  }
  t.equal((await post(gw, '/api/v1/admin/revoke', admin, { userId: 'a', before: now() + 3600 })).status, 400, 'a revocation cannot reach into the future')
  t.equal((await post(gw, '/api/v1/admin/disconnect', 'nope', { all: true })).status, 401)
})

t.test('POST /api/v1/admin/revoke refuses the user\'s earlier tokens on sockets and REST and closes their live sockets', async (t) => {
  const gw = await build(t)
  const earlier = { sub: 'alice', iat: now() - 60 }
  const live = await connect(gw, earlier)
  const bob = await connect(gw, { sub: 'bob', iat: now() - 60 })
  const reply = await post(gw, '/api/v1/admin/revoke', admin, { userId: 'alice' })
  t.equal(reply.status, 202)
  t.match(reply.body, { userId: 'alice', closed: 1 })
  t.ok(reply.body.before >= now() && reply.body.expiresAt === reply.body.before + 86400, 'before defaults to now; it lasts REVOKE_TTL')
  t.same(await live.closed, { code: 4403, reason: 'REVOKED' })

  const again = new Client(`${gw.ws}?token=${sign(earlier)}`)
  t.same(await again.closed, { code: 4401, reason: 'TOKEN_REVOKED' })
  const rest = await get(gw, '/api/v1/presence', sign(earlier))
  t.equal(rest.status, 401)
  t.equal(rest.body.code, 'TOKEN_REVOKED')
  const viaMessage = new Client(gw.ws)
  await viaMessage.opened
  viaMessage.send({ type: 'authenticate', token: sign({ sub: 'alice' }) })
  t.same(await viaMessage.closed, { code: 4401, reason: 'TOKEN_REVOKED' }, 'a token issued in the same second counts as issued before')

  const later = await connect(gw, { sub: 'alice', iat: reply.body.before })
  t.match(later.frames.find((f) => f.type === 'authenticated'), { userId: 'alice' }, 'a token issued after `before` is accepted')
  await drain(bob)
  t.equal(bob.socket.readyState, bob.socket.OPEN, 'other users keep their sockets and tokens')
  t.equal((await get(gw, '/api/v1/presence', sign({ sub: 'alice', tenantId: 'other', iat: now() - 60 }))).status, 200, 'the same user id in another tenant is not revoked')
  for (const c of [later, bob]) c.close()
})

t.test('a revocation with an earlier `before` spares live sockets and tokens issued after it, and ends after REVOKE_TTL', async (t) => {
  const gw = await build(t, { REVOKE_TTL: 2 })
  const before = now() - 1
  const spared = await connect(gw, { sub: 'alice', iat: before })
  const doomed = await connect(gw, { sub: 'alice', iat: before - 5 })
  const reply = await post(gw, '/api/v1/admin/revoke', admin, { userId: 'alice', before })
  t.match(reply.body, { before, expiresAt: before + 2, closed: 1 })
  t.same(await doomed.closed, { code: 4403, reason: 'REVOKED' })
  const refused = new Client(`${gw.ws}?token=${sign({ sub: 'alice', iat: before - 5 })}`)
  t.same(await refused.closed, { code: 4401, reason: 'TOKEN_REVOKED' })
  await drain(spared)
  t.equal(spared.socket.readyState, spared.socket.OPEN)
  // Past `before + REVOKE_TTL` every token issued before it has expired (REVOKE_TTL is the longest lifetime).
  await new Promise((resolve) => setTimeout(resolve, (before + 2) * 1000 - Date.now() + 50))
  const afterwards = await connect(gw, { sub: 'alice', iat: before - 5 })
  t.match(afterwards.frames.find((f) => f.type === 'authenticated'), { userId: 'alice' })
  t.equal(events(afterwards).length, 0)
  for (const c of [spared, afterwards]) c.close()
})
