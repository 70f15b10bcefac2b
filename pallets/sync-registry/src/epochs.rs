//! Ownership epochs: the on-chain history of who owned a segment, with which data-plane peer
//! id, from which seq on ([`OwnerEpochs`]).
//!
//! A follower verifies each op checkpoint against the key of the owner *of the checkpoint's
//! epoch*, so the signed history of an old owner (or of an owner's old key) stays verifiable
//! after a migration, Root's `force_set_owner` or an owner's new peer id, and honest holders
//! serving it are not taken for forgers.
//!
//! Every epoch starts in [`Pallet::start_epoch`]:
//! - `create_segment`: epoch 1, the owner's peer id, `first_seq` 1;
//! - a completed migration (`complete_migration`): the target's peer id, `first_seq` = the
//!   seq the old owner sealed + 1 (`seal_segment`, or the latest commit on the seal timeout);
//! - `force_set_owner`: the new owner's peer id, `first_seq` = the latest retained commit's
//!   seq + 1 (1 if none, [`Pallet::next_epoch_seq`]);
//! - `update_node` with a new peer id: the same owner with its new peer id, for each segment
//!   it owns, `first_seq` as for `force_set_owner`.
//!
//! An epoch ends where the next begins (`first_seq - 1`): every seq belongs to exactly one
//! epoch, and a follower refuses a checkpoint past its epoch's end without blaming anyone (an
//! old owner that wrote on after the chain sealed its epoch). Epochs are numbered 1, 2, 3, … and their `first_seq`s never
//! decrease (after `force_reset_roots` the next commit may restart the seq lower; the new
//! epoch's `first_seq` is then raised to the previous one's). At most
//! [`crate::Config::MaxOwnerEpochs`] are kept: a new epoch drops the oldest, and a follower
//! whose head is older than the oldest retained `first_seq` re-syncs by snapshot.
//!
//! Segments are never removed from storage today; whatever removes one must also remove its
//! [`OwnerEpochs`] entry (`try_state` refuses epochs of unknown segments).
use crate::{Event, NodeSegments, Nodes, OwnerEpoch, OwnerEpochs, Pallet, Roots, Segments};
use alloc::vec::Vec;
use sync_primitives::{EpochSummary, SegmentId};

impl<T: crate::Config> Pallet<T> {
	/// Starts a new ownership epoch of `segment` for `owner`, with `owner`'s currently
	/// registered peer id, from `first_seq` on: number = the last epoch's + 1 (1 for the
	/// first), `first_seq` raised to the last epoch's if it is lower. When
	/// [`crate::Config::MaxOwnerEpochs`] epochs are kept already, the oldest is dropped.
	///
	/// The only place an epoch is written. Callers have made `owner` the segment's owner (or
	/// changed its peer id) before calling. An owner is always a registered Primary; should it
	/// not be, the epoch still records the owner, with an empty peer id.
	///
	/// Emits [`Event::EpochStarted`].
	pub(crate) fn start_epoch(segment: SegmentId, owner: &T::AccountId, first_seq: u64) {
		let peer_id = Nodes::<T>::get(owner).map(|n| n.peer_id).unwrap_or_default();
		let (epoch, first_seq) = OwnerEpochs::<T>::mutate(segment, |epochs| {
			let (epoch, first_seq) = match epochs.last() {
				Some(last) => (last.epoch.saturating_add(1), first_seq.max(last.first_seq)),
				None => (1, first_seq),
			};
			let entry =
				OwnerEpoch { epoch, owner: owner.clone(), peer_id: peer_id.clone(), first_seq };
			// Appends, dropping the oldest entry if the vector is full; it does not panic, and
			// fails only if `MaxOwnerEpochs` is 0, which `integrity_test` refuses.
			let end = epochs.len();
			let _ = epochs.force_insert_keep_right(end, entry);
			(epoch, first_seq)
		});
		Self::deposit_event(Event::EpochStarted {
			segment,
			epoch,
			owner: owner.clone(),
			peer_id,
			first_seq,
		});
	}

	/// The `first_seq` of an epoch that starts now without a proven seq (`force_set_owner`,
	/// an owner's new peer id): the seq after the latest retained commit, 1 if there is none.
	pub fn next_epoch_seq(segment: SegmentId) -> u64 {
		Roots::<T>::get(segment).last().map_or(1, |r| r.seq.saturating_add(1))
	}

	/// `who` registered a new peer id: starts a new epoch of every segment it owns. Returns the
	/// number of segments `who` is in (each one is read), for the call's weight.
	pub(crate) fn start_epochs_of_owner(who: &T::AccountId) -> u32 {
		let segments = NodeSegments::<T>::get(who);
		for s in segments.iter() {
			if Segments::<T>::get(s).is_some_and(|seg| seg.owner == *who) {
				Self::start_epoch(*s, who, Self::next_epoch_seq(*s));
			}
		}
		segments.len() as u32
	}

	/// The retained epochs of `segment`, oldest first, in the runtime API's shape.
	pub fn epoch_summaries(segment: SegmentId) -> Vec<EpochSummary> {
		OwnerEpochs::<T>::get(segment)
			.into_iter()
			.map(|e| EpochSummary {
				epoch: e.epoch,
				peer_id: e.peer_id.into_inner(),
				first_seq: e.first_seq,
			})
			.collect()
	}
}
