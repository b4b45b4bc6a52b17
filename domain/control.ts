import { Type, type Static } from 'typebox'
import { Revocation } from './revocations.js'

/**
 * What an admin asks of every instance: close sockets now (`disconnect`), or refuse a user's
 * older tokens from now on (`revoke`, which also closes the sockets that hold one). A
 * `disconnect` without `userId` or `clientId` names the whole tenant.
 */
export const ControlMessage = Type.Union([
  Type.Object({
    kind: Type.Literal('disconnect'),
    tenantId: Type.String({ minLength: 1 }),
    userId: Type.Optional(Type.String({ minLength: 1 })),
    clientId: Type.Optional(Type.String({ minLength: 1 }))
  }),
  Type.Object({ kind: Type.Literal('revoke'), revocation: Revocation })
])
export type ControlMessage = Static<typeof ControlMessage>

export type ControlListener = (message: ControlMessage) => void

/**
 * Carries control messages between instances. Delivery is at most once and only to
 * instances connected at the time; revocations, which must outlive that, are also stored,
 * and an instance reads them back when it starts and whenever its link came back.
 */
export interface ControlChannel {
  /** Sends to every other instance; resolves once the message is handed over (and a revocation stored). */
  publish (message: ControlMessage): Promise<void>
  /** Listens to other instances' messages; returns its removal. */
  onMessage (listener: ControlListener): () => void
  /** Called with every revocation in force when the channel (re)connects. */
  onRevocations (listener: (revocations: Revocation[]) => void): () => void
  close (): Promise<void>
}

/** One instance: there is no one else to tell, and the revocations live in its memory. */
export class LocalControl implements ControlChannel {
  async publish (): Promise<void> {}
  onMessage (): () => void { return () => {} }
  onRevocations (): () => void { return () => {} }
  async close (): Promise<void> {}
}
