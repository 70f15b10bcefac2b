//! Prometheus metrics of the data plane, registered in the registry the node passes in
//! (Substrate's, so they appear on its `/metrics` endpoint). Labels are low-cardinality: a
//! side, an outcome, a reason, a direction, or a segment id (a node holds a bounded number).
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use sync_primitives::SegmentId;

/// Stages of a segment sync, as the `sync_net_segment_stage` gauge reports them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
	/// Not syncing.
	Idle = 0,
	/// Asking holders what they serve.
	Head = 1,
	/// Fetching and verifying the index.
	Index = 2,
	/// Fetching outboards and chunk groups.
	Objects = 3,
	/// Recomputing the root and swapping the index in.
	Finish = 4,
}

/// The data plane's metrics.
#[derive(Clone)]
pub struct Metrics {
	/// Verified chunk-group bytes received.
	pub bytes_in: IntCounter,
	/// Bytes of groups and outboards served.
	pub bytes_out: IntCounter,
	/// Requests by side (`client`/`server`) and outcome (`ok`, `missing`, `refused`, `error`).
	pub requests: IntCounterVec,
	/// Peer failures seen by the client, by reason (`transport`, `refused`, `misbehaved`).
	pub failures: IntCounterVec,
	/// Peers banned for the session.
	pub bans: IntCounter,
	/// Open transfer streams by direction (`inbound`, `outbound`).
	pub streams: IntGaugeVec,
	/// Stage of each segment's sync (see [`Stage`]).
	pub stage: IntGaugeVec,
	/// Verified bytes of the segment's sync target held so far.
	pub progress: IntGaugeVec,
	/// Seqs between the newest announced (or polled) head of a followed segment and ours.
	pub lag: IntGaugeVec,
	/// Gossip messages by validation outcome (`accepted`, `replayed`, `forged`, ...).
	pub gossip: IntCounterVec,
	/// Peers in the peer book by state (`usable`, `cooling`, `banned`).
	pub peers: IntGaugeVec,
	/// Requests waiting for a serving slot.
	pub queued: IntGaugeVec,
	/// Ops replayed from peers.
	pub ops_replayed: IntCounter,
	/// Requests being answered.
	pub serving: IntGauge,
	/// Holders' heads that contradicted a root the chain committed (dropped, the holder cooled).
	pub contradicting_heads: IntCounter,
	/// Times the local root at a committed seq was not the chain's (the segment was re-synced).
	pub diverged: IntCounter,
	/// Snapshot sources demoted for a target: they advertised it (complete, or pinned) and
	/// answered `Missing` / `NotHeld` for its data (see `snapshot::DEMOTE_AFTER`). Not a ban.
	pub demoted: IntCounter,
	/// Inbound transfer streams closed by a serving deadline, by reason (`first_request`,
	/// `idle`, `read`, `write`) and requests answered `Busy` after waiting for a slot
	/// (`queue`).
	pub timed_out: IntCounterVec,
	/// Inbound transfer streams refused (`Busy`) at admission, by the limit that refused them
	/// (`total`, `unknown`, `per_peer`).
	pub streams_refused: IntCounterVec,
	/// Inbound connections refused, by limit (`per_ip`, `unknown`, and `limit` for the
	/// `connection_limits` ones: total, per peer, pending).
	pub connections_denied: IntCounterVec,
	/// Objects the background scrub re-verified against their CIDs.
	pub scrubbed_objects: IntCounter,
	/// Bytes the background scrub read and re-verified.
	pub scrubbed_bytes: IntCounter,
	/// Stored objects the scrub found not to match their CID (each quarantined at once).
	pub corrupt_objects: IntCounter,
	/// Objects fetched again from another holder, verified and held again (after the scrub
	/// quarantined them or the check at open found them missing).
	pub repaired_objects: IntCounter,
	/// Objects a held segment references that this store lacks, waiting to be fetched again.
	pub repair_pending: IntGauge,
	/// Scrub steps the store failed (retried; the scrub does not advance past a failing step).
	pub scrub_errors: IntCounter,
}

