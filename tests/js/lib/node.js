// Starts and stops `sync-node` processes for the suite. Every process started here is killed
// when its test ends, when the runner exits, and on SIGINT/SIGTERM, so a failing test never
// leaves a node behind.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';

const running = new Set();
/** Data-plane directories made for nodes (`--sync-data-dir`), removed with them. */
const dataDirs = new Set();

function removeDir(dir) {
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  dataDirs.delete(dir);
}

function killAll() {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  running.clear();
  for (const dir of [...dataDirs]) removeDir(dir);
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAll(); process.exit(130); });
}

/** Path of the node binary: $SYNC_NODE_BIN, else the release build in $CARGO_TARGET_DIR. */
export function nodeBinary() {
  if (process.env.SYNC_NODE_BIN) return process.env.SYNC_NODE_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/sync-registry/target');
  const bin = join(target, 'release', 'sync-node');
  if (!existsSync(bin)) throw new Error(`sync-node not found at ${bin}; build it or set SYNC_NODE_BIN`);
  return bin;
}

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `sync-node` with `args` plus free RPC, p2p and data-plane ports, and connects
 * polkadot.js to it. Returns { api, child, rpcPort, p2pPort, syncPort, syncKeyFile, logs, stop }.
 *
 * Unless `args` name one, the data plane gets its own `--sync-data-dir` (a temporary directory
 * removed with the node), so `syncKeyFile` is the node's data-plane key file: what
 * `sync-node key sign-peer-binding --sync-key-file` reads (`lib/peer.js`, `nodeBinding`).
 */
export async function startNode(args = ['--dev', '--tmp'], { readyTimeoutMs = 180_000, p2pPort: fixedP2p } = {}) {
  const rpcPort = await freePort();
  const p2pPort = fixedP2p ?? await freePort();
  const syncPort = await freePort();
  const given = args.indexOf('--sync-data-dir');
  let syncDataDir;
  if (given >= 0) {
    syncDataDir = args[given + 1];
  } else {
    syncDataDir = mkdtempSync(join(tmpdir(), 'sync-node-js-'));
    dataDirs.add(syncDataDir);
  }
  const ownDir = given < 0;
  const fullArgs = [
    ...args,
    ...(ownDir ? ['--sync-data-dir', syncDataDir] : []),
    '--rpc-port', String(rpcPort),
    '--port', String(p2pPort),
    '--sync-listen-addr', `/ip4/127.0.0.1/tcp/${syncPort}`,
    // Prometheus only where a test asks for it (`--prometheus-port`).
    ...(args.includes('--prometheus-port') ? [] : ['--no-prometheus']),
    '--no-telemetry',
    '--no-mdns',
    '--rpc-cors', 'all',
  ];
  const child = spawn(nodeBinary(), fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const logs = [];
  const keep = (chunk) => {
    logs.push(chunk.toString());
    if (logs.length > 400) logs.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; running.delete(child); });

  const stop = async () => {
    if (!exited) {
      child.kill('SIGINT');
      const deadline = Date.now() + 10_000;
      while (!exited && Date.now() < deadline) await sleep(100);
      if (!exited) child.kill('SIGKILL');
      running.delete(child);
    }
    if (ownDir) removeDir(syncDataDir);
  };

  const deadline = Date.now() + readyTimeoutMs;
  let api;
  let provider;
  while (!api) {
    if (exited) {
      throw new Error(`sync-node exited early (${JSON.stringify(exited)}):\n${logs.join('').slice(-4000)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`sync-node RPC not ready after ${readyTimeoutMs} ms:\n${logs.join('').slice(-4000)}`);
    }
    try {
      provider = new WsProvider(`ws://127.0.0.1:${rpcPort}`, false);
      await provider.connect();
      await waitFor(() => provider.isConnected, 2_000);
      api = await ApiPromise.create({ provider, throwOnConnect: true, noInitWarn: true });
    } catch {
      await sleep(500);
    }
  }
  return {
    api, provider, child, rpcPort, p2pPort, syncPort, logs,
    syncKeyFile: join(syncDataDir, 'network-key'),
    /** Calls a JSON-RPC method polkadot.js does not decorate (the node's `sync_*` methods). */
    rpc: (method, params = []) => provider.send(method, params),
    stop: async () => { try { await api.disconnect(); } catch { /* ignore */ } await stop(); },
  };
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(pred, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timeout');
    await sleep(50);
  }
}

/** Resolves with the first best-block number >= n (via subscription). */
export function waitForBlock(api, n, timeoutMs = 60_000) {
  return subscribeUntil(api.rpc.chain.subscribeNewHeads, (h) => h.number.toNumber() >= n, timeoutMs, 'block');
}

/** Resolves with the first finalized block number >= n. */
export function waitForFinalized(api, n, timeoutMs = 90_000) {
  return subscribeUntil(api.rpc.chain.subscribeFinalizedHeads, (h) => h.number.toNumber() >= n, timeoutMs, 'finalized block');
}

function subscribeUntil(subscribe, pred, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let unsub;
    const timer = setTimeout(() => { unsub?.(); reject(new Error(`timeout waiting for ${what}`)); }, timeoutMs);
    subscribe((h) => {
      if (pred(h)) {
        clearTimeout(timer);
        unsub?.();
        resolve(h.number.toNumber());
      }
    }).then((u) => { unsub = u; }, reject);
  });
}

