//! The snapshot scheduler: which work unit to ask of which peer, and what becomes of a unit
//! once its request ended. It is pure — state in, decisions out: time is passed in, randomness
//! is seeded, there is no I/O and no lock — so every rule below is tested in milliseconds. The
//! engine ([`super::engine`]) executes the decisions, as polkadot-sdk's sync strategies return
//! actions that its `engine.rs` runs.
//!
//! A *unit* is an outboard, or up to [`MAX_GROUPS_PER_REQUEST`] chunk groups. A peer asking for
//! work gets a [`Lease`] (the unit's work moves into it); the lease comes back exactly once
//! through [`Sched::complete`] with an [`Outcome`], so "a unit picked twice" or "a unit returned
//! that is not in flight" cannot be expressed, and no lookup needs an `expect`.
//!
//! Ownership (see the module docs of [`super`] on Primary egress): every group belongs to one
//! of the non-Primary holders (and this node), by a hash of its aligned run over the sorted
//! peer ids, so every co-downloader computes the same split.
//!
//! Stall-proofing (what a peer claims decides whom to ask, never that a sync waits):
//! - a Primary or complete source that answers `Missing` / `NotHeld` for groups or the index of
//!   the target [`DEMOTE_AFTER`] times is *demoted* for this target: never picked again, no
//!   longer counted as a complete source, its share goes to the pool (a co-downloader's
//!   "missing" is only what it has not fetched yet and never counts; demotion is no ban and no
//!   cooldown). An outboard refusal only marks that outboard for `missing_retry`: outboards are
//!   taken by every source first, the Primary included, so refusing them holds nothing up;
//! - a co-downloader's progress counter counts only up to the target's size, and only postpones
//!   the Primary taking its share until it has delivered nothing to this node for
//!   `primary_fallback_after`;
//! - the Primary fallback has a time bound whatever peers claim or do: a Primary serves any
//!   share, whatever the others advertise, once no non-Primary source has delivered anything
//!   for `primary_fallback_after`, and also for the window of `primary_fallback_after` after one
//!   in which the non-Primary sources together delivered verified bytes at less than
//!   `primary_fallback_rate` (`below_floor`; windows run from the staging of the index). So a
//!   holder that claims the complete target and drip-feeds a group every few seconds holds the
//!   Primary back for one window at most, and a sync progresses at the floor rate at least
//!   (from the replicas, or from the Primary too). The Primary is one more source then: the
//!   others keep their work. Honest replicas deliver far above the floor, so in the normal case
//!   the Primary serves no more than its turn, however many replicas sync;
//! - the index may be continued by another source where the last one stopped
//!   ([`IndexPages`]); an index assembled from several sources that does not verify blames
//!   nobody and is fetched again whole from one, so a liar is found and no honest peer blamed.
use super::DEMOTE_AFTER;
use libp2p::PeerId;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::{
	collections::{HashMap, HashSet},
	time::{Duration, Instant},
};
use sync_primitives::{
	commitment::{Entry, Hash32},
	outboard::{group_range, groups_of, outboard_len},
};
use sync_proto::MAX_GROUPS_PER_REQUEST;
use sync_store::ObjectState;

/// One chunk group: (object CID, object size, group index).
pub(crate) type Group = (Hash32, u64, u64);

/// Index of a unit in the scheduler's table.
type UnitId = usize;

/// What the scheduler needs to know of the node and its configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SchedConfig {
	/// This node (it owns a share like every other non-Primary downloader).
	pub me: PeerId,
	/// How long a unit stays untried at a peer that said it does not have it
	/// ([`NetConfig::missing_retry`](crate::NetConfig)).
	pub missing_retry: Duration,
	/// How long an owner may be gone or quiet before a Primary serves its share
	/// ([`NetConfig::primary_fallback`](crate::NetConfig)).
	pub primary_fallback: Duration,
	/// How long without a verified byte from any non-Primary source (or from one owner) before
	/// a Primary serves any share (that owner's), whatever replicas advertise; also the window
	/// of the rate floor ([`NetConfig::primary_fallback_after`](crate::NetConfig)).
	pub primary_fallback_after: Duration,
	/// The rate floor, in bytes per second: a window of `primary_fallback_after` in which the
	/// non-Primary sources together delivered less lets a Primary serve any share during the
	/// next window ([`NetConfig::primary_fallback_rate`](crate::NetConfig)).
	pub primary_fallback_rate: u64,
	/// Bytes of the target (the chain's facts): a progress counter beyond it is no progress on
	/// this target.
	pub target_bytes: u64,
}

/// What a unit asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Work {
	/// The outboard of a multi-group object; its groups become work once it is stored.
	Outboard { cid: Hash32, size: u64 },
	/// Chunk groups, possibly of several objects.
	Groups(Vec<Group>),
}

/// A unit handed to one peer. Not `Clone`: it goes back to the scheduler exactly once.
#[must_use = "a lease must be completed, or its unit is never fetched"]
#[derive(Debug)]
pub(crate) struct Lease {
	id: UnitId,
	work: Work,
}

impl Lease {
	/// What to ask for.
	pub(crate) fn work(&self) -> &Work {
		&self.work
	}
}

/// What kind of source a peer is for this sync.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
	/// A Primary with the target: asked only in turn (see the module docs on Primary egress).
	Primary,
	/// A non-Primary holder with the complete target (or a pin of it).
	Complete,
	/// A co-downloader syncing to the same target with a verified index.
	Syncing,
}

/// What a peer should do next.
#[derive(Debug)]
pub(crate) enum Next {
	/// Fetch this unit.
	Fetch(Lease),
	/// Nothing for this peer now: wait for a wake-up (or the missing-retry delay) and ask again.
	Wait,
	/// The index is staged and every unit is done.
	Done,
	/// This peer is demoted for this target (it answered `Missing` / `NotHeld` for data it
	/// claimed to have, see the module docs): stop asking it.
	Demoted,
}

/// How the request for a lease ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome<'a> {
	/// Everything asked was received and stored.
	Done,
	/// The request completed, the groups in the set were stored, and the peer said it does not
	/// have the rest (or the outboard): not asked of that peer again for `missing_retry`.
	Missing(&'a HashSet<(Hash32, u64)>),
	/// The request failed (transport, timeout, refusal, bad data, store failure) after the
	/// groups in the set were stored: the rest goes back to its queue.
	Failed(&'a HashSet<(Hash32, u64)>),
}

/// What [`Sched::complete`] did with a lease.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Completed {
	/// The unit is done.
	Finished,
	/// What was not received went back to a queue.
	Requeued,
}

/// Where the index stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum IndexStage {
	Missing,
	Fetching,
	Staged,
}

/// What a peer's worker should do about the index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IndexStep {
	/// Fetch and stage it (this worker claimed it; report [`Sched::index_failed`] or
	/// [`Sched::index_staged`]).
	Fetch,
	/// Another worker is fetching it.
	Wait,
	/// Staged: fetch objects.
	Ready,
}

struct Unit {
	/// `None` while leased.
	work: Option<Work>,
	owner: PeerId,
	missing_at: HashMap<PeerId, Instant>,
}

#[derive(Clone, Copy, Debug)]
enum Queue {
	Outboards,
	Stale,
	Owned(PeerId),
}

