//! Integrity of what is stored, after it was verified once on the way in:
//! - the check at open ([`Store::open_report`]): every large object a segment's head references
//!   is present in `objects/` at its size (metadata only, no content read);
//! - the background scrub ([`Store::scrub_step`]): every stored object re-verified against its
//!   CID, a budget at a time, and a rotted one *quarantined* (moved aside, no longer held);
//! - the repair list ([`Store::missing_objects`]): what a segment's index references and the
//!   store lacks, for the data plane to fetch again.
//!
//! Small objects are not part of the open check: they live in the database, committed durably in
//! the same transaction as the head that references them or in an earlier one (a head only
//! references what [`Store::has_object_in`] calls durable), so redb's own crash safety covers
//! them, and checking them would read their bytes. The scrub reads them.
use crate::{
	hex,
	objects::{is_small, object_path, sync_dir, BITS_SUFFIX},
	segments::durable,
	Cid, Result, Store, StoreError, BLOBS, META, OUTBOARDS,
};
use redb::{Durability, ReadableDatabase, ReadableTable};
use std::{
	collections::{BTreeSet, HashMap, HashSet},
	fs::{self, File, OpenOptions},
	io::ErrorKind,
	ops::Bound,
	os::unix::fs::FileExt,
	path::{Path, PathBuf},
};
use sync_primitives::{
	commitment::{cid_of, Hash32, GROUP_LEN},
	outboard::{group_range, groups_of, verify_group, Outboard},
	SegmentId,
};

/// What every object the scrub visits costs against its budget besides the bytes it reads (the
/// lookups and the file-system calls), so a step over many tiny objects, or over outboards of
/// partial objects it skips, stays bounded too.
pub const SCRUB_OBJECT_COST: u64 = 256;

/// The scrub saves its position (durably, so at most this much checking is repeated after a
/// crash or restart) after this many bytes checked, and at the end of every pass.
const SCRUB_SAVE_BYTES: u64 = 64 << 20;

/// Name of the meta record holding the scrub's position: the CID of the last object it checked
/// in the current pass.
const SCRUB_CURSOR: &str = "sync-store/scrub-cursor";

/// Chunk size for hashing a whole file (only for files found at the wrong length at open).
const HASH_CHUNK: usize = 1 << 20;

/// What [`Store::open`] found checking the objects the segments' heads reference (see
/// [`Store::open_report`]). Each list is sorted by CID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
	/// Large objects a head references whose file was absent, or at another length than the
	/// object's and not its bytes (moved to `quarantine/`). They are absent now
	/// ([`Store::has_object`] is false) and listed by [`Store::missing_objects`] until fetched
	/// again.
	pub missing: Vec<Cid>,
	/// Large objects whose file was longer than the object and whose first `size` bytes hash to
	/// the CID (the group bits an older store could append after finishing): cut back to the
	/// object's size.
	pub trimmed: Vec<Cid>,
	/// Segments whose head references a missing object, in order: they serve and prove only
	/// once [`Store::missing_objects`] has been fetched again.
	pub needs_repair: Vec<SegmentId>,
}

/// What one [`Store::scrub_step`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
	/// Objects whose check ended in this step (a large object checked over several steps counts
	/// once, in the step that ends it).
	pub checked_objects: u64,
	/// Bytes read and verified: inline objects, outboards and groups of large objects.
	pub checked_bytes: u64,
	/// Objects that failed and were quarantined in this step.
	pub quarantined: Vec<Cid>,
	/// Whether the step reached the end of the stored objects: the pass is complete, and the
	/// next step starts a new one at the lowest CID.
	pub wrapped: bool,
}

/// Where the scrub is.
#[derive(Default)]
pub(crate) struct ScrubCursor {
	/// Whether `after` was read from the database yet (once per open).
	loaded: bool,
	/// The pass has checked every object with a CID up to this one.
	after: Option<Hash32>,
	/// A large object checked part-way.
	current: Option<Current>,
	/// Bytes checked since the position was last saved.
	unsaved: u64,
}

/// A large object checked part-way: its outboard verified against the CID at the file's
/// length, the groups before `next` verified against the outboard.
struct Current {
	cid: Hash32,
	size: u64,
	leaves: Vec<Hash32>,
	next: u64,
}

/// The next stored object after the scrub's position, with its stored bytes (inline objects)
/// or its outboard (large objects).
enum Next {
	Small(Hash32, Vec<u8>),
	Large(Hash32, Vec<u8>),
}