/**
 * Signs and submits `tx`, resolving when it is in a block with
 * { events, dispatchError: {section, name, docs} | null, blockHash }.
 *
 * A node's off-chain worker submits transactions for the node's own account (root commits,
 * claims), so a test signing with the same account can lose a nonce race: the pool then
 * refuses ours ("Priority is too low") or drops it once theirs is in. Those are retried with a
 * fresh nonce; every other refusal is thrown.
 */
export async function submit(api, tx, signer, timeoutMs = 60_000) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      // A signed extrinsic is rebuilt from its call for a retry (fresh nonce and signature).
      return await submitOnce(api, attempt === 1 ? tx : api.tx(tx.method), signer, timeoutMs);
    } catch (e) {
      const race = /Priority is too low|outdated|stale|transaction (Usurped|Dropped|Invalid)/i.test(e.message);
      if (!race || attempt >= 5) throw e;
      await sleep(1500);
    }
  }
}

function submitOnce(api, tx, signer, timeoutMs) {
  return new Promise((resolve, reject) => {
    let unsub;
    const timer = setTimeout(() => { unsub?.(); reject(new Error('timeout waiting for inclusion')); }, timeoutMs);
    tx.signAndSend(signer, { nonce: -1 }, ({ status, events, dispatchError }) => {
      if (status.isInBlock) {
        clearTimeout(timer);
        unsub?.();
        let err = null;
        if (dispatchError) {
          if (dispatchError.isModule) {
            const meta = api.registry.findMetaError(dispatchError.asModule);
            err = { section: meta.section, name: meta.name, docs: meta.docs.join(' ') };
          } else {
            err = { section: 'dispatch', name: dispatchError.toString(), docs: '' };
          }
        }
        resolve({ events, dispatchError: err, blockHash: status.asInBlock.toHex() });
      } else if (status.isInvalid || status.isDropped || status.isUsurped) {
        clearTimeout(timer);
        unsub?.();
        reject(new Error(`transaction ${status.type}`));
      }
    }).then((u) => { unsub = u; }, (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Polls `check` (async, returns a value or a falsy one) every `everyMs` until it returns a truthy value. */
export async function eventually(check, { timeoutMs = 120_000, everyMs = 1000, what = 'condition', logs } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timeout waiting for ${what}${logs ? `:\n${logs.join('').slice(-4000)}` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** Authorities need a persistent network key; a fresh one per test node. */
export function nodeKey() {
  return ['--node-key', randomBytes(32).toString('hex')];
}

/**
 * Starts the `local` chain's three authorities (Alice, Bob, Charlie) on loopback, each with
 * the extra arguments given, Bob and Charlie booting from Alice. Returns the three nodes.
 */
export async function startLocalNetwork(extra = [[], [], []]) {
  const nodes = [];
  try {
    nodes.push(await startNode(['--chain', 'local', '--alice', '--tmp', ...nodeKey(), ...extra[0]]));
    const peerId = (await nodes[0].api.rpc.system.localPeerId()).toString();
    const boot = `/ip4/127.0.0.1/tcp/${nodes[0].p2pPort}/p2p/${peerId}`;
    for (const [i, who] of ['--bob', '--charlie'].entries()) {
      nodes.push(await startNode(['--chain', 'local', who, '--tmp', ...nodeKey(), '--bootnodes', boot, ...extra[i + 1]]));
    }
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
  return nodes;
}
