/**
 * Every WebSocket close code tenantcast sends, in one place. The README's close-code table
 * mirrors this module. Codes in 4000-4499 mean "do not reconnect until something changes"
 * (a new token, a smaller load); 4000-4099 "reconnect and resume" except where stated.
 */
export const CloseCode = {
  /** Normal closure. The server never closes with it: it is a client's own close (the SDK's `close()`), as metrics record it. */
  NORMAL: 1000,
  /** Server going away (shutdown or deploy). Reconnect after the hinted jittered delay. */
  GOING_AWAY: 1001,
  /** A frame larger than MAX_PAYLOAD (sent by ws itself), or before auth than PRE_AUTH_MAX_PAYLOAD (reason PRE_AUTH_FRAME_TOO_LARGE). */
  TOO_LARGE: 1009,
  /** The server failed to send to this socket (SEND_FAILED). Reconnect and resume. */
  SERVER_ERROR: 1011,
  /**
   * Try again later. `BROKER_UNAVAILABLE`: the broker could not serve this connection's history
   * or position; reconnect and resume. `AUTH_UNAVAILABLE retry=<ms>`: the token could not be
   * checked (its JWKS is unreachable); reconnect with the same token after the hinted ms.
   */
  TRY_AGAIN: 1013,
  /** Slow consumer (SLOW_CONSUMER), a stream gap (STREAM_GAP) or a stream this instance fell behind on (STREAM_BEHIND). Reconnect and resume. */
  SLOW_CONSUMER: 4008,
  /** Rate limited. Back off before reconnecting. */
  RATE_LIMITED: 4029,
  /** Unauthorized; the reason names the auth failure. Reconnect only with a new token. */
  UNAUTHORIZED: 4401,
  /** Forbidden for this principal. Do not reconnect. */
  FORBIDDEN: 4403
} as const

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]
