#![doc = include_str!("../README.md")]
//!
//! The node's embedded segment store: objects by CID, the authenticated index of every segment
//! it holds, its roots by sequence number, and the resume state of transfers in progress.
//!
//! # Layout on disk
//! - `db.redb` ([redb]: a pure-Rust, copy-on-write B-tree with ACID transactions and no
//!   background threads): segment indexes, heads, roots by seq, staged indexes of transfers, and
//!   *small* objects (≤ one 16 KiB chunk group) inline, so a segment of many small objects does
//!   not become a directory of tiny files, and the [outboards](sync_primitives::outboard) of
//!   large objects (0.4 % of their size).
//! - `objects/xx/<cid>`: complete large objects as plain files, so serving is one `pread` and
//!   bulk data never goes through the B-tree (the 2×–3× write amplification of a page store is
//!   what large objects would otherwise pay).
//! - `partial/<cid>`: a large object being downloaded: its data, exactly the object's size from
//!   creation on, each group written in place at its offset once it verified. Which groups are
//!   there is kept in memory only; reopening re-verifies the file. Finishing is an fsync and a
//!   rename of the data file into `objects/`; nothing is ever trimmed.
//! - `uploads/`: objects a writer is uploading ([`Store::begin_upload`]), renamed into
//!   `objects/` by the write that stores them; emptied at open.
//! - `quarantine/<cid>`: objects the open check or the scrub found damaged, moved aside (no
//!   longer held; kept for inspection).
//!
//! # Crash safety
//! Nothing is fsynced per chunk, and there is no bitfield on disk. Small objects and outboards
//! are committed to the database in batches of [`SMALL_BATCH_BYTES`], and pending outboards at
//! least every [`OUTBOARD_FLUSH_GROUPS`] verified groups (a partial object whose outboard was not
//! committed yet is discarded on reopen). After `kill -9` the page cache still holds every
//! completed write, so at most the unflushed small batch and the partials begun since the last
//! outboard commit are fetched again. Reopening a partial object re-hashes every group of its
//! file against the outboard and keeps exactly what verifies, so even a torn write after power
//! loss costs a refetch, never a corrupt byte. A background thread finishes objects: it fsyncs
//! the data, renames it into `objects/` (the commit point) and fsyncs the directories (once for
//! many objects); only then is the object durable, and a head that
//! references an object commits only once it is (small objects in the same or an earlier
//! durable transaction, large ones after the directory fsync). At open, every large object a
//! head references is checked for presence and length ([`Store::open_report`]); the scrub
//! ([`Store::scrub_step`]) re-verifies stored bytes and quarantines what rotted, and
//! [`Store::missing_objects`] lists what a segment needs fetched again.
//!
//! # Roots
//! Each segment's index lives in memory as a [`SegmentTrie`] (loaded at open and checked
//! against the stored head), so a write rehashes only its trie path, never the whole segment.
#![warn(missing_docs)]

mod gc;
mod integrity;
mod objects;
pub mod oplog;
mod proofs;
mod segments;
mod upload;
pub mod wire;

use parking_lot::Mutex;
use redb::{Database, TableDefinition};
use std::{
	collections::HashMap,
	path::{Path, PathBuf},
	sync::Arc,
	time::{Duration, Instant},
};
use sync_primitives::{
	commitment::{Hash32, ProofError, RootFacts, SegmentTrie},
	SegmentId,
};

pub use gc::Dropped;
pub use integrity::{OpenReport, ScrubReport, SCRUB_OBJECT_COST};
pub use objects::{GroupRead, GroupSource, ObjectState};
pub use segments::{Head, SegmentWrite, Transfer};
pub use sync_primitives::commitment::Entry;
/// Object file names and printed CIDs are plain lowercase hex.
pub(crate) use sync_primitives::hex::hex_plain as hex;
pub use upload::{StagedObject, Upload};

