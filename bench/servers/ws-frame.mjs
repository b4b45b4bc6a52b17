// Reference 3, as near the metal as plain Node goes: serialize and frame once per broadcast with
// ws's own Sender.frame, then write the same header and payload buffers to every socket's
// underlying net.Socket (cork/uncork so each frame goes out in one writev). Safe only because
// permessage-deflate is off, so ws's Sender never has a queue of its own to overtake.
// `ws/lib/sender.js` is not in ws's package "exports" map, so ESM cannot import that path; the
// package's public `Sender` export is the very same class (wrapper.mjs re-exports lib/sender.js).
import { Sender, WebSocket } from 'ws'
import { startWsReference } from './ws-common.mjs'

const FRAME_OPTIONS = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }

startWsReference('ws-frame', (sockets, event) => {
  const list = Sender.frame(Buffer.from(JSON.stringify(event)), FRAME_OPTIONS)
  const header = list[0]
  const payload = list[1]
  for (const ws of sockets) {
    if (ws.readyState !== WebSocket.OPEN) continue
    const socket = ws._socket
    socket.cork()
    socket.write(header)
    socket.write(payload)
    socket.uncork()
  }
})
