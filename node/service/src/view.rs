//! What the decision core looks at: the chain's view of this node at a block and what the
//! local store holds. Both are plain values, read by the driver (`chain`, `driver`), so the
//! core (`plan`) is a pure function of them.
use std::collections::BTreeMap;
use sync_net::{
	deltas::{Epoch, EpochKey},
	Holder,
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
	/// A pending migration targets this node.
	pub migrating_here: bool,
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
}

impl LocalSegment {
	/// The root the store can prove at `seq`, if any.
	pub fn provable_root(&self, seq: u64) -> Option<Hash32> {
		self.provable.get(&seq).copied().flatten()
	}
}

/// What the local store holds of every segment in a [`ChainView`].
pub type LocalState = BTreeMap<SegmentId, LocalSegment>;
