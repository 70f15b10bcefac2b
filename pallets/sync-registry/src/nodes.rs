//! Nodes: registration, identity updates, leaving and deregistration, and the summarised
//! [`NodeStatus`] of a node.
//!
//! A node's status is derived from its holdings (`refresh_status`) after every change
//! that can move it, in O(1): `NodeInfo` counts its `Syncing` and `Lagging` holdings
//! (`note_holding`, called by every holding status change), so no call pays for the node's
//! other segments. `Leaving` is set only by `do_announce_leave` and never derived.
use crate::{
	segments::Exit, Error, Event, HoldReason, HoldingStatus, Holdings, NodeInfo, NodeInfoOf,
	NodeSegments, Nodes, Pallet, PeerIds, Segments, WeightInfo,
};
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{fungible::MutateHold, tokens::Precision},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{Saturating, Zero};
use sync_primitives::{AddressError, Multiaddrs, NodeRole, NodeStatus, PeerIdBytes, PeerSignature};

impl<T> From<AddressError> for Error<T> {
	fn from(e: AddressError) -> Self {
		match e {
			AddressError::InvalidPeerId => Error::InvalidPeerId,
			AddressError::InvalidMultiaddr => Error::InvalidMultiaddr,
		}
	}
}

impl<T: crate::Config> Pallet<T> {
	/// Chain rule of `register_node`: `who` has no node, the addresses are well formed, the
	/// peer id is not registered to anyone and its key signed the binding to `who`. (The deposit
	/// is checked when it is held.)
	///
	/// Shared by the dispatchable and the off-chain worker.
	pub fn can_register(
		who: &T::AccountId,
		peer_id: &PeerIdBytes,
		multiaddrs: &Multiaddrs,
		signature: &PeerSignature,
	) -> Result<(), Error<T>> {
		ensure!(!Nodes::<T>::contains_key(who), Error::<T>::AlreadyRegistered);
		Self::validate_addresses(peer_id, multiaddrs)?;
		ensure!(!PeerIds::<T>::contains_key(peer_id), Error::<T>::PeerIdTaken);
		Self::check_peer_binding(who, peer_id, signature)
	}

	/// The peer-id binding rule: `peer_id` is an Ed25519 libp2p peer id and its key signed
	/// [`sync_primitives::peer_binding_message`] for this chain's genesis hash and `who`. So
	/// nobody can register (or move to) a data-plane identity whose key they do not hold.
	pub fn check_peer_binding(
		who: &T::AccountId,
		peer_id: &PeerIdBytes,
		signature: &PeerSignature,
	) -> Result<(), Error<T>> {
		let key =
			sync_primitives::peer_id_ed25519_key(peer_id).ok_or(Error::<T>::PeerIdNotEd25519)?;
		let ok = sp_io::crypto::ed25519_verify(
			&sp_core::ed25519::Signature::from_raw(*signature),
			&Self::peer_binding_message_for(who, peer_id),
			&sp_core::ed25519::Public::from_raw(key),
		);
		ensure!(ok, Error::<T>::BadPeerSignature);
		Ok(())
	}

	/// What `peer_id`'s key signs to bind it to `who` on this chain: the genesis hash (kept by
	/// `frame_system` forever) in [`sync_primitives::peer_binding_message`].
	pub fn peer_binding_message_for(who: &T::AccountId, peer_id: &[u8]) -> alloc::vec::Vec<u8> {
		let genesis = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
		let bytes = genesis.as_ref();
		// `T::Hash` is 32 bytes in every runtime this pallet targets; any other length is
		// hashed to 32 bytes rather than truncated.
		let g: [u8; 32] = bytes.try_into().unwrap_or_else(|_| sp_io::hashing::blake2_256(bytes));
		sync_primitives::peer_binding_message(&g, &who.encode(), peer_id)
	}

	pub(crate) fn do_register_node(
		who: T::AccountId,
		role: NodeRole,
		peer_id: PeerIdBytes,
		multiaddrs: Multiaddrs,
		signature: PeerSignature,
	) -> DispatchResult {
		Self::can_register(&who, &peer_id, &multiaddrs, &signature)?;
		let deposit = T::NodeDeposit::get();
		T::Currency::hold(&HoldReason::NodeDeposit.into(), &who, deposit)
			.map_err(|_| Error::<T>::InsufficientDeposit)?;

		PeerIds::<T>::insert(&peer_id, &who);
		Nodes::<T>::insert(
			&who,
			NodeInfo {
				role,
				status: NodeStatus::Joining,
				peer_id: peer_id.clone(),
				multiaddrs,
				deposit,
				registered_at: frame_system::Pallet::<T>::block_number(),
				leave_at: None,
				syncing: 0,
				lagging: 0,
			},
		);
		Self::deposit_event(Event::NodeRegistered { who, role, peer_id, deposit });
		Ok(())
	}

