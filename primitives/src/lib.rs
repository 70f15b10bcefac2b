//! Types shared by `pallet-sync-registry`, the runtime and the sync node.
//!
//! Everything here is `no_std` and SCALE-encoded, so the pallet stores exactly what the node
//! reads through the runtime API and what polkadot.js sees in metadata.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

/// Identifier of a segment (a bucket of objects that is owned, synced and proven as one unit).
pub type SegmentId = u64;

/// Maximum length in bytes of a data-plane peer id (a libp2p `PeerId` is a multihash of at
/// most 42 bytes for Ed25519/secp256k1 identities; the slack allows other key types).
pub const MAX_PEER_ID_LEN: u32 = 64;
/// Maximum length in bytes of one multiaddr (e.g. `/ip4/1.2.3.4/tcp/30333/p2p/<id>` in binary
/// form is well under 100 bytes; text forms used by polkadot.js users fit easily too).
pub const MAX_MULTIADDR_LEN: u32 = 128;
/// Maximum number of multiaddrs a node advertises.
pub const MAX_MULTIADDRS: u32 = 8;

/// What a node does for the segments it holds.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum NodeRole {
	/// Accepts writes for the segments it owns or co-owns and commits their roots.
	#[codec(index = 0)]
	Primary,
	/// Mirrors segments to scale reads and redundancy; serves other replicas.
	#[codec(index = 1)]
	Replica,
}

/// Life-cycle of a node in the registry.
///
/// `Joining → Syncing → Active → Lagging → Leaving → Retired`. The per-segment states
/// (`Syncing`, `Active`, `Lagging`) are tracked per holding; a node's own status is the
/// summary the network sees.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum NodeStatus {
	/// Registered, holds nothing yet.
	#[codec(index = 0)]
	Joining,
	/// Fetching at least one segment, no accepted proof for it yet.
	#[codec(index = 1)]
	Syncing,
	/// Every held segment has an accepted Proof-of-Sync for a retained root.
	#[codec(index = 2)]
	Active,
	/// At least one held segment is more than `MaxLag` committed roots behind.
	#[codec(index = 3)]
	Lagging,
	/// Announced its departure; deregistration is possible after the leave delay.
	#[codec(index = 4)]
	Leaving,
	/// Deregistered. Kept only in events: the registry deletes retired nodes.
	#[codec(index = 5)]
	Retired,
}

/// Public facts about a registered node, as the runtime API returns them.
///
/// The pallet stores a bounded variant of this; the API flattens bounded vectors to `Vec`s so
/// that clients need no knowledge of the bounds.
#[derive(Encode, Decode, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct NodeSummary<AccountId, Balance, BlockNumber> {
	/// The account that registered (and signs for) the node.
	pub account: AccountId,
	/// Primary or Replica.
	pub role: NodeRole,
	/// Current life-cycle status.
	pub status: NodeStatus,
	/// libp2p peer id bytes of the node's data plane.
	pub peer_id: alloc::vec::Vec<u8>,
	/// Data-plane listen addresses (multiaddr bytes, text or binary as registered).
	pub multiaddrs: alloc::vec::Vec<alloc::vec::Vec<u8>>,
	/// Deposit held while registered.
	pub deposit: Balance,
	/// Block of registration.
	pub registered_at: BlockNumber,
}

/// What an account can spend on its node's duty transactions (claims, proofs, commits,
/// attestations), for the node's health and an operator's low-balance alert.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug, TypeInfo)]
pub struct AccountFunds<Balance> {
	/// What the account can spend and stay alive (free balance less what is held, frozen, or
	/// needed to keep the account in existence).
	pub spendable: Balance,
	/// The fee of the costliest routine duty — a proof of the largest size — at this block's
	/// fee multiplier.
	pub duty_fee: Balance,
}

