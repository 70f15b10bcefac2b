//! How the service reaches the chain: three small traits, and their implementations over a
//! Substrate client (the runtime API), its backend (offchain local storage) and its keystore
//! (the `sync` accounts the off-chain worker signs for).
//!
//! The service never names the node's concrete client type, so it builds and tests without
//! the node binary, and the node wires it with whatever client it has.
use crate::view::{ChainView, Funds, Handover, Peer, SegmentView};
use codec::Codec;
use futures::{Stream, StreamExt};
use sc_client_api::{backend::Backend, BlockchainEvents, HeaderBackend};
use sp_api::ProvideRuntimeApi;
use sp_runtime::traits::{Block as BlockT, Header as _};
use std::{collections::HashMap, hash::Hash, marker::PhantomData, sync::Arc};
use sync_net::{deltas::epoch_keys, Holder, Multiaddr, PeerId};
use sync_primitives::{ChallengeSummary, SyncRegistryApi};

/// Read access to the registry at a block.
pub trait Registry: Send + Sync + 'static {
	/// Block hash.
	type Hash: Copy + Send + Sync + std::fmt::Display + 'static;

	/// The chain's genesis hash (part of every peer binding, so one is good on one chain only).
	fn genesis(&self) -> Result<[u8; 32], String>;

	/// The view at `at` of the node registered with data-plane peer id `me`.
	fn view(&self, at: Self::Hash, me: &PeerId) -> Result<ChainView, String>;

	/// The open challenges at `at` of the node registered with `me` (`None` if no node is).
	fn open_challenges(
		&self,
		at: Self::Hash,
		me: &PeerId,
	) -> Result<Option<Vec<ChallengeSummary<u32>>>, String>;
}

/// The node's offchain local storage (`PERSISTENT` kind), shared with the off-chain worker.
pub trait OffchainDb: Send + 'static {
	/// Sets `key` to `value`.
	fn set(&mut self, key: &[u8], value: &[u8]);
	/// Removes `key`.
	fn remove(&mut self, key: &[u8]);
	/// The value at `key`, if any.
	fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
}

/// What wakes the service up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake<H> {
	/// A finalized block: the whole view (what to hold, follow, commit, claim).
	Finalized(H, u32),
	/// A new best block: only open challenges (their proof windows are short).
	Best(H),
}

/// Finalized and new best blocks of `client`, merged.
pub fn wakes<Block, C>(client: &C) -> impl Stream<Item = Wake<Block::Hash>> + Send + Unpin
where
	Block: BlockT,
	C: BlockchainEvents<Block>,
	sp_runtime::traits::NumberFor<Block>: Into<u32>,
{
	let finality = client
		.finality_notification_stream()
		.map(|n| Wake::Finalized(n.hash, (*n.header.number()).into()));
	let best = client
		.import_notification_stream()
		.filter(|n| futures::future::ready(n.is_new_best))
		.map(|n| Wake::Best(n.hash));
	futures::stream::select(finality, best)
}

/// [`Registry`] over a client's runtime API ([`SyncRegistryApi`]).
pub struct RuntimeRegistry<Block, C, AccountId, Balance> {
	client: Arc<C>,
	_marker: Marker<Block, AccountId, Balance>,
}

/// The types a [`RuntimeRegistry`] reads with, owned by none of its values.
type Marker<Block, AccountId, Balance> = PhantomData<fn() -> (Block, AccountId, Balance)>;

impl<Block, C, AccountId, Balance> RuntimeRegistry<Block, C, AccountId, Balance> {
	/// Reads through `client`.
	pub fn new(client: Arc<C>) -> Self {
		RuntimeRegistry { client, _marker: PhantomData }
	}
}

