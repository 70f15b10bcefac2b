// Provider migration driven from polkadot.js on a three-node `local` network, every node with
// its data plane and off-chain worker on:
// - all three register themselves (`--sync-register`: the off-chain worker signs
//   `registerNode` with the node's `sync` key, its data-plane peer id and the peer binding the
//   node's service signed with its data-plane key for that account);
// - Alice (Primary) creates a segment, writes objects, and her service commits the root;
// - the suite asks, with extrinsics, that the segment move from Alice to Charlie (Primary),
//   and Charlie accepts (`acceptMigration`, signed by his account); until then nothing of his
//   changes; then his node syncs it, claims the latest root, and his off-chain worker proves it;
//   the suite waits for `MigrationCompleted` and checks storage (including the ownership
//   epochs: Alice's, then Charlie's with his peer id) and both nodes;
// - Alice is released after the retention period (shortened by Root through
//   `system.setStorage`: it is a storage parameter of the runtime);
// - a second migration is requested and cancelled.
// The calls and waits go through the typed client (clients/js).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady, xxhashAsHex } from '@polkadot/util-crypto';
import {
  SyncClientError, acceptMigration, cancelMigration, createSegment, findEvent, get, put, requestMigration,
  send, status, waitForNode,
} from '../../clients/js/index.js';
import { eventually, startLocalNetwork } from './lib/node.js';

/** Blocks the old provider stays a Primary after the migration, in this suite. */
const RETENTION = 3;

