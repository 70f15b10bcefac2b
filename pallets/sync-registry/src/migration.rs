//! Provider migration: moving a segment's ownership to another Primary once it proved the data,
//! through a fenced handover.
//!
//! A [`Migration`] is *pending* (`completed == false`) from `do_request_migration` until
//! ownership moves, the owner or Root cancels it, the target leaves or fails out, or it times
//! out at `until`. Its phases:
//! 1. *requested*, then *accepted* by the target (`do_accept_migration`);
//! 2. *proven*: the target's proof of a root at least as new as `min_index` was accepted
//!    (`note_proven`, called from `accept_proof`). The old owner still owns the segment; it
//!    stops taking writes and seals its epoch at its last op `H` (`do_seal`, the
//!    `seal_segment` call: a final commit of `H`, or the latest commit if that is `H`);
//! 3. *sealed* at `H` (`sealed`): if the old owner does not seal within `SealTimeout` blocks
//!    of the proof (crashed, unreachable), the chain seals at the latest commit itself
//!    (`migration_deadline`): the writes the old owner acknowledged after that commit are lost.
//!    The old owner takes no more commits;
//! 4. *completed* when the target confirms it holds the sealed root (`do_confirm_seal`, within
//!    `SealTimeout` blocks of the seal): ownership moves and the target's epoch starts at
//!    exactly `H + 1`. Without the confirmation (the target cannot reach `H`: an old owner
//!    sealed at a root nobody serves) the migration times out and the old owner keeps the
//!    segment, so a target never owns what it does not hold.
//!
//! A *completed* migration stays recorded until `until`, while the old provider is retained as
//! a Primary; then it is released. Until ownership moves, cancelling leaves the old owner
//! owning (and writing in) its epoch: nothing is forked.
//!
//! Every read and write of [`Migrations`] goes through the five helpers at the top of this
//! module ([`Pallet::migration`], [`Pallet::has_migration`], [`Pallet::pending_migration_to`],
//! `put_migration`, `remove_migration`).
use crate::{
	segments::Exit, Error, Event, Holdings, Migration, MigrationOf, Migrations, NodeSegments,
	Nodes, Pallet, RootWindowOf, Roots, SegmentInfoOf, Segments, Task,
};
use frame_support::{ensure, pallet_prelude::*};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::Saturating;
use sync_primitives::{commitment::RootFacts, SegmentId};

impl<T: crate::Config> Pallet<T> {
	// ---------------------------------------------------------------- access to `Migrations`

	/// The migration of `segment`, pending or completed.
	pub fn migration(segment: SegmentId) -> Option<MigrationOf<T>> {
		Migrations::<T>::get(segment)
	}

	/// Whether `segment` has a migration record (pending or completed).
	pub fn has_migration(segment: SegmentId) -> bool {
		Migrations::<T>::contains_key(segment)
	}

	/// The *pending* migration of `segment` that `who` accepted as its target. (An unaccepted
	/// request involves the target in nothing: it only waits for
	/// [`Pallet::accept_migration`].)
	pub fn pending_migration_to(segment: SegmentId, who: &T::AccountId) -> Option<MigrationOf<T>> {
		Migrations::<T>::get(segment).filter(|m| !m.completed && m.accepted && &m.to == who)
	}

	fn put_migration(segment: SegmentId, m: &MigrationOf<T>) {
		Migrations::<T>::insert(segment, m);
	}

	/// Removes the record and its scheduled deadline.
	fn remove_migration(segment: SegmentId) {
		if let Some(m) = Migrations::<T>::take(segment) {
			Self::unschedule(m.until, &Task::Migration(segment));
		}
	}

	// ---------------------------------------------------------------- calls

	/// The owner asks `to` to take the segment over; nothing changes for `to` until it calls
	/// [`Pallet::accept_migration`]. The deadline covers acceptance and proof.
	pub(crate) fn do_request_migration(
		segment: SegmentId,
		seg: SegmentInfoOf<T>,
		to: T::AccountId,
	) -> DispatchResult {
		ensure!(!Self::has_migration(segment), Error::<T>::MigrationPending);
		ensure!(seg.owner != to, Error::<T>::AlreadyOwner);
		Self::active_primary(&to)?;
		Self::ensure_target_seat(segment, &seg, &to)?;
		let now = frame_system::Pallet::<T>::block_number();
		let until = Self::schedule(
			now.saturating_add(T::MigrationTimeout::get()),
			Task::Migration(segment),
		);
		let from = seg.owner.clone();
		Self::put_migration(
			segment,
			&Migration {
				from: from.clone(),
				to: to.clone(),
				requested_at: now,
				min_index: seg.commits,
				until,
				completed: false,
				accepted: false,
				target_added: false,
				proven: None,
				sealed: None,
			},
		);
		Self::deposit_event(Event::MigrationRequested { segment, from, to, until });
		Ok(())
	}

