//! What the data plane adds to the wire format of `/sync-registry/transfer/1`, which is
//! [`sync_proto`]'s (messages, framing, limits; see its crate docs for the protocol): the libp2p
//! stream protocol built from [`sync_proto::PROTOCOL_NAME`], and the serving priority of each
//! request (a policy of this server, not part of the wire).
use libp2p::StreamProtocol;
use sync_proto::Request;

/// The transfer protocol's stream protocol (the major version is part of its name).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(sync_proto::PROTOCOL_NAME);

/// Transfer streams one peer holds to another at once: what a server admits per known peer
/// (the default of [`ServeLimits::max_streams_per_peer`](crate::ServeLimits)) and the most this
/// node's client opens to any one peer (a follower's head poll, a snapshot worker's session and a
/// catch-up, with one to spare; sessions to one peer beyond it wait for one to close). The one
/// place the number is written, so the two ends cannot drift apart.
pub const STREAMS_PER_PEER: usize = 4;

/// Serving priority of a request (see [`crate::ServeLimits::max_requests`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Priority {
	/// Small requests that unblock a follower or the start of a sync.
	High,
	/// Bulk snapshot data.
	Low,
}

/// `Head`, `Index` and `Ops` are high priority; `Outboard` and `Groups` low.
pub fn priority(request: &Request) -> Priority {
	match request {
		Request::Head { .. } | Request::Index { .. } | Request::Ops { .. } => Priority::High,
		Request::Outboard { .. } | Request::Groups { .. } => Priority::Low,
	}
}
