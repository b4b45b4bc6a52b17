import type { Clock } from './clock.js'

/**
 * A token bucket: `ratePerSecond` tokens refill continuously up to `burst`. Each take costs
 * one token; an empty bucket refuses.
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor (private readonly ratePerSecond: number, private readonly burst: number, private readonly clock: Pick<Clock, 'now'>) {
    this.tokens = burst
    this.updatedAt = clock.now()
  }

  take (): boolean {
    const now = this.clock.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond)
    this.updatedAt = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
