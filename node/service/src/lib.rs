#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod binding;
pub mod chain;
pub mod config;
mod driver;
pub mod health;
pub mod http;
pub mod metrics;
pub mod plan;
mod rpc;
pub mod view;

pub use chain::{
	BackendOffchain, KeystoreAccounts, OffchainDb, Registry, RuntimeRegistry, SyncAccounts, Wake,
};
pub use config::{SyncConfig, SyncParams, SyncRole};
pub use driver::spawn;
pub use rpc::{rpc_module, MAX_RPC_OBJECT};

use parking_lot::{RwLock, RwLockReadGuard};
use std::collections::{BTreeMap, BTreeSet};
use sync_net::{
	deltas::{Epoch, EpochKey},
	PeerId, SyncNetwork,
};
use sync_primitives::SegmentId;
use view::{ChainView, SegmentView};

/// Why this node does not take a write to a segment now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotWritable {
	/// It does not own the segment on chain (or its key is not the one the chain records for
	/// the segment's current epoch).
	NotOwner,
	/// It owns the segment, but its copy ends before its epoch begins: it is still catching up
	/// (retry shortly).
	Behind {
		/// The local head's seq.
		head: u64,
		/// The first seq of the epoch.
		first_seq: u64,
	},
}

impl NotWritable {
	/// What the write APIs (RPC, HTTP) answer for a write to `segment`.
	pub fn message(&self, segment: SegmentId) -> String {
		match self {
			NotWritable::NotOwner => {
				format!("this node does not own segment {segment} on chain; write to its owner")
			},
			NotWritable::Behind { head, first_seq } => format!(
				"segment {segment}: this node's copy ends at seq {head}, before its epoch's first \
				 seq {first_seq}; it is catching up, retry"
			),
		}
	}
}

/// What the RPC methods, the object API and the op verifier see of the running service.
#[derive(Default)]
pub struct SyncHandle {
	net: std::sync::OnceLock<SyncNetwork>,
	/// The segments of this node as of the last finalized block (the one place they are kept).
	segments: RwLock<BTreeMap<SegmentId, SegmentView>>,
	/// The segments this node accepts writes for (it owns them on chain).
	writable: RwLock<BTreeSet<SegmentId>>,
	/// What the driver last learnt of the node itself (for [`SyncHandle::health`]).
	node: RwLock<NodeState>,
}

/// What the driver knows of the node itself, beyond its segments.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeState {
	/// `--dev` or a local chain spec (see [`SyncConfig::local_chain`]).
	pub local_chain: bool,
	/// The chain is major-syncing (the service waits).
	pub major_syncing: bool,
	/// A node is registered with this peer id (`None`: no finalized block read yet).
	pub registered: Option<bool>,
	/// `sync` keys in the keystore.
	pub sync_keys: usize,
	/// Whether the keystore holds the `sync` key of the account the node is registered to
	/// (`None`: not registered, or not known yet).
	pub account_key: Option<bool>,
	/// The data-plane addresses registered on chain.
	pub addresses: Vec<sync_net::Multiaddr>,
	/// What the registered account can spend on duties.
	pub funds: Option<view::Funds>,
}

impl SyncHandle {
	/// The data plane, once started.
	pub fn network(&self) -> Option<&SyncNetwork> {
		self.net.get()
	}

	/// Whether this node accepts writes to `segment` (it owns it on chain).
	pub fn owns(&self, segment: SegmentId) -> bool {
		self.writable.read().contains(&segment)
	}

