//! The transfer protocol `/sync-registry/transfer/1`: framed SCALE messages on a libp2p stream.
//!
//! A client opens one stream per peer and sends requests one at a time (one outstanding request
//! per peer); the server answers each with a header frame, and for outboards and chunk groups
//! with raw data frames after it, so a response is streamed (never built in memory) and the
//! client verifies each group as it arrives. Every frame is `u32` little-endian length +
//! payload; both sides bound frame sizes before allocating.
use codec::{Decode, Encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use sync_primitives::{
	commitment::{Entry, Hash32, RootFacts, GROUP_LEN},
	SegmentId,
};

/// Protocol name (the major version is part of it).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sync-registry/transfer/1");
/// Minor version carried in every request; a server rejects versions it does not know.
pub const VERSION: u8 = 1;
/// Largest request frame.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response header frame (an index page of 1 024 entries of ≤ 256-byte keys fits).
pub const MAX_HEADER_BYTES: usize = 512 * 1024;
/// Largest raw data frame (one chunk group, or one slice of an outboard), plus its tag byte.
pub const MAX_DATA_FRAME: usize = GROUP_LEN as usize + 1;
/// Most groups one request may ask for (1 MiB of data).
pub const MAX_GROUPS_PER_REQUEST: u32 = 64;
/// Most ops per request.
pub const MAX_OPS_PER_REQUEST: u32 = 256;
// A response of MAX_OPS_PER_REQUEST ops always holds a Primary checkpoint.
const _: () = assert!(MAX_OPS_PER_REQUEST as u64 >= sync_store::oplog::CHECKPOINT_EVERY);

/// Most index entries per page.
pub const MAX_INDEX_PAGE: u32 = 1024;

/// A range of chunk groups of one object.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct GroupRange {
	/// Object CID.
	pub cid: Hash32,
	/// First group.
	pub first: u64,
	/// Number of groups.
	pub count: u32,
}

/// What a client asks.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum Request {
	/// Which state of `segment` the server can serve.
	Head {
		/// Segment id.
		segment: SegmentId,
	},
	/// A page of the index of `segment` at `root`, in trie order.
	Index {
		/// Segment id.
		segment: SegmentId,
		/// Root the page must belong to.
		root: Hash32,
		/// First entry.
		start: u64,
		/// Entries wanted (≤ [`MAX_INDEX_PAGE`]).
		count: u32,
	},
	/// The outboard of a large object.
	Outboard {
		/// Object CID.
		cid: Hash32,
	},
	/// Logged ops of `segment` from seq `from` on (gap fill).
	Ops {
		/// Segment id.
		segment: SegmentId,
		/// First seq wanted.
		from: u64,
		/// Most ops wanted (≤ [`MAX_OPS_PER_REQUEST`]).
		max: u32,
	},
	/// Chunk groups (≤ [`MAX_GROUPS_PER_REQUEST`] in total).
	Groups {
		/// The ranges, answered in order.
		ranges: Vec<GroupRange>,
	},
}

/// Serving priority of a request (see [`crate::ServeLimits::max_requests`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Priority {
	/// Small requests that unblock a follower or the start of a sync.
	High,
	/// Bulk snapshot data.
	Low,
}

impl Request {
	/// `Head`, `Index` and `Ops` are high priority; `Outboard` and `Groups` low.
	pub fn priority(&self) -> Priority {
		match self {
			Request::Head { .. } | Request::Index { .. } | Request::Ops { .. } => Priority::High,
			Request::Outboard { .. } | Request::Groups { .. } => Priority::Low,
		}
	}
}

/// A request with its version.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
	/// Minor protocol version ([`VERSION`]).
	pub version: u8,
	/// The request.
	pub request: Request,
}

/// A state the server can serve.
#[derive(Encode, Decode, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WireHead {
	/// Sequence number.
	pub seq: u64,
	/// Root facts.
	pub facts: RootFacts,
}

/// One index entry on the wire.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct WireEntry {
	/// Key.
	pub key: Vec<u8>,
	/// CID.
	pub cid: Hash32,
	/// Size in bytes.
	pub size: u64,
}

impl From<Entry> for WireEntry {
	fn from(e: Entry) -> Self {
		WireEntry { key: e.key, cid: e.cid, size: e.size }
	}
}
impl From<WireEntry> for Entry {
	fn from(e: WireEntry) -> Self {
		Entry { key: e.key, cid: e.cid, size: e.size }
	}
}

/// Why a server refused a request.
#[derive(Encode, Decode, Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ErrorCode {
	/// The request's version is not supported.
	#[error("unsupported protocol version")]
	UnsupportedVersion,
	/// The request could not be decoded.
	#[error("malformed request")]
	Malformed,
	/// The request asks for more than the limits allow.
	#[error("request too large")]
	TooLarge,
	/// The server does not hold that segment at that root, or that object.
	#[error("not held")]
	NotHeld,
	/// The server is at its limits; try later.
	#[error("busy")]
	Busy,
	/// The server failed internally.
	#[error("internal error")]
	Internal,
	/// The ops asked for were pruned from the server's log (catch up through a snapshot).
	#[error("ops pruned from the log")]
	Pruned,
}