/// The scheduler's state (see the module docs).
pub(crate) struct Sched {
	cfg: SchedConfig,
	index: IndexStage,
	units: Vec<Option<Unit>>,
	/// Units not finished (leased or queued).
	open: usize,
	outboards: Vec<UnitId>,
	outboards_open: usize,
	owned: HashMap<PeerId, Vec<UnitId>>,
	/// Units of gone owners: anyone, including a Primary, may serve them.
	stale: Vec<UnitId>,
	dead: HashSet<PeerId>,
	/// Sorted owners (non-Primary holders and this node) the split is computed over.
	assign: Vec<PeerId>,
	/// Groups waiting to fill a unit, per owner.
	packs: HashMap<PeerId, Vec<Group>>,
	/// Each co-downloader's last reported verified bytes, and when that number last grew.
	progress: HashMap<PeerId, (u64, Instant)>,
	/// Complete non-Primary holders connected now (while any is, the Primary is not asked, up
	/// to the time bound).
	complete: HashSet<PeerId>,
	/// What kind of source each peer last served as (the chain's holders only).
	kinds: HashMap<PeerId, Source>,
	/// `Missing` / `NotHeld` answers of Primary and complete sources for this target.
	misses: HashMap<PeerId, u32>,
	/// Sources demoted for this target.
	demoted: HashSet<PeerId>,
	/// When each peer last delivered verified bytes to this node (owners: from the staging on).
	delivered_at: HashMap<PeerId, Instant>,
	/// When a non-Primary source last delivered verified bytes (from the staging on).
	replica_delivered: Option<Instant>,
	/// The rate floor's current window (from the staging on): when it started, and the verified
	/// bytes non-Primary sources delivered in it.
	window: Option<(Instant, u64)>,
	/// Whether the non-Primary sources delivered below the rate floor over the last closed
	/// window (see `below_floor`).
	replicas_slow: bool,
	rng: StdRng,
}

impl Sched {
	/// A scheduler waiting for the index.
	pub(crate) fn new(cfg: SchedConfig) -> Self {
		Self::with_rng(cfg, StdRng::from_entropy())
	}

	/// A scheduler with a given random source (tests use a fixed seed).
	pub(crate) fn with_rng(cfg: SchedConfig, rng: StdRng) -> Self {
		Sched {
			cfg,
			index: IndexStage::Missing,
			units: Vec::new(),
			open: 0,
			outboards: Vec::new(),
			outboards_open: 0,
			owned: HashMap::new(),
			stale: Vec::new(),
			dead: HashSet::new(),
			assign: Vec::new(),
			packs: HashMap::new(),
			progress: HashMap::new(),
			complete: HashSet::new(),
			kinds: HashMap::new(),
			misses: HashMap::new(),
			demoted: HashSet::new(),
			delivered_at: HashMap::new(),
			replica_delivered: None,
			window: None,
			replicas_slow: false,
			rng,
		}
	}

	/// Whether the index is staged and every unit is done.
	pub(crate) fn is_done(&self) -> bool {
		self.index == IndexStage::Staged && self.open == 0
	}

	/// Claims the index fetch, or says to wait for it, or that it is there.
	pub(crate) fn index_step(&mut self) -> IndexStep {
		match self.index {
			IndexStage::Missing => {
				self.index = IndexStage::Fetching;
				IndexStep::Fetch
			},
			IndexStage::Fetching => IndexStep::Wait,
			IndexStage::Staged => IndexStep::Ready,
		}
	}

	/// The claimed index fetch failed: the next worker tries.
	pub(crate) fn index_failed(&mut self) {
		if self.index == IndexStage::Fetching {
			self.index = IndexStage::Missing;
		}
	}

	/// The index is staged: creates the work for every object the store does not have yet.
	/// `owners` are the non-Primary holders (this node is added); `objects` are the staged
	/// index's objects with what the store holds of each. Returns the bytes already held.
	/// Calling it again (the index cannot be staged twice) changes nothing and returns 0.
	pub(crate) fn index_staged(
		&mut self,
		owners: impl IntoIterator<Item = PeerId>,
		objects: impl IntoIterator<Item = (Hash32, u64, ObjectState)>,
		now: Instant,
	) -> u64 {
		if self.index == IndexStage::Staged {
			return 0;
		}
		self.index = IndexStage::Staged;
		let mut assign: Vec<PeerId> = owners.into_iter().chain([self.cfg.me]).collect();
		assign.sort();
		assign.dedup();
		for p in &assign {
			self.progress.entry(*p).or_insert((0, now));
			self.delivered_at.entry(*p).or_insert(now);
		}
		self.replica_delivered = Some(now);
		self.window = Some((now, 0));
		self.assign = assign;
		let mut resumed = 0;
		let mut small = Vec::new();
		for (cid, size, state) in objects {
			match state {
				ObjectState::Complete => resumed += size,
				ObjectState::Absent if groups_of(size) == 1 => small.push((cid, size, 0)),
				ObjectState::Absent => {
					let id = self.push(Work::Outboard { cid, size }, self.cfg.me);
					self.outboards.push(id);
					self.outboards_open += 1;
				},
				ObjectState::Partial { missing } => {
					resumed += size - missing.iter().map(|g| group_len(size, *g)).sum::<u64>();
					self.push_groups(missing.into_iter().map(|g| (cid, size, g)).collect());
				},
			}
		}
		self.push_groups(small);
		resumed
	}

	/// The next unit for `peer`, a source of kind `source` (the Primary rule is in the module
	/// docs of [`super`]).
	pub(crate) fn next(&mut self, peer: PeerId, source: Source, now: Instant) -> Next {
		if self.is_done() {
			return Next::Done;
		}
		if self.demoted.contains(&peer) {
			return Next::Demoted;
		}
		self.kinds.insert(peer, source);
		match self.pick(peer, source, now) {
			Some(id) => match self.units.get_mut(id).and_then(Option::as_mut) {
				Some(unit) => match unit.work.take() {
					Some(work) => Next::Fetch(Lease { id, work }),
					None => Next::Wait,
				},
				None => Next::Wait,
			},
			None => Next::Wait,
		}
	}

	/// Returns a lease after its request by `peer` ended with `outcome`.
	pub(crate) fn complete(
		&mut self,
		peer: PeerId,
		lease: Lease,
		outcome: Outcome<'_>,
		now: Instant,
	) -> Completed {
		let Lease { id, work } = lease;
		// Groups only: the Primary takes outboards (and any source the index) whatever others
		// advertise, so refusing those delays nothing; groups of an owned share wait for a
		// complete source. Counted before the unit goes back: a demoted owner's go to the pool.
		if matches!((&work, outcome), (Work::Groups(_), Outcome::Missing(_))) {
			self.missed(peer);
		}
		let (rest, missing) = match (work, outcome) {
			(Work::Outboard { cid, size }, Outcome::Done) => {
				self.delivered(peer, outboard_bytes(size), now);
				self.finish(id);
				self.outboards_open = self.outboards_open.saturating_sub(1);
				self.push_groups((0..groups_of(size)).map(|g| (cid, size, g)).collect());
				return Completed::Finished;
			},
			(w @ Work::Outboard { .. }, Outcome::Missing(_)) => (w, true),
			(w @ Work::Outboard { .. }, Outcome::Failed(_)) => (w, false),
			(Work::Groups(list), Outcome::Done) => {
				if !list.is_empty() {
					self.delivered(peer, bytes_of(&list), now);
				}
				(Work::Groups(Vec::new()), false)
			},
			(Work::Groups(list), Outcome::Missing(got) | Outcome::Failed(got)) => {
				let (received, rest): (Vec<Group>, Vec<Group>) =
					list.into_iter().partition(|(c, _, g)| got.contains(&(*c, *g)));
				if !got.is_empty() {
					self.delivered(peer, bytes_of(&received), now);
				}
				let missing = matches!(outcome, Outcome::Missing(_));
				(Work::Groups(rest), missing)
			},
		};
		if matches!(&rest, Work::Groups(l) if l.is_empty()) {
			self.finish(id);
			return Completed::Finished;
		}
		self.put_back(id, rest, missing.then_some((peer, now)));
		Completed::Requeued
	}

