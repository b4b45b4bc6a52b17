import t from 'tap'
import { LogThrottle } from '../../domain/log-throttle.js'

t.test('a key is logged once per window, and its next line says how many were only counted', async (t) => {
  let now = 0
  const throttle = new LogThrottle(1000, 100, () => now)
  t.equal(throttle.take('inflight acme'), 0, 'the first is logged')
  t.equal(throttle.take('inflight acme'), undefined, 'the next within the window is counted')
  t.equal(throttle.take('inflight acme'), undefined)
  t.equal(throttle.take('backlog acme'), 0, 'another key has its own window')
  now = 999
  t.equal(throttle.take('inflight acme'), undefined, 'still inside the window')
  now = 1000
  t.equal(throttle.take('inflight acme'), 3, 'after the window it is logged again, with the 3 counted since')
  t.equal(throttle.take('inflight acme'), undefined)
})

t.test('the keys remembered stay bounded: stale ones are pruned, and past the bound a new key is still logged', async (t) => {
  let now = 0
  const throttle = new LogThrottle(1000, 3, () => now)
  for (const key of ['a', 'b', 'c']) t.equal(throttle.take(key), 0)
  t.equal(throttle.size, 3)
  t.equal(throttle.take('d'), 0, 'past the bound, a new key is logged')
  t.equal(throttle.size, 3, 'but not remembered')
  t.equal(throttle.take('d'), 0, 'so it is logged each time, rather than lost')
  now = 1000
  t.equal(throttle.take('e'), 0)
  t.equal(throttle.size, 1, 'the stale keys were pruned to make room')
  t.equal(throttle.take('e'), undefined)
})
