// The pallet's calls a client makes (syncRegistry.*), and waits on the chain's state.
import { peerIdToHex } from './bytes.js';
import { SyncClientError } from './errors.js';
import { findEvent, send } from './tx.js';

const ROLES = { primary: 'Primary', replica: 'Replica' };
const segmentOf = (event) => event.data.segment.toString();

function roleName(role) {
  const r = ROLES[String(role).toLowerCase()];
  if (!r) throw new SyncClientError('Input', `role ${role}: Primary or Replica`);
  return r;
}

/**
 * Registers the signer's account as a storage node (`registerNode`).
 * @param {any} api
 * @param {any} signer
 * @param {object} node
 * @param {'Primary' | 'Replica' | 'primary' | 'replica'} node.role
 * @param {string | Uint8Array} [node.peerId] the data plane's peer id: base58 (`12D3KooW…`, as in
 *   `sync_status`), hex or bytes; default `binding.peerIdHex`
 * @param {string[]} node.addresses its data-plane multiaddrs, e.g. `/ip4/127.0.0.1/tcp/30433`
 * @param {string} [node.signature] the peer binding (`0x…`, by the data-plane key); default `binding.signature`
 * @param {{ peerId?: string, peerIdHex?: string, signature: string }} [node.binding] what
 *   `sync-node key sign-peer-binding` prints
 * @param {import('./tx.js').SendOptions} [options]
 * @returns {Promise<import('./tx.js').Included & { peerId: string, event: any }>}
 */
export async function registerNode(api, signer, { role, peerId, addresses, signature, binding } = /** @type {any} */ ({}), options) {
  const given = peerId ?? binding?.peerIdHex ?? binding?.peerId;
  if (given === undefined) throw new SyncClientError('Input', 'registerNode: a peerId (or a binding) is needed');
  const peer = peerIdToHex(given);
  if (binding?.peerIdHex && peerIdToHex(binding.peerIdHex) !== peer) {
    throw new SyncClientError('Input', `registerNode: the binding is for peer id ${binding.peerIdHex}, not ${peer}`);
  }
  const sig = signature ?? binding?.signature;
  if (!sig) throw new SyncClientError('Input', 'registerNode: the peer binding signature is needed (sync-node key sign-peer-binding)');
  if (!Array.isArray(addresses) || addresses.length === 0) {
    throw new SyncClientError('Input', 'registerNode: one or more multiaddrs are needed');
  }
  const r = await send(api, api.tx.syncRegistry.registerNode(roleName(role), peer, addresses, sig), signer, options);
  return { ...r, peerId: peer, event: findEvent(r.events, 'NodeRegistered') };
}

/**
 * Creates a segment owned by the signer, a registered Primary (`createSegment`).
 * @returns {Promise<import('./tx.js').Included & { segment: number }>}
 */
export async function createSegment(api, signer, options) {
  const r = await send(api, api.tx.syncRegistry.createSegment(), signer, options);
  const created = findEvent(r.events, 'SegmentCreated');
  return { ...r, segment: created.data.segment.toNumber() };
}

/** Makes the signer's node a holder of `segment` (`joinSegment`); its node follows and proves it. */
export function joinSegment(api, signer, segment, options) {
  return send(api, api.tx.syncRegistry.joinSegment(segment), signer, options);
}

/** Stops holding `segment` (`leaveSegment`). */
export function leaveSegment(api, signer, segment, options) {
  return send(api, api.tx.syncRegistry.leaveSegment(segment), signer, options);
}

/** Takes a migration requested to the signer (`acceptMigration`, signed by the target). */
export function acceptMigration(api, signer, segment, options) {
  return send(api, api.tx.syncRegistry.acceptMigration(segment), signer, options);
}

/** Cancels the pending migration of `segment` (`cancelMigration`, by the owner or Root). */
export function cancelMigration(api, signer, segment, options) {
  return send(api, api.tx.syncRegistry.cancelMigration(segment), signer, options);
}

/**
 * Calls `onBlock(hash, number)` once for every block of the best chain after block `after`, in
 * order (blocks the head subscription skipped are fetched by their parents). Returns a function
 * that stops it.
 */
async function followBlocks(api, after, onBlock, onError) {
  let last = after;
  let chain = Promise.resolve();
  let stopped = false;
  const unsub = await api.rpc.chain.subscribeNewHeads((head) => {
    chain = chain.then(async () => {
      const top = head.number.toNumber();
      if (stopped || top <= last) return;
      const hashes = [head.hash.toHex()];
      let parent = head.parentHash;
      for (let n = top - 1; n > last; n--) {
        hashes.unshift(parent.toHex());
        parent = (await api.rpc.chain.getHeader(parent)).parentHash;
      }
      for (const [i, hash] of hashes.entries()) {
        if (stopped) return;
        await onBlock(hash, top - hashes.length + 1 + i);
      }
      last = top;
    }).catch((e) => { if (!stopped) onError(e); });
  });
  return () => { stopped = true; unsub(); };
}

/**
 * @typedef {Promise<{ completed: any, released: any | null }> & {
 *   requested: Promise<import('./tx.js').Included & { until: number }>,
 *   completed: Promise<any>,
 *   released: Promise<any>,
 * }} Migration
 */