	/// The target accepts a requested migration: it becomes a holder if it is not one (and
	/// must prove a root at least as new as the latest at request time before `until`).
	pub(crate) fn do_accept_migration(segment: SegmentId, who: T::AccountId) -> DispatchResult {
		let now = frame_system::Pallet::<T>::block_number();
		let mut m = Self::migration(segment)
			.filter(|m| !m.completed && !m.accepted && m.to == who && now <= m.until)
			.ok_or(Error::<T>::NoOffer)?;
		let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		Self::active_primary(&who)?;
		Self::ensure_target_seat(segment, &seg, &who)?;
		m.target_added = !Holdings::<T>::contains_key(segment, &who);
		if m.target_added {
			Self::add_holder(segment, &mut seg, &who)?;
			Segments::<T>::insert(segment, seg);
		}
		m.accepted = true;
		Self::put_migration(segment, &m);
		Self::deposit_event(Event::MigrationAccepted { segment, to: who.clone() });
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_cancel_migration(segment: SegmentId) -> DispatchResult {
		let m = Self::migration(segment).ok_or(Error::<T>::NoMigration)?;
		ensure!(!m.completed, Error::<T>::NoMigration);
		// Cancelling withdraws an unproven target added for the migration without a failure:
		// not while it has a challenge in progress (so cancelling cannot erase a failure it is
		// due). A proven target stays a holder, so a proven migration can always be cancelled.
		ensure!(
			!m.target_added || m.proven.is_some() || !Self::challenge_in_progress(segment, &m.to),
			Error::<T>::ChallengeInProgress
		);
		Self::abort_migration(segment, m, false);
		Ok(())
	}

	pub(crate) fn do_force_clear_migration(segment: SegmentId) -> DispatchResult {
		let m = Self::migration(segment).ok_or(Error::<T>::NoMigration)?;
		if m.completed {
			Self::release_provider(segment, m);
		} else {
			Self::abort_migration(segment, m, false);
		}
		Ok(())
	}

	pub(crate) fn do_force_set_owner(segment: SegmentId, who: T::AccountId) -> DispatchResult {
		let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.owner != who, Error::<T>::AlreadyOwner);
		Self::active_primary(&who)?;
		ensure!(!Self::has_migration(segment), Error::<T>::MigrationPending);
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
		crate::Divergences::<T>::remove(segment, &who);
		Self::withdraw_offers(segment);
		if Nodes::<T>::contains_key(&from) {
			Self::add_holder(segment, &mut seg, &from)?;
		}
		Segments::<T>::insert(segment, seg);
		Self::deposit_event(Event::OwnerForced { segment, from: from.clone(), to: who.clone() });
		// No seal: the old owner's epoch ends at the latest commit, and the new owner's starts
		// after it (see `crate::epochs`).
		Self::start_epoch(segment, &who, Self::next_epoch_seq(segment));
		Self::refresh_status(&from);
		Self::refresh_status(&who);
		Ok(())
	}

	// ---------------------------------------------------------------- transitions

	/// Cancels a pending migration of `segment` whose target is `who` (who is leaving it).
	pub(crate) fn forget_migration_to(segment: SegmentId, who: &T::AccountId) {
		if Self::pending_migration_to(segment, who).is_some() {
			Self::remove_migration(segment);
			Self::deposit_event(Event::MigrationCancelled { segment, to: who.clone() });
		}
	}

	/// The target's proof of `seq` (at least as new as `min_index`) was accepted: the migration
	/// is proven, and the old owner has [`crate::Config::SealTimeout`] blocks to seal its
	/// epoch before the chain seals it at the latest commit.
	pub(crate) fn note_proven(
		segment: SegmentId,
		mut m: MigrationOf<T>,
		seq: u64,
		now: BlockNumberFor<T>,
	) {
		Self::unschedule(m.until, &Task::Migration(segment));
		m.until =
			Self::schedule(now.saturating_add(T::SealTimeout::get()), Task::Migration(segment));
		m.proven = Some(seq);
		Self::put_migration(segment, &m);
		Self::deposit_event(Event::MigrationProven {
			segment,
			to: m.to.clone(),
			seq,
			seal_by: m.until,
		});
	}

