import { Compile } from 'typebox/compile'
import { closeClient, subscriberClient, untilReady, type RedisClient, type RedisTarget } from './broker-redis.js'
import { ControlMessage, type ControlChannel, type ControlListener } from './control.js'
import { Revocation } from './revocations.js'

export interface RedisControlOptions extends RedisTarget {
  /** Prefix of the control channel and the revocation key, as for every other key. */
  prefix: string
  /** This instance's id; an instance ignores its own messages (it applied them already). */
  instanceId: string
  log: { warn (fields: object, message: string): void }
}

const isMessage = Compile(ControlMessage)
const isRevocation = Compile(Revocation)

/**
 * Control messages over Redis pub/sub on `<prefix>control`. Revocations are also kept in the
 * sorted set `<prefix>revocations` (member: the revocation as JSON, score: its expiry in ms),
 * read back whenever the subscriber becomes ready: at start, and after a lost link, so an
 * instance that missed a message (or did not exist yet) still refuses the revoked tokens.
 * Expired members are trimmed on every write and the key expires with its last member.
 */
export class RedisControl implements ControlChannel {
  private readonly subscriber: RedisClient
  private readonly listeners = new Set<ControlListener>()
  private readonly revocationListeners = new Set<(revocations: Revocation[]) => void>()

  /** `redis` is the shared command connection; the subscriber is this channel's own. */
  constructor (private readonly redis: RedisClient, private readonly options: RedisControlOptions) {
    // Plain pub/sub: on a cluster a message reaches every node, so one subscriber hears all.
    this.subscriber = subscriberClient(options)
    this.subscriber.on('error', (err: Error) => { options.log.warn({ action: 'control.redis.error', err: err.message }, 'redis control connection error') })
    this.subscriber.on('message', (_channel: string, text: string) => { this.receive(text) })
  }

  /**
   * Subscribes, then reads the revocations in force (in that order, so none falls between).
   * Resolves once both are done, or after `timeoutMs` when Redis is not reachable yet.
   */
  async start (timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.subscriber.subscribe(this.channel).then(async () => { await this.reload(timeoutMs) }),
      new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ]).catch(() => {})
    clearTimeout(timer)
    // ioredis re-subscribes before it reports ready again; what was revoked meanwhile is read back.
    this.subscriber.on('ready', () => { void this.reload(timeoutMs) })
    // A cluster client stays ready when its subscriber's node leaves: it subscribes again on
    // another node without a word. Read back once that has had time to happen.
    this.subscriber.on('-node', () => {
      const timer = setTimeout(() => { void this.reload(timeoutMs) }, 1000)
      timer.unref()
    })
  }

  async publish (message: ControlMessage): Promise<void> {
    const payload = JSON.stringify({ from: this.options.instanceId, message })
    if (message.kind !== 'revoke') {
      await this.redis.publish(this.channel, payload)
      return
    }
    const expiresAtMs = message.revocation.expiresAt * 1000
    await this.redis.multi()
      .zremrangebyscore(this.key, '-inf', Date.now())
      .zadd(this.key, expiresAtMs, JSON.stringify(message.revocation))
      // NX sets the first expiry, GT only ever extends it: the key lives as long as its last member.
      .pexpireat(this.key, expiresAtMs, 'NX')
      .pexpireat(this.key, expiresAtMs, 'GT')
      .publish(this.channel, payload)
      .exec()
  }

  onMessage (listener: ControlListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  onRevocations (listener: (revocations: Revocation[]) => void): () => void {
    this.revocationListeners.add(listener)
    return () => { this.revocationListeners.delete(listener) }
  }

  async close (): Promise<void> {
    this.listeners.clear()
    this.revocationListeners.clear()
    closeClient(this.subscriber)
  }

  private receive (text: string): void {
    let envelope: { from?: unknown, message?: unknown }
    try {
      envelope = JSON.parse(text) as { from?: unknown, message?: unknown }
    } catch {
      return
    }
    if (envelope.from === this.options.instanceId || !isMessage.Check(envelope.message)) return
    for (const listener of this.listeners) listener(envelope.message)
  }

  private async reload (timeoutMs: number): Promise<void> {
    try {
      // The two connections come back on their own schedules; the read needs the command one.
      await untilReady([this.redis], timeoutMs)
      const members = await this.redis.zrangebyscore(this.key, Date.now(), '+inf')
      const revocations = members.map((m) => JSON.parse(m) as unknown).filter((r): r is Revocation => isRevocation.Check(r))
      for (const listener of this.revocationListeners) listener(revocations)
    } catch (err) {
      this.options.log.warn({ action: 'control.redis.reload_failed', err: (err as Error).message }, 'could not read the revocations back')
    }
  }

  private get channel (): string {
    return `${this.options.prefix}control`
  }

  private get key (): string {
    return `${this.options.prefix}revocations`
  }
}
