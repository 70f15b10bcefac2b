//! Weights of `pallet-sync-registry`.
//!
//! PROVISIONAL: these figures are not yet produced by running the benchmarks in
//! `benchmarking.rs` on the reference machine. Reference times are conservative estimates and
//! storage reads/writes are counted from the code paths; linear components (`s` segments of a
//! node, `h` holders of a segment) scale as the code does. Replace with generated weights
//! (`frame-omni-bencher v1 benchmark pallet --runtime <wasm> --pallet pallet_sync_registry`).
#![allow(unused_parens, unused_imports, missing_docs)]

use core::marker::PhantomData;
use frame_support::{traits::Get, weights::{constants::RocksDbWeight, Weight}};

/// Weight functions needed by `pallet-sync-registry`.
pub trait WeightInfo {
	fn register_node() -> Weight;
	fn update_node() -> Weight;
	fn deregister_node(s: u32) -> Weight;
	fn announce_leave(s: u32) -> Weight;
	fn create_segment() -> Weight;
	fn add_primary() -> Weight;
	fn remove_primary() -> Weight;
	fn join_segment() -> Weight;
	fn leave_segment() -> Weight;
	fn commit_root(h: u32) -> Weight;
	fn attest_root() -> Weight;
	fn claim_sync() -> Weight;
	fn submit_proof() -> Weight;
	fn request_migration() -> Weight;
	fn cancel_migration() -> Weight;
	fn force_set_owner() -> Weight;
	fn on_initialize_base() -> Weight;
	fn expire_challenge() -> Weight;
	fn rechallenge() -> Weight;
	fn migration_deadline() -> Weight;
}

/// Weights for `pallet-sync-registry` using the runtime's database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	fn register_node() -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn update_node() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(2))
			.saturating_add(T::DbWeight::get().writes(3))
	}
	fn deregister_node(s: u32) -> Weight {
		Weight::from_parts(70_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(6))
			.saturating_add(Weight::from_parts(30_000_000, 1_000).saturating_mul(s.into()))
			.saturating_add(T::DbWeight::get().reads((4 as u64).saturating_mul(s.into())))
			.saturating_add(T::DbWeight::get().writes((4 as u64).saturating_mul(s.into())))
	}
	fn announce_leave(s: u32) -> Weight {
		Weight::from_parts(30_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(2))
			.saturating_add(T::DbWeight::get().writes(1))
			.saturating_add(Weight::from_parts(5_000_000, 1_000).saturating_mul(s.into()))
			.saturating_add(T::DbWeight::get().reads((2 as u64).saturating_mul(s.into())))
			.saturating_add(T::DbWeight::get().writes((0 as u64).saturating_mul(s.into())))
	}
	fn create_segment() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(3))
			.saturating_add(T::DbWeight::get().writes(4))
	}
	fn add_primary() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(4))
	}
	fn remove_primary() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(2))
			.saturating_add(T::DbWeight::get().writes(2))
	}
	fn join_segment() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(3))
	}
	fn leave_segment() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(5))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn commit_root(h: u32) -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(3))
			.saturating_add(T::DbWeight::get().writes(3))
			.saturating_add(Weight::from_parts(8_000_000, 1_000).saturating_mul(h.into()))
			.saturating_add(T::DbWeight::get().reads((1 as u64).saturating_mul(h.into())))
			.saturating_add(T::DbWeight::get().writes((1 as u64).saturating_mul(h.into())))
	}
	fn attest_root() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(2))
			.saturating_add(T::DbWeight::get().writes(1))
	}
	fn claim_sync() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(6))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn submit_proof() -> Weight {
		Weight::from_parts(400_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(8))
			.saturating_add(T::DbWeight::get().writes(9))
	}
	fn request_migration() -> Weight {
		Weight::from_parts(50_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(5))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn cancel_migration() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(5))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn force_set_owner() -> Weight {
		Weight::from_parts(50_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(5))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	fn on_initialize_base() -> Weight {
		Weight::from_parts(5_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(3))
			.saturating_add(T::DbWeight::get().writes(3))
	}
	fn expire_challenge() -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(8))
			.saturating_add(T::DbWeight::get().writes(8))
	}
	fn rechallenge() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(5))
			.saturating_add(T::DbWeight::get().writes(4))
	}
	fn migration_deadline() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(4))
	}
}

// For tests and runtimes without their own figures.
impl WeightInfo for () {
	fn register_node() -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn update_node() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(2))
			.saturating_add(RocksDbWeight::get().writes(3))
	}
	fn deregister_node(s: u32) -> Weight {
		Weight::from_parts(70_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(6))
			.saturating_add(Weight::from_parts(30_000_000, 1_000).saturating_mul(s.into()))
			.saturating_add(RocksDbWeight::get().reads((4 as u64).saturating_mul(s.into())))
			.saturating_add(RocksDbWeight::get().writes((4 as u64).saturating_mul(s.into())))
	}
	fn announce_leave(s: u32) -> Weight {
		Weight::from_parts(30_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(2))
			.saturating_add(RocksDbWeight::get().writes(1))
			.saturating_add(Weight::from_parts(5_000_000, 1_000).saturating_mul(s.into()))
			.saturating_add(RocksDbWeight::get().reads((2 as u64).saturating_mul(s.into())))
			.saturating_add(RocksDbWeight::get().writes((0 as u64).saturating_mul(s.into())))
	}
	fn create_segment() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(3))
			.saturating_add(RocksDbWeight::get().writes(4))
	}
	fn add_primary() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(4))
	}
	fn remove_primary() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(2))
			.saturating_add(RocksDbWeight::get().writes(2))
	}
	fn join_segment() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(3))
	}
	fn leave_segment() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(5))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn commit_root(h: u32) -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(3))
			.saturating_add(RocksDbWeight::get().writes(3))
			.saturating_add(Weight::from_parts(8_000_000, 1_000).saturating_mul(h.into()))
			.saturating_add(RocksDbWeight::get().reads((1 as u64).saturating_mul(h.into())))
			.saturating_add(RocksDbWeight::get().writes((1 as u64).saturating_mul(h.into())))
	}
	fn attest_root() -> Weight {
		Weight::from_parts(35_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(2))
			.saturating_add(RocksDbWeight::get().writes(1))
	}
	fn claim_sync() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(6))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn submit_proof() -> Weight {
		Weight::from_parts(400_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(8))
			.saturating_add(RocksDbWeight::get().writes(9))
	}
	fn request_migration() -> Weight {
		Weight::from_parts(50_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(5))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn cancel_migration() -> Weight {
		Weight::from_parts(45_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(5))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn force_set_owner() -> Weight {
		Weight::from_parts(50_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(5))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn on_initialize_base() -> Weight {
		Weight::from_parts(5_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(3))
			.saturating_add(RocksDbWeight::get().writes(3))
	}
	fn expire_challenge() -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(8))
			.saturating_add(RocksDbWeight::get().writes(8))
	}
	fn rechallenge() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(5))
			.saturating_add(RocksDbWeight::get().writes(4))
	}
	fn migration_deadline() -> Weight {
		Weight::from_parts(40_000_000, 8_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(4))
	}
}
