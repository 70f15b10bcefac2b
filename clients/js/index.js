// @sync-registry/client: polkadot.js helpers for the Sync Registry chain and its nodes.
// Plain ESM, no build step and no imports of its own: pass it your ApiPromise (@polkadot/api is
// a peer dependency). See README.md.
export { rpc, syncRpc } from './src/rpc.js';
export { RPC_ERRORS, SyncClientError, decodeDispatchError } from './src/errors.js';
export { base58Decode, bytesToHex, peerIdToHex } from './src/bytes.js';
export { findEvent, send } from './src/tx.js';
export {
  acceptMigration, cancelMigration, createSegment, joinSegment, leaveSegment, registerNode,
  requestMigration, waitForHolding, waitForNode,
} from './src/chain.js';
export { call, get, health, put, putFollowing, status } from './src/objects.js';
