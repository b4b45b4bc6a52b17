import type { StreamRead } from './broker.js'
import { CloseCode } from './close-codes.js'
import { ErrorCode } from './error-codes.js'
import type { StoredEvent } from './events.js'
import { errorFrame, eventFrame, recoveredFrame, type Ref } from './frames.js'
import type { Client } from './hub.js'
import type { SessionContext } from './session.js'
import { TENANT_STREAM, parsePosition, type Position } from './streams.js'

/**
 * The hold/replay/floor protocol: how one socket attaches a stream (its tenant stream at auth,
 * a channel on subscribe, again on `resume`) so that each event reaches it exactly once and in
 * order, although live delivery and the history read race each other.
 *
 * 1. Hold: live events for the stream are queued in `client.held` (by the hub) from before the
 *    broker is asked to deliver the stream here.
 * 2. Read: the broker delivers the stream live (`watch`), then the history is read.
 * 3. Replay: the events the client missed after its `since` go out, up to the ceiling (the
 *    read's latest, or what a previous attach already sent), then `recovered`.
 * 4. Release: the held events above the ceiling go out, and the queue is dropped in the same
 *    turn, so the hub sends live events itself from then on.
 * 5. Floor: `client.floors` keeps the offset the socket was sent through. With Redis a live
 *    message can trail the history read that included it; the hub drops live events at or
 *    below the floor, and the first one above it clears it.
 *
 * Replayed and released frames go out as the socket drains (`sendPaced`), so a long replay
 * never queues more than about `replayPaceBytes` unsent.
 */
export class StreamAttachments {
  /**
   * Per attached stream, the offset the socket's attachment starts at: every event above it
   * has been sent or is held. A later replay of the stream (`resume`) stops at it.
   */
  private readonly attachedAt = new Map<string, number>()
  /** The tenant stream's epoch as of the last read, for `authenticated` on a refresh. */
  private tenantEpoch = ''
  /** Streams this session asked the broker to deliver live. */
  private readonly watching = new Set<string>()
  /** Replay bytes sent since the last wait for drain. */
  private unpaced = 0

  constructor (private readonly session: SessionContext) {}

  /** Step 1: live events of the stream wait in the client's held queue from now on. */
  hold (stream: string): void {
    this.session.client.held.set(stream, [])
  }

  /** The tenant stream's position, as the socket's attachment holds it, for `authenticated` on a refresh. */
  tenantPosition (): Position {
    return { epoch: this.tenantEpoch, offset: this.attachedAt.get(TENANT_STREAM) ?? 0 }
  }

  /** Attaches the tenant stream at authentication; the read is what `authenticated` reports. */
  async readTenant (since: Position | undefined): Promise<StreamRead | undefined> {
    const read = await this.read(TENANT_STREAM, since)
    if (read !== undefined) this.tenantEpoch = read.epoch
    return read
  }

  /** `resume {since}` on a live connection: replays the tenant stream's events it missed before attaching. */
  async resume (sinceText: string, ref: Ref): Promise<void> {
    const since = this.since(sinceText, ref)
    if (since === null || since === undefined) return
    this.hold(TENANT_STREAM)
    const read = await this.read(TENANT_STREAM, since)
    if (read === undefined) return
    await this.attach(TENANT_STREAM, since, read, ref)
  }

  /**
   * Step 2: reads a stream for an attach, after making sure the broker delivers it live here:
   * a read made before that could miss an event published in between. On broker failure the
   * socket is closed so the client retries.
   */
  async read (stream: string, since: Position | undefined): Promise<StreamRead | undefined> {
    const tenantId = this.session.client.tenantId
    let read: StreamRead
    try {
      if (!this.watching.has(stream)) {
        this.watching.add(stream)
        await this.session.options.broker.watch(tenantId, stream)
      }
      if (!this.session.isOpen()) return undefined
      read = await this.session.options.broker.read(tenantId, stream, since?.offset, this.session.options.replayLimit)
    } catch (err) {
      this.session.options.log.error({ action: 'websocket.resume.failed', stream, err, ...this.session.identity() }, 'history read failed')
      this.session.close(CloseCode.TRY_AGAIN, 'BROKER_UNAVAILABLE')
      return undefined
    }
    return this.session.isOpen() ? read : undefined
  }

