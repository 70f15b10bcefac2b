// The typed client (clients/js) without a node: peer ids from base58, the sync_* RPC
// definitions as polkadot.js reads them, errors decoded from what signAndSend and the RPC
// report (with the RPC error's data), and `putFollowing` against fake nodes (following a
// Handover or NotOwner to the owner it names, retrying Behind, giving up). The suites against
// nodes (local-network, migration, local-net) use it for real.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { u8aToHex } from '@polkadot/util';
import { base58Decode as refBase58Decode, base58Encode } from '@polkadot/util-crypto';
// How polkadot.js turns a JSON-RPC error response into the error it throws (its RpcError, with
// `code` and `data`): the coder of @polkadot/rpc-provider, which @polkadot/api depends on.
import { RpcCoder } from '@polkadot/rpc-provider/coder';
import {
  RPC_ERRORS, SyncClientError, base58Decode, call, decodeDispatchError, get, peerIdToHex, put,
  putFollowing, registerNode, rpc, syncRpc,
} from '../../clients/js/index.js';

/** The peer id of node key `…01` (docs/node.md). */
const PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp';

/** The error polkadot.js throws for a JSON-RPC error response `{ code, message, data }`. */
function rpcError(code, message, data) {
  try {
    new RpcCoder().decodeResponse({ jsonrpc: '2.0', id: 1, error: { code, message, ...(data === undefined ? {} : { data }) } });
  } catch (e) {
    return e;
  }
  throw new Error('no error decoded');
}

/**
 * A fake node for `putFollowing`: a provider whose `sync_status` gives `peerId` and whose
 * `sync_put` answers with `onPut(params)` (a result, or an error thrown as polkadot.js would).
 * `puts` counts its `sync_put` calls.
 */
function fakeNode(peerId, onPut) {
  const node = {
    puts: 0,
    statusCalls: 0,
    send: async (method, params) => {
      if (method === 'sync_status') {
        node.statusCalls += 1;
        return { peerId, peers: { usable: 2, cooling: 0, banned: 0 }, segments: [] };
      }
      assert.equal(method, 'sync_put');
      node.puts += 1;
      return onPut(params);
    },
  };
  return node;
}
const head = (seq) => ({ seq, root: `0x${'ab'.repeat(32)}`, entries: seq, bytes: 10 * seq });
const OTHER = '12D3KooWNotAmongTheEndpoints';

