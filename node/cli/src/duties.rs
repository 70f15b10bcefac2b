//! The node's duties toward the chain, worked out on every finalized block and handed to the
//! pallet's off-chain worker through offchain local storage.
//!
//! The service sees the store and the data plane; the off-chain worker holds the `sync` key.
//! So the service decides *what* to tell the chain and writes it down, and the worker signs and
//! submits it after re-checking it against the chain (see `pallet_sync_registry::ocw`):
//! - **register** (with `--sync-register`): this data plane's peer id and addresses;
//! - **commit** (owners): the head's root every `--sync-commit-every` blocks when it moved;
//!   the head is pinned first, so Replicas can snapshot-sync exactly the committed root;
//! - **claim** (holders): the newest retained committed root the store can prove (at or
//!   before its head, not older than its log), newer than the last one proven;
//! - **attest** (co-Primaries): the latest committed root, once the store reached the same
//!   root at that seq;
//! - **prove** (holders): for each open challenge whose seed is known, the [`SyncProof`] built
//!   by the store, checked locally, stored under `proof_key(id)`.
//!
//! [`SyncProof`]: sync_primitives::commitment::SyncProof
use codec::Encode;
use sc_client_api::Backend as _;
use std::collections::{BTreeSet, HashMap};
use sync_net::SyncNetwork;
use sync_primitives::{
	commitment::Hash32,
	offchain::{proof_key, Intent, Intents, INTENTS_KEY},
	ChallengeSummary, HoldingStatus, NodeRole, RootSummary, SegmentId,
};

/// What the chain says about one segment this node has something to do with.
#[derive(Clone, Debug)]
pub struct SegmentDuty {
	/// Segment id.
	pub id: SegmentId,
	/// This node owns (writes) it.
	pub owner: bool,
	/// This node is one of its Primaries (owner included).
	pub primary: bool,
	/// This node's holding, if it is a holder: status and last proven seq.
	pub holding: Option<(HoldingStatus, Option<u64>)>,
	/// A pending migration targets this node.
	pub migrating_here: bool,
	/// Retained committed roots, oldest first.
	pub roots: Vec<RootSummary>,
}

/// Options of the duties (from the command line).
#[derive(Clone, Debug)]
pub struct DutyConfig {
	/// Register this node if no node is registered with its peer id: role and addresses.
	pub register: Option<(NodeRole, Vec<String>)>,
	/// Blocks between root commits of an owned segment (when its head moved).
	pub commit_every: u32,
}

/// State kept between finalized blocks.
pub struct Duties {
	config: DutyConfig,
	backend: std::sync::Arc<crate::service::FullBackend>,
	/// Block at which a commit was last asked for, per owned segment.
	last_commit: HashMap<SegmentId, u32>,
	/// Owned segments whose head was pinned since the start.
	pinned: BTreeSet<SegmentId>,
	/// Challenges (id, seed) whose proof is stored. The seed is part of the key: a challenge
	/// seen on a best block that is later reorged may get another seed.
	proven: BTreeSet<(u64, Hash32)>,
	/// Challenges whose proof could not be built (logged once).
	failed: BTreeSet<u64>,
	/// The intents last written (rewritten only on change).
	written: Option<Intents>,
}

impl Duties {
	/// Duties writing into `backend`'s offchain storage.
	pub fn new(config: DutyConfig, backend: std::sync::Arc<crate::service::FullBackend>) -> Self {
		Duties {
			config,
			backend,
			last_commit: HashMap::new(),
			pinned: BTreeSet::new(),
			proven: BTreeSet::new(),
			failed: BTreeSet::new(),
			written: None,
		}
	}

