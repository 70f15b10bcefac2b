//! Outboards: the BLAKE3 tree of an object down to its 16 KiB chunk groups, kept beside the data.
//!
//! The data plane verifies every chunk group it receives before writing it. Sending the sibling
//! path with each group would cost `32 · log2(groups)` bytes per 16 KiB; instead a receiver
//! first fetches the object's *outboard* (all chaining values of the tree above the group
//! level: 64 bytes per 16 KiB, 0.4 %), checks it against the CID once ([`Outboard::verify`]),
//! and then verifies each group against its own leaf chaining value in `O(1)` hashing
//! ([`verify_group`]). Holders keep the outboard next to the object, so they can serve any
//! group and build Proof-of-Sync chunk paths ([`Outboard::chunk_siblings`]) without rehashing
//! the object.
//!
//! Layout: chaining values in pre-order (node, left subtree, right subtree), root excluded
//! (the root is the CID). An object of `g > 1` groups has `2g − 2` entries; an object of one
//! group has none (the group is verified against the CID itself). Above the group level every
//! BLAKE3 subtree covers whole groups, because a left subtree is the largest power-of-two
//! number of 1 KiB chunks below its parent's length, which is ≥ 16 KiB once the parent is
//! longer than one group.
use crate::commitment::{cid_of, left_subtree_len, Hash32, ProofError, CHUNK_LEN, GROUP_LEN};
use alloc::vec::Vec;
use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};

/// Number of 16 KiB groups of an object of `size` bytes (at least one).
pub fn groups_of(size: u64) -> u64 {
	size.div_ceil(GROUP_LEN).max(1)
}

/// Byte range `[start, end)` of group `index` of an object of `size` bytes.
pub fn group_range(size: u64, index: u64) -> Option<(u64, u64)> {
	if index >= groups_of(size) {
		return None;
	}
	// `index < groups_of(size)`, so `start < size`; the end saturates for the last group of
	// an object within 16 KiB of `u64::MAX` bytes.
	let start = index.checked_mul(GROUP_LEN)?;
	Some((start, start.saturating_add(GROUP_LEN).min(size)))
}

/// Non-root chaining value of group `index` holding `data`.
///
/// # Panics
///
/// BLAKE3 asserts that a non-root subtree is non-empty and fits its offset, so `data` must be
/// a real group of a multi-group object: `1..=GROUP_LEN` bytes at an `index` below `2^50`.
/// [`verify_group`] and [`Outboard::compute`] only call it so; do not pass unchecked input.
pub fn group_cv(index: u64, data: &[u8]) -> Hash32 {
	blake3::Hasher::new()
		.set_input_offset(index * GROUP_LEN)
		.update(data)
		.finalize_non_root()
}

/// Verifies group `index` of the object `(cid, size)`. `leaf` is the group's chaining value
/// from a verified outboard; it is ignored for single-group objects, whose group is the whole
/// object and is checked against the CID.
pub fn verify_group(
	cid: &Hash32,
	size: u64,
	leaf: Option<&Hash32>,
	index: u64,
	data: &[u8],
) -> Result<(), ProofError> {
	let (s, e) = group_range(size, index).ok_or(ProofError::IndexOutOfRange)?;
	if data.len() as u64 != e - s {
		return Err(ProofError::BadLength);
	}
	let ok = if groups_of(size) == 1 {
		cid_of(data) == *cid
	} else {
		leaf.ok_or(ProofError::BadPathLength).map(|l| group_cv(index, data) == *l)?
	};
	if ok {
		Ok(())
	} else {
		Err(ProofError::HashMismatch)
	}
}

/// Number of outboard entries for an object of `size` bytes (`groups_of(size) <= 2^50`, so this
/// cannot overflow).
pub fn outboard_len(size: u64) -> u64 {
	2 * groups_of(size) - 2
}

/// The chaining values of an object's tree above its groups (see the module docs).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outboard {
	size: u64,
	nodes: Vec<Hash32>,
}

impl Outboard {
	/// Computes the CID and outboard of `content` in one pass over the data.
	pub fn compute(content: &[u8]) -> (Hash32, Outboard) {
		let size = content.len() as u64;
		let leaves: Vec<Hash32> = if groups_of(size) == 1 {
			Vec::new()
		} else {
			content
				.chunks(GROUP_LEN as usize)
				.enumerate()
				.map(|(i, g)| group_cv(i as u64, g))
				.collect()
		};
		Self::from_group_cvs(size, &leaves, || cid_of(content))
	}

	/// Builds the outboard from the chaining values of all groups, in order (for streaming
	/// writers that hash each group as it arrives). `single` gives the CID of a one-group object.
	///
	/// # Panics
	///
	/// If `leaves` holds fewer than `groups_of(size)` values (a caller bug: the writer hashed
	/// the groups itself).
	pub fn from_group_cvs(
		size: u64,
		leaves: &[Hash32],
		single: impl FnOnce() -> Hash32,
	) -> (Hash32, Outboard) {
		if groups_of(size) == 1 {
			return (single(), Outboard { size, nodes: Vec::new() });
		}
		let mut nodes = Vec::with_capacity(outboard_len(size) as usize);
		let left = left_subtree_len(size);
		let l = build(leaves, 0, left, &mut nodes);
		let r = build(leaves, left, size - left, &mut nodes);
		(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes(), Outboard { size, nodes })
	}

