//! Chain rules shared by the pallet and the node.
//!
//! Pure functions, so the node's sync service decides *when* to commit or claim by the same rule
//! the chain enforces (`pallet-sync-registry` calls these from `can_commit` and `can_claim`),
//! instead of re-deriving it.
use crate::commitment::{empty_root, RootFacts, CHUNK_LEN};

/// Whether a holder may claim the root with key `candidate`.
///
/// The key is any strictly increasing key of a segment's commits: the pallet passes commit
/// indexes, the node may pass seqs (which `commit_root` requires to increase). `proven` is the
/// key of the holder's last proven root, if any.
///
/// A holder may claim a root newer than its last proven one; the pending migration target
/// (`migrating_here`) may also re-prove the same root (its proof is what moves ownership).
pub fn claim_is_newer(candidate: u64, proven: Option<u64>, migrating_here: bool) -> bool {
	match proven {
		None => true,
		Some(p) => candidate > p || (migrating_here && candidate == p),
	}
}

/// Whether a root at `seq` may be committed: `seq` is strictly above the seq of the latest
/// retained root (`latest`), or the segment has none yet.
pub fn commit_is_newer(seq: u64, latest: Option<u64>) -> bool {
	latest.is_none_or(|l| seq > l)
}

/// Whether a root's counts are consistent with each other and with its hash: every object has
/// at least one chunk, there are no chunks or bytes without objects, there are no more chunks
/// than the bytes fill plus one per object (`leaves ≤ ⌈bytes / CHUNK_LEN⌉ + entries`: each
/// object may end in a partial chunk, and an empty object still has one), and a segment without
/// chunks has the empty root ([`empty_root`]).
///
/// This bounds `leaves` by the data, so a Primary cannot announce chunks that hold nothing; and
/// since a root with no chunks cannot be challenged (a Proof-of-Sync of it has no chunks to
/// show), only the one root that commits to nothing may have none.
pub fn root_facts_consistent(facts: &RootFacts) -> bool {
	facts.leaves >= facts.entries
		&& (facts.entries == 0) == (facts.leaves == 0)
		&& facts.leaves <= facts.bytes.div_ceil(CHUNK_LEN).saturating_add(facts.entries)
		&& (facts.entries != 0 || facts.bytes == 0)
		&& (facts.leaves != 0 || facts.root == empty_root())
}

/// Whether a holding's re-check at this tick issues a re-challenge: with probability
/// `1 / ticks`, decided by the first four bytes of `draw` (a hash of the beacon, the segment
/// and the holder). `ticks <= 1` always fires. The modulo bias is below `ticks / 2^32`.
pub fn recheck_fires(draw: &[u8; 32], ticks: u32) -> bool {
	ticks <= 1 || u32::from_le_bytes([draw[0], draw[1], draw[2], draw[3]]).is_multiple_of(ticks)
}

#[cfg(test)]
mod tests {
	#[test]
	fn recheck_fires_about_once_per_ticks() {
		assert!(super::recheck_fires(&[0xff; 32], 0));
		assert!(super::recheck_fires(&[0xff; 32], 1));
		let fired = (0u32..4000)
			.filter(|i| super::recheck_fires(blake3::hash(&i.to_le_bytes()).as_bytes(), 6))
			.count();
		assert!((600..740).contains(&fired), "{fired} of 4000 at 1/6");
	}

	use super::*;

	/// Facts with a placeholder root, or the empty root for an empty segment (the hash is not
	/// what these cases are about; see `empty_root_requires_empty_hash`).
	fn facts(leaves: u64, entries: u64, bytes: u64) -> RootFacts {
		let root = if leaves == 0 { empty_root() } else { [0u8; 32] };
		RootFacts { root, leaves, entries, bytes }
	}

	#[test]
	fn claim_needs_a_newer_root_unless_migrating_here() {
		// Nothing proven yet: any retained root.
		assert!(claim_is_newer(1, None, false));
		assert!(claim_is_newer(1, None, true));
		// Newer than the proven one.
		assert!(claim_is_newer(4, Some(3), false));
		// The same root: only the pending migration target may re-prove it.
		assert!(!claim_is_newer(3, Some(3), false));
		assert!(claim_is_newer(3, Some(3), true));
		// Older: never.
		assert!(!claim_is_newer(2, Some(3), false));
		assert!(!claim_is_newer(2, Some(3), true));
	}

	#[test]
	fn commit_needs_a_strictly_higher_seq() {
		assert!(commit_is_newer(0, None));
		assert!(commit_is_newer(7, Some(6)));
		assert!(!commit_is_newer(6, Some(6)));
		assert!(!commit_is_newer(5, Some(6)));
		assert!(commit_is_newer(u64::MAX, Some(u64::MAX - 1)));
	}

	#[test]
	fn root_facts_consistency() {
		// Empty segment.
		assert!(root_facts_consistent(&facts(0, 0, 0)));
		// One empty object still has one chunk.
		assert!(root_facts_consistent(&facts(1, 1, 0)));
		// One object of 2.5 chunks: 3 leaves.
		assert!(root_facts_consistent(&facts(3, 1, 2 * CHUNK_LEN + 512)));
		// Two objects of 1 byte each: one partial chunk each.
		assert!(root_facts_consistent(&facts(2, 2, 2)));
		// Fewer chunks than objects.
		assert!(!root_facts_consistent(&facts(1, 2, 2)));
		// Chunks without objects, bytes without objects.
		assert!(!root_facts_consistent(&facts(1, 0, 0)));
		assert!(!root_facts_consistent(&facts(0, 0, 1)));
		// The bound: ⌈bytes / CHUNK_LEN⌉ + entries chunks, not one more.
		assert!(root_facts_consistent(&facts(4, 1, 2 * CHUNK_LEN + 512)));
		assert!(!root_facts_consistent(&facts(5, 1, 2 * CHUNK_LEN + 512)));
		// No overflow at the extremes.
		assert!(root_facts_consistent(&facts(u64::MAX, u64::MAX, u64::MAX)));
	}

	#[test]
	fn empty_root_requires_empty_hash() {
		let empty = crate::commitment::SegmentTrie::new().facts();
		assert_eq!(empty, RootFacts { root: empty_root(), leaves: 0, entries: 0, bytes: 0 });
		assert!(root_facts_consistent(&empty));
		// Zero counts with any other hash: nothing to challenge, so refused.
		for root in [[0u8; 32], [0xff; 32], crate::commitment::segment_root(&[1; 32], 0, 0, 0)] {
			assert!(!root_facts_consistent(&RootFacts { root, ..empty }), "{root:?}");
		}
		// The rule is about empty segments only: a non-empty one may have any hash here.
		assert!(root_facts_consistent(&RootFacts {
			root: empty_root(),
			leaves: 1,
			entries: 1,
			bytes: 0
		}));
		// Counts that are inconsistent stay refused with the empty hash, too.
		assert!(!root_facts_consistent(&RootFacts { bytes: 1, ..empty }));
	}
}