	/// Changes the node's identity; a new peer id starts a new ownership epoch of each segment
	/// the node owns (`start_epochs_of_owner`). The weight is charged for the segments the node
	/// is in when the peer id changes, for none otherwise.
	pub(crate) fn do_update_node(
		who: T::AccountId,
		peer: Option<(PeerIdBytes, PeerSignature)>,
		multiaddrs: Option<Multiaddrs>,
	) -> DispatchResultWithPostInfo {
		let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
		let (new_peer, signature) = match peer {
			Some((p, sig)) => (p, Some(sig)),
			None => (info.peer_id.clone(), None),
		};
		let new_addrs = multiaddrs.unwrap_or_else(|| info.multiaddrs.clone());
		ensure!(
			new_peer != info.peer_id || new_addrs != info.multiaddrs,
			Error::<T>::NothingToUpdate
		);
		Self::validate_addresses(&new_peer, &new_addrs)?;
		let rekeyed = new_peer != info.peer_id;
		if rekeyed {
			ensure!(!PeerIds::<T>::contains_key(&new_peer), Error::<T>::PeerIdTaken);
			let signature = signature.ok_or(Error::<T>::BadPeerSignature)?;
			Self::check_peer_binding(&who, &new_peer, &signature)?;
			PeerIds::<T>::remove(&info.peer_id);
			PeerIds::<T>::insert(&new_peer, &who);
			info.peer_id = new_peer.clone();
		}
		info.multiaddrs = new_addrs.clone();
		Nodes::<T>::insert(&who, info);
		Self::deposit_event(Event::NodeUpdated {
			who: who.clone(),
			peer_id: new_peer,
			multiaddrs: new_addrs,
		});
		// After the node record holds the new peer id, which the new epochs record.
		let segments = if rekeyed { Self::start_epochs_of_owner(&who) } else { 0 };
		Ok(Some(T::WeightInfo::update_node(segments)).into())
	}

	pub(crate) fn do_deregister_node(who: T::AccountId) -> DispatchResultWithPostInfo {
		let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
		match (info.status, info.leave_at) {
			(NodeStatus::Joining, _) if NodeSegments::<T>::get(&who).is_empty() => {},
			(NodeStatus::Leaving, Some(at)) => ensure!(
				frame_system::Pallet::<T>::block_number() >= at,
				Error::<T>::LeaveDelayNotPassed
			),
			_ => return Err(Error::<T>::NodeBusy.into()),
		}
		let n = Self::remove_node(who, info, false)?;
		Ok(Some(T::WeightInfo::deregister_node(n)).into())
	}

	pub(crate) fn do_force_deregister(who: T::AccountId) -> DispatchResultWithPostInfo {
		let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
		let n = Self::remove_node(who, info, true)?;
		Ok(Some(T::WeightInfo::deregister_node(n)).into())
	}

	pub(crate) fn do_top_up_deposit(who: T::AccountId) -> DispatchResult {
		let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
		let missing = T::NodeDeposit::get().saturating_sub(info.deposit);
		ensure!(!missing.is_zero(), Error::<T>::NothingToUpdate);
		T::Currency::hold(&HoldReason::NodeDeposit.into(), &who, missing)
			.map_err(|_| Error::<T>::InsufficientDeposit)?;
		info.deposit = info.deposit.saturating_add(missing);
		let deposit = info.deposit;
		Nodes::<T>::insert(&who, info);
		Self::deposit_event(Event::DepositToppedUp { who, amount: missing, deposit });
		Ok(())
	}

	/// A node that is not suspended: its held deposit is at least `MinDeposit`.
	pub(crate) fn ensure_not_suspended(info: &NodeInfoOf<T>) -> Result<(), Error<T>> {
		ensure!(info.deposit >= T::MinDeposit::get(), Error::<T>::DepositTooLow);
		Ok(())
	}

