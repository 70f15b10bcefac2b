//! Live announcements over gossipsub: one topic per segment carrying small signed
//! [`Announcement`]s (segment, seq, op hash, new root) of the Primary's newest op. Op bodies and
//! objects are fetched by request ([`super::deltas`]); gossip only says how far the log goes.
//!
//! Every announcement is validated before gossipsub forwards it (`validate_messages`):
//! - **Reject** (not forwarded; the peer that sent it is penalised — banned when
//!   [`PeerManagerConfig::ban_on_invalid`](crate::peers::PeerManagerConfig) is set): undecodable,
//!   on the wrong topic, not signed by a Primary of the segment, or contradicting the logged op
//!   at that seq (same seq, different op).
//! - **Ignore** (not forwarded, no penalty): a segment this node does not follow, or a seq
//!   already applied with exactly that op — a replay. Honest meshes deliver these too (an
//!   announcement can arrive after the range fetch it triggered elsewhere), so a replay is
//!   dropped rather than punished; it is never applied twice (the store's replay is
//!   exactly-once).
//! - **Accept**: a valid announcement ahead of this node's head; the follow loop fetches the gap.
use crate::{swarm::Command, SyncNetwork};
use codec::{Decode, DecodeAll, Encode};
use libp2p::{gossipsub, identity::Keypair, PeerId};
use sync_primitives::{commitment::Hash32, SegmentId};
use sync_store::{oplog::SignedOp, Head, StoreError};

/// Most bytes of one announcement on the wire.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 1024;

/// A Primary's signed statement that `segment`'s log reached `seq`, with that op's hash and the
/// root after it.
#[derive(Encode, Decode, Clone, PartialEq, Eq, Debug)]
pub struct Announcement {
	/// The segment.
	pub segment: SegmentId,
	/// Seq of the announced op.
	pub seq: u64,
	/// [`sync_store::oplog::Op::hash`] of that op.
	pub op_hash: Hash32,
	/// Segment root after it.
	pub new_root: Hash32,
	/// The signer's public key (protobuf-encoded libp2p key).
	pub signer: Vec<u8>,
	/// Signature over [`Announcement::signing_payload`].
	pub signature: Vec<u8>,
}

impl Announcement {
	/// Announces `op` (a Primary's newest op), signed with `key`.
	pub fn of(op: &SignedOp, key: &Keypair) -> Announcement {
		let mut a = Announcement {
			segment: op.op.segment,
			seq: op.op.seq,
			op_hash: op.op.hash(),
			new_root: op.op.new_root,
			signer: key.public().encode_protobuf(),
			signature: Vec::new(),
		};
		a.signature = key.sign(&a.signing_payload()).expect("Ed25519 signing does not fail");
		a
	}

	/// The bytes a Primary signs (domain separated from ops).
	pub fn signing_payload(&self) -> Vec<u8> {
		(b"sync-registry/announce/v1", self.segment, self.seq, self.op_hash, self.new_root).encode()
	}
}

/// The gossipsub topic of a segment.
pub fn topic(segment: SegmentId) -> gossipsub::IdentTopic {
	gossipsub::IdentTopic::new(format!("/sync-registry/segment/{segment}/ops/1"))
}

/// What validation decided, and why (the `outcome` label of `sync_net_gossip_total`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
	/// New: forward it and fetch the gap.
	Accept,
	/// Not for us, or a replay of an applied op.
	Ignore(&'static str),
	/// Invalid: drop it and penalise the sender.
	Reject(&'static str),
}

impl Verdict {
	pub(crate) fn label(&self) -> &'static str {
		match self {
			Verdict::Accept => "accepted",
			Verdict::Ignore(why) | Verdict::Reject(why) => why,
		}
	}
	pub(crate) fn acceptance(&self) -> gossipsub::MessageAcceptance {
		match self {
			Verdict::Accept => gossipsub::MessageAcceptance::Accept,
			Verdict::Ignore(_) => gossipsub::MessageAcceptance::Ignore,
			Verdict::Reject(_) => gossipsub::MessageAcceptance::Reject,
		}
	}
}

/// Content-addressed message ids: the same announcement relayed twice is one message.
pub(crate) fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
	gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
}

/// Publishes an announcement on its segment's topic (the Primary's write path calls this;
/// no subscribed peer yet is not an error: followers poll heads too).
pub(crate) fn publish(net: &SyncNetwork, announcement: &Announcement) {
	net.send(Command::Publish(topic(announcement.segment), announcement.encode()));
}

/// Decides what to do with one received message (see the module docs).
fn validate(net: &SyncNetwork, msg: &gossipsub::Message) -> (Verdict, Option<Announcement>) {
	if msg.data.len() > MAX_ANNOUNCEMENT_BYTES {
		return (Verdict::Reject("oversized"), None);
	}
	let Ok(a) = Announcement::decode_all(&mut &msg.data[..]) else {
		return (Verdict::Reject("malformed"), None);
	};
	if msg.topic != topic(a.segment).hash() {
		return (Verdict::Reject("wrong_topic"), None);
	}
	let Some(verifier) = net.live().verifier(a.segment) else {
		return (Verdict::Ignore("not_followed"), None);
	};
	if !verifier.verify(a.segment, &a.signer, &a.signing_payload(), &a.signature) {
		return (Verdict::Reject("forged"), None);
	}
	let head = net.store().head(a.segment).map_or(0, |h: Head| h.seq);
	if a.seq > head {
		return (Verdict::Accept, Some(a));
	}
	match net.store().ops(a.segment, a.seq, 1) {
		Ok(ops) if ops.first().is_some_and(|o| o.op.hash() == a.op_hash) => {
			(Verdict::Ignore("replayed"), None)
		},
		Ok(_) => (Verdict::Reject("conflicting"), None),
		// Below this node's log (pruned, or state from a snapshot): cannot tell, drop it.
		Err(StoreError::Pruned { .. }) => (Verdict::Ignore("replayed"), None),
		Err(_) => (Verdict::Ignore("unchecked"), None),
	}
}

/// Handles one gossip message: validates it, reports the verdict to gossipsub, penalises
/// the sender of an invalid one, and hands a new announcement to the segment's follower.
pub(crate) fn on_gossip(
	net: &SyncNetwork,
	source: PeerId,
	id: gossipsub::MessageId,
	msg: gossipsub::Message,
) {
	let (verdict, announcement) = validate(net, &msg);
	net.metrics().gossip.with_label_values(&[verdict.label()]).inc();
	net.send(Command::Validated(id, source, verdict.acceptance()));
	if let Verdict::Reject(why) = verdict {
		log::warn!(target: "sync-net", "gossip from {source} rejected: {why}");
		net.penalise_invalid(source);
	}
	if let Some(a) = announcement {
		net.live().announced(a);
	}
}
