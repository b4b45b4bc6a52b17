/** Reconnect policy. Every field is optional; the defaults are the ones below. */
export interface ReconnectOptions {
  /** Ceiling of the first delay, in ms. Default 1000. */
  initialDelay?: number
  /** Largest ceiling, in ms. Default 5000. */
  maxDelay?: number
  /** How much the ceiling grows per failed attempt. Default 2. */
  factor?: number
  /** Reconnect attempts in a row, without a connection that stayed up `minUptime`, before giving up (the state becomes `closed`). Default Infinity. */
  maxAttempts?: number
  /**
   * How long, in ms, a connection must stay authenticated before the backoff starts again from
   * `initialDelay`. A server that closes right after `authenticated` (1013, 4008 on a replay)
   * thus sees the delays keep growing instead of every client back within `initialDelay`. Default 5000.
   */
  minUptime?: number
}

export type BackoffPolicy = Required<ReconnectOptions>

export const DEFAULT_BACKOFF: BackoffPolicy = { initialDelay: 1000, maxDelay: 5000, factor: 2, maxAttempts: Infinity, minUptime: 5000 }

/** The upper bound of the delay before attempt `attempt` (0-based): exponential, capped at maxDelay. */
export function backoffCeiling (policy: BackoffPolicy, attempt: number): number {
  return Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** attempt)
}

/**
 * "Full jitter": a uniformly random delay between 0 and the ceiling, so that many clients cut
 * off at once spread their reconnects over the whole window instead of arriving together.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay (policy: BackoffPolicy, attempt: number, random: () => number): number {
  return Math.floor(random() * backoffCeiling(policy, attempt))
}

/**
 * After 4029 (rate limited) the client waits at least half the maximum: a random delay in
 * [maxDelay / 2, maxDelay), so that it really backs off yet still spreads out.
 */
export function rateLimitedDelay (policy: BackoffPolicy, random: () => number): number {
  return Math.floor(policy.maxDelay / 2 + random() * policy.maxDelay / 2)
}

/** The `retry=<ms>` hint of a close reason (1001 `SERVER_SHUTDOWN retry=<ms>`, 1013 `AUTH_UNAVAILABLE retry=<ms>`), if present. */
export function retryHint (reason: string): number | undefined {
  const match = /\bretry=(\d+)\b/.exec(reason)
  return match === null ? undefined : Number(match[1])
}
