//! Objects by CID: small ones inline in the database, large ones as files with outboards, and
//! partial (downloading) large objects written in place.
//!
//! # What a partial object is
//! `partial/<cid>`: exactly `size` bytes from creation on (sparse), each group written in place
//! at its offset once it verified against the outboard. Which groups are there lives in memory
//! only: there is no bitfield on disk. Reopening a partial after a restart re-verifies every
//! written group of the file against the committed outboard (holes are skipped unread; torn or
//! lost writes fail and are fetched again), so what it keeps is exactly what verifies, and a crash costs a refetch,
//! never a wrong byte. (An on-disk bitfield was only ever a hint that still had to be
//! re-verified; as a sidecar file it cost one more inode created and unlinked per object, and
//! that measurably slowed the snapshot sync.)
//!
//! # Finishing a partial object
//! The finisher thread commits a complete one in these steps, each safe to crash after:
//! 1. `done` is set: the object is the finisher's; it is not durable yet.
//! 2. The data file is fsynced, and its now clean pages are handed back to the kernel
//!    ([`drop_cached`]). A crash leaves a partial whose every group verifies, which reopening
//!    finishes again.
//! 3. The data file is renamed to `objects/xx/<cid>`: the commit point. The file already has
//!    exactly the object's bytes, so there is nothing to trim.
//! 4. The directories (`objects/xx` and `partial/`) are fsynced, for every object renamed since
//!    the last round at once: when [`FINISH_BATCH`] objects await it, or as soon as anyone
//!    waits for durability ([`Store::flush`], before a head may reference the objects). Only
//!    after this does the object count as durable ([`Store::has_object_in`], which decides what
//!    a head may reference, says no before it) and leave the in-memory partials.
use crate::{
	hex,
	integrity::{OpenReport, ScrubCursor},
	Cid, Result, Store, StoreError, BLOBS, OUTBOARDS, OUTBOARD_FLUSH_GROUPS, SMALL_BATCH_BYTES,
};
use parking_lot::{Condvar, Mutex};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use std::{
	collections::{BTreeSet, HashMap},
	fs::{self, File, OpenOptions},
	io::{ErrorKind, Write},
	os::unix::fs::FileExt,
	path::{Path, PathBuf},
	sync::{
		atomic::{AtomicU32, AtomicUsize, Ordering},
		mpsc::{Receiver, Sender},
		Arc,
	},
};
use sync_primitives::{
	commitment::{cid_of, Hash32, ProofError, GROUP_LEN},
	outboard::{group_range, groups_of, verify_group, Outboard},
};

/// Most objects renamed into `objects/` whose directories are not synced yet: the finisher runs
/// one round of directory fsyncs for all of them (sooner if someone waits for durability).
const FINISH_BATCH: usize = 64;

/// What the store has of an object.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ObjectState {
	/// Nothing.
	Absent,
	/// All of it, verified.
	Complete,
	/// Some verified groups; `missing` lists the others in order.
	Partial {
		/// Groups still to fetch.
		missing: Vec<u64>,
	},
}

/// One group as read for serving.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum GroupRead {
	/// The verified bytes of the group.
	Data(Vec<u8>),
	/// This store does not have the group (yet).
	Missing,
}

/// A large object being downloaded.
pub(crate) struct Partial {
	size: u64,
	leaves: Vec<Hash32>,
	/// `partial/<cid>`: exactly `size` bytes, each group written in place at its offset.
	data: File,
	state: Mutex<PartialState>,
}

struct PartialState {
	/// One byte per group, non-zero once the group verified and was written (memory only).
	have: Vec<u8>,
	missing: u64,
	/// Handed to the finisher: not durable until its directory round.
	done: bool,
}

/// A partial object whose last group is verified, handed to the finisher thread.
type Finished = (Hash32, Arc<Partial>);

/// Work for the finisher thread.
enum Job {
	/// Commit this complete object.
	Finish(Finished),
	/// Someone waits for durability: run the directory round now (a wake-up; the finisher also
	/// checks [`Objects::waiters`] after every batch).
	Sync,
}

/// The steps of finishing a partial object (see the module docs), named for the tests'
/// simulated crashes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FinishStep {
	/// Handed to the finisher, nothing done yet.
	Queued,
	/// `done` set.
	Done,
	/// Data fsynced.
	Synced,
	/// Renamed into `objects/`, directories not synced yet.
	Renamed,
	/// Directories synced, the object not yet out of the in-memory partials.
	DirSynced,
}