sp_api::decl_runtime_apis! {
	/// Read access to the sync registry for the node's sync service and for RPC clients.
	///
	/// Version 2 added [`account_funds`](SyncRegistryApi::account_funds), version 3
	/// [`migration_info`](SyncRegistryApi::migration_info), version 4 its
	/// [`MigrationSummary::sealed`] (a version-3 summary does not decode as version 4's).
	#[api_version(2)]
	pub trait SyncRegistryApi<AccountId, Balance, BlockNumber>
	where
		AccountId: codec::Codec,
		Balance: codec::Codec,
		BlockNumber: codec::Codec,
	{
		/// The node registered by `account`, if any.
		fn node_info(account: AccountId) -> Option<NodeSummary<AccountId, Balance, BlockNumber>>;
		/// The account a data-plane peer id is registered to, if any.
		fn node_by_peer_id(peer_id: alloc::vec::Vec<u8>) -> Option<AccountId>;
		/// A segment: owner, Primaries, holders with their state, retained roots, migration.
		fn segment_info(segment: SegmentId) -> Option<SegmentSummary<AccountId>>;
		/// Segments the account owns, is a Primary of, or holds.
		fn node_segments(account: AccountId) -> alloc::vec::Vec<SegmentId>;
		/// Open challenges of the account, with seed and chunk indexes once known.
		fn open_challenges(account: AccountId) -> alloc::vec::Vec<ChallengeSummary<BlockNumber>>;
		/// What the account can spend on duties, and what one costs.
		#[api_version(2)]
		fn account_funds(account: AccountId) -> AccountFunds<Balance>;
		/// The accepted migration of a segment and its phase, if any (the fenced handover:
		/// a proven migration waits for the old owner's seal, a sealed one for the target's
		/// confirmation).
		#[api_version(4)]
		fn migration_info(segment: SegmentId) -> Option<MigrationSummary<AccountId, BlockNumber>>;
	}
}

/// Data-plane peer id bytes as stored on chain (a libp2p `PeerId` in its binary multihash form).
pub type PeerIdBytes = sp_runtime::BoundedVec<u8, sp_core::ConstU32<MAX_PEER_ID_LEN>>;
/// One multiaddr in text form, e.g. `/ip4/127.0.0.1/tcp/30433`.
pub type MultiaddrBytes = sp_runtime::BoundedVec<u8, sp_core::ConstU32<MAX_MULTIADDR_LEN>>;
/// The multiaddrs a node advertises for its data plane.
pub type Multiaddrs = sp_runtime::BoundedVec<MultiaddrBytes, sp_core::ConstU32<MAX_MULTIADDRS>>;

/// Why a peer id or multiaddr was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddressError {
	/// The peer id is not a well-formed identity or sha2-256 multihash.
	InvalidPeerId,
	/// A multiaddr is empty, does not start with `/`, or has non-printable bytes.
	InvalidMultiaddr,
}

/// Checks that `bytes` has the shape of a libp2p `PeerId`: a multihash with code `0x00`
/// (identity, public keys up to 42 bytes such as Ed25519) or `0x12` (sha2-256, 32 bytes), a
/// one-byte length and exactly that many digest bytes.
///
/// This is a structural check only; the data plane verifies the key during its handshake.
pub fn validate_peer_id(bytes: &[u8]) -> Result<(), AddressError> {
	match bytes {
		[0x00, len, digest @ ..]
			if (*len as usize) == digest.len() && !digest.is_empty() && *len <= 42 =>
		{
			Ok(())
		},
		[0x12, 32, digest @ ..] if digest.len() == 32 => Ok(()),
		_ => Err(AddressError::InvalidPeerId),
	}
}

/// Checks that a multiaddr is in text form: starts with `/`, printable ASCII, no spaces.
///
/// Text form is what operators type in polkadot.js and what `sync-node` prints, so the chain
/// stores exactly that; the node parses it with libp2p before dialling.
pub fn validate_multiaddr(bytes: &[u8]) -> Result<(), AddressError> {
	if bytes.len() < 2 || bytes[0] != b'/' || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
		return Err(AddressError::InvalidMultiaddr);
	}
	Ok(())
}

