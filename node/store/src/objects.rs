//! Objects by CID: small ones inline in the database, large ones as files with outboards, and
//! partial (downloading) large objects written in place with a lazily persisted bitfield.
use crate::{
	hex, Cid, Result, Store, StoreError, BITS_FLUSH_GROUPS, BLOBS, OUTBOARDS, SMALL_BATCH_BYTES,
};
use parking_lot::{Condvar, Mutex};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use std::{
	collections::HashMap,
	fs::{self, File, OpenOptions},
	io::{ErrorKind, Write},
	os::unix::fs::FileExt,
	path::{Path, PathBuf},
	sync::{
		atomic::{AtomicU32, Ordering},
		Arc,
	},
};
use sync_primitives::{
	commitment::{cid_of, Hash32, ProofError, GROUP_LEN},
	outboard::{group_range, groups_of, verify_group, Outboard},
};

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
struct Partial {
	size: u64,
	leaves: Vec<Hash32>,
	data: File,
	state: Mutex<PartialState>,
}

struct PartialState {
	have: Vec<u8>,
	missing: u64,
	/// Bits changed since they were last written.
	dirty: bool,
	done: bool,
}

/// A partial object whose last group is verified, handed to the finisher thread.
type Finished = (Hash32, Arc<Partial>);

pub(crate) struct Objects {
	dir: PathBuf,
	pending: Mutex<Pending>,
	partials: Arc<Mutex<HashMap<Hash32, Arc<Partial>>>>,
	finisher: Mutex<Option<std::sync::mpsc::Sender<Finished>>>,
	finishing: Arc<(Mutex<usize>, Condvar)>,
	/// Verified groups whose bits are not written yet, over all partial objects.
	dirty_groups: AtomicU32,
}

