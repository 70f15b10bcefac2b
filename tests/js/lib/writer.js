// A writer that keeps writing into a segment through every node it knows, following the
// segment's owner with the client's `putFollowing` (a `Handover` or `NotOwner` names the owner
// to go to): what an application does while the segment migrates. It records what it was
// acknowledged, what it was refused, and how long writes were unavailable.
import { randomBytes, randomInt } from 'node:crypto';
import { putFollowing } from '../../../clients/js/index.js';
import { sleep } from './node.js';

/** Writes made in this process: keys are `w-<n>.bin`, never reused, whichever writer wrote them. */
let written = 0;

/**
 * @typedef {object} Ack an acknowledged write
 * @property {string} key
 * @property {string} data what was written, `0x` hex
 * @property {number} seq the seq the owner gave it
 * @property {string | null} peerId the data-plane peer id of the node that acknowledged it
 * @property {number} endpoint its index in the writer's endpoints
 * @property {number} attempts `sync_put` calls it took
 * @property {number} at `Date.now()` at the acknowledgement
 */

/**
 * @typedef {object} Gap the time between two consecutive acknowledgements
 * @property {number} ms
 * @property {Ack} after the acknowledgement before the gap
 * @property {Ack} before the one after it
 */

/**
 * @typedef {object} WriterRecord
 * @property {Ack[]} acks every acknowledged write, in order
 * @property {Record<string, number>} refusals the refusals followed, by name (`Handover`,
 *   `NotOwner`, `Behind`)
 * @property {{ errorName: string, endpoint: number, owner: string | null, at: number }[]} refused
 *   each refusal followed
 * @property {Gap | null} longestGap the longest gap between two consecutive acknowledgements
 * @property {(Gap & { from: string | null, to: string | null })[]} handovers every change of the
 *   acknowledging peer id, with the gap that spans it
 * @property {Error | null} failure the error a write ended with (then the writer stopped)
 * @property {number} startedAt
 * @property {number} stoppedAt
 */

/**
 * Starts writing into `segment`: a new object (random `minBytes`–`maxBytes` bytes, key
 * `w-<n>.bin`) every `everyMs` (the next write starts once the previous one is acknowledged
 * or `everyMs` after it started, whichever is later), each with `putFollowing(endpoints, …)`.
 * A write that fails (a refusal not followed, or none taken within `timeoutMs`) stops the
 * writer; its error is `failure`.
 * @param {any[]} endpoints `ApiPromise`s (or providers) of the nodes the writer knows; the
 *   same array for the writer's life (`putFollowing` keeps the last owner per array)
 * @param {number} segment
 * @param {{ everyMs?: number, minBytes?: number, maxBytes?: number, timeoutMs?: number,
 *   retryEveryMs?: number }} [options] `timeoutMs`, `retryEveryMs`: `putFollowing`'s
 *   `timeoutMs` and `everyMs`
 */
export function startWriter(endpoints, segment, {
  everyMs = 200, minBytes = 200, maxBytes = 2000, timeoutMs = 120_000, retryEveryMs = 250,
} = {}) {
  /** @type {Ack[]} */
  const acks = [];
  /** @type {Record<string, number>} */
  const refusals = {};
  /** @type {WriterRecord['refused']} */
  const refused = [];
  /** @type {Error | null} */
  let failure = null;
  let stopping = false;
  const startedAt = Date.now();
  const onRefusal = (e, endpoint) => {
    refusals[e.errorName] = (refusals[e.errorName] ?? 0) + 1;
    refused.push({ errorName: e.errorName, endpoint, owner: e.data?.owner ?? null, at: Date.now() });
  };

  const loop = (async () => {
    while (!stopping) {
      const started = Date.now();
      const key = `w-${written++}.bin`;
      const data = `0x${randomBytes(randomInt(minBytes, maxBytes + 1)).toString('hex')}`;
      try {
        const r = await putFollowing(endpoints, segment, key, data, { timeoutMs, everyMs: retryEveryMs, onRefusal });
        acks.push({ key, data, seq: r.seq, peerId: r.peerId, endpoint: r.endpoint, attempts: r.attempts, at: Date.now() });
      } catch (e) {
        failure = /** @type {Error} */ (e);
        return;
      }
      const rest = everyMs - (Date.now() - started);
      if (rest > 0 && !stopping) await sleep(rest);
    }
  })();

  /** @returns {WriterRecord} */
  const record = () => {
    let longestGap = null;
    const handovers = [];
    for (let i = 1; i < acks.length; i++) {
      const gap = { ms: acks[i].at - acks[i - 1].at, after: acks[i - 1], before: acks[i] };
      if (!longestGap || gap.ms > longestGap.ms) longestGap = gap;
      if (acks[i].peerId !== acks[i - 1].peerId) handovers.push({ ...gap, from: acks[i - 1].peerId, to: acks[i].peerId });
    }
    return {
      acks: [...acks], refusals: { ...refusals }, refused: [...refused], longestGap, handovers, failure,
      startedAt, stoppedAt: Date.now(),
    };
  };

  return {
    /** The acknowledged writes so far (live). */
    acks,
    /** The refusals followed so far, by name (live). */
    refusals,
    /** The error the writer stopped on, or null. */
    get failure() { return failure; },
    /**
     * Resolves with the acknowledged writes matching `pred` once there are `n` of them; rejects
     * if the writer fails, or after `timeoutMs`.
     * @param {number} n
     * @param {(ack: Ack) => boolean} [pred]
     */
    async waitForAcks(n, pred = () => true, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hits = acks.filter(pred);
        if (hits.length >= n) return hits;
        if (failure) throw failure;
        if (Date.now() > deadline) {
          throw new Error(`writer: ${hits.length} of ${n} acknowledged writes after ${timeoutMs} ms (${acks.length} in all, refusals ${JSON.stringify(refusals)})`);
        }
        await sleep(100);
      }
    },
    /** Stops after the write in flight; the record. */
    async stop() {
      stopping = true;
      await loop;
      return record();
    },
  };
}
