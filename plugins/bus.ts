import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import mittModule, { type Emitter, type Handler } from 'mitt'
import type { EventCatalogue, EventEnvelope } from '../domain/events.js'

/** What the bus carries: each catalogued event's envelope, with its typed payload. */
export type BusEvents = { [K in keyof EventCatalogue]: EventEnvelope & { event: K, data: EventCatalogue[K] } }

export interface Bus {
  /**
   * Adds a listener. A listener that throws or rejects is logged and isolated: the emitter,
   * the other listeners and the request that emitted all carry on.
   */
  on<K extends keyof BusEvents> (name: K, listener: (payload: BusEvents[K]) => void | Promise<void>): () => void
  emit<K extends keyof BusEvents> (name: K, payload: BusEvents[K]): void
}

declare module 'fastify' {
  interface FastifyInstance {
    bus: Bus
  }
}

// mitt ships a CommonJS default export; under NodeNext its type is the module, not the function.
const mitt = mittModule as unknown as <T extends Record<string, unknown>>() => Emitter<T>

async function busPlugin (app: FastifyInstance): Promise<void> {
  const emitter = mitt<BusEvents>()
  const isolate = (name: string, err: unknown): void => {
    app.log.error({ action: 'bus.listener.failed', event: name, err }, 'bus listener failed')
  }
  app.decorate('bus', {
    on (name, listener) {
      const wrapped: Handler<BusEvents[typeof name]> = (payload) => {
        try {
          const result = listener(payload)
          if (result instanceof Promise) result.catch((err: unknown) => { isolate(name, err) })
        } catch (err) {
          isolate(name, err)
        }
      }
      emitter.on(name, wrapped)
      return () => { emitter.off(name, wrapped) }
    },
    emit (name, payload) {
      emitter.emit(name, payload)
    }
  } satisfies Bus)
}

export default fp(busPlugin, { name: 'tenantcast-bus', fastify: '5.x' })
