//! Store ordering and integrity: late writes against the finisher, a crash at each step of
//! finishing, the check at open, and the scrub.
use super::{blob, group, put, source};
use crate::{
	hex,
	objects::{legacy_bits_path, object_path, partial_path, FinishStep},
	Cid, Entry, ObjectState, OpenReport, Store, StoreError, BLOBS, OUTBOARDS,
};
use redb::{ReadableDatabase, ReadableTable};
use std::{
	fs::{self, OpenOptions},
	os::unix::fs::FileExt,
	path::Path,
};
use sync_primitives::{commitment::GROUP_LEN, outboard::groups_of};

/// 51 groups: fewer than `OUTBOARD_FLUSH_GROUPS`, so no `write_group` of a test below commits
/// the outboard by itself (the tests decide when, with `flush`).
fn medium(seed: u64) -> Vec<u8> {
	blob(seed, 50 * GROUP_LEN as usize + 1000)
}

/// Puts `data` under `key` of segment 7 in `store` and returns its entry.
fn hold(store: &Store, key: &str, data: Vec<u8>) -> Entry {
	store.apply(7, vec![put(key, data)]).unwrap();
	store.lookup(7, key.as_bytes()).unwrap()
}

/// Starts object `e` in `dst` and writes every group but the last from `src`, then flushes (the
/// outboard is committed). Returns the last group's index.
/// A source store holding one medium object (`medium(seed)` under `m`), and a directory for
/// the store it is copied to: `(source dir, destination dir, source, entry)`.
fn one_object(seed: u64) -> (tempfile::TempDir, tempfile::TempDir, Store, Entry) {
	let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
	let src = Store::open(a.path()).unwrap();
	let e = hold(&src, "m", medium(seed));
	(a, b, src, e)
}

/// Whether `store` holds `e` durably (what a head may reference).
fn durable(store: &Store, e: &Entry) -> bool {
	let tx = store.inner.db.begin_read().unwrap();
	let (blobs, obs) = (tx.open_table(BLOBS).unwrap(), tx.open_table(OUTBOARDS).unwrap());
	store.has_object_in(&blobs, &obs, &e.cid, e.size).unwrap()
}

fn all_but_last(src: &Store, dst: &Store, e: &Entry) -> u64 {
	dst.begin_object(&e.cid, e.size, &src.outboard(&e.cid).unwrap()).unwrap();
	let last = groups_of(e.size) - 1;
	for g in 0..last {
		assert!(!dst.write_group(&e.cid, e.size, g, &group(src, &e.cid, g)).unwrap());
	}
	dst.flush().unwrap();
	last
}

fn len(path: &Path) -> u64 {
	fs::metadata(path).unwrap().len()
}

fn by_cid<T>(mut v: Vec<(Cid, T)>) -> Vec<(Cid, T)> {
	v.sort_by_key(|(c, _)| c.0);
	v
}

fn sorted(mut v: Vec<Cid>) -> Vec<Cid> {
	v.sort_by_key(|c| c.0);
	v
}

