// The node's own JSON-RPC methods (`sync_*`, node/service/src/rpc.rs) as polkadot.js
// definitions: `ApiPromise.create({ provider, rpc: { sync: syncRpc } })` decorates
// `api.rpc.sync.status()`, `.health()`, `.put(segment, key, dataHex)` and `.get(segment, key)`.
// Their answers are JSON objects, typed `Json` (`.toJSON()` gives the plain object; `get` is an
// `Option<Json>`, `None` when the key is absent). The chain's calls, storage, events and
// runtime API need no definitions: polkadot.js reads them from the metadata.

/** @type {Record<'status' | 'health' | 'put' | 'get', { description: string, params: { name: string, type: string }[], type: string }>} */
export const syncRpc = Object.freeze({
  status: {
    description: 'Peer id, bytes served and received, peers by state, and per tracked segment its stage, '
      + 'head (seq, root, entries, bytes), ownership, status on chain, lag and pinned snapshots',
    params: [],
    type: 'Json',
  },
  health: {
    description: 'Sync health: status (healthy, degraded, unhealthy), reasons (level, code, segment, detail), '
      + 'and per segment its status on chain and how far behind it is',
    params: [],
    type: 'Json',
  },
  put: {
    description: 'Write an object into a segment this node owns (an unsafe method): { seq, root, entries, bytes }',
    params: [
      { name: 'segment', type: 'u64' },
      { name: 'key', type: 'Text' },
      // Give hex ('0x…'): polkadot.js reads a bare Uint8Array given to `Bytes` as SCALE (length-prefixed).
      { name: 'data', type: 'Bytes' },
    ],
    type: 'Json',
  },
  get: {
    description: 'The object under key, checked against its CID: { cid, size, data }, or None',
    params: [
      { name: 'segment', type: 'u64' },
      { name: 'key', type: 'Text' },
    ],
    type: 'Option<Json>',
  },
});

/** The `rpc` option of `ApiPromise.create`: `{ sync: syncRpc }`. */
export const rpc = Object.freeze({ sync: syncRpc });
