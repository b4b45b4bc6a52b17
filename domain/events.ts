import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { describeErrors } from './validation.js'

/**
 * The event catalogue: every named event's payload schema. Bus payloads, REST bodies and
 * wire frames all derive their types from these schemas. A name outside the catalogue is
 * allowed when it matches EVENT_NAME and is carried as-is.
 */
export const Severity = Type.Enum(['low', 'medium', 'high', 'critical'])

const Metadata = Type.Record(
  Type.String({ maxLength: 64 }),
  Type.Union([Type.String({ maxLength: 256 }), Type.Number(), Type.Boolean(), Type.Null()]),
  { maxProperties: 32 }
)

/** An alarm as a camera or backend reports it. `tenantId` is not a field: it comes from the token. */
export const AlarmInput = Type.Object({
  type: Type.Optional(Type.Literal('alarm')),
  message: Type.String({ minLength: 1, maxLength: 500 }),
  camera: Type.String({ minLength: 1, maxLength: 200 }),
  severity: Severity,
  timestamp: Type.Optional(Type.String({ format: 'date-time' })),
  metadata: Type.Optional(Metadata),
  /** Needs a person whatever its severity (see ALARM_ACK_SEVERITIES). */
  requireAck: Type.Optional(Type.Boolean())
}, { additionalProperties: false })
export type AlarmInput = Static<typeof AlarmInput>

export const Alarm = Type.Object({
  id: Type.String({ minLength: 1 }),
  type: Type.Literal('alarm'),
  message: Type.String({ maxLength: 500 }),
  camera: Type.String({ maxLength: 200 }),
  severity: Severity,
  timestamp: Type.String(),
  metadata: Type.Optional(Metadata),
  /** Set on an alarm that needs a person: it is open until acknowledged and resolved. */
  ackable: Type.Optional(Type.Boolean())
})
export type Alarm = Static<typeof Alarm>

export const AlarmUpdate = Type.Object({
  id: Type.String({ minLength: 1 }),
  status: Type.Optional(Type.String({ maxLength: 64 })),
  severity: Type.Optional(Severity),
  message: Type.Optional(Type.String({ maxLength: 500 })),
  updatedAt: Type.Optional(Type.String()),
  correlationId: Type.Optional(Type.String({ maxLength: 128 })),
  /** A lifecycle change of an ackable alarm: who (a user id, or `system` for a policy), when, and the note. */
  by: Type.Optional(Type.String({ maxLength: 256 })),
  at: Type.Optional(Type.String()),
  note: Type.Optional(Type.String({ maxLength: 500 }))
})

/** An ackable alarm passed an escalation level unacknowledged (sent to a role, unpositioned). */
export const AlarmEscalated = Type.Object({
  id: Type.String({ minLength: 1 }),
  level: Type.Integer({ minimum: 1 }),
  reason: Type.Enum(['unacknowledged', 'unreceived']),
  after: Type.Number(),
  role: Type.Optional(Type.String()),
  alarm: Type.Optional(Type.Unknown()),
  at: Type.String()
})

const Ref = Type.Object({ _id: Type.String() })
const Change = Type.Object({ from: Type.Unknown(), to: Type.Unknown() })

/** Reference 004's incident event, as Socket.IO frontends read it. Extra fields pass through. */
export const IncidentCreated = Type.Object({
  _id: Type.String({ minLength: 1 }),
  title: Type.String({ minLength: 1, maxLength: 500 }),
  description: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
  priority: Type.Optional(Type.String()),
  eventTypeId: Type.Optional(Ref),
  createdBy: Type.Optional(Ref),
  createdAt: Type.Optional(Type.String()),
  correlationId: Type.Optional(Type.String({ maxLength: 128 }))
})

export const IncidentUpdated = Type.Object({
  _id: Type.String({ minLength: 1 }),
  status: Type.Optional(Type.String()),
  assignedTo: Type.Optional(Ref),
  updatedAt: Type.Optional(Type.String()),
  changes: Type.Optional(Type.Record(Type.String(), Change)),
  correlationId: Type.Optional(Type.String({ maxLength: 128 }))
})

export const ReportCreated = Type.Object({
  _id: Type.String({ minLength: 1 }),
  title: Type.String({ minLength: 1, maxLength: 500 }),
  description: Type.Optional(Type.String()),
  type: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  reportedBy: Type.Optional(Ref),
  createdAt: Type.Optional(Type.String()),
  correlationId: Type.Optional(Type.String({ maxLength: 128 }))
})

/** A chat line sent by a client into a room (the room-chat reference's `message`). */
export const ChatMessage = Type.Object({
  message: Type.String({ minLength: 1, maxLength: 4000 }),
  roomId: Type.Optional(Type.String())
})

export const EventCatalogue = {
  'alarm:created': Alarm,
  'alarm:updated': AlarmUpdate,
  'alarm:escalated': AlarmEscalated,
  'event:created': IncidentCreated,
  'event:updated': IncidentUpdated,
  'report:created': ReportCreated,
  message: ChatMessage
} satisfies Record<string, TSchema>
export type EventCatalogue = { [K in keyof typeof EventCatalogue]: Static<(typeof EventCatalogue)[K]> }
export type EventName = keyof EventCatalogue

/**
 * An alarm as a publisher hands it over: the fields the server owns may be left out, as
 * reference hosts do (`{type:'alarm', message, camera, severity, timestamp}`, often no `id`).
 */
