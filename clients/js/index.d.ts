// Types of @sync-registry/client (the code is plain ESM with JSDoc: index.js, src/).
import type { ApiPromise } from '@polkadot/api';

/** An `ApiPromise`, or anything with `send(method, params)` (a `WsProvider`), for the `sync_*` calls. */
export type NodeConnection = ApiPromise | { send(method: string, params: unknown[]): Promise<any> };

// --- RPC definitions ---------------------------------------------------------------------
export interface RpcMethodDefinition {
  description: string;
  params: { name: string; type: string }[];
  type: string;
}
/** `sync_*` in polkadot.js `rpc` option format: `ApiPromise.create({ provider, rpc: { sync: syncRpc } })`. */
export declare const syncRpc: Readonly<Record<'status' | 'health' | 'put' | 'get', RpcMethodDefinition>>;
/** `{ sync: syncRpc }`. */
export declare const rpc: Readonly<{ sync: typeof syncRpc }>;

// --- errors ------------------------------------------------------------------------------
export type SyncClientErrorCode = 'Dispatch' | 'Rejected' | 'Timeout' | 'Rpc' | 'Cancelled' | 'Input';
export declare const RPC_ERRORS: Readonly<Record<number, string>>;
export declare class SyncClientError extends Error {
  constructor(code: SyncClientErrorCode, message: string, details?: {
    section?: string | null; errorName?: string | null; docs?: string; rpcCode?: number | null;
    data?: WriteRefusal | null; events?: unknown[] | null; blockHash?: string | null; cause?: unknown;
  });
  readonly name: 'SyncClientError';
  code: SyncClientErrorCode;
  /** `syncRegistry` (a pallet error), `dispatch` (another dispatch error), `rpc`, or null. */
  section: string | null;
  /** `NotOwner`, `BadOrigin`, `Token.FundsUnavailable`, `MigrationCancelled`, an RPC error's name… */
  errorName: string | null;
  docs: string;
  rpcCode: number | null;
  /** A refused write's details (RPC error `data`): where the segment went, or why to wait. */
  data: WriteRefusal | null;
  events: any[] | null;
  blockHash: string | null;
}
/** The `data` of a refused `sync_put` (9001 NotOwner, 9006 Behind / Rewinding, 9007 Handover). */
export interface WriteRefusal {
  reason: 'NotOwner' | 'Behind' | 'Rewinding' | 'Handover';
  /** The owner's (or the handover target's) base58 data-plane peer id, when the chain names one. */
  owner?: string;
  /** Its registered data-plane multiaddrs. */
  addresses?: string[];
  /** `Behind`: this node's head and the first seq of its epoch. */
  head?: number;
  firstSeq?: number;
}
export declare function decodeDispatchError(
  registry: { findMetaError(e: unknown): { section: string; name: string; docs: string[] } },
  dispatchError: any,
): { section: string; errorName: string; docs: string };

// --- bytes -------------------------------------------------------------------------------
export declare function base58Decode(text: string): Uint8Array;
export declare function bytesToHex(bytes: Uint8Array): string;
/** A libp2p peer id (base58 `12D3KooW…`, `0x` hex, or bytes) in the binary form the pallet stores, as hex. */
export declare function peerIdToHex(peerId: string | Uint8Array): string;

// --- transactions ------------------------------------------------------------------------
export interface SendOptions {
  /** Until in a block, per attempt (default 60 000). */
  timeoutMs?: number;
  /** Sends in all on a nonce race (default 5). */
  attempts?: number;
  retryDelayMs?: number;
  /** More `signAndSend` options (`signer` of an extension, `tip`); the nonce is always `-1`. */
  signOptions?: Record<string, unknown>;
}
export interface Included {
  blockHash: string;
  /** `{ event, phase }` records of the transaction. */
  events: any[];
}
export declare function send(api: ApiPromise, tx: any, signer: any, options?: SendOptions): Promise<Included>;
export declare function findEvent(events: any[], method: string, section?: string): any | undefined;

