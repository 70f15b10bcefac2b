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
 * unsafe RPC method: the node must allow them, as it does on loopback). A writer that knows
 * several nodes and follows the segment across migrations uses {@link putFollowing}.
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

/** Per `endpoints` array given to {@link putFollowing}: segment → the endpoint that last took a write. */
const lastWriter = new WeakMap();
/** Per endpoint: its data-plane peer id (`sync_status().peerId`). */
const peerIds = new WeakMap();
/** The refusals {@link putFollowing} follows; any other error is thrown at once. */
const FOLLOWED = new Set(['NotOwner', 'Behind', 'Handover']);

/** The endpoint's peer id: cached, or (`refresh`, or not cached yet) asked; null if unknown. */
async function peerIdOf(endpoint, refresh = false) {
  if (!refresh && peerIds.has(endpoint)) return peerIds.get(endpoint);
  try {
    const { peerId } = await status(endpoint);
    if (typeof peerId === 'string') peerIds.set(endpoint, peerId);
  } catch {
    // down or not a sync node: keep what was known
  }
  return peerIds.get(endpoint) ?? null;
}

/** The index of the endpoint whose peer id is `peerId`, asking them all again if none is; or null. */
async function endpointOf(endpoints, peerId) {
  for (const refresh of [false, true]) {
    const ids = await Promise.all(endpoints.map((ep) => peerIdOf(ep, refresh)));
    const i = ids.indexOf(peerId);
    if (i >= 0) return i;
  }
  return null;
}

/**
 * Writes `data` under `key` into `segment` through whichever of `endpoints` (the nodes a writer
 * knows) owns it, following the segment across a migration: the writer side of the fenced
 * handover. Starts with the endpoint that last took a write of `segment` through this same
 * `endpoints` array (else the first); then, on a refusal:
 * - `Handover` (the node stopped writing: the segment is being handed over) or `NotOwner`
 *   naming an owner (`data.owner`, a base58 peer id): switches to the endpoint whose
 *   `sync_status().peerId` it is (peer ids are cached per endpoint, asked again when none
 *   matches), at once the first time, after `everyMs` when it keeps bouncing (the target
 *   answers `NotOwner` / `Behind` until it owns the segment, the old owner `Handover`);
 * - `Behind` (owner, catching up), or an owner not among the endpoints: the same endpoint
 *   again after `everyMs`;
 * - `NotOwner` / `Handover` naming no owner: the next endpoint (round robin) after `everyMs`.
 * Any other error (`TooLarge`, `NotHex`, `Store`, `ServiceDown`, `MethodNotFound`, a transport
 * error) is thrown at once; after `timeoutMs` the last refusal is thrown.
 * @param {any[]} endpoints `ApiPromise`s or providers (as {@link call}); pass the same array for
 *   every write, it keeps the endpoint that last took a write per segment
 * @param {number} segment
 * @param {string} key
 * @param {Uint8Array | string} data bytes, or `0x` hex
 * @param {{ timeoutMs?: number, everyMs?: number,
 *   onRefusal?: (error: SyncClientError, endpoint: number) => void }} [options] `onRefusal`:
 *   called with every refusal followed (before the retry), and the index of the endpoint that
 *   answered it
 * @returns {Promise<{ seq: number, root: string, entries: number, bytes: number, endpoint: number,
 *   peerId: string | null, attempts: number }>} the `sync_put` result, the index of the endpoint
 *   that took the write, its peer id, and the `sync_put` calls made
 */
export async function putFollowing(endpoints, segment, key, data, { timeoutMs = 60_000, everyMs = 250, onRefusal } = {}) {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new SyncClientError('Input', 'putFollowing: give an array of endpoints (ApiPromise or providers)');
  }
  const hex = toHex(data);
  const deadline = Date.now() + timeoutMs;
  let bySegment = lastWriter.get(endpoints);
  if (!bySegment) lastWriter.set(endpoints, (bySegment = new Map()));
  let at = bySegment.get(segment) ?? 0;
  if (at >= endpoints.length) at = 0;
  // Whether this attempt went, without a wait, to an owner the previous refusal named: two
  // nodes naming each other (old owner `Handover`, target `NotOwner`) are retried every
  // `everyMs`, not in a loop.
  let hopped = false;
  for (let attempts = 1; ; attempts += 1) {
    try {
      const head = await call(endpoints[at], 'sync_put', [segment, key, hex]);
      bySegment.set(segment, at);
      return { ...head, endpoint: at, peerId: await peerIdOf(endpoints[at]), attempts };
    } catch (e) {
      if (!(e instanceof SyncClientError) || !FOLLOWED.has(e.errorName)) throw e;
      onRefusal?.(e, at);
      if (Date.now() >= deadline) throw e;
      const owner = e.errorName === 'Behind' ? undefined : e.data?.owner;
      const named = typeof owner === 'string' ? await endpointOf(endpoints, owner) : null;
      if (named !== null && named !== at && !hopped) {
        at = named;
        hopped = true;
        continue;
      }
      await sleep(Math.max(0, Math.min(everyMs, deadline - Date.now())));
      hopped = false;
      if (named !== null) at = named;
      else if (e.errorName !== 'Behind' && typeof owner !== 'string') at = (at + 1) % endpoints.length;
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
