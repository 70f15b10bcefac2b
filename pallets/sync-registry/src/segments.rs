//! Segments: creation, co-Primaries, and the holders that mirror a segment.
//!
//! A segment lists its `owner` (also the first of its `primaries`) and its non-owner `holders`;
//! each holder has a [`Holding`] record and the segment appears in the holder's
//! [`NodeSegments`]. The helpers here keep those three views consistent.
use crate::{
	Challenges, Divergences, Error, Event, FailureRecord, FailureRecords, Holding, HoldingStatus,
	Holdings, NextSegmentId, NodeSegments, OpenChallenge, Pallet, ParityVotes, PrimaryOffers,
	SegmentInfo, SegmentInfoOf, Segments, Task,
};
use frame_support::{ensure, pallet_prelude::*};
use frame_system::{
	ensure_root, ensure_signed,
	pallet_prelude::{BlockNumberFor, OriginFor},
};
use sp_runtime::traits::Saturating;
use sync_primitives::SegmentId;

/// How a holder leaves a segment; decides whether an open challenge counts as failed, and the
/// event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
	/// The holder left, deregistered or was force-deregistered by Root: an open challenge
	/// whose indexes are known is abandoned, which is a failure.
	Left,
	/// The segment's owner (or Root) removed the holder: not the holder's failure.
	Removed,
	/// The chain dropped it (`MaxFailures`, or `Syncing` for longer than `SyncingTimeout`).
	Dropped,
	/// A migration it was added for ended unproven (cancelled or timed out): nobody's fault.
	Withdrawn,
}

