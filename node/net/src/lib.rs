#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bounded;
pub mod config;
pub mod fixtures;
pub mod live;
pub mod metrics;
pub mod peers;
pub mod snapshot;
pub mod swarm;
pub mod transfer;

/// Deltas moved to [`live::deltas`]; `sync_net::deltas::EpochKeys` resolves here too.
pub use live::deltas;
/// The wire format (messages, framing, signed ops, announcements, signing payloads, limits).
pub use sync_proto as proto;

pub use config::{NetConfig, ServeLimits};
pub use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};
pub use live::{anchor::Anchors, gossip::sign_announcement, Follower};
pub use peers::PeerManagerConfig;
pub use snapshot::{Holder, SyncError, SyncReport};
pub use sync_proto::Announcement;

use live::Live;
use peers::{PeerBook, PeerManager};
use std::{
	collections::HashMap,
	sync::Arc,
	time::{Duration, Instant},
};
use sync_primitives::SegmentId;
use sync_proto::OpVerifier;
use sync_store::{Head, SegmentWrite, Store, StoreError};
use tokio::{
	sync::{mpsc, oneshot, watch},
	task::JoinHandle,
};
use transfer::{
	client::{OutStreams, PeerError, Session, StreamPermit, StreamUse},
	protocol::STREAMS_PER_PEER,
	server::{KnownPeers, Server},
};

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
	/// Building the swarm or listening failed.
	#[error("libp2p setup: {0}")]
	Setup(String),
	/// The network was shut down.
	#[error("network stopped")]
	Stopped,
}

/// The core every component reaches through [`SyncNetwork`]: identity, configuration, store,
/// metrics, the swarm's control handles and the background tasks, plus the components (each
/// owning its state): the peer manager, the transfer server, the live registry and the repair's
/// sources.
struct NetInner {
	peer_id: PeerId,
	metrics: metrics::Metrics,
	config: NetConfig,
	store: Store,
	control: libp2p_stream::Control,
	commands: mpsc::UnboundedSender<swarm::Command>,
	listen: watch::Receiver<Vec<Multiaddr>>,
	tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
	peers: Arc<PeerManager>,
	server: Arc<Server>,
	live: Live,
	/// The streams this node's sessions hold to each peer (never more than it admits).
	out_streams: Arc<OutStreams>,
	repair: live::repair::Repair,
}

/// Name of the peer book's record in the store.
const PEER_BOOK: &str = "sync-net/peer-book";
/// How often the peer book is saved and the peer gauges refreshed.
const BOOK_INTERVAL: Duration = Duration::from_secs(5);

/// A running data-plane node. Cheap to clone.
#[derive(Clone)]
pub struct SyncNetwork {
	inner: Arc<NetInner>,
}

impl SyncNetwork {
	/// Starts the swarm and the server on the current Tokio runtime.
	pub async fn start(config: NetConfig, store: Store) -> Result<SyncNetwork, NetError> {
		let metrics = match &config.registry {
			Some(r) => metrics::Metrics::register(r)
				.map_err(|e| NetError::Setup(format!("metrics: {e}")))?,
			None => metrics::Metrics::unregistered(),
		};
		let known = KnownPeers::new(config.peers.trusted.clone());
		let (swarm, mut control) =
			swarm::build(&config, known.clone(), metrics.clone()).map_err(NetError::Setup)?;
		let peer_id = *swarm.local_peer_id();
		let incoming = control
			.accept(transfer::protocol::PROTOCOL)
			.map_err(|e| NetError::Setup(e.to_string()))?;
		let (tx, rx) = mpsc::unbounded_channel();
		let (gossip_tx, mut gossip_rx) = mpsc::channel(1024);
		let (listen_tx, listen_rx) = watch::channel(Vec::new());
		let saved = store.meta(PEER_BOOK).map_err(|e| NetError::Setup(format!("store: {e}")))?;
		let book = match saved {
			Some(bytes) => PeerBook::load(config.peers.clone(), &bytes, Instant::now()),
			None => PeerBook::new(config.peers.clone()),
		};
		let peers = Arc::new(PeerManager::new(book));
		let server = Server::new(
			store.clone(),
			metrics.clone(),
			peers.clone(),
			config.limits.clone(),
			known,
		);
		let inner = Arc::new(NetInner {
			peer_id,
			metrics,
			config,
			store,
			control,
			commands: tx,
			listen: listen_rx,
			tasks: parking_lot::Mutex::new(Vec::new()),
			peers,
			server: server.clone(),
			live: Live::default(),
			out_streams: Arc::new(OutStreams::default()),
			repair: live::repair::Repair::default(),
		});
		let swarm_task = tokio::spawn(swarm::run(swarm, rx, listen_tx, gossip_tx));
		let server_task = tokio::spawn(transfer::server::accept_loop(server, incoming));
		let net = SyncNetwork { inner };
		let gossip_net = net.clone();
		let gossip_task = tokio::spawn(async move {
			while let Some((source, id, msg)) = gossip_rx.recv().await {
				live::gossip::on_gossip(&gossip_net, source, id, msg);
			}
		});
		let book_net = net.clone();
		let book_task = tokio::spawn(async move {
			loop {
				tokio::time::sleep(BOOK_INTERVAL).await;
				book_net.save_peer_book();
			}
		});
		net.inner.tasks.lock().extend([swarm_task, server_task, gossip_task, book_task]);
		// The background scrub and the repair of what it (or the check at open) found.
		net.inner.tasks.lock().extend(live::repair::start(&net));
		// Announce what this node already holds, so others find it through the DHT.
		for segment in net.store().segments() {
			net.provide(segment);
		}
		Ok(net)
	}

