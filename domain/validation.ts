/** One failure as TypeBox's `Errors()` and Fastify's `error.validation` report it. */
export interface SchemaError {
  keyword: string
  instancePath: string
  message?: string | undefined
  params?: Record<string, unknown> | undefined
}

/**
 * One answer that names every failing field, not just the first:
 * `/data/camera is required; /data/severity must be one of low, medium, high, critical`.
 * `root` is where the validated value sits in the request (`/data`, `/body`).
 */
export function describeErrors (errors: readonly SchemaError[], root: string): string {
  const parts: string[] = []
  for (const error of errors) {
    const path = `${root}${error.instancePath}`
    const params = error.params ?? {}
    if (error.keyword === 'required') {
      const missing = (params.requiredProperties ?? [params.missingProperty]) as unknown[]
      for (const name of missing) parts.push(`${path}/${String(name)} is required`)
    } else if (error.keyword === 'enum' && Array.isArray(params.allowedValues)) {
      parts.push(`${path} must be one of ${params.allowedValues.join(', ')}`)
    } else if (error.keyword === 'additionalProperties') {
      const extra = (params.additionalProperties ?? [params.additionalProperty]) as unknown[]
      for (const name of extra) parts.push(`${path}/${String(name)} is not allowed`)
    } else {
      parts.push(`${path} ${error.message ?? 'is invalid'}`)
    }
  }
  return [...new Set(parts)].join('; ')
}
