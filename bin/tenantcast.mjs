#!/usr/bin/env node
// The tenantcast CLI. The command is TypeScript (bin/tenantcast.ts), loaded through tsx's ESM
// hooks, which tenantcast already depends on: no build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./tenantcast.ts')
process.exitCode = await main(process.argv.slice(2))
