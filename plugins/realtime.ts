import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { checkEventData, completeEventData, RESERVED_EVENT_NAMES, type EventEnvelope, type EventName, type PublishCatalogue, type StoredEvent, type Target } from '../domain/events.js'
import { HttpErrors } from '../errors.js'

/**
 * A catalogued name gets its payload type, with the fields the server fills optional (an
 * alarm's `id`, `type`, `timestamp`); any other name carries any JSON payload.
 */
export type EventData<K extends string> = K extends EventName ? PublishCatalogue[K] : unknown

export interface PublishInput<K extends string = string> {
  tenantId: string
  event: K
  data: EventData<K>
  /** Default: the whole tenant. */
  target?: Target
  correlationId?: string
  /** Default: a new UUID. An alarm without its own `id` gets this one. */
  id?: string
  from?: EventEnvelope['from']
}

/**
 * The in-process API of the gateway, for host apps and for tenantcast's own routes. Every
 * call stays inside the tenant it names. Each publish resolves once the broker stored the
 * event; it rejects with 400 VALIDATION_FAILED for a payload that does not match the
 * catalogue, 400 EVENT_NAME_RESERVED for a name Socket.IO reserves, 413 PAYLOAD_TOO_LARGE past MAX_PUBLISH_BYTES, and 503 BROKER_UNAVAILABLE when the
 * event could not be stored.
 */
export interface Realtime {
  publish<K extends string> (input: PublishInput<K>): Promise<StoredEvent>
  broadcast<K extends string> (tenantId: string, event: K, data: EventData<K>): Promise<StoredEvent>
  sendToUser<K extends string> (tenantId: string, userId: string, event: K, data: EventData<K>): Promise<StoredEvent>
  sendToClient<K extends string> (tenantId: string, clientId: string, event: K, data: EventData<K>): Promise<StoredEvent>
  sendToChannel<K extends string> (tenantId: string, channel: string, event: K, data: EventData<K>): Promise<StoredEvent>
  /**
   * Open, authenticated sockets: of the tenant, of one user, in one channel. Cluster-wide with
   * Redis (a crashed instance's sockets drop out after PRESENCE_TTL), this instance otherwise.
   */
  connectionCount (tenantId: string): Promise<number>
  userConnectionCount (tenantId: string, userId: string): Promise<number>
  channelConnectionCount (tenantId: string, channel: string): Promise<number>
  isUserConnected (tenantId: string, userId: string): Promise<boolean>
  isClientConnected (tenantId: string, clientId: string): Promise<boolean>
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

async function realtimePlugin (app: FastifyInstance): Promise<void> {
  const presence = app.presence
  const maxBytes = app.config.MAX_PUBLISH_BYTES
  const realtime: Realtime = {
    async publish (input) {
      if (RESERVED_EVENT_NAMES.has(input.event)) throw new HttpErrors.EVENT_NAME_RESERVED(input.event)
      const check = checkEventData(input.event, input.data)
      if (!check.ok) throw new HttpErrors.VALIDATION_FAILED(check.message)
      const id = input.id ?? randomUUID()
      const timestamp = new Date().toISOString()
      const data = completeEventData(input.event, input.data, id, timestamp)
      const size = Buffer.byteLength(JSON.stringify(data) ?? '')
      if (size > maxBytes) throw new HttpErrors.PAYLOAD_TOO_LARGE(`the event data is ${size} bytes; the limit is ${maxBytes} (MAX_PUBLISH_BYTES)`)
      const envelope: EventEnvelope = {
        id,
        tenantId: input.tenantId,
        event: input.event,
        data,
        target: input.target ?? { kind: 'tenant' },
        timestamp
      }
      if (input.correlationId !== undefined) envelope.correlationId = input.correlationId
      if (input.from !== undefined) envelope.from = input.from
      app.bus.emit(envelope)
      try {
        return await app.fanout.receipt(envelope.id)
      } catch (err) {
        throw new HttpErrors.BROKER_UNAVAILABLE((err as Error).message)
      }
    },
    broadcast: async (tenantId, event, data) => await realtime.publish({ tenantId, event, data }),
    sendToUser: async (tenantId, userId, event, data) => await realtime.publish({ tenantId, event, data, target: { kind: 'user', userId } }),
    sendToClient: async (tenantId, clientId, event, data) => await realtime.publish({ tenantId, event, data, target: { kind: 'client', clientId } }),
    sendToChannel: async (tenantId, channel, event, data) => await realtime.publish({ tenantId, event, data, target: { kind: 'channel', channel } }),
    connectionCount: async (tenantId) => await presence.connectionCount(tenantId),
    userConnectionCount: async (tenantId, userId) => await presence.userConnectionCount(tenantId, userId),
    channelConnectionCount: async (tenantId, channel) => await presence.channelConnectionCount(tenantId, channel),
    isUserConnected: async (tenantId, userId) => await presence.userConnectionCount(tenantId, userId) > 0,
    isClientConnected: async (tenantId, clientId) => await presence.isClientConnected(tenantId, clientId)
  }
  app.decorate('realtime', realtime)
}

export default fp(realtimePlugin, { name: 'tenantcast-realtime', fastify: '5.x', dependencies: ['tenantcast-fanout', 'tenantcast-presence'] })
