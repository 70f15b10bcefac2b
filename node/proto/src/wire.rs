//! The transfer protocol `/sync-registry/transfer/1`: its messages, the plain types they carry,
//! and the limits both ends check before allocating.
//!
//! A client opens one stream per peer and sends requests one at a time (one outstanding request
//! per peer); the server answers each with a header frame, and for outboards and chunk groups
//! with raw data frames after it, so a response is streamed (never built in memory) and the
//! client verifies each group as it arrives. The framing is in [`crate::frame`].
use crate::ops::{SignedOp, CHECKPOINT_EVERY};
use codec::{Decode, Encode};

/// Name of the transfer protocol's libp2p stream protocol (the major version is part of it).
pub const PROTOCOL_NAME: &str = "/sync-registry/transfer/1";
/// Minor version carried in every request (the first byte of every request frame); a server
/// refuses versions it does not know with [`ErrorCode::UnsupportedVersion`].
pub const VERSION: u8 = 1;

/// A segment id on the wire (SCALE `u64`, as `sync_primitives::SegmentId`).
pub type SegmentId = u64;
/// A BLAKE3 hash: a CID, a root, an op hash (32 raw bytes, as
/// `sync_primitives::commitment::Hash32`).
pub type Hash32 = [u8; 32];

/// Bytes per chunk group, the unit of verification and of data frames (as
/// `sync_primitives::commitment::GROUP_LEN`).
pub const GROUP_LEN: u64 = 16 * 1024;
/// Longest object key in bytes (as `sync_primitives::commitment::MAX_KEY_LEN`).
pub const MAX_KEY_LEN: u32 = 256;
/// Largest object an op may put: 64 GiB. A store refuses writes of larger objects and ops that
/// claim a larger size (so no peer can make a node reserve, fetch or count more than this for
/// one object); a larger object has to be split by the application.
pub const MAX_OBJECT_BYTES: u64 = 64 << 30;
/// Longest `signer` field of an op (a protobuf-encoded Ed25519 libp2p key is 36 bytes) and
/// longest `signature` (Ed25519: 64 bytes). Ops with longer fields are refused, so a holder
/// cannot pad the ops it relays until a window of them no longer fits a response.
pub const MAX_SIGNER_BYTES: usize = 64;
/// Longest `signature` field of an op (see [`MAX_SIGNER_BYTES`]).
pub const MAX_SIGNATURE_BYTES: usize = 128;

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
const _: () = assert!(MAX_OPS_PER_REQUEST as u64 >= CHECKPOINT_EVERY);
/// Most index entries per page.
pub const MAX_INDEX_PAGE: u32 = 1024;

/// Tag byte of a data frame carrying bytes (a group, or a slice of an outboard).
pub const TAG_DATA: u8 = 0;
/// Tag byte of a data frame for a group the server does not have (no bytes follow).
pub const TAG_MISSING: u8 = 1;

/// What a segment root commits to besides the trie top, on the wire (SCALE-identical to
/// `sync_primitives::commitment::RootFacts`).
#[derive(Encode, Decode, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WireFacts {
	/// The root hash.
	pub root: Hash32,
	/// Total chunks (Proof-of-Sync leaves).
	pub leaves: u64,
	/// Number of objects.
	pub entries: u64,
	/// Total bytes of all objects.
	pub bytes: u64,
}

/// A range of chunk groups of one object.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct GroupRange {
	/// Object CID.
	pub cid: Hash32,
	/// The object's size as the client knows it (from a verified index or signed op). A server
	/// whose object of that CID has another size answers every group of the range "missing":
	/// a CID names content, but a size claim that disagrees with it is the claimer's error, and
	/// an honest server must not look like it sent a wrong length.
	pub size: u64,
	/// First group.
	pub first: u64,
	/// Number of groups.
	pub count: u32,
}

