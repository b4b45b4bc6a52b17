import { spawn } from 'node:child_process'
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisBroker, streamKeys } from '../../domain/broker-redis.js'
import type { EventEnvelope } from '../../domain/events.js'
import { freePort, REDIS_URL, redisPrefix, redisSkip } from '../helper.js'

/**
 * What the Redis broker does about its connections: which failures reset one, and what a
 * Redis of its own (stopped with SIGSTOP) makes of a publish.
 */

type Options = Partial<ConstructorParameters<typeof RedisBroker>[0]>

async function connected (options: Options & { prefix: string }): Promise<RedisBroker> {
  const b = new RedisBroker({ url: REDIS_URL, historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000, commandTimeoutMs: 2000, onListenerError: () => {}, log: { warn: () => {} }, ...options })
  if (!await b.connected(5000)) throw new Error('the Redis broker did not connect')
  return b
}

const tick = (n: number): EventEnvelope => ({ id: `e${n}`, tenantId: 'acme', event: 'tick', data: { n }, target: { kind: 'tenant' }, timestamp: 'now' })

async function until (what: string, done: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('a command that Redis refuses leaves the connection as it is', { skip: redisSkip }, async (t) => {
  const prefix = await redisPrefix(t)
  const warnings: string[] = []
  const b = await connected({ prefix, log: { warn: (fields) => { warnings.push((fields as { action: string }).action) } } })
  const admin = new Redis(REDIS_URL)
  t.teardown(async () => { await b.close(); admin.disconnect() })
  await admin.set(streamKeys(prefix, 'acme', 'tenant').meta, 'not a hash')
  await t.rejects(b.read('acme', 'tenant', 0, 10), /WRONGTYPE/)
  await t.rejects(b.publish(tick(1)), /WRONGTYPE/)
  t.same(warnings, [], 'an error reply is no stall: nothing is reset')
  t.ok(b.ready())
})

t.test('the Redis broker on a Redis it can stop', { skip: redisSkip }, async (t) => {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGKILL') })
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 50 })
  probe.on('error', () => {})
  await until('the private Redis answers', async () => await probe.ping().then(() => true, () => false), 10000)
  probe.disconnect()

  t.test('a publish that times out resets the command connection at once, before the stall probe would notice', async (t) => {
    const warnings: string[] = []
    const b = await connected({ prefix: 'reset:', url, commandTimeoutMs: 300, log: { warn: (fields) => { warnings.push((fields as { action: string }).action) } } })
    t.teardown(async () => { await b.close(); server.kill('SIGCONT') })
    server.kill('SIGSTOP')
    // The probe pings first 300 ms after the broker was made, and gives up 300 ms later: the
    // publish's own timeout runs out before that.
    await t.rejects(b.publish(tick(1)), { message: 'Command timed out' })
    t.same(warnings, ['redis.stalled'], 'reset by the publish that timed out')
    server.kill('SIGCONT')
  })
})
