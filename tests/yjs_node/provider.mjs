// One stock y-websocket provider, driven by tests/integration/test_yjs_provider.py: commands in
// (one JSON object per line on stdin), events out (one JSON object per line on stdout).
//   node provider.mjs <serverUrl> <twinId> <token> [bearer]
// "bearer" offers the token as the subprotocols ["bearer", token] instead of ?token=.
// Commands: {"op": "set", "key", "value"} edits the profile map; {"op": "aware", "state"} sets
// this client's awareness state; {"op": "exit"} destroys the provider and exits.
// Events: status, sync (with the profile), doc (after any change, with the profile and whether it
// came from the server), awareness (the other clients' states), closed (a terminal close).
import readline from 'node:readline'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

const [serverUrl, twinId, token, how] = process.argv.slice(2)
const doc = new Y.Doc()
const profile = doc.getMap('profile')
const viaBearer = how === 'bearer'
const provider = new WebsocketProvider(serverUrl, twinId, doc, {
  WebSocketPolyfill: WebSocket,
  params: viaBearer ? {} : { token },
  protocols: viaBearer ? ['bearer', token] : [],
  maxBackoffTime: 500,
  disableBc: true
})
const emit = (event) => process.stdout.write(JSON.stringify({ at: Date.now(), ...event }) + '\n')

provider.on('status', (e) => emit({ ev: 'status', status: e.status }))
provider.on('sync', (synced) => emit({ ev: 'sync', synced, profile: profile.toJSON() }))
provider.on('closed', (e) => emit({ ev: 'closed', code: e.code, reason: e.reason }))
provider.on('connection-error', () => emit({ ev: 'connection-error' }))
provider.on('connection-close', (e) => emit({ ev: 'connection-close', code: e?.code ?? null }))
doc.on('update', (_update, origin) => {
  emit({ ev: 'doc', remote: origin === provider, profile: profile.toJSON() })
})
provider.awareness.on('change', () => {
  const others = []
  for (const [id, state] of provider.awareness.getStates()) {
    if (id !== doc.clientID) others.push({ id, state })
  }
  emit({ ev: 'awareness', others })
})

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line)
  if (command.op === 'set') {
    profile.set(command.key, command.value)
  } else if (command.op === 'aware') {
    provider.awareness.setLocalState(command.state)
  } else if (command.op === 'exit') {
    provider.destroy()
    process.exit(0)
  }
})
emit({ ev: 'started', client: doc.clientID })