/// How checking the groups of a large object ended.
enum Groups {
	/// The budget ran out first; the object goes on in the next step.
	Budget,
	/// Every group verified.
	Good,
	/// A group (or the file's length) did not verify.
	Bad,
	/// The file is gone (nothing to check).
	Gone,
}

/// Whether a unit of `cost` bytes fits in what is left of `budget`. The first unit of a step
/// always fits, so that any budget makes progress.
fn fits(spent: u64, cost: u64, budget: u64) -> bool {
	spent == 0 || spent.saturating_add(cost) <= budget
}

/// Where a quarantined object is kept, for inspection.
pub(crate) fn quarantine_path(dir: &Path, cid: &Hash32) -> PathBuf {
	dir.join("quarantine").join(hex(cid))
}

/// BLAKE3 of the first `len` bytes of `f`; `None` if the file is shorter.
fn hash_prefix(f: &File, len: u64) -> Result<Option<Hash32>> {
	let mut hasher = blake3::Hasher::new();
	let mut buf = vec![0u8; HASH_CHUNK];
	let mut at = 0u64;
	while at < len {
		let n = (len - at).min(HASH_CHUNK as u64) as usize;
		match f.read_exact_at(&mut buf[..n], at) {
			Ok(()) => {},
			Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
			Err(e) => return Err(e.into()),
		}
		hasher.update(&buf[..n]);
		at += n as u64;
	}
	Ok(Some(*hasher.finalize().as_bytes()))
}

