// Byte helpers without dependencies: base58 (libp2p's peer id text form) and hex.
import { SyncClientError } from './errors.js';

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const HEX = /^0x(?:[0-9a-fA-F]{2})*$/;

/**
 * Decodes base58 (the Bitcoin alphabet, as libp2p writes peer ids: `12D3KooW…`).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function base58Decode(text) {
  if (typeof text !== 'string' || text.length === 0) throw new SyncClientError('Input', 'base58: empty or not a string');
  const little = []; // the number, little-endian bytes
  for (const ch of text) {
    let carry = ALPHABET.indexOf(ch);
    if (carry < 0) throw new SyncClientError('Input', `base58: '${ch}' is not a base58 digit`);
    for (let i = 0; i < little.length; i++) {
      carry += little[i] * 58;
      little[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      little.push(carry & 0xff);
      carry >>= 8;
    }
  }
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros += 1;
  const out = new Uint8Array(zeros + little.length);
  for (let i = 0; i < little.length; i++) out[out.length - 1 - i] = little[i];
  return out;
}

/** @param {Uint8Array} bytes @returns {string} `0x…` */
export function bytesToHex(bytes) {
  let s = '0x';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Whether `value` is a `0x`-prefixed hex string of whole bytes. @param {unknown} value */
export function isHex(value) {
  return typeof value === 'string' && HEX.test(value);
}

/**
 * Bytes as the node's RPC wants them: `0x…` hex (lower case).
 * @param {Uint8Array | string} data a Uint8Array (or Buffer), or a `0x` hex string
 */
export function toHex(data, what = 'data') {
  if (data instanceof Uint8Array) return bytesToHex(data);
  if (isHex(data)) return /** @type {string} */ (data).toLowerCase();
  throw new SyncClientError('Input', `${what}: give a Uint8Array or a 0x-prefixed hex string (for text, new TextEncoder().encode(text))`);
}

/**
 * A libp2p peer id in the binary form the pallet stores (`0x…`), from its text form
 * (base58, `12D3KooW…`, as logged and in `sync_status`), from hex, or from bytes.
 * @param {string | Uint8Array} peerId
 * @returns {string}
 */
export function peerIdToHex(peerId) {
  if (peerId instanceof Uint8Array) return bytesToHex(peerId);
  if (typeof peerId === 'string' && peerId.startsWith('0x')) {
    if (!isHex(peerId)) throw new SyncClientError('Input', `peer id ${peerId} is not hex`);
    return peerId.toLowerCase();
  }
  const bytes = base58Decode(/** @type {string} */ (peerId));
  // A multihash: identity (0x00) or sha2-256 (0x12), then its length, then that many bytes.
  if (bytes.length < 2 || (bytes[0] !== 0x00 && bytes[0] !== 0x12) || bytes[1] !== bytes.length - 2) {
    throw new SyncClientError('Input', `${peerId} is not a libp2p peer id (identity or sha2-256 multihash)`);
  }
  return bytesToHex(bytes);
}
