import t from 'tap'
import { Revocations } from '../../domain/revocations.js'
import { usersPage } from '../../domain/presence.js'

t.test('a revocation refuses earlier tokens and tokens without iat, the stricter one wins, and it ends at expiresAt', async (t) => {
  let now = 1_000_000
  const revocations = new Revocations(() => now)
  revocations.add({ tenantId: 'acme', userId: 'alice', before: 900, expiresAt: 1100 })
  revocations.add({ tenantId: 'acme', userId: 'alice', before: 800, expiresAt: 1000 })
  t.equal(revocations.refuses({ tenantId: 'acme', userId: 'alice', iat: 899 }), true)
  t.equal(revocations.refuses({ tenantId: 'acme', userId: 'alice', iat: 900 }), false)
  t.equal(revocations.refuses({ tenantId: 'acme', userId: 'alice' }), true, 'no iat cannot prove it is newer')
  t.equal(revocations.refuses({ tenantId: 'other', userId: 'alice', iat: 1 }), false)
  revocations.add({ tenantId: 'acme', userId: 'bob', before: 500, expiresAt: 999 })
  t.equal(revocations.size, 1, 'an expired revocation is never added')
  now = 1_100_000
  t.equal(revocations.refuses({ tenantId: 'acme', userId: 'alice', iat: 1 }), false)
  t.equal(revocations.size, 0)
})

t.test('a users page is in userId order after the cursor, with a cursor only when more follow', async (t) => {
  const users = new Map([['b', 1], ['a', 2], ['c', 3]])
  t.same(usersPage(users, undefined, 2), { users: [{ userId: 'a', connections: 2 }, { userId: 'b', connections: 1 }], next: 'b' })
  t.same(usersPage(users, 'b', 2), { users: [{ userId: 'c', connections: 3 }], next: undefined })
  t.same(usersPage(users, 'c', 2), { users: [], next: undefined })
})
