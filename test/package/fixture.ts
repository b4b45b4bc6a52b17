import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * tenantcast as a stranger gets it: `npm pack`, then the tarball installed into an empty
 * project outside this checkout (so no module of ours is found by walking up), with fastify
 * and nothing else of ours. The install is offline: its lockfile is this checkout's
 * production subtree, whose tarballs `npm ci` already put in npm's cache, so the test
 * downloads nothing.
 */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface Consumer {
  dir: string
  tarball: string
  /** Packed size in bytes, and the packed file list. */
  size: number
  files: string[]
  remove: () => void
}

/** The environment of a consumer's processes: plain node, none of tap's loaders or coverage hooks. */
export function plainEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  for (const key of Object.keys(env)) if (key.startsWith('TAP')) delete env[key]
  return env
}

function run (command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, env: plainEnv(), encoding: 'utf8', timeout: 120_000 })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${String(result.status)}): ${result.stderr}`)
  return result.stdout
}

export function packAndInstall (): Consumer {
  const dir = mkdtempSync(join(tmpdir(), 'tenantcast-consumer-'))
  // `npm pack` runs `prepare`, which builds dist/ fresh.
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as Array<{ filename: string, integrity: string, size: number, files: Array<{ path: string }> }>
  if (packed === undefined) throw new Error('npm pack produced nothing')
  const ours = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, license: string, dependencies: Record<string, string>, bin: Record<string, string>, engines: Record<string, string> }
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const root = { name: 'consumer', version: '1.0.0', dependencies: { tenantcast: `file:${packed.filename}`, fastify: ours.dependencies.fastify as string } }
  const packages: Record<string, unknown> = {
    '': root,
    'node_modules/tenantcast': { version: ours.version, resolved: `file:${packed.filename}`, integrity: packed.integrity, license: ours.license, dependencies: ours.dependencies, bin: ours.bin, engines: ours.engines }
  }
  for (const [path, entry] of Object.entries(lock.packages)) if (path !== '' && entry.dev !== true) packages[path] = entry
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...root, private: true, type: 'module' }, null, 2))
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2))
  run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], dir)
  return { dir, tarball: join(dir, packed.filename), size: packed.size, files: packed.files.map((f) => f.path), remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

/** A plain `node` process in the consumer project, with its output collected. */
export class NodeProcess {
  stdout = ''
  stderr = ''
  readonly exited: Promise<number | null>
  private readonly child

  constructor (cwd: string, args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, args, { cwd, env: plainEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout.on('data', (chunk: Buffer) => { this.stdout += String(chunk) })
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr += String(chunk) })
    // Bounded: a consumer process still running after 30 s is killed and its test fails.
    const limit = setTimeout(() => { this.child.kill('SIGKILL') }, 30_000)
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => { clearTimeout(limit); resolve(code) })
    })
  }

  /** The first stdout line that parses as JSON. */
  async firstJson (): Promise<Record<string, any>> {
    for (;;) {
      const line = this.stdout.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) return JSON.parse(line) as Record<string, any>
      const done = await Promise.race([this.exited.then(() => true), new Promise<false>((resolve) => setTimeout(() => { resolve(false) }, 20))])
      if (done && !this.stdout.includes('{')) throw new Error(`exited without output: ${this.stderr}`)
    }
  }

  kill (): void {
    this.child.kill('SIGTERM')
  }
}
