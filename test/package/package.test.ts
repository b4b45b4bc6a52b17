import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client, SECRET, sign } from '../helper.js'
import { NodeProcess, packAndInstall, plainEnv, ROOT } from './fixture.js'

const consumer = packAndInstall()
t.teardown(consumer.remove)

const HOST = `
import Fastify from 'fastify'
import tenantcast from 'tenantcast'

const app = Fastify()
await app.register(tenantcast, { config: { JWT_SECRET: process.env.SECRET } })
app.post('/incidents', async (request) => {
  const stored = await app.realtime.broadcast(request.body.tenant, 'alarm:created', { message: 'Incident assigned', camera: 'dispatch', severity: 'medium' })
  return { id: stored.id }
})
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\\n')
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
`

const CLIENT = `
import { connect } from 'tenantcast/client'

const client = connect({ url: process.env.URL, token: process.env.TOKEN, reconnect: false })
client.on('authenticated', () => { process.stdout.write(JSON.stringify({ ready: true }) + '\\n') })
client.on('alarm:created', (alarm, frame) => {
  process.stdout.write(JSON.stringify({ alarm, offset: frame.offset }) + '\\n')
  client.close()
})
`

const CJS = `
const Fastify = require('fastify')
const tenantcast = require('tenantcast')
const app = Fastify()
app.register(tenantcast, { config: { JWT_SECRET: process.env.SECRET } })
app.ready().then(() => {
  process.stdout.write(JSON.stringify({ plugin: typeof app.realtime.broadcast }) + '\\n')
  return app.close()
})
`

const CONSUMER_TS = `
import Fastify from 'fastify'
import tenantcast from 'tenantcast'
import { connect } from 'tenantcast/client'

const app = Fastify()
await app.register(tenantcast, { config: { JWT_SECRET: 'x'.repeat(40) } })
const stored = await app.realtime.broadcast('acme', 'alarm:created', { message: 'Motion', camera: 'Front Door', severity: 'high' })
const offset: number = stored.offset

const client = connect({ url: 'ws://localhost:3000/api/v1/events', token: 't' })
client.on('alarm:created', (alarm) => {
  const severity: 'low' | 'medium' | 'high' | 'critical' = alarm.severity
  return severity
})
export { offset }
`

const BAD_TS = `
import { connect } from 'tenantcast/client'

const client = connect({ url: 'ws://localhost:3000/api/v1/events', token: 't' })
client.on('alarm:created', (alarm) => alarm.severityLevel)
`

async function hostGateway (t: Tap): Promise<{ http: string, ws: string }> {
  writeFileSync(join(consumer.dir, 'host.mjs'), HOST)
  const host = new NodeProcess(consumer.dir, ['host.mjs'], { SECRET })
  t.teardown(async () => { host.kill(); await host.exited })
  const { port } = await host.firstJson()
  return { http: `http://127.0.0.1:${port as number}`, ws: `ws://127.0.0.1:${port as number}/api/v1/events` }
}
type Tap = { teardown (fn: () => unknown): void }

t.test('the tarball ships compiled JavaScript, types, the console and the docs, and no tests, bench or sources', async (t) => {
  const files = consumer.files
  for (const expected of ['dist/app.js', 'dist/app.d.ts', 'dist/app.js.map', 'dist/client/index.js', 'dist/client/index.d.ts', 'dist/bin/tenantcast.js', 'dist/server.js', 'public/index.html', 'public/tenantcast-client.js', 'README.md', 'LICENSE', 'docs/PROTOCOL.md', 'package.json']) {
    t.ok(files.includes(expected), `ships ${expected}`)
  }
  t.same(files.filter((f) => /^(test|bench|scripts)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), [], 'no test, bench, script or TypeScript source')
  t.notOk(existsSync(join(consumer.dir, 'node_modules', 'tsx')), 'the consumer has no tsx')
  t.notOk(existsSync(join(consumer.dir, 'node_modules', 'typescript')), 'the consumer has no TypeScript')
})

t.test('a plain-Node .mjs Fastify host registers the plugin and its route\'s broadcast reaches a WebSocket client', async (t) => {
  const gw = await hostGateway(t)
  const socket = new Client(`${gw.ws}?token=${sign({ tenantId: 'acme' })}`)
  await socket.next('authenticated')
  const reply = await fetch(`${gw.http}/incidents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant: 'acme' }) })
  t.equal(reply.status, 200)
  const { id } = await reply.json() as { id: string }
  t.match(await socket.next('event'), { event: 'alarm:created', id, data: { id, type: 'alarm', message: 'Incident assigned', severity: 'medium' } })
  socket.close()
})

t.test('a plain-Node .mjs script imports tenantcast/client and receives a posted alarm', async (t) => {
  const gw = await hostGateway(t)
  writeFileSync(join(consumer.dir, 'client.mjs'), CLIENT)
  const script = new NodeProcess(consumer.dir, ['client.mjs'], { URL: gw.ws, TOKEN: sign({ tenantId: 'acme' }) })
  t.same(await script.firstJson(), { ready: true })
  const posted = await fetch(`${gw.http}/api/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${sign({ tenantId: 'acme' })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'Motion detected', camera: 'Front Door', severity: 'high' })
  })
  t.equal(posted.status, 202)
  t.equal(await script.exited, 0)
  const received = JSON.parse(script.stdout.trim().split('\n').at(-1) as string) as { alarm: Record<string, unknown>, offset: number }
  t.match(received, { alarm: { message: 'Motion detected', camera: 'Front Door', severity: 'high', type: 'alarm' }, offset: 1 })
})

t.test('npx tenantcast token prints a token that the server accepts', async (t) => {
  const gw = await hostGateway(t)
  const minted = spawnSync('npx', ['--no', 'tenantcast', 'token', '--tenant', 'acme', '--sub', 'cli-user'], { cwd: consumer.dir, env: plainEnv({ JWT_SECRET: SECRET }), encoding: 'utf8', timeout: 30_000 })
  t.equal(minted.status, 0, minted.stderr)
  const socket = new Client(`${gw.ws}?token=${minted.stdout.trim()}`)
  t.match(await socket.next('authenticated'), { userId: 'cli-user', tenantId: 'acme' })
  socket.close()
})

t.test('a CommonJS host on Node 20.19+ gets the plugin from require(\'tenantcast\')', async (t) => {
  writeFileSync(join(consumer.dir, 'host.cjs'), CJS)
  const host = new NodeProcess(consumer.dir, ['host.cjs'], { SECRET })
  t.same(await host.firstJson(), { plugin: 'function' })
  t.equal(await host.exited, 0, host.stderr)
})

t.test('a TypeScript consumer type-checks against the shipped .d.ts, and a deliberate type error fails', async (t) => {
  writeFileSync(join(consumer.dir, 'consumer.ts'), CONSUMER_TS)
  writeFileSync(join(consumer.dir, 'bad.ts'), BAD_TS)
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  // Node's own types come from this checkout; everything of ours comes from the tarball.
  const flags = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023', '--skipLibCheck', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types')]
  const good = spawnSync(process.execPath, [tsc, ...flags, 'consumer.ts'], { cwd: consumer.dir, env: plainEnv(), encoding: 'utf8', timeout: 60_000 })
  t.equal(good.status, 0, good.stdout)
  const bad = spawnSync(process.execPath, [tsc, ...flags, 'bad.ts'], { cwd: consumer.dir, env: plainEnv(), encoding: 'utf8', timeout: 60_000 })
  t.not(bad.status, 0)
  t.match(bad.stdout, /bad\.ts\(5,.*Property 'severityLevel' does not exist/)
})
