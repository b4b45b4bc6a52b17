// Reference 2: serialize once per broadcast, ws.send(str) to each recipient (ws still frames
// and UTF-8-encodes the string once per socket).
import { WebSocket } from 'ws'
import { startWsReference } from './ws-common.mjs'

startWsReference('ws-once', (sockets, event) => {
  const text = JSON.stringify(event)
  for (const ws of sockets) {
    if (ws.readyState === WebSocket.OPEN) ws.send(text)
  }
})
