//! Proof-of-Sync from the store: the index as it was at a committed seq, and the chunk proofs
//! a challenge asks for.
//!
//! A challenge names a root the chain committed, which a follower has usually passed by the
//! time the challenge's seed is known (writes go on). Every logged op therefore has an *undo
//! record* — what its key mapped to before — written in the same transaction as the op, so the
//! index at any seq still in the log is the head's index with the later ops undone. The rebuilt
//! trie must hash to the op log's root at that seq, or nothing is proven.
//!
//! Chunk bytes come from the verified object (inline bytes, or one 16 KiB group read from disk
//! and checked against the outboard); the BLAKE3 siblings above the group come from the
//! outboard, so a proof never rehashes a large object.
use crate::{GroupRead, Result, Store, StoreError, OPS, UNDO};
use codec::Decode;
use redb::ReadableDatabase;
use sync_primitives::{
	commitment::{
		subtree_range, verify_chunk_proof, ChunkProof, Entry, RootFacts, SegmentTrie, SyncProof,
		CHUNK_LEN, GROUP_LEN,
	},
	outboard::{group_range, groups_of, verify_group, Outboard},
	SegmentId,
};
use sync_proto::{OpKind, SignedOp};

impl Store {
	/// The index of `segment` as it was at `seq`: the head's, with the logged ops after `seq`
	/// undone. [`StoreError::NotReached`] if the head is before `seq`, [`StoreError::Pruned`] if
	/// the ops after `seq` are no longer all logged.
	pub fn trie_at(&self, segment: SegmentId, seq: u64) -> Result<SegmentTrie> {
		// Clone the trie and open the read snapshot under the segment lock, so both see the
		// same head.
		let (mut trie, head, tx) = {
			let segs = self.inner.segments.lock();
			let state = segs.get(&segment).ok_or(StoreError::UnknownSegment(segment))?;
			let head = state.head.ok_or(StoreError::UnknownSegment(segment))?;
			(state.trie.clone(), head, self.inner.db.begin_read()?)
		};
		if seq > head.seq {
			return Err(StoreError::NotReached { segment, seq, head: head.seq });
		}
		if seq == head.seq {
			return Ok(trie);
		}
		let ops = tx.open_table(OPS)?;
		let undo = tx.open_table(UNDO)?;
		let mut expected = None;
		let mut undone = 0u64;
		for row in ops.range((segment, seq + 1)..=(segment, head.seq))?.rev() {
			let (k, v) = row?;
			let at = k.value().1;
			if at != head.seq - undone {
				break;
			}
			let signed = SignedOp::decode(&mut v.value()).map_err(|e| {
				StoreError::Corrupt(format!("segment {segment}: undecodable op: {e}"))
			})?;
			let Some(prev) = undo.get((segment, at))? else { break };
			let key = match &signed.op.kind {
				OpKind::Put { key, .. } | OpKind::Delete { key } => key.clone(),
			};
			match prev.value() {
				Some((cid, size)) => {
					trie.insert(Entry { key, cid, size });
				},
				None => {
					trie.remove(&key);
				},
			}
			expected = Some(signed.op.prev_root);
			undone += 1;
		}
		if undone != head.seq - seq {
			let first = head.seq - undone + 1;
			return Err(StoreError::Pruned { segment, first });
		}
		if expected != Some(trie.facts().root) {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		Ok(trie)
	}

	/// The Proof-of-Sync of `segment` at the committed root `facts` (seq `seq`) for the chunk
	/// `indexes` a challenge names. Each chunk proof is checked against `facts` before it is
	/// returned, so a damaged local copy fails here, not on chain.
	pub fn prove(
		&self,
		segment: SegmentId,
		seq: u64,
		facts: &RootFacts,
		indexes: &[u64],
	) -> Result<SyncProof> {
		let trie = self.trie_at(segment, seq)?;
		if trie.facts() != *facts {
			return Err(StoreError::RootMismatch { segment, seq });
		}
		let mut chunks = Vec::with_capacity(indexes.len());
		for &index in indexes {
			let proof = self
				.prove_chunk(&trie, index)
				.ok_or(StoreError::RootMismatch { segment, seq })??;
			verify_chunk_proof(facts, index, &proof)
				.map_err(|_| StoreError::RootMismatch { segment, seq })?;
			chunks.push(proof);
		}
		let chunks = chunks
			.try_into()
			.map_err(|_| StoreError::Corrupt("too many challenged chunks".into()))?;
		Ok(SyncProof { chunks })
	}

	/// Proof of global chunk `index` of `trie` (`None` if out of range).
	fn prove_chunk(&self, trie: &SegmentTrie, index: u64) -> Option<Result<ChunkProof>> {
		let (entry, chunk, steps) = trie.locate(index)?;
		Some(self.chunk_proof(entry, chunk, steps))
	}

	fn chunk_proof(
		&self,
		entry: &Entry,
		chunk: u64,
		steps: Vec<sync_primitives::commitment::TrieStep>,
	) -> Result<ChunkProof> {
		let unknown = || StoreError::UnknownObject(crate::Cid(entry.cid));
		let outboard =
			Outboard::from_bytes(entry.size, &self.outboard(&entry.cid)?).map_err(|_| unknown())?;
		let group = chunk * CHUNK_LEN / GROUP_LEN;
		let Some(GroupRead::Data(data)) = self.read_groups(&entry.cid, group, 1)?.pop() else {
			return Err(unknown());
		};
		// Disk bytes are checked before they go into a proof.
		let (gs, ge) = group_range(entry.size, group).ok_or_else(unknown)?;
		let leaf = if groups_of(entry.size) > 1 {
			Some(outboard.subtree_cv(gs, ge - gs).ok_or_else(unknown)?)
		} else {
			None
		};
		verify_group(&entry.cid, entry.size, leaf.as_ref(), group, &data)
			.map_err(|reason| StoreError::BadData { cid: crate::Cid(entry.cid), reason })?;
		let siblings = outboard.chunk_siblings(chunk, &data).ok_or_else(unknown)?;
		let (s, e) = subtree_range(entry.size, CHUNK_LEN, chunk).ok_or_else(unknown)?;
		let base = group * GROUP_LEN;
		let bytes =
			data.get((s - base) as usize..(e - base) as usize).ok_or_else(unknown)?.to_vec();
		let corrupt = |what: &str| StoreError::Corrupt(format!("{what} exceeds the proof bounds"));
		Ok(ChunkProof {
			key: entry.key.clone().try_into().map_err(|_| corrupt("key"))?,
			cid: entry.cid,
			size: entry.size,
			chunk: bytes.try_into().map_err(|_| corrupt("chunk"))?,
			chunk_siblings: siblings.try_into().map_err(|_| corrupt("chunk path"))?,
			trie_path: steps.try_into().map_err(|_| corrupt("trie path"))?,
		})
	}
}
