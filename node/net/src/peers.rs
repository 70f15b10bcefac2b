//! Peer management (Harmony stream-sync knobs): which peers a sync may use, for how long a
//! failing peer rests, who is never dropped, and what survives a restart.
//!
//! Time is always passed in (`now`), so the rules are tested without sleeping, and no rule
//! compares wall clocks between nodes. The book and the bans are bounded
//! ([`PEER_MAP_CAP`] entries each, least recently used first out; the bans in two lists, so
//! bans of throwaway identities never lift those of the peers the chain lists, see `Bans`): a
//! remote can make up identities, and gossip authors can be anyone.
use crate::bounded::{LruMap, PEER_MAP_CAP};
use codec::{Decode, Encode};
use libp2p::PeerId;
use parking_lot::Mutex;
use std::{
	collections::HashSet,
	time::{Duration, Instant},
};

/// The peer manager's knobs (defaults: see [`PeerManagerConfig::default`], the one place they
/// are written; the node's CLI takes its defaults from it).
#[derive(Clone, Debug)]
pub struct PeerManagerConfig {
	/// Peers one sync downloads from at once.
	pub concurrency: usize,
	/// Fewest peers a sync uses: when fewer are usable, the cooling-down ones whose rest ends
	/// soonest are asked anyway (never banned ones) — the holders the chain lists may be the
	/// only copies, and resting all of them would stall the segment.
	pub min_peers: usize,
	/// Soft low cap: below it, discovery runs in the background.
	pub low_cap_soft: usize,
	/// Hard low cap: below it, discovery runs at once and reserved peers are promoted.
	pub low_cap_hard: usize,
	/// High cap: no more sync peers than this are kept.
	pub high_cap: usize,
	/// Peers asked for per discovery round.
	pub discovery_batch: usize,
	/// Peers never removed or cooled down (an operator's own nodes).
	pub trusted: HashSet<PeerId>,
	/// Standby peers promoted as soon as the pool is below the hard low cap.
	pub reserved: HashSet<PeerId>,
	/// Cooldown per failure after the first (the first failure is free).
	pub cooldown_step: Duration,
	/// Longest cooldown.
	pub cooldown_max: Duration,
	/// Ban a peer for the session when it sends data that does not verify.
	pub ban_on_invalid: bool,
}

impl Default for PeerManagerConfig {
	fn default() -> Self {
		PeerManagerConfig {
			concurrency: 16,
			min_peers: 1,
			low_cap_soft: 8,
			low_cap_hard: 3,
			high_cap: 64,
			discovery_batch: 8,
			trusted: HashSet::new(),
			reserved: HashSet::new(),
			cooldown_step: Duration::from_secs(5 * 60),
			cooldown_max: Duration::from_secs(60 * 60),
			ban_on_invalid: true,
		}
	}
}

/// What the manager knows of one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRecord {
	/// Consecutive failures (reset by a success).
	pub failures: u32,
	/// Resting until then.
	pub cooldown_until: Option<Instant>,
	/// Banned for this session (invalid data).
	pub banned: bool,
	/// Successful requests minus failures, for ordering (saturating).
	pub score: i32,
}

/// What to do about discovery, given the current pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Discovery {
	/// Enough peers.
	Idle,
	/// Below the soft low cap: look for this many more in the background.
	Background(usize),
	/// Below the hard low cap: look now (reserved peers were promoted already).
	Urgent(usize),
}

/// The peer book: at most [`PEER_MAP_CAP`] records (the least recently used is forgotten first,
/// which is what a new peer looks like anyway), so it stays bounded however many identities
/// fail, succeed or send invalid data, and so does what is saved.
#[derive(Clone, Debug)]
pub struct PeerBook {
	config: PeerManagerConfig,
	peers: LruMap<PeerId, PeerRecord>,
	/// Reserved peers promoted (a subset of the configured ones).
	promoted: HashSet<PeerId>,
}

