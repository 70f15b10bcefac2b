//! The Sync Registry data plane on rust-libp2p: discovery of segment holders, a versioned
//! streaming transfer protocol, and verified, resumable, multi-source snapshot sync into a
//! [`sync_store::Store`].
//!
//! It depends on neither the Substrate client nor the runtime: the node tells it which segments
//! to sync, to which root, and who holds them (from the chain), through plain values
//! ([`Holder`], [`sync_store::Head`]).
//!
//! - [`swarm`]: TCP + Noise + Yamux (windows sized for bulk data), identify, Kademlia provider
//!   records, ping, and a block list for banned peers.
//! - [`protocol`]: the wire format of `/sync-registry/transfer/1`.
//! - [`server`](crate::server): serving with bounded streams and rate limits.
//! - [`client`]: one request-at-a-time session per peer.
//! - [`snapshot`]: the multi-source download engine.
//! - [`deltas`]: signed ops, range fetch and exactly-once replay.
//! - [`gossip`]: signed announcements per segment, validated before they spread.
//! - [`follow`]: keeping a segment in sync live (snapshot, then deltas), and the Primary's
//!   write path.
//! - [`peers`]: the peer manager (selection, cooldowns, trusted/reserved peers, persistence).
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod deltas;
pub mod fixtures;
pub mod follow;
pub mod gossip;
pub mod metrics;
pub mod peers;
pub mod protocol;
mod server;
pub mod snapshot;
pub mod swarm;

pub use config::{NetConfig, ServeLimits};
pub use follow::Follower;
pub use gossip::Announcement;
pub use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};
pub use peers::PeerManagerConfig;
pub use snapshot::{Holder, SyncError, SyncReport};

