//! Data-plane configuration. Every default is written once: in [`ServeLimits::default`],
//! [`NetConfig::new`] and [`PeerManagerConfig::default`] (the node's CLI takes its defaults from
//! them too); the field docs say what each knob does, not its default.
use crate::peers::PeerManagerConfig;
#[cfg(doc)]
use sync_proto::MAX_GROUPS_PER_REQUEST;
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use std::time::Duration;

/// Limits on the serving side, protecting a holder from any one downloader (defaults: see
/// [`ServeLimits::default`]).
#[derive(Clone, Debug)]
pub struct ServeLimits {
	/// Inbound transfer streams served at once, over all peers (bounds memory: each holds at
	/// most one response of [`MAX_GROUPS_PER_REQUEST`] groups in flight).
	pub max_streams: usize,
	/// Inbound transfer streams per peer.
	pub max_streams_per_peer: usize,
	/// Bytes per second served to one peer (`None` = unlimited).
	pub bytes_per_sec_per_peer: Option<u64>,
	/// Bytes per second served in total (`None` = unlimited).
	pub bytes_per_sec_total: Option<u64>,
	/// Requests answered at once. Waiting requests are served high priority first (`Head`,
	/// `Index`, `Ops`: what live followers and new syncs need to start) then low priority
	/// (`Outboard`, `Groups`: bulk snapshot data), each queue in arrival order.
	pub max_requests: usize,
}

impl Default for ServeLimits {
	fn default() -> Self {
		ServeLimits {
			max_streams: 64,
			max_streams_per_peer: 4,
			bytes_per_sec_per_peer: None,
			bytes_per_sec_total: None,
			max_requests: 16,
		}
	}
}

/// Everything the data plane needs to start (defaults: see [`NetConfig::new`]).
#[derive(Clone, Debug)]
pub struct NetConfig {
	/// The node's identity (Ed25519; the node passes its network key).
	pub keypair: Keypair,
	/// The genesis hash of the chain this data plane serves: part of every payload this node
	/// signs (checkpoint ops written through [`SyncNetwork::write`](crate::SyncNetwork::write),
	/// and their announcements), so a signature is good on that chain only. Followers check
	/// with the genesis hash of their verifier ([`PrimaryKeys`](crate::deltas::PrimaryKeys)).
	/// The all-zero default of [`NetConfig::new`] is for tests only; the node sets the chain's
	/// genesis hash.
	pub genesis: [u8; 32],
	/// Addresses to listen on.
	pub listen: Vec<Multiaddr>,
	/// Peers to connect to at start (also added to the DHT).
	pub bootnodes: Vec<(PeerId, Multiaddr)>,
	/// Yamux per-stream receive window. `Some(n)` fixes it (bulk transfer wants it well above
	/// the 256 KiB default, so a 1 MiB response is never stalled on window updates); `None`
	/// uses yamux's auto-tuning.
	pub yamux_window: Option<u32>,
	/// Serving-side limits.
	pub limits: ServeLimits,
	/// Timeout of one request (including the whole streamed response).
	pub request_timeout: Duration,
	/// Timeout for dialling and opening a stream.
	pub connect_timeout: Duration,
	/// How long a group range stays untried at a peer that said it does not have it.
	pub missing_retry: Duration,
	/// How long another downloader may be unreachable or make no progress before its share is
	/// asked of a Primary out of turn (see the snapshot module on Primary egress).
	pub primary_fallback: Duration,
	/// Registry to export metrics to (the node passes Substrate's). `None`: counted, not exported.
	pub registry: Option<prometheus::Registry>,
	/// The peer manager's knobs (see [`PeerManagerConfig`] for each default).
	pub peers: PeerManagerConfig,
	/// Gossipsub heartbeat (mesh maintenance, lazy gossip of announcements).
	pub gossip_heartbeat: Duration,
	/// How often a follower asks its holders for their heads, to notice announcements it
	/// missed (say, while disconnected).
	pub head_poll: Duration,
	/// Ops of each segment kept in the log for peers catching up; older ones are pruned and such
	/// peers catch up through a snapshot.
	pub log_retention: u64,
	/// Time allowed per index page on top of one `request_timeout`: a whole index of `n`
	/// pages must arrive within `request_timeout + n × index_page_time`, so a holder cannot
	/// drip-feed pages to hold a sync (a page is at most 512 KiB).
	pub index_page_time: Duration,
}

impl NetConfig {
	/// The data plane's defaults (the one place they are written), with the given identity.
	pub fn new(keypair: Keypair) -> Self {
		NetConfig {
			keypair,
			// Tests only: the node sets its chain's genesis hash.
			genesis: [0; 32],
			listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
			bootnodes: Vec::new(),
			yamux_window: Some(16 << 20),
			limits: ServeLimits::default(),
			request_timeout: Duration::from_secs(30),
			connect_timeout: Duration::from_secs(10),
			missing_retry: Duration::from_millis(25),
			primary_fallback: Duration::from_secs(1),
			registry: None,
			peers: PeerManagerConfig::default(),
			gossip_heartbeat: Duration::from_secs(1),
			head_poll: Duration::from_secs(5),
			log_retention: 262_144,
			index_page_time: Duration::from_secs(2),
		}
	}
}
