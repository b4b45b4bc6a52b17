import { createServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from 'node:net'
import type { TenantcastClient, Timers } from '../../client/index.js'
import type { LifecycleEventName, LifecycleEvents } from '../../client/types.js'

type Tap = { teardown (fn: () => unknown): void }

/**
 * A TCP proxy in front of a gateway, under the test's control. Cutting it is a server-side
 * close as far as the client can tell, while the gateway (and its in-memory history) lives on.
 */
export class TcpProxy {
  /** The head of each HTTP request that came through (request line and headers). */
  readonly requests: string[] = []
  private readonly pairs = new Set<{ client: Socket, upstream?: Socket }>()
  private held: Array<() => void> = []
  private holding = false
  private paused = false

  private constructor (private readonly server: Server, private target: number) {}

  /** New connections go to another port from now on: a server restarted elsewhere behind the same address. */
  retarget (port: number): void { this.target = port }

  static async start (t: Tap, target: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined
    const server = createServer((client) => { proxy?.accept(client) })
    proxy = new TcpProxy(server, target)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(async () => { await proxy?.close() })
    return proxy
  }

  get port (): number { return (this.server.address() as AddressInfo).port }
  get http (): string { return `http://127.0.0.1:${this.port}` }
  get ws (): string { return `ws://127.0.0.1:${this.port}/api/v1/events` }
  /** Connections currently open through the proxy. */
  get open (): number { return this.pairs.size }

  /** Destroys every connection through the proxy, as a crashed server or a dropped link would. */
  cut (): void {
    for (const pair of this.pairs) {
      pair.client.destroy()
      pair.upstream?.destroy()
    }
    this.pairs.clear()
  }

  /** The local ports of the proxy's upstream connections: how the target (e.g. Redis CLIENT LIST) sees them. */
  upstreamPorts (): Set<number> {
    return new Set([...this.pairs].map((pair) => pair.upstream?.localPort).filter((port): port is number => port !== undefined))
  }

  /** New connections are accepted but not forwarded until release(): an outage the client waits through. */
  hold (): void { this.holding = true }

  release (): void {
    this.holding = false
    for (const go of this.held.splice(0)) go()
  }

  /** Stops forwarding bytes either way while keeping every connection open: a silent, dead link. */
  pause (): void { this.paused = true }
  resume (): void { this.paused = false }

  async close (): Promise<void> {
    this.cut()
    this.held = []
    await new Promise<void>((resolve) => { this.server.close(() => { resolve() }) })
  }

  private accept (client: Socket): void {
    const pair: { client: Socket, upstream?: Socket } = { client }
    this.pairs.add(pair)
    client.on('error', () => {})
    client.on('close', () => {
      pair.upstream?.destroy()
      this.pairs.delete(pair)
    })
    const buffered: Buffer[] = []
    let head = ''
    const onData = (chunk: Buffer): void => {
      if (this.paused) return
      if (head.length < 8192 && !head.includes('\r\n\r\n')) {
        head += chunk.toString('latin1')
        if (head.includes('\r\n\r\n')) this.requests.push(head.slice(0, head.indexOf('\r\n\r\n')))
      }
      if (pair.upstream === undefined) buffered.push(chunk)
      else pair.upstream.write(chunk)
    }
    client.on('data', onData)
    const go = (): void => {
      if (client.destroyed) return
      const upstream = tcpConnect(this.target, '127.0.0.1')
      pair.upstream = upstream
      upstream.on('error', () => { client.destroy() })
      upstream.on('close', () => { client.destroy() })
      upstream.on('data', (chunk) => { if (!this.paused) client.write(chunk) })
      for (const chunk of buffered.splice(0)) upstream.write(chunk)
    }
    if (this.holding) this.held.push(go)
    else go()
  }
}

/** A clock whose time moves only when the test says so; timers run in due order. */
export class FakeClock implements Timers {
  private readonly timers = new Map<number, { fn: () => void, at: number, ms: number }>()
  private seq = 0

  constructor (public time: number = Date.now()) {}

  now (): number { return this.time }

  setTimeout (fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { fn, at: this.time + ms, ms })
    return id
  }

  clearTimeout (handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle)
  }

  /** Pending timers, soonest first: their requested delays. */
  pending (): number[] {
    return [...this.timers.values()].sort((a, b) => a.at - b.at).map((timer) => timer.ms)
  }

  /** Moves time to the soonest timer and runs it; returns its delay. */
  runNext (): number {
    const next = [...this.timers.entries()].sort((a, b) => a[1].at - b[1].at)[0]
    if (next === undefined) throw new Error('no timer is pending')
    const [id, timer] = next
    this.timers.delete(id)
    this.time = Math.max(this.time, timer.at)
    timer.fn()
    return timer.ms
  }
}

/**
 * Resolves with the arguments of the next `name` event that passes `accept`, or rejects
 * after `ms` of real time: every wait in these tests is bounded.
 */
export async function next<K extends LifecycleEventName> (client: TenantcastClient, name: K, accept: (...args: Parameters<LifecycleEvents[K]>) => boolean = () => true, ms = 5000): Promise<Parameters<LifecycleEvents[K]>> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no "${name}" event within ${ms} ms`))
    }, ms)
    const handler = (...args: Parameters<LifecycleEvents[K]>): void => {
      if (!accept(...args)) return
      clearTimeout(timer)
      off()
      resolve(args)
    }
    const off = client.on(name, handler as unknown as LifecycleEvents[K])
  })
}

/** Waits for the client to reach a state (at once if it is already there). */
export async function reach (client: TenantcastClient, state: TenantcastClient['state'], ms = 5000): Promise<void> {
  if (client.state === state) return
  await next(client, 'state', (s) => s === state, ms)
}

/** Real time passing, for a socket's bytes to arrive; never used to assert anything about time. */
export async function tick (ms = 20): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls a condition until it holds or `ms` pass; returns whether it held. */
export async function eventually (condition: () => boolean, ms = 5000): Promise<boolean> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited >= ms) return false
    await tick(10)
  }
  return true
}

/**
 * A bare WebSocket server that plays the gateway's part in a scripted way (close codes the real
 * gateway has no trigger for, malformed frames). Closed in teardown.
 */
export async function scriptedServer (t: Tap, onConnection: (socket: import('ws').WebSocket, index: number) => void): Promise<{ url: string, connections: () => number }> {
  const { WebSocketServer } = await import('ws')
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'tenantcast.v1' })
  await new Promise<void>((resolve) => { server.once('listening', () => { resolve() }) })
  let count = 0
  server.on('connection', (socket) => { onConnection(socket, count++) })
  t.teardown(async () => {
    for (const socket of server.clients) socket.terminate()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/events`, connections: () => count }
}

/** An authenticated frame, as a scripted server sends it. */
export function authenticatedFrame (position = { epoch: 'e1', offset: 0 }): string {
  return JSON.stringify({ type: 'authenticated', userId: 'u1', tenantId: 't1', clientId: 'c1', connectionCount: 1, position })
}