/// Whether `name` is a CID as object files are named (64 lowercase hex digits).
fn is_cid_name(name: &str) -> bool {
	name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
	/// What the check at open found: large objects a head references that were missing or
	/// damaged (now absent, to be fetched again) or had to be trimmed, and the segments that
	/// need repair. The same check runs at every open, so a segment stays listed until its
	/// objects are fetched again.
	pub fn open_report(&self) -> OpenReport {
		self.inner.objects.report.lock().clone()
	}

	/// The check at open (see the module docs): cleans `partial/` of what a crash can leave,
	/// then checks the presence and length of every large object a head references. `O(objects)`
	/// metadata calls; only a file found at the wrong length is read (once).
	pub(crate) fn check_objects(&self) -> Result<()> {
		self.clean_partials()?;
		let refs: Vec<(SegmentId, Hash32, u64)> = {
			let segs = self.inner.segments.lock();
			let mut refs = Vec::new();
			for (seg, state) in segs.iter() {
				if state.head.is_none() {
					continue;
				}
				for e in state.trie.entries() {
					if !is_small(e.size) {
						refs.push((*seg, e.cid, e.size));
					}
				}
			}
			refs
		};
		let mut report = OpenReport::default();
		let mut checked: HashMap<Hash32, bool> = HashMap::new();
		let mut repair = BTreeSet::new();
		for (seg, cid, size) in refs {
			let present = match checked.get(&cid) {
				Some(present) => *present,
				None => {
					let present = self.check_file(&cid, size, &mut report)?;
					checked.insert(cid, present);
					present
				},
			};
			if !present {
				repair.insert(seg);
			}
		}
		report.missing.sort_by_key(|c| c.0);
		report.trimmed.sort_by_key(|c| c.0);
		report.needs_repair = repair.into_iter().collect();
		for seg in &report.needs_repair {
			log::warn!(
				target: "sync-store",
				"segment {seg}: objects its head references are missing; fetch them again"
			);
		}
		*self.inner.objects.report.lock() = report;
		Ok(())
	}

	/// Presence and length of the file of the large object `(cid, size)`. `false` if it is
	/// absent, or at another length and not the object's bytes (then it is quarantined).
	fn check_file(&self, cid: &Hash32, size: u64, report: &mut OpenReport) -> Result<bool> {
		let path = object_path(self.dir(), cid);
		let len = match fs::metadata(&path) {
			Ok(m) => m.len(),
			Err(e) if e.kind() == ErrorKind::NotFound => {
				log::warn!(target: "sync-store", "object {} is missing", Cid(*cid));
				report.missing.push(Cid(*cid));
				return Ok(false);
			},
			Err(e) => return Err(e.into()),
		};
		if len == size {
			return Ok(true);
		}
		// Rare (a damaged file, or bits an older store appended after finishing): worth reading
		// this one object once.
		let f = OpenOptions::new().read(true).write(true).open(&path)?;
		if len > size && hash_prefix(&f, size)? == Some(*cid) {
			f.set_len(size)?;
			f.sync_data()?;
			log::warn!(target: "sync-store", "object {}: trailing bytes trimmed", Cid(*cid));
			report.trimmed.push(Cid(*cid));
			return Ok(true);
		}
		if hash_prefix(&f, len)? == Some(*cid) {
			// The file is the object; it is the index's size for it that is wrong (an op that
			// claimed another size). The object is kept for whatever references it rightly.
			log::warn!(
				target: "sync-store",
				"object {}: indexed as {size} bytes, but the object is {len}",
				Cid(*cid)
			);
			return Ok(true);
		}
		drop(f);
		self.quarantine_large(cid, None)?;
		report.missing.push(Cid(*cid));
		Ok(false)
	}

	/// Removes what a crash can leave in `partial/`: a bitfield sidecar of an older store without
	/// its data file (one with its data file goes when that partial is reopened), and a partial
	/// whose object is complete in `objects/` (a power loss that kept both names).
	fn clean_partials(&self) -> Result<()> {
		let dir = self.dir().join("partial");
		for entry in fs::read_dir(&dir)? {
			let entry = entry?;
			let name = entry.file_name();
			let Some(name) = name.to_str() else { continue };
			if let Some(stem) = name.strip_suffix(BITS_SUFFIX) {
				if is_cid_name(stem) && !dir.join(stem).exists() {
					fs::remove_file(entry.path())?;
				}
			} else if is_cid_name(name) {
				let complete = self.dir().join("objects").join(&name[..2]).join(name).exists();
				if complete {
					fs::remove_file(entry.path())?;
					let _ = fs::remove_file(dir.join(format!("{name}{BITS_SUFFIX}")));
				}
			}
		}
		Ok(())
	}

	/// Objects the segment's current index references that the store does not hold durably,
	/// each once, with its size: what the data plane fetches again (through
	/// [`Store::begin_object`] and [`Store::write_group`]) after the open check or the scrub
	/// found objects missing. Flushes first, so objects received and not yet committed are not
	/// listed. `O(entries)`: one lookup per inline object, one file-system call per large one.
	pub fn missing_objects(&self, segment: SegmentId) -> Result<Vec<(Cid, u64)>> {
		let entries: Vec<(Hash32, u64)> = {
			let segs = self.inner.segments.lock();
			let state = segs
				.get(&segment)
				.filter(|s| s.head.is_some())
				.ok_or(StoreError::UnknownSegment(segment))?;
			state.trie.entries().into_iter().map(|e| (e.cid, e.size)).collect()
		};
		self.flush()?;
		let tx = self.inner.db.begin_read()?;
		let (blobs, outboards) = (tx.open_table(BLOBS)?, tx.open_table(crate::OUTBOARDS)?);
		let mut seen = HashSet::new();
		let mut out = Vec::new();
		for (cid, size) in entries {
			if seen.insert(cid) && !self.has_object_in(&blobs, &outboards, &cid, size)? {
				out.push((Cid(cid), size));
			}
		}
		Ok(out)
	}

	/// Re-verifies stored objects against their CIDs, going on from where the previous step
	/// stopped, in CID order over inline objects and complete large objects: an inline object is
	/// hashed whole; a large object's outboard is checked against the CID at the file's length
	/// (the tree's shape depends on the length, so this checks the length too), then each group
	/// against the outboard, across as many steps as the budget needs. Partial objects are
	/// skipped (their groups are verified when written and again when reloaded).
	///
	/// A step reads at most `budget_bytes` (each object visited also counts
	/// [`SCRUB_OBJECT_COST`]), except that its first unit — an inline object or a group (both at
	/// most 16 KiB), or an outboard (64 bytes per group of its object) — is always checked, so
	/// every budget makes progress. The caller spaces the steps to set the rate; the position is
	/// kept in memory and saved every 64 MiB checked and at the end of each pass.
	///
	/// An object that fails is quarantined: moved to `quarantine/<cid>` (an inline one copied
	/// there and removed from the database), so [`Store::has_object`] is false, serving answers
	/// that it is not held, and [`Store::missing_objects`] lists it for every segment that
	/// references it. A large object's outboard is removed too if it was the outboard that did
	/// not verify.
	pub fn scrub_step(&self, budget_bytes: u64) -> Result<ScrubReport> {
		let mut guard = self.inner.objects.scrub.lock();
		let cur: &mut ScrubCursor = &mut guard;
		if !cur.loaded {
			cur.after = self.meta(SCRUB_CURSOR)?.and_then(|v| Hash32::try_from(v.as_slice()).ok());
			cur.loaded = true;
		}
		let mut r = ScrubReport::default();
		let mut spent = 0u64;
		loop {
			if let Some(c) = cur.current.as_mut() {
				let outcome = self.scrub_groups(c, budget_bytes, &mut spent, &mut r)?;
				let cid = c.cid;
				match outcome {
					Groups::Budget => break,
					Groups::Good => r.checked_objects += 1,
					Groups::Gone => {},
					Groups::Bad => {
						r.checked_objects += 1;
						self.quarantine_large(&cid, None)?;
						r.quarantined.push(Cid(cid));
					},
				}
				cur.current = None;
				cur.after = Some(cid);
				continue;
			}
			let Some(next) = self.next_stored(cur.after)? else {
				cur.after = None;
				r.wrapped = true;
				break;
			};
			match next {
				Next::Small(cid, data) => {
					let n = data.len() as u64;
					if !fits(spent, n + SCRUB_OBJECT_COST, budget_bytes) {
						break;
					}
					spent += n + SCRUB_OBJECT_COST;
					r.checked_bytes += n;
					r.checked_objects += 1;
					cur.after = Some(cid);
					if cid_of(&data) != cid {
						self.quarantine_small(&cid, &data)?;
						r.quarantined.push(Cid(cid));
					}
				},
				Next::Large(cid, ob) => {
					let len = match fs::metadata(object_path(self.dir(), &cid)) {
						Ok(m) => Some(m.len()),
						Err(e) if e.kind() == ErrorKind::NotFound => None,
						Err(e) => return Err(e.into()),
					};
					let Some(len) = len else {
						// A partial object (or one already quarantined): nothing complete here.
						if !fits(spent, SCRUB_OBJECT_COST, budget_bytes) {
							break;
						}
						spent += SCRUB_OBJECT_COST;
						cur.after = Some(cid);
						continue;
					};
					let n = ob.len() as u64;
					if !fits(spent, n + SCRUB_OBJECT_COST, budget_bytes) {
						break;
					}
					spent += n + SCRUB_OBJECT_COST;
					r.checked_bytes += n;
					match Outboard::from_bytes(len, &ob).and_then(|o| o.verify(&cid).map(|()| o)) {
						Ok(o) => {
							cur.current =
								Some(Current { cid, size: len, leaves: o.group_cvs(), next: 0 });
						},
						Err(_) => {
							// The outboard or the file's length is wrong; either way the object
							// cannot be served as it is, and the outboard cannot be trusted.
							r.checked_objects += 1;
							cur.after = Some(cid);
							self.quarantine_large(&cid, Some(&ob))?;
							r.quarantined.push(Cid(cid));
						},
					}
				},
			}
		}
		cur.unsaved = cur.unsaved.saturating_add(r.checked_bytes);
		if r.wrapped || cur.unsaved >= SCRUB_SAVE_BYTES {
			self.save_scrub_cursor(cur.after)?;
			cur.unsaved = 0;
		}
		Ok(r)
	}

	/// Verifies the groups of `c` from `c.next` on while the budget allows.
	fn scrub_groups(
		&self,
		c: &mut Current,
		budget: u64,
		spent: &mut u64,
		r: &mut ScrubReport,
	) -> Result<Groups> {
		let file = match File::open(object_path(self.dir(), &c.cid)) {
			Ok(f) => f,
			Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Groups::Gone),
			Err(e) => return Err(e.into()),
		};
		if file.metadata()?.len() != c.size {
			return Ok(Groups::Bad);
		}
		let mut buf = vec![0u8; GROUP_LEN as usize];
		while c.next < groups_of(c.size) {
			let Some((s, e)) = group_range(c.size, c.next) else { return Ok(Groups::Bad) };
			let n = e - s;
			if !fits(*spent, n, budget) {
				return Ok(Groups::Budget);
			}
			*spent += n;
			r.checked_bytes += n;
			let b = &mut buf[..n as usize];
			match file.read_exact_at(b, s) {
				Ok(()) => {},
				Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Groups::Bad),
				Err(e) => return Err(e.into()),
			}
			if verify_group(&c.cid, c.size, c.leaves.get(c.next as usize), c.next, b).is_err() {
				return Ok(Groups::Bad);
			}
			c.next += 1;
		}
		Ok(Groups::Good)
	}

	/// The stored object with the lowest CID above `after`: the lower of the next inline object
	/// and the next outboard (every large object, complete or partial, has one).
	fn next_stored(&self, after: Option<Hash32>) -> Result<Option<Next>> {
		let tx = self.inner.db.begin_read()?;
		let lower: Bound<&[u8; 32]> = match &after {
			Some(c) => Bound::Excluded(c),
			None => Bound::Unbounded,
		};
		let blobs = tx.open_table(BLOBS)?;
		let small = blobs
			.range::<&[u8; 32]>((lower, Bound::Unbounded))?
			.next()
			.transpose()?
			.map(|(k, v)| (*k.value(), v.value().to_vec()));
		let outboards = tx.open_table(OUTBOARDS)?;
		let large = outboards
			.range::<&[u8; 32]>((lower, Bound::Unbounded))?
			.next()
			.transpose()?
			.map(|(k, v)| (*k.value(), v.value().to_vec()));
		Ok(match (small, large) {
			(Some(s), Some(l)) if l.0 < s.0 => Some(Next::Large(l.0, l.1)),
			(Some(s), _) => Some(Next::Small(s.0, s.1)),
			(None, Some(l)) => Some(Next::Large(l.0, l.1)),
			(None, None) => None,
		})
	}

	/// Saves the scrub's position (`None`: at the start of a pass).
	fn save_scrub_cursor(&self, after: Option<Hash32>) -> Result<()> {
		let mut tx = self.inner.db.begin_write()?;
		tx.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.into()))?;
		{
			let mut t = tx.open_table(META)?;
			match after {
				Some(c) => {
					t.insert(SCRUB_CURSOR, c.as_slice())?;
				},
				None => {
					t.remove(SCRUB_CURSOR)?;
				},
			}
		}
		tx.commit()?;
		Ok(())
	}

	/// Moves a large object's file to `quarantine/`; with `bad_outboard`, also drops its outboard
	/// (only if it is still those bytes: a verified one committed since by a re-fetch stays).
	fn quarantine_large(&self, cid: &Hash32, bad_outboard: Option<&[u8]>) -> Result<()> {
		match fs::rename(object_path(self.dir(), cid), quarantine_path(self.dir(), cid)) {
			Ok(()) => {},
			Err(e) if e.kind() == ErrorKind::NotFound => {},
			Err(e) => return Err(e.into()),
		}
		// Not required for safety (a quarantine lost to a power loss is found again by the next
		// pass), but cheap and it keeps the report true across one.
		if let Some(d) = object_path(self.dir(), cid).parent() {
			sync_dir(d)?;
		}
		if let Some(bad) = bad_outboard {
			let tx = durable(&self.inner.db)?;
			{
				let mut t = tx.open_table(OUTBOARDS)?;
				let same = t.get(cid)?.is_some_and(|v| v.value() == bad);
				if same {
					t.remove(cid)?;
				}
			}
			tx.commit()?;
		}
		log::warn!(target: "sync-store", "object {}: damaged on disk, quarantined", Cid(*cid));
		Ok(())
	}

	/// Removes an inline object whose bytes do not hash to its CID (only if they are still those
	/// bytes: a good copy committed since by a re-fetch stays), keeping a copy in `quarantine/`.
	fn quarantine_small(&self, cid: &Hash32, bad: &[u8]) -> Result<()> {
		if let Err(e) = fs::write(quarantine_path(self.dir(), cid), bad) {
			log::warn!(target: "sync-store", "keeping a copy of object {}: {e}", Cid(*cid));
		}
		let tx = durable(&self.inner.db)?;
		{
			let mut t = tx.open_table(BLOBS)?;
			let same = t.get(cid)?.is_some_and(|v| v.value() == bad);
			if same {
				t.remove(cid)?;
			}
		}
		tx.commit()?;
		log::warn!(
			target: "sync-store",
			"object {}: damaged in the database, quarantined",
			Cid(*cid)
		);
		Ok(())
	}
}

/// Fault injection for the data plane's tests of the scrub and repair (feature `test-util`):
/// small objects live inline in the database, where a test outside this crate cannot reach
/// their bytes the way it can flip a byte of a large object's file.
#[cfg(feature = "test-util")]
impl Store {
	/// Flips one bit of the stored bytes of the inline (small) object `cid`, as rot inside the
	/// database would; `false` if no such inline object is stored. Tests only.
	#[doc(hidden)]
	pub fn rot_inline_object(&self, cid: &Hash32) -> Result<bool> {
		self.flush()?;
		let tx = durable(&self.inner.db)?;
		let rotted = {
			let mut t = tx.open_table(BLOBS)?;
			let stored = t.get(cid)?.map(|v| v.value().to_vec());
			match stored {
				Some(mut bytes) if !bytes.is_empty() => {
					bytes[0] ^= 1;
					t.insert(cid, bytes.as_slice())?;
					true
				},
				_ => false,
			}
		};
		tx.commit()?;
		Ok(rotted)
	}
}
