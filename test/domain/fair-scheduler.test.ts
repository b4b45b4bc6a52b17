import t from 'tap'
import { FairScheduler, type SliceTask } from '../../domain/fair-scheduler.js'
import { ManualRounds } from './manual-rounds.js'

/** A task of `units` writes that records each run's budget. */
function task (units: number, runs: number[] = [], report?: (used: number) => number): SliceTask {
  let left = units
  return {
    get done () { return left === 0 },
    get pending () { return left },
    run (budget: number): number {
      runs.push(budget)
      const used = Math.min(budget, left)
      left -= used
      return report === undefined ? used : report(used)
    }
  }
}

t.test('a slice that is not a positive integer is refused', async (t) => {
  for (const slice of [0, -1, 1.5, Number.NaN]) t.throws(() => new FairScheduler({ slice }), RangeError, `slice ${slice}`)
  t.equal(new FairScheduler({ slice: 1 }).sliceSize, 1)
})

t.test('the work done at once may spend exactly the round\'s credit, and not one write more', async (t) => {
  const scheduler = new FairScheduler({ slice: 4, defer: new ManualRounds().defer })
  t.ok(scheduler.tryNow('A', 4), 'a cost equal to the credit fits')
  t.notOk(scheduler.tryNow('B', 1), 'and spends it')
})

t.test('queue depths stay right over thousands of tasks, as the queue compacts the ones it has run', async (t) => {
  const rounds = new ManualRounds()
  const scheduler = new FairScheduler({ slice: 100, defer: rounds.defer })
  for (let i = 0; i < 3000; i++) scheduler.enqueue('A', task(1))
  t.same([...scheduler.depths()], [['A', 3000]])
  const seen: number[] = []
  while (rounds.step()) seen.push(scheduler.depths().get('A') ?? 0)
  t.same(seen.slice(0, 3), [2900, 2800, 2700], 'one slice of 100 one-write tasks per round')
  t.equal(seen.length, 30)
  t.same(seen.at(-1), 0)
  for (let i = 0; i < 1500; i++) scheduler.enqueue('A', task(1))
  for (let i = 0; i < 12; i++) rounds.step()
  t.equal(scheduler.depths().get('A'), 300, 'the queue still counts right after compacting past 1,024 run tasks')
  t.equal(scheduler.backlog('A'), 300)
  rounds.drain()
  t.equal(scheduler.depth(), 0)
})

t.test('a task that reports no work used still spends a unit of its turn, so it cannot hold the turn forever', async (t) => {
  const rounds = new ManualRounds()
  const scheduler = new FairScheduler({ slice: 3, defer: rounds.defer })
  const runs: number[] = []
  for (let i = 0; i < 5; i++) scheduler.enqueue('A', task(1, runs, () => 0))
  rounds.step()
  t.same(runs, [3, 2, 1], 'three calls in a turn of 3, each charged one')
  t.equal(scheduler.depth(), 2)
})

t.test('after close, work is done at once and whole, a throwing task is reported, and no round runs', async (t) => {
  const rounds = new ManualRounds()
  const errors: unknown[] = []
  let aborted = 0
  const scheduler = new FairScheduler({ slice: 2, defer: rounds.defer, onError: (err) => { errors.push(err) } })
  scheduler.enqueue('A', task(5))
  t.equal(rounds.waiting, 1)
  t.equal(scheduler.close(), 1)
  rounds.drain()
  t.ok(scheduler.tryNow('A', 1000), 'any work may be done now')
  const runs: number[] = []
  scheduler.enqueue('A', task(7, runs))
  t.same(runs, [Number.MAX_SAFE_INTEGER], 'run at once, whole')
  scheduler.enqueue('A', { done: false, pending: 1, run: () => { throw new Error('boom') }, abort: () => { aborted++ } })
  t.equal(aborted, 1, 'told to settle what it owed')
  t.equal(errors.length, 1, 'and reported, not thrown')
  scheduler.enqueue('A', { done: false, pending: 1, run: () => { throw new Error('boom') } })
  t.equal(errors.length, 2, 'a task without abort is reported too')
  t.equal(rounds.waiting, 0)
  t.equal(scheduler.depth(), 0)
})
