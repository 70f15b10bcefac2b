use super::*;
use std::{
	io::{BufRead, BufReader},
	os::unix::fs::FileExt,
};
use sync_primitives::{
	commitment::{cid_of, GROUP_LEN},
	outboard::{group_range, groups_of},
};

fn blob(seed: u64, len: usize) -> Vec<u8> {
	let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
	(0..len)
		.map(|_| {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			x as u8
		})
		.collect()
}

const BIG: usize = 10 << 20;

mod integrity;

fn put(key: &str, data: Vec<u8>) -> SegmentWrite {
	SegmentWrite::Put { key: key.as_bytes().to_vec(), data }
}

/// A source store with small and large objects in segment 7.
fn source(dir: &Path) -> (Store, Head) {
	let s = Store::open(dir).unwrap();
	let mut w = vec![put("big", blob(1, BIG)), put("odd", blob(2, 100_001)), put("empty", vec![])];
	for i in 0..40 {
		w.push(put(&format!("small/{i}"), blob(100 + i, 1 + (i as usize * 397) % 16_000)));
	}
	let head = s.apply(7, w).unwrap();
	(s, head)
}

/// Group `g` of a complete object in `store`.
fn group(store: &Store, cid: &Hash32, g: u64) -> Vec<u8> {
	match store.read_groups(cid, g, 1).unwrap().remove(0) {
		GroupRead::Data(d) => d,
		GroupRead::Missing => panic!("group {g} missing"),
	}
}

/// Copies every object of `head` from `src` into `dst` through the verified transfer API.
fn copy_all(src: &Store, dst: &Store, head: Head) {
	dst.begin_transfer(7, head).unwrap();
	let listing = src.listing(7, &head.facts.root).unwrap();
	dst.stage_index(7, listing.to_vec()).unwrap();
	for e in listing.iter() {
		dst.begin_object(&e.cid, e.size, &src.outboard(&e.cid).unwrap()).unwrap();
		for g in 0..groups_of(e.size) {
			let d = group(src, &e.cid, g);
			dst.write_group(&e.cid, e.size, g, &d).unwrap();
		}
	}
}

#[test]
fn writes_update_root_incrementally_and_survive_reopen() {
	let dir = tempfile::tempdir().unwrap();
	let (s, head) = source(dir.path());
	assert_eq!(head.seq, 43);
	let mut trie = SegmentTrie::new();
	for e in s.listing(7, &head.facts.root).unwrap().iter() {
		trie.insert(e.clone());
	}
	assert_eq!(trie.facts(), head.facts);
	let h2 = s.apply(7, vec![SegmentWrite::Delete { key: b"odd".to_vec() }]).unwrap();
	assert_eq!(h2.seq, 44);
	assert_ne!(h2.facts.root, head.facts.root);
	assert_eq!(s.root_at(7, 43).unwrap(), Some(head.facts));
	assert!(s.lookup(7, b"odd").is_none());
	let big = s.lookup(7, b"big").unwrap();
	assert_eq!(s.read_object(&big.cid).unwrap(), blob(1, BIG));
	drop(s);
	let s = Store::open(dir.path()).unwrap();
	assert_eq!(s.head(7), Some(h2));
	assert_eq!(s.segments(), vec![7]);
	assert_eq!(s.read_object(&big.cid).unwrap(), blob(1, BIG));
	assert!(matches!(
		s.apply(7, vec![put(&"k".repeat(300), vec![1])]),
		Err(StoreError::KeyTooLong(300))
	));
	assert_eq!(s.head(7), Some(h2), "a rejected write changes nothing");
}

#[test]
fn transfer_verifies_everything_and_swaps_atomically() {
	let a = tempfile::tempdir().unwrap();
	let b = tempfile::tempdir().unwrap();
	let (src, head) = source(a.path());
	let dst = Store::open(b.path()).unwrap();
	dst.begin_transfer(7, head).unwrap();
	let listing = src.listing(7, &head.facts.root).unwrap();

	// A tampered index is rejected and nothing is staged.
	let mut bad = listing.to_vec();
	bad[0].size += 1;
	assert!(matches!(dst.stage_index(7, bad), Err(StoreError::IndexMismatch { .. })));
	assert!(!dst.transfer(7).unwrap().unwrap().index_staged);
	dst.stage_index(7, listing.to_vec()).unwrap();
	assert!(matches!(dst.finish_transfer(7), Err(StoreError::Incomplete { missing: 43, .. })));

	let big = src.lookup(7, b"big").unwrap();
	// A wrong outboard is rejected.
	let mut ob = src.outboard(&big.cid).unwrap();
	ob[5] ^= 1;
	assert!(matches!(dst.begin_object(&big.cid, big.size, &ob), Err(StoreError::BadData { .. })));
	dst.begin_object(&big.cid, big.size, &src.outboard(&big.cid).unwrap()).unwrap();
	// Corrupt group: rejected, not written, still missing.
	let GroupRead::Data(mut g) = src.read_groups(&big.cid, 3, 1).unwrap().remove(0) else {
		panic!()
	};
	g[100] ^= 0xff;
	assert!(matches!(dst.write_group(&big.cid, big.size, 3, &g), Err(StoreError::BadData { .. })));
	assert_eq!(dst.read_groups(&big.cid, 3, 1).unwrap(), vec![GroupRead::Missing]);
	assert!(matches!(
		dst.write_group(&big.cid, big.size, 9999, &g),
		Err(StoreError::OutOfRange { .. })
	));
	// Small object with wrong bytes.
	let small = src.lookup(7, b"small/3").unwrap();
	assert!(matches!(
		dst.write_group(&small.cid, small.size, 0, b"nope"),
		Err(StoreError::BadData { .. })
	));
	assert!(!dst.has_object(&small.cid).unwrap());

	copy_all(&src, &dst, head);
	let h = dst.finish_transfer(7).unwrap();
	assert_eq!(h, head);
	assert_eq!(dst.head(7), Some(head));
	assert!(dst.transfer(7).unwrap().is_none());
	for e in listing.iter() {
		assert_eq!(cid_of(&dst.read_object(&e.cid).unwrap()), e.cid);
	}
	drop(dst);
	let dst = Store::open(b.path()).unwrap();
	assert_eq!(dst.head(7), Some(head));
}

#[test]
fn partial_objects_resume_after_reopen_and_distrust_bits() {
	let a = tempfile::tempdir().unwrap();
	let b = tempfile::tempdir().unwrap();
	let (src, head) = source(a.path());
	let big = src.lookup(7, b"big").unwrap();
	{
		let dst = Store::open(b.path()).unwrap();
		dst.begin_transfer(7, head).unwrap();
		dst.begin_object(&big.cid, big.size, &src.outboard(&big.cid).unwrap()).unwrap();
		for g in (0..groups_of(big.size)).step_by(2) {
			let d = group(&src, &big.cid, g);
			dst.write_group(&big.cid, big.size, g, &d).unwrap();
		}
	}
	// Flip a byte of a verified group on disk: reopening must notice and refetch it.
	let part = b.path().join("partial").join(hex(&big.cid));
	let f = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
	f.write_all_at(&[0xAA], 2 * GROUP_LEN + 5).unwrap();
	drop(f);
	let dst = Store::open(b.path()).unwrap();
	let ObjectState::Partial { missing } = dst.object_state(&big.cid, big.size).unwrap() else {
		panic!()
	};
	let odd: Vec<u64> = (0..groups_of(big.size)).filter(|g| g % 2 == 1 || *g == 2).collect();
	assert_eq!(missing, odd);
	// Serving a partial object: verified groups yes, others missing.
	let r = dst.read_groups(&big.cid, 0, 3).unwrap();
	assert!(matches!(r[0], GroupRead::Data(_)));
	assert_eq!(r[1], GroupRead::Missing);
	assert_eq!(r[2], GroupRead::Missing);
}

