import type { Hub, Member } from './hub.js'

/**
 * Who is online. With one instance the hub knows; with Redis, every instance's view is
 * merged, so counts and lists are cluster-wide. All answers are scoped to one tenant.
 *
 * Cost: the counts and `isClientConnected` are O(1) in the tenant's size (they run on every
 * connect and publish); `users` is O(online users) and `channelMembers` O(connections),
 * for the rate-limited REST lists only.
 */
export interface Presence {
  connectionCount (tenantId: string): Promise<number>
  userConnectionCount (tenantId: string, userId: string): Promise<number>
  channelConnectionCount (tenantId: string, channel: string): Promise<number>
  isClientConnected (tenantId: string, clientId: string): Promise<boolean>
  /** Online users and their connection counts. */
  users (tenantId: string): Promise<Map<string, number>>
  channelMembers (tenantId: string, channel: string): Promise<Member[]>
  close (): Promise<void>
}

/** What the other instances report, through whatever carries it; this instance is not included. */
export type RemotePresence = Omit<Presence, 'close'>

/** No other instances. */
const nobody: RemotePresence = {
  connectionCount: async () => 0,
  userConnectionCount: async () => 0,
  channelConnectionCount: async () => 0,
  isClientConnected: async () => false,
  users: async () => new Map(),
  channelMembers: async () => []
}

/**
 * Presence from this instance's hub plus, optionally, what the other instances report.
 * Aggregation lives here once, whatever the source of the remote view.
 */
export class MergedPresence implements Presence {
  constructor (private readonly hub: Hub, private readonly remote: RemotePresence = nobody) {}

  async connectionCount (tenantId: string): Promise<number> {
    return this.hub.tenantConnectionCount(tenantId) + await this.remote.connectionCount(tenantId)
  }

  async userConnectionCount (tenantId: string, userId: string): Promise<number> {
    return this.hub.userConnectionCount(tenantId, userId) + await this.remote.userConnectionCount(tenantId, userId)
  }

  async channelConnectionCount (tenantId: string, channel: string): Promise<number> {
    return this.hub.channelConnectionCount(tenantId, channel) + await this.remote.channelConnectionCount(tenantId, channel)
  }

  async isClientConnected (tenantId: string, clientId: string): Promise<boolean> {
    return this.hub.hasClient(tenantId, clientId) || await this.remote.isClientConnected(tenantId, clientId)
  }

  async users (tenantId: string): Promise<Map<string, number>> {
    const users = this.hub.users(tenantId)
    for (const [userId, count] of await this.remote.users(tenantId)) users.set(userId, (users.get(userId) ?? 0) + count)
    return users
  }

  async channelMembers (tenantId: string, channel: string): Promise<Member[]> {
    return [...this.hub.channelMembers(tenantId, channel), ...await this.remote.channelMembers(tenantId, channel)]
  }

  async close (): Promise<void> {}
}

/** Most users one page of `GET /api/v1/presence` holds, and the page size when none is asked for. */
export const MAX_PAGE_SIZE = 1000
export const DEFAULT_PAGE_SIZE = 100

/**
 * One page of online users in userId order (UTF-16 code units), those after `after`, at most
 * `limit`. `next` is the cursor of the following page: the last userId of this one, absent on
 * the last page. A keyset cursor stays correct while users come and go between pages.
 */
export function usersPage (users: Map<string, number>, after: string | undefined, limit: number): { users: Array<{ userId: string, connections: number }>, next: string | undefined } {
  const ids = [...users.keys()].filter((id) => after === undefined || id > after).sort((x, y) => x < y ? -1 : x > y ? 1 : 0)
  const page = ids.slice(0, limit).map((userId) => ({ userId, connections: users.get(userId) as number }))
  return { users: page, next: ids.length > limit ? page.at(-1)?.userId : undefined }
}