impl PeerBook {
	/// An empty book.
	pub fn new(config: PeerManagerConfig) -> Self {
		PeerBook { config, peers: LruMap::new(PEER_MAP_CAP), promoted: HashSet::new() }
	}

	/// Records in the book (at most [`PEER_MAP_CAP`]).
	pub fn len(&self) -> usize {
		self.peers.len()
	}

	/// Whether the book has no record.
	pub fn is_empty(&self) -> bool {
		self.peers.len() == 0
	}

	/// The record of `peer`, created if absent (a use: the record is kept over older ones).
	fn entry(&mut self, peer: PeerId) -> &mut PeerRecord {
		self.peers.get_or_insert_with(peer, PeerRecord::default).0
	}

	/// The configuration.
	pub fn config(&self) -> &PeerManagerConfig {
		&self.config
	}

	/// The record of `peer`.
	pub fn record(&self, peer: &PeerId) -> Option<&PeerRecord> {
		self.peers.peek(peer)
	}

	/// A request to `peer` succeeded.
	pub fn success(&mut self, peer: PeerId) {
		let r = self.entry(peer);
		r.failures = 0;
		r.cooldown_until = None;
		r.score = r.score.saturating_add(1);
	}

	/// A request to `peer` failed (timeout, disconnect, refusal). The first failure in a row is
	/// free; the n-th rests the peer `(n − 1) × cooldown_step`, at most `cooldown_max`. Trusted
	/// peers never rest.
	pub fn failure(&mut self, peer: PeerId, now: Instant) {
		let trusted = self.config.trusted.contains(&peer);
		let (step, max) = (self.config.cooldown_step, self.config.cooldown_max);
		let r = self.entry(peer);
		r.failures = r.failures.saturating_add(1);
		r.score = r.score.saturating_sub(1);
		if trusted || r.failures < 2 {
			return;
		}
		let rest = step.saturating_mul(r.failures - 1).min(max);
		r.cooldown_until = Some(now + rest);
	}

	/// `peer` sent data that does not verify: banned for the session if so configured (trusted
	/// peers too — a trusted peer serving corrupt data is a fault to surface, not to retry).
	pub fn invalid(&mut self, peer: PeerId) {
		let ban = self.config.ban_on_invalid;
		let r = self.entry(peer);
		r.score = r.score.saturating_sub(10);
		if ban {
			r.banned = true;
		}
	}

	/// Whether `peer` may be asked now.
	pub fn usable(&self, peer: &PeerId, now: Instant) -> bool {
		match self.peers.peek(peer) {
			None => true,
			Some(r) => !r.banned && r.cooldown_until.is_none_or(|t| now >= t),
		}
	}

	/// The peers a sync should use among `candidates`: usable ones, trusted first, then
	/// promoted reserved ones, then by score; at most `concurrency`. Reserved peers join the
	/// pool as soon as it falls below the hard low cap.
	pub fn select(&mut self, candidates: &[PeerId], now: Instant) -> Vec<PeerId> {
		let mut pool: Vec<PeerId> = candidates
			.iter()
			.copied()
			.filter(|p| {
				self.usable(p, now)
					&& (!self.config.reserved.contains(p) || self.promoted.contains(p))
			})
			.collect();
		if pool.len() < self.config.low_cap_hard {
			for p in candidates {
				if self.config.reserved.contains(p)
					&& self.usable(p, now)
					&& self.promoted.insert(*p)
				{
					pool.push(*p);
				}
			}
		}
		if pool.len() < self.config.min_peers {
			let mut resting: Vec<(Instant, PeerId)> = candidates
				.iter()
				.filter(|p| !pool.contains(p))
				.filter_map(|p| match self.peers.peek(p) {
					Some(r) if !r.banned => Some((r.cooldown_until.unwrap_or(now), *p)),
					_ => None,
				})
				.collect();
			resting.sort();
			resting.dedup();
			let short = self.config.min_peers - pool.len();
			pool.extend(resting.into_iter().take(short).map(|(_, p)| p));
		}
		pool.sort_by_key(|p| {
			(
				!self.config.trusted.contains(p),
				!self.promoted.contains(p),
				-self.peers.peek(p).map_or(0, |r| r.score),
			)
		});
		pool.dedup();
		pool.truncate(self.config.concurrency.min(self.config.high_cap));
		pool
	}