	/// `bytes` verified bytes arrived from `peer`: it is making progress (and, unless it is a
	/// Primary, so are the replicas as a whole, at a rate the floor judges).
	fn delivered(&mut self, peer: PeerId, bytes: u64, now: Instant) {
		if let Some(p) = self.progress.get_mut(&peer) {
			p.1 = now;
		}
		self.delivered_at.insert(peer, now);
		if self.kinds.get(&peer) != Some(&Source::Primary) {
			self.replica_delivered = Some(now);
			self.roll_window(now);
			if let Some((_, in_window)) = self.window.as_mut() {
				*in_window = in_window.saturating_add(bytes);
			}
		}
	}

	/// Closes the rate floor's window once it is `primary_fallback_after` old (or older: then
	/// the rate is over all of it): its verdict (`below_floor`) holds until the next window
	/// closes, and a new window starts at `now`.
	fn roll_window(&mut self, now: Instant) {
		let Some((start, bytes)) = self.window else { return };
		let elapsed = now.saturating_duration_since(start);
		if elapsed >= self.cfg.primary_fallback_after {
			self.replicas_slow = below_floor(bytes, elapsed, self.cfg.primary_fallback_rate);
			self.window = Some((now, 0));
		}
	}

	/// A Primary or complete source answered `Missing` / `NotHeld` for groups or the index of
	/// the target; at [`DEMOTE_AFTER`] such answers it is demoted for this target (see the module
	/// docs). Returns whether it was demoted now.
	fn missed(&mut self, peer: PeerId) -> bool {
		let claims_all = matches!(self.kinds.get(&peer), Some(Source::Primary | Source::Complete));
		if !claims_all || self.demoted.contains(&peer) {
			return false;
		}
		let n = self.misses.entry(peer).or_insert(0);
		*n += 1;
		if *n < DEMOTE_AFTER {
			return false;
		}
		self.demoted.insert(peer);
		self.complete.remove(&peer);
		self.owner_lost(peer);
		true
	}

	/// `peer` answered `NotHeld` to the index of the target; counts like a `Missing` (see
	/// [`Sched::complete`]). Returns whether it was demoted now.
	pub(crate) fn index_refused(&mut self, peer: PeerId) -> bool {
		self.missed(peer)
	}

	/// Whether `peer` is demoted for this target.
	pub(crate) fn is_demoted(&self, peer: &PeerId) -> bool {
		self.demoted.contains(peer)
	}

	/// Records a co-downloader's verified byte count of *this* target (the engine passes only
	/// counters of peers syncing to it); growth counts as progress, up to the target's size.
	pub(crate) fn note_progress(&mut self, peer: PeerId, received: u64, now: Instant) {
		if received > self.cfg.target_bytes {
			return;
		}
		let e = self.progress.entry(peer).or_insert((received, now));
		if received > e.0 {
			*e = (received, now);
		}
	}

	/// `peer` serves the target as `source`: its share is its own again (unless demoted).
	pub(crate) fn serving(&mut self, peer: PeerId, source: Source) {
		if !self.demoted.contains(&peer) {
			self.dead.remove(&peer);
		}
		self.kinds.insert(peer, source);
	}

	/// Moves a gone peer's share to the pool anyone (including a Primary) may serve.
	pub(crate) fn owner_lost(&mut self, peer: PeerId) {
		self.dead.insert(peer);
		if let Some(q) = self.owned.remove(&peer) {
			self.stale.extend(q);
		}
	}

	/// `peer` has been unreachable, or unable to serve the target, since `since`: past the
	/// Primary fallback its share goes to the pool. Returns whether it did.
	pub(crate) fn release_if_overdue(
		&mut self,
		peer: PeerId,
		since: Instant,
		now: Instant,
	) -> bool {
		if now.saturating_duration_since(since) >= self.cfg.primary_fallback {
			self.owner_lost(peer);
			true
		} else {
			false
		}
	}

	/// A complete non-Primary holder connected (`true`) or left (`false`); a demoted one does
	/// not count.
	pub(crate) fn complete_source(&mut self, peer: PeerId, connected: bool) {
		if connected && !self.demoted.contains(&peer) {
			self.complete.insert(peer);
		} else {
			self.complete.remove(&peer);
		}
	}

	/// The time bound of the Primary fallback: no non-Primary source delivered anything for
	/// `primary_fallback_after`, or they delivered below the rate floor over the last closed
	/// window (see the module docs; `Sched::roll_window` closes windows).
	fn replicas_overdue(&self, now: Instant) -> bool {
		self.replicas_slow
			|| self.replica_delivered.is_some_and(|t| {
				now.saturating_duration_since(t) >= self.cfg.primary_fallback_after
			})
	}

	/// Whether owner `o` is quiet: its progress counter did not grow for `primary_fallback`, or
	/// it delivered nothing to this node for `primary_fallback_after` (however its counter grew).
	fn is_quiet(&self, o: &PeerId, now: Instant) -> bool {
		let since = |t: &Instant| now.saturating_duration_since(*t);
		let counter =
			self.progress.get(o).is_none_or(|(_, t)| since(t) >= self.cfg.primary_fallback);
		let silent = self
			.delivered_at
			.get(o)
			.is_none_or(|t| since(t) >= self.cfg.primary_fallback_after);
		counter || silent
	}

	fn pick(&mut self, peer: PeerId, source: Source, now: Instant) -> Option<UnitId> {
		let retry = self.cfg.missing_retry;
		let me = self.cfg.me;
		let usable = move |u: &Unit| {
			u.missing_at
				.get(&peer)
				.is_none_or(|t| now.saturating_duration_since(*t) >= retry)
		};
		if let Some(id) = self.take_from(Queue::Outboards, usable) {
			return Some(id);
		}
		match source {
			Source::Primary => {
				// The time bound: with no replica delivering (or too slowly), what replicas
				// claim (complete copies, growing counters) no longer holds the Primary back.
				self.roll_window(now);
				let overdue = self.replicas_overdue(now);
				if !self.complete.is_empty() && !overdue {
					return self.take_from(Queue::Stale, |_| true);
				}
				// Own share first, then shares of gone owners, then (own share exhausted) shares
				// of owners that made no progress for the fallback.
				if let Some(id) = self
					.take_from(Queue::Owned(me), |_| true)
					.or_else(|| self.take_from(Queue::Stale, |_| true))
				{
					return Some(id);
				}
				let mut quiet: Vec<PeerId> = self
					.owned
					.keys()
					.copied()
					.filter(|o| overdue || self.is_quiet(o, now))
					.collect();
				quiet.sort();
				quiet.into_iter().find_map(|o| self.take_from(Queue::Owned(o), |_| true))
			},
			Source::Complete | Source::Syncing => {
				let mut owners: Vec<PeerId> =
					self.owned.keys().copied().filter(|o| *o != peer).collect();
				owners.sort();
				// This node's own share is for the Primary unless a complete Replica serves it.
				if source == Source::Syncing {
					owners.sort_by_key(|o| *o == me);
				}
				let order = [Queue::Owned(peer), Queue::Stale]
					.into_iter()
					.chain(owners.into_iter().map(Queue::Owned));
				for q in order {
					if let Some(id) = self.take_from(q, usable) {
						return Some(id);
					}
				}
				None
			},
		}
	}

