import { mkdir } from 'node:fs/promises'
import type { Page } from 'playwright-core'
import t from 'tap'
import { TcpProxy } from '../client/helpers.js'
import { build, postAlarm, sign } from '../helper.js'
import { closeBrowser, newPage, skip } from './chromium.js'

/** The live console in a real headless Chromium (see ./chromium.ts). */
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url)
const WAIT = { timeout: 10_000 }

async function text (page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector, WAIT)) ?? ''
}

async function feedOffsets (page: Page, stream: string): Promise<string[]> {
  return await page.$$eval(`#feed li.event[data-stream="${stream}"]`, (rows) => rows.map((row) => (row as HTMLElement).dataset.offset ?? ''))
}

t.test('the live console in Chromium', { skip }, async (t) => {
  t.teardown(closeBrowser)

  t.test('it connects with a pasted token, shows live alarms newest first, and resumes after the socket is cut', async (t) => {
    const gw = await build(t)
    const proxy = await TcpProxy.start(t, Number(new URL(gw.http).port))
    const { page, problems } = await newPage(t)
    await page.goto(`${proxy.http}/`)
    t.equal(await text(page, '#state'), 'not connected')
    t.equal(await page.isVisible('#dev-token'), false, 'no dev token button with a configured secret')

    await page.fill('#token', sign({ sub: 'operator' }))
    await page.click('#connect')
    await page.waitForSelector('#state[data-state="open"]', WAIT)
    t.equal(await text(page, '#tenant'), 't1')
    t.equal(await text(page, '#user'), 'operator')
    t.match(await text(page, '#connections'), /^1( \(1 user\))?$/)
    t.ok(proxy.requests.every((head) => !head.split('\r\n')[0]?.includes('token')), 'the token never appears in a request line')

    // An alarm posted over REST appears in the feed.
    t.equal((await postAlarm(gw, sign(), { message: 'Motion at the gate', camera: 'Gate', severity: 'critical' })).status, 202)
    const first = await page.waitForSelector('#feed li.event[data-offset="1"]', WAIT)
    t.equal(await first.getAttribute('data-severity'), 'critical')
    t.equal(await first.getAttribute('data-event'), 'alarm:created')
    t.match(await first.textContent(), /Motion at the gate/)
    t.match(await first.textContent(), /alarm:created · Gate/)
    t.match(await first.textContent(), /tenant #1/)
    t.match(await first.$eval('time', (time) => time.textContent), /^\d+ s ago$/)

    // Newest first.
    await postAlarm(gw, sign(), { message: 'Door ajar', camera: 'Back Door', severity: 'low' })
    await page.waitForSelector('#feed li.event[data-offset="2"]', WAIT)
    t.same(await feedOffsets(page, 'tenant'), ['2', '1'])

    // The page's own test alarm form.
    await page.fill('#alarm-message', 'Posted from the console')
    await page.selectOption('#alarm-severity', 'medium')
    await page.click('#alarm-send')
    await page.waitForSelector('#feed li.event[data-offset="3"][data-severity="medium"]', WAIT)
    t.match(await text(page, '#alarm-result'), /^Stored as tenant #3$/)

    // A channel subscription.
    await page.fill('#channel', 'site-7')
    await page.press('#channel', 'Enter')
    await page.waitForSelector('#channels li[data-channel="site-7"][data-status="joined"]', WAIT)
    await gw.app.realtime.sendToChannel('t1', 'site-7', 'door:opened', { door: 3 })
    const door = await page.waitForSelector('#feed li.event[data-stream="channel:site-7"]', WAIT)
    t.match(await door.textContent(), /\{"door":3\}/)

    // The socket is cut server-side; an alarm posted during the outage arrives after the resume.
    proxy.hold()
    proxy.cut()
    await page.waitForSelector('#state[data-state="reconnecting"]', WAIT)
    t.equal((await postAlarm(gw, sign(), { message: 'During the outage', camera: 'Lobby', severity: 'high' })).status, 202)
    await gw.app.realtime.sendToChannel('t1', 'site-7', 'door:opened', { door: 4 })
    proxy.release()
    await page.waitForSelector('#state[data-state="open"]', WAIT)
    const missed = await page.waitForSelector('#feed li.event[data-offset="4"][data-stream="tenant"]', WAIT)
    t.match(await missed.textContent(), /During the outage/)
    t.same([await missed.getAttribute('data-replayed'), await missed.evaluate((row) => row.classList.contains('fresh'))], ['true', false], 'a replayed alarm is shown without the flash')
    t.same([await first.getAttribute('data-replayed'), await first.evaluate((row) => row.classList.contains('fresh'))], [null, true], 'a live one flashed')
    await page.waitForSelector('#feed li.event[data-stream="channel:site-7"][data-offset="2"]', WAIT)
    t.same(await feedOffsets(page, 'tenant'), ['4', '3', '2', '1'], 'every alarm exactly once, newest first')
    t.same(await feedOffsets(page, 'channel:site-7'), ['2', '1'], 'the channel resumed too')
    const system = await page.$$eval('#feed li.system', (rows) => rows.map((row) => row.textContent ?? ''))
    t.ok(system.some((line) => /^Connection lost \(1006\); reconnecting in \d+\.\d s/.test(line)), 'the outage is shown')
    t.ok(system.some((line) => line.startsWith('Resumed tenant: 1 missed event replayed')), 'the resume is shown')
    t.equal(proxy.requests.filter((head) => head.startsWith('GET /api/v1/events?since.tenant=')).length, 1, 'the reconnect asked to resume')

    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: new URL('console.png', ARTIFACTS).pathname, fullPage: false })

    // The same page at phone width: nothing overflows sideways.
    await page.setViewportSize({ width: 375, height: 812 })
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'no horizontal scrolling at 375 px')
    await page.screenshot({ path: new URL('console-375.png', ARTIFACTS).pathname, fullPage: true })
    t.same(problems, [], 'no console errors or warnings')
  })

  t.test('in development the dev token button connects as dev in tenant demo', async (t) => {
    const gw = await build(t, { JWT_SECRET: undefined, NODE_ENV: 'development' })
    const { page, problems } = await newPage(t, { width: 375, height: 812 })
    await page.goto(`${gw.http}/`)
    await page.waitForSelector('#dev-token:not([hidden])', WAIT)
    await page.click('#dev-token')
    await page.waitForSelector('#state[data-state="open"]', WAIT)
    t.equal(await text(page, '#tenant'), 'demo')
    t.equal(await text(page, '#user'), 'dev')
    t.match(await page.inputValue('#token'), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the token is shown for copying')
    await page.click('#alarm-send')
    await page.waitForSelector('#feed li.event[data-offset="1"][data-severity="high"]', WAIT)
    t.same(problems, [])
  })

  t.test('a refused token leaves the console closed and says why', async (t) => {
    const gw = await build(t)
    const { page, problems } = await newPage(t)
    await page.goto(`${gw.http}/`)
    await page.fill('#token', sign({}, { key: 'not-the-gateway-secret-but-long-enough-0123456789' }))
    await page.click('#connect')
    await page.waitForSelector('#state[data-state="closed"]', WAIT)
    t.match(await text(page, '#feed li.system'), /^Disconnected \(4401 TOKEN_INVALID\)/)
    t.same(problems, [])
  })
})
