import type { StoredEvent } from './events.js'

/** Server-to-client frames. Each builder returns the serialized text, ready to send. */
type Ref = string | number | undefined

function withRef (frame: Record<string, unknown>, ref: Ref): string {
  if (ref !== undefined) frame.ref = ref
  return JSON.stringify(frame)
}

export function connectedFrame (clientId: string): string {
  return JSON.stringify({ type: 'connected', clientId })
}

export function authenticatedFrame (fields: { userId: string, tenantId: string, connectionCount: number }, ref?: Ref): string {
  return withRef({ type: 'authenticated', ...fields }, ref)
}

export function pongFrame (ref?: Ref): string {
  return withRef({ type: 'pong' }, ref)
}

export function errorFrame (code: string, message: string, ref?: Ref): string {
  return withRef({ type: 'error', code, message }, ref)
}

/** The delivered form of an event. Built once per broadcast and shared by every recipient. */
export function eventFrame (event: StoredEvent): string {
  return JSON.stringify({
    type: 'event',
    id: event.id,
    event: event.event,
    data: event.data,
    stream: event.stream,
    offset: event.offset,
    epoch: event.epoch,
    timestamp: event.timestamp,
    correlationId: event.correlationId
  })
}
