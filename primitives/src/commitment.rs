//! Segment commitments: the hash, tree and proof format shared by the chain and the node.
//!
//! # Scheme (v1)
//! - **Objects** are addressed by their BLAKE3 hash (the *CID*). BLAKE3 is itself a Merkle tree
//!   over 1 KiB chunks, so any chunk — or any aligned 16 KiB *chunk group*, which is a subtree —
//!   can be verified against the CID with the sibling chaining values on its path
//!   ([`verify_subtree`]). The data plane verifies transfers per group; Proof-of-Sync samples
//!   single chunks (1 KiB keeps proofs small).
//! - **Index entries** `(key, cid, size)` are the leaves of a binary *crit-bit trie* keyed by
//!   `blake3(0x03 ‖ key)`. The shape of such a trie depends only on the set of keys, never on the
//!   order of writes, so every node that replays the same ops computes the same root, and a
//!   write touches only the `O(log n)` nodes on its path.
//! - Every trie node carries a **weight**: the number of 1 KiB chunks below it (an object of
//!   `size` bytes has `max(1, ceil(size / 1024))` chunks). Weights make "the `j`-th chunk of the
//!   segment" well defined, so a challenge can name `k` uniformly random chunks of the whole
//!   segment by index, and a proof can be checked to land exactly there.
//! - The **segment root** commits to the trie top, total chunks (*leaf count*), entry count and
//!   total bytes: `blake3(0x02 ‖ top ‖ leaves ‖ entries ‖ bytes)`.
//!
//! Hash inputs are domain separated by a leading tag byte (leaf `0x00`, inner `0x01`, root
//! `0x02`, key path `0x03`, challenge `0x04`); integers are little endian.
use alloc::{boxed::Box, vec::Vec};
use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_runtime::BoundedVec;

/// A 32-byte BLAKE3 digest (CIDs, chaining values, tree hashes, roots).
pub type Hash32 = [u8; 32];

/// Bytes per chunk: the BLAKE3 chunk and the Proof-of-Sync leaf.
pub const CHUNK_LEN: u64 = 1024;
/// Bytes per chunk group: the unit the data plane verifies before writing.
pub const GROUP_LEN: u64 = 16 * 1024;
/// Longest object key, in bytes.
pub const MAX_KEY_LEN: u32 = 256;
/// Most sibling chaining values on a BLAKE3 path (objects up to 2^64 bytes).
pub const MAX_CHUNK_DEPTH: u32 = 54;
/// Bits of a key path ([`key_path`]); valid split bits are `0..PATH_BITS`.
pub const PATH_BITS: u16 = 256;
/// Most steps on a trie path: one per bit of the key path.
pub const MAX_TRIE_DEPTH: u32 = PATH_BITS as u32;
/// Most chunk proofs in one Proof-of-Sync.
pub const MAX_CHALLENGE_LEAVES: u32 = 16;

/// Object key bytes.
pub type KeyBytes = BoundedVec<u8, sp_core::ConstU32<MAX_KEY_LEN>>;

/// Number of 1 KiB chunks (Proof-of-Sync leaves) of an object of `size` bytes; at least one,
/// because an empty object still has one (empty) chunk that hashes to its CID.
pub fn chunks_of(size: u64) -> u64 {
	size.div_ceil(CHUNK_LEN).max(1)
}

/// The CID of an object: its BLAKE3 hash.
pub fn cid_of(content: &[u8]) -> Hash32 {
	*blake3::hash(content).as_bytes()
}

/// Position of a key in the trie: `blake3(0x03 ‖ key)`.
pub fn key_path(key: &[u8]) -> Hash32 {
	let mut h = blake3::Hasher::new();
	h.update(&[0x03]);
	h.update(key);
	*h.finalize().as_bytes()
}

/// Hash of a trie leaf (one index entry).
pub fn leaf_hash(key: &[u8], cid: &Hash32, size: u64) -> Hash32 {
	let mut h = blake3::Hasher::new();
	h.update(&[0x00]);
	h.update(&(key.len() as u32).to_le_bytes());
	h.update(key);
	h.update(cid);
	h.update(&size.to_le_bytes());
	*h.finalize().as_bytes()
}

