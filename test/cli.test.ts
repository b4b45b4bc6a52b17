import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { connect, decodeTokenPayload } from '../client/index.js'
import { reach } from './client/helpers.js'
import { TsChild } from './child.js'
import { main } from '../bin/cli.js'
import { createStandalone } from '../app.js'
import { build, Client, freePort, post, postAlarm, SECRET, sign } from './helper.js'

type Tap = { teardown (fn: () => unknown): void }

/**
 * The CLI's `main`, run in this process with its own standard streams and environment: the
 * same code the `tenantcast` binary runs, without a TypeScript child start per case (which
 * made this file the slowest in CI). The binary itself, as a process, is tested at the end.
 */
class Cli {
  stdout = ''
  stderr = ''
  readonly exited: Promise<number>
  private wake: Array<() => void> = []
  private stop: () => void = () => {}
  private done = false

  constructor (args: string[], env: Record<string, string | undefined> = {}, stdin?: string) {
    const notify = (): void => { for (const wake of this.wake.splice(0)) wake() }
    const interrupted = new Promise<void>((resolve) => { this.stop = resolve })
    this.exited = main(args, {
      out: (text) => { this.stdout += text; notify() },
      err: (text) => { this.stderr += text; notify() },
      env: Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined)),
      stdin: async () => stdin ?? '',
      interrupted
    }).finally(() => { this.done = true; notify() })
  }

  /** What SIGINT and SIGTERM do to the binary. */
  interrupt (): void { this.stop() }

  /** Waits until a condition on the output holds; throws when the command ends first. */
  async until (condition: () => boolean): Promise<void> {
    while (!condition()) {
      if (this.done) throw new Error(`the command ended: ${this.stderr}`)
      await new Promise<void>((resolve) => { this.wake.push(resolve) })
    }
  }

  lines (): string[] {
    return this.stdout.split('\n').filter((line) => line !== '')
  }
}

function cli (t: Tap, args: string[], env: Record<string, string | undefined> = {}, stdin?: string): Cli {
  const run = new Cli(args, env, stdin)
  t.teardown(async () => { run.interrupt(); await run.exited })
  return run
}

async function run (t: Tap, args: string[], env: Record<string, string | undefined> = {}, stdin?: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const command = cli(t, args, env, stdin)
  const code = await command.exited
  return { code, stdout: command.stdout, stderr: command.stderr }
}


t.test('token mints a token the gateway accepts, with the given tenant, user, roles and lifetime', async (t) => {
  const gw = await build(t)
  const result = await run(t, ['token', '--tenant', 'acme', '--sub', 'alice', '--roles', 'publisher', '--ttl', '10m'], { JWT_SECRET: SECRET })
  t.equal(result.code, 0, result.stderr)
  const token = result.stdout.trim()
  const claims = decodeTokenPayload(token) as Record<string, unknown>
  t.match(claims, { sub: 'alice', tenantId: 'acme', roles: ['publisher'] })
  t.equal((claims.exp as number) - (claims.iat as number), 600)
  const client = connect({ url: gw.ws, token })
  t.teardown(() => { client.close() })
  await reach(client, 'open')
  t.match(client.session, { tenantId: 'acme', userId: 'alice' })
  const published = await post(gw, '/api/v1/publish', token, { event: 'toast', data: { text: 'hi' } })
  t.equal(published.status, 202, 'the publisher role is honoured')
})

