import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'

/**
 * One escalation level. `after` seconds past an alarm's creation, if the condition still
 * holds, the alarm escalates: `alarm:escalated` goes to the tenant's sockets whose token holds
 * `role`, and/or `webhook` is called. Conditions:
 * - `unacknowledged` (the default): the alarm is still `open`;
 * - `unreceived`: the alarm is still `open` and no device of any user confirmed receipt.
 */
export const EscalationRule = Type.Object({
  after: Type.Number({ exclusiveMinimum: 0, maximum: 2592000 }),
  if: Type.Optional(Type.Enum(['unacknowledged', 'unreceived'])),
  role: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  webhook: Type.Optional(Type.String({ pattern: '^https?://' }))
}, { additionalProperties: false })
export type EscalationRule = Static<typeof EscalationRule>

const Rules = Type.Array(EscalationRule, { maxItems: 16 })

/**
 * ALARM_ESCALATION: a JSON list of rules for every tenant, or `{"default": [...], "tenants":
 * {"<tenantId>": [...]}}`, where a tenant's own list replaces the default one.
 */
export const EscalationConfig = Type.Union([
  Rules,
  Type.Object({ default: Type.Optional(Rules), tenants: Type.Optional(Type.Record(Type.String(), Rules)) }, { additionalProperties: false })
])

const check = Compile(EscalationConfig)

export interface Escalation {
  /** A tenant's rules: its own list, or the deployment's. Level n is rule n (1-based). */
  rulesFor: (tenantId: string) => readonly EscalationRule[]
  /** Whether any rule calls a webhook (WEBHOOK_SECRET is then required). */
  webhooks: boolean
}

/** Parses ALARM_ESCALATION; throws with a message naming the setting when it is malformed. */
export function parseEscalation (text: string): Escalation {
  if (text.trim() === '') return { rulesFor: () => [], webhooks: false }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new Error('ALARM_ESCALATION is not JSON: give a list of rules, e.g. [{"after":60,"role":"supervisor"},{"after":300,"webhook":"https://ops.example.com/hook"}]')
  }
  if (!check.Check(value)) {
    const first = check.Errors(value)[0]
    throw new Error(`ALARM_ESCALATION is invalid${first === undefined ? '' : ` at ${first.instancePath || '/'}: ${first.message}`}`)
  }
  const lists = Array.isArray(value) ? [value as EscalationRule[]] : [value.default ?? [], ...Object.values(value.tenants ?? {})]
  for (const rule of lists.flat()) {
    if (rule.role === undefined && rule.webhook === undefined) throw new Error(`ALARM_ESCALATION has a rule after ${rule.after} s with neither role nor webhook`)
  }
  const webhooks = lists.flat().some((rule) => rule.webhook !== undefined)
  if (Array.isArray(value)) {
    const rules = value as EscalationRule[]
    return { rulesFor: () => rules, webhooks }
  }
  const fallback = value.default ?? []
  const tenants = new Map(Object.entries(value.tenants ?? {}))
  return { rulesFor: (tenantId) => tenants.get(tenantId) ?? fallback, webhooks }
}