/// The defect: a bitfield write (the bits once lived after the data, then in a sidecar) could
/// land after finishing and change a finished object. There is no bitfield on disk any more; what
/// can still race the finisher is a second write of an already verified group, and it must not
/// change the finished object or its length, before or after the rename.
#[test]
fn bitfield_write_cannot_follow_finish() {
	let a = tempfile::tempdir().unwrap();
	let b = tempfile::tempdir().unwrap();
	let src = Store::open(a.path()).unwrap();
	let data = medium(5);
	let e = hold(&src, "m", data.clone());
	let dst = Store::open(b.path()).unwrap();
	let last = all_but_last(&src, &dst, &e);
	let obj = object_path(b.path(), &e.cid);
	let part = partial_path(b.path(), &e.cid);
	assert_eq!(len(&part), e.size, "the data file has the object's size from the start");
	assert!(!legacy_bits_path(b.path(), &e.cid).exists(), "no bitfield file is ever written");

	// Two writers of the last group race the finisher: one completes the object, the other's
	// write lands while (or after) it is finished.
	let last_group = group(&src, &e.cid, last);
	let racers: Vec<_> = (0..4)
		.map(|_| {
			let (dst, cid, size, d) = (dst.clone(), e.cid, e.size, last_group.clone());
			std::thread::spawn(move || dst.write_group(&cid, size, last, &d).unwrap())
		})
		.collect();
	let completed = racers.into_iter().map(|t| t.join().unwrap()).filter(|c| *c).count();
	assert_eq!(completed, 1, "exactly one write completes the object");
	dst.flush().unwrap();
	// And one more, well after the rename.
	assert!(!dst.write_group(&e.cid, e.size, last, &last_group).unwrap());
	for g in 0..last {
		assert!(!dst.write_group(&e.cid, e.size, g, &group(&src, &e.cid, g)).unwrap());
	}
	dst.flush().unwrap();
	assert_eq!(len(&obj), e.size, "the finished file is exactly the object");
	assert!(!part.exists(), "nothing left in partial/");
	assert_eq!(dst.read_object(&e.cid).unwrap(), data);
	assert_eq!(group(&dst, &e.cid, last), last_group, "the last group is right");
	drop(dst);
	let dst = Store::open(b.path()).unwrap();
	assert!(dst.has_object(&e.cid).unwrap());
	assert_eq!(dst.read_object(&e.cid).unwrap(), data);
	assert_eq!(dst.open_report(), OpenReport::default());
}

/// A store written by an older version left `partial/<cid>.bits` sidecars (and, older still,
/// bits after the data): reopening ignores them, removes them, and keeps what verifies.
#[test]
fn legacy_bitfields_are_ignored_and_removed() {
	let (_a, b, src, e) = one_object(8);
	let last;
	{
		let dst = Store::open(b.path()).unwrap();
		last = all_but_last(&src, &dst, &e);
	}
	let part = partial_path(b.path(), &e.cid);
	let bits = legacy_bits_path(b.path(), &e.cid);
	// A sidecar that claims every group (the last one was never written), and a trailing
	// bitfield that claims the same.
	let groups = groups_of(e.size);
	fs::write(&bits, vec![1u8; groups as usize]).unwrap();
	let f = OpenOptions::new().write(true).open(&part).unwrap();
	f.write_all_at(&vec![1u8; groups as usize], e.size).unwrap();
	drop(f);
	let dst = Store::open(b.path()).unwrap();
	let ObjectState::Partial { missing } = dst.object_state(&e.cid, e.size).unwrap() else {
		panic!("the partial is kept")
	};
	assert_eq!(missing, vec![last], "claims are not trusted: the unwritten group is missing");
	assert!(!bits.exists(), "the sidecar is removed");
	assert_eq!(len(&part), e.size, "the trailing bits are cut off");
}