t.test('usage errors exit 2 and say what is wrong; --help exits 0 on every command', async (t) => {
  const cases: Array<[string[], Record<string, string>, number, RegExp]> = [
    [['token', '--tenant', 'acme', '--sub', 'alice'], {}, 2, /JWT_SECRET is not set/],
    [['token', '--sub', 'alice'], { JWT_SECRET: SECRET }, 2, /--tenant is required/],
    [['token', '--tenant', 'a', '--sub', 'b', '--ttl', 'soon'], { JWT_SECRET: SECRET }, 2, /--ttl must look like/],
    [['tail', '--bogus'], {}, 2, /Unknown option '--bogus'/],
    [['tail', '--url', 'http://127.0.0.1:1'], {}, 2, /a token is required/],
    [['tail', '--token', 'x', '--since', 'yesterday'], {}, 2, /--since: a position is <epoch>:<offset>/],
    [['tail', '--token', 'Bearer eyJ'], {}, 2, /the token has characters no token can have/],
    [['alarm', '--token', 'x', '--message', 'm', '--camera', 'c', '--severity', 'apocalyptic'], {}, 2, /--severity must be one of/],
    [['alarm', '--token', 'x', '--camera', 'c', '--severity', 'low'], {}, 2, /--message is required/],
    [['tail', '--token', 'x', '--token-file', '/nowhere'], {}, 2, /give one token source, not --token and --token-file/],
    [['tail', '--token-file', '/nowhere/token'], {}, 2, /--token-file: cannot read \/nowhere\/token: ENOENT/],
    [['tail', '--token-command', 'echo oops >&2; exit 7'], {}, 3, /--token-command failed \(exit 7\): oops/],
    [['alarm', '--token-command', 'true', '--message', 'm', '--camera', 'c', '--severity', 'low'], {}, 3, /no token in the --token-command output/],
    [['launch'], {}, 2, /unknown command "launch"/],
    [[], {}, 2, /^tenantcast: command-line tools/]
  ]
  const results = await Promise.all(cases.map(async ([args, env]) => await run(t, args, env)))
  cases.forEach(([args, , code, message], i) => {
    const result = results[i] as { code: number | null, stderr: string }
    t.equal(result.code, code, `tenantcast ${args.join(' ')}`)
    t.match(result.stderr, message)
  })
  const helps = await Promise.all([['--help'], ['token', '--help'], ['tail', '--help'], ['alarm', '-h']].map(async (args) => await run(t, args)))
  for (const help of helps) {
    t.equal(help.code, 0)
    t.match(help.stdout, /Usage:/)
    t.equal(help.stderr, '')
  }
})

