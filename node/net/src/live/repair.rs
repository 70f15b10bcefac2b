//! Scrub and repair, on every holder (a Replica or the owning Primary alike: both serve).
//!
//! - The **scrub** re-verifies what this node stores against the CIDs (the store's
//!   `scrub_step`), a step at a time on the blocking pool, paced to
//!   [`NetConfig::scrub_rate`](crate::NetConfig) bytes per second; a pass starts at most every
//!   [`NetConfig::scrub_pass_interval`](crate::NetConfig). The store keeps the position (in
//!   memory, durably every 64 MiB and at the end of each pass), so the scrub resumes where it
//!   stopped, after a restart too. An object that fails is **quarantined** by the store in the
//!   same step: moved to `quarantine/` (an inline one removed from the database), no longer
//!   held, so the server answers `Missing` for its groups (and `NotHeld` for the outboard of an
//!   inline one), never its bytes, and no proof is built from it.
//! - The **repair** lists what the segments this node holds reference and the store lacks
//!   (`Store::missing_objects`: what the scrub quarantined, or the check at open found missing or
//!   damaged) and fetches each object again from the holders of a segment that references it —
//!   Replicas before Primaries, through the peer manager (never a banned peer, a cooling one only
//!   when nobody else is left) — verified like any transfer: the outboard against the CID (this
//!   node's own, if it still verifies), every group against the outboard, and held (served)
//!   again once durable.
//!
//! The decisions are pure — `Pacer`: how much to scrub next and when; `Repairs`: which object to
//! fetch next, from whom, and what each outcome does — with time passed in, unit-tested below;
//! `start` runs the thin driver, one task for each.
//!
//! # Blame
//! Damage found here is this node's problem: finding it penalises nobody (the holder the object
//! first came from verified, and was verified, long ago). A re-fetch blames its source exactly as
//! any transfer does: an outboard or a group that does not verify against the CID bans it
//! (`ban_on_invalid`), a transport failure counts towards its cooldown, `NotHeld` and `Busy` do
//! not. A failure of this node's own store is `PeerError::Local`: counted in
//! `sync_net_peer_failures_total{reason="local"}`, never held against the source, it only
//! postpones the object. A holder known by peer id alone that cannot be reached is not blamed
//! either (this node does not know where it is).
use crate::{
	snapshot::Holder,
	transfer::client::{PeerError, Received, Session},
	SyncNetwork,
};
use libp2p::PeerId;
use parking_lot::Mutex;
use std::{
	collections::{BTreeMap, BTreeSet, HashMap, HashSet},
	time::{Duration, Instant},
};
use sync_primitives::{
	commitment::{Hash32, GROUP_LEN},
	outboard::groups_of,
	SegmentId,
};
use sync_proto::{ErrorCode, GroupRange, MAX_GROUPS_PER_REQUEST};
use sync_store::{Cid, ObjectState, ScrubReport, StoreError, SCRUB_OBJECT_COST};
use tokio::{
	sync::{watch, Notify},
	task::JoinHandle,
};

/// Most bytes one scrub step reads: a step holds a blocking thread and the store's scrub
/// position, so it stays short (4 MiB is tens of milliseconds of BLAKE3).
const MAX_STEP_BYTES: u64 = 4 << 20;
/// How long the scrub rests after a pass that found nothing to check (an empty store), whatever
/// the pass interval says.
const EMPTY_PASS_WAIT: Duration = Duration::from_secs(1);
/// First wait before trying an object again (after every source was asked, none was usable, or
/// this node's store failed) and after a failed scrub step; doubled each time up to
/// [`MAX_BACKOFF`].
const RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two tries of an object, or two failing scrub steps.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// While objects wait for repair, the list of what is missing is rebuilt at least this often
/// (objects fetched meanwhile by a snapshot or a catch-up, or of segments no longer held, leave
/// it); it is rebuilt at once whenever the scrub quarantines something.
const RESCAN: Duration = Duration::from_secs(60);

/// What the held segments reference and the store lacks: object → (size, segments).
pub(crate) type MissingObjects = BTreeMap<Hash32, (u64, BTreeSet<SegmentId>)>;