#[derive(Default)]
struct Pending {
	blobs: HashMap<Hash32, Vec<u8>>,
	outboards: HashMap<Hash32, Vec<u8>>,
	bytes: usize,
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
			finishing: Arc::new((Mutex::new(0), Condvar::new())),
			dirty_groups: AtomicU32::new(0),
		}
	}

	/// Hands a fully verified partial object to the finisher thread, which fsyncs it and then
	/// renames it into `objects/` (the commit point), off the transfer's hot path.
	fn finish_later(&self, cid: Hash32, p: Arc<Partial>) -> Result<()> {
		*self.finishing.0.lock() += 1;
		let mut tx = self.finisher.lock();
		if tx.is_none() {
			let (send, recv) = std::sync::mpsc::channel::<(Hash32, Arc<Partial>)>();
			let (partials, finishing, dir) =
				(self.partials.clone(), self.finishing.clone(), self.dir.clone());
			std::thread::Builder::new().name("sync-store-finisher".into()).spawn(move || {
				for (cid, p) in recv {
					if let Err(e) = commit_partial(&dir, &cid, &p) {
						log::error!(target: "sync-store", "finishing object {}: {e}", Cid(cid));
					} else {
						partials.lock().remove(&cid);
					}
					let mut n = finishing.0.lock();
					*n -= 1;
					finishing.1.notify_all();
				}
			})?;
			*tx = Some(send);
		}
		tx.as_ref()
			.expect("set above")
			.send((cid, p))
			.map_err(|_| std::io::Error::other("finisher stopped"))?;
		Ok(())
	}

	/// Waits until every handed-over object is committed.
	fn wait_finished(&self) {
		let mut n = self.finishing.0.lock();
		while *n > 0 {
			self.finishing.1.wait(&mut n);
		}
	}

	fn object_path(&self, cid: &Hash32) -> PathBuf {
		object_path(&self.dir, cid)
	}
	fn partial_path(&self, cid: &Hash32) -> PathBuf {
		partial_path(&self.dir, cid)
	}

	/// Commits pending small objects and outboards, writes dirty bitfields and waits for
	/// finishing objects.
	pub(crate) fn flush(&self, db: &Database) -> Result<()> {
		self.wait_finished();
		self.commit_pending(db)?;
		self.write_all_bits()
	}

	/// Commits the pending batch of small objects and outboards (one durable transaction).
	fn commit_pending(&self, db: &Database) -> Result<()> {
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

	/// Writes the bits of every partial object that changed. Outboards must be committed first:
	/// bits without their outboard are worthless after a crash.
	fn write_all_bits(&self) -> Result<()> {
		let partials: Vec<_> = self.partials.lock().values().cloned().collect();
		for p in partials {
			p.write_bits()?;
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

	/// Writes a complete large object (already hashed by the caller) durably; its outboard goes
	/// into `tx`, the caller's segment transaction.
	pub(crate) fn put_large_in(
		&self,
		tx: &WriteTransaction,
		cid: &Hash32,
		data: &[u8],
		outboard: &Outboard,
	) -> Result<()> {
		let path = self.object_path(cid);
		if !path.exists() {
			write_durable(&path, data)?;
		}
		tx.open_table(OUTBOARDS)?.insert(cid, outboard.to_bytes().as_slice())?;
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

pub(crate) fn object_path(dir: &Path, cid: &Hash32) -> PathBuf {
	let h = hex(cid);
	dir.join("objects").join(&h[..2]).join(h)
}

/// A partial object: its data, followed by one byte per group set once the group verified.
fn partial_path(dir: &Path, cid: &Hash32) -> PathBuf {
	dir.join("partial").join(hex(cid))
}

/// Drops a finished partial object's trailing bits, fsyncs it, then renames it into `objects/`.
fn commit_partial(dir: &Path, cid: &Hash32, p: &Partial) -> Result<()> {
	p.state.lock().done = true;
	p.data.set_len(p.size)?;
	p.data.sync_data()?;
	fs::rename(partial_path(dir, cid), object_path(dir, cid))?;
	Ok(())
}

/// Writes `data` to a temporary file, fsyncs it and renames it into place.
fn write_durable(path: &PathBuf, data: &[u8]) -> Result<()> {
	let tmp = path.with_extension("tmp");
	let mut f = File::create(&tmp)?;
	f.write_all(data)?;
	f.sync_data()?;
	fs::rename(&tmp, path)?;
	Ok(())
}

impl Partial {
	/// Writes the bitfield if any group changed since the last write.
	fn write_bits(&self) -> Result<()> {
		let snapshot = {
			let mut s = self.state.lock();
			if s.done || !s.dirty {
				return Ok(());
			}
			s.dirty = false;
			s.have.clone()
		};
		// Data was pwritten before its bit was set, so the file never claims unwritten groups.
		self.data.write_all_at(&snapshot, self.size)?;
		Ok(())
	}
}

impl Store {
	fn objects(&self) -> &Objects {
		&self.inner.objects
	}

	/// Whether the complete object `(cid, size)` is present, looking only where an object of
	/// that size lives (inline below one group, a file above): no file-system call for small
	/// objects. `blobs` is the inline-object table of the caller's open transaction.
	pub(crate) fn has_object_in(
		&self,
		blobs: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
		cid: &Hash32,
		size: u64,
	) -> Result<bool> {
		let o = self.objects();
		if is_small(size) {
			Ok(o.pending.lock().blobs.contains_key(cid) || blobs.get(cid)?.is_some())
		} else {
			Ok(o.object_path(cid).exists())
		}
	}

	/// Whether the complete object is present.
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
		if self.has_object(cid)? {
			return Ok(ObjectState::Complete);
		}
		if is_small(size) {
			return Ok(ObjectState::Absent);
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
		if let Some(p) = o.partials.lock().get(cid) {
			return Ok(Some(p.clone()));
		}
		let Ok(data) = OpenOptions::new().read(true).write(true).open(o.partial_path(cid)) else {
			return Ok(None);
		};
		let groups = groups_of(size);
		if data.metadata()?.len() != size + groups {
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
		let ob = Outboard::from_bytes(size, &ob_bytes).map_err(bad_data(cid))?;
		if let Err(reason) = ob.verify(cid) {
			self.discard_partial(cid);
			return Err(StoreError::BadData { cid: Cid(*cid), reason });
		}
		let leaves = ob.group_cvs();
		let mut have = vec![0u8; groups as usize];
		data.read_exact_at(&mut have, size)?;
		// The bits are a hint: re-verify every flagged group before trusting it.
		let mut buf = vec![0u8; GROUP_LEN as usize];
		for g in 0..groups {
			if have[g as usize] != 0 {
				let (s, e) = group_range(size, g).expect("g < groups");
				let b = &mut buf[..(e - s) as usize];
				let ok = data.read_exact_at(b, s).is_ok()
					&& verify_group(cid, size, leaves.get(g as usize), g, b).is_ok();
				have[g as usize] = ok as u8;
			}
		}
		let missing = have.iter().filter(|h| **h == 0).count() as u64;
		let p = Arc::new(Partial {
			size,
			leaves,
			data,
			state: Mutex::new(PartialState { have, missing, dirty: true, done: false }),
		});
		p.write_bits()?;
		let p = o.partials.lock().entry(*cid).or_insert(p).clone();
		if missing == 0 {
			// Every group was verified before a crash, but the object was never committed.
			o.finish_later(*cid, p.clone())?;
		}
		Ok(Some(p))
	}

	fn discard_partial(&self, cid: &Hash32) {
		let o = self.objects();
		o.partials.lock().remove(cid);
		let _ = fs::remove_file(o.partial_path(cid));
	}

	/// Prepares to receive object `(cid, size)`: checks `outboard` against the CID and creates
	/// the partial files. Not needed (and `outboard` ignored) for small objects.
	pub fn begin_object(&self, cid: &Hash32, size: u64, outboard: &[u8]) -> Result<()> {
		if is_small(size) || self.has_object(cid)? || self.partial(cid, size)?.is_some() {
			return Ok(());
		}
		let ob = Outboard::from_bytes(size, outboard).map_err(bad_data(cid))?;
		ob.verify(cid).map_err(bad_data(cid))?;
		let o = self.objects();
		o.pending.lock().outboards.insert(*cid, outboard.to_vec());
		let groups = groups_of(size);
		let data = OpenOptions::new()
			.read(true)
			.write(true)
			.create(true)
			.truncate(true)
			.open(o.partial_path(cid))?;
		// Data, then one "verified" byte per group (zero = not yet); see `Partial::write_bits`.
		data.set_len(size + groups)?;
		let p = Arc::new(Partial {
			size,
			leaves: ob.group_cvs(),
			data,
			state: Mutex::new(PartialState {
				have: vec![0; groups as usize],
				missing: groups,
				dirty: false,
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
				if p.blobs.insert(*cid, data.to_vec()).is_none() {
					p.bytes += data.len().max(64);
				}
				p.bytes >= SMALL_BATCH_BYTES
			};
			if full {
				self.objects().commit_pending(&self.inner.db)?;
			}
			return Ok(true);
		}
		let known = self.objects().partials.lock().get(cid).cloned();
		let p = match known {
			Some(p) => p,
			None if self.has_object(cid)? => return Ok(false),
			None => self.partial(cid, size)?.ok_or(StoreError::UnknownObject(Cid(*cid)))?,
		};
		verify_group(cid, size, p.leaves.get(index as usize), index, data)
			.map_err(bad_data(cid))?;
		if p.state.lock().have[index as usize] != 0 {
			return Ok(false);
		}
		p.data.write_all_at(data, index * GROUP_LEN)?;
		let complete = {
			let mut s = p.state.lock();
			if s.have[index as usize] != 0 {
				return Ok(false);
			}
			s.have[index as usize] = 1;
			s.missing -= 1;
			s.dirty = true;
			s.missing == 0
		};
		let o = self.objects();
		if complete {
			o.finish_later(*cid, p)?;
		}
		// Bits are written once per BITS_FLUSH_GROUPS verified groups over all objects, so a
		// crash loses at most that much however many objects are in progress.
		if o.dirty_groups.fetch_add(1, Ordering::Relaxed) + 1 >= BITS_FLUSH_GROUPS {
			o.dirty_groups.store(0, Ordering::Relaxed);
			if !o.pending.lock().outboards.is_empty() {
				o.commit_pending(&self.inner.db)?;
			}
			o.write_all_bits()?;
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
		if self.has_object(cid)? {
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
