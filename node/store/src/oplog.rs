//! The delta log: every write the owning Primary accepts becomes an [`Op`](sync_proto::Op) with
//! the next per-segment seq, the hash of the op before it, and the root before and after it,
//! signed by the Primary at checkpoints. Ops are stored in the same durable transaction as the
//! index change they describe, so the log and the index never disagree after a crash. Followers
//! [`Store::replay`] ops in seq order, exactly once: a seq already applied is skipped if it is
//! the same op and refused if it is not, a gap is refused, and every op must start from the
//! current root and end at the root it claims. [`Store::verify_ops`] runs the same checks
//! without changing anything (and without needing the objects).
//!
//! # Checkpoint signatures and the op chain
//! Signing and verifying every op would cap a Primary at tens of thousands of writes per second
//! per core (an Ed25519 signature is ~20 µs to make or check). The Primary signs *checkpoints*
//! instead: the last op of each write batch and every
//! [`CHECKPOINT_EVERY`](sync_proto::CHECKPOINT_EVERY)-th seq. Ops between checkpoints carry an
//! empty signature.
//!
//! The root chain alone (each op's `prev_root` is the root before it, its `new_root` the root a
//! follower recomputes) binds only where a batch ends, not how it got there: a holder could
//! hand a follower any other path of unsigned ops from the follower's root to the checkpoint's
//! `prev_root` (the same writes in another order, say), and the follower's log, undo records
//! and so its proofs at the seqs in between would then be the holder's invention. So every op
//! also names the [`Op::hash`](sync_proto::Op::hash) of the op before it (`prev_op`), and replay
//! requires, for consecutive applied ops, `ops[i].prev_op == ops[i - 1].op.hash()`, and for the
//! first applied op, if this store logs the op that produced its head and the first op's
//! `prev_op` is not [`NO_PREV_OP`] (a writer that started from a snapshot), that it names that
//! op ([`StoreError::BrokenChain`] within a batch, [`StoreError::Forked`] against the logged head). A batch must end on a checkpoint whose signature
//! covers its `prev_op`, so that one signature authenticates every op of the batch, in order:
//! another path to the same root would need a BLAKE3 collision with an op hash the Primary
//! signed into the chain. [`Store::replay`] refuses a batch that does not end on a checkpoint
//! (nothing of it is applied).
//!
//! What the chain does not give: a follower whose head came from a snapshot (nothing logged at
//! its head) cannot tell whether the first op of a batch follows the op that produced its state
//! (the root chain still requires it to start from that state's root); and it authenticates the
//! Primary's history, not the Primary's honesty (a Primary can sign two different histories;
//! the chain only knows which roots it committed).
//!
//! The store does not know key types: signing and checking go through
//! [`OpSigner`](sync_proto::OpSigner) and [`OpVerifier`](sync_proto::OpVerifier), which the data
//! plane implements with the node's network key and the chain's list of Primaries of the
//! segment (and both carry the chain's genesis hash, part of every signed payload).
use crate::{
	segments::{commit_head, durable, index_write, trie_op, TrieTxn},
	EntryRow, Head, Result, SegmentState, Store, StoreError, BLOBS, INDEX, OPS, ROOTS,
};
use codec::{Decode, Encode};
use redb::{ReadableDatabase, ReadableTable};
use sync_primitives::{
	commitment::{Hash32, SegmentTrie, MAX_KEY_LEN},
	SegmentId,
};
use sync_proto::{
	Epoch, OpKind, OpSigner, OpVerifier, SignedAt, SignedOp, MAX_OBJECT_BYTES, MAX_SIGNATURE_BYTES,
	MAX_SIGNER_BYTES, NO_PREV_OP,
};

/// Decodes a logged op.
fn decode_op(segment: SegmentId, mut bytes: &[u8]) -> Result<SignedOp> {
	SignedOp::decode(&mut bytes)
		.map_err(|e| StoreError::Corrupt(format!("segment {segment}: undecodable op: {e}")))
}

