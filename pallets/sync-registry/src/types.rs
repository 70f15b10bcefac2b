//! Records the pallet stores. Each is bounded (`MaxEncodedLen`) so storage stays bounded.
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{pallet_prelude::*, BoundedVec};
use scale_info::TypeInfo;
pub use sync_primitives::HoldingStatus;
use sync_primitives::{
	commitment::RootFacts, Multiaddrs, NodeRole, NodeStatus, PeerIdBytes, SegmentId,
};

/// Balance type of the currency that holds node deposits.
pub type BalanceOf<T> =
	<<T as crate::Config>::Currency as frame_support::traits::fungible::Inspect<
		<T as frame_system::Config>::AccountId,
	>>::Balance;

/// Identifier of a challenge.
pub type ChallengeId = u64;

/// Stored node record of this runtime.
pub type NodeInfoOf<T> = NodeInfo<BalanceOf<T>, frame_system::pallet_prelude::BlockNumberFor<T>>;
/// Stored segment record of this runtime.
pub type SegmentInfoOf<T> = SegmentInfo<
	<T as frame_system::Config>::AccountId,
	frame_system::pallet_prelude::BlockNumberFor<T>,
	<T as crate::Config>::MaxPrimaries,
	<T as crate::Config>::MaxHolders,
>;
/// Stored root record of this runtime.
pub type CommittedRootOf<T> = CommittedRoot<
	<T as frame_system::Config>::AccountId,
	frame_system::pallet_prelude::BlockNumberFor<T>,
>;
/// Stored challenge of this runtime.
pub type ChallengeOf<T> = Challenge<
	<T as frame_system::Config>::AccountId,
	frame_system::pallet_prelude::BlockNumberFor<T>,
>;
/// The segments a node owns, is a Primary of, or holds (at most `MaxSegmentsPerNode`).
pub type SegmentListOf<T> = BoundedVec<SegmentId, <T as crate::Config>::MaxSegmentsPerNode>;
/// The retained roots of a segment, oldest first (at most `RootRetention`).
pub type RootWindowOf<T> = BoundedVec<CommittedRootOf<T>, <T as crate::Config>::RootRetention>;
/// The Primaries that attested a root (at most `MaxPrimaries`).
pub type VotesOf<T> =
	BoundedVec<<T as frame_system::Config>::AccountId, <T as crate::Config>::MaxPrimaries>;
/// A scheduled task of this runtime.
pub type TaskOf<T> = Task<<T as frame_system::Config>::AccountId>;
/// Stored migration of this runtime.
pub type MigrationOf<T> = Migration<
	<T as frame_system::Config>::AccountId,
	frame_system::pallet_prelude::BlockNumberFor<T>,
>;

/// Stored ownership epoch of this runtime.
pub type OwnerEpochOf<T> = OwnerEpoch<<T as frame_system::Config>::AccountId>;
/// The retained ownership epochs of a segment, oldest first (at most `MaxOwnerEpochs`; the
/// oldest is dropped when a new one would not fit).
pub type EpochsOf<T> = BoundedVec<OwnerEpochOf<T>, <T as crate::Config>::MaxOwnerEpochs>;

/// A registered node as stored on chain.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct NodeInfo<Balance, BlockNumber> {
	/// Primary (accepts writes) or Replica (mirrors).
	pub role: NodeRole,
	/// Life-cycle status, summarised from the node's holdings.
	pub status: NodeStatus,
	/// libp2p peer id bytes of the node's data plane.
	pub peer_id: PeerIdBytes,
	/// Data-plane listen multiaddrs in text form.
	pub multiaddrs: Multiaddrs,
	/// Amount held under the node-deposit hold reason (penalties reduce it).
	pub deposit: Balance,
	/// Block in which the node registered.
	pub registered_at: BlockNumber,
	/// When leaving: the first block at which the node may deregister.
	pub leave_at: Option<BlockNumber>,
	/// How many of the node's holdings are `Syncing`, and how many `Lagging` (kept by every
	/// holding change, see `Pallet::note_holding`, so the status is derived in O(1)).
	pub syncing: u32,
	/// See `syncing`.
	pub lagging: u32,
}

/// A committed segment root.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct CommittedRoot<AccountId, BlockNumber> {
	/// Sequence number of the last op included (strictly increasing per segment).
	pub seq: u64,
	/// Root, leaf count, entry count and byte size.
	pub facts: RootFacts,
	/// Number of this commit in the segment's history (1 for the first commit). Lag is
	/// measured in commits, so it does not depend on how many ops a commit covers.
	pub index: u32,
	/// The Primary that committed it.
	pub committer: AccountId,
	/// Block of the commit.
	pub at: BlockNumber,
}

/// A segment: a bucket of objects owned by one Primary.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
#[scale_info(skip_type_params(MaxPrimaries, MaxHolders))]
pub struct SegmentInfo<AccountId, BlockNumber, MaxPrimaries: Get<u32>, MaxHolders: Get<u32>> {
	/// The provider: the Primary whose op log defines the segment.
	pub owner: AccountId,
	/// The owner and its co-Primaries.
	pub primaries: BoundedVec<AccountId, MaxPrimaries>,
	/// Every non-owner holder (co-Primaries, Replicas, a migration target), in join order.
	pub holders: BoundedVec<AccountId, MaxHolders>,
	/// Block of creation.
	pub created_at: BlockNumber,
	/// Number of roots committed so far.
	pub commits: u32,
}

