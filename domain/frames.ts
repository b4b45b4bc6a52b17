import type { StoredEvent } from './events.js'
import type { Position } from './streams.js'

/** Server-to-client frames. Each builder returns the serialized text, ready to send. */
export type Ref = string | number | undefined

/** Every `type` a server frame can have; docs/PROTOCOL.md documents each one (a test checks). */
export const SERVER_FRAME_TYPES = [
  'connected', 'authenticated', 'pong', 'error', 'event', 'subscribed', 'unsubscribed', 'room-joined', 'room-left',
  'user-joined', 'user-left', 'recovered', 'published', 'open-alarms', 'acked', 'resolved'
] as const

function withRef (frame: Record<string, unknown>, ref: Ref): string {
  if (ref !== undefined) frame.ref = ref
  return JSON.stringify(frame)
}

export function connectedFrame (clientId: string): string {
  return JSON.stringify({ type: 'connected', clientId })
}

/**
 * `position` is the tenant stream's (the original field); `positions` has one entry per
 * stream attached at auth: `tenant` and the user's own `user:<id>`.
 */
export function authenticatedFrame (fields: { userId: string, tenantId: string, clientId: string, connectionCount: number, position: Position, positions: Record<string, Position> }, ref?: Ref): string {
  return withRef({ type: 'authenticated', ...fields }, ref)
}

export function pongFrame (ref?: Ref): string {
  return withRef({ type: 'pong' }, ref)
}

/** `fields` name what the error is about where one request asks for many things (`channel` in a batch subscribe). */
export function errorFrame (code: string, message: string, ref?: Ref, fields: { channel?: string } = {}): string {
  return withRef({ type: 'error', code, message, ...fields }, ref)
}

/**
 * The answer to subscribe/unsubscribe and their room aliases. A room alias answers with
 * `room-joined`/`room-left` and `roomId`, as room-chat clients expect. An `unsubscribed` the
 * client did not ask for carries the `reason` (an error code) and no ref.
 */
export function membershipFrame (type: 'subscribed' | 'unsubscribed' | 'room-joined' | 'room-left', channel: string, fields: { position?: Position, reason?: string }, ref?: Ref): string {
  const name = type.startsWith('room') ? { roomId: channel } : { channel }
  return withRef({ type, ...name, ...fields }, ref)
}

export function presenceFrame (type: 'user-joined' | 'user-left', channel: string, userId: string, clientId: string): string {
  return JSON.stringify({ type, channel, userId, clientId })
}

export type Recovery =
  | { recovered: true, stream: string, epoch: string, from: number, to: number, count: number }
  | { recovered: false, stream: string, epoch: string, oldest: Position, latest: Position }

export function recoveredFrame (recovery: Recovery, ref?: Ref): string {
  return withRef({ type: 'recovered', ...recovery }, ref)
}

export function publishedFrame (fields: { id: string, stream: string, offset: number, epoch: string }, ref?: Ref): string {
  return withRef({ type: 'published', ...fields }, ref)
}

/**
 * The delivered form of an event. Built once per broadcast and shared by every recipient.
 * `stream` names the stream the offset counts in; a connection-targeted event has no
 * `stream`, `offset` or `epoch`: it is never replayed, so there is nothing to resume from.
 * `replayed` marks a frame built for a replay (never shared with live delivery).
 */
export function eventFrame (event: StoredEvent, replayed = false): string {
  const positioned = event.offset !== 0
  return JSON.stringify({
    type: 'event',
    id: event.id,
    event: event.event,
    data: event.data,
    stream: positioned ? event.stream : undefined,
    offset: positioned ? event.offset : undefined,
    epoch: positioned ? event.epoch : undefined,
    timestamp: event.timestamp,
    correlationId: event.correlationId,
    from: event.from,
    // Sent from history by a resume, an attach with `since` or a heal, not as it happened.
    replayed: replayed ? true : undefined
  })
}

/**
 * One page of the tenant's unresolved ackable alarms, sent after `authenticated`; `complete`
 * is true on the last page (also when there are none).
 */
export function openAlarmsFrame (alarms: readonly unknown[], complete: boolean): string {
  return JSON.stringify({ type: 'open-alarms', alarms, complete })
}

/** The answer to `ack` or `resolve`: the alarm as it stands, and whether this request changed it. */
export function alarmActionFrame (type: 'acked' | 'resolved', alarm: { id: string }, changed: boolean, ref?: Ref): string {
  return withRef({ type, alarmId: alarm.id, changed, alarm }, ref)
}
