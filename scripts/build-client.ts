import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build, type Metafile } from 'esbuild'

/**
 * Builds the client SDK into one dependency-free ES module for browsers,
 * `public/tenantcast-client.js`, which the live console loads. The bundle is committed so that
 * `npm start` serves it without a build step; a test fails when it is stale.
 *
 *   npm run build:client
 */
const root = fileURLToPath(new URL('..', import.meta.url))
export const BUNDLE_PATH = fileURLToPath(new URL('../public/tenantcast-client.js', import.meta.url))

const BANNER = '// tenantcast client SDK, generated from client/ by `npm run build:client`. Do not edit.'

/** The bundle's text and the source files it was built from, without writing anything. */
export async function buildClient (): Promise<{ code: string, inputs: string[] }> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['client/index.ts'],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // Only reached under Node without a global WebSocket; a browser never loads it.
    external: ['ws'],
    banner: { js: BANNER },
    legalComments: 'none',
    charset: 'utf8',
    write: false,
    metafile: true,
    logLevel: 'silent'
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no output')
  return { code: output.text, inputs: Object.keys((result.metafile as Metafile).inputs) }
}

/** Whether the committed bundle matches a fresh build. */
export async function bundleIsCurrent (): Promise<boolean> {
  const [{ code }, committed] = await Promise.all([buildClient(), readFile(BUNDLE_PATH, 'utf8').catch(() => '')])
  return code === committed
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { code } = await buildClient()
  await writeFile(BUNDLE_PATH, code)
  process.stdout.write(`wrote ${BUNDLE_PATH} (${code.length} bytes)\n`)
}