/// [`Op::hash`](sync_proto::Op::hash) of the logged op that produced `head` — what the next
/// op's `prev_op` names — or `None` if this store does not log it (seq 0, a state from a
/// snapshot or from unlogged writes, or a logged op at that seq that does not end at `head`'s
/// root).
pub(crate) fn head_op_hash(
	log: &impl ReadableTable<(u64, u64), &'static [u8]>,
	segment: SegmentId,
	head: &Head,
) -> Result<Option<(Hash32, Epoch)>> {
	if head.seq == 0 {
		return Ok(None);
	}
	let Some(row) = log.get((segment, head.seq))? else { return Ok(None) };
	let signed = decode_op(segment, row.value())?;
	Ok((signed.op.new_root == head.facts.root).then(|| (signed.op.hash(), signed.op.epoch)))
}

/// What the next op's `prev_op` must name (see the module docs).
#[derive(Clone, Copy)]
enum Link {
	/// The op that produced the head is not logged here: any `prev_op`.
	Unknown,
	/// The logged op that produced the head: its hash, or [`NO_PREV_OP`] (its writer did not
	/// have it).
	Logged(Hash32),
	/// An op applied earlier in the same batch: exactly its hash.
	Batch(Hash32),
}

impl Link {
	fn allows(self, prev_op: &Hash32) -> bool {
		match self {
			Link::Unknown => true,
			Link::Logged(hash) => *prev_op == NO_PREV_OP || *prev_op == hash,
			Link::Batch(hash) => *prev_op == hash,
		}
	}
}

/// What differs between [`Store::replay`] and [`Store::verify_ops`]; every check is in
/// [`check_batch`], once.
trait Sink {
	/// The encoded op logged at `(segment, seq)`, if any.
	fn logged(&self, segment: SegmentId, seq: u64) -> Result<Option<Vec<u8>>>;
	/// The hash and epoch of the logged op that produced `head` (see [`head_op_hash`]).
	fn head_op(&self, segment: SegmentId, head: &Head) -> Result<Option<(Hash32, Epoch)>>;
	/// Checks that the object `(cid, size)` a `Put` names may be referred to.
	fn object(&self, cid: &Hash32, size: u64) -> Result<()>;
	/// Records an applied op whose trie change is made; `prev` is what its key mapped to before.
	fn record(
		&mut self,
		segment: SegmentId,
		signed: &SignedOp,
		prev: Option<EntryRow>,
	) -> Result<()>;
}

/// Replay: objects must be present; the index, the log and the undo records are written (in
/// the caller's transaction, committed only if the whole batch passes).
struct Replaying<'s, 't> {
	store: &'s Store,
	index: redb::Table<'t, crate::IndexKey, EntryRow>,
	log: redb::Table<'t, (u64, u64), &'static [u8]>,
	undo: redb::Table<'t, (u64, u64), Option<EntryRow>>,
	blobs: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
	outboards: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
}

impl Sink for Replaying<'_, '_> {
	fn logged(&self, segment: SegmentId, seq: u64) -> Result<Option<Vec<u8>>> {
		Ok(self.log.get((segment, seq))?.map(|v| v.value().to_vec()))
	}
	fn head_op(&self, segment: SegmentId, head: &Head) -> Result<Option<(Hash32, Epoch)>> {
		head_op_hash(&self.log, segment, head)
	}
	fn object(&self, cid: &Hash32, size: u64) -> Result<()> {
		if self.store.has_object_in(&self.blobs, &self.outboards, cid, size)? {
			Ok(())
		} else {
			Err(StoreError::UnknownObject(crate::Cid(*cid)))
		}
	}
	fn record(
		&mut self,
		segment: SegmentId,
		signed: &SignedOp,
		prev: Option<EntryRow>,
	) -> Result<()> {
		let seq = signed.op.seq;
		index_write(&mut self.index, segment, &signed.op.kind)?;
		self.log.insert((segment, seq), signed.encode().as_slice())?;
		self.undo.insert((segment, seq), prev)?;
		Ok(())
	}
}

