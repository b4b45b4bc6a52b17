/**
 * Private Redis deployments for the scale-out scenario: one standalone server, or a cluster of
 * masters, each a `redis-server` child on a port of its own with nothing kept on disk. The bench
 * never measures against the machine's shared Redis: its CPU and command counts would include
 * whoever else uses it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface RedisDeployment {
  /** Every redis-server process, for CPU and command accounting. */
  nodes: Array<{ port: number, pid: number }>
  /** What a gateway instance needs in its environment to use this deployment. */
  env: Record<string, string>
  stop: () => Promise<void>
}

type Spawn = (command: string, args: string[]) => ChildProcess

function cli (port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 5000 }).stdout ?? ''
}

async function until (what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`redis: ${what} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export interface ClusterShape {
  /** Replicas per master; `ports` then holds masters × (1 + replicas) ports. Default 0. */
  replicas?: number
  /** `cluster-node-timeout` in ms: how long a master may be unreachable before a replica takes over. Default Redis's 15000. */
  nodeTimeoutMs?: number
}

/**
 * Starts `kind` on `ports` (one port for standalone, three masters or more for a cluster, each
 * with `shape.replicas` replicas) through `start`, which the harness uses to track and pin its
 * children. Tests start their own clusters through it too (test/redis-cluster.ts).
 */
export async function startRedis (kind: 'standalone' | 'cluster', ports: number[], start: Spawn, shape: ClusterShape = {}): Promise<RedisDeployment> {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('the scale-out scenario needs redis-server and redis-cli (Debian package redis-server)')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenantcast-bench-redis-'))
  const used = kind === 'standalone' ? ports.slice(0, 1) : ports
  const children = used.map((port) => start('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    ...(kind === 'cluster' ? ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`)] : []),
    ...(kind === 'cluster' && shape.nodeTimeoutMs !== undefined ? ['--cluster-node-timeout', String(shape.nodeTimeoutMs)] : [])
  ]))
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      await new Promise<void>((resolve) => {
        child.once('exit', () => { resolve() })
        child.kill('SIGKILL')
      })
    }))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const port of used) await until(`:${port} did not answer PING`, () => cli(port, 'ping').trim() === 'PONG', 10000)
    if (kind === 'cluster') {
      const replicas = shape.replicas ?? 0
      const created = spawnSync('redis-cli', ['--cluster', 'create', ...used.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 30000 })
      if (created.status !== 0) throw new Error(`redis --cluster create failed: ${created.stdout}${created.stderr}`)
      await until('the cluster did not reach cluster_state:ok', () => used.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 20000)
      // Every replica has finished its first sync, so a failover right away finds one to promote.
      // Every node knows every replica, and every replica has finished its first sync, so a
      // failover right away finds one to promote.
      if (replicas > 0) {
        const expected = used.length - used.length / (1 + replicas)
        await until('the nodes did not all see the replicas', () => used.every((p) => cli(p, 'cluster', 'nodes').split('\n').filter((line) => (line.split(' ')[2] ?? '').split(',').includes('slave')).length === expected), 20000)
        await until('the replicas did not sync', () => used.every((p) => !/^role:slave/m.test(cli(p, 'info', 'replication')) || /^master_link_status:up/m.test(cli(p, 'info', 'replication'))), 20000)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  const nodes = used.map((port, i) => ({ port, pid: children[i]?.pid as number }))
  const env: Record<string, string> = kind === 'standalone'
    ? { REDIS_URL: `redis://127.0.0.1:${used[0] as number}` }
    : { REDIS_CLUSTER_NODES: used.map((p) => `127.0.0.1:${p}`).join(',') }
  return { nodes, env, stop }
}
