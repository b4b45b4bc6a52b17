/**
 * Channel names and the patterns that restrict them. A name is tenant-local: the hub and the
 * broker prefix it with the tenant, so `alerts` in two tenants is two channels.
 */
export const CHANNEL_NAME = '^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$'
const channelPattern = new RegExp(CHANNEL_NAME)

export function isValidChannel (name: string): boolean {
  return channelPattern.test(name)
}

/**
 * Compiles glob patterns (`*` any run of characters, `?` one character) into one matcher.
 * An undefined list allows everything; an empty list allows nothing.
 */
export function globMatcher (patterns: readonly string[] | undefined): (name: string) => boolean {
  if (patterns === undefined) return () => true
  if (patterns.length === 0) return () => false
  const source = patterns
    .map((p) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.'))
    .join('|')
  const regex = new RegExp(`^(?:${source})$`)
  return (name) => regex.test(name)
}
