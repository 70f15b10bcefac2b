//! Storage migrations of the pallet (see the README's *Storage version*).
//!
//! [`v5::MigrateV4ToV5`]: a [`Migration`](crate::Migration) record gained `proven` (the fenced
//! handover). A record written by version 4 is pending and unproven, or completed: it decodes
//! as the old shape and is rewritten with `proven: None` if pending, and, if completed, with
//! the seq it completed at (version 4 moved ownership at the proven seq: the start of the
//! target's epoch less one), so that `try_state`'s "completed without a proof" holds. A
//! version-4 migration that was
//! pending at the upgrade therefore needs its target's proof again (a version-4 proof moved
//! ownership at once, so a pending one has none), then the old owner's seal.

//!
//! [`v6::MigrateV5ToV6`]: a record gained `sealed` (the target confirms the seal). A pending
//! version-5 record was not sealed (a version-5 seal moved ownership at once): `None`; a
//! completed one was sealed where the target's epoch starts, less one.
//!
//! Each step reads the shape the one before it wrote, so they run in order in one upgrade.

use crate::{Config, OwnerEpochs};
use sync_primitives::SegmentId;

/// Where a completed migration to `to` moved ownership: the start of the target's first epoch
/// of its ownership now (it may have re-keyed since: an epoch of the same owner), less one.
fn moved_at<T: Config>(segment: SegmentId, to: &T::AccountId) -> u64 {
	OwnerEpochs::<T>::get(segment)
		.iter()
		.rev()
		.take_while(|e| &e.owner == to)
		.last()
		.map_or(0, |e| e.first_seq.saturating_sub(1))
}

/// Version 4 → 5: `Migration::proven`.
pub mod v5 {
	use crate::{Config, Migrations, Pallet};
	use codec::{Decode, Encode};
	use frame_support::{
		migrations::VersionedMigration,
		traits::{Get, UncheckedOnRuntimeUpgrade},
		weights::Weight,
	};
	use frame_system::pallet_prelude::BlockNumberFor;

	/// A [`Migration`] as version 4 stored it.
	#[derive(Encode, Decode)]
	pub struct MigrationV4<AccountId, BlockNumber> {
		/// See [`Migration::from`].
		pub from: AccountId,
		/// See [`Migration::to`].
		pub to: AccountId,
		/// See [`Migration::requested_at`].
		pub requested_at: BlockNumber,
		/// See [`Migration::min_index`].
		pub min_index: u32,
		/// See [`Migration::until`].
		pub until: BlockNumber,
		/// See [`Migration::completed`].
		pub completed: bool,
		/// See [`Migration::accepted`].
		pub accepted: bool,
		/// See [`Migration::target_added`].
		pub target_added: bool,
	}

	/// Rewrites every [`Migrations`] record in version 5's shape
	/// ([`super::v6::MigrationV5`]) with `proven` (`None` for a pending one, the seq a
	/// completed one moved ownership at), with no scheduled task changes: the deadlines stay
	/// where they were.
	pub struct InnerV4ToV5<T>(core::marker::PhantomData<T>);

	impl<T: Config> UncheckedOnRuntimeUpgrade for InnerV4ToV5<T> {
		fn on_runtime_upgrade() -> Weight {
			use frame_support::storage::unhashed;
			let mut n = 0u64;
			let segments: alloc::vec::Vec<_> = Migrations::<T>::iter_keys().collect();
			for segment in segments {
				let key = Migrations::<T>::hashed_key_for(segment);
				let Some(old) = unhashed::get::<MigrationV4<T::AccountId, BlockNumberFor<T>>>(&key)
				else {
					continue;
				};
				n += 1;
				let proven = old.completed.then(|| super::moved_at::<T>(segment, &old.to));
				let new = super::v6::MigrationV5 {
					from: old.from,
					to: old.to,
					requested_at: old.requested_at,
					min_index: old.min_index,
					until: old.until,
					completed: old.completed,
					accepted: old.accepted,
					target_added: old.target_added,
					proven,
				};
				unhashed::put(&key, &new);
			}
			// Each record: itself and its segment's epochs read, itself written.
			T::DbWeight::get().reads_writes(2 * n, n)
		}
	}

	/// The version-checked migration 4 → 5, for the runtime's `Executive` migrations.
	pub type MigrateV4ToV5<T> =
		VersionedMigration<4, 5, InnerV4ToV5<T>, Pallet<T>, <T as frame_system::Config>::DbWeight>;
}

/// Version 5 → 6: `Migration::sealed`.
pub mod v6 {
	use crate::{Config, Migration, Migrations, Pallet};
	use codec::{Decode, Encode};
	use frame_support::{
		migrations::VersionedMigration,
		traits::{Get, UncheckedOnRuntimeUpgrade},
		weights::Weight,
	};
	use frame_system::pallet_prelude::BlockNumberFor;

	/// A [`Migration`] as version 5 stored it.
	#[derive(Encode, Decode)]
	pub struct MigrationV5<AccountId, BlockNumber> {
		/// See [`Migration::from`].
		pub from: AccountId,
		/// See [`Migration::to`].
		pub to: AccountId,
		/// See [`Migration::requested_at`].
		pub requested_at: BlockNumber,
		/// See [`Migration::min_index`].
		pub min_index: u32,
		/// See [`Migration::until`].
		pub until: BlockNumber,
		/// See [`Migration::completed`].
		pub completed: bool,
		/// See [`Migration::accepted`].
		pub accepted: bool,
		/// See [`Migration::target_added`].
		pub target_added: bool,
		/// See [`Migration::proven`].
		pub proven: Option<u64>,
	}

	/// Rewrites every [`Migrations`] record with `sealed`: `None` for a pending one (version 5
	/// moved ownership at its seal, so a pending one was not sealed), where ownership moved for
	/// a completed one. Deadlines stay where they were.
	pub struct InnerV5ToV6<T>(core::marker::PhantomData<T>);

	impl<T: Config> UncheckedOnRuntimeUpgrade for InnerV5ToV6<T> {
		fn on_runtime_upgrade() -> Weight {
			let mut n = 0u64;
			Migrations::<T>::translate::<MigrationV5<T::AccountId, BlockNumberFor<T>>, _>(
				|segment, old| {
					n += 1;
					let sealed = old.completed.then(|| super::moved_at::<T>(segment, &old.to));
					Some(Migration {
						from: old.from,
						to: old.to,
						requested_at: old.requested_at,
						min_index: old.min_index,
						until: old.until,
						completed: old.completed,
						accepted: old.accepted,
						target_added: old.target_added,
						proven: old.proven,
						sealed,
					})
				},
			);
			// Each record: itself and its segment's epochs read, itself written.
			T::DbWeight::get().reads_writes(2 * n, n)
		}
	}

	/// The version-checked migration 5 → 6, for the runtime's `Executive` migrations.
	pub type MigrateV5ToV6<T> =
		VersionedMigration<5, 6, InnerV5ToV6<T>, Pallet<T>, <T as frame_system::Config>::DbWeight>;
}
