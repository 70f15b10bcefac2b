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
