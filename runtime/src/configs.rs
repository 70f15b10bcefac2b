//! Pallet configurations of the runtime.
use super::*;
use codec::Encode;
use frame_support::{
	derive_impl,
	dispatch::DispatchClass,
	parameter_types,
	traits::{ConstU128, ConstU32, ConstU64, ConstU8, VariantCountOf},
	weights::{
		constants::{RocksDbWeight, WEIGHT_REF_TIME_PER_SECOND},
		IdentityFee, Weight,
	},
};
use frame_system::limits::{BlockLength, BlockWeights};
use pallet_transaction_payment::{ConstFeeMultiplier, FungibleAdapter, Multiplier};
use sp_runtime::{
	traits::{BlakeTwo256, One},
	Perbill,
};
use sp_version::RuntimeVersion;

const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

parameter_types! {
	pub const BlockHashCount: BlockNumber = BLOCK_HASH_COUNT;
	pub const Version: RuntimeVersion = VERSION;

	/// Two seconds of compute per 6-second block.
	pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
		Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
		NORMAL_DISPATCH_RATIO,
	);
	/// 5 MiB blocks, 75 % of which for normal transactions.
	pub RuntimeBlockLength: BlockLength = BlockLength::builder()
		.max_length(5 * 1024 * 1024)
		.modify_max_length_for_class(DispatchClass::Normal, |m| *m = NORMAL_DISPATCH_RATIO * *m)
		.build();
	pub const SS58Prefix: u8 = 42;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	type DbWeight = RocksDbWeight;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = frame_support::traits::ConstU32<16>;
}

parameter_types! {
	/// BABE epoch length in slots; it cannot change after genesis.
	pub const EpochDuration: u64 = EPOCH_DURATION_IN_SLOTS;
	/// Every slot has an author (secondary VRF slots), so a block per slot.
	pub const ExpectedBlockTime: u64 = MILLI_SECS_PER_BLOCK;
}

/// BABE with a fixed authority set from genesis, re-enacted at every epoch
/// (`SameAuthoritiesForever`, no pallet-session), and no equivocation reporting: the same model
/// as GRANDPA's below.
impl pallet_babe::Config for Runtime {
	type EpochDuration = EpochDuration;
	type ExpectedBlockTime = ExpectedBlockTime;
	type EpochChangeTrigger = pallet_babe::SameAuthoritiesForever;
	type DisabledValidators = ();
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<32>;
	type MaxNominators = ConstU32<0>;
	type KeyOwnerProof = sp_core::Void;
	type EquivocationReportSystem = ();
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<32>;
	type MaxNominators = ConstU32<0>;
	type MaxSetIdSessionEntries = ConstU64<0>;
	type KeyOwnerProof = sp_core::Void;
	type EquivocationReportSystem = ();
}

impl pallet_timestamp::Config for Runtime {
	type Moment = u64;
	/// BABE checks that the timestamp's slot is the block's slot.
	type OnTimestampSet = Babe;
	/// BABE's slot duration is twice this.
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ();
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type RuntimeEvent = RuntimeEvent;
	type DustRemoval = ();
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

parameter_types! {
	pub FeeMultiplier: Multiplier = Multiplier::one();
}

impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type OnChargeTransaction = FungibleAdapter<Balances, ()>;
	type OperationalFeeMultiplier = ConstU8<5>;
	type WeightToFee = IdentityFee<Balance>;
	type LengthToFee = IdentityFee<Balance>;
	type FeeMultiplierUpdate = ConstFeeMultiplier<FeeMultiplier>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// 10 UNIT per registered node.
	pub const NodeDeposit: Balance = 10 * UNIT;
	/// 5 % of the deposit per missed challenge.
	pub const FailurePenalty: Perbill = Perbill::from_percent(5);
	/// Below half the deposit (ten unanswered challenges) a node is suspended until it tops up.
	pub const MinDeposit: Balance = 5 * UNIT;
}

