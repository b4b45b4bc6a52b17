/** Why a socket waiting for `authenticate` was refused: its close reason with 4029. */
export type UnauthenticatedRefusal = 'UNAUTHENTICATED_IP_LIMIT' | 'UNAUTHENTICATED_LIMIT'

/**
 * Caps the sockets that wait for an `authenticate` message, per client address and in total,
 * so that sockets without a token cannot pile up. A socket holds its slot from admission
 * until it shows a valid token or closes; the map holds only addresses with a socket in it.
 */
export class UnauthenticatedSockets {
  private readonly byAddress = new Map<string, number>()
  private total = 0

  constructor (private readonly perAddress: number, private readonly limit: number) {}

  /** A slot for a socket from `address`, with its idempotent release, or why there is none. */
  admit (address: string): { release: () => void } | { refused: UnauthenticatedRefusal } {
    const held = this.byAddress.get(address) ?? 0
    if (held >= this.perAddress) return { refused: 'UNAUTHENTICATED_IP_LIMIT' }
    if (this.total >= this.limit) return { refused: 'UNAUTHENTICATED_LIMIT' }
    this.byAddress.set(address, held + 1)
    this.total++
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.total--
        const left = (this.byAddress.get(address) ?? 1) - 1
        if (left === 0) this.byAddress.delete(address)
        else this.byAddress.set(address, left)
      }
    }
  }
}
