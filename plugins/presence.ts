import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { MergedPresence, type Presence } from '../domain/presence.js'
import { RedisPresenceMirror } from '../domain/presence-redis.js'

declare module 'fastify' {
  interface FastifyInstance {
    presence: Presence
  }
}

/** Cluster-wide presence with Redis; this instance's hub alone without it. */
async function presencePlugin (app: FastifyInstance): Promise<void> {
  const redis = app.redis
  if (redis === undefined) {
    app.decorate('presence', new MergedPresence(app.hub))
    return
  }
  const mirror = new RedisPresenceMirror(redis, app.hub, {
    prefix: app.config.REDIS_PREFIX,
    instanceId: randomUUID(),
    ttlMs: app.config.PRESENCE_TTL * 1000,
    log: app.log
  })
  app.decorate('presence', new MergedPresence(app.hub, mirror))
  // preClose: the shared Redis connection is still open, so the entries can be removed.
  app.addHook('preClose', async () => { await mirror.close() })
}

export default fp(presencePlugin, { name: 'tenantcast-presence', fastify: '5.x', dependencies: ['tenantcast-hub', 'tenantcast-redis'] })
