import { globMatcher, isValidChannel } from './channels.js'
import { ErrorCode } from './error-codes.js'
import type { Target } from './events.js'
import type { Principal } from './principal.js'
import { tenantKey } from './tenant-key.js'

/**
 * Streams and positions. Every positioned event belongs to exactly one stream, and every
 * socket attached to a stream is sent all of that stream's offsets, n, n+1, … with no skip:
 * - `tenant`: events for the whole tenant, attached by every socket of the tenant;
 * - `user:<id>`: one user's events, attached by every socket (tab) of that user;
 * - `channel:<name>`: a channel's events, attached by its members.
 * Connection-targeted events are not in any of them: they carry no position, are never
 * stored and never replayed (`CONNECTION_STREAM` names their live-delivery path only).
 * Stream names are tenant-local: the broker prefixes them with the tenant internally.
 */
export const TENANT_STREAM = 'tenant'

/** The unpositioned path of connection-targeted events: offset 0, no epoch, no history. */
export const CONNECTION_STREAM = 'connection'

export function channelStream (channel: string): string {
  return `channel:${channel}`
}

export function userStream (userId: string): string {
  return `user:${userId}`
}

/** The channel a stream belongs to, or undefined for any other stream. */
export function channelOf (stream: string): string | undefined {
  return stream.startsWith('channel:') ? stream.slice('channel:'.length) : undefined
}

/** The user a stream belongs to, or undefined for any other stream. */
export function userOf (stream: string): string | undefined {
  return stream.startsWith('user:') ? stream.slice('user:'.length) : undefined
}

export function streamOf (target: Target): string {
  switch (target.kind) {
    case 'tenant': return TENANT_STREAM
    case 'user': return userStream(target.userId)
    case 'channel': return channelStream(target.channel)
    case 'client': return CONNECTION_STREAM
    // Role-targeted events (escalations) are unpositioned: a positioned event in the tenant
    // stream that only some sockets get would be a gap for the others.
    case 'role': return CONNECTION_STREAM
  }
}

/** Whether events of the stream have offsets (all but connection-targeted ones). */
export function isPositioned (stream: string): boolean {
  return stream !== CONNECTION_STREAM
}

/** Internal key of a stream: the tenant prefix makes every stream name tenant-local. */
export function streamKey (tenantId: string, stream: string): string {
  return tenantKey(tenantId, stream)
}

/** A place in a stream: the last offset a client saw, in the epoch it saw it. */
export interface Position {
  epoch: string
  offset: number
}

/** Parses `<epoch>:<offset>`, the wire form of a position. Undefined when malformed. */
export function parsePosition (text: string): Position | undefined {
  const at = text.lastIndexOf(':')
  if (at <= 0) return undefined
  const offset = Number(text.slice(at + 1))
  if (!Number.isSafeInteger(offset) || offset < 0) return undefined
  return { epoch: text.slice(0, at), offset }
}

export function formatPosition (position: Position): string {
  return `${position.epoch}:${position.offset}`
}

/**
 * Whether a stream's held events cover everything after `since`. Within one epoch: `since` is
 * no later than the latest and the event after it is still held. Offset 0 means "nothing
 * seen", so it is covered in any epoch while the stream still holds its first event: an
 * empty stream reports a provisional epoch that its first publish may replace, and a client
 * that attached it then has missed nothing of the new one.
 */
export function covers (read: { epoch: string, latest: number, oldest: number }, since: Position): boolean {
  if (since.offset === 0) return read.oldest === 1 || (since.epoch === read.epoch && read.latest === 0)
  return since.epoch === read.epoch && since.offset <= read.latest && since.offset + 1 >= read.oldest
}

/**
 * Where a client resumes from, as it comes on the wire: one tenant-stream position
 * (`<epoch>:<offset>`, the original form) or a map from stream name to position.
 */
export type SinceInput = string | Readonly<Record<string, string>>

/** Most entries a `since` map may hold: a connection resumes its tenant and its user stream. */
export const MAX_SINCE_ENTRIES = 8

/**
 * Parses a `since` into positions by stream. A string is the tenant stream's position. Fails,
 * with the reason, when a position is malformed, when a map names more than MAX_SINCE_ENTRIES
 * streams, or names a stream `accepts` refuses (channels resume with `subscribe {since}` or
 * `resume {stream}`; connection-targeted events never).
 */
export function parseSince (input: SinceInput, accepts: (stream: string) => boolean = () => true): Map<string, Position> | string {
  if (typeof input === 'string') {
    const position = parsePosition(input)
    return position === undefined ? 'since must be <epoch>:<offset>' : new Map([[TENANT_STREAM, position]])
  }
  const entries = Object.entries(input)
  if (entries.length > MAX_SINCE_ENTRIES) return `a since map names at most ${MAX_SINCE_ENTRIES} streams`
  const positions = new Map<string, Position>()
  for (const [stream, text] of entries) {
    if (!accepts(stream)) return `since cannot name the stream ${JSON.stringify(stream)} at connect; channels resume with subscribe {since}`
    const position = typeof text === 'string' ? parsePosition(text) : undefined
    if (position === undefined) return `since.${stream} must be <epoch>:<offset>`
    positions.set(stream, position)
  }
  return positions
}

/** Streams a connect-time `since` map may name: the tenant's and a user's. */
export function resumableAtConnect (stream: string): boolean {
  return stream === TENANT_STREAM || (userOf(stream) ?? '') !== ''
}

/**
 * Whether a principal may read a stream's history, or the error code that refuses it: the
 * tenant stream always; a user stream only its own; a channel only one its `channels` claim
 * allows. Another tenant's streams cannot even be named: every name is tenant-local.
 */
export function streamAccess (principal: Pick<Principal, 'userId' | 'channels'>, stream: string): ErrorCode | undefined {
  if (stream === TENANT_STREAM) return undefined
  const user = userOf(stream)
  if (user !== undefined) return user === principal.userId ? undefined : ErrorCode.STREAM_FORBIDDEN
  const channel = channelOf(stream)
  if (channel === undefined || !isValidChannel(channel)) return ErrorCode.UNKNOWN_STREAM
  return globMatcher(principal.channels)(channel) ? undefined : ErrorCode.CHANNEL_FORBIDDEN
}