describe('provider migration from polkadot.js', () => {
  const nodes = [];
  let api;
  let alice;
  let bob;
  let charlie;
  let segment;
  let released;
  const objects = new Map();

  /** Sends `tx` signed by `who` (a failure is the client's `Dispatch` error); its events. */
  const ok = async (tx, who) => (await send(api, tx, who)).events;
  const event = (events, method) => findEvent(events, method);
  /** `promise`, its failure with the node's log tail. */
  const withLogs = (promise, logs) => promise.catch((e) => {
    e.message += `:\n${logs.join('').slice(-4000)}`;
    throw e;
  });

  before(async () => {
    // A short GC grace, so Alice's copy is deleted soon after her release.
    const common = ['--sync-register', '--sync-commit-every', '2', '--sync-gc-grace', '3'];
    nodes.push(...await startLocalNetwork([
      ['--sync-role', 'primary', ...common],
      ['--sync-role', 'replica', ...common],
      ['--sync-role', 'primary', ...common],
    ]));
    api = nodes[0].api;
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    [alice, bob, charlie] = ['//Alice', '//Bob', '//Charlie'].map((u) => keyring.addFromUri(u));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('every node registers itself with its data-plane peer id', async () => {
    for (const [i, who, role] of [[0, alice, 'Primary'], [1, bob, 'Replica'], [2, charlie, 'Primary']]) {
      const { peerId } = await status(nodes[i].api);
      const info = await withLogs(waitForNode(api, who.address, 120_000), nodes[i].logs);
      assert.equal(info.role.toString(), role);
      const owner = await api.query.syncRegistry.peerIds(info.peerId);
      assert.equal(owner.unwrap().toString(), who.address, 'peer id bound to the account');
      assert.equal(api.createType('Text', info.multiaddrs[0]).toString(), `/ip4/127.0.0.1/tcp/${nodes[i].syncPort}`);
      assert.ok(peerId.length > 40);
      assert.equal(info.peerId.toHex(), u8aToHex(base58Decode(peerId)), 'registered with its own data-plane peer id');
    }
  });

  test('Alice writes a segment and her service commits its root', async () => {
    const created = await createSegment(api, alice);
    segment = created.segment;
    assert.equal(event(created.events, 'SegmentCreated').data.owner.toString(), alice.address);
    for (const [key, len] of [['a.bin', 3000], ['b.bin', 70_000], ['c.bin', 1]]) {
      const data = u8aToHex(randomBytes(len));
      objects.set(key, data);
      // Alice's node takes writes once it has seen the segment on a finalized block.
      await put(nodes[0].api, segment, key, data, { retryMs: 120_000 });
    }
    const { seq, root } = (await status(nodes[0].api)).segments.find((s) => s.segment === segment);
    const committed = await eventually(async () => {
      const roots = await api.query.syncRegistry.roots(segment);
      return roots.find((r) => r.seq.toNumber() === seq);
    }, { what: 'the head committed', logs: nodes[0].logs });
    assert.equal(committed.facts.root.toHex(), `0x${root.replace(/^0x/, '')}`);
    // (`entries` is also a Map method of polkadot.js structs: read the field from JSON.)
    assert.equal(committed.facts.toJSON().entries, 3, JSON.stringify(committed.facts.toJSON()));
  });

  test('the segment moves from Alice to Charlie: he syncs, proves, and owns it', async () => {
    const key = xxhashAsHex(':MigrationRetention:', 128);
    await ok(api.tx.sudo.sudo(api.tx.system.setStorage([[key, u8aToHex(api.createType('u32', RETENTION).toU8a())]])), alice);
    const charlieBefore = (await api.query.syncRegistry.nodeSegments(charlie.address)).toHex();
    // The client follows the migration from its request: `requested`, then `completed`
    // (MigrationCompleted) and `released` (ProviderReleased, RETENTION blocks after completion).
    const migration = requestMigration(api, alice, segment, charlie.address, { release: true, timeoutMs: 360_000 });
    released = migration.released;
    const requested = (await migration.requested).events;
    const req = event(requested, 'MigrationRequested');
    assert.equal(req.data.to.toString(), charlie.address);
    assert.equal(req.data.from.toString(), alice.address);
    // Requested is not accepted: the target is untouched until it says yes.
    assert.equal((await api.query.syncRegistry.nodeSegments(charlie.address)).toHex(), charlieBefore, 'Charlie untouched');
    assert.ok((await api.query.syncRegistry.holdings(segment, charlie.address)).isNone, 'Charlie holds nothing yet');
    const accepted = (await acceptMigration(api, charlie, segment)).events;
    assert.ok(event(accepted, 'MigrationAccepted'), 'MigrationAccepted');
    const done = await withLogs(migration.completed, nodes[2].logs);
    assert.equal(done.data.to.toString(), charlie.address);

    const seg = (await api.query.syncRegistry.segments(segment)).unwrap();
    assert.equal(seg.owner.toString(), charlie.address, 'ownership moved');
    assert.ok(seg.primaries.some((p) => p.eq(alice.address)), 'Alice stays a Primary during retention');
    const m = (await api.query.syncRegistry.migrations(segment)).unwrap();
    assert.ok(m.completed.isTrue);
    // The ownership history: Alice's epoch 1, then Charlie's epoch 2 with his data-plane peer
    // id, from the seq after the one he proved.
    const epochs = await api.query.syncRegistry.ownerEpochs(segment);
    assert.equal(epochs.length, 2, JSON.stringify(epochs.toJSON()));
    assert.equal(epochs[0].epoch.toNumber(), 1);
    assert.equal(epochs[0].owner.toString(), alice.address);
    assert.equal(epochs[1].epoch.toNumber(), 2);
    assert.equal(epochs[1].owner.toString(), charlie.address);
    const charlieInfo = (await api.query.syncRegistry.nodes(charlie.address)).unwrap();
    assert.equal(epochs[1].peerId.toHex(), charlieInfo.peerId.toHex(), 'the peer id Charlie registered');
    assert.equal(epochs[1].firstSeq.toNumber(), done.data.seq.toNumber() + 1);

    // Charlie's node now owns it: it serves Alice's objects and accepts writes; Alice refuses.
    await eventually(async () => (await status(nodes[2].api)).segments.find((s) => s.segment === segment)?.owner,
      { what: 'Charlie owner', logs: nodes[2].logs });
    for (const [k, data] of objects) {
      assert.equal((await get(nodes[2].api, segment, k)).data, data);
    }
    const later = await put(nodes[2].api, segment, 'after.bin', '0xc0ffee');
    assert.ok(later.seq > 3);
    await eventually(async () => {
      try {
        await put(nodes[0].api, segment, 'late.bin', '0x00');
        return false;
      } catch (e) {
        return e instanceof SyncClientError && e.errorName === 'NotOwner' && /does not own/.test(e.message);
      }
    }, { what: 'Alice refuses writes' });
    // Alice, still a Primary for the retention period, follows Charlie's writes.
    await eventually(async () => (await get(nodes[0].api, segment, 'after.bin'))?.data === '0xc0ffee',
      { what: 'Alice follows the new owner', logs: nodes[0].logs });
  });

  test('Alice is released after the retention period', async () => {
    const release = await withLogs(released, nodes[0].logs);
    assert.equal(release.data.who.toString(), alice.address);
    const seg = (await api.query.syncRegistry.segments(segment)).unwrap();
    assert.ok(!seg.primaries.some((p) => p.eq(alice.address)));
    assert.ok((await api.query.syncRegistry.migrations(segment)).isNone);
    const mine = await api.query.syncRegistry.nodeSegments(alice.address);
    assert.ok(!mine.some((s) => s.toNumber() === segment));
    // Released data is deleted after the GC grace (--sync-gc-grace 3 blocks here); the new
    // owner still has it.
    await eventually(async () => (await get(nodes[0].api, segment, 'after.bin')) === null,
      { what: "Alice's released copy deleted", logs: nodes[0].logs, timeoutMs: 120_000 });
    assert.match(nodes[0].logs.join(''), new RegExp(`segment ${segment}: no longer held; its data deleted`));
    assert.equal((await get(nodes[2].api, segment, 'after.bin'))?.data, '0xc0ffee');
  });

  test('a second migration can be cancelled', async () => {
    const second = requestMigration(api, charlie, segment, alice.address);
    assert.ok(event((await second.requested).events, 'MigrationRequested'));
    assert.ok((await api.query.syncRegistry.holdings(segment, alice.address)).isNone, 'not a holder before accepting');
    assert.ok(event((await acceptMigration(api, alice, segment)).events, 'MigrationAccepted'));
    assert.ok((await api.query.syncRegistry.holdings(segment, alice.address)).isSome, 'the target became a holder');
    await assert.rejects(cancelMigration(api, bob, segment),
      (e) => e instanceof SyncClientError && e.code === 'Dispatch' && /^(NotOwner|BadOrigin)$/.test(e.errorName));
    const cancelled = (await cancelMigration(api, charlie, segment)).events;
    assert.ok(event(cancelled, 'MigrationCancelled'));
    // The client's migration ends with the cancellation.
    await assert.rejects(second, (e) => e instanceof SyncClientError && e.code === 'Cancelled' && e.errorName === 'MigrationCancelled');
    assert.ok((await api.query.syncRegistry.migrations(segment)).isNone);
    assert.ok((await api.query.syncRegistry.holdings(segment, alice.address)).isNone, 'the added target is removed');
    const seg = (await api.query.syncRegistry.segments(segment)).unwrap();
    assert.equal(seg.owner.toString(), charlie.address, 'the owner is unchanged');
  });
});
