// Submitting transactions: in a block, with their events, or a decoded SyncClientError.
import { SyncClientError, dispatchFailure } from './errors.js';

/**
 * A node's off-chain worker signs the node's own transactions (root commits, claims, proofs)
 * with its account; a client signing with the same account can lose the nonce race. The pool
 * then refuses ours or drops it: safe to send again with a fresh nonce.
 */
const NONCE_RACE = /Priority is too low|outdated|stale|transaction (Usurped|Dropped|Invalid)/i;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @typedef {object} SendOptions
 * @property {number} [timeoutMs=60000] until the transaction is in a block, per attempt
 * @property {number} [attempts=5] sends in all when the pool refuses or drops it for a nonce race
 * @property {number} [retryDelayMs=1500]
 * @property {object} [signOptions] more options for `signAndSend` (e.g. `{ signer }` of a browser
 *   extension, `{ tip }`); the nonce is always the next one (`-1`)
 */

/**
 * @typedef {object} Included
 * @property {string} blockHash the block the transaction is in (best chain, not yet final)
 * @property {any[]} events the transaction's events (`{ event, phase }` records)
 */

/**
 * Signs and sends `tx`, resolving when it is in a block and succeeded; a failure in the block is
 * a `Dispatch` error with the decoded pallet error, a refusal by the pool `Rejected`, no block in
 * time `Timeout`.
 * @param {any} api an `ApiPromise`
 * @param {any} tx `api.tx.<section>.<call>(…)`
 * @param {any} signer a keyring pair, or an address with `signOptions.signer`
 * @param {SendOptions} [options]
 * @returns {Promise<Included>}
 */
export async function send(api, tx, signer, { timeoutMs = 60_000, attempts = 5, retryDelayMs = 1500, signOptions = {} } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      // A retry rebuilds the extrinsic from its call: fresh nonce and signature.
      return await sendOnce(api, attempt === 1 ? tx : api.tx(tx.method), signer, timeoutMs, signOptions);
    } catch (e) {
      const race = e instanceof SyncClientError && e.code === 'Rejected' && NONCE_RACE.test(e.message);
      if (!race || attempt >= attempts) throw e;
      await sleep(retryDelayMs);
    }
  }
}

function describe(tx) {
  try {
    return `${tx.method.section}.${tx.method.method}`;
  } catch {
    return 'transaction';
  }
}

function sendOnce(api, tx, signer, timeoutMs, signOptions) {
  const what = describe(tx);
  return new Promise((resolve, reject) => {
    let unsub;
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsub?.();
      fn(value);
    };
    const timer = setTimeout(() => finish(reject, new SyncClientError('Timeout', `${what}: not in a block after ${timeoutMs} ms`)), timeoutMs);
    tx.signAndSend(signer, { ...signOptions, nonce: -1 }, ({ status, events, dispatchError }) => {
      if (status.isInBlock) {
        const blockHash = status.asInBlock.toHex();
        if (dispatchError) finish(reject, dispatchFailure(api.registry, dispatchError, { events, blockHash, what }));
        else finish(resolve, { blockHash, events });
      } else if (status.isInvalid || status.isDropped || status.isUsurped) {
        finish(reject, new SyncClientError('Rejected', `${what}: transaction ${status.type}`));
      }
    }).then((u) => {
      unsub = u;
      if (done) u();
    }, (e) => finish(reject, new SyncClientError('Rejected', `${what}: ${e?.message ?? e}`,
      { rpcCode: typeof e?.code === 'number' ? e.code : null, cause: e })));
  });
}

/**
 * The first `section.method` event among a transaction's events (default section `syncRegistry`).
 * @param {any[]} events
 * @param {string} method
 * @param {string} [section]
 */
export function findEvent(events, method, section = 'syncRegistry') {
  return events.find(({ event }) => event.section === section && event.method === method)?.event;
}
