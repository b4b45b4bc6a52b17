import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { CHANNEL_NAME, globMatcher } from '../domain/channels.js'
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, usersPage } from '../domain/presence.js'
import { tenantKey } from '../domain/tenant-key.js'
import { HttpErrors } from '../errors.js'
import { ErrorReply } from './schemas.js'

export const PresenceQuery = Type.Object({
  /** Users per page; query values are strings, hence a pattern. */
  limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: `1-${MAX_PAGE_SIZE}, default ${DEFAULT_PAGE_SIZE}` })),
  /** `nextCursor` of the previous page. */
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 256 }))
})

export const PresenceReply = Type.Object({
  /** One page, in userId order. */
  users: Type.Array(Type.Object({ userId: Type.String(), connections: Type.Integer() })),
  /** Totals of the whole tenant, not of the page. */
  userCount: Type.Integer(),
  connectionCount: Type.Integer(),
  /** Pass as `cursor` for the next page; absent on the last one. */
  nextCursor: Type.Optional(Type.String())
})

export const ChannelPresenceReply = Type.Object({
  channel: Type.String(),
  members: Type.Array(Type.Object({ userId: Type.String(), clientId: Type.String() })),
  connectionCount: Type.Integer()
})

/** Who is online, always within the token's tenant. */
async function presenceRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  // Each request merges the tenant's users (O(online users)), so each principal gets a budget.
  const rateLimit = {
    ...app.tenantRateLimit,
    max: app.config.PRESENCE_RATE_LIMIT,
    keyGenerator: (request: FastifyRequest) => `presence:${tenantKey(request.principal.tenantId, request.principal.userId)}`
  }
  app.get('/api/v1/presence', {
    onRequest: app.auth.requirePrincipal,
    config: { rateLimit },
    schema: {
      summary: 'The tenant\'s online users and their connection counts, a page at a time',
      querystring: PresenceQuery,
      response: { 200: PresenceReply, 400: ErrorReply, 401: ErrorReply, 429: ErrorReply }
    }
  }, async (request) => {
    const users = await app.presence.users(request.principal.tenantId)
    const page = usersPage(users, request.query.cursor, Number(request.query.limit ?? DEFAULT_PAGE_SIZE))
    let connectionCount = 0
    for (const count of users.values()) connectionCount += count
    return { users: page.users, userCount: users.size, connectionCount, ...(page.next === undefined ? {} : { nextCursor: page.next }) }
  })

  // A channel's member list reads every connection entry of the tenant: it has its own budget.
  const channelRateLimit = { ...rateLimit, keyGenerator: (request: FastifyRequest) => `presence-channel:${tenantKey(request.principal.tenantId, request.principal.userId)}` }
  app.get('/api/v1/presence/channels/:channel', {
    onRequest: app.auth.requirePrincipal,
    config: { rateLimit: channelRateLimit },
    schema: {
      summary: 'A channel\'s members',
      params: Type.Object({ channel: Type.String({ pattern: CHANNEL_NAME }) }),
      response: { 200: ChannelPresenceReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 429: ErrorReply }
    }
  }, async (request) => {
    // Who is in a channel is visible to exactly those who may join it.
    if (!globMatcher(request.principal.channels)(request.params.channel)) {
      throw new HttpErrors.CHANNEL_FORBIDDEN('the token\'s channels claim does not allow this channel')
    }
    const members = await app.presence.channelMembers(request.principal.tenantId, request.params.channel)
    return { channel: request.params.channel, members, connectionCount: members.length }
  })
}

export default presenceRoutes
