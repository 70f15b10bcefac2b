//! Roots: Primaries commit a segment's root, co-Primaries attest it, and parity is reached when
//! every Primary has.
//!
//! [`Pallet::can_commit`] and [`Pallet::can_attest`] are the chain rules of the two calls; the
//! off-chain worker asks them before it spends a fee (see [`crate::ocw`]).
use crate::{
	CommittedRoot, Error, Event, HoldingStatus, Holdings, Pallet, ParityVotes, RootWindowOf, Roots,
	SegmentInfoOf, Segments, VotesOf, WeightInfo,
};
use frame_support::{ensure, pallet_prelude::*};
use sync_primitives::{
	commitment::{Hash32, RootFacts},
	rules, SegmentId,
};

impl<T: crate::Config> Pallet<T> {
	/// Chain rule of `commit_root`: `who` is a Primary of `segment`, `facts` are consistent
	/// ([`rules::root_facts_consistent`]) and `seq` is above the latest retained root
	/// ([`rules::commit_is_newer`]). Returns the segment and its root window.
	pub fn can_commit(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: &RootFacts,
	) -> Result<(SegmentInfoOf<T>, RootWindowOf<T>), Error<T>> {
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.primaries.contains(who), Error::<T>::NotPrimary);
		ensure!(rules::root_facts_consistent(facts), Error::<T>::InvalidRootFacts);
		let roots = Roots::<T>::get(segment);
		ensure!(rules::commit_is_newer(seq, roots.last().map(|r| r.seq)), Error::<T>::StaleSeq);
		Ok((seg, roots))
	}

	pub(crate) fn do_commit_root(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		facts: RootFacts,
	) -> DispatchResultWithPostInfo {
		let (mut seg, mut roots) = Self::can_commit(&who, segment, seq, &facts)?;
		seg.commits = seg.commits.saturating_add(1);
		let index = seg.commits;
		if roots.is_full() {
			roots.remove(0);
		}
		let now = frame_system::Pallet::<T>::block_number();
		roots
			.try_push(CommittedRoot { seq, facts, index, committer: who.clone(), at: now })
			.map_err(|_| Error::<T>::UnknownRoot)?;
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
		Ok(Some(T::WeightInfo::commit_root(holders)).into())
	}

	/// Chain rule of `attest_root`: `who` is a Primary of `segment` that has not attested yet,
	/// and `(seq, root)` is the latest commit. Returns the segment and the votes so far.
	pub fn can_attest(
		who: &T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: &Hash32,
	) -> Result<(SegmentInfoOf<T>, VotesOf<T>), Error<T>> {
		let seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.primaries.contains(who), Error::<T>::NotPrimary);
		let (vseq, vroot, votes) = ParityVotes::<T>::get(segment).ok_or(Error::<T>::UnknownRoot)?;
		ensure!(seq == vseq, Error::<T>::UnknownRoot);
		ensure!(*root == vroot, Error::<T>::RootMismatch);
		ensure!(!votes.contains(who), Error::<T>::AlreadyAttested);
		Ok((seg, votes))
	}

	pub(crate) fn do_attest_root(
		who: T::AccountId,
		segment: SegmentId,
		seq: u64,
		root: Hash32,
	) -> DispatchResult {
		let (seg, mut votes) = Self::can_attest(&who, segment, seq, &root)?;
		votes.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
		let parity = seg.primaries.iter().all(|p| votes.contains(p));
		ParityVotes::<T>::insert(segment, (seq, root, votes));
		Self::deposit_event(Event::RootAttested { segment, seq, who });
		if parity {
			Self::deposit_event(Event::ParityReached { segment, seq, root });
		}
		Ok(())
	}
}