/// Child half of the kill -9 test: runs only when `SYNC_STORE_CRASH_DIR` is set.
#[test]
fn crash_child() {
	let Ok(dir) = std::env::var("SYNC_STORE_CRASH_DIR") else { return };
	let dir = PathBuf::from(dir);
	let src = Store::open(dir.join("src")).unwrap();
	let head = src.head(7).unwrap();
	let dst = Store::open(dir.join("dst")).unwrap();
	dst.begin_transfer(7, head).unwrap();
	dst.stage_index(7, src.listing(7, &head.facts.root).unwrap().to_vec()).unwrap();
	let big = src.lookup(7, b"big").unwrap();
	dst.begin_object(&big.cid, big.size, &src.outboard(&big.cid).unwrap()).unwrap();
	let mut n = 0;
	for g in 0..groups_of(big.size) {
		let d = group(&src, &big.cid, g);
		dst.write_group(&big.cid, big.size, g, &d).unwrap();
		n += 1;
		println!("written {n}");
		if n == groups_of(big.size) / 2 {
			// Park here; the parent kills us with SIGKILL (no destructors, no flush).
			std::thread::sleep(std::time::Duration::from_secs(60));
		}
	}
}

#[test]
fn kill_9_mid_transfer_keeps_every_verified_group() {
	let dir = tempfile::tempdir().unwrap();
	let (src, head) = source(&dir.path().join("src"));
	let big = src.lookup(7, b"big").unwrap();
	drop(src);
	let mut child = std::process::Command::new(std::env::current_exe().unwrap())
		.args(["--exact", "tests::crash_child", "--nocapture", "--test-threads=1"])
		.env("SYNC_STORE_CRASH_DIR", dir.path())
		.stdout(std::process::Stdio::piped())
		.spawn()
		.unwrap();
	let half = groups_of(big.size) / 2;
	let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
	let target = format!("written {half}");
	loop {
		let l = lines.next().expect("child exited early").unwrap();
		if l.contains(&target) {
			break;
		}
	}
	child.kill().unwrap(); // SIGKILL
	child.wait().unwrap();

	let src = Store::open(dir.path().join("src")).unwrap();
	let dst = Store::open(dir.path().join("dst")).unwrap();
	let t = dst.transfer(7).unwrap().unwrap();
	assert!(t.index_staged, "the staged index was committed durably");
	let ObjectState::Partial { missing } = dst.object_state(&big.cid, big.size).unwrap() else {
		panic!()
	};
	let kept = groups_of(big.size) - missing.len() as u64;
	// The outboard was committed (OUTBOARD_FLUSH_GROUPS groups in) and the page cache kept every
	// write: reopening verifies exactly the groups written, nothing more and nothing less.
	assert!(half >= OUTBOARD_FLUSH_GROUPS as u64, "the test needs the outboard committed");
	assert_eq!(kept, half, "kept {kept} of {half}");
	assert_eq!(missing, (half..groups_of(big.size)).collect::<Vec<_>>());
	// Finish: only the missing groups are written, and the root matches.
	for e in src.listing(7, &head.facts.root).unwrap().iter() {
		dst.begin_object(&e.cid, e.size, &src.outboard(&e.cid).unwrap()).unwrap();
		let todo: Vec<u64> = match dst.object_state(&e.cid, e.size).unwrap() {
			ObjectState::Complete => vec![],
			ObjectState::Absent => (0..groups_of(e.size)).collect(),
			ObjectState::Partial { missing } => missing,
		};
		for g in todo {
			let d = group(&src, &e.cid, g);
			dst.write_group(&e.cid, e.size, g, &d).unwrap();
		}
	}
	assert_eq!(dst.finish_transfer(7).unwrap(), head);
	let (s, e) = group_range(big.size, 0).unwrap();
	assert_eq!(
		&dst.read_object(&big.cid).unwrap()[s as usize..e as usize],
		&blob(1, BIG)[..GROUP_LEN as usize]
	);
}

#[test]
fn object_fully_verified_but_not_committed_before_a_crash_is_committed_on_reopen() {
	let a = tempfile::tempdir().unwrap();
	let b = tempfile::tempdir().unwrap();
	let (src, head) = source(a.path());
	let big = src.lookup(7, b"big").unwrap();
	let last = groups_of(big.size) - 1;
	let read = |g| group(&src, &big.cid, g);
	{
		let dst = Store::open(b.path()).unwrap();
		dst.begin_transfer(7, head).unwrap();
		dst.begin_object(&big.cid, big.size, &src.outboard(&big.cid).unwrap()).unwrap();
		for g in 0..last {
			dst.write_group(&big.cid, big.size, g, &read(g)).unwrap();
		}
	}
	// The crash window: the last group and its bit reached the page cache, the rename did not.
	let part = b.path().join("partial").join(hex(&big.cid));
	let f = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
	f.write_all_at(&read(last), last * GROUP_LEN).unwrap();
	f.write_all_at(&[1], big.size + last).unwrap();
	drop(f);
	let dst = Store::open(b.path()).unwrap();
	assert_eq!(
		dst.object_state(&big.cid, big.size).unwrap(),
		ObjectState::Partial { missing: vec![] }
	);
	dst.flush().unwrap();
	assert!(dst.has_object(&big.cid).unwrap());
	assert_eq!(dst.read_object(&big.cid).unwrap(), blob(1, BIG));
	assert!(!part.exists());
}

/// A peer can ask for index pages at the head over and over (at every new head, so nothing is
/// cached): the listing is built from a database snapshot, never under the segment lock a write
/// holds for its whole batch, so no writer (and no reader of the trie) waits on it.
#[test]
fn head_index_does_not_hold_the_store_lock() {
	let dir = tempfile::tempdir().unwrap();
	let s = Store::open(dir.path()).unwrap();
	let writes: Vec<_> = (0..200).map(|i| put(&format!("k/{i}"), blob(i, 100))).collect();
	let head = s.apply(7, writes).unwrap();
	let live: Vec<Entry> =
		s.inner.segments.lock()[&7].trie.entries().into_iter().cloned().collect();
	// A write in progress holds the segment lock ...
	let held = s.inner.segments.lock();
	let (tx, rx) = std::sync::mpsc::channel();
	let reader = {
		let (s, root) = (s.clone(), head.facts.root);
		std::thread::spawn(move || {
			let page = s.index_page(7, &root, 10, 20, Peer::Known).map_err(|e| e.to_string());
			let full = s.listing(7, &root).map(|l| l.to_vec()).map_err(|e| e.to_string());
			let _ = tx.send((page, full));
		})
	};
	// ... and the head's index is listed meanwhile.
	let got = rx.recv_timeout(std::time::Duration::from_secs(10));
	drop(held);
	reader.join().unwrap();
	let (page, full) = got.expect("the head's index is listed while a write holds the lock");
	let (entries, total) = page.unwrap();
	assert_eq!(total, 200);
	assert_eq!(entries, live[10..30]);
	assert_eq!(full.unwrap(), live, "the live trie's entries, in its order");
	// The listing follows the head: the next head's is listed, the old root (not pinned) no
	// longer is.
	let h2 = s.apply(7, vec![SegmentWrite::Delete { key: b"k/3".to_vec() }]).unwrap();
	// (Not throttled: see `head_listing_rebuilds_a_peer_triggers_are_throttled`.)
	*s.inner.peer_builds.lock() = [None; 2];
	let (entries, total) = s.index_page(7, &h2.facts.root, 0, 1000, Peer::Known).unwrap();
	assert_eq!(total, 199);
	assert!(entries.iter().all(|e| e.key != b"k/3"));
	assert!(matches!(
		s.index_page(7, &head.facts.root, 0, 1, Peer::Known),
		Err(StoreError::UnknownSegment(7))
	));
	// A pinned head stays listed after the head moves on.
	s.pin_snapshot(7).unwrap();
	s.apply(7, vec![SegmentWrite::Delete { key: b"k/4".to_vec() }]).unwrap();
	assert_eq!(s.index_page(7, &h2.facts.root, 0, 1000, Peer::Known).unwrap().1, 199);
}

