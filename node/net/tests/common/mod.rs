//! Shared helpers of the in-process multi-node tests: real stores on disk, real libp2p on
//! loopback.
#![allow(dead_code)]
use std::{sync::Arc, time::Duration};
use sync_net::{
	fixtures::populate, Anchors, Holder, Keypair, Multiaddr, NetConfig, ServeLimits, SyncNetwork,
};
use sync_primitives::commitment::cid_of;
use sync_store::{Head, Store, StoreError};
use tempfile::TempDir;

pub const SEG: u64 = 1;
pub const MIB: u64 = 1 << 20;

/// One data-plane node.
pub struct Node {
	pub net: SyncNetwork,
	pub addrs: Vec<Multiaddr>,
	pub dir: Arc<TempDir>,
	pub cfg: NetConfig,
}

/// Opens a store, waiting for a previous instance in this process to release it (aborted
/// tasks drop their handles shortly after a shutdown).
pub async fn open_store(dir: &std::path::Path) -> Store {
	for _ in 0..100 {
		match Store::open(dir) {
			Ok(s) => return s,
			Err(StoreError::Db(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
			Err(e) => panic!("open store: {e}"),
		}
	}
	panic!("store still open elsewhere");
}

impl Node {
	pub async fn start_with(dir: Arc<TempDir>, cfg: NetConfig) -> Node {
		let store = open_store(dir.path()).await;
		let net = SyncNetwork::start(cfg.clone(), store).await.unwrap();
		let addrs = net.listen_addrs().await;
		Node { net, addrs, dir, cfg }
	}
	pub async fn start_in(dir: Arc<TempDir>, limits: ServeLimits) -> Node {
		let mut cfg = NetConfig::new(Keypair::generate_ed25519());
		cfg.limits = limits;
		Self::start_with(dir, cfg).await
	}
	pub async fn start() -> Node {
		Self::start_in(Arc::new(tempfile::tempdir().unwrap()), ServeLimits::default()).await
	}
	/// Stops the node and starts it again on the same directory with the same identity.
	pub async fn restart(self) -> Node {
		let Node { net, dir, cfg, .. } = self;
		net.shutdown();
		drop(net);
		Self::start_with(dir, cfg).await
	}
	pub fn holder(&self, primary: bool) -> Holder {
		Holder { peer: self.net.peer_id(), addrs: self.addrs.clone(), primary }
	}
	pub fn store(&self) -> &Store {
		self.net.store()
	}
}

/// A Primary with ≈ `total` bytes of mixed objects plus one large object.
pub async fn primary(total: u64, large: u64, limits: ServeLimits) -> (Node, Head) {
	let p = Node::start_in(Arc::new(tempfile::tempdir().unwrap()), limits).await;
	let head = populate(p.store(), SEG, total, large).unwrap();
	(p, head)
}

/// Every object of the segment at `head` reads back and hashes to its CID.
pub fn assert_holds(store: &Store, head: Head) {
	assert_eq!(store.head(SEG), Some(head));
	for e in store.listing(SEG, &head.facts.root).unwrap().iter() {
		let data = store.read_object(&e.cid).unwrap();
		assert_eq!(cid_of(&data), e.cid);
		assert_eq!(data.len() as u64, e.size);
	}
}

/// The chain's part in these tests: the committed roots of [`SEG`]. The owner pins what it
/// commits, as the node's planner does before asking the chain to commit it.
pub struct Chain(tokio::sync::watch::Sender<Vec<Head>>);

impl Chain {
	pub fn new() -> Arc<Chain> {
		Arc::new(Chain(tokio::sync::watch::channel(Vec::new()).0))
	}
	/// What followers are handed (finalized committed roots).
	pub fn anchors(&self) -> Anchors {
		self.0.subscribe()
	}
	/// The owner commits its head: pinned on the owner, appended to the roots (16 kept, as the
	/// runtime's `RootRetention`).
	pub fn commit(&self, owner: &Store) -> Head {
		let head = owner.pin_snapshot(SEG).unwrap().expect("the owner holds the segment");
		self.0.send_modify(|a| {
			if a.last() != Some(&head) {
				a.push(head);
			}
			let n = a.len();
			a.drain(..n.saturating_sub(16));
		});
		head
	}
	/// Commits the owner's head every `every`, as long as the task runs (abort it to stop).
	pub fn committer(
		self: &Arc<Self>,
		owner: Store,
		every: Duration,
	) -> tokio::task::JoinHandle<()> {
		let chain = self.clone();
		tokio::spawn(async move {
			loop {
				tokio::time::sleep(every).await;
				chain.commit(&owner);
			}
		})
	}
}

pub fn limit(bytes_per_sec: u64) -> ServeLimits {
	ServeLimits { bytes_per_sec_per_peer: Some(bytes_per_sec), ..Default::default() }
}

/// A bare libp2p node (TCP + Noise + Yamux) that speaks only the transfer protocol, for rogue
/// servers in tests: its peer id, its listen address, and the transfer streams peers open to
/// it. Its swarm runs in a task.
pub async fn bare_transfer_node() -> (sync_net::PeerId, Multiaddr, libp2p_stream::IncomingStreams) {
	use futures::StreamExt;
	use libp2p::{noise, tcp, yamux};
	let mut swarm = libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
		.with_tokio()
		.with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
		.unwrap()
		.with_behaviour(|_| libp2p_stream::Behaviour::new())
		.unwrap()
		.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
		.build();
	swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
	let addr = loop {
		if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
			swarm.select_next_some().await
		{
			break address;
		}
	};
	let peer = *swarm.local_peer_id();
	let incoming = swarm
		.behaviour()
		.new_control()
		.accept(sync_net::transfer::protocol::PROTOCOL)
		.unwrap();
	tokio::spawn(async move {
		loop {
			swarm.select_next_some().await;
		}
	});
	(peer, addr, incoming)
}