/// Fault injection for the tests; empty, and every check a constant, outside `cfg(test)`.
#[derive(Default)]
pub(crate) struct Hooks {
	/// Finishing stops right after this step, as if the process were killed there.
	#[cfg(test)]
	pub(crate) crash_after: Mutex<Option<FinishStep>>,
	/// Replaces [`SMALL_BATCH_BYTES`] as the pending batch's bound.
	#[cfg(test)]
	pub(crate) batch_bytes: Mutex<Option<usize>>,
	/// Set once a simulated crash happened: from then on nothing more reaches the files (no
	/// batch, no further finishing), as after a `kill -9`.
	#[cfg(test)]
	crashed: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Hooks {
	fn crash_after(&self, step: FinishStep) -> bool {
		if *self.crash_after.lock() == Some(step) {
			self.crashed.store(true, Ordering::SeqCst);
			return true;
		}
		false
	}
	fn crashed(&self) -> bool {
		self.crashed.load(Ordering::SeqCst)
	}
	fn batch_bytes(&self) -> usize {
		self.batch_bytes.lock().unwrap_or(SMALL_BATCH_BYTES)
	}
}

#[cfg(not(test))]
impl Hooks {
	#[inline(always)]
	fn crash_after(&self, _step: FinishStep) -> bool {
		false
	}
	#[inline(always)]
	fn crashed(&self) -> bool {
		false
	}
	#[inline(always)]
	fn batch_bytes(&self) -> usize {
		SMALL_BATCH_BYTES
	}
}

pub(crate) struct Objects {
	dir: PathBuf,
	pub(crate) pending: Mutex<Pending>,
	pub(crate) partials: Arc<Mutex<HashMap<Hash32, Arc<Partial>>>>,
	finisher: Mutex<Option<Sender<Job>>>,
	finishing: Arc<(Mutex<Tickets>, Condvar)>,
	/// Threads waiting in [`Objects::wait_finished`]: while any is, the finisher syncs
	/// directories after every batch instead of collecting [`FINISH_BATCH`] objects first.
	waiters: Arc<AtomicUsize>,
	/// Groups verified since pending outboards were last committed, over all partial objects.
	dirty_groups: AtomicU32,
	pub(crate) hooks: Arc<Hooks>,
	/// What the check at open found (see [`Store::open_report`]).
	pub(crate) report: Mutex<OpenReport>,
	/// Where the scrub is (see [`Store::scrub_step`]).
	pub(crate) scrub: Mutex<ScrubCursor>,
}

#[derive(Default)]
pub(crate) struct Pending {
	blobs: HashMap<Hash32, Vec<u8>>,
	pub(crate) outboards: HashMap<Hash32, Vec<u8>>,
	/// What `blobs` and `outboards` hold (at least 64 bytes an entry): committed once it
	/// reaches [`SMALL_BATCH_BYTES`], so the batch in memory stays bounded whatever a sync
	/// begins (a scheduler that fetches every outboard of a large segment before its groups
	/// would otherwise hold them all: 0.4 % of the segment).
	pub(crate) bytes: usize,
}

impl Pending {
	/// Counts `len` more bytes; whether the batch is due.
	fn add(&mut self, len: usize, limit: usize) -> bool {
		self.bytes += len.max(64);
		self.bytes >= limit
	}
}

/// Maps a proof failure on `cid`'s data or outboard to the store's error.
fn bad_data(cid: &Hash32) -> impl Fn(ProofError) -> StoreError + '_ {
	move |reason| StoreError::BadData { cid: Cid(*cid), reason }
}

/// Whether an object of `size` bytes is stored inline in the database.
pub(crate) fn is_small(size: u64) -> bool {
	groups_of(size) == 1
}

impl Objects {
	pub(crate) fn new(dir: PathBuf) -> Self {
		Objects {
			dir,
			pending: Mutex::new(Pending::default()),
			partials: Arc::new(Mutex::new(HashMap::new())),
			finisher: Mutex::new(None),
			finishing: Arc::new((Mutex::new(Tickets::default()), Condvar::new())),
			waiters: Arc::new(AtomicUsize::new(0)),
			dirty_groups: AtomicU32::new(0),
			hooks: Arc::new(Hooks::default()),
			report: Mutex::new(OpenReport::default()),
			scrub: Mutex::new(ScrubCursor::default()),
		}
	}

	/// Hands a fully verified partial object to the finisher thread, which commits it (see the
	/// module docs) off the transfer's hot path.
	fn finish_later(&self, cid: Hash32, p: Arc<Partial>) -> Result<()> {
		self.finishing.0.lock().handed += 1;
		let sent = self.send_to_finisher(Job::Finish((cid, p)));
		if sent.is_err() {
			// Never handed over: nothing to wait for.
			finished(&self.finishing, 1);
		}
		sent
	}

	fn send_to_finisher(&self, f: Job) -> Result<()> {
		let mut tx = self.finisher.lock();
		if tx.is_none() {
			let (send, recv) = std::sync::mpsc::channel::<Job>();
			let ctx = FinishCtx {
				dir: self.dir.clone(),
				partials: self.partials.clone(),
				finishing: self.finishing.clone(),
				waiters: self.waiters.clone(),
				hooks: self.hooks.clone(),
				renamed: Vec::new(),
				failed: 0,
				dirs: BTreeSet::new(),
			};
			std::thread::Builder::new()
				.name("sync-store-finisher".into())
				.spawn(move || ctx.run(recv))?;
			*tx = Some(send);
		}
		let Some(send) = tx.as_ref() else {
			return Err(std::io::Error::other("finisher not started").into());
		};
		send.send(f).map_err(|_| std::io::Error::other("finisher stopped"))?;
		Ok(())
	}

	/// Waits until every handed-over object is committed and durable. The finisher learns of
	/// the wait (`waiters`, and a [`Job::Sync`] in case it is idle) and syncs directories at once.
	fn wait_finished(&self) {
		// Everything handed over before this call; what others hand over meanwhile is theirs
		// to wait for (a wait for "none left" might never end while other syncs finish objects).
		let ticket = {
			let t = self.finishing.0.lock();
			if t.done >= t.handed {
				return;
			}
			t.handed
		};
		self.waiters.fetch_add(1, Ordering::SeqCst);
		if let Some(tx) = self.finisher.lock().as_ref() {
			// A send fails only if the finisher is gone, and then nothing is left to wait for.
			let _ = tx.send(Job::Sync);
		}
		let mut t = self.finishing.0.lock();
		while t.done < ticket {
			self.finishing.1.wait(&mut t);
		}
		drop(t);
		self.waiters.fetch_sub(1, Ordering::SeqCst);
	}