// --- pallet calls and waits --------------------------------------------------------------
export interface PeerBinding { peerId?: string; peerIdHex?: string; signature: string }
export declare function registerNode(api: ApiPromise, signer: any, node: {
  role: 'Primary' | 'Replica' | 'primary' | 'replica';
  peerId?: string | Uint8Array;
  addresses: string[];
  signature?: string;
  binding?: PeerBinding;
}, options?: SendOptions): Promise<Included & { peerId: string; event: any }>;
export declare function createSegment(api: ApiPromise, signer: any, options?: SendOptions): Promise<Included & { segment: number }>;
export declare function joinSegment(api: ApiPromise, signer: any, segment: number, options?: SendOptions): Promise<Included>;
export declare function leaveSegment(api: ApiPromise, signer: any, segment: number, options?: SendOptions): Promise<Included>;
export declare function acceptMigration(api: ApiPromise, signer: any, segment: number, options?: SendOptions): Promise<Included>;
export declare function cancelMigration(api: ApiPromise, signer: any, segment: number, options?: SendOptions): Promise<Included>;

export interface MigrationOptions extends SendOptions {
  /** Also wait for `ProviderReleased` (the end of the old provider's retention). */
  release?: boolean;
  /** For the whole migration (default 10 min; 30 min with `release`). */
  timeoutMs?: number;
  /** For the request's inclusion (default `SendOptions.timeoutMs`). */
  sendTimeoutMs?: number;
}
export type Migration = Promise<{ completed: any; released: any | null }> & {
  /** The request is in a block: the target may accept now. `until`: its timeout block. */
  requested: Promise<Included & { until: number }>;
  /** The `MigrationCompleted` event (`data.from`, `data.to`, `data.seq`). */
  completed: Promise<any>;
  /** The `ProviderReleased` event with `release: true`, else null once completed. */
  released: Promise<any | null>;
};
export declare function requestMigration(api: ApiPromise, signer: any, segment: number, target: string, options?: MigrationOptions): Migration;

export type HoldingStatus = 'Syncing' | 'Active' | 'Lagging';
export declare function waitForHolding(api: ApiPromise, segment: number, account: string, status?: HoldingStatus, timeoutMs?: number): Promise<any>;
export declare function waitForNode(api: ApiPromise, account: string, timeoutMs?: number): Promise<any>;

// --- objects and status over the node's JSON-RPC ----------------------------------------
export interface Head { seq: number; root: string; entries: number; bytes: number }
export interface StoredObject { cid: string; size: number; data: string }
export interface HealthReason { level: string; code: string; segment: number | null; detail: string }
export interface Health {
  status: 'healthy' | 'degraded' | 'unhealthy';
  reasons: HealthReason[];
  segments: { segment: number; chainStatus: HoldingStatus | null; commitsBehind: number; seqsBehind: number }[];
}
export declare function call(node: NodeConnection, method: string, params?: unknown[]): Promise<any>;
export declare function put(node: NodeConnection, segment: number, key: string, data: Uint8Array | string,
  options?: { retryMs?: number; everyMs?: number }): Promise<Head>;
/**
 * Writes through whichever of `endpoints` owns the segment, following typed refusals
 * (`Handover`, `NotOwner`, `Behind`) until `timeoutMs`; pass the same array for every write.
 */
export declare function putFollowing(endpoints: NodeConnection[], segment: number, key: string,
  data: Uint8Array | string, options?: { timeoutMs?: number; everyMs?: number;
    onRefusal?: (error: SyncClientError, endpoint: number) => void }): Promise<Head & {
      endpoint: number; peerId: string | null; attempts: number }>;
export declare function get(node: NodeConnection, segment: number, key: string): Promise<StoredObject | null>;
export declare function status(node: NodeConnection): Promise<{ peerId: string; bytesServed: number; bytesReceived: number; peers: Record<string, number>; segments: any[] }>;
export declare function health(node: NodeConnection): Promise<Health>;
