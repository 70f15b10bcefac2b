// Benchmark (not a test): how much memory a dev node grows by, and how fast it stores, while N
// concurrent HTTP PUTs of SIZE bytes each arrive (the object API's "memory flat in the object's
// size" goal). Prints one JSON line. From tests/js:
//   SYNC_NODE_BIN=<binary> node bench/http-put.mjs [N=4] [SIZE=67108864]
import { readFileSync } from 'node:fs';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, freePort, submit, eventually } from '../lib/node.js';
const [n, size] = [Number(process.argv[2] || 4), Number(process.argv[3] || (64 << 20))];
await cryptoWaitReady();
const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
const port = await freePort();
const node = await startNode(['--dev', '--tmp', '--sync-http-addr', `127.0.0.1:${port}`, '--sync-register']);
await eventually(async () => !(await node.rpc('sync_health', [])).reasons.some((x) => x.code === 'not_registered' || x.code === 'waiting_for_chain'), { what: 'registered', timeoutMs: 120000 });
const r = await submit(node.api, node.api.tx.syncRegistry.createSegment(), alice);
const id = r.events.find(({ event: e }) => e.method === 'SegmentCreated').event.data.segment.toNumber();
await eventually(async () => (await node.rpc('sync_status', [])).segments.some((s) => s.segment === id && s.owner), { what: 'owner' });
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${node.child.pid}/status`, 'utf8'))[1]);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${node.child.pid}/status`, 'utf8'))[1]);
const before = rss();
const body = Buffer.alloc(size, 7);
const t = Date.now();
const res = await Promise.all([...Array(n).keys()].map((i) => fetch(`http://127.0.0.1:${port}/v1/segments/${id}/objects/k${i}`, { method: 'PUT', body: Buffer.concat([body, Buffer.from([i])]) }).then((x) => x.status)));
const secs = (Date.now() - t) / 1000;
console.log(JSON.stringify({ n, size, statuses: res, rssBeforeKiB: before, peakKiB: hwm(), growthMiB: ((hwm() - before) / 1024).toFixed(1), secs, mibPerSec: ((n * size) / (1 << 20) / secs).toFixed(1) }));
await node.stop();
process.exit(0);
