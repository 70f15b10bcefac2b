//! What the decision core looks at: the chain's view of this node at a block and what the
//! local store holds. Both are plain values, read by the driver (`chain`, `driver`), so the
//! core (`plan`) is a pure function of them.
use std::collections::BTreeMap;
use sync_net::{
	deltas::{Epoch, EpochKey},
	Holder, PeerId,
};
use sync_primitives::{
	commitment::Hash32, ChallengeSummary, HoldingStatus, RootSummary, SegmentId,
};
use sync_store::Head;

/// One segment this node has something to do with, as the chain says at a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentView {
	/// Segment id.
	pub id: SegmentId,
	/// Its Primaries and holders with their data-plane addresses (whom to ask for data).
	pub holders: Vec<Holder>,
	/// This node owns (writes) it.
	pub owner: bool,
	/// This node is one of its Primaries (owner included).
	pub primary: bool,
	/// This node's holding, if it is a holder: status and last proven seq.
	pub holding: Option<(HoldingStatus, Option<u64>)>,
	/// A pending migration targets this node and its proof is not accepted yet (so the chain
	/// lets it re-prove its current root).
	pub migrating_here: bool,
	/// The segment's accepted migration, if any (the fenced handover).
	pub handover: Option<Handover>,
	/// Retained committed roots, oldest first.
	pub roots: Vec<RootSummary>,
	/// The chain's ownership history of the segment, oldest first: whose key signs which
	/// epoch, from which seq (what the op verifier checks checkpoints against).
	pub epochs: Vec<EpochKey>,
}

impl SegmentView {
	/// The chain's record of epoch `epoch` of this segment.
	pub fn epoch(&self, epoch: Epoch) -> Option<&EpochKey> {
		self.epochs.iter().find(|e| e.epoch == epoch)
	}

	/// The current owner's data plane: the key of the newest epoch, with its addresses if it
	/// is among the holders (it is, as a Primary, while registered).
	pub fn current_owner(&self) -> Option<Peer> {
		let peer = self.epochs.last()?.peer;
		let addrs = self.holders.iter().find(|h| h.peer == peer).map(|h| h.addrs.clone());
		Some(Peer { peer, addrs: addrs.unwrap_or_default() })
	}

	/// Whether this node, owning the segment, must stop taking writes and seal its epoch (or
	/// keep it sealed): the migration's target proved the segment and ownership has not moved
	/// yet.
	pub fn sealing(&self) -> bool {
		self.owner && self.handover.as_ref().is_some_and(|h| h.proven && !h.completed && !h.to_me)
	}

	/// The seq this node, the migration's target, is to confirm the old owner's seal at.
	pub fn seal_to_confirm(&self) -> Option<u64> {
		self.handover
			.as_ref()
			.filter(|h| h.to_me && !h.completed)
			.and_then(|h| h.sealed)
	}
}

/// A node's data plane as the chain registers it: whom a writer is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
	/// Its libp2p peer id.
	pub peer: PeerId,
	/// Its registered data-plane addresses (those that parse).
	pub addrs: Vec<sync_net::Multiaddr>,
}

/// A segment's accepted migration, as the chain says (the runtime API's `MigrationSummary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
	/// The target's data plane, if it is registered.
	pub to: Option<Peer>,
	/// This node is the target.
	pub to_me: bool,
	/// The target's proof is accepted: the owner refuses writes and seals its epoch.
	pub proven: bool,
	/// The seq the owner's epoch is sealed at: the target confirms it once its copy has the
	/// sealed root there, and ownership moves.
	pub sealed: Option<u64>,
	/// Ownership moved (the old owner is retained for a while).
	pub completed: bool,
}

/// The chain as this node sees it at a block (finalized, unless said otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainView {
	/// Whether a node is registered with this data plane's peer id. When not, `segments` and
	/// `challenges` are empty.
	pub registered: bool,
	/// The segments the node owns, is a Primary of, or holds.
	pub segments: Vec<SegmentView>,
	/// The node's open challenges.
	pub challenges: Vec<ChallengeSummary<u32>>,
	/// The data-plane addresses the node registered (those that parse).
	pub addresses: Vec<sync_net::Multiaddr>,
	/// The account the node is registered to, SCALE-encoded (as [`crate::SyncAccounts`] lists
	/// the keystore's).
	pub account: Option<Vec<u8>>,
	/// What that account can spend on duties (`None`: not registered, or a runtime without
	/// the API).
	pub funds: Option<Funds>,
}

/// What the node's account can spend on duty transactions, and what one costs (the runtime
/// API's `AccountFunds`, in the chain's smallest unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Funds {
	/// Spendable balance (keeping the account alive).
	pub spendable: u128,
	/// Fee of the costliest routine duty.
	pub duty_fee: u128,
}

impl Funds {
	/// How many of the costliest duties the account can pay for.
	pub fn duties(&self) -> u128 {
		self.spendable.checked_div(self.duty_fee).unwrap_or(u128::MAX)
	}
}

impl ChainView {
	/// The segment `id`, if the node has something to do with it.
	pub fn segment(&self, id: SegmentId) -> Option<&SegmentView> {
		self.segments.iter().find(|s| s.id == id)
	}
}

/// What the local store holds of one segment, as far as the decisions need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalSegment {
	/// The current head.
	pub head: Option<Head>,
	/// Pinned (servable) snapshots, oldest first.
	pub pinned: Vec<Head>,
	/// For each retained committed root's seq: the root the store has at that seq, if it can
	/// still prove it (`None`: not reached, or older than the log).
	pub provable: BTreeMap<u64, Option<Hash32>>,
	/// Local writes are fenced ([`sync_store::Store::fence`]) at this head (`Some(None)`: at no
	/// head yet).
	pub fenced: Option<Option<Head>>,
	/// An owned segment whose log runs past the start of the newest epoch in an older epoch
	/// (the chain sealed that epoch before the node's last ops): it must rewind first.
	pub stale_tail: bool,
}

impl LocalSegment {
	/// The root the store can prove at `seq`, if any.
	pub fn provable_root(&self, seq: u64) -> Option<Hash32> {
		self.provable.get(&seq).copied().flatten()
	}
}

/// What the local store holds of every segment in a [`ChainView`].
pub type LocalState = BTreeMap<SegmentId, LocalSegment>;