	fn push(&mut self, work: Work, owner: PeerId) -> UnitId {
		self.units
			.push(Some(Unit { work: Some(work), owner, missing_at: HashMap::new() }));
		self.open += 1;
		self.units.len() - 1
	}

	/// The owner of a group: a hash of its aligned run over the sorted owners (this node when
	/// no owner is known, which `index_staged` rules out).
	fn owner_of(&self, (cid, _, g): &Group) -> PeerId {
		let n = self.assign.len() as u64;
		if n == 0 {
			return self.cfg.me;
		}
		let i = unit_hash(cid, g / MAX_GROUPS_PER_REQUEST as u64) % n;
		self.assign.get(i as usize).copied().unwrap_or(self.cfg.me)
	}

	/// Packs groups (across objects) into units of [`MAX_GROUPS_PER_REQUEST`] and files them
	/// under their owners. A short remainder waits for more groups until no outboard is pending,
	/// so small objects share requests instead of paying a round trip each.
	///
	/// Ownership is decided per aligned run of groups (`cid`, `g / MAX_GROUPS_PER_REQUEST`), never
	/// per packed unit, so every co-downloader agrees on who owns each group whatever order its
	/// outboards arrived in.
	fn push_groups(&mut self, groups: Vec<Group>) {
		let max = MAX_GROUPS_PER_REQUEST as usize;
		for grp in groups {
			let owner = self.owner_of(&grp);
			self.packs.entry(owner).or_default().push(grp);
		}
		let mut packs = std::mem::take(&mut self.packs);
		for (owner, pack) in packs.iter_mut() {
			let full = if self.outboards_open == 0 { pack.len() } else { pack.len() / max * max };
			let ready: Vec<Group> = pack.drain(..full).collect();
			for chunk in ready.chunks(max) {
				let id = self.push(Work::Groups(chunk.to_vec()), *owner);
				self.file(id, *owner);
			}
		}
		packs.retain(|_, p| !p.is_empty());
		self.packs = packs;
	}

	/// Files a queued group unit under its owner, or in the stale pool if the owner is gone.
	fn file(&mut self, id: UnitId, owner: PeerId) {
		if self.dead.contains(&owner) {
			self.stale.push(id);
		} else {
			self.owned.entry(owner).or_default().push(id);
		}
	}

	fn finish(&mut self, id: UnitId) {
		if self.units.get_mut(id).and_then(Option::take).is_some() {
			self.open -= 1;
		}
	}

	/// Returns a unit to its queue; `missing_at` records that this peer did not have it.
	fn put_back(&mut self, id: UnitId, work: Work, missing_at: Option<(PeerId, Instant)>) {
		let Some(unit) = self.units.get_mut(id).and_then(Option::as_mut) else { return };
		let is_outboard = matches!(work, Work::Outboard { .. });
		unit.work = Some(work);
		if let Some((p, t)) = missing_at {
			unit.missing_at.insert(p, t);
		}
		let owner = unit.owner;
		if is_outboard {
			self.outboards.push(id);
		} else {
			self.file(id, owner);
		}
	}