	fn object_path(&self, cid: &Hash32) -> PathBuf {
		object_path(&self.dir, cid)
	}
	fn partial_path(&self, cid: &Hash32) -> PathBuf {
		partial_path(&self.dir, cid)
	}
	fn bits_path(&self, cid: &Hash32) -> PathBuf {
		legacy_bits_path(&self.dir, cid)
	}

	/// Whether the finisher holds `cid` between its first step and the end of its directory
	/// sync: the file in `objects/` (if already renamed) is not durable yet.
	fn finishing(&self, cid: &Hash32) -> bool {
		self.partials.lock().get(cid).is_some_and(|p| p.state.lock().done)
	}

	/// Whether `objects/` durably holds the large object `cid` with its outboard committed: what a
	/// head may reference. The outboard is looked up in the database itself: a file renamed
	/// before a crash took its (still pending) outboard with it is not durable, however complete
	/// the file (see [`Store::begin_object`], which stores the outboard again). `outboards`: the
	/// outboard table of the caller's open transaction.
	fn has_durable_file(&self, outboards: &impl ObjectTable, cid: &Hash32) -> Result<bool> {
		if self.finishing(cid) || !self.object_path(cid).exists() {
			return Ok(false);
		}
		Ok(outboards.get(cid)?.is_some())
	}

	/// Waits for finishing objects (durable: fsynced, renamed, directories synced), then commits
	/// pending small objects and outboards.
	pub(crate) fn flush(&self, db: &Database) -> Result<()> {
		self.wait_finished();
		self.commit_pending(db)
	}

	/// Commits the pending batch of small objects and outboards (one durable transaction).
	fn commit_pending(&self, db: &Database) -> Result<()> {
		if self.hooks.crashed() {
			return Ok(());
		}
		let (blobs, outboards) = {
			let mut p = self.pending.lock();
			p.bytes = 0;
			(p.blobs.clone(), p.outboards.clone())
		};
		if !blobs.is_empty() || !outboards.is_empty() {
			let mut tx = db.begin_write()?;
			tx.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.into()))?;
			{
				let mut t = tx.open_table(BLOBS)?;
				for (cid, data) in &blobs {
					t.insert(cid, data.as_slice())?;
				}
				let mut t = tx.open_table(OUTBOARDS)?;
				for (cid, ob) in &outboards {
					t.insert(cid, ob.as_slice())?;
				}
			}
			tx.commit()?;
			let mut p = self.pending.lock();
			for cid in blobs.keys() {
				p.blobs.remove(cid);
			}
			for cid in outboards.keys() {
				p.outboards.remove(cid);
			}
		}
		Ok(())
	}

	/// Stores a small object inside `tx` (the caller's segment transaction).
	pub(crate) fn put_small_in(
		&self,
		tx: &WriteTransaction,
		cid: &Hash32,
		data: &[u8],
	) -> Result<()> {
		tx.open_table(BLOBS)?.insert(cid, data)?;
		Ok(())
	}

	/// Writes a complete large object (already hashed by the caller) durably — file fsynced,
	/// renamed into place, directory synced — before `tx`, the caller's segment transaction that
	/// references it, can commit; its outboard goes into `tx`.
	pub(crate) fn put_large_in(
		&self,
		tx: &WriteTransaction,
		cid: &Hash32,
		data: &[u8],
		outboard: &Outboard,
	) -> Result<()> {
		let path = self.object_path(cid);
		// A file the finisher has renamed but not yet synced the directory of is written again
		// (the same bytes under the same name) rather than referenced before it is durable.
		if self.finishing(cid) || !path.exists() {
			write_durable(&path, data)?;
		}
		tx.open_table(OUTBOARDS)?.insert(cid, outboard.to_bytes().as_slice())?;
		Ok(())
	}

	/// Moves a staged large object's file into `objects/` (durably: the directory is synced)
	/// before `tx`, the caller's segment transaction that references it, can commit; its
	/// outboard goes into `tx`. An object already held keeps its file (the upload's is deleted
	/// with the last reference to it).
	pub(crate) fn put_staged_in(
		&self,
		tx: &WriteTransaction,
		object: &crate::upload::StagedObject,
		file: &crate::upload::UploadFile,
	) -> Result<()> {
		let path = self.object_path(&object.cid);
		// As in `put_large_in`: a file the finisher renamed but whose directory is not synced
		// yet is replaced (same bytes, same name) rather than referenced before it is durable.
		if self.finishing(&object.cid) || !path.exists() {
			fs::rename(&file.0, &path)?;
			if let Some(dir) = path.parent() {
				sync_dir(dir)?;
			}
		}
		tx.open_table(OUTBOARDS)?
			.insert(&object.cid, object.outboard.to_bytes().as_slice())?;
		Ok(())
	}

	/// Outboard bytes, pending or committed.
	fn outboard_bytes(&self, db: &Database, cid: &Hash32) -> Result<Option<Vec<u8>>> {
		if let Some(ob) = self.pending.lock().outboards.get(cid) {
			return Ok(Some(ob.clone()));
		}
		Ok(db.begin_read()?.open_table(OUTBOARDS)?.get(cid)?.map(|v| v.value().to_vec()))
	}
}

/// Objects handed to the finisher and done with (durable, failed, or stopped by a simulated
/// crash), both counted from the store's open. The finisher takes jobs in order and counts them
/// done only in its directory rounds, in order too, so `done >= k` means the first `k` objects
/// handed over are done with.
#[derive(Default)]
pub(crate) struct Tickets {
	handed: u64,
	done: u64,
}

