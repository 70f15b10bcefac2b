//! Signed ops: every write a segment's Primary accepts, with its place in the segment's log,
//! the hash of the op before it, and the roots before and after it; the checkpoint signing
//! payload; and the traits through which the store signs and checks ops without knowing key
//! types.
//!
//! # The op chain and checkpoints
//! Each op names the [`Op::hash`] of the op before it in the segment's log (`prev_op`; all zero
//! when its writer does not have that op: the first op, or a new owner that started from a
//! snapshot). The Primary signs *checkpoints* only — the last op of each write batch and every
//! [`CHECKPOINT_EVERY`]-th seq — over [`op_signing_payload`], which includes `prev_op`. A
//! follower replays a batch only if it ends on a checkpoint and every op in it names the hash of
//! the op before it, so the one signature authenticates every op of the batch, not just the
//! state at its end: a different path to the same root breaks the chain at the checkpoint.
use crate::{
	gossip::Announcement,
	wire::{Hash32, SegmentId},
};
use codec::{Decode, Encode};

/// A Primary signs at least every this many seqs (and the last op of every write batch), so
/// any window of this many consecutive ops contains a checkpoint.
pub const CHECKPOINT_EVERY: u64 = 256;

/// Domain tag of the checkpoint signing payload (see [`op_signing_payload`]).
pub const OP_DOMAIN: &[u8] = b"sync-registry/op/v3";

/// The `prev_op` of an op whose writer does not have the op before it.
pub const NO_PREV_OP: Hash32 = [0; 32];

/// An ownership epoch of a segment: 1 for its creator, one more at each change of owner or of
/// the owner's data-plane key (recorded on chain).
pub type Epoch = u32;

/// What an op does to the index.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub enum OpKind {
	/// `key` now maps to the object `(cid, size)`.
	#[codec(index = 0)]
	Put {
		/// Object key (at most [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes).
		key: Vec<u8>,
		/// Object CID.
		cid: Hash32,
		/// Object size in bytes (at most [`MAX_OBJECT_BYTES`](crate::MAX_OBJECT_BYTES)).
		size: u64,
	},
	/// `key` is removed.
	#[codec(index = 1)]
	Delete {
		/// Object key.
		key: Vec<u8>,
	},
}

/// One write, as the owning Primary ordered it.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct Op {
	/// The segment.
	pub segment: SegmentId,
	/// The ownership epoch of its writer: the chain records, per segment, each owner's epoch
	/// number, data-plane key and first seq, and a checkpoint verifies only by the key of the
	/// owner of *its* epoch (so history stays verifiable after migrations, re-keys and
	/// removals).
	pub epoch: Epoch,
	/// Its position in the segment's log (the first write is 1).
	pub seq: u64,
	/// [`Op::hash`] of the op at `seq - 1` of the segment's log, or [`NO_PREV_OP`] when the
	/// writer does not have that op (seq 1, or a new owner that started from a snapshot).
	pub prev_op: Hash32,
	/// The change.
	pub kind: OpKind,
	/// Segment root before the op.
	pub prev_root: Hash32,
	/// Segment root after the op.
	pub new_root: Hash32,
}

impl Op {
	/// Hash of the op: BLAKE3 of its SCALE encoding (no domain tag, no genesis). What the next
	/// op's `prev_op` and gossip announcements name.
	pub fn hash(&self) -> Hash32 {
		*blake3::hash(&self.encode()).as_bytes()
	}
}

/// The bytes a Primary signs for a checkpoint `op` on the chain whose genesis hash is `genesis`:
/// [`OP_DOMAIN`] ‖ `genesis` (32 bytes) ‖ SCALE(`op`). The genesis hash makes a signature good
/// on one chain only.
pub fn op_signing_payload(genesis: &Hash32, op: &Op) -> Vec<u8> {
	let mut out = Vec::with_capacity(OP_DOMAIN.len() + 32 + op.size_hint());
	out.extend_from_slice(OP_DOMAIN);
	out.extend_from_slice(genesis);
	op.encode_to(&mut out);
	out
}

/// An op with its Primary's signature.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct SignedOp {
	/// The op.
	pub op: Op,
	/// The signer's public key, in the encoding the verifier understands.
	pub signer: Vec<u8>,
	/// The signature over [`op_signing_payload`], or empty between checkpoints.
	pub signature: Vec<u8>,
}

impl SignedOp {
	/// Whether this op carries the Primary's checkpoint signature.
	pub fn is_checkpoint(&self) -> bool {
		!self.signature.is_empty()
	}
}

/// Signs ops on the owning Primary, for one chain, as the owner of one epoch.
pub trait OpSigner {
	/// The genesis hash of the chain this signer writes for (part of every signed payload).
	fn genesis(&self) -> Hash32;
	/// The ownership epoch the signer writes in (recorded in every op it makes).
	fn epoch(&self) -> Epoch;
	/// The public key recorded with each op.
	fn public(&self) -> Vec<u8>;
	/// Signs `payload`.
	fn sign(&self, payload: &[u8]) -> Vec<u8>;
	/// The checkpoint signature of `op`: [`OpSigner::sign`] over
	/// [`op_signing_payload`]`(genesis, op)`.
	fn sign_op(&self, op: &Op) -> Vec<u8> {
		self.sign(&op_signing_payload(&self.genesis(), op))
	}
}

/// Where a signature sits in a segment's history: the writer's epoch and the seq it covers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SignedAt {
	/// The segment.
	pub segment: SegmentId,
	/// The epoch the signer claims to write in.
	pub epoch: Epoch,
	/// The seq the signature covers.
	pub seq: u64,
}

/// Decides whether a signature is valid and made by the owner of the segment in the epoch it
/// names, on one chain.
pub trait OpVerifier {
	/// The genesis hash of the chain whose signatures this verifier accepts.
	fn genesis(&self) -> Hash32;
	/// `true` if `signature` over `payload` by `signer` is valid and `signer` is the key the
	/// chain records for the owner of `at.segment` in epoch `at.epoch`, whose ops start at or
	/// before `at.seq`.
	fn verify(&self, at: SignedAt, signer: &[u8], payload: &[u8], signature: &[u8]) -> bool;
	/// `false` if this verifier has no record of the epoch `at` names (its view of the chain
	/// may be behind the signer's): a signature in it can be neither accepted nor called a
	/// forgery yet. Every epoch is known by default.
	fn knows(&self, at: SignedAt) -> bool {
		let _ = at;
		true
	}
	/// `true` if the chain ended the epoch `at` names before `at.seq`: a later epoch starts at
	/// or before it (the epoch was sealed). Such an op is not part of the segment, whoever
	/// signed it. No epoch ends by default.
	fn ended(&self, at: SignedAt) -> bool {
		let _ = at;
		false
	}
	/// `true` if `signed` carries a valid checkpoint signature (over
	/// [`op_signing_payload`]`(genesis, op)`) by the owner of its epoch.
	fn verify_op(&self, signed: &SignedOp) -> bool {
		let payload = op_signing_payload(&self.genesis(), &signed.op);
		let op = &signed.op;
		let at = SignedAt { segment: op.segment, epoch: op.epoch, seq: op.seq };
		self.verify(at, &signed.signer, &payload, &signed.signature)
	}
	/// `true` if `a` is signed (over [`Announcement::signing_payload`] with this verifier's
	/// genesis) by the owner of its epoch.
	fn verify_announcement(&self, a: &Announcement) -> bool {
		let at = SignedAt { segment: a.segment, epoch: a.epoch, seq: a.seq };
		self.verify(at, &a.signer, &a.signing_payload(&self.genesis()), &a.signature)
	}
}
