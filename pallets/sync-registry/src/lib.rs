//! # Sync Registry pallet
//!
//! The on-chain source of truth of a storage-provider network: which nodes exist and where their
//! data plane listens, which segments exist and who owns and holds them, which roots their
//! Primaries committed, and which holders *proved* — by answering a random challenge with Merkle
//! proofs — that they hold those roots.
//!
//! ## Nodes
//! A node registers a role (Primary or Replica), a libp2p peer id and multiaddrs, and has
//! [`Config::NodeDeposit`] held under [`HoldReason::NodeDeposit`]. Its status
//! ([`NodeStatus`]) summarises its holdings: `Joining` (holds nothing), `Syncing` (some holding
//! has no accepted proof), `Active`, `Lagging` (some holding is more than [`Config::MaxLag`]
//! commits behind), `Leaving` (announced; may deregister after [`Config::LeaveDelay`]), and
//! `Retired` (only in the deregistration event: retired nodes are deleted).
//!
//! ## Segments and roots
//! A registered Primary creates a segment and becomes its *owner* (provider). The owner (or
//! Root) adds co-Primaries. Primaries commit `(seq, root, leaves, entries, bytes)`; `seq`
//! strictly increases and the last [`Config::RootRetention`] commits are kept. Co-Primaries
//! attest the latest root; when every Primary has, [`Event::ParityReached`] is emitted.
//!
//! ## Proof-of-Sync
//! A holder claims a retained root ([`Pallet::claim_sync`]). The challenge is seeded by the hash
//! of block `claim + ChallengeDelay`, which does not exist at claim time, and selects
//! [`Config::ChallengeLeaves`] (`k`) of the root's 1 KiB chunks uniformly. The holder answers
//! with a [`SyncProof`] before `seed + ProofWindow`. A holder missing a fraction `f` of the
//! chunks passes one challenge with probability at most `(1 − f)^k`; with `k = 6`: 0.4 % for
//! `f = 0.6`, 1.6 % for `f = 0.5`, 11.8 % for `f = 0.3`, and re-challenges multiply these.
//! A wrong proof is refused with [`Error::InvalidProof`] and changes nothing; a missed deadline
//! expires the challenge in `on_initialize`, sets the holding back to `Syncing`, counts a
//! failure and burns [`Config::FailurePenalty`] of the node's deposit; after
//! [`Config::MaxFailures`] consecutive failures the holder is dropped from the segment.
//! Active holders are re-challenged every [`Config::ReChallengePeriod`] blocks.
//!
//! ### Sizing the root window
//! A holder can only claim a retained root, so a full sync must finish within
//! `RootRetention × commit interval`. With the runtime's 16 roots and a Primary committing
//! every 100 blocks (10 min), a sync may take 160 min; a Primary of very large segments should
//! commit less often (or the runtime raise the window). In-flight challenges copy the root's
//! facts and are unaffected by pruning.
//!
//! ## Provider migration
//! The owner (or Root) asks that segment `S` move to Primary `P`. `P` becomes a holder if it is
//! not one, syncs, and proves a root at least as new as the latest at request time through the
//! ordinary claim/proof path. Acceptance of that proof moves ownership atomically; the old owner
//! remains a Primary for [`Config::MigrationRetention`] blocks and is then released. A request
//! can be cancelled by the owner or Root, and times out after [`Config::MigrationTimeout`].
//!
//! ## Bounded hooks
//! Expiries, re-challenges and migration deadlines are kept in per-block buckets of bounded size
//! ([`Config::MaxScheduledPerBlock`]); `on_initialize` processes exactly one bucket of each.
//!
//! Every state change emits an [`Event`]; every refusal is a typed [`Error`] and changes nothing.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
pub mod ocw;
#[cfg(test)]
mod tests;
pub mod types;
pub mod weights;

use alloc::vec::Vec;
use frame_support::traits::fungible;
use sync_primitives::{
	commitment::{Hash32, RootFacts, SyncProof},
	Multiaddrs, NodeRole, NodeStatus, PeerIdBytes, SegmentId,
};

/// Balance type of the currency that holds node deposits.
pub type BalanceOf<T> =
	<<T as Config>::Currency as fungible::Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// Identifier of a challenge.
