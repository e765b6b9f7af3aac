// Regenerates yjs_fixtures.json: real Yjs (JavaScript) V1/V2 updates for tests/unit/crdt.
//   npm install yjs@13.6.33 && node yjs_fixtures.mjs > yjs_fixtures.json
// Client id 12345; the first transaction builds a profile, the second edits it. `text` and
// `array` are separate documents that nest a Y.Text / Y.Array in the profile (refused: a
// twin nests Y.Maps only, arrays and strings are plain values).
import * as Y from 'yjs'
const hex = (u) => Buffer.from(u).toString('hex')
const doc = new Y.Doc()
doc.clientID = 12345
const updates = []
doc.on('update', (u) => updates.push(hex(u)))
const p = doc.getMap('profile')
doc.transact(() => {
  p.set('name', 'Ada 🌍')
  p.set('age', 36)
  p.set('score', 1.5)
  p.set('tags', ['x', 'y'])
  p.set('big', 2n ** 60n)
  p.set('raw', new Uint8Array([1, 2, 255]))
  const prefs = new Y.Map()
  p.set('prefs', prefs)
  prefs.set('theme', 'dark')
  p.set('list', [1, 'two', { three: 3 }])
  const deep = new Y.Map()
  prefs.set('deep', deep)
  deep.set('level', 2)
})
const full = hex(Y.encodeStateAsUpdate(doc))
doc.transact(() => {
  p.delete('score')
  p.set('age', 37)
  p.set('list', [1, 'inserted', 'two', { three: 3 }])
  p.get('prefs').set('lang', 'fr')
  p.get('prefs').get('deep').delete('level')
})
const incremental = updates[1]
const v2 = hex(Y.encodeStateAsUpdateV2(doc))
const json = p.toJSON()
json.big = json.big.toString()
json.raw = Array.from(json.raw)
const textDoc = new Y.Doc()
textDoc.clientID = 777
const notes = new Y.Text()
textDoc.getMap('profile').set('notes', notes)
notes.insert(0, 'héllo 🌍')
const text = hex(Y.encodeStateAsUpdate(textDoc))
const arrayDoc = new Y.Doc()
arrayDoc.clientID = 778
const items = new Y.Array()
arrayDoc.getMap('profile').set('items', items)
items.insert(0, [1, 2, 3])
const array = hex(Y.encodeStateAsUpdate(arrayDoc))
console.log(JSON.stringify({ yjs: '13.6.33', full, incremental, v2, text, array, profile: json }, null, 1))