/// Hash of an inner trie node splitting at `bit`.
pub fn inner_hash(
	bit: u16,
	left: &Hash32,
	left_weight: u64,
	right: &Hash32,
	right_weight: u64,
) -> Hash32 {
	let mut buf = [0u8; 1 + 2 + 32 + 8 + 32 + 8];
	buf[0] = 0x01;
	buf[1..3].copy_from_slice(&bit.to_le_bytes());
	buf[3..35].copy_from_slice(left);
	buf[35..43].copy_from_slice(&left_weight.to_le_bytes());
	buf[43..75].copy_from_slice(right);
	buf[75..83].copy_from_slice(&right_weight.to_le_bytes());
	*blake3::hash(&buf).as_bytes()
}

/// The committed root of a segment.
pub fn segment_root(top: &Hash32, leaves: u64, entries: u64, bytes: u64) -> Hash32 {
	let mut buf = [0u8; 1 + 32 + 24];
	buf[0] = 0x02;
	buf[1..33].copy_from_slice(top);
	buf[33..41].copy_from_slice(&leaves.to_le_bytes());
	buf[41..49].copy_from_slice(&entries.to_le_bytes());
	buf[49..57].copy_from_slice(&bytes.to_le_bytes());
	*blake3::hash(&buf).as_bytes()
}

/// Root of the empty segment.
pub fn empty_root() -> Hash32 {
	segment_root(&[0u8; 32], 0, 0, 0)
}

/// Bit `i` (0 = most significant bit of byte 0) of a key path.
///
/// Total: a path has [`PATH_BITS`] bits, and every `i >= PATH_BITS` reads as `false` (as if the
/// path were padded with zeros). Callers that take `i` from untrusted input must reject such
/// bits themselves, as [`verify_chunk_proof`] does, rather than rely on that padding.
pub fn bit_at(path: &Hash32, i: u16) -> bool {
	path.get(usize::from(i / 8))
		.is_some_and(|byte| (byte >> (7 - (i % 8))) & 1 == 1)
}

/// Length of the left child of a BLAKE3 parent node over `len > CHUNK_LEN` bytes: the largest
/// power-of-two number of chunks strictly below `len`.
///
/// The same as `blake3::hazmat::left_subtree_len`, which computes `(len + 1) / 2` and so
/// overflows (wrapping to a nonsense split in release builds, after which BLAKE3 asserts on an
/// unaligned offset) for an object of `u64::MAX` bytes; `div_ceil` cannot overflow. Meaningless
/// (but panic-free) for `len <= CHUNK_LEN`, where a node has no children.
pub(crate) fn left_subtree_len(len: u64) -> u64 {
	// `len.div_ceil(2) <= 2^63`, so `next_power_of_two` cannot overflow either.
	len.div_ceil(2).next_power_of_two()
}

/// First bit at which two different paths differ.
fn crit_bit(a: &Hash32, b: &Hash32) -> Option<u16> {
	for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
		let d = x ^ y;
		if d != 0 {
			return Some((i as u16) * 8 + d.leading_zeros() as u16);
		}
	}
	None
}

/// `k` leaf indexes in `0..leaves` derived from a challenge seed (the hash of a block that did
/// not exist when the claim was made, plus claim-specific data). Empty if `leaves == 0`.
///
/// Allocates `k` indexes: callers bound `k` (the chain by `MAX_CHALLENGE_LEAVES`).
pub fn challenge_indexes(seed: &Hash32, leaves: u64, k: u32) -> Vec<u64> {
	(0..k).map_while(|i| challenge_index(seed, leaves, i)).collect()
}

/// Challenge index number `i` (see [`challenge_indexes`]); `None` if `leaves == 0`.
fn challenge_index(seed: &Hash32, leaves: u64, i: u32) -> Option<u64> {
	let mut h = blake3::Hasher::new();
	h.update(&[0x04]);
	h.update(seed);
	h.update(&i.to_le_bytes());
	let d = h.finalize();
	let mut n = [0u8; 8];
	n.copy_from_slice(&d.as_bytes()[..8]);
	// 64-bit modulo: bias below 2^-40 for any segment under 2^24 TiB.
	u64::from_le_bytes(n).checked_rem(leaves)
}

