import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Observer } from '../domain/observer.js'

export interface Metrics {
  registry: Registry
  observer: Observer
  connectionOpened (): void
  connectionClosed (code: number): void
  brokerPublished (seconds: number): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/**
 * Prometheus series for the gateway, in a registry of its own (several gateways can share a
 * process). Tenant labels are off unless METRICS_TENANT_LABELS is set: tenants are unbounded.
 */
async function metricsPlugin (app: FastifyInstance): Promise<void> {
  const registry = new Registry()
  const perTenant = app.config.METRICS_TENANT_LABELS
  const tenantLabel = perTenant ? ['tenant'] as const : [] as const
  const labels = (tenantId: string): Record<string, string> => perTenant ? { tenant: tenantId } : {}
  const registers = [registry]

  new Gauge({ // eslint-disable-line no-new
    name: 'tenantcast_connections_open',
    help: 'Authenticated sockets open on this instance',
    registers,
    collect () { this.set(app.hub.size()) }
  })
  const opened = new Counter({ name: 'tenantcast_connections_opened_total', help: 'Sockets opened (before auth)', registers })
  const closed = new Counter({ name: 'tenantcast_connections_closed_total', help: 'Sockets closed, by close code', labelNames: ['code'], registers })
  const framesIn = new Counter({ name: 'tenantcast_frames_in_total', help: 'Frames received from clients', registers })
  const framesOut = new Counter({ name: 'tenantcast_frames_out_total', help: 'Frames sent to clients', registers })
  const deliveries = new Counter({ name: 'tenantcast_deliveries_total', help: 'Events delivered to sockets (one per socket)', labelNames: tenantLabel, registers })
  const bytesOut = new Counter({ name: 'tenantcast_bytes_out_total', help: 'Payload bytes sent to clients', registers })
  const slow = new Counter({ name: 'tenantcast_slow_consumer_disconnects_total', help: 'Sockets closed with 4008 for falling behind', labelNames: tenantLabel, registers })
  const limited = new Counter({ name: 'tenantcast_rate_limited_total', help: 'Rate-limit hits, by kind (frames, connections, unauthenticated, rest, inflight, backlog)', labelNames: ['kind', ...tenantLabel], registers })
  const authFailures = new Counter({ name: 'tenantcast_auth_failures_total', help: 'Rejected credentials, by reason', labelNames: ['reason'], registers })
  const publishLatency = new Histogram({
    name: 'tenantcast_broker_publish_seconds',
    help: 'Time for the broker to store an event',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers
  })
  const ingestToSend = new Histogram({
    name: 'tenantcast_ingest_to_send_seconds',
    help: 'Time from an event\'s creation to its frame being handed to the sockets of this instance',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'tenantcast_delivery_queue_depth',
    help: 'Writes queued by the fair scheduler and not yet done: a broadcast (a burst of events for the same sockets counts once), a reply or a presence frame',
    labelNames: tenantLabel,
    registers,
    collect () {
      if (!perTenant) {
        this.set(app.hub.queueDepth())
        return
      }
      // Only tenants with queued work have a series; the others' are removed, not left at 0.
      this.reset()
      for (const [tenant, depth] of app.hub.queueDepths()) this.set({ tenant }, depth)
    }
  })
  const waitBuckets = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]
  const firstWrite = new Histogram({
    name: 'tenantcast_delivery_first_write_wait_seconds',
    help: 'Time an event waited in this instance before its first socket write (0 when written at once)',
    labelNames: tenantLabel,
    buckets: waitBuckets,
    registers
  })
  const lastWrite = new Histogram({
    name: 'tenantcast_delivery_last_write_wait_seconds',
    help: 'Time an event waited in this instance before its last socket write',
    labelNames: tenantLabel,
    buckets: waitBuckets,
    registers
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'tenantcast_history_events',
    help: 'Events retained for resume (memory broker; absent with Redis, where Redis holds them)',
    registers,
    collect () {
      const held = app.broker.heldCount()
      if (held !== undefined) this.set(held)
    }
  })

  const observer: Observer = {
    delivered (event, sockets, bytes) {
      if (sockets === 0) return
      framesOut.inc(sockets)
      bytesOut.inc(sockets * bytes)
      deliveries.inc(labels(event.tenantId), sockets)
      ingestToSend.observe(Math.max(0, Date.now() - Date.parse(event.timestamp)) / 1000)
    },
    waited (event, firstSeconds, lastSeconds) {
      if (perTenant) {
        firstWrite.observe({ tenant: event.tenantId }, firstSeconds)
        lastWrite.observe({ tenant: event.tenantId }, lastSeconds)
        return
      }
      firstWrite.observe(firstSeconds)
      lastWrite.observe(lastSeconds)
    },
    sent (bytes) {
      framesOut.inc()
      bytesOut.inc(bytes)
    },
    frameIn () { framesIn.inc() },
    slowConsumer (tenantId) { slow.inc(labels(tenantId)) },
    rateLimited (kind, tenantId) { limited.inc({ kind, ...labels(tenantId) }) },
    authFailed (reason) { authFailures.inc({ reason }) }
  }

  app.decorate('metrics', {
    registry,
    observer,
    connectionOpened () { opened.inc() },
    connectionClosed (code) { closed.inc({ code: String(code) }) },
    brokerPublished (seconds) { publishLatency.observe(seconds) }
  } satisfies Metrics)
  app.auth.onFailure = (reason) => { observer.authFailed(reason) }
}

export default fp(metricsPlugin, { name: 'tenantcast-metrics', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-auth'] })
