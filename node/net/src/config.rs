//! Data-plane configuration. Every default is written once: in [`ServeLimits::default`],
//! [`NetConfig::new`] and [`PeerManagerConfig::default`] (the node's CLI takes its defaults from
//! them too); the field docs say what each knob does, not its default.
use crate::peers::PeerManagerConfig;
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use std::time::Duration;
#[cfg(doc)]
use sync_proto::MAX_GROUPS_PER_REQUEST;

/// Limits on the serving side, protecting a holder from any one downloader and from floods of
/// throwaway identities (defaults: see [`ServeLimits::default`]).
///
/// "Known" peers are the ones the chain lists as holders (Primaries and Replicas) of a segment
/// this node holds or syncs, plus [`PeerManagerConfig::trusted`] (fed by
/// `SyncNetwork::set_known_peers` and by the holder lists given to `follow` / `sync_segment`).
/// Everyone else is "unknown": served too, but with a smaller share of every limit, so a flood
/// of unknown identities never takes the slots known peers need.
#[derive(Clone, Debug)]
pub struct ServeLimits {
	/// Inbound transfer streams served at once, over all peers (bounds memory: each holds at
	/// most one response of [`MAX_GROUPS_PER_REQUEST`] groups in flight, and at most one yamux
	/// window of unread input).
	pub max_streams: usize,
	/// Of [`ServeLimits::max_streams`], how many unknown peers may hold together (the rest is
	/// kept for known peers).
	pub max_streams_unknown: usize,
	/// Inbound transfer streams per known peer (the client side never opens more than
	/// [`STREAMS_PER_PEER`](crate::transfer::protocol::STREAMS_PER_PEER) to one peer, the
	/// default here).
	pub max_streams_per_peer: usize,
	/// Inbound transfer streams per unknown peer.
	pub max_streams_per_unknown_peer: usize,
	/// Bytes per second served to one peer (`None` = unlimited).
	pub bytes_per_sec_per_peer: Option<u64>,
	/// Bytes per second served to one unknown peer (the lower of this and
	/// [`ServeLimits::bytes_per_sec_per_peer`] applies; `None` = no extra limit).
	pub unknown_peer_bytes_per_sec: Option<u64>,
	/// Bytes per second served in total (`None` = unlimited).
	pub bytes_per_sec_total: Option<u64>,
	/// Requests answered at once. Waiting requests are served known peers' first, then
	/// unknown peers'; within each, high priority first (`Head`, `Index`, `Ops`: what live
	/// followers and new syncs need to start) then low priority (`Outboard`, `Groups`: bulk
	/// snapshot data), each queue in arrival order.
	pub max_requests: usize,
	/// Of [`ServeLimits::max_requests`], how many unknown peers' requests may be answered at
	/// once (the rest is kept for known peers).
	pub max_requests_unknown: usize,
	/// A new stream must deliver its whole first request within this time, or it is answered
	/// `Busy` and closed (a stream that sends two bytes of a length prefix and stalls holds
	/// its slot no longer than this).
	pub first_request_timeout: Duration,
	/// Between requests, a stream that starts no new request within this time is answered
	/// `Busy` and closed (a client reads that as "try later" and reopens, blaming nobody).
	pub idle_timeout: Duration,
	/// Once the first byte of a request has arrived, the rest of its frame must arrive within
	/// this time, or the stream is closed.
	pub request_read_timeout: Duration,
	/// A request that waits this long for an answer slot is answered `Busy` (before the
	/// client's own request timeout, so the client tries elsewhere without blaming this node).
	pub queue_timeout: Duration,
	/// Base of the write deadline of one response: writing a response of `n` bytes may block
	/// for at most `write_timeout + n / write_floor_rate` in total (time spent waiting for the
	/// rate limits or the store is not counted). A client that does not read loses its stream
	/// and its answer slot goes to the next request.
	pub write_timeout: Duration,
	/// Slowest read rate (bytes per second) the write deadline allows a client on top of
	/// [`ServeLimits::write_timeout`].
	pub write_floor_rate: u64,
	/// Established connections at once, inbound and outbound, known peers included (enforced
	/// by `libp2p::connection_limits`).
	pub max_connections: u32,
	/// Established inbound connections of unknown peers at once.
	pub max_unknown_connections: u32,
	/// Inbound connections per remote IP address: handshakes in progress plus established
	/// connections of unknown peers (known peers' connections are not counted or refused).
	pub max_connections_per_ip: u32,
	/// Established connections per peer.
	pub max_connections_per_peer: u32,
	/// Inbound connections in their handshake at once.
	pub max_pending_incoming: u32,
	/// Bytes of outboards held in memory at once for `Outboard` answers, over all streams (an
	/// outboard is loaded whole; the largest object's is 256 MiB). An outboard larger than this
	/// takes the whole budget (it is served alone); an answer that cannot get its share within
	/// `queue_timeout` is `Busy` (the client tries later or elsewhere, blaming nobody).
	pub outboard_memory: u64,
}