t.test('tail prints alarms as JSON lines: replayed from --since, then live, until interrupted', async (t) => {
  const gw = await build(t)
  const token = sign()
  const first = await postAlarm(gw, token, { message: '#1' })
  const tail = cli(t, ['tail', '--url', gw.http, '--since', `${first.body.epoch as string}:0`, '--json'], { TENANTCAST_TOKEN: token })
  await tail.until(() => tail.lines().length === 1)
  await tail.until(() => tail.stderr.includes('open as u1 in tenant t1'))
  await postAlarm(gw, token, { message: '#2', severity: 'critical' })
  await tail.until(() => tail.lines().length === 2)
  const events = tail.lines().map((line) => JSON.parse(line) as { type: string, offset: number, event: string, data: { message: string, severity: string } })
  t.equal(events.length, 2, 'each event printed once')
  t.match(events, [
    { type: 'event', event: 'alarm:created', offset: 1, data: { message: '#1' } },
    { type: 'event', event: 'alarm:created', offset: 2, data: { message: '#2', severity: 'critical' } }
  ])
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

t.test('tail in text mode prints one readable line per event, channels included', async (t) => {
  const gw = await build(t)
  const tail = cli(t, ['tail', '--url', gw.ws, '--token', sign(), '--channel', 'ops'])
  await tail.until(() => tail.stderr.includes('open as u1'))
  // The channel join follows authentication; wait for it through the gateway's presence count.
  for (let i = 0; i < 200 && await gw.app.realtime.channelConnectionCount('t1', 'ops') === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await postAlarm(gw, sign(), { message: 'Motion detected', camera: 'Front Door', severity: 'high' })
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 3 })
  await tail.until(() => tail.lines().length === 2)
  t.match(tail.lines()[0], /^\S+Z tenant#1 alarm:created \[high\] Front Door: Motion detected$/)
  t.match(tail.lines()[1], /^\S+Z channel:ops#1 door:opened \{"door":3\}$/)
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

t.test('tail exits 3 on a refused token and 4 when the gateway cannot be reached', async (t) => {
  const gw = await build(t)
  const port = await freePort()
  const [refused, unreachable] = await Promise.all([
    run(t, ['tail', '--url', gw.ws, '--token', sign({}, { key: 'not-the-gateway-secret-but-long-enough-0123456789' })]),
    run(t, ['tail', '--url', `ws://127.0.0.1:${port}`, '--token', sign()])
  ])
  t.equal(refused.code, 3)
  t.match(refused.stderr, /closed \(4401 TOKEN_INVALID\)/)
  t.equal(unreachable.code, 4)
  t.match(unreachable.stderr, new RegExp(`cannot connect to ws://127\\.0\\.0\\.1:${port}/api/v1/events`))
})

t.test('alarm posts an alarm and prints where it was stored; auth, validation and network failures have their own codes', async (t) => {
  const gw = await build(t)
  const port = await freePort()
  const alarm = ['alarm', '--message', 'Glass break', '--camera', 'Shop', '--severity', 'critical']
  const [ok, refused, invalid, unreachable] = await Promise.all([
    run(t, [...alarm, '--url', gw.http, '--token', sign(), '--idempotency-key', 'k-1']),
    run(t, [...alarm, '--url', gw.http, '--token', 'not-a-jwt']),
    run(t, ['alarm', '--url', gw.ws, '--token', sign(), '--message', 'x'.repeat(501), '--camera', 'c', '--severity', 'low']),
    run(t, [...alarm, '--url', `http://127.0.0.1:${port}`, '--token', sign()])
  ])
  t.equal(ok.code, 0, ok.stderr)
  t.match(JSON.parse(ok.stdout), { stream: 'tenant', offset: 1 })
  t.equal(refused.code, 3)
  t.match(refused.stderr, /401 TOKEN_MALFORMED/)
  t.equal(invalid.code, 1)
  t.match(invalid.stderr, /400 VALIDATION_FAILED/)
  t.equal(unreachable.code, 4)
  t.match(unreachable.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/v1\/alarms: ECONNREFUSED/)
  const history = await fetch(`${gw.http}/api/v1/events/history`, { headers: { authorization: `Bearer ${sign()}` } })
  const stored = await history.json() as { events: unknown[] }
  t.equal(stored.events.length, 1, 'exactly one alarm was stored')
  t.match(stored.events[0], { offset: 1, data: { message: 'Glass break', camera: 'Shop', severity: 'critical' } })
})

/** A private directory for token files, removed in teardown. */
async function scratch (t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tenantcast-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000)

t.test('tail with --token-file outlives its first token: it reads the file again before the token expires and carries on', async (t) => {
  const gw = await build(t)
  const dir = await scratch(t)
  const file = join(dir, 'token')
  // Issued 20 s ago, expiring in 10 s: the refresh is due about 2.8 s before expiry, which
  // leaves a loaded machine time to start the child.
  const expiry = nowSeconds() + 10
  await writeFile(file, sign({ iat: nowSeconds() - 20, exp: expiry }) + '\n')
  const tail = cli(t, ['tail', '--url', gw.http, '--token-file', file, '--json'])
  await tail.until(() => tail.stderr.includes('open as u1'))
  await writeFile(file, sign({ exp: nowSeconds() + 600 }))
  // Past the first token's expiry: a tail that kept it would have been closed with 4401 by now.
  await new Promise((resolve) => setTimeout(resolve, expiry * 1000 + 1500 - Date.now()))
  await postAlarm(gw, sign(), { message: 'after expiry' })
  await tail.until(() => tail.lines().length === 1)
  t.match(JSON.parse(tail.lines()[0] as string), { event: 'alarm:created', offset: 1, data: { message: 'after expiry' } })
  t.notMatch(tail.stderr, /4401|closed/, 'the token was refreshed on the live connection')
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

t.test('tail with --token-command runs the command again after a 4401 and reconnects with the new token, resuming without loss', async (t) => {
  const gw = await build(t)
  const dir = await scratch(t)
  const calls = join(dir, 'calls')
  // Issued 20 s ago and expiring in 6 s: the refresh (a tenth of the lifetime before exp) runs
  // about 2.6 s before the server's 4401. The command prints the old token on its first two
  // runs (start, refresh) and a new one from the third on, which only the 4401 can ask for.
  await writeFile(join(dir, 'old'), sign({ iat: nowSeconds() - 20, exp: nowSeconds() + 6 }))
  await writeFile(join(dir, 'new'), sign({ exp: nowSeconds() + 600 }))
  const command = `cd '${dir}' && echo run >> calls && if [ "$(wc -l < calls)" -le 2 ]; then cat old; else cat new; fi`
  const tail = cli(t, ['tail', '--url', gw.http, '--token-command', command, '--json'])
  await tail.until(() => tail.stderr.includes('open as u1'))
  await postAlarm(gw, sign(), { message: 'before' })
  await tail.until(() => tail.lines().length === 1)
  await tail.until(() => tail.stderr.includes('4401 TOKEN_EXPIRED'))
  await tail.until(() => tail.stderr.split('open as u1').length === 3)
  const runs = (await readFile(calls, 'utf8')).split('\n').filter((line) => line !== '').length
  t.equal(runs, 3, `start, refresh (same token, kept), 4401 (new token): ${tail.stderr}`)
  await postAlarm(gw, sign(), { message: 'after' })
  await tail.until(() => tail.lines().length === 2)
  t.same(tail.lines().map((line) => (JSON.parse(line) as { offset: number }).offset), [1, 2], 'each event once, in order')
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

t.test('alarm reads its token from stdin with --token-file -, so it never appears in the process list', async (t) => {
  const gw = await build(t)
  const result = await run(t, ['alarm', '--url', gw.http, '--token-file', '-', '--message', 'from stdin', '--camera', 'c', '--severity', 'low'], {}, sign() + '\n')
  t.equal(result.code, 0, result.stderr)
  t.match(JSON.parse(result.stdout), { stream: 'tenant', offset: 1 })
})

/** A gateway on a given port, so that a test can stop it and start another in its place, as a deploy does. */
async function gatewayOn (t: Tap, port: number, config: Record<string, unknown> = {}): Promise<{ close: () => Promise<void> }> {
  const app = await createStandalone({ logStream: new Writable({ write (_chunk, _enc, done) { done() } }), config: { JWT_SECRET: SECRET, WS_SHUTDOWN_TIMEOUT: 1000, RECONNECT_JITTER_MS: 200, ...config } })
  await app.listen({ port, host: '127.0.0.1' })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await app.close()
  }
  t.teardown(close)
  return { close }
}

t.test('tail retries an early 4029 and reports it as a limit, then rides out a restart of the gateway, instead of exiting 4', async (t) => {
  const port = await freePort()
  const first = await gatewayOn(t, port, { MAX_CONNECTIONS_PER_USER: 1 })
  const holder = new Client(`ws://127.0.0.1:${port}/api/v1/events?token=${sign()}`)
  await holder.next('authenticated')
  const tail = cli(t, ['tail', '--url', `http://127.0.0.1:${port}`, '--token', sign()])
  await tail.until(() => /refused by a limit \(4029 USER_CONNECTION_LIMIT\); reconnecting in \d+ ms/.test(tail.stderr))
  t.notMatch(tail.stderr, /cannot connect|open as/)
  // The deploy: the old gateway goes (the holder with it), nothing listens for a while, a new one comes.
  await first.close()
  await tail.until(() => /connection lost \(1006\); reconnecting/.test(tail.stderr))
  await gatewayOn(t, port)
  await tail.until(() => tail.stderr.includes('open as u1'))
  t.notMatch(tail.stderr, /cannot connect/)
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

t.test('a refused --channel ends tail with exit 1, and with --allow-missing it goes on without it', async (t) => {
  const gw = await build(t)
  const refused = await run(t, ['tail', '--url', gw.http, '--token', sign(), '--channel', 'ops', '--channel', 'not a name'])
  t.equal(refused.code, 1, refused.stderr)
  t.match(refused.stderr, /cannot join channel not a name: INVALID_CHANNEL/)
  const forbidden = await run(t, ['tail', '--url', gw.http, '--token', sign({ channels: ['ops'] }), '--channel', 'finance'])
  t.equal(forbidden.code, 3, forbidden.stderr)
  t.match(forbidden.stderr, /cannot join channel finance: CHANNEL_FORBIDDEN/)
  const tail = cli(t, ['tail', '--url', gw.http, '--token', sign(), '--channel', 'not a name', '--channel', 'ops', '--allow-missing'])
  await tail.until(() => tail.stderr.includes('channel not a name refused (INVALID_CHANNEL'))
  for (let i = 0; i < 500 && await gw.app.realtime.channelConnectionCount('t1', 'ops') === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await gw.app.realtime.sendToChannel('t1', 'ops', 'door:opened', { door: 1 })
  await tail.until(() => tail.lines().length === 1)
  t.match(tail.lines()[0], /channel:ops#1 door:opened/)
  tail.interrupt()
  t.equal(await tail.exited, 0)
})

/**
 * A real HTTP front (as a load balancer during a deploy) before a gateway: it answers the first
 * `refusals` requests with 503 and the given Retry-After, and passes the rest through.
 */
async function front (t: Tap, gateway: string, refusals: number, retryAfter: string | undefined): Promise<{ url: string, requests: () => number, keys: Array<string | undefined> }> {
  let requests = 0
  const keys: Array<string | undefined> = []
  const server = createServer((req, res) => {
    requests++
    keys.push(req.headers['idempotency-key'] as string | undefined)
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      if (requests <= refusals) {
        res.writeHead(503, { 'content-type': 'application/json', ...(retryAfter === undefined ? {} : { 'retry-after': retryAfter }) })
        res.end(JSON.stringify({ statusCode: 503, code: 'BROKER_UNAVAILABLE', message: 'try again' }))
        return
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name !== 'host' && name !== 'content-length')) as Record<string, string>
      fetch(`${gateway}${req.url ?? '/'}`, { method: req.method, headers, body: Buffer.concat(chunks) }).then(async (answer) => {
        res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' })
        res.end(await answer.text())
      }, () => { res.destroy() })
    })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { await new Promise((resolve) => { server.close(resolve) }) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, keys }
}

const ALARM = ['alarm', '--message', 'Glass break', '--camera', 'Shop', '--severity', 'critical']

async function storedAlarms (gw: { http: string }): Promise<number> {
  const history = await fetch(`${gw.http}/api/v1/events/history`, { headers: { authorization: `Bearer ${sign()}` } })
  return ((await history.json()) as { events: unknown[] }).events.length
}

t.test('alarm waits out a 503\'s Retry-After and retries with the same idempotency key, storing the alarm once', async (t) => {
  const gw = await build(t)
  const lb = await front(t, gw.http, 2, '1')
  const started = Date.now()
  const result = await run(t, [...ALARM, '--url', lb.url, '--token', sign()])
  t.equal(result.code, 0, result.stderr)
  t.match(JSON.parse(result.stdout), { stream: 'tenant', offset: 1 })
  t.equal(lb.requests(), 3, 'two refusals, then the one that went through')
  t.ok(Date.now() - started >= 2000, 'each Retry-After of 1 s was waited out')
  t.equal(result.stderr.match(/503 BROKER_UNAVAILABLE: try again; retrying in 1 s \(retry \d of 3\)/g)?.length, 2)
  t.equal(new Set(lb.keys).size, 1, 'every attempt carries the same key')
  t.match(lb.keys[0], /^[0-9a-f-]{36}$/, 'one made up for the command')
  t.equal(await storedAlarms(gw), 1)
})

t.test('alarm retries a 503 only --retries times, then exits 1 having sent exactly that many more requests', async (t) => {
  const gw = await build(t)
  const lb = await front(t, gw.http, 100, '0')
  const result = await run(t, [...ALARM, '--url', lb.url, '--token', sign(), '--retries', '2', '--idempotency-key', 'mine'])
  t.equal(result.code, 1, result.stderr)
  t.equal(lb.requests(), 3)
  t.same(lb.keys, ['mine', 'mine', 'mine'])
  t.match(result.stderr, /gave up after 2 retries/)
  t.equal(await storedAlarms(gw), 0)
})

t.test('alarm reports a 429 whose Retry-After is longer than it waits, at once and as a limit', async (t) => {
  const gw = await build(t, { REST_RATE_LIMIT_PER_PRINCIPAL: 1 })
  const first = await run(t, [...ALARM, '--url', gw.http, '--token', sign()])
  t.equal(first.code, 0, first.stderr)
  const started = Date.now()
  const limited = await run(t, [...ALARM, '--url', gw.http, '--token', sign()])
  t.equal(limited.code, 1)
  t.match(limited.stderr, /429 RATE_LIMITED: .*; the gateway asks to retry in \d+ s, longer than the 30 s tenantcast waits/)
  t.ok(Date.now() - started < 20_000, 'not waited out')
  t.equal(await storedAlarms(gw), 1)
})

t.test('alarm gives up on a gateway that accepts the connection but never answers, after --timeout, with exit 4', async (t) => {
  const sockets: Socket[] = []
  let requests = 0
  const silent = createNetServer((socket) => {
    sockets.push(socket)
    socket.on('data', (chunk: Buffer) => { if (/^POST /.test(String(chunk))) requests++ })
  })
  await new Promise<void>((resolve) => { silent.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => { silent.close(resolve) })
  })
  const started = Date.now()
  const result = await run(t, [...ALARM, '--url', `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, '--token', sign(), '--timeout', '1s'])
  t.equal(result.code, 4, result.stderr)
  t.match(result.stderr, /no answer from http:\/\/127\.0\.0\.1:\d+\/api\/v1\/alarms within 1 s \(--timeout\)/)
  t.ok(Date.now() - started < 20_000, 'bounded by the timeout, not by the child\'s limit')
  t.equal(requests, 1, 'one request, not retried')
})

t.test('the tenantcast binary as a process: its token from standard input, the exit code as its status, and SIGINT or SIGTERM end tail with 0', async (t) => {
  const gw = await build(t)
  const clean = { JWT_SECRET: undefined, TENANTCAST_TOKEN: undefined, TENANTCAST_URL: undefined }
  const binary = (args: string[], env: Record<string, string | undefined>, stdin?: string): TsChild => {
    const child = new TsChild('bin/tenantcast.ts', args, { ...clean, ...env }, stdin === undefined ? {} : { stdin })
    t.teardown(() => { if (child.child.exitCode === null) child.child.kill('SIGKILL') })
    return child
  }
  const alarm = binary(['alarm', '--url', gw.http, '--token-file', '-', '--message', 'piped', '--camera', 'c', '--severity', 'low'], {}, sign() + '\n')
  const usage = binary(['launch'], {})
  const tails = [binary(['tail', '--url', gw.http, '--json'], { TENANTCAST_TOKEN: sign() }), binary(['tail', '--url', gw.http], { TENANTCAST_TOKEN: sign({ sub: 'u2' }) })]
  t.equal(await alarm.exited, 0, alarm.stderr)
  t.match(JSON.parse(alarm.stdout), { stream: 'tenant', offset: 1 })
  t.equal(await usage.exited, 2)
  t.match(usage.stderr, /unknown command "launch"/)
  for (const [i, tail] of tails.entries()) {
    await tail.until(() => tail.stderr.includes('open as u'))
    tail.child.kill(i === 0 ? 'SIGINT' : 'SIGTERM')
    t.equal(await tail.exited, 0)
  }
})
