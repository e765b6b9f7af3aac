// Regenerates yjs_fixtures.json: real Yjs (JavaScript) V1/V2 updates for tests/unit/crdt.
//   npm install yjs@13.6.33 && node yjs_fixtures.mjs > yjs_fixtures.json
// Client id 12345; the first transaction builds a profile, the second edits it.
import * as Y from 'yjs'
const doc = new Y.Doc()
doc.clientID = 12345
const updates = []
doc.on('update', (u) => updates.push(Buffer.from(u).toString('hex')))
const p = doc.getMap('profile')
doc.transact(() => {
  p.set('name', 'Ada')
  p.set('age', 36)
  p.set('score', 1.5)
  p.set('tags', ['x', 'y'])
  p.set('big', 2n ** 60n)
  const prefs = new Y.Map()
  p.set('prefs', prefs)
  prefs.set('theme', 'dark')
  const notes = new Y.Text()
  p.set('notes', notes)
  notes.insert(0, 'héllo 🌍')
  const list = new Y.Array()
  p.set('list', list)
  list.insert(0, [1, 'two', { three: 3 }])
})
const full = Buffer.from(Y.encodeStateAsUpdate(doc)).toString('hex')
const sv1 = Buffer.from(Y.encodeStateVector(doc)).toString('hex')
doc.transact(() => {
  p.delete('score')
  p.set('age', 37)
  p.get('notes').insert(1, '~🙂~')
  p.get('list').insert(1, ['inserted'])
  p.get('prefs').set('lang', 'fr')
})
const incremental = updates[1]
const v2 = Buffer.from(Y.encodeStateAsUpdateV2(doc)).toString('hex')
const json = p.toJSON()
json.big = json.big.toString()
console.log(JSON.stringify({ yjs: "13.6.33", full, sv1, incremental, v2, profile: json }, null, 1))
