import { STATUS_CODES } from 'node:http'
import createError, { type FastifyError, type FastifyErrorConstructor } from '@fastify/error'
import { AuthReason } from './domain/principal.js'

/**
 * The registry of HTTP errors. Every error a route sends is one of these, so every response
 * body carries a stable `code`. Never rename a code.
 */
export const HttpErrors = {
  VALIDATION_FAILED: createError('VALIDATION_FAILED', '%s', 400),
  EVENT_NAME_RESERVED: createError('EVENT_NAME_RESERVED', 'the event name %s is reserved by Socket.IO', 400),
  NOT_FOUND: createError('NOT_FOUND', 'Route %s not found', 404),
  FORBIDDEN: createError('FORBIDDEN', '%s', 403),
  CHANNEL_FORBIDDEN: createError('CHANNEL_FORBIDDEN', '%s', 403),
  /** Another user's stream: a token reads its own user stream only. */
  STREAM_FORBIDDEN: createError('STREAM_FORBIDDEN', '%s', 403),
  /** Not a stream name: `tenant`, `user:<id>` or `channel:<name>`. */
  UNKNOWN_STREAM: createError('UNKNOWN_STREAM', '%s', 400),
  PAYLOAD_TOO_LARGE: createError('PAYLOAD_TOO_LARGE', '%s', 413),
  RATE_LIMITED: createError('RATE_LIMITED', '%s', 429),
  /** The tenant has MAX_INFLIGHT_PER_TENANT ingestion requests in flight here; retry after Retry-After. */
  TENANT_INFLIGHT_LIMIT: createError('TENANT_INFLIGHT_LIMIT', '%s', 429),
  TENANT_BACKLOGGED: createError('TENANT_BACKLOGGED', '%s', 429),
  ORIGIN_FORBIDDEN: createError('ORIGIN_FORBIDDEN', 'origin %s is not allowed to open a socket', 403),
  IDEMPOTENCY_CONFLICT: createError('IDEMPOTENCY_CONFLICT', 'this Idempotency-Key was used with a different request body', 409),
  BROKER_UNAVAILABLE: createError('BROKER_UNAVAILABLE', 'the event could not be stored: %s', 503),
  /** The token could not be checked (its JWKS is unreachable); retry after Retry-After with the same token. */
  AUTH_UNAVAILABLE: createError('AUTH_UNAVAILABLE', '%s', 503),
  /** Shed by load protection (the event loop is saturated); retry after Retry-After. */
  OVERLOADED: createError('OVERLOADED', 'the gateway is overloaded (event-loop delay %s); retry after Retry-After', 503),
  /** No alarm with this id in the token's tenant (another tenant's id answers the same). */
  ALARM_NOT_FOUND: createError('ALARM_NOT_FOUND', 'no alarm %s', 404),
  /** ALARM_OVERFLOW=reject and the tenant has ALARM_MAX_OPEN unresolved alarms. */
  OPEN_ALARM_LIMIT: createError('OPEN_ALARM_LIMIT', '%s', 429),
  INTERNAL_ERROR: createError('INTERNAL_ERROR', 'internal server error', 500)
}

/** One 401 error per auth reason, so the `code` of a 401 says why. */
export const Unauthorized = Object.fromEntries(
  Object.values(AuthReason).map((reason) => [reason, createError(reason, '%s', 401)])
) as Record<AuthReason, FastifyErrorConstructor>

/** The JSON body of every error reply: `{statusCode, code, error, message}`, never a stack. */
export function errorBody (error: Pick<FastifyError, 'statusCode' | 'code' | 'message'>): { statusCode: number, code: string, error: string, message: string } {
  const statusCode = error.statusCode ?? 500
  return { statusCode, code: error.code, error: STATUS_CODES[statusCode] ?? 'Error', message: error.message }
}