/// An Ed25519 signature by a node's data-plane key, binding its peer id to one account on one
/// chain (see [`peer_binding_message`]).
pub type PeerSignature = [u8; 64];

/// Domain tag that starts every [`peer_binding_message`], so the data-plane key's signature
/// can never be mistaken for one made for another purpose.
pub const PEER_BINDING_TAG: &[u8] = b"sync-registry/peer-binding/v1";

/// The identity-multihash prefix of a libp2p Ed25519 peer id: multihash code `0x00`, length
/// 36, then the protobuf `PublicKey { Type = Ed25519 (1), Data = 32 bytes }`.
const ED25519_PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The encodings, sign bit cleared, of the Ed25519 points of small order (libsodium's
/// `ge25519_has_small_order` list): the identity, the points of order 2, 4 and 8, and the
/// non-canonical `y = p - 1, p, p + 1`. With either sign bit they give all 14 encodings.
const SMALL_ORDER_KEYS: [[u8; 32]; 7] = {
	let mut ff = [0xff; 32];
	ff[31] = 0x7f;
	let mut p_minus_1 = ff;
	p_minus_1[0] = 0xec;
	let mut p = ff;
	p[0] = 0xed;
	let mut p_plus_1 = ff;
	p_plus_1[0] = 0xee;
	let mut one = [0; 32];
	one[0] = 1;
	[
		[0; 32],
		one,
		[
			0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
			0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
			0x6d, 0x53, 0xfc, 0x05,
		],
		[
			0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
			0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
			0x92, 0xac, 0x03, 0x7a,
		],
		p_minus_1,
		p,
		p_plus_1,
	]
};

/// Whether `key` encodes an Ed25519 point of small order: a "key" for which a signature
/// verifies on any message (ZIP-215 verification, which the runtime uses, accepts them), so
/// nobody holds it and it can bind nothing.
pub fn is_small_order_ed25519(key: &[u8; 32]) -> bool {
	let mut k = *key;
	k[31] &= 0x7f;
	SMALL_ORDER_KEYS.contains(&k)
}

/// The Ed25519 public key a libp2p peer id carries, if it is an Ed25519 peer id (the only
/// kind the chain can verify a binding for; `sync-node` always uses Ed25519) and not a
/// small-order point ([`is_small_order_ed25519`]).
pub fn peer_id_ed25519_key(peer_id: &[u8]) -> Option<[u8; 32]> {
	let key: [u8; 32] = peer_id.strip_prefix(&ED25519_PEER_ID_PREFIX[..])?.try_into().ok()?;
	(!is_small_order_ed25519(&key)).then_some(key)
}

/// What the data-plane key signs to let `account` register `peer_id` on the chain whose
/// genesis hash is `genesis`: `PEER_BINDING_TAG ‖ genesis ‖ account ‖ peer_id`, where `account`
/// is the SCALE encoding of the account id (fixed length for a given runtime, e.g. 32 bytes
/// for `AccountId32`), so the concatenation is unambiguous.
///
/// No nonce: a binding only ever lets *that* account use *that* peer id on *that* chain, so
/// replaying it gives nobody anything the key's owner did not grant.
pub fn peer_binding_message(
	genesis: &[u8; 32],
	account: &[u8],
	peer_id: &[u8],
) -> alloc::vec::Vec<u8> {
	let mut m =
		alloc::vec::Vec::with_capacity(PEER_BINDING_TAG.len() + 32 + account.len() + peer_id.len());
	m.extend_from_slice(PEER_BINDING_TAG);
	m.extend_from_slice(genesis);
	m.extend_from_slice(account);
	m.extend_from_slice(peer_id);
	m
}

pub mod commitment;
pub mod hex;
pub mod outboard;
pub mod rules;

/// Keys and formats of the offchain local storage shared by the node service and the pallet's
/// off-chain worker.
pub mod offchain {
	/// Where the node service stores the SCALE-encoded
	/// [`SyncProof`](crate::commitment::SyncProof) answering challenge `id`.
	pub fn proof_key(id: u64) -> alloc::vec::Vec<u8> {
		let mut k = b"sync-registry::proof::".to_vec();
		k.extend_from_slice(&id.to_le_bytes());
		k
	}

	/// Where the off-chain worker records the block at which it last submitted a proof for
	/// challenge `id` (a `u32`).
	pub fn sent_key(id: u64) -> alloc::vec::Vec<u8> {
		let mut k = b"sync-registry::sent::".to_vec();
		k.extend_from_slice(&id.to_le_bytes());
		k
	}

	/// Where the node service stores its current [`Intents`] (replaced as a whole).
	pub const INTENTS_KEY: &[u8] = b"sync-registry::intents";

	/// Where the off-chain worker records the block at which it last submitted `intent` (a
	/// `u32`), keyed by the intent's hash so a changed intent is sent at once.
	pub fn intent_sent_key(intent: &Intent) -> alloc::vec::Vec<u8> {
		let mut k = b"sync-registry::intent-sent::".to_vec();
		k.extend_from_slice(&blake3::hash(&codec::Encode::encode(intent)).as_bytes()[..16]);
		k
	}

	/// A transaction the node service wants signed with its `sync` key and submitted.
	///
	/// The service decides *what* the chain should learn (it sees its store and the data
	/// plane); the off-chain worker holds the key, re-checks each intent against the state of
	/// the block it runs on, and submits only what the chain would accept. Nothing here is
	/// trusted by the chain: every call is validated again on dispatch.
	#[derive(codec::Encode, codec::Decode, Clone, PartialEq, Eq, Debug)]
	pub enum Intent {
		/// Register this node (`register_node`) with the data-plane identity below.
		#[codec(index = 0)]
		Register {
			/// Role to register with.
			role: crate::NodeRole,
			/// Multiaddrs of the data plane (text form).
			multiaddrs: alloc::vec::Vec<alloc::vec::Vec<u8>>,
			/// One binding per keystore account the node may register as: the SCALE-encoded
			/// account id and the data-plane key's signature over
			/// [`peer_binding_message`](crate::peer_binding_message) for it.
			bindings: alloc::vec::Vec<(alloc::vec::Vec<u8>, crate::PeerSignature)>,
		},
		/// Commit the owned segment's root at `seq` (`commit_root`).
		#[codec(index = 1)]
		Commit {
			/// Segment.
			segment: crate::SegmentId,
			/// Seq of the committed head.
			seq: u64,
			/// Root facts at `seq`.
			facts: crate::commitment::RootFacts,
		},
		/// Claim to hold the committed root `seq` (`claim_sync`), which issues a challenge.
		#[codec(index = 2)]
		Claim {
			/// Segment.
			segment: crate::SegmentId,
			/// Seq of a retained committed root the node can prove.
			seq: u64,
		},
		/// Attest, as a co-Primary, that the node reached the latest root (`attest_root`).
		#[codec(index = 3)]
		Attest {
			/// Segment.
			segment: crate::SegmentId,
			/// Seq of the latest commit.
			seq: u64,
			/// Its root.
			root: crate::commitment::Hash32,
		},
		/// Seal the owned segment's epoch at its last op `seq` for a proven migration
		/// (`seal_segment`): the node has stopped taking writes to it.
		#[codec(index = 4)]
		Seal {
			/// Segment.
			segment: crate::SegmentId,
			/// Seq of the last op (the head, pinned).
			seq: u64,
			/// Root facts at `seq`.
			facts: crate::commitment::RootFacts,
		},
		/// Confirm, as a migration's target, that the store holds the sealed `root` at `seq`
		/// (`confirm_seal`): ownership moves to this node.
		#[codec(index = 5)]
		ConfirmSeal {
			/// Segment.
			segment: crate::SegmentId,
			/// The sealed seq.
			seq: u64,
			/// The root the store has at `seq` (the sealed one).
			root: crate::commitment::Hash32,
		},
	}

	impl Intent {
		/// The intent's kind, as logs and metrics name it.
		pub fn kind(&self) -> &'static str {
			match self {
				Intent::Register { .. } => "register",
				Intent::Commit { .. } => "commit",
				Intent::Claim { .. } => "claim",
				Intent::Attest { .. } => "attest",
				Intent::Seal { .. } => "seal",
				Intent::ConfirmSeal { .. } => "confirm_seal",
			}
		}
	}

	/// Everything the node service currently wants from the chain, for the account whose
	/// registered peer id is `peer_id` (the node's data-plane identity).
	#[derive(codec::Encode, codec::Decode, Clone, PartialEq, Eq, Debug, Default)]
	pub struct Intents {
		/// Binary libp2p peer id of the node's data plane.
		pub peer_id: alloc::vec::Vec<u8>,
		/// What to submit.
		pub items: alloc::vec::Vec<Intent>,
	}
}