/// `RETRY × 2^(n−1)`, at most [`MAX_BACKOFF`].
fn backoff(n: u32) -> Duration {
	RETRY.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// The scrub's pacing: the budget of each step and the wait after it, so the scrub reads at most
/// `rate` bytes per second on average and starts a pass at most every `pass_interval`.
pub(crate) struct Pacer {
	rate: u64,
	pass_interval: Duration,
	/// When the current pass started (its first step) and the objects it checked so far.
	pass: Option<(Instant, u64)>,
}

impl Pacer {
	/// Pacing at `rate` bytes per second (at least 1), a pass at most every `pass_interval`.
	pub(crate) fn new(rate: u64, pass_interval: Duration) -> Self {
		Pacer { rate: rate.max(1), pass_interval, pass: None }
	}

	/// The budget of the next step: a tenth of a second at the rate, at least one group, at most
	/// [`MAX_STEP_BYTES`]. (The store always checks a step's first unit, so no budget stalls the
	/// scrub; the wait after the step accounts for what it really read.)
	pub(crate) fn budget(&self) -> u64 {
		(self.rate / 10).clamp(GROUP_LEN, MAX_STEP_BYTES)
	}

	/// A step that started at `started` did `r`; how long to wait from `now` before the next:
	/// the rest of the time its work takes at the rate (bytes read, plus `SCRUB_OBJECT_COST` per
	/// object visited), and, when it ended a pass, the rest of the pass interval since that
	/// pass started (at least [`EMPTY_PASS_WAIT`] if the pass checked nothing).
	pub(crate) fn after_step(
		&mut self,
		r: &ScrubReport,
		started: Instant,
		now: Instant,
	) -> Duration {
		let pass = self.pass.get_or_insert((started, 0));
		pass.1 = pass.1.saturating_add(r.checked_objects);
		let (pass_started, checked) = *pass;
		let work = r
			.checked_bytes
			.saturating_add(r.checked_objects.saturating_mul(SCRUB_OBJECT_COST));
		let busy =
			Duration::try_from_secs_f64(work as f64 / self.rate as f64).unwrap_or(Duration::MAX);
		let mut wait = busy.saturating_sub(now.saturating_duration_since(started));
		if r.wrapped {
			self.pass = None;
			let rest =
				self.pass_interval.saturating_sub(now.saturating_duration_since(pass_started));
			wait = wait.max(rest);
			if checked == 0 {
				wait = wait.max(EMPTY_PASS_WAIT);
			}
		}
		wait
	}
}

/// What one fetch of an object came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
	/// Held again: every group verified, durable.
	Repaired,
	/// The source does not hold it (or not all of it): ask another; what verified is kept.
	Missing,
	/// The source failed (transport, refusal); the driver blames it as any transfer does.
	Failed,
	/// The source sent data that does not verify; the driver has penalised (banned) it.
	Invalid,
	/// This node's store failed: nobody's fault but ours. The object is tried again later, the
	/// source not counted as asked.
	Local,
}

/// An object to fetch again.
#[derive(Debug)]
struct Job {
	size: u64,
	/// The held segments that reference it: their holders are its sources.
	segments: BTreeSet<SegmentId>,
	/// Sources asked in the current round.
	asked: HashSet<PeerId>,
	/// Not tried again before this.
	not_before: Option<Instant>,
	/// Rounds that ended without the object (every source asked, or none usable).
	rounds: u32,
	/// Failures of this node's store in a row.
	local: u32,
}

/// A fetch the driver is to make: object `(cid, size)` from `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fetch {
	pub(crate) cid: Hash32,
	pub(crate) size: u64,
	pub(crate) from: Holder,
}

/// What the repair does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
	/// Fetch this.
	Fetch(Fetch),
	/// Nothing due now; the earliest time an object is due again (`None`: nothing to repair).
	Wait(Option<Instant>),
}

/// The repair's decisions: the objects to fetch again, whom to ask, and what an outcome does.
#[derive(Default)]
pub(crate) struct Repairs {
	jobs: BTreeMap<Hash32, Job>,
}