/// Small objects are committed to the database once this many bytes are pending.
pub const SMALL_BATCH_BYTES: usize = 2 << 20;
/// Snapshots kept servable per segment after the head moves on (see [`Store::pin_snapshot`]).
pub const PINNED_SNAPSHOTS: usize = 4;
/// Pending outboards (what lets a partial object resume after a restart) are committed after at
/// most this many newly verified groups (2 MiB), over all objects in progress.
pub const OUTBOARD_FLUSH_GROUPS: u32 = 128;
/// A peer's `Index` request at a root whose listing is not in memory (a head not listed yet,
/// a staged index not cached) builds it, O(entries); a Primary writing on moves its head with
/// every write, so a peer asking at each new head could keep the store busy building. Builds
/// peers trigger are held to 1/`HEAD_LISTING_SHARE` of one core per class of peer (the ones the
/// chain lists, everyone else: [`Peer`]), so throwaway identities cannot crowd out registered
/// holders: after a build that took `c`, that class's next build waits `(share - 1) × c`, and a
/// build never brings the class's next turn forward. Honest peers ask only at committed roots,
/// which holders pin (never rebuilt), so they rarely meet this; the store's own listings
/// (pinning, finishing a transfer) are never refused nor counted.
pub const HEAD_LISTING_SHARE: u32 = 4;

/// Who asks for a listing over the network: each class has its own build budget
/// ([`HEAD_LISTING_SHARE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
	/// A peer the chain lists as a holder (or a trusted one).
	Known = 0,
	/// Anyone else.
	Unknown = 1,
}

/// When a class of peers may next have a listing built, after a build that ended at `ended`
/// and took `cost`, given its turn so far (`prev`): never earlier than `prev`.
pub(crate) fn next_build(prev: Option<Instant>, ended: Instant, cost: Duration) -> Instant {
	let next = ended.checked_add(cost.saturating_mul(HEAD_LISTING_SHARE - 1)).unwrap_or(ended);
	prev.map_or(next, |p| p.max(next))
}

