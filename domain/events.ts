import { Type, type Static } from 'typebox'

/**
 * The event catalogue: every named event's payload schema. Bus payloads, REST bodies and
 * wire frames all derive their types from these schemas.
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
  metadata: Type.Optional(Metadata)
}, { additionalProperties: false })
export type AlarmInput = Static<typeof AlarmInput>

export const Alarm = Type.Object({
  id: Type.String(),
  type: Type.Literal('alarm'),
  message: Type.String(),
  camera: Type.String(),
  severity: Severity,
  timestamp: Type.String(),
  metadata: Type.Optional(Metadata)
})
export type Alarm = Static<typeof Alarm>

export const EventCatalogue = {
  'alarm:created': Alarm
}
export type EventCatalogue = { [K in keyof typeof EventCatalogue]: Static<(typeof EventCatalogue)[K]> }
export type EventName = keyof EventCatalogue

/** Who an event is for, always inside its tenant. */
export const Target = Type.Union([
  Type.Object({ kind: Type.Literal('tenant') }),
  Type.Object({ kind: Type.Literal('user'), userId: Type.String({ minLength: 1 }) })
])
export type Target = Static<typeof Target>

/** An event on its way to the broker: what happened, for which tenant, for whom. */
export const EventEnvelope = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  event: Type.String(),
  data: Type.Unknown(),
  target: Target,
  timestamp: Type.String(),
  correlationId: Type.Optional(Type.String())
})
export type EventEnvelope = Static<typeof EventEnvelope>

/**
 * An event the broker accepted: it now has a position. `stream` is the tenant-local stream
 * name ("tenant"); `offset` increases by one per event in that stream; `epoch` changes
 * whenever the stream's history was lost, so a position is only comparable within one epoch.
 */
export const StoredEvent = Type.Object({
  ...EventEnvelope.properties,
  stream: Type.String(),
  offset: Type.Integer({ minimum: 1 }),
  epoch: Type.String()
})
export type StoredEvent = Static<typeof StoredEvent>
