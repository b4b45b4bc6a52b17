/** Query parameters whose values never reach a log line. */
const SECRET_PARAMS = /([?&](?:token|access_token|jwt)=)[^&#]*/gi

/** Replaces credential values in a URL so that it can be logged. */
export function redactUrl (url: string): string {
  return url.replace(SECRET_PARAMS, '$1[REDACTED]')
}
