import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseCode } from '../domain/close-codes.js'
import { ErrorCode } from '../domain/error-codes.js'
import { SERVER_FRAME_TYPES } from '../domain/frames.js'
import { AuthReason } from '../domain/principal.js'
import { ClientMessages } from '../domain/protocol.js'

const doc = readFileSync(new URL('../docs/PROTOCOL.md', import.meta.url), 'utf8')

/** The first cell of every table row in a section, unquoted from backticks. */
function tableKeys (heading: string): string[] {
  const start = doc.indexOf(`## ${heading}\n`)
  if (start === -1) throw new Error(`no "## ${heading}" section`)
  const end = doc.indexOf('\n## ', start + 1)
  const section = doc.slice(start, end === -1 ? undefined : end)
  return section.split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('|---'))
    .slice(1)
    .map((line) => (line.split('|')[1] ?? '').trim().replace(/`/g, ''))
}

t.test('docs/PROTOCOL.md lists exactly the client message types the parser accepts', async (t) => {
  t.same(tableKeys('Client to server').sort(), Object.keys(ClientMessages).sort())
})

t.test('docs/PROTOCOL.md lists exactly the server frame types', async (t) => {
  t.same(tableKeys('Server to client').sort(), [...SERVER_FRAME_TYPES].sort())
})

t.test('docs/PROTOCOL.md lists exactly the error codes', async (t) => {
  t.same(tableKeys('Error codes').sort(), Object.values(ErrorCode).sort())
})

t.test('docs/PROTOCOL.md lists exactly the close codes, and every auth reason', async (t) => {
  t.same(tableKeys('Close codes').map(Number).sort(), Object.values(CloseCode).sort())
  const unauthorized = doc.split('\n').find((line) => line.startsWith('| 4401 |')) ?? ''
  for (const reason of Object.values(AuthReason)) t.match(unauthorized, `\`${reason}\``, `${reason} is documented`)
})