impl Default for ServeLimits {
	/// The serving defaults (the one place they are written). The deadlines: an honest client
	/// sends its request right after opening a stream (2 s covers a loaded machine and a slow
	/// link many times over); 30 s idle keeps a worker's session across the pauses of a sync;
	/// a request frame is ≤ 64 KiB, so 5 s only cuts a client sending under 13 KiB/s;
	/// 10 s + 1 MiB/s lets a full 1 MiB `Groups` response take 11 s (the client's own request
	/// timeout is 30 s), i.e. a client must read at ≥ 95 KiB/s, below which a sync of any
	/// real size does not finish anyway; 10 s in the queue answers `Busy` well before that
	/// client timeout. Unknown peers get half of the streams and answer slots, 3 streams each (a
	/// follower may hold a head poll, a sync worker's session and a catch-up at once; known
	/// peers get 4) and 8 MiB/s each. Connections: 256 in all, 128 of them inbound from
	/// unknown peers, 8 per address (a few nodes behind one NAT), 2 per peer (a simultaneous
	/// dial), 64 in their handshake (which libp2p bounds at 10 s). Outboards in memory: 256 MiB
	/// (one answer for the largest object, thousands for the typical one of a few KiB).
	fn default() -> Self {
		ServeLimits {
			max_streams: 64,
			max_streams_unknown: 32,
			max_streams_per_peer: crate::transfer::protocol::STREAMS_PER_PEER,
			max_streams_per_unknown_peer: 3,
			bytes_per_sec_per_peer: None,
			unknown_peer_bytes_per_sec: Some(8 << 20),
			bytes_per_sec_total: None,
			max_requests: 16,
			max_requests_unknown: 8,
			first_request_timeout: Duration::from_secs(2),
			idle_timeout: Duration::from_secs(30),
			request_read_timeout: Duration::from_secs(5),
			queue_timeout: Duration::from_secs(10),
			write_timeout: Duration::from_secs(10),
			write_floor_rate: FLOOR_RATE,
			max_connections: 256,
			max_unknown_connections: 128,
			max_connections_per_ip: 8,
			max_connections_per_peer: 2,
			max_pending_incoming: 64,
			outboard_memory: 256 << 20,
		}
	}
}

/// Slowest rate (bytes per second) one response is expected to flow at, both ways: the
/// default of the server's [`ServeLimits::write_floor_rate`] (a client reading slower loses
/// its stream) and of the client's [`NetConfig::response_floor_rate`] (a server sending
/// slower has timed out).
pub const FLOOR_RATE: u64 = 1 << 20;

/// Default of [`NetConfig::scrub_rate`]: 8 MiB/s of background re-verification (a store of
/// 675 GiB is scrubbed within a day; a few percent of one core for BLAKE3 at that rate).
pub const DEFAULT_SCRUB_RATE: u64 = 8 << 20;

