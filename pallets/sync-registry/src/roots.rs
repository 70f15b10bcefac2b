//! Roots: the owner commits a segment's root, co-Primaries attest it, and parity is reached when
//! every Primary has. A co-Primary that attests a *different* root for a retained seq is
//! recorded as diverging ([`crate::Divergences`], [`Event::RootDiverged`]).
//!
//! Only the owner commits: its op log defines the segment. A commit advances the seq by at most
//! [`crate::Config::MaxSeqStep`] and lands at most once per block per segment (a migration's
//! seal may add one more, once), so no commit can exhaust the seq space or push every holder
//! past `MaxLag` at once; Root can clear a
//! segment's roots ([`Pallet::force_reset_roots`]) if an owner committed garbage.
//!
//! [`Pallet::can_commit`] and [`Pallet::can_attest`] are the chain rules of the two calls; the
//! off-chain worker asks them before it spends a fee (see [`crate::ocw`]).
use crate::{
	CommittedRoot, Divergences, Error, Event, HoldingStatus, Holdings, Pallet, ParityVotes,
	RootWindowOf, Roots, SegmentInfoOf, Segments, VotesOf, WeightInfo,
};
use frame_support::traits::Get;
use frame_support::{ensure, pallet_prelude::*};
use sync_primitives::{
	commitment::{Hash32, RootFacts},
	rules, SegmentId,
};

impl<T: crate::Config> Pallet<T> {
	/// Chain rule of `commit_root`: `who` is the owner of `segment`, `facts` are consistent
	/// ([`rules::root_facts_consistent`]: an empty segment has the empty root), `seq` is above
	/// the latest retained root ([`rules::commit_is_newer`]) by at most `MaxSeqStep`, and the
	/// segment has no commit in this block yet, nor a sealed migration ([`Error::AlreadySealed`]).
	/// Returns the segment and its root window.
	pub fn can_commit(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: &RootFacts,
	) -> Result<(SegmentInfoOf<T>, RootWindowOf<T>), Error<T>> {
		Self::check_commit(who, segment, seq, facts, true)
	}

