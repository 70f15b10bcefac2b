//! The Primary's write path: ops signed with the node's key for the chain's genesis hash
//! ([`NetConfig::genesis`](crate::NetConfig)), applied in one durable transaction, announced on
//! the segment's topic; and the pin/prune upkeep every holder does.
use super::{deltas::KeypairSigner, gossip::sign_announcement};
use crate::SyncNetwork;
use sync_primitives::SegmentId;
use sync_store::{Head, SegmentWrite, StoreError};

/// The Primary's write path: applies `writes` to `segment` as signed ops, announces the
/// newest op on the segment's topic, pins a servable snapshot every
/// [`NetConfig::pin_every`](crate::NetConfig) seqs and prunes the log beyond
/// [`NetConfig::log_retention`](crate::NetConfig). Blocking (one durable transaction).
pub(crate) fn write(
	net: &SyncNetwork,
	segment: SegmentId,
	writes: Vec<SegmentWrite>,
) -> Result<Head, StoreError> {
	let (key, genesis) = (&net.config().keypair, net.config().genesis);
	let was_held = net.store().head(segment).is_some();
	let signer = KeypairSigner::new(key.clone(), genesis);
	let (head, ops) = net.store().apply_signed(segment, writes, &signer)?;
	if let Some(last) = ops.last() {
		super::gossip::publish(net, &sign_announcement(last, key, &genesis));
	}
	maintain(net, segment, head)?;
	if !was_held {
		net.provide(segment);
	}
	Ok(head)
}

/// Pins and prunes as the config says (Primaries and followers alike: both serve).
pub(crate) fn maintain(
	net: &SyncNetwork,
	segment: SegmentId,
	head: Head,
) -> Result<(), StoreError> {
	let cfg = &net.config();
	let store = net.store();
	let newest_pin = store.pinned(segment).last().map(|h| h.seq);
	if newest_pin.is_none_or(|p| head.seq >= p + cfg.pin_every) {
		store.pin_snapshot(segment)?;
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
