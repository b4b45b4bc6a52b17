import { isValidChannel, globMatcher } from './channels.js'
import { ErrorCode } from './error-codes.js'
import { checkEventData, isServerEventName, RESERVED_EVENT_NAMES } from './events.js'
import { errorFrame, membershipFrame, presenceFrame, publishedFrame, type Ref } from './frames.js'
import { PUBLISHER_ROLES, hasAnyRole } from './principal.js'
import type { SessionContext } from './session.js'
import type { StreamAttachments } from './session-streams.js'
import { channelStream, parsePosition } from './streams.js'

/**
 * One connection's channel membership: joining (each channel is a stream, attached through
 * StreamAttachments), leaving, the presence announcements to the other members, and client
 * publishing into a joined channel. The token's `channels` claim is the whole grant: a
 * refresh that narrows it leaves the channels it no longer allows.
 */
export class ChannelMembership {
  private readonly canPublish: (channel: string) => boolean
  private canJoin: (channel: string) => boolean = () => true

  constructor (private readonly session: SessionContext, private readonly streams: StreamAttachments) {
    const patterns = session.options.clientPublish
    this.canPublish = patterns === undefined ? () => false : globMatcher(patterns)
  }

  /** Sets the channels the token allows; on a refresh, channels it no longer allows are left at once. */
  grant (channels: readonly string[] | undefined): void {
    this.canJoin = globMatcher(channels)
    const client = this.session.client
    for (const channel of [...client.channels]) {
      if (!this.canJoin(channel)) this.leave(channel, membershipFrame('unsubscribed', channel, { reason: ErrorCode.CHANNEL_FORBIDDEN }))
    }
  }

  /**
   * `subscribe {channels}`: joins each channel in order, as one `subscribe` each, all under the
   * request's ref. Every channel gets exactly one answer, `subscribed` or an `error` naming it
   * in `channel`, so a client knows when the batch is done; replays and `recovered` follow
   * each channel's `subscribed`. One frame, one token of the frame rate limit.
   */
  async subscribeMany (entries: ReadonlyArray<{ channel: string, since?: string | undefined }>, ref: Ref): Promise<void> {
    for (const entry of entries) {
      if (!this.session.isOpen()) return
      await this.subscribe(entry.channel, entry.since, ref, false)
    }
  }

  async subscribe (channel: string, sinceText: string | undefined, ref: Ref, alias: boolean): Promise<void> {
    const client = this.session.client
    // Every refusal names its channel: in a batch it is how the client tells them apart.
    const tag = alias ? {} : { channel }
    const since = sinceText === undefined ? undefined : parsePosition(sinceText)
    if (sinceText !== undefined && since === undefined) {
      this.session.reply(errorFrame(ErrorCode.INVALID_POSITION, 'since must be <epoch>:<offset>', ref, tag))
      return
    }
    if (!isValidChannel(channel)) {
      this.session.reply(errorFrame(ErrorCode.INVALID_CHANNEL, 'a channel name is 1-128 characters of A-Z a-z 0-9 _ . : @ / -, starting with a letter or digit', ref, tag))
      return
    }
    if (!this.canJoin(channel)) {
      this.session.reply(errorFrame(ErrorCode.CHANNEL_FORBIDDEN, 'the token\'s channels claim does not allow this channel', ref, tag))
      return
    }
    const joined = alias ? 'room-joined' : 'subscribed'
    if (client.channels.has(channel)) {
      this.session.reply(membershipFrame(joined, channel, {}, ref))
      return
    }
    if (client.channels.size >= this.session.options.maxChannels) {
      this.session.reply(errorFrame(ErrorCode.CHANNEL_LIMIT, `a connection may join at most ${this.session.options.maxChannels} channels`, ref, tag))
      return
    }
    const stream = channelStream(channel)
    this.streams.hold(stream)
    if (!this.session.options.hub.join(client, channel)) return
    const read = await this.streams.read(stream, since)
    if (read === undefined) return
    this.session.reply(membershipFrame(joined, channel, { position: { epoch: read.epoch, offset: read.latest } }, ref))
    this.announce('user-joined', channel)
    await this.streams.attach(stream, since, read, ref)
  }