/**
 * Asks that `segment` move to `target` (`requestMigration`, by the owner or Root) and follows it
 * to the end. Nothing changes for the target until it accepts (`acceptMigration`, signed by its
 * account); its node then syncs and proves the segment, and the proof moves ownership.
 *
 * Returns a promise of `{ completed, released }` (the `MigrationCompleted` and, with
 * `{ release: true }`, `ProviderReleased` events) with its stages as properties:
 * `requested` (the request is in a block: now the target may accept), `completed`, `released`.
 * Each rejects with a `Cancelled` error on `MigrationCancelled` / `MigrationTimedOut` of the
 * segment, `Timeout` after `timeoutMs`, or the request's own error.
 * @param {any} api
 * @param {any} signer the segment's owner
 * @param {number} segment
 * @param {string} target the new provider's account (a registered Primary)
 * @param {import('./tx.js').SendOptions & { release?: boolean, timeoutMs?: number, sendTimeoutMs?: number }} [options]
 *   `timeoutMs`: for the whole migration (default 10 min, 30 min with `release`: the retention is
 *   `MigrationRetention`, 10 min by default); `sendTimeoutMs`: for the request's inclusion
 * @returns {Migration}
 */
export function requestMigration(api, signer, segment, target, options = {}) {
  const { release = false, timeoutMs = release ? 1_800_000 : 600_000, sendTimeoutMs, ...sendOptions } = options;
  const id = String(segment);
  const stage = () => {
    const s = {};
    s.promise = new Promise((resolve, reject) => Object.assign(s, { resolve, reject }));
    s.promise.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection
    return s;
  };
  const requested = stage();
  const completed = stage();
  const released = stage();
  let stop = () => {};
  let over = false;
  let timer;
  const finish = () => {
    over = true;
    clearTimeout(timer);
    stop();
  };
  const fail = (e) => {
    finish();
    for (const s of [requested, completed, released]) s.reject(e);
  };
  timer = setTimeout(() => fail(new SyncClientError('Timeout', `migration of segment ${id}: not done after ${timeoutMs} ms`)), timeoutMs);

  (async () => {
    const r = await send(api, api.tx.syncRegistry.requestMigration(segment, target), signer,
      { ...sendOptions, ...(sendTimeoutMs ? { timeoutMs: sendTimeoutMs } : {}) });
    const ev = findEvent(r.events, 'MigrationRequested');
    const at = (await api.rpc.chain.getHeader(r.blockHash)).number.toNumber();
    requested.resolve({ ...r, until: ev.data.until.toNumber() });
    let done = false;
    stop = await followBlocks(api, at, async (hash) => {
      for (const { event } of await api.query.system.events.at(hash)) {
        if (done || event.section !== 'syncRegistry' || event.data.segment === undefined || segmentOf(event) !== id) continue;
        if (event.method === 'MigrationCompleted') {
          completed.resolve(event);
          if (!release) {
            released.resolve(null);
            done = true;
            finish();
          }
        } else if (event.method === 'ProviderReleased') {
          released.resolve(event);
          done = true;
          finish();
        } else if (event.method === 'MigrationCancelled' || event.method === 'MigrationTimedOut') {
          done = true;
          fail(new SyncClientError('Cancelled', `migration of segment ${id}: ${event.method}`, { section: 'syncRegistry', errorName: event.method }));
        }
      }
    }, fail);
    if (over) stop();
  })().catch(fail);

  const all = /** @type {Migration} */ (/** @type {unknown} */ (
    Promise.all([completed.promise, released.promise]).then(([c, rel]) => ({ completed: c, released: rel }))));
  all.catch(() => {});
  return Object.assign(all, { requested: requested.promise, completed: completed.promise, released: released.promise });
}

/**
 * Resolves with the holding of `account` in `segment` once its status on chain is `status`
 * (`Syncing`, `Active` or `Lagging`); a `Timeout` error names the last status seen.
 * @returns {Promise<any>} the holding (`status`, `proven`, …)
 */
export function waitForHolding(api, segment, account, status = 'Active', timeoutMs = 180_000) {
  let seen = 'none';
  return watch(api.query.syncRegistry.holdings, [segment, account], (h) => {
    if (h.isNone) return undefined;
    const holding = h.unwrap();
    seen = holding.status.toString();
    return seen === status ? holding : undefined;
  }, timeoutMs, () => `holding of ${account} in segment ${segment}: ${status} (last seen: ${seen})`);
}

/**
 * Resolves with the node registered for `account` (`syncRegistry.nodes`) once there is one.
 * @returns {Promise<any>} the node info (`role`, `peerId`, `multiaddrs`, `status`, …)
 */
export function waitForNode(api, account, timeoutMs = 180_000) {
  return watch(api.query.syncRegistry.nodes, [account], (n) => (n.isSome ? n.unwrap() : undefined),
    timeoutMs, () => `node of ${account} registered`);
}

/** Subscribes to a storage entry until `pick(value)` gives something. */
function watch(query, args, pick, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let unsub;
    let done = false;
    const end = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsub?.();
      fn(v);
    };
    const timer = setTimeout(() => end(reject, new SyncClientError('Timeout', `timeout waiting for ${what()}`)), timeoutMs);
    query(...args, (value) => {
      const hit = pick(value);
      if (hit !== undefined) end(resolve, hit);
    }).then((u) => {
      unsub = u;
      if (done) u();
    }, (e) => end(reject, e));
  });
}