	/// Wraps received entries, checking only their number; call [`Outboard::verify`] next.
	pub fn from_nodes(size: u64, nodes: Vec<Hash32>) -> Result<Outboard, ProofError> {
		if nodes.len() as u64 != outboard_len(size) {
			return Err(ProofError::BadPathLength);
		}
		Ok(Outboard { size, nodes })
	}

	/// Parses the wire/disk form (concatenated 32-byte values).
	pub fn from_bytes(size: u64, bytes: &[u8]) -> Result<Outboard, ProofError> {
		if !bytes.len().is_multiple_of(32) {
			return Err(ProofError::BadLength);
		}
		let nodes = bytes
			.chunks_exact(32)
			.map(|c| {
				let mut h = [0u8; 32];
				h.copy_from_slice(c);
				h
			})
			.collect();
		Self::from_nodes(size, nodes)
	}

	/// The wire/disk form.
	pub fn to_bytes(&self) -> Vec<u8> {
		self.nodes.iter().flat_map(|n| n.iter().copied()).collect()
	}

	/// Object size in bytes.
	pub fn size(&self) -> u64 {
		self.size
	}

	/// Checks that every inner value is the merge of its children and the top merges to `cid`.
	pub fn verify(&self, cid: &Hash32) -> Result<(), ProofError> {
		if groups_of(self.size) == 1 {
			return if self.nodes.is_empty() { Ok(()) } else { Err(ProofError::BadPathLength) };
		}
		let left = left_subtree_len(self.size);
		let mut pos = 0usize;
		let l = self.check(left, &mut pos)?;
		let r = self.check(self.size - left, &mut pos)?;
		if pos != self.nodes.len() {
			return Err(ProofError::BadPathLength);
		}
		if merge_subtrees_root(&l, &r, Mode::Hash).as_bytes() == cid {
			Ok(())
		} else {
			Err(ProofError::HashMismatch)
		}
	}

	fn check(&self, len: u64, pos: &mut usize) -> Result<Hash32, ProofError> {
		let own = *self.nodes.get(*pos).ok_or(ProofError::BadPathLength)?;
		*pos += 1;
		if len > GROUP_LEN {
			let left = left_subtree_len(len);
			let l = self.check(left, pos)?;
			let r = self.check(len - left, pos)?;
			if merge_subtrees_non_root(&l, &r, Mode::Hash) != own {
				return Err(ProofError::HashMismatch);
			}
		}
		Ok(own)
	}

	/// Chaining values of the groups, in group order (empty for a single-group object).
	pub fn group_cvs(&self) -> Vec<Hash32> {
		let mut out = Vec::with_capacity(groups_of(self.size) as usize);
		if groups_of(self.size) > 1 {
			let left = left_subtree_len(self.size);
			let mut pos = 0usize;
			self.collect_leaves(left, &mut pos, &mut out);
			self.collect_leaves(self.size - left, &mut pos, &mut out);
		}
		out
	}

	fn collect_leaves(&self, len: u64, pos: &mut usize, out: &mut Vec<Hash32>) {
		// Every constructor checks the node count against the size, so this always exists.
		let Some(own) = self.nodes.get(*pos).copied() else { return };
		*pos += 1;
		if len > GROUP_LEN {
			let left = left_subtree_len(len);
			self.collect_leaves(left, pos, out);
			self.collect_leaves(len - left, pos, out);
		} else {
			out.push(own);
		}
	}

	/// Chaining value of the subtree covering `[start, start + len)`, if that range is a node of
	/// the tree at or above the group level (the root excluded).
	pub fn subtree_cv(&self, start: u64, len: u64) -> Option<Hash32> {
		if groups_of(self.size) == 1 {
			return None;
		}
		let (mut s, mut l, mut pos) = (0u64, self.size, 0usize);
		loop {
			if l <= GROUP_LEN {
				return None;
			}
			let left = left_subtree_len(l);
			// Children of the current node: left at `pos`, right after the left subtree.
			let (cs, cl, cpos) = if start < s + left {
				(s, left, pos)
			} else {
				(s + left, l - left, pos + (2 * groups_of(left) - 1) as usize)
			};
			if cs == start && cl == len {
				return self.nodes.get(cpos).copied();
			}
			(s, l, pos) = (cs, cl, cpos + 1);
		}
	}