#[test]
fn kill_during_finish_keeps_data() {
	let a = tempfile::tempdir().unwrap();
	let src = Store::open(a.path()).unwrap();
	let data = medium(7);
	let e = hold(&src, "m", data.clone());
	for step in [
		FinishStep::Queued,
		FinishStep::Done,
		FinishStep::Synced,
		FinishStep::Renamed,
		FinishStep::DirSynced,
	] {
		let b = tempfile::tempdir().unwrap();
		let obj = object_path(b.path(), &e.cid);
		let part = partial_path(b.path(), &e.cid);
		let last;
		{
			let dst = Store::open(b.path()).unwrap();
			last = all_but_last(&src, &dst, &e);
			*dst.inner.objects.hooks.crash_after.lock() = Some(step);
			assert!(dst.write_group(&e.cid, e.size, last, &group(&src, &e.cid, last)).unwrap());
			// Waits for the finisher, which "dies" right after `step`; from then on nothing more
			// is persisted, here or when the store is dropped.
			dst.flush().unwrap();
			match step {
				FinishStep::Queued | FinishStep::Done | FinishStep::Synced => {
					assert!(part.exists() && !obj.exists(), "{step:?}")
				},
				FinishStep::Renamed | FinishStep::DirSynced => {
					assert!(!part.exists() && obj.exists(), "{step:?}")
				},
			}
			let file = if part.exists() { &part } else { &obj };
			assert_eq!(len(file), e.size, "{step:?}: the data file is never longer than that");
		}
		let dst = Store::open(b.path()).unwrap();
		match dst.object_state(&e.cid, e.size).unwrap() {
			ObjectState::Complete => {
				assert!(matches!(step, FinishStep::Renamed | FinishStep::DirSynced), "{step:?}");
			},
			ObjectState::Partial { missing } => {
				// Every group was written before the crash, and every one verifies on reopen:
				// nothing at all is fetched again (the reopen finishes the object itself).
				assert_eq!(missing, Vec::<u64>::new(), "{step:?}");
				for g in missing {
					dst.write_group(&e.cid, e.size, g, &group(&src, &e.cid, g)).unwrap();
				}
			},
			ObjectState::Absent => panic!("{step:?}: the object was lost"),
		}
		dst.flush().unwrap();
		assert!(dst.has_object(&e.cid).unwrap(), "{step:?}");
		assert_eq!(len(&obj), e.size, "{step:?}");
		assert_eq!(dst.read_object(&e.cid).unwrap(), data, "{step:?}");
		assert_eq!(group(&dst, &e.cid, last), group(&src, &e.cid, last), "{step:?}");
		assert!(!part.exists(), "{step:?}: nothing left over");
	}
}

#[test]
fn missing_object_is_reported_at_open() {
	let dir = tempfile::tempdir().unwrap();
	let (s, head) = source(dir.path());
	let big = s.lookup(7, b"big").unwrap();
	let odd = s.lookup(7, b"odd").unwrap();
	let small = s.lookup(7, b"small/3").unwrap();
	drop(s);
	assert_eq!(
		Store::open(dir.path()).unwrap().open_report(),
		OpenReport::default(),
		"an intact store reports nothing"
	);
	// One object file deleted, another truncated.
	fs::remove_file(object_path(dir.path(), &big.cid)).unwrap();
	let f = OpenOptions::new().write(true).open(object_path(dir.path(), &odd.cid)).unwrap();
	f.set_len(50_000).unwrap();
	drop(f);

	let s = Store::open(dir.path()).unwrap();
	let r = s.open_report();
	assert_eq!(r.missing, sorted(vec![Cid(big.cid), Cid(odd.cid)]));
	assert!(r.trimmed.is_empty());
	assert_eq!(r.needs_repair, vec![7]);
	assert_eq!(s.head(7), Some(head), "the authenticated index stays; only objects are refetched");
	for e in [&big, &odd] {
		assert!(!s.has_object(&e.cid).unwrap());
		assert!(matches!(s.open_groups(&e.cid), Err(StoreError::UnknownObject(_))));
		assert_eq!(s.object_state(&e.cid, e.size).unwrap(), ObjectState::Absent);
	}
	assert!(s.has_object(&small.cid).unwrap());
	assert!(dir.path().join("quarantine").join(hex(&odd.cid)).exists(), "the short file is kept");
	let missing = s.missing_objects(7).unwrap();
	assert_eq!(
		by_cid(missing.clone()),
		by_cid(vec![(Cid(big.cid), big.size), (Cid(odd.cid), odd.size)])
	);
	assert!(matches!(s.missing_objects(8), Err(StoreError::UnknownSegment(8))));

	// Fetched again from a holder (the same content), they are present again.
	let other = tempfile::tempdir().unwrap();
	let (holder, _) = source(other.path());
	for (cid, size) in &missing {
		let cid = cid.0;
		s.begin_object(&cid, *size, &holder.outboard(&cid).unwrap()).unwrap();
		for g in 0..groups_of(*size) {
			s.write_group(&cid, *size, g, &group(&holder, &cid, g)).unwrap();
		}
	}
	assert!(s.missing_objects(7).unwrap().is_empty());
	drop(s);
	assert_eq!(Store::open(dir.path()).unwrap().open_report(), OpenReport::default());

	// A file longer than its object (group bits appended after finishing, as the old finisher
	// race left them) is cut back at open once its first `size` bytes check out.
	let path = object_path(dir.path(), &odd.cid);
	let f = OpenOptions::new().write(true).open(&path).unwrap();
	f.write_all_at(&vec![1u8; groups_of(odd.size) as usize], odd.size).unwrap();
	drop(f);
	let s = Store::open(dir.path()).unwrap();
	assert_eq!(
		s.open_report(),
		OpenReport { missing: vec![], trimmed: vec![Cid(odd.cid)], needs_repair: vec![] }
	);
	assert_eq!(len(&path), odd.size);
	assert_eq!(s.read_object(&odd.cid).unwrap(), blob(2, 100_001));
	assert!(s.missing_objects(7).unwrap().is_empty());
}