	/// How many known peers are `usable`, `cooling` (down for a cooldown) and `banned` (for
	/// the peer gauges).
	pub fn states(&self, now: Instant) -> [(&'static str, usize); 3] {
		let mut n = [0usize; 3];
		for (_, r) in self.peers.iter() {
			let i = if r.banned {
				2
			} else if r.cooldown_until.is_some_and(|t| now < t) {
				1
			} else {
				0
			};
			n[i] += 1;
		}
		[("usable", n[0]), ("cooling", n[1]), ("banned", n[2])]
	}

	/// Whether discovery should run, given how many usable peers there are.
	pub fn discovery(&self, usable: usize) -> Discovery {
		let want = self.config.discovery_batch.min(self.config.high_cap.saturating_sub(usable));
		if usable < self.config.low_cap_hard {
			Discovery::Urgent(want)
		} else if usable < self.config.low_cap_soft {
			Discovery::Background(want)
		} else {
			Discovery::Idle
		}
	}

	/// The book in a form that survives a restart: failures, scores and remaining cooldowns
	/// (bans are for the session only and are not saved).
	pub fn save(&self, now: Instant) -> Vec<u8> {
		let rows: Vec<(Vec<u8>, u32, i32, u64)> = self
			.peers
			.iter()
			.map(|(p, r)| {
				let rest = r
					.cooldown_until
					.map_or(0, |t| t.saturating_duration_since(now).as_millis() as u64);
				(p.to_bytes(), r.failures, r.score, rest)
			})
			.collect();
		rows.encode()
	}

	/// Restores a saved book (unknown or undecodable entries are skipped; at most
	/// [`PEER_MAP_CAP`] records are kept, whatever the bytes hold).
	pub fn load(config: PeerManagerConfig, bytes: &[u8], now: Instant) -> Self {
		let mut book = PeerBook::new(config);
		let rows = Vec::<(Vec<u8>, u32, i32, u64)>::decode(&mut &bytes[..]).unwrap_or_default();
		for (peer, failures, score, rest_ms) in rows {
			let Ok(peer) = PeerId::from_bytes(&peer) else { continue };
			let cooldown_until = (rest_ms > 0).then(|| now + Duration::from_millis(rest_ms));
			let _ = book
				.peers
				.insert(peer, PeerRecord { failures, cooldown_until, banned: false, score });
		}
		book
	}
}

/// The peer manager as the network uses it: the [`PeerBook`] and the session's bans, shared by
/// the sync engines (which peers to ask) and the server (which peers to refuse). Both are
/// bounded ([`PEER_MAP_CAP`]).
pub(crate) struct PeerManager {
	book: Mutex<PeerBook>,
	bans: Mutex<Bans>,
}

impl PeerManager {
	pub(crate) fn new(book: PeerBook) -> Self {
		PeerManager { book: Mutex::new(book), bans: Mutex::new(Bans::new(PEER_MAP_CAP)) }
	}

	/// A copy of the book.
	pub(crate) fn book(&self) -> PeerBook {
		self.book.lock().clone()
	}

