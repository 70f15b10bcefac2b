//! Deltas: ops signed with the node's network key for the chain's genesis hash, checked
//! against the Primaries the chain lists for the segment, and gap fill — fetching a range of
//! ops and the objects they put from a holder, then replaying them through the store (exactly
//! once, in seq order, along the op chain).
use crate::{
	transfer::client::{PeerError, Received, Session, StreamUse},
	SyncNetwork,
};
use libp2p::{
	identity::{Keypair, PublicKey},
	PeerId,
};
use std::collections::HashSet;
use sync_primitives::{
	commitment::{Hash32, SegmentTrie},
	outboard::groups_of,
	SegmentId,
};
use sync_proto::{
	Announcement, ErrorCode, GroupRange, OpKind, SignedOp, CHECKPOINT_EVERY,
	MAX_GROUPS_PER_REQUEST, MAX_OPS_PER_REQUEST,
};
/// The signing traits, which [`KeypairSigner`] and [`PrimaryKeys`] implement.
pub use sync_proto::{OpSigner, OpVerifier};
use sync_store::{Head, StoreError};

/// Signs ops with the node's libp2p key (Ed25519) for the chain whose genesis hash is
/// `genesis`; the signer field is the protobuf-encoded public key, so a follower derives the
/// PeerId the chain registered.
pub struct KeypairSigner {
	/// The node's network key.
	pub key: Keypair,
	/// The chain's genesis hash (part of every signed payload).
	pub genesis: Hash32,
}

impl KeypairSigner {
	/// Signs with `key` for the chain whose genesis hash is `genesis`.
	pub fn new(key: Keypair, genesis: Hash32) -> Self {
		KeypairSigner { key, genesis }
	}
}

impl OpSigner for KeypairSigner {
	fn genesis(&self) -> Hash32 {
		self.genesis
	}
	fn public(&self) -> Vec<u8> {
		self.key.public().encode_protobuf()
	}
	fn sign(&self, payload: &[u8]) -> Vec<u8> {
		self.key.sign(payload).expect("Ed25519 signing does not fail")
	}
}

/// Accepts ops and announcements signed for the chain whose genesis hash is `genesis`, by a
/// signer whose PeerId `is_primary(segment, peer)` says may write the segment (the node
/// answers from the chain), with a signature that verifies.
pub struct PrimaryKeys<F> {
	/// The chain's genesis hash (part of every signed payload).
	pub genesis: Hash32,
	/// Whether a peer is a Primary of a segment on chain.
	pub is_primary: F,
}

impl<F: Fn(SegmentId, &PeerId) -> bool> PrimaryKeys<F> {
	/// Accepts the Primaries `is_primary` names, on the chain whose genesis hash is `genesis`.
	pub fn new(genesis: Hash32, is_primary: F) -> Self {
		PrimaryKeys { genesis, is_primary }
	}
}

impl<F: Fn(SegmentId, &PeerId) -> bool> OpVerifier for PrimaryKeys<F> {
	fn genesis(&self) -> Hash32 {
		self.genesis
	}
	fn verify(&self, segment: SegmentId, signer: &[u8], payload: &[u8], signature: &[u8]) -> bool {
		let Ok(key) = PublicKey::try_decode_protobuf(signer) else { return false };
		(self.is_primary)(segment, &key.to_peer_id()) && key.verify(payload, signature)
	}
}