	/// Sibling chaining values (root first) proving 1 KiB chunk `chunk` of the object, using the
	/// outboard above the group level and `group` (the verified bytes of the chunk's group) below.
	pub fn chunk_siblings(&self, chunk: u64, group: &[u8]) -> Option<Vec<Hash32>> {
		let offset = chunk.checked_mul(CHUNK_LEN)?;
		if offset >= self.size.max(1) {
			return None;
		}
		let g = offset / GROUP_LEN;
		let (gs, ge) = group_range(self.size, g)?;
		if group.len() as u64 != ge - gs {
			return None;
		}
		let (mut s, mut l) = (0u64, self.size);
		let mut out = Vec::new();
		while l > CHUNK_LEN {
			let left = left_subtree_len(l);
			let (sib_s, sib_l, next_s, next_l) = if offset < s + left {
				(s + left, l - left, s, left)
			} else {
				(s, left, s + left, l - left)
			};
			let cv = if sib_s >= gs && sib_s + sib_l <= ge {
				// Inside the chunk's own group: hash the sibling bytes.
				let (a, b) = ((sib_s - gs) as usize, (sib_s - gs + sib_l) as usize);
				blake3::Hasher::new()
					.set_input_offset(sib_s)
					.update(group.get(a..b)?)
					.finalize_non_root()
			} else {
				// Whole groups elsewhere in the object: from the outboard.
				self.subtree_cv(sib_s, sib_l)?
			};
			out.push(cv);
			(s, l) = (next_s, next_l);
		}
		Some(out)
	}
}

/// Emits the pre-order values of the subtree `[start, start + len)` and returns its value.
fn build(leaves: &[Hash32], start: u64, len: u64, out: &mut Vec<Hash32>) -> Hash32 {
	let slot = out.len();
	out.push([0u8; 32]);
	let cv = if len > GROUP_LEN {
		let left = left_subtree_len(len);
		let l = build(leaves, start, left, out);
		let r = build(leaves, start + left, len - left, out);
		merge_subtrees_non_root(&l, &r, Mode::Hash)
	} else {
		leaves[(start / GROUP_LEN) as usize]
	};
	out[slot] = cv;
	cv
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::commitment::subtree_siblings;

	fn data(n: usize) -> Vec<u8> {
		(0..n).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1]).collect()
	}

	const SIZES: &[usize] =
		&[0, 1, 1024, 16384, 16385, 32768, 40000, 65536, 100_000, 1 << 20, (1 << 20) + 17];

	#[test]
	fn cid_matches_blake3_and_outboard_verifies() {
		for &n in SIZES {
			let d = data(n);
			let (cid, ob) = Outboard::compute(&d);
			assert_eq!(cid, cid_of(&d), "size {n}");
			assert_eq!(ob.nodes.len() as u64, outboard_len(n as u64));
			ob.verify(&cid).unwrap();
			let back = Outboard::from_bytes(n as u64, &ob.to_bytes()).unwrap();
			assert_eq!(back, ob);
		}
	}

	#[test]
	fn every_group_verifies_and_tampering_is_caught() {
		for &n in SIZES {
			let d = data(n);
			let (cid, ob) = Outboard::compute(&d);
			let leaves = ob.group_cvs();
			for g in 0..groups_of(n as u64) {
				let (s, e) = group_range(n as u64, g).unwrap();
				let slice = &d[s as usize..e as usize];
				verify_group(&cid, n as u64, leaves.get(g as usize), g, slice).unwrap();
				if !slice.is_empty() {
					let mut bad = slice.to_vec();
					bad[0] ^= 1;
					assert_eq!(
						verify_group(&cid, n as u64, leaves.get(g as usize), g, &bad),
						Err(ProofError::HashMismatch)
					);
					assert_eq!(
						verify_group(&cid, n as u64, leaves.get(g as usize), g, &slice[1..]),
						Err(ProofError::BadLength)
					);
				}
			}
			assert_eq!(
				verify_group(&cid, n as u64, None, groups_of(n as u64), &[]),
				Err(ProofError::IndexOutOfRange)
			);
		}
	}

	#[test]
	fn tampered_outboard_is_rejected() {
		let d = data(100_000);
		let (cid, ob) = Outboard::compute(&d);
		for i in 0..ob.nodes.len() {
			let mut bad = ob.clone();
			bad.nodes[i][3] ^= 0x80;
			assert!(bad.verify(&cid).is_err(), "entry {i}");
		}
		assert_eq!(Outboard::from_bytes(100_000, &ob.to_bytes()[1..]), Err(ProofError::BadLength));
		assert_eq!(
			Outboard::from_nodes(100_000, ob.nodes[1..].to_vec()),
			Err(ProofError::BadPathLength)
		);
	}

	#[test]
	fn chunk_siblings_match_direct_computation() {
		for &n in SIZES {
			let d = data(n);
			let (_, ob) = Outboard::compute(&d);
			for c in 0..crate::commitment::chunks_of(n as u64) {
				let g = c * CHUNK_LEN / GROUP_LEN;
				let (s, e) = group_range(n as u64, g).unwrap();
				let got = ob.chunk_siblings(c, &d[s as usize..e as usize]);
				assert_eq!(got, subtree_siblings(&d, CHUNK_LEN, c), "size {n} chunk {c}");
			}
		}
	}
}