  unsubscribe (channel: string, ref: Ref, alias: boolean): void {
    if (!this.leave(channel, membershipFrame(alias ? 'room-left' : 'unsubscribed', channel, {}, ref))) {
      this.session.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'not subscribed to this channel', ref))
    }
  }

  async publish (channel: string, event: string, data: unknown, ref: Ref): Promise<void> {
    const client = this.session.client
    if (!this.canPublish(channel)) {
      this.session.reply(errorFrame(ErrorCode.PUBLISH_DISABLED, 'client publishing is not enabled for this channel', ref))
      return
    }
    if (!client.channels.has(channel)) {
      this.session.reply(errorFrame(ErrorCode.NOT_SUBSCRIBED, 'join the channel before publishing to it', ref))
      return
    }
    if (RESERVED_EVENT_NAMES.has(event)) {
      this.session.reply(errorFrame(ErrorCode.EVENT_NAME_RESERVED, `the event name ${event} is reserved by Socket.IO`, ref))
      return
    }
    if (isServerEventName(event) && !hasAnyRole(this.session.principal, PUBLISHER_ROLES)) {
      this.session.reply(errorFrame(ErrorCode.EVENT_FORBIDDEN, 'alarm:*, event:* and report:* events come from the server; publishing them needs the publisher or admin role', ref))
      return
    }
    const check = checkEventData(event, data)
    if (!check.ok) {
      this.session.reply(errorFrame(ErrorCode.INVALID_EVENT, check.message, ref))
      return
    }
    const cap = this.session.options.limits.queuedWrites ?? 0
    const queued = cap > 0 ? this.session.options.hub.backlog(client.tenantId) : 0
    if (queued > cap) {
      this.session.options.observer.rateLimited('backlog', client.tenantId)
      this.session.reply(errorFrame(ErrorCode.TENANT_BACKLOGGED, `${queued} socket writes are queued for this tenant, past ${cap}; retry later`, ref))
      return
    }
    try {
      const stored = await this.session.options.publish({
        tenantId: client.tenantId,
        event,
        data,
        target: { kind: 'channel', channel },
        from: { clientId: client.id, userId: client.userId }
      })
      this.session.reply(publishedFrame({ id: stored.id, stream: stored.stream, offset: stored.offset, epoch: stored.epoch }, ref))
    } catch (err) {
      if ((err as { code?: unknown }).code === ErrorCode.PAYLOAD_TOO_LARGE) {
        this.session.reply(errorFrame(ErrorCode.PAYLOAD_TOO_LARGE, (err as Error).message, ref))
        return
      }
      this.session.reply(errorFrame(ErrorCode.BROKER_UNAVAILABLE, 'the event could not be stored; retry', ref))
    }
  }

  /**
   * The session ended: the members of every channel it was in are told it left. Deferred: a
   * session the hub ends mid-delivery must not send (and maybe drop the next slow member, and
   * so on) from inside that delivery's loop.
   */
  leftAll (): void {
    const client = this.session.client
    if (client.channels.size > 0) queueMicrotask(() => { for (const channel of client.channels) this.announce('user-left', channel) })
  }

  /** Leaves a joined channel, tells the client with `frame` and the members; false when not joined. */
  private leave (channel: string, frame: string): boolean {
    const client = this.session.client
    if (!this.session.options.hub.leave(client, channel)) return false
    this.streams.detach(channelStream(channel))
    this.session.reply(frame)
    this.announce('user-left', channel)
    return true
  }

  private announce (type: 'user-joined' | 'user-left', channel: string): void {
    const client = this.session.client
    this.session.options.hub.sendToChannel(client.tenantId, channel, presenceFrame(type, channel, client.userId, client.id), client)
  }
}
