//! The transfer protocol `/sync-registry/transfer/1` and its two ends.
//!
//! - [`protocol`]: the wire format (framed SCALE messages, streamed data frames) and its limits;
//! - [`client`]: one request-at-a-time [`Session`](client::Session) per peer, every response
//!   bounded before anything is allocated;
//! - `server`: answering from the store, within the [`ServeLimits`](crate::ServeLimits)
//!   (streams overall and per peer, byte rates, and a priority gate that serves the requests
//!   live followers and new syncs need before bulk data). The server owns that state.
pub mod client;
pub mod protocol;
pub(crate) mod server;
