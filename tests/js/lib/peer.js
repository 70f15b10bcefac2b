// Peer bindings: the data-plane key's consent that one account registers its peer id.
//
// `registerNode(role, peerId, addrs, peerSignature)` and `updateNode([peerId, peerSignature],
// addrs)` need an Ed25519 signature, by the key inside the peer id, over
//   'sync-registry/peer-binding/v1' ‖ genesis hash ‖ account id (32 bytes) ‖ binary peer id
// (`sync_primitives::peer_binding_message` on chain). This file is the suites' one copy of that
// rule: `peerKey` makes identities in JS, `nodeBinding` asks `sync-node key sign-peer-binding`
// for a running node's own key, and `verifyBinding` checks either against the rule.
import { execFileSync } from 'node:child_process';
import { stringToU8a, u8aConcat, u8aToHex, u8aToU8a } from '@polkadot/util';
import { decodeAddress, ed25519PairFromSeed, ed25519Sign, ed25519Verify } from '@polkadot/util-crypto';
import { nodeBinary } from './node.js';

/** Domain tag that starts every binding message. */
export const PEER_BINDING_TAG = 'sync-registry/peer-binding/v1';

/** Identity multihash of a protobuf Ed25519 public key: code 0, length 36, `08 01 12 20`. */
const ED25519_PEER_ID_PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);

/**
 * What the data-plane key signs to let `account` (SS58 or bytes) register `peerId` (hex or
 * bytes) on the chain with `genesisHash` (`api.genesisHash`, hex or bytes).
 */
export function bindingMessage(genesisHash, account, peerId) {
  return u8aConcat(stringToU8a(PEER_BINDING_TAG), u8aToU8a(genesisHash), decodeAddress(account), u8aToU8a(peerId));
}

/**
 * A data-plane identity made in JS from a one-byte `seed`: an Ed25519 key and its libp2p peer
 * id (hex). `sign(api, account)` is the binding of that peer id to `account` on `api`'s chain.
 */
export function peerKey(seed) {
  const pair = ed25519PairFromSeed(new Uint8Array(32).fill(seed));
  const peerId = u8aConcat(ED25519_PEER_ID_PREFIX, pair.publicKey);
  return {
    peerId: u8aToHex(peerId),
    sign: (api, account) => u8aToHex(ed25519Sign(bindingMessage(api.genesisHash, account, peerId), pair)),
  };
}

/** A well-formed peer id the chain cannot verify a binding for: a sha2-256 multihash. */
export function sha256PeerId(seed) {
  const bytes = new Uint8Array(34).fill(seed);
  bytes.set([0x12, 0x20]);
  return u8aToHex(bytes);
}

/** Whether `signature` (hex) is a valid binding of the Ed25519 `peerId` (hex) to `account`. */
export function verifyBinding(genesisHash, account, peerId, signature) {
  const bytes = u8aToU8a(peerId);
  const prefix = bytes.subarray(0, ED25519_PEER_ID_PREFIX.length);
  if (bytes.length !== 38 || u8aToHex(prefix) !== u8aToHex(ED25519_PEER_ID_PREFIX)) return false;
  return ed25519Verify(bindingMessage(genesisHash, account, bytes), signature, bytes.subarray(6));
}

/**
 * The binding of a running node's data-plane peer id to `account`, made by the node binary
 * (`sync-node key sign-peer-binding`) from the node's key file (`node.syncKeyFile`, see
 * `startNode`): `{ peerId, peerIdHex, signature }`.
 */
export function nodeBinding(node, account) {
  const out = execFileSync(nodeBinary(), [
    'key', 'sign-peer-binding',
    '--account', account,
    '--genesis-hash', node.api.genesisHash.toHex(),
    '--sync-key-file', node.syncKeyFile,
  ], { stdio: 'pipe' });
  return JSON.parse(out.toString());
}
