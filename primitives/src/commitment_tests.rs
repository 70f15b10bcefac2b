use super::*;
use alloc::{collections::BTreeMap, vec};
use proptest::prelude::*;

fn content(len: usize, seed: u8) -> Vec<u8> {
	(0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn subtree_proofs_match_blake3_for_every_shape() {
	for len in
		[0usize, 1, 1023, 1024, 1025, 2048, 3000, 5 * 1024 + 7, 16 * 1024, 16 * 1024 + 1, 70_000]
	{
		let data = content(len, 3);
		let cid = cid_of(&data);
		for unit in [CHUNK_LEN, GROUP_LEN] {
			let n = (len as u64).div_ceil(unit).max(1);
			for idx in 0..n {
				let (s, e) = subtree_range(len as u64, unit, idx).unwrap();
				let sibs = subtree_siblings(&data, unit, idx).unwrap();
				let piece = &data[s as usize..e as usize];
				assert_eq!(
					verify_subtree(&cid, len as u64, unit, idx, piece, &sibs),
					Ok(()),
					"len {len} unit {unit} idx {idx}"
				);
				// a flipped byte, a wrong index or a dropped sibling is caught
				if !piece.is_empty() {
					let mut bad = piece.to_vec();
					bad[0] ^= 1;
					assert_eq!(
						verify_subtree(&cid, len as u64, unit, idx, &bad, &sibs),
						Err(ProofError::HashMismatch)
					);
				}
				if n > 1 {
					let other = (idx + 1) % n;
					assert!(verify_subtree(&cid, len as u64, unit, other, piece, &sibs).is_err());
					assert_eq!(
						verify_subtree(&cid, len as u64, unit, idx, piece, &sibs[1..]),
						Err(ProofError::BadPathLength)
					);
				}
			}
			assert_eq!(
				verify_subtree(&cid, len as u64, unit, n, &[], &[]),
				Err(ProofError::IndexOutOfRange)
			);
		}
	}
}

fn entry(key: &str, data: &[u8]) -> Entry {
	Entry { key: key.as_bytes().to_vec(), cid: cid_of(data), size: data.len() as u64 }
}

#[test]
fn root_is_independent_of_write_order_and_removal_restores_it() {
	let objs: Vec<(String, Vec<u8>)> =
		(0..40).map(|i| (format!("k{i}"), content(i * 300, i as u8))).collect();
	let mut a = SegmentTrie::new();
	for (k, d) in &objs {
		a.insert(entry(k, d));
	}
	let mut b = SegmentTrie::new();
	for (k, d) in objs.iter().rev() {
		b.insert(entry(k, d));
	}
	assert_eq!(a.facts(), b.facts());
	assert_eq!(a.facts().entries, 40);
	let before = a.facts();
	a.insert(entry("extra", b"hello"));
	assert_ne!(a.facts(), before);
	assert_eq!(a.remove(b"extra").map(|e| e.size), Some(5));
	assert_eq!(a.facts(), before);
	// overwrite changes the root but not the entry count
	a.insert(entry("k3", b"new content"));
	assert_eq!(a.facts().entries, 40);
	assert_ne!(a.facts().root, before.root);
	assert_eq!(a.get(b"k3").map(|e| e.size), Some(11));
	assert!(a.get(b"missing").is_none());
	assert_eq!(SegmentTrie::new().facts().root, empty_root());
}

#[test]
fn every_chunk_proof_verifies_and_tampering_fails() {
	let objs: BTreeMap<Vec<u8>, Vec<u8>> = (0..12)
		.map(|i| (format!("obj/{i}").into_bytes(), content(i * 1500 + 1, i as u8)))
		.collect();
	let mut t = SegmentTrie::new();
	for (k, d) in &objs {
		t.insert(Entry { key: k.clone(), cid: cid_of(d), size: d.len() as u64 });
	}
	let facts = t.facts();
	let fetch = |e: &Entry| objs.get(&e.key).cloned();
	for idx in 0..facts.leaves {
		let p = t.prove_chunk(idx, fetch).unwrap();
		assert_eq!(verify_chunk_proof(&facts, idx, &p), Ok(()), "index {idx}");
		assert!(
			verify_chunk_proof(&facts, (idx + 1) % facts.leaves, &p).is_err(),
			"proof is bound to its index"
		);
	}
	let p = t.prove_chunk(5, fetch).unwrap();
	let mut bad = p.clone();
	bad.chunk[0] ^= 0xff;
	assert_eq!(verify_chunk_proof(&facts, 5, &bad), Err(ProofError::HashMismatch));
	let mut bad = p.clone();
	bad.trie_path[0].sibling[0] ^= 1;
	assert_eq!(verify_chunk_proof(&facts, 5, &bad), Err(ProofError::HashMismatch));
	let mut bad = p.clone();
	bad.size += 1;
	assert!(verify_chunk_proof(&facts, 5, &bad).is_err());
	let mut other = facts;
	other.entries += 1;
	assert_eq!(verify_chunk_proof(&other, 5, &p), Err(ProofError::HashMismatch));
	assert_eq!(verify_chunk_proof(&facts, facts.leaves, &p), Err(ProofError::IndexOutOfRange));

	let seed = [9u8; 32];
	let proof = t.prove(&seed, 6, fetch).unwrap();
	assert_eq!(verify_sync_proof(&facts, &seed, 6, &proof), Ok(()));
	assert!(verify_sync_proof(&facts, &[8u8; 32], 6, &proof).is_err());
	assert_eq!(verify_sync_proof(&facts, &seed, 5, &proof), Err(ProofError::WrongLeafCount));
	// a holder without one object's bytes cannot build a proof touching it
	let missing = objs.keys().next().unwrap().clone();
	let partial = |e: &Entry| if e.key == missing { None } else { objs.get(&e.key).cloned() };
	let touches = challenge_indexes(&seed, facts.leaves, 6)
		.into_iter()
		.any(|i| t.locate(i).unwrap().0.key == missing);
	assert_eq!(t.prove(&seed, 6, partial).is_none(), touches);
}

#[test]
fn proof_of_six_chunks_fits_16_kib_for_a_large_segment() {
	// 20k objects of 4 KiB plus one 64 MiB object (virtual: only sizes matter for the path)
	let mut t = SegmentTrie::new();
	for i in 0..20_000u32 {
		t.insert(Entry {
			key: format!("some/longish/prefix/{i:08}").into_bytes(),
			cid: [1; 32],
			size: 4096,
		});
	}
	let facts = t.facts();
	let (_, _, steps) = t.locate(facts.leaves / 2).unwrap();
	let worst_trie = steps.len();
	let chunk_depth = 16; // 64 MiB object: log2(65536 chunks)
	let per_chunk =
		1 + 40 + 32 + 8 + 2 + 1024 + 1 + chunk_depth * 32 + 2 + worst_trie * (2 + 1 + 32 + 8);
	assert!(6 * per_chunk < 16 * 1024, "6 chunk proofs take {} bytes", 6 * per_chunk);
}

proptest! {
	#![proptest_config(ProptestConfig::with_cases(64))]
	#[test]
	fn incremental_trie_equals_rebuild(ops in proptest::collection::vec((0u8..24, proptest::option::of(0usize..3000)), 1..120)) {
		let mut t = SegmentTrie::new();
		let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
		for (k, v) in ops {
			let key = vec![b'k', k];
			match v {
				Some(len) => {
					let d = content(len, k);
					t.insert(Entry { key: key.clone(), cid: cid_of(&d), size: len as u64 });
					model.insert(key, d);
				},
				None => {
					prop_assert_eq!(t.remove(&key).is_some(), model.remove(&key).is_some());
				},
			}
			let mut fresh = SegmentTrie::new();
			for (k, d) in &model {
				fresh.insert(Entry { key: k.clone(), cid: cid_of(d), size: d.len() as u64 });
			}
			prop_assert_eq!(t.facts(), fresh.facts());
		}
		let facts = t.facts();
		for idx in 0..facts.leaves.min(50) {
			let p = t.prove_chunk(idx, |e| model.get(&e.key).cloned()).unwrap();
			prop_assert_eq!(verify_chunk_proof(&facts, idx, &p), Ok(()));
		}
	}
}

// ---------------------------------------------------------------------------------------------
// No input panics (issue #13): hostile proofs, hostile sizes, hostile trie ops
// ---------------------------------------------------------------------------------------------

/// A trie of `n` objects with real content, and the content by key.
fn trie_of(n: usize, seed: u8) -> (SegmentTrie, BTreeMap<Vec<u8>, Vec<u8>>) {
	let objs: BTreeMap<Vec<u8>, Vec<u8>> = (0..n)
		.map(|i| {
			(format!("obj/{i}").into_bytes(), content(i * 1500 + 1, seed.wrapping_add(i as u8)))
		})
		.collect();
	let mut t = SegmentTrie::new();
	for (k, d) in &objs {
		assert_eq!(
			t.try_insert(Entry { key: k.clone(), cid: cid_of(d), size: d.len() as u64 }),
			Ok(None)
		);
	}
	(t, objs)
}

#[test]
fn crafted_trie_bit_is_an_error() {
	let (t, objs) = trie_of(12, 1);
	let facts = t.facts();
	let seed = [5u8; 32];
	let proof = t.prove(&seed, 6, |e| objs.get(&e.key).cloned()).unwrap();
	assert_eq!(verify_sync_proof(&facts, &seed, 6, &proof), Ok(()));
	assert!(!proof.chunks[0].trie_path.is_empty(), "12 objects: every path has steps");
	for bit in [65535u16, 256] {
		// The first step: read before any other check could reject the proof.
		let mut bad = proof.clone();
		bad.chunks[0].trie_path[0].bit = bit;
		assert_eq!(verify_sync_proof(&facts, &seed, 6, &bad), Err(ProofError::BadTriePath));
		// The last step, after valid ones (bits increase, so a huge one passes that check).
		let mut bad = proof.clone();
		let last = bad.chunks[0].trie_path.len() - 1;
		bad.chunks[0].trie_path[last].bit = bit;
		assert_eq!(verify_sync_proof(&facts, &seed, 6, &bad), Err(ProofError::BadTriePath));
	}
	// `bit_at` itself is total: bits past the path read as zero.
	for i in PATH_BITS..=u16::MAX {
		assert!(!bit_at(&[0xff; 32], i));
	}
	assert!(bit_at(&[0xff; 32], PATH_BITS - 1));
	assert!(bit_at(&[0x80; 32], 0) && !bit_at(&[0x80; 32], 1));
}

#[test]
fn left_subtree_len_matches_blake3_and_does_not_overflow() {
	let mut lens: Vec<u64> = (1025..70_000).step_by(97).collect();
	lens.extend((11..64).flat_map(|p| [(1u64 << p) - 1, 1 << p, (1 << p) + 1]));
	lens.push(u64::MAX - 1);
	for len in lens {
		assert_eq!(left_subtree_len(len), blake3::hazmat::left_subtree_len(len), "len {len}");
	}
	// blake3's `(len + 1) / 2` overflows here; the real split is at 2^63.
	assert_eq!(left_subtree_len(u64::MAX), 1 << 63);
}

#[test]
fn huge_objects_are_an_error_not_a_panic() {
	// An index entry may claim any size for a CID; u64::MAX bytes has 2^54 chunks.
	let size = u64::MAX;
	let n = chunks_of(size);
	assert_eq!(n, 1 << 54);
	for idx in [0, 1, 2, 1023, 1 << 20, n / 2, n - 2, n - 1] {
		let (steps, start, len) = object_descent(size, CHUNK_LEN, idx).unwrap();
		assert_eq!(start, idx * CHUNK_LEN, "chunk {idx}");
		assert_eq!(len, if idx == n - 1 { 1023 } else { 1024 });
		assert!(steps.len() <= MAX_CHUNK_DEPTH as usize);
		let data = vec![7u8; len as usize];
		let sibs = vec![[3u8; 32]; steps.len()];
		assert_eq!(
			verify_subtree(&[1; 32], size, CHUNK_LEN, idx, &data, &sibs),
			Err(ProofError::HashMismatch)
		);
		// The same through a chunk proof against facts that allow such an object.
		let facts = RootFacts { root: [9; 32], leaves: n, entries: 1, bytes: size };
		let p = ChunkProof {
			key: b"huge".to_vec().try_into().unwrap(),
			cid: [1; 32],
			size,
			chunk: data.try_into().unwrap(),
			chunk_siblings: sibs.try_into().unwrap(),
			trie_path: Default::default(),
		};
		assert_eq!(verify_chunk_proof(&facts, idx, &p), Err(ProofError::HashMismatch));
	}
	assert_eq!(
		verify_subtree(&[1; 32], size, CHUNK_LEN, n, &[], &[]),
		Err(ProofError::IndexOutOfRange)
	);
	assert_eq!(subtree_range(size, CHUNK_LEN, n - 1), Some(((n - 1) * CHUNK_LEN, size)));
	assert_eq!(subtree_range(size, GROUP_LEN, size / GROUP_LEN), Some((size - 16383, size)));
	// Units that do not name BLAKE3 subtrees are refused, not looped on.
	for unit in [0, 1, 512, 1000, 3 * 1024] {
		assert_eq!(
			verify_subtree(&[1; 32], 5000, unit, 0, &[], &[]),
			Err(ProofError::IndexOutOfRange),
			"unit {unit}"
		);
	}
}

#[test]
fn degenerate_challenges_are_refused() {
	let empty = SegmentTrie::new().facts();
	let none = SyncProof { chunks: Default::default() };
	// The empty root: an empty proof, for any k.
	for k in [0, 1, 6] {
		assert_eq!(verify_sync_proof(&empty, &[1; 32], k, &none), Ok(()));
	}
	// Zero chunks under any other hash (e.g. {0, 0, 0} with a made-up root): nothing proves it.
	for root in [[0u8; 32], [7; 32]] {
		let fake = RootFacts { root, ..empty };
		assert_eq!(verify_sync_proof(&fake, &[1; 32], 6, &none), Err(ProofError::HashMismatch));
	}
	let fake = RootFacts { entries: 3, bytes: 10, ..empty };
	assert_eq!(verify_sync_proof(&fake, &[1; 32], 6, &none), Err(ProofError::HashMismatch));
	// A non-empty segment: k = 0 would accept an empty proof of any root.
	let (t, objs) = trie_of(3, 2);
	let facts = t.facts();
	assert_eq!(verify_sync_proof(&facts, &[1; 32], 0, &none), Err(ProofError::WrongLeafCount));
	let forged = RootFacts { root: [7; 32], ..facts };
	assert_eq!(verify_sync_proof(&forged, &[1; 32], 0, &none), Err(ProofError::WrongLeafCount));
	// Chunks for an empty segment.
	let proof = t.prove(&[1; 32], 2, |e| objs.get(&e.key).cloned()).unwrap();
	assert_eq!(verify_sync_proof(&empty, &[1; 32], 2, &proof), Err(ProofError::WrongLeafCount));
	// A k far above what a proof can hold is refused before anything is allocated for it.
	assert_eq!(
		verify_sync_proof(&facts, &[1; 32], u32::MAX, &proof),
		Err(ProofError::WrongLeafCount)
	);
}

#[test]
fn trie_overflow_is_an_error_and_changes_nothing() {
	let huge = |key: &[u8], size| Entry { key: key.to_vec(), cid: [1; 32], size };
	let mut t = SegmentTrie::new();
	assert_eq!(t.try_insert(huge(b"a", u64::MAX)), Ok(None));
	let one = t.facts();
	assert_eq!((one.leaves, one.entries, one.bytes), (1 << 54, 1, u64::MAX));
	assert!(crate::rules::root_facts_consistent(&one));
	// A second object of any size > 0 overflows the bytes.
	assert_eq!(t.try_insert(huge(b"b", u64::MAX)), Err(TrieError::Overflow));
	assert_eq!(t.try_insert(huge(b"b", 1)), Err(TrieError::Overflow));
	assert_eq!(t.facts(), one);
	assert_eq!(t.entries().len(), 1);
	assert!(t.get(b"b").is_none());
	// The panic-free wrapper leaves the trie unchanged as well.
	assert_eq!(t.insert(huge(b"b", u64::MAX)), None);
	assert_eq!(t.facts(), one);
	// An empty object still fits (bytes unchanged, one more chunk).
	assert_eq!(t.try_insert(huge(b"c", 0)), Ok(None));
	assert_eq!(t.facts().leaves, (1 << 54) + 1);
	// Replacing frees the old size first: shrinking and growing back both fit.
	assert_eq!(t.try_insert(huge(b"a", 5)).map(|p| p.map(|e| e.size)), Ok(Some(u64::MAX)));
	assert_eq!(t.try_insert(huge(b"a", u64::MAX - 1)).map(|p| p.map(|e| e.size)), Ok(Some(5)));
	assert_eq!(t.try_insert(huge(b"d", 2)), Err(TrieError::Overflow));
	let before = t.facts();
	// A replacement that grows past the limit is refused and keeps the old entry.
	t.try_insert(huge(b"b", 1)).unwrap();
	let before_b = t.facts();
	assert_ne!(before, before_b);
	assert_eq!(t.try_insert(huge(b"b", 2)), Err(TrieError::Overflow));
	assert_eq!(t.facts(), before_b);
	assert_eq!(t.get(b"b").map(|e| e.size), Some(1));
	// Removal restores the totals exactly.
	assert_eq!(t.remove(b"b").map(|e| e.size), Some(1));
	assert_eq!(t.facts(), before);
}

#[test]
fn content_of_the_wrong_length_cannot_prove_an_entry() {
	// An index may pair a real CID with any size; proving must refuse, not slice out of range.
	let data = content(3000, 4);
	let mut t = SegmentTrie::new();
	t.try_insert(Entry { key: b"k".to_vec(), cid: cid_of(&data), size: 100_000 })
		.unwrap();
	for idx in [0, 2, 50, 97] {
		assert!(t.prove_chunk(idx, |_| Some(data.clone())).is_none(), "chunk {idx}");
	}
	assert!(t.prove(&[3; 32], 6, |_| Some(data.clone())).is_none());
}

// ---- property tests ---------------------------------------------------------------------------

fn arb_u64() -> impl Strategy<Value = u64> {
	prop_oneof![
		Just(0u64),
		Just(1),
		Just(u64::MAX),
		Just(u64::MAX - 1),
		Just(1u64 << 54),
		0u64..70_000,
		any::<u64>(),
	]
}

fn arb_bit() -> impl Strategy<Value = u16> {
	prop_oneof![0u16..256, Just(256u16), Just(u16::MAX), any::<u16>()]
}

fn arb_step() -> impl Strategy<Value = TrieStep> {
	(arb_bit(), any::<bool>(), any::<Hash32>(), arb_u64()).prop_map(
		|(bit, right, sibling, sibling_weight)| TrieStep { bit, right, sibling, sibling_weight },
	)
}

fn arb_chunk_proof() -> impl Strategy<Value = ChunkProof> {
	(
		proptest::collection::vec(any::<u8>(), 0..=MAX_KEY_LEN as usize),
		any::<Hash32>(),
		arb_u64(),
		proptest::collection::vec(any::<u8>(), 0..=CHUNK_LEN as usize),
		proptest::collection::vec(any::<Hash32>(), 0..=MAX_CHUNK_DEPTH as usize),
		proptest::collection::vec(arb_step(), 0..=40),
	)
		.prop_map(|(key, cid, size, chunk, sibs, path)| ChunkProof {
			key: key.try_into().unwrap(),
			cid,
			size,
			chunk: chunk.try_into().unwrap(),
			chunk_siblings: sibs.try_into().unwrap(),
			trie_path: path.try_into().unwrap(),
		})
}

fn arb_facts() -> impl Strategy<Value = RootFacts> {
	(any::<Hash32>(), arb_u64(), arb_u64(), arb_u64())
		.prop_map(|(root, leaves, entries, bytes)| RootFacts { root, leaves, entries, bytes })
}

/// Shapes a random proof so that it gets past the cheap checks and into hashing: the right
/// number of chunk proofs (`count`), and (`flat`) every chunk proof of one object that is the
/// whole segment, with (`fit`) the chunk length and sibling count its index needs.
fn shape(
	facts: &mut RootFacts,
	seed: &Hash32,
	k: u32,
	proof: &mut SyncProof,
	(count, flat, fit): (bool, bool, bool),
) {
	if flat {
		if let Some(size) = proof.chunks.first().map(|p| p.size) {
			facts.leaves = chunks_of(size);
			for p in proof.chunks.iter_mut() {
				p.size = size;
				p.trie_path = Default::default();
			}
		}
	}
	let want = if facts.leaves == 0 { 0 } else { k as usize };
	if count && !proof.chunks.is_empty() {
		let mut v: Vec<ChunkProof> = proof.chunks.iter().cycle().take(want).cloned().collect();
		v.truncate(MAX_CHALLENGE_LEAVES as usize);
		proof.chunks = v.try_into().unwrap();
	}
	if flat && fit {
		let indexes = challenge_indexes(seed, facts.leaves, k);
		for (p, idx) in proof.chunks.iter_mut().zip(indexes) {
			let Some((steps, _, len)) = object_descent(p.size, CHUNK_LEN, idx) else { continue };
			let mut chunk = p.chunk.to_vec();
			chunk.resize(len as usize, 0x5a);
			p.chunk = chunk.try_into().unwrap();
			let mut sibs = p.chunk_siblings.to_vec();
			sibs.resize(steps.len(), [0xa5; 32]);
			p.chunk_siblings = sibs.try_into().unwrap();
		}
	}
}

proptest! {
	#![proptest_config(ProptestConfig::with_cases(256))]
	#[test]
	fn prop_arbitrary_proofs_never_verify_or_panic(
		mut facts in arb_facts(),
		seed in any::<Hash32>(),
		k in 0u32..=MAX_CHALLENGE_LEAVES,
		chunks in proptest::collection::vec(arb_chunk_proof(), 0..=MAX_CHALLENGE_LEAVES as usize),
		shaping in (any::<bool>(), any::<bool>(), any::<bool>()),
	) {
		let mut proof = SyncProof { chunks: chunks.try_into().unwrap() };
		shape(&mut facts, &seed, k, &mut proof, shaping);
		// A random root is not the empty root, so even zero chunks for zero leaves is refused.
		prop_assume!(facts.root != empty_root());
		prop_assert!(verify_sync_proof(&facts, &seed, k, &proof).is_err());
		// Each chunk proof on its own, at its index and at hostile ones.
		for (i, p) in proof.chunks.iter().enumerate() {
			for index in [i as u64, facts.leaves.saturating_sub(1), u64::MAX] {
				prop_assert!(verify_chunk_proof(&facts, index, p).is_err());
			}
		}
	}
}

/// One field of a valid proof to change.
#[derive(Clone, Copy, Debug)]
enum Mutation {
	ChunkByte,
	Sibling,
	StepBit,
	StepWeight,
	StepRight,
	StepSibling,
	Size,
	Cid,
	Key,
	DropChunkProof,
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
	use Mutation::*;
	prop_oneof![
		Just(ChunkByte),
		Just(Sibling),
		Just(StepBit),
		Just(StepWeight),
		Just(StepRight),
		Just(StepSibling),
		Just(Size),
		Just(Cid),
		Just(Key),
		Just(DropChunkProof),
	]
}

/// Applies `m` to `proof` (at positions picked by `at`, with the new value derived from `v`),
/// so that the result differs from the original in that one field.
fn mutate(proof: &mut SyncProof, m: Mutation, at: &[prop::sample::Index; 3], v: u64) {
	let nz = |x: u64| (x as u8).max(1); // a non-zero xor mask
	let changed = |old: u64| if v == old { old.wrapping_add(1) } else { v };
	let c = at[0].index(proof.chunks.len());
	let p = &mut proof.chunks[c];
	let extra_step =
		TrieStep { bit: v as u16, right: v & 1 == 1, sibling: [v as u8; 32], sibling_weight: v };
	match m {
		Mutation::ChunkByte => {
			if p.chunk.is_empty() {
				p.chunk.try_push(v as u8).unwrap();
			} else {
				let i = at[1].index(p.chunk.len());
				p.chunk[i] ^= nz(v);
			}
		},
		Mutation::Sibling => {
			if p.chunk_siblings.is_empty() {
				p.chunk_siblings.try_push([v as u8; 32]).unwrap();
			} else {
				let i = at[1].index(p.chunk_siblings.len());
				p.chunk_siblings[i][at[2].index(32)] ^= nz(v);
			}
		},
		Mutation::StepBit | Mutation::StepWeight | Mutation::StepRight | Mutation::StepSibling
			if p.trie_path.is_empty() =>
		{
			// A one-entry segment has no steps: adding one is the mutation.
			p.trie_path.try_push(extra_step).unwrap();
		},
		Mutation::StepBit => {
			let s = at[1].index(p.trie_path.len());
			let step = &mut p.trie_path[s];
			step.bit = if v as u16 == step.bit { step.bit.wrapping_add(1) } else { v as u16 };
		},
		Mutation::StepWeight => {
			let s = at[1].index(p.trie_path.len());
			let step = &mut p.trie_path[s];
			step.sibling_weight = changed(step.sibling_weight);
		},
		Mutation::StepRight => {
			let s = at[1].index(p.trie_path.len());
			p.trie_path[s].right ^= true;
		},
		Mutation::StepSibling => {
			let s = at[1].index(p.trie_path.len());
			p.trie_path[s].sibling[at[2].index(32)] ^= nz(v);
		},
		Mutation::Size => p.size = changed(p.size),
		Mutation::Cid => p.cid[at[1].index(32)] ^= nz(v),
		Mutation::Key => {
			if p.key.is_empty() {
				p.key.try_push(v as u8).unwrap();
			} else {
				let i = at[1].index(p.key.len());
				p.key[i] ^= nz(v);
			}
		},
		Mutation::DropChunkProof => {
			proof.chunks.remove(c);
		},
	}
}

proptest! {
	#![proptest_config(ProptestConfig::with_cases(128))]
	#[test]
	fn prop_mutated_valid_proof_is_rejected(
		objs in proptest::collection::btree_map(0u8..40, 0usize..5000, 1..12),
		seed in any::<Hash32>(),
		k in 1u32..=6,
		m in arb_mutation(),
		at in any::<[prop::sample::Index; 3]>(),
		v in arb_u64(),
	) {
		let objs: BTreeMap<Vec<u8>, Vec<u8>> =
			objs.into_iter().map(|(id, len)| (vec![b'o', id], content(len, id))).collect();
		let mut t = SegmentTrie::new();
		for (key, d) in &objs {
			t.try_insert(Entry { key: key.clone(), cid: cid_of(d), size: d.len() as u64 }).unwrap();
		}
		let facts = t.facts();
		let proof = t.prove(&seed, k, |e| objs.get(&e.key).cloned()).unwrap();
		prop_assert_eq!(verify_sync_proof(&facts, &seed, k, &proof), Ok(()));
		let mut bad = proof.clone();
		mutate(&mut bad, m, &at, v);
		prop_assert_ne!(&bad, &proof);
		prop_assert!(verify_sync_proof(&facts, &seed, k, &bad).is_err(), "{:?} accepted", m);
	}
}

/// One operation on a trie.
#[derive(Clone, Debug)]
enum TrieOp {
	/// `try_insert` of `(key, size)`.
	TryInsert(u8, u64),
	/// `insert` (the panic-free wrapper) of `(key, size)`.
	Insert(u8, u64),
	Remove(u8),
}

fn arb_size() -> impl Strategy<Value = u64> {
	prop_oneof![
		3 => 0u64..5000,
		1 => Just(u64::MAX),
		1 => Just(u64::MAX - 1),
		1 => Just(u64::MAX / 2),
		1 => Just(1u64 << 63),
		1 => any::<u64>(),
	]
}

fn arb_trie_op() -> impl Strategy<Value = TrieOp> {
	prop_oneof![
		(0u8..16, arb_size()).prop_map(|(k, s)| TrieOp::TryInsert(k, s)),
		(0u8..16, arb_size()).prop_map(|(k, s)| TrieOp::Insert(k, s)),
		(0u8..16).prop_map(TrieOp::Remove),
	]
}

proptest! {
	#![proptest_config(ProptestConfig::with_cases(128))]
	#[test]
	fn prop_trie_ops_never_panic(ops in proptest::collection::vec(arb_trie_op(), 1..60)) {
		let entry = |k: u8, size: u64| Entry { key: vec![b'k', k], cid: [k; 32], size };
		let mut t = SegmentTrie::new();
		let mut model: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
		// Totals of a model, without overflow.
		let totals = |m: &BTreeMap<Vec<u8>, u64>| {
			let bytes: u128 = m.values().map(|&s| u128::from(s)).sum();
			let leaves: u128 = m.values().map(|&s| u128::from(chunks_of(s))).sum();
			(bytes, leaves)
		};
		for op in ops {
			let before = t.facts();
			match op {
				TrieOp::TryInsert(k, size) | TrieOp::Insert(k, size) => {
					let key = vec![b'k', k];
					let mut next = model.clone();
					let prev = next.insert(key.clone(), size);
					let (bytes, leaves) = totals(&next);
					let fits = bytes <= u128::from(u64::MAX) && leaves <= u128::from(u64::MAX);
					let got = match op {
						TrieOp::TryInsert(..) => t.try_insert(entry(k, size)),
						_ => Ok(t.insert(entry(k, size))),
					};
					if fits {
						prop_assert_eq!(got.map(|p| p.map(|e| e.size)), Ok(prev));
						model = next;
					} else {
						match op {
							TrieOp::TryInsert(..) => prop_assert_eq!(got, Err(TrieError::Overflow)),
							_ => prop_assert_eq!(got, Ok(None)),
						}
						prop_assert_eq!(t.facts(), before, "a refused insert changed the trie");
					}
				},
				TrieOp::Remove(k) => {
					let key = vec![b'k', k];
					prop_assert_eq!(t.remove(&key).map(|e| e.size), model.remove(&key));
				},
			}
			let facts = t.facts();
			let (bytes, leaves) = totals(&model);
			prop_assert_eq!(u128::from(facts.bytes), bytes);
			prop_assert_eq!(u128::from(facts.leaves), leaves);
			prop_assert_eq!(facts.entries, model.len() as u64);
			prop_assert!(crate::rules::root_facts_consistent(&facts), "{:?}", facts);
		}
		// The root still depends only on the set of entries.
		let mut fresh = SegmentTrie::new();
		for (key, &size) in model.iter().rev() {
			prop_assert_eq!(fresh.try_insert(entry(key[1], size)), Ok(None));
		}
		prop_assert_eq!(fresh.facts(), t.facts());
		for (key, &size) in &model {
			prop_assert_eq!(t.get(key).map(|e| e.size), Some(size));
		}
	}
}