/// Proof-of-Sync and life-cycle timing, in 6-second blocks.
pub mod sync_timing {
	use crate::{BlockNumber, MINUTES};
	/// A challenge is seeded by the randomness of the block this many blocks after the claim's:
	/// an authority must author all of them to predict the seed.
	pub const CHALLENGE_DELAY: BlockNumber = 3;
	/// One minute (10 blocks) to build and land a proof once the seed block is published.
	/// Measured: the node's proof lands 3 blocks after the seed block (the seed is folded into
	/// the beacon at the start of the next block, the off-chain worker builds the proof in a few
	/// ms, the pool includes it in the block after), so 7 blocks (42 s) are slack for a slow
	/// node or a full block. A shorter window leaves less time to fetch chunks on demand.
	pub const PROOF_WINDOW: BlockNumber = 10;
	/// Active holders are re-checked on average every hour (at random blocks, see
	/// `ReChallengeTicks`).
	pub const RECHALLENGE_PERIOD: BlockNumber = 60 * MINUTES;
	/// Leaving takes three challenge windows.
	pub const LEAVE_DELAY: BlockNumber = 3 * (CHALLENGE_DELAY + PROOF_WINDOW);
	/// A migration target has a day to sync and prove.
	pub const MIGRATION_TIMEOUT: BlockNumber = 24 * 60 * MINUTES;
	/// An offered co-Primary seat can be accepted for a day.
	pub const OFFER_TIMEOUT: BlockNumber = 24 * 60 * MINUTES;
	/// The old provider stays a Primary for 10 minutes after a migration.
	pub const MIGRATION_RETENTION: BlockNumber = 10 * MINUTES;
	/// The old owner has 3 minutes (30 blocks) from the target's proof to seal its epoch. Its
	/// node seals at the first finalized block that shows the proof (the proof is finalized
	/// ≈ 2 blocks after inclusion, the seal lands in the block after it is submitted); the rest
	/// covers a seal that failed and is sent again (the off-chain worker resends after 5
	/// blocks), full blocks and a finality stall. Past it the chain seals at the latest
	/// commit, which loses the writes acknowledged after it: so it is generous, and it is only
	/// waited for when the old owner is gone (then writes are unavailable that long).
	pub const SEAL_TIMEOUT: BlockNumber = 30;
	/// A holder that left keeps its failure count for a day if it rejoins.
	pub const FAILURE_MEMORY: BlockNumber = 24 * 60 * MINUTES;
	/// A holding may stay `Syncing` (unproven, or after a failure) for a day, as long as a
	/// migration target may take.
	pub const SYNCING_TIMEOUT: BlockNumber = MIGRATION_TIMEOUT;
}

parameter_types! {
	/// How long an old provider stays a Primary after a migration. A storage parameter
	/// (default [`sync_timing::MIGRATION_RETENTION`]) so governance can tune it without a
	/// runtime upgrade: Root sets `twox_128(":MigrationRetention:")` with `system.setStorage`
	/// (the polkadot.js migration suite shortens it to a few blocks this way).
	pub storage MigrationRetention: BlockNumber = sync_timing::MIGRATION_RETENTION;
}

/// The randomness `pallet-sync-registry` seeds challenges with: BABE's VRF output of the parent
/// block (`pallet_babe::ParentBlockRandomness`, hashed with `subject`). Where BABE has none
/// (block 1, whose parent is genesis; benchmarks, which have no BABE digest) it falls back to a
/// hash of `subject` and the parent hash.
pub struct BabeBlockRandomness;

impl frame_support::traits::Randomness<Hash, BlockNumber> for BabeBlockRandomness {
	fn random(subject: &[u8]) -> (Hash, BlockNumber) {
		use sp_runtime::traits::Hash as _;
		let (random, known_since): (Option<Hash>, BlockNumber) =
			pallet_babe::ParentBlockRandomness::<Runtime>::random(subject);
		let random =
			random.unwrap_or_else(|| BlakeTwo256::hash_of(&(subject, System::parent_hash())));
		(random, known_since)
	}
}