pub type ChallengeId = u64;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{InspectHold, MutateHold},
			tokens::{Fortitude, Precision},
		},
	};
	use frame_system::{offchain::CreateSignedTransaction, pallet_prelude::*};
	use sp_runtime::{
		traits::{Saturating, Zero},
		Perbill,
	};
	use sync_primitives::{AddressError, NodeSummary};

	/// The in-code storage version.
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Configuration of the pallet.
	#[pallet::config]
	pub trait Config: CreateSignedTransaction<Call<Self>> + frame_system::Config {
		/// Currency from which node deposits are held.
		type Currency: InspectHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;

		/// The runtime's hold reason, which must include this pallet's [`HoldReason`].
		type RuntimeHoldReason: From<HoldReason>;

		/// Keys the off-chain worker signs proofs with (key type `sync`).
		type AuthorityId: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>;

		/// Deposit held while a node is registered; penalties are burnt from it.
		#[pallet::constant]
		type NodeDeposit: Get<BalanceOf<Self>>;

		/// Part of the deposit burnt for each missed challenge.
		#[pallet::constant]
		type FailurePenalty: Get<Perbill>;

		/// Consecutive missed challenges after which a holder is dropped from the segment.
		#[pallet::constant]
		type MaxFailures: Get<u32>;

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

		/// Chunks sampled by one challenge (`k`).
		#[pallet::constant]
		type ChallengeLeaves: Get<u32>;

		/// Largest accepted encoded proof, in bytes.
		#[pallet::constant]
		type MaxProofBytes: Get<u32>;

		/// Blocks between a claim and the block whose hash seeds its challenge (≥ 1).
		#[pallet::constant]
		type ChallengeDelay: Get<BlockNumberFor<Self>>;

		/// Blocks after the seed block in which the proof is accepted.
		#[pallet::constant]
		type ProofWindow: Get<BlockNumberFor<Self>>;

		/// Blocks between re-challenges of an Active holder.
		#[pallet::constant]
		type ReChallengePeriod: Get<BlockNumberFor<Self>>;

		/// Blocks a Leaving node waits before it may deregister (longer than a challenge).
		#[pallet::constant]
		type LeaveDelay: Get<BlockNumberFor<Self>>;

		/// Blocks a migration target has to prove before the request times out.
		#[pallet::constant]
		type MigrationTimeout: Get<BlockNumberFor<Self>>;

		/// Blocks the old provider remains a Primary after a migration completes.
		#[pallet::constant]
		type MigrationRetention: Get<BlockNumberFor<Self>>;

		/// Most expiries / re-challenges / migration deadlines handled per block (each).
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

	/// Stored node record of this runtime.
	pub type NodeInfoOf<T> = NodeInfo<BalanceOf<T>, BlockNumberFor<T>>;
	/// Stored segment record of this runtime.
	pub type SegmentInfoOf<T> = SegmentInfo<
		<T as frame_system::Config>::AccountId,
		BlockNumberFor<T>,
		<T as Config>::MaxPrimaries,
		<T as Config>::MaxHolders,
	>;
	/// Stored root record of this runtime.
	pub type CommittedRootOf<T> =
		CommittedRoot<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
	/// Stored challenge of this runtime.
	pub type ChallengeOf<T> = Challenge<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
	/// Stored migration of this runtime.
	pub type MigrationOf<T> = Migration<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;

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
	pub type NodeSegments<T: Config> = StorageMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		BoundedVec<SegmentId, T::MaxSegmentsPerNode>,
		ValueQuery,
	>;

	/// Id of the next segment.
	#[pallet::storage]
	pub type NextSegmentId<T> = StorageValue<_, SegmentId, ValueQuery>;

	/// Segments by id.
	#[pallet::storage]
	pub type Segments<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, SegmentInfoOf<T>, OptionQuery>;

	/// The retained committed roots of each segment, oldest first.
	#[pallet::storage]
	pub type Roots<T: Config> = StorageMap<
		_,
		Twox64Concat,
		SegmentId,
		BoundedVec<CommittedRootOf<T>, T::RootRetention>,
		ValueQuery,
	>;

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
	pub type ParityVotes<T: Config> = StorageMap<
		_,
		Twox64Concat,
		SegmentId,
		(u64, Hash32, BoundedVec<T::AccountId, T::MaxPrimaries>),
		OptionQuery,
	>;

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

	/// Challenges to expire at the start of a block (deadline + 1).
	#[pallet::storage]
	pub type Expiries<T: Config> = StorageMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		BoundedVec<ChallengeId, T::MaxScheduledPerBlock>,
		ValueQuery,
	>;

	/// Holdings to re-challenge at the start of a block.
	#[pallet::storage]
	pub type ReChallenges<T: Config> = StorageMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		BoundedVec<(SegmentId, T::AccountId), T::MaxScheduledPerBlock>,
		ValueQuery,
	>;

	/// Migrations by segment (pending, or completed and retaining the old provider).
	#[pallet::storage]
	pub type Migrations<T: Config> =
		StorageMap<_, Twox64Concat, SegmentId, MigrationOf<T>, OptionQuery>;

	/// Migration deadlines (timeout or release) at the start of a block.
	#[pallet::storage]
	pub type MigrationDeadlines<T: Config> = StorageMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		BoundedVec<SegmentId, T::MaxScheduledPerBlock>,
		ValueQuery,
	>;

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
		/// A co-Primary was added to a segment.
		PrimaryAdded { segment: SegmentId, who: T::AccountId },
		/// A co-Primary was removed from a segment (it stays a holder).
		PrimaryRemoved { segment: SegmentId, who: T::AccountId },
		/// A node became a holder of a segment (status `Syncing`).
		HolderJoined { segment: SegmentId, who: T::AccountId },
		/// A node stopped holding a segment.
		HolderLeft { segment: SegmentId, who: T::AccountId },
		/// A Primary committed a root.
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
		/// Part of a node's deposit was burnt.
		Penalized { who: T::AccountId, amount: BalanceOf<T> },
		/// A holder fell more than `MaxLag` commits behind.
		HolderLagging { segment: SegmentId, who: T::AccountId, proven_seq: u64, latest_seq: u64 },
		/// A holder was dropped after `MaxFailures` consecutive missed challenges.
		HolderDropped { segment: SegmentId, who: T::AccountId },
		/// A provider migration was requested.
		MigrationRequested {
			segment: SegmentId,
			from: T::AccountId,
			to: T::AccountId,
			until: BlockNumberFor<T>,
		},
		/// The target proved the segment; ownership moved.
		MigrationCompleted { segment: SegmentId, from: T::AccountId, to: T::AccountId, seq: u64 },
		/// A pending migration was cancelled.
		MigrationCancelled { segment: SegmentId, to: T::AccountId },
		/// A pending migration timed out.
		MigrationTimedOut { segment: SegmentId, to: T::AccountId },
		/// The old provider's retention after a migration ended.
		ProviderReleased { segment: SegmentId, who: T::AccountId },
		/// Root set the owner of a segment.
		OwnerForced { segment: SegmentId, from: T::AccountId, to: T::AccountId },
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
		/// The seq is not greater than the latest committed seq.
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
		/// No free scheduling slot in the next blocks; retry later.
		ScheduleFull,
		/// A migration of this segment is already pending.
		MigrationPending,
		/// No pending migration for this segment.
		NoMigration,
		/// The target already owns the segment.
		AlreadyOwner,
	}

	impl<T> From<AddressError> for Error<T> {
		fn from(e: AddressError) -> Self {
			match e {
				AddressError::InvalidPeerId => Error::InvalidPeerId,
				AddressError::InvalidMultiaddr => Error::InvalidMultiaddr,
			}
		}
	}

	/// How many consecutive blocks scheduling looks at for a free slot.
	const SCHEDULE_SPAN: u32 = 32;

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			let expired = Self::expire_challenges(now);
			let rechallenged = Self::issue_rechallenges(now);
			let migrations = Self::process_migration_deadlines(now);
			T::WeightInfo::on_initialize_base()
				.saturating_add(T::WeightInfo::expire_challenge().saturating_mul(expired.into()))
				.saturating_add(T::WeightInfo::rechallenge().saturating_mul(rechallenged.into()))
				.saturating_add(
					T::WeightInfo::migration_deadline().saturating_mul(migrations.into()),
				)
		}

		fn offchain_worker(now: BlockNumberFor<T>) {
			crate::ocw::run::<T>(now);
		}

		fn integrity_test() {
			assert!(!T::NodeDeposit::get().is_zero(), "NodeDeposit must be non-zero");
			assert!(T::ChallengeDelay::get() >= 1u32.into(), "ChallengeDelay must be ≥ 1");
			assert!(!T::ProofWindow::get().is_zero(), "ProofWindow must be non-zero");
			assert!(
				T::LeaveDelay::get() > T::ChallengeDelay::get() + T::ProofWindow::get(),
				"LeaveDelay must exceed a challenge window"
			);
			assert!(
				T::ChallengeLeaves::get() >= 1
					&& T::ChallengeLeaves::get()
						<= sync_primitives::commitment::MAX_CHALLENGE_LEAVES,
				"ChallengeLeaves out of range"
			);
			assert!(T::MaxPrimaries::get() >= 1 && T::RootRetention::get() >= 1);
			assert!(T::MaxScheduledPerBlock::get() >= 1);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register the signing account as a storage node.
		///
		/// - Origin: any signed account without a registered node.
		/// - `role`: `Primary` (owns segments, accepts writes, commits roots) or `Replica`.
		/// - `peer_id`: binary libp2p peer id of the node's data plane, unique on chain.
		/// - `multiaddrs`: 1 to 8 text multiaddrs of the data plane, e.g.
		///   `/ip4/127.0.0.1/tcp/30433`.
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
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!Nodes::<T>::contains_key(&who), Error::<T>::AlreadyRegistered);
			Self::validate_addresses(&peer_id, &multiaddrs)?;
			ensure!(!PeerIds::<T>::contains_key(&peer_id), Error::<T>::PeerIdTaken);

			let deposit = T::NodeDeposit::get();
			T::Currency::hold(&HoldReason::NodeDeposit.into(), &who, deposit)
				.map_err(|_| Error::<T>::InsufficientDeposit)?;

			PeerIds::<T>::insert(&peer_id, &who);
			Nodes::<T>::insert(
				&who,
				NodeInfo {
					role,
					status: NodeStatus::Joining,
					peer_id: peer_id.clone(),
					multiaddrs,
					deposit,
					registered_at: frame_system::Pallet::<T>::block_number(),
					leave_at: None,
				},
			);
			Self::deposit_event(Event::NodeRegistered { who, role, peer_id, deposit });
			Ok(())
		}

		/// Change the data-plane peer id and/or multiaddrs of the caller's node.
		///
		/// - Origin: the node's account.
		/// - `peer_id` / `multiaddrs`: new values, or `None` to keep the current ones.
		///
		/// Fails with [`Error::NothingToUpdate`] if nothing would change.
		/// Emits [`Event::NodeUpdated`] with the resulting identity.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::update_node())]
		pub fn update_node(
			origin: OriginFor<T>,
			peer_id: Option<PeerIdBytes>,
			multiaddrs: Option<Multiaddrs>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			let new_peer = peer_id.unwrap_or_else(|| info.peer_id.clone());
			let new_addrs = multiaddrs.unwrap_or_else(|| info.multiaddrs.clone());
			ensure!(
				new_peer != info.peer_id || new_addrs != info.multiaddrs,
				Error::<T>::NothingToUpdate
			);
			Self::validate_addresses(&new_peer, &new_addrs)?;
			if new_peer != info.peer_id {
				ensure!(!PeerIds::<T>::contains_key(&new_peer), Error::<T>::PeerIdTaken);
				PeerIds::<T>::remove(&info.peer_id);
				PeerIds::<T>::insert(&new_peer, &who);
				info.peer_id = new_peer.clone();
			}
			info.multiaddrs = new_addrs.clone();
			Nodes::<T>::insert(&who, info);
			Self::deposit_event(Event::NodeUpdated {
				who,
				peer_id: new_peer,
				multiaddrs: new_addrs,
			});
			Ok(())
		}

		/// Remove the caller's node and release its deposit.
		///
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
			let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			match (info.status, info.leave_at) {
				(NodeStatus::Joining, _) if NodeSegments::<T>::get(&who).is_empty() => {},
				(NodeStatus::Leaving, Some(at)) => ensure!(
					frame_system::Pallet::<T>::block_number() >= at,
					Error::<T>::LeaveDelayNotPassed
				),
				_ => return Err(Error::<T>::NodeBusy.into()),
			}
			let n = Self::remove_node(who, info, false)?;
			Ok(Some(T::WeightInfo::deregister_node(n)).into())
		}

		/// Remove any node and release its deposit (governance fix-up).
		///
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
			let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			let n = Self::remove_node(who, info, true)?;
			Ok(Some(T::WeightInfo::deregister_node(n)).into())
		}

		/// Announce that the caller's node is leaving the network.
		///
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
			let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			ensure!(info.status != NodeStatus::Leaving, Error::<T>::AlreadyLeaving);
			for s in NodeSegments::<T>::get(&who) {
				let seg = Segments::<T>::get(s).ok_or(Error::<T>::UnknownSegment)?;
				ensure!(seg.owner != who, Error::<T>::OwnsSegments);
				if let Some(m) = Migrations::<T>::get(s) {
					ensure!(m.completed || m.to != who, Error::<T>::MigrationPending);
				}
			}
			let leave_at =
				frame_system::Pallet::<T>::block_number().saturating_add(T::LeaveDelay::get());
			info.status = NodeStatus::Leaving;
			info.leave_at = Some(leave_at);
			Nodes::<T>::insert(&who, info);
			Self::deposit_event(Event::NodeLeaving { who: who.clone(), leave_at });
			Self::deposit_event(Event::NodeStatusChanged { who, status: NodeStatus::Leaving });
			Ok(())
		}

		/// Create a segment owned by the caller.
		///
		/// - Origin: a registered Primary that is not leaving.
		///
		/// The segment gets the next id, no roots yet, and the caller as owner and only Primary.
		/// Emits [`Event::SegmentCreated`].
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::create_segment())]
		pub fn create_segment(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let info = Self::active_node(&who)?;
			ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
			let id = NextSegmentId::<T>::get();
			NodeSegments::<T>::try_mutate(&who, |v| v.try_push(id))
				.map_err(|_| Error::<T>::TooManySegments)?;
			let primaries = BoundedVec::try_from(alloc::vec![who.clone()])
				.map_err(|_| Error::<T>::TooManyPrimaries)?;
			Segments::<T>::insert(
				id,
				SegmentInfo {
					owner: who.clone(),
					primaries,
					holders: BoundedVec::new(),
					created_at: frame_system::Pallet::<T>::block_number(),
					commits: 0,
				},
			);
			NextSegmentId::<T>::put(id.saturating_add(1));
			Self::deposit_event(Event::SegmentCreated { segment: id, owner: who.clone() });
			Self::refresh_status(&who);
			Ok(())
		}

		/// Add a co-Primary to a segment.
		///
		/// - Origin: the segment's owner, or Root.
		/// - `who`: a registered Primary that is not leaving. If it does not hold the segment it
		///   becomes a holder (`Syncing`) and must prove like any holder.
		///
		/// Emits [`Event::PrimaryAdded`] (and [`Event::HolderJoined`]).
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::add_primary())]
		pub fn add_primary(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			let mut seg = Self::owned_segment(origin, segment)?;
			let info = Self::active_node(&who)?;
			ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
			ensure!(!seg.primaries.contains(&who), Error::<T>::AlreadyPrimary);
			seg.primaries.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
			if !Holdings::<T>::contains_key(segment, &who) {
				Self::add_holder(segment, &mut seg, &who)?;
			}
			Segments::<T>::insert(segment, seg);
			Self::deposit_event(Event::PrimaryAdded { segment, who: who.clone() });
			Self::refresh_status(&who);
			Ok(())
		}

		/// Remove a co-Primary from a segment; it remains a holder.
		///
		/// - Origin: the segment's owner, or Root.
		/// - `who`: a Primary of the segment other than the owner.
		///
		/// Emits [`Event::PrimaryRemoved`].
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::remove_primary())]
		pub fn remove_primary(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			let mut seg = Self::owned_segment(origin, segment)?;
			ensure!(seg.owner != who, Error::<T>::IsOwner);
			let pos = seg.primaries.iter().position(|p| p == &who).ok_or(Error::<T>::NotPrimary)?;
			seg.primaries.remove(pos);
			ParityVotes::<T>::mutate(segment, |v| {
				if let Some((_, _, votes)) = v {
					votes.retain(|p| p != &who);
				}
			});
			Segments::<T>::insert(segment, seg);
			Self::deposit_event(Event::PrimaryRemoved { segment, who });
			Ok(())
		}

		/// Become a holder of a segment (to mirror it).
		///
		/// - Origin: a registered node that is not leaving and does not own or hold the segment.
		///
		/// The holding starts `Syncing`; the node proves it with [`Pallet::claim_sync`].
		/// Emits [`Event::HolderJoined`].
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::join_segment())]
		pub fn join_segment(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::active_node(&who)?;
			let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.owner != who, Error::<T>::IsOwner);
			ensure!(!Holdings::<T>::contains_key(segment, &who), Error::<T>::AlreadyHolder);
			Self::add_holder(segment, &mut seg, &who)?;
			Segments::<T>::insert(segment, seg);
			Self::refresh_status(&who);
			Ok(())
		}

		/// Stop holding a segment.
		///
		/// - Origin: a holder of the segment. A co-Primary also gives up its Primary seat; a
		///   pending migration to the caller is cancelled.
		///
		/// Emits [`Event::HolderLeft`] (and [`Event::PrimaryRemoved`],
		/// [`Event::MigrationCancelled`]).
		#[pallet::call_index(9)]
		#[pallet::weight(T::WeightInfo::leave_segment())]
		pub fn leave_segment(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(Holdings::<T>::contains_key(segment, &who), Error::<T>::NotHolder);
			Self::forget_migration_to(segment, &who);
			Self::drop_holder(segment, &who, true);
			Self::refresh_status(&who);
			Ok(())
		}

		/// Commit the root of a segment's state at `seq`.
		///
		/// - Origin: a Primary of the segment.
		/// - `seq`: last op included; must exceed the latest committed seq.
		/// - `facts`: root hash, total 1 KiB chunks (`leaves`), objects (`entries`) and `bytes`,
		///   as computed by `sync_primitives::commitment::SegmentTrie`.
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
			let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.primaries.contains(&who), Error::<T>::NotPrimary);
			let consistent = facts.leaves >= facts.entries
				&& (facts.entries == 0) == (facts.leaves == 0)
				&& facts.leaves <= facts.bytes.div_ceil(1024).saturating_add(facts.entries)
				&& (facts.entries != 0 || facts.bytes == 0);
			ensure!(consistent, Error::<T>::InvalidRootFacts);
			let mut roots = Roots::<T>::get(segment);
			if let Some(last) = roots.last() {
				ensure!(seq > last.seq, Error::<T>::StaleSeq);
			}
			seg.commits = seg.commits.saturating_add(1);
			let index = seg.commits;
			if roots.is_full() {
				roots.remove(0);
			}
			let now = frame_system::Pallet::<T>::block_number();
			roots
				.try_push(CommittedRoot { seq, facts, index, committer: who.clone(), at: now })
				.map_err(|_| Error::<T>::UnknownRoot)?;
			Roots::<T>::insert(segment, roots);
			let votes = BoundedVec::try_from(alloc::vec![who.clone()]).unwrap_or_default();
			ParityVotes::<T>::insert(segment, (seq, facts.root, votes));
			Self::deposit_event(Event::RootCommitted {
				segment,
				seq,
				root: facts.root,
				leaves: facts.leaves,
				entries: facts.entries,
				bytes: facts.bytes,
				index,
				committer: who,
			});
			let holders = seg.holders.len() as u32;
			let latest_seq = seq;
			for h in seg.holders.iter() {
				let changed = Holdings::<T>::mutate(segment, h, |hold| match hold {
					Some(hd) if hd.status == HoldingStatus::Active => match hd.proven {
						Some(p) if p.index.saturating_add(T::MaxLag::get()) < index => {
							hd.status = HoldingStatus::Lagging;
							Some(p.seq)
						},
						_ => None,
					},
					_ => None,
				});
				if let Some(proven_seq) = changed {
					Self::deposit_event(Event::HolderLagging {
						segment,
						who: h.clone(),
						proven_seq,
						latest_seq,
					});
					Self::refresh_status(h);
				}
			}
			Segments::<T>::insert(segment, seg);
			Ok(Some(T::WeightInfo::commit_root(holders)).into())
		}

		/// Attest, as a Primary of the segment, that the caller reached the latest root.
		///
		/// - Origin: a Primary of the segment that has not attested this root yet.
		/// - `seq`, `root`: must equal the latest commit.
		///
		/// Emits [`Event::RootAttested`], and [`Event::ParityReached`] once every Primary has
		/// attested (or committed) this root.
		#[pallet::call_index(11)]
		#[pallet::weight(T::WeightInfo::attest_root())]
		pub fn attest_root(
			origin: OriginFor<T>,
			segment: SegmentId,
			seq: u64,
			root: Hash32,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.primaries.contains(&who), Error::<T>::NotPrimary);
			let (vseq, vroot, mut votes) =
				ParityVotes::<T>::get(segment).ok_or(Error::<T>::UnknownRoot)?;
			ensure!(seq == vseq, Error::<T>::UnknownRoot);
			ensure!(root == vroot, Error::<T>::RootMismatch);
			ensure!(!votes.contains(&who), Error::<T>::AlreadyAttested);
			votes.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
			let parity = seg.primaries.iter().all(|p| votes.contains(p));
			ParityVotes::<T>::insert(segment, (seq, root, votes));
			Self::deposit_event(Event::RootAttested { segment, seq, who });
			if parity {
				Self::deposit_event(Event::ParityReached { segment, seq, root });
			}
			Ok(())
		}

		/// Claim to hold the retained root `seq` of a segment; issues a Proof-of-Sync challenge.
		///
		/// - Origin: a holder of the segment without an open challenge for it.
		/// - `seq`: a retained root newer than the holder's last proven one (a pending
		///   migration target may re-prove its current root).
		///
		/// The challenge is seeded by the hash of block `now + ChallengeDelay` and must be
		/// answered with [`Pallet::submit_proof`] by `seed + ProofWindow`.
		/// Emits [`Event::ChallengeIssued`].
		#[pallet::call_index(12)]
		#[pallet::weight(T::WeightInfo::claim_sync())]
		pub fn claim_sync(origin: OriginFor<T>, segment: SegmentId, seq: u64) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let holding = Holdings::<T>::get(segment, &who).ok_or(Error::<T>::NotHolder)?;
			ensure!(
				!OpenChallenge::<T>::contains_key(&who, segment),
				Error::<T>::ChallengeAlreadyOpen
			);
			let root = Roots::<T>::get(segment)
				.into_iter()
				.find(|r| r.seq == seq)
				.ok_or(Error::<T>::UnknownRoot)?;
			let migrating =
				Migrations::<T>::get(segment).is_some_and(|m| !m.completed && m.to == who);
			if let Some(p) = holding.proven {
				ensure!(
					root.index > p.index || (migrating && root.index == p.index),
					Error::<T>::AlreadyProven
				);
			}
			Self::issue_challenge(
				segment,
				&who,
				root.seq,
				root.index,
				root.facts,
				ChallengeKind::Claim,
			)?;
			Ok(())
		}

		/// Answer a challenge with a Proof-of-Sync.
		///
		/// - Origin: the challenged node.
		/// - `id`: the challenge; accepted after its seed block and up to its deadline.
		/// - `proof`: one chunk proof per challenged index (built by the node's store; the
		///   off-chain worker submits it), at most [`Config::MaxProofBytes`] encoded.
		///
		/// On success the holding becomes `Active` (or stays `Lagging` if the root is already too
		/// old), failures reset, a re-challenge is scheduled, and a pending migration to the caller
		/// completes. A wrong proof fails with [`Error::InvalidProof`] and changes nothing.
		/// Emits [`Event::SyncProven`] (and [`Event::MigrationCompleted`]).
		#[pallet::call_index(13)]
		#[pallet::weight(T::WeightInfo::submit_proof())]
		pub fn submit_proof(
			origin: OriginFor<T>,
			id: ChallengeId,
			proof: SyncProof,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let ch = Challenges::<T>::get(id).ok_or(Error::<T>::UnknownChallenge)?;
			ensure!(ch.who == who, Error::<T>::NotChallenged);
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now > ch.seed_block, Error::<T>::ChallengeNotReady);
			ensure!(now <= ch.deadline, Error::<T>::UnknownChallenge);
			ensure!(
				codec::Encode::encoded_size(&proof) <= T::MaxProofBytes::get() as usize,
				Error::<T>::ProofTooLarge
			);
			let seed = Self::challenge_seed(id, ch.seed_block);
			sync_primitives::commitment::verify_sync_proof(
				&ch.facts,
				&seed,
				T::ChallengeLeaves::get(),
				&proof,
			)
			.map_err(|_| Error::<T>::InvalidProof)?;
			Self::accept_proof(id, ch, now);
			Ok(())
		}

		/// Ask that a segment move to another provider.
		///
		/// - Origin: the segment's owner, or Root.
		/// - `to`: a registered Primary, not leaving, not the owner. It becomes a holder if it is
		///   not one and must prove a root at least as new as the latest at request time.
		///
		/// Times out after [`Config::MigrationTimeout`] blocks.
		/// Emits [`Event::MigrationRequested`] (and [`Event::HolderJoined`]).
		#[pallet::call_index(14)]
		#[pallet::weight(T::WeightInfo::request_migration())]
		pub fn request_migration(
			origin: OriginFor<T>,
			segment: SegmentId,
			to: T::AccountId,
		) -> DispatchResult {
			let mut seg = Self::owned_segment(origin, segment)?;
			ensure!(!Migrations::<T>::contains_key(segment), Error::<T>::MigrationPending);
			ensure!(seg.owner != to, Error::<T>::AlreadyOwner);
			let info = Self::active_node(&to)?;
			ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
			ensure!(
				seg.primaries.contains(&to) || !seg.primaries.is_full(),
				Error::<T>::TooManyPrimaries
			);
			let target_added = !Holdings::<T>::contains_key(segment, &to);
			if target_added {
				Self::add_holder(segment, &mut seg, &to)?;
			}
			let now = frame_system::Pallet::<T>::block_number();
			let until =
				Self::schedule_migration(segment, now.saturating_add(T::MigrationTimeout::get()))?;
			let from = seg.owner.clone();
			Migrations::<T>::insert(
				segment,
				Migration {
					from: from.clone(),
					to: to.clone(),
					requested_at: now,
					min_index: seg.commits,
					until,
					completed: false,
					target_added,
				},
			);
			Segments::<T>::insert(segment, seg);
			Self::deposit_event(Event::MigrationRequested { segment, from, to: to.clone(), until });
			Self::refresh_status(&to);
			Ok(())
		}

		/// Cancel a pending migration.
		///
		/// - Origin: the segment's owner, or Root.
		///
		/// A target that became a holder only for this migration and has not proven is removed.
		/// Emits [`Event::MigrationCancelled`].
		#[pallet::call_index(15)]
		#[pallet::weight(T::WeightInfo::cancel_migration())]
		pub fn cancel_migration(origin: OriginFor<T>, segment: SegmentId) -> DispatchResult {
			Self::owned_segment(origin, segment)?;
			let m = Migrations::<T>::get(segment).ok_or(Error::<T>::NoMigration)?;
			ensure!(!m.completed, Error::<T>::NoMigration);
			Self::abort_migration(segment, m, false);
			Ok(())
		}

		/// Set the owner of a segment (governance fix-up, e.g. when an owner vanished).
		///
		/// - Origin: Root.
		/// - `who`: a registered Primary. It stops being a holder; the old owner stays a
		///   Primary and becomes a holder that must prove.
		///
		/// Emits [`Event::OwnerForced`].
		#[pallet::call_index(16)]
		#[pallet::weight(T::WeightInfo::force_set_owner())]
		pub fn force_set_owner(
			origin: OriginFor<T>,
			segment: SegmentId,
			who: T::AccountId,
		) -> DispatchResult {
			ensure_root(origin)?;
			let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.owner != who, Error::<T>::AlreadyOwner);
			let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
			ensure!(!Migrations::<T>::contains_key(segment), Error::<T>::MigrationPending);
			let from = seg.owner.clone();
			if !seg.primaries.contains(&who) {
				seg.primaries.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
			}
			if Holdings::<T>::contains_key(segment, &who) {
				Self::take_out_holder(segment, &mut seg, &who);
			} else {
				NodeSegments::<T>::try_mutate(&who, |v| v.try_push(segment))
					.map_err(|_| Error::<T>::TooManySegments)?;
			}
			seg.owner = who.clone();
			if Nodes::<T>::contains_key(&from) {
				Self::add_holder(segment, &mut seg, &from)?;
			}
			Segments::<T>::insert(segment, seg);
			Self::deposit_event(Event::OwnerForced {
				segment,
				from: from.clone(),
				to: who.clone(),
			});
			Self::refresh_status(&from);
			Self::refresh_status(&who);
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		fn validate_addresses(peer_id: &PeerIdBytes, multiaddrs: &Multiaddrs) -> DispatchResult {
			sync_primitives::validate_peer_id(peer_id).map_err(Error::<T>::from)?;
			ensure!(!multiaddrs.is_empty(), Error::<T>::InvalidMultiaddr);
			for addr in multiaddrs.iter() {
				sync_primitives::validate_multiaddr(addr).map_err(Error::<T>::from)?;
			}
			Ok(())
		}

		/// A registered node that is not leaving.
		fn active_node(who: &T::AccountId) -> Result<NodeInfoOf<T>, DispatchError> {
			let info = Nodes::<T>::get(who).ok_or(Error::<T>::NotRegistered)?;
			ensure!(info.status != NodeStatus::Leaving, Error::<T>::NodeLeaving);
			Ok(info)
		}

		/// The segment, if `origin` is Root or its owner.
		fn owned_segment(
			origin: OriginFor<T>,
			segment: SegmentId,
		) -> Result<SegmentInfoOf<T>, DispatchError> {
			let caller = match ensure_root(origin.clone()) {
				Ok(()) => None,
				Err(_) => Some(ensure_signed(origin)?),
			};
			let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
			if let Some(c) = caller {
				ensure!(seg.owner == c, Error::<T>::NotOwner);
			}
			Ok(seg)
		}

		/// Adds `who` as a `Syncing` holder (caller stores `seg`).
		fn add_holder(
			segment: SegmentId,
			seg: &mut SegmentInfoOf<T>,
			who: &T::AccountId,
		) -> DispatchResult {
			seg.holders.try_push(who.clone()).map_err(|_| Error::<T>::TooManyHolders)?;
			NodeSegments::<T>::try_mutate(who, |v| {
				if v.contains(&segment) {
					Ok(())
				} else {
					v.try_push(segment)
				}
			})
			.map_err(|_| Error::<T>::TooManySegments)?;
			Holdings::<T>::insert(
				segment,
				who,
				Holding {
					status: HoldingStatus::Syncing,
					proven: None,
					failures: 0,
					joined_at: frame_system::Pallet::<T>::block_number(),
				},
			);
			Self::deposit_event(Event::HolderJoined { segment, who: who.clone() });
			Ok(())
		}

		/// Removes `who`'s holding record and open challenge (not its Primary seat).
		fn take_out_holder(segment: SegmentId, seg: &mut SegmentInfoOf<T>, who: &T::AccountId) {
			seg.holders.retain(|h| h != who);
			Holdings::<T>::remove(segment, who);
			if let Some(id) = OpenChallenge::<T>::take(who, segment) {
				Challenges::<T>::remove(id);
			}
		}

		/// Removes `who` from a segment entirely (holding, Primary seat, node index).
		fn drop_holder(segment: SegmentId, who: &T::AccountId, voluntary: bool) {
			if let Some(mut seg) = Segments::<T>::get(segment) {
				Self::take_out_holder(segment, &mut seg, who);
				if seg.owner != *who {
					if let Some(pos) = seg.primaries.iter().position(|p| p == who) {
						seg.primaries.remove(pos);
						Self::deposit_event(Event::PrimaryRemoved { segment, who: who.clone() });
					}
					NodeSegments::<T>::mutate(who, |v| v.retain(|s| *s != segment));
				}
				Segments::<T>::insert(segment, seg);
			}
			if voluntary {
				Self::deposit_event(Event::HolderLeft { segment, who: who.clone() });
			} else {
				Self::deposit_event(Event::HolderDropped { segment, who: who.clone() });
			}
		}

		/// Cancels a pending migration of `segment` whose target is `who` (who is leaving it).
		fn forget_migration_to(segment: SegmentId, who: &T::AccountId) {
			if Migrations::<T>::get(segment).is_some_and(|m| !m.completed && &m.to == who) {
				Migrations::<T>::remove(segment);
				Self::deposit_event(Event::MigrationCancelled { segment, to: who.clone() });
			}
		}

		/// Removes a node and everything it holds; returns how many segments it had.
		fn remove_node(
			who: T::AccountId,
			info: NodeInfoOf<T>,
			forced: bool,
		) -> Result<u32, DispatchError> {
			let segments = NodeSegments::<T>::get(&who);
			for s in segments.iter() {
				let seg = Segments::<T>::get(s).ok_or(Error::<T>::UnknownSegment)?;
				ensure!(seg.owner != who, Error::<T>::OwnsSegments);
			}
			for s in segments.iter() {
				Self::forget_migration_to(*s, &who);
				Self::drop_holder(*s, &who, true);
			}
			NodeSegments::<T>::remove(&who);
			let released = T::Currency::release(
				&HoldReason::NodeDeposit.into(),
				&who,
				info.deposit,
				Precision::BestEffort,
			)?;
			PeerIds::<T>::remove(&info.peer_id);
			Nodes::<T>::remove(&who);
			Self::deposit_event(Event::NodeDeregistered { who, released, forced });
			Ok(segments.len() as u32)
		}

		/// Pushes `item` into the first of the [`SCHEDULE_SPAN`] buckets from `from` on that has
		/// room (`push` hands the item back when a bucket is full); returns that block.
		fn schedule<V>(
			from: BlockNumberFor<T>,
			item: V,
			mut push: impl FnMut(BlockNumberFor<T>, V) -> Result<(), V>,
		) -> Result<BlockNumberFor<T>, DispatchError> {
			let mut at = from;
			let mut item = item;
			for _ in 0..SCHEDULE_SPAN {
				match push(at, item) {
					Ok(()) => return Ok(at),
					Err(back) => item = back,
				}
				at = at.saturating_add(1u32.into());
			}
			Err(Error::<T>::ScheduleFull.into())
		}

		fn schedule_migration(
			segment: SegmentId,
			from: BlockNumberFor<T>,
		) -> Result<BlockNumberFor<T>, DispatchError> {
			Self::schedule(from, segment, |at, s| {
				MigrationDeadlines::<T>::mutate(at, |b| b.try_push(s))
			})
		}

		fn schedule_rechallenge(
			from: BlockNumberFor<T>,
			entry: (SegmentId, T::AccountId),
		) -> Result<BlockNumberFor<T>, DispatchError> {
			Self::schedule(from, entry, |at, e| ReChallenges::<T>::mutate(at, |b| b.try_push(e)))
		}

		/// Creates a challenge for `who` and schedules its expiry.
		fn issue_challenge(
			segment: SegmentId,
			who: &T::AccountId,
			seq: u64,
			index: u32,
			facts: RootFacts,
			kind: ChallengeKind,
		) -> Result<ChallengeId, DispatchError> {
			let now = frame_system::Pallet::<T>::block_number();
			let seed_block = now.saturating_add(T::ChallengeDelay::get());
			let id = NextChallengeId::<T>::get();
			let deadline = seed_block.saturating_add(T::ProofWindow::get());
			let expires = Self::schedule(deadline.saturating_add(1u32.into()), id, |at, i| {
				Expiries::<T>::mutate(at, |b| b.try_push(i))
			})?;
			let deadline = expires.saturating_sub(1u32.into());
			NextChallengeId::<T>::put(id.saturating_add(1));
			Challenges::<T>::insert(
				id,
				Challenge {
					segment,
					who: who.clone(),
					seq,
					index,
					facts,
					seed_block,
					deadline,
					kind,
				},
			);
			OpenChallenge::<T>::insert(who, segment, id);
			Self::deposit_event(Event::ChallengeIssued {
				id,
				segment,
				who: who.clone(),
				seq,
				kind,
				seed_block,
				deadline,
			});
			Ok(id)
		}

		/// The seed of challenge `id`: the hash of its seed block bound to the challenge id.
		/// Zero-hash seed (block not yet known) is never used: proofs are refused before then.
		pub fn challenge_seed(id: ChallengeId, seed_block: BlockNumberFor<T>) -> Hash32 {
			let h = frame_system::Pallet::<T>::block_hash(seed_block);
			let mut input = h.as_ref().to_vec();
			input.extend_from_slice(&id.to_le_bytes());
			sp_io::hashing::blake2_256(&input)
		}

		fn accept_proof(id: ChallengeId, ch: ChallengeOf<T>, now: BlockNumberFor<T>) {
			Challenges::<T>::remove(id);
			OpenChallenge::<T>::remove(&ch.who, ch.segment);
			let Some(seg) = Segments::<T>::get(ch.segment) else { return };
			let latest = seg.commits;
			Holdings::<T>::mutate(ch.segment, &ch.who, |h| {
				if let Some(h) = h {
					let newer = h.proven.is_none_or(|p| ch.index >= p.index);
					if newer {
						h.proven =
							Some(ProvenRoot { seq: ch.seq, index: ch.index, facts: ch.facts });
					}
					let idx = h.proven.map(|p| p.index).unwrap_or(0);
					h.status = if idx.saturating_add(T::MaxLag::get()) < latest {
						HoldingStatus::Lagging
					} else {
						HoldingStatus::Active
					};
					h.failures = 0;
				}
			});
			let period = T::ReChallengePeriod::get();
			let entry = (ch.segment, ch.who.clone());
			// The next check lands within SCHEDULE_SPAN blocks of `now + period`; if all those
			// buckets are full (more than MaxScheduledPerBlock × SCHEDULE_SPAN proofs accepted in
			// one span) this holder is not re-checked until it proves again — sized away by the
			// runtime's constants (16 × 32 = 512 per span).
			let _ = Self::schedule_rechallenge(now.saturating_add(period), entry);
			Self::deposit_event(Event::SyncProven {
				id,
				segment: ch.segment,
				who: ch.who.clone(),
				seq: ch.seq,
				root: ch.facts.root,
				kind: ch.kind,
			});
			if let Some(m) = Migrations::<T>::get(ch.segment) {
				if !m.completed && m.to == ch.who && ch.index >= m.min_index {
					Self::complete_migration(ch.segment, seg, m, ch.seq, now);
				}
			}
			Self::refresh_status(&ch.who);
		}

		fn complete_migration(
			segment: SegmentId,
			mut seg: SegmentInfoOf<T>,
			mut m: MigrationOf<T>,
			seq: u64,
			now: BlockNumberFor<T>,
		) {
			Self::take_out_holder(segment, &mut seg, &m.to);
			if !seg.primaries.contains(&m.to) {
				// Room was checked at request time and Primary seats only shrink meanwhile
				// unless the owner added some; fall back to replacing the old owner's seat.
				if seg.primaries.try_push(m.to.clone()).is_err() {
					seg.primaries.retain(|p| p != &m.from);
					let _ = seg.primaries.try_push(m.to.clone());
				}
			}
			seg.owner = m.to.clone();
			Segments::<T>::insert(segment, seg);
			let release = now.saturating_add(T::MigrationRetention::get());
			m.until = Self::schedule_migration(segment, release).unwrap_or(release);
			m.completed = true;
			Migrations::<T>::insert(segment, &m);
			Self::deposit_event(Event::MigrationCompleted {
				segment,
				from: m.from.clone(),
				to: m.to.clone(),
				seq,
			});
			Self::refresh_status(&m.from);
		}

		/// Cancels (by call or timeout) a pending migration.
		fn abort_migration(segment: SegmentId, m: MigrationOf<T>, timed_out: bool) {
			Migrations::<T>::remove(segment);
			if m.target_added {
				let proven = Holdings::<T>::get(segment, &m.to).is_some_and(|h| h.proven.is_some());
				if !proven {
					Self::drop_holder(segment, &m.to, true);
				}
			}
			if timed_out {
				Self::deposit_event(Event::MigrationTimedOut { segment, to: m.to.clone() });
			} else {
				Self::deposit_event(Event::MigrationCancelled { segment, to: m.to.clone() });
			}
			Self::refresh_status(&m.to);
		}

		/// Expires the challenges due at `now`; returns how many were processed.
		pub(crate) fn expire_challenges(now: BlockNumberFor<T>) -> u32 {
			let due = Expiries::<T>::take(now);
			let n = due.len() as u32;
			for id in due {
				let Some(ch) = Challenges::<T>::take(id) else { continue };
				OpenChallenge::<T>::remove(&ch.who, ch.segment);
				let failures = Holdings::<T>::mutate(ch.segment, &ch.who, |h| {
					h.as_mut().map(|h| {
						h.failures = h.failures.saturating_add(1);
						h.status = HoldingStatus::Syncing;
						h.failures
					})
				});
				let Some(failures) = failures else { continue };
				Self::deposit_event(Event::ChallengeExpired {
					id,
					segment: ch.segment,
					who: ch.who.clone(),
					failures,
				});
				Self::penalize(&ch.who);
				if failures >= T::MaxFailures::get() {
					let is_target =
						Migrations::<T>::get(ch.segment).filter(|m| !m.completed && m.to == ch.who);
					if let Some(m) = is_target {
						Self::abort_migration(ch.segment, m, true);
					}
					if Holdings::<T>::contains_key(ch.segment, &ch.who) {
						Self::drop_holder(ch.segment, &ch.who, false);
					}
				}
				Self::refresh_status(&ch.who);
			}
			n
		}

		fn penalize(who: &T::AccountId) {
			let Some(mut info) = Nodes::<T>::get(who) else { return };
			let amount = T::FailurePenalty::get() * T::NodeDeposit::get();
			let amount = amount.min(info.deposit);
			if amount.is_zero() {
				return;
			}
			let burnt = T::Currency::burn_held(
				&HoldReason::NodeDeposit.into(),
				who,
				amount,
				Precision::BestEffort,
				Fortitude::Force,
			)
			.unwrap_or_default();
			info.deposit = info.deposit.saturating_sub(burnt);
			Nodes::<T>::insert(who, info);
			Self::deposit_event(Event::Penalized { who: who.clone(), amount: burnt });
		}

		/// Issues the re-challenges due at `now`; returns how many entries were processed.
		pub(crate) fn issue_rechallenges(now: BlockNumberFor<T>) -> u32 {
			let due = ReChallenges::<T>::take(now);
			let n = due.len() as u32;
			for (segment, who) in due {
				let Some(h) = Holdings::<T>::get(segment, &who) else { continue };
				let Some(p) = h.proven else { continue };
				if h.status == HoldingStatus::Syncing
					|| OpenChallenge::<T>::contains_key(&who, segment)
				{
					continue;
				}
				// Best effort: if the expiry schedule is full the holder is checked next period.
				if Self::issue_challenge(
					segment,
					&who,
					p.seq,
					p.index,
					p.facts,
					ChallengeKind::ReChallenge,
				)
				.is_err()
				{
					let _ = Self::schedule_rechallenge(
						now.saturating_add(T::ReChallengePeriod::get()),
						(segment, who),
					);
				}
			}
			n
		}

		/// Times out or releases the migrations due at `now`.
		pub(crate) fn process_migration_deadlines(now: BlockNumberFor<T>) -> u32 {
			let due = MigrationDeadlines::<T>::take(now);
			let n = due.len() as u32;
			for segment in due {
				let Some(m) = Migrations::<T>::get(segment) else { continue };
				if m.until != now {
					continue;
				}
				if !m.completed {
					Self::abort_migration(segment, m, true);
				} else {
					Migrations::<T>::remove(segment);
					if let Some(mut seg) = Segments::<T>::get(segment) {
						if seg.owner != m.from && !seg.holders.contains(&m.from) {
							seg.primaries.retain(|p| p != &m.from);
							NodeSegments::<T>::mutate(&m.from, |v| v.retain(|s| *s != segment));
							Segments::<T>::insert(segment, seg);
						}
					}
					Self::deposit_event(Event::ProviderReleased { segment, who: m.from.clone() });
					Self::refresh_status(&m.from);
				}
			}
			n
		}

		/// Recomputes a node's summarised status from its segments; emits on change.
		pub(crate) fn refresh_status(who: &T::AccountId) {
			let Some(mut info) = Nodes::<T>::get(who) else { return };
			if info.status == NodeStatus::Leaving {
				return;
			}
			let status = Self::derive_status(who);
			if status != info.status {
				info.status = status;
				Nodes::<T>::insert(who, info);
				Self::deposit_event(Event::NodeStatusChanged { who: who.clone(), status });
			}
		}

		fn derive_status(who: &T::AccountId) -> NodeStatus {
			let (mut syncing, mut lagging, mut active) = (false, false, false);
			for s in NodeSegments::<T>::get(who) {
				match Holdings::<T>::get(s, who) {
					Some(h) => match h.status {
						HoldingStatus::Syncing => syncing = true,
						HoldingStatus::Lagging => lagging = true,
						HoldingStatus::Active => active = true,
					},
					// Owner, or old provider retained after a migration.
					None => active = true,
				}
			}
			if lagging {
				NodeStatus::Lagging
			} else if syncing {
				NodeStatus::Syncing
			} else if active {
				NodeStatus::Active
			} else {
				NodeStatus::Joining
			}
		}

		/// The node of `who` in the runtime API's shape.
		pub fn node_summary(
			who: T::AccountId,
		) -> Option<NodeSummary<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
			Nodes::<T>::get(&who).map(|n| NodeSummary {
				account: who,
				role: n.role,
				status: n.status,
				peer_id: n.peer_id.into_inner(),
				multiaddrs: n.multiaddrs.into_iter().map(|a| a.into_inner()).collect(),
				deposit: n.deposit,
				registered_at: n.registered_at,
			})
		}

		/// The account a peer id is registered to.
		pub fn account_of_peer(peer_id: Vec<u8>) -> Option<T::AccountId> {
			let key = PeerIdBytes::try_from(peer_id).ok()?;
			PeerIds::<T>::get(key)
		}

		/// A segment in the runtime API's shape.
		pub fn segment_summary(
			segment: SegmentId,
		) -> Option<sync_primitives::SegmentSummary<T::AccountId>> {
			let seg = Segments::<T>::get(segment)?;
			let holders = seg
				.holders
				.iter()
				.filter_map(|h| {
					Holdings::<T>::get(segment, h)
						.map(|hd| (h.clone(), hd.status, hd.proven.map(|p| p.seq)))
				})
				.collect();
			Some(sync_primitives::SegmentSummary {
				id: segment,
				owner: seg.owner,
				primaries: seg.primaries.into_inner(),
				holders,
				roots: Roots::<T>::get(segment)
					.into_iter()
					.map(|r| sync_primitives::RootSummary {
						seq: r.seq,
						index: r.index,
						facts: r.facts,
					})
					.collect(),
				migration: Migrations::<T>::get(segment).map(|m| (m.to, m.completed)),
			})
		}

		/// Segments `who` owns, is a Primary of, or holds.
		pub fn segments_of(who: T::AccountId) -> Vec<SegmentId> {
			NodeSegments::<T>::get(who).into_inner()
		}

		/// Open challenges of `who`, with seed and indexes once the seed block is known.
		pub fn open_challenges_of(
			who: T::AccountId,
		) -> Vec<sync_primitives::ChallengeSummary<BlockNumberFor<T>>> {
			let now = frame_system::Pallet::<T>::block_number();
			OpenChallenge::<T>::iter_prefix(&who)
				.filter_map(|(_, id)| Challenges::<T>::get(id).map(|c| (id, c)))
				.map(|(id, c)| {
					let seed = (now > c.seed_block).then(|| Self::challenge_seed(id, c.seed_block));
					let indexes = seed
						.map(|s| {
							sync_primitives::commitment::challenge_indexes(
								&s,
								c.facts.leaves,
								T::ChallengeLeaves::get(),
							)
						})
						.unwrap_or_default();
					sync_primitives::ChallengeSummary {
						id,
						segment: c.segment,
						seq: c.seq,
						facts: c.facts,
						seed,
						indexes,
						deadline: c.deadline,
						rechallenge: c.kind == ChallengeKind::ReChallenge,
					}
				})
				.collect()
		}

		/// Invariants of the registry, checked by `try_state` and after every test step:
		/// - `PeerIds` is exactly the inverse of the nodes' peer ids; node counter is exact;
		/// - each node's recorded deposit is on hold for it;
		/// - every segment's owner is a registered Primary, is in `primaries` and is no holder;
		/// - every holder listed by a segment has a holding record and vice versa, and every
		///   Primary other than the owner is a holder or the retained old provider;
		/// - each `Active`/`Lagging` holding has a proven root that was committed for the
		///   segment, and an `Active` one is within `MaxLag` commits of the latest;
		/// - `NodeSegments` lists exactly the segments a node owns, co-owns or holds;
		/// - every open challenge is indexed once and belongs to a current holder; its expiry is
		///   scheduled; roots are strictly increasing and within the window.
		#[cfg(any(feature = "try-runtime", feature = "std", test))]
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			let mut count = 0u32;
			for (who, info) in Nodes::<T>::iter() {
				count += 1;
				ensure!(
					PeerIds::<T>::get(&info.peer_id).as_ref() == Some(&who),
					"peer id not indexed"
				);
				ensure!(
					T::Currency::balance_on_hold(&HoldReason::NodeDeposit.into(), &who)
						>= info.deposit,
					"node deposit not on hold"
				);
				for s in NodeSegments::<T>::get(&who) {
					let seg = Segments::<T>::get(s).ok_or("NodeSegments names unknown segment")?;
					ensure!(
						seg.owner == who
							|| seg.primaries.contains(&who)
							|| Holdings::<T>::contains_key(s, &who),
						"NodeSegments entry without a role"
					);
				}
			}
			ensure!(count == Nodes::<T>::count(), "Nodes counter out of sync");
			ensure!(PeerIds::<T>::iter().count() as u32 == count, "dangling PeerIds entry");
			for (s, seg) in Segments::<T>::iter() {
				let owner = Nodes::<T>::get(&seg.owner).ok_or("owner not registered")?;
				ensure!(owner.role == NodeRole::Primary, "owner is not a Primary");
				ensure!(seg.primaries.contains(&seg.owner), "owner not among primaries");
				ensure!(!Holdings::<T>::contains_key(s, &seg.owner), "owner is a holder");
				ensure!(NodeSegments::<T>::get(&seg.owner).contains(&s), "owner not indexed");
				let roots = Roots::<T>::get(s);
				ensure!(
					roots.windows(2).all(|w| w[0].seq < w[1].seq && w[0].index < w[1].index),
					"roots not increasing"
				);
				ensure!(
					roots.last().map(|r| r.index).unwrap_or(0) == seg.commits,
					"commit counter out of sync"
				);
				let migration = Migrations::<T>::get(s);
				for p in seg.primaries.iter() {
					let retained = migration.as_ref().is_some_and(|m| m.completed && &m.from == p);
					ensure!(
						p == &seg.owner || Holdings::<T>::contains_key(s, p) || retained,
						"co-Primary without holding"
					);
					ensure!(NodeSegments::<T>::get(p).contains(&s), "primary not indexed");
				}
				for h in seg.holders.iter() {
					let hd = Holdings::<T>::get(s, h).ok_or("listed holder without holding")?;
					ensure!(NodeSegments::<T>::get(h).contains(&s), "holder not indexed");
					match hd.status {
						HoldingStatus::Syncing => {},
						st => {
							let p = hd.proven.ok_or("Active/Lagging holding without proof")?;
							ensure!(
								p.index >= 1 && p.index <= seg.commits,
								"proven root never committed"
							);
							if st == HoldingStatus::Active {
								ensure!(
									p.index.saturating_add(T::MaxLag::get()) >= seg.commits,
									"Active holder is lagging"
								);
							}
							if let Some(r) = roots.iter().find(|r| r.index == p.index) {
								ensure!(
									r.facts == p.facts && r.seq == p.seq,
									"proven root differs from commit"
								);
							}
						},
					}
				}
			}
			for (s, h, _) in Holdings::<T>::iter() {
				let seg = Segments::<T>::get(s).ok_or("holding of unknown segment")?;
				ensure!(seg.holders.contains(&h), "holding not listed by segment");
			}
			for (id, ch) in Challenges::<T>::iter() {
				ensure!(
					OpenChallenge::<T>::get(&ch.who, ch.segment) == Some(id),
					"challenge not indexed"
				);
				ensure!(
					Holdings::<T>::contains_key(ch.segment, &ch.who),
					"challenge of non-holder"
				);
				let at = ch.deadline.saturating_add(1u32.into());
				ensure!(Expiries::<T>::get(at).contains(&id), "challenge expiry not scheduled");
			}
			for (who, s, id) in OpenChallenge::<T>::iter() {
				let ch = Challenges::<T>::get(id).ok_or("open challenge index dangling")?;
				ensure!(ch.who == who && ch.segment == s, "open challenge index wrong");
			}
			Ok(())
		}
	}
}
