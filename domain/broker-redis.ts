import { randomUUID } from 'node:crypto'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Broker, DeliveryListener, GapListener, StreamRead } from './broker.js'
import type { EventEnvelope, StoredEvent } from './events.js'
import { isPositioned, streamOf } from './streams.js'

/** A connection to a standalone Redis or to a Redis Cluster; both speak the same commands. */
export type RedisClient = Redis | Cluster

/**
 * Where Redis is: a standalone server (`url`, REDIS_URL) or the seed nodes of a Redis Cluster
 * (`clusterNodes`, REDIS_CLUSTER_NODES, each `host:port`). Exactly one is set.
 */
export interface RedisTarget {
  url?: string | undefined
  clusterNodes?: string[] | undefined
}

export interface RedisBrokerOptions extends RedisTarget {
  /** Prefix of every key and pub/sub channel, so that several deployments share one Redis. */
  prefix: string
  /** Most events held per stream. */
  historySize: number
  /** Longest an event is held, in ms; a stream's log expires this long after its last event. */
  historyTtlMs: number
  /**
   * How long a stream's metadata (epoch, last offset) outlives its last publish or read, in ms.
   * At least `historyTtlMs`, so the log never outlives the epoch that names its offsets.
   */
  historyMetaTtlMs: number
  /**
   * Longest a command may wait for Redis, in ms. A command past it is rejected and its
   * connection is reset, so a Redis that stops answering never hangs a request, and what was
   * queued on the stalled connection is dropped rather than run when Redis comes back.
   */
  commandTimeoutMs: number
  /** How long `watch` waits for Redis to confirm a subscription, in ms; default `commandTimeoutMs`. */
  watchTimeoutMs?: number
  onListenerError: (err: unknown) => void
  log: { warn (fields: object, message: string): void }
}

/**
 * Drops entries older than the cutoff from the head of a stream log, a bounded number per call.
 * Entry fields are {'e', envelope, 't', stored-at ms}.
 */
const TRIM = `
local function trim(log, cutoff)
  for _ = 1, 256 do
    local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
    if #head == 0 or tonumber(head[1][2][4]) > cutoff then return end
    redis.call('XDEL', log, head[1][1])
  end
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The epoch lives next to the stream. When the metadata is gone (expired, flushed, or a restart
-- without persistence) a new epoch starts and whatever log is left over is dropped with it.
local function meta(metaKey, log, candidate)
  local epoch = redis.call('HGET', metaKey, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('DEL', log)
    redis.call('HSET', metaKey, 'epoch', epoch, 'latest', 0)
  end
  return epoch
end
`

/**
 * Assign the offset, append to the log (trimmed by size and age) and publish for live
 * delivery, in one atomic step: offsets never interleave or skip between instances. Every key
 * gets its lifetime here: the log expires with its newest event, the metadata later. On a
 * cluster the live message goes out with SPUBLISH, on the channel that shares the keys' slot.
 * A publish that reaches Redis after its deadline (in Redis time) does nothing: its caller was
 * already told it failed. Without this, a Redis that stalls (SIGSTOP, a partition) runs the
 * command from its socket buffer once it resumes, and an event refused with 503 is stored and
 * delivered, and then stored again by the caller's retry.
 * KEYS: meta, log. ARGV: envelope JSON, candidate epoch, max length, ttl ms, live channel,
 * meta ttl ms, 'PUBLISH' or 'SPUBLISH', deadline ms ('' for none).
 */
const PUBLISH = TRIM + `
if ARGV[8] ~= '' and now() > tonumber(ARGV[8]) then return {0, ''} end
local epoch = meta(KEYS[1], KEYS[2], ARGV[2])
local offset = redis.call('HINCRBY', KEYS[1], 'latest', 1)
local t = now()
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], offset .. '-0', 'e', ARGV[1], 't', t)
trim(KEYS[2], t - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call(ARGV[7], ARGV[5], '{"offset":' .. offset .. ',"epoch":"' .. epoch .. '","e":' .. ARGV[1] .. '}')
return {offset, epoch}
`

/**
 * Read what a stream holds. A stream without metadata is empty and stays absent: a read writes
 * no key, so subscribing to names nobody publishes to costs Redis nothing. It reports the
 * candidate epoch; the first publish picks its own, so a client holding position 0 of the
 * candidate is told `recovered: false` on resume, never given a wrong replay.
 * KEYS: meta, log. ARGV: candidate epoch, after ('' for none), limit, ttl ms, meta ttl ms.
 */
