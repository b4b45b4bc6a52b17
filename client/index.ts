/**
 * tenantcast client SDK: `import { connect } from 'tenantcast/client'`. Plain TypeScript with
 * no runtime dependencies; in browsers it is `public/tenantcast-client.js` (npm run build:client).
 */
export { connect, formatPosition, parsePosition, SUBPROTOCOL, TENANT_STREAM, TenantcastClient } from './client.js'
export type { ConnectOptions, RequestOptions, SessionInfo, Timers, WebSocketConstructor, WebSocketLike } from './client.js'
export { backoffCeiling, backoffDelay, DEFAULT_BACKOFF, rateLimitedDelay, retryHint } from './backoff.js'
export type { BackoffPolicy, ReconnectOptions } from './backoff.js'
export { decodeTokenPayload, refreshAt, tokenTimes } from './token.js'
export { RECEIPT_BATCH, RECEIPT_DELAY_MS } from './alarms.js'
export type { WakeSources, WakeTarget } from './wake.js'
export { ClientErrorCode, TenantcastError } from './types.js'
export type {
  AlarmActionFrame, AuthenticatedFrame, CatalogueEventFrame, CatalogueHandler, ClientMessage, CloseInfo, ConnectedFrame,
  ConnectionState, ErrorFrame, EventCatalogue, EventFrame, EventName, Gap, Healed, LifecycleEventName,
  LifecycleEvents, OpenAlarm, OpenAlarmsFrame, Position, PresenceFrame, PublishedFrame, RecoveredFrame, Replies, Request,
  RequestId, ServerErrorCode, ServerFrame, SubscribedFrame, TenantcastErrorCode, UnsubscribedFrame
} from './types.js'
