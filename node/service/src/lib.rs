#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod binding;
pub mod chain;
pub mod config;
mod driver;
mod http;
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

/// What the RPC methods, the object API and the op verifier see of the running service.
#[derive(Default)]
pub struct SyncHandle {
	net: std::sync::OnceLock<SyncNetwork>,
	/// The segments of this node as of the last finalized block (the one place they are kept).
	segments: RwLock<BTreeMap<SegmentId, SegmentView>>,
	/// The segments this node accepts writes for (it owns them on chain).
	writable: RwLock<BTreeSet<SegmentId>>,
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

	/// The chain's record of ownership epoch `epoch` of `segment` (whose key signs its ops), as
	/// of the last finalized block.
	pub fn epoch_of(&self, segment: SegmentId, epoch: Epoch) -> Option<EpochKey> {
		self.segments.read().get(&segment)?.epoch(epoch).copied()
	}

	/// The epoch this node writes `segment` in: the chain's newest ownership epoch of it, if
	/// this node accepts writes for it and that epoch is recorded with this node's data-plane
	/// key `me` (otherwise nothing it signed would verify).
	pub fn write_epoch(&self, segment: SegmentId, me: &PeerId) -> Option<Epoch> {
		if !self.owns(segment) {
			return None;
		}
		let segments = self.segments.read();
		let newest = segments.get(&segment)?.epochs.last()?;
		(newest.peer == *me).then_some(newest.epoch)
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