/// Why a catch-up failed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
	/// The holder failed or misbehaved.
	#[error("peer: {0}")]
	Peer(#[from] PeerError),
	/// The store refused the ops (bad signature, gap, conflict, root mismatch) or failed.
	#[error("store: {0}")]
	Store(#[from] StoreError),
	/// The holder has no ops beyond this seq, short of the target.
	#[error("holder's log ends at {0}")]
	Short(u64),
	/// The holder no longer logs the ops after this node's head: catch up through a snapshot.
	#[error("holder pruned the ops after seq {0}")]
	Pruned(u64),
	/// The op at the announced seq is not the announced one (nothing of its batch was applied).
	#[error("op {0} differs from the announced one")]
	NotAnnounced(u64),
}

impl DeltaError {
	/// Whether the holder sent data that cannot come from an honest holder (ban-worthy): ops
	/// failing their signature, op chain or root chain, out of order, naming an over-long key or
	/// an over-large object, or a batch without checkpoint.
	pub fn is_invalid(&self) -> bool {
		match self {
			DeltaError::Peer(PeerError::Misbehaved(_)) => true,
			DeltaError::Store(e) => matches!(
				e,
				StoreError::BadSignature { .. }
					| StoreError::RootMismatch { .. }
					| StoreError::OutOfOrder { .. }
					| StoreError::Conflict { .. }
					| StoreError::Unsigned { .. }
					| StoreError::BrokenChain { .. }
					| StoreError::KeyTooLong(_)
					| StoreError::ObjectTooLarge(_)
					| StoreError::BadData { .. }
			),
			_ => false,
		}
	}
}

/// Brings `segment` from its head up to seq `target` with ops (and their objects) fetched
/// from `holder`, replaying them through the store, one durable batch per response. Each
/// batch ends on the Primary's last checkpoint in it, whose signature covers every op of the
/// batch through the op chain (see [`sync_store::oplog`]); forged, re-ordered, replayed or
/// out-of-order ops are refused by the store and nothing of that batch is applied. If
/// `announced` is given, the op at its seq must be the announced one.
pub(crate) async fn catch_up(
	net: &SyncNetwork,
	segment: SegmentId,
	target: u64,
	holder: PeerId,
	verifier: &(dyn OpVerifier + Sync),
	announced: Option<&Announcement>,
) -> Result<Head, DeltaError> {
	let store = net.store().clone();
	let mut session = net.session(holder, StreamUse::Bulk).await?;
	loop {
		let head = store
			.head(segment)
			.unwrap_or(Head { seq: 0, facts: SegmentTrie::new().facts() });
		if head.seq >= target {
			return Ok(head);
		}
		let want = (target - head.seq).max(CHECKPOINT_EVERY).min(MAX_OPS_PER_REQUEST as u64) as u32;
		let mut ops = match session.ops(segment, head.seq + 1, want).await {
			Err(PeerError::Refused(ErrorCode::Pruned)) => return Err(DeltaError::Pruned(head.seq)),
			other => other?,
		};
		if ops.is_empty() {
			return Err(DeltaError::Short(head.seq));
		}
		// Apply up to the last checkpoint; the rest comes with the next response.
		let Some(last_signed) = ops.iter().rposition(|o| o.is_checkpoint()) else {
			return Err(
				PeerError::Misbehaved(format!("{} ops without a checkpoint", ops.len())).into()
			);
		};
		ops.truncate(last_signed + 1);
		if let Some(a) = announced {
			if let Some(op) = ops.iter().find(|o| o.op.seq == a.seq) {
				if op.op.hash() != a.op_hash {
					return Err(DeltaError::NotAnnounced(a.seq));
				}
			}
		}
		// Verify before fetch: seq chain, op chain, checkpoint signature by a Primary the chain
		// lists and the root chain recomputed (nothing is changed), so no object of an
		// unverified op is downloaded, stored or served, and sizes are the signed ones.
		store.verify_ops(segment, &ops, verifier)?;
		fetch_objects(net, &mut session, &ops).await?;
		// Objects finished by the background committer must be in place before replay.
		store.flush()?;
		let before = head.seq;
		let now = store.replay(segment, &ops, verifier)?;
		net.metrics().ops_replayed.inc_by(now.seq - before);
		net.live().replayed(segment, now.seq - before, now);
		net.peer_succeeded(holder);
	}
}

/// Fetches the objects `ops` put that the store lacks, verified group by group: outboards of
/// multi-group objects first, then every missing group packed into requests of up to
/// [`MAX_GROUPS_PER_REQUEST`] (small objects share requests instead of paying one each). The
/// ops are verified ([`sync_store::Store::verify_ops`]), so sizes are the Primary's; requests
/// are built one at a time, never a list of every range of the batch.
async fn fetch_objects(
	net: &SyncNetwork,
	session: &mut Session,
	ops: &[SignedOp],
) -> Result<(), DeltaError> {
	let store = net.store().clone();
	let mut objects: Vec<(Hash32, u64)> = Vec::new();
	let mut seen = HashSet::new();
	for op in ops {
		let OpKind::Put { cid, size, .. } = &op.op.kind else { continue };
		if !seen.insert(*cid) || store.has_object(cid)? {
			continue;
		}
		if groups_of(*size) > 1 {
			let ob = session.outboard(*cid, *size).await?;
			store.begin_object(cid, *size, &ob).map_err(PeerError::from)?;
		}
		objects.push((*cid, *size));
	}
	let mut packer = Packer::new(&objects);
	loop {
		let batch = packer.next_request();
		if batch.is_empty() {
			return Ok(());
		}
		let sizes: Vec<u64> = batch.iter().map(|(_, s)| *s).collect();
		session
			.groups(batch.iter().map(|(r, _)| r.clone()).collect(), &sizes, |i, g, data| match data
			{
				Received::Data(d) => store
					.write_group(&batch[i].0.cid, sizes[i], g, d)
					.map(|_| ())
					.map_err(PeerError::from),
				Received::Missing => Err(PeerError::Refused(ErrorCode::NotHeld)),
			})
			.await?;
	}
}

/// Packs the groups of objects into requests of at most [`MAX_GROUPS_PER_REQUEST`] groups,
/// one request at a time (an object's groups in ranges, small objects sharing a request).
struct Packer<'a> {
	objects: &'a [(Hash32, u64)],
	/// The object and group the next range starts at.
	at: (usize, u64),
}