impl<T: crate::Config> Pallet<T> {
	/// The segment, if `origin` is Root or its owner.
	pub(crate) fn owned_segment(
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

	pub(crate) fn do_create_segment(who: T::AccountId) -> DispatchResult {
		Self::active_primary(&who)?;
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
		Self::start_epoch(id, &who, 1);
		Self::refresh_status(&who);
		Ok(())
	}

	/// Seats of `segment` taken or promised to someone other than `who`: its Primaries, the
	/// live (unexpired) offers and a pending migration target that is not a Primary yet. The
	/// one seat-counting rule of `add_primary`, `accept_primary` and `request_migration`.
	fn seats_taken(segment: SegmentId, seg: &SegmentInfoOf<T>, who: &T::AccountId) -> usize {
		let now = frame_system::Pallet::<T>::block_number();
		let target = Self::migration(segment)
			.filter(|m| !m.completed && !seg.primaries.contains(&m.to))
			.map(|m| m.to);
		// Each account counts once: the pending target's own offer is its one seat.
		let offers = PrimaryOffers::<T>::iter_prefix(segment)
			.filter(|(a, until)| a != who && Some(a) != target.as_ref() && *until >= now)
			.count();
		let target = target.filter(|t| t != who).map_or(0, |_| 1);
		seg.primaries.len().saturating_add(offers).saturating_add(target)
	}

	/// Withdraws every seat offer of `segment` (its owner changed: the new owner made none of
	/// them). At most `MaxPrimaries` entries.
	pub(crate) fn withdraw_offers(segment: SegmentId) {
		for (who, _) in PrimaryOffers::<T>::drain_prefix(segment) {
			Self::deposit_event(Event::PrimaryOfferWithdrawn { segment, who });
		}
	}

	/// A migration target is a Primary of `segment` already, or a seat is free for it (checked
	/// at request and again at acceptance).
	pub(crate) fn ensure_target_seat(
		segment: SegmentId,
		seg: &SegmentInfoOf<T>,
		who: &T::AccountId,
	) -> Result<(), Error<T>> {
		ensure!(
			seg.primaries.contains(who) || Self::seat_free(segment, seg, who),
			Error::<T>::TooManyPrimaries
		);
		Ok(())
	}

	/// Whether `segment` has a free Primary seat for `who`.
	pub(crate) fn seat_free(
		segment: SegmentId,
		seg: &SegmentInfoOf<T>,
		who: &T::AccountId,
	) -> bool {
		Self::seats_taken(segment, seg, who) < T::MaxPrimaries::get() as usize
	}

	/// The owner offers `who` a Primary seat; `who` takes it with [`Pallet::accept_primary`].
	/// Expired offers of the segment are removed first, so they hold no seat.
	pub(crate) fn do_add_primary(
		segment: SegmentId,
		seg: SegmentInfoOf<T>,
		who: T::AccountId,
	) -> DispatchResult {
		Self::active_primary(&who)?;
		ensure!(!seg.primaries.contains(&who), Error::<T>::AlreadyPrimary);
		let now = frame_system::Pallet::<T>::block_number();
		let expired: alloc::vec::Vec<_> = PrimaryOffers::<T>::iter_prefix(segment)
			.filter(|(_, until)| *until < now)
			.map(|(a, _)| a)
			.collect();
		for a in expired {
			PrimaryOffers::<T>::remove(segment, &a);
			Self::deposit_event(Event::PrimaryOfferWithdrawn { segment, who: a });
		}
		ensure!(!PrimaryOffers::<T>::contains_key(segment, &who), Error::<T>::AlreadyOffered);
		ensure!(Self::seat_free(segment, &seg, &who), Error::<T>::TooManyPrimaries);
		let until = now.saturating_add(T::OfferTimeout::get());
		PrimaryOffers::<T>::insert(segment, &who, until);
		Self::deposit_event(Event::PrimaryOffered { segment, who, until });
		Ok(())
	}

	/// `who` takes the Primary seat it was offered: it becomes a co-Primary and, if it does not
	/// hold the segment yet, a `Syncing` holder that must prove.
	pub(crate) fn do_accept_primary(segment: SegmentId, who: T::AccountId) -> DispatchResult {
		let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		let until = PrimaryOffers::<T>::get(segment, &who).ok_or(Error::<T>::NoOffer)?;
		ensure!(frame_system::Pallet::<T>::block_number() <= until, Error::<T>::NoOffer);
		Self::active_primary(&who)?;
		ensure!(!seg.primaries.contains(&who), Error::<T>::AlreadyPrimary);
		ensure!(Self::seat_free(segment, &seg, &who), Error::<T>::TooManyPrimaries);
		seg.primaries.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
		if !Holdings::<T>::contains_key(segment, &who) {
			Self::add_holder(segment, &mut seg, &who)?;
		}
		PrimaryOffers::<T>::remove(segment, &who);
		Segments::<T>::insert(segment, seg);
		Self::deposit_event(Event::PrimaryAdded { segment, who: who.clone() });
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_remove_primary(
		segment: SegmentId,
		mut seg: SegmentInfoOf<T>,
		who: T::AccountId,
	) -> DispatchResult {
		ensure!(seg.owner != who, Error::<T>::IsOwner);
		// An offer not taken yet is withdrawn.
		if PrimaryOffers::<T>::take(segment, &who).is_some() {
			Self::deposit_event(Event::PrimaryOfferWithdrawn { segment, who });
			return Ok(());
		}
		// The old provider retained after a migration leaves with its release (or Root's
		// `force_clear_migration`), which also unindexes it.
		ensure!(
			!Self::migration(segment).is_some_and(|m| m.completed && m.from == who),
			Error::<T>::MigrationPending
		);
		let pos = seg.primaries.iter().position(|p| p == &who).ok_or(Error::<T>::NotPrimary)?;
		seg.primaries.remove(pos);
		Self::forget_votes(segment, &who);
		Segments::<T>::insert(segment, seg);
		Self::deposit_event(Event::PrimaryRemoved { segment, who });
		Ok(())
	}

	/// Removes `segment` from `who`'s segment list (and the list itself once empty, so a
	/// departed account leaves no entry behind).
	pub(crate) fn unindex_segment(who: &T::AccountId, segment: SegmentId) {
		NodeSegments::<T>::mutate_exists(who, |v| {
			if let Some(list) = v {
				list.retain(|s| *s != segment);
				if list.is_empty() {
					*v = None;
				}
			}
		});
	}

	/// Removes `who`'s parity vote and recorded divergence for `segment` (it is no Primary
	/// any more).
	pub(crate) fn forget_votes(segment: SegmentId, who: &T::AccountId) {
		ParityVotes::<T>::mutate(segment, |v| {
			if let Some((_, _, votes)) = v {
				votes.retain(|p| p != who);
			}
		});
		Divergences::<T>::remove(segment, who);
	}

	pub(crate) fn do_remove_holder(
		segment: SegmentId,
		seg: SegmentInfoOf<T>,
		who: T::AccountId,
	) -> DispatchResult {
		ensure!(seg.owner != who, Error::<T>::IsOwner);
		ensure!(Holdings::<T>::contains_key(segment, &who), Error::<T>::NotHolder);
		// Removing is no failure of the holder's, so it must not be a way out of a challenge
		// it can no longer pass (an owner colluding with its holder): wait for the outcome.
		ensure!(!Self::challenge_in_progress(segment, &who), Error::<T>::ChallengeInProgress);
		Self::forget_migration_to(segment, &who);
		Self::drop_holder(segment, &who, Exit::Removed);
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_join_segment(who: T::AccountId, segment: SegmentId) -> DispatchResult {
		Self::ensure_not_suspended(&Self::active_node(&who)?)?;
		let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.owner != who, Error::<T>::IsOwner);
		ensure!(!Holdings::<T>::contains_key(segment, &who), Error::<T>::AlreadyHolder);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(
			!FailureRecords::<T>::get(segment, &who).is_some_and(|r| r.barred && r.until >= now),
			Error::<T>::RejoinBarred
		);
		Self::add_holder(segment, &mut seg, &who)?;
		Segments::<T>::insert(segment, seg);
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_leave_segment(who: T::AccountId, segment: SegmentId) -> DispatchResult {
		ensure!(Holdings::<T>::contains_key(segment, &who), Error::<T>::NotHolder);
		Self::forget_migration_to(segment, &who);
		Self::drop_holder(segment, &who, Exit::Left);
		Self::refresh_status(&who);
		Ok(())
	}

	/// Adds `who` as a `Syncing` holder (caller stores `seg`). Failures it left with within
	/// [`crate::Config::FailureMemory`] are restored; its `Syncing` timeout starts.
	pub(crate) fn add_holder(
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
		let now = frame_system::Pallet::<T>::block_number();
		let failures = match FailureRecords::<T>::take(segment, who) {
			Some(r) => {
				Self::unschedule(
					r.until.saturating_add(1u32.into()),
					&Task::ForgetFailures(segment, who.clone()),
				);
				if r.until >= now {
					r.failures
				} else {
					0
				}
			},
			None => 0,
		};
		let mut holding = Holding {
			status: HoldingStatus::Syncing,
			proven: None,
			failures,
			joined_at: now,
			next_check: None,
			syncing_until: None,
		};
		Self::set_syncing_timeout(segment, who, &mut holding);
		Holdings::<T>::insert(segment, who, holding);
		Self::note_holding(who, None, Some(HoldingStatus::Syncing));
		Self::deposit_event(Event::HolderJoined { segment, who: who.clone() });
		Ok(())
	}

	/// Removes `who`'s holding record, its open challenge and its scheduled tasks (not its
	/// Primary seat); returns the holding.
	pub(crate) fn take_out_holder(
		segment: SegmentId,
		seg: &mut SegmentInfoOf<T>,
		who: &T::AccountId,
	) -> Option<Holding<BlockNumberFor<T>>> {
		seg.holders.retain(|h| h != who);
		let _ = Self::close_challenge(segment, who);
		let mut h = Holdings::<T>::take(segment, who)?;
		Self::note_holding(who, Some(h.status), None);
		Self::clear_next_check(segment, who, &mut h);
		Self::clear_syncing_timeout(segment, who, &mut h);
		Some(h)
	}

	/// The open challenge of `who` on `segment`, if any. Leaving with it counts as failing it,
	/// even before its seed is public: the seed block's author knows the seed while building
	/// that block, so "before the seed is known" is not a moment the chain can observe.
	pub(crate) fn open_challenge(
		segment: SegmentId,
		who: &T::AccountId,
	) -> Option<(crate::ChallengeId, crate::ChallengeOf<T>)> {
		OpenChallenge::<T>::get(who, segment)
			.and_then(|id| Challenges::<T>::get(id).map(|ch| (id, ch)))
	}

	/// Whether `who` has an open challenge on `segment` that may still be answered (its
	/// deadline has not passed): removing the holder then would erase a failure it may be due,
	/// and counting one would punish an honest holder, so the removal waits.
	pub(crate) fn challenge_in_progress(segment: SegmentId, who: &T::AccountId) -> bool {
		let now = frame_system::Pallet::<T>::block_number();
		Self::open_challenge(segment, who).is_some_and(|(_, ch)| now <= ch.deadline)
	}

	/// Removes `who` from a segment entirely (holding, Primary seat, votes, node index). When
	/// it leaves or is forced out with a challenge open, that challenge counts as failed; its
	/// failures are remembered for [`crate::Config::FailureMemory`] blocks.
	pub(crate) fn drop_holder(segment: SegmentId, who: &T::AccountId, exit: Exit) {
		// A challenge left open counts as failed when the holder leaves, and whatever the
		// exit once its deadline passed (the failure is certain; its expiry is only late).
		// Taken before the holding goes with its tasks.
		let now = frame_system::Pallet::<T>::block_number();
		let abandoned = Self::open_challenge(segment, who)
			.filter(|(_, ch)| exit == Exit::Left || now > ch.deadline);
		if let Some(mut seg) = Segments::<T>::get(segment) {
			if let Some(mut h) = Self::take_out_holder(segment, &mut seg, who) {
				if let Some((id, _)) = abandoned {
					// The holding is going: count the failure on it, without the status and
					// timeout bookkeeping `count_failure` does for a holding that stays.
					h.failures = h.failures.saturating_add(1);
					Self::penalize(who);
					Self::deposit_event(Event::ChallengeAbandoned {
						id,
						segment,
						who: who.clone(),
						failures: h.failures,
					});
				}
				let barred = matches!(exit, Exit::Removed | Exit::Dropped);
				Self::remember_failures(segment, who, h.failures, barred);
			}
			if seg.owner != *who {
				if let Some(pos) = seg.primaries.iter().position(|p| p == who) {
					seg.primaries.remove(pos);
					Self::forget_votes(segment, who);
					Self::deposit_event(Event::PrimaryRemoved { segment, who: who.clone() });
				}
				Self::unindex_segment(who, segment);
			}
			Segments::<T>::insert(segment, seg);
		}
		let who = who.clone();
		Self::deposit_event(match exit {
			Exit::Left | Exit::Withdrawn => Event::HolderLeft { segment, who },
			Exit::Removed => Event::HolderRemoved { segment, who },
			Exit::Dropped => Event::HolderDropped { segment, who },
		});
	}

	/// Keeps `failures` of a departing holder until `now + FailureMemory` (and, if `barred`,
	/// keeps it from rejoining until then).
	fn remember_failures(segment: SegmentId, who: &T::AccountId, failures: u32, barred: bool) {
		if failures == 0 && !barred {
			return;
		}
		let until =
			frame_system::Pallet::<T>::block_number().saturating_add(T::FailureMemory::get());
		Self::schedule(
			until.saturating_add(1u32.into()),
			Task::ForgetFailures(segment, who.clone()),
		);
		FailureRecords::<T>::insert(segment, who, FailureRecord { failures, until, barred });
	}

	/// Forgets remembered failures whose memory ended (its [`Task::ForgetFailures`] is due).
	pub(crate) fn forget_failures(segment: SegmentId, who: &T::AccountId, now: BlockNumberFor<T>) {
		if FailureRecords::<T>::get(segment, who).is_some_and(|r| r.until < now) {
			FailureRecords::<T>::remove(segment, who);
		}
	}

	/// Drops a holding that stayed `Syncing` for `SyncingTimeout` (its task is due).
	pub(crate) fn syncing_timeout(segment: SegmentId, who: &T::AccountId) {
		let Some(mut h) = Holdings::<T>::get(segment, who) else { return };
		h.syncing_until = None;
		Holdings::<T>::insert(segment, who, &h);
		if h.status != HoldingStatus::Syncing || OpenChallenge::<T>::contains_key(who, segment) {
			return;
		}
		if let Some(m) = Self::pending_migration_to(segment, who) {
			Self::abort_migration(segment, m, true);
		}
		if Holdings::<T>::contains_key(segment, who) {
			Self::drop_holder(segment, who, Exit::Dropped);
		}
		Self::refresh_status(who);
	}

	// ------------------------------------------------------------ a holding's scheduled tasks

	/// Schedules the holding's next re-check draw one tick from `now` (replacing one already
	/// scheduled); see [`Pallet::rechallenge`].
	pub(crate) fn set_next_check(
		segment: SegmentId,
		who: &T::AccountId,
		h: &mut Holding<BlockNumberFor<T>>,
		now: BlockNumberFor<T>,
	) {
		let at = now.saturating_add(Self::recheck_tick());
		Self::reschedule(&mut h.next_check, Task::ReChallenge(segment, who.clone()), Some(at));
	}

	/// Blocks between two re-check draws of a holding: `ReChallengePeriod / ReChallengeTicks`
	/// (at least 1), so re-challenges come on average once per period.
	pub(crate) fn recheck_tick() -> BlockNumberFor<T> {
		let ticks: BlockNumberFor<T> = T::ReChallengeTicks::get().max(1).into();
		(T::ReChallengePeriod::get() / ticks).max(1u32.into())
	}

	/// Cancels the holding's scheduled re-challenge, if any.
	pub(crate) fn clear_next_check(
		segment: SegmentId,
		who: &T::AccountId,
		h: &mut Holding<BlockNumberFor<T>>,
	) {
		Self::reschedule(&mut h.next_check, Task::ReChallenge(segment, who.clone()), None);
	}

	/// Starts the holding's `Syncing` timeout (replacing one already running).
	pub(crate) fn set_syncing_timeout(
		segment: SegmentId,
		who: &T::AccountId,
		h: &mut Holding<BlockNumberFor<T>>,
	) {
		let at = frame_system::Pallet::<T>::block_number().saturating_add(T::SyncingTimeout::get());
		Self::reschedule(
			&mut h.syncing_until,
			Task::SyncingTimeout(segment, who.clone()),
			Some(at),
		);
	}

	/// Cancels the holding's `Syncing` timeout, if one is running.
	pub(crate) fn clear_syncing_timeout(
		segment: SegmentId,
		who: &T::AccountId,
		h: &mut Holding<BlockNumberFor<T>>,
	) {
		Self::reschedule(&mut h.syncing_until, Task::SyncingTimeout(segment, who.clone()), None);
	}
}
