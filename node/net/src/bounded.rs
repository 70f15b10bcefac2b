//! Bounded state keyed by peer id. A remote can make up identities for free, so every map keyed
//! by [`PeerId`](libp2p::PeerId) that a remote can grow — the peer book (records, cooldowns,
//! what is saved), the session's bans (and with them the swarm's block list and gossipsub's
//! blacklist), the bytes served per peer, the per-peer rate buckets — keeps at most
//! [`PEER_MAP_CAP`] entries, the least recently used going first.
//!
//! Maps keyed by peers this node chose (the chain's holders, the sessions it opened, the
//! connections the connection limits admitted) are bounded by those choices and limits instead.
//!
//! Memory that answers and uploads hold at once, over every stream or connection, is bounded
//! by a [`MemoryBudget`] (the data plane's outboard answers, the node's HTTP bodies).
use std::{
	collections::{BTreeMap, HashMap},
	hash::Hash,
	sync::Arc,
	time::Duration,
};

/// Bytes held in memory at once, over all the requests that share it, counted in KiB: a
/// request takes its share before it allocates anything and gives it back when done (the
/// permit is dropped). A share larger than the whole budget takes all of it (served alone,
/// never refused for good); one that is not free within its wait is refused by the caller
/// (`Busy`, `503`), blaming nobody.
pub struct MemoryBudget {
	units: Arc<tokio::sync::Semaphore>,
	total: u32,
}

impl MemoryBudget {
	/// A budget of `bytes` (at most 512 GiB).
	pub fn new(bytes: u64) -> Self {
		let total = Self::kib(bytes).min(u32::MAX >> 3);
		MemoryBudget { units: Arc::new(tokio::sync::Semaphore::new(total as usize)), total }
	}

	/// `bytes` in the budget's KiB units (at least one).
	fn kib(bytes: u64) -> u32 {
		u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
	}

	/// A share of `bytes`, if one is free within `within`.
	pub async fn share(
		&self,
		bytes: u64,
		within: Duration,
	) -> Option<tokio::sync::OwnedSemaphorePermit> {
		let want = Self::kib(bytes).min(self.total);
		tokio::time::timeout(within, self.units.clone().acquire_many_owned(want))
			.await
			.ok()?
			.ok()
	}
}

/// Entries kept in each map keyed by a peer id that a remote can grow (the one place this cap
/// is written). A node syncs from at most `PeerManagerConfig::high_cap` (64) peers at once and
/// holds at most `ServeLimits::max_connections` (256) connections, so 4 096 entries remember
/// every peer it deals with many times over (a few hundred KiB per map), while a flood of
/// throwaway identities only pushes out the ones it made itself and the longest-unused others.
/// Evicting a ban lets that identity back in after 4 096 newer bans: it is banned again the
/// first time it sends invalid data, which is cheaper for everyone than an unbounded list. The
/// bans of the peers the chain lists are kept apart from everyone else's (4 096 each, see
/// `peers::Bans`), so only bans of other listed peers ever lift one of theirs.
pub const PEER_MAP_CAP: usize = 4096;

/// A map of at most `cap` entries that evicts the least recently used one (inserted, or reached
/// through [`LruMap::get_mut`] / [`LruMap::get_or_insert_with`]) to make room. Every operation
/// is O(log n).
#[derive(Clone, Debug)]
pub(crate) struct LruMap<K, V> {
	cap: usize,
	tick: u64,
	/// Value and last use of each key.
	map: HashMap<K, (V, u64)>,
	/// Keys by last use (oldest first).
	order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone, V> LruMap<K, V> {
	/// An empty map of at most `cap` (at least 1) entries.
	pub(crate) fn new(cap: usize) -> Self {
		LruMap { cap: cap.max(1), tick: 0, map: HashMap::new(), order: BTreeMap::new() }
	}

	/// Entries in the map (never more than the cap).
	pub(crate) fn len(&self) -> usize {
		self.map.len()
	}

	/// Whether `k` is in the map (does not count as a use).
	pub(crate) fn contains_key(&self, k: &K) -> bool {
		self.map.contains_key(k)
	}

	/// The value of `k` (does not count as a use).
	pub(crate) fn peek(&self, k: &K) -> Option<&V> {
		self.map.get(k).map(|(v, _)| v)
	}

	#[cfg(test)]
	/// The value of `k`, counted as a use.
	pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
		self.touch(k);
		self.map.get_mut(k).map(|(v, _)| v)
	}

	/// The value of `k`, inserted with `f` if absent (counted as a use), and the entry evicted
	/// to make room for it, if any.
	pub(crate) fn get_or_insert_with(
		&mut self,
		k: K,
		f: impl FnOnce() -> V,
	) -> (&mut V, Option<(K, V)>) {
		let evicted = if self.map.contains_key(&k) { None } else { self.make_room() };
		self.tick += 1;
		let tick = self.tick;
		let slot = self.map.entry(k.clone()).or_insert_with(|| (f(), tick));
		let last = std::mem::replace(&mut slot.1, tick);
		self.order.remove(&last);
		self.order.insert(tick, k);
		(&mut slot.0, evicted)
	}

