//! Proof-of-Sync: a holder claims a retained root, is challenged on `k` chunks chosen by the
//! beacon of a block that does not exist yet (folded from the chain's VRF randomness), and
//! answers with Merkle proofs against the root.
//!
//! Life of a challenge: [`Pallet::can_claim`] / `do_claim_sync` (or a re-challenge
//! from `rechallenge`) → `issue_challenge` copies the root's facts and
//! schedules the expiry → after the seed block, `do_submit_proof` verifies against
//! [`Pallet::challenge_seed`] and `accept_proof` updates the holding (and may complete
//! a migration) → or, unanswered, `expire_challenge` counts a failure and
//! `penalize`s.
use crate::{
	Challenge, ChallengeId, ChallengeKind, ChallengeOf, Challenges, CommittedRootOf, Error, Event,
	HoldReason, HoldingStatus, Holdings, NextChallengeId, Nodes, OpenChallenge, Pallet, ProvenRoot,
	Roots, Segments, Task,
};
use codec::Encode;
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision},
	},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{One, Saturating, Zero};
use sync_primitives::{
	commitment::{Hash32, RootFacts, SyncProof},
	rules, SegmentId,
};

impl<T: crate::Config> Pallet<T> {
	/// Chain rule of `claim_sync`: `who` holds `segment`, is not suspended (its held deposit is
	/// at least [`crate::Config::MinDeposit`]), has no open challenge for it, and
	/// `seq` is a retained root newer than its last proven one ([`rules::claim_is_newer`] on
	/// commit indexes; the pending migration target may re-prove its current root). Returns the
	/// root to challenge.
	pub fn can_claim(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
	) -> Result<CommittedRootOf<T>, Error<T>> {
		let holding = Holdings::<T>::get(segment, who).ok_or(Error::<T>::NotHolder)?;
		Self::ensure_not_suspended(&Nodes::<T>::get(who).ok_or(Error::<T>::NotRegistered)?)?;
		ensure!(!OpenChallenge::<T>::contains_key(who, segment), Error::<T>::ChallengeAlreadyOpen);
		let root = Roots::<T>::get(segment)
			.into_iter()
			.find(|r| r.seq == seq)
			.ok_or(Error::<T>::UnknownRoot)?;
		// An empty root has nothing to sample: proving it would be a free, empty transaction.
		ensure!(root.facts.leaves > 0, Error::<T>::NothingToProve);
		// The target may re-prove its current root only if that root proves the migration.
		let migrating_here = Self::pending_migration_to(segment, who)
			.is_some_and(|m| m.proven.is_none() && root.index >= m.min_index);
		ensure!(
			rules::claim_is_newer(
				root.index.into(),
				holding.proven.map(|p| p.index.into()),
				migrating_here
			),
			Error::<T>::AlreadyProven
		);
		Ok(root)
	}

	pub(crate) fn do_claim_sync(who: T::AccountId, segment: SegmentId, seq: u64) -> DispatchResult {
		let root = Self::can_claim(&who, segment, seq)?;
		Self::issue_challenge(
			segment,
			&who,
			root.seq,
			root.index,
			root.facts,
			ChallengeKind::Claim,
		);
		Ok(())
	}

	pub(crate) fn do_submit_proof(
		who: T::AccountId,
		id: ChallengeId,
		proof: SyncProof,
	) -> DispatchResultWithPostInfo {
		let ch = Challenges::<T>::get(id).ok_or(Error::<T>::UnknownChallenge)?;
		ensure!(ch.who == who, Error::<T>::NotChallenged);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(Self::seed_known(&ch, now), Error::<T>::ChallengeNotReady);
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
		// An accepted proof is the honest path: it costs its sender nothing.
		Ok(Pays::No.into())
	}

	/// Creates a challenge for `who` and schedules its expiry at `deadline + 1`. While the
	/// challenge is open the holding's `Syncing` timeout is suspended (the challenge decides).
	pub(crate) fn issue_challenge(
		segment: SegmentId,
		who: &T::AccountId,
		seq: u64,
		index: u32,
		facts: RootFacts,
		kind: ChallengeKind,
	) -> ChallengeId {
		let now = frame_system::Pallet::<T>::block_number();
		let seed_block = now.saturating_add(T::ChallengeDelay::get());
		let deadline = seed_block.saturating_add(T::ProofWindow::get());
		let id = NextChallengeId::<T>::get();
		NextChallengeId::<T>::put(id.saturating_add(1));
		Self::schedule(deadline.saturating_add(1u32.into()), Task::Expire(id));
		Challenges::<T>::insert(
			id,
			Challenge { segment, who: who.clone(), seq, index, facts, seed_block, deadline, kind },
		);
		OpenChallenge::<T>::insert(who, segment, id);
		Holdings::<T>::mutate(segment, who, |h| {
			if let Some(h) = h {
				Self::clear_syncing_timeout(segment, who, h);
			}
		});
		Self::deposit_event(Event::ChallengeIssued {
			id,
			segment,
			who: who.clone(),
			seq,
			kind,
			seed_block,
			deadline,
		});
		id
	}