impl Repairs {
	/// Replaces the list with a new scan: every object the held segments reference that the
	/// store lacks, with its size and the segments that reference it. Objects no longer missing
	/// leave the list, new ones are due at once, the others keep their state (asked sources,
	/// backoff).
	pub(crate) fn set_missing(&mut self, missing: MissingObjects) {
		self.jobs.retain(|cid, _| missing.contains_key(cid));
		for (cid, (size, segments)) in missing {
			let job = self.jobs.entry(cid).or_insert_with(|| Job {
				size,
				segments: BTreeSet::new(),
				asked: HashSet::new(),
				not_before: None,
				rounds: 0,
				local: 0,
			});
			job.size = size;
			job.segments = segments;
		}
	}

	/// Objects waiting to be fetched again.
	pub(crate) fn pending(&self) -> usize {
		self.jobs.len()
	}

	/// The next fetch due at `now`: the due object with the lowest CID that has a source not
	/// asked in its current round. `sources(segment)` lists a segment's holders (this node
	/// excluded); `select` is the peer manager's choice among candidates (usable ones, best
	/// first; never banned ones). Non-Primary sources come first, so a Primary serves only what
	/// no Replica could. An object whose every source was asked in this round, or that has no
	/// usable source, starts a new round after a wait (doubling from [`RETRY`] up to
	/// [`MAX_BACKOFF`]).
	pub(crate) fn next(
		&mut self,
		now: Instant,
		sources: impl Fn(SegmentId) -> Vec<Holder>,
		mut select: impl FnMut(&[PeerId]) -> Vec<PeerId>,
	) -> Next {
		let mut earliest: Option<Instant> = None;
		for (cid, job) in self.jobs.iter_mut() {
			if let Some(t) = job.not_before {
				if now < t {
					earliest = Some(earliest.map_or(t, |e| e.min(t)));
					continue;
				}
				job.not_before = None;
			}
			let mut holders: Vec<Holder> = Vec::new();
			for segment in &job.segments {
				for h in sources(*segment) {
					if !holders.iter().any(|x| x.peer == h.peer) {
						holders.push(h);
					}
				}
			}
			let fresh: Vec<PeerId> =
				holders.iter().map(|h| h.peer).filter(|p| !job.asked.contains(p)).collect();
			let chosen = if fresh.is_empty() { Vec::new() } else { select(&fresh) };
			// Replicas before Primaries; otherwise in the peer manager's order (the first of
			// several equal keys is kept).
			let pick = chosen
				.iter()
				.filter(|p| fresh.contains(*p))
				.filter_map(|p| holders.iter().find(|h| h.peer == *p))
				.min_by_key(|h| h.primary);
			if let Some(h) = pick {
				return Next::Fetch(Fetch { cid: *cid, size: job.size, from: h.clone() });
			}
			job.asked.clear();
			job.rounds = job.rounds.saturating_add(1);
			let t = now + backoff(job.rounds);
			job.not_before = Some(t);
			earliest = Some(earliest.map_or(t, |e| e.min(t)));
		}
		Next::Wait(earliest)
	}

	/// Records what `fetch` came to at `now`.
	pub(crate) fn outcome(&mut self, fetch: &Fetch, outcome: Outcome, now: Instant) {
		if outcome == Outcome::Repaired {
			self.jobs.remove(&fetch.cid);
			return;
		}
		let Some(job) = self.jobs.get_mut(&fetch.cid) else { return };
		match outcome {
			Outcome::Local => {
				job.local = job.local.saturating_add(1);
				job.not_before = Some(now + backoff(job.local));
			},
			Outcome::Missing | Outcome::Failed | Outcome::Invalid => {
				job.local = 0;
				job.asked.insert(fetch.from.peer);
			},
			Outcome::Repaired => {},
		}
	}
}

