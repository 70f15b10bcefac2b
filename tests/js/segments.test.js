// End-to-end: segments, co-Primary seats (offered, then accepted by the target), committed
// roots, parity, Proof-of-Sync challenges, provider migration requests (accepted by the
// target) and leaving — driven through @polkadot/api on a dev chain of `sync-node`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, submit, waitForBlock } from './lib/node.js';
import { peerKey } from './lib/peer.js';

const ROOT1 = '0x' + '11'.repeat(32);
const ROOT2 = '0x' + '22'.repeat(32);

describe('segments, roots, challenges and migration', () => {
  let node;
  let api;
  let alice; let bob; let charlie; let dave;
  /** A registered Primary with nothing offered to it: a third account. */
  let eve;

  /** Submits, asserts success, returns the events of this pallet as { method: data }. */
  async function ok(tx, signer) {
    const { events, dispatchError } = await submit(api, tx, signer);
    assert.equal(dispatchError, null, `unexpected error ${JSON.stringify(dispatchError)}`);
    return events.filter(({ event }) => event.section === 'syncRegistry').map(({ event }) => event);
  }

  /**
   * Submits, asserts it was included and failed with the module error `name`, that the sender
   * paid a fee for it, and that the pallet's storage did not change.
   */
  async function fails(tx, signer, name) {
    const before = await palletState();
    const { events, dispatchError } = await submit(api, tx, signer);
    assert.equal(dispatchError?.name, name);
    const fee = events.find(({ event }) => event.section === 'transactionPayment' && event.method === 'TransactionFeePaid');
    assert.ok(fee, `${name}: fee event`);
    assert.equal(fee.event.data.who.toString(), signer.address);
    assert.ok(fee.event.data.actualFee.toBigInt() > 0n, `${name}: the refused call paid a fee`);
    assert.deepEqual(await palletState(), before, `${name}: storage unchanged`);
  }

  async function palletState() {
    const [nodes, segments, roots, holdings, challenges, migrations] = await Promise.all([
      api.query.syncRegistry.nodes.entries(),
      api.query.syncRegistry.segments.entries(),
      api.query.syncRegistry.roots.entries(),
      api.query.syncRegistry.holdings.entries(),
      api.query.syncRegistry.challenges.entries(),
      api.query.syncRegistry.migrations.entries(),
    ]);
    const flat = (es) => es.map(([k, v]) => [k.toHex(), v.toHex()]).sort();
    return [nodes, segments, roots, holdings, challenges, migrations].map(flat);
  }

  const find = (events, method) => events.find((e) => e.method === method);

  before(async () => {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    [alice, bob, charlie, dave, eve] = ['//Alice', '//Bob', '//Charlie', '//Dave', '//Eve'].map((u) => keyring.addFromUri(u));
    node = await startNode(['--dev', '--tmp']);
    api = node.api;
    await waitForBlock(api, 1);
    const reg = (who, role, seed) => {
      const key = peerKey(seed);
      return ok(api.tx.syncRegistry.registerNode(role, key.peerId, [`/ip4/127.0.0.1/tcp/${30400 + seed}`], key.sign(api, who.address)), who);
    };
    await Promise.all([reg(alice, 'Primary', 1), reg(bob, 'Primary', 2), reg(charlie, 'Replica', 3), reg(dave, 'Primary', 4), reg(eve, 'Primary', 5)]);
  });

  after(async () => {
    await node?.stop();
  });

  const segmentsOf = async (who) => (await api.query.syncRegistry.nodeSegments(who.address)).toHex();

  test('a Primary creates a segment and offers a co-Primary seat, which only the target can take', async () => {
    const created = await ok(api.tx.syncRegistry.createSegment(), alice);
    const ev = find(created, 'SegmentCreated');
    assert.ok(ev, 'SegmentCreated');
    assert.equal(ev.data.segment.toNumber(), 0);
    assert.equal(ev.data.owner.toString(), alice.address);
    await fails(api.tx.syncRegistry.createSegment(), charlie, 'WrongRole');
    await fails(api.tx.syncRegistry.addPrimary(0, bob.address), charlie, 'NotOwner');

    // The owner only offers the seat: the target is untouched until it accepts.
    const bobBefore = await segmentsOf(bob);
    const offered = await ok(api.tx.syncRegistry.addPrimary(0, bob.address), alice);
    assert.ok(find(offered, 'PrimaryOffered'), 'PrimaryOffered');
    assert.ok(!find(offered, 'PrimaryAdded'), 'an offer adds nobody');
    assert.deepEqual((await api.query.syncRegistry.segments(0)).unwrap().primaries.map(String), [alice.address]);
    assert.equal(await segmentsOf(bob), bobBefore, 'the target\'s nodeSegments unchanged');
    assert.ok((await api.query.syncRegistry.holdings(0, bob.address)).isNone, 'the target holds nothing');
    // Nobody else can take the seat offered to Bob.
    await fails(api.tx.syncRegistry.acceptPrimary(0), eve, 'NoOffer');

    const added = await ok(api.tx.syncRegistry.acceptPrimary(0), bob);
    assert.ok(find(added, 'PrimaryAdded'), 'PrimaryAdded');
    assert.ok(find(added, 'HolderJoined'), 'HolderJoined');
    const seg = (await api.query.syncRegistry.segments(0)).unwrap();
    assert.deepEqual(seg.primaries.map(String), [alice.address, bob.address]);
    assert.ok((await api.query.syncRegistry.nodeSegments(bob.address)).some((s) => s.toNumber() === 0));
  });

  test('roots are committed with checks, and co-Primaries reach parity', async () => {
    await fails(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT1, leaves: 1, entries: 2, bytes: 10 }), alice, 'InvalidRootFacts');
    await fails(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT1, leaves: 3, entries: 2, bytes: 2000 }), charlie, 'NotOwner');
    // Attack 2: a co-Primary cannot commit (not even an "empty" root that proves with no data),
    // and the owner cannot commit an empty segment under a non-empty hash or a bricking seq.
    await fails(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT2, leaves: 0, entries: 0, bytes: 0 }), bob, 'NotOwner');
    await fails(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT2, leaves: 0, entries: 0, bytes: 0 }), alice, 'InvalidRootFacts');
    await fails(api.tx.syncRegistry.commitRoot(0, '18446744073709551615', { root: ROOT1, leaves: 3, entries: 2, bytes: 2000 }), alice, 'SeqStepTooLarge');
    const committed = await ok(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT1, leaves: 3, entries: 2, bytes: 2000 }), alice);
    const rc = find(committed, 'RootCommitted');
    assert.ok(rc);
    assert.equal(rc.data.root.toHex(), ROOT1);
    assert.equal(rc.data.index.toNumber(), 1);
    await fails(api.tx.syncRegistry.commitRoot(0, 1, { root: ROOT2, leaves: 3, entries: 2, bytes: 2000 }), alice, 'StaleSeq');

    // A co-Primary that computed another root is recorded as diverging, not refused.
    const diverged = await ok(api.tx.syncRegistry.attestRoot(0, 1, ROOT2), bob);
    const dv = find(diverged, 'RootDiverged');
    assert.ok(dv, 'RootDiverged');
    assert.equal(dv.data.committed.toHex(), ROOT1);
    assert.equal(dv.data.attested.toHex(), ROOT2);
    const withDivergence = (await api.call.syncRegistryApi.segmentInfo(0)).unwrap();
    assert.equal(withDivergence.divergences.length, 1);
    assert.equal(withDivergence.divergences[0][0].toString(), bob.address);
    await fails(api.tx.syncRegistry.attestRoot(0, 1, ROOT1), alice, 'IsOwner');
    const attested = await ok(api.tx.syncRegistry.attestRoot(0, 1, ROOT1), bob);
    assert.ok(find(attested, 'RootAttested'));
    const parity = find(attested, 'ParityReached');
    assert.ok(parity, 'ParityReached');
    assert.equal(parity.data.root.toHex(), ROOT1);

    const info = (await api.call.syncRegistryApi.segmentInfo(0)).unwrap();
    assert.equal(info.owner.toString(), alice.address);
    assert.equal(info.roots.length, 1);
    assert.equal(info.roots[0].facts.root.toHex(), ROOT1);
    assert.equal(info.divergences.length, 0, 'agreeing supersedes the divergence');
  });

  test('a migration is requested, accepted by its target only, and cancelled, with the target removed again', async () => {
    await fails(api.tx.syncRegistry.requestMigration(0, charlie.address), alice, 'WrongRole');
    const daveBefore = await segmentsOf(dave);
    const requested = await ok(api.tx.syncRegistry.requestMigration(0, dave.address), alice);
    const ev = find(requested, 'MigrationRequested');
    assert.ok(ev);
    assert.equal(ev.data.to.toString(), dave.address);
    // Not accepted yet: the target is untouched.
    assert.ok((await api.query.syncRegistry.holdings(0, dave.address)).isNone, 'not a holder before accepting');
    assert.equal(await segmentsOf(dave), daveBefore, 'the target\'s nodeSegments unchanged');
    await fails(api.tx.syncRegistry.acceptMigration(0), eve, 'NoOffer');

    const accepted = await ok(api.tx.syncRegistry.acceptMigration(0), dave);
    assert.ok(find(accepted, 'MigrationAccepted'), 'MigrationAccepted');
    assert.ok((await api.query.syncRegistry.holdings(0, dave.address)).isSome, 'target became a holder');
    await fails(api.tx.syncRegistry.requestMigration(0, bob.address), alice, 'MigrationPending');
    await fails(api.tx.syncRegistry.cancelMigration(0), bob, 'NotOwner');

    const cancelled = await ok(api.tx.syncRegistry.cancelMigration(0), alice);
    assert.ok(find(cancelled, 'MigrationCancelled'));
    assert.ok((await api.query.syncRegistry.migrations(0)).isNone);
    assert.ok((await api.query.syncRegistry.holdings(0, dave.address)).isNone, 'target removed');
    assert.equal((await api.query.syncRegistry.segments(0)).unwrap().owner.toString(), alice.address);
  });

  test('a Replica joins, claims a root and gets a challenge; a bad proof is refused', async () => {
    await ok(api.tx.syncRegistry.joinSegment(0), charlie);
    assert.equal((await api.query.syncRegistry.nodes(charlie.address)).unwrap().status.toString(), 'Syncing');
    const claimed = await ok(api.tx.syncRegistry.claimSync(0, 1), charlie);
    const issued = find(claimed, 'ChallengeIssued');
    assert.ok(issued, 'ChallengeIssued');
    const id = issued.data.id.toNumber();
    const seedBlock = issued.data.seedBlock.toNumber();
    await fails(api.tx.syncRegistry.claimSync(0, 1), charlie, 'ChallengeAlreadyOpen');

    await waitForBlock(api, seedBlock + 1);
    const open = await api.call.syncRegistryApi.openChallenges(charlie.address);
    assert.equal(open.length, 1);
    assert.equal(open[0].id.toNumber(), id);
    assert.ok(open[0].seed.isSome, 'seed known after the seed block');
    assert.equal(open[0].indexes.length, api.consts.syncRegistry.challengeLeaves.toNumber());
    open[0].indexes.forEach((i) => assert.ok(i.toNumber() < 3, 'index within the root\'s leaves'));

    await fails(api.tx.syncRegistry.submitProof(id, { chunks: [] }), charlie, 'InvalidProof');
    await fails(api.tx.syncRegistry.submitProof(id, { chunks: [] }), bob, 'NotChallenged');
    // Attack 1: a crafted trie step (bit 65535) once panicked the runtime, so the transaction
    // was dropped without a fee; now it is an included, fee-paying `InvalidProof`.
    const zero = '0x' + '00'.repeat(32);
    const crafted = {
      key: '0x01', cid: zero, size: 1, chunk: '0x00', chunkSiblings: [],
      triePath: [{ bit: 65535, right: true, sibling: zero, siblingWeight: 1 }],
    };
    const k = api.consts.syncRegistry.challengeLeaves.toNumber();
    await fails(api.tx.syncRegistry.submitProof(id, { chunks: Array(k).fill(crafted) }), charlie, 'InvalidProof');
  });

  test('abandoning a challenge costs: leaving counts as a failure that survives a rejoin', async () => {
    // Attack 3: claim, see the seed, leave, rejoin, claim again — no longer free.
    const heldBefore = (await api.query.syncRegistry.nodes(charlie.address)).unwrap().deposit.toBigInt();
    const left = await ok(api.tx.syncRegistry.leaveSegment(0), charlie);
    const abandoned = find(left, 'ChallengeAbandoned');
    assert.ok(abandoned, 'ChallengeAbandoned');
    assert.equal(abandoned.data.failures.toNumber(), 1);
    const penalty = find(left, 'Penalized');
    assert.ok(penalty && penalty.data.amount.toBigInt() > 0n, 'Penalized');
    const heldAfter = (await api.query.syncRegistry.nodes(charlie.address)).unwrap().deposit.toBigInt();
    assert.equal(heldAfter, heldBefore - penalty.data.amount.toBigInt());
    await ok(api.tx.syncRegistry.joinSegment(0), charlie);
    const holding = (await api.query.syncRegistry.holdings(0, charlie.address)).unwrap();
    assert.equal(holding.failures.toNumber(), 1, 'the failure count survives leave and rejoin');
  });

  test('owners cannot leave; a Replica announces leave and cannot deregister early', async () => {
    await fails(api.tx.syncRegistry.announceLeave(), alice, 'OwnsSegments');
    const left = await ok(api.tx.syncRegistry.announceLeave(), charlie);
    const ev = find(left, 'NodeLeaving');
    assert.ok(ev);
    const leaveAt = ev.data.leaveAt.toNumber();
    const delay = api.consts.syncRegistry.leaveDelay.toNumber();
    const window = api.consts.syncRegistry.challengeDelay.toNumber() + api.consts.syncRegistry.proofWindow.toNumber();
    assert.ok(delay > window, 'leave delay exceeds a challenge window');
    assert.ok(leaveAt > (await api.query.system.number()).toNumber());
    assert.equal((await api.query.syncRegistry.nodes(charlie.address)).unwrap().status.toString(), 'Leaving');
    await fails(api.tx.syncRegistry.deregisterNode(), charlie, 'LeaveDelayNotPassed');
    await fails(api.tx.syncRegistry.joinSegment(0), charlie, 'NodeLeaving');
  });
});
