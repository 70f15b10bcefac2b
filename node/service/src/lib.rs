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

/// Why this node does not take a write to a segment now. Every variant but `NotOwner` is
/// retryable against this node; `NotOwner` and `Handover` name where to write instead, when
/// the chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotWritable {
	/// It does not own the segment on chain (or its key is not the one the chain records for
	/// the segment's current epoch).
	NotOwner {
		/// The current owner, if this node's view of the chain has the segment.
		owner: Option<view::Peer>,
	},
	/// It owns the segment, but its copy ends before its epoch begins: it is still catching up
	/// (retry shortly).
	Behind {
		/// The local head's seq.
		head: u64,
		/// The first seq of the epoch.
		first_seq: u64,
	},
	/// It owns the segment, but its log runs past its epoch's first seq in an older epoch
	/// (the chain sealed that epoch at its latest commit): it takes its copy back to that
	/// commit first (retry shortly).
	Rewinding {
		/// The first seq of the epoch.
		first_seq: u64,
	},
	/// The segment is being handed over: its migration's target proved it, and this node, the
	/// owner, has stopped taking writes and seals its epoch. Retry against the new owner (it
	/// takes writes once the seal is final).
	Handover {
		/// The migration's target, if registered.
		to: Option<view::Peer>,
	},
}

impl NotWritable {
	/// What the write APIs (RPC, HTTP) answer for a write to `segment`.
	pub fn message(&self, segment: SegmentId) -> String {
		let name =
			|p: &Option<view::Peer>| p.as_ref().map_or("unknown".into(), |p| p.peer.to_string());
		match self {
			NotWritable::NotOwner { owner } => format!(
				"this node does not own segment {segment} on chain; write to its owner ({})",
				name(owner)
			),
			NotWritable::Behind { head, first_seq } => format!(
				"segment {segment}: this node's copy ends at seq {head}, before its epoch's first \
				 seq {first_seq}; it is catching up, retry"
			),
			NotWritable::Rewinding { first_seq } => format!(
				"segment {segment}: this node's copy runs past its epoch's first seq {first_seq} \
				 in an older epoch; it is taking it back to the sealed seq, retry"
			),
			NotWritable::Handover { to } => format!(
				"segment {segment} is being handed over to {}; this node takes no more writes, \
				 retry against the new owner",
				name(to)
			),
		}
	}

	/// The machine-readable part of the answer (the RPC error's `data`, merged into the HTTP
	/// error body): `reason`, and `owner` (base58 peer id or null) with its `addresses` when
	/// the answer names where to write, or `head`/`firstSeq`.
	pub fn data(&self) -> serde_json::Value {
		use serde_json::json;
		let peer = |p: Option<&view::Peer>| {
			json!({
				"owner": p.map(|p| p.peer.to_string()),
				"addresses": p.map_or(vec![], |p| p.addrs.iter().map(|a| a.to_string()).collect()),
			})
		};
		let (reason, mut v) = match self {
			NotWritable::NotOwner { owner } => ("NotOwner", peer(owner.as_ref())),
			NotWritable::Handover { to } => ("Handover", peer(to.as_ref())),
			NotWritable::Behind { head, first_seq } => {
				("Behind", json!({ "head": head, "firstSeq": first_seq }))
			},
			NotWritable::Rewinding { first_seq } => ("Rewinding", json!({ "firstSeq": first_seq })),
		};
		v["reason"] = json!(reason);
		v
	}

