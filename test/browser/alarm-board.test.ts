import type { Page } from 'playwright-core'
import t from 'tap'
import { build, get, postAlarm, sign, type Gateway } from '../helper.js'
import { closeBrowser, newPage, skip } from './chromium.js'

/** The console as an alarm board, in real headless Chromium (see ./chromium.ts), as in console.test.ts. */
const WAIT = { timeout: 10_000 }

type Tap = { teardown (fn: () => unknown): void }

/** A console page of its own (a separate browser context), connected with a token for `sub`; records console problems. */
async function consoleAs (t: Tap, gw: Gateway, sub: string): Promise<{ page: Page, problems: string[] }> {
  const { page, problems } = await newPage(t)
  await page.goto(`${gw.http}/`)
  await page.fill('#token', sign({ sub }))
  await page.click('#connect')
  await page.waitForSelector('#state[data-state="open"]', WAIT)
  return { page, problems }
}

async function rows (page: Page): Promise<Array<[string, string, string]>> {
  return await page.$$eval('#alarms li.alarm', (items) => items.map((li) => {
    const row = li as HTMLElement
    return [row.dataset.alarmId ?? '', row.dataset.status ?? '', row.querySelector('.state')?.textContent ?? '']
  }))
}

t.test('the console as an alarm board in Chromium', { skip }, async (t) => {
  t.teardown(closeBrowser)

  t.test('an ack in one console shows as acknowledged, with who and time to ack, in the other; a resolve empties both', async (t) => {
    const gw = await build(t)
    const camera = sign({ sub: 'camera' })
    const older = (await postAlarm(gw, camera, { severity: 'critical', message: 'Smoke in the lobby', camera: 'Lobby' })).body.id as string
    const alice = await consoleAs(t, gw, 'alice')
    const bob = await consoleAs(t, gw, 'bob')
    for (const { page } of [alice, bob]) await page.waitForSelector(`#alarms li[data-alarm-id="${older}"][data-status="open"]`, WAIT)
    t.equal(await alice.page.isVisible('#alarms-empty'), false)

    await postAlarm(gw, camera, { severity: 'low', message: 'Not ackable', camera: 'Gate' })
    const fire = (await postAlarm(gw, camera, { severity: 'critical', message: 'Fire in the server room', camera: 'Server room' })).body.id as string
    await bob.page.waitForSelector(`#alarms li[data-alarm-id="${fire}"]`, WAIT)
    t.same(await rows(bob.page), [[fire, 'open', 'open'], [older, 'open', 'open']], 'newest first; the plain alarm is not on the board')
    t.equal(await text(bob.page, '#alarms-count'), '2')

    await alice.page.click(`#alarms li[data-alarm-id="${fire}"] button.ack`)
    const acked = await bob.page.waitForSelector(`#alarms li[data-alarm-id="${fire}"][data-status="acknowledged"]`, WAIT)
    t.match(await acked.$eval('.state', (node) => node.textContent), /^acknowledged by alice · time to ack \d+ s$/)
    t.equal(await acked.$('button.ack'), null, 'no Ack button on an acknowledged alarm')
    t.ok(await acked.$('button.resolve'), 'it can still be resolved')
    t.same((await rows(alice.page)).map(([id, status]) => [id, status]), [[fire, 'acknowledged'], [older, 'open']])
    let stored = await get(gw, `/api/v1/alarms/${fire}`, sign({ sub: 'viewer' }))
    // Receipts go out batched, 100 ms after the alarm arrived: poll, bounded, until both are in.
    for (let i = 0; i < 100 && Object.keys(stored.body.receipts).length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      stored = await get(gw, `/api/v1/alarms/${fire}`, sign({ sub: 'viewer' }))
    }
    t.match(stored.body.alarm, { status: 'acknowledged', acknowledgedBy: 'alice' })
    t.same(Object.keys(stored.body.receipts).sort(), ['alice', 'bob'], 'both consoles confirmed receipt on their own')

    const late = await consoleAs(t, gw, 'carol')
    await late.page.waitForSelector(`#alarms li[data-alarm-id="${fire}"][data-status="acknowledged"]`, WAIT)
    t.same((await rows(late.page)).map(([id, status]) => [id, status]), [[fire, 'acknowledged'], [older, 'open']], 'a console opened later gets the board from the snapshot')

    await bob.page.click(`#alarms li[data-alarm-id="${fire}"] button.resolve`)
    await bob.page.click(`#alarms li[data-alarm-id="${older}"] button.resolve`)
    for (const { page } of [alice, bob, late]) {
      await page.waitForSelector('#alarms-empty:not([hidden])', WAIT)
      t.same(await rows(page), [])
      t.equal(await text(page, '#alarms-count'), '0')
    }
    t.match((await get(gw, `/api/v1/alarms/${older}`, sign({ sub: 'viewer' }))).body.alarm, { status: 'resolved', resolvedBy: 'bob' })
    for (const { problems } of [alice, bob, late]) t.same(problems, [], 'no console errors or warnings')
  })
})

async function text (page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector, WAIT)) ?? ''
}