/// A peer asking for the index at every new head of a segment that keeps being written would
/// otherwise have the store build the whole listing (O(entries)) once per write.
#[test]
fn head_listing_rebuilds_a_peer_triggers_are_throttled() {
	use std::time::{Duration, Instant};
	let dir = tempfile::tempdir().unwrap();
	let s = Store::open(dir.path()).unwrap();
	let writes: Vec<_> = (0..200).map(|i| put(&format!("k/{i}"), blob(i, 100))).collect();
	let h1 = s.apply(7, writes).unwrap();
	let later = |secs| Some(Instant::now() + Duration::from_secs(secs));
	// The first build is free; it sets its class's next turn (and only its class's).
	assert_eq!(s.index_page(7, &h1.facts.root, 0, 10, Peer::Unknown).unwrap().1, 200);
	let turns = *s.inner.peer_builds.lock();
	assert!(turns[Peer::Unknown as usize].is_some() && turns[Peer::Known as usize].is_none());
	// Unknown peers' next turn is a minute away: the next head's listing is refused to them,
	// with a typed error that says to retry (served as `Busy`) ...
	s.inner.peer_builds.lock()[Peer::Unknown as usize] = later(60);
	let h2 = s.apply(7, vec![SegmentWrite::Delete { key: b"k/3".to_vec() }]).unwrap();
	let unknown = s.index_page(7, &h2.facts.root, 0, 10, Peer::Unknown);
	assert!(matches!(unknown, Err(StoreError::Throttled(7))));
	// ... while the peers the chain lists have their own budget, which throwaway identities
	// cannot spend ...
	assert_eq!(s.index_page(7, &h2.facts.root, 0, 10, Peer::Known).unwrap().1, 199);
	// ... what is already listed (the cached head, pins) is served to anyone ...
	*s.inner.peer_builds.lock() = [later(60), later(60)];
	assert_eq!(s.index_page(7, &h2.facts.root, 0, 10, Peer::Unknown).unwrap().1, 199, "cached");
	// ... and the store's own listings (pinning what it commits) are never refused, nor do
	// they give a peer class an earlier turn (their builds are cheap, a peer's may not be).
	let h3 = s.apply(7, vec![SegmentWrite::Delete { key: b"k/4".to_vec() }]).unwrap();
	let before = *s.inner.peer_builds.lock();
	assert_eq!(s.pin_snapshot(7).unwrap(), Some(h3));
	assert_eq!(*s.inner.peer_builds.lock(), before, "store builds leave peers' turns alone");
	assert_eq!(s.index_page(7, &h3.facts.root, 0, 10, Peer::Unknown).unwrap().1, 198, "pinned");
	// Once a class's turn has come, its peers' builds are allowed again.
	let h4 = s.apply(7, vec![SegmentWrite::Delete { key: b"k/5".to_vec() }]).unwrap();
	s.inner.peer_builds.lock()[Peer::Unknown as usize] = Some(Instant::now());
	assert_eq!(s.index_page(7, &h4.facts.root, 0, 10, Peer::Unknown).unwrap().1, 197);
}

/// The review's siblings: a staged index that is not in memory (after a restart, or because
/// it does not verify) is rebuilt from the database, O(entries), and peers' rebuilds of it
/// spend the same budget.
#[test]
fn staged_index_rebuilds_a_peer_triggers_are_throttled() {
	use std::time::{Duration, Instant};
	let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
	let src = Store::open(a.path()).unwrap();
	let writes: Vec<_> = (0..50).map(|i| put(&format!("k/{i}"), blob(i, 100))).collect();
	let head = src.apply(7, writes).unwrap();
	{
		let dst = Store::open(b.path()).unwrap();
		dst.begin_transfer(7, head).unwrap();
		dst.stage_index(7, src.listing(7, &head.facts.root).unwrap().to_vec()).unwrap();
	}
	// Reopened: the staged index is on disk only.
	let dst = Store::open(b.path()).unwrap();
	dst.inner.peer_builds.lock()[Peer::Unknown as usize] =
		Some(Instant::now() + Duration::from_secs(60));
	let refused = dst.index_page(7, &head.facts.root, 0, 10, Peer::Unknown);
	assert!(matches!(refused, Err(StoreError::Throttled(7))), "{refused:?}");
	assert_eq!(dst.index_page(7, &head.facts.root, 0, 10, Peer::Known).unwrap().1, 50);
	assert_eq!(dst.index_page(7, &head.facts.root, 0, 10, Peer::Unknown).unwrap().1, 50, "cached");
}

#[test]
fn disk_space_is_that_of_the_store_file_system() {
	let dir = tempfile::tempdir().unwrap();
	let s = Store::open(dir.path()).unwrap();
	let (avail, size) = s.disk_space().unwrap();
	assert!(size > 0 && avail <= size, "{avail} of {size}");
}

#[test]
fn next_build_holds_builds_to_their_share_and_never_comes_earlier() {
	use crate::{next_build, HEAD_LISTING_SHARE};
	use std::time::{Duration, Instant};
	let now = Instant::now();
	let cost = Duration::from_millis(100);
	let gap = cost * (HEAD_LISTING_SHARE - 1);
	assert_eq!(next_build(None, now, cost), now + gap);
	// A cheap build after an expensive one does not bring the next turn forward.
	let far = now + Duration::from_secs(10);
	assert_eq!(next_build(Some(far), now, Duration::ZERO), far);
	assert_eq!(next_build(Some(now), now, cost), now + gap);
}

mod oplog {
	use super::*;
	use sync_proto::{
		op_signing_payload, Op, OpKind, OpSigner, OpVerifier, SignedOp, MAX_OBJECT_BYTES,
		NO_PREV_OP,
	};

	/// The genesis hash of the unit tests' chain.
	const GENESIS: Hash32 = [0x47; 32];