#[test]
fn bit_rot_is_scrubbed() {
	const BUDGET: u64 = 64 << 10;
	let dir = tempfile::tempdir().unwrap();
	let (s, head) = source(dir.path());
	let listing = s.listing(7, &head.facts.root).unwrap();
	let big = s.lookup(7, b"big").unwrap();
	let odd = s.lookup(7, b"odd").unwrap();
	let small = s.lookup(7, b"small/5").unwrap();
	assert!(small.size > 0);

	// One whole pass, a step at a time: (quarantined, objects checked, bytes checked, steps).
	let pass = |s: &Store| {
		let (mut quarantined, mut objects, mut bytes, mut steps) = (Vec::new(), 0, 0, 0u64);
		loop {
			let r = s.scrub_step(BUDGET).unwrap();
			assert!(r.checked_bytes <= BUDGET, "the budget bounds every step: {r:?}");
			quarantined.extend(r.quarantined);
			objects += r.checked_objects;
			bytes += r.checked_bytes;
			steps += 1;
			if r.wrapped {
				break;
			}
			assert!(steps < 100_000, "the scrub makes progress");
		}
		(sorted(quarantined), objects, bytes, steps)
	};
	let (quarantined, objects, bytes, steps) = pass(&s);
	assert!(quarantined.is_empty(), "nothing rotted yet: {quarantined:?}");
	assert_eq!(objects, listing.len() as u64, "every object checked once per pass");
	let data: u64 = listing.iter().map(|e| e.size).sum();
	assert!(bytes >= data, "every byte read: {bytes} < {data}");
	assert!(steps >= data / BUDGET, "{steps} steps for {data} bytes");

	// Rot: a byte of a large object's data, a byte of another large object's outboard, a byte
	// of an inline object.
	let f = OpenOptions::new()
		.read(true)
		.write(true)
		.open(object_path(dir.path(), &big.cid))
		.unwrap();
	let at = 300 * GROUP_LEN + 7;
	let mut byte = [0u8];
	f.read_exact_at(&mut byte, at).unwrap();
	f.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
	drop(f);
	{
		let tx = s.inner.db.begin_write().unwrap();
		{
			let mut t = tx.open_table(OUTBOARDS).unwrap();
			let mut ob = t.get(&odd.cid).unwrap().unwrap().value().to_vec();
			ob[40] ^= 1;
			t.insert(&odd.cid, ob.as_slice()).unwrap();
			let mut t = tx.open_table(BLOBS).unwrap();
			let mut d = t.get(&small.cid).unwrap().unwrap().value().to_vec();
			d[0] ^= 1;
			t.insert(&small.cid, d.as_slice()).unwrap();
		}
		tx.commit().unwrap();
	}

	let rotted = sorted(vec![Cid(big.cid), Cid(odd.cid), Cid(small.cid)]);
	let (quarantined, objects, _, _) = pass(&s);
	assert_eq!(quarantined, rotted);
	assert_eq!(objects, listing.len() as u64);
	for e in [&big, &odd, &small] {
		assert!(!s.has_object(&e.cid).unwrap(), "{:?}", Cid(e.cid));
		assert!(matches!(s.open_groups(&e.cid), Err(StoreError::UnknownObject(_))));
		assert!(dir.path().join("quarantine").join(hex(&e.cid)).exists());
	}
	assert!(
		matches!(s.outboard(&odd.cid), Err(StoreError::UnknownObject(_))),
		"an outboard that does not verify is not served either"
	);
	for e in listing.iter().filter(|e| !rotted.contains(&Cid(e.cid))) {
		assert!(s.has_object(&e.cid).unwrap(), "untouched objects stay");
	}
	let missing = s.missing_objects(7).unwrap();
	assert_eq!(
		by_cid(missing.clone()),
		by_cid(vec![
			(Cid(big.cid), big.size),
			(Cid(odd.cid), odd.size),
			(Cid(small.cid), small.size)
		])
	);
	assert!(pass(&s).0.is_empty(), "a quarantined object is not checked again");

	// Fetched again, everything verifies.
	let other = tempfile::tempdir().unwrap();
	let (holder, _) = source(other.path());
	for (cid, size) in &missing {
		let cid = cid.0;
		s.begin_object(&cid, *size, &holder.outboard(&cid).unwrap()).unwrap();
		for g in 0..groups_of(*size) {
			s.write_group(&cid, *size, g, &group(&holder, &cid, g)).unwrap();
		}
	}
	assert!(s.missing_objects(7).unwrap().is_empty());
	let (quarantined, objects, _, _) = pass(&s);
	assert!(quarantined.is_empty(), "{quarantined:?}");
	assert_eq!(objects, listing.len() as u64);
}

