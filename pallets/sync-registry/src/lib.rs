//! # Sync Registry pallet
//!
//! The on-chain source of truth of a storage-provider network: which nodes exist, in which role,
//! where their data plane listens, and (in later parts) which segments they hold at which
//! committed root, proven how.
//!
//! ## Nodes
//! A node is an account that registered a data-plane identity (libp2p peer id and multiaddrs)
//! and a role. Registration holds [`Config::NodeDeposit`] from the account's free balance under
//! [`HoldReason::NodeDeposit`]; deregistration releases it. A peer id belongs to at most one
//! account, so the data plane can map a connection to the registered account.
//!
//! Node status follows `Joining → Syncing → Active → Lagging → Leaving → Retired`
//! ([`sync_primitives::NodeStatus`]). A freshly registered node is `Joining`; a `Joining` node
//! holds nothing and may deregister at once.
//!
//! ## Calls
//! - [`Pallet::register_node`]: any signed account, once.
//! - [`Pallet::update_node`]: the node's account; new peer id and/or multiaddrs.
//! - [`Pallet::deregister_node`]: the node's account, while it holds nothing.
//! - [`Pallet::force_deregister`]: Root; removes any node and releases its deposit.
//!
//! Every state change emits an [`Event`]; every refusal is a typed [`Error`] and changes nothing.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod weights;

use frame_support::traits::fungible;
use sync_primitives::{Multiaddrs, PeerIdBytes};

