import { exec } from 'node:child_process'
import { createHmac, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ClientErrorCode, connect, parsePosition, type CloseInfo, type EventFrame, type TenantcastClient, type TenantcastError } from '../client/index.js'

/** Exit codes: each failure class has its own, so scripts can branch on them. */
export const Exit = { OK: 0, FAILED: 1, USAGE: 2, AUTH: 3, NETWORK: 4 } as const

const DEFAULT_URL = 'http://localhost:3000'
const WS_PATH = '/api/v1/events'
const SEVERITIES = ['low', 'medium', 'high', 'critical']

/** The token sources, as both commands' help lists them. */
const TOKEN_HELP = `  --token-file <path>     the token is the file's content, re-read whenever a new one is needed
                          (before it expires, and after a 4401): keep the file fresh and the
                          command runs on; --token-file - reads it once from stdin
  --token-command <cmd>   a shell command that prints a token, run again whenever a new one is needed
  --token <jwt>           the token itself (other local users can read it in the process list)
                          Without any of these: $TENANTCAST_TOKEN.
`

const HELP = {
  main: `tenantcast: command-line tools for a tenantcast gateway

Usage:
  tenantcast token --tenant <id> --sub <user> [--roles a,b] [--ttl 1h]
  tenantcast tail  [--url <url>] [<token source>] [--channel <name>]... [--allow-missing] [--since <epoch>:<offset>] [--json]
  tenantcast alarm [--url <url>] [<token source>] --message <text> --camera <name> --severity <low|medium|high|critical> [--timeout 10s] [--retries 3]

A token source is one of --token-file <path> (re-read when a new token is needed),
--token-file - (stdin, read once), --token-command <cmd> (run again when a new token is needed),
or --token <jwt> (visible to other local users in the process list); default $TENANTCAST_TOKEN.

Run "tenantcast <command> --help" for a command's options.

Exit codes: 0 ok, 1 failed (the server refused the request), 2 usage, 3 auth (401/403, 4401/4403), 4 network.
`,
  token: `Usage: tenantcast token --tenant <id> --sub <user> [--roles a,b] [--ttl 1h]

Mints a token signed with JWT_SECRET (from the environment), for tests and development.

  --tenant <id>    the tenant (written to the claim named by TENANT_CLAIM, default tenantId)
  --sub <user>     the user id (written to the claim named by USER_CLAIM, default sub)
  --roles <list>   comma-separated roles, e.g. publisher or admin
  --ttl <time>     lifetime: 90s, 15m, 1h, 7d or seconds (default 1h)

The algorithm is the first of JWT_ALGORITHMS (default HS256).
`,
  tail: `Usage: tenantcast tail [--url <url>] [<token source>] [--channel <name>]... [--allow-missing] [--since <epoch>:<offset>] [--json]

Streams events until interrupted, reconnecting and resuming without loss. Closes the gateway
asks to retry (1001 during a deploy, 1013, 4008, a 4029 limit) are retried, with their reason
on stderr; only a gateway that never answered exits 4.

  --url <url>        the gateway, ws(s):// or http(s):// (default $TENANTCAST_URL or ${DEFAULT_URL});
                     a URL without a path gets ${WS_PATH}
${TOKEN_HELP}  --channel <name>   also join this channel (repeatable); a refused one ends tail (exit 1,
                     or 3 when the token forbids it)
  --allow-missing    go on without a refused --channel, with a warning
  --since <pos>      replay the tenant stream after this position, <epoch>:<offset>
  --json             one JSON event frame per line instead of text

Events go to stdout; connection status, gaps and errors to stderr.
`,
  alarm: `Usage: tenantcast alarm [--url <url>] [<token source>] --message <text> --camera <name> --severity <level>

Posts an alarm (POST /api/v1/alarms) and prints the gateway's answer as JSON.

  --url <url>              the gateway (default $TENANTCAST_URL or ${DEFAULT_URL})
${TOKEN_HELP}  --message <text>         what happened
  --camera <name>          where
  --severity <level>       low, medium, high or critical
  --idempotency-key <key>  makes a retry of the whole command safe (each command makes up its own
                           key otherwise, so its own retries never store the alarm twice)
  --timeout <time>         how long one request may take: 10s (default), 90s, 2m
  --retries <n>            how often a 429 or 503 is retried, after its Retry-After (1 s without
                           one), default 3; a Retry-After over 30 s is reported, not waited for
`
} as const

class UsageError extends Error {}

interface Io {
  out (text: string): void
  err (text: string): void
  env: NodeJS.ProcessEnv
  /** All of standard input, read once (for --token-file -). */
  stdin (): Promise<string>
  /** Resolves when the user interrupts (SIGINT/SIGTERM). */
  interrupted: Promise<void>
}

