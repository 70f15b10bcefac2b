//! The transfer protocol `/sync-registry/transfer/1` and its two ends.
//!
//! The wire format (framed SCALE messages, streamed data frames, limits) is pinned in
//! [`sync_proto`], with the protocol written out in its crate docs.
//!
//! - [`protocol`]: the libp2p stream protocol and the serving priority of each request;
//! - [`client`]: one request-at-a-time [`Session`](client::Session) per peer, every response
//!   bounded before anything is allocated;
//! - `server`: answering from the store, within the [`ServeLimits`](crate::ServeLimits)
//!   (streams overall and per peer, byte rates, and a priority gate that serves the requests
//!   live followers and new syncs need before bulk data). The server owns that state.
pub mod client;
pub mod protocol;
pub(crate) mod server;