const READ = TRIM + `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {ARGV[1], 0, 1, {}} end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest'))
trim(KEYS[2], now() - tonumber(ARGV[4]))
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local oldest = latest + 1
if #head > 0 then oldest = tonumber(string.match(head[1][1], '^(%d+)')) end
local entries = {}
if ARGV[2] ~= '' then entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3]) end
return {epoch, latest, oldest, entries}
`

/**
 * Start a new epoch for a stream, unless another instance already did: compare-and-set on the
 * epoch the caller saw diverge. KEYS: meta. ARGV: diverged epoch, new epoch.
 */
const REEPOCH = `
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then redis.call('HSET', KEYS[1], 'epoch', ARGV[2]) end
return 1
`

/**
 * Offsets whose event ids a watch remembers, to tell a repeat (same id) from a rewritten
 * offset (another id: a failover promoted a replica that had not received the last events).
 */
const RECENT_IDS = 1024

/** A position in a stream; `epoch` is undefined while the stream is empty (its first publish picks it). */
interface Position {
  epoch: string | undefined
  offset: number
}

interface Watch {
  tenantId: string
  stream: string
  count: number
  subscribed: Promise<void>
  /**
   * Local listeners have everything of the stream up to here. Undefined until the first read
   * of the stream after the watch was made: every socket attaches at or after that read's
   * position, so live delivery continues from it, and no live message is accepted before it
   * is known (they wait in `pending`).
   */
  last: Position | undefined
  /** Live messages that arrived while the position was unknown or a gap was being filled, in arrival order. */
  pending: StoredEvent[] | undefined
  /** The subscriber reconnected while the position was unknown or a fill was under way: read the log again after. */
  stale: boolean
  /** Ids of the last RECENT_IDS offsets delivered, oldest first. */
  recent: Map<number, string>
  /** A rewritten offset was seen, and the stream's new epoch is being set. */
  diverged: boolean
}

type RedisWithScripts = RedisClient & {
  tcPublish (meta: string, log: string, envelope: string, epoch: string, max: number, ttl: number, channel: string, metaTtl: number, publish: 'PUBLISH' | 'SPUBLISH', deadline: string): Promise<[number, string]>
  tcRead (meta: string, log: string, epoch: string, after: string, limit: number, ttl: number, metaTtl: number): Promise<[string, number, number, Array<[string, string[]]>]>
  tcReepoch (meta: string, diverged: string, epoch: string): Promise<number>
}

/**
 * The broker for many instances: Redis Streams hold each stream's history, pub/sub carries
 * live delivery, and a Lua script makes "assign offset, append, publish" one atomic step. On a
 * Redis Cluster live delivery is sharded pub/sub: a stream's channel lives in its keys' slot,
 * the script SPUBLISHes it on the node that owns the slot, and the subscriber SSUBSCRIBEs it
 * there (ioredis keeps one sharded subscriber per master and moves them with the slots).
 *
 * Delivery guarantee per instance: for every watched stream, listeners get each event after
 * the position the watch was attached at once, in offset order. Every live message is compared
 * with the watch's position, which is known from a read before any message is accepted. When a
 * message reveals a gap, or the subscriber connection dropped and came back (for every watch,
 * whether it had delivered anything or not), the missing range is read from the log first;
 * when that range is gone, the gap listeners are told so the stream's sockets reconnect and
 * resume. On a cluster "came back" is every resubscription ioredis makes after a slot move, a
 * failover or a lost subscriber connection: the same catch-up runs after each.
 */
export class RedisBroker implements Broker {
  private readonly command: RedisWithScripts
  private readonly subscriber: RedisClient
  private readonly listeners = new Set<DeliveryListener>()
  private readonly gapListeners = new Set<GapListener>()
  private readonly watches = new Map<string, Watch>()
  private readonly stopProbes: Array<() => void>
  /** On a Redis Cluster: live delivery is sharded pub/sub. */
  private readonly sharded: boolean
  /** Set once the server was found too old: nothing is stored or read on it. */
  private unsupported: string | undefined
  /**
   * A lower bound of Redis's clock minus ours, in ms, measured on every (re)connect of the
   * command connection; undefined until then.
   */
  private clockOffsetMs: number | undefined
  /** The measurement under way since the last (re)connect. */
  private clock: Promise<void> | undefined
  private closed = false

