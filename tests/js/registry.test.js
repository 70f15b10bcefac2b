// End-to-end: a dev chain of `sync-node`, driven through @polkadot/api like a user would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, submit, waitForBlock, waitForFinalized } from './lib/node.js';

/** A well-formed libp2p Ed25519 peer id (identity multihash of the protobuf public key). */
function peerId(seed) {
  const bytes = new Uint8Array(38);
  bytes.set([0x00, 36, 0x08, 0x01, 0x12, 0x20]);
  bytes.fill(seed, 6);
  return u8aToHex(bytes);
}

describe('sync-node dev chain with polkadot.js', () => {
  let node;
  let api;
  let alice;
  let bob;

  before(async () => {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    alice = keyring.addFromUri('//Alice');
    bob = keyring.addFromUri('//Bob');
    node = await startNode(['--dev', '--tmp']);
    api = node.api;
  });

  after(async () => {
    await node?.stop();
  });

  test('produces and finalizes blocks', async () => {
    const best = await waitForBlock(api, 2);
    assert.ok(best >= 2);
    const fin = await waitForFinalized(api, 1);
    assert.ok(fin >= 1);
  });

  test('metadata has the SyncRegistry pallet, its calls and runtime API', () => {
    const pallet = api.runtimeMetadata.asLatest.pallets.find((p) => p.name.toString() === 'SyncRegistry');
    assert.ok(pallet, 'SyncRegistry pallet in metadata');
    for (const call of ['registerNode', 'updateNode', 'deregisterNode', 'forceDeregister']) {
      assert.equal(typeof api.tx.syncRegistry[call], 'function', `call ${call}`);
    }
    assert.equal(typeof api.query.syncRegistry.nodes, 'function');
    assert.equal(typeof api.call.syncRegistryApi?.nodeInfo, 'function', 'runtime API SyncRegistryApi.nodeInfo');
    assert.ok(api.consts.syncRegistry.nodeDeposit.gtn(0));
  });

  test('registers a node signed by //Alice and reads it back', async () => {
    const deposit = api.consts.syncRegistry.nodeDeposit;
    const tx = api.tx.syncRegistry.registerNode('Primary', peerId(1), ['/ip4/127.0.0.1/tcp/30433']);
    const { events, dispatchError } = await submit(api, tx, alice);
    assert.equal(dispatchError, null);
    const ev = events.find(({ event }) => api.events.syncRegistry.NodeRegistered.is(event));
    assert.ok(ev, 'NodeRegistered event');
    const [who, role, pid, dep] = ev.event.data;
    assert.equal(who.toString(), alice.address);
    assert.equal(role.toString(), 'Primary');
    assert.equal(pid.toHex(), peerId(1));
    assert.equal(dep.toString(), deposit.toString());

    const stored = (await api.query.syncRegistry.nodes(alice.address)).unwrap();
    assert.equal(stored.role.toString(), 'Primary');
    assert.equal(stored.status.toString(), 'Joining');
    assert.equal(stored.peerId.toHex(), peerId(1));
    assert.equal(stored.multiaddrs[0].toUtf8(), '/ip4/127.0.0.1/tcp/30433');
    assert.equal(stored.deposit.toString(), deposit.toString());
    assert.equal((await api.query.syncRegistry.peerIds(peerId(1))).unwrap().toString(), alice.address);

    const summary = await api.call.syncRegistryApi.nodeInfo(alice.address);
    assert.ok(summary.isSome, 'runtime API returns the node');
    assert.equal(summary.unwrap().status.toString(), 'Joining');

    const holds = await api.query.balances.holds(alice.address);
    assert.ok(holds.some((h) => h.amount.eq(deposit)), 'deposit on hold');
  });

  test('bad calls fail with typed errors and change nothing', async () => {
    const before = (await api.query.syncRegistry.nodes(alice.address)).toHex();

    const twice = await submit(api, api.tx.syncRegistry.registerNode('Replica', peerId(2), ['/ip4/127.0.0.1/tcp/1']), alice);
    assert.deepEqual([twice.dispatchError?.section, twice.dispatchError?.name], ['syncRegistry', 'AlreadyRegistered']);

    const taken = await submit(api, api.tx.syncRegistry.registerNode('Replica', peerId(1), ['/ip4/127.0.0.1/tcp/1']), bob);
    assert.equal(taken.dispatchError?.name, 'PeerIdTaken');

    const badPeer = await submit(api, api.tx.syncRegistry.registerNode('Replica', '0x0024', ['/ip4/127.0.0.1/tcp/1']), bob);
    assert.equal(badPeer.dispatchError?.name, 'InvalidPeerId');

    const badAddr = await submit(api, api.tx.syncRegistry.registerNode('Replica', peerId(3), ['not-a-multiaddr']), bob);
    assert.equal(badAddr.dispatchError?.name, 'InvalidMultiaddr');

    const notRoot = await submit(api, api.tx.syncRegistry.forceDeregister(alice.address), bob);
    assert.equal(notRoot.dispatchError?.name, 'BadOrigin');

    assert.equal((await api.query.syncRegistry.nodes(alice.address)).toHex(), before, 'Alice unchanged');
    assert.ok((await api.query.syncRegistry.nodes(bob.address)).isNone, 'Bob not registered');
  });

  test('updates and deregisters, releasing the deposit', async () => {
    const upd = await submit(api, api.tx.syncRegistry.updateNode(peerId(4), ['/ip4/127.0.0.1/tcp/30444', '/ip6/::1/tcp/30444']), alice);
    assert.equal(upd.dispatchError, null);
    assert.ok(upd.events.some(({ event }) => api.events.syncRegistry.NodeUpdated.is(event)));
    assert.ok((await api.query.syncRegistry.peerIds(peerId(1))).isNone, 'old peer id freed');

    const dereg = await submit(api, api.tx.syncRegistry.deregisterNode(), alice);
    assert.equal(dereg.dispatchError, null);
    const ev = dereg.events.find(({ event }) => api.events.syncRegistry.NodeDeregistered.is(event));
    assert.ok(ev, 'NodeDeregistered event');
    assert.equal(ev.event.data[2].toString(), 'false');
    assert.ok((await api.query.syncRegistry.nodes(alice.address)).isNone);
    const holds = await api.query.balances.holds(alice.address);
    assert.equal(holds.length, 0, 'no hold left');
  });
});