/// The key type of the node keys that sign Proof-of-Sync transactions.
pub const KEY_TYPE: sp_core::crypto::KeyTypeId = sp_core::crypto::KeyTypeId(*b"sync");

/// sr25519 application crypto for [`KEY_TYPE`]: the node's account key.
pub mod crypto {
	use super::KEY_TYPE;
	use sp_runtime::app_crypto::{app_crypto, sr25519};
	app_crypto!(sr25519, KEY_TYPE);
}

/// Sync state of one holder for one segment.
#[derive(
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
)]
pub enum HoldingStatus {
	/// Fetching; no accepted proof for a root it claims.
	#[codec(index = 0)]
	Syncing,
	/// Has an accepted Proof-of-Sync for a root within `MaxLag` commits of the latest.
	#[codec(index = 1)]
	Active,
	/// Its last proven root is more than `MaxLag` commits behind the latest.
	#[codec(index = 2)]
	Lagging,
}

/// A committed root as the runtime API returns it.
#[derive(Encode, Decode, TypeInfo, Clone, Copy, PartialEq, Eq, Debug)]
pub struct RootSummary {
	/// Seq of the last op included.
	pub seq: u64,
	/// Commit number within the segment (1-based).
	pub index: u32,
	/// Root hash, leaves, entries, bytes.
	pub facts: commitment::RootFacts,
}