  constructor (private readonly options: RedisBrokerOptions) {
    // Commands fail fast while Redis is unreachable or stalled: a publish must answer 503 at
    // once, never queue for later (it could then be stored after the client was told it failed).
    this.command = commandClient(options, options.commandTimeoutMs) as RedisWithScripts
    this.command.defineCommand('tcPublish', { numberOfKeys: 2, lua: PUBLISH })
    this.command.defineCommand('tcRead', { numberOfKeys: 2, lua: READ })
    this.command.defineCommand('tcReepoch', { numberOfKeys: 1, lua: REEPOCH })
    // The subscriber queues (re)subscriptions while reconnecting, and ioredis re-subscribes
    // every channel after a reconnect; what was published in between is caught up below.
    this.subscriber = subscriberClient(options)
    this.sharded = this.subscriber instanceof Cluster
    this.subscriber.on(this.sharded ? 'smessage' : 'message', (channel: string, message: string) => { this.onMessage(channel, message) })
    // Checked on every (re)connect: a failover may land on an older server.
    this.command.on('ready', () => {
      this.checkVersion().catch((err: Error) => {
        if (this.unsupported !== undefined) options.log.warn({ action: 'broker.redis.unsupported', err: err.message }, err.message)
      })
      // One server's clock: a cluster's masters each keep their own, and a publish runs on
      // whichever owns its slot, so there a publish carries no deadline (README, Redis Cluster).
      if (!this.sharded) this.clock = this.measureClock().catch(() => {})
    })
    if (this.sharded) {
      // After every (re)subscription of the sharded subscribers: the first one, when nothing
      // is watched yet, costs nothing.
      this.subscriber.on('subscribersReady', () => { void this.catchUp() })
    } else {
      let connectedOnce = false
      this.subscriber.on('ready', () => {
        if (connectedOnce) void this.catchUp()
        connectedOnce = true
      })
    }
    for (const connection of [this.command, this.subscriber]) {
      connection.on('error', (err: Error) => { options.log.warn({ action: 'broker.redis.error', err: err.message }, 'redis connection error') })
    }
    // A stalled subscriber would stop live delivery without a word: reset, it resubscribes and
    // the catch-up above reads back what it missed.
    this.stopProbes = [this.command, this.subscriber].map((connection) => resetOnStall(connection, options.commandTimeoutMs, options.log))
  }

  /**
   * Resolves true once both connections are ready, or false after `timeoutMs`. Publishing
   * before that answers BROKER_UNAVAILABLE rather than queueing.
   */
  async connected (timeoutMs: number): Promise<boolean> {
    return await untilReady([this.command, this.subscriber], timeoutMs)
  }

  /**
   * Rejects with one line when the server is older than Redis 6.2: history reads rely on
   * exclusive XRANGE ranges (`(id`), which older servers refuse.
   */
  async checkVersion (): Promise<void> {
    this.unsupported = await serverProblem(this.command)
    if (this.unsupported !== undefined) throw new Error(this.unsupported)
  }

  /**
   * Redis's clock against ours, for publish deadlines. Redis read its clock before our reply
   * came, so `TIME - received` errs low: a deadline errs early, refusing at worst a publish its
   * caller would still have waited for (a 503 it retries), never letting one through that its
   * caller was told had failed. Ours is the monotonic clock, so a step of the wall clock here
   * moves nothing; a step of Redis's is met in `publish`.
   */
  private async measureClock (): Promise<void> {
    const [seconds, micros] = await this.command.time()
    const received = performance.now()
    this.clockOffsetMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - received - 1
  }