/// One node's holding of one segment.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct Holding<BlockNumber> {
	/// Sync state.
	pub status: HoldingStatus,
	/// The last root this holder proved: commit seq, commit index, facts.
	pub proven: Option<ProvenRoot>,
	/// Consecutive missed challenges.
	pub failures: u32,
	/// Block the holder joined.
	pub joined_at: BlockNumber,
	/// The block of this holding's scheduled [`Task::ReChallenge`], if one is scheduled.
	pub next_check: Option<BlockNumber>,
	/// While `Syncing` without an open challenge: the block of its scheduled
	/// [`Task::SyncingTimeout`] (the holding is dropped then unless it proved meanwhile).
	pub syncing_until: Option<BlockNumber>,
}

/// Work the chain does at a block, stored one item per key in [`crate::Agenda`] and removed
/// as soon as it no longer applies.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub enum Task<AccountId> {
	/// Expire challenge `id` unless it was answered (scheduled at `deadline + 1`).
	#[codec(index = 0)]
	Expire(crate::ChallengeId),
	/// Draw whether to re-challenge the Active holder of a segment now (see `rechallenge`).
	#[codec(index = 1)]
	ReChallenge(SegmentId, AccountId),
	/// Time out a pending migration, or release the old provider of a completed one.
	#[codec(index = 2)]
	Migration(SegmentId),
	/// Drop a holding that stayed `Syncing` (never proved, or failed) for `SyncingTimeout`.
	#[codec(index = 3)]
	SyncingTimeout(SegmentId, AccountId),
	/// Forget the remembered failures of a (segment, account) that left.
	#[codec(index = 4)]
	ForgetFailures(SegmentId, AccountId),
}

/// Failures of an account that left a segment, remembered until `until` so that leaving and
/// rejoining does not reset them.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct FailureRecord<BlockNumber> {
	/// Consecutive failures at the time it left (an abandoned challenge counts).
	pub failures: u32,
	/// Last block at which a rejoin restores them.
	pub until: BlockNumber,
	/// Whether the account may not `join_segment` again until `until`: it was removed by the
	/// owner or dropped by the chain (so squatting a seat cannot be repeated at once).
	pub barred: bool,
}

/// A root a holder proved.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct ProvenRoot {
	/// Seq of the root.
	pub seq: u64,
	/// Commit index of the root.
	pub index: u32,
	/// The root's facts (kept so re-challenges work after the root leaves the window).
	pub facts: RootFacts,
}

/// Why a challenge was issued.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub enum ChallengeKind {
	/// The holder claimed to hold a root.
	#[codec(index = 0)]
	Claim,
	/// Periodic check of an Active holder.
	#[codec(index = 1)]
	ReChallenge,
}

/// An open Proof-of-Sync challenge.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct Challenge<AccountId, BlockNumber> {
	/// Segment being proven.
	pub segment: SegmentId,
	/// The challenged node.
	pub who: AccountId,
	/// Seq of the root to prove.
	pub seq: u64,
	/// Commit index of that root.
	pub index: u32,
	/// The root to prove against (copied, so pruning the window cannot break the challenge).
	pub facts: RootFacts,
	/// The block whose [`crate::Beacon`] seeds the leaf selection; unknown when the challenge
	/// is made.
	pub seed_block: BlockNumber,
	/// Last block in which a proof is accepted.
	pub deadline: BlockNumber,
	/// Claim or re-challenge.
	pub kind: ChallengeKind,
}

/// A pending or completed provider migration.
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct Migration<AccountId, BlockNumber> {
	/// The current owner.
	pub from: AccountId,
	/// The new provider.
	pub to: AccountId,
	/// Block of the request.
	pub requested_at: BlockNumber,
	/// The target must prove a root with at least this commit index (the latest at request).
	pub min_index: u32,
	/// Requested or accepted: the block after which it times out. Proven: the block after
	/// which the chain seals the old owner's epoch itself ([`crate::Config::SealTimeout`]).
	/// Sealed: the block after which an unconfirmed seal aborts the migration (also
	/// `SealTimeout`). Completed: when `from` is released.
	pub until: BlockNumber,
	/// Whether ownership has moved (then `from` is retained until `until`).
	pub completed: bool,
	/// Whether `to` accepted the request ([`crate::Pallet::accept_migration`]); until then the
	/// target is not involved in anything.
	pub accepted: bool,
	/// Whether `to` became a holder because of this migration (removed again on cancel).
	pub target_added: bool,
	/// The seq of the root `to` proved (at least as new as `min_index`): from then on the old
	/// owner seals its epoch ([`crate::Pallet::seal_segment`]) and ownership moves at the
	/// sealed seq. `None` until the target's proof is accepted.
	pub proven: Option<u64>,
	/// The seq the old owner's epoch was sealed at ([`crate::Pallet::seal_segment`], or the
	/// latest commit when the seal timed out): ownership moves there once the target confirms
	/// it holds the sealed root ([`crate::Pallet::confirm_seal`]). `None` until the seal.
	pub sealed: Option<u64>,
}

/// One ownership epoch of a segment: from `first_seq` on, its ops are signed by the data-plane
/// key of `peer_id`, registered to `owner`, until the next epoch starts (see
/// [`crate::OwnerEpochs`]).
#[derive(
	Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq, Debug,
)]
pub struct OwnerEpoch<AccountId> {
	/// Epoch number: 1 at the segment's creation, then the previous epoch's + 1.
	pub epoch: u32,
	/// The segment's owner during the epoch.
	pub owner: AccountId,
	/// The owner's registered data-plane peer id during the epoch (its Ed25519 key signs the
	/// epoch's op checkpoints).
	pub peer_id: PeerIdBytes,
	/// The epoch's first seq; it ends where the next epoch starts, so every seq belongs to
	/// exactly one epoch and is signed by its key.
	pub first_seq: u64,
}