	/// Where to write instead, as the write APIs report it: the named peer and its
	/// addresses, if any.
	pub fn redirect(&self) -> Option<&view::Peer> {
		match self {
			NotWritable::NotOwner { owner } => owner.as_ref(),
			NotWritable::Handover { to } => to.as_ref(),
			_ => None,
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

	/// The answer to a write the data plane refused with [`sync_store::StoreError::Fenced`]
	/// (the fence went up between the epoch check and the write): a handover to the target
	/// the view names.
	pub fn fenced(&self, segment: SegmentId) -> NotWritable {
		let segments = self.segments.read();
		let to = segments.get(&segment).and_then(|s| s.handover.as_ref()?.to.clone());
		NotWritable::Handover { to }
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
		let store = net.store();
		let head = store.head(segment).map_or(0, |h| h.seq);
		let epoch_at = |seq| store.ops(segment, seq, 1).ok()?.first().map(|o| o.op.epoch);
		let epoch = self.write_epoch(segment, &net.peer_id(), head, epoch_at)?;
		if store.fenced(segment).is_some() {
			// Fenced for a seal that the view no longer shows as pending (cancelled, or the
			// node owns the segment again): the driver lifts the fence at the next block.
			return Err(NotWritable::Handover { to: None });
		}
		Ok(epoch)
	}

	/// The chain's record of ownership epoch `epoch` of `segment` (whose key signs its ops), as
	/// of the last finalized block.
	pub fn epoch_of(&self, segment: SegmentId, epoch: Epoch) -> Option<EpochKey> {
		self.segments.read().get(&segment)?.epoch(epoch).copied()
	}

	/// The epoch this node writes `segment` in: the chain's newest ownership epoch of it, if
	/// this node accepts writes for it, that epoch is recorded with this node's data-plane key
	/// `me`, no handover is sealing it, and the local log (head at `head_seq`) continues the
	/// epoch exactly: it reaches the epoch's first seq less one (otherwise its ops would
	/// precede its epoch), and what it logged from the first seq on (`epoch_at(seq)`: the
	/// epoch of the logged op at `seq`) is of this epoch (otherwise it continues a sealed one).
	pub fn write_epoch(
		&self,
		segment: SegmentId,
		me: &PeerId,
		head_seq: u64,
		epoch_at: impl FnOnce(u64) -> Option<Epoch>,
	) -> Result<Epoch, NotWritable> {
		let segments = self.segments.read();
		let view = segments.get(&segment);
		let not_owner = || NotWritable::NotOwner { owner: view.and_then(|s| s.current_owner()) };
		// The chain's word first: an owner that is not writable yet says why below (`Behind`
		// while it follows up to its epoch), not "not the owner" naming itself.
		if !view.is_some_and(|s| s.owner) {
			return Err(not_owner());
		}
		let newest = view
			.and_then(|s| s.epochs.last())
			.filter(|e| e.peer == *me)
			.ok_or_else(not_owner)?;
		if let Some(s) = view.filter(|s| s.sealing()) {
			return Err(NotWritable::Handover {
				to: s.handover.as_ref().and_then(|h| h.to.clone()),
			});
		}
		if head_seq.saturating_add(1) < newest.first_seq {
			return Err(NotWritable::Behind { head: head_seq, first_seq: newest.first_seq });
		}
		if head_seq >= newest.first_seq
			&& epoch_at(newest.first_seq).is_some_and(|e| e < newest.epoch)
		{
			return Err(NotWritable::Rewinding { first_seq: newest.first_seq });
		}
		if !self.owns(segment) {
			// The driver has not taken the writes yet (the block's actions are under way).
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
		let epochs = sync_net::deltas::epoch_keys([(1, other, 1), (2, me, 21)]);
		let seg = SegmentView {
			id: 7,
			holders: vec![],
			owner: true,
			primary: true,
			holding: None,
			migrating_here: false,
			handover: None,
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
		let mine = |_| Some(2);
		let not_owner =
			Err(NotWritable::NotOwner { owner: Some(view::Peer { peer: me, addrs: vec![] }) });
		// The defect (review of #15): an owner following up to its epoch answered `NotOwner`
		// naming itself. It is `Behind`, and so until the driver takes the writes.
		assert_eq!(
			h.write_epoch(7, &me, 12, mine),
			Err(NotWritable::Behind { head: 12, first_seq: 21 }),
			"behind, writes not taken"
		);
		assert_eq!(
			h.write_epoch(7, &me, 30, mine),
			Err(NotWritable::Behind { head: 30, first_seq: 21 }),
			"writes not taken yet"
		);
		h.set_writable(7, true);
		assert_eq!(
			h.write_epoch(7, &me, 20, mine),
			Ok(2),
			"head 20: the next op is the epoch's first"
		);
		assert_eq!(h.write_epoch(7, &me, 30, mine), Ok(2));
		assert_eq!(
			h.write_epoch(7, &me, 12, mine),
			Err(NotWritable::Behind { head: 12, first_seq: 21 }),
			"ops before the epoch's first seq would not verify"
		);
		assert_eq!(h.write_epoch(7, &other, 30, mine), not_owner, "the former owner");
		assert_eq!(
			h.write_epoch(8, &me, 30, mine),
			Err(NotWritable::NotOwner { owner: None }),
			"another segment"
		);
		// The defect (#15): a new owner whose log ran on in the sealed epoch (a timed-out
		// seal) wrote on top of ops that are not part of the segment.
		assert_eq!(
			h.write_epoch(7, &me, 30, |_| Some(1)),
			Err(NotWritable::Rewinding { first_seq: 21 }),
			"seq 21 is logged in the old epoch"
		);
		assert_eq!(
			h.write_epoch(7, &me, 30, |_| None),
			Ok(2),
			"not logged (a snapshot): its state is a committed root"
		);
		// The defect (#15): the old owner kept taking writes while the target took over. Once
		// the target's proof is in, the owner refuses them, naming the target.
		let target = view::Peer { peer: other, addrs: vec![] };
		let mut sealing = view(me, other);
		sealing.segments[0].handover = Some(view::Handover {
			to: Some(target.clone()),
			to_me: false,
			proven: true,
			sealed: None,
			completed: false,
		});
		h.set_segments(&sealing);
		assert_eq!(
			h.write_epoch(7, &me, 30, mine),
			Err(NotWritable::Handover { to: Some(target.clone()) })
		);
		assert_eq!(NotWritable::Handover { to: Some(target.clone()) }.redirect(), Some(&target));
		sealing.segments[0].handover.as_mut().unwrap().proven = false;
		h.set_segments(&sealing);
		assert_eq!(h.write_epoch(7, &me, 30, mine), Ok(2), "not proven yet: writes go on");
		h.set_segments(&view(me, other));
		// The verifier's view: every epoch of the history, by number.
		assert_eq!(h.epoch_of(7, 1).map(|e| e.peer), Some(other));
		assert_eq!(h.epoch_of(7, 3), None);
	}
}
