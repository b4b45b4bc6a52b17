const BEARER = /^Bearer\s+(\S+)$/i

/** The token of an `Authorization: Bearer <token>` value, or undefined when it is not one. */
export function bearerToken (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  return BEARER.exec(value)?.[1]
}
