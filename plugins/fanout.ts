import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { CloseCode } from '../domain/close-codes.js'
import type { StoredEvent } from '../domain/events.js'
import { PositionCheck } from '../domain/position-check.js'

export interface Fanout {
  /**
   * The broker's acknowledgement of the event the bus just carried. Emitting on the bus is
   * synchronous, so the caller takes the receipt right after `emit`, in the same tick.
   */
  receipt (eventId: string): Promise<StoredEvent>
}

declare module 'fastify' {
  interface FastifyInstance {
    fanout: Fanout
  }
}

/**
 * Wires the bus to the broker and the broker to the hub: every bus event is
 * published through the broker, and every event the broker delivers goes to local sockets.
 */
async function fanoutPlugin (app: FastifyInstance): Promise<void> {
  const receipts = new Map<string, Promise<StoredEvent>>()

  app.bus.onAny((envelope) => {
    const started = performance.now()
    const stored = app.broker.publish(envelope)
    receipts.set(envelope.id, stored)
    // An emitter that never takes its receipt (fire-and-forget) must not leak the entry nor
    // leave a rejection unhandled.
    stored.then(
      () => {
        receipts.delete(envelope.id)
        app.metrics.brokerPublished((performance.now() - started) / 1000)
      },
      (err: unknown) => {
        receipts.delete(envelope.id)
        app.log.error({ action: 'broker.publish.failed', eventId: envelope.id, tenantId: envelope.tenantId, err }, 'broker rejected an event')
      }
    )
  })

  const unsubscribe = app.broker.onDelivery((event) => { app.hub.deliver(event) })
  // Events this instance cannot deliver in order are never skipped silently: the stream's
  // sockets are closed with 4008 and resume from their own last position.
  const unsubscribeGaps = app.broker.onGap((tenantId, stream) => { app.hub.closeStream(tenantId, stream, CloseCode.SLOW_CONSUMER, 'STREAM_GAP') })
  // A lost live message on a quiet stream shows in no later message: the position check finds it.
  const interval = app.config.POSITION_CHECK_INTERVAL
  const check = new PositionCheck({ hub: app.hub, broker: app.broker, log: app.log })
  const checker = interval === 0 ? undefined : setInterval(() => { void check.run() }, interval)
  checker?.unref()
  app.addHook('onClose', async () => {
    clearInterval(checker)
    unsubscribe()
    unsubscribeGaps()
  })

  app.decorate('fanout', {
    async receipt (eventId) {
      const stored = receipts.get(eventId)
      if (stored === undefined) throw new Error(`no broker receipt for event ${eventId}`)
      receipts.delete(eventId)
      return await stored
    }
  } satisfies Fanout)
}

export default fp(fanoutPlugin, {
  name: 'tenantcast-fanout',
  fastify: '5.x',
  dependencies: ['tenantcast-config', 'tenantcast-bus', 'tenantcast-broker', 'tenantcast-hub', 'tenantcast-metrics']
})