	/// Removes the open challenge of `who` for `segment` and its expiry task; returns it.
	pub(crate) fn close_challenge(
		segment: SegmentId,
		who: &T::AccountId,
	) -> Option<(ChallengeId, ChallengeOf<T>)> {
		let id = OpenChallenge::<T>::take(who, segment)?;
		let ch = Challenges::<T>::take(id)?;
		Self::unschedule(ch.deadline.saturating_add(1u32.into()), &Task::Expire(id));
		Some((id, ch))
	}

	/// Whether the seed (and so the chunk indexes) of `ch` is known at `now`: its seed block
	/// is in state. Before then proofs are refused, and leaving re-rolls nothing.
	pub fn seed_known(ch: &ChallengeOf<T>, now: BlockNumberFor<T>) -> bool {
		now > ch.seed_block
	}

	/// The seed of challenge `id`: the [`crate::Beacon`] of its seed block bound to the
	/// challenge id. Known to the seed block's author while it builds that block and to
	/// everyone once it is published; its author can withhold the block but, unlike a block
	/// hash, cannot choose the value. Proofs are refused before the seed block has passed.
	pub fn challenge_seed(id: ChallengeId, seed_block: BlockNumberFor<T>) -> Hash32 {
		let mut input = Self::beacon(seed_block).to_vec();
		input.extend_from_slice(&id.to_le_bytes());
		sp_io::hashing::blake2_256(&input)
	}

	/// Records a verified proof: the holding becomes `Active` (or `Lagging`), failures reset,
	/// its next re-challenge is (re)scheduled and a pending migration to the prover may
	/// complete.
	pub(crate) fn accept_proof(id: ChallengeId, ch: ChallengeOf<T>, now: BlockNumberFor<T>) {
		let _ = Self::close_challenge(ch.segment, &ch.who);
		let Some(seg) = Segments::<T>::get(ch.segment) else { return };
		let latest = seg.commits;
		let leaving = Nodes::<T>::get(&ch.who).is_some_and(|n| n.leave_at.is_some());
		let changed = Holdings::<T>::mutate(ch.segment, &ch.who, |h| {
			h.as_mut().map(|h| {
				let before = h.status;
				let newer = h.proven.is_none_or(|p| ch.index >= p.index);
				if newer {
					h.proven = Some(ProvenRoot { seq: ch.seq, index: ch.index, facts: ch.facts });
				}
				let idx = h.proven.map(|p| p.index).unwrap_or(0);
				h.status = if idx.saturating_add(T::MaxLag::get()) < latest {
					HoldingStatus::Lagging
				} else {
					HoldingStatus::Active
				};
				h.failures = 0;
				Self::clear_syncing_timeout(ch.segment, &ch.who, h);
				// A leaving node is not re-checked any more (see `do_announce_leave`).
				if !leaving {
					Self::set_next_check(ch.segment, &ch.who, h, now);
				}
				(before, h.status)
			})
		});
		if let Some((before, after)) = changed {
			Self::note_holding(&ch.who, Some(before), Some(after));
		}
		Self::deposit_event(Event::SyncProven {
			id,
			segment: ch.segment,
			who: ch.who.clone(),
			seq: ch.seq,
			root: ch.facts.root,
			kind: ch.kind,
		});
		if let Some(m) = Self::pending_migration_to(ch.segment, &ch.who) {
			// A proof after the timeout does not prove it, even if the timeout task is late;
			// a proven migration waits for the old owner's seal, not for more proofs.
			if m.proven.is_none() && ch.index >= m.min_index && now <= m.until {
				Self::note_proven(ch.segment, m, ch.seq, now);
			}
		}
		Self::refresh_status(&ch.who);
	}

