/** Time, injectable so that session timers can be driven by a fake clock in tests. */
export interface Clock {
  now (): number
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout) }
}

/** setTimeout fires at once for delays past 2^31-1 ms, so longer waits are re-armed in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1