/// A segment as the runtime API returns it.
#[derive(Encode, Decode, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct SegmentSummary<AccountId> {
	/// Segment id.
	pub id: SegmentId,
	/// Current provider.
	pub owner: AccountId,
	/// Owner and co-Primaries.
	pub primaries: alloc::vec::Vec<AccountId>,
	/// Non-owner holders with their state and last proven seq.
	pub holders: alloc::vec::Vec<(AccountId, HoldingStatus, Option<u64>)>,
	/// Retained roots, oldest first.
	pub roots: alloc::vec::Vec<RootSummary>,
	/// Pending migration target (`Some((to, completed))`).
	pub migration: Option<(AccountId, bool)>,
	/// Co-Primaries whose attested root differs from the committed one: (who, seq, root).
	pub divergences: alloc::vec::Vec<(AccountId, u64, commitment::Hash32)>,
	/// The retained ownership epochs, oldest first (at most the runtime's `MaxOwnerEpochs`):
	/// an op checkpoint is verified against the key of the owner of its epoch, not of the
	/// current owner. The last entry is the current owner with its current peer id.
	pub epochs: alloc::vec::Vec<EpochSummary>,
}

/// An accepted migration as the runtime API returns it.
#[derive(Encode, Decode, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct MigrationSummary<AccountId, BlockNumber> {
	/// The owner handing the segment over.
	pub from: AccountId,
	/// The target.
	pub to: AccountId,
	/// The seq of the root the target proved: from then on the old owner refuses writes and
	/// seals its epoch. `None` while the target syncs.
	pub proven: Option<u64>,
	/// The seq the old owner's epoch was sealed at: the target confirms it holds the root
	/// there (`confirm_seal`), and ownership moves. `None` before the seal.
	pub sealed: Option<u64>,
	/// Ownership moved (the old owner is retained until `until`).
	pub completed: bool,
	/// Unproven: the timeout. Proven: when the chain seals at the latest commit itself.
	/// Sealed: when an unconfirmed seal aborts the migration. Completed: the old owner's
	/// release.
	pub until: BlockNumber,
}