/// Everything the data plane needs to start (defaults: see [`NetConfig::new`]).
#[derive(Clone, Debug)]
pub struct NetConfig {
	/// The node's identity (Ed25519; the node passes its network key).
	pub keypair: Keypair,
	/// The genesis hash of the chain this data plane serves: part of every payload this node
	/// signs (checkpoint ops written through [`SyncNetwork::write`](crate::SyncNetwork::write),
	/// and their announcements), so a signature is good on that chain only. Followers check
	/// with the genesis hash of their verifier ([`EpochKeys`](crate::deltas::EpochKeys)).
	/// The all-zero default of [`NetConfig::new`] is for tests only; the node sets the chain's
	/// genesis hash.
	pub genesis: [u8; 32],
	/// Addresses to listen on.
	pub listen: Vec<Multiaddr>,
	/// Peers to connect to at start (also added to the DHT).
	pub bootnodes: Vec<(PeerId, Multiaddr)>,
	/// Yamux per-stream receive window. `Some(n)` fixes it (bulk transfer wants it above the
	/// 256 KiB default, so a 1 MiB response is never stalled on window updates; one request is
	/// outstanding per stream, so a window above one response buys no throughput); `None`
	/// uses yamux's auto-tuning. It is also the most unread input one stream can buffer, so
	/// memory is bounded by streams × window (see the crate README on serving).
	pub yamux_window: Option<u32>,
	/// Yamux streams per connection, both directions (a peer that opens more loses the
	/// connection): with [`NetConfig::yamux_window`] it bounds the memory one connection can
	/// make this node buffer.
	pub yamux_max_streams: usize,
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
	/// The Primary fallback's time bound, whatever replicas claim: once no non-Primary source
	/// has delivered a verified byte to this node for this long, a Primary the chain lists is
	/// asked for any share (a complete Replica being connected no longer holds it back), and a
	/// co-downloader that delivered nothing for this long loses its share to the Primary however
	/// its progress counter grows (see the snapshot module on Primary egress). Also the window
	/// of [`NetConfig::primary_fallback_rate`].
	pub primary_fallback_after: Duration,
	/// The Primary fallback's rate floor, in bytes per second: windows of
	/// [`NetConfig::primary_fallback_after`] run from the staging of a sync's index, and after
	/// one in which the non-Primary sources together delivered verified bytes to this node at
	/// less than this rate, a Primary the chain lists is asked for any share during the next
	/// window, as one more source (the replicas keep theirs). So a holder that claims the
	/// complete target and drip-feeds it cannot hold a sync below this rate (see the snapshot
	/// module on stalls); `0` turns the floor off.
	pub primary_fallback_rate: u64,
	/// Registry to export metrics to (the node passes Substrate's). `None`: counted, not exported.
	pub registry: Option<prometheus::Registry>,
	/// The peer manager's knobs (see [`PeerManagerConfig`] for each default).
	pub peers: PeerManagerConfig,
	/// Gossipsub heartbeat (mesh maintenance, lazy gossip of announcements).
	pub gossip_heartbeat: Duration,
	/// How often a follower asks its holders for their heads, to notice announcements it
	/// missed (say, while disconnected).
	pub head_poll: Duration,
	/// Deadline of one holder's head poll as a whole (dial, stream, `Head` answer): a holder
	/// that misses it counts a failure (its own, nobody else's) and is left out of that poll.
	pub head_timeout: Duration,
	/// Ops of each segment kept in the log for peers catching up; older ones are pruned and such
	/// peers catch up through a snapshot.
	pub log_retention: u64,
	/// Time allowed per index page on top of one `request_timeout`: a whole index of `n`
	/// pages must arrive within `request_timeout + n × index_page_time`, so a holder cannot
	/// drip-feed pages to hold a sync (a page is at most 512 KiB).
	pub index_page_time: Duration,
	/// Slowest rate (bytes per second) a response larger than a request's worth is waited for:
	/// an `Outboard` answer of `n` bytes (up to 256 MiB for the largest object) must arrive
	/// within `request_timeout + n / response_floor_rate`, so an honest holder serving at its
	/// per-peer rate is not timed out on a large object, and a drip-feeding one still is.
	pub response_floor_rate: u64,
	/// Bytes per second the background scrub reads and re-verifies against their CIDs (`0`: no
	/// scrub). An object that fails is quarantined and fetched again from another holder (see
	/// [`live::repair`](crate::live::repair)).
	pub scrub_rate: u64,
	/// A scrub pass starts at most this long after the previous pass started (a pass that takes
	/// longer, at [`NetConfig::scrub_rate`], is followed at once).
	pub scrub_pass_interval: Duration,
}

impl NetConfig {
	/// The data plane's defaults (the one place they are written), with the given identity.
	///
	/// `primary_fallback_after` is 15 s: at the serving write floor a full 1 MiB unit takes at
	/// most 11 s (`ServeLimits::default`), so a Replica source that delivered nothing for longer
	/// is not serving this node, whatever it advertises. `primary_fallback_rate` is 64 KiB/s,
	/// about one full unit (1 MiB) per window over all replicas together: twelve times a drip of
	/// one 16 KiB group every 3 s, and a sixteenth of what one Replica serving at 1 MiB/s (the
	/// e2e scenarios' limit per peer) delivers, so honest replicas never let the Primary in
	/// through it, while a drip-feeding holder holds a sync of `n` bytes to at most about
	/// `n / 64 KiB/s` plus a window (if the Primary serves at least that fast).
	///
	/// `head_timeout` is 15 s: an honest holder answers a `Head` (high priority) within its
	/// `queue_timeout` (10 s) — or `Busy`, which blames nobody — and 5 s cover a dial; the first
	/// failure in a row is free, so one slow dial rests nobody.
	pub fn new(keypair: Keypair) -> Self {
		NetConfig {
			keypair,
			// Tests only: the node sets its chain's genesis hash.
			genesis: [0; 32],
			listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
			bootnodes: Vec::new(),
			yamux_window: Some(2 << 20),
			yamux_max_streams: 64,
			limits: ServeLimits::default(),
			request_timeout: Duration::from_secs(30),
			connect_timeout: Duration::from_secs(10),
			missing_retry: Duration::from_millis(25),
			primary_fallback: Duration::from_secs(1),
			primary_fallback_after: Duration::from_secs(15),
			primary_fallback_rate: 64 << 10,
			registry: None,
			peers: PeerManagerConfig::default(),
			gossip_heartbeat: Duration::from_secs(1),
			head_poll: Duration::from_secs(5),
			head_timeout: Duration::from_secs(15),
			log_retention: 262_144,
			index_page_time: Duration::from_secs(2),
			response_floor_rate: FLOOR_RATE,
			// 8 MiB/s: a full pass over 1 TiB in 36 h, under 1 % of a core for BLAKE3 and a
			// few % of one disk's sequential reads; a store smaller than 675 GiB is scrubbed once
			// a day (the pass interval), as Ceph deep-scrubs weekly and ZFS monthly (estimates, not
			// measured yet).
			scrub_rate: DEFAULT_SCRUB_RATE,
			scrub_pass_interval: Duration::from_secs(24 * 60 * 60),
		}
	}
}