// ---------------------------------------------------------------------------------------------
// BLAKE3 subtree proofs (object level)
// ---------------------------------------------------------------------------------------------

/// One step from a BLAKE3 parent node down towards a subtree.
struct Step {
	/// Whether the target is in the right child.
	right: bool,
	/// Byte range of the other child, whose chaining value is the proof's sibling.
	sibling_start: u64,
	sibling_len: u64,
}

/// The steps from the root of an object of `size` bytes down to the subtree that holds byte
/// offset `index * unit`, and that subtree's range. `None` if the offset is outside the object
/// or `unit` is not a power of two ≥ 1 KiB (any other unit does not name BLAKE3 subtrees).
///
/// Every `start + len` stays `<= size`, and every `left < len`, so the sums and differences
/// below cannot overflow; they are checked anyway, so a mistake is an error, not a wrap.
fn object_descent(size: u64, unit: u64, index: u64) -> Option<(Vec<Step>, u64, u64)> {
	if unit < CHUNK_LEN || !unit.is_power_of_two() {
		return None;
	}
	let offset = index.checked_mul(unit)?;
	if offset >= size.max(1) {
		return None;
	}
	let (mut start, mut len) = (0u64, size);
	let mut steps = Vec::new();
	while len > unit {
		let left = left_subtree_len(len);
		let mid = start.checked_add(left)?;
		let right_len = len.checked_sub(left)?;
		if offset < mid {
			steps.push(Step { right: false, sibling_start: mid, sibling_len: right_len });
			len = left;
		} else {
			steps.push(Step { right: true, sibling_start: start, sibling_len: left });
			start = mid;
			len = right_len;
		}
	}
	Some((steps, start, len))
}

/// Why a proof was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProofError {
	/// The index lies outside the object or segment.
	IndexOutOfRange,
	/// The data has the wrong length for its position.
	BadLength,
	/// The number of siblings does not match the tree shape.
	BadPathLength,
	/// The recomputed hash differs from the committed one.
	HashMismatch,
	/// The trie path is not consistent with the challenged index or the key.
	BadTriePath,
	/// The proof has the wrong number of leaves for the challenge (or the challenge names no
	/// leaves of a non-empty segment, so no proof could bind the root).
	WrongLeafCount,
	/// A count or offset in the proof does not fit in 64 bits.
	Overflow,
}

/// Verifies that `data` is the subtree number `index` (units of `unit` bytes, a power of two
/// ≥ 1 KiB) of the object with CID `cid` and length `size`, given the sibling chaining values on
/// the path, root first.
pub fn verify_subtree(
	cid: &Hash32,
	size: u64,
	unit: u64,
	index: u64,
	data: &[u8],
	siblings: &[Hash32],
) -> Result<(), ProofError> {
	let (steps, start, len) =
		object_descent(size, unit, index).ok_or(ProofError::IndexOutOfRange)?;
	if u64::try_from(data.len()) != Ok(len) {
		return Err(ProofError::BadLength);
	}
	if siblings.len() != steps.len() {
		return Err(ProofError::BadPathLength);
	}
	let (Some((top, below)), Some((top_sib, below_sibs))) =
		(steps.split_first(), siblings.split_first())
	else {
		// No steps: the data is the whole object.
		return if cid_of(data) == *cid { Ok(()) } else { Err(ProofError::HashMismatch) };
	};
	// With steps, the data is a proper subtree: non-empty (`len > 0`, checked above) and at a
	// chunk-aligned offset (`start` is a sum of left-subtree lengths), as BLAKE3 requires.
	let mut cv = blake3::Hasher::new().set_input_offset(start).update(data).finalize_non_root();
	for (step, sib) in below.iter().zip(below_sibs).rev() {
		let (l, r) = if step.right { (sib, &cv) } else { (&cv, sib) };
		cv = merge_subtrees_non_root(l, r, Mode::Hash);
	}
	let (l, r) = if top.right { (top_sib, &cv) } else { (&cv, top_sib) };
	if merge_subtrees_root(l, r, Mode::Hash).as_bytes() == cid {
		Ok(())
	} else {
		Err(ProofError::HashMismatch)
	}
}

