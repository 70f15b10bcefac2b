// Provider migration driven from polkadot.js on a three-node `local` network, every node with
// its data plane and off-chain worker on, and the segment moved *under writes* (the fenced
// handover):
// - all three register themselves (`--sync-register`: the off-chain worker signs
//   `registerNode` with the node's `sync` key, its data-plane peer id and the peer binding the
//   node's service signed with its data-plane key for that account);
// - Alice (Primary) creates a segment, Bob (Replica) joins it, Alice writes objects and her
//   service commits the root; Bob follows, proves and is Active;
// - a writer (lib/writer.js) writes a new object every 200 ms through all three nodes with the
//   client's `putFollowing`, which follows the refusals (`Handover` naming the new owner,
//   `NotOwner`, `Behind`) to the node that takes the write;
// - with the writer running, the suite asks, with extrinsics, that the segment move from
//   Alice to Charlie (Primary), and Charlie accepts (`acceptMigration`, signed by his
//   account); until then nothing of his changes; then his node syncs it, claims the latest
//   root, and his off-chain worker proves it; Alice's node stops writing and seals her epoch
//   at her last op H; the suite waits for `MigrationCompleted` (seq H) and checks storage
//   (the ownership epochs: Alice's, then Charlie's with his peer id from H + 1) and the
//   writes: acknowledged by Alice up to H and by Charlie after, every one readable from
//   Charlie and Bob, the same head root on all three, no peer banned, Bob Active under
//   Charlie; it prints the write-unavailability window (the acknowledgement gap across the
//   handover);
// - Alice is released after the retention period (shortened by Root through
//   `system.setStorage`: it is a storage parameter of the runtime) and her copy deleted;
// - back and forth: the segment moves from Charlie to Alice under writes, with the same checks;
// - cancel under writes: a migration back to Charlie is requested, accepted and cancelled at
//   once; Alice keeps owning the segment and taking the writes.
// The calls and waits go through the typed client (clients/js).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady, xxhashAsHex } from '@polkadot/util-crypto';
import {
  SyncClientError, acceptMigration, cancelMigration, createSegment, findEvent, get, joinSegment, put,
  requestMigration, send, status, waitForHolding, waitForNode,
} from '../../clients/js/index.js';
import { eventually, nodeBinary, startLocalNetwork } from './lib/node.js';
import { startWriter } from './lib/writer.js';

/**
 * Blocks the old provider stays a Primary after the migration, in this suite: long enough that
 * it still holds (and follows) the segment when the suite compares the nodes' heads after the
 * move (the writer goes on for 5 s and more after it), short enough not to wait long for the
 * release.
 */
const RETENTION = 10;
/** Block time of the `local` chain, for the window in blocks. */
const BLOCK_MS = 6000;
const NAMES = ['Alice', 'Bob', 'Charlie'];