  async publish (envelope: EventEnvelope): Promise<StoredEvent> {
    if (this.unsupported !== undefined) throw new Error(this.unsupported)
    const stream = streamOf(envelope.target)
    const keys = this.keys(envelope.tenantId, stream)
    // A connection-targeted event is published live only: no offset, no log, never replayed.
    if (!isPositioned(stream)) {
      const message = JSON.stringify({ e: envelope })
      await this.guard(this.sharded ? (this.command as Cluster).spublish(keys.live, message) : this.command.publish(keys.live, message))
      return { ...envelope, stream, offset: 0, epoch: '' }
    }
    // The first publishes after a connect wait for the clock, so none goes out without a deadline.
    if (this.clockOffsetMs === undefined) await this.clock
    for (let attempt = 1; ; attempt++) {
      const sentAt = performance.now()
      const deadline = this.clockOffsetMs === undefined ? '' : String(Math.floor(sentAt + this.clockOffsetMs + this.options.commandTimeoutMs))
      const [offset, epoch] = await this.guard(this.command.tcPublish(
        keys.meta, keys.log, JSON.stringify(envelope), randomUUID(), this.options.historySize,
        this.options.historyTtlMs, keys.live, this.options.historyMetaTtlMs, this.sharded ? 'SPUBLISH' : 'PUBLISH', deadline
      ))
      if (offset !== 0) return { ...envelope, stream, offset, epoch }
      // Refused within our own timeout: not a stall but a clock that stepped (Redis's, or the
      // measurement went stale). Nothing was stored, so measuring again and retrying once is safe.
      if (attempt > 1 || performance.now() - sentAt >= this.options.commandTimeoutMs) throw new Error('the publish reached Redis after its deadline and was not stored')
      this.options.log.warn({ action: 'broker.redis.clock_stepped' }, 'a publish was refused for a deadline not yet due here; measuring the Redis clock again')
      this.clock = this.measureClock().catch(() => {})
      await this.clock
    }
  }

  async read (tenantId: string, stream: string, after: number | undefined, limit: number): Promise<StreamRead> {
    if (this.unsupported !== undefined) throw new Error(this.unsupported)
    const read = await this.readLog(tenantId, stream, after, limit)
    const watch = this.watches.get(this.channel(tenantId, stream))
    if (watch !== undefined && watch.last === undefined) this.locate(watch, read)
    return read
  }

  private async readLog (tenantId: string, stream: string, after: number | undefined, limit: number): Promise<StreamRead> {
    const keys = this.keys(tenantId, stream)
    const [epoch, latest, oldest, entries] = await this.guard(this.command.tcRead(
      keys.meta, keys.log, randomUUID(), after === undefined ? '' : String(after), limit,
      this.options.historyTtlMs, this.options.historyMetaTtlMs
    ))
    const events = entries.map(([id, fields]) => {
      const envelope = JSON.parse(fields[1] as string) as EventEnvelope
      return { ...envelope, stream, offset: Number(id.slice(0, id.indexOf('-'))), epoch }
    })
    return { epoch, latest: Number(latest), oldest: Number(oldest), events }
  }