	/// Expires challenge `id` (its [`Task::Expire`] is due): a failure for the holder.
	pub(crate) fn expire_challenge(id: ChallengeId) {
		let Some(ch) = Challenges::<T>::take(id) else { return };
		OpenChallenge::<T>::remove(&ch.who, ch.segment);
		let Some(failures) = Self::count_failure(ch.segment, &ch.who) else { return };
		Self::deposit_event(Event::ChallengeExpired {
			id,
			segment: ch.segment,
			who: ch.who.clone(),
			failures,
		});
		if failures >= T::MaxFailures::get() {
			if let Some(m) = Self::pending_migration_to(ch.segment, &ch.who) {
				Self::abort_migration(ch.segment, m, true);
			}
			if Holdings::<T>::contains_key(ch.segment, &ch.who) {
				Self::drop_holder(ch.segment, &ch.who, crate::segments::Exit::Dropped);
			}
		}
		Self::refresh_status(&ch.who);
	}

	/// A failed challenge of `who` on `segment` (expired, or abandoned by leaving): the
	/// failure counter grows, the holding is `Syncing` again (its re-challenge is cancelled and
	/// its `Syncing` timeout starts) and the penalty is burnt. Returns the new count, or `None`
	/// if `who` does not hold the segment.
	pub(crate) fn count_failure(segment: SegmentId, who: &T::AccountId) -> Option<u32> {
		let failures = Holdings::<T>::mutate(segment, who, |h| {
			h.as_mut().map(|h| {
				let before = h.status;
				h.failures = h.failures.saturating_add(1);
				h.status = HoldingStatus::Syncing;
				Self::clear_next_check(segment, who, h);
				Self::set_syncing_timeout(segment, who, h);
				(before, h.failures)
			})
		});
		let (before, failures) = failures?;
		Self::note_holding(who, Some(before), Some(HoldingStatus::Syncing));
		Self::penalize(who);
		Some(failures)
	}

	/// Burns [`crate::Config::FailurePenalty`] of the node deposit (at most what is left); a
	/// node left below [`crate::Config::MinDeposit`] is suspended (it cannot claim) until it
	/// tops up.
	pub(crate) fn penalize(who: &T::AccountId) {
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
		let was_suspended = info.deposit < T::MinDeposit::get();
		info.deposit = info.deposit.saturating_sub(burnt);
		let deposit = info.deposit;
		Nodes::<T>::insert(who, info);
		Self::deposit_event(Event::Penalized { who: who.clone(), amount: burnt });
		if !was_suspended && deposit < T::MinDeposit::get() {
			Self::deposit_event(Event::NodeSuspended { who: who.clone(), deposit });
		}
	}

	/// A re-check of `who` on `segment` (its [`Task::ReChallenge`] is due): if it is Active
	/// without an open challenge, a draw from the parent block's beacon decides whether it is
	/// re-challenged now (probability `1 / ReChallengeTicks`) or checked again a tick later.
	/// A holder with an open challenge gets its next check when that challenge is answered.
	/// A Lagging one is not re-checked on its old root (which an honest node may have pruned:
	/// that could only fail it for being behind); it becomes `Syncing` instead, with the
	/// `Syncing` timeout: it must prove a newer root in time or be dropped, so a holder that
	/// deleted its data cannot stay listed by lagging.
	pub(crate) fn rechallenge(segment: SegmentId, who: &T::AccountId) {
		let Some(mut h) = Holdings::<T>::get(segment, who) else { return };
		h.next_check = None;
		let open = OpenChallenge::<T>::contains_key(who, segment);
		if h.status == HoldingStatus::Lagging && !open {
			h.status = HoldingStatus::Syncing;
			Self::set_syncing_timeout(segment, who, &mut h);
			Holdings::<T>::insert(segment, who, h);
			Self::note_holding(who, Some(HoldingStatus::Lagging), Some(HoldingStatus::Syncing));
			Self::refresh_status(who);
			return;
		}
		let due = h.proven.filter(|_| h.status == HoldingStatus::Active && !open);
		let Some(p) = due else {
			Holdings::<T>::insert(segment, who, h);
			return;
		};
		let now = frame_system::Pallet::<T>::block_number();
		let parent = Self::beacon(now.saturating_sub(One::one()));
		let draw =
			sp_io::hashing::blake2_256(&(b"sync-registry/recheck", parent, segment, who).encode());
		if !rules::recheck_fires(&draw, T::ReChallengeTicks::get()) {
			Self::set_next_check(segment, who, &mut h, now);
			Holdings::<T>::insert(segment, who, h);
			return;
		}
		Holdings::<T>::insert(segment, who, h);
		Self::issue_challenge(segment, who, p.seq, p.index, p.facts, ChallengeKind::ReChallenge);
	}
}