impl Metrics {
	/// Creates the metrics and registers them in `registry`.
	pub fn register(registry: &Registry) -> prometheus::Result<Metrics> {
		let m = Metrics::unregistered();
		// Exported from the start, so alerts on their rates have a series (see deploy/).
		for reason in
			["first_request", "idle", "read", "queue", "write", "outboard_memory", "head_listing"]
		{
			m.timed_out.with_label_values(&[reason]);
		}
		registry.register(Box::new(m.bytes_in.clone()))?;
		registry.register(Box::new(m.bytes_out.clone()))?;
		registry.register(Box::new(m.requests.clone()))?;
		registry.register(Box::new(m.failures.clone()))?;
		registry.register(Box::new(m.bans.clone()))?;
		registry.register(Box::new(m.streams.clone()))?;
		registry.register(Box::new(m.stage.clone()))?;
		registry.register(Box::new(m.progress.clone()))?;
		registry.register(Box::new(m.lag.clone()))?;
		registry.register(Box::new(m.gossip.clone()))?;
		registry.register(Box::new(m.peers.clone()))?;
		registry.register(Box::new(m.queued.clone()))?;
		registry.register(Box::new(m.ops_replayed.clone()))?;
		registry.register(Box::new(m.serving.clone()))?;
		registry.register(Box::new(m.contradicting_heads.clone()))?;
		registry.register(Box::new(m.diverged.clone()))?;
		registry.register(Box::new(m.demoted.clone()))?;
		registry.register(Box::new(m.timed_out.clone()))?;
		registry.register(Box::new(m.streams_refused.clone()))?;
		registry.register(Box::new(m.connections_denied.clone()))?;
		registry.register(Box::new(m.scrubbed_objects.clone()))?;
		registry.register(Box::new(m.scrubbed_bytes.clone()))?;
		registry.register(Box::new(m.corrupt_objects.clone()))?;
		registry.register(Box::new(m.repaired_objects.clone()))?;
		registry.register(Box::new(m.repair_pending.clone()))?;
		registry.register(Box::new(m.scrub_errors.clone()))?;
		Ok(m)
	}