	/// Unit-test keys: a keyed BLAKE3 MAC stands in for the node's Ed25519 key.
	pub(super) struct Key(pub(super) u8);
	impl OpSigner for Key {
		fn genesis(&self) -> Hash32 {
			GENESIS
		}
		fn epoch(&self) -> sync_proto::Epoch {
			1
		}
		fn public(&self) -> Vec<u8> {
			vec![self.0]
		}
		fn sign(&self, payload: &[u8]) -> Vec<u8> {
			blake3::keyed_hash(&[self.0; 32], payload).as_bytes().to_vec()
		}
	}
	/// Accepts signatures of the Primaries listed.
	struct Primaries(Vec<u8>);
	impl OpVerifier for Primaries {
		fn genesis(&self) -> Hash32 {
			GENESIS
		}
		fn verify(
			&self,
			_: sync_proto::SignedAt,
			signer: &[u8],
			payload: &[u8],
			signature: &[u8],
		) -> bool {
			signer.len() == 1
				&& self.0.contains(&signer[0])
				&& Key(signer[0]).sign(payload) == signature
		}
	}

	/// A Primary that wrote `n` puts and a delete, one write per batch (every op a checkpoint),
	/// and a follower holding every object but no index yet.
	fn setup(n: usize) -> (Store, Store, Vec<SignedOp>, TempDirs) {
		setup_batched(n, 1)
	}

