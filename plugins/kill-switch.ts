import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { redisTarget } from './redis.js'
import { CloseCode } from '../domain/close-codes.js'
import { LocalControl, type ControlChannel, type ControlMessage } from '../domain/control.js'
import type { Revocation } from '../domain/revocations.js'
import { HttpErrors } from '../errors.js'

export interface KillSwitch {
  /**
   * Closes the tenant's matching sockets (one user's, one connection, or every one) on every
   * instance with 4403 `REVOKED`. Resolves with how many this instance closed, once the
   * others have been told; rejects with 503 when they could not be.
   */
  disconnect (target: { tenantId: string, userId?: string, clientId?: string }): Promise<number>
  /**
   * Refuses the user's tokens issued before `before` (epoch seconds) on every instance for
   * REVOKE_TTL seconds after it, and closes the sockets holding one with 4403 `REVOKED`.
   */
  revoke (tenantId: string, userId: string, before: number): Promise<{ revocation: Revocation, closed: number }>
}

declare module 'fastify' {
  interface FastifyInstance {
    killSwitch: KillSwitch
  }
}

/**
 * The kill switch. Each instance applies a message to its own hub and revocation list, and
 * the control channel carries it to the others: Redis pub/sub with REDIS_URL, nothing to
 * carry without it.
 */
async function killSwitchPlugin (app: FastifyInstance): Promise<void> {
  const config = app.config
  const redis = app.redis
  // Loaded only with Redis, as the broker is: it brings ioredis.
  const redisControl = redis === undefined
    ? undefined
    : new (await import('../domain/control-redis.js')).RedisControl(redis, { ...redisTarget(config), prefix: config.REDIS_PREFIX, instanceId: randomUUID(), log: app.log })
  const control: ControlChannel = redisControl ?? new LocalControl()

  const apply = (message: ControlMessage): number => {
    if (message.kind === 'disconnect') {
      return app.hub.disconnect(message.tenantId, { userId: message.userId, clientId: message.clientId }, CloseCode.FORBIDDEN, 'REVOKED')
    }
    const { revocation } = message
    app.auth.revocations.add(revocation)
    return app.hub.disconnect(revocation.tenantId, { userId: revocation.userId, issuedBefore: revocation.before }, CloseCode.FORBIDDEN, 'REVOKED')
  }
  const closedOnOthers = (message: ControlMessage): void => {
    const closed = apply(message)
    if (closed > 0) app.log.info({ action: 'admin.control.applied', kind: message.kind, closed }, 'closed sockets on another instance\'s request')
  }
  control.onMessage(closedOnOthers)
  control.onRevocations((revocations) => {
    for (const revocation of revocations) closedOnOthers({ kind: 'revoke', revocation })
  })
  // Before the first request: an instance that starts must already refuse what was revoked.
  // Bounded so that, with Redis down, every start-up wait together stays inside Fastify's plugin
  // timeout; the revocations are read back once the control connection is ready.
  if (redisControl !== undefined) await redisControl.start(2000)
  app.addHook('onClose', async () => { await control.close() })

  const send = async (message: ControlMessage): Promise<number> => {
    const closed = apply(message)
    try {
      await control.publish(message)
    } catch (err) {
      throw new HttpErrors.BROKER_UNAVAILABLE(`this instance applied it, the others could not be told (${(err as Error).message}); retry`)
    }
    return closed
  }

  app.decorate('killSwitch', {
    async disconnect (target) {
      return await send({ kind: 'disconnect', ...target })
    },
    async revoke (tenantId, userId, before) {
      const revocation = { tenantId, userId, before, expiresAt: before + config.REVOKE_TTL }
      return { revocation, closed: await send({ kind: 'revoke', revocation }) }
    }
  } satisfies KillSwitch)
}

export default fp(killSwitchPlugin, { name: 'tenantcast-kill-switch', fastify: '5.x', dependencies: ['tenantcast-config', 'tenantcast-auth', 'tenantcast-redis', 'tenantcast-hub'] })