	/// Inserts (or replaces) `k`, counted as a use; returns the entry evicted to make room, if
	/// any.
	pub(crate) fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
		let evicted = if self.map.contains_key(&k) { None } else { self.make_room() };
		self.tick += 1;
		if let Some((_, last)) = self.map.insert(k.clone(), (v, self.tick)) {
			self.order.remove(&last);
		}
		self.order.insert(self.tick, k);
		evicted
	}

	#[cfg(test)]
	/// Removes `k`.
	pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
		let (v, tick) = self.map.remove(k)?;
		self.order.remove(&tick);
		Some(v)
	}

	/// Every entry, in no particular order.
	pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
		self.map.iter().map(|(k, (v, _))| (k, v))
	}

	#[cfg(test)]
	fn touch(&mut self, k: &K) {
		if let Some(e) = self.map.get_mut(k) {
			self.tick += 1;
			self.order.remove(&e.1);
			e.1 = self.tick;
			self.order.insert(self.tick, k.clone());
		}
	}

	/// Evicts the least recently used entry if the map is full.
	fn make_room(&mut self) -> Option<(K, V)> {
		if self.map.len() < self.cap {
			return None;
		}
		let (_, k) = self.order.pop_first()?;
		let (v, _) = self.map.remove(&k)?;
		Some((k, v))
	}

	/// Checks the bookkeeping (tests): the order lists exactly the keys, at their last use.
	#[cfg(test)]
	fn check(&self) {
		assert_eq!(self.map.len(), self.order.len());
		assert!(self.map.len() <= self.cap);
		for (t, k) in &self.order {
			assert_eq!(self.map.get(k).map(|e| e.1), Some(*t));
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// The defect: an `Outboard` answer loaded the whole outboard (up to 256 MiB) with nothing
	/// counting it, so the answer slots together could hold gigabytes. Answers share a budget:
	/// what does not fit waits, then is `Busy`; one larger than the budget is served alone.
	#[tokio::test]
	async fn outboard_answers_share_a_memory_budget() {
		let budget = MemoryBudget::new(10 << 10);
		let short = Duration::from_millis(50);
		let a = budget.share(8 << 10, short).await.expect("fits");
		assert!(budget.share(4 << 10, short).await.is_none(), "8 + 4 KiB > 10 KiB: Busy");
		let b = budget.share(2 << 10, short).await.expect("8 + 2 KiB fits");
		drop(a);
		assert!(budget.share(1 << 30, short).await.is_none(), "the whole budget is not free");
		drop(b);
		let all = budget
			.share(1 << 30, short)
			.await
			.expect("larger than the budget: served alone");
		assert!(budget.share(1, short).await.is_none(), "and alone");
		drop(all);
		// Waiting works: a share freed while another waits goes to the waiter.
		let held = budget.share(10 << 10, short).await.unwrap();
		let waiter = tokio::spawn({
			let units = budget.units.clone();
			async move { units.acquire_many_owned(5).await.is_ok() }
		});
		tokio::time::sleep(short).await;
		drop(held);
		assert!(waiter.await.unwrap());
	}

	use libp2p::PeerId;

	#[test]
	fn many_identities_never_grow_the_map_past_its_cap() {
		let mut m: LruMap<PeerId, u64> = LruMap::new(100);
		let keep = PeerId::random();
		m.insert(keep, 7);
		let mut evicted = 0;
		for i in 0..10_000u64 {
			// The peer this node keeps dealing with stays; throwaway identities push each other out.
			*m.get_or_insert_with(keep, || 0).0 += 1;
			if m.get_or_insert_with(PeerId::random(), || i).1.is_some() {
				evicted += 1;
			}
			assert!(m.len() <= 100);
		}
		m.check();
		assert_eq!(m.len(), 100);
		assert_eq!(evicted, 10_000 - 99, "every insert past the cap evicted one");
		assert_eq!(m.peek(&keep), Some(&10_007), "the peer in use was never evicted");
	}

	#[test]
	fn the_least_recently_used_entry_goes_first() {
		let mut m = LruMap::new(3);
		assert!(m.insert("a", 1).is_none());
		assert!(m.insert("b", 2).is_none());
		assert!(m.insert("c", 3).is_none());
		// "a" used again: "b" is now the oldest.
		*m.get_mut(&"a").unwrap() += 10;
		assert_eq!(m.insert("d", 4), Some(("b", 2)));
		// Replacing a value evicts nothing; peeking is not a use.
		assert!(m.insert("c", 30).is_none());
		assert_eq!(m.peek(&"a"), Some(&11));
		assert_eq!(m.insert("e", 5), Some(("a", 11)));
		assert_eq!(m.remove(&"c"), Some(30));
		assert!(!m.contains_key(&"c"));
		assert!(m.insert("f", 6).is_none(), "room left by the removal");
		m.check();
		let mut keys: Vec<&str> = m.iter().map(|(k, _)| *k).collect();
		keys.sort();
		assert_eq!(keys, vec!["d", "e", "f"]);
	}
}
