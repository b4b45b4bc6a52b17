import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { ErrorCode } from './error-codes.js'

/**
 * Client-to-server frames. Every frame is one JSON object with a `type`; any request may
 * carry `id`, which the reply returns as `ref`.
 */
const RequestId = Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Number()]))

const Since = Type.String({ minLength: 3, maxLength: 200 })
/** A stream name as a client writes it: `tenant`, `user:<id>` or `channel:<name>`. */
const Stream = Type.String({ minLength: 1, maxLength: 300 })
/**
 * Where to resume at connect: the tenant stream's position (the original form), or a map from
 * stream (`tenant`, the connection's own `user:<id>`) to position.
 */
const SinceMap = Type.Union([Since, Type.Record(Stream, Since, { maxProperties: 8 })])
const Channel = Type.String({ minLength: 1, maxLength: 256 })

export const PingMessage = Type.Object({ type: Type.Literal('ping'), id: RequestId })
export const AuthenticateMessage = Type.Object({
  type: Type.Literal('authenticate'),
  id: RequestId,
  token: Type.String({ minLength: 1, maxLength: 8192 }),
  /** The last position seen: `<epoch>:<offset>` of the tenant stream, or one per stream. */
  since: Type.Optional(SinceMap)
})
/** One stream per frame; without `stream`, the tenant stream (the original form). */
export const ResumeMessage = Type.Object({ type: Type.Literal('resume'), id: RequestId, stream: Type.Optional(Stream), since: Since })
/** Most channels one `subscribe {channels}` may join. */
export const MAX_SUBSCRIBE_BATCH = 500
/**
 * One channel (`channel`, `since?`), or many in one frame (`channels: [{channel, since?}]`),
 * each answered on its own; exactly one of the two.
 */
export const SubscribeMessage = Type.Object({
  type: Type.Literal('subscribe'),
  id: RequestId,
  channel: Type.Optional(Channel),
  since: Type.Optional(Since),
  channels: Type.Optional(Type.Array(Type.Object({ channel: Channel, since: Type.Optional(Since) }), { minItems: 1, maxItems: MAX_SUBSCRIBE_BATCH }))
})
export const UnsubscribeMessage = Type.Object({ type: Type.Literal('unsubscribe'), id: RequestId, channel: Channel })
export const JoinRoomMessage = Type.Object({ type: Type.Literal('join-room'), id: RequestId, roomId: Channel, since: Type.Optional(Since) })
export const LeaveRoomMessage = Type.Object({ type: Type.Literal('leave-room'), id: RequestId, roomId: Channel })
export const PublishMessage = Type.Object({
  type: Type.Literal('publish'),
  id: RequestId,
  channel: Channel,
  event: Type.String({ minLength: 1, maxLength: 64 }),
  data: Type.Unknown()
})
/** The room-chat alias of publish: `message` is the text, `roomId` the channel. */
export const ChatMessageFrame = Type.Object({
  type: Type.Literal('message'),
  id: RequestId,
  roomId: Type.Optional(Channel),
  message: Type.String({ minLength: 1, maxLength: 4000 })
})

const AlarmId = Type.String({ minLength: 1, maxLength: 128 })
const Note = Type.Optional(Type.String({ maxLength: 500 }))
/** Acknowledge an ackable alarm; a repeat answers the first ack. */
export const AckMessage = Type.Object({ type: Type.Literal('ack'), id: RequestId, alarmId: AlarmId, note: Note })
export const ResolveMessage = Type.Object({ type: Type.Literal('resolve'), id: RequestId, alarmId: AlarmId, note: Note })
/** The SDK's batched receipt of ackable alarms; it has no reply. */
export const ReceivedMessage = Type.Object({ type: Type.Literal('received'), id: RequestId, ids: Type.Array(AlarmId, { minItems: 1, maxItems: 100 }) })

export const ClientMessages = {
  ping: PingMessage,
  authenticate: AuthenticateMessage,
  resume: ResumeMessage,
  subscribe: SubscribeMessage,
  unsubscribe: UnsubscribeMessage,
  'join-room': JoinRoomMessage,
  'leave-room': LeaveRoomMessage,
  publish: PublishMessage,
  message: ChatMessageFrame,
  ack: AckMessage,
  resolve: ResolveMessage,
  received: ReceivedMessage
} satisfies Record<string, TSchema>

export type ClientMessageType = keyof typeof ClientMessages
export type ClientMessage = { [K in ClientMessageType]: Static<(typeof ClientMessages)[K]> }[ClientMessageType]
type RequestIdValue = string | number

const validators = Object.fromEntries(
  Object.entries(ClientMessages).map(([type, schema]) => [type, Compile(schema)])
) as { [K in ClientMessageType]: ReturnType<typeof Compile<(typeof ClientMessages)[K]>> }

export type ParseResult =
  | { ok: true, message: ClientMessage }
  | { ok: false, code: ErrorCode, message: string, ref?: RequestIdValue }

function isRequestId (value: unknown): value is RequestIdValue {
  return (typeof value === 'string' && value.length <= 128) || (typeof value === 'number' && Number.isFinite(value))
}

/**
 * The `id` of a request frame, or undefined: what a refusal that does not handle the frame
 * (the rate limiter) needs to answer it with its `ref`. Never throws.
 */
export function requestRef (text: string): RequestIdValue | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const frame = unwrapPayload(value as Record<string, unknown>)
  return isRequestId(frame.id) ? frame.id : undefined
}

/**
 * Parses one text frame. It never throws: every bad frame maps to a stable error code, and
 * the `id` of a recognisable request comes back as `ref` even when the rest is invalid.
 */
export function parseFrame (text: string): ParseResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, code: ErrorCode.INVALID_JSON, message: 'the frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: ErrorCode.INVALID_FRAME, message: 'a frame must be a JSON object' }
  }
  const frame = unwrapPayload(value as Record<string, unknown>)
  const ref = isRequestId(frame.id) ? frame.id : undefined
  const type = frame.type
  if (typeof type !== 'string' || !Object.hasOwn(validators, type)) {
    return { ok: false, code: ErrorCode.UNKNOWN_TYPE, message: 'unknown message type', ...(ref === undefined ? {} : { ref }) }
  }
  const validator = validators[type as ClientMessageType]
  if (!validator.Check(frame)) {
    const first = validator.Errors(frame)[0]
    const where = first === undefined ? '' : ` at ${first.instancePath === '' ? '/' : first.instancePath}`
    return { ok: false, code: ErrorCode.INVALID_MESSAGE, message: `invalid "${type}" message${where}`, ...(ref === undefined ? {} : { ref }) }
  }
  return { ok: true, message: frame as ClientMessage }
}

/**
 * Accepts the typed-handler envelope `{type, payload: {...}}` (reference 003) as if the
 * payload's fields were top-level. Top-level fields win, and only plain-object payloads merge.
 */
function unwrapPayload (frame: Record<string, unknown>): Record<string, unknown> {
  const payload = frame.payload
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return frame
  const { payload: _, ...rest } = frame
  // Object spread defines own properties, so a `__proto__` key stays data, never a prototype.
  return { ...payload, ...rest }
}
