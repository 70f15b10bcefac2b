// scripts/local-net.sh: `up --replicas 1` starts the `local` chain's three authorities and a
// non-authority Replica (Dave, his `sync` key inserted by the script), all with data plane,
// HTTP object API and Prometheus, and registering themselves; the suite checks the state it
// writes and what it prints, that every node registered with its own peer id (read through
// the typed client's `sync_*` RPC definitions), and that Dave follows a segment he joins and is
// `Active`; `status` reports every node; `down` stops every process and removes the directory.
// The `after` hook runs `down` too, then kills any pid left, so a failure leaves no node behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import {
  createSegment, joinSegment, peerIdToHex, put, rpc, waitForHolding, waitForNode,
} from '../../clients/js/index.js';
import { eventually, nodeBinary } from './lib/node.js';

const script = fileURLToPath(new URL('../../scripts/local-net.sh', import.meta.url));
/** Nodes of `up --replicas 1`: three authorities and Dave; five ports each. */
const NODES = 4;

function run(args, timeoutMs = 240_000) {
  return new Promise((resolve) => {
    execFile('bash', [script, ...args], { env: { ...process.env, SYNC_NODE_BIN: nodeBinary() }, timeout: timeoutMs },
      (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 'signal') : 0, stdout, stderr }));
  });
}

