import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import mittModule, { type Emitter } from 'mitt'
import type { EventCatalogue, EventEnvelope, EventName } from '../domain/events.js'

/** A catalogued event's envelope, with its typed payload. */
export type TypedEnvelope<K extends EventName> = EventEnvelope & { event: K, data: EventCatalogue[K] }

type Listener<T> = (payload: T) => void | Promise<void>

/**
 * The in-process event bus: domain code emits "this happened" envelopes; the fanout publishes
 * each through the broker. Listeners are isolated: one that throws or rejects is logged, and
 * the emitter, the other listeners and the request that emitted all carry on.
 */
export interface Bus {
  on<K extends EventName> (name: K, listener: Listener<TypedEnvelope<K>>): () => void
  /** Every envelope, catalogued or not. */
  onAny (listener: Listener<EventEnvelope>): () => void
  emit (envelope: EventEnvelope): void
}

declare module 'fastify' {
  interface FastifyInstance {
    bus: Bus
  }
}

// mitt ships a CommonJS default export; under NodeNext its type is the module, not the function.
const mitt = mittModule as unknown as <T extends Record<string, unknown>>() => Emitter<T>

async function busPlugin (app: FastifyInstance): Promise<void> {
  const emitter = mitt<Record<string, EventEnvelope>>()
  const isolated = <T>(listener: Listener<T>) => (payload: T): void => {
    const failed = (err: unknown): void => {
      app.log.error({ action: 'bus.listener.failed', err }, 'bus listener failed')
    }
    try {
      const result = listener(payload)
      if (result instanceof Promise) result.catch(failed)
    } catch (err) {
      failed(err)
    }
  }
  app.decorate('bus', {
    on (name, listener) {
      const wrapped = isolated(listener as Listener<EventEnvelope>)
      emitter.on(name, wrapped)
      return () => { emitter.off(name, wrapped) }
    },
    onAny (listener) {
      const wrapped = isolated(listener)
      const handler = (_name: string, envelope: EventEnvelope): void => { wrapped(envelope) }
      emitter.on('*', handler)
      return () => { emitter.off('*', handler) }
    },
    emit (envelope) {
      emitter.emit(envelope.event, envelope)
    }
  } satisfies Bus)
}

export default fp(busPlugin, { name: 'tenantcast-bus', fastify: '5.x' })
