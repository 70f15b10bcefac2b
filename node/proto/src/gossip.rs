//! Gossip announcements: a Primary's small signed statement of how far a segment's log goes,
//! published on the segment's gossipsub topic ([`announcement_topic`]).
use crate::{
	ops::{Epoch, Op},
	wire::{Hash32, SegmentId},
};
use codec::{Decode, Encode};

/// Most bytes of one announcement on the wire.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 1024;

/// Domain tag of the announcement signing payload (see [`Announcement::signing_payload`]).
pub const ANNOUNCE_DOMAIN: &[u8] = b"sync-registry/announce/v3";

/// The gossipsub topic (an identity topic: the string is the topic hash) of a segment's
/// announcements.
pub fn announcement_topic(segment: SegmentId) -> String {
	format!("/sync-registry/segment/{segment}/ops/1")
}

/// A Primary's signed statement that `segment`'s log reached `seq`, with that op's hash and the
/// root after it.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct Announcement {
	/// The segment.
	pub segment: SegmentId,
	/// The epoch of the announced op (whose owner signs the announcement).
	pub epoch: Epoch,
	/// Seq of the announced op.
	pub seq: u64,
	/// [`Op::hash`] of that op.
	pub op_hash: Hash32,
	/// Segment root after it.
	pub new_root: Hash32,
	/// The signer's public key (in the encoding the verifier understands).
	pub signer: Vec<u8>,
	/// Signature over [`Announcement::signing_payload`].
	pub signature: Vec<u8>,
}

impl Announcement {
	/// The announcement of `op`, not signed yet (`signer` and `signature` empty).
	pub fn unsigned(op: &Op) -> Announcement {
		Announcement {
			segment: op.segment,
			epoch: op.epoch,
			seq: op.seq,
			op_hash: op.hash(),
			new_root: op.new_root,
			signer: Vec::new(),
			signature: Vec::new(),
		}
	}

	/// The bytes a Primary signs on the chain whose genesis hash is `genesis`:
	/// [`ANNOUNCE_DOMAIN`] ‖ `genesis` (32 bytes) ‖ SCALE(`segment`, `epoch`, `seq`, `op_hash`,
	/// `new_root`) — every field but the signer and the signature.
	pub fn signing_payload(&self, genesis: &Hash32) -> Vec<u8> {
		let mut out = Vec::with_capacity(ANNOUNCE_DOMAIN.len() + 32 + 8 + 4 + 8 + 32 + 32);
		out.extend_from_slice(ANNOUNCE_DOMAIN);
		out.extend_from_slice(genesis);
		(self.segment, self.epoch, self.seq, self.op_hash, self.new_root).encode_to(&mut out);
		out
	}
}
