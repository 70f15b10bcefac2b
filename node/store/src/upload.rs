//! Objects a writer uploads, streamed to disk as they arrive: the owner's write path for objects
//! of any size without holding one in memory.
//!
//! [`Store::begin_upload`] takes the declared size (refused above
//! [`MAX_OBJECT_BYTES`](sync_proto::MAX_OBJECT_BYTES) before anything is allocated). A large
//! object (more than one 16 KiB group) is appended to a fresh file in `uploads/` while each
//! group's chaining value is computed, so finishing costs one fsync and the outboard's tree
//! above the groups (64 bytes per 16 KiB), never a second pass over the data; a small one is
//! kept in memory (at most 16 KiB). [`Upload::finish`] checks that exactly the declared size
//! arrived and yields a [`StagedObject`]: its CID, size and outboard, ready for
//! [`SegmentWrite::PutStaged`](crate::SegmentWrite::PutStaged), whose transaction renames the
//! file into `objects/` (the object's commit point, as for a downloaded one). Nothing uploaded
//! is visible before that transaction commits; an upload dropped before it (the client left, a
//! refused write) deletes its file, and `uploads/` is emptied at every open, so a crash leaves
//! nothing behind either.
use crate::{
	objects::{drop_cached, is_small},
	Result, Store, StoreError,
};
use std::{
	fs::{self, File, OpenOptions},
	io::Write,
	path::{Path, PathBuf},
	sync::{
		atomic::{AtomicU64, Ordering},
		Arc,
	},
};
use sync_primitives::{
	commitment::{cid_of, Hash32, GROUP_LEN},
	outboard::{group_cv, Outboard},
};
use sync_proto::MAX_OBJECT_BYTES;

/// The store's directory of uploads in progress.
pub(crate) const UPLOADS_DIR: &str = "uploads";

/// Names of upload files, unique within the process (the directory is emptied at open).
static NEXT_UPLOAD: AtomicU64 = AtomicU64::new(0);

/// An object being received (see the module docs). Dropping it deletes what was received.
pub struct Upload {
	size: u64,
	received: u64,
	/// The group being received (the whole object, if it is small).
	group: Vec<u8>,
	/// Chaining values of the groups received whole (large objects only).
	leaves: Vec<Hash32>,
	/// The file a large object is appended to.
	file: Option<(File, Arc<UploadFile>)>,
}

/// A file in `uploads/`, deleted when the last reference goes (after its rename into
/// `objects/`, there is nothing left to delete).
#[derive(Debug)]
pub(crate) struct UploadFile(pub(crate) PathBuf);

impl Drop for UploadFile {
	fn drop(&mut self) {
		match fs::remove_file(&self.0) {
			Ok(()) => {},
			Err(e) if e.kind() == std::io::ErrorKind::NotFound => {},
			Err(e) => log::warn!(target: "sync-store", "removing upload {}: {e}", self.0.display()),
		}
	}
}

/// A complete, hashed upload: what [`SegmentWrite::PutStaged`](crate::SegmentWrite::PutStaged)
/// stores under a key. Cloning shares the same data.
#[derive(Clone, Debug)]
pub struct StagedObject {
	pub(crate) cid: Hash32,
	pub(crate) size: u64,
	pub(crate) outboard: Outboard,
	pub(crate) body: StagedBody,
}

#[derive(Clone, Debug)]
pub(crate) enum StagedBody {
	/// A small object's bytes (stored inline).
	Small(Arc<Vec<u8>>),
	/// A large object's fsynced file in `uploads/`.
	File(Arc<UploadFile>),
}

impl StagedObject {
	/// The object's CID.
	pub fn cid(&self) -> Hash32 {
		self.cid
	}
	/// The object's size in bytes.
	pub fn size(&self) -> u64 {
		self.size
	}
}

impl Store {
	/// Starts receiving an object of `size` bytes (see the module docs).
	/// [`StoreError::ObjectTooLarge`] above [`MAX_OBJECT_BYTES`]; nothing is allocated or
	/// created by the declared size beyond one 16 KiB group.
	pub fn begin_upload(&self, size: u64) -> Result<Upload> {
		if size > MAX_OBJECT_BYTES {
			return Err(StoreError::ObjectTooLarge(size));
		}
		let file = if is_small(size) {
			None
		} else {
			let n = NEXT_UPLOAD.fetch_add(1, Ordering::Relaxed);
			let path = self.dir().join(UPLOADS_DIR).join(format!("{}-{n}", std::process::id()));
			let f = OpenOptions::new().write(true).create_new(true).open(&path)?;
			Some((f, Arc::new(UploadFile(path))))
		};
		Ok(Upload {
			size,
			received: 0,
			group: Vec::with_capacity(size.min(GROUP_LEN) as usize),
			leaves: Vec::new(),
			file,
		})
	}
}

impl Upload {
	/// Bytes received so far.
	pub fn received(&self) -> u64 {
		self.received
	}

	/// Appends the next bytes of the object. [`StoreError::UploadLength`] if they go past the
	/// declared size (nothing of them is kept).
	pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
		let total = self.received.saturating_add(data.len() as u64);
		if total > self.size {
			return Err(StoreError::UploadLength { declared: self.size, received: total });
		}
		if let Some((f, _)) = &mut self.file {
			f.write_all(data)?;
		}
		self.received = total;
		while !data.is_empty() {
			let take = (GROUP_LEN as usize - self.group.len()).min(data.len());
			self.group.extend_from_slice(&data[..take]);
			data = &data[take..];
			if self.file.is_some() && self.group.len() == GROUP_LEN as usize {
				self.leaves.push(group_cv(self.leaves.len() as u64, &self.group));
				self.group.clear();
			}
		}
		Ok(())
	}

	/// Ends the upload: exactly the declared size must have arrived
	/// ([`StoreError::UploadLength`] otherwise); a large object's file is made durable.
	pub fn finish(mut self) -> Result<StagedObject> {
		if self.received != self.size {
			return Err(StoreError::UploadLength { declared: self.size, received: self.received });
		}
		if let Some((f, _)) = &self.file {
			if !self.group.is_empty() {
				self.leaves.push(group_cv(self.leaves.len() as u64, &self.group));
			}
			f.sync_data()?;
			drop_cached(f);
		}
		// Every group was hashed (the size arrived whole), as `from_group_cvs` requires; a small
		// object's CID is that of its bytes.
		let group = &self.group;
		let (cid, outboard) = Outboard::from_group_cvs(self.size, &self.leaves, || cid_of(group));
		let body = match self.file.take() {
			None => StagedBody::Small(Arc::new(std::mem::take(&mut self.group))),
			Some((_, path)) => StagedBody::File(path),
		};
		Ok(StagedObject { cid, size: self.size, outboard, body })
	}
}

/// Creates `uploads/` in the store directory `dir`, emptied of what a previous run left.
pub(crate) fn reset_uploads(dir: &Path) -> Result<()> {
	let uploads = dir.join(UPLOADS_DIR);
	if uploads.exists() {
		fs::remove_dir_all(&uploads)?;
	}
	fs::create_dir_all(&uploads)?;
	Ok(())
}
