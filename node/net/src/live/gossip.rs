//! Live announcements over gossipsub: one topic per segment carrying small signed
//! [`Announcement`]s (segment, seq, op hash, new root) of the Primary's newest op. Op bodies and
//! objects are fetched by request ([`super::deltas`]); gossip only says how far the log goes.
//! The message, its signing payload (which includes the chain's genesis hash) and the topic
//! name are [`sync_proto`]'s.
//!
//! Every announcement is validated before gossipsub forwards it (`validate_messages`):
//! - **Reject** (not forwarded; the relayer's gossipsub score drops, and the message's
//!   *author* — who signed the gossipsub message — is penalised, banned when
//!   [`PeerManagerConfig::ban_on_invalid`](crate::peers::PeerManagerConfig) is set): undecodable,
//!   on the wrong topic, or not signed by the owner of the epoch it names for this chain (the
//!   segment's verifier decides, with its genesis hash) — faults the message shows by itself.
//! - **Ignore** (not forwarded, no penalty): a segment this node does not follow; an epoch this
//!   node's view of the chain does not know yet; another op than the logged one at that seq
//!   (judged from this node's own history, which may be the one to be replaced); or a seq
//!   already applied with exactly that op — a replay. Honest meshes deliver these too (an
//!   announcement can arrive after the range fetch it triggered elsewhere), so a replay is
//!   dropped rather than punished; it is never applied twice (the store's replay is
//!   exactly-once).
//! - **Accept**: a valid announcement ahead of this node's head; the follow loop fetches the gap.
use crate::{swarm::Command, SyncNetwork};
use codec::{DecodeAll, Encode};
use libp2p::{gossipsub, identity::Keypair, PeerId};
use sync_primitives::{commitment::Hash32, SegmentId};
use sync_proto::{announcement_topic, Announcement, SignedAt, SignedOp, MAX_ANNOUNCEMENT_BYTES};
use sync_store::{Head, StoreError};

/// Announces `op` (a Primary's newest op), signed with `key` for the chain whose genesis hash
/// is `genesis` (the node's [`NetConfig::genesis`](crate::NetConfig)).
pub fn sign_announcement(op: &SignedOp, key: &Keypair, genesis: &Hash32) -> Announcement {
	let mut a = Announcement::unsigned(&op.op);
	a.signer = key.public().encode_protobuf();
	a.signature = key.sign(&a.signing_payload(genesis)).expect("Ed25519 signing does not fail");
	a
}

/// The gossipsub topic of a segment.
pub fn topic(segment: SegmentId) -> gossipsub::IdentTopic {
	gossipsub::IdentTopic::new(announcement_topic(segment))
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
	let at = SignedAt { segment: a.segment, epoch: a.epoch, seq: a.seq };
	if !verifier.knows(at) {
		// Perhaps a newer owner than this node's view of the chain knows: not a forgery yet.
		return (Verdict::Ignore("unknown_epoch"), None);
	}
	if !verifier.verify_announcement(&a) {
		return (Verdict::Reject("forged"), None);
	}
	if verifier.ended(at) {
		// Past the seal of its epoch, signed by its owner: not part of the segment, and no
		// forgery (the sealed owner may have written on before it learnt of the seal).
		return (Verdict::Ignore("past_epoch_end"), None);
	}
	if verifier.knows(SignedAt { epoch: a.epoch.saturating_add(1), ..at }) {
		// A former owner's: the segment has moved on, its word no longer sets the goal.
		return (Verdict::Ignore("stale_epoch"), None);
	}
	let head = net.store().head(a.segment).map_or(0, |h: Head| h.seq);
	if a.seq > head {
		return (Verdict::Accept, Some(a));
	}
	match net.store().ops(a.segment, a.seq, 1) {
		Ok(ops) if ops.first().is_some_and(|o| o.op.hash() == a.op_hash) => {
			(Verdict::Ignore("replayed"), None)
		},
		// Another op at a seq this node logged: judged from this node's own history (the owner
		// may have signed two, or this node followed a former owner past the new one's start),
		// so dropped without blaming anyone; the committed roots settle which history stays.
		Ok(_) => (Verdict::Ignore("conflicting"), None),
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
	// A rejection lowers the relayer's gossipsub score (invalid deliveries, see
	// `swarm::topic_score`): an honest relayer may have judged the message from its own state
	// (an equivocating Primary's second op looks valid to a node that has neither), so it is
	// not banned for it. The author signed the gossipsub message (strict validation), so a ban
	// goes to the author.
	net.send(Command::Validated(id, source, verdict.acceptance()));
	if let Verdict::Reject(why) = verdict {
		match msg.source {
			Some(author) => {
				log::warn!(target: "sync-net", "gossip by {author} (via {source}) rejected: {why}");
				net.penalise_invalid(author);
			},
			None => log::warn!(target: "sync-net", "unsigned gossip via {source} rejected: {why}"),
		}
	}
	if let Some(a) = announcement {
		net.live().announced(a);
	}
}
