import type { StreamRead } from './broker.js'
import { CloseCode } from './close-codes.js'
import { ErrorCode } from './error-codes.js'
import type { StoredEvent } from './events.js'
import { errorFrame, eventFrame, recoveredFrame, type Ref } from './frames.js'
import type { Client } from './hub.js'
import type { SessionContext } from './session.js'
import { CONNECTION_STREAM, TENANT_STREAM, channelOf, covers, parsePosition, userOf, userStream, type Position } from './streams.js'

/**
 * The hold/replay/floor protocol: how one socket attaches a stream (its tenant and user
 * streams at auth, a channel on subscribe, any of them again on `resume`) so that it is sent
 * every offset of the stream, in order, with no skip, although live delivery and the history
 * read race each other.
 *
 * 1. Hold: live events for the stream are queued in `client.held` (by the hub) from before the
 *    broker is asked to deliver the stream here.
 * 2. Read: the broker delivers the stream live (`watch`), then the history is read.
 * 3. Replay: the held events the client asked for after its `since` go out, up to the read's
 *    latest, then `recovered`. A replay on a live connection (a heal) may re-send offsets
 *    this socket was already sent: a client recognises them by offset and drops them.
 * 4. Release: the held events above the read's latest go out, and the queue is dropped in the
 *    same turn, so the hub sends live events itself from then on.
 * 5. Floor: `client.floors` keeps the offset the socket was sent through. With Redis a live
 *    message can trail the history read that included it; the hub drops live events at or
 *    below the floor, and the first one above it clears it.
 *
 * Replayed frames carry `replayed: true` (released held events are live ones and do not), so a
 * client can tell history from news. Replayed and released frames go out as the socket drains (`sendPaced`), so a long replay
 * never queues more than about `replayPaceBytes` unsent.
 */
export class StreamAttachments {
  /** Per attached stream, the position its last attach read, for `authenticated` on a refresh. */
  private readonly reads = new Map<string, Position>()
  /** Streams this session asked the broker to deliver live. */
  private readonly watching = new Set<string>()
  /** Replay bytes sent since the last wait for drain. */
  private unpaced = 0

  constructor (private readonly session: SessionContext) {}

  /** Step 1: live events of the stream wait in the client's held queue from now on. */
  hold (stream: string): void {
    this.session.client.held.set(stream, [])
  }

  /** Where each attached stream stood when it was last read, for `authenticated` on a refresh. */
  positions (): Record<string, Position> {
    return Object.fromEntries(this.reads)
  }

  /**
   * At authentication: connection-targeted events are delivered here from now on, and the
   * tenant and user streams (both held since the client entered the hub) are read. Undefined
   * when the socket closed meanwhile.
   */
  async readAtAuth (since: ReadonlyMap<string, Position>): Promise<Map<string, StreamRead> | undefined> {
    const client = this.session.client
    if (!await this.watch(CONNECTION_STREAM)) return undefined
    const reads = new Map<string, StreamRead>()
    for (const stream of [TENANT_STREAM, userStream(client.userId)]) {
      const read = await this.read(stream, since.get(stream))
      if (read === undefined) return undefined
      reads.set(stream, read)
    }
    return reads
  }

  /**
   * `resume {stream, since}` on a live connection: re-sends the stream's events after `since`
   * (a client that saw a jump heals this way, without reconnecting), then `recovered`. Only a
   * stream this socket is attached to: its tenant stream, its own user stream, a joined channel.
   */
  async resume (stream: string, sinceText: string, ref: Ref): Promise<void> {
    const since = this.since(sinceText, ref)
    if (since === null || since === undefined) return
    if (!this.refuseResume(stream, ref)) return
    this.hold(stream)
    const read = await this.read(stream, since)
    if (read === undefined) return
    await this.attach(stream, since, read, ref)
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
      if (!await this.watch(stream)) return undefined
      read = await this.session.options.broker.read(tenantId, stream, since?.offset, this.session.options.replayLimit)
    } catch (err) {
      this.failed(stream, err)
      return undefined
    }
    return this.session.isOpen() ? read : undefined
  }

  /**
   * Steps 3 to 5: replays what the client missed after `since` (if it can), reports the
   * recovery, then releases the held events above the read. Both go out as the socket
   * drains; live events that arrive meanwhile join the held queue, so order holds and no
   * offset is skipped.
   */
  async attach (stream: string, since: Position | undefined, read: StreamRead, ref: Ref): Promise<void> {
    const client = this.session.client
    const ceiling = read.latest
    let sentThrough = ceiling
    if (since !== undefined) {
      if (covers(read, since)) {
        let count = 0
        let to = since.offset
        for (const event of read.events) {
          if (event.offset > ceiling) break
          to = event.offset
          if (!this.entitled(event)) continue
          if (!await this.sendPaced(client, eventFrame(event, true))) return
          count++
        }
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
    this.reads.set(stream, { epoch: read.epoch, offset: read.latest })
    this.session.options.hub.attached(client.tenantId, stream, { epoch: read.epoch, offset: read.latest })
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
    this.reads.delete(stream)
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

  /** False, after answering the request, when this socket may not resume the stream. */
  private refuseResume (stream: string, ref: Ref): boolean {
    const client = this.session.client
    const user = userOf(stream)
    const channel = channelOf(stream)
    if (stream === TENANT_STREAM || user === client.userId) return true
    if (user !== undefined) {
      this.session.reply(errorFrame(ErrorCode.STREAM_FORBIDDEN, 'a connection resumes its own user stream only', ref))
      return false
    }
    if (channel !== undefined && client.channels.has(channel)) return true
    if (channel !== undefined) {
      this.session.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'subscribe to the channel to resume its stream', ref))
      return false
    }
    this.session.reply(errorFrame(ErrorCode.UNKNOWN_STREAM, 'streams are tenant, user:<id> and channel:<name>; connection-targeted events are never replayed', ref))
    return false
  }

  /** Makes sure the broker delivers the stream live here; false when the socket closed meanwhile. */
  private async watch (stream: string): Promise<boolean> {
    if (!this.watching.has(stream)) {
      this.watching.add(stream)
      try {
        await this.session.options.broker.watch(this.session.client.tenantId, stream)
      } catch (err) {
        this.failed(stream, err)
        return false
      }
    }
    return this.session.isOpen()
  }

  private failed (stream: string, err: unknown): void {
    this.session.options.log.error({ action: 'websocket.resume.failed', stream, err, ...this.session.identity() }, 'history read failed')
    this.session.close(CloseCode.TRY_AGAIN, 'BROKER_UNAVAILABLE')
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
      case 'role': return client.roles?.includes(event.target.role) === true
    }
  }
}
