//! Segments: creation, co-Primaries, and the holders that mirror a segment.
//!
//! A segment lists its `owner` (also the first of its `primaries`) and its non-owner `holders`;
//! each holder has a [`Holding`] record and the segment appears in the holder's
//! [`NodeSegments`]. The helpers here keep those three views consistent.
use crate::{
	Challenges, Error, Event, Holding, HoldingStatus, Holdings, NextSegmentId, NodeSegments,
	OpenChallenge, Pallet, ParityVotes, SegmentInfo, SegmentInfoOf, Segments,
};
use frame_support::{ensure, pallet_prelude::*};
use frame_system::{ensure_root, ensure_signed, pallet_prelude::OriginFor};
use sync_primitives::{NodeRole, SegmentId};

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
		let info = Self::active_node(&who)?;
		ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
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
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_add_primary(
		segment: SegmentId,
		mut seg: SegmentInfoOf<T>,
		who: T::AccountId,
	) -> DispatchResult {
		let info = Self::active_node(&who)?;
		ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
		ensure!(!seg.primaries.contains(&who), Error::<T>::AlreadyPrimary);
		seg.primaries.try_push(who.clone()).map_err(|_| Error::<T>::TooManyPrimaries)?;
		if !Holdings::<T>::contains_key(segment, &who) {
			Self::add_holder(segment, &mut seg, &who)?;
		}
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
		let pos = seg.primaries.iter().position(|p| p == &who).ok_or(Error::<T>::NotPrimary)?;
		seg.primaries.remove(pos);
		ParityVotes::<T>::mutate(segment, |v| {
			if let Some((_, _, votes)) = v {
				votes.retain(|p| p != &who);
			}
		});
		Segments::<T>::insert(segment, seg);
		Self::deposit_event(Event::PrimaryRemoved { segment, who });
		Ok(())
	}

	pub(crate) fn do_join_segment(who: T::AccountId, segment: SegmentId) -> DispatchResult {
		Self::active_node(&who)?;
		let mut seg = Segments::<T>::get(segment).ok_or(Error::<T>::UnknownSegment)?;
		ensure!(seg.owner != who, Error::<T>::IsOwner);
		ensure!(!Holdings::<T>::contains_key(segment, &who), Error::<T>::AlreadyHolder);
		Self::add_holder(segment, &mut seg, &who)?;
		Segments::<T>::insert(segment, seg);
		Self::refresh_status(&who);
		Ok(())
	}

	pub(crate) fn do_leave_segment(who: T::AccountId, segment: SegmentId) -> DispatchResult {
		ensure!(Holdings::<T>::contains_key(segment, &who), Error::<T>::NotHolder);
		Self::forget_migration_to(segment, &who);
		Self::drop_holder(segment, &who, true);
		Self::refresh_status(&who);
		Ok(())
	}

	/// Adds `who` as a `Syncing` holder (caller stores `seg`).
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
		Holdings::<T>::insert(
			segment,
			who,
			Holding {
				status: HoldingStatus::Syncing,
				proven: None,
				failures: 0,
				joined_at: frame_system::Pallet::<T>::block_number(),
			},
		);
		Self::deposit_event(Event::HolderJoined { segment, who: who.clone() });
		Ok(())
	}

	/// Removes `who`'s holding record and open challenge (not its Primary seat).
	pub(crate) fn take_out_holder(
		segment: SegmentId,
		seg: &mut SegmentInfoOf<T>,
		who: &T::AccountId,
	) {
		seg.holders.retain(|h| h != who);
		Holdings::<T>::remove(segment, who);
		if let Some(id) = OpenChallenge::<T>::take(who, segment) {
			Challenges::<T>::remove(id);
		}
	}

	/// Removes `who` from a segment entirely (holding, Primary seat, node index).
	pub(crate) fn drop_holder(segment: SegmentId, who: &T::AccountId, voluntary: bool) {
		if let Some(mut seg) = Segments::<T>::get(segment) {
			Self::take_out_holder(segment, &mut seg, who);
			if seg.owner != *who {
				if let Some(pos) = seg.primaries.iter().position(|p| p == who) {
					seg.primaries.remove(pos);
					Self::deposit_event(Event::PrimaryRemoved { segment, who: who.clone() });
				}
				NodeSegments::<T>::mutate(who, |v| v.retain(|s| *s != segment));
			}
			Segments::<T>::insert(segment, seg);
		}
		if voluntary {
			Self::deposit_event(Event::HolderLeft { segment, who: who.clone() });
		} else {
			Self::deposit_event(Event::HolderDropped { segment, who: who.clone() });
		}
	}
}
