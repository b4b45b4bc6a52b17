import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import type { ConfigOptions } from '../plugins/config.js'

declare module '../plugins/config.js' {
  interface ConfigOptions {
    /**
     * Serve the live console at `/`. The standalone server does; a host app embedding
     * tenantcast opts in with `console: true`, since `/` is usually its own.
     */
    console?: boolean
  }
}

// public/ sits at the package root: one level up from routes/ in a checkout, two from
// dist/routes/ in the compiled package.
const PUBLIC = ['../public/', '../../public/']
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((dir) => existsSync(`${dir}index.html`)) ?? fileURLToPath(new URL('../public/', import.meta.url))

/** The page may load only what it came with, and talk only to its own origin. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

/** How long a dev token lives. The console asks for another one before it expires. */
const DEV_TOKEN_TTL_SECONDS = 3600

/**
 * The live console (public/, with the SDK bundle) and, in development with a generated
 * secret only, `GET /dev/token`: a token for tenant `demo`, user `dev`, role admin.
 */
async function consoleRoutes (app: FastifyInstance, opts: ConfigOptions): Promise<void> {
  if (opts.console !== true) return
  const config = app.config
  const devToken = config.NODE_ENV !== 'production' && config.DEV_SECRET

  await app.register(fastifyStatic, {
    root: PUBLIC,
    prefix: '/',
    // One route per file, no catch-all: unknown paths keep reaching the gateway's 404.
    wildcard: false,
    decorateReply: false,
    dotfiles: 'ignore',
    setHeaders (reply, path) {
      void reply.header('x-content-type-options', 'nosniff')
      if (path.endsWith('.html')) {
        void reply.header('content-security-policy', CONSOLE_CSP)
        void reply.header('cache-control', 'no-cache')
      }
    }
  })

  /** What the page needs to know about this gateway. */
  app.get('/console/config.json', async () => ({ wsPath: config.WS_PATH, devToken }))

  if (devToken) {
    app.get('/dev/token', async (request, reply) => {
      // Loopback only, and never through a proxy (which would make every client look local):
      // an admin token for anyone who can reach the port is not a development convenience.
      // The Host must name loopback too: a page on evil.example whose name was rebound to
      // 127.0.0.1 reaches this port from the browser on loopback, but with its own Host.
      if (!isLoopback(request.socket.remoteAddress) || !isLoopbackHost(request.headers.host) || request.headers['x-forwarded-for'] !== undefined || request.headers.forwarded !== undefined) {
        return await reply.callNotFound()
      }
      void reply.header('cache-control', 'no-store')
      const token = app.auth.sign({ [config.USER_CLAIM]: 'dev', [config.TENANT_CLAIM]: 'demo', roles: ['admin'] }, { expiresIn: `${DEV_TOKEN_TTL_SECONDS}s` })
      return { token, tenantId: 'demo', userId: 'dev', roles: ['admin'], expiresIn: DEV_TOKEN_TTL_SECONDS }
    })
  }
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
  return v4.startsWith('127.') || address === '::1'
}

/** A Host header naming this machine: localhost (or a name under .localhost, RFC 6761), 127.0.0.0/8 or [::1], with any port. */
function isLoopbackHost (host: string | undefined): boolean {
  if (host === undefined) return false
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')).toLowerCase()
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  if (name === '::1') return true
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

export default consoleRoutes