/// Chaining value of the subtree `[start, start + len)` of `content` (a sibling range from
/// [`object_descent`] over `content.len()`: in range, non-empty and chunk-aligned).
fn subtree_cv(content: &[u8], start: u64, len: u64) -> Option<Hash32> {
	let s = usize::try_from(start).ok()?;
	let e = usize::try_from(start.checked_add(len)?).ok()?;
	let bytes = content.get(s..e).filter(|b| !b.is_empty())?;
	Some(blake3::Hasher::new().set_input_offset(start).update(bytes).finalize_non_root())
}

/// Sibling chaining values (root first) proving subtree `index` of `content`, computed from the
/// content itself. `O(size)`; the node's store uses precomputed outboards instead.
pub fn subtree_siblings(content: &[u8], unit: u64, index: u64) -> Option<Vec<Hash32>> {
	let (steps, _, _) = object_descent(u64::try_from(content.len()).ok()?, unit, index)?;
	steps
		.iter()
		.map(|s| subtree_cv(content, s.sibling_start, s.sibling_len))
		.collect()
}

/// Byte range of subtree `index` (units of `unit` bytes) of an object of `size` bytes.
pub fn subtree_range(size: u64, unit: u64, index: u64) -> Option<(u64, u64)> {
	let start = index.checked_mul(unit)?;
	if start >= size.max(1) {
		return None;
	}
	Some((start, start.saturating_add(unit).min(size)))
}

// ---------------------------------------------------------------------------------------------
// Proof-of-Sync
// ---------------------------------------------------------------------------------------------

/// One step of a trie path, from the root down.
#[derive(Encode, Decode, DecodeWithMemTracking, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct TrieStep {
	/// Bit of the key path at which this inner node splits.
	pub bit: u16,
	/// Whether the proven leaf is in the right subtree.
	pub right: bool,
	/// Hash of the other subtree.
	pub sibling: Hash32,
	/// Weight (chunks) of the other subtree.
	pub sibling_weight: u64,
}

/// Proof that the segment holds the chunk at one challenged index.
#[derive(Encode, Decode, DecodeWithMemTracking, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct ChunkProof {
	/// Key of the object the chunk belongs to.
	pub key: KeyBytes,
	/// CID of that object.
	pub cid: Hash32,
	/// Size of that object in bytes.
	pub size: u64,
	/// The chunk (1 KiB, or less for an object's last chunk).
	pub chunk: BoundedVec<u8, sp_core::ConstU32<{ CHUNK_LEN as u32 }>>,
	/// BLAKE3 siblings from the object root down to the chunk.
	pub chunk_siblings: BoundedVec<Hash32, sp_core::ConstU32<MAX_CHUNK_DEPTH>>,
	/// Trie steps from the segment top down to the object's leaf.
	pub trie_path: BoundedVec<TrieStep, sp_core::ConstU32<MAX_TRIE_DEPTH>>,
}

/// A Proof-of-Sync: one [`ChunkProof`] per challenged index, in challenge order.
#[derive(Encode, Decode, DecodeWithMemTracking, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct SyncProof {
	/// The chunk proofs.
	pub chunks: BoundedVec<ChunkProof, sp_core::ConstU32<MAX_CHALLENGE_LEAVES>>,
}

/// What a segment root commits to besides the trie top.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub struct RootFacts {
	/// The root hash.
	pub root: Hash32,
	/// Total chunks (Proof-of-Sync leaves).
	pub leaves: u64,
	/// Number of objects.
	pub entries: u64,
	/// Total bytes of all objects.
	pub bytes: u64,
}

