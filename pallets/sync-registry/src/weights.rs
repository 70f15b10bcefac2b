//! Weights of `pallet-sync-registry`.
//!
//! PROVISIONAL: the figures below are not yet produced by `frame-benchmarking-cli`. The
//! reference times are conservative estimates and the storage reads/writes are counted from the
//! code paths (balances hold included). They are replaced by generated weights when the pallet
//! benchmarks are run on the reference machine (see `benchmarking.rs`, which already covers every
//! call and is exercised in the test suite).
#![allow(unused_parens, unused_imports, missing_docs)]

use core::marker::PhantomData;
use frame_support::{traits::Get, weights::{constants::RocksDbWeight, Weight}};

/// Weight functions needed by `pallet-sync-registry`.
pub trait WeightInfo {
	fn register_node() -> Weight;
	fn update_node() -> Weight;
	fn deregister_node() -> Weight;
	fn force_deregister() -> Weight;
}

/// Weights for `pallet-sync-registry` using the runtime's database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	/// Reads: Nodes, PeerIds, Balances::Holds, System::Account.
	/// Writes: Nodes, Nodes counter, PeerIds, Balances::Holds, System::Account.
	fn register_node() -> Weight {
		Weight::from_parts(60_000_000, 4_000)
			.saturating_add(T::DbWeight::get().reads(4))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	/// Reads: Nodes, PeerIds. Writes: Nodes, PeerIds (old), PeerIds (new).
	fn update_node() -> Weight {
		Weight::from_parts(35_000_000, 4_000)
			.saturating_add(T::DbWeight::get().reads(2))
			.saturating_add(T::DbWeight::get().writes(3))
	}
	/// Reads: Nodes, Balances::Holds, System::Account.
	/// Writes: Nodes, Nodes counter, PeerIds, Balances::Holds, System::Account.
	fn deregister_node() -> Weight {
		Weight::from_parts(55_000_000, 4_000)
			.saturating_add(T::DbWeight::get().reads(3))
			.saturating_add(T::DbWeight::get().writes(5))
	}
	/// As `deregister_node`.
	fn force_deregister() -> Weight {
		Weight::from_parts(55_000_000, 4_000)
			.saturating_add(T::DbWeight::get().reads(3))
			.saturating_add(T::DbWeight::get().writes(5))
	}
}

// For tests and runtimes without their own figures.
impl WeightInfo for () {
	fn register_node() -> Weight {
		Weight::from_parts(60_000_000, 4_000)
			.saturating_add(RocksDbWeight::get().reads(4))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn update_node() -> Weight {
		Weight::from_parts(35_000_000, 4_000)
			.saturating_add(RocksDbWeight::get().reads(2))
			.saturating_add(RocksDbWeight::get().writes(3))
	}
	fn deregister_node() -> Weight {
		Weight::from_parts(55_000_000, 4_000)
			.saturating_add(RocksDbWeight::get().reads(3))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
	fn force_deregister() -> Weight {
		Weight::from_parts(55_000_000, 4_000)
			.saturating_add(RocksDbWeight::get().reads(3))
			.saturating_add(RocksDbWeight::get().writes(5))
	}
}