	/// [`Pallet::can_commit`], with the one-commit-per-block rule only if `once_per_block`
	/// (a seal may follow the owner's last commit in the same block).
	pub(crate) fn check_commit(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: &RootFacts,
		once_per_block: bool,
	) -> Result<(SegmentInfoOf<T>, RootWindowOf<T>), Error<T>> {
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.owner == *who, Error::<T>::NotOwner);
		// A sealed epoch ends at the seal: the target confirms that root, and nothing after.
		ensure!(
			Self::migration(segment).is_none_or(|m| m.completed || m.sealed.is_none()),
			Error::<T>::AlreadySealed
		);
		ensure!(rules::root_facts_consistent(facts), Error::<T>::InvalidRootFacts);
		let roots = Roots::<T>::get(segment);
		let latest = roots.last();
		ensure!(rules::commit_is_newer(seq, latest.map(|r| r.seq)), Error::<T>::StaleSeq);
		let step = seq.saturating_sub(latest.map_or(0, |r| r.seq));
		ensure!(step <= T::MaxSeqStep::get(), Error::<T>::SeqStepTooLarge);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(!once_per_block || latest.is_none_or(|r| r.at < now), Error::<T>::CommitTooSoon);
		Ok((seg, roots))
	}

	pub(crate) fn do_commit_root(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: RootFacts,
	) -> DispatchResultWithPostInfo {
		let (seg, roots) = Self::can_commit(&who, segment, seq, &facts)?;
		let holders = Self::apply_commit(who, segment, seg, roots, seq, facts);
		Ok(Some(T::WeightInfo::commit_root(holders)).into())
	}

	/// Records a commit checked by [`Pallet::check_commit`] (`commit_root`'s, or a seal's by
	/// [`Pallet::can_seal`]); the number of holders it went through.
	pub(crate) fn apply_commit(
		who: T::AccountId,
		segment: SegmentId,
		mut seg: SegmentInfoOf<T>,
		mut roots: RootWindowOf<T>,
		seq: u64,
		facts: RootFacts,
	) -> u32 {
		seg.commits = seg.commits.saturating_add(1);
		let index = seg.commits;
		if roots.is_full() {
			roots.remove(0);
		}
		let now = frame_system::Pallet::<T>::block_number();
		// Room was made above: a full window dropped its oldest root.
		let _ =
			roots.try_push(CommittedRoot { seq, facts, index, committer: who.clone(), at: now });
		Roots::<T>::insert(segment, roots);
		let votes = BoundedVec::try_from(alloc::vec![who.clone()]).unwrap_or_default();
		ParityVotes::<T>::insert(segment, (seq, facts.root, votes));
		Self::deposit_event(Event::RootCommitted {
			segment,
			seq,
			root: facts.root,
			leaves: facts.leaves,
			entries: facts.entries,
			bytes: facts.bytes,
			index,
			committer: who,
		});
		let holders = seg.holders.len() as u32;
		let latest_seq = seq;
		for h in seg.holders.iter() {
			let changed = Holdings::<T>::mutate(segment, h, |hold| match hold {
				Some(hd) if hd.status == HoldingStatus::Active => match hd.proven {
					Some(p) if p.index.saturating_add(T::MaxLag::get()) < index => {
						hd.status = HoldingStatus::Lagging;
						Some(p.seq)
					},
					_ => None,
				},
				_ => None,
			});
			if let Some(proven_seq) = changed {
				Self::note_holding(h, Some(HoldingStatus::Active), Some(HoldingStatus::Lagging));
				Self::deposit_event(Event::HolderLagging {
					segment,
					who: h.clone(),
					proven_seq,
					latest_seq,
				});
				Self::refresh_status(h);
			}
		}
		Segments::<T>::insert(segment, seg);
		holders
	}

	/// Chain rule of `attest_root`: `who` is a co-Primary of `segment` (the owner's commit is
	/// its vote) and `seq` is a retained root. Attesting the committed root of the latest
	/// commit is a parity vote (once); attesting a different root for a retained seq records a
	/// divergence (once per root). Returns what the attestation means.
	pub fn can_attest(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: &Hash32,
	) -> Result<Attestation<T>, Error<T>> {
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.primaries.contains(who), Error::<T>::NotPrimary);
		ensure!(seg.owner != *who, Error::<T>::IsOwner);
		let committed = Roots::<T>::get(segment)
			.into_iter()
			.find(|r| r.seq == seq)
			.ok_or(Error::<T>::UnknownRoot)?;
		if committed.facts.root != *root {
			ensure!(
				Divergences::<T>::get(segment, who) != Some((seq, *root)),
				Error::<T>::AlreadyAttested
			);
			return Ok(Attestation::Diverges { committed: committed.facts.root });
		}
		let (vseq, _, votes) = ParityVotes::<T>::get(segment).ok_or(Error::<T>::UnknownRoot)?;
		// Agreeing with an older root is no news; only the latest commit collects votes.
		ensure!(seq == vseq, Error::<T>::StaleSeq);
		ensure!(!votes.contains(who), Error::<T>::AlreadyAttested);
		Ok(Attestation::Agrees { seg, votes })
	}

	pub(crate) fn do_attest_root(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: Hash32,
	) -> DispatchResult {
		match Self::can_attest(&who, segment, seq, &root)? {
			Attestation::Agrees { seg, mut votes } => {
				votes.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
				let parity = seg.primaries.iter().all(|p| votes.contains(p));
				ParityVotes::<T>::insert(segment, (seq, root, votes));
				// Agreeing on the latest root supersedes an earlier divergence.
				Divergences::<T>::remove(segment, &who);
				Self::deposit_event(Event::RootAttested { segment, seq, who });
				if parity {
					Self::deposit_event(Event::ParityReached { segment, seq, root });
				}
			},
			Attestation::Diverges { committed } => {
				Divergences::<T>::insert(segment, &who, (seq, root));
				Self::deposit_event(Event::RootDiverged {
					segment,
					seq,
					who,
					committed,
					attested: root,
				});
			},
		}
		Ok(())
	}

	pub(crate) fn do_force_reset_roots(segment: SegmentId) -> DispatchResult {
		ensure!(Segments::<T>::contains_key(segment), Error::<T>::UnknownSegment);
		Roots::<T>::remove(segment);
		ParityVotes::<T>::remove(segment);
		let _ = Divergences::<T>::clear_prefix(segment, T::MaxPrimaries::get(), None);
		Self::deposit_event(Event::RootsReset { segment });
		Ok(())
	}
}

/// What an accepted `attest_root` means (see [`Pallet::can_attest`]).
pub enum Attestation<T: crate::Config> {
	/// A parity vote for the latest root: the segment and the votes so far.
	Agrees { seg: SegmentInfoOf<T>, votes: VotesOf<T> },
	/// A different root than the one committed at that seq.
	Diverges { committed: Hash32 },
}
