//! Snapshot sync of one segment to a target root from many holders at once.
//!
//! Stages (each resumable, because the store persists the transfer):
//! 1. **Head**: each holder is asked what it can serve: the complete target (a Primary or a
//!    synced Replica) or a transfer to the same target with a verified index (a Replica that
//!    is itself syncing and serves the groups it already verified).
//! 2. **Index**: fetched from one holder, verified by recomputing the root before it is staged;
//!    a holder whose index does not hash to the target is banned and another is asked.
//! 3. **Objects**: work *units* (an outboard, or up to 64 chunk groups = 1 MiB) are picked in
//!    random order, one outstanding request per peer. Every group is verified (against its
//!    outboard leaf or the CID) by the store before it is written; a peer that sends bad bytes
//!    or breaks the protocol is banned for the session and its unit goes back to the pool.
//! 4. **Finish**: the store recomputes the root over the staged index, checks every object is
//!    present, and swaps the segment in one durable transaction.
//!
//! # Primary egress
//! Replicas that sync at the same time share the load like a swarm: every unit has an *owner*
//! among the non-Primary holders (a hash of the unit over the sorted peer ids, so every
//! Replica computes the same split). A Replica fetches the units it owns from the Primary and
//! everything else from the Replicas that own it (which serve it as soon as they verified it).
//! The Primary is asked for someone else's unit only when that owner is gone (disconnected,
//! banned, or unable to serve the target), or when this node's own share is exhausted and the
//! owner has made no progress (its verified byte count, polled through `Head`, did not grow)
//! for [`NetConfig::primary_fallback`](crate::NetConfig) — so with `n` Replicas the Primary
//! serves about one copy in total, not `n`, and a stuck Replica delays the others by at most
//! that fallback. While a complete non-Primary holder is connected, the Primary is not asked.
use crate::{
	client::{PeerError, PeerHead, Received, Session},
	metrics::Stage,
	protocol::{ErrorCode, GroupRange, MAX_GROUPS_PER_REQUEST},
	SyncNetwork,
};
use libp2p::{Multiaddr, PeerId};
use parking_lot::Mutex;
use rand::Rng;
use std::{
	collections::{HashMap, HashSet},
	sync::{
		atomic::{AtomicBool, AtomicUsize, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};
use sync_primitives::{
	commitment::{Entry, Hash32},
	outboard::{group_range, groups_of},
	SegmentId,
};
use sync_store::{Head, ObjectState, StoreError};
use tokio::{sync::watch, sync::Notify, task::JoinHandle};

/// A holder of the segment, as the chain (or discovery) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
	/// Its data-plane peer id.
	pub peer: PeerId,
	/// Addresses to reach it.
	pub addrs: Vec<Multiaddr>,
	/// Whether it is a Primary of the segment (asked for data only in turn, see module docs).
	pub primary: bool,
}

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
	/// The head reached.
	pub head: Option<Head>,
	/// Chunk-group bytes received and verified (including groups that raced and were dropped).
	pub fetched_bytes: u64,
	/// Outboard bytes received.
	pub outboard_bytes: u64,
	/// Group bytes received from each peer.
	pub by_peer: HashMap<PeerId, u64>,
	/// Peers banned during this sync.
	pub banned: Vec<PeerId>,
	/// Groups received that failed verification (never written).
	pub rejected_groups: u64,
	/// Bytes of objects that were already present (or verified partially) before this run.
	pub resumed_bytes: u64,
	/// Wall time of the sync.
	pub elapsed: Duration,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
	/// The store failed (disk, database) or rejected the final state.
	#[error("store: {0}")]
	Store(#[from] StoreError),
	/// No holder could make progress for the stall timeout.
	#[error("stalled: no usable holder for {0:?}")]
	Stalled(Duration),
}

/// How often an idle worker asks a co-downloader how far it got.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

/// How long a sync waits without any usable holder before giving up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

type UnitId = usize;

enum Work {
	Outboard { cid: Hash32, size: u64 },
	Groups(Vec<(Hash32, u64, u64)>),
}

struct Unit {
	work: Work,
	owner: PeerId,
	missing_at: HashMap<PeerId, Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IndexStage {
	Missing,
	Fetching,
	Staged,
}

/// What kind of source a peer is for this sync.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
	Primary,
	Complete,
	Syncing,
}

#[derive(Default)]
struct Sched {
	units: Vec<Option<Unit>>,
	outboards: Vec<UnitId>,
	owned: HashMap<PeerId, Vec<UnitId>>,
	stale: Vec<UnitId>,
	open: usize,
	dead: HashSet<PeerId>,
	assign: Vec<PeerId>,
	packs: HashMap<PeerId, Vec<(Hash32, u64, u64)>>,
	outboards_open: usize,
	/// Each co-downloader's last reported verified bytes, and when that number last grew.
	progress: HashMap<PeerId, (u64, Instant)>,
	report: SyncReport,
}

struct Engine {
	net: SyncNetwork,
	segment: SegmentId,
	target: Head,
	me: PeerId,
	sched: Mutex<Sched>,
	index: Mutex<IndexStage>,
	finished: AtomicBool,
	complete_replicas: AtomicUsize,
	wake: Notify,
	done: Notify,
	holders: watch::Receiver<Vec<Holder>>,
}

impl SyncNetwork {
	/// Syncs `segment` to `target` from the holders in `holders` (which may change while the
	/// sync runs: holders that leave are failed over, holders that join are used). Resumes a
	/// transfer left by an earlier run or a crash: verified data is not fetched again.
	pub async fn sync_segment(
		&self,
		segment: SegmentId,
		target: Head,
		mut holders: watch::Receiver<Vec<Holder>>,
	) -> Result<SyncReport, SyncError> {
		let started = Instant::now();
		let store = self.store().clone();
		if store.head(segment) == Some(target) {
			return Ok(SyncReport {
				head: Some(target),
				elapsed: started.elapsed(),
				..Default::default()
			});
		}
		let transfer = store.begin_transfer(segment, target)?;
		self.inner.metrics.set_stage(segment, Stage::Head);
		let engine = Arc::new(Engine {
			net: self.clone(),
			segment,
			target,
			me: self.peer_id(),
			sched: Mutex::new(Sched::default()),
			index: Mutex::new(IndexStage::Missing),
			finished: AtomicBool::new(false),
			complete_replicas: AtomicUsize::new(0),
			wake: Notify::new(),
			done: Notify::new(),
			holders: holders.clone(),
		});
		if transfer.index_staged {
			let (_, listing) =
				store.staged_index(segment)?.ok_or(StoreError::NoTransfer(segment))?;
			engine.build_units(&listing)?;
			*engine.index.lock() = IndexStage::Staged;
			self.inner.metrics.set_stage(segment, Stage::Objects);
		}
		let mut workers = Workers(HashMap::new(), engine.clone());
		let mut idle_since: Option<Instant> = None;
		loop {
			let mut current = holders.borrow_and_update().clone();
			current.retain(|h| h.peer != engine.me);
			let peers: Vec<PeerId> = current.iter().map(|h| h.peer).collect();
			// The peer manager picks whom to use: usable (not banned, not cooling down),
			// trusted first, reserved ones promoted below the hard low cap, at most `concurrency`.
			let selected = self.inner.book.lock().select(&peers, Instant::now());
			for peer in &selected {
				if workers.0.get(peer).is_none_or(|w| w.is_finished()) {
					let h = current
						.iter()
						.find(|h| h.peer == *peer)
						.expect("selected from current")
						.clone();
					workers.0.insert(*peer, tokio::spawn(engine.clone().worker(h)));
				}
			}
			if engine.is_done() {
				break;
			}
			workers.0.retain(|_, w| !w.is_finished());
			if workers.0.is_empty() {
				let since = *idle_since.get_or_insert_with(Instant::now);
				if since.elapsed() > STALL_TIMEOUT {
					engine.stop();
					return Err(SyncError::Stalled(STALL_TIMEOUT));
				}
			} else {
				idle_since = None;
			}
			tokio::select! {
				_ = engine.done.notified() => {},
				_ = holders.changed() => {},
				_ = tokio::time::sleep(Duration::from_millis(250)) => {},
			}
		}
		drop(workers);
		self.inner.metrics.set_stage(segment, Stage::Finish);
		let finished = store.finish_transfer(segment);
		self.inner.metrics.set_stage(segment, Stage::Idle);
		let head = finished?;
		self.provide(segment);
		let mut report = std::mem::take(&mut engine.sched.lock().report);
		report.head = Some(head);
		report.elapsed = started.elapsed();
		Ok(report)
	}
}

fn unit_hash(cid: &Hash32, run: u64) -> u64 {
	u64::from_le_bytes(cid[..8].try_into().expect("8 bytes"))
		^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Engine {
	fn is_done(&self) -> bool {
		*self.index.lock() == IndexStage::Staged && self.sched.lock().open == 0
	}

	fn stop(&self) {
		self.finished.store(true, Ordering::SeqCst);
		self.wake.notify_waiters();
	}

	/// Creates the work for everything the store does not have yet.
	fn build_units(&self, listing: &[Entry]) -> Result<(), StoreError> {
		let store = self.net.store();
		let mut assign: Vec<PeerId> = self
			.holders
			.borrow()
			.iter()
			.filter(|h| !h.primary)
			.map(|h| h.peer)
			.chain([self.me])
			.collect();
		assign.sort();
		assign.dedup();
		let mut s = self.sched.lock();
		let now = Instant::now();
		for p in &assign {
			s.progress.entry(*p).or_insert((0, now));
		}
		s.assign = assign;
		let mut small = Vec::new();
		for e in listing {
			match store.object_state(&e.cid, e.size)? {
				ObjectState::Complete => s.report.resumed_bytes += e.size,
				ObjectState::Absent if groups_of(e.size) == 1 => small.push((e.cid, e.size, 0)),
				ObjectState::Absent => {
					let id = s.push(Work::Outboard { cid: e.cid, size: e.size }, self.me);
					s.outboards.push(id);
					s.outboards_open += 1;
				},
				ObjectState::Partial { missing } => {
					s.report.resumed_bytes +=
						e.size - missing.iter().map(|g| group_len(e.size, *g)).sum::<u64>();
					let groups = missing.into_iter().map(|g| (e.cid, e.size, g)).collect();
					s.push_groups(groups);
				},
			}
		}
		s.push_groups(small);
		drop(s);
		self.wake.notify_waiters();
		self.done.notify_waiters();
		Ok(())
	}

	fn holder_listed(&self, peer: &PeerId) -> bool {
		self.holders.borrow().iter().any(|h| h.peer == *peer)
	}

	/// One peer's loop: connect, learn what it serves, fetch units from it one at a time.
	async fn worker(self: Arc<Self>, holder: Holder) {
		let peer = holder.peer;
		self.net.add_addresses(peer, holder.addrs.clone());
		let mut backoff = Duration::from_millis(100);
		// Since when this peer has been unreachable: a transient failure (say, a handshake lost
		// to a simultaneous dial) must not hand its whole share to the Primary.
		let mut down_since: Option<Instant> = None;
		while !self.finished.load(Ordering::SeqCst)
			&& self.holder_listed(&peer)
			&& !self.net.is_banned(&peer)
		{
			let opened = self.net.connect(&holder).await;
			if opened.is_ok() {
				down_since = None;
			}
			let result = match opened {
				Ok(session) => self.drive(session, holder.primary).await,
				Err(e) => Err(e),
			};
			match result {
				Ok(()) => return,
				Err(PeerError::Misbehaved(why)) => {
					self.net.inner.metrics.failures.with_label_values(&["misbehaved"]).inc();
					log::warn!(target: "sync-net", "segment {}: {peer} misbehaved: {why}", self.segment);
					self.net.penalise_invalid(peer);
					if self.net.is_banned(&peer) {
						self.sched.lock().report.banned.push(peer);
					}
					self.owner_lost(peer);
					return;
				},
				Err(e) => {
					let reason =
						if matches!(e, PeerError::Refused(_)) { "refused" } else { "transport" };
					self.net.inner.metrics.failures.with_label_values(&[reason]).inc();
					log::debug!(target: "sync-net", "segment {}: {peer}: {e}", self.segment);
					self.net.peer_failed(peer);
					if down_since.get_or_insert_with(Instant::now).elapsed()
						>= self.net.inner.config.primary_fallback
					{
						self.owner_lost(peer);
					}
					if !self.net.peer_usable(&peer) {
						// Resting: the sync loop asks it again only if the peer manager selects it.
						break;
					}
					tokio::time::sleep(backoff).await;
					backoff = (backoff * 2).min(Duration::from_secs(2));
				},
			}
		}
		self.owner_lost(peer);
	}

	/// Records a co-downloader's verified byte count; growth counts as progress.
	fn note_progress(&self, peer: PeerId, received: u64) {
		let mut s = self.sched.lock();
		let e = s.progress.entry(peer).or_insert((received, Instant::now()));
		if received > e.0 {
			*e = (received, Instant::now());
		}
	}

	/// Moves a gone peer's share to the pool anyone (including a Primary) may serve.
	fn owner_lost(&self, peer: PeerId) {
		let mut s = self.sched.lock();
		s.dead.insert(peer);
		if let Some(q) = s.owned.remove(&peer) {
			s.stale.extend(q);
		}
		drop(s);
		self.wake.notify_waiters();
	}

	async fn drive(self: &Arc<Self>, mut session: Session, primary: bool) -> Result<(), PeerError> {
		let peer = session.peer();
		let since = Instant::now();
		let mut given_up = false;
		let source = loop {
			if self.finished.load(Ordering::SeqCst) {
				return Ok(());
			}
			let PeerHead { complete, syncing, received, pinned } =
				session.head(self.segment).await?;
			self.note_progress(peer, received);
			let root = self.target.facts.root;
			// A pinned snapshot at the target serves like a complete copy.
			let complete = pinned.into_iter().find(|h| h.facts.root == root).or(complete);
			let source = match (complete, syncing) {
				(Some(h), _) if h.facts.root == root && primary => Some(Source::Primary),
				(Some(h), _) if h.facts.root == root => Some(Source::Complete),
				(_, Some(h)) if h.facts.root == root => Some(Source::Syncing),
				_ => None,
			};
			if let Some(s) = source {
				break s;
			}
			// Not (yet) able to serve this target: ask again shortly. Past the fallback its share
			// goes to the pool (a Replica starting at the same time stages its index in ms).
			if !given_up && since.elapsed() >= self.net.inner.config.primary_fallback {
				given_up = true;
				self.owner_lost(peer);
			}
			tokio::time::sleep(Duration::from_millis(100)).await;
		};
		self.sched.lock().dead.remove(&peer);
		let _guard = (source == Source::Complete).then(|| CompleteGuard::new(self));
		self.ensure_index(&mut session).await?;
		let retry = self.net.inner.config.missing_retry;
		let mut last_poll = Instant::now();
		loop {
			if self.finished.load(Ordering::SeqCst) || self.is_done() {
				return Ok(());
			}
			// A co-downloader is polled for its progress (see the module docs on Primary egress).
			if source == Source::Syncing && last_poll.elapsed() >= PROGRESS_POLL {
				last_poll = Instant::now();
				let h = session.head(self.segment).await?;
				self.note_progress(peer, h.received);
			}
			let notified = self.wake.notified();
			let Some(id) = self.pick(peer, source) else {
				tokio::select! {
					_ = notified => {},
					_ = tokio::time::sleep(retry) => {},
				}
				continue;
			};
			let work = std::mem::replace(
				&mut self.sched.lock().units[id].as_mut().expect("picked").work,
				Work::Groups(vec![]),
			);
			match work {
				Work::Outboard { cid, size } => match session.outboard(cid, size).await {
					Ok(ob) => {
						if let Err(e) = self.net.store().begin_object(&cid, size, &ob) {
							self.put_back(id, Work::Outboard { cid, size }, None);
							return Err(e.into());
						}
						self.net.peer_succeeded(peer);
						let mut s = self.sched.lock();
						s.report.outboard_bytes += ob.len() as u64;
						s.finish(id);
						s.outboards_open -= 1;
						let groups = (0..groups_of(size)).map(|g| (cid, size, g)).collect();
						s.push_groups(groups);
						drop(s);
						self.wake.notify_waiters();
					},
					Err(PeerError::Refused(ErrorCode::NotHeld)) => {
						self.put_back(id, Work::Outboard { cid, size }, Some(peer))
					},
					Err(e) => {
						self.put_back(id, Work::Outboard { cid, size }, None);
						return Err(e);
					},
				},
				Work::Groups(list) => self.fetch_groups(&mut session, id, list).await?,
			}
		}
	}

	async fn ensure_index(&self, session: &mut Session) -> Result<(), PeerError> {
		loop {
			let stage = {
				let mut st = self.index.lock();
				let now = *st;
				if now == IndexStage::Missing {
					*st = IndexStage::Fetching;
				}
				now
			};
			match stage {
				IndexStage::Staged => return Ok(()),
				IndexStage::Fetching => tokio::time::sleep(Duration::from_millis(20)).await,
				IndexStage::Missing => {
					self.net.inner.metrics.set_stage(self.segment, Stage::Index);
					let facts = self.target.facts;
					let result = session.index(self.segment, facts.root, facts.entries).await;
					let staged = match result {
						Ok(entries) => match self.net.store().stage_index(self.segment, entries) {
							Ok(()) => Ok(()),
							Err(StoreError::IndexMismatch { .. })
							| Err(StoreError::KeyTooLong(_)) => Err(PeerError::Misbehaved(
								"index does not hash to the target root".into(),
							)),
							Err(e) => Err(PeerError::Transport(format!("store: {e}"))),
						},
						Err(e) => Err(e),
					};
					if let Err(e) = staged {
						*self.index.lock() = IndexStage::Missing;
						return Err(e);
					}
					let (_, listing) = self
						.net
						.store()
						.staged_index(self.segment)
						.map_err(|e| PeerError::Transport(e.to_string()))?
						.expect("just staged");
					self.build_units(&listing).map_err(|e| PeerError::Transport(e.to_string()))?;
					*self.index.lock() = IndexStage::Staged;
					self.net.inner.metrics.set_stage(self.segment, Stage::Objects);
					self.done.notify_waiters();
					return Ok(());
				},
			}
		}
	}

	async fn fetch_groups(
		&self,
		session: &mut Session,
		id: UnitId,
		list: Vec<(Hash32, u64, u64)>,
	) -> Result<(), PeerError> {
		let peer = session.peer();
		// Contiguous runs per object become ranges.
		let mut ranges: Vec<GroupRange> = Vec::new();
		let mut sizes: Vec<u64> = Vec::new();
		for &(cid, size, g) in &list {
			match ranges.last_mut() {
				Some(r) if r.cid == cid && r.first + r.count as u64 == g => r.count += 1,
				_ => {
					ranges.push(GroupRange { cid, first: g, count: 1 });
					sizes.push(size);
				},
			}
		}
		let store = self.net.store().clone();
		let received = &self.net.inner.metrics.bytes_in;
		let mut got: HashSet<(Hash32, u64)> = HashSet::new();
		let mut missing = false;
		let mut bytes = 0u64;
		let mut rejected = 0u64;
		let result = session
			.groups(ranges.clone(), &sizes, |i, g, data| {
				let (cid, size) = (ranges[i].cid, sizes[i]);
				match data {
					Received::Data(d) => match store.write_group(&cid, size, g, d) {
						Ok(_) => {
							bytes += d.len() as u64;
							received.inc_by(d.len() as u64);
							got.insert((cid, g));
							Ok(())
						},
						Err(StoreError::BadData { .. }) => {
							rejected += 1;
							Err(PeerError::Misbehaved(format!(
								"group {g} of {} does not verify",
								sync_store::Cid(cid)
							)))
						},
						Err(e) => Err(e.into()),
					},
					Received::Missing => {
						missing = true;
						Ok(())
					},
				}
			})
			.await;
		{
			let mut s = self.sched.lock();
			if bytes > 0 {
				if let Some(p) = s.progress.get_mut(&peer) {
					p.1 = Instant::now();
				}
			}
			s.report.fetched_bytes += bytes;
			s.report.rejected_groups += rejected;
			let m = &self.net.inner.metrics;
			let outcome = match (&result, missing) {
				(Err(_), _) => "error",
				(Ok(()), true) => "missing",
				(Ok(()), false) => "ok",
			};
			m.requests.with_label_values(&["client", outcome]).inc();
			m.progress
				.with_label_values(&[&self.segment.to_string()])
				.set((s.report.fetched_bytes + s.report.resumed_bytes) as i64);
			*s.report.by_peer.entry(peer).or_insert(0) += bytes;
		}
		if result.is_ok() {
			self.net.peer_succeeded(peer);
		}
		let rest: Vec<_> = list.into_iter().filter(|(c, _, g)| !got.contains(&(*c, *g))).collect();
		if rest.is_empty() {
			self.sched.lock().finish(id);
			self.done.notify_waiters();
		} else {
			let miss = (result.is_ok() && missing).then_some(peer);
			self.put_back(id, Work::Groups(rest), miss);
		}
		result
	}

	/// Returns a unit to the pool; `missing_at` records that this peer did not have it.
	fn put_back(&self, id: UnitId, work: Work, missing_at: Option<PeerId>) {
		let mut s = self.sched.lock();
		let unit = s.units[id].as_mut().expect("in flight");
		unit.work = work;
		if let Some(p) = missing_at {
			unit.missing_at.insert(p, Instant::now());
		}
		let owner = unit.owner;
		let is_outboard = matches!(unit.work, Work::Outboard { .. });
		if is_outboard {
			s.outboards.push(id);
		} else if s.dead.contains(&owner) {
			s.stale.push(id);
		} else {
			s.owned.entry(owner).or_default().push(id);
		}
		drop(s);
		self.wake.notify_waiters();
	}

	/// Picks the next unit for `peer` (see the module docs for the Primary rule).
	fn pick(&self, peer: PeerId, source: Source) -> Option<UnitId> {
		let retry = self.net.inner.config.missing_retry;
		let fallback = self.net.inner.config.primary_fallback;
		let me = self.me;
		let others_complete = self.complete_replicas.load(Ordering::SeqCst) > 0;
		let mut s = self.sched.lock();
		let usable = |u: &Unit| u.missing_at.get(&peer).is_none_or(|t| t.elapsed() >= retry);
		if let Some(id) = s.take_from(Queue::Outboards, |u| usable(u)) {
			return Some(id);
		}
		match source {
			Source::Primary => {
				if others_complete {
					return s.take_from(Queue::Stale, |_| true);
				}
				// Own share first, then shares of gone owners, then (own share exhausted) ranges
				// other holders keep missing.
				s.take_from(Queue::Owned(me), |_| true)
					.or_else(|| s.take_from(Queue::Stale, |_| true))
					.or_else(|| {
						let quiet: Vec<PeerId> = s
							.owned
							.keys()
							.copied()
							.filter(|o| {
								s.progress.get(o).is_none_or(|(_, t)| t.elapsed() >= fallback)
							})
							.collect();
						quiet.into_iter().find_map(|o| s.take_from(Queue::Owned(o), |_| true))
					})
			},
			Source::Complete | Source::Syncing => {
				let mut owners: Vec<PeerId> =
					s.owned.keys().copied().filter(|o| *o != peer).collect();
				// This node's own share is for the Primary unless a complete Replica serves it.
				if source == Source::Syncing {
					owners.sort_by_key(|o| *o == me);
				}
				let order = std::iter::once(Queue::Owned(peer))
					.chain(std::iter::once(Queue::Stale))
					.chain(owners.into_iter().map(Queue::Owned));
				for q in order {
					if let Some(id) = s.take_from(q, |u| usable(u)) {
						return Some(id);
					}
				}
				None
			},
		}
	}
}

fn group_len(size: u64, g: u64) -> u64 {
	group_range(size, g).map(|(s, e)| e - s).unwrap_or(0)
}

#[derive(Clone, Copy)]
enum Queue {
	Outboards,
	Stale,
	Owned(PeerId),
}

impl Sched {
	fn push(&mut self, work: Work, owner: PeerId) -> UnitId {
		self.units.push(Some(Unit { work, owner, missing_at: HashMap::new() }));
		self.open += 1;
		self.units.len() - 1
	}

	/// Packs groups (across objects) into units of [`MAX_GROUPS_PER_REQUEST`] and files them
	/// under their owners. A short remainder waits for more groups until no outboard is pending,
	/// so small objects share requests instead of paying a round trip each.
	///
	/// Ownership is decided per aligned run of groups (`cid`, `g / MAX_GROUPS_PER_REQUEST`), never
	/// per packed unit, so every co-downloader agrees on who owns each group whatever order its
	/// outboards arrived in.
	fn push_groups(&mut self, groups: Vec<(Hash32, u64, u64)>) {
		let max = MAX_GROUPS_PER_REQUEST as usize;
		for grp in groups {
			let owner = self.assign
				[(unit_hash(&grp.0, grp.2 / max as u64) % self.assign.len() as u64) as usize];
			self.packs.entry(owner).or_default().push(grp);
		}
		let owners: Vec<PeerId> = self.packs.keys().copied().collect();
		for owner in owners {
			let pack = self.packs.get_mut(&owner).expect("listed");
			let full = if self.outboards_open == 0 { pack.len() } else { pack.len() / max * max };
			let ready: Vec<_> = pack.drain(..full).collect();
			for chunk in ready.chunks(max) {
				let id = self.push(Work::Groups(chunk.to_vec()), owner);
				if self.dead.contains(&owner) {
					self.stale.push(id);
				} else {
					self.owned.entry(owner).or_default().push(id);
				}
			}
		}
	}

	fn finish(&mut self, id: UnitId) {
		if self.units[id].take().is_some() {
			self.open -= 1;
		}
	}

	/// Takes a random unit from a queue that passes `ok` (a few random tries, then a scan).
	fn take_from(&mut self, q: Queue, ok: impl Fn(&Unit) -> bool) -> Option<UnitId> {
		let queue = match q {
			Queue::Outboards => &mut self.outboards,
			Queue::Stale => &mut self.stale,
			Queue::Owned(p) => self.owned.get_mut(&p)?,
		};
		if queue.is_empty() {
			return None;
		}
		let mut rng = rand::thread_rng();
		let units = &self.units;
		let pass = |id: &UnitId| units[*id].as_ref().is_some_and(&ok);
		let mut found = None;
		for _ in 0..8 {
			let i = rng.gen_range(0..queue.len());
			if pass(&queue[i]) {
				found = Some(i);
				break;
			}
		}
		if found.is_none() && queue.len() <= 256 {
			found = queue.iter().position(pass);
		}
		found.map(|i| queue.swap_remove(i))
	}
}

/// Stops the engine and its peer workers when the sync ends or its future is dropped.
struct Workers(HashMap<PeerId, JoinHandle<()>>, Arc<Engine>);
impl Drop for Workers {
	fn drop(&mut self) {
		self.1.stop();
		for w in self.0.values() {
			w.abort();
		}
	}
}

/// Counts connected complete non-Primary holders while it lives.
struct CompleteGuard(Arc<Engine>);
impl CompleteGuard {
	fn new(e: &Arc<Engine>) -> Self {
		e.complete_replicas.fetch_add(1, Ordering::SeqCst);
		CompleteGuard(e.clone())
	}
}
impl Drop for CompleteGuard {
	fn drop(&mut self) {
		self.0.complete_replicas.fetch_sub(1, Ordering::SeqCst);
		self.0.wake.notify_waiters();
	}
}