export const AlarmData = Type.Object({
  ...Alarm.properties,
  id: Type.Optional(Alarm.properties.id),
  type: Type.Optional(Alarm.properties.type),
  timestamp: Type.Optional(Alarm.properties.timestamp)
})

/** What publishers send, per event: the catalogue, with server-owned fields optional. */
export const PublishCatalogue = { ...EventCatalogue, 'alarm:created': AlarmData } satisfies Record<EventName, TSchema>
export type PublishCatalogue = { [K in keyof typeof PublishCatalogue]: Static<(typeof PublishCatalogue)[K]> }

/**
 * The payload as subscribers receive it. For an alarm the server fills what it owns and the
 * publisher left out: `id` (the event's id), `type: 'alarm'` and `timestamp` (now). Other
 * events, and payloads that are not objects, pass unchanged.
 */
export function completeEventData (event: string, data: unknown, eventId: string, now: string): unknown {
  if (event !== 'alarm:created' || typeof data !== 'object' || data === null || Array.isArray(data)) return data
  const given = data as Record<string, unknown>
  return { id: eventId, type: 'alarm', ...given, timestamp: given.timestamp ?? now }
}

/**
 * Name prefixes of the events the server's own producers emit (ingestion, the publish API).
 * Apps dispatch them to their alarm and incident handlers, so a client publish may use them
 * only with a publishing role (PUBLISHER_ROLES): a viewer cannot forge an alarm.
 */
export const SERVER_EVENT_PREFIXES = ['alarm:', 'event:', 'report:'] as const

export function isServerEventName (event: string): boolean {
  return SERVER_EVENT_PREFIXES.some((prefix) => event.startsWith(prefix))
}

/** Names outside the catalogue must look like this: no spaces, no control characters. */
export const EVENT_NAME = '^[A-Za-z][A-Za-z0-9_.:-]{0,63}$'
const eventNamePattern = new RegExp(EVENT_NAME)

/**
 * Names Socket.IO reserves for its own lifecycle (its `emit` throws on them, and its clients
 * could not tell them from a real disconnect). They are refused at publish whatever the
 * binding, so that whether an event is accepted never depends on who is connected.
 */
export const RESERVED_EVENT_NAMES: ReadonlySet<string> = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'])

const validators = Object.fromEntries(
  Object.entries(PublishCatalogue).map(([name, schema]) => [name, Compile(schema)])
) as Record<string, ReturnType<typeof Compile>>

export type DataCheck = { ok: true } | { ok: false, path: string, message: string }

/** Payloads nest at most this deep: deeper JSON would overflow the stack when serialized. */
export const MAX_DATA_DEPTH = 32

/** Whether a JSON value nests deeper than `limit`. Iterative, and stops at the first excess. */
function deeperThan (value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number]
    if (typeof node !== 'object' || node === null) continue
    if (depth >= limit) return true
    for (const child of Object.values(node)) stack.push([child, depth + 1])
  }
  return false
}

/**
 * Checks a published payload: a catalogued name against its publish schema, any other name
 * against EVENT_NAME only. The failure names every failing field.
 */
export function checkEventData (event: string, data: unknown): DataCheck {
  if (deeperThan(data, MAX_DATA_DEPTH)) return { ok: false, path: '/data', message: `/data nests deeper than ${MAX_DATA_DEPTH} levels` }
  const validator = Object.hasOwn(validators, event) ? validators[event] : undefined
  if (validator === undefined) {
    return eventNamePattern.test(event)
      ? { ok: true }
      : { ok: false, path: '/event', message: `event name must match ${EVENT_NAME}` }
  }
  if (validator.Check(data)) return { ok: true }
  const errors = validator.Errors(data)
  return { ok: false, path: `/data${errors[0]?.instancePath ?? ''}`, message: describeErrors(errors, '/data') }
}

/** Who an event is for, always inside its tenant. */
export const Target = Type.Union([
  Type.Object({ kind: Type.Literal('tenant') }),
  Type.Object({ kind: Type.Literal('user'), userId: Type.String({ minLength: 1 }) }),
  Type.Object({ kind: Type.Literal('client'), clientId: Type.String({ minLength: 1 }) }),
  Type.Object({ kind: Type.Literal('channel'), channel: Type.String({ minLength: 1 }) }),
  /** The tenant's sockets whose token holds the role; live only, like a connection target (see streams.ts). */
  Type.Object({ kind: Type.Literal('role'), role: Type.String({ minLength: 1 }) })
])
export type Target = Static<typeof Target>

/** The sender of a client-published event. */
export const Sender = Type.Object({ clientId: Type.String(), userId: Type.String() })

/** An event on its way to the broker: what happened, for which tenant, for whom. */
export const EventEnvelope = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  event: Type.String(),
  data: Type.Unknown(),
  target: Target,
  timestamp: Type.String(),
  correlationId: Type.Optional(Type.String()),
  from: Type.Optional(Sender)
})
export type EventEnvelope = Static<typeof EventEnvelope>

/**
 * An event the broker accepted: it now has a position. `stream` is the tenant-local stream
 * name (`tenant`, `user:<id>` or `channel:<name>`); `offset` increases by one per event in
 * that stream; `epoch` changes whenever the stream's history was lost, so a position is only
 * comparable within one epoch. A connection-targeted event has none: stream `connection`,
 * offset 0 and epoch ''.
 */
export const StoredEvent = Type.Object({
  ...EventEnvelope.properties,
  stream: Type.String(),
  offset: Type.Integer({ minimum: 0 }),
  epoch: Type.String()
})
export type StoredEvent = Static<typeof StoredEvent>
