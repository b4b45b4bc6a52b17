import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Hub } from '../domain/hub.js'

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
  }
}

async function hubPlugin (app: FastifyInstance): Promise<void> {
  const hub = new Hub({
    maxBufferedBytes: app.config.MAX_BUFFERED_BYTES,
    // A replay holds live events at most as long as the history that could be replayed.
    maxHeldEvents: app.config.HISTORY_SIZE,
    fanoutSlice: app.config.FANOUT_SLICE,
    observer: app.metrics.observer,
    onSlowConsumer: (client) => {
      app.log.warn({ action: 'websocket.slow_consumer', clientId: client.id, tenantId: client.tenantId, userId: client.userId }, 'slow consumer closed with 4008')
    },
    onDeliveryFailed: (err) => {
      app.log.error({ action: 'delivery.failed', err }, 'a queued delivery failed and was dropped')
    },
    onSendFailed: (client, err) => {
      app.log.error({ action: 'websocket.send_failed', err, clientId: client.id, tenantId: client.tenantId, userId: client.userId }, 'send failed; socket closed with 1011')
    }
  })
  app.decorate('hub', hub)
  // At shutdown the sockets are closing (1001): what is still queued is dropped, never
  // thrown, and the clients resume from their own positions, so they lose nothing.
  app.addHook('onClose', async () => {
    const dropped = hub.close()
    if (dropped !== 0) app.log.info({ action: 'delivery.queue_dropped', dropped }, 'queued deliveries dropped at shutdown')
  })
}

export default fp(hubPlugin, { name: 'tenantcast-hub', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-metrics'] })
