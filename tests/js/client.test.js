// The typed client (clients/js) without a node: peer ids from base58, the sync_* RPC
// definitions as polkadot.js reads them, and errors decoded from what signAndSend and the RPC
// report. The suites against nodes (local-network, migration, local-net) use it for real.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { u8aToHex } from '@polkadot/util';
import { base58Decode as refBase58Decode, base58Encode } from '@polkadot/util-crypto';
import {
  RPC_ERRORS, SyncClientError, base58Decode, call, decodeDispatchError, get, peerIdToHex, put,
  registerNode, rpc, syncRpc,
} from '../../clients/js/index.js';

/** The peer id of node key `…01` (docs/node.md). */
const PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp';

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
});
