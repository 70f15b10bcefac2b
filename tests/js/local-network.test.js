// Three `sync-node` processes with the `local` chain spec (Alice, Bob and Charlie as
// authorities) on loopback: they connect and finalize.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startNode, waitForFinalized } from './lib/node.js';

/** Authorities need a persistent network key; a fresh one per test node. */
const nodeKey = () => ['--node-key', randomBytes(32).toString('hex')];

describe('three-node local network', () => {
  const nodes = [];

  before(async () => {
    const alice = await startNode(['--chain', 'local', '--alice', '--tmp', ...nodeKey()]);
    nodes.push(alice);
    const peerId = (await alice.api.rpc.system.localPeerId()).toString();
    const boot = `/ip4/127.0.0.1/tcp/${alice.p2pPort}/p2p/${peerId}`;
    for (const who of ['--bob', '--charlie']) {
      nodes.push(await startNode(['--chain', 'local', who, '--tmp', ...nodeKey(), '--bootnodes', boot]));
    }
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('all three peer with each other', async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const peers = await Promise.all(nodes.map(async (n) => (await n.api.rpc.system.peers()).length));
      if (peers.every((p) => p === 2)) break;
      if (Date.now() > deadline) assert.fail(`peer counts ${peers}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  });

  test('all three finalize the same blocks', async () => {
    const finalized = await Promise.all(nodes.map((n) => waitForFinalized(n.api, 3, 120_000)));
    assert.ok(finalized.every((f) => f >= 3));
    const hashes = await Promise.all(nodes.map((n) => n.api.rpc.chain.getBlockHash(3)));
    assert.equal(new Set(hashes.map((h) => h.toHex())).size, 1, 'same block #3 everywhere');
    const authors = await nodes[0].api.query.aura.authorities();
    assert.equal(authors.length, 3);
  });
});
