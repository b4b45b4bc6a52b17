import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Broker } from '../domain/broker.js'
import { MemoryBroker } from '../domain/broker-memory.js'

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

async function brokerPlugin (app: FastifyInstance): Promise<void> {
  const broker = new MemoryBroker((err) => {
    app.log.error({ action: 'broker.listener.failed', err }, 'broker delivery listener failed')
  })
  app.decorate('broker', broker)
  app.addHook('onClose', async () => { await broker.close() })
}

export default fp(brokerPlugin, { name: 'tenantcast-broker', fastify: '5.x', dependencies: ['tenantcast-config'] })