/// Where repairs find their sources, and how they are woken: the component the network core
/// holds. Fed by `follow` and `sync_segment` (holder watches, with addresses), by
/// `set_known_peers` (peer ids) and `set_holders` (holders with addresses).
#[derive(Default)]
pub(crate) struct Repair {
	/// The newest holder watch given to `follow` / `sync_segment`, per segment.
	feeds: Mutex<HashMap<SegmentId, watch::Receiver<Vec<Holder>>>>,
	/// Holders the node listed (`set_known_peers`: without addresses; `set_holders`: with).
	listed: Mutex<HashMap<SegmentId, Vec<Holder>>>,
	/// Notified when objects may be missing now (the scrub quarantined some).
	wake: Notify,
}

impl Repair {
	/// The holders of `segment` follow `holders` (replacing an earlier watch).
	pub(crate) fn feed(&self, segment: SegmentId, holders: watch::Receiver<Vec<Holder>>) {
		self.feeds.lock().insert(segment, holders);
	}

	/// The node lists `peers` as the holders of `segment` (addresses unknown; an empty list
	/// forgets the segment).
	pub(crate) fn listed(&self, segment: SegmentId, peers: &[PeerId]) {
		let holders = peers
			.iter()
			.map(|p| Holder { peer: *p, addrs: Vec::new(), primary: false })
			.collect();
		self.set_holders(segment, holders);
	}

	/// The node lists `holders` as the holders of `segment` (an empty list forgets it).
	pub(crate) fn set_holders(&self, segment: SegmentId, holders: Vec<Holder>) {
		let mut listed = self.listed.lock();
		if holders.is_empty() {
			listed.remove(&segment);
		} else {
			listed.insert(segment, holders);
		}
	}

	/// Something may be missing now: the repair lists what is, at once.
	pub(crate) fn wake(&self) {
		self.wake.notify_one();
	}

	/// The holders of `segment` but `me`: the watched ones, then the listed ones not among them
	/// (a listed holder's addresses fill in a watched one's if it has none).
	pub(crate) fn sources(&self, segment: SegmentId, me: PeerId) -> Vec<Holder> {
		let mut out: Vec<Holder> = self
			.feeds
			.lock()
			.get(&segment)
			.map(|rx| rx.borrow().clone())
			.unwrap_or_default();
		if let Some(listed) = self.listed.lock().get(&segment) {
			for l in listed {
				match out.iter_mut().find(|h| h.peer == l.peer) {
					Some(h) if h.addrs.is_empty() => h.addrs = l.addrs.clone(),
					Some(_) => {},
					None => out.push(l.clone()),
				}
			}
		}
		out.retain(|h| h.peer != me);
		out
	}
}

/// Starts the repair, and the scrub unless [`NetConfig::scrub_rate`](crate::NetConfig) is 0,
/// on the current Tokio runtime.
pub(crate) fn start(net: &SyncNetwork) -> Vec<JoinHandle<()>> {
	let mut tasks = vec![tokio::spawn(repair_loop(net.clone()))];
	if net.config().scrub_rate > 0 {
		tasks.push(tokio::spawn(scrub_loop(net.clone())));
	}
	tasks
}

/// The scrub: a step on the blocking pool, its report counted, the repair woken if it
/// quarantined something, then the pacer's wait.
async fn scrub_loop(net: SyncNetwork) {
	let (rate, interval) = (net.config().scrub_rate, net.config().scrub_pass_interval);
	let mut pacer = Pacer::new(rate, interval);
	let mut errors = 0u32;
	loop {
		let store = net.store().clone();
		let budget = pacer.budget();
		let started = Instant::now();
		let step = tokio::task::spawn_blocking(move || store.scrub_step(budget)).await;
		let m = net.metrics();
		let wait = match step {
			Ok(Ok(r)) => {
				errors = 0;
				m.scrubbed_objects.inc_by(r.checked_objects);
				m.scrubbed_bytes.inc_by(r.checked_bytes);
				if !r.quarantined.is_empty() {
					m.corrupt_objects.inc_by(r.quarantined.len() as u64);
					for cid in &r.quarantined {
						log::warn!(target: "sync-net", "scrub: object {cid} does not match its CID; quarantined, fetching it again");
					}
					net.repair().wake();
				}
				pacer.after_step(&r, started, Instant::now())
			},
			Ok(Err(e)) => {
				errors = errors.saturating_add(1);
				m.scrub_errors.inc();
				log::warn!(target: "sync-net", "scrub: the store failed: {e}");
				backoff(errors)
			},
			Err(e) => {
				errors = errors.saturating_add(1);
				m.scrub_errors.inc();
				log::error!(target: "sync-net", "scrub: the step did not complete: {e}");
				backoff(errors)
			},
		};
		tokio::time::sleep(wait).await;
	}
}

