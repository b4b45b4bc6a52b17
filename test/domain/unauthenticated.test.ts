import t from 'tap'
import { UnauthenticatedSockets } from '../../domain/unauthenticated.js'

function admitted (slot: ReturnType<UnauthenticatedSockets['admit']>): { release: () => void } {
  if ('refused' in slot) throw new Error(`refused: ${slot.refused}`)
  return slot
}

t.test('an address gets exactly its per-address slots, then UNAUTHENTICATED_IP_LIMIT', async (t) => {
  const sockets = new UnauthenticatedSockets(2, 10)
  admitted(sockets.admit('1.1.1.1'))
  const second = admitted(sockets.admit('1.1.1.1'))
  t.same(sockets.admit('1.1.1.1'), { refused: 'UNAUTHENTICATED_IP_LIMIT' })
  t.notMatch(sockets.admit('2.2.2.2'), { refused: String }, 'another address is not affected')
  second.release()
  admitted(sockets.admit('1.1.1.1'))
  t.same(sockets.admit('1.1.1.1'), { refused: 'UNAUTHENTICATED_IP_LIMIT' }, 'a release frees one slot, not more')
})

t.test('the total cap counts every address, and a refusal takes no slot', async (t) => {
  const sockets = new UnauthenticatedSockets(5, 3)
  const a = admitted(sockets.admit('a'))
  admitted(sockets.admit('b'))
  admitted(sockets.admit('c'))
  t.same(sockets.admit('d'), { refused: 'UNAUTHENTICATED_LIMIT' })
  t.same(sockets.admit('a'), { refused: 'UNAUTHENTICATED_LIMIT' })
  a.release()
  admitted(sockets.admit('d'))
  t.same(sockets.admit('e'), { refused: 'UNAUTHENTICATED_LIMIT' }, 'the refusals above took nothing')
})

t.test('the per-address limit is checked before the total', async (t) => {
  const sockets = new UnauthenticatedSockets(1, 1)
  admitted(sockets.admit('a'))
  t.same(sockets.admit('a'), { refused: 'UNAUTHENTICATED_IP_LIMIT' })
  t.same(sockets.admit('b'), { refused: 'UNAUTHENTICATED_LIMIT' })
})

t.test('releasing twice frees one slot, and an address with none left is forgotten', async (t) => {
  const sockets = new UnauthenticatedSockets(2, 2)
  const a1 = admitted(sockets.admit('a'))
  const a2 = admitted(sockets.admit('a'))
  a1.release()
  a1.release()
  admitted(sockets.admit('b'))
  t.same(sockets.admit('c'), { refused: 'UNAUTHENTICATED_LIMIT' }, 'the double release did not free a second slot')
  a2.release()
  const map = (sockets as unknown as { byAddress: Map<string, number> }).byAddress
  t.same([...map.entries()], [['b', 1]], 'only addresses holding a socket stay in the map')
  admitted(sockets.admit('a'))
  t.same(sockets.admit('c'), { refused: 'UNAUTHENTICATED_LIMIT' })
})
