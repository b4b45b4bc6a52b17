// tenantcast live console: the SDK bundle, the DOM, nothing else. Every value that came from
// the network is written with textContent, never as HTML.
import { connect } from './tenantcast-client.js'

const MAX_ROWS = 500
const SEVERITIES = ['low', 'medium', 'high', 'critical']
const PRESENCE_POLL_MS = 15_000

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const ui = {
  state: $('state'),
  dot: $('state-dot'),
  token: /** @type {HTMLTextAreaElement} */ ($('token')),
  connect: /** @type {HTMLButtonElement} */ ($('connect')),
  disconnect: /** @type {HTMLButtonElement} */ ($('disconnect')),
  devToken: /** @type {HTMLButtonElement} */ ($('dev-token')),
  tenant: $('tenant'),
  user: $('user'),
  connections: $('connections'),
  position: $('position'),
  channelForm: /** @type {HTMLFormElement} */ ($('channel-form')),
  channel: /** @type {HTMLInputElement} */ ($('channel')),
  channels: $('channels'),
  alarmForm: /** @type {HTMLFormElement} */ ($('alarm-form')),
  alarmResult: $('alarm-result'),
  alarms: $('alarms'),
  alarmsEmpty: $('alarms-empty'),
  alarmsCount: $('alarms-count'),
  feed: $('feed'),
  feedEmpty: $('feed-empty'),
  feedCount: $('feed-count'),
  clear: $('clear')
}

/** @type {ReturnType<typeof connect> | undefined} */
let client
/** The token in use: the pasted one, or the last one the dev route handed out. */
let token = ''
let presenceTimer = 0
/** channel name -> its chip */
const channels = new Map()
let eventCount = 0

const config = await fetch('console/config.json').then((r) => r.json()).catch(() => ({ wsPath: '/api/v1/events', devToken: false }))
const wsUrl = new URL(config.wsPath, location.href)
wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
ui.devToken.hidden = !config.devToken

// ---------------------------------------------------------------- helpers

function el (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

function relative (iso) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000))
  if (!Number.isFinite(seconds)) return ''
  if (seconds < 60) return `${seconds} s ago`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours} h ago`
  return new Date(iso).toLocaleString()
}

function setState (state) {
  const labels = { connecting: 'connecting…', open: 'open', reconnecting: 'reconnecting…', closed: 'closed', idle: 'not connected' }
  ui.state.textContent = labels[state] ?? state
  ui.state.dataset.state = state
  ui.dot.dataset.state = state
  ui.disconnect.disabled = state === 'closed' || state === 'idle'
}

/** The tenant stream's last offset; the full `<epoch>:<offset>` is in the tooltip. */
function showPosition () {
  const position = client?.position()
  ui.position.textContent = position === undefined ? '–' : `tenant #${position.slice(position.lastIndexOf(':') + 1)}`
  ui.position.title = position ?? ''
}

// ---------------------------------------------------------------- feed

function trim () {
  while (ui.feed.children.length > MAX_ROWS) ui.feed.lastElementChild?.remove()
  ui.feedEmpty.hidden = ui.feed.children.length > 0
}

/** A row arrives; only news flashes: a replayed event (history sent again after a reconnect) does not. */
function addRow (li, fresh = true) {
  if (fresh) li.classList.add('fresh')
  ui.feed.prepend(li)
  trim()
}

function stamp (iso) {
  const time = el('time', '', relative(iso))
  time.dateTime = iso
  time.title = new Date(iso).toLocaleString()
  return time
}

/** A short line for any payload: the fields people look for first, else compact JSON. */
function summary (data) {
  if (data === null || typeof data !== 'object') return JSON.stringify(data) ?? ''
  for (const key of ['message', 'title', 'text', 'name']) {
    if (typeof data[key] === 'string') return data[key]
  }
  return JSON.stringify(data).slice(0, 300)
}

function addEvent (frame) {
  const data = frame.data ?? {}
  const severity = typeof data.severity === 'string' && SEVERITIES.includes(data.severity) ? data.severity : undefined
  const li = el('li', 'event')
  li.dataset.event = frame.event
  li.dataset.stream = frame.stream
  li.dataset.offset = String(frame.offset)
  if (severity !== undefined) li.dataset.severity = severity
  if (frame.replayed === true) li.dataset.replayed = 'true'
  li.append(el('span', 'bar'))
  li.append(el('span', 'badge', severity ?? 'event'))
  const body = el('div', 'body')
  body.append(el('div', 'title', summary(data)))
  const details = [frame.event]
  if (typeof data.camera === 'string') details.push(data.camera)
  if (frame.from?.userId) details.push(`from ${frame.from.userId}`)
  body.append(el('div', 'sub', details.join(' · ')))
  li.append(body)
  const meta = el('div', 'meta')
  meta.append(el('code', '', `${frame.stream} #${frame.offset}`))
  meta.append(stamp(frame.timestamp))
  li.append(meta)
  addRow(li, frame.replayed !== true)
  eventCount++
  ui.feedCount.textContent = String(eventCount)
  showPosition()
}

