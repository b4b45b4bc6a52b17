import type { Hub, Member } from './hub.js'

/**
 * Who is online. With one instance the hub knows; with Redis, every instance's view is
 * merged, so counts and lists are cluster-wide. All answers are scoped to one tenant.
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

/** One connection as another instance reports it. */
export interface RemoteConnection {
  clientId: string
  userId: string
  channels: string[]
}

/**
 * Presence from this instance's hub plus, optionally, the connections other instances
 * report. Aggregation lives here once, whatever the source of the remote view.
 */
export class MergedPresence implements Presence {
  constructor (private readonly hub: Hub, private readonly remote: (tenantId: string) => Promise<RemoteConnection[]> = async () => []) {}

  async connectionCount (tenantId: string): Promise<number> {
    return this.hub.tenantConnectionCount(tenantId) + (await this.remote(tenantId)).length
  }

  async userConnectionCount (tenantId: string, userId: string): Promise<number> {
    return this.hub.userConnectionCount(tenantId, userId) + (await this.remote(tenantId)).filter((c) => c.userId === userId).length
  }

  async channelConnectionCount (tenantId: string, channel: string): Promise<number> {
    return this.hub.channelConnectionCount(tenantId, channel) + (await this.remote(tenantId)).filter((c) => c.channels.includes(channel)).length
  }

  async isClientConnected (tenantId: string, clientId: string): Promise<boolean> {
    return this.hub.hasClient(tenantId, clientId) || (await this.remote(tenantId)).some((c) => c.clientId === clientId)
  }

  async users (tenantId: string): Promise<Map<string, number>> {
    const users = this.hub.users(tenantId)
    for (const c of await this.remote(tenantId)) users.set(c.userId, (users.get(c.userId) ?? 0) + 1)
    return users
  }

  async channelMembers (tenantId: string, channel: string): Promise<Member[]> {
    const members = this.hub.channelMembers(tenantId, channel)
    for (const c of await this.remote(tenantId)) {
      if (c.channels.includes(channel)) members.push({ userId: c.userId, clientId: c.clientId })
    }
    return members
  }

  async close (): Promise<void> {}
}