/// A table keyed by CID (inline objects, outboards), read in the caller's transaction.
pub(crate) trait ObjectTable: ReadableTable<&'static [u8; 32], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8; 32], &'static [u8]>> ObjectTable for T {}

/// Whether the outboard of `cid` is committed to the database.
fn outboard_committed(db: &Database, cid: &Hash32) -> Result<bool> {
	Ok(db.begin_read()?.open_table(OUTBOARDS)?.get(cid)?.is_some())
}

/// Counts `n` more objects done with, for [`Objects::wait_finished`].
fn finished(finishing: &(Mutex<Tickets>, Condvar), n: usize) {
	finishing.0.lock().done += n as u64;
	finishing.1.notify_all();
}

/// What the finisher thread works with.
struct FinishCtx {
	dir: PathBuf,
	pub(crate) partials: Arc<Mutex<HashMap<Hash32, Arc<Partial>>>>,
	finishing: Arc<(Mutex<Tickets>, Condvar)>,
	waiters: Arc<AtomicUsize>,
	hooks: Arc<Hooks>,
	/// Renamed into `objects/`, directories not synced yet (not yet counted done).
	renamed: Vec<(Hash32, Arc<Partial>)>,
	/// Handed over since the last round but not renamed (failed, or a simulated crash): counted
	/// done in the next round, in order with the rest.
	failed: usize,
	/// The directories those renames touched.
	dirs: BTreeSet<PathBuf>,
}

impl FinishCtx {
	/// Commits objects as they are handed over, in batches of whatever is queued; runs the
	/// directory round (step 4) once [`FINISH_BATCH`] renamed objects await it or as soon as
	/// anyone waits for durability.
	fn run(mut self, recv: Receiver<Job>) {
		while let Ok(first) = recv.recv() {
			let mut batch = vec![first];
			while batch.len() < FINISH_BATCH {
				match recv.try_recv() {
					Ok(j) => batch.push(j),
					Err(_) => break,
				}
			}
			for job in batch {
				if let Job::Finish((cid, p)) = job {
					self.finish_one(cid, p);
				}
			}
			let wanted = self.waiters.load(Ordering::SeqCst) > 0;
			let due = self.renamed.len() + self.failed >= FINISH_BATCH;
			if self.hooks.crashed() || wanted || due {
				self.sync_renamed();
			}
		}
	}

	/// Steps 1–3 for one object. One that fails stays in the partials (not durable, so no head
	/// can reference it); the error is logged and nobody waits for it.
	fn finish_one(&mut self, cid: Hash32, p: Arc<Partial>) {
		if !self.hooks.crashed() && !self.hooks.crash_after(FinishStep::Queued) {
			match self.commit_data(&cid, &p) {
				Ok(true) => {
					if let Some(d) = object_path(&self.dir, &cid).parent() {
						self.dirs.insert(d.to_path_buf());
					}
					self.renamed.push((cid, p));
					return;
				},
				// A simulated crash.
				Ok(false) => {},
				Err(e) => {
					log::error!(target: "sync-store", "finishing object {}: {e}", Cid(cid));
				},
			}
		}
		self.failed += 1;
	}

	/// Step 4 for every object renamed since the last round: the new names in `objects/xx` (and
	/// the removed ones in `partial/`) are durable before anyone is told the objects are
	/// (`flush` returns, and a head may reference them).
	fn sync_renamed(&mut self) {
		let renamed = std::mem::take(&mut self.renamed);
		let mut dirs = std::mem::take(&mut self.dirs);
		let failed = std::mem::take(&mut self.failed);
		let n = renamed.len();
		if n == 0 {
			finished(&self.finishing, failed);
			return;
		}
		if !self.hooks.crashed() && !self.hooks.crash_after(FinishStep::Renamed) {
			dirs.insert(self.dir.join("partial"));
			let synced = dirs.iter().try_for_each(|d| {
				sync_dir(d).map_err(|e| {
					log::error!(
						target: "sync-store",
						"syncing {}: {e}; {n} finished objects are not durable",
						d.display(),
					)
				})
			});
			if synced.is_ok() && !self.hooks.crash_after(FinishStep::DirSynced) {
				let mut partials = self.partials.lock();
				for (cid, p) in &renamed {
					// Only the partial finished here (a newer one under the CID is not ours).
					if partials.get(cid).is_some_and(|q| Arc::ptr_eq(p, q)) {
						partials.remove(cid);
					}
				}
			}
		}
		finished(&self.finishing, n + failed);
	}

	/// Steps 1–3 for one object; `Ok(false)` if a simulated crash stopped it.
	fn commit_data(&self, cid: &Hash32, p: &Partial) -> Result<bool> {
		// 1. The object is the finisher's.
		p.state.lock().done = true;
		if self.hooks.crash_after(FinishStep::Done) {
			return Ok(false);
		}
		// 2. The bytes are on disk before any name says the object is complete.
		p.data.sync_data()?;
		drop_cached(&p.data);
		if self.hooks.crash_after(FinishStep::Synced) {
			return Ok(false);
		}
		// 3. The commit point. The file is exactly the object: nothing to trim, before or after.
		fs::rename(partial_path(&self.dir, cid), object_path(&self.dir, cid))?;
		Ok(true)
	}
}

pub(crate) fn object_path(dir: &Path, cid: &Hash32) -> PathBuf {
	let h = hex(cid);
	dir.join("objects").join(&h[..2]).join(h)
}

