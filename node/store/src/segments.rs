//! Segments: the authenticated index, heads and roots by seq, writes, and the staged index of a
//! snapshot transfer that becomes the segment's index only once every object is present and
//! the recomputed root equals the target.
use crate::{
	objects::is_small, oplog::head_op_hash, Cid, Peer, Result, SegmentState, Store, StoreError,
	HEADS, INDEX, OPS, ROOTS, STAGED, TRANSFERS,
};
use codec::Encode;
use redb::{Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use std::{sync::Arc, time::Instant};
use sync_primitives::{
	commitment::{Entry, Hash32, ProofError, RootFacts, SegmentTrie, MAX_KEY_LEN},
	outboard::Outboard,
	SegmentId,
};
use sync_proto::{Op, OpKind, OpSigner, SignedOp, CHECKPOINT_EVERY, MAX_OBJECT_BYTES, NO_PREV_OP};

/// A segment's state at a sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Head {
	/// Sequence number of the last applied write.
	pub seq: u64,
	/// Root facts at that seq.
	pub facts: RootFacts,
}

/// A snapshot transfer in progress.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Transfer {
	/// The target state.
	pub target: Head,
	/// Whether the index for the target has been fetched and verified.
	pub index_staged: bool,
}

pub(crate) fn facts_row(f: &RootFacts) -> crate::FactsRow {
	(f.root, f.leaves, f.entries, f.bytes)
}
fn row_facts((root, leaves, entries, bytes): crate::FactsRow) -> RootFacts {
	RootFacts { root, leaves, entries, bytes }
}

pub(crate) fn durable(db: &redb::Database) -> Result<WriteTransaction> {
	let mut tx = db.begin_write()?;
	tx.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.into()))?;
	Ok(tx)
}

/// Makes `head` the segment's head in `tx` (its root row is written by whoever applied its seq),
/// commits, and only then updates the in-memory state.
pub(crate) fn commit_head(
	tx: WriteTransaction,
	head_slot: &mut Option<Head>,
	segment: SegmentId,
	head: Head,
) -> Result<()> {
	let (r, l, e, b) = facts_row(&head.facts);
	tx.open_table(HEADS)?.insert(segment, (head.seq, r, l, e, b))?;
	// Root facts are kept per committed head (per batch), not per op: an op's root is in the log.
	tx.open_table(ROOTS)?.insert((segment, head.seq), (r, l, e, b))?;
	tx.commit()?;
	*head_slot = Some(head);
	Ok(())
}

/// The trie of the segment's rows in `index` (of one database snapshot).
fn index_trie(
	index: &redb::ReadOnlyTable<crate::IndexKey, crate::EntryRow>,
	segment: SegmentId,
) -> Result<SegmentTrie> {
	let mut trie = SegmentTrie::new();
	for row in index.range((segment, &[][..])..(segment + 1, &[][..]))? {
		let (k, v) = row?;
		let (cid, size) = v.value();
		trie.insert(Entry { key: k.value().1.to_vec(), cid, size });
	}
	Ok(trie)
}

/// Changes to a segment's in-memory trie made in place, undone on drop unless committed: a
/// batch that fails (or whose transaction does not commit) restores the previous entries, and
/// the root with them (it depends only on the set of entries). A write costs `O(ops · log n)`
/// instead of a clone of the whole trie.
pub(crate) struct TrieTxn<'a> {
	trie: &'a mut SegmentTrie,
	undo: Vec<(Vec<u8>, Option<Entry>)>,
}

impl<'a> TrieTxn<'a> {
	pub(crate) fn new(trie: &'a mut SegmentTrie) -> Self {
		TrieTxn { trie, undo: Vec::new() }
	}
	pub(crate) fn facts(&self) -> RootFacts {
		self.trie.facts()
	}
	/// Keeps the changes.
	pub(crate) fn commit(mut self) {
		self.undo.clear();
	}
}

impl Drop for TrieTxn<'_> {
	fn drop(&mut self) {
		for (key, prev) in self.undo.drain(..).rev() {
			match prev {
				Some(e) => {
					self.trie.insert(e);
				},
				None => {
					self.trie.remove(&key);
				},
			}
		}
	}
}

