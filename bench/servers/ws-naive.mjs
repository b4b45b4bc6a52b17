// Reference 1, the hand-written-tutorial style: JSON.stringify once per recipient.
import { WebSocket } from 'ws'
import { startWsReference } from './ws-common.mjs'

startWsReference('ws-naive', (sockets, event) => {
  for (const ws of sockets) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event))
  }
})
