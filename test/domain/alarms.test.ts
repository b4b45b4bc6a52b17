import t from 'tap'
import { transition, type AlarmRecord } from '../../domain/alarms.js'
import { AlarmService } from '../../domain/alarm-service.js'
import { MemoryAlarmStore } from '../../domain/alarm-store-memory.js'

const open: AlarmRecord = {
  id: 'a1',
  status: 'open',
  alarm: { id: 'a1', type: 'alarm', message: 'Smoke', camera: 'Hall', severity: 'critical', timestamp: '2030-01-01T00:00:00.000Z' },
  createdAt: '2030-01-01T00:00:00.000Z',
  escalations: []
}

t.test('an open alarm is acknowledged once: a second ack changes nothing and keeps the first', async (t) => {
  const first = transition(open, { kind: 'ack', by: 'alice', at: '2030-01-01T00:00:05.000Z', note: 'on it' })
  t.equal(first.changed, true)
  t.match(first.record, { status: 'acknowledged', acknowledgedBy: 'alice', acknowledgedAt: '2030-01-01T00:00:05.000Z', note: 'on it' })
  const second = transition(first.record, { kind: 'ack', by: 'bob', at: '2030-01-01T00:00:09.000Z' })
  t.equal(second.changed, false)
  t.equal(second.record, first.record, 'the record is the first ack, unchanged')
  t.equal(open.status, 'open', 'the input record is not modified')
})

t.test('resolve ends an open or acknowledged alarm, and nothing changes a resolved one', async (t) => {
  const resolved = transition(open, { kind: 'resolve', by: 'alice', at: '2030-01-01T00:01:00.000Z' })
  t.match(resolved, { changed: true, record: { status: 'resolved', resolvedBy: 'alice' } })
  const acked = transition(open, { kind: 'ack', by: 'bob', at: '2030-01-01T00:00:30.000Z' }).record
  t.match(transition(acked, { kind: 'resolve', by: 'carol', at: '2030-01-01T00:02:00.000Z' }), { changed: true, record: { status: 'resolved', acknowledgedBy: 'bob', resolvedBy: 'carol' } })
  for (const action of [{ kind: 'ack', by: 'x', at: 'now' }, { kind: 'resolve', by: 'x', at: 'now' }, { kind: 'expire', at: 'now', reason: 'ALARM_TTL' }, { kind: 'escalated', level: 1 }] as const) {
    t.equal(transition(resolved.record, action).changed, false, `${action.kind} leaves a resolved alarm alone`)
  }
})

t.test('only a policy expires an alarm, and an expired alarm can no longer be acknowledged', async (t) => {
  const expired = transition(open, { kind: 'expire', at: '2030-01-08T00:00:00.000Z', reason: 'ALARM_TTL' })
  t.match(expired, { changed: true, record: { status: 'expired', expiredReason: 'ALARM_TTL' } })
  t.equal(transition(expired.record, { kind: 'ack', by: 'alice', at: 'later' }).changed, false)
})

t.test('an escalation level is recorded once, in firing order', async (t) => {
  const one = transition(open, { kind: 'escalated', level: 2 }).record
  const two = transition(one, { kind: 'escalated', level: 1 }).record
  t.same(two.escalations, [2, 1])
  t.equal(transition(two, { kind: 'escalated', level: 2 }).changed, false)
})

t.test('an acknowledged alarm does not escalate: an ack that lands while an escalation is decided wins', async (t) => {
  const acked = transition(open, { kind: 'ack', by: 'alice', at: '2030-01-01T00:00:05.000Z' }).record
  t.equal(transition(acked, { kind: 'escalated', level: 1 }).changed, false)
  t.same(transition(acked, { kind: 'escalated', level: 1 }).record.escalations, [])
})

t.test('an alarm whose escalations could not be scheduled is not left open, and a retry schedules them', async (t) => {
  const store = new MemoryAlarmStore(100)
  let failures = 1
  const schedule = store.schedule.bind(store)
  // Redis refusing the one command that schedules: the store's own code, failing once.
  store.schedule = async (...args) => {
    if (failures-- > 0) throw new Error('redis went away')
    await schedule(...args)
  }
  const service = new AlarmService({
    store,
    publish: async () => { throw new Error('not published here') },
    severities: new Set(['critical']),
    maxOpen: 10,
    overflow: 'reject',
    ttlMs: 60_000,
    rules: () => [{ after: 60, to: { role: 'supervisor' } }] as never,
    clock: { now: () => Date.parse('2030-01-01T00:00:00.000Z'), setTimeout: () => 0, clearTimeout: () => {} },
    log: { info: () => {}, warn: () => {}, error: () => {} },
    observer: { acknowledged: () => {}, overflow: () => {} }
  })
  await t.rejects(service.open('acme', open.alarm), { message: 'redis went away' })
  t.equal(await store.get('acme', 'a1'), undefined, 'no open alarm without its schedule')
  await service.open('acme', open.alarm)
  const due = await store.due(Date.parse('2030-01-02T00:00:00.000Z'), 10)
  t.same(due.map((item) => item.level).sort(), [0, 1], 'its expiry and its one escalation are due')
})