	pub(crate) fn do_announce_leave(who: T::AccountId) -> DispatchResult {
		let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
		ensure!(info.status != NodeStatus::Leaving, Error::<T>::AlreadyLeaving);
		for s in NodeSegments::<T>::get(&who) {
			let seg = Segments::<T>::get(s).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.owner != who, Error::<T>::OwnsSegments);
			ensure!(Self::pending_migration_to(s, &who).is_none(), Error::<T>::MigrationPending);
		}
		// No new re-challenges while leaving: once `LeaveDelay` (longer than a challenge) has
		// passed nothing chain-issued is open, so deregistering abandons nothing.
		for s in NodeSegments::<T>::get(&who) {
			Holdings::<T>::mutate(s, &who, |h| {
				if let Some(h) = h {
					Self::clear_next_check(s, &who, h);
				}
			});
		}
		let leave_at =
			frame_system::Pallet::<T>::block_number().saturating_add(T::LeaveDelay::get());
		info.status = NodeStatus::Leaving;
		info.leave_at = Some(leave_at);
		Nodes::<T>::insert(&who, info);
		Self::deposit_event(Event::NodeLeaving { who: who.clone(), leave_at });
		Self::deposit_event(Event::NodeStatusChanged { who, status: NodeStatus::Leaving });
		Ok(())
	}

	fn validate_addresses(peer_id: &PeerIdBytes, multiaddrs: &Multiaddrs) -> Result<(), Error<T>> {
		sync_primitives::validate_peer_id(peer_id)?;
		ensure!(!multiaddrs.is_empty(), Error::<T>::InvalidMultiaddr);
		for addr in multiaddrs.iter() {
			sync_primitives::validate_multiaddr(addr)?;
		}
		Ok(())
	}

	/// A registered node that is not leaving.
	/// A registered Primary that is not leaving: who may own, co-own or take over a segment.
	pub(crate) fn active_primary(who: &T::AccountId) -> Result<NodeInfoOf<T>, Error<T>> {
		let info = Self::active_node(who)?;
		ensure!(info.role == NodeRole::Primary, Error::<T>::WrongRole);
		Ok(info)
	}

	pub(crate) fn active_node(who: &T::AccountId) -> Result<NodeInfoOf<T>, Error<T>> {
		let info = Nodes::<T>::get(who).ok_or(Error::<T>::NotRegistered)?;
		ensure!(info.status != NodeStatus::Leaving, Error::<T>::NodeLeaving);
		Ok(info)
	}

	/// Removes a node and everything it holds; returns how many segments it had.
	fn remove_node(
		who: T::AccountId,
		info: NodeInfoOf<T>,
		forced: bool,
	) -> Result<u32, DispatchError> {
		let segments = NodeSegments::<T>::get(&who);
		for s in segments.iter() {
			let seg = Segments::<T>::get(s).ok_or(Error::<T>::UnknownSegment)?;
			ensure!(seg.owner != who, Error::<T>::OwnsSegments);
		}
		for s in segments.iter() {
			Self::forget_migration_to(*s, &who);
			Self::drop_holder(*s, &who, Exit::Left);
		}
		NodeSegments::<T>::remove(&who);
		let released = T::Currency::release(
			&HoldReason::NodeDeposit.into(),
			&who,
			info.deposit,
			Precision::BestEffort,
		)?;
		PeerIds::<T>::remove(&info.peer_id);
		Nodes::<T>::remove(&who);
		Self::deposit_event(Event::NodeDeregistered { who, released, forced });
		Ok(segments.len() as u32)
	}

	/// Recomputes a node's summarised status from its segments; emits on change.
	pub(crate) fn refresh_status(who: &T::AccountId) {
		let Some(mut info) = Nodes::<T>::get(who) else { return };
		if info.status == NodeStatus::Leaving {
			return;
		}
		let status = Self::derive_status(who, &info);
		if status != info.status {
			info.status = status;
			Nodes::<T>::insert(who, info);
			Self::deposit_event(Event::NodeStatusChanged { who: who.clone(), status });
		}
	}

	/// A node's status from its holding counters and segment list: two reads, whatever the
	/// number of segments. `Lagging` if any holding lags, else `Syncing` if any is unproven,
	/// else `Active` if it owns or holds anything, else `Joining`.
	pub(crate) fn derive_status(who: &T::AccountId, info: &NodeInfoOf<T>) -> NodeStatus {
		if info.lagging > 0 {
			NodeStatus::Lagging
		} else if info.syncing > 0 {
			NodeStatus::Syncing
		} else if NodeSegments::<T>::decode_len(who).unwrap_or(0) > 0 {
			NodeStatus::Active
		} else {
			NodeStatus::Joining
		}
	}

	/// Records that one holding of `who` went from `old` to `new` status (`None`: no holding).
	/// Every change of a holding's status — created, proven, failed, lagging, caught out
	/// lagging, removed — calls this; `try_state` recounts.
	pub(crate) fn note_holding(
		who: &T::AccountId,
		old: Option<HoldingStatus>,
		new: Option<HoldingStatus>,
	) {
		if old == new {
			return;
		}
		Nodes::<T>::mutate(who, |n| {
			let Some(n) = n else { return };
			for (status, up) in [(old, false), (new, true)] {
				let count = match status {
					Some(HoldingStatus::Syncing) => &mut n.syncing,
					Some(HoldingStatus::Lagging) => &mut n.lagging,
					_ => continue,
				};
				*count = if up { count.saturating_add(1) } else { count.saturating_sub(1) };
			}
		});
	}
}