	/// Like [`setup`], writing in batches of `batch`.
	fn setup_batched(n: usize, batch: usize) -> (Store, Store, Vec<SignedOp>, TempDirs) {
		let dirs = TempDirs(tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
		let p = Store::open(dirs.0.path()).unwrap();
		let mut writes: Vec<SegmentWrite> = (0..n)
			.map(|i| put(&format!("k{i}"), blob(i as u64, 100 + (i % 40) * 3000)))
			.collect();
		writes.push(SegmentWrite::Delete { key: b"k1".to_vec() });
		let mut ops = Vec::new();
		while !writes.is_empty() {
			let rest = writes.split_off(batch.min(writes.len()));
			ops.extend(p.apply_signed(7, std::mem::replace(&mut writes, rest), &Key(1)).unwrap().1);
		}
		let f = Store::open(dirs.1.path()).unwrap();
		for op in &ops {
			if let OpKind::Put { cid, size, .. } = &op.op.kind {
				f.begin_object(cid, *size, &p.outboard(cid).unwrap()).unwrap();
				for g in 0..groups_of(*size) {
					f.write_group(cid, *size, g, &group(&p, cid, g)).unwrap();
				}
			}
		}
		f.flush().unwrap();
		(p, f, ops, dirs)
	}
	struct TempDirs(tempfile::TempDir, tempfile::TempDir);

	/// The defect (#15): the old owner kept taking writes after it had decided where its epoch
	/// ends, so writes it acknowledged were past its seal and lost. A fence stops local writes
	/// at the head it returns — a write racing it lands before it or is refused — and leaves
	/// replays alone.
	#[test]
	fn writes_after_the_fence_are_refused_and_none_lands_past_it() {
		let (p, f, ops, _d) = setup(4);
		let head = p.head(7).unwrap();
		assert_eq!(p.fence(7), Some(head));
		assert_eq!(p.fenced(7), Some(Some(head)));
		let refused = p.apply_signed(7, vec![put("late", vec![1])], &Key(1));
		assert!(matches!(refused, Err(StoreError::Fenced { segment: 7, seq }) if seq == head.seq));
		assert!(matches!(p.apply(7, vec![put("late", vec![1])]), Err(StoreError::Fenced { .. })));
		assert_eq!(p.head(7), Some(head), "nothing written");
		assert!(p.lookup(7, b"late").is_none());
		// A follower's replay is not a local write.
		f.fence(7);
		assert_eq!(f.replay(7, &ops, &Primaries(vec![1])).unwrap(), head);
		p.unfence(7);
		assert_eq!(p.fenced(7), None);
		assert_eq!(
			p.apply_signed(7, vec![put("late", vec![1])], &Key(1)).unwrap().0.seq,
			head.seq + 1
		);

		// Racing writers: every acknowledged write is at or below the fenced head.
		let acked = std::sync::Mutex::new(Vec::new());
		let fenced = std::thread::scope(|scope| {
			for t in 0..3u64 {
				let (p, acked) = (&p, &acked);
				scope.spawn(move || {
					for i in 0..200u64 {
						match p.apply_signed(
							7,
							vec![put(&format!("r{t}/{i}"), vec![i as u8])],
							&Key(1),
						) {
							Ok((h, _)) => acked.lock().unwrap().push(h.seq),
							Err(StoreError::Fenced { .. }) => break,
							Err(e) => panic!("{e}"),
						}
					}
				});
			}
			std::thread::sleep(std::time::Duration::from_millis(20));
			p.fence(7).unwrap()
		});
		assert_eq!(p.head(7), Some(fenced), "no write landed after the fence");
		assert!(acked.lock().unwrap().iter().all(|seq| *seq <= fenced.seq));
	}

	/// An owner whose epoch starts after the chain's latest commit while its log runs on in
	/// the older epoch takes the segment back to that commit: the later ops, their roots and
	/// pins are gone, the state is the commit's exactly (also after a reopen), and it writes on
	/// from there.
	#[test]
	fn rewind_takes_the_segment_back_to_a_committed_seq() {
		let (p, _f, _ops, d) = setup(6);
		let head = p.head(7).unwrap();
		let at3 = p.root_at(7, 3).unwrap().unwrap_or_else(|| {
			let t = p.trie_at(7, 3).unwrap();
			t.facts()
		});
		let wrong = p.trie_at(7, 4).unwrap().facts();
		assert!(matches!(p.rewind(7, 3, &wrong), Err(StoreError::RootMismatch { .. })));
		assert_eq!(p.head(7), Some(head), "a refused rewind changes nothing");
		p.pin_snapshot(7).unwrap();
		let back = p.rewind(7, 3, &at3).unwrap();
		assert_eq!(back, Head { seq: 3, facts: at3 });
		assert_eq!(p.head(7), Some(back));
		assert!(p.lookup(7, b"k3").is_none(), "an undone put");
		assert!(p.lookup(7, b"k2").is_some());
		assert_eq!(p.ops(7, 4, 10).unwrap(), vec![], "the later ops are dropped");
		assert!(p.pinned(7).iter().all(|h| h.seq <= 3), "pins past it dropped");
		assert_eq!(p.provable_root(7, 3), Some(at3.root));
		let next = p.apply_signed(7, vec![put("new", vec![9])], &Key(1)).unwrap().0;
		assert_eq!(next.seq, 4);
		drop(p);
		let p = Store::open(d.0.path()).unwrap();
		assert_eq!(p.head(7), Some(next));
		let mut trie = SegmentTrie::new();
		for e in p.listing(7, &next.facts.root).unwrap().iter() {
			trie.insert(e.clone());
		}
		assert_eq!(trie.facts(), next.facts, "the index is the rewound state plus the new op");
		assert!(matches!(p.rewind(7, 9, &at3), Err(StoreError::NotReached { .. })));
	}

	/// A follower refuses an old epoch's checkpoints past the end the chain recorded for it
	/// with a typed error that blames nobody (the old owner may have written it before it
	/// learnt of the seal), and applies nothing of the batch.
	#[test]
	fn checkpoints_past_their_epochs_end_are_refused_without_blame() {
		struct Sealed(u64);
		impl OpVerifier for Sealed {
			fn genesis(&self) -> Hash32 {
				GENESIS
			}
			fn verify(&self, at: sync_proto::SignedAt, s: &[u8], p: &[u8], sig: &[u8]) -> bool {
				Primaries(vec![1]).verify(at, s, p, sig)
			}
			fn ended(&self, at: sync_proto::SignedAt) -> bool {
				at.seq > self.0
			}
		}
		let (_p, f, ops, _d) = setup(6);
		let h = f.replay(7, &ops[..3], &Sealed(3)).unwrap();
		assert_eq!(h.seq, 3);
		let err = f.replay(7, &ops[3..5], &Sealed(3)).unwrap_err();
		assert!(matches!(err, StoreError::PastEpochEnd { segment: 7, seq: 4, epoch: 1 }), "{err}");
		assert_eq!(f.head(7), Some(h));
		// The defect (review of #15): `ended` was asked before the signature, so a forgery
		// past an epoch's end was taken for the sealed owner's late op and blamed no one. A
		// forged one is a forgery.
		let mut forged = ops[3..5].to_vec();
		let other = Key(9);
		forged[0].signer = other.public();
		forged[0].signature = other.sign_op(&forged[0].op);
		let err = f.replay(7, &forged, &Sealed(3)).unwrap_err();
		assert!(matches!(err, StoreError::BadSignature { segment: 7, seq: 4 }), "{err}");
		assert_eq!(f.head(7), Some(h));
	}

	#[test]
	fn replay_reaches_the_primary_root_exactly_once() {
		let (p, f, ops, _d) = setup(12);
		assert_eq!(p.ops(7, 1, 100).unwrap(), ops, "the log is stored with the writes");
		assert_eq!(ops.len(), 13);
		let h = f.replay(7, &ops[..5], &Primaries(vec![1])).unwrap();
		assert_eq!(h.seq, 5);
		// Overlapping ranges (a re-delivered batch after a restart): nothing applied twice.
		let h = f.replay(7, &ops[3..], &Primaries(vec![1])).unwrap();
		assert_eq!(h, p.head(7).unwrap());
		assert_eq!(f.replay(7, &ops, &Primaries(vec![1])).unwrap(), h);
		drop(f);
		let f = Store::open(_d.1.path()).unwrap();
		assert_eq!(f.head(7), p.head(7));
		assert_eq!(f.ops(7, 1, 100).unwrap(), ops);
	}

	#[test]
	fn forged_gapped_conflicting_and_stale_ops_change_nothing() {
		let (_p, f, ops, _d) = setup(6);
		let ok = Primaries(vec![1]);
		// Signed by a key that is not a Primary of the segment.
		let mut forged = ops.clone();
		let other = Key(9);
		forged[0].signer = other.public();
		forged[0].signature = other.sign_op(&forged[0].op);
		assert!(matches!(
			f.replay(7, &forged[..1], &ok),
			Err(StoreError::BadSignature { seq: 1, .. })
		));
		// Signed by the Primary, but for another chain (another genesis hash).
		let mut elsewhere = ops[0].clone();
		elsewhere.signature = Key(1).sign(&op_signing_payload(&[0; 32], &elsewhere.op));
		assert!(matches!(
			f.replay(7, &[elsewhere], &ok),
			Err(StoreError::BadSignature { seq: 1, .. })
		));
		// A tampered op under the real signature.
		let mut tampered = ops[0].clone();
		tampered.op.new_root[0] ^= 1;
		assert!(matches!(f.replay(7, &[tampered], &ok), Err(StoreError::BadSignature { .. })));
		// A gap.
		assert!(matches!(
			f.replay(7, &ops[2..3], &ok),
			Err(StoreError::OutOfOrder { got: 3, expected: 1, .. })
		));
		assert_eq!(f.head(7), None, "nothing applied");
		// All or nothing: a batch with a bad op in the middle applies none of it.
		let mut batch = ops[..4].to_vec();
		batch[2].signature[0] ^= 1;
		assert!(f.replay(7, &batch, &ok).is_err());
		assert_eq!(f.head(7), None);
		// A different op under an applied seq is a conflict.
		f.replay(7, &ops[..2], &ok).unwrap();
		let mut conflicting = ops[1].clone();
		conflicting.signature[0] ^= 1;
		assert!(matches!(
			f.replay(7, &[conflicting], &ok),
			Err(StoreError::Conflict { seq: 2, .. })
		));
		// An op signed by the Primary but built on another root: another history than this
		// store's (Forked, which the committed roots settle), not a lie on its face.
		let key = Key(1);
		let mut stale = ops[2].clone();
		stale.op.prev_root = [0; 32];
		stale.signature = key.sign_op(&stale.op);
		assert!(matches!(
			f.replay(7, &[stale.clone()], &ok),
			Err(StoreError::Forked { seq: 3, .. })
		));
		// After an op of the batch, the same is a broken root chain.
		let mut batch = vec![ops[2].clone(), ops[3].clone()];
		batch[1].op.prev_root = [0; 32];
		batch[1].signature = key.sign_op(&batch[1].op);
		assert!(matches!(f.replay(7, &batch, &ok), Err(StoreError::RootMismatch { seq: 4, .. })));
		assert_eq!(f.head(7).unwrap().seq, 2);
	}

	#[test]
	fn only_checkpoints_are_signed_and_a_batch_must_end_on_one() {
		let (p, f, ops, _d) = setup_batched(299, 1000);
		let ok = Primaries(vec![1]);
		let signed: Vec<u64> = ops.iter().filter(|o| o.is_checkpoint()).map(|o| o.op.seq).collect();
		assert_eq!(signed, vec![256, 300], "every 256th seq and the batch's last op");
		// Ops past the last checkpoint are not authenticated: none of them is applied.
		assert!(matches!(
			f.replay(7, &ops[..255], &ok),
			Err(StoreError::Unsigned { seq: 255, .. })
		));
		assert_eq!(f.head(7), None);
		// An op naming another size for a CID this store holds names no object it holds.
		let mut resized = ops[..256].to_vec();
		if let OpKind::Put { size, .. } = &mut resized[10].op.kind {
			*size += 1;
		}
		assert!(matches!(f.replay(7, &resized, &ok), Err(StoreError::UnknownObject(_))));
		// An altered op between checkpoints breaks the root chain.
		let mut altered = ops[..256].to_vec();
		if let OpKind::Put { key, .. } = &mut altered[10].op.kind {
			key.push(b'x');
		}
		assert!(matches!(
			f.replay(7, &altered, &ok),
			Err(StoreError::RootMismatch { seq: 11, .. })
		));
		// With the roots recomputed to match, the op chain breaks at the next op.
		let mut trie = sync_primitives::commitment::SegmentTrie::new();
		let mut rechained = altered.clone();
		for o in rechained.iter_mut() {
			o.op.prev_root = trie.facts().root;
			match &o.op.kind {
				OpKind::Put { key, cid, size } => {
					trie.insert(sync_primitives::commitment::Entry {
						key: key.clone(),
						cid: *cid,
						size: *size,
					});
				},
				OpKind::Delete { key } => {
					trie.remove(key);
				},
			}
			o.op.new_root = trie.facts().root;
		}
		assert!(matches!(
			f.replay(7, &rechained, &ok),
			Err(StoreError::BrokenChain { seq: 12, .. })
		));
		// And with the op chain recomputed too, the checkpoint's signature no longer matches.
		let mut prev = NO_PREV_OP;
		for o in rechained.iter_mut() {
			o.op.prev_op = prev;
			prev = o.op.hash();
		}
		assert!(matches!(
			f.replay(7, &rechained, &ok),
			Err(StoreError::BadSignature { seq: 256, .. })
		));
		assert_eq!(f.head(7), None);
		assert_eq!(f.replay(7, &ops[..256], &ok).unwrap().seq, 256);
		assert_eq!(f.replay(7, &ops[256..], &ok).unwrap(), p.head(7).unwrap());
	}

	#[test]
	fn pruned_logs_say_where_they_start() {
		let (p, _f, ops, _d) = setup(20);
		assert_eq!(p.ops(7, 30, 10).unwrap(), vec![], "past the head: nothing yet");
		assert_eq!(p.prune_ops(7, 15).unwrap(), 14);
		assert_eq!(p.first_logged(7).unwrap(), Some(15));
		assert!(matches!(p.ops(7, 3, 10), Err(StoreError::Pruned { first: 15, .. })));
		assert_eq!(p.ops(7, 15, 100).unwrap(), ops[14..].to_vec());
		assert_eq!(p.root_at(7, 14).unwrap(), None);
		// Retention never drops the head's op.
		p.prune_ops(7, u64::MAX).unwrap();
		assert_eq!(p.ops(7, 21, 10).unwrap(), ops[20..].to_vec());
		// Named records (the peer book) survive a reopen.
		p.put_meta("peers", b"x").unwrap();
		drop(p);
		let p = Store::open(_d.0.path()).unwrap();
		assert_eq!(p.meta("peers").unwrap().as_deref(), Some(&b"x"[..]));
		assert_eq!(p.meta("other").unwrap(), None);
	}

	#[test]
	fn replay_needs_the_objects_first() {
		let (p, _f, ops, _d) = setup(3);
		let empty = tempfile::tempdir().unwrap();
		let g = Store::open(empty.path()).unwrap();
		assert!(matches!(
			g.replay(7, &ops, &Primaries(vec![1])),
			Err(StoreError::UnknownObject(_))
		));
		assert_eq!(g.head(7), None);
		drop(p);
	}

	#[test]
	fn proofs_at_a_passed_root_rebuild_the_index_and_verify() {
		use sync_primitives::commitment::{challenge_indexes, verify_sync_proof};
		let (p, f, ops, d) = setup(12);
		let h5 = f.replay(7, &ops[..5], &Primaries(vec![1])).unwrap();
		// Writes go on past the committed seq 5: a new object, an overwrite, and the delete.
		f.replay(7, &ops[5..], &Primaries(vec![1])).unwrap();
		let (_, more) = p
			.apply_signed(7, vec![put("k0", blob(99, 70_000)), put("k3", vec![])], &Key(1))
			.unwrap();
		for op in &more {
			if let OpKind::Put { cid, size, .. } = &op.op.kind {
				f.begin_object(cid, *size, &p.outboard(cid).unwrap()).unwrap();
				for g in 0..groups_of(*size) {
					f.write_group(cid, *size, g, &group(&p, cid, g)).unwrap();
				}
			}
		}
		f.flush().unwrap();
		let head = f.replay(7, &more, &Primaries(vec![1])).unwrap();
		assert_eq!(head.seq, 15);
		assert_eq!(
			f.trie_at(7, 5).unwrap().facts(),
			h5.facts,
			"undo records rebuild the index at seq 5"
		);
		assert_eq!(f.trie_at(7, 15).unwrap().facts(), head.facts);
		assert_eq!(p.trie_at(7, 5).unwrap().facts(), h5.facts, "the Primary's log undoes too");
		for (seq, facts) in [(5, h5.facts), (15, head.facts)] {
			for seed in 0..8u8 {
				let seed = [seed; 32];
				let idx = challenge_indexes(&seed, facts.leaves, 6);
				let proof = f.prove(7, seq, &facts, &idx).unwrap();
				verify_sync_proof(&facts, &seed, 6, &proof).unwrap();
			}
		}
		// A wrong root, a seq not reached, a pruned range: typed errors.
		assert!(matches!(
			f.prove(7, 5, &head.facts, &[0]),
			Err(StoreError::RootMismatch { seq: 5, .. })
		));
		assert!(matches!(f.trie_at(7, 16), Err(StoreError::NotReached { seq: 16, head: 15, .. })));
		// Rotted object bytes are caught before they go into a proof.
		let large: Vec<_> = f
			.trie_at(7, 15)
			.unwrap()
			.entries()
			.into_iter()
			.filter(|e| e.size > 32_768)
			.cloned()
			.collect();
		assert!(!large.is_empty());
		for e in &large {
			let path = crate::objects::object_path(d.1.path(), &e.cid);
			let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
			file.write_all_at(&[0xAA; 32], 20_000).unwrap();
		}
		let trie = f.trie_at(7, 15).unwrap();
		let mut rejected = 0;
		for i in 0..head.facts.leaves {
			let (e, chunk, _) = trie.locate(i).unwrap();
			let rotted = e.size > 32_768 && chunk / 16 == 1;
			match f.prove(7, 15, &head.facts, &[i]) {
				Err(StoreError::BadData { .. }) if rotted => rejected += 1,
				Ok(_) if !rotted => {},
				other => panic!("chunk {i} (rotted: {rotted}): {other:?}"),
			}
		}
		assert_eq!(rejected, large.len() * 16, "every chunk of a rotted group is refused");
		f.prune_ops(7, 10).unwrap();
		assert!(matches!(f.trie_at(7, 5), Err(StoreError::Pruned { first: 10, .. })));
		assert_eq!(
			f.trie_at(7, 9).unwrap().facts().root,
			ops[8].op.new_root,
			"seq 9 is still rebuildable"
		);
	}

	/// Rows of the index, the log and the undo records (all segments).
	fn rows(s: &Store) -> (u64, u64, u64) {
		use redb::{ReadableDatabase, ReadableTableMetadata};
		let tx = s.inner.db.begin_read().unwrap();
		(
			tx.open_table(crate::INDEX).unwrap().len().unwrap(),
			tx.open_table(crate::OPS).unwrap().len().unwrap(),
			tx.open_table(crate::UNDO).unwrap().len().unwrap(),
		)
	}

	#[test]
	fn forged_op_path_is_refused() {
		// One batch of three writes (put k0, put k1, delete k1): only its last op is signed.
		let (p, f, ops, _d) = setup_batched(2, 3);
		let ok = Primaries(vec![1]);
		let signed: Vec<bool> = ops.iter().map(|o| o.is_checkpoint()).collect();
		assert_eq!(signed, vec![false, false, true]);
		// A holder's other path from the empty root to the checkpoint's `prev_root`: the two
		// puts in the other order, unsigned, each op chained to the forged one before it.
		let mut trie = SegmentTrie::new();
		let mut forged = Vec::new();
		let mut prev_op = NO_PREV_OP;
		for (seq, real) in [(1, &ops[1]), (2, &ops[0])] {
			let OpKind::Put { key, cid, size } = &real.op.kind else { panic!("a put") };
			let prev_root = trie.facts().root;
			trie.insert(Entry { key: key.clone(), cid: *cid, size: *size });
			let op = Op {
				segment: 7,
				epoch: 1,
				seq,
				prev_op,
				kind: real.op.kind.clone(),
				prev_root,
				new_root: trie.facts().root,
			};
			prev_op = op.hash();
			forged.push(SignedOp { op, signer: real.signer.clone(), signature: Vec::new() });
		}
		// The roots chain: another intermediate root, the same root before the checkpoint. Every
		// other check passes (the forged ops only lack a checkpoint of their own).
		assert_ne!(forged[0].op.new_root, ops[0].op.new_root);
		assert_eq!(forged[1].op.new_root, ops[2].op.prev_root);
		assert!(matches!(f.verify_ops(7, &forged, &ok), Err(StoreError::Unsigned { seq: 2, .. })));
		// With the real checkpoint after them, only the op chain tells: it names the real op 2.
		forged.push(ops[2].clone());
		assert!(matches!(
			f.verify_ops(7, &forged, &ok),
			Err(StoreError::BrokenChain { seq: 3, .. })
		));
		assert!(matches!(f.replay(7, &forged, &ok), Err(StoreError::BrokenChain { seq: 3, .. })));
		assert_eq!(f.head(7), None, "nothing applied");
		assert_eq!(rows(&f), (0, 0, 0));
		// Splicing a forged op in front of the real ones breaks the chain right after it.
		let spliced = [forged[0].clone(), ops[1].clone(), ops[2].clone()];
		assert!(matches!(f.replay(7, &spliced, &ok), Err(StoreError::BrokenChain { seq: 2, .. })));
		assert_eq!(f.head(7), None);
		// The real path replays.
		assert_eq!(f.replay(7, &ops, &ok).unwrap(), p.head(7).unwrap());
	}

	#[test]
	fn ops_chain_across_batches_and_to_the_logged_head() {
		let (p, f, ops, _d) = setup(4);
		let ok = Primaries(vec![1]);
		assert_eq!(ops[0].op.prev_op, NO_PREV_OP, "nothing before seq 1");
		for w in ops.windows(2) {
			assert_eq!(w[1].op.prev_op, w[0].op.hash(), "each batch names the op before it");
		}
		f.replay(7, &ops[..2], &ok).unwrap();
		// A next op signed by the Primary but naming another op than the logged head's.
		let mut fork = ops[2].clone();
		fork.op.prev_op = [9; 32];
		fork.signature = Key(1).sign_op(&fork.op);
		assert!(matches!(f.replay(7, &[fork], &ok), Err(StoreError::Forked { seq: 3, .. })));
		// A writer that started from a snapshot names no op: accepted after a logged head too.
		let mut fresh = ops[2].clone();
		fresh.op.prev_op = NO_PREV_OP;
		fresh.signature = Key(1).sign_op(&fresh.op);
		assert_eq!(f.verify_ops(7, &[fresh], &ok).unwrap().seq, 3);
		assert_eq!(f.replay(7, &ops[2..], &ok).unwrap(), p.head(7).unwrap());
	}

	#[test]
	fn verify_ops_changes_nothing() {
		let (p, f, ops, _d) = setup(6);
		let ok = Primaries(vec![1]);
		let end = p.head(7).unwrap();
		// A store without any of the objects verifies the whole batch ...
		let empty = tempfile::tempdir().unwrap();
		let g = Store::open(empty.path()).unwrap();
		assert_eq!(g.verify_ops(7, &ops, &ok).unwrap(), end);
		assert_eq!(g.head(7), None);
		assert!(g.segments().is_empty());
		assert!(g.lookup(7, b"k0").is_none());
		assert_eq!(rows(&g), (0, 0, 0));
		// ... again (nothing it recomputed stayed behind) ...
		assert_eq!(g.verify_ops(7, &ops, &ok).unwrap(), end);
		// ... and still cannot replay it.
		assert!(matches!(g.replay(7, &ops, &ok), Err(StoreError::UnknownObject(_))));
		assert_eq!(g.head(7), None);
		assert_eq!(rows(&g), (0, 0, 0));
		// On top of a head: the rest of the batch verifies, and nothing moves.
		let h2 = f.replay(7, &ops[..2], &ok).unwrap();
		let before = rows(&f);
		assert_eq!(f.verify_ops(7, &ops, &ok).unwrap(), end);
		assert_eq!(f.verify_ops(7, &ops[..2], &ok).unwrap(), h2, "nothing new");
		assert_eq!(f.head(7), Some(h2));
		assert_eq!(rows(&f), before);
		assert_eq!(f.ops(7, 1, 100).unwrap(), ops[..2].to_vec());
		assert!(f.lookup(7, b"k2").is_none());
		assert_eq!(f.listing(7, &h2.facts.root).unwrap().len(), 2);
		// It refuses what replay refuses.
		let mut bad = ops.clone();
		bad[4].op.prev_op[0] ^= 1;
		assert!(matches!(f.verify_ops(7, &bad, &ok), Err(StoreError::BrokenChain { seq: 5, .. })));
		assert!(matches!(
			f.verify_ops(7, &ops[3..], &ok),
			Err(StoreError::OutOfOrder { got: 4, expected: 3, .. })
		));
		assert_eq!(f.head(7), Some(h2));
		// Then the replay, and a reopen: the index still hashes to the head.
		assert_eq!(f.replay(7, &ops, &ok).unwrap(), end);
		drop(f);
		let f = Store::open(_d.1.path()).unwrap();
		assert_eq!(f.head(7), Some(end));
		drop(g);
		let g = Store::open(empty.path()).unwrap();
		assert!(g.segments().is_empty());
	}

	#[test]
	fn oversized_put_is_refused() {
		let (_p, f, ops, _d) = setup(2);
		let ok = Primaries(vec![1]);
		// An op, signed by the Primary, naming an object one byte over the limit.
		let oversized = |size: u64| {
			let mut op = ops[0].clone();
			let OpKind::Put { size: s, .. } = &mut op.op.kind else { panic!("a put") };
			*s = size;
			op.signature = Key(1).sign_op(&op.op);
			op
		};
		let too_large = |r: Result<Head>| matches!(r, Err(StoreError::ObjectTooLarge(n)) if n == MAX_OBJECT_BYTES + 1);
		assert!(too_large(f.verify_ops(7, &[oversized(MAX_OBJECT_BYTES + 1)], &ok)));
		assert!(too_large(f.replay(7, &[oversized(MAX_OBJECT_BYTES + 1)], &ok)));
		assert_eq!(f.head(7), None);
		// At the limit the size is allowed (and this op then fails on its root, as it lies).
		assert!(matches!(
			f.verify_ops(7, &[oversized(MAX_OBJECT_BYTES)], &ok),
			Err(StoreError::RootMismatch { seq: 1, .. })
		));
		assert_eq!(f.replay(7, &ops, &ok).unwrap().seq, 3);
	}
}

/// Uploads: streamed in odd pieces, an upload stores the same object (CID, outboard, bytes, root)
/// as a `Put` of its bytes, small or large, and leaves nothing in `uploads/`.
#[test]
fn uploaded_objects_match_put_objects() {
	let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
	let (put_store, up_store) = (Store::open(a.path()).unwrap(), Store::open(b.path()).unwrap());
	for (i, len) in [0usize, 1, 16_384, 16_385, 100_001, 3 * 16_384].into_iter().enumerate() {
		let data = blob(40 + i as u64, len);
		let key = format!("k{i}");
		let put_head = put_store.apply(1, vec![put(&key, data.clone())]).unwrap();
		let mut up = up_store.begin_upload(len as u64).unwrap();
		for piece in data.chunks(7_777) {
			up.write(piece).unwrap();
		}
		let object = up.finish().unwrap();
		assert_eq!(object.cid(), cid_of(&data), "len {len}");
		let write = SegmentWrite::PutStaged { key: key.into_bytes(), object };
		let up_head = up_store.apply(1, vec![write]).unwrap();
		assert_eq!(up_head, put_head, "len {len}");
		let cid = cid_of(&data);
		for g in 0..groups_of(len as u64) {
			let (s, e) = group_range(len as u64, g).unwrap();
			assert_eq!(group(&up_store, &cid, g), data[s as usize..e as usize], "len {len}");
		}
		if groups_of(len as u64) > 1 {
			assert_eq!(up_store.outboard(&cid).unwrap(), put_store.outboard(&cid).unwrap());
		}
	}
	assert_eq!(std::fs::read_dir(b.path().join("uploads")).unwrap().count(), 0);
	drop(up_store);
	let reopened = Store::open(b.path()).unwrap();
	assert_eq!(reopened.head(1), put_store.head(1));
}

/// An upload that ends short, goes past its declared size, or is dropped before a write stores
/// it changes nothing and leaves no file; one above the object limit is refused before
/// anything is created; stale uploads of a previous run are removed at open.
#[test]
fn refused_or_abandoned_uploads_leave_nothing() {
	let dir = tempfile::tempdir().unwrap();
	let store = Store::open(dir.path()).unwrap();
	let uploads = || std::fs::read_dir(dir.path().join("uploads")).unwrap().count();
	let mut short = store.begin_upload(100_000).unwrap();
	short.write(&blob(1, 50_000)).unwrap();
	assert_eq!(uploads(), 1);
	assert!(matches!(
		short.finish(),
		Err(StoreError::UploadLength { declared: 100_000, received: 50_000 })
	));
	assert_eq!(uploads(), 0);
	let mut long = store.begin_upload(20_000).unwrap();
	long.write(&blob(2, 15_000)).unwrap();
	assert!(matches!(long.write(&blob(3, 6_000)), Err(StoreError::UploadLength { .. })));
	assert_eq!(long.received(), 15_000);
	drop(long);
	let mut kept = store.begin_upload(40_000).unwrap();
	kept.write(&blob(4, 40_000)).unwrap();
	drop(kept.finish().unwrap());
	assert_eq!(uploads(), 0);
	assert!(matches!(
		store.begin_upload(sync_proto::MAX_OBJECT_BYTES + 1),
		Err(StoreError::ObjectTooLarge(_))
	));
	assert!(store.head(1).is_none());
	drop(store);
	std::fs::write(dir.path().join("uploads").join("1-1"), b"left by a crash").unwrap();
	let _store = Store::open(dir.path()).unwrap();
	assert_eq!(uploads(), 0);
}

/// The defect: data of segments the node no longer holds was never deleted. Dropping a
/// segment deletes its rows and the objects only it referenced (small and large), keeps those
/// another segment's index or history still needs, and survives a reopen.
#[test]
fn dropped_segment_data_is_deleted_but_shared_objects_kept() {
	let dir = tempfile::tempdir().unwrap();
	let s = Store::open(dir.path()).unwrap();
	let (shared_big, shared_small) = (blob(1, 100_000), blob(2, 500));
	let (own_big, own_small) = (blob(3, 200_000), blob(4, 700));
	let history = blob(5, 50_000);
	s.apply(
		1,
		vec![
			put("shared-big", shared_big.clone()),
			put("shared-small", shared_small.clone()),
			put("own-big", own_big.clone()),
			put("own-small", own_small.clone()),
			put("history", history.clone()),
		],
	)
	.unwrap();
	s.apply(2, vec![put("a", shared_big.clone()), put("b", shared_small.clone())])
		.unwrap();
	// Segment 3 once held `history` (its undo log still names it: a pin may be rebuilt there).
	let signer = oplog::Key(1);
	s.apply_signed(3, vec![put("h", history.clone())], &signer).unwrap();
	s.apply_signed(3, vec![SegmentWrite::Delete { key: b"h".to_vec() }], &signer)
		.unwrap();
	let dropped = s.drop_segment(1).unwrap();
	assert_eq!(
		dropped,
		Dropped { objects: 2, bytes: 200_700, shared: 3 },
		"own objects deleted, shared ones kept"
	);
	assert!(s.head(1).is_none() && s.lookup(1, b"own-big").is_none());
	assert!(!s.segments().contains(&1));
	for (seg, key, data) in [(2, "a", &shared_big), (2, "b", &shared_small)] {
		let e = s.lookup(seg, key.as_bytes()).unwrap();
		assert_eq!(e.cid, cid_of(data));
	}
	assert!(s.outboard(&cid_of(&shared_big)).is_ok());
	assert!(s.outboard(&cid_of(&history)).is_ok(), "segment 3's history keeps it");
	assert!(s.outboard(&cid_of(&own_big)).is_err(), "own large object deleted");
	assert!(!objects::object_path(dir.path(), &cid_of(&own_big)).exists());
	assert_eq!(s.drop_segment(1).unwrap(), Dropped::default(), "dropping twice is a no-op");
	let head2 = s.head(2);
	drop(s);
	let s = Store::open(dir.path()).unwrap();
	assert!(s.head(1).is_none());
	assert_eq!(s.head(2), head2);
	assert!(s.open_report().missing.is_empty(), "{:?}", s.open_report());
}

/// The defect: `finish_transfer` took the write transaction before the segment lock, every
/// other writer (a Primary's write, a replay, dropping a segment) the lock first, so a
/// transfer finishing while another segment was written could deadlock the store for good.
/// Here transfers finish over and over while another segment takes writes and a third is
/// dropped; all of it must end.
#[test]
fn finishing_a_transfer_while_other_segments_are_written_does_not_deadlock() {
	use std::sync::{atomic::AtomicBool, atomic::Ordering::SeqCst, Arc};
	let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
	let src = Store::open(a.path()).unwrap();
	let mut w = Vec::new();
	for i in 0..300 {
		w.push(put(&format!("k{i}"), blob(i, 200)));
	}
	let head = src.apply(7, w).unwrap();
	let dst = Store::open(b.path()).unwrap();
	let done = Arc::new(AtomicBool::new(false));
	let (tx, rx) = std::sync::mpsc::channel();
	// Detached threads: if they deadlock, the test fails (and leaves them) instead of hanging.
	let writer = {
		let (dst, done) = (dst.clone(), done.clone());
		std::thread::spawn(move || {
			let mut i = 0u64;
			while !done.load(SeqCst) {
				dst.apply(1, vec![put(&format!("w{i}"), blob(i, 100))]).unwrap();
				dst.apply(2, vec![put("x", blob(i, 50))]).unwrap();
				dst.drop_segment(2).unwrap();
				i += 1;
			}
		})
	};
	{
		let (src, dst) = (src.clone(), dst.clone());
		std::thread::spawn(move || {
			for _ in 0..20 {
				copy_all(&src, &dst, head);
				dst.finish_transfer(7).unwrap();
			}
			let _ = tx.send(());
		});
	}
	let finished = rx.recv_timeout(Duration::from_secs(60));
	done.store(true, SeqCst);
	assert!(finished.is_ok(), "the store deadlocked");
	writer.join().unwrap();
	assert_eq!(dst.head(7), Some(head));
}
