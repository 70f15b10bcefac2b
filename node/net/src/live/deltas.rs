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
/// The signing traits, which [`KeypairSigner`] and [`EpochKeys`] implement.
pub use sync_proto::{Epoch, OpSigner, OpVerifier, SignedAt};
use sync_store::{Head, StoreError};

/// Signs ops with the node's libp2p key (Ed25519) for the chain whose genesis hash is
/// `genesis`, as the owner of ownership epoch `epoch`; the signer field is the
/// protobuf-encoded public key, so a follower derives the PeerId the chain registered.
pub struct KeypairSigner {
	/// The node's network key.
	pub key: Keypair,
	/// The chain's genesis hash (part of every signed payload).
	pub genesis: Hash32,
	/// The ownership epoch the node writes in (from the chain's record of the segment).
	pub epoch: Epoch,
}

impl KeypairSigner {
	/// Signs with `key` for the chain whose genesis hash is `genesis`, in epoch `epoch`.
	pub fn new(key: Keypair, genesis: Hash32, epoch: Epoch) -> Self {
		KeypairSigner { key, genesis, epoch }
	}
}

impl OpSigner for KeypairSigner {
	fn genesis(&self) -> Hash32 {
		self.genesis
	}
	fn epoch(&self) -> Epoch {
		self.epoch
	}
	fn public(&self) -> Vec<u8> {
		self.key.public().encode_protobuf()
	}
	fn sign(&self, payload: &[u8]) -> Vec<u8> {
		self.key.sign(payload).expect("Ed25519 signing does not fail")
	}
}

/// The chain's record of one ownership epoch of a segment: whose data-plane key signs it, the
/// first seq its owner may write, and — once the chain records a later epoch — its last.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EpochKey {
	/// The epoch number.
	pub epoch: Epoch,
	/// The data-plane peer id of the epoch's owner.
	pub peer: PeerId,
	/// The first seq of the epoch: its owner's ops start at or after it.
	pub first_seq: u64,
	/// The last seq of the epoch (the next epoch's first seq − 1: where it was sealed), if the
	/// chain records a later epoch; `None` for the current one.
	pub end: Option<u64>,
}

impl EpochKey {
	/// The one rule of op authority: a signature by `peer` at `at` is the owner's if `peer` is
	/// this epoch's key and `at.seq` is not before the epoch's first seq. An op past the
	/// epoch's [`end`](EpochKey::end) whose signature verifies is refused as
	/// [`EpochKey::ended`]: a sealed epoch's owner may have written on before it learnt of the
	/// seal, so such an op is not part of the segment, but no forgery either (a forged one is).
	pub fn authorises(&self, at: &SignedAt, peer: &PeerId) -> bool {
		at.epoch == self.epoch && *peer == self.peer && at.seq >= self.first_seq
	}

	/// Whether `at` is past this epoch's end (see [`EpochKey::end`]).
	pub fn ended(&self, at: &SignedAt) -> bool {
		at.epoch == self.epoch && self.end.is_some_and(|end| at.seq > end)
	}
}

/// The [`EpochKey`]s of a segment's ownership history, oldest first, from the chain's
/// `(epoch, peer, first_seq)` records: each epoch but the last ends where the next begins.
pub fn epoch_keys(records: impl IntoIterator<Item = (Epoch, PeerId, u64)>) -> Vec<EpochKey> {
	let mut keys: Vec<EpochKey> = records
		.into_iter()
		.map(|(epoch, peer, first_seq)| EpochKey { epoch, peer, first_seq, end: None })
		.collect();
	for i in 1..keys.len() {
		let next = keys[i].first_seq;
		keys[i - 1].end = Some(next.saturating_sub(1));
	}
	keys
}

/// Accepts ops and announcements signed for the chain whose genesis hash is `genesis` by the
/// owner of the epoch they name, as `epoch_of(segment, epoch)` reports it from the chain's
/// ownership history (see [`EpochKey::authorises`]), with a signature that verifies. Co-Primaries
/// and former owners outside their epoch are refused: only the owner's log defines a segment.
pub struct EpochKeys<F> {
	/// The chain's genesis hash (part of every signed payload).
	pub genesis: Hash32,
	/// The chain's record of an epoch of a segment, if it has one.
	pub epoch_of: F,
}

impl<F: Fn(SegmentId, Epoch) -> Option<EpochKey>> EpochKeys<F> {
	/// Accepts the owners `epoch_of` names, on the chain whose genesis hash is `genesis`.
	pub fn new(genesis: Hash32, epoch_of: F) -> Self {
		EpochKeys { genesis, epoch_of }
	}
}

/// A verifier for a single-owner history: `owner` holds epoch 1 of every segment from seq 1
/// (tests and benchmarks; the node reads the chain's history).
pub fn single_owner(
	genesis: Hash32,
	owner: PeerId,
) -> EpochKeys<impl Fn(SegmentId, Epoch) -> Option<EpochKey> + Send + Sync> {
	EpochKeys::new(genesis, move |_, epoch| {
		(epoch == 1).then_some(EpochKey { epoch: 1, peer: owner, first_seq: 1, end: None })
	})
}

