import { CloseCode } from './close-codes.js'
import { MAX_TIMER_MS } from './clock.js'
import { ErrorCode } from './error-codes.js'
import { authenticatedFrame, errorFrame, type Ref } from './frames.js'
import type { Client } from './hub.js'
import { AuthFailure, AuthReason, AuthUnavailable, type Principal } from './principal.js'
import type { SessionContext } from './session.js'
import type { ChannelMembership } from './session-channels.js'
import type { StreamAttachments } from './session-streams.js'
import { TENANT_STREAM, parseSince, resumableAtConnect, userOf, userStream, type Position, type SinceInput } from './streams.js'

/**
 * One connection's auth lifecycle: the wait for a token (AUTH_TIMEOUT_MS), its verification,
 * the connection caps and the kill switch before the client enters the hub, a refresh on the
 * live connection (same tenant and user only), and the close at the token's `exp`. A failure
 * closes with 4401 and its reason; keys that cannot be fetched are no verdict and close with
 * 1013 (or, on a refresh, keep the current token).
 */
export class SessionAuth {
  /** The auth timeout before authentication, the expiry timer after. */
  private timer: unknown
  /** Who the connection is, once a token was verified; a refresh replaces it. */
  principal: Principal | undefined

  constructor (
    private readonly session: SessionContext,
    private readonly streams: StreamAttachments,
    private readonly channels: ChannelMembership,
    private readonly enter: (principal: Principal) => Client
  ) {}

  /**
   * Armed for an upgrade token too: a refused one (a malformed `since`) leaves the socket
   * waiting for `authenticate`, and that wait is bounded.
   */
  armAuthTimeout (): void {
    this.arm(this.session.options.authTimeoutMs, () => {
      this.fail(new AuthFailure(AuthReason.AUTHENTICATION_REQUIRED, 'no authenticate message arrived in time'))
    })
  }

  /** The session ended: no timer of it fires any more. */
  stop (): void {
    this.session.options.clock.clearTimeout(this.timer)
  }