use parking_lot::Mutex;
use std::{
	collections::{HashMap, HashSet},
	sync::Arc,
	time::{Duration, Instant},
};
use sync_primitives::SegmentId;
use sync_store::Store;
use tokio::{
	sync::{mpsc, oneshot, watch, Semaphore},
	task::JoinHandle,
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

pub(crate) struct NetInner {
	pub(crate) peer_id: PeerId,
	pub(crate) metrics: metrics::Metrics,
	pub(crate) config: NetConfig,
	pub(crate) store: Store,
	pub(crate) control: libp2p_stream::Control,
	pub(crate) commands: mpsc::UnboundedSender<swarm::Command>,
	pub(crate) listen: watch::Receiver<Vec<Multiaddr>>,
	pub(crate) bans: Mutex<HashSet<PeerId>>,
	pub(crate) served_to: server::ServedTo,
	pub(crate) serving: Mutex<HashMap<PeerId, usize>>,
	pub(crate) stream_permits: Arc<Semaphore>,
	pub(crate) peer_buckets: Mutex<HashMap<PeerId, Arc<Mutex<server::Bucket>>>>,
	pub(crate) total_bucket: Option<Mutex<server::Bucket>>,
	pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
	pub(crate) book: Mutex<peers::PeerBook>,
	pub(crate) follows: Mutex<HashMap<SegmentId, follow::Registration>>,
	pub(crate) gate: Arc<server::Gate>,
}

/// Name of the peer book's record in the store.
const PEER_BOOK: &str = "sync-net/peer-book";
/// How often the peer book is saved and the peer gauges refreshed.
const BOOK_INTERVAL: Duration = Duration::from_secs(5);

/// A running data-plane node. Cheap to clone.
#[derive(Clone)]
pub struct SyncNetwork {
	pub(crate) inner: Arc<NetInner>,
}

impl SyncNetwork {
	/// Starts the swarm and the server on the current Tokio runtime.
	pub async fn start(config: NetConfig, store: Store) -> Result<SyncNetwork, NetError> {
		let (swarm, mut control) = swarm::build(&config).map_err(NetError::Setup)?;
		let peer_id = *swarm.local_peer_id();
		let incoming =
			control.accept(protocol::PROTOCOL).map_err(|e| NetError::Setup(e.to_string()))?;
		let metrics = match &config.registry {
			Some(r) => metrics::Metrics::register(r)
				.map_err(|e| NetError::Setup(format!("metrics: {e}")))?,
			None => metrics::Metrics::unregistered(),
		};
		let (tx, rx) = mpsc::unbounded_channel();
		let (gossip_tx, mut gossip_rx) = mpsc::channel(1024);
		let (listen_tx, listen_rx) = watch::channel(Vec::new());
		let saved = store.meta(PEER_BOOK).map_err(|e| NetError::Setup(format!("store: {e}")))?;
		let book = match saved {
			Some(bytes) => peers::PeerBook::load(config.peers.clone(), &bytes, Instant::now()),
			None => peers::PeerBook::new(config.peers.clone()),
		};
		let gate = Arc::new(server::Gate::new(config.limits.max_requests));
		let inner = Arc::new(NetInner {
			peer_id,
			metrics,
			stream_permits: Arc::new(Semaphore::new(config.limits.max_streams)),
			total_bucket: config
				.limits
				.bytes_per_sec_total
				.map(|r| Mutex::new(server::Bucket::new(r))),
			config,
			store,
			control,
			commands: tx,
			listen: listen_rx,
			bans: Mutex::new(HashSet::new()),
			served_to: Mutex::new(HashMap::new()),
			serving: Mutex::new(HashMap::new()),
			peer_buckets: Mutex::new(HashMap::new()),
			tasks: Mutex::new(Vec::new()),
			book: Mutex::new(book),
			follows: Mutex::new(HashMap::new()),
			gate,
		});
		let swarm_task = tokio::spawn(swarm::run(swarm, rx, listen_tx, gossip_tx));
		let server_task = tokio::spawn(server::accept_loop(inner.clone(), incoming));
		let net = SyncNetwork { inner };
		let gossip_net = net.clone();
		let gossip_task = tokio::spawn(async move {
			while let Some((source, id, msg)) = gossip_rx.recv().await {
				gossip_net.on_gossip(source, id, msg);
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
		self.inner.served_to.lock().clone()
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
		let _ = self.inner.commands.send(swarm::Command::AddAddresses(peer, addrs));
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
		self.inner.book.lock().clone()
	}

	/// Saves the peer book to the store (also done every few seconds and at shutdown) and
	/// refreshes the peer gauges.
	pub fn save_peer_book(&self) {
		let (bytes, states) = {
			let book = self.inner.book.lock();
			let now = Instant::now();
			(book.save(now), book.states(now))
		};
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
		let ban = {
			let mut book = self.inner.book.lock();
			book.invalid(peer);
			book.config().ban_on_invalid
		};
		if ban {
			self.ban(peer);
		}
	}

	/// A request to `peer` failed (timeout, disconnect, refusal): counts towards its cooldown.
	pub(crate) fn peer_failed(&self, peer: PeerId) {
		self.inner.book.lock().failure(peer, Instant::now());
	}

	/// A request to `peer` succeeded.
	pub(crate) fn peer_succeeded(&self, peer: PeerId) {
		self.inner.book.lock().success(peer);
	}

	/// Whether the peer manager lets this node ask `peer` now (not banned, not cooling down).
	pub fn peer_usable(&self, peer: &PeerId) -> bool {
		!self.is_banned(peer) && self.inner.book.lock().usable(peer, Instant::now())
	}

	/// Bans a peer for this session: disconnects it, refuses its connections and streams.
	pub fn ban(&self, peer: PeerId) {
		if self.inner.bans.lock().insert(peer) {
			log::warn!(target: "sync-net", "banned {peer} for this session");
			self.inner.metrics.bans.inc();
			let _ = self.inner.commands.send(swarm::Command::Ban(peer));
		}
	}

	/// Whether a peer is banned.
	pub fn is_banned(&self, peer: &PeerId) -> bool {
		self.inner.bans.lock().contains(peer)
	}

	/// Announces in the DHT that this node holds `segment`.
	pub fn provide(&self, segment: SegmentId) {
		let _ = self.inner.commands.send(swarm::Command::Provide(segment));
	}

	/// Peers that announced holding `segment` in the DHT.
	pub async fn find_providers(&self, segment: SegmentId) -> Vec<PeerId> {
		let (tx, rx) = oneshot::channel();
		if self.inner.commands.send(swarm::Command::FindProviders(segment, tx)).is_err() {
			return Vec::new();
		}
		rx.await.unwrap_or_default()
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
