import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram } from 'prom-client'
import { AlarmService, type AlarmObserver, type AlarmPublish } from '../domain/alarm-service.js'
import type { AlarmStore } from '../domain/alarm-store.js'
import { MemoryAlarmStore } from '../domain/alarm-store-memory.js'
import { RedisAlarmStore } from '../domain/alarm-store-redis.js'
import { systemClock } from '../domain/clock.js'
import { EscalationScheduler } from '../domain/escalation.js'
import { parseEscalation } from '../domain/escalation-rules.js'
import { Webhooks, type HttpPost } from '../domain/webhooks.js'
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
  let escalation
  try {
    escalation = parseEscalation(config.ALARM_ESCALATION)
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
  const secret = config.WEBHOOK_SECRET
  if (escalation.webhooks && secret === undefined) throw new ConfigError('ALARM_ESCALATION names a webhook but WEBHOOK_SECRET is not set: set it to a random secret of at least 16 characters, shared with the receiver')
  const rules = escalation.rulesFor
  const severities = new Set(config.ALARM_ACK_SEVERITIES.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  // The record outlives its ALARM_TTL expiry by a day, so a late ack still finds it expired.
  const store: AlarmStore = app.redis === undefined
    ? new MemoryAlarmStore(config.ALARM_MAX_OPEN)
    : new RedisAlarmStore(app.redis, { prefix: config.REDIS_PREFIX, ttlMs: (config.ALARM_TTL + 86400) * 1000 })

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
  const escalations = new Counter({ name: 'tenantcast_alarm_escalations_total', help: 'Escalation levels fired, by reason (unacknowledged, unreceived)', labelNames: ['reason'], registers })
  const webhookFailures = new Counter({ name: 'tenantcast_webhook_failures_total', help: 'Failed webhook attempts, by outcome (retried, gave_up)', labelNames: ['outcome'], registers })
  const observer: AlarmObserver = {
    acknowledged (seconds) { timeToAck.observe(seconds) },
    overflow (policy) { overflows.inc({ policy }) }
  }

  const publish: AlarmPublish = async (tenantId, event, data, target) => await app.realtime.publish({ tenantId, event, data, ...(target === undefined ? {} : { target }) })
  const service = new AlarmService({
    store,
    publish,
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

  const webhooks = secret === undefined
    ? undefined
    : new Webhooks({
      post: postJson,
      secret,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      retries: config.WEBHOOK_RETRIES,
      backoffMs: config.WEBHOOK_BACKOFF_MS,
      clock: systemClock,
      log: app.log,
      onFailure: (gaveUp) => { webhookFailures.inc({ outcome: gaveUp ? 'gave_up' : 'retried' }) }
    })
  const scheduler = new EscalationScheduler({
    store,
    alarms: service,
    rules,
    publish,
    webhooks,
    clock: systemClock,
    pollMs: config.ALARM_ESCALATION_POLL_MS,
    log: app.log,
    onEscalated: (reason) => { escalations.inc({ reason }) }
  })
  app.addHook('onReady', async () => { scheduler.start() })
  app.addHook('onClose', async () => {
    await scheduler.stop()
    webhooks?.close()
    await store.close()
  })
}

export default fp(alarmsPlugin, {
  name: 'tenantcast-alarms',
  fastify: '5.x',
  dependencies: ['tenantcast-config', 'tenantcast-metrics', 'tenantcast-redis', 'tenantcast-realtime']
})

/** The webhook client: Node's fetch, aborted at the timeout. Redirects are not followed. */
const postJson: HttpPost = async (url, body, headers, timeoutMs) => {
  const response = await fetch(url, { method: 'POST', body, headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) })
  await response.body?.cancel()
  return response.status
}