/// An index key as stored: (segment, object key).
pub(crate) type IndexKey = (u64, &'static [u8]);
/// An index entry as stored: (CID, size).
pub(crate) type EntryRow = ([u8; 32], u64);
/// Root facts as stored: (root, leaves, entries, bytes).
pub(crate) type FactsRow = ([u8; 32], u64, u64, u64);
/// A head as stored: (seq, root, leaves, entries, bytes).
type HeadRow = (u64, [u8; 32], u64, u64, u64);
/// A transfer as stored: (target seq, root, leaves, entries, bytes, index staged).
type TransferRow = (u64, [u8; 32], u64, u64, u64, bool);
/// A segment's index at a root, in memory: its root facts and entries.
pub(crate) type Listing = (RootFacts, Arc<Vec<Entry>>);
/// A pinned snapshot: its head and index.
pub(crate) type Pin = (Head, Arc<Vec<Entry>>);

/// Outboards of large objects (complete or partial): CID → outboard bytes.
const OUTBOARDS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("outboards");
/// Inline small objects: CID → bytes.
const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// Segment index: (segment, key) → (CID, size).
const INDEX: TableDefinition<IndexKey, EntryRow> = TableDefinition::new("index");
/// Segment head: segment → (seq, root, leaves, entries, bytes).
const HEADS: TableDefinition<u64, HeadRow> = TableDefinition::new("heads");
/// Root facts of committed heads: (segment, seq) → (root, leaves, entries, bytes).
const ROOTS: TableDefinition<(u64, u64), FactsRow> = TableDefinition::new("roots");
/// Transfer in progress: segment → (target seq, root, leaves, entries, bytes, index staged).
const TRANSFERS: TableDefinition<u64, TransferRow> = TableDefinition::new("transfers");
/// Op log: (segment, seq) → SCALE-encoded [`sync_proto::SignedOp`].
const OPS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("ops");
/// Undo records of the op log: (segment, seq) → what the op's key mapped to before it, so the
/// index at any logged seq can be rebuilt for a Proof-of-Sync (see [`proofs`]).
const UNDO: TableDefinition<(u64, u64), Option<EntryRow>> = TableDefinition::new("undo");
/// Small named records of the node (e.g. the peer book): name → bytes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Staged (verified) index of a transfer: (segment, key) → (CID, size).
const STAGED: TableDefinition<IndexKey, EntryRow> = TableDefinition::new("staged");

/// Why a store operation failed. Every variant leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
	/// The embedded database failed.
	#[error("database: {0}")]
	Db(#[from] redb::Error),
	/// A file operation failed.
	#[error("io: {0}")]
	Io(#[from] std::io::Error),
	/// No such object (or group) in the store.
	#[error("unknown object {0}")]
	UnknownObject(Cid),
	/// Data or an outboard did not match the CID it claims to belong to.
	#[error("object {cid}: data rejected ({reason:?})")]
	BadData {
		/// The object.
		cid: Cid,
		/// What did not match.
		reason: ProofError,
	},
	/// A group index outside the object.
	#[error("object {cid}: group {index} out of range")]
	OutOfRange {
		/// The object.
		cid: Cid,
		/// The group asked for.
		index: u64,
	},
	/// An index (list of entries) does not hash to the expected root.
	#[error("segment {segment}: index does not match root {expected}")]
	IndexMismatch {
		/// The segment.
		segment: SegmentId,
		/// The root the index should have.
		expected: Cid,
	},
	/// The segment is not held here (or not at the requested root).
	#[error("segment {0} not held at that root")]
	UnknownSegment(SegmentId),
	/// No transfer of this segment is in progress.
	#[error("no transfer in progress for segment {0}")]
	NoTransfer(SegmentId),
	/// The transfer cannot finish yet.
	#[error("segment {segment}: {missing} objects still missing")]
	Incomplete {
		/// The segment.
		segment: SegmentId,
		/// Objects not yet complete.
		missing: u64,
	},
	/// A key longer than the protocol allows.
	#[error("key of {0} bytes exceeds the limit")]
	KeyTooLong(usize),
	/// An object (written, or named by an op) larger than
	/// [`MAX_OBJECT_BYTES`](sync_proto::MAX_OBJECT_BYTES).
	#[error("object of {0} bytes exceeds the limit")]
	ObjectTooLarge(u64),
	/// An upload ([`Store::begin_upload`]) that received more or fewer bytes than it declared.
	#[error("upload of {declared} bytes received {received}")]
	UploadLength {
		/// The declared size.
		declared: u64,
		/// Bytes received (or that would have been, with the refused write).
		received: u64,
	},
	/// An op whose seq does not follow the segment's head (`expected` is head + 1).
	#[error("segment {segment}: op seq {got}, expected {expected}")]
	OutOfOrder {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		got: u64,
		/// The seq that would be accepted.
		expected: u64,
	},
	/// An op not signed by a Primary of the segment, or whose signature does not verify.
	#[error("segment {segment}: op {seq} has a bad signature")]
	BadSignature {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// An op built on another root than the segment's current one, or leading to another root
	/// than it claims.
	#[error("segment {segment}: op {seq} does not match the segment's root")]
	RootMismatch {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// An op whose `prev_op` does not name the op before it: the previous op of its batch, or
	/// the logged op that produced the segment's head (see [`oplog`]).
	#[error("segment {segment}: op {seq} does not follow the op before it")]
	BrokenChain {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// The first op of a batch names another op than the logged one that produced the
	/// segment's head, or starts from another root than the head's: the batch continues
	/// another history than this store's (see [`oplog`]).
	/// Not proof of a lie (an owner can sign two histories; an older epoch's owner may have
	/// written past the next owner's start); the chain's committed roots decide which to keep.
	#[error("segment {segment}: op {seq} continues another history than the logged one")]
	Forked {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// A checkpoint in an ownership epoch the verifier has no record of (this node's view of
	/// the chain may be behind the writer's): neither accepted nor taken as a forgery.
	#[error("segment {segment}: op {seq} is signed in epoch {epoch}, which the chain view does not know yet")]
	UnknownEpoch {
		/// The segment.
		segment: SegmentId,
		/// Seq of the op.
		seq: u64,
		/// The epoch it names.
		epoch: u32,
	},
	/// An op of an older ownership epoch than the op before it: epochs only move forward along
	/// a log, so this is a former owner writing onto its successor's history (or an owner
	/// writing with a stale epoch).
	#[error("segment {segment}: op {seq} is of an older epoch than the op before it")]
	EpochRegressed {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// A checkpoint of an ownership epoch past that epoch's end: the chain records a later
	/// epoch starting at or before its seq (the old owner's epoch was sealed before it). Not
	/// a forgery (the old owner's node may have written it before it learnt of the seal, and
	/// honest holders may have followed it), but not part of the segment either.
	#[error(
		"segment {segment}: op {seq} is signed in epoch {epoch}, which the chain ended before it"
	)]
	PastEpochEnd {
		/// The segment.
		segment: SegmentId,
		/// Seq of the op.
		seq: u64,
		/// The epoch it names.
		epoch: u32,
	},
	/// Local writes to the segment are fenced ([`Store::fence`]): its owner is sealing its
	/// epoch at `seq` for a handover, and takes no more.
	#[error(
		"segment {segment}: writes are fenced at seq {seq} (the segment is being handed over)"
	)]
	Fenced {
		/// The segment.
		segment: SegmentId,
		/// The head the writes stopped at.
		seq: u64,
	},
	/// A seq already applied with a different op (a conflicting replay).
	#[error("segment {segment}: op {seq} conflicts with the applied one")]
	Conflict {
		/// The segment.
		segment: SegmentId,
		/// Seq of the rejected op.
		seq: u64,
	},
	/// A replayed batch that ends on an op without the Primary's checkpoint signature (the ops
	/// after the last checkpoint are not yet authenticated).
	#[error("segment {segment}: ops up to {seq} end without a checkpoint signature")]
	Unsigned {
		/// The segment.
		segment: SegmentId,
		/// Seq of the last op of the batch.
		seq: u64,
	},
	/// Ops before `first` were pruned from the log (catch up through a snapshot instead).
	#[error("segment {segment}: log starts at seq {first}")]
	Pruned {
		/// The segment.
		segment: SegmentId,
		/// First seq still logged.
		first: u64,
	},
	/// The segment's head has not reached `seq` yet.
	#[error("segment {segment}: seq {seq} not reached (head {head})")]
	NotReached {
		/// The segment.
		segment: SegmentId,
		/// The seq asked for.
		seq: u64,
		/// The current head's seq.
		head: u64,
	},
	/// On-disk state contradicts itself (e.g. an index that does not hash to its head).
	#[error("store corrupt: {0}")]
	Corrupt(String),
	/// Listing the segment's index at a new head now would take more than the share of one
	/// core a peer may make the store spend on it ([`HEAD_LISTING_SHARE`]): retry later.
	#[error("segment {0}: head listed too recently, retry later")]
	Throttled(SegmentId),
}

/// redb's per-operation error types all convert into `redb::Error`.
macro_rules! from_redb {
	($($t:ty),*) => {$(
		impl From<$t> for StoreError {
			fn from(e: $t) -> Self {
				StoreError::Db(e.into())
			}
		}
	)*};
}
from_redb!(
	redb::DatabaseError,
	redb::TransactionError,
	redb::TableError,
	redb::StorageError,
	redb::CommitError
);

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A CID (or root) printed as hex in errors and logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cid(pub Hash32);

impl std::fmt::Display for Cid {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str(&hex(&self.0[..8]))
	}
}
impl std::fmt::Debug for Cid {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str(&hex(&self.0))
	}
}

/// Per-segment in-memory state: the live trie and the head it hashes to.
#[derive(Default)]
pub(crate) struct SegmentState {
	pub(crate) trie: SegmentTrie,
	pub(crate) head: Option<Head>,
	/// Local writes are refused ([`Store::fence`]): the owner is handing the segment over.
	pub(crate) fenced: bool,
}

/// The store. Cheap to clone; all clones share one database and one set of files.
#[derive(Clone)]
pub struct Store {
	inner: Arc<Inner>,
}

pub(crate) struct Inner {
	pub(crate) dir: PathBuf,
	pub(crate) db: Database,
	/// The segments' live tries and heads: held by a write for its whole batch, so never
	/// while doing work a peer can ask for over and over (see [`Store::listing`]).
	pub(crate) segments: Mutex<HashMap<SegmentId, SegmentState>>,
	/// The listing of each segment's index at a recent head (with the head's seq), for index
	/// pages: valid while its root is the head's (checked against the head row of the reader's
	/// database snapshot), replaced by a later head's when that is asked for (never by an older).
	pub(crate) head_listings: Mutex<HashMap<SegmentId, (u64, Listing)>>,
	/// Held while a head listing is built (not the segment lock): requests racing for a new
	/// head build it once, and at most one listing is being built at a time.
	pub(crate) head_build: Mutex<()>,
	/// Per [`Peer`] class: when it may next have a listing built (see [`next_build`]).
	pub(crate) peer_builds: Mutex<[Option<Instant>; 2]>,
	pub(crate) staged: Mutex<HashMap<SegmentId, Listing>>,
	/// Pinned snapshots per segment: each head with its index.
	pub(crate) pinned: Mutex<HashMap<SegmentId, std::collections::VecDeque<Pin>>>,
	pub(crate) objects: objects::Objects,
}

impl Store {
	/// Opens (or creates) the store in `dir`, loading and checking every segment's index, and
	/// checking that every large object a head references is present at its size (what was not
	/// is absent now and reported by [`Store::open_report`]).
	pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
		let dir = dir.as_ref().to_path_buf();
		objects::create_dirs(&dir)?;
		let db = Database::create(dir.join("db.redb"))?;
		// Only once the database is ours (redb locks its file): a second open of a directory in
		// use fails above instead of deleting the running store's uploads.
		upload::reset_uploads(&dir)?;
		{
			let tx = db.begin_write()?;
			tx.open_table(BLOBS)?;
			tx.open_table(OUTBOARDS)?;
			tx.open_table(INDEX)?;
			tx.open_table(HEADS)?;
			tx.open_table(ROOTS)?;
			tx.open_table(TRANSFERS)?;
			tx.open_table(STAGED)?;
			tx.open_table(OPS)?;
			tx.open_table(UNDO)?;
			tx.open_table(META)?;
			tx.commit()?;
		}
		let inner = Inner {
			objects: objects::Objects::new(dir.clone()),
			dir,
			db,
			segments: Mutex::new(HashMap::new()),
			head_listings: Mutex::new(HashMap::new()),
			head_build: Mutex::new(()),
			peer_builds: Mutex::new([None; 2]),
			staged: Mutex::new(HashMap::new()),
			pinned: Mutex::new(HashMap::new()),
		};
		let store = Store { inner: Arc::new(inner) };
		store.load_segments()?;
		store.check_objects()?;
		Ok(store)
	}

	/// The directory the store lives in.
	pub fn dir(&self) -> &Path {
		&self.inner.dir
	}

	/// Bytes available to the store and the size of the file system it lives on
	/// (`statvfs`), for the operator's "disk filling" alert.
	pub fn disk_space(&self) -> Result<(u64, u64)> {
		use std::os::unix::ffi::OsStrExt;
		let path = std::ffi::CString::new(self.inner.dir.as_os_str().as_bytes())
			.map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
		let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
		// SAFETY: `path` is a valid C string and `st` is written by the call before it is read.
		if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
			return Err(StoreError::Io(std::io::Error::last_os_error()));
		}
		// SAFETY: `statvfs` returned 0, so it filled `st`.
		let st = unsafe { st.assume_init() };
		// The fields' widths differ between platforms.
		#[allow(clippy::unnecessary_cast)]
		let (frag, avail, blocks) = (st.f_frsize as u64, st.f_bavail as u64, st.f_blocks as u64);
		Ok((avail.saturating_mul(frag), blocks.saturating_mul(frag)))
	}

	/// Stores a small named record durably (state of the node that is not segment data, such
	/// as peer scores).
	pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
		let tx = segments::durable(&self.inner.db)?;
		tx.open_table(META)?.insert(name, value)?;
		tx.commit()?;
		Ok(())
	}

	/// A record stored with [`Store::put_meta`].
	pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
		use redb::ReadableDatabase;
		let tx = self.inner.db.begin_read()?;
		Ok(tx.open_table(META)?.get(name)?.map(|v| v.value().to_vec()))
	}

	/// Makes everything written so far survive a crash: waits until the objects being finished
	/// are durable (fsynced, renamed, directories synced) and commits pending small objects and
	/// outboards. Called at the end of a sync and of a replay batch, and needed before a head may
	/// reference what was received; cheap when nothing is pending.
	pub fn flush(&self) -> Result<()> {
		self.inner.objects.flush(&self.inner.db)
	}
}

impl Drop for Inner {
	fn drop(&mut self) {
		if let Err(e) = self.objects.flush(&self.db) {
			log::warn!(target: "sync-store", "flush on close failed: {e}");
		}
	}
}

#[cfg(test)]
mod tests;