	/// Metrics that count but are not exported (no registry given).
	pub fn unregistered() -> Metrics {
		let counter = |n: &str, h: &str| IntCounter::new(n, h).expect("valid metric");
		let counter_vec = |n: &str, h: &str, l: &[&str]| {
			IntCounterVec::new(Opts::new(n, h), l).expect("valid metric")
		};
		let gauge_vec = |n: &str, h: &str, l: &[&str]| {
			IntGaugeVec::new(Opts::new(n, h), l).expect("valid metric")
		};
		Metrics {
			bytes_in: counter(
				"sync_net_bytes_received_total",
				"Verified chunk-group bytes received",
			),
			bytes_out: counter(
				"sync_net_bytes_served_total",
				"Chunk-group and outboard bytes served",
			),
			requests: counter_vec(
				"sync_net_requests_total",
				"Transfer requests by side and outcome",
				&["side", "outcome"],
			),
			failures: counter_vec(
				"sync_net_peer_failures_total",
				"Peer failures by reason",
				&["reason"],
			),
			bans: counter("sync_net_bans_total", "Peers banned for the session"),
			streams: gauge_vec(
				"sync_net_streams",
				"Open transfer streams by direction",
				&["direction"],
			),
			stage: gauge_vec(
				"sync_net_segment_stage",
				"Sync stage per segment (0 idle .. 4 finish)",
				&["segment"],
			),
			progress: gauge_vec(
				"sync_net_segment_verified_bytes",
				"Verified bytes of the sync target held",
				&["segment"],
			),
			lag: gauge_vec(
				"sync_net_segment_lag_seqs",
				"Seqs behind the newest known head of a followed segment",
				&["segment"],
			),
			gossip: counter_vec(
				"sync_net_gossip_total",
				"Gossip messages by validation outcome",
				&["outcome"],
			),
			peers: gauge_vec("sync_net_peers", "Peers in the peer book by state", &["state"]),
			queued: gauge_vec(
				"sync_net_requests_queued",
				"Requests waiting to be served, by priority",
				&["priority"],
			),
			ops_replayed: counter(
				"sync_net_ops_replayed_total",
				"Ops fetched from peers and replayed",
			),
			serving: IntGauge::new("sync_net_requests_serving", "Requests being answered")
				.expect("valid metric"),
			contradicting_heads: counter(
				"sync_net_contradicting_heads_total",
				"Holder heads at a committed seq with other facts than the chain's",
			),
			diverged: counter(
				"sync_net_diverged_total",
				"Re-syncs because the local root at a committed seq was not the chain's",
			),
			demoted: counter(
				"sync_net_sources_demoted_total",
				"Snapshot sources demoted for a target they advertised and answered missing for",
			),
			timed_out: counter_vec(
				"sync_net_streams_timed_out_total",
				"Inbound transfer streams closed or requests refused by a serving deadline",
				&["reason"],
			),
			streams_refused: counter_vec(
				"sync_net_streams_refused_total",
				"Inbound transfer streams refused at admission, by limit",
				&["reason"],
			),
			connections_denied: counter_vec(
				"sync_net_connections_denied_total",
				"Inbound connections refused, by limit",
				&["reason"],
			),
			scrubbed_objects: counter(
				"sync_net_scrubbed_objects_total",
				"Stored objects the background scrub re-verified",
			),
			scrubbed_bytes: counter(
				"sync_net_scrubbed_bytes_total",
				"Bytes the background scrub read and re-verified",
			),
			corrupt_objects: counter(
				"sync_net_corrupt_objects_total",
				"Stored objects found not to match their CID, quarantined",
			),
			repaired_objects: counter(
				"sync_net_repaired_objects_total",
				"Missing or quarantined objects fetched again, verified and held again",
			),
			repair_pending: IntGauge::new(
				"sync_net_repair_pending_objects",
				"Objects held segments reference that this store lacks, to be fetched again",
			)
			.expect("valid metric"),
			scrub_errors: counter(
				"sync_net_scrub_errors_total",
				"Scrub steps the store failed (retried)",
			),
		}
	}

	/// Sets a segment's stage.
	pub fn set_stage(&self, segment: SegmentId, stage: Stage) {
		self.stage.with_label_values(&[&segment.to_string()]).set(stage as i64);
	}

	/// Removes the segment's series (stage, verified bytes, lag): the node no longer holds or
	/// follows it, and a dropped segment must not leave a stale value behind for ever.
	pub fn forget_segment(&self, segment: SegmentId) {
		let label = segment.to_string();
		for series in [&self.stage, &self.progress, &self.lag] {
			// Absent already: nothing to remove.
			let _ = series.remove_label_values(&[&label]);
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// The defect: per-segment series stayed exported after the node dropped the segment.
	#[test]
	fn per_segment_series_are_removed_with_the_segment() {
		let registry = Registry::new();
		let m = Metrics::register(&registry).unwrap();
		for seg in [1, 2] {
			m.set_stage(seg, Stage::Index);
			m.progress.with_label_values(&[&seg.to_string()]).set(10);
			m.lag.with_label_values(&[&seg.to_string()]).set(3);
		}
		m.forget_segment(1);
		m.forget_segment(9);
		let labelled: Vec<(String, String)> = registry
			.gather()
			.iter()
			.filter(|f| f.get_name().starts_with("sync_net_segment_"))
			.flat_map(|f| {
				f.get_metric().iter().map(move |x| {
					(f.get_name().to_string(), x.get_label()[0].get_value().to_string())
				})
			})
			.collect();
		assert_eq!(labelled.len(), 3, "{labelled:?}");
		assert!(labelled.iter().all(|(_, seg)| seg == "2"), "{labelled:?}");
	}
}