/** A line about the connection itself: reconnects, resumes, gaps, errors. */
function addSystem (text, level = 'info') {
  const li = el('li', 'system')
  li.dataset.level = level
  li.append(el('span', 'bar'))
  li.append(el('span', 'text', text))
  const meta = el('div', 'meta')
  meta.append(stamp(new Date().toISOString()))
  li.append(meta)
  addRow(li)
}

setInterval(() => {
  for (const time of document.querySelectorAll('#feed time, #alarms time')) time.textContent = relative(time.dateTime)
}, 1000)

// ---------------------------------------------------------------- alarm board

/** A duration in ms as people read it: `42 s`, `3 min 5 s`, `2 h 10 min`. */
function duration (ms) {
  const seconds = Math.max(0, Math.round(ms / 1000))
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`
}

/** Acks or resolves from the board; the row changes when the SDK's openAlarms does. */
function act (kind, id, button) {
  const current = client
  if (current === undefined) return
  button.disabled = true
  current[kind](id).then((reply) => {
    if (!reply.changed) addSystem(`Alarm ${id} was already ${reply.alarm.status}${reply.alarm.acknowledgedBy ? ` (by ${reply.alarm.acknowledgedBy})` : ''}`)
  }, (error) => {
    button.disabled = false
    addSystem(`Cannot ${kind} alarm ${id}: ${error.code}`, 'error')
  })
}

function actionButton (kind, label, id) {
  const button = el('button', kind, label)
  button.type = 'button'
  button.setAttribute('aria-label', `${label} alarm ${id}`)
  button.addEventListener('click', () => { act(kind, id, button) })
  return button
}

/** The SDK's openAlarms, newest first: one row per unresolved alarm, with who acknowledged it and how long that took. */
function renderAlarms (alarms) {
  const rows = alarms.map((record) => {
    const alarm = record.alarm ?? {}
    const severity = SEVERITIES.includes(alarm.severity) ? alarm.severity : undefined
    const li = el('li', 'alarm')
    li.dataset.alarmId = record.id
    li.dataset.status = record.status
    if (severity !== undefined) li.dataset.severity = severity
    li.append(el('span', 'bar'))
    li.append(el('span', 'badge', severity ?? 'alarm'))
    const body = el('div', 'body')
    body.append(el('div', 'title', summary(alarm)))
    const details = [typeof alarm.camera === 'string' ? alarm.camera : 'alarm']
    if (record.escalations?.length > 0) details.push(`escalated: level ${record.escalations.join(', ')}`)
    if (record.note) details.push(`note: ${record.note}`)
    body.append(el('div', 'sub', details.join(' · ')))
    li.append(body)
    const meta = el('div', 'meta')
    const state = record.status === 'acknowledged'
      ? `acknowledged by ${record.acknowledgedBy ?? 'someone'}${record.acknowledgedAt ? ` · time to ack ${duration(Date.parse(record.acknowledgedAt) - Date.parse(record.createdAt))}` : ''}`
      : 'open'
    meta.append(el('span', 'state', state))
    meta.append(stamp(record.createdAt))
    const actions = el('div', 'actions')
    if (record.status === 'open') actions.append(actionButton('ack', 'Ack', record.id))
    actions.append(actionButton('resolve', 'Resolve', record.id))
    meta.append(actions)
    li.append(meta)
    return li
  })
  ui.alarms.replaceChildren(...rows)
  ui.alarmsCount.textContent = String(alarms.length)
  ui.alarmsEmpty.hidden = alarms.length > 0
}

// ---------------------------------------------------------------- connection

async function refreshPresence () {
  if (client?.state !== 'open') return
  try {
    const response = await fetch('api/v1/presence', { headers: { authorization: `Bearer ${token}` } })
    if (!response.ok) return
    const presence = await response.json()
    ui.connections.textContent = `${presence.connectionCount} (${presence.userCount} ${presence.userCount === 1 ? 'user' : 'users'})`
  } catch {
    // The count is a convenience; the next poll or reconnect brings it back.
  }
}

function start (options) {
  stop()
  const current = connect({ url: wsUrl.toString(), ...options })
  client = current
  renderAlarms(current.openAlarms)
  setState(current.state)
  current.on('state', (state) => { if (client === current) setState(state) })
  current.on('authenticated', (frame) => {
    ui.tenant.textContent = frame.tenantId
    ui.user.textContent = frame.userId
    ui.connections.textContent = String(frame.connectionCount)
    showPosition()
    addSystem(`Connected as ${frame.userId} in tenant ${frame.tenantId}`, 'ok')
    for (const [name, chip] of channels) subscribeChip(name, chip)
    void refreshPresence()
  })
  current.on('event', addEvent)
  current.on('alarms', (alarms) => { if (client === current) renderAlarms(alarms) })
  current.on('recovered', (frame) => {
    if (frame.recovered && frame.count > 0) addSystem(`Resumed ${frame.stream}: ${frame.count} missed ${frame.count === 1 ? 'event' : 'events'} replayed`, 'ok')
    showPosition()
  })
  current.on('healed', (healed) => {
    const count = healed.to - healed.from + 1
    addSystem(`Healed ${healed.stream}: ${count} missing ${count === 1 ? 'event' : 'events'} (#${healed.from}${count === 1 ? '' : `–#${healed.to}`}) fetched on the live connection`, 'ok')
  })
  current.on('gap', (gap) => {
    addSystem(`Gap on ${gap.stream}: events before #${gap.oldest.offset} are no longer held; refetch history if you need them`, 'warn')
  })
  current.on('close', (info) => {
    const why = `${info.code}${info.reason ? ` ${info.reason}` : ''}`
    if (info.willReconnect) addSystem(`Connection lost (${why}); reconnecting in ${(info.delay / 1000).toFixed(1)} s`, 'warn')
    else if (client === current) addSystem(`Disconnected (${why})`, info.code === 1000 ? 'info' : 'error')
  })
  current.on('error', (error) => { addSystem(`${error.code}: ${error.message}`, 'error') })
  clearInterval(presenceTimer)
  presenceTimer = setInterval(() => { void refreshPresence() }, PRESENCE_POLL_MS)
}