/// Response header frame.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum Response {
	/// Answer to [`Request::Head`].
	Head {
		/// The segment's complete state here, if any.
		complete: Option<WireHead>,
		/// The target of a transfer in progress whose index is verified (partial data).
		syncing: Option<WireHead>,
		/// Verified bytes this server has received so far (a progress signal for co-downloaders).
		received: u64,
		/// Older states it still serves (pinned snapshots, oldest first, at most a few).
		pinned: Vec<WireHead>,
	},
	/// Answer to [`Request::Index`].
	Index {
		/// Entries.
		entries: Vec<WireEntry>,
		/// Total entries at that root.
		total: u64,
	},
	/// Answer to [`Request::Outboard`]: `len` bytes follow in data frames.
	Outboard {
		/// Total outboard bytes.
		len: u64,
	},
	/// Answer to [`Request::Groups`]: one data frame per requested group follows, in order.
	Groups,
	/// Answer to [`Request::Ops`]: consecutive ops from the requested seq (empty if none).
	Ops {
		/// The ops, in seq order.
		ops: Vec<sync_store::oplog::SignedOp>,
	},
	/// The request was refused.
	Error(ErrorCode),
}

/// Tag byte of a group data frame.
pub const TAG_DATA: u8 = 0;
/// Tag byte of a group the server does not have.
pub const TAG_MISSING: u8 = 1;

/// Framing and decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
	/// Transport failure (includes the peer closing the stream).
	#[error("io: {0}")]
	Io(#[from] std::io::Error),
	/// A frame longer than allowed for its position.
	#[error("frame of {len} bytes exceeds limit {max}")]
	TooLarge {
		/// Announced length.
		len: usize,
		/// Allowed maximum.
		max: usize,
	},
	/// A frame that does not decode.
	#[error("undecodable frame: {0}")]
	Decode(#[from] codec::Error),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
	w: &mut W,
	payload: &[u8],
) -> Result<(), WireError> {
	w.write_all(&(payload.len() as u32).to_le_bytes()).await?;
	w.write_all(payload).await?;
	Ok(())
}

/// Writes one data frame (tag + bytes) without copying the bytes.
pub async fn write_data_frame<W: AsyncWrite + Unpin>(
	w: &mut W,
	tag: u8,
	data: &[u8],
) -> Result<(), WireError> {
	let len = (data.len() + 1) as u32;
	let mut head = [0u8; 5];
	head[..4].copy_from_slice(&len.to_le_bytes());
	head[4] = tag;
	w.write_all(&head).await?;
	w.write_all(data).await?;
	Ok(())
}

/// Reads one frame of at most `max` bytes into `buf` (reused between frames).
pub async fn read_frame_into<R: AsyncRead + Unpin>(
	r: &mut R,
	max: usize,
	buf: &mut Vec<u8>,
) -> Result<(), WireError> {
	let mut len = [0u8; 4];
	r.read_exact(&mut len).await?;
	let len = u32::from_le_bytes(len) as usize;
	if len > max {
		return Err(WireError::TooLarge { len, max });
	}
	buf.resize(len, 0);
	r.read_exact(buf).await?;
	Ok(())
}

/// Reads and decodes one SCALE frame of at most `max` bytes.
pub async fn read_msg<R: AsyncRead + Unpin, T: Decode>(
	r: &mut R,
	max: usize,
) -> Result<T, WireError> {
	let mut buf = Vec::new();
	read_frame_into(r, max, &mut buf).await?;
	Ok(T::decode(&mut &buf[..])?)
}

/// Writes one SCALE frame.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Encode>(
	w: &mut W,
	msg: &T,
) -> Result<(), WireError> {
	write_frame(w, &msg.encode()).await
}

/// Checks a request against the protocol limits.
pub fn check_limits(req: &Request) -> Result<(), ErrorCode> {
	match req {
		Request::Index { count, .. } if *count > MAX_INDEX_PAGE => Err(ErrorCode::TooLarge),
		Request::Ops { max, .. } if *max > MAX_OPS_PER_REQUEST => Err(ErrorCode::TooLarge),
		Request::Groups { ranges } => {
			let total: u64 = ranges.iter().map(|r| r.count as u64).sum();
			if total == 0
				|| total > MAX_GROUPS_PER_REQUEST as u64
				|| ranges.iter().any(|r| r.count == 0)
			{
				Err(ErrorCode::TooLarge)
			} else {
				Ok(())
			}
		},
		_ => Ok(()),
	}
}