/// Verifies one chunk proof for global chunk `index` against `facts`.
///
/// Total on hostile input: every field of `proof` (and of `facts`) may hold any value; the
/// result is then an error, never a panic or a wrapped count.
pub fn verify_chunk_proof(
	facts: &RootFacts,
	index: u64,
	proof: &ChunkProof,
) -> Result<(), ProofError> {
	if index >= facts.leaves {
		return Err(ProofError::IndexOutOfRange);
	}
	// Top-down: follow weights to the leaf, checking the index lands inside it.
	let path = key_path(&proof.key);
	let (mut weight, mut idx) = (facts.leaves, index);
	let mut last_bit: Option<u16> = None;
	for step in proof.trie_path.iter() {
		// Split bits lie inside the path and strictly increase downwards; checked before the
		// bit is read.
		if step.bit >= PATH_BITS
			|| last_bit.is_some_and(|b| step.bit <= b)
			|| bit_at(&path, step.bit) != step.right
		{
			return Err(ProofError::BadTriePath);
		}
		last_bit = Some(step.bit);
		// Both subtrees weigh at least one chunk.
		if step.sibling_weight == 0 {
			return Err(ProofError::BadTriePath);
		}
		let own = match weight.checked_sub(step.sibling_weight) {
			Some(own) if own > 0 => own,
			_ => return Err(ProofError::BadTriePath),
		};
		if step.right {
			idx = idx.checked_sub(step.sibling_weight).ok_or(ProofError::BadTriePath)?;
		} else if idx >= own {
			return Err(ProofError::BadTriePath);
		}
		weight = own;
	}
	if weight != chunks_of(proof.size) {
		return Err(ProofError::BadTriePath);
	}
	verify_subtree(&proof.cid, proof.size, CHUNK_LEN, idx, &proof.chunk, &proof.chunk_siblings)?;
	// Bottom-up: recompute the top and the root. The sum returns to `facts.leaves` (the loop
	// above subtracted exactly these weights), so it cannot overflow; checked regardless.
	let mut h = leaf_hash(&proof.key, &proof.cid, proof.size);
	let mut w = weight;
	for step in proof.trie_path.iter().rev() {
		h = if step.right {
			inner_hash(step.bit, &step.sibling, step.sibling_weight, &h, w)
		} else {
			inner_hash(step.bit, &h, w, &step.sibling, step.sibling_weight)
		};
		w = w.checked_add(step.sibling_weight).ok_or(ProofError::Overflow)?;
	}
	if segment_root(&h, w, facts.entries, facts.bytes) != facts.root {
		return Err(ProofError::HashMismatch);
	}
	Ok(())
}

/// Verifies a whole Proof-of-Sync for the challenge `seed` with `k` leaves.
///
/// - An empty segment (`facts.leaves == 0`) has no chunks to challenge: only an empty proof of
///   the empty root ([`empty_root`], with no entries and no bytes) verifies. Any other root
///   with zero leaves is not the root of any trie, and a holder must not be able to "prove" it
///   with no data ([`crate::rules::root_facts_consistent`] refuses such facts at commit time,
///   too).
/// - A non-empty segment needs `k ≥ 1`: a challenge of no leaves would accept an empty proof
///   for any root without hashing anything ([`ProofError::WrongLeafCount`]).
///
/// The proof's length is compared with the challenge before anything is hashed or allocated,
/// and every chunk proof is checked by [`verify_chunk_proof`], which is total on hostile input.
pub fn verify_sync_proof(
	facts: &RootFacts,
	seed: &Hash32,
	k: u32,
	proof: &SyncProof,
) -> Result<(), ProofError> {
	if facts.leaves == 0 {
		if !proof.chunks.is_empty() {
			return Err(ProofError::WrongLeafCount);
		}
		let empty = facts.root == empty_root() && facts.entries == 0 && facts.bytes == 0;
		return if empty { Ok(()) } else { Err(ProofError::HashMismatch) };
	}
	if k == 0 || usize::try_from(k) != Ok(proof.chunks.len()) {
		return Err(ProofError::WrongLeafCount);
	}
	for (i, p) in (0..k).zip(proof.chunks.iter()) {
		let index = challenge_index(seed, facts.leaves, i).ok_or(ProofError::IndexOutOfRange)?;
		verify_chunk_proof(facts, index, p)?;
	}
	Ok(())
}

// ---------------------------------------------------------------------------------------------
// The trie itself (no_std + alloc: used by the node's store, by tests and by benchmarks)
// ---------------------------------------------------------------------------------------------

/// One index entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
	/// Object key.
	pub key: Vec<u8>,
	/// Object CID.
	pub cid: Hash32,
	/// Object size in bytes.
	pub size: u64,
}

#[derive(Clone, Debug)]
enum Node {
	Leaf { path: Hash32, hash: Hash32, weight: u64, entry: Entry },
	Inner(Box<Inner>),
}