#[test]
fn claimed_size_of_a_held_cid_is_not_trusted() {
	// A store holding object X of size S does not take it for (X, S') — not as present, not
	// as a partial to complete — so a signed op with a wrong size can neither pass replay on
	// the strength of X nor make this store serve or prove X under the wrong length.
	let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
	let src = Store::open(a.path()).unwrap();
	let dst = Store::open(b.path()).unwrap();
	let e = hold(&src, "m", medium(7));
	let (cid, size) = (e.cid, e.size);
	assert!(src.has_object_sized(&cid, size).unwrap());
	for lie in [size - 1, size + 1] {
		assert!(!src.has_object_sized(&cid, lie).unwrap(), "{lie}");
		assert!(matches!(src.object_state(&cid, lie).unwrap(), ObjectState::Absent), "{lie}");
	}
	// A partial begun under a false size (same group count) is not completed by the true one.
	let ob = src.outboard(&cid).unwrap();
	dst.begin_object(&cid, size + 1, &ob).unwrap();
	assert!(matches!(dst.object_state(&cid, size).unwrap(), ObjectState::Absent));
	dst.begin_object(&cid, size, &ob).unwrap();
	for g in 0..groups_of(size) {
		dst.write_group(&cid, size, g, &group(&src, &cid, g)).unwrap();
	}
	dst.flush().unwrap();
	assert!(dst.has_object_sized(&cid, size).unwrap());
	assert!(!dst.has_object_sized(&cid, size + 1).unwrap());
	assert_eq!(dst.read_object(&cid).unwrap(), medium(7));
}

