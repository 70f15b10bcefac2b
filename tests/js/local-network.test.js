// Three `sync-node` processes with the `local` chain spec (Alice, Bob and Charlie as
// authorities) on loopback: they connect and finalize; Alice's data plane is a Primary that
// commits its roots, and Bob's a Replica that follows, through the chain, the segment it
// joins, proves it through its off-chain worker and becomes Active. The calls go through the
// typed client (clients/js): registration with a base58 peer id, segments, objects, waits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady } from '@polkadot/util-crypto';
import { readFileSync } from 'node:fs';
import {
  SyncClientError, createSegment, get, health, joinSegment, put, registerNode, status, waitForHolding,
} from '../../clients/js/index.js';
import { eventually, freePort, sleep, startLocalNetwork, waitForFinalized } from './lib/node.js';
import { nodeBinding } from './lib/peer.js';

/** `promise`, its failure with the node's log tail. */
const withLogs = (promise, logs) => promise.catch((e) => {
  e.message += `:\n${logs.join('').slice(-4000)}`;
  throw e;
});


describe('three-node local network', () => {
  const nodes = [];
  const metricsPorts = [];

  before(async () => {
    // Prometheus on for Alice (the Primary) and Bob (the Replica): the dashboard's and the
    // alert rules' metrics are checked on them below.
    metricsPorts.push(await freePort(), await freePort());
    const prom = (i) => ['--prometheus-port', String(metricsPorts[i])];
    nodes.push(...await startLocalNetwork([['--sync-role', 'primary', '--sync-commit-every', '2', ...prom(0)], prom(1), []]));
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
    const authors = await nodes[0].api.query.babe.authorities();
    assert.equal(authors.length, 3);
  });

  test('a Replica follows the segment it joins, serves what the Primary wrote, proves it and is Active', async () => {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    const [alice, bob] = ['//Alice', '//Bob'].map((u) => keyring.addFromUri(u));
    const [a, b] = nodes;
    const { api } = a;
    // A running node's peer id is registered with the binding its own data-plane key signs
    // for the account (`sync-node key sign-peer-binding`, reading the node's key file); the
    // client takes the peer id in its text form (base58, as `sync_status` gives it).
    const register = async (n, who, role) => {
      const { peerId } = await status(n.api);
      const binding = nodeBinding(n, who.address);
      assert.equal(binding.peerId, peerId, 'the CLI signs with the key the node runs with');
      assert.equal(binding.peerIdHex, u8aToHex(base58Decode(peerId)));
      const r = await registerNode(api, who, { role, peerId, addresses: [`/ip4/127.0.0.1/tcp/${n.syncPort}`], signature: binding.signature });
      assert.equal(r.peerId, binding.peerIdHex, 'the client converts the base58 peer id');
      assert.equal(r.event.data.peerId.toHex(), binding.peerIdHex, 'NodeRegistered names it');
    };
    await register(a, alice, 'Primary');
    await register(b, bob, 'Replica');
    const { segment: id } = await createSegment(api, alice);

    // Writes go to the owner once its service has seen the segment on a finalized block.
    const data = u8aToHex(randomBytes(40_000));
    const written = await put(a.api, id, 'photo.jpg', data, { retryMs: 90_000 });
    await joinSegment(api, bob, id);
    // Bob's service follows the segment (snapshot of the Primary's pin) and serves the object.
    let got = null;
    for (const deadline = Date.now() + 120_000; !got; await sleep(1000)) {
      got = await get(b.api, id, 'photo.jpg');
      if (Date.now() > deadline) assert.fail(`Replica has nothing:\n${b.logs.join('').slice(-3000)}`);
    }
    assert.equal(got.data, data);
    const seg = (await status(b.api)).segments.find((s) => s.segment === id);
    assert.deepEqual([seg.owner, seg.stage, seg.seq, seg.root], [false, 'following', written.seq, written.root]);
    await assert.rejects(put(b.api, id, 'x', '0x00'), (e) => e instanceof SyncClientError && e.code === 'Rpc'
      && e.errorName === 'NotOwner' && /does not own/.test(e.message));

    // Alice's service commits its root; Bob's claims it, and his off-chain worker answers the
    // challenge with a proof built from his store: the chain marks him Active.
    const holding = await withLogs(waitForHolding(api, id, bob.address, 'Active', 180_000), b.logs);
    // How long a proof takes to build and land (#13): blocks from the seed block to the
    // proof's inclusion, on this three-authority network (the service proves once the seed
    // block is final; the off-chain worker submits it).
    const head = (await api.rpc.chain.getHeader()).number.toNumber();
    let issued;
    let provenAt;
    for (let n = Math.max(1, head - 100); n <= head && provenAt === undefined; n++) {
      for (const { event } of await api.query.system.events.at(await api.rpc.chain.getBlockHash(n))) {
        if (event.section !== 'syncRegistry' || !event.data.who?.eq(bob.address)) continue;
        if (event.method === 'ChallengeIssued') {
          issued = { at: n, seed: event.data.seedBlock.toNumber(), deadline: event.data.deadline.toNumber() };
        }
        if (event.method === 'SyncProven' && issued) provenAt = n;
      }
    }
    assert.ok(issued && provenAt !== undefined, 'the claim and its proof are on chain');
    console.log(`[measure] claim in block ${issued.at}, seed block ${issued.seed}, proof included in block ${provenAt}: `
      + `${provenAt - issued.seed} blocks after the seed (window ends at ${issued.deadline})`);
    assert.ok(provenAt > issued.seed && provenAt <= issued.deadline, 'proved inside the window');
    const proven = holding.proven.unwrap();
    const roots = await api.query.syncRegistry.roots(id);
    assert.ok(roots.some((r) => r.seq.eq(proven.seq) && r.facts.root.eq(proven.facts.root)), 'proved a committed root');
    assert.ok(proven.seq.toNumber() >= 1);
    const node = await api.query.syncRegistry.nodes(bob.address);
    assert.equal(node.unwrap().status.toString(), 'Active');
    // The node's status RPC reports what the chain says of its holding.
    await eventually(async () => (await status(b.api)).segments.find((s) => s.segment === id)?.chainStatus === 'Active',
      { what: 'sync_status chainStatus Active' });
    // And its sync health says so: no reason left once it is Active and caught up.
    const healthy = await eventually(async () => {
      const h = await health(b.api);
      return h.status === 'healthy' && h;
    }, { what: 'Bob healthy', timeoutMs: 60_000, logs: b.logs });
    assert.equal(healthy.segments.find((s) => s.segment === id).chainStatus, 'Active');
  });

  test('every metric the dashboard and the alert rules use is exported', async () => {
    const scraped = new Set();
    for (const port of metricsPorts) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const line of text.split('\n')) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
        if (m) scraped.add(m[1]);
      }
    }
    const deploy = new URL('../../deploy/', import.meta.url);
    const used = new Set();
    for (const file of ['grafana/sync-dashboard.json', 'prometheus/alerts.yml']) {
      const text = readFileSync(new URL(file, deploy), 'utf8');
      for (const [name] of text.matchAll(/\bsync_[a-z0-9_]+\b/g)) used.add(name);
    }
    // (The dashboard's uid and title are not metric names.)
    used.delete('sync_registry');
    assert.ok(used.size >= 15, `the files name ${used.size} metrics`);
    const missing = [...used].filter((n) => !scraped.has(n));
    assert.deepEqual(missing, [], `used by deploy/ but not exported: ${missing.join(', ')}`);
    // Some figures in the Replica's series, after its sync.
    const bob = await (await fetch(`http://127.0.0.1:${metricsPorts[1]}/metrics`)).text();
    // (Substrate's registry adds a `chain` label to every series.)
    assert.match(bob, /^sync_duty_holdings\{[^}]*status="Active"[^}]*\} 1$/m);
    assert.match(bob, /^sync_health_status(\{[^}]*\})? 0$/m);
  });
});