/// Applies one op's change to the segment's trie (undone with the [`TrieTxn`] unless it is
/// committed) and returns what the key mapped to before: the one place where a Primary's
/// writes, a follower's replay and the verification of ops change a trie.
pub(crate) fn trie_op(trie: &mut TrieTxn<'_>, kind: &OpKind) -> Result<Option<crate::EntryRow>> {
	let prev = match kind {
		OpKind::Put { key, cid, size } => {
			// A replayed op's size is not checked against the object: one that would overflow
			// the segment's totals is refused, leaving the trie (and so the undo log) unchanged.
			let prev = trie
				.trie
				.try_insert(Entry { key: key.clone(), cid: *cid, size: *size })
				.map_err(|_| StoreError::BadData {
					cid: Cid(*cid),
					reason: ProofError::Overflow,
				})?;
			trie.undo.push((key.clone(), prev.clone()));
			prev
		},
		OpKind::Delete { key } => {
			let prev = trie.trie.remove(key);
			trie.undo.push((key.clone(), prev.clone()));
			prev
		},
	};
	Ok(prev.map(|e| (e.cid, e.size)))
}

/// Who a listing is for: a peer's request may be refused to bound the work peers cause
/// ([`StoreError::Throttled`]); the store's own (pinning, finishing a transfer) never is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asker {
	Peer(Peer),
	Store,
}

/// Writes one op's change to the segment's index table (its trie change is [`trie_op`]).
pub(crate) fn index_write(
	index: &mut redb::Table<crate::IndexKey, crate::EntryRow>,
	segment: SegmentId,
	kind: &OpKind,
) -> Result<()> {
	match kind {
		OpKind::Put { key, cid, size } => {
			index.insert((segment, key.as_slice()), (*cid, *size))?;
		},
		OpKind::Delete { key } => {
			index.remove((segment, key.as_slice()))?;
		},
	}
	Ok(())
}

/// Applies one op's change to the segment's trie and index table: [`trie_op`], then
/// [`index_write`] (nothing is written if the trie refuses the change).
pub(crate) fn index_op(
	index: &mut redb::Table<crate::IndexKey, crate::EntryRow>,
	trie: &mut TrieTxn<'_>,
	segment: SegmentId,
	kind: &OpKind,
) -> Result<Option<crate::EntryRow>> {
	let prev = trie_op(trie, kind)?;
	index_write(index, segment, kind)?;
	Ok(prev)
}

/// A write to a segment.
#[derive(Clone, Debug)]
pub enum SegmentWrite {
	/// Store `data` under `key`.
	Put {
		/// Object key.
		key: Vec<u8>,
		/// Object bytes.
		data: Vec<u8>,
	},
	/// Store an uploaded object under `key` (see [`Store::begin_upload`]): the streamed
	/// counterpart of `Put`, whose bytes are already on disk and hashed.
	PutStaged {
		/// Object key.
		key: Vec<u8>,
		/// The upload.
		object: crate::upload::StagedObject,
	},
	/// Remove `key`.
	Delete {
		/// Object key.
		key: Vec<u8>,
	},
}

impl Store {
	pub(crate) fn load_segments(&self) -> Result<()> {
		let tx = self.inner.db.begin_read()?;
		let heads = tx.open_table(HEADS)?;
		let index = tx.open_table(INDEX)?;
		let mut segments = self.inner.segments.lock();
		for row in heads.iter()? {
			let (seg, v) = row?;
			let (seq, r, l, e, b) = v.value();
			let seg = seg.value();
			let trie = index_trie(&index, seg)?;
			let facts = row_facts((r, l, e, b));
			if trie.facts() != facts {
				return Err(StoreError::Corrupt(format!(
					"segment {seg}: index does not hash to its head"
				)));
			}
			segments
				.insert(seg, SegmentState { trie, head: Some(Head { seq, facts }), fenced: false });
		}
		Ok(())
	}

	/// Segments with a head in this store.
	pub fn segments(&self) -> Vec<SegmentId> {
		let mut v: Vec<_> = self
			.inner
			.segments
			.lock()
			.iter()
			.filter(|(_, s)| s.head.is_some())
			.map(|(k, _)| *k)
			.collect();
		v.sort();
		v
	}

	/// The segment's current head.
	pub fn head(&self, segment: SegmentId) -> Option<Head> {
		self.inner.segments.lock().get(&segment).and_then(|s| s.head)
	}

	/// The root facts the segment had at `seq`, kept for every committed head (each write
	/// batch, replayed batch or finished transfer; an op's own root is in its log entry) and
	/// pruned with the log.
	pub fn root_at(&self, segment: SegmentId, seq: u64) -> Result<Option<RootFacts>> {
		let tx = self.inner.db.begin_read()?;
		Ok(tx.open_table(ROOTS)?.get((segment, seq))?.map(|v| row_facts(v.value())))
	}