/// The repair: lists what is missing (at start, when woken, and every [`RESCAN`] while
/// something is), fetches what is due, one object at a time, and waits.
async fn repair_loop(net: SyncNetwork) {
	let mut repairs = Repairs::default();
	let mut scan = true;
	let mut scanned = Instant::now();
	let me = net.peer_id();
	loop {
		if scan || (repairs.pending() > 0 && scanned.elapsed() >= RESCAN) {
			match missing(&net).await {
				Ok(m) => repairs.set_missing(m),
				Err(e) => log::warn!(target: "sync-net", "repair: listing missing objects: {e}"),
			}
			scan = false;
			scanned = Instant::now();
			net.metrics().repair_pending.set(repairs.pending() as i64);
		}
		let wait = loop {
			let next = repairs.next(
				Instant::now(),
				|segment| net.repair().sources(segment, me),
				|candidates| net.peers().select(candidates, Instant::now()),
			);
			match next {
				Next::Wait(until) => break until,
				Next::Fetch(f) => {
					let outcome = fetch(&net, &f).await;
					repairs.outcome(&f, outcome, Instant::now());
					// The gauge first: whoever sees the object counted as repaired sees it gone
					// from the pending ones too.
					net.metrics().repair_pending.set(repairs.pending() as i64);
					if outcome == Outcome::Repaired {
						net.metrics().repaired_objects.inc();
						log::info!(target: "sync-net", "repair: object {} fetched again from {}", Cid(f.cid), f.from.peer);
					}
				},
			}
		};
		let rest = match wait {
			Some(t) => t.saturating_duration_since(Instant::now()).min(RESCAN),
			None => RESCAN,
		};
		tokio::select! {
			_ = net.repair().wake.notified() => scan = true,
			_ = tokio::time::sleep(rest) => {},
		}
	}
}

/// What the held segments reference that the store lacks: object → (size, segments).
async fn missing(net: &SyncNetwork) -> Result<MissingObjects, String> {
	let store = net.store().clone();
	let listed = tokio::task::spawn_blocking(move || {
		let mut out: MissingObjects = BTreeMap::new();
		for segment in store.segments() {
			match store.missing_objects(segment) {
				Ok(objects) => {
					for (cid, size) in objects {
						out.entry(cid.0)
							.or_insert_with(|| (size, BTreeSet::new()))
							.1
							.insert(segment);
					}
				},
				// Forgotten meanwhile.
				Err(StoreError::UnknownSegment(_)) => {},
				Err(e) => return Err(e.to_string()),
			}
		}
		Ok(out)
	})
	.await;
	listed.map_err(|e| e.to_string())?
}

/// Fetches object `f.cid` again from `f.from` and says what that came to, the source blamed (or
/// not) as any transfer blames it (see the module docs).
async fn fetch(net: &SyncNetwork, f: &Fetch) -> Outcome {
	let session = match net.connect(&f.from, crate::transfer::client::StreamUse::Bulk).await {
		Ok(s) => s,
		// Listed by peer id alone and not connected: this node does not know where it is.
		Err(e @ PeerError::Transport(_)) if f.from.addrs.is_empty() => {
			log::debug!(target: "sync-net", "repair: cannot reach {} by its peer id: {e}", f.from.peer);
			return Outcome::Failed;
		},
		Err(e) => return account(net, &f.from, e),
	};
	match fetch_object(net, session, f).await {
		Ok(true) => {
			net.peer_succeeded(f.from.peer);
			Outcome::Repaired
		},
		Ok(false) => Outcome::Missing,
		Err(e) => account(net, &f.from, e),
	}
}

