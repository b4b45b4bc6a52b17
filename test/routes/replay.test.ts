import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import WebSocket from 'ws'
import { build, Client, events, freePort, SECRET, sign } from '../helper.js'

const SOCKETS = 50
const EVENTS = 1000
/** Each event's `data` is exactly 16 KiB of JSON. */
const TEXT = 'x'.repeat(16 * 1024 - '{"text":""}'.length)
/**
 * Peak RSS growth allowed while every socket replays at once. Paced, each socket holds at most
 * MAX_BUFFERED_BYTES / 2 plus one frame and the socket's high-water mark (~0.55 MiB at the
 * default 1 MiB), about 28 MiB for 50; the rest of the bound is V8's headroom for the frames
 * built and freed meanwhile. Measured: 10 to 45 MiB paced (GC timing varies); 553 MiB unpaced, when every socket
 * queued its whole 16 MiB replay in one turn.
 */
const RSS_BOUND = 96 * 1024 * 1024

/** A status field of a process in kB (Linux /proc), in bytes. */
function procStatus (pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match?.[1] ?? NaN) * 1024
}

/**
 * Resumes from `since` and counts the events, checking their offsets run 1..EVENTS without a gap.
 * An upgrade shed with 503 OVERLOADED (a sample window of the loaded server held no tick) is
 * retried after its Retry-After, as every client of the gateway does.
 */
async function resumeAll (url: string, shed = 0): Promise<{ events: number, inOrder: boolean, recovered: string, code: number, shed: number }> {
  const result = await new Promise<{ events: number, inOrder: boolean, recovered: string, code: number, overloaded: boolean }>((resolve) => {
    const socket = new WebSocket(url)
    let events = 0
    let inOrder = true
    let recovered = ''
    let overloaded = false
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk) => { body += String(chunk) })
      response.on('end', () => {
        overloaded = response.statusCode === 503 && body.includes('"code":"OVERLOADED"') && response.headers['retry-after'] === '1'
        socket.terminate()
      })
    })
    socket.on('message', (data) => {
      const text = String(data)
      if (text.startsWith('{"type":"event"')) {
        events++
        const at = text.lastIndexOf('"offset":')
        if (Number.parseInt(text.slice(at + 9), 10) !== events) inOrder = false
        return
      }
      if (text.startsWith('{"type":"recovered"')) {
        recovered = text
        socket.close()
      }
    })
    socket.on('error', () => {})
    socket.on('close', (code) => { resolve({ events, inOrder, recovered, code, overloaded }) })
  })
  if (result.overloaded && shed < 5) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    return await resumeAll(url, shed + 1)
  }
  return { ...result, shed }
}

t.test('50 sockets resuming 1,000 events of 16 KiB at once each get every event, while server RSS stays bounded', {
  skip: process.platform === 'linux' ? false : 'reads peak RSS from /proc',
  timeout: 110000
}, async (t) => {
  const port = await freePort()
  // A child process, so that its RSS is the server's alone and not the 50 clients' (and coverage
  // hooks stay out: they would add to it).
  const child = spawn('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', process.execPath, '--import', 'tsx', 'server.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      JWT_SECRET: SECRET,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      HISTORY_SIZE: String(EVENTS),
      MAX_PUBLISH_BYTES: String(16 * 1024),
      REST_RATE_LIMIT: '100000',
      MAX_CONNECTIONS_PER_USER: '0',
      // Two shared cores: load shedding would turn a busy moment into a refused upgrade.
      MAX_EVENT_LOOP_DELAY: '60000'
    },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const http = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300 && (await fetch(`${http}/ready`).catch(() => undefined))?.status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const publisher = sign({ roles: ['publisher'] }, { expiresIn: 600_000 })
  let epoch = ''
  const statuses = new Set<number>()
  const body = JSON.stringify({ event: 'note', data: { text: TEXT } })
  for (let n = 0; n < EVENTS; n += 20) {
    await Promise.all(Array.from({ length: 20 }, async () => {
      const reply = await fetch(`${http}/api/v1/publish`, { method: 'POST', headers: { authorization: `Bearer ${publisher}`, 'content-type': 'application/json' }, body })
      statuses.add(reply.status)
      epoch = ((await reply.json()) as { epoch: string }).epoch
    }))
  }
  t.same([...statuses], [202], `${EVENTS} events stored`)
  const pid = child.pid as number
  await new Promise((resolve) => setTimeout(resolve, 500))
  const before = procStatus(pid, 'VmRSS')
  // Resets the peak (VmHWM) to the current RSS, so that the peak below is the replay's.
  writeFileSync(`/proc/${pid}/clear_refs`, '5')

  const url = `ws://127.0.0.1:${port}/api/v1/events?token=${sign({}, { expiresIn: 600_000 })}&since=${epoch}:0`
  const results = await Promise.all(Array.from({ length: SOCKETS }, async () => await resumeAll(url)))
  const growth = procStatus(pid, 'VmHWM') - before
  t.comment(`server RSS ${Math.round(before / 1048576)} MiB before; peak growth ${Math.round(growth / 1048576)} MiB while ${SOCKETS} sockets replayed ${EVENTS} x 16 KiB`)
  t.same(results.filter((r) => r.events !== EVENTS || !r.inOrder).map((r) => [r.events, r.code]), [], 'every socket got every event, in order')
  t.ok(results.every((r) => r.recovered.includes(`"count":${EVENTS}`)), 'and a recovered frame counting them all')
  const shed = results.reduce((sum, r) => sum + r.shed, 0)
  if (shed > 0) t.comment(`${shed} upgrades were shed with 503 OVERLOADED and retried`)
  t.ok(growth < RSS_BOUND, `peak RSS growth ${Math.round(growth / 1048576)} MiB < ${RSS_BOUND / 1048576} MiB`)
})

t.test('a replay to a reader that stops reading waits for it, and then delivers everything, live events after', { timeout: 30000 }, async (t) => {
  const gw = await build(t, { MAX_BUFFERED_BYTES: 65536, HISTORY_SIZE: 300, MAX_PUBLISH_BYTES: 16 * 1024 })
  let epoch = ''
  for (let n = 0; n < 300; n++) epoch = (await gw.app.realtime.broadcast('t1', 'note', { text: TEXT })).epoch
  const paused = new Client(`${gw.ws}?token=${sign()}&since=${epoch}:0`)
  await paused.opened
  paused.socket.pause()
  await new Promise((resolve) => setTimeout(resolve, 300))
  // Published while the replay waits: held, and sent after it.
  await gw.app.realtime.broadcast('t1', 'note', { text: 'live' })
  t.equal(await gw.app.realtime.connectionCount('t1'), 1, 'the paced replay did not trip the slow-consumer guard')
  paused.socket.resume()
  t.match(await paused.next('recovered'), { recovered: true, count: 300 })
  const live = await paused.next('event')
  t.same(events(paused).map((e) => e.offset), Array.from({ length: 301 }, (_, i) => i + 1), 'every event once, in order')
  t.match(live, { offset: 301, data: { text: 'live' } })
  paused.close()
})