impl<Block, C, AccountId, Balance> Registry for RuntimeRegistry<Block, C, AccountId, Balance>
where
	Block: BlockT,
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: SyncRegistryApi<Block, AccountId, Balance, u32>,
	AccountId: Codec + Clone + Eq + Hash + Send + Sync + 'static,
	Balance: Codec + Into<u128> + Send + Sync + 'static,
{
	type Hash = Block::Hash;

	fn genesis(&self) -> Result<[u8; 32], String> {
		let hash = self.client.info().genesis_hash;
		let bytes: &[u8] = hash.as_ref();
		<[u8; 32]>::try_from(bytes)
			.map_err(|_| format!("a genesis hash of {} bytes, not 32", bytes.len()))
	}

	fn view(&self, at: Block::Hash, me: &PeerId) -> Result<ChainView, String> {
		let api = self.client.runtime_api();
		let e = |e: sp_api::ApiError| e.to_string();
		let Some(account) = api.node_by_peer_id(at, me.to_bytes()).map_err(e)? else {
			return Ok(ChainView::default());
		};
		// Data planes of the accounts met, each read once.
		let mut peers: HashMap<AccountId, Option<(PeerId, Vec<Multiaddr>)>> = HashMap::new();
		let mut data_plane_of =
			|who: &AccountId| -> Result<Option<(PeerId, Vec<Multiaddr>)>, String> {
				if let Some(p) = peers.get(who) {
					return Ok(p.clone());
				}
				let found = api.node_info(at, who.clone()).map_err(e)?.and_then(|n| {
					let peer = PeerId::from_bytes(&n.peer_id).ok()?;
					let addrs = n
						.multiaddrs
						.iter()
						.filter_map(|a| std::str::from_utf8(a).ok()?.parse::<Multiaddr>().ok())
						.collect();
					Some((peer, addrs))
				});
				peers.insert(who.clone(), found.clone());
				Ok(found)
			};
		// `account_funds` came with version 2 of the API, `migration_info` with 3 and its
		// `sealed` with 4 (the shape read here): an older runtime has none to give.
		let version = sp_api::ApiExt::<Block>::api_version::<
			dyn SyncRegistryApi<Block, AccountId, Balance, u32>,
		>(&*api, at)
		.map_err(e)?
		.unwrap_or(1);
		let mut segments = Vec::new();
		for id in api.node_segments(at, account.clone()).map_err(e)? {
			let Some(info) = api.segment_info(at, id).map_err(e)? else { continue };
			let migration = match &info.migration {
				Some(_) if version >= 4 => api.migration_info(at, id).map_err(e)?,
				_ => None,
			};
			let handover = match migration {
				Some(m) => Some(Handover {
					to: data_plane_of(&m.to)?.map(|(peer, addrs)| Peer { peer, addrs }),
					to_me: m.to == account,
					proven: m.proven.is_some(),
					sealed: m.sealed,
					completed: m.completed,
				}),
				None => None,
			};
			let mut holders = Vec::new();
			for who in &info.primaries {
				if let Some((peer, addrs)) = data_plane_of(who)? {
					holders.push(Holder { peer, addrs, primary: true });
				}
			}
			for (who, _status, _) in &info.holders {
				if let Some((peer, addrs)) = data_plane_of(who)? {
					if !holders.iter().any(|h| h.peer == peer) {
						holders.push(Holder { peer, addrs, primary: false });
					}
				}
			}
			let holding = info
				.holders
				.iter()
				.find(|(a, _, _)| *a == account)
				.map(|(_, status, proven)| (*status, *proven));
			segments.push(SegmentView {
				id,
				holders,
				owner: info.owner == account,
				primary: info.primaries.contains(&account),
				holding,
				// Without the phase (an older runtime), as before: until it completed.
				migrating_here: match &handover {
					Some(h) => h.to_me && !h.proven && !h.completed,
					None => {
						info.migration.as_ref().is_some_and(|(to, done)| *to == account && !done)
					},
				},
				handover,
				roots: info.roots.clone(),
				// A record whose peer id does not parse names no key: its epoch's ops do
				// not verify (the chain checks peer ids at registration). Each epoch ends
				// where the next one starts.
				epochs: epoch_keys(info.epochs.iter().filter_map(|e| {
					Some((e.epoch, PeerId::from_bytes(&e.peer_id).ok()?, e.first_seq))
				})),
			});
		}
		let addresses = data_plane_of(&account)?.map(|(_, a)| a).unwrap_or_default();
		let encoded = Some(account.encode());
		let challenges = api.open_challenges(at, account.clone()).map_err(e)?;
		let funds = match version {
			// A failed read costs the balance figure, not the block's duties.
			v if v >= 2 => api
				.account_funds(at, account)
				.ok()
				.map(|f| Funds { spendable: f.spendable.into(), duty_fee: f.duty_fee.into() }),
			_ => None,
		};
		let account = encoded;
		Ok(ChainView { registered: true, segments, challenges, addresses, account, funds })
	}

	fn open_challenges(
		&self,
		at: Block::Hash,
		me: &PeerId,
	) -> Result<Option<Vec<ChallengeSummary<u32>>>, String> {
		let api = self.client.runtime_api();
		let e = |e: sp_api::ApiError| e.to_string();
		match api.node_by_peer_id(at, me.to_bytes()).map_err(e)? {
			Some(account) => api.open_challenges(at, account).map(Some).map_err(e),
			None => Ok(None),
		}
	}
}