describe('provider migration from polkadot.js', () => {
  const nodes = [];
  let api;
  let alice;
  let bob;
  let charlie;
  let segment;
  let released;
  const objects = new Map();
  /** The nodes' data-plane peer ids (sync_status), by node index. */
  const peerIds = [];
  /** The endpoints every writer writes through: Alice's, Bob's and Charlie's `ApiPromise`s. */
  let endpoints;
  /** Every write acknowledged to a writer of this suite (all of them stay readable). */
  const acknowledged = [];
  const writers = new Set();

  /** Sends `tx` signed by `who` (a failure is the client's `Dispatch` error); its events. */
  const ok = async (tx, who) => (await send(api, tx, who)).events;
  const event = (events, method) => findEvent(events, method);
  /** `promise`, its failure with the node's log tail. */
  const withLogs = (promise, logs) => promise.catch((e) => {
    e.message += `:\n${logs.join('').slice(-4000)}`;
    throw e;
  });

  /** Starts a writer through all three nodes (stopped in `after` if a test fails first). */
  const writer = () => {
    const w = startWriter(endpoints, segment);
    writers.add(w);
    return w;
  };
  /** Stops `w`; its record, which must not have failed. */
  const stopWriter = async (w) => {
    const record = await w.stop();
    writers.delete(w);
    if (record.failure) throw record.failure;
    acknowledged.push(...record.acks);
    return record;
  };

  /** Every write of `acks` reads back byte-identical from node `i` (eventually: it may follow). */
  const readable = async (i, acks, timeoutMs = 120_000) => {
    let missing = acks;
    const deadline = Date.now() + timeoutMs;
    while (missing.length > 0) {
      const still = [];
      for (const a of missing) {
        const got = await get(nodes[i].api, segment, a.key);
        if (got?.data !== a.data) still.push(a);
      }
      missing = still;
      if (missing.length === 0) break;
      if (Date.now() > deadline) {
        assert.fail(`${NAMES[i]}: ${missing.length} of ${acks.length} acknowledged writes not readable (first ${missing[0].key}, seq ${missing[0].seq}):\n${nodes[i].logs.join('').slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };

  /** Nodes `which` report the same head (seq, root) of the segment (eventually); that head. */
  const sameHead = async (which) => {
    let seen = [];
    const head = await eventually(async () => {
      seen = await Promise.all(which.map(async (i) => (await status(nodes[i].api)).segments.find((s) => s.segment === segment) ?? null));
      const [first] = seen;
      return first?.root && seen.every((s) => s?.root === first.root && s.seq === first.seq) && first;
    }, { what: `the same head on ${which.map((i) => NAMES[i]).join(', ')}`, timeoutMs: 60_000, everyMs: 500 })
      .catch((e) => {
        e.message += `; last seen ${JSON.stringify(seen.map((s) => s && [s.stage, s.seq, s.root]))}`;
        throw e;
      });
    return head;
  };

  /** No node banned a peer (`sync_status().peers`: `usable`, `cooling`, `banned`). */
  const noBans = async () => {
    for (const [i, n] of nodes.entries()) {
      const { peers } = await status(n.api);
      assert.equal(typeof peers.banned, 'number', JSON.stringify(peers));
      assert.equal(peers.banned, 0, `${NAMES[i]} banned a peer: ${JSON.stringify(peers)}`);
    }
  };

  /**
   * The writes of `record` sealed with the old owner's epoch (seq <= `sealed`) were acknowledged
   * by the old owner `from`, the later ones by the new owner `to`, in one history (seqs
   * increasing); one handover between them. Prints the write-unavailability window; its gap.
   */
  const checkHandover = (record, sealed, from, to, what) => {
    const { acks } = record;
    for (let i = 1; i < acks.length; i++) {
      assert.ok(acks[i].seq > acks[i - 1].seq, `seqs increase: ${acks[i - 1].key} ${acks[i - 1].seq}, ${acks[i].key} ${acks[i].seq}`);
    }
    const before = acks.filter((a) => a.seq <= sealed);
    const afterSeal = acks.filter((a) => a.seq > sealed);
    assert.ok(before.length > 0 && afterSeal.length > 0, `writes on both sides of the seal at ${sealed}: ${before.length}, ${afterSeal.length}`);
    for (const a of before) assert.equal(a.peerId, peerIds[from], `${a.key} (seq ${a.seq} <= ${sealed}) acknowledged by ${NAMES[from]}`);
    for (const a of afterSeal) assert.equal(a.peerId, peerIds[to], `${a.key} (seq ${a.seq} > ${sealed}) acknowledged by ${NAMES[to]}`);
    const followed = (record.refusals.Handover ?? 0) + (record.refusals.NotOwner ?? 0);
    assert.ok(followed >= 1, `the writer followed a Handover or NotOwner: ${JSON.stringify(record.refusals)}`);
    assert.equal(record.handovers.length, 1, JSON.stringify(record.handovers.map((h) => [h.from, h.to, h.ms])));
    const [handover] = record.handovers;
    assert.deepEqual([handover.from, handover.to], [peerIds[from], peerIds[to]]);
    const secs = (record.stoppedAt - record.startedAt) / 1000;
    console.log(`[measure] ${what} under writes: write-unavailability window (acknowledgement gap across the handover) `
      + `${handover.ms} ms = ${(handover.ms / BLOCK_MS).toFixed(2)} blocks of 6 s (seq ${handover.after.seq} by ${NAMES[from]} → `
      + `seq ${handover.before.seq} by ${NAMES[to]}); longest gap ${record.longestGap?.ms} ms; ${acks.length} writes in `
      + `${secs.toFixed(0)} s (${(acks.length / secs).toFixed(1)}/s); refusals followed ${JSON.stringify(record.refusals)}`);
    // Not a timing goal (those live in the benchmarks): a sanity bound, so a wedge fails.
    assert.ok(handover.ms < 60_000, `writes unavailable for ${handover.ms} ms across the handover`);
    return handover;
  };

  before(async () => {
    // A short GC grace, so Alice's copy is deleted soon after her release.
    const common = ['--sync-register', '--sync-commit-every', '2', '--sync-gc-grace', '3'];
    nodes.push(...await startLocalNetwork([
      ['--sync-role', 'primary', ...common],
      ['--sync-role', 'replica', ...common],
      ['--sync-role', 'primary', ...common],
    ]));
    api = nodes[0].api;
    endpoints = nodes.map((n) => n.api);
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    [alice, bob, charlie] = ['//Alice', '//Bob', '//Charlie'].map((u) => keyring.addFromUri(u));
  });

  after(async () => {
    // A writer left by a failed test ends with its nodes (its next write fails).
    for (const w of writers) w.stop().catch(() => {});
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('every node registers itself with its data-plane peer id', async () => {
    for (const [i, who, role] of [[0, alice, 'Primary'], [1, bob, 'Replica'], [2, charlie, 'Primary']]) {
      const { peerId } = await status(nodes[i].api);
      peerIds[i] = peerId;
      const info = await withLogs(waitForNode(api, who.address, 120_000), nodes[i].logs);
      assert.equal(info.role.toString(), role);
      const owner = await api.query.syncRegistry.peerIds(info.peerId);
      assert.equal(owner.unwrap().toString(), who.address, 'peer id bound to the account');
      assert.equal(api.createType('Text', info.multiaddrs[0]).toString(), `/ip4/127.0.0.1/tcp/${nodes[i].syncPort}`);
      assert.ok(peerId.length > 40);
      assert.equal(info.peerId.toHex(), u8aToHex(base58Decode(peerId)), 'registered with its own data-plane peer id');
    }
  });

  test('Alice writes a segment and her service commits its root; Bob holds it as a Replica', async () => {
    const created = await createSegment(api, alice);
    segment = created.segment;
    assert.equal(event(created.events, 'SegmentCreated').data.owner.toString(), alice.address);
    // Bob joins at once: his node follows the segment from its first commit on.
    await joinSegment(api, bob, segment);
    await waitForHolding(api, segment, bob.address, 'Syncing', 30_000);
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
    // Bob follows, claims a committed root and proves it.
    await withLogs(waitForHolding(api, segment, bob.address, 'Active', 180_000), nodes[1].logs);
  });

  test('the segment moves from Alice to Charlie under writes: he syncs, proves, and owns it', async () => {
    const key = xxhashAsHex(':MigrationRetention:', 128);
    await ok(api.tx.sudo.sudo(api.tx.system.setStorage([[key, u8aToHex(api.createType('u32', RETENTION).toU8a())]])), alice);
    const charlieBefore = (await api.query.syncRegistry.nodeSegments(charlie.address)).toHex();
    // The writer runs from before the request to after the move.
    const w = writer();
    await w.waitForAcks(3, (a) => a.peerId === peerIds[0]);
    // The client follows the migration from its request: `requested`, then `completed`
    // (MigrationCompleted) and `released` (ProviderReleased, RETENTION blocks after completion).
    const migration = requestMigration(api, alice, segment, charlie.address, { release: true, timeoutMs: 600_000 });
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
    const completedAt = Date.now();
    assert.equal(done.data.to.toString(), charlie.address);
    assert.equal(done.data.from.toString(), alice.address);
    // The seq of the seal: Alice's last op, the end of her epoch.
    const sealed = done.data.seq.toNumber();

    const seg = (await api.query.syncRegistry.segments(segment)).unwrap();
    assert.equal(seg.owner.toString(), charlie.address, 'ownership moved');
    assert.ok(seg.primaries.some((p) => p.eq(alice.address)), 'Alice stays a Primary during retention');
    const m = (await api.query.syncRegistry.migrations(segment)).unwrap();
    assert.ok(m.completed.isTrue);
    // The ownership history: Alice's epoch 1, then Charlie's epoch 2 with his data-plane peer
    // id, from the seq after the sealed one.
    const epochs = await api.query.syncRegistry.ownerEpochs(segment);
    assert.equal(epochs.length, 2, JSON.stringify(epochs.toJSON()));
    assert.equal(epochs[0].epoch.toNumber(), 1);
    assert.equal(epochs[0].owner.toString(), alice.address);
    assert.equal(epochs[1].epoch.toNumber(), 2);
    assert.equal(epochs[1].owner.toString(), charlie.address);
    const charlieInfo = (await api.query.syncRegistry.nodes(charlie.address)).unwrap();
    assert.equal(epochs[1].peerId.toHex(), charlieInfo.peerId.toHex(), 'the peer id Charlie registered');
    assert.equal(epochs[1].firstSeq.toNumber(), sealed + 1);

    // The writer goes on for 5 s and more after the move, through Charlie.
    await w.waitForAcks(5, (a) => a.peerId === peerIds[2]);
    const rest = completedAt + 5000 - Date.now();
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    const record = await stopWriter(w);
    checkHandover(record, sealed, 0, 2, 'Alice → Charlie');

    // Charlie's node owns it: it serves Alice's objects and accepts writes; Alice refuses,
    // naming Charlie (her epoch is sealed: she never takes a write again).
    await eventually(async () => (await status(nodes[2].api)).segments.find((s) => s.segment === segment)?.owner,
      { what: 'Charlie owner', logs: nodes[2].logs });
    for (const [k, data] of objects) {
      assert.equal((await get(nodes[2].api, segment, k)).data, data);
    }
    const later = await put(nodes[2].api, segment, 'after.bin', '0xc0ffee');
    assert.ok(later.seq > record.acks.at(-1).seq);
    const refusal = await eventually(async () => {
      try {
        await put(nodes[0].api, segment, 'late.bin', '0x00');
      } catch (e) {
        if (!(e instanceof SyncClientError) || !['NotOwner', 'Handover'].includes(e.errorName)) throw e;
        // (`Handover` until her node sees the seal finalized.)
        return e.errorName === 'NotOwner' && e;
      }
      return assert.fail('Alice took a write after her epoch was sealed');
    }, { what: 'Alice refuses writes with NotOwner' });
    assert.match(refusal.message, /does not own/);
    assert.equal(refusal.data?.owner, peerIds[2], `NotOwner names Charlie: ${JSON.stringify(refusal.data)}`);
    assert.ok((refusal.data.addresses ?? []).some((a) => a.startsWith(`/ip4/127.0.0.1/tcp/${nodes[2].syncPort}`)),
      `and his data-plane address from the chain: ${JSON.stringify(refusal.data)}`);
    // The CLI follows the segment too: `sync-node put` at Alice, told of Charlie's node, is
    // refused with NotOwner naming Charlie's peer id and writes there.
    const dir = mkdtempSync(join(tmpdir(), 'sync-migration-'));
    const bytes = randomBytes(777);
    writeFileSync(join(dir, 'cli.bin'), bytes);
    const cli = await promisify(execFile)(nodeBinary(), ['put', '--segment', String(segment), '--key', 'cli.bin',
      join(dir, 'cli.bin'), '--rpc', `127.0.0.1:${nodes[0].rpcPort}`, '--node', `127.0.0.1:${nodes[2].rpcPort}`,
      '--retry-for', '30']);
    assert.match(cli.stderr, new RegExp(`following the segment to 127\\.0\\.0\\.1:${nodes[2].rpcPort}`), cli.stderr);
    const viaCli = JSON.parse(cli.stdout);
    assert.ok(viaCli.seq > later.seq, JSON.stringify(viaCli));
    acknowledged.push({ key: 'cli.bin', data: u8aToHex(bytes), seq: viaCli.seq });
    // Alice, still a Primary for the retention period, follows Charlie's writes.
    await eventually(async () => (await get(nodes[0].api, segment, 'after.bin'))?.data === '0xc0ffee',
      { what: 'Alice follows the new owner', logs: nodes[0].logs });
    // The three copies agree (Alice's until her release), and every acknowledged write is in
    // the new owner's and the Replica's.
    await sameHead([0, 1, 2]);
    await readable(2, acknowledged);
    await readable(1, acknowledged);
    await noBans();
    // Bob follows the new owner and stays Active.
    await withLogs(waitForHolding(api, segment, bob.address, 'Active', 180_000), nodes[1].logs);
    assert.equal((await api.query.syncRegistry.segments(segment)).unwrap().owner.toString(), charlie.address);
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

  test('back and forth: the segment moves from Charlie back to Alice under writes', async () => {
    const w = writer();
    await w.waitForAcks(3, (a) => a.peerId === peerIds[2]);
    const migration = requestMigration(api, charlie, segment, alice.address, { release: true, timeoutMs: 600_000 });
    assert.ok(event((await migration.requested).events, 'MigrationRequested'));
    assert.ok((await api.query.syncRegistry.holdings(segment, alice.address)).isNone, 'Alice (released) holds nothing');
    assert.ok(event((await acceptMigration(api, alice, segment)).events, 'MigrationAccepted'));
    // Alice syncs the segment again from scratch (her copy was deleted), proves, and Charlie
    // seals his epoch.
    const done = await withLogs(migration.completed, nodes[0].logs);
    const completedAt = Date.now();
    assert.equal(done.data.from.toString(), charlie.address);
    assert.equal(done.data.to.toString(), alice.address);
    const sealed = done.data.seq.toNumber();
    assert.equal((await api.query.syncRegistry.segments(segment)).unwrap().owner.toString(), alice.address);
    const epochs = await api.query.syncRegistry.ownerEpochs(segment);
    assert.equal(epochs.length, 3, JSON.stringify(epochs.toJSON()));
    assert.equal(epochs[2].epoch.toNumber(), 3);
    assert.equal(epochs[2].owner.toString(), alice.address);
    assert.equal(epochs[2].peerId.toHex(), u8aToHex(base58Decode(peerIds[0])));
    assert.equal(epochs[2].firstSeq.toNumber(), sealed + 1);

    await w.waitForAcks(5, (a) => a.peerId === peerIds[0]);
    const rest = completedAt + 5000 - Date.now();
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    const record = await stopWriter(w);
    checkHandover(record, sealed, 2, 0, 'Charlie → Alice');
    // Charlie is retained (and follows) until his release: all three agree. Alice, synced
    // anew, has every write acknowledged in this suite; so has Bob.
    await sameHead([0, 1, 2]);
    await readable(0, acknowledged);
    await readable(1, acknowledged);
    await noBans();
    await withLogs(waitForHolding(api, segment, bob.address, 'Active', 180_000), nodes[1].logs);
    // The next migration can be requested once this one is over: Charlie's release.
    const release = await withLogs(migration.released, nodes[2].logs);
    assert.equal(release.data.who.toString(), charlie.address);
  });

  test('cancel under writes: a migration accepted and cancelled at once leaves Alice owning and writing', async () => {
    const w = writer();
    await w.waitForAcks(3, (a) => a.peerId === peerIds[0]);
    const second = requestMigration(api, alice, segment, charlie.address);
    assert.ok(event((await second.requested).events, 'MigrationRequested'));
    assert.ok((await api.query.syncRegistry.holdings(segment, charlie.address)).isNone, 'not a holder before accepting');
    assert.ok(event((await acceptMigration(api, charlie, segment)).events, 'MigrationAccepted'));
    assert.ok((await api.query.syncRegistry.holdings(segment, charlie.address)).isSome, 'the target became a holder');
    // Alice cancels right after the accept, before Charlie can have proven (cancelling is
    // allowed until the seal lands: a `NoMigration` here would mean it completed). Bob's
    // cancel, sent at the same time, is refused whatever the order: he does not own it.
    const [cancelled] = await Promise.all([
      cancelMigration(api, alice, segment),
      assert.rejects(cancelMigration(api, bob, segment),
        (e) => e instanceof SyncClientError && e.code === 'Dispatch' && /^(NotOwner|BadOrigin)$/.test(e.errorName)),
    ]);
    const cancelledAt = Date.now();
    assert.ok(event(cancelled.events, 'MigrationCancelled'));
    // The client's migration ends with the cancellation.
    await assert.rejects(second, (e) => e instanceof SyncClientError && e.code === 'Cancelled' && e.errorName === 'MigrationCancelled');
    assert.ok((await api.query.syncRegistry.migrations(segment)).isNone);
    assert.ok((await api.query.syncRegistry.holdings(segment, charlie.address)).isNone, 'the added target is removed');
    const seg = (await api.query.syncRegistry.segments(segment)).unwrap();
    assert.equal(seg.owner.toString(), alice.address, 'the owner is unchanged');
    assert.equal((await api.query.syncRegistry.ownerEpochs(segment)).length, 3, 'no new epoch');

    // Alice goes on taking the writes.
    await w.waitForAcks(5, (a) => a.at > cancelledAt && a.peerId === peerIds[0]);
    const record = await stopWriter(w);
    for (const a of record.acks) assert.equal(a.peerId, peerIds[0], `${a.key} (seq ${a.seq}) acknowledged by Alice`);
    console.log(`[measure] cancelled migration under writes: ${record.acks.length} writes, longest gap ${record.longestGap?.ms} ms, `
      + `refusals followed ${JSON.stringify(record.refusals)}`);
    await sameHead([0, 1]);
    await readable(0, acknowledged);
    await readable(1, acknowledged);
    await noBans();
  });
});
