//! Client side of the transfer protocol: one stream per peer, one request at a time, every
//! response checked against the protocol limits before anything is allocated.
use super::protocol::PROTOCOL;
use crate::SyncNetwork;
use codec::DecodeAll;
use futures::{io::BufReader, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use std::time::Duration;
use sync_primitives::{
	commitment::{Entry, Hash32},
	outboard::{group_range, outboard_len},
	SegmentId,
};
use sync_proto::{
	read_frame_into, write_frame, write_msg, Envelope, ErrorCode, GroupRange, Request, Response,
	SignedOp, WireError, WireHead, MAX_DATA_FRAME, MAX_HEADER_BYTES, MAX_INDEX_PAGE, MAX_KEY_LEN,
	TAG_DATA, TAG_MISSING, VERSION,
};
use sync_store::wire::entry_from_wire;

/// How a peer failed a request.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
	/// Connection, stream or timeout failure: the peer may be gone; try it again later.
	#[error("transport: {0}")]
	Transport(String),
	/// The peer refused the request.
	#[error("refused: {0}")]
	Refused(ErrorCode),
	/// The peer broke the protocol or sent data that does not verify: ban it.
	#[error("misbehaved: {0}")]
	Misbehaved(String),
	/// This node failed (its store, its disk): not the peer's doing, never counted against it.
	#[error("local: {0}")]
	Local(String),
}

impl PeerError {
	/// Whether the failure counts against the peer (towards its cooldown): a transport failure
	/// or a protocol violation does; `Busy` (the peer is at its limits, as it should be),
	/// `NotHeld` and `Pruned` (honest answers about what it has) and this node's own failures
	/// do not.
	pub fn blames_peer(&self) -> bool {
		match self {
			PeerError::Transport(_) | PeerError::Misbehaved(_) => true,
			PeerError::Refused(code) => {
				!matches!(code, ErrorCode::Busy | ErrorCode::NotHeld | ErrorCode::Pruned)
			},
			PeerError::Local(_) => false,
		}
	}
}

impl From<WireError> for PeerError {
	fn from(e: WireError) -> Self {
		match e {
			WireError::Io(e) => PeerError::Transport(e.to_string()),
			other => PeerError::Misbehaved(other.to_string()),
		}
	}
}

impl From<sync_store::StoreError> for PeerError {
	/// Data from the peer that the store rejects is the peer's fault; any other store failure
	/// is this node's and does not blame the peer.
	fn from(e: sync_store::StoreError) -> Self {
		match e {
			sync_store::StoreError::BadData { .. } => PeerError::Misbehaved(e.to_string()),
			other => PeerError::Local(format!("store: {other}")),
		}
	}
}

/// What a peer can serve of a segment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerHead {
	/// Complete state.
	pub complete: Option<WireHead>,
	/// Target of a transfer in progress with a verified index.
	pub syncing: Option<WireHead>,
	/// Verified bytes the peer has received so far.
	pub received: u64,
	/// Older states (pinned snapshots) the peer still serves.
	pub pinned: Vec<WireHead>,
}

/// One group as received.
pub enum Received<'a> {
	/// Bytes (not yet verified: the caller verifies against the outboard/CID before writing).
	Data(&'a [u8]),
	/// The peer does not have it.
	Missing,
}

/// An open request stream to one peer.
pub struct Session {
	metrics: crate::metrics::Metrics,
	peer: PeerId,
	io: BufReader<Stream>,
	buf: Vec<u8>,
	timeout: Duration,
	index_page_time: Duration,
}

impl Drop for Session {
	fn drop(&mut self) {
		self.metrics.streams.with_label_values(&["outbound"]).dec();
	}
}

impl Session {
	/// Opens a stream to `peer` (dialling it if needed, with the addresses the swarm knows).
	pub async fn open(net: &SyncNetwork, peer: PeerId) -> Result<Session, PeerError> {
		let mut control = net.control();
		let stream =
			tokio::time::timeout(net.config().connect_timeout, control.open_stream(peer, PROTOCOL))
				.await
				.map_err(|_| PeerError::Transport("open timed out".into()))?
				.map_err(|e| PeerError::Transport(e.to_string()))?;
		net.metrics().streams.with_label_values(&["outbound"]).inc();
		Ok(Session {
			metrics: net.metrics().clone(),
			peer,
			io: BufReader::with_capacity(4 * 1024, stream),
			buf: Vec::with_capacity(MAX_DATA_FRAME),
			timeout: net.config().request_timeout,
			index_page_time: net.config().index_page_time,
		})
	}