impl<F: Fn(SegmentId, Epoch) -> Option<EpochKey>> OpVerifier for EpochKeys<F> {
	fn genesis(&self) -> Hash32 {
		self.genesis
	}
	fn verify(&self, at: SignedAt, signer: &[u8], payload: &[u8], signature: &[u8]) -> bool {
		let Ok(key) = PublicKey::try_decode_protobuf(signer) else { return false };
		let Some(record) = (self.epoch_of)(at.segment, at.epoch) else { return false };
		record.authorises(&at, &key.to_peer_id()) && key.verify(payload, signature)
	}
	fn knows(&self, at: SignedAt) -> bool {
		(self.epoch_of)(at.segment, at.epoch).is_some()
	}
	fn ended(&self, at: SignedAt) -> bool {
		(self.epoch_of)(at.segment, at.epoch).is_some_and(|e| e.ended(&at))
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
	/// an over-large object, or a batch without checkpoint. Another history than this node's
	/// ([`StoreError::Forked`], [`StoreError::Conflict`]) is not: an owner can sign two, and an
	/// honest holder may have followed the other; it is a failure of that holder for this
	/// attempt, and the chain's committed roots decide which history the node keeps.
	pub fn is_invalid(&self) -> bool {
		match self {
			DeltaError::Peer(PeerError::Misbehaved(_)) => true,
			DeltaError::Store(e) => matches!(
				e,
				StoreError::BadSignature { .. }
					| StoreError::RootMismatch { .. }
					| StoreError::OutOfOrder { .. }
					| StoreError::Unsigned { .. }
					| StoreError::BrokenChain { .. }
					| StoreError::EpochRegressed { .. }
					| StoreError::KeyTooLong(_)
					| StoreError::ObjectTooLarge(_)
					| StoreError::BadData { .. }
			),
			_ => false,
		}
	}

	/// Whether a snapshot to a committed root is the way on: the holder pruned the ops after
	/// this node's head, or its ops continue another history than this node's from there.
	pub fn needs_snapshot(&self) -> bool {
		matches!(
			self,
			DeltaError::Pruned(_)
				| DeltaError::Store(StoreError::Forked { .. } | StoreError::Conflict { .. })
		)
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
		if !seen.insert(*cid) || store.has_object_sized(cid, *size)? {
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
		session
			.groups(batch.iter().map(|(r, _)| r.clone()).collect(), |i, g, data| match data {
				Received::Data(d) => store
					.write_group(&batch[i].0.cid, batch[i].1, g, d)
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
			out.push((GroupRange { cid, size, first, count: count as u32 }, size));
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
		assert_eq!(reqs[2][0].0.first, 27);
		assert_eq!((reqs[2][0].0.cid, reqs[2][0].0.count), ([3; 32], 3));
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
			epoch: 1,
			seq: 2,
			prev_op: [3; 32],
			kind: OpKind::Delete { key: b"k".to_vec() },
			prev_root: [4; 32],
			new_root: [5; 32],
		};
		let signer = KeypairSigner::new(key.clone(), [7; 32], 1);
		let signed = SignedOp { signature: signer.sign_op(&op), signer: signer.public(), op };
		let a = sign_announcement(&signed, &key, &[7; 32]);
		assert_eq!((a.epoch, a.seq, a.op_hash, a.new_root), (1, 2, signed.op.hash(), [5; 32]));
		let here = single_owner([7; 32], me);
		let elsewhere = single_owner([8; 32], me);
		let nobody = single_owner([7; 32], PeerId::random());
		assert!(here.verify_op(&signed) && here.verify_announcement(&a));
		assert!(!elsewhere.verify_op(&signed), "another chain");
		assert!(!elsewhere.verify_announcement(&a), "another chain");
		assert!(!nobody.verify_op(&signed) && !nobody.verify_announcement(&a), "not the owner");
	}

	/// The chain's history of a segment: `old` owned epoch 1, sealed at 9; `new` owns epoch 2
	/// from seq 10.
	fn history(old: PeerId, new: PeerId) -> impl Fn(SegmentId, Epoch) -> Option<EpochKey> {
		let keys = epoch_keys([(1, old, 1), (2, new, 10)]);
		move |_, epoch| keys.iter().find(|k| k.epoch == epoch).copied()
	}

	fn signed_by(key: &Keypair, epoch: Epoch, seq: u64) -> SignedOp {
		let op = Op {
			segment: 1,
			epoch,
			seq,
			prev_op: [3; 32],
			kind: OpKind::Delete { key: b"k".to_vec() },
			prev_root: [4; 32],
			new_root: [5; 32],
		};
		let signer = KeypairSigner::new(key.clone(), [7; 32], epoch);
		SignedOp { signature: signer.sign_op(&op), signer: signer.public(), op }
	}

	#[test]
	fn checkpoints_verify_by_the_owner_of_their_epoch() {
		let (old, new) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
		let v =
			EpochKeys::new([7; 32], history(old.public().to_peer_id(), new.public().to_peer_id()));
		// The former owner's history still verifies after the change of owner, up to the seal;
		// past it, its ops are not part of the segment (refused as ended, before any signature).
		assert!(v.verify_op(&signed_by(&old, 1, 5)));
		assert!(v.verify_op(&signed_by(&old, 1, 9)));
		let at = |seq| SignedAt { segment: 1, epoch: 1, seq };
		assert!(!v.ended(at(9)) && v.ended(at(10)) && v.ended(at(12)));
		assert!(!v.ended(SignedAt { epoch: 2, ..at(500) }), "the current epoch has no end");
		// The new owner signs its own epoch, from its first seq.
		assert!(v.verify_op(&signed_by(&new, 2, 10)));
		assert!(!v.verify_op(&signed_by(&new, 2, 9)), "before its epoch began");
		// Nobody signs in another's epoch, or in an epoch the chain does not know.
		assert!(!v.verify_op(&signed_by(&new, 1, 5)), "the new owner in the old epoch");
		assert!(!v.verify_op(&signed_by(&old, 2, 12)), "the old owner in the new epoch");
		assert!(!v.verify_op(&signed_by(&new, 3, 20)), "an epoch not on chain");
		// The epoch is signed: moving an op to another epoch breaks its signature.
		let mut moved = signed_by(&old, 1, 12);
		moved.op.epoch = 2;
		assert!(!v.verify_op(&moved));
	}
}