function stop () {
  const previous = client
  client = undefined
  previous?.close()
  clearInterval(presenceTimer)
  for (const chip of channels.values()) chip.dataset.status = 'pending'
}

ui.connect.addEventListener('click', () => {
  token = ui.token.value.trim()
  if (token === '') {
    ui.token.focus()
    addSystem('Paste a token first', 'warn')
    return
  }
  start({ token })
})

ui.disconnect.addEventListener('click', () => {
  const current = client
  client = undefined
  clearInterval(presenceTimer)
  current?.close()
  setState('closed')
  addSystem('Disconnected')
})

ui.devToken.addEventListener('click', () => {
  start({
    getToken: async () => {
      const response = await fetch('dev/token', { cache: 'no-store' })
      if (!response.ok) throw new Error(`the dev token route answered ${response.status}`)
      token = (await response.json()).token
      ui.token.value = token
      return token
    }
  })
})

// ---------------------------------------------------------------- channels

function subscribeChip (name, chip) {
  if (client === undefined) return
  chip.dataset.status = 'pending'
  client.subscribe(name).then(() => {
    chip.dataset.status = 'joined'
    chip.title = 'subscribed'
  }, (error) => {
    if (error.code === 'CONNECTION_CLOSED' || error.code === 'NOT_SUBSCRIBED') return
    chip.dataset.status = 'error'
    chip.title = error.message
    addSystem(`Cannot subscribe to ${name}: ${error.code}`, 'error')
  })
}

ui.channelForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const name = ui.channel.value.trim()
  if (name === '' || channels.has(name)) return
  const chip = el('li')
  chip.dataset.channel = name
  chip.append(el('span', '', name))
  const remove = el('button', '', '×')
  remove.type = 'button'
  remove.setAttribute('aria-label', `Unsubscribe from ${name}`)
  remove.addEventListener('click', () => {
    channels.delete(name)
    chip.remove()
    client?.unsubscribe(name).catch(() => {})
  })
  chip.append(remove)
  ui.channels.append(chip)
  channels.set(name, chip)
  ui.channel.value = ''
  subscribeChip(name, chip)
})

// ---------------------------------------------------------------- test alarm

ui.alarmForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = new FormData(ui.alarmForm)
  const current = token || ui.token.value.trim()
  ui.alarmResult.classList.remove('error')
  if (current === '') {
    ui.alarmResult.textContent = 'Connect with a token first.'
    ui.alarmResult.classList.add('error')
    return
  }
  ui.alarmResult.textContent = 'Posting…'
  try {
    const response = await fetch('api/v1/alarms', {
      method: 'POST',
      headers: { authorization: `Bearer ${current}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: form.get('message'), camera: form.get('camera'), severity: form.get('severity') })
    })
    const body = await response.json()
    if (response.status === 202) {
      ui.alarmResult.textContent = `Stored as ${body.stream} #${body.offset}`
    } else {
      ui.alarmResult.textContent = `${response.status} ${body.code ?? ''}: ${body.message ?? ''}`
      ui.alarmResult.classList.add('error')
    }
  } catch (error) {
    ui.alarmResult.textContent = `Could not post: ${error.message}`
    ui.alarmResult.classList.add('error')
  }
})

ui.clear.addEventListener('click', () => {
  ui.feed.replaceChildren()
  eventCount = 0
  ui.feedCount.textContent = '0'
  trim()
})

setState('idle')
trim()
renderAlarms([])
