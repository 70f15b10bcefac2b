#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod frame;
pub mod gossip;
pub mod ops;
pub mod wire;

pub use frame::{read_frame_into, read_msg, write_data_frame, write_frame, write_msg, WireError};
pub use gossip::{announcement_topic, Announcement, ANNOUNCE_DOMAIN, MAX_ANNOUNCEMENT_BYTES};
pub use ops::{
	op_signing_payload, Epoch, Op, OpKind, OpSigner, OpVerifier, SignedAt, SignedOp,
	CHECKPOINT_EVERY, NO_PREV_OP, OP_DOMAIN,
};
pub use wire::{
	check_limits, Envelope, ErrorCode, GroupRange, Hash32, Request, Response, SegmentId, WireEntry,
	WireFacts, WireHead, GROUP_LEN, MAX_DATA_FRAME, MAX_GROUPS_PER_REQUEST, MAX_HEADER_BYTES,
	MAX_INDEX_PAGE, MAX_KEY_LEN, MAX_OBJECT_BYTES, MAX_OPS_PER_REQUEST, MAX_REQUEST_BYTES,
	MAX_SIGNATURE_BYTES, MAX_SIGNER_BYTES, PROTOCOL_NAME, TAG_DATA, TAG_MISSING, VERSION,
};

#[cfg(test)]
mod tests;
