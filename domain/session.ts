import { CloseCode } from './close-codes.js'
import { MAX_TIMER_MS, type Clock } from './clock.js'
import { ErrorCode } from './error-codes.js'
import { authenticatedFrame, connectedFrame, errorFrame, pongFrame } from './frames.js'
import type { Client, Connection, Hub } from './hub.js'
import { AuthFailure, AuthReason, type Principal, type VerifyToken } from './principal.js'
import { parseFrame, type ClientMessage } from './protocol.js'

/** The pino-compatible subset the session logs through. */
export interface SessionLog {
  info (fields: object, message: string): void
  warn (fields: object, message: string): void
}

export interface SessionOptions {
  clientId: string
  connection: Connection
  hub: Hub
  verify: VerifyToken
  /** How long an unauthenticated socket may wait for `authenticate`, in ms. */
  authTimeoutMs: number
  clock: Clock
  log: SessionLog
}

type State = 'awaiting-auth' | 'open' | 'closed'
type Ref = string | number | undefined

/**
 * The protocol state machine of one connection: awaiting-auth, then open, then closed. It owns
 * the auth timeout and the token-expiry timer, and it is the only thing that adds its client
 * to the hub or removes it.
 */
export class Session {
  private state: State = 'awaiting-auth'
  private client: Client | undefined
  private principal: Principal | undefined
  private timer: unknown

  constructor (private readonly options: SessionOptions) {}

  get clientId (): string { return this.options.clientId }

  /** Call once the socket is open, with the token from the upgrade request if it carried one. */
  start (token: string | undefined): void {
    this.options.connection.send(connectedFrame(this.options.clientId))
    if (token !== undefined) {
      this.authenticate(token, undefined)
      return
    }
    this.arm(this.options.authTimeoutMs, () => {
      this.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, 'no authenticate message arrived in time'))
    })
  }

  /** Handles one text frame from the client. Never throws. */
  receive (text: string): void {
    if (this.state === 'closed') return
    const parsed = parseFrame(text)
    if (!parsed.ok) {
      this.reply(errorFrame(parsed.code, parsed.message, parsed.ref))
      return
    }
    this.dispatch(parsed.message)
  }

  /** The client sent something that is not a text frame. */
  receiveBinary (): void {
    if (this.state === 'closed') return
    this.reply(errorFrame(ErrorCode.INVALID_FRAME, 'frames must be JSON text, not binary'))
  }

  /** Closes from the server side, e.g. on shutdown. */
  close (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.options.connection.close(code, reason)
    this.ended()
  }

  /** Call when the socket has closed, for whatever reason. Idempotent. */
  ended (): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.options.clock.clearTimeout(this.timer)
    if (this.client !== undefined) this.options.hub.remove(this.client)
    if (wasOpen) {
      this.options.log.info({ action: 'websocket.connection.disconnected', ...this.identity() }, 'websocket disconnected')
    }
  }

  private dispatch (message: ClientMessage): void {
    switch (message.type) {
      case 'ping':
        this.reply(pongFrame(message.id))
        return
      case 'authenticate':
        this.authenticate(message.token, message.id)
    }
  }

  private authenticate (token: string, ref: Ref): void {
    let principal: Principal
    try {
      principal = this.options.verify(token)
    } catch (err) {
      const failure = err instanceof AuthFailure ? err : new AuthFailure(AuthReason.TOKEN_INVALID, 'the token could not be verified')
      // A failed refresh leaves the live connection on its current, still valid token.
      if (this.state === 'open') {
        this.options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, refresh: true, ...this.identity() }, 'token refresh rejected')
        this.reply(errorFrame(failure.reason, failure.message, ref))
        return
      }
      this.fail(failure)
      return
    }
    if (this.state === 'open') {
      this.refresh(principal, ref)
      return
    }
    this.state = 'open'
    this.principal = principal
    this.client = { id: this.options.clientId, tenantId: principal.tenantId, userId: principal.userId, connection: this.options.connection }
    this.options.hub.add(this.client)
    this.armExpiry(principal)
    this.options.log.info({ action: 'websocket.connection.established', ...this.identity() }, 'websocket authenticated')
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      connectionCount: this.options.hub.tenantConnectionCount(principal.tenantId)
    }, ref))
  }

  /** A fresh token on a live connection: it must name the same tenant and user. */
  private refresh (principal: Principal, ref: Ref): void {
    const current = this.principal as Principal
    if (principal.tenantId !== current.tenantId || principal.userId !== current.userId) {
      this.reply(errorFrame(ErrorCode.IDENTITY_MISMATCH, 'a refreshed token must name the same tenant and user', ref))
      return
    }
    this.principal = principal
    this.armExpiry(principal)
    this.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      connectionCount: this.options.hub.tenantConnectionCount(principal.tenantId)
    }, ref))
  }

  private armExpiry (principal: Principal): void {
    if (principal.exp === undefined) {
      this.options.clock.clearTimeout(this.timer)
      return
    }
    const expiresAt = principal.exp * 1000
    const check = (): void => {
      const left = expiresAt - this.options.clock.now()
      if (left <= 0) {
        this.fail(new AuthFailure(AuthReason.TOKEN_EXPIRED, 'the token expired'))
        return
      }
      this.arm(Math.min(left, MAX_TIMER_MS), check)
    }
    check()
  }

  private arm (ms: number, fn: () => void): void {
    this.options.clock.clearTimeout(this.timer)
    this.timer = this.options.clock.setTimeout(fn, ms)
  }

  private fail (failure: AuthFailure): void {
    this.options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, clientId: this.options.clientId }, 'websocket auth failed')
    this.close(CloseCode.UNAUTHORIZED, failure.reason)
  }

  private reply (frame: string): void {
    this.options.connection.send(frame)
  }

  private identity (): Record<string, string | undefined> {
    return { clientId: this.options.clientId, tenantId: this.principal?.tenantId, userId: this.principal?.userId }
  }
}