	/// The peer this session talks to.
	pub fn peer(&self) -> PeerId {
		self.peer
	}

	async fn send(&mut self, request: Request) -> Result<Response, PeerError> {
		write_msg(&mut self.io, &Envelope { version: VERSION, request }).await?;
		self.io.flush().await.map_err(|e| PeerError::Transport(e.to_string()))?;
		read_frame_into(&mut self.io, MAX_HEADER_BYTES, &mut self.buf).await?;
		let resp = Response::decode_all(&mut &self.buf[..])
			.map_err(|e| PeerError::Misbehaved(e.to_string()))?;
		if let Response::Error(code) = resp {
			return Err(PeerError::Refused(code));
		}
		Ok(resp)
	}

	/// What the peer has of `segment`.
	pub async fn head(&mut self, segment: SegmentId) -> Result<PeerHead, PeerError> {
		let t = self.timeout;
		let f = self.send(Request::Head { segment });
		match tokio::time::timeout(t, f)
			.await
			.map_err(|_| PeerError::Transport("timed out".into()))??
		{
			Response::Head { complete, syncing, received, pinned } => {
				Ok(PeerHead { complete, syncing, received, pinned })
			},
			other => Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
		}
	}

	/// The whole index of `segment` at `root`, paged. `expected` is the entry count of the
	/// target's facts (the chain's, for a committed root); the whole index must arrive within
	/// `request_timeout + pages × index_page_time` (each page also within `request_timeout`), and
	/// memory grows only with the entries received.
	pub async fn index(
		&mut self,
		segment: SegmentId,
		root: Hash32,
		expected: u64,
	) -> Result<Vec<Entry>, PeerError> {
		let pages = expected.div_ceil(MAX_INDEX_PAGE as u64).min(u32::MAX as u64) as u32;
		let deadline = self.timeout.saturating_add(self.index_page_time.saturating_mul(pages));
		let t = self.timeout;
		let all = async {
			let mut out = Vec::with_capacity(expected.min(MAX_INDEX_PAGE as u64) as usize);
			while (out.len() as u64) < expected {
				let start = out.len() as u64;
				let f = self.send(Request::Index { segment, root, start, count: MAX_INDEX_PAGE });
				match tokio::time::timeout(t, f)
					.await
					.map_err(|_| PeerError::Transport("timed out".into()))??
				{
					Response::Index { entries, total } => {
						// Full pages of bounded keys only: a holder cannot make the index
						// arrive an entry at a time, nor each entry carry a frame's worth of key.
						let full = (expected - start).min(MAX_INDEX_PAGE as u64) as usize;
						if total != expected
							|| entries.len() != full
							|| entries.iter().any(|e| e.key.len() > MAX_KEY_LEN as usize)
						{
							return Err(PeerError::Misbehaved(
								"index page inconsistent with the root facts".into(),
							));
						}
						out.extend(entries.into_iter().map(entry_from_wire));
					},
					other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
				}
			}
			if out.len() as u64 != expected {
				return Err(PeerError::Misbehaved("index longer than the root facts".into()));
			}
			Ok(out)
		};
		tokio::time::timeout(deadline, all).await.map_err(|_| {
			PeerError::Transport(format!(
				"index of {expected} entries not delivered in {deadline:?}"
			))
		})?
	}