	/// The book saved, and its peer counts by state, at `now`.
	pub(crate) fn save(&self, now: Instant) -> (Vec<u8>, [(&'static str, usize); 3]) {
		let book = self.book.lock();
		(book.save(now), book.states(now))
	}

	/// See [`PeerBook::select`].
	pub(crate) fn select(&self, candidates: &[PeerId], now: Instant) -> Vec<PeerId> {
		self.book.lock().select(candidates, now)
	}

	/// See [`PeerBook::failure`].
	pub(crate) fn failure(&self, peer: PeerId, now: Instant) {
		self.book.lock().failure(peer, now);
	}

	/// See [`PeerBook::success`].
	pub(crate) fn success(&self, peer: PeerId) {
		self.book.lock().success(peer);
	}

	/// Records invalid data from `peer`; returns whether it is to be banned.
	pub(crate) fn invalid(&self, peer: PeerId) -> bool {
		let mut book = self.book.lock();
		book.invalid(peer);
		book.config().ban_on_invalid
	}

	/// Not banned and not cooling down.
	pub(crate) fn usable(&self, peer: &PeerId, now: Instant) -> bool {
		!self.is_banned(peer) && self.book.lock().usable(peer, now)
	}

	/// Bans `peer` for the session; `is_known` tells the peers the chain lists (see
	/// [`Bans::ban`]).
	pub(crate) fn ban(&self, peer: PeerId, is_known: impl Fn(&PeerId) -> bool) -> Banned {
		self.bans.lock().ban(peer, is_known)
	}

	/// Whether `peer` is banned for the session.
	pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
		self.bans.lock().is_banned(peer)
	}
}

/// What [`Bans::ban`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Banned {
	/// The peer was banned already.
	Already,
	/// Newly banned; `released` is the oldest ban of the full list dropped to make room (see
	/// [`Bans`]; to be lifted in the swarm's block list and gossipsub's blacklist too, so those
	/// stay bounded as well).
	New { released: Option<PeerId> },
}

/// The session's bans, in two lists of at most `cap` bans each, a full list lifting its oldest
/// ban first (see [`PEER_MAP_CAP`](crate::bounded::PEER_MAP_CAP) on why that is the better
/// trade):
/// - the bans of **known** peers: the peers the chain lists as holders of the segments this
///   node deals with, and the trusted peers (the server's `KnownPeers`) — the culprits that
///   matter (a registered node that forged an announcement or served bad data), whose number
///   the chain bounds;
/// - the bans of everyone else, which are all a flood of throwaway identities can fill.
///
/// So however many identities an attacker gets banned (or churns through), it lifts only bans
/// of unknown peers: a known peer's ban is lifted only by `cap` newer bans of other known peers.
/// A peer banned while unknown and known by the time its ban would be lifted keeps the ban,
/// moved to the known list (aging from the move).
pub(crate) struct Bans {
	known: LruMap<PeerId, ()>,
	unknown: LruMap<PeerId, ()>,
}

impl Bans {
	/// No bans; at most `cap` known and `cap` unknown ones.
	pub(crate) fn new(cap: usize) -> Self {
		Bans { known: LruMap::new(cap), unknown: LruMap::new(cap) }
	}

	/// Bans `peer`, in the list `is_known` (whether a peer is known now) puts it in; a ban
	/// already in place is left as it is (it ages from when it was made). Returns the ban
	/// lifted to make room, if any (see [`Bans`]).
	pub(crate) fn ban(&mut self, peer: PeerId, is_known: impl Fn(&PeerId) -> bool) -> Banned {
		if self.is_banned(&peer) {
			return Banned::Already;
		}
		let released = if is_known(&peer) {
			self.known.insert(peer, ())
		} else {
			match self.unknown.insert(peer, ()) {
				// Known by now: its ban stays, with the known peers'.
				Some((old, ())) if is_known(&old) => self.known.insert(old, ()),
				evicted => evicted,
			}
		};
		Banned::New { released: released.map(|(p, ())| p) }
	}

	/// Whether `peer` is banned (in either list).
	pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
		self.known.contains_key(peer) || self.unknown.contains_key(peer)
	}

	#[cfg(test)]
	fn len(&self) -> usize {
		self.known.len() + self.unknown.len()
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	const MIN: Duration = Duration::from_secs(60);

	#[test]
	fn cooldown_grows_five_minutes_per_failure_capped_at_an_hour_first_free() {
		let mut book = PeerBook::new(PeerManagerConfig::default());
		let p = PeerId::random();
		let t0 = Instant::now();
		book.failure(p, t0);
		assert!(book.usable(&p, t0), "the first failure is free");
		let expect = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60];
		for (i, m) in expect.iter().enumerate() {
			book.failure(p, t0);
			assert_eq!(
				book.record(&p).unwrap().cooldown_until,
				Some(t0 + MIN * *m),
				"failure {}",
				i + 2
			);
			assert!(!book.usable(&p, t0 + MIN * *m - Duration::from_secs(1)));
			assert!(book.usable(&p, t0 + MIN * *m));
		}
		book.success(p);
		book.failure(p, t0);
		assert!(book.usable(&p, t0), "a success resets the count");
	}