impl<'a> Packer<'a> {
	fn new(objects: &'a [(Hash32, u64)]) -> Self {
		Packer { objects, at: (0, 0) }
	}

	/// The next request's ranges with their objects' sizes; empty when all are packed.
	fn next_request(&mut self) -> Vec<(GroupRange, u64)> {
		let mut out = Vec::new();
		let mut room = MAX_GROUPS_PER_REQUEST as u64;
		while room > 0 {
			let Some(&(cid, size)) = self.objects.get(self.at.0) else { break };
			let first = self.at.1;
			let count = (groups_of(size) - first).min(room);
			out.push((GroupRange { cid, first, count: count as u32 }, size));
			room -= count;
			self.at = if first + count >= groups_of(size) {
				(self.at.0 + 1, 0)
			} else {
				(self.at.0, first + count)
			};
		}
		out
	}
}

#[cfg(test)]
mod packing {
	use super::*;
	use sync_primitives::commitment::GROUP_LEN;

	fn all(objects: &[(Hash32, u64)]) -> Vec<Vec<(GroupRange, u64)>> {
		let mut p = Packer::new(objects);
		std::iter::from_fn(|| Some(p.next_request()).filter(|r| !r.is_empty())).collect()
	}

	#[test]
	fn groups_are_packed_into_full_requests_in_order() {
		let g = GROUP_LEN;
		// 100 groups, 1 group, 30 groups: 64 | 36 + 1 + 27 | 3.
		let objects = [([1; 32], 100 * g), ([2; 32], 10), ([3; 32], 30 * g)];
		let reqs = all(&objects);
		let counts: Vec<Vec<u32>> =
			reqs.iter().map(|r| r.iter().map(|(x, _)| x.count).collect()).collect();
		assert_eq!(counts, vec![vec![64], vec![36, 1, 27], vec![3]]);
		assert_eq!(reqs[1][0].0.first, 64);
		assert_eq!(reqs[2][0].0, GroupRange { cid: [3; 32], first: 27, count: 3 });
		assert!(reqs
			.iter()
			.all(|r| r.iter().map(|(x, _)| x.count).sum::<u32>() <= MAX_GROUPS_PER_REQUEST));
	}

	#[test]
	fn a_huge_verified_object_is_packed_lazily() {
		// 2^32 groups: only one request's ranges exist at a time.
		let objects = [([9; 32], GROUP_LEN << 32)];
		let mut p = Packer::new(&objects);
		let r = p.next_request();
		assert_eq!(r.len(), 1);
		assert_eq!(r[0].0.count, MAX_GROUPS_PER_REQUEST);
		assert_eq!(p.next_request()[0].0.first, MAX_GROUPS_PER_REQUEST as u64);
	}

	#[test]
	fn nothing_to_pack() {
		assert!(all(&[]).is_empty());
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::live::gossip::sign_announcement;
	use sync_proto::Op;

	#[test]
	fn signatures_hold_on_their_chain_only() {
		let key = Keypair::generate_ed25519();
		let me = key.public().to_peer_id();
		let op = Op {
			segment: 1,
			seq: 2,
			prev_op: [3; 32],
			kind: OpKind::Delete { key: b"k".to_vec() },
			prev_root: [4; 32],
			new_root: [5; 32],
		};
		let signer = KeypairSigner::new(key.clone(), [7; 32]);
		let signed = SignedOp { signature: signer.sign_op(&op), signer: signer.public(), op };
		let a = sign_announcement(&signed, &key, &[7; 32]);
		assert_eq!((a.seq, a.op_hash, a.new_root), (2, signed.op.hash(), [5; 32]));
		let here = PrimaryKeys::new([7; 32], move |_, p: &PeerId| *p == me);
		let elsewhere = PrimaryKeys::new([8; 32], move |_, p: &PeerId| *p == me);
		let nobody = PrimaryKeys::new([7; 32], |_, _: &PeerId| false);
		assert!(here.verify_op(&signed) && here.verify_announcement(&a));
		assert!(!elsewhere.verify_op(&signed), "another chain");
		assert!(!elsewhere.verify_announcement(&a), "another chain");
		assert!(!nobody.verify_op(&signed) && !nobody.verify_announcement(&a), "not a Primary");
	}
}