	/// The index entry for `key`.
	pub fn lookup(&self, segment: SegmentId, key: &[u8]) -> Option<Entry> {
		self.inner.segments.lock().get(&segment)?.trie.get(key).cloned()
	}

	/// Applies writes to a segment in one durable transaction (each write is one seq) and
	/// returns the new head. Large objects are written as files before the index refers to them.
	/// No op log is kept (see [`Store::apply_signed`] for the Primary's write path). Keys longer
	/// than `MAX_KEY_LEN` and objects larger than [`MAX_OBJECT_BYTES`] are refused
	/// ([`StoreError::KeyTooLong`], [`StoreError::ObjectTooLarge`]) and nothing is written.
	pub fn apply(&self, segment: SegmentId, writes: Vec<SegmentWrite>) -> Result<Head> {
		self.apply_inner(segment, writes, None).map(|(head, _)| head)
	}

	pub(crate) fn apply_inner(
		&self,
		segment: SegmentId,
		writes: Vec<SegmentWrite>,
		signer: Option<&dyn OpSigner>,
	) -> Result<(Head, Vec<SignedOp>)> {
		for w in &writes {
			let (key, size) = match w {
				SegmentWrite::Put { key, data } => (key, data.len() as u64),
				SegmentWrite::PutStaged { key, object } => (key, object.size),
				SegmentWrite::Delete { key } => (key, 0),
			};
			if key.len() > MAX_KEY_LEN as usize {
				return Err(StoreError::KeyTooLong(key.len()));
			}
			if size > MAX_OBJECT_BYTES {
				return Err(StoreError::ObjectTooLarge(size));
			}
		}
		let mut segs = self.inner.segments.lock();
		let SegmentState { trie, head: head_slot, fenced } = segs.entry(segment).or_default();
		if *fenced {
			return Err(StoreError::Fenced { segment, seq: head_slot.map_or(0, |h| h.seq) });
		}
		let mut trie = TrieTxn::new(trie);
		let start = head_slot.unwrap_or(Head { seq: 0, facts: trie.facts() });
		let mut seq = start.seq;
		let mut signed = Vec::new();
		let tx = durable(&self.inner.db)?;
		{
			let mut index = tx.open_table(INDEX)?;
			let mut ops = tx.open_table(OPS)?;
			let mut undo = tx.open_table(crate::UNDO)?;
			// The op chain (see the oplog module): the first op names the logged op that produced
			// the head (none: a state from a snapshot, or the first write), each later one the op
			// made just before it.
			let mut prev_op = match signer {
				Some(signer) => match head_op_hash(&ops, segment, &start)? {
					// An owner writes in its own epoch, never below the one its log reached
					// (followers would refuse the ops).
					Some((_, epoch)) if signer.epoch() < epoch => {
						return Err(StoreError::EpochRegressed { segment, seq: start.seq + 1 })
					},
					Some((hash, _)) => hash,
					None => NO_PREV_OP,
				},
				None => NO_PREV_OP,
			};
			let last = writes.len();
			for (i, w) in writes.iter().enumerate() {
				seq += 1;
				let prev_root = trie.facts().root;
				let kind = match w {
					SegmentWrite::Put { key, data } => {
						let (cid, ob) = Outboard::compute(data);
						let size = data.len() as u64;
						if is_small(size) {
							self.inner.objects.put_small_in(&tx, &cid, data)?;
						} else {
							self.inner.objects.put_large_in(&tx, &cid, data, &ob)?;
						}
						OpKind::Put { key: key.clone(), cid, size }
					},
					SegmentWrite::PutStaged { key, object } => {
						use crate::upload::StagedBody;
						match &object.body {
							StagedBody::Small(data) => {
								self.inner.objects.put_small_in(&tx, &object.cid, data)?
							},
							StagedBody::File(file) => {
								self.inner.objects.put_staged_in(&tx, object, file)?
							},
						}
						OpKind::Put { key: key.clone(), cid: object.cid, size: object.size }
					},
					SegmentWrite::Delete { key } => OpKind::Delete { key: key.clone() },
				};
				let prev = index_op(&mut index, &mut trie, segment, &kind)?;
				let facts = trie.facts();
				if let Some(signer) = signer {
					undo.insert((segment, seq), prev)?;
					let epoch = signer.epoch();
					let op =
						Op { segment, epoch, seq, prev_op, kind, prev_root, new_root: facts.root };
					prev_op = op.hash();
					// Checkpoints only (see the oplog module): the batch's last op and every
					// CHECKPOINT_EVERY-th seq, so any window of that many ops holds one.
					let checkpoint = i + 1 == last || seq % CHECKPOINT_EVERY == 0;
					let signature = if checkpoint { signer.sign_op(&op) } else { Vec::new() };
					let op = SignedOp { signature, signer: signer.public(), op };
					ops.insert((segment, seq), op.encode().as_slice())?;
					signed.push(op);
				}
			}
		}
		let head = Head { seq, facts: trie.facts() };
		commit_head(tx, head_slot, segment, head)?;
		trie.commit();
		Ok((head, signed))
	}

