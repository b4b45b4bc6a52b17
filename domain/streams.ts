import { tenantKey } from './tenant-key.js'
import type { Target } from './events.js'

/**
 * Streams and positions. The tenant stream carries tenant-wide, user-targeted and
 * client-targeted events; each channel has its own stream. Stream names are tenant-local:
 * the broker prefixes them with the tenant internally.
 */
export const TENANT_STREAM = 'tenant'

export function channelStream (channel: string): string {
  return `channel:${channel}`
}

/** The channel a stream belongs to, or undefined for the tenant stream. */
export function channelOf (stream: string): string | undefined {
  return stream.startsWith('channel:') ? stream.slice('channel:'.length) : undefined
}

export function streamOf (target: Target): string {
  return target.kind === 'channel' ? channelStream(target.channel) : TENANT_STREAM
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
