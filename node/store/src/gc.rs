//! Dropping a segment the node no longer holds: its rows and the objects nothing else needs.
//!
//! An object is content-addressed and stored once for every segment that references it, so a
//! dropped segment's objects are deleted only if no other segment can still ask for them: none
//! is in another segment's index, staged index (a transfer in progress), undo log (the objects
//! of older roots a pin may be rebuilt at) or pinned snapshot, nor being downloaded. Everything
//! is decided and deleted under the segment lock, which every write, replay and finished
//! transfer takes, so no other segment can come to reference a candidate meanwhile.
//!
//! Crash safety: object files are deleted before the transaction that drops the segment's rows
//! commits. A crash in between leaves the dropped segment's rows naming missing objects — what
//! the open check reports and a repair would fetch, for a segment that is being dropped anyway
//! (the node's service drops it again) — never another segment's object gone. Partial files
//! (downloads) are not deleted here, since a download may be creating one before it lists it;
//! with their outboard gone they are discarded at the next open.
use crate::{
	objects::{is_small, object_path},
	segments::durable,
	EntryRow, Result, Store, BLOBS, HEADS, INDEX, OPS, OUTBOARDS, ROOTS, STAGED, TRANSFERS, UNDO,
};
use redb::ReadableTable;
use std::{collections::HashMap, fs, io::ErrorKind};
use sync_primitives::{commitment::Hash32, SegmentId};

/// What [`Store::drop_segment`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
	/// Objects deleted (not referenced by any other segment).
	pub objects: u64,
	/// Their bytes.
	pub bytes: u64,
	/// Objects the segment referenced that other segments still need (kept).
	pub shared: u64,
}

impl Store {
	/// Segments the store keeps data of: with a head, or with a transfer in progress.
	pub fn stored_segments(&self) -> Result<Vec<SegmentId>> {
		let mut out = self.segments();
		let tx = redb::ReadableDatabase::begin_read(&self.inner.db)?;
		for row in tx.open_table(TRANSFERS)?.iter()? {
			out.push(row?.0.value());
		}
		out.sort();
		out.dedup();
		Ok(out)
	}

	/// Deletes everything the store keeps of `segment` — index, head, roots, op log, transfer,
	/// pins — and its objects no other segment needs (see the module docs). A segment the
	/// store does not hold is a no-op.
	pub fn drop_segment(&self, segment: SegmentId) -> Result<Dropped> {
		// Pending small objects and outboards go to the database first: what is deleted below
		// is not written back by a later batch.
		self.flush()?;
		let mut segs = self.inner.segments.lock();
		let mut candidates: HashMap<Hash32, u64> = HashMap::new();
		let mut add = |(cid, size): EntryRow| {
			candidates.insert(cid, size);
		};
		let tx = durable(&self.inner.db)?;
		let mut dropped = Dropped::default();
		{
			let keys = (segment, &[][..])..(segment + 1, &[][..]);
			let seqs = (segment, 0)..=(segment, u64::MAX);
			let mut index = tx.open_table(INDEX)?;
			let mut staged = tx.open_table(STAGED)?;
			let mut undo = tx.open_table(UNDO)?;
			index.retain_in(keys.clone(), |_, e| {
				add(e);
				false
			})?;
			staged.retain_in(keys, |_, e| {
				add(e);
				false
			})?;
			undo.retain_in(seqs.clone(), |_, e| {
				if let Some(e) = e {
					add(e);
				}
				false
			})?;
			tx.open_table(OPS)?.retain_in(seqs.clone(), |_, _| false)?;
			tx.open_table(ROOTS)?.retain_in(seqs, |_, _| false)?;
			tx.open_table(HEADS)?.remove(segment)?;
			tx.open_table(TRANSFERS)?.remove(segment)?;
			let mut pinned = self.inner.pinned.lock();
			for (_, entries) in pinned.remove(&segment).into_iter().flatten() {
				for e in entries.iter() {
					candidates.insert(e.cid, e.size);
				}
			}
			let referenced = candidates.len() as u64;
			// Keep what the rest of the store still references.
			for row in index.iter()? {
				candidates.remove(&row?.1.value().0);
			}
			for row in staged.iter()? {
				candidates.remove(&row?.1.value().0);
			}
			for row in undo.iter()? {
				if let Some((cid, _)) = row?.1.value() {
					candidates.remove(&cid);
				}
			}
			for (_, entries) in pinned.values().flatten() {
				for e in entries.iter() {
					candidates.remove(&e.cid);
				}
			}
			drop(pinned);
			dropped.shared = referenced - candidates.len() as u64;
			let partials = self.inner.objects.partials.lock();
			let (mut blobs, mut outboards) = (tx.open_table(BLOBS)?, tx.open_table(OUTBOARDS)?);
			for (cid, size) in &candidates {
				// Being downloaded (for another segment's sync, or a repair): not ours to delete.
				if partials.contains_key(cid) {
					dropped.shared += 1;
					continue;
				}
				if is_small(*size) {
					if blobs.remove(cid)?.is_some() {
						dropped.objects += 1;
						dropped.bytes += size;
					}
					continue;
				}
				// A partial file is left alone (a download may be creating it right now, before
				// it is listed in `partials`): without its outboard it is discarded at the next
				// open.
				outboards.remove(cid)?;
				match fs::remove_file(object_path(self.dir(), cid)) {
					Ok(()) => {
						dropped.objects += 1;
						dropped.bytes += size;
					},
					Err(e) if e.kind() == ErrorKind::NotFound => {},
					Err(e) => return Err(e.into()),
				}
			}
		}
		tx.commit()?;
		segs.remove(&segment);
		drop(segs);
		self.inner.head_listings.lock().remove(&segment);
		self.inner.staged.lock().remove(&segment);
		Ok(dropped)
	}
}
