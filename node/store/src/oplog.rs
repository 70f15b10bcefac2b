//! The delta log: every write the owning Primary accepts becomes an [`Op`] with the next
//! per-segment seq, the root before and after it, signed by the Primary. Ops are stored in the
//! same durable transaction as the index change they describe, so the log and the index never
//! disagree after a crash. Followers [`Store::replay`] ops in seq order, exactly once: a seq
//! already applied is skipped if it is the same op and refused if it is not, a gap is refused,
//! and every op must start from the current root and end at the root it claims.
//!
//! # Checkpoint signatures
//! Signing and verifying every op would cap a Primary at tens of thousands of writes per second
//! per core (an Ed25519 signature is ~20 µs to make or check). The Primary signs *checkpoints*
//! instead: the last op of each write batch and every [`CHECKPOINT_EVERY`]-th seq. Ops between
//! checkpoints carry an empty signature; they are authenticated by the chain of roots a
//! follower recomputes itself: starting from its own trusted root, replay must reproduce each
//! op's `new_root` and end on a signed op, so an altered op in between would need a BLAKE3
//! collision to reach the signed root. [`Store::replay`] therefore refuses a batch that does
//! not end on a checkpoint (nothing of it is applied).
//!
//! The store does not know key types: signing and checking go through [`OpSigner`] and
//! [`OpVerifier`], which the data plane implements with the node's network key and the chain's
//! list of Primaries of the segment.
use crate::{
	segments::{commit_head, durable, index_op, TrieTxn},
	Head, Result, SegmentState, Store, StoreError, BLOBS, INDEX, OPS, ROOTS,
};
use codec::{Decode, Encode};
use redb::{ReadableDatabase, ReadableTable};
use sync_primitives::{
	commitment::{Hash32, MAX_KEY_LEN},
	SegmentId,
};

/// A Primary signs at least every this many seqs (and the last op of every write batch), so
/// any window of this many consecutive ops contains a checkpoint.
pub const CHECKPOINT_EVERY: u64 = 256;

/// What an op does to the index.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum OpKind {
	/// `key` now maps to the object `(cid, size)`.
	Put {
		/// Object key.
		key: Vec<u8>,
		/// Object CID.
		cid: Hash32,
		/// Object size in bytes.
		size: u64,
	},
	/// `key` is removed.
	Delete {
		/// Object key.
		key: Vec<u8>,
	},
}

/// One write, as the owning Primary ordered it.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct Op {
	/// The segment.
	pub segment: SegmentId,
	/// Its position in the segment's log (the first write is 1).
	pub seq: u64,
	/// The change.
	pub kind: OpKind,
	/// Segment root before the op.
	pub prev_root: Hash32,
	/// Segment root after the op.
	pub new_root: Hash32,
}

impl Op {
	/// The bytes a Primary signs (domain separated).
	pub fn signing_payload(&self) -> Vec<u8> {
		(b"sync-registry/op/v1", self).encode()
	}

	/// Hash of the op (what gossip announces).
	pub fn hash(&self) -> Hash32 {
		*blake3::hash(&self.signing_payload()).as_bytes()
	}
}

/// An op with its Primary's signature.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct SignedOp {
	/// The op.
	pub op: Op,
	/// The signer's public key, in the encoding the verifier understands.
	pub signer: Vec<u8>,
	/// The signature over [`Op::signing_payload`], or empty between checkpoints.
	pub signature: Vec<u8>,
}

impl SignedOp {
	/// Whether this op carries the Primary's checkpoint signature.
	pub fn is_checkpoint(&self) -> bool {
		!self.signature.is_empty()
	}
}

/// Signs ops on the owning Primary.
pub trait OpSigner {
	/// The public key recorded with each op.
	fn public(&self) -> Vec<u8>;
	/// Signs `payload`.
	fn sign(&self, payload: &[u8]) -> Vec<u8>;
}

/// Decides whether an op's signature is valid and its signer a Primary of the segment.
pub trait OpVerifier {
	/// `true` if `signature` over `payload` by `signer` is valid and `signer` may write `segment`.
	fn verify(&self, segment: SegmentId, signer: &[u8], payload: &[u8], signature: &[u8]) -> bool;
}

impl Store {
	/// Applies writes on the owning Primary: like [`Store::apply`], and records each write as a
	/// signed op in the same transaction. Returns the new head and the ops (for gossip).
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
	/// replay after a restart applies nothing twice) and refused otherwise. Objects of `Put`
	/// ops must already be in the store (fetched by CID before replay).
	pub fn replay(
		&self,
		segment: SegmentId,
		ops: &[SignedOp],
		verifier: &dyn OpVerifier,
	) -> Result<Head> {
		let mut segs = self.inner.segments.lock();
		let SegmentState { trie, head: head_slot, listing } = segs.entry(segment).or_default();
		let mut trie = TrieTxn::new(trie);
		let mut head = head_slot.unwrap_or(Head { seq: 0, facts: trie.facts() });
		let start = head;
		let tx = durable(&self.inner.db)?;
		{
			let mut index = tx.open_table(INDEX)?;
			let mut log = tx.open_table(OPS)?;
			let mut undo = tx.open_table(crate::UNDO)?;
			let blobs = tx.open_table(BLOBS)?;
			for signed in ops {
				let op = &signed.op;
				let seq = op.seq;
				let encoded = signed.encode();
				if op.segment != segment {
					return Err(StoreError::RootMismatch { segment, seq });
				}
				if seq <= head.seq {
					let same =
						log.get((segment, seq))?.is_some_and(|v| v.value() == encoded.as_slice());
					if same {
						continue;
					}
					return Err(StoreError::Conflict { segment, seq });
				}
				if seq != head.seq + 1 {
					return Err(StoreError::OutOfOrder {
						segment,
						got: seq,
						expected: head.seq + 1,
					});
				}
				if signed.is_checkpoint()
					&& !verifier.verify(
						segment,
						&signed.signer,
						&op.signing_payload(),
						&signed.signature,
					) {
					return Err(StoreError::BadSignature { segment, seq });
				}
				if op.prev_root != head.facts.root {
					return Err(StoreError::RootMismatch { segment, seq });
				}
				if let OpKind::Put { key, cid, size } = &op.kind {
					if key.len() > MAX_KEY_LEN as usize {
						return Err(StoreError::KeyTooLong(key.len()));
					}
					if !self.has_object_in(&blobs, cid, *size)? {
						return Err(StoreError::UnknownObject(crate::Cid(*cid)));
					}
				}
				let prev = index_op(&mut index, &mut trie, segment, &op.kind)?;
				let facts = trie.facts();
				if facts.root != op.new_root {
					return Err(StoreError::RootMismatch { segment, seq });
				}
				log.insert((segment, seq), encoded.as_slice())?;
				undo.insert((segment, seq), prev)?;
				head = Head { seq, facts };
			}
		}
		if head != start && !ops.last().is_some_and(|o| o.op.seq == head.seq && o.is_checkpoint()) {
			// Ops past the last checkpoint are not authenticated yet: apply none of them.
			tx.abort()?;
			return Err(StoreError::Unsigned { segment, seq: head.seq });
		}
		if head == start {
			// Nothing new: drop the transaction unapplied.
			tx.abort()?;
			return Ok(head);
		}
		commit_head(tx, head_slot, listing, segment, head)?;
		trie.commit();
		Ok(head)
	}
}