/// What a client asks.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum Request {
	/// Which state of `segment` the server can serve.
	#[codec(index = 0)]
	Head {
		/// Segment id.
		segment: SegmentId,
	},
	/// A page of the index of `segment` at `root`, in trie order.
	#[codec(index = 1)]
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
	#[codec(index = 2)]
	Outboard {
		/// Object CID.
		cid: Hash32,
		/// The object's size as the client knows it; a server whose object has another size
		/// answers `NotHeld`.
		size: u64,
	},
	/// Logged ops of `segment` from seq `from` on (gap fill).
	#[codec(index = 3)]
	Ops {
		/// Segment id.
		segment: SegmentId,
		/// First seq wanted.
		from: u64,
		/// Most ops wanted (≤ [`MAX_OPS_PER_REQUEST`]).
		max: u32,
	},
	/// Chunk groups (≤ [`MAX_GROUPS_PER_REQUEST`] in total).
	#[codec(index = 4)]
	Groups {
		/// The ranges, answered in order.
		ranges: Vec<GroupRange>,
	},
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
	pub facts: WireFacts,
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

/// Why a server refused a request.
#[derive(Encode, Decode, Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ErrorCode {
	/// The request's version is not supported.
	#[codec(index = 0)]
	#[error("unsupported protocol version")]
	UnsupportedVersion,
	/// The request could not be decoded.
	#[codec(index = 1)]
	#[error("malformed request")]
	Malformed,
	/// The request asks for more than the limits allow.
	#[codec(index = 2)]
	#[error("request too large")]
	TooLarge,
	/// The server does not hold that segment at that root, or that object.
	#[codec(index = 3)]
	#[error("not held")]
	NotHeld,
	/// The server is at its limits; try later.
	#[codec(index = 4)]
	#[error("busy")]
	Busy,
	/// The server failed internally.
	#[codec(index = 5)]
	#[error("internal error")]
	Internal,
	/// The ops asked for were pruned from the server's log (catch up through a snapshot).
	#[codec(index = 6)]
	#[error("ops pruned from the log")]
	Pruned,
}

/// Response header frame.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum Response {
	/// Answer to [`Request::Head`].
	#[codec(index = 0)]
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
	#[codec(index = 1)]
	Index {
		/// Entries.
		entries: Vec<WireEntry>,
		/// Total entries at that root.
		total: u64,
	},
	/// Answer to [`Request::Outboard`]: `len` bytes follow in data frames.
	#[codec(index = 2)]
	Outboard {
		/// Total outboard bytes.
		len: u64,
	},
	/// Answer to [`Request::Groups`]: one data frame per requested group follows, in order.
	#[codec(index = 3)]
	Groups,
	/// Answer to [`Request::Ops`]: consecutive ops from the requested seq (empty if none).
	#[codec(index = 4)]
	Ops {
		/// The ops, in seq order.
		ops: Vec<SignedOp>,
	},
	/// The request was refused.
	#[codec(index = 5)]
	Error(ErrorCode),
}

/// Checks a request against the protocol limits ([`ErrorCode::TooLarge`] if it asks for more).
pub fn check_limits(req: &Request) -> Result<(), ErrorCode> {
	let within = match req {
		Request::Head { .. } => true,
		Request::Index { count, .. } => *count <= MAX_INDEX_PAGE,
		// Sizes the share of the outboard memory the answer waits for: never beyond the largest
		// object's.
		Request::Outboard { size, .. } => *size <= MAX_OBJECT_BYTES,
		Request::Ops { max, .. } => *max <= MAX_OPS_PER_REQUEST,
		Request::Groups { ranges } => {
			// At most MAX_REQUEST_BYTES / 44 ranges of u32 counts: the sum cannot overflow.
			let total: u64 = ranges.iter().map(|r| r.count as u64).sum();
			let each =
				|r: &GroupRange| r.count > 0 && r.first.checked_add(r.count as u64).is_some();
			total > 0 && total <= MAX_GROUPS_PER_REQUEST as u64 && ranges.iter().all(each)
		},
	};
	if within {
		Ok(())
	} else {
		Err(ErrorCode::TooLarge)
	}
}