describe('typed client', () => {
  test('base58 peer ids decode as @polkadot/util-crypto does, to the binary form the pallet stores', () => {
    assert.equal(u8aToHex(base58Decode(PEER)), u8aToHex(refBase58Decode(PEER)));
    const hex = peerIdToHex(PEER);
    assert.match(hex, /^0x002408011220[0-9a-f]{64}$/, 'an Ed25519 identity multihash');
    for (let i = 0; i < 50; i++) {
      const bytes = randomBytes(1 + (i % 40));
      if (i % 5 === 0) bytes[0] = 0; // leading zero bytes are leading '1's
      assert.equal(u8aToHex(base58Decode(base58Encode(bytes))), u8aToHex(bytes));
    }
    assert.equal(peerIdToHex(hex.toUpperCase().replace('0X', '0x')), hex, 'hex is accepted');
    assert.equal(peerIdToHex(refBase58Decode(PEER)), hex, 'bytes are accepted');
    for (const bad of ['', '12D3KooW0OIl', 'Qm', '0x0g']) {
      assert.throws(() => peerIdToHex(bad), (e) => e instanceof SyncClientError && e.code === 'Input', bad);
    }
  });

  test('the sync_* definitions are in polkadot.js rpc format and their types exist', async () => {
    assert.deepEqual(Object.keys(rpc), ['sync']);
    assert.equal(rpc.sync, syncRpc);
    assert.deepEqual(Object.keys(syncRpc).sort(), ['get', 'health', 'put', 'status']);
    assert.deepEqual(syncRpc.put.params.map((p) => p.name), ['segment', 'key', 'data']);
    assert.deepEqual(syncRpc.get.params.map((p) => p.name), ['segment', 'key']);
    // A registry without a connection (the provider never connects): every type resolves, and
    // params encode to what the node parses (a number, a string, hex).
    const api = new ApiPromise({ provider: new WsProvider('ws://127.0.0.1:9', false), noInitWarn: true });
    try {
      for (const def of Object.values(syncRpc)) {
        assert.equal(typeof def.description, 'string');
        api.registry.createType(def.type);
        for (const p of def.params) api.registry.createType(p.type);
      }
      assert.deepEqual(['u64', 'Text', 'Bytes'].map((t, i) => api.registry.createType(t, [7, 'a.bin', '0xc0ffee'][i]).toJSON()),
        [7, 'a.bin', '0xc0ffee']);
      assert.ok(api.registry.createType('Option<Json>', null).isNone, 'an absent object');
      const found = api.registry.createType('Option<Json>', { cid: '0x01', size: 1, data: '0x00' });
      assert.deepEqual(found.unwrap().toJSON(), { cid: '0x01', size: 1, data: '0x00' });
    } finally {
      await api.disconnect();
    }
  });

  test('dispatch errors decode to the pallet error name', () => {
    const registry = {
      findMetaError: (m) => {
        assert.deepEqual(m, { index: 8, error: '0x0e000000' });
        return { section: 'syncRegistry', name: 'NotOwner', docs: ['The caller is neither the segment\'s owner nor Root.'] };
      },
    };
    const mod = decodeDispatchError(registry, { isModule: true, asModule: { index: 8, error: '0x0e000000' } });
    assert.deepEqual(mod, { section: 'syncRegistry', errorName: 'NotOwner', docs: 'The caller is neither the segment\'s owner nor Root.' });
    assert.deepEqual(decodeDispatchError(registry, { isModule: false, type: 'BadOrigin' }),
      { section: 'dispatch', errorName: 'BadOrigin', docs: '' });
    assert.deepEqual(decodeDispatchError(registry, { isModule: false, isToken: true, asToken: { type: 'FundsUnavailable' }, type: 'Token' }),
      { section: 'dispatch', errorName: 'Token.FundsUnavailable', docs: '' });
  });

  test('RPC errors carry the node\'s code and its name; bad input is refused before sending', async () => {
    const sent = [];
    const provider = {
      send: async (method, params) => {
        sent.push([method, params]);
        if (method === 'sync_put') throw Object.assign(new Error('9001: segment 3: this node does not own it'), { code: 9001 });
        return null;
      },
    };
    await assert.rejects(put(provider, 3, 'k', Uint8Array.from([0xc0, 0xff, 0xee])), (e) => e instanceof SyncClientError
      && e.code === 'Rpc' && e.rpcCode === 9001 && e.errorName === 'NotOwner' && /does not own/.test(e.message));
    assert.deepEqual(sent, [['sync_put', [3, 'k', '0xc0ffee']]], 'bytes go as hex');
    assert.equal(await get(provider, 3, 'k'), null);
    await assert.rejects(put(provider, 3, 'k', 'not hex'), (e) => e.code === 'Input');
    await assert.rejects(call({}, 'sync_status'), (e) => e.code === 'Input');
    assert.equal(RPC_ERRORS[9006], 'Behind');
    const api = { tx: { syncRegistry: { registerNode: () => assert.fail('nothing is sent') } } };
    await assert.rejects(registerNode(api, null, { role: 'Primary', peerId: PEER, addresses: ['/ip4/127.0.0.1/tcp/1'] }),
      (e) => e.code === 'Input' && /signature/.test(e.message));
    await assert.rejects(registerNode(api, null, { role: 'Leader', peerId: PEER, addresses: ['/ip4/127.0.0.1/tcp/1'], signature: '0x00' }),
      (e) => e.code === 'Input' && /role/.test(e.message));
    await assert.rejects(registerNode(api, null, { role: 'Primary', binding: { peerIdHex: '0x00', signature: '0x00' }, peerId: PEER, addresses: ['/a'] }),
      (e) => e.code === 'Input' && /binding is for/.test(e.message));
  });

  test('rpcFailure keeps the JSON-RPC error data, parsed when the node sent it as JSON text', async () => {
    const handover = { owner: PEER, addresses: ['/ip4/127.0.0.1/tcp/30433'] };
    for (const data of [handover, JSON.stringify(handover)]) {
      const provider = { send: async () => { throw rpcError(9007, 'segment 3 is being handed over', data); } };
      await assert.rejects(put(provider, 3, 'k', '0x00'), (e) => e instanceof SyncClientError && e.code === 'Rpc'
        && e.rpcCode === 9007 && e.errorName === 'Handover' && e.cause?.code === 9007
        && JSON.stringify(e.data) === JSON.stringify(handover), typeof data);
    }
    const behind = { send: async () => { throw rpcError(9006, 'catching up', { head: 4, firstSeq: 7 }); } };
    await assert.rejects(call(behind, 'sync_put', [3, 'k', '0x00']), (e) => e.errorName === 'Behind'
      && e.data.head === 4 && e.data.firstSeq === 7);
    const bare = { send: async () => { throw rpcError(9003, 'data is not hex'); } };
    await assert.rejects(call(bare, 'sync_put', [3, 'k', 'zz']), (e) => e.errorName === 'NotHex' && e.data === null);
    const text = { send: async () => { throw rpcError(9004, 'store', 'disk full (not JSON)'); } };
    await assert.rejects(call(text, 'sync_put', [3, 'k', '0x00']), (e) => e.data === 'disk full (not JSON)');
    assert.equal(new SyncClientError('Rpc', 'x').data, null);
    assert.equal(RPC_ERRORS[9007], 'Handover');
  });

  test('putFollowing switches to the owner a Handover or NotOwner names, and keeps to it', async () => {
    const bPeer = '12D3KooWBob';
    const cPeer = '12D3KooWCharlie';
    // Alice hands over to Charlie; Charlie is behind twice, then takes the write.
    let charlieBehind = 2;
    const a = fakeNode(PEER, () => { throw rpcError(9007, 'handover', { owner: cPeer, addresses: [] }); });
    const b = fakeNode(bPeer, () => { throw rpcError(9001, 'not owner', { owner: cPeer, addresses: [] }); });
    const c = fakeNode(cPeer, ([segment, key, hex]) => {
      if (charlieBehind-- > 0) throw rpcError(9006, 'behind', { head: 3, firstSeq: 9 });
      if (segment === 3 && key === 'k') assert.equal(hex, '0xc0ffee', 'bytes go as hex');
      return head(9);
    });
    const endpoints = [a, b, c];
    const refused = [];
    const r = await putFollowing(endpoints, 3, 'k', Uint8Array.from([0xc0, 0xff, 0xee]),
      { everyMs: 5, onRefusal: (e, i) => refused.push([e.errorName, i]) });
    assert.deepEqual(r, { ...head(9), endpoint: 2, peerId: cPeer, attempts: 4 });
    assert.deepEqual(refused, [['Handover', 0], ['Behind', 2], ['Behind', 2]]);
    assert.deepEqual([a.puts, b.puts, c.puts], [1, 0, 3]);
    // The next write of the segment through the same array starts at Charlie; one of another
    // segment at the first endpoint (Alice, whose Handover names Charlie).
    assert.equal((await putFollowing(endpoints, 3, 'k2', '0x01')).endpoint, 2);
    assert.equal(a.puts, 1, 'Alice not asked again');
    const other = await putFollowing(endpoints, 4, 'k', '0x01', { everyMs: 5 });
    assert.deepEqual([other.endpoint, other.attempts, a.puts], [2, 2, 2]);
    // Peer ids were asked once per endpoint, then cached.
    assert.deepEqual([a.statusCalls, b.statusCalls, c.statusCalls], [1, 1, 1]);
  });

  test('putFollowing retries Behind on the same node and goes round the nodes for an unnamed owner', async () => {
    let behind = 3;
    const a = fakeNode(PEER, () => {
      if (behind-- > 0) throw rpcError(9006, 'behind', { head: 1, firstSeq: 2 });
      return head(2);
    });
    const t0 = Date.now();
    const r = await putFollowing([a], 0, 'k', '0x00', { everyMs: 20 });
    assert.deepEqual([r.endpoint, r.peerId, r.attempts, a.puts], [0, PEER, 4, 4]);
    assert.ok(Date.now() - t0 >= 55, 'waited everyMs between the retries');
    // No owner named (the data absent, or null): the next endpoint; an owner not among the
    // endpoints: the same endpoint again, after the peer ids were asked again.
    const x = fakeNode('12D3KooWX', () => { throw rpcError(9001, 'not owner', { owner: null, addresses: [] }); });
    const y = fakeNode('12D3KooWY', () => { throw rpcError(9001, 'not owner'); });
    let unknown = 1;
    const z = fakeNode('12D3KooWZ', () => {
      if (unknown-- > 0) throw rpcError(9001, 'not owner', { owner: OTHER, addresses: [] });
      return head(5);
    });
    const refused = [];
    const r2 = await putFollowing([x, y, z], 0, 'k', '0x00', { everyMs: 5, onRefusal: (e, i) => refused.push(i) });
    assert.deepEqual(refused, [0, 1, 2]);
    assert.deepEqual([r2.endpoint, r2.attempts], [2, 4]);
    assert.equal(z.statusCalls, 2, 'peer ids asked again when the owner named is not among them');
  });

  test('putFollowing throws other errors at once, and the last refusal after timeoutMs', async () => {
    for (const [code, name] of [[9003, 'NotHex'], [9002, 'TooLarge'], [9004, 'Store'], [-32601, 'MethodNotFound']]) {
      const a = fakeNode(PEER, () => { throw rpcError(code, name); });
      const b = fakeNode('12D3KooWB', () => assert.fail('not tried'));
      await assert.rejects(putFollowing([a, b], 0, 'k', '0x00', { everyMs: 1 }),
        (e) => e instanceof SyncClientError && e.errorName === name);
      assert.equal(a.puts, 1, name);
    }
    await assert.rejects(putFollowing([fakeNode(PEER, () => assert.fail('not sent'))], 0, 'k', 'not hex'), (e) => e.code === 'Input');
    await assert.rejects(putFollowing([], 0, 'k', '0x00'), (e) => e.code === 'Input');
    // Two nodes naming each other (a handover that does not end): retried every everyMs, not
    // in a loop, until timeoutMs; then the last refusal is thrown.
    const aPeer = PEER;
    const cPeer = '12D3KooWC';
    const a = fakeNode(aPeer, () => { throw rpcError(9007, 'handover', JSON.stringify({ owner: cPeer, addresses: [] })); });
    const c = fakeNode(cPeer, () => { throw rpcError(9001, 'not owner', { owner: aPeer, addresses: [] }); });
    const t0 = Date.now();
    await assert.rejects(putFollowing([a, c], 0, 'k', '0x00', { timeoutMs: 200, everyMs: 20 }),
      (e) => e instanceof SyncClientError && e.code === 'Rpc' && (e.errorName === 'Handover' || e.errorName === 'NotOwner'));
    const took = Date.now() - t0;
    assert.ok(took >= 200 && took < 1000, `gave up after ${took} ms`);
    assert.ok(a.puts + c.puts <= 2 * (200 / 20 + 2), `${a.puts + c.puts} calls: bounded by everyMs`);
    assert.ok(a.puts >= 3 && c.puts >= 3, 'both asked again and again');
  });
});
