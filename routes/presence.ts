import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { CHANNEL_NAME, globMatcher } from '../domain/channels.js'
import { HttpErrors } from '../errors.js'
import { ErrorReply } from './schemas.js'

export const PresenceReply = Type.Object({
  users: Type.Array(Type.Object({ userId: Type.String(), connections: Type.Integer() })),
  userCount: Type.Integer(),
  connectionCount: Type.Integer()
})

export const ChannelPresenceReply = Type.Object({
  channel: Type.String(),
  members: Type.Array(Type.Object({ userId: Type.String(), clientId: Type.String() })),
  connectionCount: Type.Integer()
})

/** Who is online, always within the token's tenant. */
async function presenceRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.get('/api/v1/presence', {
    onRequest: app.auth.requirePrincipal,
    schema: { summary: 'The tenant\'s online users and their connection counts', response: { 200: PresenceReply, 401: ErrorReply } }
  }, async (request) => {
    const users = await app.presence.users(request.principal.tenantId)
    const list = [...users].map(([userId, connections]) => ({ userId, connections }))
    return { users: list, userCount: list.length, connectionCount: list.reduce((sum, u) => sum + u.connections, 0) }
  })

  app.get('/api/v1/presence/channels/:channel', {
    onRequest: app.auth.requirePrincipal,
    schema: {
      summary: 'A channel\'s members',
      params: Type.Object({ channel: Type.String({ pattern: CHANNEL_NAME }) }),
      response: { 200: ChannelPresenceReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply }
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
