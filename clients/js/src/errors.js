// Errors of the client: one class, a machine-readable `code`, and what the chain or the node said.

/**
 * @typedef {'Dispatch' | 'Rejected' | 'Timeout' | 'Rpc' | 'Cancelled' | 'Input'} SyncClientErrorCode
 * - `Dispatch`: the transaction is in a block but failed (`errorName` is the pallet's error,
 *   e.g. `NotOwner`, or a dispatch error such as `BadOrigin`);
 * - `Rejected`: the pool refused or dropped the transaction (never in a block);
 * - `Timeout`: what was waited for did not happen in time;
 * - `Rpc`: a `sync_*` JSON-RPC call failed (`rpcCode`, `errorName` from {@link RPC_ERRORS}, the
 *   error's `data`);
 * - `Cancelled`: a migration waited for was cancelled or timed out on chain;
 * - `Input`: an argument the client cannot use (a malformed peer id, data that is not hex).
 */

/** The node's `sync_*` error codes (node/service/src/rpc.rs), named. */
export const RPC_ERRORS = Object.freeze({
  9000: 'ServiceDown', // the sync service is not running (--sync-role none, or starting)
  9001: 'NotOwner', // the node does not own the segment on chain
  9002: 'TooLarge', // object above the RPC limit (4 MiB): use the HTTP object API
  9003: 'NotHex', // data is not hex
  9004: 'Store', // the store failed
  9005: 'CidMismatch', // a stored object does not match its CID
  9006: 'Behind', // the node owns the segment but has not caught up with the chain yet
  // The segment is being handed to a new owner and this node has stopped writing it (fenced);
  // `data.owner` names the migration target (base58 peer id), `data.addresses` its data-plane
  // addresses: retry there (it answers NotOwner / Behind until it owns the segment).
  9007: 'Handover',
  [-32601]: 'MethodNotFound', // unknown method, or an unsafe one (sync_put) on a safe-only RPC
});

export class SyncClientError extends Error {
  /**
   * @param {SyncClientErrorCode} code
   * @param {string} message
   * @param {{ section?: string | null, errorName?: string | null, docs?: string, rpcCode?: number | null,
   *   data?: any, events?: unknown[] | null, blockHash?: string | null, cause?: unknown }} [details]
   *   `data`: the JSON-RPC error's `data` (`Rpc`), e.g. `{ owner, addresses }` of `NotOwner` and
   *   `Handover`, `{ head, firstSeq }` of `Behind`
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SyncClientError';
    /** @type {SyncClientErrorCode} */
    this.code = code;
    /** `syncRegistry` (a pallet error), `dispatch` (another dispatch error), `rpc`, or null. */
    this.section = details.section ?? null;
    /** The decoded error: `NotOwner`, `BadOrigin`, `Token.FundsUnavailable`, `MigrationCancelled`, … */
    this.errorName = details.errorName ?? null;
    /** The pallet's documentation of the error, if any. */
    this.docs = details.docs ?? '';
    /** The JSON-RPC error code (`Rpc`, and `Rejected` when the pool answered with one). */
    this.rpcCode = details.rpcCode ?? null;
    /**
     * The JSON-RPC error's `data` (`Rpc`), parsed if the node sent it as JSON text, or null:
     * `{ owner, addresses }` (`NotOwner`, `Handover`), `{ head, firstSeq }` (`Behind`).
     */
    this.data = details.data ?? null;
    /** The block's events of a failed transaction (`Dispatch`). */
    this.events = details.events ?? null;
    /** The block a failed transaction is in (`Dispatch`). */
    this.blockHash = details.blockHash ?? null;
  }
}

/**
 * Decodes a `DispatchError` (as `signAndSend` reports it) with the chain's metadata:
 * a module error by `registry.findMetaError` (section, name, docs), others by their variant
 * (`BadOrigin`, `Token.FundsUnavailable`, `Arithmetic.Overflow`, …).
 * @param {{ findMetaError(e: unknown): { section: string, name: string, docs: string[] } }} registry
 *   `api.registry`
 * @param {any} dispatchError
 * @returns {{ section: string, errorName: string, docs: string }}
 */
export function decodeDispatchError(registry, dispatchError) {
  if (dispatchError.isModule) {
    const meta = registry.findMetaError(dispatchError.asModule);
    return { section: meta.section, errorName: meta.name, docs: (meta.docs ?? []).join(' ').trim() };
  }
  for (const kind of ['Token', 'Arithmetic', 'Transactional']) {
    if (dispatchError[`is${kind}`]) {
      return { section: 'dispatch', errorName: `${kind}.${dispatchError[`as${kind}`].type}`, docs: '' };
    }
  }
  return { section: 'dispatch', errorName: String(dispatchError.type ?? dispatchError), docs: '' };
}

/**
 * The `Dispatch` error of a transaction that failed in a block.
 * @param {any} registry `api.registry`
 * @param {any} dispatchError
 * @param {{ events?: unknown[], blockHash?: string, what?: string }} [context]
 */
export function dispatchFailure(registry, dispatchError, { events, blockHash, what = 'transaction' } = {}) {
  const { section, errorName, docs } = decodeDispatchError(registry, dispatchError);
  return new SyncClientError('Dispatch', `${what} failed: ${section}.${errorName}${docs ? ` (${docs})` : ''}`,
    { section, errorName, docs, events, blockHash });
}

/**
 * The JSON-RPC error's `data` as polkadot.js's RpcError carries it (any JSON value; a string
 * that is JSON is parsed, other text kept as it is), or null.
 * @param {unknown} data
 */
function rpcData(data) {
  if (data === undefined || data === null) return null;
  if (typeof data !== 'string') return data;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/**
 * The `Rpc` error of a failed `sync_*` call (polkadot.js's RpcError carries the numeric `code`
 * and the error's `data`).
 * @param {any} e
 * @param {string} method
 */
export function rpcFailure(e, method) {
  const rpcCode = typeof e?.code === 'number' ? e.code : null;
  const errorName = rpcCode === null ? null : (RPC_ERRORS[rpcCode] ?? null);
  return new SyncClientError('Rpc', `${method}: ${e?.message ?? e}`,
    { section: 'rpc', rpcCode, errorName, data: rpcData(e?.data), cause: e });
}