	/// The segments of this node as of the last finalized block.
	pub fn segments(&self) -> RwLockReadGuard<'_, BTreeMap<SegmentId, SegmentView>> {
		self.segments.read()
	}

	/// [`SyncHandle::write_epoch`] for this node's data plane `net` now: its key and its local
	/// head of `segment`.
	pub fn write_epoch_of(
		&self,
		net: &SyncNetwork,
		segment: SegmentId,
	) -> Result<Epoch, NotWritable> {
		let head = net.store().head(segment).map_or(0, |h| h.seq);
		self.write_epoch(segment, &net.peer_id(), head)
	}

	/// The chain's record of ownership epoch `epoch` of `segment` (whose key signs its ops), as
	/// of the last finalized block.
	pub fn epoch_of(&self, segment: SegmentId, epoch: Epoch) -> Option<EpochKey> {
		self.segments.read().get(&segment)?.epoch(epoch).copied()
	}

	/// The epoch this node writes `segment` in: the chain's newest ownership epoch of it, if
	/// this node accepts writes for it, that epoch is recorded with this node's data-plane key
	/// `me`, and the local log (head at `head_seq`) reaches the epoch's first seq less one
	/// (otherwise nothing it signed would verify: its ops would precede its epoch).
	pub fn write_epoch(
		&self,
		segment: SegmentId,
		me: &PeerId,
		head_seq: u64,
	) -> Result<Epoch, NotWritable> {
		if !self.owns(segment) {
			return Err(NotWritable::NotOwner);
		}
		let segments = self.segments.read();
		let newest = segments
			.get(&segment)
			.and_then(|s| s.epochs.last())
			.filter(|e| e.peer == *me)
			.ok_or(NotWritable::NotOwner)?;
		if head_seq.saturating_add(1) < newest.first_seq {
			return Err(NotWritable::Behind { head: head_seq, first_seq: newest.first_seq });
		}
		Ok(newest.epoch)
	}

	/// The node's sync health now (see [`health`]): the data plane, the last finalized view
	/// and the store.
	pub fn health(&self) -> health::Health {
		health::assess(&self.health_inputs())
	}

	fn health_inputs(&self) -> health::Inputs {
		let node = self.node.read().clone();
		let net = self.network();
		let me = net.map(|n| n.peer_id());
		let segments = self.segments.read();
		let mut usable = BTreeSet::new();
		let inputs = segments
			.iter()
			.map(|(id, s)| {
				let others: Vec<&PeerId> =
					s.holders.iter().map(|h| &h.peer).filter(|p| Some(**p) != me).collect();
				if let Some(n) = net.filter(|_| !s.owner) {
					usable.extend(others.iter().filter(|p| n.peer_usable(p)).map(|p| **p));
				}
				let input = health::SegmentInput {
					owner: s.owner,
					other_holders: others.len(),
					chain_status: s.holding.map(|(st, _)| st),
					local_seq: net.and_then(|n| n.store().head(*id)).map(|h| h.seq),
					committed: s.roots.iter().map(|r| r.seq).collect(),
					snapshot: net.is_some_and(|n| matches!(n.store().transfer(*id), Ok(Some(_)))),
				};
				(*id, input)
			})
			.collect();
		health::Inputs {
			running: net.is_some(),
			local_chain: node.local_chain,
			major_syncing: node.major_syncing,
			registered: node.registered,
			sync_keys: node.sync_keys,
			account_key: node.account_key,
			addresses: node.addresses,
			funds: node.funds,
			usable_peers: usable.len(),
			segments: inputs,
		}
	}

	/// Updates what the driver knows of the node.
	pub(crate) fn set_node(&self, f: impl FnOnce(&mut NodeState)) {
		f(&mut self.node.write());
	}

	fn set_network(&self, net: SyncNetwork) {
		let _ = self.net.set(net);
	}

	fn set_segments(&self, view: &ChainView) {
		*self.segments.write() = view.segments.iter().map(|s| (s.id, s.clone())).collect();
	}

	fn set_writable(&self, segment: SegmentId, writable: bool) {
		let mut w = self.writable.write();
		if writable {
			w.insert(segment);
		} else {
			w.remove(&segment);
		}
	}

	fn holders_on_chain(&self, segment: SegmentId) -> usize {
		self.segments.read().get(&segment).map_or(0, |s| s.holders.len())
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn view(me: PeerId, other: PeerId) -> ChainView {
		let epochs = vec![
			EpochKey { epoch: 1, peer: other, first_seq: 1 },
			EpochKey { epoch: 2, peer: me, first_seq: 21 },
		];
		let seg = SegmentView {
			id: 7,
			holders: vec![],
			owner: true,
			primary: true,
			holding: None,
			migrating_here: false,
			roots: vec![],
			epochs,
		};
		ChainView { registered: true, segments: vec![seg], ..Default::default() }
	}

	#[test]
	fn owner_writes_in_its_epoch_only_once_its_copy_reaches_it() {
		let (me, other) = (PeerId::random(), PeerId::random());
		let h = SyncHandle::default();
		h.set_segments(&view(me, other));
		assert_eq!(h.write_epoch(7, &me, 30), Err(NotWritable::NotOwner), "writes not taken yet");
		h.set_writable(7, true);
		assert_eq!(h.write_epoch(7, &me, 20), Ok(2), "head 20: the next op is the epoch's first");
		assert_eq!(h.write_epoch(7, &me, 30), Ok(2));
		assert_eq!(
			h.write_epoch(7, &me, 12),
			Err(NotWritable::Behind { head: 12, first_seq: 21 }),
			"ops before the epoch's first seq would not verify"
		);
		assert_eq!(h.write_epoch(7, &other, 30), Err(NotWritable::NotOwner), "the former owner");
		assert_eq!(h.write_epoch(8, &me, 30), Err(NotWritable::NotOwner), "another segment");
		// The verifier's view: every epoch of the history, by number.
		assert_eq!(h.epoch_of(7, 1).map(|e| e.peer), Some(other));
		assert_eq!(h.epoch_of(7, 3), None);
	}
}
