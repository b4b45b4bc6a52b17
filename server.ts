import type { FastifyInstance } from 'fastify'
import { createStandalone } from './app.js'
import { ConfigError } from './plugins/config.js'

/**
 * The standalone gateway: the tenantcast plugin on its own Fastify server, listening, with a
 * graceful shutdown on SIGTERM and SIGINT.
 */
let app: FastifyInstance
try {
  app = await createStandalone()
} catch (err) {
  // One clear line, no stack: configuration errors say what to set.
  const message = err instanceof ConfigError ? err.message : `failed to start: ${(err as Error).message}`
  process.stderr.write(`tenantcast: ${message}\n`)
  process.exit(1)
}

const { config, signToken } = app.tenantcast

try {
  await app.listen({ port: config.PORT, host: config.HOST })
} catch (err) {
  process.stderr.write(`tenantcast: cannot listen on ${config.HOST}:${config.PORT}: ${(err as Error).message}\n`)
  process.exit(1)
}

if (config.NODE_ENV !== 'production') printDevBanner()

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    app.log.info({ action: 'server.shutdown', signal }, 'shutting down')
    // Exit 0 within WS_SHUTDOWN_TIMEOUT even if a socket never completes its close handshake.
    const force = setTimeout(() => { process.exit(0) }, config.WS_SHUTDOWN_TIMEOUT + 500)
    force.unref()
    app.close().then(() => { process.exit(0) }, (err: unknown) => {
      app.log.error({ action: 'server.shutdown.failed', err }, 'shutdown failed')
      process.exit(0)
    })
  })
}

function printDevBanner (): void {
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT
  const base = `localhost:${port}`
  const lines = ['', `tenantcast is running on http://${base}`, `Live console: http://${base}/`]
  // A token only with a generated secret: one signed with the operator's own secret would be a
  // real credential printed to stdout, and stdout is collected.
  if (!config.DEV_SECRET) {
    lines.push('Development mode: mint tokens with `tenantcast token` (JWT_SECRET is yours, so none is printed).', '')
    process.stdout.write(lines.join('\n') + '\n')
    return
  }
  const token = signToken({ [config.USER_CLAIM]: 'dev', [config.TENANT_CLAIM]: 'demo', roles: ['admin'] }, { expiresIn: '1h' }) // printed, so collected: short-lived
  const alarm = JSON.stringify({ message: 'Motion detected', camera: 'Front Door', severity: 'high' })
  lines.push(
    'Development mode: JWT_SECRET was generated for this run; set JWT_SECRET to keep tokens valid across restarts.',
    '',
    'Token for tenant "demo" (user "dev", valid 1 h):',
    `  ${token}`,
    '',
    'Watch the tenant stream:',
    `  npx wscat -c 'ws://${base}${config.WS_PATH}?token=${token}'`,
    '',
    'Post an alarm:',
    `  curl -sS -X POST http://${base}/api/v1/alarms -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -d '${alarm}'`,
    ''
  )
  process.stdout.write(lines.join('\n') + '\n')
}
