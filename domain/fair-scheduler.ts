/**
 * Fair delivery across tenants: the work of writing frames to sockets, queued per tenant and
 * run in slices so that one tenant's broadcast to thousands of sockets never makes another
 * tenant's alarm wait behind it.
 *
 * Contract:
 * - Per tenant, tasks run in the order they were enqueued (FIFO), one after another. A socket
 *   belongs to one tenant, so everything queued for a socket reaches it in enqueue order.
 * - A round gives every tenant with pending work one turn of up to `slice` socket writes
 *   (deficit round-robin with divisible work: the budget a short task leaves goes to that
 *   tenant's next task in the same turn; none is carried to the next round).
 * - Between rounds the scheduler yields to the event loop (`defer`, setImmediate by default),
 *   so accept(), HTTP requests and broker messages run while a big broadcast is in progress.
 * - `tryNow` lets a caller do small work at once, in its own turn, instead of queueing it:
 *   only for a tenant with nothing pending (so nothing can be overtaken) and only within the
 *   round's `credit` of `slice` writes, so a burst of small broadcasts in one tick is still
 *   cut into rounds.
 *
 * It knows nothing of sockets or events: a task says how much of its budget it used.
 */
export interface SliceTask {
  /**
   * Does up to `budget` units of work (socket writes) and returns how many it used. The
   * scheduler calls it again, in a later turn, until `done` is true.
   */
  run (budget: number): number
  readonly done: boolean
  /** Units of work (socket writes) still to do; 0 once done. Read around every run. */
  readonly pending: number
  /**
   * `run` threw and the task is being dropped: what it still owed must not vanish in silence
   * (the hub closes those sockets, so that they resume). Errors it throws are reported too.
   */
  abort?: () => void
}

export interface FairSchedulerOptions {
  /** Socket writes per tenant per round, and the credit for work done at once. At least 1. */
  slice: number
  /** Runs the next round later, after the event loop had its turn. setImmediate by default. */
  defer?: (run: () => void) => void
  /** A task threw: it is dropped and the others go on. */
  onError?: (err: unknown) => void
}

/** A FIFO of tasks; an array with a moving head, so that taking the head is O(1). */
class TaskQueue {
  private items: SliceTask[] = []
  private head = 0
  /** The queued tasks' pending units, kept as they run: what ingestion's backlog cap reads. */
  units = 0

  get length (): number {
    return this.items.length - this.head
  }

  push (task: SliceTask): void {
    this.items.push(task)
  }

  peek (): SliceTask | undefined {
    return this.items[this.head]
  }

  shift (): void {
    this.items[this.head++] = undefined as unknown as SliceTask
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

export class FairScheduler {
  /**
   * Tenants with pending work, in round-robin order. An entry is deleted when its queue
   * empties, so the map holds only tenants with work: it is bounded by the work itself.
   */
  private readonly queues = new Map<string, TaskQueue>()
  private readonly slice: number
  private readonly defer: (run: () => void) => void
  private readonly onError: (err: unknown) => void
  private tasks = 0
  private scheduled = false
  private closed = false
  /** Writes the callers of `tryNow` may still do at once before the next round. */
  private credit: number

  constructor (options: FairSchedulerOptions) {
    if (!Number.isInteger(options.slice) || options.slice < 1) throw new RangeError(`slice must be a positive integer, got ${options.slice}`)
    this.slice = options.slice
    this.credit = options.slice
    this.defer = options.defer ?? ((run) => { setImmediate(run) })
    this.onError = options.onError ?? (() => {})
  }

  /** Socket writes per tenant per round. */
  get sliceSize (): number {
    return this.slice
  }

  /** Whether the tenant has queued work: a frame for one of its sockets must queue behind it. */
  hasPending (tenantId: string): boolean {
    return this.queues.has(tenantId)
  }

  /**
   * True when work of `cost` writes for the tenant may be done now, by the caller: the tenant
   * has nothing queued and the round's credit covers it (which it then spends). After `close`
   * everything is done at once: there are no more rounds.
   */
  tryNow (tenantId: string, cost: number): boolean {
    if (this.closed) return true
    if (cost > this.credit || this.queues.has(tenantId)) return false
    this.credit -= cost
    return true
  }

  /**
   * Socket writes the tenant has queued (over its tasks, as they last reported), 0 with
   * nothing queued: what ingestion's backlog cap reads. O(1).
   */
  backlog (tenantId: string): number {
    return this.queues.get(tenantId)?.units ?? 0
  }

  /**
   * The tenant's last queued task took on `units` more work (a burst joining a queued
   * broadcast), so that its backlog counts them. No-op for a tenant with nothing queued.
   */
  grow (tenantId: string, units: number): void {
    const queue = this.queues.get(tenantId)
    if (queue !== undefined) queue.units += units
  }

  /** Queues a task behind the tenant's pending work. After `close` it is run at once, whole. */
  enqueue (tenantId: string, task: SliceTask): void {
    if (this.closed) {
      try {
        while (!task.done) task.run(Number.MAX_SAFE_INTEGER)
      } catch (err) {
        this.fail(task, err)
      }
      return
    }
    let queue = this.queues.get(tenantId)
    if (queue === undefined) this.queues.set(tenantId, queue = new TaskQueue())
    queue.push(task)
    queue.units += task.pending
    this.tasks++
    this.schedule()
  }

  /** Tasks queued, over all tenants (a task is one or more frames for a set of sockets). */
  depth (): number {
    return this.tasks
  }

  /** Tasks queued per tenant with pending work. */
  depths (): Map<string, number> {
    const depths = new Map<string, number>()
    for (const [tenantId, queue] of this.queues) depths.set(tenantId, queue.length)
    return depths
  }

  /**
   * Drops every queued task and returns how many there were. Their sockets are being closed
   * (shutdown), and a client resumes from its own last position, so nothing it is entitled to
   * is lost. Later work is done at once, so no round is ever scheduled again. Idempotent.
   */
  close (): number {
    const dropped = this.tasks
    this.closed = true
    this.queues.clear()
    this.tasks = 0
    return dropped
  }

  /** A task threw: it is told to settle what it owed, and the error is reported, never thrown. */
  private fail (task: SliceTask, err: unknown): void {
    try {
      task.abort?.()
    } catch (abortErr) {
      this.onError(abortErr)
    }
    this.onError(err)
  }

  private schedule (): void {
    if (this.scheduled) return
    this.scheduled = true
    this.defer(() => { this.round() })
  }

  /** One turn for every tenant with pending work; then, if work remains, the next round later. */
  private round (): void {
    this.scheduled = false
    if (this.closed) return
    this.credit = this.slice
    try {
      // A Map iterates the entries present when it reaches them: a tenant whose work is queued
      // during this round (a write's side effect) gets its turn in this round too.
      for (const [tenantId, queue] of this.queues) {
        let budget = this.slice
        for (let task = queue.peek(); task !== undefined && budget > 0; task = queue.peek()) {
          const before = task.pending
          let used: number
          try {
            used = task.run(budget)
          } catch (err) {
            // A task that throws would throw again: it is dropped, and the others are served.
            queue.shift()
            queue.units -= before
            this.tasks--
            this.fail(task, err)
            continue
          }
          queue.units -= before - (task.done ? 0 : task.pending)
          // At least one unit per call, so a task that reports 0 cannot spin a turn forever.
          budget -= Math.max(1, used)
          if (!task.done) break
          queue.shift()
          this.tasks--
        }
        if (queue.length === 0) this.queues.delete(tenantId)
      }
    } finally {
      if (this.queues.size > 0) this.schedule()
    }
  }
}
