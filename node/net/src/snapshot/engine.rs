//! The snapshot engine: executes the scheduler's decisions ([`super::sched`]) over the network
//! and the store. One sync loop selects peers through the peer manager and runs one worker per
//! selected peer; a worker connects, learns what its peer serves, fetches the index if nobody
//! has, then asks the scheduler for units one at a time and hands each back with its outcome.
use super::{
	sched::{
		Completed, IndexPages, IndexStep, Lease, Next, Outcome, Sched, SchedConfig, Source, Work,
	},
	Holder, SyncError, SyncReport, LANES, STALL_TIMEOUT,
};
use crate::{
	metrics::Stage,
	transfer::client::{Abort, PeerError, PeerHead, Received, Session, StreamPermit, StreamUse},
	SyncNetwork,
};
use libp2p::PeerId;
use parking_lot::Mutex;
use std::{
	collections::{HashMap, HashSet},
	sync::{
		atomic::{AtomicBool, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};
use sync_primitives::{
	commitment::{Entry, Hash32},
	SegmentId,
};
use sync_proto::{ErrorCode, GroupRange};
use sync_store::{Head, StoreError};
use tokio::{sync::watch, sync::Notify, task::JoinHandle};

/// How often an idle worker asks a co-downloader how far it got.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

/// The slowest a worker asks a holder that does not serve the target (yet) what it serves.
const SOURCE_POLL_MAX: Duration = Duration::from_secs(2);

/// How long a lane the scheduler has nothing for keeps its stream: past this it gives the
/// stream back to the peer's budget (and the peer its answer slot) and opens a new one for its
/// next unit. Long enough that the pauses of a running sync (an answer being stored, a
/// `Missing` being retried every `missing_retry`) keep their stream; short against the
/// server's idle timeout (30 s) and the tail of a sync, when most sources wait for the last
/// units.
const LANE_IDLE: Duration = Duration::from_millis(500);

struct Engine {
	net: SyncNetwork,
	segment: SegmentId,
	target: Head,
	me: PeerId,
	sched: Mutex<Sched>,
	/// The index fetched so far (another source continues where one stopped).
	pages: Mutex<IndexPages>,
	report: Mutex<SyncReport>,
	/// Why the target cannot be synced at all, once that is known (ends the sync).
	invalid: Mutex<Option<String>>,
	finished: AtomicBool,
	wake: Notify,
	done: Notify,
	holders: watch::Receiver<Vec<Holder>>,
}

/// Syncs `segment` to `target` from the holders in `holders` (which may change while the
/// sync runs: holders that leave are failed over, holders that join are used). Resumes a
/// transfer left by an earlier run or a crash: verified data is not fetched again.
pub(crate) async fn sync(
	net: &SyncNetwork,
	segment: SegmentId,
	target: Head,
	mut holders: watch::Receiver<Vec<Holder>>,
) -> Result<SyncReport, SyncError> {
	let started = Instant::now();
	let store = net.store().clone();
	if store.head(segment) == Some(target) {
		return Ok(SyncReport {
			head: Some(target),
			elapsed: started.elapsed(),
			..Default::default()
		});
	}
	let transfer = store.begin_transfer(segment, target)?;
	net.metrics().set_stage(segment, Stage::Head);
	let cfg = net.config();
	let me = net.peer_id();
	let engine = Arc::new(Engine {
		net: net.clone(),
		segment,
		target,
		me,
		sched: Mutex::new(Sched::new(SchedConfig {
			me,
			missing_retry: cfg.missing_retry,
			primary_fallback: cfg.primary_fallback,
			primary_fallback_after: cfg.primary_fallback_after,
			primary_fallback_rate: cfg.primary_fallback_rate,
			target_bytes: target.facts.bytes,
		})),
		pages: Mutex::new(IndexPages::default()),
		report: Mutex::new(SyncReport::default()),
		invalid: Mutex::new(None),
		finished: AtomicBool::new(false),
		wake: Notify::new(),
		done: Notify::new(),
		holders: holders.clone(),
	});
	if transfer.index_staged {
		let (_, listing) = store.staged_index(segment)?.ok_or(StoreError::NoTransfer(segment))?;
		engine.build_units(&listing)?;
		net.metrics().set_stage(segment, Stage::Objects);
	}
	let mut workers = Workers(HashMap::new(), engine.clone());
	let mut idle_since: Option<Instant> = None;
	loop {
		let mut current = holders.borrow_and_update().clone();
		current.retain(|h| h.peer != engine.me);
		let peers: Vec<PeerId> = current.iter().map(|h| h.peer).collect();
		// The peer manager picks whom to use: usable (not banned, not cooling down),
		// trusted first, reserved ones promoted below the hard low cap, at most `concurrency`.
		let selected = net.peers().select(&peers, Instant::now());
		// A source demoted for this target is not asked again (and keeps no worker alive).
		let demoted: HashSet<PeerId> =
			peers.iter().copied().filter(|p| engine.sched.lock().is_demoted(p)).collect();
		for h in current
			.iter()
			.filter(|h| selected.contains(&h.peer) && !demoted.contains(&h.peer))
		{
			if workers.0.get(&h.peer).is_none_or(|w| w.is_finished()) {
				workers.0.insert(h.peer, tokio::spawn(engine.clone().worker(h.clone())));
			}
		}
		if let Some(why) = engine.invalid.lock().clone() {
			engine.stop();
			return Err(SyncError::InvalidTarget(why));
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
	net.metrics().set_stage(segment, Stage::Finish);
	let finished = store.finish_transfer(segment);
	net.metrics().set_stage(segment, Stage::Idle);
	let head = finished?;
	net.provide(segment);
	let mut report = std::mem::take(&mut *engine.report.lock());
	report.head = Some(head);
	report.elapsed = started.elapsed();
	Ok(report)
}

impl Engine {
	fn is_done(&self) -> bool {
		self.sched.lock().is_done()
	}

	fn stop(&self) {
		self.finished.store(true, Ordering::SeqCst);
		self.wake.notify_waiters();
	}

	/// Hands the staged index to the scheduler, with what the store already holds of each object.
	fn build_units(&self, listing: &[Entry]) -> Result<(), StoreError> {
		let store = self.net.store();
		let mut objects = Vec::with_capacity(listing.len());
		// (An index staged by an older build was not checked for this.)
		if let Some(e) = listing.iter().find(|e| e.size > sync_proto::MAX_OBJECT_BYTES) {
			return Err(StoreError::ObjectTooLarge(e.size));
		}
		for e in listing {
			objects.push((e.cid, e.size, store.object_state(&e.cid, e.size)?));
		}
		let owners: Vec<PeerId> =
			self.holders.borrow().iter().filter(|h| !h.primary).map(|h| h.peer).collect();
		let resumed = self.sched.lock().index_staged(owners, objects, Instant::now());
		let held = {
			let mut r = self.report.lock();
			r.resumed_bytes += resumed;
			r.resumed_bytes + r.fetched_bytes
		};
		// What `Head` reports as this transfer's progress starts from what this target has,
		// not from an earlier transfer's count.
		self.net
			.metrics()
			.progress
			.with_label_values(&[&self.segment.to_string()])
			.set(held as i64);
		self.wake.notify_waiters();
		self.done.notify_waiters();
		Ok(())
	}

	fn holder_listed(&self, peer: &PeerId) -> bool {
		self.holders.borrow().iter().any(|h| h.peer == *peer)
	}

	/// Moves a gone peer's share to the pool and wakes the workers.
	fn owner_lost(&self, peer: PeerId) {
		self.sched.lock().owner_lost(peer);
		self.wake.notify_waiters();
	}

	/// A source was demoted for this target (see the module docs on stalls): counted, and the
	/// others (the Primary among them) woken to take over its share.
	fn on_demoted(&self, peer: PeerId) {
		log::info!(target: "sync-net", "segment {}: {peer} answers missing for the target it advertises; demoted for seq {}", self.segment, self.target.seq);
		self.net.metrics().demoted.inc();
		self.report.lock().demoted.push(peer);
		self.wake.notify_waiters();
		self.done.notify_waiters();
	}

	/// Gives a share to the pool if its owner has been away since `since` past the fallback.
	fn release_if_overdue(&self, peer: PeerId, since: Instant) -> bool {
		let released = self.sched.lock().release_if_overdue(peer, since, Instant::now());
		if released {
			self.wake.notify_waiters();
		}
		released
	}

	/// One peer's loop: connect, learn what it serves, fetch units from it one at a time.
	async fn worker(self: Arc<Self>, holder: Holder) {
		let peer = holder.peer;
		self.net.add_addresses(peer, holder.addrs.clone());
		let mut backoff = Duration::from_millis(100);
		// Since when this peer has been unreachable: a transient failure (say, a handshake lost
		// to a simultaneous dial) must not hand its whole share to the Primary.
		let mut down_since: Option<Instant> = None;
		let within = self.net.config().connect_timeout;
		while !self.finished.load(Ordering::SeqCst)
			&& self.holder_listed(&peer)
			&& !self.net.is_banned(&peer)
			&& !self.sched.lock().is_demoted(&peer)
		{
			// A stream of the peer's budget (this node's other sessions to it may hold them all
			// for a while: that is not the peer being down).
			let Some(permit) = self.net.stream_permit(peer, StreamUse::Bulk, within).await else {
				continue;
			};
			let opened = self.net.connect_with(&holder, permit).await;
			if opened.is_ok() {
				down_since = None;
			}
			let result = match opened {
				Ok(session) => self.drive(session, &holder).await,
				Err(e) => Err(e),
			};
			match result {
				Ok(()) => return,
				Err(PeerError::Misbehaved(why)) => {
					self.misbehaved(peer, &why);
					return;
				},
				Err(e) => {
					let reason = match e {
						PeerError::Refused(_) => "refused",
						PeerError::Local(_) => "local",
						_ => "transport",
					};
					self.net.metrics().failures.with_label_values(&[reason]).inc();
					log::debug!(target: "sync-net", "segment {}: {peer}: {e}", self.segment);
					if e.blames_peer() {
						self.net.peer_failed(peer);
					}
					self.release_if_overdue(peer, *down_since.get_or_insert_with(Instant::now));
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

	/// Asks the peer what it serves until it serves the target; returns what kind of source it
	/// is (`None`: the sync finished meanwhile).
	async fn source(
		&self,
		session: &mut Session,
		primary: bool,
	) -> Result<Option<Source>, PeerError> {
		let peer = session.peer();
		let since = Instant::now();
		let mut given_up = false;
		let mut poll = PROGRESS_POLL;
		loop {
			if self.finished.load(Ordering::SeqCst) {
				return Ok(None);
			}
			let PeerHead { complete, syncing, received, pinned } =
				session.head(self.segment).await?;
			let root = self.target.facts.root;
			// `received` is the progress of the peer's transfer of this segment: progress on
			// this target only if that transfer is to it.
			if syncing.is_some_and(|h| h.facts.root == root) {
				self.sched.lock().note_progress(peer, received, Instant::now());
			}
			// A pinned snapshot at the target serves like a complete copy.
			let complete = pinned.into_iter().find(|h| h.facts.root == root).or(complete);
			let source = match (complete, syncing) {
				(Some(h), _) if h.facts.root == root && primary => Some(Source::Primary),
				(Some(h), _) if h.facts.root == root => Some(Source::Complete),
				(_, Some(h)) if h.facts.root == root => Some(Source::Syncing),
				_ => None,
			};
			if source.is_some() {
				return Ok(source);
			}
			// Not (yet) able to serve this target: ask again shortly. Past the fallback its share
			// goes to the pool (a Replica starting at the same time stages its index in ms), and
			// it is asked less and less often (up to every `SOURCE_POLL_MAX`): a holder still on an
			// older state may take long to get here.
			if !given_up {
				given_up = self.release_if_overdue(peer, since);
			}
			tokio::time::sleep(poll).await;
			if given_up {
				poll = (poll * 2).min(SOURCE_POLL_MAX);
			}
		}
	}

	/// Runs the source's lanes on `session` (the first lane's) until the sync is done or the
	/// peer is demoted. `Ok(())` also when a lane's misbehaviour ended them: that verdict is
	/// given (the peer penalised) by the lane that found it, at once, not after the other
	/// lane's request in flight has ended (see [`Engine::misbehaved`]).
	async fn drive(
		self: &Arc<Self>,
		mut session: Session,
		holder: &Holder,
	) -> Result<(), PeerError> {
		let peer = session.peer();
		let Some(source) = self.source(&mut session, holder.primary).await? else { return Ok(()) };
		self.sched.lock().serving(peer, source);
		let _guard = (source == Source::Complete).then(|| CompleteGuard::new(self, peer));
		self.ensure_index(&mut session).await?;
		// A second lane on another stream of the peer's budget, so one request is always on its
		// way while the other's answer is being stored (see `LANES`). It ends when the first
		// lane does; its own transport failure ends only itself; misbehaviour ends both.
		let stop = AtomicBool::new(false);
		let judged = AtomicBool::new(false);
		// The verdict also ends the other lane's request in flight.
		let abort = Arc::new(Abort::default());
		session.abort_with(abort.clone());
		let run = |first: bool, session: Option<Session>| {
			let (stop, judged, abort) = (&stop, &judged, &abort);
			async move {
				let r = self.lane(holder, source, session, first, stop, abort).await;
				if let Err(PeerError::Misbehaved(why)) = &r {
					stop.store(true, Ordering::SeqCst);
					if !judged.swap(true, Ordering::SeqCst) {
						abort.abort();
						self.misbehaved(peer, why);
					}
					return Ok(());
				}
				if first {
					stop.store(true, Ordering::SeqCst);
					if r.is_err() {
						// The worker retries or gives the peer's share away: the other lane's
						// request does not hold that up until its own deadline.
						abort.abort();
					}
					return r;
				}
				Ok(())
			}
		};
		let lanes = async {
			if LANES < 2 {
				return Ok(());
			}
			run(false, None).await
		};
		let (a, _) = tokio::join!(run(true, Some(session)), lanes);
		if judged.load(Ordering::SeqCst) {
			return Ok(());
		}
		a
	}

	/// The verdict on a source that broke the protocol or sent data that does not verify:
	/// penalised (banned past the peer manager's threshold, which disconnects it and so ends
	/// its other lane's request at once) and its share handed on.
	fn misbehaved(&self, peer: PeerId, why: &str) {
		self.net.metrics().failures.with_label_values(&["misbehaved"]).inc();
		log::warn!(target: "sync-net", "segment {}: {peer} misbehaved: {why}", self.segment);
		self.net.penalise_invalid(peer);
		if self.net.is_banned(&peer) {
			self.report.lock().banned.push(peer);
		}
		self.owner_lost(peer);
	}

	/// One lane of a source: fetches units on its own session to the peer until the sync is
	/// done, the peer is demoted, or `stop`. The first lane starts with the worker's session
	/// and polls a co-downloader's progress; the others start with none (see `LANES`).
	///
	/// A lane takes its unit *before* it opens a stream, and gives its stream back once the
	/// scheduler has had nothing for it for [`LANE_IDLE`], so an idle source holds no stream of
	/// the peer's budget (nor one of the peer's answer slots) — except the first lane of a
	/// co-downloader, which uses its stream every [`PROGRESS_POLL`] to follow its progress (what
	/// keeps that downloader's share away from the Primary): the first lane on a bulk stream
	/// (waiting for one, without a unit, if this node's other sessions hold them all), the
	/// others on a spare one that is free at once (else the unit goes back untouched and the
	/// lane ends). A lane's transport failure or refusal ends it (the first lane's is returned,
	/// for the worker's accounting of the peer); misbehaviour is returned by either.
	async fn lane(
		&self,
		holder: &Holder,
		source: Source,
		mut session: Option<Session>,
		first: bool,
		stop: &AtomicBool,
		abort: &Arc<Abort>,
	) -> Result<(), PeerError> {
		let peer = holder.peer;
		let retry = self.net.config().missing_retry;
		let none = HashSet::new();
		let mut last_poll = Instant::now();
		let mut idle_since: Option<Instant> = None;
		loop {
			if self.finished.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
				return Ok(());
			}
			// A co-downloader is polled for its progress (see the module docs on Primary egress).
			if first && source == Source::Syncing && last_poll.elapsed() >= PROGRESS_POLL {
				last_poll = Instant::now();
				if let Some(s) = session.as_mut() {
					let h = s.head(self.segment).await?;
					// Only a transfer to this target counts (see `source`).
					if h.syncing.is_some_and(|t| t.facts.root == self.target.facts.root) {
						self.sched.lock().note_progress(peer, h.received, Instant::now());
					}
					idle_since = None;
				}
			}
			let notified = self.wake.notified();
			let next = self.sched.lock().next(peer, source, Instant::now());
			let lease = match next {
				Next::Done | Next::Demoted => return Ok(()),
				Next::Wait => {
					let now = Instant::now();
					if now.duration_since(*idle_since.get_or_insert(now)) >= LANE_IDLE {
						// Idle: the stream goes back to the peer's budget.
						session = None;
					}
					tokio::select! {
						_ = notified => {},
						_ = tokio::time::sleep(retry) => {},
					}
					continue;
				},
				Next::Fetch(lease) => lease,
			};
			idle_since = None;
			if session.is_none() {
				let kind = if first { StreamUse::Bulk } else { StreamUse::Spare };
				let Some(permit) = self.net.stream_permit(peer, kind, Duration::ZERO).await else {
					// No free stream: the unit goes back untouched, nobody blamed.
					self.complete(peer, lease, Outcome::Failed(&none));
					if !first {
						return Ok(());
					}
					// The first lane waits for one, holding no unit meanwhile.
					let within = self.net.config().connect_timeout;
					if let Some(permit) = self.net.stream_permit(peer, kind, within).await {
						session = Some(self.open_lane(holder, permit, abort).await?);
					}
					continue;
				};
				match self.open_lane(holder, permit, abort).await {
					Ok(s) => session = Some(s),
					Err(e) => {
						self.complete(peer, lease, Outcome::Failed(&none));
						return if first { Err(e) } else { Ok(()) };
					},
				}
			}
			let Some(s) = session.as_mut() else {
				self.complete(peer, lease, Outcome::Failed(&none));
				continue;
			};
			let fetched = match lease.work().clone() {
				Work::Outboard { cid, size } => self.fetch_outboard(s, lease, cid, size).await,
				Work::Groups(list) => self.fetch_groups(s, lease, list).await,
			};
			match fetched {
				Ok(()) => {},
				Err(e) if first || matches!(e, PeerError::Misbehaved(_)) => return Err(e),
				Err(e) => {
					log::debug!(target: "sync-net", "segment {}: {peer}: second lane: {e}", self.segment);
					return Ok(());
				},
			}
		}
	}

	/// A lane's session on `permit`, ended by the source's `abort`.
	async fn open_lane(
		&self,
		holder: &Holder,
		permit: StreamPermit,
		abort: &Arc<Abort>,
	) -> Result<Session, PeerError> {
		let mut session = self.net.connect_with(holder, permit).await?;
		session.abort_with(abort.clone());
		Ok(session)
	}

	/// Hands a lease back to the scheduler and wakes whoever waits on it.
	fn complete(&self, peer: PeerId, lease: Lease, outcome: Outcome<'_>) {
		let (completed, demoted) = {
			let mut s = self.sched.lock();
			let before = s.is_demoted(&peer);
			let completed = s.complete(peer, lease, outcome, Instant::now());
			(completed, !before && s.is_demoted(&peer))
		};
		if demoted {
			self.on_demoted(peer);
		}
		self.wake.notify_waiters();
		if completed == Completed::Finished {
			self.done.notify_waiters();
		}
	}

	async fn fetch_outboard(
		&self,
		session: &mut Session,
		lease: Lease,
		cid: Hash32,
		size: u64,
	) -> Result<(), PeerError> {
		let peer = session.peer();
		let none = HashSet::new();
		match session.outboard(cid, size).await {
			Ok(ob) => {
				if let Err(e) = self.net.store().begin_object(&cid, size, &ob) {
					self.complete(peer, lease, Outcome::Failed(&none));
					return Err(e.into());
				}
				self.net.peer_succeeded(peer);
				self.report.lock().outboard_bytes += ob.len() as u64;
				self.complete(peer, lease, Outcome::Done);
				Ok(())
			},
			Err(PeerError::Refused(ErrorCode::NotHeld)) => {
				self.complete(peer, lease, Outcome::Missing(&none));
				Ok(())
			},
			Err(e) => {
				self.complete(peer, lease, Outcome::Failed(&none));
				Err(e)
			},
		}
	}

	async fn ensure_index(&self, session: &mut Session) -> Result<(), PeerError> {
		loop {
			if self.sched.lock().is_demoted(&session.peer()) {
				return Ok(());
			}
			let step = self.sched.lock().index_step();
			match step {
				IndexStep::Ready => return Ok(()),
				IndexStep::Wait => tokio::time::sleep(Duration::from_millis(20)).await,
				IndexStep::Fetch => match self.fetch_index(session).await {
					Ok(true) => return Ok(()),
					// Assembled from several sources and not verifying: nobody to blame; fetched
					// again, whole, from one source.
					Ok(false) => self.sched.lock().index_failed(),
					Err(e) => {
						self.sched.lock().index_failed();
						return Err(e);
					},
				},
			}
		}
	}

	/// Fetches the index (continuing from the pages other sources delivered), stages it (the
	/// store verifies it against the target root) and hands it to the scheduler. `Ok(false)`:
	/// the assembled index did not verify and nobody could be blamed for it.
	async fn fetch_index(&self, session: &mut Session) -> Result<bool, PeerError> {
		self.net.metrics().set_stage(self.segment, Stage::Index);
		let peer = session.peer();
		let facts = self.target.facts;
		let mut entries = self.pages.lock().resume();
		let before = entries.len();
		let fetched =
			session.index_into(self.segment, facts.root, facts.entries, &mut entries).await;
		self.pages.lock().fetched(peer, before, entries);
		if let Err(e) = fetched {
			if matches!(e, PeerError::Misbehaved(_)) {
				self.pages.lock().discard();
			}
			if matches!(e, PeerError::Refused(ErrorCode::NotHeld)) {
				// A holder that advertised the target and does not have its index.
				let demoted = self.sched.lock().index_refused(peer);
				if demoted {
					self.on_demoted(peer);
				}
			}
			return Err(e);
		}
		let entries = self.pages.lock().take();
		match self.net.store().stage_index(self.segment, entries) {
			Ok(()) => {},
			Err(StoreError::IndexMismatch { .. }) | Err(StoreError::KeyTooLong(_)) => {
				let sole = self.pages.lock().mismatch();
				return match sole {
					Some(p) if p == peer => {
						Err(PeerError::Misbehaved("index does not hash to the target root".into()))
					},
					Some(p) => {
						// Every page came from an earlier source: that one sent it.
						log::warn!(target: "sync-net", "segment {}: the index {p} sent does not hash to the target root", self.segment);
						self.net.penalise_invalid(p);
						if self.net.is_banned(&p) {
							self.report.lock().banned.push(p);
						}
						self.owner_lost(p);
						Ok(false)
					},
					None => {
						log::info!(target: "sync-net", "segment {}: an index from several holders does not verify; fetching it whole from one", self.segment);
						Ok(false)
					},
				};
			},
			Err(e @ StoreError::ObjectTooLarge(_)) => {
				// It hashes to the committed root: nobody sent anything wrong, and no holder
				// can serve it. The sync ends (see `SyncError::InvalidTarget`).
				log::warn!(target: "sync-net", "segment {}: target seq {} cannot be synced: {e}", self.segment, self.target.seq);
				*self.invalid.lock() = Some(e.to_string());
				self.stop();
				self.done.notify_waiters();
				return Ok(false);
			},
			Err(e) => return Err(PeerError::Local(format!("store: {e}"))),
		}
		let (_, listing) = self
			.net
			.store()
			.staged_index(self.segment)
			.map_err(|e| PeerError::Local(e.to_string()))?
			.ok_or_else(|| PeerError::Local("store: the staged index is gone".into()))?;
		self.build_units(&listing).map_err(|e| PeerError::Local(e.to_string()))?;
		self.net.metrics().set_stage(self.segment, Stage::Objects);
		Ok(true)
	}

	async fn fetch_groups(
		&self,
		session: &mut Session,
		lease: Lease,
		list: Vec<(Hash32, u64, u64)>,
	) -> Result<(), PeerError> {
		let peer = session.peer();
		// Contiguous runs per object become ranges.
		let mut ranges: Vec<GroupRange> = Vec::new();
		for &(cid, size, g) in &list {
			match ranges.last_mut() {
				Some(r) if r.cid == cid && r.first + r.count as u64 == g => r.count += 1,
				_ => ranges.push(GroupRange { cid, size, first: g, count: 1 }),
			}
		}
		let store = self.net.store().clone();
		let received = &self.net.metrics().bytes_in;
		let mut got: HashSet<(Hash32, u64)> = HashSet::new();
		let mut missing = false;
		let mut bytes = 0u64;
		let mut rejected = 0u64;
		let result = session
			.groups(ranges.clone(), |i, g, data| {
				let (cid, size) = (ranges[i].cid, ranges[i].size);
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
		// `NotHeld` to a whole request is every group missing (an honest answer, never a failure
		// of the peer; from a holder that advertised the target it counts towards demotion).
		let result = match result {
			Err(PeerError::Refused(ErrorCode::NotHeld)) => {
				missing = true;
				Ok(())
			},
			other => other,
		};
		{
			let mut r = self.report.lock();
			r.fetched_bytes += bytes;
			r.rejected_groups += rejected;
			let m = self.net.metrics();
			let outcome = match (&result, missing) {
				(Err(_), _) => "error",
				(Ok(()), true) => "missing",
				(Ok(()), false) => "ok",
			};
			m.requests.with_label_values(&["client", outcome]).inc();
			m.progress
				.with_label_values(&[&self.segment.to_string()])
				.set((r.fetched_bytes + r.resumed_bytes) as i64);
			*r.by_peer.entry(peer).or_insert(0) += bytes;
		}
		// A success is data delivered, not an answer that has none.
		if result.is_ok() && !got.is_empty() {
			self.net.peer_succeeded(peer);
		}
		let outcome = match (&result, missing) {
			(Ok(()), false) => Outcome::Done,
			(Ok(()), true) => Outcome::Missing(&got),
			(Err(_), _) => Outcome::Failed(&got),
		};
		self.complete(peer, lease, outcome);
		result
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

/// Counts a connected complete non-Primary holder in the scheduler while it lives.
struct CompleteGuard(Arc<Engine>, PeerId);
impl CompleteGuard {
	fn new(e: &Arc<Engine>, peer: PeerId) -> Self {
		e.sched.lock().complete_source(peer, true);
		CompleteGuard(e.clone(), peer)
	}
}
impl Drop for CompleteGuard {
	fn drop(&mut self) {
		self.0.sched.lock().complete_source(self.1, false);
		self.0.wake.notify_waiters();
	}
}
