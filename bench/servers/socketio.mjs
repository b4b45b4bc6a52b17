// Reference 4: Socket.IO 4.8, one room per tenant, token in the handshake's auth.token,
// WebSocket transport only, no compression. The endpoint path is /api/v1/events like the others.
import http from 'node:http'
import { Server } from 'socket.io'
import { WS_PATH, exitWith, makeRequestHandler, makeVerify, readConfig } from './common.mjs'

const config = readConfig()
const verify = makeVerify(config.secret)
let io

const server = http.createServer(makeRequestHandler({
  verify,
  publish: (tenantId, event) => { io.to(`tenant:${tenantId}`).emit('alarm:created', event) }
}))
server.keepAliveTimeout = 60000

io = new Server(server, {
  path: WS_PATH,
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  pingInterval: config.heartbeatMs,
  pingTimeout: 20000,
  maxHttpBufferSize: 65536
})

io.use((socket, next) => {
  try {
    socket.data.principal = verify(socket.handshake.auth?.token ?? '')
    next()
  } catch (err) {
    next(new Error(err.message))
  }
})

io.on('connection', (socket) => {
  const { tenantId, userId } = socket.data.principal
  socket.join(`tenant:${tenantId}`)
  socket.emit('authenticated', { userId, tenantId })
})

server.listen(config.port, config.host)
exitWith(() => new Promise((resolve) => {
  io.disconnectSockets(true)
  io.close(() => resolve())
}))
