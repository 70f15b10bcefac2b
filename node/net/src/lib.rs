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
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod deltas;
pub mod fixtures;
pub mod metrics;
pub mod peers;
pub mod protocol;
mod server;
pub mod snapshot;
pub mod swarm;

pub use config::{NetConfig, ServeLimits};
pub use libp2p::{identity::Keypair, Multiaddr, PeerId};
pub use snapshot::{Holder, SyncError, SyncReport};

use parking_lot::Mutex;
use std::{
	collections::{HashMap, HashSet},
	sync::Arc,
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
}

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
		let incoming = control.accept(protocol::PROTOCOL).map_err(|e| NetError::Setup(e.to_string()))?;
		let metrics = match &config.registry {
			Some(r) => metrics::Metrics::register(r).map_err(|e| NetError::Setup(format!("metrics: {e}")))?,
			None => metrics::Metrics::unregistered(),
		};
		let (tx, rx) = mpsc::unbounded_channel();
		let (listen_tx, listen_rx) = watch::channel(Vec::new());
		let inner = Arc::new(NetInner {
			peer_id,
			metrics,
			stream_permits: Arc::new(Semaphore::new(config.limits.max_streams)),
			total_bucket: config.limits.bytes_per_sec_total.map(|r| Mutex::new(server::Bucket::new(r))),
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
		});
		let swarm_task = tokio::spawn(swarm::run(swarm, rx, listen_tx));
		let server_task = tokio::spawn(server::accept_loop(inner.clone(), incoming));
		inner.tasks.lock().extend([swarm_task, server_task]);
		let net = SyncNetwork { inner };
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
		self.inner.commands.send(swarm::Command::Dial(peer, addrs, tx)).map_err(|_| "network stopped".to_string())?;
		rx.await.map_err(|_| "network stopped".to_string())?
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

	/// Stops the swarm and the server; connections close, in-flight transfers fail over.
	pub fn shutdown(&self) {
		for t in self.inner.tasks.lock().drain(..) {
			t.abort();
		}
	}
}