	#[test]
	fn trusted_peers_survive_failures_that_remove_others() {
		let trusted = PeerId::random();
		let other = PeerId::random();
		let cfg = PeerManagerConfig { trusted: [trusted].into(), ..Default::default() };
		let mut book = PeerBook::new(cfg);
		let t0 = Instant::now();
		for _ in 0..5 {
			book.failure(trusted, t0);
			book.failure(other, t0);
		}
		assert!(book.usable(&trusted, t0));
		assert!(!book.usable(&other, t0));
		assert_eq!(book.select(&[other, trusted], t0), vec![trusted]);
		// With nobody else usable, the peer resting the shortest is asked rather than stalling.
		let other2 = PeerId::random();
		book.failure(other2, t0);
		book.failure(other2, t0);
		assert_eq!(book.select(&[other, other2], t0), vec![other2], "5 min left beats 20 min");
		// Invalid data still bans.
		let liar = PeerId::random();
		book.invalid(liar);
		assert!(!book.usable(&liar, t0 + MIN * 1000));
	}

	#[test]
	fn reserved_peers_are_promoted_below_the_hard_low_cap() {
		let reserved = PeerId::random();
		let a = PeerId::random();
		let cfg = PeerManagerConfig {
			reserved: [reserved].into(),
			low_cap_hard: 2,
			concurrency: 4,
			..Default::default()
		};
		let mut book = PeerBook::new(cfg);
		let t0 = Instant::now();
		let (b, c) = (PeerId::random(), PeerId::random());
		assert!(
			!book.select(&[a, b, c, reserved], t0).contains(&reserved),
			"enough peers: reserve stays out"
		);
		let pool = book.select(&[a, reserved], t0);
		assert_eq!(pool.len(), 2);
		assert_eq!(pool[0], reserved, "promoted instantly, ahead of ordinary peers");
		assert_eq!(book.discovery(1), Discovery::Urgent(8));
		assert_eq!(book.discovery(5), Discovery::Background(8));
		assert_eq!(book.discovery(8), Discovery::Idle);
	}

	#[test]
	fn peer_book_stays_bounded_under_many_identities() {
		let mut book = PeerBook::new(PeerManagerConfig::default());
		let t0 = Instant::now();
		let honest = PeerId::random();
		for i in 0..3 * PEER_MAP_CAP {
			// Throwaway identities fail, succeed and send invalid data; the honest holder keeps
			// being used (and keeps its record).
			let p = PeerId::random();
			match i % 3 {
				0 => book.failure(p, t0),
				1 => book.success(p),
				_ => book.invalid(p),
			}
			book.success(honest);
			assert!(book.len() <= PEER_MAP_CAP);
		}
		assert_eq!(book.len(), PEER_MAP_CAP);
		assert_eq!(book.record(&honest).unwrap().score, 3 * PEER_MAP_CAP as i32);
		// What is saved, and what a restart loads, is bounded too.
		let saved = book.save(t0);
		let back = PeerBook::load(PeerManagerConfig::default(), &saved, t0);
		assert_eq!(back.len(), PEER_MAP_CAP);
		let mut rows: Vec<(Vec<u8>, u32, i32, u64)> = Vec::new();
		for _ in 0..2 * PEER_MAP_CAP {
			rows.push((PeerId::random().to_bytes(), 1, 0, 0));
		}
		let padded = PeerBook::load(PeerManagerConfig::default(), &rows.encode(), t0);
		assert_eq!(padded.len(), PEER_MAP_CAP, "an oversized saved book is cut to the cap");
	}