	/// Entries `[start, start + count)` of the segment's index in trie order, if this store
	/// holds the segment at `root` (as its head, a pinned snapshot, or the verified index of a
	/// transfer), plus the total number of entries, for `peer`: a listing not in memory is built
	/// only within that class of peers' budget ([`StoreError::Throttled`] otherwise, see
	/// [`HEAD_LISTING_SHARE`](crate::HEAD_LISTING_SHARE)). Never waits for a write (see
	/// [`Store::listing`]).
	pub fn index_page(
		&self,
		segment: SegmentId,
		root: &Hash32,
		start: u64,
		count: u64,
		peer: Peer,
	) -> Result<(Vec<Entry>, u64)> {
		let listing = self.listing_for(segment, root, Asker::Peer(peer))?;
		let total = listing.len() as u64;
		let s = start.min(total) as usize;
		let e = start.saturating_add(count).min(total) as usize;
		Ok((listing[s..e].to_vec(), total))
	}

	/// The full entry list of the segment at `root`, in trie order: a pinned snapshot's, the
	/// head's or the staged index of a transfer; [`StoreError::UnknownSegment`] at any other
	/// root.
	///
	/// Never takes the segment lock, which a write holds for its whole batch: what a peer asks
	/// for over and over (index pages, at whatever root it names) must not stall the store's
	/// writers and readers. The head's listing is read from one database snapshot, cached
	/// while the head stays at its root, and otherwise built outside the segment lock.
	pub fn listing(&self, segment: SegmentId, root: &Hash32) -> Result<Arc<Vec<Entry>>> {
		self.listing_for(segment, root, Asker::Store)
	}

	fn listing_for(
		&self,
		segment: SegmentId,
		root: &Hash32,
		asker: Asker,
	) -> Result<Arc<Vec<Entry>>> {
		if let Some((_, l)) = self
			.inner
			.pinned
			.lock()
			.get(&segment)
			.and_then(|q| q.iter().find(|(h, _)| h.facts.root == *root))
		{
			return Ok(l.clone());
		}
		if let Some(l) = self.head_listing(segment, root, asker)? {
			return Ok(l);
		}
		match self.staged_index_for(segment, Some(root), asker)? {
			Some((facts, l)) if facts.root == *root => Ok(l),
			_ => Err(StoreError::UnknownSegment(segment)),
		}
	}

	/// Whether `asker` may have a listing built now: always for the store itself, within its
	/// class's budget for a peer.
	fn may_build(&self, asker: Asker, segment: SegmentId) -> Result<()> {
		match asker {
			Asker::Peer(p)
				if self.inner.peer_builds.lock()[p as usize]
					.is_some_and(|next| Instant::now() < next) =>
			{
				Err(StoreError::Throttled(segment))
			},
			_ => Ok(()),
		}
	}

	/// One listing build for `asker`, or what a build that ran meanwhile left in `cached`: a
	/// peer beyond its class's budget is refused before it waits for a running build (and
	/// again after, its turn may have gone meanwhile); builds run one at a time under
	/// `head_build`, so requests racing for one listing build it once; a peer's class is
	/// charged for the time it took (failed builds cost too).
	fn build_once<T>(
		&self,
		asker: Asker,
		segment: SegmentId,
		cached: impl Fn() -> Option<T>,
		build: impl FnOnce() -> Result<T>,
	) -> Result<T> {
		self.may_build(asker, segment)?;
		let _building = self.inner.head_build.lock();
		if let Some(t) = cached() {
			return Ok(t);
		}
		self.may_build(asker, segment)?;
		let began = Instant::now();
		let built = build();
		if let Asker::Peer(p) = asker {
			let ended = Instant::now();
			let mut budget = self.inner.peer_builds.lock();
			budget[p as usize] = Some(crate::next_build(budget[p as usize], ended, ended - began));
		}
		built
	}