/// Balance type of the currency that holds node deposits.
pub type BalanceOf<T> =
	<<T as Config>::Currency as fungible::Inspect<<T as frame_system::Config>::AccountId>>::Balance;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, MutateHold},
			tokens::Precision,
		},
	};
	use frame_system::pallet_prelude::*;
	use scale_info::TypeInfo;
	use sp_runtime::traits::Zero;
	use sync_primitives::{AddressError, NodeRole, NodeStatus, NodeSummary};

	/// The in-code storage version.
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Configuration of the pallet.
	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// Currency from which node deposits are held.
		type Currency: Inspect<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;

		/// The runtime's hold reason, which must include this pallet's [`HoldReason`].
		type RuntimeHoldReason: From<HoldReason>;

		/// Deposit held for as long as a node is registered. It makes registering many
		/// identities costly and is what penalties are taken from.
		#[pallet::constant]
		type NodeDeposit: Get<BalanceOf<Self>>;

		/// Weights of this pallet's calls, from its benchmarks.
		type WeightInfo: WeightInfo;
	}

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// Deposit of a registered node.
		#[codec(index = 0)]
		NodeDeposit,
	}

	/// A registered node as stored on chain.
	#[derive(
		Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Clone, PartialEq, Eq,
		Debug,
	)]
	pub struct NodeInfo<Balance, BlockNumber> {
		/// Primary (accepts writes) or Replica (mirrors).
		pub role: NodeRole,
		/// Life-cycle status.
		pub status: NodeStatus,
		/// libp2p peer id bytes of the node's data plane.
		pub peer_id: PeerIdBytes,
		/// Data-plane listen multiaddrs in text form.
		pub multiaddrs: Multiaddrs,
		/// Amount held under [`HoldReason::NodeDeposit`].
		pub deposit: Balance,
		/// Block in which the node registered.
		pub registered_at: BlockNumber,
	}

	/// Stored node record of this runtime.
	pub type NodeInfoOf<T> = NodeInfo<BalanceOf<T>, BlockNumberFor<T>>;

	/// Registered nodes by account.
	#[pallet::storage]
	pub type Nodes<T: Config> =
		CountedStorageMap<_, Blake2_128Concat, T::AccountId, NodeInfoOf<T>, OptionQuery>;

	/// Reverse index: data-plane peer id → account. Keeps peer ids unique and lets the data
	/// plane map a libp2p connection to a registered node.
	#[pallet::storage]
	pub type PeerIds<T: Config> =
		StorageMap<_, Blake2_128Concat, PeerIdBytes, T::AccountId, OptionQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A node registered; its deposit is held and its status is `Joining`.
		NodeRegistered { who: T::AccountId, role: NodeRole, peer_id: PeerIdBytes, deposit: BalanceOf<T> },
		/// A node changed its peer id and/or multiaddrs.
		NodeUpdated { who: T::AccountId, peer_id: PeerIdBytes, multiaddrs: Multiaddrs },
		/// A node was removed from the registry and its deposit released.
		NodeDeregistered { who: T::AccountId, released: BalanceOf<T>, forced: bool },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The account already has a registered node.
		AlreadyRegistered,
		/// The account has no registered node.
		NotRegistered,
		/// The peer id is registered to another account.
		PeerIdTaken,
		/// The peer id is not a well-formed libp2p peer id (identity or sha2-256 multihash).
		InvalidPeerId,
		/// A multiaddr is not in text form (`/ip4/…/tcp/…`), or the list is empty.
		InvalidMultiaddr,
		/// The account's free balance cannot cover the node deposit.
		InsufficientDeposit,
		/// The call would change nothing.
		NothingToUpdate,
		/// The node holds or serves segments; it must announce leave and wait first.
		NodeBusy,
	}

	impl<T> From<AddressError> for Error<T> {
		fn from(e: AddressError) -> Self {
			match e {
				AddressError::InvalidPeerId => Error::InvalidPeerId,
				AddressError::InvalidMultiaddr => Error::InvalidMultiaddr,
			}
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(!T::NodeDeposit::get().is_zero(), "NodeDeposit must be non-zero");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register the signing account as a storage node.
		///
		/// - Origin: any signed account without a registered node.
		/// - `role`: `Primary` (accepts writes, commits roots) or `Replica` (mirrors).
		/// - `peer_id`: the binary libp2p peer id of the node's data plane, unique on chain.
		/// - `multiaddrs`: one to [`sync_primitives::MAX_MULTIADDRS`] text multiaddrs where the
		///   data plane listens, e.g. `/ip4/127.0.0.1/tcp/30433`.
		///
		/// Holds [`Config::NodeDeposit`] from the caller. The node starts `Joining`.
		/// Emits [`Event::NodeRegistered`].
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_node())]
		pub fn register_node(
			origin: OriginFor<T>,
			role: NodeRole,
			peer_id: PeerIdBytes,
			multiaddrs: Multiaddrs,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!Nodes::<T>::contains_key(&who), Error::<T>::AlreadyRegistered);
			Self::validate_addresses(&peer_id, &multiaddrs)?;
			ensure!(!PeerIds::<T>::contains_key(&peer_id), Error::<T>::PeerIdTaken);

			let deposit = T::NodeDeposit::get();
			T::Currency::hold(&HoldReason::NodeDeposit.into(), &who, deposit)
				.map_err(|_| Error::<T>::InsufficientDeposit)?;

			let info = NodeInfo {
				role,
				status: NodeStatus::Joining,
				peer_id: peer_id.clone(),
				multiaddrs,
				deposit,
				registered_at: frame_system::Pallet::<T>::block_number(),
			};
			PeerIds::<T>::insert(&peer_id, &who);
			Nodes::<T>::insert(&who, info);
			Self::deposit_event(Event::NodeRegistered { who, role, peer_id, deposit });
			Ok(())
		}

		/// Change the data-plane peer id and/or multiaddrs of the caller's node.
		///
		/// - Origin: the node's account.
		/// - `peer_id`: a new peer id (unique on chain), or `None` to keep the current one.
		/// - `multiaddrs`: a new address list, or `None` to keep the current one.
		///
		/// Fails with [`Error::NothingToUpdate`] if both are `None` or equal to the stored values.
		/// Emits [`Event::NodeUpdated`] with the resulting identity.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::update_node())]
		pub fn update_node(
			origin: OriginFor<T>,
			peer_id: Option<PeerIdBytes>,
			multiaddrs: Option<Multiaddrs>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			let new_peer = peer_id.unwrap_or_else(|| info.peer_id.clone());
			let new_addrs = multiaddrs.unwrap_or_else(|| info.multiaddrs.clone());
			ensure!(
				new_peer != info.peer_id || new_addrs != info.multiaddrs,
				Error::<T>::NothingToUpdate
			);
			Self::validate_addresses(&new_peer, &new_addrs)?;
			if new_peer != info.peer_id {
				ensure!(!PeerIds::<T>::contains_key(&new_peer), Error::<T>::PeerIdTaken);
				PeerIds::<T>::remove(&info.peer_id);
				PeerIds::<T>::insert(&new_peer, &who);
				info.peer_id = new_peer.clone();
			}
			info.multiaddrs = new_addrs.clone();
			Nodes::<T>::insert(&who, info);
			Self::deposit_event(Event::NodeUpdated { who, peer_id: new_peer, multiaddrs: new_addrs });
			Ok(())
		}

		/// Remove the caller's node from the registry and release its deposit.
		///
		/// - Origin: the node's account.
		/// - Allowed only while the node holds nothing (status `Joining`); a node that holds
		///   segments must announce its leave and wait out the leave delay.
		///
		/// Emits [`Event::NodeDeregistered`] with `forced: false`.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::deregister_node())]
		pub fn deregister_node(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			ensure!(info.status == NodeStatus::Joining, Error::<T>::NodeBusy);
			Self::remove_node(who, info, false)
		}

		/// Remove any node from the registry and release its deposit (governance fix-up).
		///
		/// - Origin: Root.
		/// - `who`: the node's account.
		///
		/// Emits [`Event::NodeDeregistered`] with `forced: true`.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::force_deregister())]
		pub fn force_deregister(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			ensure_root(origin)?;
			let info = Nodes::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
			Self::remove_node(who, info, true)
		}
	}

	impl<T: Config> Pallet<T> {
		fn validate_addresses(peer_id: &PeerIdBytes, multiaddrs: &Multiaddrs) -> DispatchResult {
			sync_primitives::validate_peer_id(peer_id).map_err(Error::<T>::from)?;
			ensure!(!multiaddrs.is_empty(), Error::<T>::InvalidMultiaddr);
			for addr in multiaddrs.iter() {
				sync_primitives::validate_multiaddr(addr).map_err(Error::<T>::from)?;
			}
			Ok(())
		}

		fn remove_node(who: T::AccountId, info: NodeInfoOf<T>, forced: bool) -> DispatchResult {
			let released = T::Currency::release(
				&HoldReason::NodeDeposit.into(),
				&who,
				info.deposit,
				Precision::BestEffort,
			)?;
			PeerIds::<T>::remove(&info.peer_id);
			Nodes::<T>::remove(&who);
			Self::deposit_event(Event::NodeDeregistered { who, released, forced });
			Ok(())
		}

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

		/// The account a peer id is registered to.
		pub fn account_of_peer(peer_id: alloc::vec::Vec<u8>) -> Option<T::AccountId> {
			let key = PeerIdBytes::try_from(peer_id).ok()?;
			PeerIds::<T>::get(key)
		}

		/// Invariants of the registry:
		/// - `PeerIds` is exactly the inverse of the peer ids in `Nodes`;
		/// - the counter of `Nodes` matches its entries;
		/// - each node's recorded deposit is on hold for its account;
		/// - every stored address passes validation.
		#[cfg(any(feature = "try-runtime", test))]
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			use frame_support::traits::fungible::InspectHold;
			let mut count = 0u32;
			for (who, info) in Nodes::<T>::iter() {
				count += 1;
				ensure!(
					PeerIds::<T>::get(&info.peer_id).as_ref() == Some(&who),
					"node peer id not indexed to its account"
				);
				ensure!(
					T::Currency::balance_on_hold(&HoldReason::NodeDeposit.into(), &who) >=
						info.deposit,
					"node deposit not on hold"
				);
				Self::validate_addresses(&info.peer_id, &info.multiaddrs)
					.map_err(|_| "stored node address invalid")?;
			}
			ensure!(count == Nodes::<T>::count(), "Nodes counter out of sync");
			ensure!(PeerIds::<T>::iter().count() as u32 == count, "dangling PeerIds entry");
			Ok(())
		}
	}
}