	/// This node's peer id.
	pub fn peer_id(&self) -> PeerId {
		self.inner.peer_id
	}

	/// The store this node serves from and syncs into.
	pub fn store(&self) -> &Store {
		&self.inner.store
	}

	/// Prometheus metrics (also exported if a registry was configured).
	pub fn metrics(&self) -> &metrics::Metrics {
		&self.inner.metrics
	}

	/// Bytes served to each peer so far.
	pub fn served_to(&self) -> HashMap<PeerId, u64> {
		self.inner.server.served_to()
	}

	/// Total bytes served (groups and outboards).
	pub fn served(&self) -> u64 {
		self.inner.metrics.bytes_out.get()
	}

	/// Total verified chunk-group bytes received (counted per group as it is written).
	pub fn received(&self) -> u64 {
		self.inner.metrics.bytes_in.get()
	}

	/// The addresses this node listens on, waiting for the first one.
	pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
		let mut rx = self.inner.listen.clone();
		loop {
			let v = rx.borrow_and_update().clone();
			if !v.is_empty() {
				return v;
			}
			if rx.changed().await.is_err() {
				return Vec::new();
			}
		}
	}

	/// Records addresses of a peer (used when dialling it).
	pub fn add_addresses(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
		self.send(swarm::Command::AddAddresses(peer, addrs));
	}

	/// Connects to a peer.
	pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
		let (tx, rx) = oneshot::channel();
		self.inner
			.commands
			.send(swarm::Command::Dial(peer, addrs, tx))
			.map_err(|_| "network stopped".to_string())?;
		rx.await.map_err(|_| "network stopped".to_string())?
	}

	/// The peer manager's view of the peers this node has used.
	pub fn peer_book(&self) -> peers::PeerBook {
		self.inner.peers.book()
	}

	/// Saves the peer book to the store (also done every few seconds and at shutdown) and
	/// refreshes the peer gauges.
	pub fn save_peer_book(&self) {
		let (bytes, states) = self.inner.peers.save(Instant::now());
		for (state, n) in states {
			self.inner.metrics.peers.with_label_values(&[state]).set(n as i64);
		}
		if let Err(e) = self.store().put_meta(PEER_BOOK, &bytes) {
			log::warn!(target: "sync-net", "saving the peer book: {e}");
		}
	}

	/// A peer sent data that does not verify or broke the protocol: the peer book records it
	/// and, with `ban_on_invalid`, the peer is banned for the session.
	pub(crate) fn penalise_invalid(&self, peer: PeerId) {
		if self.inner.peers.invalid(peer) {
			self.ban(peer);
		}
	}

	/// A request to `peer` failed (timeout, disconnect, refusal): counts towards its cooldown.
	pub(crate) fn peer_failed(&self, peer: PeerId) {
		self.inner.peers.failure(peer, Instant::now());
	}

	/// A request to `peer` succeeded.
	pub(crate) fn peer_succeeded(&self, peer: PeerId) {
		self.inner.peers.success(peer);
	}

	/// Whether the peer manager lets this node ask `peer` now (not banned, not cooling down).
	pub fn peer_usable(&self, peer: &PeerId) -> bool {
		self.inner.peers.usable(peer, Instant::now())
	}

	/// Bans a peer for this session: disconnects it, refuses its connections and streams.
	/// The bans are bounded, in two lists of [`bounded::PEER_MAP_CAP`] each: the known peers'
	/// (the holders [`SyncNetwork::set_known_peers`] and the holder watches list, and the
	/// trusted peers) and everyone else's. Past a list's cap its oldest ban is lifted, here and
	/// in the swarm, so neither grows with throwaway identities, and bans of throwaway
	/// identities never lift a known peer's (see `peers::Bans`).
	pub fn ban(&self, peer: PeerId) {
		let known = self.inner.server.known();
		let banned = self.inner.peers.ban(peer, |p| known.contains(p));
		if let peers::Banned::New { released } = banned {
			log::warn!(target: "sync-net", "banned {peer} for this session");
			self.inner.metrics.bans.inc();
			self.send(swarm::Command::Ban(peer));
			if let Some(old) = released {
				log::debug!(target: "sync-net", "ban of {old} lifted: the oldest of {} in its list", bounded::PEER_MAP_CAP);
				self.send(swarm::Command::Unban(old));
			}
		}
	}

	/// Whether a peer is banned.
	pub fn is_banned(&self, peer: &PeerId) -> bool {
		self.inner.peers.is_banned(peer)
	}

	/// Tells the server which peers the chain lists as holders (Primaries and Replicas) of
	/// `segment` (an empty list forgets the segment). Known peers — the holders of any segment
	/// set here or passed to [`SyncNetwork::follow`] / [`SyncNetwork::sync_segment`], and the
	/// trusted peers — get the larger stream quota, the answer slots first, no unknown-peer rate
	/// and are never refused by the per-IP or unknown-peer connection limits (see
	/// [`ServeLimits`]). The node calls this with every segment's holder list as it reads it
	/// from the chain, including the segments it owns (which it does not follow).
	pub fn set_known_peers(&self, segment: SegmentId, peers: Vec<PeerId>) {
		self.inner.repair.listed(segment, &peers);
		self.inner.server.known().set(segment, peers);
	}

	/// [`SyncNetwork::set_known_peers`] with the holders' addresses: the repair of damaged
	/// objects ([`live::repair`]) fetches from the holders of a segment that references them,
	/// and dials them at these addresses (listed by peer id alone, a holder is reached only if
	/// this node is connected to it or its address is known otherwise). For the segments this
	/// node owns, which it does not follow; followed segments get theirs from
	/// [`SyncNetwork::follow`].
	pub fn set_holders(&self, segment: SegmentId, holders: Vec<Holder>) {
		self.set_known_peers(segment, holders.iter().map(|h| h.peer).collect());
		self.inner.repair.set_holders(segment, holders);
	}

	/// Announces in the DHT that this node holds `segment`.
	pub fn provide(&self, segment: SegmentId) {
		self.send(swarm::Command::Provide(segment));
	}

	/// Peers that announced holding `segment` in the DHT.
	pub async fn find_providers(&self, segment: SegmentId) -> Vec<PeerId> {
		let (tx, rx) = oneshot::channel();
		if self.inner.commands.send(swarm::Command::FindProviders(segment, tx)).is_err() {
			return Vec::new();
		}
		rx.await.unwrap_or_default()
	}

	/// Syncs `segment` to `target` from the holders in `holders` (which may change while the
	/// sync runs: holders that leave are failed over, holders that join are used). Resumes a
	/// transfer left by an earlier run or a crash: verified data is not fetched again. The
	/// holders become known peers of this node's server while `holders` is open (see
	/// [`SyncNetwork::set_known_peers`]). See [`snapshot`].
	pub async fn sync_segment(
		&self,
		segment: SegmentId,
		target: Head,
		holders: watch::Receiver<Vec<Holder>>,
	) -> Result<SyncReport, SyncError> {
		// The holders are the peers that sync this segment too: known to the server, and the
		// sources of repairs.
		self.inner.server.known().feed(segment, holders.clone());
		self.inner.repair.feed(segment, holders.clone());
		snapshot::sync(self, segment, target, holders).await
	}

	/// Keeps `segment` in sync with the holders in `holders` (from the chain; they may change),
	/// snapshotting only to a root in `anchors` (the chain's committed roots of the segment)
	/// and accepting only ops `verifier` attributes to a Primary of the segment. The holders
	/// become known peers of this node's server while `holders` is open (see
	/// [`SyncNetwork::set_known_peers`]). See [`live::follow`] and [`live::anchor`].
	pub fn follow(
		&self,
		segment: SegmentId,
		holders: watch::Receiver<Vec<Holder>>,
		anchors: live::anchor::Anchors,
		verifier: Arc<dyn OpVerifier + Send + Sync>,
	) -> Follower {
		self.inner.server.known().feed(segment, holders.clone());
		self.inner.repair.feed(segment, holders.clone());
		// A followed segment's series exist from the start (idle, nothing of a snapshot yet),
		// so dashboards and alerts see every followed segment, snapshot or not.
		let label = segment.to_string();
		let m = &self.inner.metrics;
		m.set_stage(segment, metrics::Stage::Idle);
		m.progress.with_label_values(&[&label]);
		m.lag.with_label_values(&[&label]);
		live::follow::start(self, segment, holders, anchors, verifier)
	}

	/// Brings `segment` from its head up to seq `target` with ops (and their objects) fetched
	/// from `holder`, replaying them through the store, one durable batch per response. Each
	/// batch ends on the Primary's last checkpoint in it, whose signature covers every op of the
	/// batch through the op chain (see [`sync_store::oplog`]); forged, re-ordered, replayed or
	/// out-of-order ops are refused by the store and nothing of that batch is applied. If
	/// `announced` is given, the op at its seq must be the announced one.
	pub async fn catch_up(
		&self,
		segment: SegmentId,
		target: u64,
		holder: PeerId,
		verifier: &(dyn OpVerifier + Sync),
		announced: Option<&Announcement>,
	) -> Result<Head, deltas::DeltaError> {
		deltas::catch_up(self, segment, target, holder, verifier, announced).await
	}

	/// The owner's write path: applies `writes` to `segment` as ops of ownership epoch `epoch`
	/// (the chain's current epoch of the segment, whose owner this node is), signed at
	/// checkpoints, announces the newest op on the segment's topic and prunes the log beyond
	/// [`NetConfig::log_retention`]. Blocking (one durable transaction). See
	/// [`live::write`](crate::live).
	pub fn write(
		&self,
		segment: SegmentId,
		epoch: deltas::Epoch,
		writes: Vec<SegmentWrite>,
	) -> Result<Head, StoreError> {
		live::write::write(self, segment, epoch, writes)
	}

	/// Publishes an announcement on its segment's topic (the Primary's write path calls this;
	/// no subscribed peer yet is not an error: followers poll heads too).
	pub fn announce(&self, announcement: &Announcement) {
		live::gossip::publish(self, announcement)
	}

	/// Stops the swarm and the server (after saving the peer book); connections close,
	/// in-flight transfers fail over.
	pub fn shutdown(&self) {
		self.save_peer_book();
		for t in self.inner.tasks.lock().drain(..) {
			t.abort();
		}
	}
}