	/// Works out and writes down everything for finalized block `number`. `segments` is empty
	/// and `challenges` too when the node is not registered.
	pub async fn on_finalized(
		&mut self,
		number: u32,
		net: &SyncNetwork,
		registered: bool,
		segments: &[SegmentDuty],
		challenges: Vec<ChallengeSummary<u32>>,
	) {
		let mut items = Vec::new();
		if !registered {
			if let Some((role, addrs)) = &self.config.register {
				items.push(Intent::Register {
					role: *role,
					multiaddrs: addrs.iter().map(|a| a.as_bytes().to_vec()).collect(),
				});
			}
		}
		for s in segments {
			if s.owner {
				items.extend(self.commit(number, net, s));
			} else {
				items.extend(claim(net, s));
				if s.primary {
					items.extend(attest(net, s));
				}
			}
		}
		self.prove_all(net, challenges, false).await;
		self.write_intents(Intents { peer_id: net.peer_id().to_bytes(), items });
	}

	/// An owner commits its head every `commit_every` blocks if it moved past the chain's
	/// latest root, pinning it first so it stays servable as a snapshot.
	fn commit(&mut self, number: u32, net: &SyncNetwork, s: &SegmentDuty) -> Option<Intent> {
		let head = net.store().head(s.id)?;
		let committed = s.roots.last().map(|r| r.seq);
		if self.pinned.insert(s.id) {
			// After a start the pins are gone (they live in memory): pin the head at once.
			let _ = net.store().pin_snapshot(s.id);
		}
		if committed.is_some_and(|c| head.seq <= c) {
			return None;
		}
		let last = self.last_commit.get(&s.id).copied();
		if last.is_some_and(|b| number < b + self.config.commit_every) {
			// Keep asking for the commit already decided on until the chain has it.
			return self.pending_commit(net, s, committed);
		}
		let pinned = net.store().pin_snapshot(s.id).ok().flatten()?;
		self.last_commit.insert(s.id, number);
		log::info!(target: "sync", "segment {}: committing seq {} root {}", s.id, pinned.seq, sync_store::Cid(pinned.facts.root));
		Some(Intent::Commit { segment: s.id, seq: pinned.seq, facts: pinned.facts })
	}

	/// The newest pinned head past the chain's latest root (the commit decided on last).
	fn pending_commit(
		&self,
		net: &SyncNetwork,
		s: &SegmentDuty,
		committed: Option<u64>,
	) -> Option<Intent> {
		let pin = net
			.store()
			.pinned(s.id)
			.into_iter()
			.filter(|p| committed.is_none_or(|c| p.seq > c))
			.last()?;
		Some(Intent::Commit { segment: s.id, seq: pin.seq, facts: pin.facts })
	}

	/// Builds, checks and stores the proofs of open challenges whose seed is known. Called on
	/// new best blocks too: a proof window is short, and waiting for finality would spend a
	/// good part of it.
	///
	/// `best` says the list is the open challenges at the new best block (the newest view):
	/// only then is what is kept for challenges missing from it dropped. A finalized block's
	/// list lags behind and would drop proofs of challenges issued since.
	pub async fn prove_all(
		&mut self,
		net: &SyncNetwork,
		challenges: Vec<ChallengeSummary<u32>>,
		best: bool,
	) {
		if best {
			self.forget_closed(&challenges);
		}
		for ch in challenges {
			self.prove(net, ch).await;
		}
	}

	/// Drops what is kept for challenges no longer open (answered or expired): the local
	/// records and, in offchain storage, the proof and the worker's sent marker.
	fn forget_closed(&mut self, open: &[ChallengeSummary<u32>]) {
		let is_open = |id: u64| open.iter().any(|c| c.id == id);
		let closed: BTreeSet<u64> = self
			.proven
			.iter()
			.map(|(id, _)| *id)
			.chain(self.failed.iter().copied())
			.filter(|id| !is_open(*id))
			.collect();
		if closed.is_empty() {
			return;
		}
		self.proven.retain(|(id, _)| !closed.contains(id));
		self.failed.retain(|id| !closed.contains(id));
		let Some(mut db) = self.backend.offchain_storage() else { return };
		use sp_core::offchain::OffchainStorage;
		for id in closed {
			db.remove(sp_core::offchain::STORAGE_PREFIX, &proof_key(id));
			db.remove(sp_core::offchain::STORAGE_PREFIX, &sync_primitives::offchain::sent_key(id));
		}
	}