/// Counts a failed fetch and blames its source only for what is its doing.
fn account(net: &SyncNetwork, from: &Holder, e: PeerError) -> Outcome {
	let m = net.metrics();
	match e {
		PeerError::Refused(ErrorCode::NotHeld) => Outcome::Missing,
		PeerError::Local(why) => {
			m.failures.with_label_values(&["local"]).inc();
			log::warn!(target: "sync-net", "repair: this node's store failed (not {}'s doing): {why}", from.peer);
			Outcome::Local
		},
		PeerError::Misbehaved(why) => {
			m.failures.with_label_values(&["misbehaved"]).inc();
			log::warn!(target: "sync-net", "repair: {} sent data that does not verify: {why}", from.peer);
			net.penalise_invalid(from.peer);
			Outcome::Invalid
		},
		e => {
			let reason = if matches!(e, PeerError::Refused(_)) { "refused" } else { "transport" };
			m.failures.with_label_values(&[reason]).inc();
			log::debug!(target: "sync-net", "repair: {}: {e}", from.peer);
			if e.blames_peer() {
				net.peer_failed(from.peer);
			}
			Outcome::Failed
		},
	}
}

/// A store failure of this node.
fn local(e: StoreError) -> PeerError {
	PeerError::Local(format!("store: {e}"))
}

/// Fetches what the store lacks of `(f.cid, f.size)` over `session`: the outboard (unless this
/// node's still verifies), then the missing groups, `MAX_GROUPS_PER_REQUEST` at a time, each
/// verified by the store before it is written. `Ok(true)` once the object is held durably,
/// `Ok(false)` if the source lacks some of it (what verified is kept). Only the source's own
/// bytes that the store rejects (`BadData` on its outboard or groups) are its fault; every other
/// store error is [`PeerError::Local`].
async fn fetch_object(
	net: &SyncNetwork,
	mut session: Session,
	f: &Fetch,
) -> Result<bool, PeerError> {
	let store = net.store().clone();
	let (cid, size) = (f.cid, f.size);
	if store.has_object_sized(&cid, size).map_err(local)? {
		return Ok(true);
	}
	if groups_of(size) > 1 {
		// This node's outboard was verified on arrival and by the scrub (which drops one that
		// does not verify); the store checks it against the CID once more. If it rotted as well,
		// the source's is fetched.
		let begun = match store.outboard(&cid) {
			Ok(ours) => match store.begin_object(&cid, size, &ours) {
				Ok(()) => true,
				Err(StoreError::BadData { .. }) => false,
				Err(e) => return Err(local(e)),
			},
			Err(_) => false,
		};
		if !begun {
			let theirs = session.outboard(cid, size).await?;
			// The source's bytes: `BadData` is its fault, any other failure this store's.
			store.begin_object(&cid, size, &theirs).map_err(PeerError::from)?;
		}
	}
	let missing: Vec<u64> = match store.object_state(&cid, size).map_err(local)? {
		ObjectState::Complete => Vec::new(),
		ObjectState::Absent if groups_of(size) == 1 => vec![0],
		ObjectState::Absent => {
			return Err(PeerError::Local(format!("object {} has no partial to write to", Cid(cid))))
		},
		ObjectState::Partial { missing } => missing,
	};
	let received = net.metrics().bytes_in.clone();
	for batch in missing.chunks(MAX_GROUPS_PER_REQUEST as usize) {
		let ranges = runs(cid, size, batch);
		let mut absent = false;
		session
			.groups(ranges, |_, g, data| match data {
				Received::Data(d) => {
					// Verified against the outboard (or the CID) before it is written.
					store.write_group(&cid, size, g, d).map_err(PeerError::from)?;
					received.inc_by(d.len() as u64);
					Ok(())
				},
				Received::Missing => {
					absent = true;
					Ok(())
				},
			})
			.await?;
		if absent {
			return Ok(false);
		}
	}
	// Held once durable: the finisher has committed a large object, the batch a small one.
	let held = tokio::task::spawn_blocking(move || {
		store.flush().and_then(|()| store.has_object_sized(&cid, size))
	})
	.await
	.map_err(|e| PeerError::Local(format!("store task: {e}")))?
	.map_err(local)?;
	if held {
		Ok(true)
	} else {
		Err(PeerError::Local(format!("object {} not held after every group verified", Cid(cid))))
	}
}

