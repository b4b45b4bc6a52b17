/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time aggregated by function name +
 * url, and by where the code lives (node internals, a package, the gateway's own files).
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile | dir> [--top 30] [--match tenantcast]
 *
 * With a directory it takes the newest .cpuprofile in it (optionally the newest whose name
 * contains --match).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples?: number[], timeDeltas?: number[] }

/** Every .cpuprofile under `dir` (recursively) whose path contains `match`. */
function findProfiles (dir: string, match?: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...findProfiles(full, match))
    else if (entry.name.endsWith('.cpuprofile') && (match === undefined || full.includes(match))) out.push(full)
  }
  return out
}

/**
 * A file, or in a directory the newest run's main-thread profile: the newest profile's folder,
 * and in it the profile with the most busy time (under `--import tsx` the loader-hooks worker
 * thread writes a second, mostly idle profile).
 */
function pick (target: string, match?: string): string {
  if (!statSync(target).isDirectory()) return target
  const files = findProfiles(target, match).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
  if (files[0] === undefined) throw new Error(`no .cpuprofile in ${target}${match === undefined ? '' : ` matching ${match}`}`)
  const siblings = files.filter((f) => path.dirname(f) === path.dirname(files[0] as string))
  let best = files[0]
  let bestBusy = -1
  for (const f of siblings) {
    const p = JSON.parse(readFileSync(f, 'utf8')) as CpuProfile
    const self = selfTimes(p)
    let busy = 0
    for (const n of p.nodes) if (n.callFrame.functionName !== '(idle)') busy += self.get(n.id) ?? 0
    if (siblings.length > 1) process.stderr.write(`  ${path.relative(process.cwd(), f)}: busy ${(busy / 1000).toFixed(0)} ms\n`)
    if (busy > bestBusy) { bestBusy = busy; best = f }
  }
  return best
}

/** Self time per node id, in microseconds: each sample's following time delta goes to the sampled node. */
function selfTimes (profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  if (samples.length > 0 && deltas.length === samples.length) {
    for (let i = 0; i < samples.length; i++) {
      // timeDeltas[i] is the gap before sample i; the time after the last sample is unknown.
      const dt = i + 1 < deltas.length ? deltas[i + 1] as number : 0
      const id = samples[i] as number
      self.set(id, (self.get(id) ?? 0) + Math.max(0, dt))
    }
    return self
  }
  // Old profiles without samples: spread the duration by hit count.
  const hits = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0)
  const per = hits > 0 ? (profile.endTime - profile.startTime) / hits : 0
  for (const node of profile.nodes) self.set(node.id, (node.hitCount ?? 0) * per)
  return self
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

function shortUrl (url: string): string {
  if (url === '') return ''
  let u = url.replace(/^file:\/\//, '')
  if (u.startsWith(ROOT + '/')) u = u.slice(ROOT.length + 1)
  return u
}

/** Where code lives: node:internal, a package under node_modules, the gateway, or V8 itself. */
function bucket (frame: CallFrame): string {
  const u = shortUrl(frame.url)
  if (u === '') {
    const name = frame.functionName
    if (name.startsWith('(')) return name // (garbage collector), (program), (idle)
    return '(native / V8 builtins)'
  }
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/').slice(0, 2).join('/')}`
  const nm = u.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/')
    return `pkg:${rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  return `app:${u.split('/')[0] === u ? u : u.split('/')[0]}`
}

function main (): void {
  const argv = process.argv.slice(2)
  const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i === -1 ? undefined : argv[i + 1] }
  const top = Number(opt('--top') ?? 30)
  const match = opt('--match')
  const target = argv.find((a, i) => !a.startsWith('--') && !['--top', '--match'].includes(argv[i - 1] ?? ''))
  if (target === undefined) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile|dir> [--top N] [--match TEXT]\n')
    process.exit(2)
  }
  const file = pick(target, match)
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const self = selfTimes(profile)
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((a, n) => a + (self.get(n.id) ?? 0), 0)
  const busy = total - idle

  const byFn = new Map<string, number>()
  const byBucket = new Map<string, number>()
  for (const node of profile.nodes) {
    const t = self.get(node.id) ?? 0
    if (t === 0) continue
    const f = node.callFrame
    const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}  ${shortUrl(f.url)}${f.url === '' ? '' : `:${f.lineNumber + 1}`}`
    byFn.set(key, (byFn.get(key) ?? 0) + t)
    const b = bucket(f)
    byBucket.set(b, (byBucket.get(b) ?? 0) + t)
  }

  const ms = (us: number): string => (us / 1000).toFixed(1).padStart(9)
  const pct = (us: number): string => `${(100 * us / (busy || 1)).toFixed(1).padStart(5)}%`
  const out: string[] = []
  out.push(`profile: ${path.relative(process.cwd(), file)}`)
  out.push(`wall ${((profile.endTime - profile.startTime) / 1000).toFixed(0)} ms, sampled ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms (percentages are of busy time)`)
  out.push('')
  out.push(`top ${top} functions by self time:`)
  out.push(`${'self ms'.padStart(9)}  ${'busy%'.padStart(6)}  function  url:line`)
  for (const [k, v] of [...byFn].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`${ms(v)}  ${pct(v)}  ${k}`)
  out.push('')
  out.push('self time by where the code lives:')
  for (const [k, v] of [...byBucket].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 25)) out.push(`${ms(v)}  ${pct(v)}  ${k}`)
  process.stdout.write(out.join('\n') + '\n')
}

main()
