import type { Socket } from 'node:net'
import { createRequire } from 'node:module'
import { WebSocket } from 'ws'
import type { Connection } from '../domain/hub.js'

/**
 * The hub's Connection over a ws socket, with write coalescing.
 *
 * Every frame a socket is owed within one event-loop turn is written with one corked
 * `writev` when the turn ends, instead of one `write` per frame: on this hardware the kernel's
 * per-write cost, not serialization, bounds fan-out. Per-socket order is kept (one queue per
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

const dirty = new Set<CoalescingConnection>()
let scheduled = false

function flushAll (): void {
  scheduled = false
  for (const connection of dirty) connection.flush()
  dirty.clear()
}

export class CoalescingConnection implements Connection {
  private pending: Buffer[] = []

  constructor (private readonly socket: WebSocket) {}

  send (text: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    const [header, payload] = framed(text) as [Buffer, Buffer]
    this.pending.push(header, payload)
    if (this.pending.length === 2) {
      dirty.add(this)
      if (!scheduled) {
        scheduled = true
        setImmediate(flushAll)
      }
    }
  }

  /** Writes the queued frames with one syscall. Frames queued for a socket that began closing are dropped: resume covers them. */
  flush (): void {
    if (this.pending.length === 0) return
    const raw = (this.socket as unknown as { _socket?: Socket })._socket
    if (this.socket.readyState === WebSocket.OPEN && raw !== undefined && raw.writable) {
      raw.cork()
      for (const buffer of this.pending) raw.write(buffer)
      raw.uncork()
    }
    this.pending = []
  }

  close (code: number, reason: string): void {
    this.flush()
    this.socket.close(code, reason)
  }

  get bufferedAmount (): number {
    return this.socket.bufferedAmount
  }
}
