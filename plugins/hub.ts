import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Hub } from '../domain/hub.js'

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
  }
}

async function hubPlugin (app: FastifyInstance): Promise<void> {
  app.decorate('hub', new Hub({
    maxBufferedBytes: app.config.MAX_BUFFERED_BYTES,
    // A replay holds live events at most as long as the history that could be replayed.
    maxHeldEvents: app.config.HISTORY_SIZE,
    observer: app.metrics.observer,
    onSlowConsumer: (client) => {
      app.log.warn({ action: 'websocket.slow_consumer', clientId: client.id, tenantId: client.tenantId, userId: client.userId }, 'slow consumer closed with 4008')
    },
    onSendFailed: (client, err) => {
      app.log.error({ action: 'websocket.send_failed', err, clientId: client.id, tenantId: client.tenantId, userId: client.userId }, 'send failed; socket closed with 1011')
    }
  }))
}

export default fp(hubPlugin, { name: 'tenantcast-hub', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-metrics'] })
