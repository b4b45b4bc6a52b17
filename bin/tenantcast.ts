#!/usr/bin/env node
// The `tenantcast` command. Compiled to dist/bin/tenantcast.js, which package.json's `bin` names.
import { main } from './cli.js'

process.exitCode = await main(process.argv.slice(2))