/// The data of a partial object: exactly `size` bytes, groups at their offsets.
pub(crate) fn partial_path(dir: &Path, cid: &Hash32) -> PathBuf {
	dir.join("partial").join(hex(cid))
}

/// Suffix of the bitfield sidecar an older store kept next to a partial's data in `partial/`
/// (removed at open and whenever its partial goes).
pub(crate) const BITS_SUFFIX: &str = ".bits";

/// Where an older store kept a partial object's bitfield sidecar.
pub(crate) fn legacy_bits_path(dir: &Path, cid: &Hash32) -> PathBuf {
	dir.join("partial").join(format!("{}{BITS_SUFFIX}", hex(cid)))
}

/// Tells the kernel the (clean, just fsynced) pages of `f` will not be read again soon, so they
/// are reclaimed first and reused for the next writes instead of the page cache growing by every
/// byte received. Measured on the reference VM: a 1 GiB snapshot sync that otherwise got slower
/// with every gigabyte already in the page cache (run 1 fast, runs 2 and 3 at about half its
/// rate, receiver CPU per byte 2.5–3× higher in the kernel's page-cache copy) stays at its best
/// rate run after run. A hint only: failures are ignored, and nothing but speed depends on it.
/// Serving reads the object back from disk if no one read it meanwhile.
pub(crate) fn drop_cached(f: &File) {
	#[cfg(target_os = "linux")]
	{
		use std::os::fd::AsRawFd;
		// SAFETY: `posix_fadvise` only reads its integer arguments; the descriptor is valid for
		// the lifetime of `f`, which outlives the call.
		let _ = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
	}
	#[cfg(not(target_os = "linux"))]
	let _ = f;
}

/// The first offset at or after `offset` where `f` has data (`u64::MAX` if none): holes of a
/// sparse partial file are groups never written. Where the system cannot tell, `offset` itself
/// (the group is read and checked).
fn data_at_or_after(f: &File, offset: u64) -> u64 {
	#[cfg(target_os = "linux")]
	{
		use std::os::fd::AsRawFd;
		let Ok(off) = libc::off_t::try_from(offset) else { return offset };
		// SAFETY: `lseek` only reads its integer arguments; the descriptor is valid for the
		// lifetime of `f`. It moves the file offset, which nothing here uses (reads are `pread`).
		let r = unsafe { libc::lseek(f.as_raw_fd(), off, libc::SEEK_DATA) };
		if r >= 0 {
			return r as u64;
		}
		if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
			return u64::MAX;
		}
		offset
	}
	#[cfg(not(target_os = "linux"))]
	{
		let _ = f;
		offset
	}
}

/// Makes the entries of directory `dir` (files created in it, renamed into or out of it)
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
	File::open(dir)?.sync_all()
}

/// Creates the store's directories (`objects/00`…`objects/ff`, `partial/`, `quarantine/`) and
/// makes their entries durable: a file synced into a directory whose own entry is not durable
/// could vanish with it after a power loss.
pub(crate) fn create_dirs(dir: &Path) -> Result<()> {
	let objects = dir.join("objects");
	for i in 0..=255u8 {
		fs::create_dir_all(objects.join(hex(&[i])))?;
	}
	fs::create_dir_all(dir.join("partial"))?;
	fs::create_dir_all(dir.join("quarantine"))?;
	// Renames a killed process left waiting for their directory round become durable now,
	// before anything at open (or after) counts their objects as durable (257 fsyncs).
	for i in 0..=255u8 {
		sync_dir(&objects.join(hex(&[i])))?;
	}
	sync_dir(&dir.join("partial"))?;
	sync_dir(&objects)?;
	sync_dir(dir)?;
	Ok(())
}

/// Writes `data` to a temporary file, fsyncs it, renames it into place and syncs the directory.
fn write_durable(path: &Path, data: &[u8]) -> Result<()> {
	let tmp = path.with_extension("tmp");
	let mut f = File::create(&tmp)?;
	f.write_all(data)?;
	f.sync_data()?;
	fs::rename(&tmp, path)?;
	if let Some(dir) = path.parent() {
		sync_dir(dir)?;
	}
	Ok(())
}

impl Store {
	fn objects(&self) -> &Objects {
		&self.inner.objects
	}

	/// Whether the complete object `(cid, size)` is present *durably*, i.e. whether a head about
	/// to commit may reference it: an inline object committed to the database (not one still in
	/// the pending batch), or a file in `objects/` whose rename and directory are synced and whose
	/// outboard is committed. Looks only where an object of that size lives (inline below one
	/// group, a file above): no file-system call for small objects. `blobs` and `outboards` are
	/// the inline-object and outboard tables of the caller's open transaction (one transaction
	/// for a whole listing, not one per object). [`Store::flush`] makes everything received so
	/// far durable.
	pub(crate) fn has_object_in(
		&self,
		blobs: &impl ObjectTable,
		outboards: &impl ObjectTable,
		cid: &Hash32,
		size: u64,
	) -> Result<bool> {
		if is_small(size) {
			Ok(blobs.get(cid)?.is_some_and(|v| v.value().len() as u64 == size))
		} else {
			Ok(self.objects().has_durable_file(outboards, cid)?
				&& self.file_len(cid)? == Some(size))
		}
	}

	/// Length of the complete object file of `cid`, if there is one.
	fn file_len(&self, cid: &Hash32) -> Result<Option<u64>> {
		match fs::metadata(self.objects().object_path(cid)) {
			Ok(m) => Ok(Some(m.len())),
			Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
			Err(e) => Err(e.into()),
		}
	}

