/** Query parameters whose values never reach a log line, compared on the decoded, lower-cased key. */
const SECRET_PARAMS = new Set(['token', 'access_token', 'jwt'])

/** A query key as the router reads it: `+` is a space, then percent-decoded (raw when malformed). */
function decodeKey (key: string): string {
  const spaced = key.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced
  }
}

/**
 * Replaces credential values in a URL so that it can be logged. The query is cut and split
 * the way Fastify's router does it (from the first `?` or `#`, pairs on `&`), and each key is
 * compared decoded: whatever key the router turns into `token`, `?%74oken=` included, is
 * redacted.
 */
export function redactUrl (url: string): string {
  const start = url.search(/[?#]/)
  if (start === -1) return url
  const pairs = url.slice(start + 1).split('&').map((pair) => {
    const equals = pair.indexOf('=')
    if (equals === -1 || !SECRET_PARAMS.has(decodeKey(pair.slice(0, equals)).toLowerCase())) return pair
    return `${pair.slice(0, equals)}=[REDACTED]`
  })
  return `${url.slice(0, start + 1)}${pairs.join('&')}`
}