	/// Chain rule of `seal_segment`: `who` owns `segment`, whose migration is proven and not
	/// sealed, and `(seq, facts)` is the owner's last op: either the latest retained commit
	/// (the same facts, else [`Error::SealMismatch`]) or a new commit that `commit_root` would
	/// take ([`Pallet::can_commit`]; an older seq is [`Error::StaleSeq`]). Returns the migration
	/// and, if the seal commits a new root, the segment and root window that commit is checked
	/// against.
	#[allow(clippy::type_complexity)]
	pub fn can_seal(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: &RootFacts,
	) -> Result<(MigrationOf<T>, Option<(SegmentInfoOf<T>, RootWindowOf<T>)>), Error<T>> {
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.owner == *who, Error::<T>::NotOwner);
		let m = Self::migration(segment)
			.filter(|m| !m.completed)
			.ok_or(Error::<T>::NoMigration)?;
		ensure!(m.proven.is_some(), Error::<T>::NotProven);
		ensure!(m.sealed.is_none(), Error::<T>::AlreadySealed);
		match Roots::<T>::get(segment).last() {
			Some(r) if r.seq == seq => {
				ensure!(r.facts == *facts, Error::<T>::SealMismatch);
				Ok((m, None))
			},
			// Once per migration, so it may land in the block of the owner's last commit (a
			// commit sent before the fence): not `CommitTooSoon`.
			_ => Ok((m, Some(Self::check_commit(who, segment, seq, facts, false)?))),
		}
	}

	/// The old owner seals its epoch at `seq` (see [`Pallet::can_seal`]): a new root is
	/// committed if `seq` is past the latest commit, and the target has
	/// [`crate::Config::SealTimeout`] blocks to confirm it (`do_confirm_seal`). Returns the
	/// holders the commit went through (0 without a commit), for the weight.
	pub(crate) fn do_seal(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: RootFacts,
	) -> Result<u32, DispatchError> {
		let (m, commit) = Self::can_seal(&who, segment, seq, &facts)?;
		let holders = match commit {
			Some((seg, roots)) => Self::apply_commit(who.clone(), segment, seg, roots, seq, facts),
			None => 0,
		};
		Self::note_sealed(segment, m, who, seq, false, frame_system::Pallet::<T>::block_number());
		Ok(holders)
	}

	/// The epoch of `owner` is sealed at `seq`: the target has [`crate::Config::SealTimeout`]
	/// blocks to confirm it holds the root there.
	fn note_sealed(
		segment: SegmentId,
		mut m: MigrationOf<T>,
		owner: T::AccountId,
		seq: u64,
		timed_out: bool,
		now: BlockNumberFor<T>,
	) {
		Self::unschedule(m.until, &Task::Migration(segment));
		m.until =
			Self::schedule(now.saturating_add(T::SealTimeout::get()), Task::Migration(segment));
		m.sealed = Some(seq);
		Self::put_migration(segment, &m);
		Self::deposit_event(Event::EpochSealed { segment, owner, seq, timed_out });
	}

	/// The old owner did not seal a proven migration in time: the chain seals its epoch at the
	/// latest retained commit (the last root it has), for the target to confirm.
	fn seal_timed_out(segment: SegmentId, m: MigrationOf<T>, now: BlockNumberFor<T>) {
		let Some(seg) = Segments::<T>::get(segment) else { return };
		let seq = Self::next_epoch_seq(segment).saturating_sub(1);
		Self::note_sealed(segment, m, seg.owner, seq, true, now);
	}

	/// Chain rule of `confirm_seal`: `who` is the target of `segment`'s pending migration,
	/// which is sealed at `seq`, and `root` is the retained commit's root there.
	pub fn can_confirm_seal(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: &sync_primitives::commitment::Hash32,
	) -> Result<(MigrationOf<T>, SegmentInfoOf<T>), Error<T>> {
		let m = Self::pending_migration_to(segment, who).ok_or(Error::<T>::NoMigration)?;
		let sealed = m.sealed.ok_or(Error::<T>::NotSealed)?;
		ensure!(sealed == seq, Error::<T>::SealMismatch);
		let at = Roots::<T>::get(segment).into_iter().find(|r| r.seq == seq);
		ensure!(at.is_some_and(|r| r.facts.root == *root), Error::<T>::SealMismatch);
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		Ok((m, seg))
	}

	/// The target confirms the seal (see [`Pallet::can_confirm_seal`]): ownership moves.
	pub(crate) fn do_confirm_seal(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: sync_primitives::commitment::Hash32,
	) -> DispatchResult {
		let (m, seg) = Self::can_confirm_seal(&who, segment, seq, &root)?;
		Self::complete_migration(segment, seg, m, seq, frame_system::Pallet::<T>::block_number());
		Ok(())
	}

	/// The old owner's epoch was sealed at `seq` and the target confirmed it: ownership moves
	/// and the target's ownership epoch starts at exactly `seq + 1`; the old owner is retained
	/// until the release.
	pub(crate) fn complete_migration(
		segment: SegmentId,
		mut seg: SegmentInfoOf<T>,
		mut m: MigrationOf<T>,
		seq: u64,
		now: BlockNumberFor<T>,
	) {
		Self::take_out_holder(segment, &mut seg, &m.to);
		// Its own root is now the commit: an earlier divergence of the new owner is moot, and
		// so is a seat offered to it.
		crate::Divergences::<T>::remove(segment, &m.to);
		Self::withdraw_offers(segment);
		if !seg.primaries.contains(&m.to) {
			// Room was checked at request time and `add_primary` keeps the target's seat free
			// while the migration is pending, so this cannot fail.
			let _ = seg.primaries.try_push(m.to.clone());
		}
		seg.owner = m.to.clone();
		Segments::<T>::insert(segment, seg);
		Self::unschedule(m.until, &Task::Migration(segment));
		let release = now.saturating_add(T::MigrationRetention::get());
		m.until = Self::schedule(release, Task::Migration(segment));
		m.completed = true;
		Self::put_migration(segment, &m);
		Self::deposit_event(Event::MigrationCompleted {
			segment,
			from: m.from.clone(),
			to: m.to.clone(),
			seq,
		});
		Self::start_epoch(segment, &m.to, seq.saturating_add(1));
		Self::refresh_status(&m.from);
		// No longer a holder of the segment: its cached status may change with it.
		Self::refresh_status(&m.to);
	}

	/// Cancels (by call or timeout) a pending migration.
	pub(crate) fn abort_migration(segment: SegmentId, m: MigrationOf<T>, timed_out: bool) {
		Self::remove_migration(segment);
		if m.target_added {
			let proven = Holdings::<T>::get(segment, &m.to).is_some_and(|h| h.proven.is_some());
			if !proven {
				Self::drop_holder(segment, &m.to, Exit::Withdrawn);
			}
		}
		if timed_out {
			Self::deposit_event(Event::MigrationTimedOut { segment, to: m.to.clone() });
		} else {
			Self::deposit_event(Event::MigrationCancelled { segment, to: m.to.clone() });
		}
		Self::refresh_status(&m.to);
	}

	/// Times out or releases the migration of `segment` (its [`Task::Migration`] is due).
	pub(crate) fn migration_deadline(segment: SegmentId, now: BlockNumberFor<T>) {
		let Some(m) = Self::migration(segment) else { return };
		if m.until > now {
			return;
		}
		if m.completed {
			Self::release_provider(segment, m);
		} else if m.sealed.is_some() {
			// The target did not confirm the seal: it cannot reach it, so it must not own.
			Self::abort_migration(segment, m, true);
		} else if m.proven.is_some() {
			Self::seal_timed_out(segment, m, now);
		} else {
			Self::abort_migration(segment, m, true);
		}
	}

	/// Ends a completed migration: the old provider stops being a Primary (unless it holds the
	/// segment as an ordinary holder).
	fn release_provider(segment: SegmentId, m: MigrationOf<T>) {
		Self::remove_migration(segment);
		if let Some(mut seg) = Segments::<T>::get(segment) {
			if seg.owner != m.from && !seg.holders.contains(&m.from) {
				seg.primaries.retain(|p| p != &m.from);
				Self::forget_votes(segment, &m.from);
				Self::unindex_segment(&m.from, segment);
				Segments::<T>::insert(segment, seg);
			}
		}
		Self::deposit_event(Event::ProviderReleased { segment, who: m.from.clone() });
		Self::refresh_status(&m.from);
	}
}