	/// Whether the complete object `cid` is present with exactly `size` bytes (committed or in
	/// the pending batch; not a quarantined one). A CID names content, and content has one
	/// size: an object held under a size claim that disagrees is not the object claimed, and
	/// must not stand in for it (it would make this node serve and prove the wrong length).
	pub fn has_object_sized(&self, cid: &Hash32, size: u64) -> Result<bool> {
		let o = self.objects();
		if is_small(size) {
			if let Some(d) = o.pending.lock().blobs.get(cid) {
				return Ok(d.len() as u64 == size);
			}
			let tx = self.inner.db.begin_read()?;
			return Ok(tx
				.open_table(BLOBS)?
				.get(cid)?
				.is_some_and(|v| v.value().len() as u64 == size));
		}
		Ok(self.file_len(cid)? == Some(size))
	}

	/// Whether the complete object is present (committed or in the pending batch; not a
	/// quarantined one).
	pub fn has_object(&self, cid: &Hash32) -> Result<bool> {
		let o = self.objects();
		if o.pending.lock().blobs.contains_key(cid) || o.object_path(cid).exists() {
			return Ok(true);
		}
		let tx = self.inner.db.begin_read()?;
		Ok(tx.open_table(BLOBS)?.get(cid)?.is_some())
	}

	/// What the store has of object `(cid, size)`, resuming a partial download left on disk.
	pub fn object_state(&self, cid: &Hash32, size: u64) -> Result<ObjectState> {
		if is_small(size) {
			return Ok(match self.has_object_sized(cid, size)? {
				true => ObjectState::Complete,
				false => ObjectState::Absent,
			});
		}
		if self.has_object_sized(cid, size)? {
			// A file whose outboard a crash took (see `has_durable_file`) is complete only once
			// the outboard is back: asking for it again is how it comes back.
			return Ok(match self.outboard_stored(cid)? {
				true => ObjectState::Complete,
				false => ObjectState::Absent,
			});
		}
		match self.partial(cid, size)? {
			None => Ok(ObjectState::Absent),
			Some(p) => {
				let s = p.state.lock();
				let missing = s
					.have
					.iter()
					.enumerate()
					.filter(|(_, h)| **h == 0)
					.map(|(i, _)| i as u64)
					.collect();
				Ok(ObjectState::Partial { missing })
			},
		}
	}

	/// The partial object in memory, or reloaded from disk (re-verifying every flagged group).
	fn partial(&self, cid: &Hash32, size: u64) -> Result<Option<Arc<Partial>>> {
		let o = self.objects();
		let known = o.partials.lock().get(cid).cloned();
		match known {
			Some(p) if p.size == size => return Ok(Some(p)),
			// A partial begun for another size claim of the same CID: at most one of the two
			// claims is the content's, and groups verified under one must not complete the
			// other (its last group would be cut or padded). The newer claim starts afresh.
			// (Unless the finisher holds it: that one is complete and verified; the other claim
			// simply gets nothing here.)
			Some(p) if p.state.lock().done => return Ok(None),
			Some(_) => {
				self.discard_partial(cid);
				return Ok(None);
			},
			None => {},
		}
		let Ok(data) = OpenOptions::new().read(true).write(true).open(o.partial_path(cid)) else {
			return Ok(None);
		};
		let groups = groups_of(size);
		let len = data.metadata()?.len();
		// The data file is exactly `size` bytes. An older store kept a bitfield after the data
		// (`size + groups` bytes): it is cut off (bits are not trusted anyway; see below).
		let legacy = size.checked_add(groups) == Some(len);
		if len != size && !legacy {
			// A partial for a different size claim: discard it.
			drop(data);
			self.discard_partial(cid);
			return Ok(None);
		}
		let Some(ob_bytes) = o.outboard_bytes(&self.inner.db, cid)? else {
			// Crashed before the outboard was committed: nothing of this object can be trusted.
			drop(data);
			self.discard_partial(cid);
			return Ok(None);
		};
		// The stored outboard was verified when it arrived; one that no longer verifies rotted
		// here. That is this store's problem, never the problem of whoever sends the next group
		// (`BadData` would read as theirs): the partial is discarded and fetched again.
		let ob = match Outboard::from_bytes(size, &ob_bytes)
			.and_then(|ob| ob.verify(cid).map(|()| ob))
		{
			Ok(ob) => ob,
			Err(reason) => {
				log::warn!(
					target: "sync-store",
					"partial object {}: stored outboard damaged ({reason:?}); fetching it again",
					Cid(*cid)
				);
				drop(data);
				self.discard_partial(cid);
				return Ok(None);
			},
		};
		if legacy {
			data.set_len(size)?;
		}
		// An older store's sidecar: not needed, never trusted.
		let _ = fs::remove_file(o.bits_path(cid));
		let leaves = ob.group_cvs();
		// What is there is what verifies: every group is read back and checked against its leaf
		// (one read of the partial, once per restart). Holes, torn writes and writes a power
		// loss dropped fail and are fetched again.
		// Holes (never written) are skipped without reading: what is checked is bounded by
		// what was written, not by the size the object claims.
		let mut have = vec![0u8; groups as usize];
		let mut buf = vec![0u8; GROUP_LEN as usize];
		let mut next_data = 0;
		for g in 0..groups {
			let Some((s, e)) = group_range(size, g) else { continue };
			if next_data < s {
				next_data = data_at_or_after(&data, s);
			}
			if next_data >= e {
				continue;
			}
			let b = &mut buf[..(e - s) as usize];
			let ok = data.read_exact_at(b, s).is_ok()
				&& verify_group(cid, size, leaves.get(g as usize), g, b).is_ok();
			have[g as usize] = ok as u8;
		}
		let missing = have.iter().filter(|h| **h == 0).count() as u64;
		let p = Arc::new(Partial {
			size,
			leaves,
			data,
			state: Mutex::new(PartialState { have, missing, done: false }),
		});
		let (p, ours) = {
			let mut partials = o.partials.lock();
			let kept = partials.entry(*cid).or_insert_with(|| p.clone()).clone();
			let ours = Arc::ptr_eq(&kept, &p);
			(kept, ours)
		};
		if missing == 0 && ours {
			// Every group was verified before a crash, but the object was never committed.
			o.finish_later(*cid, p.clone())?;
		}
		Ok(Some(p))
	}

