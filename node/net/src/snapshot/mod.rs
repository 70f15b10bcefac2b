//! Snapshot sync of one segment to a target root from many holders at once.
//!
//! Stages (each resumable, because the store persists the transfer):
//! 1. **Head**: each holder is asked what it can serve: the complete target (a Primary or a
//!    synced Replica) or a transfer to the same target with a verified index (a Replica that
//!    is itself syncing and serves the groups it already verified).
//! 2. **Index**: fetched from one holder, verified by recomputing the root before it is staged;
//!    a holder whose index does not hash to the target is banned and another is asked.
//! 3. **Objects**: work *units* (an outboard, or up to [`MAX_GROUPS_PER_REQUEST`] chunk
//!    groups) are picked in random order, one outstanding request per peer. Every group is verified (against its
//!    outboard leaf or the CID) by the store before it is written; a peer that sends bad bytes
//!    or breaks the protocol is banned for the session and its unit goes back to the pool.
//! 4. **Finish**: the store recomputes the root over the staged index, checks every object is
//!    present, and swaps the segment in one durable transaction.
//!
//! # Primary egress
//! Replicas that sync at the same time share the load like a swarm: every unit has an *owner*
//! among the non-Primary holders (a hash of the unit over the sorted peer ids, so every
//! Replica computes the same split). A Replica fetches the units it owns from the Primary and
//! everything else from the Replicas that own it (which serve it as soon as they verified it).
//! The Primary is asked for someone else's unit only when that owner is gone (disconnected,
//! banned, or unable to serve the target), or when this node's own share is exhausted and the
//! owner has made no progress (its verified byte count, polled through `Head`, did not grow)
//! for [`NetConfig::primary_fallback`](crate::NetConfig) — so with `n` Replicas the Primary
//! serves about one copy in total, not `n`, and a stuck Replica delays the others by at most
//! that fallback. While a complete non-Primary holder is connected (and some non-Primary
//! source delivers, see below), the Primary is not asked.
//!
//! # Stalls
//! What a peer advertises decides whom to ask, never that the sync waits:
//! - a source that advertises the complete target (or a pin of it) and answers `Missing` /
//!   `NotHeld` for its groups or its index [`DEMOTE_AFTER`] times is *demoted* for this target:
//!   not asked again, not counted as a complete source, its share goes to the pool (counted in
//!   `sync_net_sources_demoted_total`; no ban, no cooldown — it may simply have lost the pin).
//!   A co-downloader's "missing" is what it has not fetched yet and never counts; an outboard
//!   refusal holds nothing up (every source, the Primary included, takes outboards first) and
//!   only sends that outboard elsewhere;
//! - a co-downloader's progress counts only when it is syncing to this very target, only up to
//!   the target's size, and only until it has delivered nothing to this node for
//!   [`NetConfig::primary_fallback_after`](crate::NetConfig);
//! - the Primary fallback has a time bound whatever peers claim: once no non-Primary source has
//!   delivered a verified byte for `primary_fallback_after`, a Primary the chain lists
//!   ([`Holder::primary`]) serves any share, even while a "complete" Replica is connected; and
//!   whatever peers do: after a window of `primary_fallback_after` (counted from the staging of
//!   the index) in which the non-Primary sources together delivered verified bytes at less than
//!   [`NetConfig::primary_fallback_rate`](crate::NetConfig) (64 KiB/s), it does so for the next
//!   window too, as one more source (the replicas keep theirs). A holder that claims the
//!   complete target and drip-feeds a group every few seconds therefore holds the Primary back
//!   for one window at most, while honest replicas (far above the floor) never let it in this
//!   way: with `n` Replicas the Primary still serves about one copy;
//! - the index continues from another source at the page where the previous one stopped; an
//!   index from several sources that does not verify blames nobody and is fetched again whole
//!   from one (which is banned if that does not verify either);
//! - a demoted or unusable source does not keep the sync alive: with no worker left it ends
//!   after [`STALL_TIMEOUT`].
//!
//! # Layout
//! - `sched`: the pure scheduler (units, owners, the Primary rule, outcomes), unit-tested;
//! - `engine`: the I/O driver: the sync loop, one worker per selected peer, the index fetch,
//!   and the requests, each ending in an outcome handed back to the scheduler.
use libp2p::{Multiaddr, PeerId};
use std::{collections::HashMap, time::Duration};
#[cfg(doc)]
use sync_proto::MAX_GROUPS_PER_REQUEST;
use sync_store::{Head, StoreError};

mod engine;
mod sched;

/// A holder of the segment, as the chain (or discovery) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
	/// Its data-plane peer id.
	pub peer: PeerId,
	/// Addresses to reach it.
	pub addrs: Vec<Multiaddr>,
	/// Whether it is a Primary of the segment (asked for data only in turn, see module docs).
	pub primary: bool,
}

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
	/// The head reached.
	pub head: Option<Head>,
	/// Chunk-group bytes received and verified (including groups that raced and were dropped).
	pub fetched_bytes: u64,
	/// Outboard bytes received.
	pub outboard_bytes: u64,
	/// Group bytes received from each peer.
	pub by_peer: HashMap<PeerId, u64>,
	/// Peers banned during this sync.
	pub banned: Vec<PeerId>,
	/// Sources demoted for this target during this sync (see the module docs on stalls).
	pub demoted: Vec<PeerId>,
	/// Groups received that failed verification (never written).
	pub rejected_groups: u64,
	/// Bytes of objects that were already present (or verified partially) before this run.
	pub resumed_bytes: u64,
	/// Wall time of the sync.
	pub elapsed: Duration,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
	/// The store failed (disk, database) or rejected the final state.
	#[error("store: {0}")]
	Store(#[from] StoreError),
	/// No holder could make progress for the stall timeout.
	#[error("stalled: no usable holder for {0:?}")]
	Stalled(Duration),
	/// The target's index (which hashes to the committed root) names what no write makes, such
	/// as an object larger than the protocol allows: no holder can serve it, so the sync ends.
	#[error("the target is invalid: {0}")]
	InvalidTarget(String),
}

/// Sessions a sync runs to each source at once. With one, the source idles while this node
/// stores an answer and sends the next request, and every outboard (one per large object) costs
/// a whole round trip; a second lane keeps a request in flight meanwhile. Both share one
/// schedule (each takes its own units), and the second opens only if a stream of the peer's
/// budget is free (the client never opens more than
/// [`STREAMS_PER_PEER`](crate::transfer::protocol::STREAMS_PER_PEER) to a peer, bulk ones at
/// most one fewer).
pub const LANES: usize = 2;

/// How long a sync waits without any usable holder before giving up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `Missing` / `NotHeld` answers for groups or the index of the target after which a Primary or
/// complete source is demoted for that target (see the module docs on stalls). An honest holder of the
/// target never gives one (it has every byte); 3 leaves room for a pin rotating out mid-sync to
/// be noticed, not for a liar to hold the sync: the next source takes over at once.
pub const DEMOTE_AFTER: u32 = 3;

pub(crate) use engine::sync;
