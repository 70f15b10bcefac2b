//! What the runtime API (`SyncRegistryApi`) returns: flattened, unbounded summaries of the
//! registry for the node's sync service and RPC clients. Read-only.
use crate::{
	BalanceOf, ChallengeKind, Challenges, Holdings, NodeSegments, Nodes, OpenChallenge, Pallet,
	PeerIds, Roots, Segments,
};
use alloc::vec::Vec;
use frame_support::traits::Get;
use frame_system::pallet_prelude::BlockNumberFor;
use sync_primitives::{NodeSummary, PeerIdBytes, SegmentId};

impl<T: crate::Config> Pallet<T> {
	/// The node of `who` in the runtime API's shape.
	pub fn node_summary(
		who: T::AccountId,
	) -> Option<NodeSummary<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		Nodes::<T>::get(&who).map(|n| NodeSummary {
			account: who,
			role: n.role,
			status: n.status,
			peer_id: n.peer_id.into_inner(),
			multiaddrs: n.multiaddrs.into_iter().map(|a| a.into_inner()).collect(),
			deposit: n.deposit,
			registered_at: n.registered_at,
		})
	}

	/// What `who` can spend on duty transactions and stay alive (free balance less what is
	/// held or frozen and the existential deposit): the `spendable` of the runtime API's
	/// `account_funds`, whose `duty_fee` the runtime adds (it alone knows its fee model).
	pub fn spendable(who: &T::AccountId) -> BalanceOf<T> {
		use frame_support::traits::{
			fungible::Inspect,
			tokens::{Fortitude, Preservation},
		};
		T::Currency::reducible_balance(who, Preservation::Preserve, Fortitude::Polite)
	}

	/// The account a peer id is registered to.
	pub fn account_of_peer(peer_id: Vec<u8>) -> Option<T::AccountId> {
		let key = PeerIdBytes::try_from(peer_id).ok()?;
		PeerIds::<T>::get(key)
	}

	/// A segment in the runtime API's shape.
	pub fn segment_summary(
		segment: SegmentId,
	) -> Option<sync_primitives::SegmentSummary<T::AccountId>> {
		let seg = Segments::<T>::get(segment)?;
		let holders = seg
			.holders
			.iter()
			.filter_map(|h| {
				Holdings::<T>::get(segment, h)
					.map(|hd| (h.clone(), hd.status, hd.proven.map(|p| p.seq)))
			})
			.collect();
		Some(sync_primitives::SegmentSummary {
			id: segment,
			owner: seg.owner,
			primaries: seg.primaries.into_inner(),
			holders,
			roots: Roots::<T>::get(segment)
				.into_iter()
				.map(|r| sync_primitives::RootSummary {
					seq: r.seq,
					index: r.index,
					facts: r.facts,
				})
				.collect(),
			// A request its target has not accepted involves nobody yet.
			migration: Self::migration(segment).filter(|m| m.accepted).map(|m| (m.to, m.completed)),
			divergences: crate::Divergences::<T>::iter_prefix(segment)
				.map(|(who, (seq, root))| (who, seq, root))
				.collect(),
			epochs: Self::epoch_summaries(segment),
		})
	}

	/// The accepted migration of `segment` and its phase, for the runtime API (a request its
	/// target has not accepted involves nobody yet).
	pub fn migration_summary(
		segment: SegmentId,
	) -> Option<sync_primitives::MigrationSummary<T::AccountId, BlockNumberFor<T>>> {
		Self::migration(segment)
			.filter(|m| m.accepted)
			.map(|m| sync_primitives::MigrationSummary {
				from: m.from,
				to: m.to,
				proven: m.proven,
				sealed: m.sealed,
				completed: m.completed,
				until: m.until,
			})
	}

	/// Segments `who` owns, is a Primary of, or holds.
	pub fn segments_of(who: T::AccountId) -> Vec<SegmentId> {
		NodeSegments::<T>::get(who).into_inner()
	}

	/// Open challenges of `who`, with seed and indexes once the seed block is known.
	pub fn open_challenges_of(
		who: T::AccountId,
	) -> Vec<sync_primitives::ChallengeSummary<BlockNumberFor<T>>> {
		let now = frame_system::Pallet::<T>::block_number();
		OpenChallenge::<T>::iter_prefix(&who)
			.filter_map(|(_, id)| Challenges::<T>::get(id).map(|c| (id, c)))
			.map(|(id, c)| {
				// Past its deadline a challenge can no longer be answered (and its seed block's
				// beacon may be pruned): no seed.
				let seed = (Self::seed_known(&c, now) && now <= c.deadline)
					.then(|| Self::challenge_seed(id, c.seed_block));
				let indexes = seed
					.map(|s| {
						sync_primitives::commitment::challenge_indexes(
							&s,
							c.facts.leaves,
							T::ChallengeLeaves::get(),
						)
					})
					.unwrap_or_default();
				sync_primitives::ChallengeSummary {
					id,
					segment: c.segment,
					seq: c.seq,
					facts: c.facts,
					seed,
					indexes,
					deadline: c.deadline,
					rechallenge: c.kind == ChallengeKind::ReChallenge,
				}
			})
			.collect()
	}
}
