// End-to-end: the sync service inside `sync-node` — the data plane starts with the node, is
// bound to the on-chain registration by its peer id, and follows what the chain assigns it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { base58Decode, cryptoWaitReady } from '@polkadot/util-crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, nodeBinary, sleep, startNode, submit, waitForBlock } from './lib/node.js';
import { nodeBinding, verifyBinding } from './lib/peer.js';

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
  let bob;
  let segment;
  let http;

  before(async () => {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519' });
    alice = keyring.addFromUri('//Alice');
    bob = keyring.addFromUri('//Bob');
    const httpPort = await freePort();
    http = `http://127.0.0.1:${httpPort}/v1/segments`;
    node = await startNode(['--dev', '--tmp', '--sync-http-addr', `127.0.0.1:${httpPort}`, '--sync-http-max-object', String(12 << 20)]);
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
    // Sync health says why, machine-readable, in the RPC and on the HTTP port, and the log
    // named it once.
    const base = http.replace('/v1/segments', '');
    const waitHealth = async (what, ok) => {
      for (let i = 0; i < 100; i++) {
        const h = await node.rpc('sync_health', []);
        if (ok(h)) return h;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.fail(`sync_health never showed ${what}`);
    };
    const codes = (h) => h.reasons.map((r) => r.code);
    const unregistered = await waitHealth('not_registered', (h) => codes(h).includes('not_registered'));
    assert.deepEqual([unregistered.status, codes(unregistered)], ['degraded', ['not_registered']]);
    await logLine(node, /health: no node is registered on chain with this data plane's peer id \(not_registered\)/);
    const live = await fetch(`${base}/health`);
    assert.equal(live.status, 200, 'degraded is alive');
    assert.equal((await live.json()).reasons[0].code, 'not_registered');
    assert.equal((await fetch(`${base}/health/ready`)).status, 503, 'but not ready');

    // The binding comes from the node's own key (`sync-node key sign-peer-binding`); it is
    // what the chain's rule (lib/peer.js) says, and good for Alice only.
    const binding = nodeBinding(node, alice.address);
    assert.deepEqual([binding.peerId, binding.peerIdHex], [peer, u8aToHex(base58Decode(peer))]);
    assert.ok(verifyBinding(api.genesisHash, alice.address, binding.peerIdHex, binding.signature), 'a valid binding for Alice');
    assert.ok(!verifyBinding(api.genesisHash, bob.address, binding.peerIdHex, binding.signature), 'not one for Bob');
    const stolen = await submit(api, api.tx.syncRegistry.registerNode('Primary', binding.peerIdHex, [addr], binding.signature), bob);
    assert.equal(stolen.dispatchError?.name, 'BadPeerSignature', 'Bob cannot register the node with Alice\'s binding');
    const reg = await submit(api, api.tx.syncRegistry.registerNode('Primary', binding.peerIdHex, [addr], binding.signature), alice);
    assert.equal(reg.dispatchError, null);
    const created = await submit(api, api.tx.syncRegistry.createSegment(), alice);
    assert.equal(created.dispatchError, null);
    const ev = created.events.find(({ event }) => event.method === 'SegmentCreated').event;
    const id = ev.data.segment.toNumber();
    segment = id;
    // The service reads the registry on finalized blocks and takes the segment on as its owner.
    await logLine(node, new RegExp(`segment ${id}: owner: serving and accepting writes \\(1 holders on chain\\)`));
    // Registered (loopback is fine on --dev), a sync key in the keystore, owning its segment.
    const healthy = await waitHealth('healthy', (h) => h.status === 'healthy' && h.segments.some((x) => x.segment === id));
    assert.deepEqual(healthy.reasons, []);
    const mine = healthy.segments.find((x) => x.segment === id);
    assert.deepEqual([mine.commitsBehind, mine.seqsBehind], [0, 0]);
    assert.equal((await fetch(`${base}/health/ready`)).status, 200);

    // The object API: put into the owned segment, read it back, see it in the status.
    const { rpc } = node;
    const data = u8aToHex(new TextEncoder().encode('hello, segment'));
    const put = await rpc('sync_put', [id, 'greeting', data]);
    assert.equal(put.seq, 1);
    assert.equal(put.entries, 1);
    const got = await rpc('sync_get', [id, 'greeting']);
    assert.equal(got.data, data);
    assert.equal(got.size, 14);
    assert.equal(await rpc('sync_get', [id, 'missing']), null);
    const status = await rpc('sync_status', []);
    assert.equal(status.peerId, peer);
    const seg = status.segments.find((s) => s.segment === id);
    assert.deepEqual([seg.owner, seg.stage, seg.seq, seg.root], [true, 'owner', 1, put.root]);
    // Clear errors, nothing written: a segment this node does not own, data that is not hex.
    await assert.rejects(rpc('sync_put', [id + 1, 'k', data]), /does not own segment/);
    await assert.rejects(rpc('sync_put', [id, 'k', '0xzz']), /not hex/);
    assert.equal((await rpc('sync_status', [])).segments.find((s) => s.segment === id).seq, 1);

    // The same through `sync-node put | get | status` against the node's RPC port.
    const dir = mkdtempSync(join(tmpdir(), 'sync-cli-'));
    const file = join(dir, 'in.bin');
    const bytes = Buffer.alloc(100_000).map((_, i) => (i * 7) % 251);
    writeFileSync(file, bytes);
    const cli = (...args) => execFileSync(nodeBinary(), [...args, '--rpc', `127.0.0.1:${node.rpcPort}`], { stdio: 'pipe' });
    const written = JSON.parse(cli('put', '--segment', String(id), '--key', 'big.bin', file).toString());
    assert.equal(written.seq, 2);
    cli('get', '--segment', String(id), '--key', 'big.bin', '--out', join(dir, 'out.bin'));
    assert.deepEqual(readFileSync(join(dir, 'out.bin')), bytes);
    const st = JSON.parse(cli('status').toString());
    assert.deepEqual([st.peerId, st.segments.find((s) => s.segment === id).seq], [peer, 2]);
    assert.throws(() => cli('put', '--segment', String(id + 1), '--key', 'k', file), (e) => /does not own segment/.test(e.stderr.toString()));
  });

  test('`sync-node key` keeps Substrate\'s utilities; sign-peer-binding refuses bad input', () => {
    const key = (...args) => execFileSync(nodeBinary(), ['key', ...args], { stdio: 'pipe' });
    const inspected = JSON.parse(key('inspect', '--output-type', 'json', '//Alice').toString());
    assert.equal(inspected.ss58Address, alice.address);
    const genesis = api.genesisHash.toHex();
    const sign = (...args) => key('sign-peer-binding', '--account', alice.address, ...args);
    // The same binding for an account given as SS58 or as hex, from --sync-key-file or the
    // --sync-data-dir the key file is in.
    const bySs58 = JSON.parse(sign('--genesis-hash', genesis, '--sync-key-file', node.syncKeyFile).toString());
    const byHex = JSON.parse(key('sign-peer-binding', '--account', u8aToHex(alice.publicKey), '--genesis-hash', genesis,
      '--sync-data-dir', dirname(node.syncKeyFile)).toString());
    assert.deepEqual(byHex, bySs58);
    const refused = (args, re) => assert.throws(() => sign(...args), (e) => re.test(e.stderr.toString()));
    refused(['--genesis-hash', '0x1234', '--sync-key-file', node.syncKeyFile], /--genesis-hash/);
    refused(['--genesis-hash', genesis, '--sync-key-file', join(tmpdir(), 'no-such-sync-key')], /data-plane key/);
    assert.throws(() => key('sign-peer-binding', '--account', 'not-an-account', '--genesis-hash', genesis,
      '--sync-key-file', node.syncKeyFile), (e) => /--account/.test(e.stderr.toString()));
  });

  test('the HTTP object API streams objects of any size and refuses bad requests', async () => {
    const id = segment;
    const big = randomBytes(6 << 20);
    const put = await fetch(`${http}/${id}/objects/videos%2Fclip.bin`, { method: 'PUT', body: big });
    assert.equal(put.status, 200, await put.clone().text());
    const written = await put.json();
    assert.equal(written.size, big.length);
    const got = await fetch(`${http}/${id}/objects/videos%2Fclip.bin`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('x-sync-cid'), written.cid);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(big), 'same bytes back');
    // The key is the percent-decoded path: JSON-RPC sees the same object (and refuses it: > 4 MiB).
    await assert.rejects(node.rpc('sync_get', [id, 'videos/clip.bin']), /larger than/);
    const status = (await node.rpc('sync_status', [])).segments.find((s) => s.segment === id);
    assert.equal(status.seq, written.seq);
    // Clear errors, nothing written.
    const missing = await fetch(`${http}/${id}/objects/nope`);
    assert.equal(missing.status, 404);
    assert.match((await missing.json()).error, /no such object/);
    const notOwned = await fetch(`${http}/${id + 1}/objects/k`, { method: 'PUT', body: 'x' });
    assert.equal(notOwned.status, 403);
    assert.match((await notOwned.json()).error, /does not own segment/);
    const tooBig = await fetch(`${http}/${id}/objects/huge`, { method: 'PUT', body: Buffer.alloc((12 << 20) + 1) });
    assert.equal(tooBig.status, 413);
    // `sync-node put | get --http` stream files through the same API (9 MiB here).
    const dir = mkdtempSync(join(tmpdir(), 'sync-http-'));
    writeFileSync(join(dir, 'in.bin'), randomBytes(9 << 20));
    const cli = (...args) => execFileSync(nodeBinary(), [...args, '--http', http.replace('http://', '').replace('/v1/segments', '')], { stdio: 'pipe' });
    const viaCli = JSON.parse(cli('put', '--segment', String(id), '--key', 'cli/big file.bin', join(dir, 'in.bin')).toString());
    assert.equal(viaCli.size, 9 << 20);
    cli('get', '--segment', String(id), '--key', 'cli/big file.bin', '--out', join(dir, 'out.bin'));
    assert.ok(readFileSync(join(dir, 'out.bin')).equals(readFileSync(join(dir, 'in.bin'))));
    assert.throws(() => cli('get', '--segment', String(id), '--key', 'absent'), (e) => /404: no such object/.test(e.stderr.toString()));
    written.seq = viaCli.seq;
    const badPath = await fetch(`${http.replace('/v1/segments', '')}/nothing`);
    assert.equal(badPath.status, 404);
    assert.equal((await node.rpc('sync_status', [])).segments.find((s) => s.segment === id).seq, written.seq);
  });
});