/// Verification: objects need not be present, nothing is written (a read transaction).
struct Verifying {
	log: redb::ReadOnlyTable<(u64, u64), &'static [u8]>,
}

impl Sink for Verifying {
	fn logged(&self, segment: SegmentId, seq: u64) -> Result<Option<Vec<u8>>> {
		Ok(self.log.get((segment, seq))?.map(|v| v.value().to_vec()))
	}
	fn head_op(&self, segment: SegmentId, head: &Head) -> Result<Option<(Hash32, Epoch)>> {
		head_op_hash(&self.log, segment, head)
	}
	fn object(&self, _cid: &Hash32, _size: u64) -> Result<()> {
		Ok(())
	}
	fn record(&mut self, _: SegmentId, _: &SignedOp, _: Option<EntryRow>) -> Result<()> {
		Ok(())
	}
}

/// Every check of a batch of ops, in seq order, on top of `start` (the segment's head): the one
/// rule of [`Store::replay`] and [`Store::verify_ops`]. Each new op's change is made to `trie`
/// (the caller commits it or lets it be undone) and handed to `sink`. Returns the head the
/// batch reaches.
fn check_batch(
	segment: SegmentId,
	ops: &[SignedOp],
	verifier: &dyn OpVerifier,
	trie: &mut TrieTxn<'_>,
	start: Head,
	sink: &mut dyn Sink,
) -> Result<Head> {
	let mut head = start;
	let logged = sink.head_op(segment, &start)?;
	let mut link = match logged {
		Some((hash, _)) => Link::Logged(hash),
		None => Link::Unknown,
	};
	// Epochs never go back along the log: ownership only moves forward, so an op of an older
	// epoch after a newer one is a former owner writing onto its successor's history.
	let mut floor: Epoch = logged.map_or(0, |(_, e)| e);
	// The ops applied so far: seqs `start.seq + 1 ..= head.seq`, in order.
	let mut applied: Vec<&SignedOp> = Vec::new();
	for signed in ops {
		let op = &signed.op;
		let seq = op.seq;
		if op.segment != segment {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		if seq <= head.seq {
			let same = if seq > start.seq {
				applied.get((seq - start.seq - 1) as usize).is_some_and(|o| *o == signed)
			} else {
				sink.logged(segment, seq)?.is_some_and(|v| v == signed.encode())
			};
			if same {
				continue;
			}
			return Err(StoreError::Conflict { segment, seq });
		}
		if seq != head.seq + 1 {
			return Err(StoreError::OutOfOrder { segment, got: seq, expected: head.seq + 1 });
		}
		if !link.allows(&op.prev_op) {
			// Against the logged head: another history from here on (an owner's second
			// history, or ops of an older epoch than the holder's), which the anchors settle;
			// within the batch: a broken chain, which no honest holder serves.
			return Err(match link {
				Link::Logged(_) => StoreError::Forked { segment, seq },
				_ => StoreError::BrokenChain { segment, seq },
			});
		}
		if op.epoch < floor {
			return Err(StoreError::EpochRegressed { segment, seq });
		}
		let at = SignedAt { segment, epoch: op.epoch, seq };
		if signed.is_checkpoint() && !verifier.knows(at) {
			return Err(StoreError::UnknownEpoch { segment, seq, epoch: op.epoch });
		}
		// Bounded on every op, checkpoint or not: padded fields would be logged and served on.
		if signed.signer.len() > MAX_SIGNER_BYTES
			|| signed.signature.len() > MAX_SIGNATURE_BYTES
			|| (signed.is_checkpoint() && !verifier.verify_op(signed))
		{
			return Err(StoreError::BadSignature { segment, seq });
		}
		// After the signature: only the sealed owner's own late op is "past the end" (and
		// blames no one); a forgery there is a forgery.
		if signed.is_checkpoint() && verifier.ended(at) {
			return Err(StoreError::PastEpochEnd { segment, seq, epoch: op.epoch });
		}
		if op.prev_root != head.facts.root {
			// The first op starts from another state than this store's head: another history
			// (not a lie on its face); later ops that do not chain their own roots are.
			return Err(if applied.is_empty() {
				StoreError::Forked { segment, seq }
			} else {
				StoreError::RootMismatch { segment, seq }
			});
		}
		if let OpKind::Put { key, cid, size } = &op.kind {
			if key.len() > MAX_KEY_LEN as usize {
				return Err(StoreError::KeyTooLong(key.len()));
			}
			if *size > MAX_OBJECT_BYTES {
				return Err(StoreError::ObjectTooLarge(*size));
			}
			sink.object(cid, *size)?;
		}
		let prev = trie_op(trie, &op.kind)?;
		let facts = trie.facts();
		if facts.root != op.new_root {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		sink.record(segment, signed, prev)?;
		head = Head { seq, facts };
		link = Link::Batch(op.hash());
		floor = op.epoch;
		applied.push(signed);
	}
	if head != start && !ops.last().is_some_and(|o| o.op.seq == head.seq && o.is_checkpoint()) {
		// Ops past the last checkpoint are not authenticated yet: apply none of them.
		return Err(StoreError::Unsigned { segment, seq: head.seq });
	}
	Ok(head)
}

impl Store {
	/// Applies writes on the owning Primary: like [`Store::apply`], and records each write as an
	/// op in the same transaction, chained to the op before it (`prev_op`: the logged op at the
	/// head's seq, [`NO_PREV_OP`] if that is not logged here, then each op of the batch) and
	/// signed at checkpoints (the batch's last op and every `CHECKPOINT_EVERY`-th seq) by
	/// `signer` for its chain. Returns the new head and the ops (for gossip).
	pub fn apply_signed(
		&self,
		segment: SegmentId,
		writes: Vec<crate::SegmentWrite>,
		signer: &dyn OpSigner,
	) -> Result<(Head, Vec<SignedOp>)> {
		self.apply_inner(segment, writes, Some(signer))
	}

	/// Up to `max` logged ops of `segment` from seq `from` on (for peers filling a gap). Empty
	/// if `from` is past the head; [`StoreError::Pruned`] if `from` is no longer logged (pruned,
	/// or the state came from a snapshot).
	pub fn ops(&self, segment: SegmentId, from: u64, max: usize) -> Result<Vec<SignedOp>> {
		let head = self.head(segment).map_or(0, |h| h.seq);
		let tx = self.inner.db.begin_read()?;
		let table = tx.open_table(OPS)?;
		let mut out = Vec::new();
		for row in table.range((segment, from.max(1))..=(segment, head))?.take(max) {
			let (k, v) = row?;
			if out.is_empty() && k.value().1 != from.max(1) {
				return Err(StoreError::Pruned { segment, first: k.value().1 });
			}
			let op = SignedOp::decode(&mut v.value()).map_err(|e| {
				StoreError::Corrupt(format!("segment {segment}: undecodable op: {e}"))
			})?;
			out.push(op);
		}
		if out.is_empty() && from <= head {
			return Err(StoreError::Pruned { segment, first: head + 1 });
		}
		Ok(out)
	}

	/// The first seq of `segment` still in the log, if any.
	pub fn first_logged(&self, segment: SegmentId) -> Result<Option<u64>> {
		let tx = self.inner.db.begin_read()?;
		let table = tx.open_table(OPS)?;
		let first = table
			.range((segment, 0)..=(segment, u64::MAX))?
			.next()
			.transpose()?
			.map(|(k, _)| k.value().1);
		Ok(first)
	}

	/// Log retention: drops ops (and per-seq roots) of `segment` below seq `below`, keeping the
	/// head's. Peers further behind catch up through a newer snapshot. Returns the number of
	/// ops dropped.
	pub fn prune_ops(&self, segment: SegmentId, below: u64) -> Result<u64> {
		let head = self.head(segment).map_or(0, |h| h.seq);
		let below = below.min(head);
		let tx = durable(&self.inner.db)?;
		let mut dropped = 0;
		{
			let mut log = tx.open_table(OPS)?;
			log.retain_in((segment, 0)..(segment, below), |_, _| {
				dropped += 1;
				false
			})?;
			tx.open_table(ROOTS)?.retain_in((segment, 0)..(segment, below), |_, _| false)?;
			tx.open_table(crate::UNDO)?
				.retain_in((segment, 0)..(segment, below), |_, _| false)?;
		}
		tx.commit()?;
		Ok(dropped)
	}

	/// Replays `ops` (in seq order) on top of the segment's head, all or nothing, in one durable
	/// transaction. Ops at or below the head are skipped when identical to the logged ones (so a
	/// replay after a restart applies nothing twice) and refused otherwise. Every new op must
	/// follow the op chain and the root chain, and the batch must end on a checkpoint signed by a
	/// Primary `verifier` accepts (see the module docs). Objects of `Put` ops must already be in
	/// the store (fetched by CID before replay; [`Store::verify_ops`] checks a batch before).
	pub fn replay(
		&self,
		segment: SegmentId,
		ops: &[SignedOp],
		verifier: &dyn OpVerifier,
	) -> Result<Head> {
		let mut segs = self.inner.segments.lock();
		let SegmentState { trie, head: head_slot, .. } = segs.entry(segment).or_default();
		let mut trie = TrieTxn::new(trie);
		let start = head_slot.unwrap_or(Head { seq: 0, facts: trie.facts() });
		let tx = durable(&self.inner.db)?;
		let head = {
			let mut sink = Replaying {
				store: self,
				index: tx.open_table(INDEX)?,
				log: tx.open_table(OPS)?,
				undo: tx.open_table(crate::UNDO)?,
				blobs: tx.open_table(BLOBS)?,
				outboards: tx.open_table(crate::OUTBOARDS)?,
			};
			// On an error the transaction is dropped (aborted) and the trie changes undone.
			check_batch(segment, ops, verifier, &mut trie, start, &mut sink)?
		};
		if head == start {
			// Nothing new: drop the transaction unapplied.
			tx.abort()?;
			return Ok(head);
		}
		commit_head(tx, head_slot, segment, head)?;
		trie.commit();
		Ok(head)
	}

	/// Checks `ops` exactly as [`Store::replay`] would — segment, exactly-once skipping and
	/// [`StoreError::Conflict`], [`StoreError::OutOfOrder`], the op chain, signatures, roots
	/// (recomputed after each op), key length, [`MAX_OBJECT_BYTES`], and
	/// [`StoreError::Unsigned`] if the batch does not end on a checkpoint — except that the
	/// objects of `Put` ops need not be present. Changes nothing: the log is read in a read
	/// transaction and the trie changes are undone. Returns the head the batch would reach (the
	/// current head if nothing in it is new), so objects can be fetched for ops known to be
	/// authentic before they are replayed.
	pub fn verify_ops(
		&self,
		segment: SegmentId,
		ops: &[SignedOp],
		verifier: &dyn OpVerifier,
	) -> Result<Head> {
		let mut segs = self.inner.segments.lock();
		let mut fresh = SegmentTrie::new();
		let (trie, head) = match segs.get_mut(&segment) {
			Some(state) => (&mut state.trie, state.head),
			None => (&mut fresh, None),
		};
		let mut trie = TrieTxn::new(trie);
		let start = head.unwrap_or(Head { seq: 0, facts: trie.facts() });
		let tx = self.inner.db.begin_read()?;
		let mut sink = Verifying { log: tx.open_table(OPS)? };
		// `trie` is dropped uncommitted: every change made to recompute the roots is undone.
		check_batch(segment, ops, verifier, &mut trie, start, &mut sink)
	}
}
