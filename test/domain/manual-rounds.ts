/** A manual scheduler clock: the hub's next round runs only when the test says so. */
export class ManualRounds {
  private readonly pending: Array<() => void> = []
  readonly defer = (run: () => void): void => { this.pending.push(run) }
  get waiting (): number { return this.pending.length }
  /** Runs one round; false when none was scheduled. */
  step (): boolean {
    const run = this.pending.shift()
    if (run === undefined) return false
    run()
    return true
  }

  /** Runs rounds until no more are scheduled; returns how many ran. */
  drain (): number {
    let rounds = 0
    while (this.step()) rounds++
    return rounds
  }
}