	/// The listing of the segment's index at its head, if the head is at `root`, read from one
	/// database snapshot: the head row and the index rows committed with it (every write,
	/// replay and finished transfer commits both in one transaction). Cached per segment
	/// while the root stays the head's; otherwise built from the snapshot into a trie, which
	/// must hash to the head ([`StoreError::Corrupt`] if not), under `head_build` only: never
	/// the segment lock, so a write goes on while a peer's request builds a listing. A build a
	/// peer asks for beyond its class's budget is refused ([`StoreError::Throttled`], see
	/// [`HEAD_LISTING_SHARE`](crate::HEAD_LISTING_SHARE)).
	fn head_listing(
		&self,
		segment: SegmentId,
		root: &Hash32,
		asker: Asker,
	) -> Result<Option<Arc<Vec<Entry>>>> {
		let tx = self.inner.db.begin_read()?;
		let Some((seq, facts)) = tx.open_table(HEADS)?.get(segment)?.map(|v| {
			let (seq, r, l, e, b) = v.value();
			(seq, row_facts((r, l, e, b)))
		}) else {
			return Ok(None);
		};
		if facts.root != *root {
			return Ok(None);
		}
		let cached = || {
			self.inner
				.head_listings
				.lock()
				.get(&segment)
				.filter(|(_, (f, _))| *f == facts)
				.map(|(_, (_, l))| l.clone())
		};
		if let Some(l) = cached() {
			return Ok(Some(l));
		}
		let listing = self.build_once(asker, segment, cached, || {
			let trie = index_trie(&tx.open_table(INDEX)?, segment)?;
			if trie.facts() != facts {
				return Err(StoreError::Corrupt(format!(
					"segment {segment}: index does not hash to its head"
				)));
			}
			let listing: Arc<Vec<Entry>> = Arc::new(trie.entries().into_iter().cloned().collect());
			// A build that waited behind a newer one never replaces the newer listing.
			let mut cache = self.inner.head_listings.lock();
			if cache.get(&segment).is_none_or(|(s, _)| *s <= seq) {
				cache.insert(segment, (seq, (facts, listing.clone())));
			}
			Ok(listing)
		})?;
		Ok(Some(listing))
	}

	/// Stops local writes to `segment` ([`Store::apply`], [`Store::apply_signed`] answer
	/// [`StoreError::Fenced`]) and returns the head they stop at: the owner's last op, which it
	/// seals on chain for a handover. Under the segment lock, so a write either lands before
	/// the fence (and is in the returned head) or is refused. Replays (a follower's path) are
	/// not fenced. In memory: a restart lifts the fence, and the node fences again while the
	/// chain still shows the handover.
	pub fn fence(&self, segment: SegmentId) -> Option<Head> {
		let mut segs = self.inner.segments.lock();
		let state = segs.entry(segment).or_default();
		state.fenced = true;
		state.head
	}

	/// Takes local writes to `segment` again (a cancelled handover, or the node owns the
	/// segment again in a later epoch).
	pub fn unfence(&self, segment: SegmentId) {
		if let Some(state) = self.inner.segments.lock().get_mut(&segment) {
			state.fenced = false;
		}
	}

	/// Whether local writes to `segment` are fenced, and at which head.
	pub fn fenced(&self, segment: SegmentId) -> Option<Option<Head>> {
		self.inner.segments.lock().get(&segment).filter(|s| s.fenced).map(|s| s.head)
	}