	/// Takes a random queued unit that passes `ok` (a few random tries, then a scan).
	fn take_from(&mut self, q: Queue, ok: impl Fn(&Unit) -> bool) -> Option<UnitId> {
		let queue = match q {
			Queue::Outboards => &mut self.outboards,
			Queue::Stale => &mut self.stale,
			Queue::Owned(p) => self.owned.get_mut(&p)?,
		};
		if queue.is_empty() {
			return None;
		}
		let units = &self.units;
		let pass = |id: &UnitId| {
			units
				.get(*id)
				.and_then(Option::as_ref)
				.is_some_and(|u| u.work.is_some() && ok(u))
		};
		let mut found = None;
		for _ in 0..8 {
			let i = self.rng.gen_range(0..queue.len());
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

	/// Checks the bookkeeping (tests): `open` counts the live units, and every queued unit is
	/// live and not leased.
	#[cfg(test)]
	fn check(&self) {
		let live = self.units.iter().filter(|u| u.is_some()).count();
		assert_eq!(self.open, live, "open counts the live units");
		let queued = self.outboards.iter().chain(&self.stale).chain(self.owned.values().flatten());
		for id in queued {
			let u = self.units[*id].as_ref().expect("a queued unit is live");
			assert!(u.work.is_some(), "a queued unit is not leased");
		}
	}
}

/// The index of the target as fetched so far, possibly from several sources: a fetch continues
/// where the last one stopped (every page is full and consistent with the chain's entry count;
/// the whole index is verified against the anchored root when it is staged). If an index
/// assembled from several sources does not verify, nobody can be blamed: it is dropped and the
/// next one must come whole from one source, which is blamed if it does not verify either.
#[derive(Default)]
pub(crate) struct IndexPages {
	entries: Vec<Entry>,
	/// Sources that delivered pages of `entries`, in order.
	from: Vec<PeerId>,
	/// The next index must come whole from one source.
	whole: bool,
}

impl IndexPages {
	/// The pages so far, for the next fetch to continue from (none if it must fetch the whole
	/// index).
	pub(crate) fn resume(&mut self) -> Vec<Entry> {
		if self.whole {
			self.entries.clear();
			self.from.clear();
		}
		std::mem::take(&mut self.entries)
	}

	/// A fetch by `peer` that started from `before` entries ended (complete or not) with
	/// `entries`; kept for the next fetch or handed to the store.
	pub(crate) fn fetched(&mut self, peer: PeerId, before: usize, entries: Vec<Entry>) {
		if entries.len() > before && !self.from.contains(&peer) {
			self.from.push(peer);
		}
		self.entries = entries;
	}

	/// A source sent an index page that breaks the protocol: the pages so far are dropped (they
	/// may be its too), and the next fetch starts over.
	pub(crate) fn discard(&mut self) {
		self.entries.clear();
		self.from.clear();
	}

	/// Takes the complete index to stage.
	pub(crate) fn take(&mut self) -> Vec<Entry> {
		std::mem::take(&mut self.entries)
	}

	/// The complete index did not verify against the target: returns the source to blame (the
	/// only one it came from), or `None` if it came from several (it is fetched again whole).
	pub(crate) fn mismatch(&mut self) -> Option<PeerId> {
		let sole = match self.from.as_slice() {
			[one] => Some(*one),
			_ => None,
		};
		self.entries.clear();
		self.from.clear();
		self.whole = true;
		sole
	}
}

/// The rate floor's rule: whether `bytes` delivered over `elapsed` is less than `rate` bytes per
/// second (exact, in integers, saturating; an empty window is never below it).
fn below_floor(bytes: u64, elapsed: Duration, rate: u64) -> bool {
	u128::from(bytes) * 1_000_000_000 < u128::from(rate).saturating_mul(elapsed.as_nanos())
}

fn group_len(size: u64, g: u64) -> u64 {
	group_range(size, g).map(|(s, e)| e - s).unwrap_or(0)
}

/// Bytes of `groups`.
fn bytes_of(groups: &[Group]) -> u64 {
	groups.iter().fold(0, |n, (_, size, g)| n.saturating_add(group_len(*size, *g)))
}

/// Bytes of the outboard of an object of `size` bytes (one hash per entry).
fn outboard_bytes(size: u64) -> u64 {
	outboard_len(size).saturating_mul(std::mem::size_of::<Hash32>() as u64)
}

fn unit_hash(cid: &Hash32, run: u64) -> u64 {
	let [a, b, c, d, e, f, g, h, ..] = *cid;
	u64::from_le_bytes([a, b, c, d, e, f, g, h]) ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
	use super::*;
	use sync_primitives::commitment::GROUP_LEN;

	const RETRY: Duration = Duration::from_millis(25);
	const FALLBACK: Duration = Duration::from_secs(1);
	const FALLBACK_AFTER: Duration = Duration::from_secs(60);
	/// The rate floor: 60 000 bytes per window (the tests' objects are 1 000 bytes, 64 000 per
	/// full unit).
	const FLOOR: u64 = 1000;
	const TARGET_BYTES: u64 = 1 << 40;
	fn none() -> HashSet<(Hash32, u64)> {
		HashSet::new()
	}

	fn cid(i: u64) -> Hash32 {
		*blake3::hash(&i.to_le_bytes()).as_bytes()
	}

	fn sched(me: PeerId) -> Sched {
		let cfg = SchedConfig {
			me,
			missing_retry: RETRY,
			primary_fallback: FALLBACK,
			primary_fallback_after: FALLBACK_AFTER,
			primary_fallback_rate: FLOOR,
			target_bytes: TARGET_BYTES,
		};
		Sched::with_rng(cfg, StdRng::seed_from_u64(7))
	}

	/// `n` one-group objects.
	fn small(n: u64) -> Vec<(Hash32, u64, ObjectState)> {
		(0..n).map(|i| (cid(i), 1000, ObjectState::Absent)).collect()
	}

	fn groups(l: &Lease) -> Vec<Group> {
		match l.work() {
			Work::Groups(g) => g.clone(),
			Work::Outboard { .. } => panic!("expected groups, got {:?}", l.work()),
		}
	}

	/// Groups queued under `owner`.
	fn owned_groups(s: &Sched, owner: PeerId) -> usize {
		let ids = s.owned.get(&owner).map_or(&[][..], Vec::as_slice);
		ids.iter()
			.map(|id| match s.units[*id].as_ref().and_then(|u| u.work.as_ref()) {
				Some(Work::Groups(g)) => g.len(),
				_ => 0,
			})
			.sum()
	}

	fn lease(next: Next) -> Lease {
		match next {
			Next::Fetch(l) => l,
			other => panic!("expected a lease, got {other:?}"),
		}
	}

	/// Takes every unit `peer` is offered now, completing each as `Done`.
	fn drain(s: &mut Sched, peer: PeerId, source: Source, now: Instant) -> Vec<Group> {
		let mut out = Vec::new();
		while let Next::Fetch(l) = s.next(peer, source, now) {
			out.extend(groups(&l));
			assert_eq!(s.complete(peer, l, Outcome::Done, now), Completed::Finished);
			s.check();
		}
		out
	}

	#[test]
	fn index_is_fetched_by_one_worker_and_retried_after_a_failure() {
		let mut s = sched(PeerId::random());
		assert_eq!(s.index_step(), IndexStep::Fetch);
		assert_eq!(s.index_step(), IndexStep::Wait, "one fetch at a time");
		s.index_failed();
		assert_eq!(s.index_step(), IndexStep::Fetch, "the next worker tries");
		assert!(matches!(s.next(PeerId::random(), Source::Complete, Instant::now()), Next::Wait));
		s.index_staged([], [], Instant::now());
		assert_eq!(s.index_step(), IndexStep::Ready);
		assert!(s.is_done(), "an empty index is done at once");
		assert!(matches!(s.next(PeerId::random(), Source::Primary, Instant::now()), Next::Done));
	}

	#[test]
	fn held_objects_are_resumed_not_fetched() {
		let me = PeerId::random();
		let mut s = sched(me);
		let size = 3 * GROUP_LEN + 5;
		let objects = vec![
			(cid(1), 4000, ObjectState::Complete),
			(cid(2), size, ObjectState::Partial { missing: vec![1, 3] }),
		];
		let resumed = s.index_staged([], objects, Instant::now());
		assert_eq!(resumed, 4000 + size - GROUP_LEN - 5);
		assert_eq!(s.index_staged([], small(3), Instant::now()), 0, "staged once");
		let got = drain(&mut s, PeerId::random(), Source::Complete, Instant::now());
		assert_eq!(got.len(), 2);
		assert!(got.contains(&(cid(2), size, 1)) && got.contains(&(cid(2), size, 3)));
		assert!(s.is_done());
	}

	#[test]
	fn small_objects_share_requests_of_at_most_the_limit() {
		let me = PeerId::random();
		let mut s = sched(me);
		s.index_staged([], small(150), Instant::now());
		s.check();
		let now = Instant::now();
		let mut sizes = Vec::new();
		while let Next::Fetch(l) = s.next(me, Source::Complete, now) {
			sizes.push(groups(&l).len());
			let _ = s.complete(me, l, Outcome::Done, now);
		}
		sizes.sort();
		assert_eq!(sizes, vec![22, 64, 64], "packed, the remainder in one unit");
		assert!(s.is_done());
	}

	#[test]
	fn outboards_come_first_and_their_groups_follow() {
		let me = PeerId::random();
		let peer = PeerId::random();
		let mut s = sched(me);
		let size = 100 * GROUP_LEN;
		let mut objects = small(10);
		objects.push((cid(99), size, ObjectState::Absent));
		s.index_staged([], objects, Instant::now());
		let now = Instant::now();
		let l = lease(s.next(peer, Source::Complete, now));
		assert_eq!(*l.work(), Work::Outboard { cid: cid(99), size });
		// Small groups wait for more while an outboard is pending.
		assert!(matches!(s.next(peer, Source::Complete, now), Next::Wait));
		assert_eq!(s.complete(peer, l, Outcome::Done, now), Completed::Finished);
		s.check();
		let got = drain(&mut s, peer, Source::Complete, now);
		assert_eq!(got.len(), 110, "the outboard's 100 groups and the 10 small ones");
		assert!(s.is_done());
	}

	#[test]
	fn every_downloader_computes_the_same_owners() {
		let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
		let size = 300 * GROUP_LEN;
		let owners = |me: PeerId, others: [PeerId; 2]| {
			let mut s = sched(me);
			s.index_staged(
				others,
				[(cid(5), size, ObjectState::Partial { missing: (0..300).collect() })],
				Instant::now(),
			);
			let mut by: Vec<(PeerId, Vec<u64>)> = s
				.owned
				.iter()
				.map(|(o, ids)| {
					let mut g: Vec<u64> = ids
						.iter()
						.flat_map(|id| {
							match s.units[*id].as_ref().unwrap().work.as_ref().unwrap() {
								Work::Groups(l) => l.iter().map(|x| x.2).collect::<Vec<_>>(),
								Work::Outboard { .. } => vec![],
							}
						})
						.collect();
					g.sort();
					(*o, g)
				})
				.collect();
			by.sort();
			by
		};
		let seen_by_a = owners(a, [b, c]);
		assert_eq!(seen_by_a, owners(b, [c, a]));
		assert_eq!(seen_by_a, owners(c, [a, b]));
		assert!(seen_by_a.len() > 1, "the work is split");
	}

	#[test]
	fn primary_serves_own_share_then_stale_then_quiet_owners_only() {
		let (me, other, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([other], small(64 * 40), t0);
		let mine = owned_groups(&s, me);
		let theirs = owned_groups(&s, other);
		assert!(mine > 0 && theirs > 0);
		// The other owner made progress just now: the Primary serves only this node's share.
		s.note_progress(other, 10, t0);
		let got = drain(&mut s, primary, Source::Primary, t0);
		assert_eq!(got.len(), mine);
		assert!(!s.is_done());
		// Quiet for the fallback: the Primary serves its share too.
		let later = t0 + FALLBACK;
		let got = drain(&mut s, primary, Source::Primary, later);
		assert_eq!(got.len(), theirs);
		assert!(s.is_done());
	}

	#[test]
	fn primary_is_not_asked_while_a_complete_replica_serves() {
		let (me, other, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([other], small(64 * 10), t0);
		let complete = PeerId::random();
		s.complete_source(complete, true);
		assert!(matches!(s.next(primary, Source::Primary, t0 + FALLBACK * 10), Next::Wait));
		// Only a gone owner's share may go to the Primary then.
		s.owner_lost(other);
		let got = drain(&mut s, primary, Source::Primary, t0);
		assert!(!got.is_empty());
		assert!(matches!(s.next(primary, Source::Primary, t0), Next::Wait), "own share stays");
		s.complete_source(complete, false);
		assert!(matches!(s.next(primary, Source::Primary, t0), Next::Fetch(_)));
	}

	#[test]
	fn a_syncing_peer_serves_its_share_first_and_this_nodes_share_last() {
		let (me, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([a, b], small(64 * 60), t0);
		let units_of = |s: &Sched, p: PeerId| s.owned.get(&p).map_or(0, Vec::len);
		let (own_a, own_b, own_me) = (units_of(&s, a), units_of(&s, b), units_of(&s, me));
		assert!(own_a > 0 && own_b > 0 && own_me > 0);
		let mut order = Vec::new();
		while let Next::Fetch(l) = s.next(a, Source::Syncing, t0) {
			let first = groups(&l)[0];
			order.push(s.owner_of(&first));
			let _ = s.complete(a, l, Outcome::Done, t0);
		}
		assert_eq!(order.len(), own_a + own_b + own_me, "it may serve every share");
		assert!(order[..own_a].iter().all(|o| *o == a), "its own share first");
		assert!(order[own_a..own_a + own_b].iter().all(|o| *o == b), "then the others'");
		assert!(order[own_a + own_b..].iter().all(|o| *o == me), "this node's share last");
	}

	#[test]
	fn a_peer_missing_a_unit_is_not_asked_again_before_the_retry() {
		let (me, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([], small(10), t0);
		let l = lease(s.next(a, Source::Complete, t0));
		assert_eq!(s.complete(a, l, Outcome::Missing(&none()), t0), Completed::Requeued);
		s.check();
		assert!(matches!(s.next(a, Source::Complete, t0), Next::Wait));
		assert!(matches!(s.next(a, Source::Complete, t0 + RETRY / 2), Next::Wait));
		let l = lease(s.next(b, Source::Complete, t0));
		assert_eq!(s.complete(b, l, Outcome::Missing(&none()), t0), Completed::Requeued);
		let l = lease(s.next(a, Source::Complete, t0 + RETRY));
		assert_eq!(s.complete(a, l, Outcome::Done, t0 + RETRY), Completed::Finished);
		assert!(s.is_done());
	}

	#[test]
	fn a_failed_request_returns_only_what_was_not_received() {
		let (me, a) = (PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([], small(5), t0);
		let l = lease(s.next(a, Source::Complete, t0));
		let sent = groups(&l);
		let got: HashSet<(Hash32, u64)> = sent[..2].iter().map(|(c, _, g)| (*c, *g)).collect();
		assert_eq!(s.complete(a, l, Outcome::Failed(&got), t0), Completed::Requeued);
		s.check();
		// A failure is not a "missing": the same peer may be asked again at once.
		let l = lease(s.next(a, Source::Complete, t0));
		assert_eq!(groups(&l), sent[2..].to_vec());
		assert_eq!(s.complete(a, l, Outcome::Failed(&HashSet::new()), t0), Completed::Requeued);
		// A failed outboard goes back to the outboard queue.
		let mut s2 = sched(me);
		s2.index_staged([], [(cid(1), 10 * GROUP_LEN, ObjectState::Absent)], t0);
		let l = lease(s2.next(a, Source::Complete, t0));
		assert_eq!(s2.complete(a, l, Outcome::Failed(&none()), t0), Completed::Requeued);
		assert!(matches!(lease(s2.next(a, Source::Complete, t0)).work(), Work::Outboard { .. }));
	}

	#[test]
	fn a_gone_owners_share_goes_to_the_pool_after_the_fallback() {
		let (me, other, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([other], small(64 * 20), t0);
		s.note_progress(other, 1, t0);
		let mine = owned_groups(&s, me);
		assert_eq!(drain(&mut s, primary, Source::Primary, t0).len(), mine);
		assert!(!s.release_if_overdue(other, t0, t0 + FALLBACK / 2), "not yet");
		assert!(matches!(s.next(primary, Source::Primary, t0), Next::Wait));
		assert!(s.release_if_overdue(other, t0, t0 + FALLBACK));
		assert!(!s.owned.contains_key(&other) && !s.stale.is_empty());
		// A unit of a gone owner that comes back goes to the pool too; serving again reclaims.
		let l = lease(s.next(primary, Source::Primary, t0));
		let _ = s.complete(primary, l, Outcome::Failed(&none()), t0);
		assert!(!s.owned.contains_key(&other));
		s.serving(other, Source::Syncing);
		drain(&mut s, primary, Source::Primary, t0);
		assert!(s.is_done());
	}

	/// Completes a lease `peer` is offered now as `Missing` (nothing received).
	fn answer_missing(s: &mut Sched, peer: PeerId, source: Source, now: Instant) {
		let l = lease(s.next(peer, source, now));
		assert_eq!(s.complete(peer, l, Outcome::Missing(&none()), now), Completed::Requeued);
		s.check();
	}

	#[test]
	fn lying_complete_holder_is_demoted_and_the_primary_takes_over() {
		let (me, liar, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([liar], small(64 * 10), t0);
		s.serving(liar, Source::Complete);
		s.complete_source(liar, true);
		// While it is connected and "complete", the Primary serves nothing of anyone's share.
		assert!(matches!(s.next(primary, Source::Primary, t0), Next::Wait));
		let mut now = t0;
		for i in 1..DEMOTE_AFTER {
			answer_missing(&mut s, liar, Source::Complete, now);
			assert!(!s.is_demoted(&liar), "{i} answers: not yet");
			now += RETRY;
		}
		answer_missing(&mut s, liar, Source::Complete, now);
		assert!(s.is_demoted(&liar));
		assert!(matches!(s.next(liar, Source::Complete, now + RETRY * 100), Next::Demoted));
		// Reconnecting changes nothing for this target.
		s.serving(liar, Source::Complete);
		s.complete_source(liar, true);
		assert!(matches!(s.next(liar, Source::Complete, now + RETRY * 100), Next::Demoted));
		// The Primary serves everything now, the liar's share included (it went to the pool).
		drain(&mut s, primary, Source::Primary, now);
		assert!(s.is_done());
	}

	#[test]
	fn an_outboard_refusal_holds_nothing_up_and_is_not_counted() {
		let (me, holder, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		let objects: Vec<_> = (0..DEMOTE_AFTER as u64 * 3)
			.map(|i| (cid(i), 4 * GROUP_LEN, ObjectState::Absent))
			.collect();
		s.index_staged([holder], objects, t0);
		s.serving(holder, Source::Complete);
		s.complete_source(holder, true);
		let mut now = t0;
		for _ in 0..DEMOTE_AFTER * 3 {
			let l = lease(s.next(holder, Source::Complete, now));
			assert!(matches!(l.work(), Work::Outboard { .. }));
			assert_eq!(s.complete(holder, l, Outcome::Missing(&none()), now), Completed::Requeued);
			now += RETRY;
		}
		assert!(!s.is_demoted(&holder), "a refused outboard is fetched elsewhere at once");
		// The Primary takes outboards while a complete holder is connected.
		let l = lease(s.next(primary, Source::Primary, now));
		assert!(matches!(l.work(), Work::Outboard { .. }));
		assert_eq!(s.complete(primary, l, Outcome::Done, now), Completed::Finished);
	}

	#[test]
	fn missing_from_a_co_downloader_is_not_held_against_it() {
		let (me, peer, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([peer], small(64 * 4), t0);
		s.serving(peer, Source::Syncing);
		let mut now = t0;
		for _ in 0..DEMOTE_AFTER * 10 {
			answer_missing(&mut s, peer, Source::Syncing, now);
			now += RETRY;
		}
		assert!(!s.is_demoted(&peer), "what it has not fetched yet is not a lie");
		// A Primary's "missing" does count: it claims the whole target.
		let mut t = t0;
		for _ in 0..DEMOTE_AFTER {
			answer_missing(&mut s, primary, Source::Primary, t);
			t += RETRY;
		}
		assert!(s.is_demoted(&primary));
		assert!(matches!(s.next(primary, Source::Primary, t), Next::Demoted));
	}

	#[test]
	fn index_refusals_from_a_complete_holder_count_towards_demotion() {
		let (me, liar, other) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		s.serving(liar, Source::Complete);
		s.serving(other, Source::Syncing);
		for _ in 0..DEMOTE_AFTER {
			assert_eq!(s.index_step(), IndexStep::Fetch);
			assert!(!s.index_refused(other), "a co-downloader may not have the index yet");
			s.index_failed();
		}
		let demoted: Vec<bool> = (0..DEMOTE_AFTER).map(|_| s.index_refused(liar)).collect();
		assert_eq!(demoted.iter().filter(|d| **d).count(), 1, "demoted once, at the last");
		assert!(*demoted.last().unwrap());
		// Demoted before the index was staged: it owns no share once it is.
		let t0 = Instant::now();
		s.index_staged([liar, other], small(64 * 20), t0);
		assert!(!s.owned.contains_key(&liar));
		assert!(matches!(s.next(liar, Source::Complete, t0), Next::Demoted));
		assert!(!s.is_demoted(&other));
	}

	#[test]
	fn primary_fallback_has_a_time_bound_whatever_replicas_claim() {
		let (me, complete, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([complete], small(64 * 20), t0);
		s.serving(complete, Source::Complete);
		s.complete_source(complete, true);
		// It claims the target, delivers once, then nothing (a slow liar, or a stuck link).
		let l = lease(s.next(complete, Source::Complete, t0));
		let _ = s.complete(complete, l, Outcome::Done, t0 + FALLBACK);
		let t1 = t0 + FALLBACK;
		assert!(matches!(s.next(primary, Source::Primary, t1 + FALLBACK_AFTER / 2), Next::Wait));
		// A delivery by a replica restarts the clock …
		let l = lease(s.next(complete, Source::Complete, t1));
		let t2 = t1 + FALLBACK_AFTER / 2;
		let _ = s.complete(complete, l, Outcome::Done, t2);
		assert!(matches!(s.next(primary, Source::Primary, t1 + FALLBACK_AFTER), Next::Wait));
		// … a Primary delivering does not, and past the bound the Primary serves any share.
		let late = t2 + FALLBACK_AFTER;
		let got = drain(&mut s, primary, Source::Primary, late);
		assert!(!got.is_empty());
		assert!(s.is_done(), "every share, the 'complete' replica's included");
	}

	#[test]
	fn slow_steady_holder_does_not_defeat_fallback() {
		let (me, holder, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([holder], small(64 * 40), t0);
		s.serving(holder, Source::Complete);
		s.complete_source(holder, true);
		// It claims the target and drip-feeds one group every 5 s: never silent for the bound,
		// never missing anything, so neither the silence rule nor demotion lets the Primary in.
		let drip = Duration::from_secs(5);
		let mut now = t0;
		while now < t0 + FALLBACK_AFTER {
			let next = s.next(primary, Source::Primary, now);
			assert!(matches!(next, Next::Wait), "within the first window ({:?})", now - t0);
			let l = lease(s.next(holder, Source::Complete, now));
			let one: HashSet<_> = groups(&l)[..1].iter().map(|(c, _, g)| (*c, *g)).collect();
			// The rest of the unit goes back (or nothing is left of a one-group remainder).
			let _ = s.complete(holder, l, Outcome::Failed(&one), now);
			s.check();
			now += drip;
		}
		assert!(!s.is_demoted(&holder), "a slow holder is no liar");
		// 12 groups in the window: below the floor. The Primary serves any share now …
		let l = lease(s.next(primary, Source::Primary, now));
		assert_eq!(s.complete(primary, l, Outcome::Done, now), Completed::Finished);
		// … as one more source: the holder still gets work.
		let l = lease(s.next(holder, Source::Complete, now));
		assert_eq!(s.complete(holder, l, Outcome::Done, now), Completed::Finished);
		// The verdict holds for the whole next window, Primary deliveries not counting.
		let late = now + FALLBACK_AFTER / 2;
		drain(&mut s, primary, Source::Primary, late);
		assert!(s.is_done(), "every share, the 'complete' holder's included");
	}

	#[test]
	fn a_fast_holder_keeps_the_primary_out_window_after_window() {
		let (me, holder, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([holder], small(64 * 400), t0);
		s.serving(holder, Source::Complete);
		s.complete_source(holder, true);
		// A full unit every second, over five windows: far above the floor, so the Primary is
		// never asked (its load does not depend on how many replicas sync this way).
		let mut now = t0;
		while now < t0 + 5 * FALLBACK_AFTER {
			let l = lease(s.next(holder, Source::Complete, now));
			assert_eq!(s.complete(holder, l, Outcome::Done, now), Completed::Finished);
			let next = s.next(primary, Source::Primary, now);
			assert!(matches!(next, Next::Wait), "the Primary was asked at {:?}", now - t0);
			now += Duration::from_secs(1);
		}
		drain(&mut s, holder, Source::Complete, now);
		assert!(s.is_done());
	}

	#[test]
	fn the_rate_floor_is_exact() {
		let w = Duration::from_secs(15);
		assert!(below_floor(15 * 1024 - 1, w, 1024));
		assert!(!below_floor(15 * 1024, w, 1024), "at the floor is not below it");
		assert!(!below_floor(0, Duration::ZERO, 1024), "an empty window judges nothing");
		assert!(!below_floor(0, w, 0), "a zero floor is never missed");
		assert!(below_floor(u64::MAX, Duration::MAX, u64::MAX), "no overflow");
	}

	#[test]
	fn a_growing_counter_without_deliveries_keeps_a_share_only_until_the_bound() {
		let (me, silent, busy) = (PeerId::random(), PeerId::random(), PeerId::random());
		let primary = PeerId::random();
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([silent, busy], small(64 * 60), t0);
		s.serving(silent, Source::Syncing);
		s.serving(busy, Source::Syncing);
		let mine = owned_groups(&s, me);
		let theirs = owned_groups(&s, silent);
		assert_eq!(drain(&mut s, primary, Source::Primary, t0).len(), mine);
		// Both counters grow all the time and `busy` delivers its own share now and then (the
		// replicas as a whole are not quiet), but `silent` never delivers a byte.
		let mut now = t0;
		let mut step = 0u64;
		while now < t0 + FALLBACK_AFTER {
			step += 1;
			s.note_progress(silent, step * 1000, now);
			s.note_progress(busy, step * 1000, now);
			if step.is_multiple_of(10) {
				let l = lease(s.next(busy, Source::Syncing, now));
				assert_eq!(s.complete(busy, l, Outcome::Done, now), Completed::Finished);
			}
			let next = s.next(primary, Source::Primary, now);
			assert!(matches!(next, Next::Wait), "growing, within the bound ({:?})", now - t0);
			now += FALLBACK / 2;
		}
		s.note_progress(silent, (step + 1) * 1000, now);
		s.note_progress(busy, (step + 1) * 1000, now);
		let got = drain(&mut s, primary, Source::Primary, now);
		assert_eq!(got.len(), theirs, "past the bound: the silent one's share, and only it");
		assert!(!s.is_done(), "the one that delivers keeps its share");
	}

	#[test]
	fn a_counter_beyond_the_target_size_is_no_progress() {
		let (me, other, primary) = (PeerId::random(), PeerId::random(), PeerId::random());
		let mut s = sched(me);
		let t0 = Instant::now();
		s.index_staged([other], small(64 * 20), t0);
		drain(&mut s, primary, Source::Primary, t0);
		// A counter jumping past what the target holds is not progress on it: quiet after the
		// fallback as if it had not moved.
		s.note_progress(other, TARGET_BYTES + 1, t0 + FALLBACK);
		assert!(matches!(s.next(primary, Source::Primary, t0 + FALLBACK), Next::Fetch(_)));
	}

	#[test]
	fn index_pages_resume_and_only_a_sole_source_is_blamed() {
		let (a, b) = (PeerId::random(), PeerId::random());
		let entry = |i: u8| Entry { key: vec![i], cid: [i; 32], size: i as u64 };
		let mut pages = IndexPages::default();
		// `a` delivers two entries and stops; `b` continues from the third.
		let got = pages.resume();
		assert!(got.is_empty());
		pages.fetched(a, 0, vec![entry(1), entry(2)]);
		let got = pages.resume();
		assert_eq!(got.len(), 2, "the next source continues where the last stopped");
		let mut got = got;
		got.push(entry(3));
		pages.fetched(b, 2, got);
		assert_eq!(pages.take().len(), 3);
		// From two sources and not verifying: nobody is blamed, and the next comes whole.
		assert_eq!(pages.mismatch(), None);
		pages.fetched(b, 0, vec![entry(1)]);
		assert!(pages.resume().is_empty(), "no resuming once a mixed index failed");
		pages.fetched(a, 0, vec![entry(1), entry(2), entry(3)]);
		let _ = pages.take();
		assert_eq!(pages.mismatch(), Some(a), "a whole index from one source: that source");
		// A source that delivered nothing is not counted as one.
		pages.fetched(b, 0, Vec::new());
		pages.fetched(a, 0, vec![entry(9)]);
		assert_eq!(pages.mismatch(), Some(a));
		// Pages of a source that broke the protocol are not resumed from.
		let mut fresh = IndexPages::default();
		fresh.fetched(a, 0, vec![entry(1)]);
		fresh.discard();
		assert!(fresh.resume().is_empty());
		fresh.fetched(b, 0, vec![entry(1), entry(2)]);
		assert_eq!(fresh.mismatch(), Some(b), "the discarded source is no longer counted");
	}

	#[test]
	fn random_outcomes_deliver_every_group_exactly_once() {
		let me = PeerId::random();
		let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
		let mut s = sched(me);
		let mut rng = StdRng::seed_from_u64(42);
		let mut objects = small(500);
		for i in 0..5 {
			objects.push((cid(1000 + i), (70 + i * 13) * GROUP_LEN + 7, ObjectState::Absent));
		}
		let want: HashSet<(Hash32, u64)> = objects
			.iter()
			.flat_map(|(c, size, _)| (0..groups_of(*size)).map(move |g| (*c, g)))
			.collect();
		let t0 = Instant::now();
		s.index_staged(peers[..2].iter().copied(), objects, t0);
		let mut stored: HashSet<(Hash32, u64)> = HashSet::new();
		let mut now = t0;
		for step in 0..100_000 {
			if s.is_done() {
				break;
			}
			now += Duration::from_millis(5);
			let (peer, source) = match step % 5 {
				4 => (PeerId::random(), Source::Primary),
				i => (peers[i], if i < 2 { Source::Syncing } else { Source::Complete }),
			};
			let Next::Fetch(l) = s.next(peer, source, now) else { continue };
			let asked: Vec<(Hash32, u64)> = match l.work() {
				Work::Groups(g) => g.iter().map(|(c, _, g)| (*c, *g)).collect(),
				Work::Outboard { .. } => vec![],
			};
			let got: HashSet<_> = asked.iter().copied().filter(|_| rng.gen_bool(0.5)).collect();
			let outcome = match rng.gen_range(0..3) {
				0 => Outcome::Done,
				1 => Outcome::Missing(&got),
				_ => Outcome::Failed(&got),
			};
			let delivered: Vec<_> = match outcome {
				Outcome::Done => asked.clone(),
				_ => got.iter().copied().collect(),
			};
			for d in delivered {
				assert!(stored.insert(d), "{d:?} delivered twice");
			}
			let _ = s.complete(peer, l, outcome, now);
			s.check();
		}
		assert!(s.is_done());
		assert_eq!(stored, want);
	}
}