impl pallet_sync_registry::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type AuthorityId = pallet_sync_registry::ocw::SyncAuthId;
	type NodeDeposit = NodeDeposit;
	type FailurePenalty = FailurePenalty;
	type MaxFailures = ConstU32<3>;
	type MinDeposit = MinDeposit;
	type FailureMemory = ConstU32<{ sync_timing::FAILURE_MEMORY }>;
	type SyncingTimeout = ConstU32<{ sync_timing::SYNCING_TIMEOUT }>;
	type MaxPrimaries = ConstU32<4>;
	type MaxHolders = ConstU32<32>;
	type MaxSegmentsPerNode = ConstU32<64>;
	type RootRetention = ConstU32<16>;
	type MaxLag = ConstU32<2>;
	/// 2^32 ops per commit: exhausting the u64 seq space would take 2^32 commits.
	type MaxSeqStep = ConstU64<{ 1 << 32 }>;
	/// 8 ownership epochs per segment (≤ 881 B): a follower whose head predates all of them
	/// (eight owner changes or re-keys since) re-syncs by snapshot.
	type MaxOwnerEpochs = ConstU32<8>;
	type ChallengeLeaves = ConstU32<6>;
	type MaxProofBytes = ConstU32<{ 16 * 1024 }>;
	type ChallengeDelay = ConstU32<{ sync_timing::CHALLENGE_DELAY }>;
	type ProofWindow = ConstU32<{ sync_timing::PROOF_WINDOW }>;
	type ReChallengePeriod = ConstU32<{ sync_timing::RECHALLENGE_PERIOD }>;
	/// A re-check draw every 15 minutes that fires with probability 1/4: re-challenges come
	/// on average hourly, at a block nobody knows of before the block before it.
	type ReChallengeTicks = ConstU32<4>;
	type Randomness = BabeBlockRandomness;
	type LeaveDelay = ConstU32<{ sync_timing::LEAVE_DELAY }>;
	type MigrationTimeout = ConstU32<{ sync_timing::MIGRATION_TIMEOUT }>;
	type MigrationRetention = MigrationRetention;
	type SealTimeout = ConstU32<{ sync_timing::SEAL_TIMEOUT }>;
	type OfferTimeout = ConstU32<{ sync_timing::OFFER_TIMEOUT }>;
	/// 128 scheduled tasks per 6 s block (≈ 1.8 million a day): ≈ 94 ms (4.7 % of the block's
	/// weight) if all are re-check draws, ≈ 180 ms (9 %) if all are expiries, at the
	/// benchmarked weights. Each Active holding costs `ReChallengeTicks` draws
	/// per `ReChallengePeriod`: 10 000 holdings (500 nodes × 20) need ≈ 67 draws per block,
	/// about half the budget; ≈ 19 000 holdings fill it.
	type MaxScheduledPerBlock = ConstU32<128>;
	type WeightInfo = pallet_sync_registry::weights::SubstrateWeight<Runtime>;
}

impl frame_system::offchain::SigningTypes for Runtime {
	type Public = <Signature as sp_runtime::traits::Verify>::Signer;
	type Signature = Signature;
}

impl<C> frame_system::offchain::CreateTransactionBase<C> for Runtime
where
	RuntimeCall: From<C>,
{
	type Extrinsic = UncheckedExtrinsic;
	type RuntimeCall = RuntimeCall;
}

impl<C> frame_system::offchain::CreateSignedTransaction<C> for Runtime
where
	RuntimeCall: From<C>,
{
	/// Builds the same transaction a wallet would: mortal, nonce-checked, fee-paying.
	fn create_signed_transaction<
		A: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>,
	>(
		call: RuntimeCall,
		public: <Signature as sp_runtime::traits::Verify>::Signer,
		account: AccountId,
		nonce: Nonce,
	) -> Option<UncheckedExtrinsic> {
		use sp_runtime::{generic::Era, traits::StaticLookup, SaturatedConversion};
		let period =
			BlockHashCount::get().checked_next_power_of_two().map(|c| c / 2).unwrap_or(2) as u64;
		let current_block = System::block_number().saturated_into::<u64>().saturating_sub(1);
		let extension: TxExtension = (
			frame_system::AuthorizeCall::<Runtime>::new(),
			frame_system::CheckNonZeroSender::<Runtime>::new(),
			frame_system::CheckSpecVersion::<Runtime>::new(),
			frame_system::CheckTxVersion::<Runtime>::new(),
			frame_system::CheckGenesis::<Runtime>::new(),
			frame_system::CheckEra::<Runtime>::from(Era::mortal(period, current_block)),
			frame_system::CheckNonce::<Runtime>::from(nonce),
			frame_system::CheckWeight::<Runtime>::new(),
			pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(0),
			frame_system::WeightReclaim::<Runtime>::new(),
		);
		let payload = SignedPayload::new(call, extension).ok()?;
		let signature = payload.using_encoded(|p| A::sign(p, public))?;
		let address = <Runtime as frame_system::Config>::Lookup::unlookup(account);
		let (call, extension, _) = payload.deconstruct();
		Some(UncheckedExtrinsic::new_signed(call, address, signature, extension))
	}
}
