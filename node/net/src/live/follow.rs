//! Keeping a segment in sync while it changes, and the Primary's write path.
//!
//! A [`Follower`] (a Replica, or a co-Primary mirroring the owner) subscribes to the segment's
//! gossip topic, then loops:
//! 1. It learns how far the log goes from validated [`Announcement`]s and, every
//!    [`NetConfig::head_poll`](crate::NetConfig), from its holders' heads (announcements missed
//!    while disconnected are noticed that way).
//! 2. A node without the segment starts from the newest root the chain committed
//!    ([`super::anchor`]) that a holder serves ([`SyncNetwork::sync_segment`]); a holder's own
//!    head or pin is never a snapshot target, and one that advertises other facts at a
//!    committed seq is penalised. Announcements arriving meanwhile are only remembered (the
//!    highest seq), so none is lost and none applied twice: the ops after the snapshot's seq
//!    are fetched by range afterwards. With no commit yet, the node replays the log from the
//!    empty root (every op is authenticated by the Primary's checkpoints).
//! 3. A node behind fetches the gap by range ([`SyncNetwork::catch_up`]) from a holder that is
//!    ahead — a Replica first, the Primary last — and replays it exactly once. A holder sending
//!    ops that fail verification is penalised (banned with `ban_on_invalid`); one that fails or
//!    whose op differs from the announced one counts a failure, and the next holder is asked.
//! 4. A node further behind than the holders' retained logs ([`sync_store::StoreError::Pruned`])
//!    catches up through a newer snapshot, then continues with deltas.
//! 5. Every holder pins the newest committed root it has reached (rebuilt from its op log if
//!    it has passed it), so Replicas serve committed snapshots to each other. If the local
//!    root at a committed seq is not the chain's, the node re-syncs to a committed root
//!    instead of serving another history.
//!
//! A snapshot target that no holder serves any more (its pin rotated out while the transfer
//! ran) is abandoned for a newer one; objects already fetched stay in the store.
use super::{
	anchor::{self, Anchors},
	deltas::DeltaError,
	gossip::topic,
	Verifier,
};
use crate::{
	snapshot::Holder,
	swarm::Command,
	transfer::client::{PeerError, PeerHead, StreamUse},
	SyncNetwork,
};
use libp2p::PeerId;
use std::{
	sync::{
		atomic::{AtomicU64, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};
use sync_primitives::SegmentId;
use sync_proto::Announcement;
use sync_store::Head;
use tokio::{sync::watch, task::JoinHandle};

/// Counters of one follower.
#[derive(Default, Debug)]
pub struct FollowStats {
	/// Snapshot syncs completed.
	pub snapshots: AtomicU64,
	/// Range fetches that advanced the head.
	pub catch_ups: AtomicU64,
	/// Ops replayed (counted before the head watch moves).
	pub ops: AtomicU64,
	/// Range fetches that failed and were retried elsewhere.
	pub retries: AtomicU64,
}

/// A segment kept in sync in the background; stops when dropped.
pub struct Follower {
	net: SyncNetwork,
	segment: SegmentId,
	head: watch::Receiver<Option<Head>>,
	stats: Arc<FollowStats>,
	task: JoinHandle<()>,
}

impl Follower {
	/// The head, updated as it moves.
	pub fn head(&self) -> watch::Receiver<Option<Head>> {
		self.head.clone()
	}

	/// The follower's counters.
	pub fn stats(&self) -> &FollowStats {
		&self.stats
	}

	/// Waits until the head reaches seq `seq` (or later).
	pub async fn reached(&self, seq: u64) -> Head {
		let mut rx = self.head.clone();
		loop {
			if let Some(h) = *rx.borrow_and_update() {
				if h.seq >= seq {
					return h;
				}
			}
			if rx.changed().await.is_err() {
				std::future::pending::<()>().await;
			}
		}
	}
}

impl Drop for Follower {
	fn drop(&mut self) {
		self.task.abort();
		self.net.live().unregister(self.segment);
		self.net.send(Command::Unsubscribe(topic(self.segment)));
	}
}

/// What a round of head polling found.
#[derive(Default)]
struct Polled(Vec<(Holder, PeerHead)>);

impl Polled {
	fn seq_of(&self, peer: &PeerId) -> Option<u64> {
		self.0
			.iter()
			.find(|(h, _)| h.peer == *peer)
			.and_then(|(_, p)| p.complete.map(|c| c.seq))
	}

	fn newest(&self) -> u64 {
		self.0.iter().filter_map(|(_, p)| p.complete.map(|c| c.seq)).max().unwrap_or(0)
	}

	/// The snapshot target: the newest committed root a holder serves.
	fn target(&self, anchors: &[Head]) -> Option<Head> {
		anchor::snapshot_target(anchors, self.0.iter().map(|(_, p)| p))
	}

	fn serves(&self, target: &Head) -> bool {
		self.0.iter().any(|(_, p)| anchor::serves(p, target))
	}
}

/// Starts following `segment` (see [`SyncNetwork::follow`]).
pub(crate) fn start(
	net: &SyncNetwork,
	segment: SegmentId,
	holders: watch::Receiver<Vec<Holder>>,
	anchors: Anchors,
	verifier: Verifier,
) -> Follower {
	let (announced_tx, announced) = watch::channel(None);
	let (head_tx, head) = watch::channel(net.store().head(segment));
	let stats = Arc::new(FollowStats::default());
	net.live()
		.register(segment, verifier.clone(), announced_tx, head_tx.clone(), stats.clone());
	net.send(Command::Subscribe(topic(segment)));
	let run = Run {
		net: net.clone(),
		segment,
		holders,
		anchors,
		verifier,
		announced,
		head_tx,
		stats: stats.clone(),
	};
	let task = tokio::spawn(run.run());
	Follower { net: net.clone(), segment, head, stats, task }
}

/// Asks each holder (dialling it if needed) what it serves of `segment`, all at once, each
/// within [`NetConfig::head_timeout`](crate::NetConfig) as a whole (dial, stream, answer): one
/// that misses it, or fails, counts a failure of its own and is left out of this poll, and
/// nobody waits on it longer. A holder that advertises a state at a committed seq with other
/// facts than the chain's cannot back it: it counts a failure (it cools down) and its answer is
/// dropped.
async fn poll_heads(
	net: &SyncNetwork,
	segment: SegmentId,
	holders: &[Holder],
	anchors: &[Head],
) -> Polled {
	let me = net.peer_id();
	let peers: Vec<PeerId> = holders.iter().map(|h| h.peer).filter(|p| *p != me).collect();
	let chosen = net.peers().select(&peers, Instant::now());
	// Each poll has its own deadline; a failure is that peer's only.
	let deadline = net.config().head_timeout;
	let within = net.config().connect_timeout;
	let asks = holders.iter().filter(|h| chosen.contains(&h.peer)).map(|h| async move {
		// This node's own streams to the peer all in use (other segments' sessions): nothing the
		// peer did, so not under its deadline and no failure of its.
		let permit = net.stream_permit(h.peer, StreamUse::Short, within).await?;
		let ask = async {
			let mut s = net.connect_with(h, permit).await?;
			s.head(segment).await
		};
		let asked = match tokio::time::timeout(deadline, ask).await {
			Ok(asked) => asked,
			Err(_) => Err(PeerError::Transport(format!("no head within {deadline:?}"))),
		};
		match asked {
			Ok(p) => Some((h.clone(), p)),
			Err(e) => {
				if e.blames_peer() {
					net.peer_failed(h.peer);
				}
				None
			},
		}
	});
	let mut polled: Vec<(Holder, PeerHead)> =
		futures::future::join_all(asks).await.into_iter().flatten().collect();
	polled.retain(|(h, p)| {
		let lies = anchor::contradicts(anchors, p);
		if lies {
			log::warn!(target: "sync-net", "segment {segment}: {} advertises a state the chain did not commit", h.peer);
			net.metrics().contradicting_heads.inc();
			net.peer_failed(h.peer);
		}
		!lies
	});
	Polled(polled)
}

/// The follow loop's state.
struct Run {
	net: SyncNetwork,
	segment: SegmentId,
	holders: watch::Receiver<Vec<Holder>>,
	anchors: Anchors,
	verifier: Verifier,
	announced: watch::Receiver<Option<Announcement>>,
	head_tx: watch::Sender<Option<Head>>,
	stats: Arc<FollowStats>,
}

/// Resolves when the value changes; never if the sender is gone (nothing will change).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
	if rx.changed().await.is_err() {
		std::future::pending::<()>().await;
	}
}

/// How long the loop rests after a round in which no holder could help.
const RETRY: Duration = Duration::from_millis(500);

impl Run {
	async fn run(mut self) {
		let mut polled = Polled::default();
		let mut last_poll: Option<Instant> = None;
		// The anchors and head last found to agree with each other.
		let mut agreed: Option<(Vec<Head>, Option<Head>)> = None;
		let label = self.segment.to_string();
		loop {
			let poll = self.net.config().head_poll;
			let anchors = self.anchors.borrow().clone();
			if last_poll.is_none_or(|t| t.elapsed() >= poll) {
				let holders = self.holders.borrow().clone();
				polled = poll_heads(&self.net, self.segment, &holders, &anchors).await;
				last_poll = Some(Instant::now());
			}
			// Checked again only when the anchors or the head moved (each check reads the log
			// once per anchor; pruning only forgets roots, it cannot make them disagree).
			let checked = (anchors.clone(), self.net.store().head(self.segment));
			let diverged = if agreed.as_ref() == Some(&checked) {
				None
			} else {
				let (store, segment) = (self.net.store(), self.segment);
				let d = anchor::diverged(&anchors, |s| store.provable_root(segment, s));
				if d.is_none() {
					agreed = Some(checked);
				}
				d
			};
			if let Some(seq) = diverged {
				// Another history than the chain's (a fork the Primary signed, or local damage):
				// never served on, replaced by a committed snapshot.
				log::warn!(target: "sync-net", "segment {}: the local root at committed seq {seq} is not the chain's; re-syncing", self.segment);
				self.net.metrics().diverged.inc();
				if !self.snapshot(&mut polled, &anchors).await {
					self.wait(RETRY).await;
					last_poll = None;
				}
				continue;
			}
			let head = self.net.store().head(self.segment);
			self.head_tx.send_if_modified(|h| std::mem::replace(h, head) != head);
			let ann = self.announced.borrow().clone();
			let have = head.map_or(0, |h| h.seq);
			let goal = ann.as_ref().map_or(0, |a| a.seq).max(polled.newest());
			self.net
				.metrics()
				.lag
				.with_label_values(&[&label])
				.set(goal.saturating_sub(have) as i64);
			if goal <= have && head.is_some() {
				self.upkeep(&anchors);
				self.wait(poll.saturating_sub(last_poll.map_or(Duration::ZERO, |t| t.elapsed())))
					.await;
				continue;
			}
			if goal == 0 && head.is_none() {
				// Nobody serves the segment yet.
				self.wait(RETRY).await;
				last_poll = None;
				continue;
			}
			let target = polled.target(&anchors);
			let progressed = if head.is_none() && target.is_some_and(|s| s.seq > 0) {
				self.snapshot(&mut polled, &anchors).await
			} else {
				match self.deltas(have, goal, &polled, ann.as_ref()).await {
					Ok(()) => true,
					// The holders pruned the gap, or serve another history than this node's from
					// its head on (it followed a former owner past its successor's start, say):
					// the newest committed root a holder serves replaces it.
					Err(e) if e.needs_snapshot() => match target {
						Some(s) if s.seq > have => self.snapshot(&mut polled, &anchors).await,
						_ => false,
					},
					Err(e) => {
						log::debug!(target: "sync-net", "segment {}: catch-up: {e}", self.segment);
						false
					},
				}
			};
			self.upkeep(&anchors);
			if !progressed {
				self.wait(RETRY).await;
				last_poll = None;
			}
		}
	}

	/// Pins the newest committed root reached, prunes the log (see [`super::write::maintain`]).
	fn upkeep(&self, anchors: &[Head]) {
		if let Some(h) = self.net.store().head(self.segment) {
			if let Err(e) = super::write::maintain(&self.net, self.segment, h, anchors) {
				log::warn!(target: "sync-net", "segment {}: {e}", self.segment);
			}
		}
	}

	async fn wait(&mut self, d: Duration) {
		tokio::select! {
			_ = self.announced.changed() => {},
			_ = changed(&mut self.holders) => {},
			_ = changed(&mut self.anchors) => {},
			_ = tokio::time::sleep(d) => {},
		}
	}

	/// Fetches ops `(have, goal]` from the holders, most suitable first.
	async fn deltas(
		&self,
		have: u64,
		goal: u64,
		polled: &Polled,
		ann: Option<&Announcement>,
	) -> Result<(), DeltaError> {
		let me = self.net.peer_id();
		let holders: Vec<Holder> =
			self.holders.borrow().iter().filter(|h| h.peer != me).cloned().collect();
		let peers: Vec<PeerId> = holders.iter().map(|h| h.peer).collect();
		let order = self.net.peers().select(&peers, Instant::now());
		let mut candidates: Vec<&Holder> = order
			.iter()
			.filter_map(|p| holders.iter().find(|h| h.peer == *p))
			.filter(|h| !self.net.is_banned(&h.peer))
			.collect();
		// Holders known to be ahead first; Replicas before Primaries (Primary egress).
		candidates.sort_by_key(|h| (polled.seq_of(&h.peer).is_none_or(|s| s <= have), h.primary));
		let mut last = DeltaError::Short(have);
		for h in candidates {
			if let Err(e) = self.net.reach(h).await {
				self.net.peer_failed(h.peer);
				last = e.into();
				continue;
			}
			let ann = ann.filter(|a| a.seq <= goal);
			match super::deltas::catch_up(
				&self.net,
				self.segment,
				goal,
				h.peer,
				&*self.verifier,
				ann,
			)
			.await
			{
				Ok(_) => {
					self.stats.catch_ups.fetch_add(1, Ordering::Relaxed);
					return Ok(());
				},
				Err(e) => {
					self.stats.retries.fetch_add(1, Ordering::Relaxed);
					if e.is_invalid() {
						log::warn!(target: "sync-net", "segment {}: {} sent invalid ops: {e}", self.segment, h.peer);
						self.net.penalise_invalid(h.peer);
					} else if match &e {
						DeltaError::Peer(p) => p.blames_peer(),
						// The holder's ops are the owner's, verified; the announcement may be
						// the lie (an equivocation, a former owner's): it is dropped, nobody
						// blamed, and the holder's ops are taken without it next round.
						DeltaError::NotAnnounced(_) => {
							if let Some(a) = ann {
								self.net.live().forget_announcement(a);
							}
							false
						},
						DeltaError::Short(_) | DeltaError::Pruned(_) | DeltaError::Store(_) => {
							false
						},
					} {
						self.net.peer_failed(h.peer);
					}
					// Some progress is progress: the next round goes on from the new head.
					if self.net.store().head(self.segment).is_some_and(|x| x.seq > have) {
						return Ok(());
					}
					if matches!(last, DeltaError::Short(_)) || e.needs_snapshot() {
						last = e;
					}
				},
			}
		}
		Err(last)
	}

	/// Syncs to the newest committed root a holder serves; abandons a target no holder serves
	/// any more.
	async fn snapshot(&mut self, polled: &mut Polled, anchors: &[Head]) -> bool {
		let Some(target) = polled.target(anchors) else { return false };
		log::info!(target: "sync-net", "segment {}: snapshot sync to seq {}", self.segment, target.seq);
		let sync = self.net.sync_segment(self.segment, target, self.holders.clone());
		tokio::pin!(sync);
		loop {
			tokio::select! {
				r = &mut sync => return match r {
					Ok(_) => {
						self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
						true
					},
					Err(e) => {
						log::warn!(target: "sync-net", "segment {}: snapshot: {e}", self.segment);
						false
					},
				},
				_ = tokio::time::sleep(self.net.config().head_poll) => {
					let holders = self.holders.borrow().clone();
					*polled = poll_heads(&self.net, self.segment, &holders, anchors).await;
					if !polled.serves(&target) {
						log::info!(target: "sync-net", "segment {}: snapshot {} no longer served; moving on", self.segment, target.seq);
						return false;
					}
				},
			}
		}
	}
}
