import { spawn, type ChildProcess } from 'node:child_process'

/**
 * A TypeScript entry point (server.ts, bin/tenantcast.ts) in a child process, run the way tap
 * runs the tests: the same loader flags and environment, so the child's coverage is written
 * next to the parent's and counts.
 */
export class TsChild {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  readonly exited: Promise<number | null>
  private wake: Array<() => void> = []

  constructor (entry: string, args: string[], env: Record<string, string | undefined>, options: { limitMs?: number, stdin?: string } = {}) {
    this.child = spawn(process.execPath, [...process.execArgv, entry, ...args], { env: { ...process.env, ...env }, stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    if (options.stdin !== undefined) this.child.stdin?.end(options.stdin)
    const notify = (): void => { for (const wake of this.wake.splice(0)) wake() }
    this.child.stdout?.on('data', (chunk: Buffer) => { this.stdout += String(chunk); notify() })
    this.child.stderr?.on('data', (chunk: Buffer) => { this.stderr += String(chunk); notify() })
    // Bounded: a child still running past its limit is killed and its test fails on the exit code.
    const limit = setTimeout(() => { this.child.kill('SIGKILL') }, options.limitMs ?? 60_000)
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => {
        clearTimeout(limit)
        notify()
        resolve(code)
      })
    })
  }

  /** Waits until a condition on the output holds; throws when the process exits first. */
  async until (condition: () => boolean): Promise<void> {
    while (!condition()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`the child exited (${String(this.child.exitCode)}): ${this.stderr}`)
      await new Promise<void>((resolve) => { this.wake.push(resolve) })
    }
  }

  lines (): string[] {
    return this.stdout.split('\n').filter((line) => line !== '')
  }
}