  async authenticate (token: string, sinceInput: SinceInput | undefined, ref: Ref): Promise<void> {
    const since = sinceInput === undefined ? new Map<string, Position>() : parseSince(sinceInput, resumableAtConnect)
    if (typeof since === 'string') {
      this.session.reply(errorFrame(ErrorCode.INVALID_POSITION, since, ref))
      return
    }
    const options = this.session.options
    let principal: Principal
    try {
      principal = await options.verify(token)
    } catch (err) {
      if (this.session.isClosed()) return
      if (err instanceof AuthUnavailable) {
        this.unavailable(err, ref)
        return
      }
      const failure = err instanceof AuthFailure ? err : new AuthFailure(AuthReason.TOKEN_INVALID, 'the token could not be verified')
      // A failed refresh leaves the live connection on its current, still valid token.
      if (this.session.isOpen()) {
        options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, refresh: true, ...this.session.identity() }, 'token refresh rejected')
        this.session.reply(errorFrame(failure.reason, failure.message, ref))
        return
      }
      this.fail(failure, true)
      return
    }
    if (this.session.isClosed()) return
    if (this.session.isOpen()) {
      await this.refresh(principal, ref)
      return
    }
    // Another user's stream is not this connection's to resume: its position is left out, and
    // nothing of that stream is sent. Refusing the connection instead would strand a tab whose
    // token now names another user (a sign-out and sign-in), since its SDK still holds the old
    // user's position and would send it on every attempt.
    for (const stream of [...since.keys()]) {
      if (userOf(stream) !== undefined && userOf(stream) !== principal.userId) since.delete(stream)
    }
    if (await this.overCapacity(principal) || this.session.isClosed()) return
    // A revocation that arrived while the caps were looked up still keeps the socket out.
    if (options.refuses(principal)) {
      this.fail(new AuthFailure(AuthReason.TOKEN_REVOKED, 'the token was revoked'))
      return
    }
    this.principal = principal
    const client = this.enter(principal)
    this.channels.grant(principal.channels)
    this.armExpiry(principal)
    const reads = await this.streams.readAtAuth(since)
    if (reads === undefined) return
    const connectionCount = await this.count(principal.tenantId)
    if (this.session.isClosed()) return
    options.log.info({ action: 'websocket.connection.established', ...this.session.identity() }, 'websocket authenticated')
    this.session.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: client.id,
      connectionCount,
      position: positionOf(reads.get(TENANT_STREAM)),
      positions: Object.fromEntries([...reads].map(([stream, read]) => [stream, positionOf(read)]))
    }, ref))
    for (const [stream, read] of reads) await this.streams.attach(stream, since.get(stream), read, ref)
  }

  /** Closes with 4401. `verified` failures were already reported by the verifier itself. */
  fail (failure: AuthFailure, verified = false): void {
    if (!verified) this.session.options.observer.authFailed(failure.reason)
    this.session.options.log.warn({ action: 'websocket.auth.failed', reason: failure.reason, clientId: this.session.options.clientId }, 'websocket auth failed')
    this.session.close(CloseCode.UNAUTHORIZED, failure.reason)
  }

  /** Enforces the per-user and per-tenant connection caps; a socket over either gets 4029. */
  private async overCapacity (principal: Principal): Promise<boolean> {
    const { hub, presence, limits, observer, log, clientId } = this.session.options
    const { connectionsPerUser, connectionsPerTenant } = limits
    const [user, tenant] = await Promise.all([
      connectionsPerUser === 0 ? 0 : presence.userConnectionCount(principal.tenantId, principal.userId).catch(() => hub.userConnectionCount(principal.tenantId, principal.userId)),
      connectionsPerTenant === 0 ? 0 : presence.connectionCount(principal.tenantId).catch(() => hub.tenantConnectionCount(principal.tenantId))
    ])
    if (this.session.isClosed()) return true
    const reason = connectionsPerUser > 0 && user >= connectionsPerUser
      ? 'USER_CONNECTION_LIMIT'
      : connectionsPerTenant > 0 && tenant >= connectionsPerTenant ? 'TENANT_CONNECTION_LIMIT' : undefined
    if (reason === undefined) return false
    observer.rateLimited('connections', principal.tenantId)
    log.warn({ action: 'websocket.connection.limited', reason, clientId, tenantId: principal.tenantId, userId: principal.userId }, 'connection cap reached')
    this.session.close(CloseCode.RATE_LIMITED, reason)
    return true
  }

  /** The cluster-wide count when it can be had, this instance's otherwise: auth never fails on it. */
  private async count (tenantId: string): Promise<number> {
    try {
      return await this.session.options.presence.connectionCount(tenantId)
    } catch {
      return this.session.options.hub.tenantConnectionCount(tenantId)
    }
  }

  /** A fresh token on a live connection: it must name the same tenant and user. */
  private async refresh (principal: Principal, ref: Ref): Promise<void> {
    const current = this.session.principal
    if (principal.tenantId !== current.tenantId || principal.userId !== current.userId) {
      this.session.reply(errorFrame(ErrorCode.IDENTITY_MISMATCH, 'a refreshed token must name the same tenant and user', ref))
      return
    }
    this.principal = principal
    const client = this.session.client
    client.issuedAt = principal.iat
    // Role-targeted events (escalations) follow the roles of the newest token, both ways.
    client.roles = principal.roles
    this.channels.grant(principal.channels)
    this.armExpiry(principal)
    const connectionCount = await this.count(principal.tenantId)
    const all = this.streams.positions()
    const own = [TENANT_STREAM, userStream(principal.userId)]
    const positions = Object.fromEntries(own.filter((s) => all[s] !== undefined).map((s) => [s, all[s] as Position]))
    this.session.reply(authenticatedFrame({
      userId: principal.userId,
      tenantId: principal.tenantId,
      clientId: this.session.options.clientId,
      connectionCount,
      position: positions[TENANT_STREAM] ?? { epoch: '', offset: 0 },
      positions
    }, ref))
  }

  private armExpiry (principal: Principal): void {
    const clock = this.session.options.clock
    if (principal.exp === undefined) {
      clock.clearTimeout(this.timer)
      return
    }
    const expiresAt = principal.exp * 1000
    const check = (): void => {
      const left = expiresAt - clock.now()
      if (left <= 0) {
        this.fail(new AuthFailure(AuthReason.TOKEN_EXPIRED, 'the token expired'))
        return
      }
      this.arm(Math.min(left, MAX_TIMER_MS), check)
    }
    check()
  }

  private arm (ms: number, fn: () => void): void {
    const clock = this.session.options.clock
    clock.clearTimeout(this.timer)
    this.timer = clock.setTimeout(fn, ms)
  }

  /**
   * The token could not be checked (its keys are unreachable): not a verdict, so never 4401.
   * A refresh keeps the connection on its current token; a first authentication closes with
   * 1013 and a retry hint, and the client comes back with the same token.
   */
  private unavailable (err: AuthUnavailable, ref: Ref): void {
    const refresh = this.session.isOpen()
    this.session.options.log.warn({ action: 'websocket.auth.unavailable', retryAfterMs: err.retryAfterMs, refresh, ...this.session.identity() }, err.message)
    if (refresh) {
      this.session.reply(errorFrame(ErrorCode.AUTH_UNAVAILABLE, `${err.message}; retry in ${err.retryAfterMs} ms`, ref))
      return
    }
    this.session.close(CloseCode.TRY_AGAIN, `AUTH_UNAVAILABLE retry=${err.retryAfterMs}`)
  }
}

function positionOf (read: { epoch: string, latest: number } | undefined): Position {
  return { epoch: read?.epoch ?? '', offset: read?.latest ?? 0 }
}
