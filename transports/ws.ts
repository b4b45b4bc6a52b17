import type { Socket } from 'node:net'
import { createRequire } from 'node:module'
import { WebSocket } from 'ws'
import type { Connection } from '../domain/hub.js'

/**
 * The hub's Connection over a ws socket, with write coalescing.
 *
 * The first frame a socket is owed in an event-loop turn is written at once; the rest of that
 * turn's frames for it are written with one corked `writev` when the turn ends, instead of one
 * `write` each: on this hardware the kernel's per-write cost, not serialization, bounds
 * fan-out, while a lone event still goes out with no added delay. Per-socket order is kept (one queue per
 * socket, flushed in order). The slow-consumer guard reads what the socket holds after
 * earlier flushes: the queue of the current turn is not counted, or one large burst would
 * drop healthy readers; it is at most one turn's worth and is handed over when the turn ends.
 * A broadcast frames its text once: consecutive sends of the same string share the same
 * header and payload buffers.
 */
const TEXT_FRAME = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }

// ws's frame encoder is public (ws.Sender) but absent from @types/ws.
const Sender = createRequire(import.meta.url)('ws').Sender as { frame: (data: Buffer, options: typeof TEXT_FRAME) => Buffer[] }

let lastText: string | undefined
let lastFrame: Buffer[] = []

/** WebSocket framing of a text payload, cached for the string sent last (one broadcast). */
function framed (text: string): Buffer[] {
  if (text !== lastText) {
    lastText = text
    lastFrame = Sender.frame(Buffer.from(text), TEXT_FRAME)
  }
  return lastFrame
}

/** Sockets written to in this turn; at the turn's end their queued frames go out. */
const touched: CoalescingConnection[] = []
let scheduled = false

function endOfTurn (): void {
  scheduled = false
  for (const connection of touched) connection.flush()
  touched.length = 0
}

export class CoalescingConnection implements Connection {
  private pending: Buffer[] = []
  private touched = false

  /** `coalesce: false` writes each frame at once with ws (WS_COALESCE=false). */
  constructor (private readonly socket: WebSocket, private readonly coalesce = true) {}

  /**
   * The first frame a socket gets in a turn is written at once, so a lone event pays no
   * delay; later frames in the same turn queue and go out together when the turn ends.
   */
  send (text: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    if (!this.coalesce) {
      this.socket.send(text)
      return
    }
    const frame = framed(text)
    if (this.touched) {
      this.pending.push(...frame)
      return
    }
    this.touched = true
    touched.push(this)
    if (!scheduled) {
      scheduled = true
      setImmediate(endOfTurn)
    }
    this.write(frame)
  }

  /** Writes what queued in this turn with one syscall. Frames queued for a socket that began closing are dropped: resume covers them. */
  flush (): void {
    this.touched = false
    if (this.pending.length === 0) return
    const pending = this.pending
    this.pending = []
    this.write(pending)
  }

  close (code: number, reason: string): void {
    this.flush()
    this.socket.close(code, reason)
  }

  /**
   * Hands this turn's queue to the socket, then waits while the socket holds more than its
   * high-water mark: until Node's `drain`, or the socket's close.
   */
  async drained (): Promise<void> {
    this.flush()
    const raw = (this.socket as unknown as { _socket?: Socket })._socket
    if (raw === undefined || !raw.writable || !raw.writableNeedDrain) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        raw.off('drain', done)
        raw.off('close', done)
        resolve()
      }
      raw.on('drain', done)
      raw.on('close', done)
    })
  }

  get bufferedAmount (): number {
    return this.socket.bufferedAmount
  }

  private write (buffers: Buffer[]): void {
    const raw = (this.socket as unknown as { _socket?: Socket })._socket
    if (this.socket.readyState !== WebSocket.OPEN || raw === undefined || !raw.writable) return
    raw.cork()
    for (const buffer of buffers) raw.write(buffer)
    raw.uncork()
  }
}