  onDelivery (listener: DeliveryListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  onGap (listener: GapListener): () => void {
    this.gapListeners.add(listener)
    return () => { this.gapListeners.delete(listener) }
  }

  async watch (tenantId: string, stream: string): Promise<void> {
    const channel = this.channel(tenantId, stream)
    let watch = this.watches.get(channel)
    if (watch === undefined) {
      // Once subscribed, the watch reads its own position: that read goes out on the command
      // connection before any caller's read, so it is at or below every position a socket
      // attaches at. Should it fail, the caller's read locates the watch instead.
      const subscribed = this.subscribe(channel).then(() => {
        this.read(tenantId, stream, undefined, 0).catch(() => {})
      })
      watch = { tenantId, stream, count: 0, subscribed, last: undefined, pending: [], stale: false, recent: new Map(), diverged: false }
      this.watches.set(channel, watch)
    }
    watch.count++
    const timeoutMs = this.options.watchTimeoutMs ?? this.options.commandTimeoutMs
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error('redis did not confirm the subscription in time')) }, timeoutMs)
    })
    try {
      await Promise.race([watch.subscribed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  unwatch (tenantId: string, stream: string): void {
    const channel = this.channel(tenantId, stream)
    const watch = this.watches.get(channel)
    if (watch === undefined || --watch.count > 0) return
    this.watches.delete(channel)
    const unsubscribed = this.sharded ? (this.subscriber as Cluster).sunsubscribe(channel) : this.subscriber.unsubscribe(channel)
    unsubscribed.catch(() => {})
  }

  /** Resolves once Redis confirmed the subscription (SSUBSCRIBE on the slot's node on a cluster). */
  private async subscribe (channel: string): Promise<void> {
    if (this.sharded) await (this.subscriber as Cluster).ssubscribe(channel)
    else await this.subscriber.subscribe(channel)
  }

  ready (): boolean {
    return !this.closed && this.unsupported === undefined && this.command.status === 'ready' && this.subscriber.status === 'ready'
  }

  /** Redis holds the history; counting it would mean scanning every stream. */
  heldCount (): undefined {
    return undefined
  }

  async close (): Promise<void> {
    this.closed = true
    this.listeners.clear()
    this.gapListeners.clear()
    this.watches.clear()
    for (const stop of this.stopProbes) stop()
    closeClient(this.command)
    closeClient(this.subscriber)
  }

  /** A command that timed out resets its connection at once: /ready turns false meanwhile. */
  private async guard<T> (command: Promise<T>): Promise<T> {
    try {
      return await command
    } catch (err) {
      if (isTimeout(err)) reset(this.command, this.options.log)
      throw err
    }
  }

  private onMessage (channel: string, message: string): void {
    const watch = this.watches.get(channel)
    if (watch === undefined) return
    const parsed = JSON.parse(message) as { offset?: number, epoch?: string, e: EventEnvelope }
    if (parsed.offset === undefined || parsed.epoch === undefined) {
      this.accept(watch, { ...parsed.e, stream: watch.stream, offset: 0, epoch: '' })
      return
    }
    this.ingest(watch, { ...parsed.e, stream: watch.stream, offset: parsed.offset, epoch: parsed.epoch })
  }

  /**
   * Compares a live event with the watch's position: delivers it, or starts filling the gap it
   * reveals, or queues it behind a fill or until the position is known.
   */
  private ingest (watch: Watch, event: StoredEvent): void {
    const last = watch.last
    if (watch.pending !== undefined || last === undefined) {
      (watch.pending ??= []).push(event)
      return
    }
    if ((last.epoch ?? event.epoch) === event.epoch && event.offset > last.offset + 1) {
      watch.pending = [event]
      void this.fill(watch)
      return
    }
    this.accept(watch, event)
  }

  /** Delivers one event unless it was already delivered; an epoch change is a gap. */
  private accept (watch: Watch, event: StoredEvent): void {
    if (event.offset === 0) {
      this.emit(event)
      return
    }
    const last = watch.last
    if (last !== undefined && (last.epoch ?? event.epoch) === event.epoch && event.offset <= last.offset) {
      const seen = watch.recent.get(event.offset)
      if (seen !== undefined && seen !== event.id) void this.diverge(watch, event.epoch)
      return
    }
    if (last?.epoch !== undefined && last.epoch !== event.epoch) this.gap(watch)
    watch.last = { epoch: event.epoch, offset: event.offset }
    watch.recent.set(event.offset, event.id)
    if (watch.recent.size > RECENT_IDS) watch.recent.delete(watch.recent.keys().next().value as number)
    this.emit(event)
  }

  private emit (event: StoredEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (err) {
        this.options.onListenerError(err)
      }
    }
  }

  /**
   * Reads what this instance missed after its last delivered position, delivers it in order,
   * then the live messages that queued meanwhile. If the log no longer holds the missing
   * range, the stream's sockets are told to reconnect and resume instead.
   */
  private async fill (watch: Watch): Promise<void> {
    const last = watch.last as Position
    // Received before the read below is sent, so published before it: the log holds it, unless
    // a failover lost it. Messages that arrive during the read may be newer than the read.
    const revealing = watch.pending?.[0]
    try {
      const read = await this.readLog(watch.tenantId, watch.stream, last.offset, this.options.historySize)
      // Attached while the stream was empty: the live message that revealed the gap names the epoch.
      const epoch = last.epoch ?? watch.pending?.[0]?.epoch ?? read.epoch
      if (revealing !== undefined && revealing.epoch === read.epoch && revealing.offset > read.latest) {
        // The log ends before an offset that was delivered live: a failover promoted a replica
        // without it. Reading again would find the same until the stream's offsets catch up, and
        // then another event under that offset: the stream starts a new epoch (see diverge).
        void this.diverge(watch, read.epoch)
        return
      }
      if (read.epoch !== epoch || read.oldest > last.offset + 1) {
        this.gap(watch)
        // The stream's sockets were closed; a socket attaching now reads past this position.
        watch.last = { epoch: read.epoch, offset: read.latest }
      } else {
        for (const event of read.events) this.accept(watch, event)
      }
    } catch (err) {
      this.options.log.warn({ action: 'broker.redis.gap_fill_failed', stream: watch.stream, err: (err as Error).message }, 'could not fill a delivery gap')
      this.gap(watch)
      // The sockets were told; delivery carries on from the next live message, without
      // retrying the fill for every message while Redis refuses reads.
      const next = watch.pending?.[0]
      if (next !== undefined) watch.last = { epoch: next.epoch, offset: next.offset - 1 }
    }
    this.release(watch)
  }

  /**
   * An offset this instance delivered now names another event: a failover promoted a replica
   * that had not received the last events (replication is asynchronous), and the stream goes
   * on from the replica's offsets. Those offsets cannot be told from the lost ones, so the
   * stream starts a new epoch first, and only then are its sockets told (4008 STREAM_GAP):
   * resuming, they find the new epoch and are told `recovered: false`, never handed the new
   * events under offsets they think they saw. Live messages wait until the watch has re-read.
   */
  private async diverge (watch: Watch, epoch: string): Promise<void> {
    if (watch.diverged) return
    watch.diverged = true
    watch.last = undefined
    watch.pending = []
    watch.recent.clear()
    this.options.log.warn({ action: 'broker.redis.diverged', tenantId: watch.tenantId, stream: watch.stream }, 'an offset was rewritten (a failover lost acknowledged events); starting a new epoch')
    const keys = this.keys(watch.tenantId, watch.stream)
    const channel = this.channel(watch.tenantId, watch.stream)
    for (;;) {
      try {
        await this.guard(this.command.tcReepoch(keys.meta, epoch, randomUUID()))
        const read = await this.readLog(watch.tenantId, watch.stream, undefined, 0)
        if (this.watches.get(channel) !== watch) return
        // Messages of the old epoch that queued meanwhile are in the log under the new one.
        watch.pending = (watch.pending ?? []).filter((queued) => queued.epoch === read.epoch)
        watch.diverged = false
        this.gap(watch)
        this.locate(watch, read)
        return
      } catch (err) {
        this.options.log.warn({ action: 'broker.redis.diverge_failed', stream: watch.stream, err: (err as Error).message }, 'could not start the new epoch; retrying')
        await new Promise((resolve) => setTimeout(resolve, this.options.commandTimeoutMs))
        if (this.watches.get(channel) !== watch || this.closed) return
        // Bounded while Redis refuses: the watch re-reads everything it needs afterwards.
        watch.pending = []
      }
    }
  }

  /** The watch's position is now known: the live messages queued meanwhile are compared with it. */
  private locate (watch: Watch, read: StreamRead): void {
    watch.last = positionOf(read)
    this.release(watch)
  }

  /** Ingests the live messages queued behind a fill or a locate, in arrival order. */
  private release (watch: Watch): void {
    if (watch.stale) {
      watch.stale = false
      void this.fill(watch)
      return
    }
    const pending = watch.pending ?? []
    watch.pending = undefined
    for (const [i, event] of pending.entries()) {
      this.ingest(watch, event)
      // A queued message revealed another gap: the rest waits behind that fill.
      if (watch.pending !== undefined) {
        (watch.pending as StoredEvent[]).push(...pending.slice(i + 1))
        return
      }
    }
  }

  /**
   * After the subscriber reconnected: anything published while it was away is read back, for
   * every watch. One whose position is not known yet, or whose fill is under way, reads the
   * log again once that is done.
   */
  private async catchUp (): Promise<void> {
    const behind: Watch[] = []
    for (const watch of this.watches.values()) {
      if (watch.pending !== undefined) {
        watch.stale = true
        continue
      }
      // Live messages queue behind the catch-up from now on, so nothing overtakes it.
      watch.pending = []
      behind.push(watch)
    }
    // Both connections come back on their own schedules; the reads below need the command one.
    await untilReady([this.command], this.options.watchTimeoutMs ?? this.options.commandTimeoutMs)
    // ioredis sends a cluster's resubscriptions without waiting for their answers: each is
    // subscribed again and confirmed here, so none of the reads below runs ahead of its
    // subscription (an event published in between would then wait for the next one). The
    // subscriber's channel list holds a duplicate per resubscription until the unwatch; Redis
    // ignores a repeated subscription.
    if (this.sharded) await Promise.allSettled([...this.watches.keys()].map(async (channel) => { await this.subscribe(channel) }))
    for (const watch of behind) await this.fill(watch)
  }

  private gap (watch: Watch): void {
    this.options.log.warn({ action: 'broker.redis.gap', tenantId: watch.tenantId, stream: watch.stream }, 'unrecoverable delivery gap; closing the stream\'s sockets')
    for (const listener of this.gapListeners) {
      try {
        listener(watch.tenantId, watch.stream)
      } catch (err) {
        this.options.onListenerError(err)
      }
    }
  }

  /** Every key and channel of one stream, named in this one place. */
  private keys (tenantId: string, stream: string): { meta: string, log: string, live: string } {
    return streamKeys(this.options.prefix, tenantId, stream)
  }

  private channel (tenantId: string, stream: string): string {
    return this.keys(tenantId, stream).live
  }
}

/**
 * Every key and the live channel of one stream. The hash tag `{<tenant>:<stream>}` puts them
 * in one hash slot, so the publish and read scripts (which touch the metadata and the log, and
 * publish on the channel) run on one node of a Redis Cluster, and different streams spread
 * across the slots. The names are the same on a standalone Redis. The tenant id is
 * URI-encoded, so it cannot contain a brace; everything up to the tag's closing brace is
 * common to the three names, so they share a slot whatever the stream name holds.
 */
export function streamKeys (prefix: string, tenantId: string, stream: string): { meta: string, log: string, live: string } {
  const tag = `{${encodeURIComponent(tenantId)}:${stream}}`
  return { meta: `${prefix}s:${tag}:meta`, log: `${prefix}s:${tag}:log`, live: `${prefix}live:${tag}` }
}

/** The oldest standalone server the broker runs on, as [major, minor]. */
const MINIMUM_VERSION = [6, 2] as const
/** The oldest cluster node: sharded pub/sub (SSUBSCRIBE, SPUBLISH) came with Redis 7.0. */
const MINIMUM_CLUSTER_VERSION = [7, 0] as const

/** Why a server (its `INFO server` text) cannot run the broker, or undefined when it can. */
export function versionProblem (info: string, address: string, cluster = false): string | undefined {
  const minimum = cluster ? MINIMUM_CLUSTER_VERSION : MINIMUM_VERSION
  const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown'
  const [major = 0, minor = 0] = version.split('.').map(Number)
  if (major > minimum[0] || (major === minimum[0] && minor >= minimum[1])) return undefined
  return cluster
    ? `Redis ${version} at ${address} is too old: tenantcast on a Redis Cluster needs Redis ${minimum.join('.')} or newer on every node (live delivery uses sharded pub/sub); upgrade Redis or unset REDIS_CLUSTER_NODES`
    : `Redis ${version} at ${address} is too old: tenantcast needs Redis ${minimum.join('.')} or newer (history reads use exclusive XRANGE ranges); upgrade Redis or unset REDIS_URL`
}

/**
 * Why the connected server cannot run the broker, or undefined when it can. On a cluster every
 * master the client knows is asked, as a failover may land a slot on any of them.
 */
export async function serverProblem (client: RedisClient): Promise<string | undefined> {
  if (!(client instanceof Cluster)) return versionProblem(await client.info('server'), `${client.options.host ?? ''}:${client.options.port ?? ''}`)
  for (const node of client.nodes('master')) {
    const problem = versionProblem(await node.info('server'), `${node.options.host ?? ''}:${node.options.port ?? ''}`, true)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** Where a read leaves a stream: its latest offset, in no epoch yet while it is empty. */
function positionOf (read: StreamRead): Position {
  return { epoch: read.latest === 0 ? undefined : read.epoch, offset: read.latest }
}

/**
 * Options of a connection for commands that must answer or fail within `commandTimeoutMs`:
 * no offline queue, no retry, and never a resend after a reconnect of what may already have
 * been refused to the caller.
 */
export function commandConnection (commandTimeoutMs: number): RedisOptions {
  return { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: commandTimeoutMs }
}

/**
 * Closes a connection for good. A cluster client that ioredis still has a slot refresh or a
 * sharded-subscriber retry scheduled for would otherwise reconnect after `disconnect()` (the
 * retry's failure asks it to), and retry for ever once the nodes are gone: it is told never to
 * reconnect first.
 *
 * ioredis (5.11) also re-arms its periodic slot refresh whenever a refresh that was in flight
 * at `disconnect()` settles, and from then on refreshes an empty node list every
 * `slotsRefreshInterval` for the life of the process. A callback queued behind that refresh
 * runs after the re-arm and clears it; with no refresh in flight it starts one over the
 * already emptied pool, which fails at once.
 */
export function closeClient (client: RedisClient): void {
  if (!(client instanceof Cluster)) {
    client.disconnect()
    return
  }
  client.options.clusterRetryStrategy = () => null
  client.disconnect()
  client.refreshSlotsCache(() => { (client as unknown as { clearNodesRefreshInterval: () => void }).clearNodesRefreshInterval() })
}

/** `host:port` seeds as ioredis Cluster nodes. */
function seeds (nodes: string[]): Array<{ host: string, port: number }> {
  return nodes.map((node) => {
    const at = node.lastIndexOf(':')
    return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
  })
}

/** What every cluster client shares: slot maps refreshed often, so a failover is followed within about a second. */
const CLUSTER: ClusterOptions = { slotsRefreshInterval: 1000, slotsRefreshTimeout: 1000 }

/**
 * A command connection (see `commandConnection`) to the target. On a cluster, a command whose
 * connection closed under it may have run, so it is not retried on another node either
 * (`retryDelayOnFailover: 0`): the caller answers 503. Redirections (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN) are retried, as the command did not run.
 */
export function commandClient (target: RedisTarget, commandTimeoutMs: number): RedisClient {
  if (target.clusterNodes === undefined) return new Redis(target.url as string, commandConnection(commandTimeoutMs))
  return new Cluster(seeds(target.clusterNodes), {
    ...CLUSTER,
    enableOfflineQueue: false,
    retryDelayOnFailover: 0,
    redisOptions: { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: commandTimeoutMs }
  })
}

/**
 * A subscriber connection to the target. It queues (re)subscriptions while reconnecting and
 * subscribes again after a reconnect. On a cluster it keeps one sharded subscriber per master
 * (SSUBSCRIBE goes to the node that owns the channel's slot), and plain SUBSCRIBE on one node.
 */
export function subscriberClient (target: RedisTarget): RedisClient {
  if (target.clusterNodes === undefined) return new Redis(target.url as string, { maxRetriesPerRequest: null })
  return new Cluster(seeds(target.clusterNodes), { ...CLUSTER, shardedSubscribers: true, redisOptions: { maxRetriesPerRequest: null } })
}

function isTimeout (err: unknown): boolean {
  return (err as Error | undefined)?.message === 'Command timed out'
}

/**
 * Drops a stalled connection and reconnects. A paused server discards a closed client's
 * postponed commands; a stopped one may still run what sits in its socket buffer when it
 * resumes, which is why a publish carries a deadline (PUBLISH above).
 */
function reset (connection: RedisClient, log: { warn (fields: object, message: string): void }): void {
  if (connection.status !== 'ready') return
  log.warn({ action: 'redis.stalled' }, 'redis did not answer in time; resetting the connection')
  connection.disconnect(true)
}

/**
 * Pings a ready connection every `timeoutMs` and resets it when a ping goes unanswered that
 * long: a Redis that stops answering (CLIENT PAUSE, a partition that sends no reset) is noticed
 * even when no request is waiting on it. Returns the stop function.
 */
export function resetOnStall (connection: RedisClient, timeoutMs: number, log: { warn (fields: object, message: string): void }): () => void {
  let probing = false
  const timer = setInterval(() => {
    if (probing || connection.status !== 'ready') return
    probing = true
    let deadline: NodeJS.Timeout | undefined
    const stalled = new Promise<'stalled'>((resolve) => { deadline = setTimeout(() => { resolve('stalled') }, timeoutMs) })
    Promise.race([connection.ping().catch(() => 'failed'), stalled]).then((outcome) => {
      if (outcome === 'stalled') reset(connection, log)
    }, () => {}).finally(() => {
      clearTimeout(deadline)
      probing = false
    })
  }, timeoutMs)
  timer.unref()
  return () => { clearInterval(timer) }
}

/**
 * Whether a connection can take commands now. A cluster client is ready once it has the slot
 * map, but it opens its node connections lazily, and one that fails fast refuses a command
 * while its node's connection is still opening: it is ready once every master's is open (this
 * opens the ones not yet asked for).
 */
function isReady (connection: RedisClient): boolean {
  if (connection.status !== 'ready') return false
  if (!(connection instanceof Cluster)) return true
  let ready = true
  for (const node of connection.nodes('master')) {
    if (node.status === 'wait') node.connect().catch(() => {})
    if (node.status !== 'ready') ready = false
  }
  return ready
}

/** Resolves true once every connection reports ready, or false after `timeoutMs`. */
export async function untilReady (connections: RedisClient[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (connections.some((c) => !isReady(c))) {
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}