/// The defect: outboards of objects begun but not yet written were held in memory, uncounted,
/// until enough groups were written; a sync that fetches many outboards first held them all.
/// Now they count towards the pending batch, which is committed when full.
#[test]
fn pending_outboards_are_bounded() {
	let a = tempfile::tempdir().unwrap();
	let b = tempfile::tempdir().unwrap();
	let src = Store::open(a.path()).unwrap();
	let entries: Vec<Entry> =
		(0..6).map(|i| hold(&src, &format!("o{i}"), medium(20 + i))).collect();
	let ob_len = src.outboard(&entries[0].cid).unwrap().len();
	let dst = Store::open(b.path()).unwrap();
	let limit = 2 * ob_len + 1;
	*dst.inner.objects.hooks.batch_bytes.lock() = Some(limit);
	for e in &entries {
		dst.begin_object(&e.cid, e.size, &src.outboard(&e.cid).unwrap()).unwrap();
		let pending = dst.inner.objects.pending.lock();
		assert!(pending.bytes < limit, "{} pending bytes", pending.bytes);
		assert!(pending.outboards.len() <= 2, "{} outboards pending", pending.outboards.len());
	}
	// What left memory is committed: the first three outboards are in the database.
	let tx = dst.inner.db.begin_read().unwrap();
	let t = tx.open_table(OUTBOARDS).unwrap();
	for e in &entries[..3] {
		assert!(t.get(&e.cid).unwrap().is_some(), "outboard committed");
	}
}

/// The defect: an object renamed into `objects/` while its outboard was still pending lost the
/// outboard with a crash, yet counted as durable and complete: a head referenced it and the
/// node served an empty outboard for it (which every peer reads as misbehaviour). Now it is not
/// durable, not served, and asked for again, which stores the outboard.
#[test]
fn outboard_lost_with_a_crash_is_fetched_again_not_served_empty() {
	let (_a, b, src, e) = one_object(30);
	{
		let dst = Store::open(b.path()).unwrap();
		let last = all_but_last(&src, &dst, &e);
		assert!(dst.write_group(&e.cid, e.size, last, &group(&src, &e.cid, last)).unwrap());
		dst.flush().unwrap();
		// The crash: the outboard's commit never happened.
		let tx = dst.inner.db.begin_write().unwrap();
		tx.open_table(OUTBOARDS).unwrap().remove(&e.cid).unwrap();
		tx.commit().unwrap();
	}
	let dst = Store::open(b.path()).unwrap();
	assert_eq!(len(&object_path(b.path(), &e.cid)), e.size, "the file itself is complete");
	assert!(matches!(dst.outboard(&e.cid), Err(StoreError::UnknownObject(_))), "never empty");
	assert_eq!(dst.object_state(&e.cid, e.size).unwrap(), ObjectState::Absent);
	assert!(!durable(&dst, &e), "not durable");
	dst.begin_object(&e.cid, e.size, &src.outboard(&e.cid).unwrap()).unwrap();
	dst.flush().unwrap();
	assert_eq!(dst.object_state(&e.cid, e.size).unwrap(), ObjectState::Complete);
	assert_eq!(dst.outboard(&e.cid).unwrap(), src.outboard(&e.cid).unwrap());
	assert!(durable(&dst, &e), "durable again");
}

/// The defect: a second size claim for a CID discarded the partial the finisher was committing
/// (its `partials` entry and its file), so the object could be renamed from another claim's
/// file or count as durable before its directory round.
#[test]
fn other_size_claim_does_not_discard_a_finishing_partial() {
	let (_a, b, src, e) = one_object(31);
	let dst = Store::open(b.path()).unwrap();
	let last = all_but_last(&src, &dst, &e);
	// The finisher takes the object and stops right after `done` (it holds it from then on).
	*dst.inner.objects.hooks.crash_after.lock() = Some(FinishStep::Done);
	assert!(dst.write_group(&e.cid, e.size, last, &group(&src, &e.cid, last)).unwrap());
	dst.flush().unwrap();
	let other = e.size + GROUP_LEN;
	assert_eq!(dst.object_state(&e.cid, other).unwrap(), ObjectState::Absent);
	assert!(partial_path(b.path(), &e.cid).exists(), "the finisher's file stays");
	assert!(dst.inner.objects.partials.lock().contains_key(&e.cid), "and so does its entry");
}
