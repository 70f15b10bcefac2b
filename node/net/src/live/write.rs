//! The Primary's write path: ops signed with the node's key for the chain's genesis hash
//! ([`NetConfig::genesis`](crate::NetConfig)), applied in one durable transaction, announced on
//! the segment's topic; and the pin/prune upkeep every holder does.
use super::{deltas::KeypairSigner, gossip::sign_announcement};
use crate::SyncNetwork;
use sync_primitives::SegmentId;
use sync_store::{Head, SegmentWrite, StoreError};

/// The owner's write path: applies `writes` to `segment` as signed ops of `epoch`, announces the
/// newest op on the segment's topic and prunes the log beyond
/// [`NetConfig::log_retention`](crate::NetConfig). Blocking (one durable transaction). The
/// owner pins what it commits on chain (the node's planner pins the head before committing
/// it), not here.
pub(crate) fn write(
	net: &SyncNetwork,
	segment: SegmentId,
	epoch: super::deltas::Epoch,
	writes: Vec<SegmentWrite>,
) -> Result<Head, StoreError> {
	let (key, genesis) = (&net.config().keypair, net.config().genesis);
	let was_held = net.store().head(segment).is_some();
	let signer = KeypairSigner::new(key.clone(), genesis, epoch);
	let (head, ops) = net.store().apply_signed(segment, writes, &signer)?;
	if let Some(last) = ops.last() {
		super::gossip::publish(net, &sign_announcement(last, key, &genesis));
	}
	maintain(net, segment, head, &[])?;
	if !was_held {
		net.provide(segment);
	}
	Ok(head)
}

/// The upkeep every holder does (Primaries and followers alike: both serve): pins the newest
/// committed root it has reached (see [`super::anchor::pin_wanted`]; rebuilt from the op log
/// if the head has passed it) and prunes the log beyond the retention.
pub(crate) fn maintain(
	net: &SyncNetwork,
	segment: SegmentId,
	head: Head,
	anchors: &[Head],
) -> Result<(), StoreError> {
	let cfg = &net.config();
	let store = net.store();
	if let Some(a) = super::anchor::pin_wanted(anchors, &head, &store.pinned(segment)) {
		// Only if the log still reaches it and agrees (a cheap look before rebuilding the
		// index; a disagreement is the follow loop's to repair).
		if store.provable_root(segment, a.seq) == Some(a.facts.root) {
			match store.pin_at(segment, a.seq, &a.facts) {
				Ok(_) | Err(StoreError::Pruned { .. }) | Err(StoreError::RootMismatch { .. }) => {},
				Err(e) => return Err(e),
			}
		}
	}
	// Pruned in steps of 1/16 of the retention, not on every write.
	let slack = (cfg.log_retention / 16).max(1);
	if head.seq > cfg.log_retention
		&& store
			.first_logged(segment)?
			.is_some_and(|f| f + cfg.log_retention + slack <= head.seq)
	{
		store.prune_ops(segment, head.seq - cfg.log_retention + 1)?;
	}
	Ok(())
}