/// What the components use of the core.
impl SyncNetwork {
	pub(crate) fn config(&self) -> &NetConfig {
		&self.inner.config
	}

	pub(crate) fn peers(&self) -> &PeerManager {
		&self.inner.peers
	}

	pub(crate) fn live(&self) -> &Live {
		&self.inner.live
	}

	pub(crate) fn repair(&self) -> &live::repair::Repair {
		&self.inner.repair
	}

	pub(crate) fn control(&self) -> libp2p_stream::Control {
		self.inner.control.clone()
	}

	/// Sends a command to the swarm task (dropped if the network stopped).
	pub(crate) fn send(&self, command: swarm::Command) {
		let _ = self.inner.commands.send(command);
	}

	/// Dials a holder with its addresses (within the connect timeout).
	pub(crate) async fn reach(&self, h: &Holder) -> Result<(), PeerError> {
		match tokio::time::timeout(
			self.config().connect_timeout,
			self.dial(h.peer, h.addrs.clone()),
		)
		.await
		{
			Ok(Ok(())) => Ok(()),
			Ok(Err(e)) => Err(PeerError::Transport(e)),
			Err(_) => Err(PeerError::Transport("dial timed out".into())),
		}
	}

	/// Waits at most `within` for one of the [`STREAMS_PER_PEER`] streams this node may hold to
	/// `peer` (`None`: all still in use by its other sessions).
	pub(crate) async fn stream_permit(
		&self,
		peer: PeerId,
		kind: StreamUse,
		within: Duration,
	) -> Option<StreamPermit> {
		self.inner.out_streams.acquire(peer, kind, within).await
	}