#[derive(Clone, Debug)]
struct Inner {
	bit: u16,
	left: Node,
	right: Node,
	hash: Hash32,
	weight: u64,
}

impl Node {
	fn hash(&self) -> &Hash32 {
		match self {
			Node::Leaf { hash, .. } => hash,
			Node::Inner(i) => &i.hash,
		}
	}
	fn weight(&self) -> u64 {
		match self {
			Node::Leaf { weight, .. } => *weight,
			Node::Inner(i) => i.weight,
		}
	}
	/// A throw-away value to move a node out of a `&mut` slot before putting its successor in.
	fn placeholder() -> Node {
		Node::Leaf {
			path: [0; 32],
			hash: [0; 32],
			weight: 0,
			entry: Entry { key: Vec::new(), cid: [0; 32], size: 0 },
		}
	}
	fn leaf(path: Hash32, entry: Entry) -> Node {
		Node::Leaf {
			path,
			hash: leaf_hash(&entry.key, &entry.cid, entry.size),
			weight: chunks_of(entry.size),
			entry,
		}
	}
}

impl Inner {
	/// Recomputes the weight and hash from the children.
	///
	/// The weight cannot saturate: every trie change first checks that the new total weight
	/// fits in a `u64` ([`SegmentTrie::try_insert`]; removals only shrink it), and an inner
	/// node weighs no more than the whole trie.
	fn rehash(&mut self) {
		self.weight = self.left.weight().saturating_add(self.right.weight());
		self.hash = inner_hash(
			self.bit,
			self.left.hash(),
			self.left.weight(),
			self.right.hash(),
			self.right.weight(),
		);
	}
}

/// Why a trie change was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TrieError {
	/// The segment's total bytes, chunks or entries would not fit in a `u64` (an entry with a
	/// hostile size, e.g. two objects of `u64::MAX` bytes).
	Overflow,
}

/// The authenticated index of one segment: a weighted crit-bit trie over `blake3(key)`.
///
/// Inserts, updates and removals rehash only the path to the root (`O(log n)` expected), and the
/// root depends only on the set of entries, not on the order they arrived in.
///
/// All arithmetic is checked: the totals (entries, bytes, chunks) always fit in a `u64`, so
/// [`SegmentTrie::facts`] always satisfies [`crate::rules::root_facts_consistent`]. An insert
/// that would overflow them is refused ([`SegmentTrie::try_insert`]) and changes nothing.
#[derive(Clone, Debug, Default)]
pub struct SegmentTrie {
	top: Option<Node>,
	entries: u64,
	bytes: u64,
}

impl SegmentTrie {
	/// An empty trie.
	pub fn new() -> Self {
		Self::default()
	}

	/// Number of entries.
	pub fn len(&self) -> u64 {
		self.entries
	}

	/// Whether the trie has no entries.
	pub fn is_empty(&self) -> bool {
		self.entries == 0
	}

	/// Root facts (root hash, leaves, entries, bytes).
	pub fn facts(&self) -> RootFacts {
		let (top, leaves) =
			self.top.as_ref().map(|n| (*n.hash(), n.weight())).unwrap_or(([0u8; 32], 0));
		RootFacts {
			root: segment_root(&top, leaves, self.entries, self.bytes),
			leaves,
			entries: self.entries,
			bytes: self.bytes,
		}
	}

	/// The entry stored under `key`.
	pub fn get(&self, key: &[u8]) -> Option<&Entry> {
		let path = key_path(key);
		let mut node = self.top.as_ref()?;
		loop {
			match node {
				Node::Leaf { path: p, entry, .. } => return (p == &path).then_some(entry),
				Node::Inner(i) => node = if bit_at(&path, i.bit) { &i.right } else { &i.left },
			}
		}
	}

