#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

#[cfg(any(feature = "runtime-benchmarks", test))]
mod benchmarking;
pub mod epochs;
pub mod invariants;
pub mod migration;
pub mod migrations;
#[cfg(test)]
mod mock;
pub mod nodes;
pub mod ocw;
pub mod proof_of_sync;
pub mod roots;
pub mod schedule;
pub mod segments;
#[cfg(test)]
mod tests;
pub mod types;
pub mod views;
pub mod weights;

use sync_primitives::{
	commitment::{Hash32, RootFacts, SyncProof},
	Multiaddrs, NodeRole, NodeStatus, PeerIdBytes, PeerSignature, SegmentId,
};

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{pallet_prelude::*, traits::fungible};
	use frame_system::{offchain::CreateSignedTransaction, pallet_prelude::*};

	/// The in-code storage version.
	/// 3: `Migration::accepted`, `PrimaryOffers`, `Beacon` (#13). Like 2, it ships with a new
	/// genesis (the BABE switch), so there is no migration.
	/// 4: `OwnerEpochs`. No migration either: a chain upgraded in place would keep its
	/// segments without epochs (`try_state` reports them); see the README's *Storage version*.
	/// 5: `Migration::proven` (the fenced handover), migrated by [`crate::migrations::v5`].
	/// 6: `Migration::sealed` (the target confirms the seal), migrated by
	/// [`crate::migrations::v6`].
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(6);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Configuration of the pallet.
	#[pallet::config]
	pub trait Config: CreateSignedTransaction<Call<Self>> + frame_system::Config {
		/// Currency from which node deposits are held.
		type Currency: fungible::InspectHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ fungible::MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The runtime's hold reason, which must include this pallet's [`HoldReason`].
		type RuntimeHoldReason: From<HoldReason>;
		/// Keys the off-chain worker signs proofs with (key type `sync`).
		type AuthorityId: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>;

		/// Deposit held while a node is registered; penalties are burnt from it.
		#[pallet::constant]
		type NodeDeposit: Get<BalanceOf<Self>>;
		/// Part of the deposit burnt for each missed challenge.
		#[pallet::constant]
		type FailurePenalty: Get<sp_runtime::Perbill>;
		/// Consecutive missed challenges after which a holder is dropped from the segment.
		#[pallet::constant]
		type MaxFailures: Get<u32>;
		/// Held deposit below which a node is suspended: it cannot claim or join until it tops
		/// up ([`Pallet::top_up_deposit`]).
		#[pallet::constant]
		type MinDeposit: Get<BalanceOf<Self>>;
		/// Blocks the failure count of a holder that left a segment is remembered; rejoining
		/// within them restores it.
		#[pallet::constant]
		type FailureMemory: Get<BlockNumberFor<Self>>;
		/// Blocks a holding may stay `Syncing` without an open challenge before it is dropped.
		#[pallet::constant]
		type SyncingTimeout: Get<BlockNumberFor<Self>>;

		/// Most Primaries (owner included) per segment.
		#[pallet::constant]
		type MaxPrimaries: Get<u32>;
		/// Most non-owner holders per segment.
		#[pallet::constant]
		type MaxHolders: Get<u32>;
		/// Most segments a node owns, co-owns or holds.
		#[pallet::constant]
		type MaxSegmentsPerNode: Get<u32>;

		/// Number of committed roots kept per segment.
		#[pallet::constant]
		type RootRetention: Get<u32>;
		/// Commits a holder may be behind before it becomes Lagging.
		#[pallet::constant]
		type MaxLag: Get<u32>;
		/// Largest seq advance of one commit (so the seq space cannot be exhausted).
		#[pallet::constant]
		type MaxSeqStep: Get<u64>;
		/// Number of ownership epochs kept per segment ([`OwnerEpochs`], ≥ 1); when a new epoch
		/// would not fit, the oldest is dropped.
		#[pallet::constant]
		type MaxOwnerEpochs: Get<u32>;

		/// Chunks sampled by one challenge (`k`).
		#[pallet::constant]
		type ChallengeLeaves: Get<u32>;
		/// Largest accepted encoded proof, in bytes.
		#[pallet::constant]
		type MaxProofBytes: Get<u32>;

		/// Blocks between a claim and the block whose [`Beacon`] seeds its challenge (≥ 1).
		#[pallet::constant]
		type ChallengeDelay: Get<BlockNumberFor<Self>>;
		/// Blocks after the seed block in which the proof is accepted.
		#[pallet::constant]
		type ProofWindow: Get<BlockNumberFor<Self>>;
		/// Mean blocks between re-challenges of an Active holder.
		#[pallet::constant]
		type ReChallengePeriod: Get<BlockNumberFor<Self>>;
		/// Re-checks per `ReChallengePeriod`: every `ReChallengePeriod / ReChallengeTicks`
		/// blocks a holder is challenged with probability `1 / ReChallengeTicks`, drawn from
		/// the beacon, so nobody knows a re-challenge is coming before the block before it.
		/// `1` re-challenges exactly every period (predictably).
		#[pallet::constant]
		type ReChallengeTicks: Get<u32>;
		/// Per-block randomness folded into the challenge [`Beacon`]: it must be fixed before
		/// the block's author chooses the block's contents (the runtime feeds BABE's VRF output
		/// of the parent block, `pallet_babe::ParentBlockRandomness`). A block hash is not
		/// acceptable: its author can grind it.
		type Randomness: frame_support::traits::Randomness<Self::Hash, BlockNumberFor<Self>>;

		/// Blocks a Leaving node waits before it may deregister (longer than a challenge).
		#[pallet::constant]
		type LeaveDelay: Get<BlockNumberFor<Self>>;
		/// Blocks a migration target has to prove before the request times out.
		#[pallet::constant]
		type MigrationTimeout: Get<BlockNumberFor<Self>>;
		/// Blocks the old provider remains a Primary after a migration completes.
		#[pallet::constant]
		type MigrationRetention: Get<BlockNumberFor<Self>>;
		/// Blocks the old owner has, once the target's proof is accepted, to seal its epoch
		/// ([`Pallet::seal_segment`]), after which the chain seals it at the latest commit; and
		/// then blocks the target has to confirm the seal ([`Pallet::confirm_seal`]), after
		/// which the migration times out (at least 1).
		#[pallet::constant]
		type SealTimeout: Get<BlockNumberFor<Self>>;
		/// Blocks an offered Primary seat ([`Pallet::add_primary`]) can be accepted.
		#[pallet::constant]
		type OfferTimeout: Get<BlockNumberFor<Self>>;

		/// Most scheduled tasks (expiries, re-challenges, migration deadlines, timeouts) run by
		/// one block's `on_initialize`; later ones run in the next blocks (see [`schedule`]).
		#[pallet::constant]
		type MaxScheduledPerBlock: Get<u32>;
		/// Weights of this pallet's calls and hooks, from its benchmarks.
		type WeightInfo: WeightInfo;
	}

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// Deposit of a registered node.
		#[codec(index = 0)]
		NodeDeposit,
	}

	/// Registered nodes by account.
	#[pallet::storage]
	pub type Nodes<T: Config> =
		CountedStorageMap<_, Blake2_128Concat, T::AccountId, NodeInfoOf<T>, OptionQuery>;

	/// Reverse index: data-plane peer id → account.
	#[pallet::storage]
	pub type PeerIds<T: Config> =
		StorageMap<_, Blake2_128Concat, PeerIdBytes, T::AccountId, OptionQuery>;

	/// Segments a node owns, is a Primary of, or holds.
	#[pallet::storage]
	pub type NodeSegments<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, SegmentListOf<T>, ValueQuery>;

	/// Id of the next segment.
	#[pallet::storage]
	pub type NextSegmentId<T> = StorageValue<_, SegmentId, ValueQuery>;

	/// Segments by id.
	#[pallet::storage]
	pub type Segments<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, SegmentInfoOf<T>, OptionQuery>;

	/// The retained committed roots of each segment, oldest first.
	#[pallet::storage]
	pub type Roots<T: Config> = StorageMap<_, Twox64Concat, SegmentId, RootWindowOf<T>, ValueQuery>;

	/// The ownership history of each segment, oldest first: who owned it, with which
	/// data-plane peer id, from which seq on (see [`OwnerEpoch`]).
	///
	/// A follower verifies an op checkpoint against the key of the owner of the checkpoint's
	/// epoch, not of the current owner, so the old owner's signed history stays verifiable
	/// after a migration, a [`Pallet::force_set_owner`] or an owner's new peer id. A new epoch
	/// starts at each of those and at creation (epoch 1, `first_seq` 1), through
	/// `Pallet::start_epoch` only. At most [`Config::MaxOwnerEpochs`] are kept: a new one drops
	/// the oldest, and a follower whose head is older than the oldest retained epoch's
	/// `first_seq` re-syncs by snapshot. The last entry is always the current owner with its
	/// currently registered peer id (`try_state` checks it).
	#[pallet::storage]
	pub type OwnerEpochs<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, EpochsOf<T>, ValueQuery>;

	/// Holdings: (segment, holder) → sync state.
	#[pallet::storage]
	pub type Holdings<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		SegmentId,
		Blake2_128Concat,
		T::AccountId,
		Holding<BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// Parity votes for the latest root of a segment: (seq, root, Primaries that attested).
	#[pallet::storage]
	pub type ParityVotes<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, (u64, Hash32, VotesOf<T>), OptionQuery>;

	/// Id of the next challenge.
	#[pallet::storage]
	pub type NextChallengeId<T> = StorageValue<_, ChallengeId, ValueQuery>;

	/// Open challenges.
	#[pallet::storage]
	pub type Challenges<T: Config> =
		StorageMap<_, Twox64Concat, ChallengeId, ChallengeOf<T>, OptionQuery>;

	/// The open challenge of each (node, segment); at most one.
	#[pallet::storage]
	pub type OpenChallenge<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Twox64Concat,
		SegmentId,
		ChallengeId,
		OptionQuery,
	>;

	/// Scheduled work: one key per [`Task`] under the block it is due at (see [`schedule`]).
	#[pallet::storage]
	pub type Agenda<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		Blake2_128Concat,
		TaskOf<T>,
		(),
		OptionQuery,
	>;

	/// The challenge beacon: `Beacon[b] = blake2(Beacon[b-1] ‖ randomness(b) ‖ b)`, written at
	/// the start of block `b + 1` from [`Config::Randomness`]; kept `ProofWindow + 2` blocks.
	/// A challenge seeded at block `b` is unknown until block `b` is published.
	#[pallet::storage]
	pub type Beacon<T: Config> =
		StorageMap<_, Twox64Concat, BlockNumberFor<T>, Hash32, OptionQuery>;

	/// The oldest block whose tasks may not all have run yet.
	#[pallet::storage]
	pub type AgendaCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, OptionQuery>;

	/// Failures of accounts that left a segment, remembered for `FailureMemory` blocks.
	#[pallet::storage]
	pub type FailureRecords<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		SegmentId,
		Blake2_128Concat,
		T::AccountId,
		FailureRecord<BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// Co-Primaries whose attested root differs from the committed one: (seq, their root).
	#[pallet::storage]
	pub type Divergences<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		SegmentId,
		Blake2_128Concat,
		T::AccountId,
		(u64, Hash32),
		OptionQuery,
	>;

	/// Primary seats offered by a segment's owner and not accepted yet: (segment, account) →
	/// last block the offer can be accepted. At most `MaxPrimaries` per segment (an offer holds
	/// a seat until it expires; expired ones are removed by the next `add_primary`).
	#[pallet::storage]
	pub type PrimaryOffers<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		SegmentId,
		Blake2_128Concat,
		T::AccountId,
		BlockNumberFor<T>,
		OptionQuery,
	>;

	/// Migrations by segment (pending, or completed and retaining the old provider).
	#[pallet::storage]
	pub type Migrations<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, MigrationOf<T>, OptionQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A node registered; its deposit is held and its status is `Joining`.
		NodeRegistered {
			who: T::AccountId,
			role: NodeRole,
			peer_id: PeerIdBytes,
			deposit: BalanceOf<T>,
		},
		/// A node changed its peer id and/or multiaddrs.
		NodeUpdated { who: T::AccountId, peer_id: PeerIdBytes, multiaddrs: Multiaddrs },
		/// A node's summarised status changed.
		NodeStatusChanged { who: T::AccountId, status: NodeStatus },
		/// A node announced it is leaving; it may deregister from `leave_at`.
		NodeLeaving { who: T::AccountId, leave_at: BlockNumberFor<T> },
		/// A node was removed (status `Retired`) and its remaining deposit released.
		NodeDeregistered { who: T::AccountId, released: BalanceOf<T>, forced: bool },
		/// A segment was created.
		SegmentCreated { segment: SegmentId, owner: T::AccountId },
		/// The owner offered `who` a Primary seat; `who` may accept it until `until`.
		PrimaryOffered { segment: SegmentId, who: T::AccountId, until: BlockNumberFor<T> },
		/// An offered Primary seat was withdrawn by the owner, or expired unaccepted.
		PrimaryOfferWithdrawn { segment: SegmentId, who: T::AccountId },
		/// A co-Primary was added to a segment (it accepted the offer).
		PrimaryAdded { segment: SegmentId, who: T::AccountId },
		/// A co-Primary was removed from a segment (it stays a holder).
		PrimaryRemoved { segment: SegmentId, who: T::AccountId },
		/// A node became a holder of a segment (status `Syncing`).
		HolderJoined { segment: SegmentId, who: T::AccountId },
		/// A node stopped holding a segment.
		HolderLeft { segment: SegmentId, who: T::AccountId },
		/// The owner committed a root.
		RootCommitted {
			segment: SegmentId,
			seq: u64,
			root: Hash32,
			leaves: u64,
			entries: u64,
			bytes: u64,
			index: u32,
			committer: T::AccountId,
		},
		/// A Primary attested the latest root.
		RootAttested { segment: SegmentId, seq: u64, who: T::AccountId },
		/// Every Primary of the segment attested the same root.
		ParityReached { segment: SegmentId, seq: u64, root: Hash32 },
		/// A challenge was issued; answer after `seed_block`, by `deadline`.
		ChallengeIssued {
			id: ChallengeId,
			segment: SegmentId,
			who: T::AccountId,
			seq: u64,
			kind: ChallengeKind,
			seed_block: BlockNumberFor<T>,
			deadline: BlockNumberFor<T>,
		},
		/// A Proof-of-Sync was accepted: `who` holds `root` of `segment` (the backup completed).
		SyncProven {
			id: ChallengeId,
			segment: SegmentId,
			who: T::AccountId,
			seq: u64,
			root: Hash32,
			kind: ChallengeKind,
		},
		/// A challenge expired unanswered.
		ChallengeExpired { id: ChallengeId, segment: SegmentId, who: T::AccountId, failures: u32 },
		/// A holder left (or was forced out) with a challenge open: counted as a failure.
		ChallengeAbandoned { id: ChallengeId, segment: SegmentId, who: T::AccountId, failures: u32 },
		/// A penalty left a node's deposit below `MinDeposit`: it cannot claim or join until it
		/// tops up.
		NodeSuspended { who: T::AccountId, deposit: BalanceOf<T> },
		/// A node topped its held deposit back up to `NodeDeposit`.
		DepositToppedUp { who: T::AccountId, amount: BalanceOf<T>, deposit: BalanceOf<T> },
		/// The owner (or Root) removed a holder.
		HolderRemoved { segment: SegmentId, who: T::AccountId },
		/// A co-Primary attested a root that differs from the committed one at `seq`.
		RootDiverged {
			segment: SegmentId,
			seq: u64,
			who: T::AccountId,
			committed: Hash32,
			attested: Hash32,
		},
		/// Root cleared a segment's retained roots.
		RootsReset { segment: SegmentId },
		/// Part of a node's deposit was burnt.
		Penalized { who: T::AccountId, amount: BalanceOf<T> },
		/// A holder fell more than `MaxLag` commits behind.
		HolderLagging { segment: SegmentId, who: T::AccountId, proven_seq: u64, latest_seq: u64 },
		/// A holder was dropped: `MaxFailures` consecutive failed challenges, or `Syncing` for
		/// longer than `SyncingTimeout`.
		HolderDropped { segment: SegmentId, who: T::AccountId },
		/// A provider migration was requested.
		MigrationRequested {
			segment: SegmentId,
			from: T::AccountId,
			to: T::AccountId,
			until: BlockNumberFor<T>,
		},
		/// The target accepted a requested migration; it now holds the segment and must prove.
		MigrationAccepted { segment: SegmentId, to: T::AccountId },
		/// The target's proof was accepted: the old owner now seals its epoch (refusing writes)
		/// by `seal_by`, after which the chain seals it at the latest commit.
		MigrationProven {
			segment: SegmentId,
			to: T::AccountId,
			seq: u64,
			seal_by: BlockNumberFor<T>,
		},
		/// The owner's epoch ended at `seq`: its last op (sealed by the owner with
		/// [`Pallet::seal_segment`]) or, `timed_out`, the latest commit when the owner did not
		/// seal in time. Once the target confirms it holds the root there
		/// ([`Pallet::confirm_seal`]), ownership moves and the next epoch starts at `seq + 1`.
		EpochSealed { segment: SegmentId, owner: T::AccountId, seq: u64, timed_out: bool },
		/// Ownership moved to the target at the sealed `seq` (the old owner's last op); the
		/// target's epoch starts at `seq + 1`.
		MigrationCompleted { segment: SegmentId, from: T::AccountId, to: T::AccountId, seq: u64 },
		/// A pending migration was cancelled.
		MigrationCancelled { segment: SegmentId, to: T::AccountId },
		/// A pending migration timed out: unproven by `until`, or sealed and not confirmed by
		/// the target within [`Config::SealTimeout`] blocks (the old owner keeps the segment
		/// and writes on from its seal).
		MigrationTimedOut { segment: SegmentId, to: T::AccountId },
		/// The old provider's retention after a migration ended.
		ProviderReleased { segment: SegmentId, who: T::AccountId },
		/// Root set the owner of a segment.
		OwnerForced { segment: SegmentId, from: T::AccountId, to: T::AccountId },
		/// A new ownership epoch of a segment started (creation, completed migration,
		/// `force_set_owner`, or the owner's new peer id): from `first_seq` on, `owner`'s ops
		/// are signed by the key of `peer_id`. Recorded in [`OwnerEpochs`].
		EpochStarted {
			segment: SegmentId,
			epoch: u32,
			owner: T::AccountId,
			peer_id: PeerIdBytes,
			first_seq: u64,
		},
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The account already has a registered node.
		AlreadyRegistered,
		/// The account has no registered node.
		NotRegistered,
		/// The peer id is registered to another account.
		PeerIdTaken,
		/// The peer id is not a well-formed libp2p peer id (identity or sha2-256 multihash).
		InvalidPeerId,
		/// A multiaddr is not in text form (`/ip4/…/tcp/…`), or the list is empty.
		InvalidMultiaddr,
		/// The account's free balance cannot cover the node deposit.
		InsufficientDeposit,
		/// The call would change nothing.
		NothingToUpdate,
		/// The node holds segments: announce leave and wait for the leave delay first.
		NodeBusy,
		/// The node is leaving and cannot take on new work.
		NodeLeaving,
		/// The node has already announced leaving.
		AlreadyLeaving,
		/// The leave delay has not passed yet.
		LeaveDelayNotPassed,
		/// The node owns segments; migrate them first.
		OwnsSegments,
		/// The node has the wrong role for this (e.g. only Primaries own segments).
		WrongRole,
		/// No such segment.
		UnknownSegment,
		/// The caller is neither the segment's owner nor Root.
		NotOwner,
		/// The account is not a Primary of the segment.
		NotPrimary,
		/// The account is already a Primary of the segment.
		AlreadyPrimary,
		/// The owner cannot be removed or added as a holder.
		IsOwner,
		/// The account does not hold the segment.
		NotHolder,
		/// The account already holds the segment.
		AlreadyHolder,
		/// The segment has the maximum number of Primaries.
		TooManyPrimaries,
		/// The segment has the maximum number of holders.
		TooManyHolders,
		/// The node has the maximum number of segments.
		TooManySegments,
		/// The seq is not greater than the latest committed seq (or, attesting, not the latest).
		StaleSeq,
		/// Leaf, entry and byte counts are inconsistent.
		InvalidRootFacts,
		/// No retained root with this seq (never committed, or pruned).
		UnknownRoot,
		/// The attested root differs from the committed one.
		RootMismatch,
		/// The Primary already attested this root.
		AlreadyAttested,
		/// The holder already proved this root or a newer one.
		AlreadyProven,
		/// The holder already has an open challenge for this segment.
		ChallengeAlreadyOpen,
		/// No such open challenge.
		UnknownChallenge,
		/// The challenge is for another node.
		NotChallenged,
		/// The challenge's seed block has not been produced yet.
		ChallengeNotReady,
		/// The encoded proof is larger than `MaxProofBytes`.
		ProofTooLarge,
		/// The proof does not verify against the challenged root.
		InvalidProof,
		/// A migration of this segment is already pending.
		MigrationPending,
		/// No pending migration for this segment.
		NoMigration,
		/// The target already owns the segment.
		AlreadyOwner,
		/// The node's held deposit is below `MinDeposit`: top it up first.
		DepositTooLow,
		/// The seq advances by more than `MaxSeqStep` over the latest root.
		SeqStepTooLarge,
		/// The segment already has a commit in this block.
		CommitTooSoon,
		/// The root is of an empty segment: there is nothing to prove.
		NothingToProve,
		/// The account was removed from (or dropped by) this segment recently; it may rejoin
		/// after `FailureMemory` blocks.
		RejoinBarred,
		/// The peer id is not an Ed25519 libp2p peer id (the only kind whose binding the chain
		/// can verify), or its key is a small-order point that nobody holds.
		PeerIdNotEd25519,
		/// The peer-id binding signature is missing or was not made by the peer id's key for
		/// this chain and this account.
		BadPeerSignature,
		/// No offer (Primary seat or migration) to the caller for this segment, or it expired.
		NoOffer,
		/// The account was already offered a Primary seat of this segment.
		AlreadyOffered,
		/// The holder has an open challenge whose indexes are known: wait until it is answered
		/// or expires (removing it now would erase a failure it may be due).
		ChallengeInProgress,
		/// The migration's target has not proven the segment yet: there is nothing to seal.
		NotProven,
		/// The seal names the latest commit's seq with other root facts; or a confirmation
		/// names another seq or root than the seal.
		SealMismatch,
		/// The migration is sealed already: the old owner takes no more seals or commits,
		/// and ownership moves when the target confirms the seal.
		AlreadySealed,
		/// The migration is not sealed yet: there is nothing to confirm.
		NotSealed,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			Self::do_on_initialize(now)
		}

		fn offchain_worker(now: BlockNumberFor<T>) {
			crate::ocw::run::<T>(now);
		}

		fn integrity_test() {
			Self::do_integrity_test()
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register the signing account as a storage node.
		/// - Origin: any signed account without a registered node.
		/// - `role`: `Primary` (owns segments, accepts writes, commits roots) or `Replica`.
		/// - `peer_id`: binary libp2p peer id of the node's data plane, unique on chain.
		/// - `multiaddrs`: 1 to 8 text multiaddrs of the data plane, e.g.
		///   `/ip4/127.0.0.1/tcp/30433`.
		/// - `peer_signature`: the peer id's Ed25519 key's signature over
		///   [`sync_primitives::peer_binding_message`] (this chain's genesis hash, the caller's
		///   account, the peer id), so nobody registers an identity whose key they do not hold.
		///   `sync-node` produces it itself (`--sync-register`); for polkadot.js,
		///   `sync-node key sign-peer-binding` prints it. Only Ed25519 peer ids can be bound.
		///
		/// Holds [`Config::NodeDeposit`]; the node starts `Joining`.
		/// Emits [`Event::NodeRegistered`].
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_node())]
		pub fn register_node(
			origin: OriginFor<T>,
			role: NodeRole,
			peer_id: PeerIdBytes,
			multiaddrs: Multiaddrs,
			peer_signature: PeerSignature,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_register_node(who, role, peer_id, multiaddrs, peer_signature)
		}

		/// Change the data-plane peer id and/or multiaddrs of the caller's node.
		/// - Origin: the node's account.
		/// - `peer`: a new peer id with its binding signature (as for
		///   [`Pallet::register_node`]), or `None` to keep the current one.
		/// - `multiaddrs`: new addresses, or `None` to keep the current ones.
		///
		/// A new peer id starts a new ownership epoch ([`OwnerEpochs`]) of every segment the
		/// node owns, so ops signed by its old key stay verifiable in their epoch. The weight
		/// covers a node in [`Config::MaxSegmentsPerNode`] segments; the unused part is refunded.
		///
		/// Fails with [`Error::NothingToUpdate`] if nothing would change.
		/// Emits [`Event::NodeUpdated`] with the resulting identity (and [`Event::EpochStarted`]
		/// per owned segment when the peer id changed).
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::update_node(T::MaxSegmentsPerNode::get()))]
		pub fn update_node(
			origin: OriginFor<T>,
			peer: Option<(PeerIdBytes, PeerSignature)>,
			multiaddrs: Option<Multiaddrs>,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_update_node(who, peer, multiaddrs)
		}

		/// Remove the caller's node and release its deposit.
		/// - Origin: the node's account.
		/// - Allowed at once while the node is `Joining` (holds nothing); otherwise only when it
		///   is `Leaving` and [`Config::LeaveDelay`] has passed. Its holdings, Primary seats and
		///   open challenges are removed.
		///
		/// Emits [`Event::HolderLeft`] per holding and [`Event::NodeDeregistered`].
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::deregister_node(T::MaxSegmentsPerNode::get()))]
		pub fn deregister_node(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_deregister_node(who)
		}

		/// Remove any node and release its deposit (governance fix-up).
		/// - Origin: Root.
		/// - `who`: the node's account; it must not own segments (use
		///   [`Pallet::force_set_owner`] first).
		///
		/// Emits [`Event::HolderLeft`] per holding and [`Event::NodeDeregistered`] (forced).
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::deregister_node(T::MaxSegmentsPerNode::get()))]
		pub fn force_deregister(
			origin: OriginFor<T>,
			who: T::AccountId,
		) -> DispatchResultWithPostInfo {
			ensure_root(origin)?;
			Self::do_force_deregister(who)
		}

		/// Announce that the caller's node is leaving the network.
		/// - Origin: the node's account; it must own no segment and not be a pending migration
		///   target.
		///
		/// The node becomes `Leaving` and keeps serving (and answering challenges) until it
		/// deregisters, which is possible from `now + LeaveDelay`.
		/// Emits [`Event::NodeLeaving`] and [`Event::NodeStatusChanged`].
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::announce_leave(T::MaxSegmentsPerNode::get()))]
		pub fn announce_leave(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_announce_leave(who)
		}

		/// Create a segment owned by the caller.
		/// - Origin: a registered Primary that is not leaving.
		///
		/// The segment gets the next id, no roots yet, and the caller as owner and only Primary;
		/// its ownership epoch 1 starts at seq 1 with the caller's peer id.
		/// Emits [`Event::SegmentCreated`] and [`Event::EpochStarted`].
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::create_segment())]
		pub fn create_segment(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_create_segment(who)
		}

		/// Offer a co-Primary seat of a segment; nothing changes for `who` until it accepts
		/// with [`Pallet::accept_primary`] within [`Config::OfferTimeout`] blocks.
		/// - Origin: the segment's owner, or Root.
		/// - `who`: a registered Primary that is not leaving, not a Primary of the segment and
		///   not already offered. The offer holds a seat until it expires.
		///
		/// Emits [`Event::PrimaryOffered`] (and [`Event::PrimaryOfferWithdrawn`] for expired
		/// offers it clears).
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::add_primary())]
		pub fn add_primary(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			let seg = Self::owned_segment(origin, segment)?;
			Self::do_add_primary(segment, seg, who)
		}

		/// Remove a co-Primary from a segment (it remains a holder), or withdraw a seat offered
		/// to it and not accepted yet.
		/// - Origin: the segment's owner, or Root.
		/// - `who`: a Primary of the segment other than the owner, or an account with an offer.
		///
		/// Emits [`Event::PrimaryRemoved`] or [`Event::PrimaryOfferWithdrawn`].
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::remove_primary())]
		pub fn remove_primary(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			let seg = Self::owned_segment(origin, segment)?;
			Self::do_remove_primary(segment, seg, who)
		}

		/// Become a holder of a segment (to mirror it).
		/// - Origin: a registered node that is not leaving or suspended and does not own or hold
		///   the segment.
		///
		/// The holding starts `Syncing`; the node proves it with [`Pallet::claim_sync`] within
		/// [`Config::SyncingTimeout`] blocks or is dropped. Failures it left this segment with
		/// in the last [`Config::FailureMemory`] blocks are restored.
		/// Emits [`Event::HolderJoined`].
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::join_segment())]
		pub fn join_segment(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_join_segment(who, segment)
		}

		/// Stop holding a segment.
		/// - Origin: a holder of the segment. A co-Primary also gives up its Primary seat; a
		///   pending migration to the caller is cancelled. An open challenge counts as failed
		///   (penalty, failure count, [`Event::ChallengeAbandoned`]).
		///
		/// Emits [`Event::HolderLeft`] (and [`Event::PrimaryRemoved`],
		/// [`Event::MigrationCancelled`]).
		#[pallet::call_index(9)]
		#[pallet::weight(T::WeightInfo::leave_segment())]
		pub fn leave_segment(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_leave_segment(who, segment)
		}

		/// Commit the root of a segment's state at `seq`.
		/// - Origin: the segment's owner (co-Primaries attest with [`Pallet::attest_root`]).
		/// - `seq`: last op included; must exceed the latest committed seq, by at most
		///   [`Config::MaxSeqStep`]; one commit per segment per block.
		/// - `facts`: root hash, total 1 KiB chunks (`leaves`), objects (`entries`) and `bytes`,
		///   as computed by `sync_primitives::commitment::SegmentTrie`; consistent with each
		///   other, and an empty segment (`leaves == 0`) has `root == empty_root()`.
		///
		/// Keeps the last [`Config::RootRetention`] roots. Holders whose proven root is now more
		/// than [`Config::MaxLag`] commits behind become `Lagging`. The committer's commit counts
		/// as its parity vote.
		/// Emits [`Event::RootCommitted`], and [`Event::HolderLagging`] per newly lagging holder.
		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::commit_root(T::MaxHolders::get()))]
		pub fn commit_root(
			origin: OriginFor<T>,
			segment: SegmentId,
			seq: u64,
			facts: RootFacts,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_commit_root(who, segment, seq, facts)
		}

		/// Attest, as a co-Primary, the root the caller computed for a committed seq.
		/// - Origin: a co-Primary of the segment (not the owner: its commit is its vote).
		/// - `seq`: a retained commit; `root`: the caller's root at that seq.
		///
		/// The committed root at the latest seq is a parity vote: emits [`Event::RootAttested`],
		/// and [`Event::ParityReached`] once every Primary has. A *different* root is recorded
		/// in [`Divergences`] (and the runtime API) with [`Event::RootDiverged`].
		#[pallet::call_index(11)]
		#[pallet::weight(T::WeightInfo::attest_root())]
		pub fn attest_root(
			origin: OriginFor<T>,
			segment: SegmentId,
			seq: u64,
			root: Hash32,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_attest_root(who, segment, seq, root)
		}

		/// Claim to hold the retained root `seq` of a segment; issues a Proof-of-Sync challenge.
		/// - Origin: a holder of the segment without an open challenge for it, not suspended
		///   (held deposit ≥ [`Config::MinDeposit`]).
		/// - `seq`: a retained root newer than the holder's last proven one (a pending
		///   migration target may re-prove its current root).
		///
		/// The challenge is seeded by the [`Beacon`] of block `now + ChallengeDelay` (unknown
		/// until that block is published) and must be answered with [`Pallet::submit_proof`]
		/// by `seed + ProofWindow`.
		/// Emits [`Event::ChallengeIssued`].
		#[pallet::call_index(12)]
		#[pallet::weight(T::WeightInfo::claim_sync())]
		pub fn claim_sync(origin: OriginFor<T>, segment: SegmentId, seq: u64) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_claim_sync(who, segment, seq)
		}

		/// Answer a challenge with a Proof-of-Sync.
		///
		/// Operational class, so honest proofs are not crowded out of full blocks; an accepted
		/// proof pays no fee (`Pays::No`), a refused one pays.
		/// - Origin: the challenged node.
		/// - `id`: the challenge; accepted after its seed block and up to its deadline.
		/// - `proof`: one chunk proof per challenged index (built by the node's store; the
		///   off-chain worker submits it), at most [`Config::MaxProofBytes`] encoded.
		///
		/// On success the holding becomes `Active` (or stays `Lagging` if the root is already too
		/// old), failures reset, a re-challenge is scheduled, and a pending migration to the caller
		/// becomes proven: the old owner has [`Config::SealTimeout`] blocks to seal its epoch
		/// ([`Pallet::seal_segment`]). A wrong proof fails with [`Error::InvalidProof`] and
		/// changes nothing.
		/// Emits [`Event::SyncProven`] (and [`Event::MigrationProven`]).
		#[pallet::call_index(13)]
		#[pallet::weight((T::WeightInfo::submit_proof(), DispatchClass::Operational))]
		pub fn submit_proof(
			origin: OriginFor<T>,
			id: ChallengeId,
			proof: SyncProof,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_submit_proof(who, id, proof)
		}

		/// Ask that a segment move to another provider.
		/// - Origin: the segment's owner, or Root.
		/// - `to`: a registered Primary, not leaving, not the owner. Nothing changes for `to`
		///   until it calls [`Pallet::accept_migration`]; then it becomes a holder if it is not
		///   one and must prove a root at least as new as the latest at request time.
		///
		/// Times out (accepted or not) after [`Config::MigrationTimeout`] blocks.
		/// Emits [`Event::MigrationRequested`].
		#[pallet::call_index(14)]
		#[pallet::weight(T::WeightInfo::request_migration())]
		pub fn request_migration(
			origin: OriginFor<T>,
			segment: SegmentId,
			to: T::AccountId,
		) -> DispatchResult {
			let seg = Self::owned_segment(origin, segment)?;
			Self::do_request_migration(segment, seg, to)
		}

		/// Cancel a pending migration.
		/// - Origin: the segment's owner, or Root.
		///
		/// A target that became a holder only for this migration and has not proven is removed.
		/// Emits [`Event::MigrationCancelled`].
		#[pallet::call_index(15)]
		#[pallet::weight(T::WeightInfo::cancel_migration())]
		pub fn cancel_migration(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			Self::owned_segment(origin, segment)?;
			Self::do_cancel_migration(segment)
		}

		/// Set the owner of a segment (governance fix-up, e.g. when an owner vanished).
		/// - Origin: Root.
		/// - `who`: a registered Primary. It stops being a holder; the old owner stays a
		///   Primary and becomes a holder that must prove.
		///
		/// A new ownership epoch starts for `who` after the latest retained commit.
		/// Emits [`Event::OwnerForced`] and [`Event::EpochStarted`].
		#[pallet::call_index(16)]
		#[pallet::weight(T::WeightInfo::force_set_owner())]
		pub fn force_set_owner(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			ensure_root(origin)?;
			Self::do_force_set_owner(segment, who)
		}

		/// Top the caller's held deposit back up to [`Config::NodeDeposit`] (after penalties),
		/// ending a suspension.
		/// - Origin: a registered node whose deposit is below `NodeDeposit`.
		///
		/// Emits [`Event::DepositToppedUp`].
		#[pallet::call_index(17)]
		#[pallet::weight(T::WeightInfo::top_up_deposit())]
		pub fn top_up_deposit(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_top_up_deposit(who)
		}

		/// Remove a holder from a segment (e.g. one that squats a seat).
		/// - Origin: the segment's owner, or Root.
		/// - `who`: a holder other than the owner. A co-Primary also loses its seat; a pending
		///   migration to it is cancelled. Its open challenge is closed without penalty (being
		///   removed is not its failure).
		///
		/// Emits [`Event::HolderRemoved`].
		#[pallet::call_index(18)]
		#[pallet::weight(T::WeightInfo::leave_segment())]
		pub fn remove_holder(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			let seg = Self::owned_segment(origin, segment)?;
			Self::do_remove_holder(segment, seg, who)
		}

		/// Clear a segment's retained roots and parity votes (governance fix-up after a bad
		/// commit); the next commit may start at any seq up to `MaxSeqStep`.
		/// - Origin: Root.
		///
		/// Holders keep what they proved; commit indexes keep counting.
		/// Emits [`Event::RootsReset`].
		#[pallet::call_index(19)]
		#[pallet::weight(T::WeightInfo::force_reset_roots())]
		pub fn force_reset_roots(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			ensure_root(origin)?;
			Self::do_force_reset_roots(segment)
		}

		/// End a segment's migration record now (governance fix-up for a stuck migration).
		/// - Origin: Root.
		///
		/// A pending migration is cancelled; a completed one releases the old provider.
		/// Emits [`Event::MigrationCancelled`] or [`Event::ProviderReleased`].
		#[pallet::call_index(20)]
		#[pallet::weight(T::WeightInfo::migration_deadline())]
		pub fn force_clear_migration(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			ensure_root(origin)?;
			Self::do_force_clear_migration(segment)
		}

		/// Take the co-Primary seat of a segment that its owner offered the caller
		/// ([`Pallet::add_primary`]), before the offer expires.
		/// - Origin: the offered account: a registered Primary that is not leaving.
		///
		/// The caller becomes a Primary and, if it does not hold the segment, a `Syncing`
		/// holder that must prove like any holder. Fails with [`Error::NoOffer`] without an
		/// unexpired offer.
		/// Emits [`Event::PrimaryAdded`] (and [`Event::HolderJoined`]).
		#[pallet::call_index(21)]
		#[pallet::weight(T::WeightInfo::accept_primary())]
		pub fn accept_primary(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_accept_primary(segment, who)
		}

		/// Accept becoming the new provider of a segment whose owner requested a migration to
		/// the caller ([`Pallet::request_migration`]).
		/// - Origin: the migration's target: a registered Primary that is not leaving.
		///
		/// The caller becomes a holder if it is not one; ownership moves once it proves a root
		/// at least as new as the latest at request time, before the migration times out.
		/// Fails with [`Error::NoOffer`] if no unaccepted migration names the caller.
		/// Emits [`Event::MigrationAccepted`] (and [`Event::HolderJoined`]).
		#[pallet::call_index(22)]
		#[pallet::weight(T::WeightInfo::accept_migration())]
		pub fn accept_migration(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_accept_migration(segment, who)
		}

		/// Seal the owner's epoch of a segment whose migration is proven: the fenced handover.
		/// - Origin: the segment's owner (its node's off-chain worker submits it once the node
		///   has stopped taking writes).
		/// - `seq`, `facts`: the owner's last op and its root: the latest commit, or a new
		///   commit under `commit_root`'s rules.
		///
		/// Ownership moves to the target when it confirms it holds the sealed root
		/// ([`Pallet::confirm_seal`]) within [`Config::SealTimeout`] blocks, its epoch then
		/// starting at `seq + 1`: every seq belongs to exactly one key. Without the
		/// confirmation the migration times out and the old owner keeps the segment. Fails
		/// with [`Error::NotProven`] before the target's proof, [`Error::NoMigration`] without
		/// a pending migration, [`Error::AlreadySealed`] for a second seal,
		/// [`Error::SealMismatch`] for other facts at the latest commit's seq,
		/// [`Error::StaleSeq`] for an older seq.
		/// Emits [`Event::RootCommitted`] (a new commit) and [`Event::EpochSealed`].
		#[pallet::call_index(23)]
		#[pallet::weight(T::WeightInfo::seal_segment(T::MaxHolders::get()))]
		pub fn seal_segment(
			origin: OriginFor<T>,
			segment: SegmentId,
			seq: u64,
			facts: RootFacts,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let holders = Self::do_seal(who, segment, seq, facts)?;
			Ok(Some(T::WeightInfo::seal_segment(holders)).into())
		}

		/// Confirm, as a migration's target, that the caller holds the root its old owner
		/// sealed the segment at: ownership moves.
		/// - Origin: the migration's target.
		/// - `seq`, `root`: the sealed seq and the root the caller's store has there (its node
		///   sends this once its copy reaches the seal and the roots match).
		///
		/// The target's epoch starts at `seq + 1`. A target that cannot reach the seal (an old
		/// owner sealed at a root it does not serve) does not confirm: the migration times
		/// out and the old owner keeps the segment. Fails with [`Error::NoMigration`] unless
		/// the caller is the target of a pending migration, [`Error::NotSealed`] before the
		/// seal, [`Error::SealMismatch`] for another seq or root.
		/// Emits [`Event::MigrationCompleted`] and [`Event::EpochStarted`].
		#[pallet::call_index(24)]
		#[pallet::weight(T::WeightInfo::confirm_seal())]
		pub fn confirm_seal(
			origin: OriginFor<T>,
			segment: SegmentId,
			seq: u64,
			root: sync_primitives::commitment::Hash32,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_confirm_seal(who, segment, seq, root)
		}
	}
}
