// The node's object API and status over its JSON-RPC (`sync_*`): against the node you connect
// to, not the chain (each node serves its own store).
import { toHex } from './bytes.js';
import { SyncClientError, rpcFailure } from './errors.js';
import { sleep } from './tx.js';

/**
 * Sends a raw JSON-RPC call through an `ApiPromise` (`api.rpc(method, ...params)`, which needs no
 * definitions) or a provider (`provider.send(method, params)`).
 * @param {any} apiOrProvider
 * @param {string} method
 * @param {unknown[]} params
 */
export async function call(apiOrProvider, method, params = []) {
  let pending;
  if (typeof apiOrProvider?.rpc === 'function') pending = apiOrProvider.rpc(method, ...params);
  else if (typeof apiOrProvider?.send === 'function') pending = apiOrProvider.send(method, params);
  else throw new SyncClientError('Input', `${method}: give an ApiPromise or a provider`);
  try {
    return await pending;
  } catch (e) {
    throw rpcFailure(e, method);
  }
}

/**
 * Writes `data` under `key` into `segment`, which this node must own on chain (`sync_put`, an
 * unsafe RPC method: the node must allow them, as it does on loopback).
 * @param {any} api the owner's node
 * @param {number} segment
 * @param {string} key
 * @param {Uint8Array | string} data bytes, or `0x` hex
 * @param {{ retryMs?: number, everyMs?: number }} [options] `retryMs`: keep retrying while the
 *   node does not own the segment yet or is catching up (a new segment is taken on at the next
 *   finalized block; a migration target once it completed), for up to this long
 * @returns {Promise<{ seq: number, root: string, entries: number, bytes: number }>}
 */
export async function put(api, segment, key, data, { retryMs = 0, everyMs = 1000 } = {}) {
  const hex = toHex(data);
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await call(api, 'sync_put', [segment, key, hex]);
    } catch (e) {
      const notYet = e.errorName === 'NotOwner' || e.errorName === 'Behind';
      if (!notYet || Date.now() >= deadline) throw e;
      await sleep(everyMs);
    }
  }
}

/**
 * The object under `key` in `segment` from this node's store, checked against its CID
 * (`sync_get`), or null if the node has none.
 * @returns {Promise<{ cid: string, size: number, data: string } | null>} `data` is `0x` hex
 */
export function get(api, segment, key) {
  return call(api, 'sync_get', [segment, key]);
}

/** The node's `sync_status()`: peer id, traffic, peers, and per segment its stage and head. */
export function status(api) {
  return call(api, 'sync_status');
}

/** The node's `sync_health()`: `{ status, reasons, segments }`. */
export function health(api) {
  return call(api, 'sync_health');
}