/// One ownership epoch of a segment as the runtime API returns it: from `first_seq` on, the
/// segment's ops are signed by the data-plane key of `peer_id` (until the next epoch starts).
///
/// A new epoch starts when the segment is created (epoch 1, `first_seq` 1), when ownership
/// moves (a completed migration, Root's `force_set_owner`) and when the owner registers a new
/// peer id. The epoch ends where the next one starts: every seq belongs to exactly one epoch, so
/// to one key (a migration starts the target's epoch right after the seq the old owner sealed).
///
/// (No serde, like the other summaries of the runtime API: they travel SCALE-encoded.)
#[derive(Encode, Decode, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct EpochSummary {
	/// Epoch number (1 for the segment's creation, then +1 per epoch).
	pub epoch: u32,
	/// Binary libp2p peer id (Ed25519) whose key signs the segment's ops in this epoch.
	pub peer_id: alloc::vec::Vec<u8>,
	/// The first seq that may belong to this epoch.
	pub first_seq: u64,
}

/// An open challenge as the runtime API returns it: everything a prover needs.
#[derive(Encode, Decode, TypeInfo, Clone, PartialEq, Eq, Debug)]
pub struct ChallengeSummary<BlockNumber> {
	/// Challenge id (the `submit_proof` argument).
	pub id: u64,
	/// Segment to prove.
	pub segment: SegmentId,
	/// Seq of the root to prove.
	pub seq: u64,
	/// The root to prove against.
	pub facts: commitment::RootFacts,
	/// Seed, once the seed block is known.
	pub seed: Option<commitment::Hash32>,
	/// The chunk indexes to prove (empty until the seed is known).
	pub indexes: alloc::vec::Vec<u64>,
	/// Last block in which the proof is accepted.
	pub deadline: BlockNumber,
	/// Whether this is a periodic re-challenge (else a claim).
	pub rechallenge: bool,
}

#[cfg(test)]
mod tests {
	use super::*;

	fn ed25519_peer_id() -> alloc::vec::Vec<u8> {
		// identity multihash of a protobuf-encoded Ed25519 public key: 0x00, 36, 08 01 12 20, key
		let mut v = alloc::vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
		v.extend_from_slice(&[7u8; 32]);
		v
	}

	#[test]
	fn peer_id_shapes() {
		assert_eq!(validate_peer_id(&ed25519_peer_id()), Ok(()));
		let mut sha = alloc::vec![0x12, 32];
		sha.extend_from_slice(&[1u8; 32]);
		assert_eq!(validate_peer_id(&sha), Ok(()));
		// truncated, wrong length byte, unknown code, empty
		let id = ed25519_peer_id();
		assert_eq!(validate_peer_id(&id[..id.len() - 1]), Err(AddressError::InvalidPeerId));
		assert_eq!(validate_peer_id(&[0x12, 31, 0]), Err(AddressError::InvalidPeerId));
		assert_eq!(validate_peer_id(&[0x13, 1, 0]), Err(AddressError::InvalidPeerId));
		assert_eq!(validate_peer_id(&[]), Err(AddressError::InvalidPeerId));
		assert_eq!(validate_peer_id(&[0x00, 0]), Err(AddressError::InvalidPeerId));
	}

