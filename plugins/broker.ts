import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Broker } from '../domain/broker.js'
import { MemoryBroker } from '../domain/broker-memory.js'
import { systemClock } from '../domain/clock.js'

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

async function brokerPlugin (app: FastifyInstance): Promise<void> {
  const broker = new MemoryBroker({
    historySize: app.config.HISTORY_SIZE,
    historyTtlMs: app.config.HISTORY_TTL * 1000,
    clock: systemClock,
    onListenerError: (err) => { app.log.error({ action: 'broker.listener.failed', err }, 'broker delivery listener failed') }
  })
  // Age-based eviction also runs on quiet streams, so memory stays bounded by HISTORY_TTL.
  const sweeper = setInterval(() => { broker.sweep() }, Math.min(60_000, app.config.HISTORY_TTL * 1000))
  sweeper.unref()
  app.decorate('broker', broker)
  app.addHook('onClose', async () => {
    clearInterval(sweeper)
    await broker.close()
  })
}

export default fp(brokerPlugin, { name: 'tenantcast-broker', fastify: '5.x', dependencies: ['tenantcast-config'] })