	fn discard_partial(&self, cid: &Hash32) {
		let o = self.objects();
		o.partials.lock().remove(cid);
		let _ = fs::remove_file(o.partial_path(cid));
		let _ = fs::remove_file(o.bits_path(cid));
	}

	/// Whether the outboard of `cid` is pending or committed.
	fn outboard_stored(&self, cid: &Hash32) -> Result<bool> {
		if self.objects().pending.lock().outboards.contains_key(cid) {
			return Ok(true);
		}
		outboard_committed(&self.inner.db, cid)
	}

	/// Prepares to receive object `(cid, size)`: checks `outboard` against the CID and creates
	/// the partial data file at the object's size, sparse until the groups arrive. Not needed
	/// (and `outboard` ignored) for small objects.
	pub fn begin_object(&self, cid: &Hash32, size: u64, outboard: &[u8]) -> Result<()> {
		if is_small(size) {
			return Ok(());
		}
		let o = self.objects();
		if self.has_object_sized(cid, size)? {
			// Complete; its outboard may have been lost with a crash between the rename and
			// the outboard's commit: stored again (verified) so the object becomes durable.
			if !self.outboard_stored(cid)? && !o.finishing(cid) {
				let ob = Outboard::from_bytes(size, outboard).map_err(bad_data(cid))?;
				ob.verify(cid).map_err(bad_data(cid))?;
				o.pending.lock().outboards.insert(*cid, outboard.to_vec());
			}
			return Ok(());
		}
		if self.partial(cid, size)?.is_some() {
			return Ok(());
		}
		let ob = Outboard::from_bytes(size, outboard).map_err(bad_data(cid))?;
		ob.verify(cid).map_err(bad_data(cid))?;
		let due = {
			let mut p = o.pending.lock();
			let new = p.outboards.insert(*cid, outboard.to_vec()).is_none();
			new && p.add(outboard.len(), o.hooks.batch_bytes())
		};
		if due {
			o.commit_pending(&self.inner.db)?;
		}
		let groups = groups_of(size);
		let data = OpenOptions::new()
			.read(true)
			.write(true)
			.create(true)
			.truncate(true)
			.open(o.partial_path(cid))?;
		// Exactly the object's size from the start: finishing never changes the file's length.
		data.set_len(size)?;
		let p = Arc::new(Partial {
			size,
			leaves: ob.group_cvs(),
			data,
			state: Mutex::new(PartialState {
				have: vec![0; groups as usize],
				missing: groups,
				done: false,
			}),
		});
		o.partials.lock().entry(*cid).or_insert(p);
		Ok(())
	}

	/// Verifies group `index` of object `(cid, size)` and writes it. Returns `true` when this
	/// write completed the object. Data that does not verify is rejected and nothing is written.
	pub fn write_group(&self, cid: &Hash32, size: u64, index: u64, data: &[u8]) -> Result<bool> {
		if group_range(size, index).is_none() {
			return Err(StoreError::OutOfRange { cid: Cid(*cid), index });
		}
		if is_small(size) {
			verify_group(cid, size, None, 0, data).map_err(bad_data(cid))?;
			// (A duplicate is harmless: the batch overwrites the same bytes under the same CID.)
			let full = {
				let mut p = self.objects().pending.lock();
				let new = p.blobs.insert(*cid, data.to_vec()).is_none();
				new && p.add(data.len(), self.objects().hooks.batch_bytes())
			};
			if full {
				self.objects().commit_pending(&self.inner.db)?;
			}
			return Ok(true);
		}
		let known = self.objects().partials.lock().get(cid).cloned().filter(|p| p.size == size);
		let p = match known {
			Some(p) => p,
			None if self.has_object_sized(cid, size)? => return Ok(false),
			None => self.partial(cid, size)?.ok_or(StoreError::UnknownObject(Cid(*cid)))?,
		};
		verify_group(cid, size, p.leaves.get(index as usize), index, data)
			.map_err(bad_data(cid))?;
		if p.state.lock().have[index as usize] != 0 {
			return Ok(false);
		}
		// (Can land after the object finished: two writers verified the same group, and the
		// other set its bit and completed the object. It writes the bytes already there, bytes
		// that verified against the same leaf, at the same offset; the length never changes.)
		p.data.write_all_at(data, index * GROUP_LEN)?;
		let complete = {
			let mut s = p.state.lock();
			if s.have[index as usize] != 0 {
				return Ok(false);
			}
			s.have[index as usize] = 1;
			s.missing -= 1;
			s.missing == 0
		};
		let o = self.objects();
		if complete {
			o.finish_later(*cid, p)?;
		}
		// A partial resumes after a restart only if its outboard is committed: pending outboards
		// are, once per OUTBOARD_FLUSH_GROUPS verified groups over all objects, so a crash costs
		// at most that much of the objects begun since.
		if o.dirty_groups.fetch_add(1, Ordering::Relaxed) + 1 >= OUTBOARD_FLUSH_GROUPS {
			o.dirty_groups.store(0, Ordering::Relaxed);
			if !o.pending.lock().outboards.is_empty() {
				o.commit_pending(&self.inner.db)?;
			}
		}
		Ok(complete)
	}

