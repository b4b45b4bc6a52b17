import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram } from 'prom-client'
import { AlarmService, type AlarmObserver } from '../domain/alarm-service.js'
import type { AlarmStore } from '../domain/alarm-store.js'
import { MemoryAlarmStore } from '../domain/alarm-store-memory.js'
import { systemClock } from '../domain/clock.js'
import { parseEscalation } from '../domain/escalation-rules.js'
import { ConfigError } from './config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Open-alarm state: ackable alarms, receipts, acknowledgements and escalation. */
    alarms: AlarmService
  }
}

/**
 * Ackable alarms. The state lives in the broker's store: Redis when it is configured (shared
 * by every instance, surviving restarts), this process's memory otherwise (lost on restart).
 */
async function alarmsPlugin (app: FastifyInstance): Promise<void> {
  const config = app.config
  let rules
  try {
    rules = parseEscalation(config.ALARM_ESCALATION)
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
  const severities = new Set(config.ALARM_ACK_SEVERITIES.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  const store: AlarmStore = new MemoryAlarmStore(config.ALARM_MAX_OPEN)

  const registers = [app.metrics.registry]
  const timeToAck = new Histogram({
    name: 'tenantcast_alarm_time_to_ack_seconds',
    help: 'Time from an ackable alarm\'s creation to its first acknowledgement',
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers
  })
  const overflows = new Counter({ name: 'tenantcast_alarm_overflow_total', help: 'Times a tenant reached ALARM_MAX_OPEN, by the policy that gave way', labelNames: ['policy'], registers })
  new Gauge({ // eslint-disable-line no-new
    name: 'tenantcast_alarms_open',
    help: 'Unresolved (open or acknowledged) ackable alarms, over all tenants',
    registers,
    async collect () { this.set(await store.unresolvedCount()) }
  })
  const observer: AlarmObserver = {
    acknowledged (seconds) { timeToAck.observe(seconds) },
    overflow (policy) { overflows.inc({ policy }) }
  }

  const service = new AlarmService({
    store,
    publish: async (tenantId, event, data, target) => await app.realtime.publish({ tenantId, event, data, ...(target === undefined ? {} : { target }) }),
    severities,
    maxOpen: config.ALARM_MAX_OPEN,
    overflow: config.ALARM_OVERFLOW,
    ttlMs: config.ALARM_TTL * 1000,
    rules,
    clock: systemClock,
    log: app.log,
    observer
  })
  app.decorate('alarms', service)
  app.addHook('onClose', async () => { await store.close() })
}

export default fp(alarmsPlugin, {
  name: 'tenantcast-alarms',
  fastify: '5.x',
  dependencies: ['tenantcast-config', 'tenantcast-metrics', 'tenantcast-redis', 'tenantcast-realtime']
})
