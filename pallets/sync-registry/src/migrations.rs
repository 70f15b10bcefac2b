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

/// Version 4 → 5: `Migration::proven`.
pub mod v5 {
	use crate::{Config, Migration, Migrations, OwnerEpochs, Pallet};
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

	/// Rewrites every [`Migrations`] record with `proven` (`None` for a pending one, the seq a
	/// completed one moved ownership at), with no scheduled task changes: the deadlines stay
	/// where they were.
	pub struct InnerV4ToV5<T>(core::marker::PhantomData<T>);

	impl<T: Config> UncheckedOnRuntimeUpgrade for InnerV4ToV5<T> {
		fn on_runtime_upgrade() -> Weight {
			let mut n = 0u64;
			Migrations::<T>::translate::<MigrationV4<T::AccountId, BlockNumberFor<T>>, _>(
				|segment, old| {
					n += 1;
					// The start of the target's first epoch of its ownership now (it may have
					// re-keyed since: an epoch of the same owner), less one.
					let proven = old.completed.then(|| {
						OwnerEpochs::<T>::get(segment)
							.iter()
							.rev()
							.take_while(|e| e.owner == old.to)
							.last()
							.map_or(0, |e| e.first_seq.saturating_sub(1))
					});
					Some(Migration {
						from: old.from,
						to: old.to,
						requested_at: old.requested_at,
						min_index: old.min_index,
						until: old.until,
						completed: old.completed,
						accepted: old.accepted,
						target_added: old.target_added,
						proven,
					})
				},
			);
			// Each record: itself and its segment's epochs read, itself written.
			T::DbWeight::get().reads_writes(2 * n, n)
		}
	}

	/// The version-checked migration 4 → 5, for the runtime's `Executive` migrations.
	pub type MigrateV4ToV5<T> =
		VersionedMigration<4, 5, InnerV4ToV5<T>, Pallet<T>, <T as frame_system::Config>::DbWeight>;
}
