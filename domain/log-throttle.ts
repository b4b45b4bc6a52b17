/**
 * At most one log line per key per window. A refusal logged per request (a tenant past its
 * in-flight or backlog cap, a rate limit, shedding) turns a flood into a second flood, on
 * stdout: pino writes synchronously, and a full pipe blocks the event loop (sonic-boom waits
 * on EAGAIN), which is what the refusal was protecting. The metric counts every refusal; the
 * log says that it happens, and how often since its last line.
 */
export class LogThrottle {
  /** Per key logged within the window, when and how many were counted since. */
  private readonly last = new Map<string, { at: number, suppressed: number }>()

  constructor (
    private readonly windowMs: number,
    /** Keys remembered at most; past it stale ones are pruned, and a new key is logged unremembered. */
    private readonly maxKeys = 10_000,
    private readonly now: () => number = () => performance.now()
  ) {}

  /**
   * Undefined when this occurrence is only to be counted; otherwise it is to be logged, and
   * the number is how many were counted, not logged, since the key's previous line.
   */
  take (key: string): number | undefined {
    const now = this.now()
    const entry = this.last.get(key)
    if (entry !== undefined && now - entry.at < this.windowMs) {
      entry.suppressed++
      return undefined
    }
    const suppressed = entry?.suppressed ?? 0
    if (entry === undefined && this.last.size >= this.maxKeys) this.prune(now)
    if (entry !== undefined || this.last.size < this.maxKeys) this.last.set(key, { at: now, suppressed: 0 })
    return suppressed
  }

  /** Keys remembered now (for tests and the bound). */
  get size (): number {
    return this.last.size
  }

  private prune (now: number): void {
    for (const [key, entry] of this.last) if (now - entry.at >= this.windowMs) this.last.delete(key)
  }
}