	#[test]
	fn ed25519_key_is_read_from_ed25519_peer_ids_only() {
		assert_eq!(peer_id_ed25519_key(&ed25519_peer_id()), Some([7u8; 32]));
		let id = ed25519_peer_id();
		assert_eq!(peer_id_ed25519_key(&id[..id.len() - 1]), None);
		let mut long = id.clone();
		long.push(0);
		assert_eq!(peer_id_ed25519_key(&long), None);
		// secp256k1 key type (2) inside an identity multihash
		let mut secp = id.clone();
		secp[3] = 0x02;
		assert_eq!(peer_id_ed25519_key(&secp), None);
		let mut sha = alloc::vec![0x12, 32];
		sha.extend_from_slice(&[1u8; 32]);
		assert_eq!(peer_id_ed25519_key(&sha), None);
	}

	/// Review of #13: ZIP-215 verification accepts a signature (R = identity, S = 0) for any
	/// message under a small-order key, so such a "peer id" could be bound by anyone.
	#[test]
	fn small_order_keys_bind_nothing() {
		use sp_core::{ed25519, Pair as _};
		let mut forged = [0u8; 64];
		forged[0] = 1; // R = the identity, S = 0
		let mut accepted = 0;
		for base in SMALL_ORDER_KEYS {
			for sign in [0u8, 0x80] {
				let mut key = base;
				key[31] |= sign;
				assert!(is_small_order_ed25519(&key));
				let mut id = ED25519_PEER_ID_PREFIX.to_vec();
				id.extend_from_slice(&key);
				assert_eq!(peer_id_ed25519_key(&id), None, "{key:02x?}");
				let sig = ed25519::Signature::from_raw(forged);
				if ed25519::Pair::verify(&sig, b"any message", &ed25519::Public::from_raw(key)) {
					accepted += 1;
				}
			}
		}
		// The forgery is real (the runtime's verifier takes it), which is why these are refused.
		assert!(accepted >= 1, "no small-order forgery verified");
		// An honest key is not mistaken for one.
		let honest = ed25519::Pair::from_seed(&[7; 32]).public().0;
		assert!(!is_small_order_ed25519(&honest));
	}

	#[test]
	fn peer_binding_message_separates_its_fields() {
		let m = peer_binding_message(&[1; 32], &[2; 32], &[3; 38]);
		assert!(m.starts_with(PEER_BINDING_TAG));
		assert_eq!(m.len(), PEER_BINDING_TAG.len() + 32 + 32 + 38);
		assert_ne!(m, peer_binding_message(&[9; 32], &[2; 32], &[3; 38]));
		assert_ne!(m, peer_binding_message(&[1; 32], &[9; 32], &[3; 38]));
	}

	#[test]
	fn enum_indexes_match_declaration_order() {
		use codec::Encode;
		assert_eq!(NodeRole::Primary.encode(), [0]);
		assert_eq!(NodeRole::Replica.encode(), [1]);
		assert_eq!(NodeStatus::Joining.encode(), [0]);
		assert_eq!(NodeStatus::Retired.encode(), [5]);
		assert_eq!(HoldingStatus::Syncing.encode(), [0]);
		assert_eq!(HoldingStatus::Lagging.encode(), [2]);
		let claim = offchain::Intent::Claim { segment: 1, seq: 2 };
		assert_eq!(claim.encode()[0], 2);
		let attest = offchain::Intent::Attest { segment: 1, seq: 2, root: [0; 32] };
		assert_eq!(attest.encode()[0], 3);
	}

	#[test]
	fn multiaddr_shapes() {
		assert_eq!(validate_multiaddr(b"/ip4/127.0.0.1/tcp/30433"), Ok(()));
		assert_eq!(validate_multiaddr(b"ip4/127.0.0.1"), Err(AddressError::InvalidMultiaddr));
		assert_eq!(validate_multiaddr(b"/"), Err(AddressError::InvalidMultiaddr));
		assert_eq!(validate_multiaddr(b"/ip4/1.2.3.4 /tcp/1"), Err(AddressError::InvalidMultiaddr));
		assert_eq!(validate_multiaddr(&[b'/', 0xff]), Err(AddressError::InvalidMultiaddr));
	}
}
