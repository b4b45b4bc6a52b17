/**
 * Codes of `error` frames sent over the socket. The connection stays open after each of them.
 * Stable: clients branch on them, so never rename one.
 */
export const ErrorCode = {
  INVALID_JSON: 'INVALID_JSON',
  INVALID_FRAME: 'INVALID_FRAME',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  AUTHENTICATION_REQUIRED: 'AUTHENTICATION_REQUIRED',
  /** A token refresh could not be checked (its keys are unreachable); the connection keeps its current token. */
  AUTH_UNAVAILABLE: 'AUTH_UNAVAILABLE',
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  INVALID_CHANNEL: 'INVALID_CHANNEL',
  CHANNEL_FORBIDDEN: 'CHANNEL_FORBIDDEN',
  CHANNEL_LIMIT: 'CHANNEL_LIMIT',
  NOT_SUBSCRIBED: 'NOT_SUBSCRIBED',
  PUBLISH_DISABLED: 'PUBLISH_DISABLED',
  EVENT_FORBIDDEN: 'EVENT_FORBIDDEN',
  INVALID_EVENT: 'INVALID_EVENT',
  EVENT_NAME_RESERVED: 'EVENT_NAME_RESERVED',
  INVALID_POSITION: 'INVALID_POSITION',
  /** A resume or history request for another user's stream. */
  STREAM_FORBIDDEN: 'STREAM_FORBIDDEN',
  /** A resume names no stream a connection can hold (`connection` events are never replayed). */
  UNKNOWN_STREAM: 'UNKNOWN_STREAM',
  BROKER_UNAVAILABLE: 'BROKER_UNAVAILABLE',
  RATE_LIMITED: 'RATE_LIMITED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** A client publish while the tenant's queued fan-out is past MAX_QUEUED_WRITES_PER_TENANT; retry later. */
  TENANT_BACKLOGGED: 'TENANT_BACKLOGGED',
  /** `ack`, `resolve`: no alarm with this id in the connection's tenant (another tenant's id answers the same). */
  ALARM_NOT_FOUND: 'ALARM_NOT_FOUND'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]