/// Contiguous runs of `groups` (ascending) of object `(cid, size)`, as request ranges.
fn runs(cid: Hash32, size: u64, groups: &[u64]) -> Vec<GroupRange> {
	let mut out: Vec<GroupRange> = Vec::new();
	for &g in groups {
		match out.last_mut() {
			Some(r) if r.first + r.count as u64 == g => r.count += 1,
			_ => out.push(GroupRange { cid, size, first: g, count: 1 }),
		}
	}
	out
}

#[cfg(test)]
mod tests {
	use super::*;

	const S: Duration = Duration::from_secs(1);

	fn report(bytes: u64, objects: u64, wrapped: bool) -> ScrubReport {
		ScrubReport { checked_objects: objects, checked_bytes: bytes, quarantined: vec![], wrapped }
	}

	fn holder(primary: bool) -> Holder {
		Holder { peer: PeerId::random(), addrs: vec![], primary }
	}

	fn one(cid: u8, size: u64, segments: &[SegmentId]) -> MissingObjects {
		[([cid; 32], (size, segments.iter().copied().collect()))].into_iter().collect()
	}

	/// Everyone usable, in the order given.
	fn all(c: &[PeerId]) -> Vec<PeerId> {
		c.to_vec()
	}

	#[test]
	fn the_scrub_reads_at_its_rate_and_starts_a_pass_per_interval() {
		let mut p = Pacer::new(10 << 20, Duration::from_secs(3600));
		assert_eq!(p.budget(), 1 << 20, "a tenth of a second per step");
		assert_eq!(Pacer::new(1, S).budget(), GROUP_LEN, "at least a group");
		assert_eq!(Pacer::new(u64::MAX, S).budget(), MAX_STEP_BYTES);
		let t0 = Instant::now();
		// 1 MiB read in 20 ms at 10 MiB/s: 80 ms more.
		let w = p.after_step(&report(1 << 20, 0, false), t0, t0 + Duration::from_millis(20));
		assert_eq!(w, Duration::from_millis(80));
		// Objects count too: 4096 objects × 256 bytes = 1 MiB of work.
		let w = p.after_step(&report(0, 4096, false), t0, t0);
		assert_eq!(w, Duration::from_millis(100));
		// A step slower than the rate waits nothing.
		assert_eq!(p.after_step(&report(1 << 20, 1, false), t0, t0 + S), Duration::ZERO);
		// The pass (started at t0) ends after 10 s: the next starts an hour after t0.
		let end = t0 + Duration::from_secs(10);
		let w = p.after_step(&report(0, 1, true), end, end);
		assert_eq!(w, Duration::from_secs(3590));
		// A pass that took longer than the interval is followed at once.
		let mut p = Pacer::new(10 << 20, S);
		let w = p.after_step(&report(0, 1, true), t0, t0 + Duration::from_secs(5));
		assert_eq!(w, Duration::ZERO);
		// An empty store is looked at again after a second, not in a busy loop.
		let mut p = Pacer::new(10 << 20, Duration::ZERO);
		assert_eq!(p.after_step(&report(0, 0, true), t0, t0), EMPTY_PASS_WAIT);
	}

	#[test]
	fn replicas_are_asked_before_the_primary_and_every_source_once_per_round() {
		let (primary, r1, r2) = (holder(true), holder(false), holder(false));
		let holders = vec![primary.clone(), r1.clone(), r2.clone()];
		let sources = |_: SegmentId| holders.clone();
		let mut q = Repairs::default();
		q.set_missing(one(1, 100, &[7]));
		assert_eq!(q.pending(), 1);
		let t0 = Instant::now();
		let mut asked = Vec::new();
		for outcome in [Outcome::Missing, Outcome::Failed, Outcome::Invalid] {
			let Next::Fetch(f) = q.next(t0, sources, all) else { panic!("a source is left") };
			assert_eq!((f.cid, f.size), ([1; 32], 100));
			asked.push(f.from.clone());
			q.outcome(&f, outcome, t0);
		}
		assert_eq!(asked, vec![r1, r2, primary], "Replicas first, the Primary last");
		// Every source asked: the next round waits a second, then asks again.
		assert_eq!(q.next(t0, sources, all), Next::Wait(Some(t0 + S)));
		assert_eq!(q.next(t0 + S / 2, sources, all), Next::Wait(Some(t0 + S)));
		let Next::Fetch(f) = q.next(t0 + S, sources, all) else { panic!("a new round") };
		q.outcome(&f, Outcome::Repaired, t0 + S);
		assert_eq!(q.pending(), 0);
		assert_eq!(q.next(t0 + S, sources, all), Next::Wait(None));
	}