	/// Reads `count` groups of object `cid` from `first`, for serving: complete objects in full,
	/// partial objects only where verified.
	pub fn read_groups(&self, cid: &Hash32, first: u64, count: u64) -> Result<Vec<GroupRead>> {
		let src = self.open_groups(cid)?;
		if count == 0 || first.saturating_add(count) > src.groups() {
			return Err(StoreError::OutOfRange { cid: Cid(*cid), index: first });
		}
		let mut out = Vec::with_capacity(count as usize);
		for g in first..first + count {
			let mut buf = Vec::new();
			out.push(if src.read_into(g, &mut buf)? {
				GroupRead::Data(buf)
			} else {
				GroupRead::Missing
			});
		}
		Ok(out)
	}

	/// Opens object `cid` for serving its groups one at a time (a server streams each group as
	/// soon as it is read instead of reading a whole range first).
	pub fn open_groups(&self, cid: &Hash32) -> Result<GroupSource> {
		let o = self.objects();
		let small = o.pending.lock().blobs.get(cid).cloned();
		let small = match small {
			Some(d) => Some(d),
			None => self
				.inner
				.db
				.begin_read()?
				.open_table(BLOBS)?
				.get(cid)?
				.map(|v| v.value().to_vec()),
		};
		if let Some(d) = small {
			return Ok(GroupSource { size: d.len() as u64, kind: SourceKind::Inline(d) });
		}
		if let Ok(f) = File::open(o.object_path(cid)) {
			return Ok(GroupSource { size: f.metadata()?.len(), kind: SourceKind::File(f) });
		}
		let partial = o.partials.lock().get(cid).cloned();
		match partial {
			Some(p) => Ok(GroupSource { size: p.size, kind: SourceKind::Partial(p) }),
			None => Err(StoreError::UnknownObject(Cid(*cid))),
		}
	}

	/// The outboard of a complete or partial large object (empty for small objects).
	pub fn outboard(&self, cid: &Hash32) -> Result<Vec<u8>> {
		if let Some(ob) = self.objects().outboard_bytes(&self.inner.db, cid)? {
			return Ok(ob);
		}
		// An inline object needs none; a file without its outboard (lost with a crash before it
		// was committed) cannot be served verifiably until `begin_object` stores it again.
		let o = self.objects();
		let inline = o.pending.lock().blobs.contains_key(cid)
			|| self.inner.db.begin_read()?.open_table(BLOBS)?.get(cid)?.is_some();
		if inline {
			return Ok(Vec::new());
		}
		Err(StoreError::UnknownObject(Cid(*cid)))
	}

	/// Reads a whole complete object (checked against its CID).
	pub fn read_object(&self, cid: &Hash32) -> Result<Vec<u8>> {
		let o = self.objects();
		let data = match fs::read(o.object_path(cid)) {
			Ok(d) => d,
			Err(e) if e.kind() == ErrorKind::NotFound => match self.read_groups(cid, 0, 1) {
				Ok(mut v) if self.has_object(cid)? => match v.pop() {
					Some(GroupRead::Data(d)) => d,
					_ => return Err(StoreError::UnknownObject(Cid(*cid))),
				},
				_ => return Err(StoreError::UnknownObject(Cid(*cid))),
			},
			Err(e) => return Err(e.into()),
		};
		if cid_of(&data) != *cid {
			return Err(StoreError::Corrupt(format!(
				"object {} does not hash to its CID",
				Cid(*cid)
			)));
		}
		Ok(data)
	}
}

/// An object opened for serving (see [`Store::open_groups`]).
pub struct GroupSource {
	size: u64,
	kind: SourceKind,
}

enum SourceKind {
	Inline(Vec<u8>),
	File(File),
	Partial(Arc<Partial>),
}

impl GroupSource {
	/// Number of groups of the object.
	pub fn groups(&self) -> u64 {
		groups_of(self.size)
	}

	/// Object size in bytes.
	pub fn size(&self) -> u64 {
		self.size
	}

	/// Reads group `g` into `buf` (replacing its contents). `Ok(false)` if the group is not
	/// held (a partial object's unverified group, or out of range).
	pub fn read_into(&self, g: u64, buf: &mut Vec<u8>) -> Result<bool> {
		let Some((s, e)) = group_range(self.size, g) else { return Ok(false) };
		let (s, e) = (s as usize, e as usize);
		match &self.kind {
			SourceKind::Inline(d) => {
				buf.clear();
				buf.extend_from_slice(&d[s..e]);
			},
			SourceKind::File(f) => {
				buf.resize(e - s, 0);
				f.read_exact_at(buf, s as u64)?;
			},
			SourceKind::Partial(p) => {
				if p.state.lock().have[g as usize] == 0 {
					return Ok(false);
				}
				buf.resize(e - s, 0);
				p.data.read_exact_at(buf, s as u64)?;
			},
		}
		Ok(true)
	}
}