  /**
   * Steps 3 to 5: replays what the client missed after `since` (if it can), reports the
   * recovery, then releases the held events above everything already sent. Both go out as the
   * socket drains; live events that arrive meanwhile join the held queue, so order and
   * exactly-once still hold.
   */
  async attach (stream: string, since: Position | undefined, read: StreamRead, ref: Ref): Promise<void> {
    const client = this.session.client
    // Events above `attachedAt` already went out live; a replay stops there.
    const ceiling = this.attachedAt.get(stream) ?? read.latest
    let start = ceiling
    let sentThrough = ceiling
    if (since !== undefined) {
      const recoverable = since.epoch === read.epoch && since.offset <= read.latest && since.offset + 1 >= read.oldest
      if (recoverable) {
        let count = 0
        let to = Math.min(since.offset, ceiling)
        for (const event of read.events) {
          if (event.offset > ceiling) break
          to = event.offset
          if (!this.entitled(event)) continue
          if (!await this.sendPaced(client, eventFrame(event))) return
          count++
        }
        start = Math.min(since.offset, ceiling)
        this.session.reply(recoveredFrame({ recovered: true, stream, epoch: read.epoch, from: since.offset + 1, to, count }, ref))
      } else {
        this.session.reply(recoveredFrame({
          recovered: false,
          stream,
          epoch: read.epoch,
          oldest: { epoch: read.epoch, offset: read.oldest },
          latest: { epoch: read.epoch, offset: read.latest }
        }, ref))
      }
    }
    this.attachedAt.set(stream, start)
    const held = client.held.get(stream) ?? []
    // Emptied and deleted with no await in between: the hub holds for this stream until then.
    for (let event = held.shift(); event !== undefined; event = held.shift()) {
      if (event.offset <= ceiling) continue
      if (!await this.sendPaced(client, eventFrame(event))) return
      sentThrough = event.offset
    }
    client.held.delete(stream)
    client.floors.set(stream, sentThrough)
  }

  /** The socket leaves one stream (a channel it left): nothing of it is held, floored or watched any more. */
  detach (stream: string): void {
    const client = this.session.client
    client.held.delete(stream)
    client.floors.delete(stream)
    this.attachedAt.delete(stream)
    if (this.watching.delete(stream)) this.session.options.broker.unwatch(client.tenantId, stream)
  }

  /** The session ended: every stream it watched is released. */
  detachAll (): void {
    const client = this.session.client
    client.held.clear()
    for (const stream of this.watching) this.session.options.broker.unwatch(client.tenantId, stream)
    this.watching.clear()
  }

  /**
   * Parses a `since` position. A malformed one is answered with INVALID_POSITION and returns
   * null: the request it came with is refused whole, so it gets that one answer only.
   */
  since (text: string | undefined, ref: Ref): Position | undefined | null {
    if (text === undefined) return undefined
    const position = parsePosition(text)
    if (position !== undefined) return position
    this.session.reply(errorFrame(ErrorCode.INVALID_POSITION, 'since must be <epoch>:<offset>', ref))
    return null
  }

  /**
   * Sends one replayed frame through the hub's slow-consumer guard; every `replayPaceBytes`
   * it waits for the socket to drain. False when the socket is gone or was dropped.
   */
  private async sendPaced (client: Client, frame: string): Promise<boolean> {
    if (this.session.isClosed() || !this.session.options.hub.send(client, frame)) return false
    this.unpaced += frame.length
    if (this.unpaced < this.session.options.replayPaceBytes) return true
    this.unpaced = 0
    await this.session.options.connection.drained?.()
    return !this.session.isClosed()
  }

  /** Whether this connection may see a replayed event: the hub's live filter, for history. */
  private entitled (event: StoredEvent): boolean {
    const client = this.session.client
    switch (event.target.kind) {
      case 'tenant': return true
      case 'user': return event.target.userId === client.userId
      case 'client': return event.target.clientId === client.id
      case 'channel': return client.channels.has(event.target.channel)
    }
  }
}