	/// Takes `segment` back to its state at `seq`, which must hash to `expected` (else
	/// [`StoreError::RootMismatch`]): the logged ops after `seq` are undone and dropped, with
	/// their roots and pins. For an owner whose ownership epoch starts at `seq + 1` while its
	/// log runs on in an older epoch (the chain sealed that epoch at its latest commit): those
	/// ops are not part of the segment. [`StoreError::Pruned`] if the log no longer reaches
	/// back to `seq`. Objects stay (the collector deletes unreferenced ones with the segment).
	pub fn rewind(&self, segment: SegmentId, seq: u64, expected: &RootFacts) -> Result<Head> {
		let before = self.head(segment);
		let trie = self.trie_at(segment, seq)?;
		if trie.facts() != *expected {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		let target = Head { seq, facts: *expected };
		let mut segs = self.inner.segments.lock();
		let state = segs.get_mut(&segment).ok_or(StoreError::UnknownSegment(segment))?;
		let Some(head) = state.head else { return Err(StoreError::UnknownSegment(segment)) };
		if head.seq == seq {
			return Ok(head);
		}
		if state.head != before {
			// Written or replayed meanwhile: the undone trie is of an older head. The caller
			// (the planner, every finalized block) asks again.
			return Err(StoreError::NotReached { segment, seq: head.seq, head: head.seq });
		}
		let tx = durable(&self.inner.db)?;
		{
			let mut index = tx.open_table(INDEX)?;
			index.retain_in((segment, &[][..])..(segment + 1, &[][..]), |_, _| false)?;
			for e in trie.entries() {
				index.insert((segment, e.key.as_slice()), (e.cid, e.size))?;
			}
			let after = (segment, seq + 1)..=(segment, u64::MAX);
			tx.open_table(crate::OPS)?.retain_in(after.clone(), |_, _| false)?;
			tx.open_table(crate::UNDO)?.retain_in(after.clone(), |_, _| false)?;
			tx.open_table(crate::ROOTS)?.retain_in(after, |_, _| false)?;
		}
		if let Some(q) = self.inner.pinned.lock().get_mut(&segment) {
			q.retain(|(h, _)| h.seq <= seq);
		}
		self.inner.head_listings.lock().remove(&segment);
		commit_head(tx, &mut state.head, segment, target)?;
		state.trie = trie;
		Ok(target)
	}

	/// Keeps the segment's current state servable (index pages at its root) after later writes,
	/// so Replicas can snapshot-sync to a committed root while the Primary keeps writing. The
	/// last [`PINNED_SNAPSHOTS`](crate::PINNED_SNAPSHOTS) pins are kept, in memory: a Primary
	/// pins what it commits on chain and re-pins after a restart. Objects are never deleted
	/// while pinned (see [`Store::drop_segment`], the only deleter).
	pub fn pin_snapshot(&self, segment: SegmentId) -> Result<Option<Head>> {
		let Some(head) = self.head(segment) else { return Ok(None) };
		let listing = self.listing(segment, &head.facts.root)?;
		self.keep_pin(segment, head, listing);
		Ok(Some(head))
	}

	/// Pins the state the segment had at `seq` (a root the chain committed, which a follower has
	/// usually passed by the time it learns of the commit): the index is rebuilt from the head's
	/// with the later logged ops undone ([`Store::trie_at`]) and must hash to `expected`, or
	/// nothing is pinned ([`StoreError::RootMismatch`]). [`StoreError::Pruned`] if the log no
	/// longer reaches back to `seq`.
	pub fn pin_at(&self, segment: SegmentId, seq: u64, expected: &RootFacts) -> Result<Head> {
		if let Some(h) = self.pinned(segment).into_iter().find(|h| h.seq == seq) {
			return if h.facts == *expected {
				Ok(h)
			} else {
				Err(StoreError::RootMismatch { segment, seq })
			};
		}
		let trie = self.trie_at(segment, seq)?;
		if trie.facts() != *expected {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		let head = Head { seq, facts: *expected };
		self.keep_pin(segment, head, Arc::new(trie.entries().into_iter().cloned().collect()));
		Ok(head)
	}

	/// The root the segment had at `seq`, if the store can still tell (and prove) it: the head's
	/// at the head, else the root before the logged op `seq + 1` when every op after `seq` is
	/// still logged. `None` after the head or before the log.
	pub fn provable_root(&self, segment: SegmentId, seq: u64) -> Option<Hash32> {
		let head = self.head(segment)?;
		if seq == head.seq {
			return Some(head.facts.root);
		}
		if seq > head.seq || self.first_logged(segment).ok()??.saturating_sub(1) > seq {
			return None;
		}
		// The root after op `seq` is the root before op `seq + 1`.
		self.ops(segment, seq + 1, 1).ok()?.first().map(|o| o.op.prev_root)
	}

	/// Adds a pin, keeping the newest [`PINNED_SNAPSHOTS`](crate::PINNED_SNAPSHOTS) by seq.
	fn keep_pin(&self, segment: SegmentId, head: Head, listing: Arc<Vec<Entry>>) {
		let mut pinned = self.inner.pinned.lock();
		let q = pinned.entry(segment).or_default();
		if q.iter().any(|(h, _)| *h == head) {
			return;
		}
		let at = q.iter().position(|(h, _)| h.seq > head.seq).unwrap_or(q.len());
		q.insert(at, (head, listing));
		while q.len() > crate::PINNED_SNAPSHOTS {
			q.pop_front();
		}
	}

	/// The pinned snapshots of a segment, oldest first.
	pub fn pinned(&self, segment: SegmentId) -> Vec<Head> {
		self.inner
			.pinned
			.lock()
			.get(&segment)
			.map(|q| q.iter().map(|(h, _)| *h).collect())
			.unwrap_or_default()
	}

	// --- transfers --------------------------------------------------------------------------

	/// The transfer in progress for `segment`, if any (survives restarts).
	pub fn transfer(&self, segment: SegmentId) -> Result<Option<Transfer>> {
		let tx = self.inner.db.begin_read()?;
		Ok(tx.open_table(TRANSFERS)?.get(segment)?.map(|v| {
			let (seq, r, l, e, b, staged) = v.value();
			Transfer { target: Head { seq, facts: row_facts((r, l, e, b)) }, index_staged: staged }
		}))
	}

	/// Starts (or resumes, if the target is unchanged) a snapshot transfer of `segment` to
	/// `target`. A different target replaces the old transfer; objects already fetched stay.
	pub fn begin_transfer(&self, segment: SegmentId, target: Head) -> Result<Transfer> {
		if let Some(t) = self.transfer(segment)? {
			if t.target == target {
				return Ok(t);
			}
		}
		let tx = durable(&self.inner.db)?;
		{
			let mut staged = tx.open_table(STAGED)?;
			staged.retain_in((segment, &[][..])..(segment + 1, &[][..]), |_, _| false)?;
			let (r, l, e, b) = facts_row(&target.facts);
			tx.open_table(TRANSFERS)?.insert(segment, (target.seq, r, l, e, b, false))?;
		}
		tx.commit()?;
		self.inner.staged.lock().remove(&segment);
		Ok(Transfer { target, index_staged: false })
	}

	/// Verifies a fetched index against the transfer's target root and stages it durably.
	pub fn stage_index(&self, segment: SegmentId, entries: Vec<Entry>) -> Result<()> {
		let t = self.transfer(segment)?.ok_or(StoreError::NoTransfer(segment))?;
		let mut trie = SegmentTrie::new();
		for e in &entries {
			if e.key.len() > MAX_KEY_LEN as usize {
				return Err(StoreError::KeyTooLong(e.key.len()));
			}
			if trie.insert(e.clone()).is_some() {
				return Err(StoreError::IndexMismatch {
					segment,
					expected: Cid(t.target.facts.root),
				});
			}
		}
		if trie.facts() != t.target.facts {
			return Err(StoreError::IndexMismatch { segment, expected: Cid(t.target.facts.root) });
		}
		// No write or replay makes an object this large, so no honest root holds one; asking
		// for it would size outboards and deadlines from it.
		if let Some(e) = entries.iter().find(|e| e.size > MAX_OBJECT_BYTES) {
			return Err(StoreError::ObjectTooLarge(e.size));
		}
		let tx = durable(&self.inner.db)?;
		{
			let mut staged = tx.open_table(STAGED)?;
			for e in &entries {
				staged.insert((segment, e.key.as_slice()), (e.cid, e.size))?;
			}
			let (r, l, en, b) = facts_row(&t.target.facts);
			tx.open_table(TRANSFERS)?.insert(segment, (t.target.seq, r, l, en, b, true))?;
		}
		tx.commit()?;
		let listing: Arc<Vec<Entry>> = Arc::new(trie.entries().into_iter().cloned().collect());
		self.inner.staged.lock().insert(segment, (t.target.facts, listing));
		Ok(())
	}

	/// The verified index of the transfer in progress, in trie order.
	pub fn staged_index(&self, segment: SegmentId) -> Result<Option<(RootFacts, Arc<Vec<Entry>>)>> {
		self.staged_index_for(segment, None, Asker::Store)
	}

	/// [`Store::staged_index`] for `asker`, if the transfer's target is at `root` (when given):
	/// a rebuild (not cached: after a restart, or a staged index that does not verify) is
	/// made only for a request at the target's root, one at a time (under `head_build`, so
	/// requests racing for it build it once), and counts against a peer's budget.
	fn staged_index_for(
		&self,
		segment: SegmentId,
		root: Option<&Hash32>,
		asker: Asker,
	) -> Result<Option<(RootFacts, Arc<Vec<Entry>>)>> {
		let cached = || self.inner.staged.lock().get(&segment).cloned();
		if let Some(s) = cached() {
			return Ok(Some(s));
		}
		let Some(t) = self.transfer(segment)? else { return Ok(None) };
		if !t.index_staged || root.is_some_and(|r| *r != t.target.facts.root) {
			return Ok(None);
		}
		let staged = self.build_once(asker, segment, cached, || {
			let tx = self.inner.db.begin_read()?;
			let mut trie = SegmentTrie::new();
			for row in tx.open_table(STAGED)?.range((segment, &[][..])..(segment + 1, &[][..]))? {
				let (k, v) = row?;
				let (cid, size) = v.value();
				trie.insert(Entry { key: k.value().1.to_vec(), cid, size });
			}
			if trie.facts() != t.target.facts {
				return Err(StoreError::Corrupt(format!(
					"segment {segment}: staged index does not hash to its target"
				)));
			}
			let listing: Arc<Vec<Entry>> = Arc::new(trie.entries().into_iter().cloned().collect());
			self.inner.staged.lock().insert(segment, (t.target.facts, listing.clone()));
			Ok((t.target.facts, listing))
		})?;
		Ok(Some(staged))
	}

	/// Completes the transfer: every object must be present and the staged index must hash to
	/// the target; then the index and head are swapped in one durable transaction.
	pub fn finish_transfer(&self, segment: SegmentId) -> Result<Head> {
		self.flush()?;
		let t = self.transfer(segment)?.ok_or(StoreError::NoTransfer(segment))?;
		let (_, listing) = self.staged_index(segment)?.ok_or(StoreError::NoTransfer(segment))?;
		let mut missing = 0;
		let mut trie = SegmentTrie::new();
		{
			// Durably present only (committed, or renamed with its directory synced): the head
			// committed below must never reference an object a crash could still take away.
			let tx = self.inner.db.begin_read()?;
			let (blobs, outboards) =
				(tx.open_table(crate::BLOBS)?, tx.open_table(crate::OUTBOARDS)?);
			for e in listing.iter() {
				if !self.has_object_in(&blobs, &outboards, &e.cid, e.size)? {
					missing += 1;
				}
				trie.insert(e.clone());
			}
		}
		if missing > 0 {
			return Err(StoreError::Incomplete { segment, missing });
		}
		if trie.facts() != t.target.facts {
			return Err(StoreError::IndexMismatch { segment, expected: Cid(t.target.facts.root) });
		}
		// The segment lock before the write transaction, as every other writer takes them
		// (`apply_inner`, `replay`, `drop_segment`): the other order deadlocks with them.
		let mut segs = self.inner.segments.lock();
		let tx = durable(&self.inner.db)?;
		{
			let mut index = tx.open_table(INDEX)?;
			index.retain_in((segment, &[][..])..(segment + 1, &[][..]), |_, _| false)?;
			for e in listing.iter() {
				index.insert((segment, e.key.as_slice()), (e.cid, e.size))?;
			}
			tx.open_table(STAGED)?
				.retain_in((segment, &[][..])..(segment + 1, &[][..]), |_, _| false)?;
			tx.open_table(TRANSFERS)?.remove(segment)?;
			// The log described the state being replaced: after a re-sync to an earlier
			// committed seq (the local state disagreed with the chain) its ops above that seq
			// are of another history and would be taken for applied ones. A state that came
			// from a snapshot has no log before it.
			let all = (segment, 0)..=(segment, u64::MAX);
			tx.open_table(crate::OPS)?.retain_in(all.clone(), |_, _| false)?;
			tx.open_table(crate::UNDO)?.retain_in(all.clone(), |_, _| false)?;
			tx.open_table(crate::ROOTS)?.retain_in(all, |_, _| false)?;
		}
		self.inner.pinned.lock().remove(&segment);
		let state = segs.entry(segment).or_default();
		commit_head(tx, &mut state.head, segment, t.target)?;
		state.trie = trie;
		self.inner.staged.lock().remove(&segment);
		self.inner
			.head_listings
			.lock()
			.insert(segment, (t.target.seq, (t.target.facts, listing)));
		Ok(t.target)
	}
}
