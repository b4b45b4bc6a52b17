import t from 'tap'
import { build, connect, get, sign } from '../helper.js'

t.test('GET /api/v1/presence pages through the tenant\'s users in userId order with a cursor', async (t) => {
  const gw = await build(t)
  const sockets = []
  for (const user of ['erin', 'alice', 'dave', 'carol', 'bob']) sockets.push(await connect(gw, { sub: user }))
  sockets.push(await connect(gw, { sub: 'alice' }), await connect(gw, { sub: 'zoe', tenantId: 'other' }))
  const pages = []
  let cursor: string | undefined
  do {
    const reply = await get(gw, `/api/v1/presence?limit=2${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, sign())
    t.equal(reply.status, 200)
    t.match(reply.body, { userCount: 5, connectionCount: 6 }, 'totals are for the whole tenant on every page')
    pages.push(reply.body.users)
    cursor = reply.body.nextCursor
  } while (cursor !== undefined)
  t.same(pages, [
    [{ userId: 'alice', connections: 2 }, { userId: 'bob', connections: 1 }],
    [{ userId: 'carol', connections: 1 }, { userId: 'dave', connections: 1 }],
    [{ userId: 'erin', connections: 1 }]
  ])
  const first = await get(gw, '/api/v1/presence', sign())
  t.equal(first.body.users.length, 5, 'the default page holds 100 users')
  t.equal(first.body.nextCursor, undefined)
  for (const limit of ['0', '1001', 'x']) t.equal((await get(gw, `/api/v1/presence?limit=${limit}`, sign())).status, 400, `limit=${limit}`)
  for (const s of sockets) s.close()
})

t.test('GET /api/v1/presence is rate-limited per user with PRESENCE_RATE_LIMIT', async (t) => {
  const gw = await build(t, { PRESENCE_RATE_LIMIT: 3 })
  for (let i = 0; i < 3; i++) t.equal((await get(gw, '/api/v1/presence', sign())).status, 200)
  const limited = await get(gw, '/api/v1/presence', sign())
  t.equal(limited.status, 429)
  t.equal(limited.body.code, 'RATE_LIMITED')
  t.equal((await get(gw, '/api/v1/presence', sign({ sub: 'u2' }))).status, 200, 'another user of the tenant has their own budget')
})

t.test('GET /api/v1/presence/channels/:channel is rate-limited per user with PRESENCE_RATE_LIMIT too', async (t) => {
  const gw = await build(t, { PRESENCE_RATE_LIMIT: 3 })
  for (let i = 0; i < 3; i++) t.equal((await get(gw, '/api/v1/presence/channels/room-1', sign())).status, 200)
  const limited = await get(gw, '/api/v1/presence/channels/room-1', sign())
  t.equal(limited.status, 429, 'each request parses every member entry of the tenant, so it has a budget')
  t.equal(limited.body.code, 'RATE_LIMITED')
  t.equal((await get(gw, '/api/v1/presence/channels/room-1', sign({ sub: 'u2' }))).status, 200, 'another user of the tenant has their own budget')
})
