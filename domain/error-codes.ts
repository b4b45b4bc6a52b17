/**
 * Codes of `error` frames sent over the socket. The connection stays open after each of them.
 * Stable: clients branch on them, so never rename one.
 */
export const ErrorCode = {
  INVALID_JSON: 'INVALID_JSON',
  INVALID_FRAME: 'INVALID_FRAME',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  AUTHENTICATION_REQUIRED: 'AUTHENTICATION_REQUIRED',
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]
