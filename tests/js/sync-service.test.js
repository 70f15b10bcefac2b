// End-to-end: the sync service inside `sync-node` — the data plane starts with the node, is
// bound to the on-chain registration by its peer id, and follows what the chain assigns it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady } from '@polkadot/util-crypto';
import { sleep, startNode, submit, waitForBlock } from './lib/node.js';

/** Waits until the node's log matches `re`; returns the match. */
async function logLine(node, re, timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const m = node.logs.join('').match(re);
    if (m) return m;
    await sleep(250);
  }
  assert.fail(`no log line matching ${re}`);
}

describe('sync service in the node', () => {
  let node;
  let api;
  let alice;

  before(async () => {
    await cryptoWaitReady();
    alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
    node = await startNode(['--dev', '--tmp']);
    api = node.api;
    await waitForBlock(api, 1);
  });

  after(async () => {
    await node?.stop();
  });

  test('the data plane starts as a Primary on --dev and is bound to the registration by its peer id', async () => {
    const [, peer, addr] = await logLine(node, /Data plane \(Primary\) peer id (\w+) listening on (\S+)/);
    assert.equal(addr, `/ip4/127.0.0.1/tcp/${node.syncPort}`);
    await logLine(node, new RegExp(`Data plane ${peer} is not registered on chain yet`));

    const reg = await submit(api, api.tx.syncRegistry.registerNode('Primary', u8aToHex(base58Decode(peer)), [addr]), alice);
    assert.equal(reg.dispatchError, null);
    const created = await submit(api, api.tx.syncRegistry.createSegment(), alice);
    assert.equal(created.dispatchError, null);
    const ev = created.events.find(({ event }) => event.method === 'SegmentCreated').event;
    const id = ev.data.segment.toNumber();
    // The service reads the registry on finalized blocks and takes the segment on as its owner.
    await logLine(node, new RegExp(`segment ${id}: owner: serving and accepting writes \\(1 holders on chain\\)`));
  });
});