	/// A stream of `peer`'s budget within the connect timeout, or a local error (this node's
	/// own sessions use them all: nothing the peer did).
	async fn permit_or_local(
		&self,
		peer: PeerId,
		kind: StreamUse,
	) -> Result<StreamPermit, PeerError> {
		self.stream_permit(peer, kind, self.config().connect_timeout)
			.await
			.ok_or_else(|| {
				PeerError::Local(format!("all {STREAMS_PER_PEER} streams to {peer} in use"))
			})
	}

	/// Dials a holder and opens a request stream to it on a stream of its budget.
	pub(crate) async fn connect_with(
		&self,
		h: &Holder,
		permit: StreamPermit,
	) -> Result<Session, PeerError> {
		self.reach(h).await?;
		Session::open_with(self, h.peer, permit).await
	}

	/// Dials a holder and opens a request stream to it within its stream budget.
	pub(crate) async fn connect(&self, h: &Holder, kind: StreamUse) -> Result<Session, PeerError> {
		let permit = self.permit_or_local(h.peer, kind).await?;
		self.connect_with(h, permit).await
	}

	/// Opens a request stream to `peer` (dialling it with the addresses the swarm knows), within
	/// its stream budget.
	pub(crate) async fn session(
		&self,
		peer: PeerId,
		kind: StreamUse,
	) -> Result<Session, PeerError> {
		let permit = self.permit_or_local(peer, kind).await?;
		Session::open_with(self, peer, permit).await
	}
}