/** Whether TCP `port` can be bound on loopback now. */
function bindable(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A running, not zombie, process. */
function alive(pid) {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('scripts/local-net.sh', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'sync-local-net-test-')), 'net');
  let up;
  let nodes = [];
  let api;
  let dave;
  const apis = [];

  const readState = () => readFileSync(join(dir, 'network.tsv'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [name, role, account, authority, pid, rpcPort, p2p, data, http, prometheus] = l.split('\t');
      return { name, role, account, authority, pid: Number(pid), rpcPort: Number(rpcPort), p2p, data: Number(data), http: Number(http), prometheus: Number(prometheus) };
    });

  // The runner's exit (also after SIGINT/SIGTERM, which lib/node.js turns into process.exit)
  // skips `after`: kill the network's pids there too. Its nodes run in their own sessions.
  const killLeft = () => {
    try {
      for (const { pid } of existsSync(join(dir, 'network.tsv')) ? readState() : nodes) {
        if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    } catch { /* best effort */ }
    rmSync(join(dir, '..'), { recursive: true, force: true });
  };
  process.on('exit', killLeft);

  before(async () => {
    await cryptoWaitReady();
    // Five consecutive ports per node, away from the OS's ephemeral range the other suites use.
    for (let attempt = 0; attempt < 5 && !up; attempt++) {
      const base = 21_000 + 5 * Math.floor(Math.random() * 1_800);
      const ports = Array.from({ length: 5 * NODES }, (_, i) => base + i);
      if (!(await Promise.all(ports.map(bindable))).every(Boolean)) continue;
      const r = await run(['up', '--replicas', '1', '--dir', dir, '--base-port', String(base), '--wait', '--', '--sync-commit-every', '2']);
      if (r.code !== 0 && /already in use/.test(r.stderr)) continue;
      assert.equal(r.code, 0, `up failed:\n${r.stderr}`);
      up = { ...r, base };
    }
    assert.ok(up, 'no free port range found');
    nodes = readState();
    const connect = async (port) => {
      const a = await ApiPromise.create({ provider: new WsProvider(`ws://127.0.0.1:${port}`), rpc, noInitWarn: true });
      apis.push(a);
      return a;
    };
    api = await connect(nodes[0].rpcPort);
    dave = await connect(nodes[3].rpcPort);
  });

  after(async () => {
    await Promise.all(apis.map((a) => a.disconnect().catch(() => {})));
    if (nodes.length === 0 && existsSync(join(dir, 'network.tsv'))) nodes = readState();
    if (existsSync(dir)) await run(['down', '--dir', dir]);
    killLeft();
  });

  test('up starts three authorities and a Replica, records them and prints their endpoints', () => {
    assert.deepEqual(nodes.map((n) => [n.name, n.role, n.account, n.authority]), [
      ['alice', 'Primary', '//Alice', 'yes'],
      ['bob', 'Replica', '//Bob', 'yes'],
      ['charlie', 'Primary', '//Charlie', 'yes'],
      ['dave', 'Replica', '//Dave', 'no'],
    ]);
    for (const [i, n] of nodes.entries()) {
      assert.ok(alive(n.pid), `${n.name} runs`);
      assert.equal(n.rpcPort, up.base + 5 * i, 'consecutive ports from the base port');
      assert.ok(up.stdout.includes(`https://polkadot.js.org/apps/?rpc=ws%3A%2F%2F127.0.0.1%3A${n.rpcPort}#/explorer`), `${n.name}'s Apps link`);
      assert.ok(up.stdout.includes(`http://127.0.0.1:${n.prometheus}/metrics`));
      assert.ok(up.stdout.includes(`http://127.0.0.1:${n.http}/v1/segments/`));
    }
    const prom = readFileSync(join(dir, 'prometheus.yml'), 'utf8');
    assert.ok(nodes.every((n) => prom.includes(`"127.0.0.1:${n.prometheus}"`)), prom);
    assert.match(prom, /deploy\/prometheus\/alerts\.yml/);
  });

  test('a second up on the same directory is refused while it runs', async () => {
    const again = await run(['up', '--dir', dir, '--base-port', String(up.base + 5 * NODES + 100)]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already running/);
  });

  test('every node registered itself with its own data-plane peer id', async () => {
    const keyring = new Keyring({ type: 'sr25519' });
    for (const n of nodes) {
      const who = keyring.addFromUri(n.account);
      const info = await waitForNode(api, who.address, 30_000);
      assert.equal(info.role.toString(), n.role, n.name);
      const provider = new WsProvider(`ws://127.0.0.1:${n.rpcPort}`);
      try {
        await provider.isReady;
        const { peerId } = await provider.send('sync_status', []);
        assert.equal(info.peerId.toHex(), peerIdToHex(peerId), `${n.name}: the peer id of its data plane`);
      } finally {
        await provider.disconnect();
      }
      assert.equal(api.createType('Text', info.multiaddrs[0]).toString(), `/ip4/127.0.0.1/tcp/${n.data}`);
    }
  });

  test('Dave, a non-authority Replica, follows the segment he joins and is Active', async () => {
    const keyring = new Keyring({ type: 'sr25519' });
    const [alice, daveKey] = ['//Alice', '//Dave'].map((u) => keyring.addFromUri(u));
    const t0 = Date.now();
    const { segment } = await createSegment(api, alice);
    // Dave joins at once: his node follows the segment from its first commit on.
    await joinSegment(api, daveKey, segment);
    await waitForHolding(api, segment, daveKey.address, 'Syncing', 10_000);
    const data = u8aToHex(randomBytes(20_000));
    const written = await put(api, segment, 'hello.bin', data, { retryMs: 90_000 });
    const t1 = Date.now();
    const holding = await waitForHolding(api, segment, daveKey.address, 'Active', 150_000);
    console.log(`[measure] segment created, joined and written in ${((t1 - t0) / 1000).toFixed(0)} s; Dave Active ${((Date.now() - t1) / 1000).toFixed(0)} s later`);
    assert.ok(holding.proven.unwrap().seq.toNumber() >= 1);
    // Through the client's RPC definitions (`api.rpc.sync.*`), on Dave's node.
    const got = await dave.rpc.sync.get(segment, 'hello.bin');
    assert.equal(got.unwrap().toJSON().data, data);
    const seg = (await dave.rpc.sync.status()).toJSON().segments.find((s) => s.segment === segment);
    assert.deepEqual([seg.owner, seg.seq, seg.root], [false, written.seq, written.root]);
    await eventually(async () => (await dave.rpc.sync.status()).toJSON().segments.find((s) => s.segment === segment)?.chainStatus === 'Active',
      { what: 'Dave reports Active', timeoutMs: 30_000 });
    const health = (await dave.rpc.sync.health()).toJSON();
    assert.ok(['healthy', 'degraded'].includes(health.status), JSON.stringify(health));
  });

  test('status reports every node alive with its sync_health', async () => {
    const r = await run(['status', '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of nodes) {
      assert.match(r.stdout, new RegExp(`^${n.name} +${n.role} +${n.pid} +alive +(healthy|degraded) `, 'm'));
    }
    assert.equal((r.stdout.match(/^ {2}sync_health \{/gm) ?? []).length, NODES);
  });

  test('down stops every node and removes the directory', async () => {
    await Promise.all(apis.splice(0).map((a) => a.disconnect()));
    const r = await run(['down', '--dir', dir], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(dir), 'directory removed');
    for (const n of nodes) assert.ok(!alive(n.pid), `${n.name} (pid ${n.pid}) stopped`);
    const again = await run(['status', '--dir', dir]);
    assert.notEqual(again.code, 0, 'no network left');
  });
});