	/// The outboard of object `(cid, size)` (unverified; the store checks it against the CID).
	pub async fn outboard(&mut self, cid: Hash32, size: u64) -> Result<Vec<u8>, PeerError> {
		let want = outboard_len(size).saturating_mul(32);
		let t = self.timeout;
		let f = async {
			match self.send(Request::Outboard { cid }).await? {
				Response::Outboard { len } if len == want => {},
				Response::Outboard { len } => {
					return Err(PeerError::Misbehaved(format!(
						"outboard of {len} bytes, expected {want}"
					)))
				},
				other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
			}
			// Grows with the bytes received (verified against the CID by the store once complete),
			// not with the size the op claims.
			let mut out = Vec::with_capacity(want.min(MAX_DATA_FRAME as u64 * 64) as usize);
			while (out.len() as u64) < want {
				read_frame_into(&mut self.io, MAX_DATA_FRAME, &mut self.buf).await?;
				if self.buf.first() != Some(&TAG_DATA)
					|| out.len() + self.buf.len() - 1 > want as usize
				{
					return Err(PeerError::Misbehaved("bad outboard frame".into()));
				}
				out.extend_from_slice(&self.buf[1..]);
			}
			Ok(out)
		};
		tokio::time::timeout(t, f)
			.await
			.map_err(|_| PeerError::Transport("timed out".into()))?
	}

	/// Requests groups; `sizes[i]` is the size of `ranges[i]`'s object (from the verified
	/// index). Calls `on_group(range index, group, data)` for each group as it arrives; an error
	/// from `on_group` aborts the request and is returned.
	pub async fn groups(
		&mut self,
		ranges: Vec<GroupRange>,
		sizes: &[u64],
		mut on_group: impl FnMut(usize, u64, Received<'_>) -> Result<(), PeerError>,
	) -> Result<(), PeerError> {
		let plan: Vec<(usize, u64)> = ranges
			.iter()
			.enumerate()
			.flat_map(|(i, r)| (r.first..r.first + r.count as u64).map(move |g| (i, g)))
			.collect();
		let t = self.timeout;
		let f = async {
			match self.send(Request::Groups { ranges }).await? {
				Response::Groups => {},
				other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
			}
			for (i, g) in plan {
				read_frame_into(&mut self.io, MAX_DATA_FRAME, &mut self.buf).await?;
				let (s, e) = group_range(sizes[i], g)
					.ok_or_else(|| PeerError::Misbehaved("group out of range".into()))?;
				match self.buf.first() {
					Some(&TAG_DATA) if (self.buf.len() - 1) as u64 == e - s => {
						on_group(i, g, Received::Data(&self.buf[1..]))?
					},
					Some(&TAG_MISSING) if self.buf.len() == 1 => on_group(i, g, Received::Missing)?,
					_ => return Err(PeerError::Misbehaved("bad group frame".into())),
				}
			}
			Ok(())
		};
		tokio::time::timeout(t, f)
			.await
			.map_err(|_| PeerError::Transport("request timed out".into()))?
	}

	/// Up to `max` logged ops of `segment` from seq `from`; checks they are consecutive from
	/// `from` (signatures and roots are checked by the store when they are replayed).
	pub async fn ops(
		&mut self,
		segment: SegmentId,
		from: u64,
		max: u32,
	) -> Result<Vec<SignedOp>, PeerError> {
		let t = self.timeout;
		let f = self.send(Request::Ops { segment, from, max });
		match tokio::time::timeout(t, f)
			.await
			.map_err(|_| PeerError::Transport("timed out".into()))??
		{
			Response::Ops { ops } => {
				let consecutive = ops
					.iter()
					.enumerate()
					.all(|(i, o)| o.op.segment == segment && o.op.seq == from + i as u64);
				if !consecutive || ops.len() > max as usize {
					return Err(PeerError::Misbehaved("ops out of order".into()));
				}
				Ok(ops)
			},
			other => Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
		}
	}

	/// Sends raw bytes as one frame and reads the response header (tests of malformed input).
	pub async fn raw_request(&mut self, payload: &[u8]) -> Result<Response, PeerError> {
		write_frame(&mut self.io, payload).await?;
		self.io.flush().await.map_err(|e| PeerError::Transport(e.to_string()))?;
		read_frame_into(&mut self.io, MAX_HEADER_BYTES, &mut self.buf).await?;
		Response::decode_all(&mut &self.buf[..]).map_err(|e| PeerError::Misbehaved(e.to_string()))
	}
}