	#[test]
	fn bans_stay_bounded_and_the_oldest_is_lifted_first() {
		let mut bans = Bans::new(8);
		let unknown = |_: &PeerId| false;
		let first: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
		for p in &first {
			assert_eq!(bans.ban(*p, unknown), Banned::New { released: None });
		}
		assert_eq!(bans.ban(first[3], unknown), Banned::Already, "banning again changes nothing");
		let mut released = Vec::new();
		for _ in 0..10_000 {
			match bans.ban(PeerId::random(), unknown) {
				Banned::New { released: Some(p) } => released.push(p),
				other => panic!("a full list lifts one ban per new one, got {other:?}"),
			}
			assert!(bans.len() <= 8);
		}
		assert_eq!(&released[..8], &first[..], "oldest first, each once");
		assert!(first.iter().all(|p| !bans.is_banned(p)));
	}

	#[test]
	fn ban_churn_cannot_lift_a_registered_culprits_ban() {
		let mut bans = Bans::new(8);
		// A holder the chain lists, caught forging an announcement ...
		let culprit = PeerId::random();
		let mut known: HashSet<PeerId> = [culprit].into();
		assert_eq!(bans.ban(culprit, |p| known.contains(p)), Banned::New { released: None });
		// ... and a peer banned before the chain listed it.
		let listed_later = PeerId::random();
		assert_eq!(bans.ban(listed_later, |p| known.contains(p)), Banned::New { released: None });
		known.insert(listed_later);
		// Thousands of throwaway identities get banned.
		let mut released = Vec::new();
		for _ in 0..10_000 {
			match bans.ban(PeerId::random(), |p| known.contains(p)) {
				Banned::New { released: Some(p) } => released.push(p),
				Banned::New { released: None } => {},
				Banned::Already => panic!("a fresh identity is not banned yet"),
			}
			assert!(bans.len() <= 16, "both lists stay bounded");
		}
		assert!(bans.is_banned(&culprit), "the churn lifted the culprit's ban");
		assert!(bans.is_banned(&listed_later), "a peer known by then keeps its ban");
		assert!(!released.contains(&culprit) && !released.contains(&listed_later));
		// Only throwaway bans were lifted: one per ban once the unknown list was full (the
		// eighth moved the later-listed peer's ban instead of lifting it).
		assert_eq!(released.len(), 10_000 - 8);
		// The known list is bounded too: only newer bans of other known peers (as many as the
		// chain lists) lift a known peer's ban, the oldest first.
		let more: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
		known.extend(more.iter().copied());
		let lifted: Vec<PeerId> = more
			.iter()
			.filter_map(|p| match bans.ban(*p, |q| known.contains(q)) {
				Banned::New { released } => released,
				Banned::Already => None,
			})
			.collect();
		assert_eq!(lifted, vec![culprit, listed_later]);
		assert_eq!(bans.len(), 16);
	}

	#[test]
	fn scores_and_cooldowns_survive_a_restart_bans_do_not() {
		let mut book = PeerBook::new(PeerManagerConfig::default());
		let t0 = Instant::now();
		let (good, bad, liar) = (PeerId::random(), PeerId::random(), PeerId::random());
		for _ in 0..3 {
			book.success(good);
			book.failure(bad, t0);
		}
		book.invalid(liar);
		let saved = book.save(t0 + MIN);
		let t1 = Instant::now() + MIN * 100;
		let back = PeerBook::load(PeerManagerConfig::default(), &saved, t1);
		assert_eq!(back.record(&good).unwrap().score, 3);
		assert_eq!(back.record(&bad).unwrap().failures, 3);
		// 10 min cooldown from t0, saved at t0 + 1 min: 9 min remain after the restart.
		assert_eq!(back.record(&bad).unwrap().cooldown_until, Some(t1 + MIN * 9));
		assert!(back.usable(&liar, t1));
		assert!(PeerBook::load(PeerManagerConfig::default(), b"garbage", t1)
			.record(&good)
			.is_none());
	}
}
