//! Mock runtime for unit tests: frame-system, balances and the sync registry, with sr25519
//! accounts so keystore keys are accounts (as in the real runtime) and the OCW can sign.
use crate as pallet_sync_registry;
use codec::Encode;
use frame_support::{derive_impl, parameter_types, traits::Hooks};
use sp_core::sr25519::{Public, Signature};
use sp_runtime::{
	generic::UncheckedExtrinsic,
	traits::{IdentityLookup, Verify},
	BuildStorage, Perbill,
};

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = Public;
pub type Balance = u64;
pub type Extrinsic = UncheckedExtrinsic<u64, RuntimeCall, (), ()>;

#[frame_support::runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Test;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;
	#[runtime::pallet_index(1)]
	pub type Balances = pallet_balances;
	#[runtime::pallet_index(2)]
	pub type SyncRegistry = pallet_sync_registry;
}

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountId = AccountId;
	type Lookup = IdentityLookup<AccountId>;
	type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
}

impl frame_system::offchain::SigningTypes for Test {
	type Public = <Signature as Verify>::Signer;
	type Signature = Signature;
}

impl<C> frame_system::offchain::CreateTransactionBase<C> for Test
where
	RuntimeCall: From<C>,
{
	type RuntimeCall = RuntimeCall;
	type Extrinsic = Extrinsic;
}

impl<C> frame_system::offchain::CreateSignedTransaction<C> for Test
where
	RuntimeCall: From<C>,
{
	fn create_signed_transaction<
		A: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>,
	>(
		call: RuntimeCall,
		_public: Public,
		_account: AccountId,
		nonce: u32,
	) -> Option<Extrinsic> {
		Some(Extrinsic::new_signed(call, nonce.into(), (), ()))
	}
}

pub const DEPOSIT: Balance = 1_000;
pub const LEAVE_DELAY: u64 = 20;
pub const CHALLENGE_DELAY: u64 = 2;
pub const PROOF_WINDOW: u64 = 5;
pub const RECHALLENGE_PERIOD: u64 = 30;
pub const MIGRATION_TIMEOUT: u64 = 40;
pub const MIGRATION_RETENTION: u64 = 10;
pub const SEAL_TIMEOUT: u64 = 5;
pub const OFFER_TIMEOUT: u64 = 15;
pub const FAILURE_MEMORY: u64 = 50;
pub const SYNCING_TIMEOUT: u64 = 60;
pub const MAX_SEQ_STEP: u64 = 1_000;
/// Ownership epochs kept per segment (as in the runtime).
pub const MAX_OWNER_EPOCHS: u32 = 8;
pub const K: u32 = 6;

parameter_types! {
	/// Re-check draws per period (1: exactly every period, as most tests expect).
	pub static ReChallengeTicks: u32 = 1;
	/// When set, the "VRF output" every block reports (tests of the beacon).
	pub static VrfOverride: Option<[u8; 32]> = None;
	pub const NodeDeposit: Balance = DEPOSIT;
	pub const FailurePenalty: Perbill = Perbill::from_percent(10);
	pub const MinDeposit: Balance = DEPOSIT / 2;
}

impl pallet_sync_registry::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type AuthorityId = crate::ocw::SyncAuthId;
	type NodeDeposit = NodeDeposit;
	type FailurePenalty = FailurePenalty;
	type MaxFailures = frame_support::traits::ConstU32<3>;
	type MinDeposit = MinDeposit;
	type FailureMemory = frame_support::traits::ConstU64<FAILURE_MEMORY>;
	type SyncingTimeout = frame_support::traits::ConstU64<SYNCING_TIMEOUT>;
	type MaxPrimaries = frame_support::traits::ConstU32<3>;
	type MaxHolders = frame_support::traits::ConstU32<4>;
	type MaxSegmentsPerNode = frame_support::traits::ConstU32<4>;
	type RootRetention = frame_support::traits::ConstU32<4>;
	type MaxLag = frame_support::traits::ConstU32<2>;
	type MaxSeqStep = frame_support::traits::ConstU64<MAX_SEQ_STEP>;
	type MaxOwnerEpochs = frame_support::traits::ConstU32<MAX_OWNER_EPOCHS>;
	type ChallengeLeaves = frame_support::traits::ConstU32<K>;
	type MaxProofBytes = frame_support::traits::ConstU32<{ 16 * 1024 }>;
	type ChallengeDelay = frame_support::traits::ConstU64<CHALLENGE_DELAY>;
	type ProofWindow = frame_support::traits::ConstU64<PROOF_WINDOW>;
	type ReChallengePeriod = frame_support::traits::ConstU64<RECHALLENGE_PERIOD>;
	type ReChallengeTicks = ReChallengeTicks;
	type Randomness = TestRandomness;
	type LeaveDelay = frame_support::traits::ConstU64<LEAVE_DELAY>;
	type MigrationTimeout = frame_support::traits::ConstU64<MIGRATION_TIMEOUT>;
	type MigrationRetention = frame_support::traits::ConstU64<MIGRATION_RETENTION>;
	type SealTimeout = frame_support::traits::ConstU64<SEAL_TIMEOUT>;
	type OfferTimeout = frame_support::traits::ConstU64<OFFER_TIMEOUT>;
	type MaxScheduledPerBlock = frame_support::traits::ConstU32<2>;
	type WeightInfo = ();
}

/// Stands in for BABE's per-block VRF output: a hash of the parent block's recorded hash
/// (distinct per block in `run_to`), or [`VrfOverride`].
pub struct TestRandomness;
impl frame_support::traits::Randomness<sp_core::H256, u64> for TestRandomness {
	fn random(subject: &[u8]) -> (sp_core::H256, u64) {
		let n = System::block_number().saturating_sub(1);
		let v = VrfOverride::get().unwrap_or_else(|| {
			let parent = frame_system::BlockHash::<Test>::get(n);
			sp_io::hashing::blake2_256(&(subject, parent).encode())
		});
		(v.into(), n)
	}
}

pub fn account(n: u8) -> AccountId {
	Public::from_raw([n; 32])
}
pub fn alice() -> AccountId {
	account(1)
}
pub fn bob() -> AccountId {
	account(2)
}
pub fn charlie() -> AccountId {
	account(3)
}
pub fn dave() -> AccountId {
	account(4)
}
/// Has less than the deposit.
pub fn poor() -> AccountId {
	account(9)
}

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	let mut balances: Vec<_> = (1u8..=8).map(|i| (account(i), 100_000)).collect();
	balances.push((poor(), 50));
	pallet_balances::GenesisConfig::<Test> { balances, ..Default::default() }
		.assimilate_storage(&mut t)
		.unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	// The benchmarks sign peer-id bindings with keystore keys, as on a real benchmark host.
	ext.register_extension(sp_keystore::KeystoreExt::new(
		sp_keystore::testing::MemoryKeystore::new(),
	));
	ext.execute_with(|| System::set_block_number(1));
	ext
}

/// Moves to block `n`, running `on_initialize` of each block on the way (and recording each
/// parent hash so challenge seeds exist).
pub fn run_to(n: u64) {
	while System::block_number() < n {
		let next = System::block_number() + 1;
		System::set_block_number(next);
		// What `frame_system::initialize` records: the parent's hash.
		let parent = sp_core::H256::from_low_u64_be(next - 1 + 0xabcd);
		frame_system::BlockHash::<Test>::insert(next - 1, parent);
		SyncRegistry::on_initialize(next);
	}
}
