// Three `sync-node` processes with the `local` chain spec (Alice, Bob and Charlie as
// authorities) on loopback: they connect and finalize; Alice's data plane is a Primary and
// Bob's a Replica that follows, through the chain, the segment it joins.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady } from '@polkadot/util-crypto';
import { sleep, startNode, submit, waitForFinalized } from './lib/node.js';

/** Authorities need a persistent network key; a fresh one per test node. */
const nodeKey = () => ['--node-key', randomBytes(32).toString('hex')];

describe('three-node local network', () => {
  const nodes = [];

  before(async () => {
    const alice = await startNode(['--chain', 'local', '--alice', '--tmp', ...nodeKey(), '--sync-role', 'primary']);
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

  test('a Replica follows the segment it joins on chain and serves what the Primary wrote', async () => {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    const [alice, bob] = ['//Alice', '//Bob'].map((u) => keyring.addFromUri(u));
    const [a, b] = nodes;
    const { api } = a;
    const ok = async (tx, who) => {
      const r = await submit(api, tx, who);
      assert.equal(r.dispatchError, null, JSON.stringify(r.dispatchError));
      return r.events;
    };
    const register = async (n, who, role) => {
      const { peerId } = await n.rpc('sync_status');
      await ok(api.tx.syncRegistry.registerNode(role, u8aToHex(base58Decode(peerId)), [`/ip4/127.0.0.1/tcp/${n.syncPort}`]), who);
    };
    await register(a, alice, 'Primary');
    await register(b, bob, 'Replica');
    const created = await ok(api.tx.syncRegistry.createSegment(), alice);
    const id = created.find(({ event }) => event.method === 'SegmentCreated').event.data.segment.toNumber();

    // Writes go to the owner once its service has seen the segment on a finalized block.
    const data = u8aToHex(randomBytes(40_000));
    let put;
    for (const deadline = Date.now() + 90_000; !put;) {
      try {
        put = await a.rpc('sync_put', [id, 'photo.jpg', data]);
      } catch (e) {
        if (!/does not own/.test(e.message) || Date.now() > deadline) throw e;
        await sleep(1000);
      }
    }
    await ok(api.tx.syncRegistry.joinSegment(id), bob);
    // Bob's service follows the segment (snapshot of the Primary's pin) and serves the object.
    let got = null;
    for (const deadline = Date.now() + 120_000; !got; await sleep(1000)) {
      got = await b.rpc('sync_get', [id, 'photo.jpg']);
      if (Date.now() > deadline) assert.fail(`Replica has nothing:\n${b.logs.join('').slice(-3000)}`);
    }
    assert.equal(got.data, data);
    const seg = (await b.rpc('sync_status')).segments.find((s) => s.segment === id);
    assert.deepEqual([seg.owner, seg.seq, seg.root], [false, put.seq, put.root]);
    await assert.rejects(b.rpc('sync_put', [id, 'x', '0x00']), /does not own/);
  });
});
