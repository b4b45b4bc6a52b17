import { readFile } from 'node:fs/promises'
import t from 'tap'
import { BUNDLE_PATH, buildClient, bundleIsCurrent } from '../../scripts/build-client.js'

t.test('the committed browser bundle is what npm run build:client produces from client/', async (t) => {
  t.ok(await bundleIsCurrent(), 'public/tenantcast-client.js is stale: run npm run build:client and commit it')
})

t.test('the browser bundle is built from the SDK alone and imports nothing', async (t) => {
  const { code, inputs } = await buildClient()
  t.ok(inputs.length > 0)
  t.same(inputs.filter((input) => !input.startsWith('client/')), [], 'no server code and no package is bundled')
  t.notMatch(code, /^\s*import\s/m, 'no static import')
  t.same([...code.matchAll(/import\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]), ['ws'], 'the only dynamic import is ws, for Node without a global WebSocket')
  t.match(code, /export \{[^}]*\bconnect\b/, 'connect is exported')
  t.equal(await readFile(BUNDLE_PATH, 'utf8'), code)
})

// The package subpath `tenantcast/client` is tested from an installed tarball: test/package/package.test.ts.
