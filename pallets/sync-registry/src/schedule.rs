//! Scheduling: bounded per-block buckets and the `on_initialize` tick.
//!
//! Expiries ([`Expiries`]), re-challenges ([`ReChallenges`]) and migration deadlines
//! ([`MigrationDeadlines`]) are kept in buckets of at most [`Config::MaxScheduledPerBlock`]
//! entries keyed by block. An item goes into the first bucket with room among
//! [`SCHEDULE_SPAN`] consecutive blocks (so a deadline may move a few blocks later); if all are
//! full, the call that schedules it fails with [`Error::ScheduleFull`]. Each block processes
//! exactly one bucket of each kind, so `on_initialize` is bounded by
//! `3 × MaxScheduledPerBlock` items.
use crate::{
	ChallengeId, Config, Error, Expiries, MigrationDeadlines, Pallet, ReChallenges, WeightInfo,
};
use frame_support::pallet_prelude::*;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::Saturating;
use sync_primitives::SegmentId;

/// How many consecutive blocks scheduling looks at for a free slot.
pub const SCHEDULE_SPAN: u32 = 32;

impl<T: Config> Pallet<T> {
	/// The `on_initialize` work of block `now`: expire the challenges due, issue the
	/// re-challenges due, then time out or release the migrations due. Returns its weight.
	pub(crate) fn do_on_initialize(now: BlockNumberFor<T>) -> Weight {
		let expired = Self::expire_challenges(now);
		let rechallenged = Self::issue_rechallenges(now);
		let migrations = Self::process_migration_deadlines(now);
		T::WeightInfo::on_initialize_base()
			.saturating_add(T::WeightInfo::expire_challenge().saturating_mul(expired.into()))
			.saturating_add(T::WeightInfo::rechallenge().saturating_mul(rechallenged.into()))
			.saturating_add(T::WeightInfo::migration_deadline().saturating_mul(migrations.into()))
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

	/// Schedules the expiry of challenge `id` at `from` or later; returns the block.
	pub(crate) fn schedule_expiry(
		from: BlockNumberFor<T>,
		id: ChallengeId,
	) -> Result<BlockNumberFor<T>, DispatchError> {
		Self::schedule(from, id, |at, i| Expiries::<T>::mutate(at, |b| b.try_push(i)))
	}

	/// Schedules a migration deadline (timeout or release) at `from` or later.
	pub(crate) fn schedule_migration(
		segment: SegmentId,
		from: BlockNumberFor<T>,
	) -> Result<BlockNumberFor<T>, DispatchError> {
		Self::schedule(from, segment, |at, s| {
			MigrationDeadlines::<T>::mutate(at, |b| b.try_push(s))
		})
	}

	/// Schedules a re-challenge of `entry` (segment, holder) at `from` or later.
	pub(crate) fn schedule_rechallenge(
		from: BlockNumberFor<T>,
		entry: (SegmentId, T::AccountId),
	) -> Result<BlockNumberFor<T>, DispatchError> {
		Self::schedule(from, entry, |at, e| ReChallenges::<T>::mutate(at, |b| b.try_push(e)))
	}
}
