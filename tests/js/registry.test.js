// End-to-end: a dev chain of `sync-node`, driven through @polkadot/api like a user would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, submit, waitForBlock, waitForFinalized } from './lib/node.js';
import { peerKey, sha256PeerId } from './lib/peer.js';

/** Data-plane identities made in JS (Ed25519 keys and their libp2p peer ids). */
const [k1, k2, k3, k4, k5] = [1, 2, 3, 4, 5].map(peerKey);
const NO_SIGNATURE = `0x${'00'.repeat(64)}`;

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
    for (const call of ['registerNode', 'updateNode', 'deregisterNode', 'forceDeregister', 'acceptPrimary', 'acceptMigration']) {
      assert.equal(typeof api.tx.syncRegistry[call], 'function', `call ${call}`);
    }
    assert.equal(typeof api.query.syncRegistry.nodes, 'function');
    assert.equal(typeof api.call.syncRegistryApi?.nodeInfo, 'function', 'runtime API SyncRegistryApi.nodeInfo');
    assert.ok(api.consts.syncRegistry.nodeDeposit.gtn(0));
  });

  test('registers a node signed by //Alice, with its peer binding, and reads it back', async () => {
    const deposit = api.consts.syncRegistry.nodeDeposit;
    const tx = api.tx.syncRegistry.registerNode('Primary', k1.peerId, ['/ip4/127.0.0.1/tcp/30433'], k1.sign(api, alice.address));
    const { events, dispatchError } = await submit(api, tx, alice);
    assert.equal(dispatchError, null);
    const ev = events.find(({ event }) => api.events.syncRegistry.NodeRegistered.is(event));
    assert.ok(ev, 'NodeRegistered event');
    const [who, role, pid, dep] = ev.event.data;
    assert.equal(who.toString(), alice.address);
    assert.equal(role.toString(), 'Primary');
    assert.equal(pid.toHex(), k1.peerId);
    assert.equal(dep.toString(), deposit.toString());

    const stored = (await api.query.syncRegistry.nodes(alice.address)).unwrap();
    assert.equal(stored.role.toString(), 'Primary');
    assert.equal(stored.status.toString(), 'Joining');
    assert.equal(stored.peerId.toHex(), k1.peerId);
    assert.equal(stored.multiaddrs[0].toUtf8(), '/ip4/127.0.0.1/tcp/30433');
    assert.equal(stored.deposit.toString(), deposit.toString());
    assert.equal((await api.query.syncRegistry.peerIds(k1.peerId)).unwrap().toString(), alice.address);

    const summary = await api.call.syncRegistryApi.nodeInfo(alice.address);
    assert.ok(summary.isSome, 'runtime API returns the node');
    assert.equal(summary.unwrap().status.toString(), 'Joining');

    const holds = await api.query.balances.holds(alice.address);
    assert.ok(holds.some((h) => h.amount.eq(deposit)), 'deposit on hold');
  });

  test('bad calls fail with typed errors and change nothing', async () => {
    const before = (await api.query.syncRegistry.nodes(alice.address)).toHex();
    const register = (who, peerId, signature, addrs = ['/ip4/127.0.0.1/tcp/1']) =>
      submit(api, api.tx.syncRegistry.registerNode('Replica', peerId, addrs, signature), who);

    const twice = await register(alice, k2.peerId, k2.sign(api, alice.address));
    assert.deepEqual([twice.dispatchError?.section, twice.dispatchError?.name], ['syncRegistry', 'AlreadyRegistered']);

    const taken = await register(bob, k1.peerId, k1.sign(api, bob.address));
    assert.equal(taken.dispatchError?.name, 'PeerIdTaken');

    // Another node's peer id cannot be registered: its key signed for someone else, or not
    // at all, or another key signed.
    const stolen = await register(bob, k3.peerId, k3.sign(api, alice.address));
    assert.equal(stolen.dispatchError?.name, 'BadPeerSignature', 'a binding made for another account');
    const unsigned = await register(bob, k3.peerId, NO_SIGNATURE);
    assert.equal(unsigned.dispatchError?.name, 'BadPeerSignature', 'no binding');
    const otherKey = await register(bob, k3.peerId, k4.sign(api, bob.address));
    assert.equal(otherKey.dispatchError?.name, 'BadPeerSignature', 'a binding by another key');

    const badPeer = await register(bob, '0x0024', NO_SIGNATURE);
    assert.equal(badPeer.dispatchError?.name, 'InvalidPeerId');

    // Well-formed, but a hash of a key rather than the key: nothing to verify a binding with.
    const hashed = await register(bob, sha256PeerId(7), NO_SIGNATURE);
    assert.equal(hashed.dispatchError?.name, 'PeerIdNotEd25519');

    const badAddr = await register(bob, k3.peerId, k3.sign(api, bob.address), ['not-a-multiaddr']);
    assert.equal(badAddr.dispatchError?.name, 'InvalidMultiaddr');

    const notRoot = await submit(api, api.tx.syncRegistry.forceDeregister(alice.address), bob);
    assert.equal(notRoot.dispatchError?.name, 'BadOrigin');

    assert.equal((await api.query.syncRegistry.nodes(alice.address)).toHex(), before, 'Alice unchanged');
    assert.ok((await api.query.syncRegistry.nodes(bob.address)).isNone, 'Bob not registered');
    assert.ok((await api.query.syncRegistry.peerIds(k3.peerId)).isNone, 'the peer id is still free');
  });

  test('updates (a new peer id needs its binding) and deregisters, releasing the deposit', async () => {
    const before = (await api.query.syncRegistry.nodes(alice.address)).toHex();
    const update = (peer, addrs) => submit(api, api.tx.syncRegistry.updateNode(peer, addrs), alice);
    const forBob = await update([k4.peerId, k4.sign(api, bob.address)], null);
    assert.equal(forBob.dispatchError?.name, 'BadPeerSignature', 'a binding made for another account');
    const byOther = await update([k4.peerId, k5.sign(api, alice.address)], null);
    assert.equal(byOther.dispatchError?.name, 'BadPeerSignature', 'a binding by another key');
    const hashed = await update([sha256PeerId(8), NO_SIGNATURE], null);
    assert.equal(hashed.dispatchError?.name, 'PeerIdNotEd25519');
    assert.equal((await api.query.syncRegistry.nodes(alice.address)).toHex(), before, 'Alice unchanged');

    const upd = await update([k4.peerId, k4.sign(api, alice.address)], ['/ip4/127.0.0.1/tcp/30444', '/ip6/::1/tcp/30444']);
    assert.equal(upd.dispatchError, null);
    assert.ok(upd.events.some(({ event }) => api.events.syncRegistry.NodeUpdated.is(event)));
    assert.ok((await api.query.syncRegistry.peerIds(k1.peerId)).isNone, 'old peer id freed');
    assert.equal((await api.query.syncRegistry.peerIds(k4.peerId)).unwrap().toString(), alice.address);

    // Addresses alone need no binding: the peer id stays.
    const addrs = await update(null, ['/ip4/127.0.0.1/tcp/30445']);
    assert.equal(addrs.dispatchError, null);
    const stored = (await api.query.syncRegistry.nodes(alice.address)).unwrap();
    assert.equal(stored.peerId.toHex(), k4.peerId);
    assert.equal(stored.multiaddrs[0].toUtf8(), '/ip4/127.0.0.1/tcp/30445');

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
