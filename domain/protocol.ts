import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { ErrorCode } from './error-codes.js'

/**
 * Client-to-server frames. Every frame is one JSON object with a `type`; any request may
 * carry `id`, which the reply returns as `ref`.
 */
const RequestId = Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Number()]))

export const PingMessage = Type.Object({ type: Type.Literal('ping'), id: RequestId })
export const AuthenticateMessage = Type.Object({
  type: Type.Literal('authenticate'),
  id: RequestId,
  token: Type.String({ minLength: 1, maxLength: 8192 })
})

export const ClientMessages = {
  ping: PingMessage,
  authenticate: AuthenticateMessage
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
  const frame = value as Record<string, unknown>
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