function parse<T extends NonNullable<ParseArgsConfig['options']>> (args: string[], options: T): ReturnType<typeof parseArgs<{ args: string[], options: T & { help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }>>['values'] {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function required (value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`)
  return value
}

/** 90, 90s, 15m, 1h, 7d: a lifetime in seconds. */
export function parseTtl (text: string): number {
  return parseDuration(text, 'ttl')
}

/** 90, 90s, 15m, 1h, 7d, in seconds, for the option `--<name>`. */
function parseDuration (text: string, name: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text)
  if (match === null || Number(match[1]) <= 0) throw new UsageError(`--${name} must look like 90s, 15m, 1h or 7d, not ${JSON.stringify(text)}`)
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd']
  return Number(match[1]) * unit
}

/** An HMAC-signed JWT, the way the gateway verifies it. */
export function signToken (claims: Record<string, unknown>, secret: string, algorithm: string): string {
  const hash = ({ HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as Record<string, string>)[algorithm]
  if (hash === undefined) throw new UsageError(`JWT_ALGORITHMS must start with HS256, HS384 or HS512, not ${algorithm}`)
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${encode({ alg: algorithm, typ: 'JWT' })}.${encode(claims)}`
  return `${body}.${createHmac(hash, secret).update(body).digest('base64url')}`
}

function token (args: string[], io: Io): number {
  const values = parse(args, { tenant: { type: 'string' }, sub: { type: 'string' }, roles: { type: 'string' }, ttl: { type: 'string', default: '1h' } })
  if (values.help === true) {
    io.out(HELP.token)
    return Exit.OK
  }
  const tenant = required(values.tenant, 'tenant')
  const sub = required(values.sub, 'sub')
  const ttl = parseTtl(values.ttl as string)
  const secret = io.env.JWT_SECRET
  if (secret === undefined || secret === '') throw new UsageError('JWT_SECRET is not set: the token must be signed with the gateway\'s secret')
  const algorithm = (io.env.JWT_ALGORITHMS ?? 'HS256').split(',')[0]?.trim() as string
  const claim = io.env.TENANT_CLAIM !== undefined && io.env.TENANT_CLAIM !== '' ? io.env.TENANT_CLAIM : 'tenantId'
  const roles = values.roles === undefined ? [] : values.roles.split(',').map((r) => r.trim()).filter((r) => r !== '')
  const now = Math.floor(Date.now() / 1000)
  const userClaim = io.env.USER_CLAIM !== undefined && io.env.USER_CLAIM !== '' ? io.env.USER_CLAIM : 'sub'
  const claims: Record<string, unknown> = { [userClaim]: sub, [claim]: tenant, ...(roles.length > 0 ? { roles } : {}), iat: now, exp: now + ttl }
  io.out(signToken(claims, secret, algorithm) + '\n')
  return Exit.OK
}

/** The options every command that talks to the gateway takes for its token. */
const TOKEN_OPTIONS = { token: { type: 'string' }, 'token-file': { type: 'string' }, 'token-command': { type: 'string' } } as const

/** How long a --token-command may run, in ms, and how much it may print, in bytes. */
const TOKEN_COMMAND_TIMEOUT_MS = 10_000
const TOKEN_COMMAND_MAX_BYTES = 64 * 1024

/**
 * A token and, for a file or a command, how to get the next one: `reread` reads the file or
 * runs the command again. A literal token, the environment's or stdin's has no next one.
 */
interface TokenSource { token: string, reread?: () => Promise<string> }

class TokenUnavailable extends Error {}

async function tokenSource (values: { token?: string, 'token-file'?: string, 'token-command'?: string }, io: Io): Promise<TokenSource> {
  const given = (['token', 'token-file', 'token-command'] as const).filter((name) => values[name] !== undefined)
  if (given.length > 1) throw new UsageError(`give one token source, not ${given.map((name) => `--${name}`).join(' and ')}`)
  const file = values['token-file']
  if (file === '-') return { token: nonEmpty(await io.stdin(), 'stdin') }
  if (file !== undefined) {
    const read = async (): Promise<string> => {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (err) {
        throw new TokenUnavailable(`--token-file: cannot read ${file}: ${(err as { code?: string }).code ?? (err as Error).message}`)
      }
      return nonEmpty(text, file)
    }
    try {
      return { token: await read(), reread: read }
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  }
  const command = values['token-command']
  if (command !== undefined) {
    const run = async (): Promise<string> => await new Promise((resolve, reject) => {
      exec(command, { env: io.env, timeout: TOKEN_COMMAND_TIMEOUT_MS, maxBuffer: TOKEN_COMMAND_MAX_BYTES }, (err, stdout, stderr) => {
        if (err !== null) {
          const why = err.killed ? `no answer within ${TOKEN_COMMAND_TIMEOUT_MS} ms` : `exit ${String(err.code)}`
          const said = String(stderr).trim().split('\n')[0] ?? ''
          reject(new TokenUnavailable(`--token-command failed (${why})${said === '' ? '' : `: ${said}`}`))
          return
        }
        try {
          resolve(nonEmpty(String(stdout), 'the --token-command output'))
        } catch (error) {
          reject(error)
        }
      })
    })
    return { token: await run(), reread: run }
  }
  const found = values.token ?? io.env.TENANTCAST_TOKEN
  if (found === undefined || found === '') throw new UsageError('a token is required: --token-file <path>, --token-command <cmd>, --token <jwt>, or TENANTCAST_TOKEN')
  return { token: found }
}

/** A token read from somewhere: its trimmed text, which must not be empty. */
function nonEmpty (text: string, where: string): string {
  const token = text.trim()
  if (token === '') throw new TokenUnavailable(`no token in ${where}`)
  return token
}

function baseUrl (value: string | undefined, io: Io): URL {
  const text = value ?? (io.env.TENANTCAST_URL !== undefined && io.env.TENANTCAST_URL !== '' ? io.env.TENANTCAST_URL : DEFAULT_URL)
  try {
    return new URL(text)
  } catch {
    throw new UsageError(`--url is not a URL: ${JSON.stringify(text)}`)
  }
}

/** The socket URL: ws(s), and the default events path when none is given. */
export function socketUrl (url: URL): string {
  const socket = new URL(url)
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }
  const scheme = schemes[socket.protocol]
  if (scheme === undefined) throw new UsageError(`--url must be ws, wss, http or https, not ${socket.protocol}`)
  socket.protocol = scheme
  if (socket.pathname === '/' || socket.pathname === '') socket.pathname = WS_PATH
  return socket.toString()
}

/** The alarms endpoint next to a base or events URL. */
export function alarmsUrl (url: URL): string {
  const http = new URL(url)
  const schemes: Record<string, string> = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' }
  const scheme = schemes[http.protocol]
  if (scheme === undefined) throw new UsageError(`--url must be http, https, ws or wss, not ${http.protocol}`)
  http.protocol = scheme
  if (http.pathname === '/' || http.pathname === '') http.pathname = '/api/v1/alarms'
  else if (http.pathname.endsWith(WS_PATH)) http.pathname = http.pathname.slice(0, -WS_PATH.length) + '/api/v1/alarms'
  http.search = ''
  return http.toString()
}

/** One readable line for an event. */
export function describe (frame: EventFrame): string {
  const data = frame.data as Record<string, unknown> | null
  let text: string
  if (data !== null && typeof data === 'object' && typeof data.message === 'string') {
    const severity = typeof data.severity === 'string' ? `[${data.severity}] ` : ''
    const camera = typeof data.camera === 'string' ? `${data.camera}: ` : ''
    text = `${severity}${camera}${data.message}`
  } else {
    text = JSON.stringify(data)
  }
  return `${frame.timestamp} ${frame.stream}#${frame.offset} ${frame.event} ${text}`
}

/** The token travels as a WebSocket subprotocol, which allows only these characters (a JWT fits). */
function socketSafe (token: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)
}

async function tail (args: string[], io: Io): Promise<number> {
  const values = parse(args, { url: { type: 'string' }, ...TOKEN_OPTIONS, channel: { type: 'string', multiple: true }, 'allow-missing': { type: 'boolean', default: false }, since: { type: 'string' }, json: { type: 'boolean', default: false } })
  if (values.help === true) {
    io.out(HELP.tail)
    return Exit.OK
  }
  const url = socketUrl(baseUrl(values.url, io))
  const source = await tokenSource(values, io)
  if (!socketSafe(source.token)) throw new UsageError('the token has characters no token can have (spaces, quotes, …)')
  if (values.since !== undefined) {
    try {
      parsePosition(values.since)
    } catch (err) {
      throw new UsageError(`--since: ${(err as Error).message}`)
    }
  }
  const reread = source.reread
  const allowMissing = values['allow-missing'] === true
  const client: TenantcastClient = connect({
    url,
    token: source.token,
    // The SDK asks for a new token before this one expires and after a 4401; a file or a
    // command may have one by then, so tail outlives any single token.
    ...(reread === undefined
      ? {}
      : {
          getToken: async () => {
            const next = await reread()
            if (!socketSafe(next)) throw new TokenUnavailable('the new token has characters no token can have (spaces, quotes, …)')
            return next
          }
        }),
    ...(values.since === undefined ? {} : { since: values.since })
  })
  const json = values.json === true
  // Whether the gateway has answered at all: before that, a connection that cannot be made
  // is most likely a wrong URL, reported as such; after it, it is a restart, and retried.
  let reached = false
  client.on('authenticated', (frame) => {
    reached = true
    io.err(`tenantcast: open as ${frame.userId} in tenant ${frame.tenantId}, at ${client.position() ?? '?'}\n`)
  })
  client.on('event', (frame) => { io.out((json ? JSON.stringify(frame) : describe(frame)) + '\n') })
  client.on('gap', (gap) => {
    io.err(`tenantcast: gap on ${gap.stream}: the server holds ${gap.oldest.epoch}:${gap.oldest.offset} to ${gap.latest.epoch}:${gap.latest.offset}; events may be missing\n`)
  })
  client.on('error', (error) => { io.err(`tenantcast: ${error.code}: ${error.message}\n`) })
  return await new Promise<number>((resolve) => {
    let done = false
    const finish = (code: number): void => {
      if (done) return
      done = true
      client.close()
      resolve(code)
    }
    void io.interrupted.then(() => { finish(Exit.OK) })
    for (const channel of values.channel ?? []) {
      client.subscribe(channel).catch((error: TenantcastError) => {
        // The client closing is not a refusal of the channel; the close handler reports it.
        if (error.code === ClientErrorCode.CONNECTION_CLOSED || error.code === ClientErrorCode.NOT_CONNECTED) return
        if (allowMissing) {
          io.err(`tenantcast: channel ${channel} refused (${error.code}: ${error.message}); going on without it (--allow-missing)\n`)
          return
        }
        io.err(`tenantcast: cannot join channel ${channel}: ${error.code}: ${error.message}\n`)
        finish(error.code === 'CHANNEL_FORBIDDEN' ? Exit.AUTH : Exit.FAILED)
      })
    }
    client.on('close', (info: CloseInfo) => {
      if (done) return
      const why = `${info.code}${info.reason === '' ? '' : ` ${info.reason}`}`
      // ws reports a connection that could not be made, or that dropped, as 1006 with no reason.
      const unanswered = info.code === 1006 && info.reason === ''
      if (info.willReconnect) {
        if (!reached && unanswered) {
          io.err(`tenantcast: cannot connect to ${url} (${why})\n`)
          finish(Exit.NETWORK)
          return
        }
        if (!unanswered) reached = true
        io.err(`tenantcast: ${closeMeaning(info.code)} (${why}); reconnecting in ${info.delay ?? 0} ms\n`)
        return
      }
      if (client.state !== 'closed') return
      if (info.code === 1000 && info.reason === '') return // our own close
      io.err(`tenantcast: closed (${why})\n`)
      done = true
      if (info.code === 4401 || info.code === 4403) resolve(Exit.AUTH)
      else if (info.code === 1006) resolve(Exit.NETWORK)
      else resolve(Exit.FAILED)
    })
  })
}

/** What a close the client retries means, in words: a limit is reported as a limit. */
function closeMeaning (code: number): string {
  switch (code) {
    case 4029: return 'refused by a limit'
    case 1001: return 'the gateway is going away (a restart or a deploy)'
    case 1013: return 'the gateway cannot serve this connection now'
    case 4008: return 'too slow a reader for the gateway'
    case 4401: return 'the token was refused; got a new one'
    default: return 'connection lost'
  }
}

/** The longest Retry-After `alarm` waits out, in ms; a gateway that asks for longer is reported, not waited for. */
const MAX_RETRY_WAIT_MS = 30_000
/** The wait before a retry when a 429 or 503 gives no Retry-After, in ms. */
const DEFAULT_RETRY_WAIT_MS = 1000

/** A Retry-After header (delay-seconds or an HTTP date) as ms from now; undefined when absent or unreadable. */
export function retryAfterMs (header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const at = Date.parse(header)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

function parseCount (text: string, name: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a whole number, not ${JSON.stringify(text)}`)
  return Number(text)
}

async function alarm (args: string[], io: Io): Promise<number> {
  const values = parse(args, {
    url: { type: 'string' },
    ...TOKEN_OPTIONS,
    message: { type: 'string' },
    camera: { type: 'string' },
    severity: { type: 'string' },
    'idempotency-key': { type: 'string' },
    timeout: { type: 'string', default: '10s' },
    retries: { type: 'string', default: '3' }
  })
  if (values.help === true) {
    io.out(HELP.alarm)
    return Exit.OK
  }
  const endpoint = alarmsUrl(baseUrl(values.url, io))
  const body = {
    message: required(values.message, 'message'),
    camera: required(values.camera, 'camera'),
    severity: required(values.severity, 'severity')
  }
  if (!SEVERITIES.includes(body.severity)) throw new UsageError(`--severity must be one of ${SEVERITIES.join(', ')}`)
  const timeoutMs = parseDuration(values.timeout as string, 'timeout') * 1000
  const retries = parseCount(values.retries as string, 'retries')
  const tokenValue = (await tokenSource(values, io)).token
  // A retry must not store the alarm twice (a 503 may come after the broker took it), so every
  // attempt carries the same key: the caller's, or one made up for this command.
  const key = values['idempotency-key'] ?? randomUUID()
  for (let attempt = 0; ; attempt++) {
    let response: Response
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenValue}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs)
      })
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        io.err(`tenantcast: no answer from ${endpoint} within ${timeoutMs / 1000} s (--timeout)\n`)
        return Exit.NETWORK
      }
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      io.err(`tenantcast: cannot reach ${endpoint}: ${cause?.code ?? cause?.message ?? (err as Error).message}\n`)
      return Exit.NETWORK
    }
    let text: string
    try {
      text = await response.text()
    } catch {
      io.err(`tenantcast: no answer from ${endpoint} within ${timeoutMs / 1000} s (--timeout)\n`)
      return Exit.NETWORK
    }
    if (response.status === 202 || response.status === 200) {
      io.out(text + '\n')
      return Exit.OK
    }
    let detail = text
    try {
      const parsed = JSON.parse(text) as { code?: string, message?: string }
      detail = `${parsed.code ?? ''}: ${parsed.message ?? ''}`
    } catch {}
    if (response.status === 429 || response.status === 503) {
      const wait = retryAfterMs(response.headers.get('retry-after')) ?? DEFAULT_RETRY_WAIT_MS
      if (wait > MAX_RETRY_WAIT_MS) {
        io.err(`tenantcast: ${response.status} ${detail}; the gateway asks to retry in ${Math.ceil(wait / 1000)} s, longer than the ${MAX_RETRY_WAIT_MS / 1000} s tenantcast waits\n`)
        return Exit.FAILED
      }
      if (attempt < retries) {
        io.err(`tenantcast: ${response.status} ${detail}; retrying in ${wait / 1000} s (retry ${attempt + 1} of ${retries})\n`)
        await new Promise((resolve) => setTimeout(resolve, wait))
        continue
      }
      io.err(`tenantcast: ${response.status} ${detail}; gave up after ${retries} ${retries === 1 ? 'retry' : 'retries'}\n`)
      return Exit.FAILED
    }
    io.err(`tenantcast: ${response.status} ${detail}\n`)
    return response.status === 401 || response.status === 403 ? Exit.AUTH : Exit.FAILED
  }
}

/** Runs one command and returns its exit code. */
export async function main (argv: string[], io: Io = processIo()): Promise<number> {
  const [command, ...args] = argv
  try {
    switch (command) {
      case 'token': return token(args, io)
      case 'tail': return await tail(args, io)
      case 'alarm': return await alarm(args, io)
      case '--help': case '-h': case 'help':
        io.out(HELP.main)
        return Exit.OK
      default:
        io.err(command === undefined ? HELP.main : `tenantcast: unknown command ${JSON.stringify(command)}\n\n${HELP.main}`)
        return Exit.USAGE
    }
  } catch (err) {
    if (err instanceof TokenUnavailable) {
      io.err(`tenantcast ${command}: ${err.message}\n`)
      return Exit.AUTH
    }
    if (!(err instanceof UsageError)) throw err
    io.err(`tenantcast ${command}: ${err.message}\nRun "tenantcast ${command} --help" for usage.\n`)
    return Exit.USAGE
  }
}

function processIo (): Io {
  // A closed pipe (`tenantcast tail | head`) ends the command quietly.
  process.stdout.on('error', () => { process.exit(Exit.OK) })
  return {
    out: (text) => { process.stdout.write(text) },
    err: (text) => { process.stderr.write(text) },
    env: process.env,
    stdin: async () => {
      const chunks: Buffer[] = []
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks).toString('utf8')
    },
    interrupted: new Promise((resolve) => {
      process.once('SIGINT', () => { resolve() })
      process.once('SIGTERM', () => { resolve() })
    })
  }
}
