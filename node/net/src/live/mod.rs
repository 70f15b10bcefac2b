//! Live sync: keeping segments current while their Primary writes, and the Primary's side.
//!
//! - [`follow`]: the follow loop of one segment (snapshot first, then deltas), a [`Follower`]
//!   handle per segment;
//! - [`anchor`]: the chain's committed roots, the only snapshot targets;
//! - [`deltas`]: signed ops, range fetch of a gap and exactly-once replay;
//! - [`gossip`]: signed announcements per segment, validated before they spread;
//! - [`write`]: the Primary's write path (sign, apply, announce, pin, prune);
//! - [`repair`]: the background scrub of what this node stores, and the re-fetch of what it
//!   found damaged (or the check at open found missing), on every holder.
//!
//! This component owns the registry of followed segments (what gossip validation needs: the
//! verifier of each segment's Primaries, and where to hand a new announcement).
pub mod anchor;
pub mod deltas;
pub mod follow;
pub mod gossip;
pub mod repair;
pub(crate) mod write;

pub use follow::Follower;

use follow::FollowStats;
use parking_lot::Mutex;
use std::{
	collections::HashMap,
	sync::{atomic::Ordering, Arc},
};
use sync_primitives::SegmentId;
use sync_proto::{Announcement, OpVerifier};
use sync_store::Head;
use tokio::sync::watch;

/// A verifier of a segment's ops and announcements (answers from the chain).
pub(crate) type Verifier = Arc<dyn OpVerifier + Send + Sync>;

/// What the network keeps per followed segment (for gossip validation).
struct Registration {
	verifier: Verifier,
	announced: watch::Sender<Option<Announcement>>,
	/// The follower's view of the head, updated after every replayed batch.
	head: watch::Sender<Option<Head>>,
	stats: Arc<FollowStats>,
}

/// The followed segments.
#[derive(Default)]
pub(crate) struct Live {
	follows: Mutex<HashMap<SegmentId, Registration>>,
}

impl Live {
	/// Registers a follower of `segment` (replacing an earlier one).
	fn register(
		&self,
		segment: SegmentId,
		verifier: Verifier,
		announced: watch::Sender<Option<Announcement>>,
		head: watch::Sender<Option<Head>>,
		stats: Arc<FollowStats>,
	) {
		self.follows
			.lock()
			.insert(segment, Registration { verifier, announced, head, stats });
	}

	/// Forgets the follower of `segment`.
	fn unregister(&self, segment: SegmentId) {
		self.follows.lock().remove(&segment);
	}

	/// The verifier of a followed segment.
	fn verifier(&self, segment: SegmentId) -> Option<Verifier> {
		self.follows.lock().get(&segment).map(|f| f.verifier.clone())
	}

	/// Hands a validated announcement to its segment's follower, if newer than what it knows.
	fn announced(&self, a: Announcement) {
		if let Some(f) = self.follows.lock().get(&a.segment) {
			f.announced.send_if_modified(|cur| {
				let newer = cur.as_ref().is_none_or(|c| a.seq > c.seq);
				if newer {
					*cur = Some(a);
				}
				newer
			});
		}
	}

	/// Drops announcement `a` if it is still the newest of its segment (its op was not the one
	/// the holders serve): the follower goes on from its polls and the next announcement.
	fn forget_announcement(&self, a: &Announcement) {
		if let Some(f) = self.follows.lock().get(&a.segment) {
			f.announced.send_if_modified(|cur| {
				let same = cur.as_ref() == Some(a);
				if same {
					*cur = None;
				}
				same
			});
		}
	}

	/// `ops` ops of `segment` were replayed, reaching `head`.
	fn replayed(&self, segment: SegmentId, ops: u64, head: Head) {
		if let Some(f) = self.follows.lock().get(&segment) {
			f.stats.ops.fetch_add(ops, Ordering::Relaxed);
			f.head.send_replace(Some(head));
		}
	}
}