	/// Inserts or replaces the entry for `entry.key`; returns the previous entry.
	///
	/// The panic-free wrapper of [`SegmentTrie::try_insert`] for trusted entries (ones that
	/// already fitted in a trie, e.g. read back from the node's own store): if the totals would
	/// overflow, the trie is left **unchanged** and `None` is returned, which a caller cannot
	/// tell from a fresh insert. Entries from the network must go through `try_insert`.
	pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
		self.try_insert(entry).unwrap_or(None)
	}

	/// Inserts or replaces the entry for `entry.key`; returns the previous entry.
	///
	/// [`TrieError::Overflow`] if the segment's entries, bytes or chunks would not fit in a
	/// `u64`; the new totals are computed before the tree is touched, so on error the trie is
	/// unchanged.
	pub fn try_insert(&mut self, entry: Entry) -> Result<Option<Entry>, TrieError> {
		let path = key_path(&entry.key);
		let size = entry.size;
		let Some(top) = self.top.as_mut() else {
			self.top = Some(Node::leaf(path, entry));
			self.entries = 1;
			self.bytes = size;
			return Ok(None);
		};
		// Find the closest existing leaf, then the crit bit against it.
		let mut probe = &*top;
		let (closest, closest_size) = loop {
			match probe {
				Node::Leaf { path: p, entry, .. } => break (*p, entry.size),
				Node::Inner(i) => probe = if bit_at(&path, i.bit) { &i.right } else { &i.left },
			}
		};
		let crit = crit_bit(&path, &closest);
		// New totals first: nothing is changed unless all of them fit.
		let (entries, bytes, leaves) = match crit {
			// Replacing the entry under the same key.
			None => (
				Some(self.entries),
				self.bytes.checked_sub(closest_size).and_then(|b| b.checked_add(size)),
				top.weight()
					.checked_sub(chunks_of(closest_size))
					.and_then(|w| w.checked_add(chunks_of(size))),
			),
			Some(_) => (
				self.entries.checked_add(1),
				self.bytes.checked_add(size),
				top.weight().checked_add(chunks_of(size)),
			),
		};
		let (Some(entries), Some(bytes), Some(_)) = (entries, bytes, leaves) else {
			return Err(TrieError::Overflow);
		};
		let new = Node::leaf(path, entry);
		let old = match crit {
			None => Self::replace(top, &path, new),
			Some(bit) => {
				Self::insert_at(top, new, &path, bit);
				None
			},
		};
		self.entries = entries;
		self.bytes = bytes;
		Ok(old)
	}

	/// Replaces the leaf with `path` (which exists below `node`) by `new`; returns its entry.
	fn replace(node: &mut Node, path: &Hash32, new: Node) -> Option<Entry> {
		match node {
			Node::Leaf { .. } => match core::mem::replace(node, new) {
				Node::Leaf { entry, .. } => Some(entry),
				// `node` was just matched as a leaf.
				Node::Inner(_) => None,
			},
			Node::Inner(i) => {
				let child = if bit_at(path, i.bit) { &mut i.right } else { &mut i.left };
				let old = Self::replace(child, path, new);
				i.rehash();
				old
			},
		}
	}

	fn insert_at(node: &mut Node, new: Node, path: &Hash32, bit: u16) {
		if let Node::Inner(i) = node {
			if i.bit < bit {
				let child = if bit_at(path, i.bit) { &mut i.right } else { &mut i.left };
				Self::insert_at(child, new, path, bit);
				i.rehash();
				return;
			}
		}
		let existing = core::mem::replace(node, Node::placeholder());
		let (left, right) = if bit_at(path, bit) { (existing, new) } else { (new, existing) };
		let mut inner = Inner { bit, left, right, hash: [0; 32], weight: 0 };
		inner.rehash();
		*node = Node::Inner(Box::new(inner));
	}

	/// Removes the entry under `key`; returns it.
	pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
		let path = key_path(key);
		let top = self.top.as_mut()?;
		let removed = match top {
			Node::Leaf { path: p, .. } if *p == path => match self.top.take() {
				Some(Node::Leaf { entry, .. }) => Some(entry),
				// `top` was just matched as a leaf.
				other => {
					self.top = other;
					None
				},
			},
			Node::Leaf { .. } => None,
			Node::Inner(_) => Self::remove_in(top, &path),
		}?;
		// The totals include the removed entry, so these cannot go below zero.
		self.entries = self.entries.saturating_sub(1);
		self.bytes = self.bytes.saturating_sub(removed.size);
		Some(removed)
	}

	/// Removes the leaf with `path` below the inner node `node`, collapsing its parent.
	fn remove_in(node: &mut Node, path: &Hash32) -> Option<Entry> {
		let Node::Inner(i) = node else { return None };
		let (child, other) = if bit_at(path, i.bit) {
			(&mut i.right, &mut i.left)
		} else {
			(&mut i.left, &mut i.right)
		};
		match child {
			Node::Leaf { path: p, .. } if p == path => {
				// Replace this inner node by the other child.
				let gone = core::mem::replace(child, Node::placeholder());
				let keep = core::mem::replace(other, Node::placeholder());
				*node = keep;
				match gone {
					Node::Leaf { entry, .. } => Some(entry),
					// `gone` was just matched as a leaf.
					Node::Inner(_) => None,
				}
			},
			Node::Leaf { .. } => None,
			Node::Inner(_) => {
				let out = Self::remove_in(child, path);
				if out.is_some() {
					i.rehash();
				}
				out
			},
		}
	}

	/// Locates global chunk `index`: the entry, the chunk index within it and the trie path.
	pub fn locate(&self, index: u64) -> Option<(&Entry, u64, Vec<TrieStep>)> {
		let mut node = self.top.as_ref()?;
		if index >= node.weight() {
			return None;
		}
		let mut idx = index;
		let mut steps = Vec::new();
		loop {
			match node {
				Node::Leaf { entry, .. } => return Some((entry, idx, steps)),
				Node::Inner(i) => {
					let lw = i.left.weight();
					if idx < lw {
						steps.push(TrieStep {
							bit: i.bit,
							right: false,
							sibling: *i.right.hash(),
							sibling_weight: i.right.weight(),
						});
						node = &i.left;
					} else {
						idx -= lw;
						steps.push(TrieStep {
							bit: i.bit,
							right: true,
							sibling: *i.left.hash(),
							sibling_weight: lw,
						});
						node = &i.right;
					}
				},
			}
		}
	}

	/// Builds the proof for global chunk `index`, reading object content through `content`
	/// (`key, cid → bytes`). Returns `None` if the index is out of range or content is missing.
	pub fn prove_chunk(
		&self,
		index: u64,
		mut content: impl FnMut(&Entry) -> Option<Vec<u8>>,
	) -> Option<ChunkProof> {
		let (entry, chunk_idx, steps) = self.locate(index)?;
		let data = content(entry)?;
		// The entry's size is whatever the index says (a Primary may have signed any size for
		// a real CID): content of another length cannot prove it, and would slice out of range.
		if u64::try_from(data.len()) != Ok(entry.size) || cid_of(&data) != entry.cid {
			return None;
		}
		let (s, e) = subtree_range(entry.size, CHUNK_LEN, chunk_idx)?;
		let sibs = subtree_siblings(&data, CHUNK_LEN, chunk_idx)?;
		let chunk = data.get(usize::try_from(s).ok()?..usize::try_from(e).ok()?)?;
		Some(ChunkProof {
			key: entry.key.clone().try_into().ok()?,
			cid: entry.cid,
			size: entry.size,
			chunk: chunk.to_vec().try_into().ok()?,
			chunk_siblings: sibs.try_into().ok()?,
			trie_path: steps.try_into().ok()?,
		})
	}

	/// Builds a whole Proof-of-Sync for `seed` and `k`.
	pub fn prove(
		&self,
		seed: &Hash32,
		k: u32,
		mut content: impl FnMut(&Entry) -> Option<Vec<u8>>,
	) -> Option<SyncProof> {
		let facts = self.facts();
		let mut chunks = Vec::new();
		for i in challenge_indexes(seed, facts.leaves, k) {
			chunks.push(self.prove_chunk(i, &mut content)?);
		}
		Some(SyncProof { chunks: chunks.try_into().ok()? })
	}

	/// All entries in trie order.
	pub fn entries(&self) -> Vec<&Entry> {
		let mut out = Vec::new();
		fn walk<'a>(n: &'a Node, out: &mut Vec<&'a Entry>) {
			match n {
				Node::Leaf { entry, .. } => out.push(entry),
				Node::Inner(i) => {
					walk(&i.left, out);
					walk(&i.right, out);
				},
			}
		}
		if let Some(t) = &self.top {
			walk(t, &mut out);
		}
		out
	}
}

#[cfg(test)]
#[path = "commitment_tests.rs"]
mod tests;
