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
import { join } from 'node:path';
import { nodeBinary, sleep, startNode, submit, waitForBlock } from './lib/node.js';

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
    assert.deepEqual([seg.owner, seg.seq, seg.root], [true, 1, put.root]);
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
});