	async fn prove(&mut self, net: &SyncNetwork, ch: ChallengeSummary<u32>) {
		let Some(seed) = ch.seed else { return };
		if self.proven.contains(&(ch.id, seed)) {
			return;
		}
		let store = net.store().clone();
		let (segment, seq, facts, indexes) = (ch.segment, ch.seq, ch.facts, ch.indexes.clone());
		let started = std::time::Instant::now();
		let built =
			tokio::task::spawn_blocking(move || store.prove(segment, seq, &facts, &indexes)).await;
		match built {
			Ok(Ok(proof)) => {
				let Some(mut db) = self.backend.offchain_storage() else { return };
				use sp_core::offchain::OffchainStorage;
				db.set(
					sp_core::offchain::STORAGE_PREFIX,
					&proof_key(ch.id),
					&proof.encode().encode(),
				);
				self.proven.insert((ch.id, seed));
				log::info!(
					target: "sync",
					"segment {segment}: proof for challenge {} (seq {seq}, {} chunks) built in {} ms",
					ch.id,
					ch.indexes.len(),
					started.elapsed().as_millis()
				);
			},
			Ok(Err(e)) => {
				if self.failed.insert(ch.id) {
					log::warn!(target: "sync", "segment {segment}: cannot prove challenge {} at seq {seq}: {e}", ch.id);
				}
			},
			Err(e) => log::warn!(target: "sync", "proof task failed: {e}"),
		}
	}

	fn write_intents(&mut self, intents: Intents) {
		if self.written.as_ref() == Some(&intents) {
			return;
		}
		let Some(mut db) = self.backend.offchain_storage() else { return };
		use sp_core::offchain::OffchainStorage;
		db.set(sp_core::offchain::STORAGE_PREFIX, INTENTS_KEY, &intents.encode());
		self.written = Some(intents);
	}
}

/// The root the store has at `seq`, if it can still prove it (the head, or a seq whose later
/// ops are all logged).
fn provable_root(net: &SyncNetwork, segment: SegmentId, seq: u64) -> Option<Hash32> {
	let store = net.store();
	let head = store.head(segment)?;
	if seq == head.seq {
		return Some(head.facts.root);
	}
	if seq > head.seq || store.first_logged(segment).ok()??.saturating_sub(1) > seq {
		return None;
	}
	// The root after op `seq` is the root before op `seq + 1`.
	store.ops(segment, seq + 1, 1).ok()?.first().map(|o| o.op.prev_root)
}

/// A holder claims the newest committed root it can prove, if newer than its proven one.
fn claim(net: &SyncNetwork, s: &SegmentDuty) -> Option<Intent> {
	let (_, proven) = s.holding?;
	for r in s.roots.iter().rev() {
		let newer = proven.is_none_or(|p| r.seq > p || (s.migrating_here && r.seq == p));
		if !newer {
			return None;
		}
		match provable_root(net, s.id, r.seq) {
			Some(root) if root == r.facts.root => {
				return Some(Intent::Claim { segment: s.id, seq: r.seq })
			},
			Some(_) => {
				log::warn!(target: "sync", "segment {}: local root at seq {} differs from the committed one", s.id, r.seq);
				return None;
			},
			None => continue,
		}
	}
	None
}

/// A co-Primary attests the latest committed root once its store has that root at that seq.
fn attest(net: &SyncNetwork, s: &SegmentDuty) -> Option<Intent> {
	let latest = s.roots.last()?;
	(provable_root(net, s.id, latest.seq)? == latest.facts.root).then_some(Intent::Attest {
		segment: s.id,
		seq: latest.seq,
		root: latest.facts.root,
	})
}
