//! Proof-of-Sync: a holder claims a retained root, is challenged on `k` chunks chosen by the
//! hash of a block that does not exist yet, and answers with Merkle proofs against the root.
//!
//! Life of a challenge: [`Pallet::can_claim`] / `do_claim_sync` (or a re-challenge
//! from `issue_rechallenges`) → `issue_challenge` copies the root's facts and
//! schedules the expiry → after the seed block, `do_submit_proof` verifies against
//! [`Pallet::challenge_seed`] and `accept_proof` updates the holding (and may complete
//! a migration) → or, unanswered, `expire_challenges` counts a failure and
//! `penalize`s.
use crate::{
	Challenge, ChallengeId, ChallengeKind, ChallengeOf, Challenges, CommittedRootOf, Error, Event,
	Expiries, HoldReason, HoldingStatus, Holdings, NextChallengeId, Nodes, OpenChallenge, Pallet,
	ProvenRoot, Roots, Segments,
};
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision},
	},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{Saturating, Zero};
use sync_primitives::{
	commitment::{Hash32, RootFacts, SyncProof},
	rules, SegmentId,
};

impl<T: crate::Config> Pallet<T> {
	/// Chain rule of `claim_sync`: `who` holds `segment`, has no open challenge for it, and
	/// `seq` is a retained root newer than its last proven one ([`rules::claim_is_newer`] on
	/// commit indexes; the pending migration target may re-prove its current root). Returns the
	/// root to challenge.
	pub fn can_claim(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
	) -> Result<CommittedRootOf<T>, Error<T>> {
		let holding = Holdings::<T>::get(segment, who).ok_or(Error::<T>::NotHolder)?;
		ensure!(!OpenChallenge::<T>::contains_key(who, segment), Error::<T>::ChallengeAlreadyOpen);
		let root = Roots::<T>::get(segment)
			.into_iter()
			.find(|r| r.seq == seq)
			.ok_or(Error::<T>::UnknownRoot)?;
		let migrating_here = Self::pending_migration_to(segment, who).is_some();
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
		)?;
		Ok(())
	}

	pub(crate) fn do_submit_proof(
		who: T::AccountId,
		id: ChallengeId,
		proof: SyncProof,
	) -> DispatchResult {
		let ch = Challenges::<T>::get(id).ok_or(Error::<T>::UnknownChallenge)?;
		ensure!(ch.who == who, Error::<T>::NotChallenged);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(now > ch.seed_block, Error::<T>::ChallengeNotReady);
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
		Ok(())
	}

	/// Creates a challenge for `who` and schedules its expiry.
	pub(crate) fn issue_challenge(
		segment: SegmentId,
		who: &T::AccountId,
		seq: u64,
		index: u32,
		facts: RootFacts,
		kind: ChallengeKind,
	) -> Result<ChallengeId, DispatchError> {
		let now = frame_system::Pallet::<T>::block_number();
		let seed_block = now.saturating_add(T::ChallengeDelay::get());
		let id = NextChallengeId::<T>::get();
		let deadline = seed_block.saturating_add(T::ProofWindow::get());
		let expires = Self::schedule_expiry(deadline.saturating_add(1u32.into()), id)?;
		let deadline = expires.saturating_sub(1u32.into());
		NextChallengeId::<T>::put(id.saturating_add(1));
		Challenges::<T>::insert(
			id,
			Challenge { segment, who: who.clone(), seq, index, facts, seed_block, deadline, kind },
		);
		OpenChallenge::<T>::insert(who, segment, id);
		Self::deposit_event(Event::ChallengeIssued {
			id,
			segment,
			who: who.clone(),
			seq,
			kind,
			seed_block,
			deadline,
		});
		Ok(id)
	}

	/// The seed of challenge `id`: the hash of its seed block bound to the challenge id.
	/// Zero-hash seed (block not yet known) is never used: proofs are refused before then.
	pub fn challenge_seed(id: ChallengeId, seed_block: BlockNumberFor<T>) -> Hash32 {
		let h = frame_system::Pallet::<T>::block_hash(seed_block);
		let mut input = h.as_ref().to_vec();
		input.extend_from_slice(&id.to_le_bytes());
		sp_io::hashing::blake2_256(&input)
	}

	/// Records a verified proof: the holding becomes `Active` (or `Lagging`), failures reset, a
	/// re-challenge is scheduled and a pending migration to the prover may complete.
	pub(crate) fn accept_proof(id: ChallengeId, ch: ChallengeOf<T>, now: BlockNumberFor<T>) {
		Challenges::<T>::remove(id);
		OpenChallenge::<T>::remove(&ch.who, ch.segment);
		let Some(seg) = Segments::<T>::get(ch.segment) else { return };
		let latest = seg.commits;
		Holdings::<T>::mutate(ch.segment, &ch.who, |h| {
			if let Some(h) = h {
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
			}
		});
		let period = T::ReChallengePeriod::get();
		let entry = (ch.segment, ch.who.clone());
		// The next check lands within SCHEDULE_SPAN blocks of `now + period`; if all those
		// buckets are full (more than MaxScheduledPerBlock × SCHEDULE_SPAN proofs accepted in
		// one span) this holder is not re-checked until it proves again — sized away by the
		// runtime's constants (16 × 32 = 512 per span).
		let _ = Self::schedule_rechallenge(now.saturating_add(period), entry);
		Self::deposit_event(Event::SyncProven {
			id,
			segment: ch.segment,
			who: ch.who.clone(),
			seq: ch.seq,
			root: ch.facts.root,
			kind: ch.kind,
		});
		if let Some(m) = Self::pending_migration_to(ch.segment, &ch.who) {
			if ch.index >= m.min_index {
				Self::complete_migration(ch.segment, seg, m, ch.seq, now);
			}
		}
		Self::refresh_status(&ch.who);
	}

	/// Expires the challenges due at `now`; returns how many were processed.
	pub(crate) fn expire_challenges(now: BlockNumberFor<T>) -> u32 {
		let due = Expiries::<T>::take(now);
		let n = due.len() as u32;
		for id in due {
			let Some(ch) = Challenges::<T>::take(id) else { continue };
			OpenChallenge::<T>::remove(&ch.who, ch.segment);
			let failures = Holdings::<T>::mutate(ch.segment, &ch.who, |h| {
				h.as_mut().map(|h| {
					h.failures = h.failures.saturating_add(1);
					h.status = HoldingStatus::Syncing;
					h.failures
				})
			});
			let Some(failures) = failures else { continue };
			Self::deposit_event(Event::ChallengeExpired {
				id,
				segment: ch.segment,
				who: ch.who.clone(),
				failures,
			});
			Self::penalize(&ch.who);
			if failures >= T::MaxFailures::get() {
				if let Some(m) = Self::pending_migration_to(ch.segment, &ch.who) {
					Self::abort_migration(ch.segment, m, true);
				}
				if Holdings::<T>::contains_key(ch.segment, &ch.who) {
					Self::drop_holder(ch.segment, &ch.who, false);
				}
			}
			Self::refresh_status(&ch.who);
		}
		n
	}

	/// Burns [`crate::Config::FailurePenalty`] of the node deposit (at most what is left).
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
		info.deposit = info.deposit.saturating_sub(burnt);
		Nodes::<T>::insert(who, info);
		Self::deposit_event(Event::Penalized { who: who.clone(), amount: burnt });
	}

	/// Issues the re-challenges due at `now`; returns how many entries were processed.
	pub(crate) fn issue_rechallenges(now: BlockNumberFor<T>) -> u32 {
		let due = crate::ReChallenges::<T>::take(now);
		let n = due.len() as u32;
		for (segment, who) in due {
			let Some(h) = Holdings::<T>::get(segment, &who) else { continue };
			let Some(p) = h.proven else { continue };
			if h.status == HoldingStatus::Syncing || OpenChallenge::<T>::contains_key(&who, segment)
			{
				continue;
			}
			// Best effort: if the expiry schedule is full the holder is checked next period.
			if Self::issue_challenge(
				segment,
				&who,
				p.seq,
				p.index,
				p.facts,
				ChallengeKind::ReChallenge,
			)
			.is_err()
			{
				let _ = Self::schedule_rechallenge(
					now.saturating_add(T::ReChallengePeriod::get()),
					(segment, who),
				);
			}
		}
		n
	}
}