	#[test]
	fn a_local_failure_postpones_the_object_without_counting_the_source() {
		let r = holder(false);
		let holders = vec![r.clone()];
		let sources = |_: SegmentId| holders.clone();
		let mut q = Repairs::default();
		q.set_missing(one(2, 1 << 20, &[1]));
		let t0 = Instant::now();
		let mut t = t0;
		for wait in [1, 2, 4, 8] {
			let Next::Fetch(f) = q.next(t, sources, all) else { panic!("due") };
			assert_eq!(f.from, r, "the same source: it was not at fault");
			q.outcome(&f, Outcome::Local, t);
			let due = t + Duration::from_secs(wait);
			assert_eq!(q.next(t, sources, all), Next::Wait(Some(due)), "backs off, doubling");
			t = due;
		}
	}

	#[test]
	fn no_usable_source_waits_and_a_rescan_drops_what_is_no_longer_missing() {
		let banned = holder(false);
		let holders = vec![banned.clone()];
		let sources = |_: SegmentId| holders.clone();
		let mut q = Repairs::default();
		let mut missing = one(3, 10, &[1]);
		missing.extend(one(4, 20, &[1, 2]));
		q.set_missing(missing);
		let t0 = Instant::now();
		// The peer manager refuses the only source (banned): nothing is fetched, both wait.
		assert_eq!(q.next(t0, sources, |_: &[PeerId]| Vec::new()), Next::Wait(Some(t0 + S)));
		// No holders at all: the same.
		let mut q2 = Repairs::default();
		q2.set_missing(one(5, 10, &[9]));
		assert_eq!(q2.next(t0, |_| Vec::new(), all), Next::Wait(Some(t0 + S)));
		// Object 3 was fetched by other means meanwhile: the rescan drops it, keeps 4's backoff.
		q.set_missing(one(4, 20, &[2]));
		assert_eq!(q.pending(), 1);
		assert_eq!(q.next(t0, sources, all), Next::Wait(Some(t0 + S)));
		let Next::Fetch(f) = q.next(t0 + S, sources, all) else { panic!("due again") };
		assert_eq!(f.cid, [4; 32]);
	}

	#[test]
	fn sources_merge_watched_and_listed_holders_without_this_node() {
		let repair = Repair::default();
		let (me, a, b) = (holder(false), holder(true), holder(false));
		let (_tx, rx) = watch::channel(vec![me.clone(), a.clone()]);
		repair.feed(1, rx);
		let b_with_addr =
			Holder { addrs: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()], ..b.clone() };
		repair.listed(1, &[a.peer, b.peer]);
		assert_eq!(repair.sources(1, me.peer), vec![a.clone(), b.clone()]);
		repair.set_holders(1, vec![b_with_addr.clone()]);
		assert_eq!(repair.sources(1, me.peer), vec![a, b_with_addr]);
		repair.listed(1, &[]);
		assert!(repair.sources(2, me.peer).is_empty());
	}

	#[test]
	fn runs_are_contiguous_ranges() {
		let r = runs([1; 32], 200_000, &[0, 1, 2, 5, 6, 9]);
		assert!(r.iter().all(|r| r.size == 200_000));
		let got: Vec<(u64, u32)> = r.iter().map(|r| (r.first, r.count)).collect();
		assert_eq!(got, vec![(0, 3), (5, 2), (9, 1)]);
		assert!(runs([1; 32], 200_000, &[]).is_empty());
	}
}
