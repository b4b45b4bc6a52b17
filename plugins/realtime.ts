import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { EventCatalogue, EventName, StoredEvent, Target } from '../domain/events.js'
import { HttpErrors } from '../domain/http-errors.js'
import type { BusEvents } from './bus.js'

export interface PublishInput<K extends EventName> {
  tenantId: string
  event: K
  data: EventCatalogue[K]
  /** Default: the whole tenant. */
  target?: Target
  correlationId?: string
  /** Default: a new UUID. Alarms reuse it as their own `id`. */
  id?: string
}

/**
 * The in-process API of the gateway, for host apps and for tenantcast's own routes. Each call
 * resolves once the broker has stored the event, and rejects with a 503 BROKER_UNAVAILABLE
 * error when it could not be stored.
 */
export interface Realtime {
  publish<K extends EventName> (input: PublishInput<K>): Promise<StoredEvent>
  broadcast<K extends EventName> (tenantId: string, event: K, data: EventCatalogue[K]): Promise<StoredEvent>
  sendToUser<K extends EventName> (tenantId: string, userId: string, event: K, data: EventCatalogue[K]): Promise<StoredEvent>
  /** Open, authenticated sockets of the tenant on this instance. */
  connectionCount (tenantId: string): number
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

async function realtimePlugin (app: FastifyInstance): Promise<void> {
  const realtime: Realtime = {
    async publish (input) {
      const envelope = {
        id: input.id ?? randomUUID(),
        tenantId: input.tenantId,
        event: input.event,
        data: input.data,
        target: input.target ?? { kind: 'tenant' as const },
        timestamp: new Date().toISOString(),
        ...(input.correlationId === undefined ? {} : { correlationId: input.correlationId })
      }
      app.bus.emit(input.event, envelope as BusEvents[typeof input.event])
      try {
        return await app.fanout.receipt(envelope.id)
      } catch (err) {
        throw new HttpErrors.BROKER_UNAVAILABLE((err as Error).message)
      }
    },
    broadcast: async (tenantId, event, data) => await realtime.publish({ tenantId, event, data }),
    sendToUser: async (tenantId, userId, event, data) => await realtime.publish({ tenantId, event, data, target: { kind: 'user', userId } }),
    connectionCount: (tenantId) => app.hub.tenantConnectionCount(tenantId)
  }
  app.decorate('realtime', realtime)
}

export default fp(realtimePlugin, { name: 'tenantcast-realtime', fastify: '5.x', dependencies: ['tenantcast-fanout'] })
