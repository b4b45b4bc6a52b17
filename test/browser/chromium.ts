import { existsSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

/**
 * Real headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by
 * playwright-core (no browser is ever downloaded). CI installs the package (.ci/run); a machine
 * without it skips these files, unless CI=true, where they fail.
 */
export const CHROMIUM = '/usr/bin/chromium'
export const skip = existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `${CHROMIUM} is missing: apt-get install chromium`

type Tap = { teardown (fn: () => unknown): void }

/** One browser per test file, started on first use. */
let browser: Browser | undefined

async function launch (): Promise<Browser> {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  return browser
}

export async function closeBrowser (): Promise<void> {
  await browser?.close()
  browser = undefined
}

/** A fresh page (a context of its own) that records every console error or warning and every uncaught exception. */
export async function newPage (t: Tap, viewport = { width: 1440, height: 900 }): Promise<{ page: Page, context: BrowserContext, problems: string[] }> {
  const context = await (await launch()).newContext({ viewport })
  t.teardown(async () => { await context.close() })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`)
  })
  page.on('pageerror', (error) => { problems.push(`uncaught: ${error.message}`) })
  return { page, context, problems }
}