/// The accounts the off-chain worker can sign for: those of the `sync` keys in the keystore.
pub trait SyncAccounts: Send + 'static {
	/// SCALE-encoded account ids of the keystore's `sync` keys (read anew at each call: an
	/// operator may insert a key while the node runs).
	fn accounts(&self) -> Vec<Vec<u8>>;
}

/// [`SyncAccounts`] of a node's keystore, read through `public_keys` (the keystore's
/// `sr25519_public_keys`, called with [`sync_primitives::KEY_TYPE`]): each key as the runtime's
/// `AccountId32`, the account of its `MultiSigner`, as the off-chain worker's `Signer` derives
/// it. A function rather than the keystore itself, so this crate needs no `sp-keystore`.
pub struct KeystoreAccounts<F>(F);

impl<F> KeystoreAccounts<F>
where
	F: Fn(sp_core::crypto::KeyTypeId) -> Vec<sp_core::sr25519::Public> + Send + 'static,
{
	/// The `sync` accounts of the keystore `public_keys` reads, e.g.
	/// `move |t| sp_keystore::Keystore::sr25519_public_keys(&*keystore, t)`.
	pub fn new(public_keys: F) -> Self {
		KeystoreAccounts(public_keys)
	}
}

impl<F> SyncAccounts for KeystoreAccounts<F>
where
	F: Fn(sp_core::crypto::KeyTypeId) -> Vec<sp_core::sr25519::Public> + Send + 'static,
{
	fn accounts(&self) -> Vec<Vec<u8>> {
		use codec::Encode;
		use sp_runtime::traits::IdentifyAccount;
		(self.0)(sync_primitives::KEY_TYPE)
			.into_iter()
			.map(|public| sp_runtime::MultiSigner::from(public).into_account().encode())
			.collect()
	}
}

/// [`OffchainDb`] over a client backend's offchain storage. Without one (offchain storage
/// disabled) writes are dropped, and the off-chain worker, which reads the same storage, has
/// nothing to submit.
pub struct BackendOffchain<Block: BlockT, B: Backend<Block>> {
	db: Option<B::OffchainStorage>,
}

impl<Block: BlockT, B: Backend<Block>> BackendOffchain<Block, B> {
	/// The offchain storage of `backend`.
	pub fn new(backend: &B) -> Self {
		BackendOffchain { db: backend.offchain_storage() }
	}
}

impl<Block: BlockT, B: Backend<Block> + 'static> OffchainDb for BackendOffchain<Block, B> {
	fn set(&mut self, key: &[u8], value: &[u8]) {
		use sp_core::offchain::OffchainStorage;
		if let Some(db) = &mut self.db {
			db.set(sp_core::offchain::STORAGE_PREFIX, key, value);
		}
	}

	fn remove(&mut self, key: &[u8]) {
		use sp_core::offchain::OffchainStorage;
		if let Some(db) = &mut self.db {
			db.remove(sp_core::offchain::STORAGE_PREFIX, key);
		}
	}

	fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
		use sp_core::offchain::OffchainStorage;
		self.db.as_ref()?.get(sp_core::offchain::STORAGE_PREFIX, key)
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn keystore_accounts_are_the_sr25519_public_keys_of_type_sync() {
		let asked = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
		let seen = asked.clone();
		let accounts = KeystoreAccounts::new(move |t| {
			seen.lock().push(t);
			vec![sp_core::sr25519::Public::from_raw([5; 32])]
		});
		assert_eq!(accounts.accounts(), vec![vec![5u8; 32]], "AccountId32 = the public key");
		assert_eq!(*asked.lock(), vec![sync_primitives::KEY_TYPE]);
	}
}
