/**
 * A local Redis Cluster for the tests: three masters (optionally with replicas) started by
 * bench/redis.ts's `startRedis` on ports of their own in 7100–7199, with nothing on disk, and
 * stopped when the test process ends. Only Debian's redis-server and redis-cli are needed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tap from 'tap'
import { startRedis, type RedisDeployment } from '../bench/redis.js'

export interface TestCluster extends RedisDeployment {
  /** REDIS_CLUSTER_NODES for the gateway: every node, as host:port seeds. */
  seeds: string
  /** Each node's port and process. */
  children: Map<number, ChildProcess>
}

/** Whether a TCP port on 127.0.0.1 is free. */
async function free (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const LOCKS = path.join(os.tmpdir(), 'tenantcast-test-ports')

/**
 * Claims `count` ports in 7100–7199 whose cluster bus ports (+10000) are free too. A claim is a
 * directory per port (mkdir is atomic), so test files running in parallel never share one; a
 * claim whose process died is taken over.
 */
async function claimPorts (count: number): Promise<{ ports: number[], release: () => void }> {
  mkdirSync(LOCKS, { recursive: true })
  const ports: number[] = []
  const release = (): void => { for (const port of ports) rmSync(path.join(LOCKS, String(port)), { recursive: true, force: true }) }
  for (let port = 7100; port < 7200 && ports.length < count; port++) {
    const lock = path.join(LOCKS, String(port))
    try {
      mkdirSync(lock)
    } catch {
      const owner = Number(readFileSync(path.join(lock, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0)
      if (owner === 0 || alive(owner)) continue
      rmSync(lock, { recursive: true, force: true })
      try { mkdirSync(lock) } catch { continue }
    }
    writeFileSync(path.join(lock, 'pid'), String(process.pid))
    if (await free(port) && await free(port + 10000)) ports.push(port)
    else rmSync(lock, { recursive: true, force: true })
  }
  if (ports.length < count) {
    release()
    throw new Error(`only ${ports.length} of ${count} ports free in 7100–7199 for a test cluster`)
  }
  return { ports, release }
}

/**
 * Starts a cluster of three masters, each with `replicas` replicas. `nodeTimeoutMs` is the
 * cluster-node-timeout (how soon a replica takes over a failed master).
 */
export async function startCluster (options: { replicas?: number, nodeTimeoutMs?: number } = {}): Promise<TestCluster> {
  const replicas = options.replicas ?? 0
  const { ports, release } = await claimPorts(3 * (1 + replicas))
  const children = new Map<number, ChildProcess>()
  const kill = (): void => { for (const child of children.values()) child.kill('SIGKILL') }
  // A test process that dies leaves no server behind.
  process.once('exit', kill)
  let deployment: RedisDeployment
  try {
    deployment = await startRedis('cluster', ports, (command, args) => {
      const child = spawn(command, args, { stdio: 'ignore' })
      children.set(Number(args[args.indexOf('--port') + 1]), child)
      return child
    }, { replicas, nodeTimeoutMs: options.nodeTimeoutMs ?? 1000 })
  } catch (err) {
    release()
    throw err
  }
  return {
    ...deployment,
    children,
    seeds: ports.map((port) => `127.0.0.1:${port}`).join(','),
    stop: async () => {
      process.off('exit', kill)
      await deployment.stop()
      release()
    }
  }
}

let shared: Promise<TestCluster> | undefined

/**
 * One three-master cluster for the whole test process, started on first use and stopped when
 * the process's root test ends. Each test keeps to its own key prefix on it.
 */
export async function sharedCluster (): Promise<TestCluster> {
  if (shared === undefined) {
    shared = startCluster()
    tap.teardown(async () => { await (await shared as TestCluster).stop() })
  }
  return await shared
}
