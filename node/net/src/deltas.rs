//! Deltas: ops signed with the node's network key, checked against the Primaries the chain
//! lists for the segment, and gap fill — fetching a range of ops and the objects they put from
//! a holder, then replaying them through the store (exactly once, in seq order).
use crate::{
	client::{PeerError, Received, Session},
	protocol::{GroupRange, MAX_GROUPS_PER_REQUEST, MAX_OPS_PER_REQUEST},
	SyncNetwork,
};
use libp2p::{
	identity::{Keypair, PublicKey},
	PeerId,
};
use sync_primitives::{outboard::groups_of, SegmentId};
use sync_store::{
	oplog::{OpKind, OpSigner, OpVerifier},
	Head, StoreError,
};

/// Signs ops with the node's libp2p key (Ed25519); the signer field is the protobuf-encoded
/// public key, so a follower derives the PeerId the chain registered.
pub struct KeypairSigner(pub Keypair);

impl OpSigner for KeypairSigner {
	fn public(&self) -> Vec<u8> {
		self.0.public().encode_protobuf()
	}
	fn sign(&self, payload: &[u8]) -> Vec<u8> {
		self.0.sign(payload).expect("Ed25519 signing does not fail")
	}
}

/// Accepts ops whose signer's PeerId `is_primary(segment, peer)` says may write the segment
/// (the node answers from the chain) and whose signature verifies.
pub struct PrimaryKeys<F>(pub F);

impl<F: Fn(SegmentId, &PeerId) -> bool> OpVerifier for PrimaryKeys<F> {
	fn verify(&self, segment: SegmentId, signer: &[u8], payload: &[u8], signature: &[u8]) -> bool {
		let Ok(key) = PublicKey::try_decode_protobuf(signer) else { return false };
		(self.0)(segment, &key.to_peer_id()) && key.verify(payload, signature)
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
}

impl SyncNetwork {
	/// Brings `segment` from its head up to seq `target` with ops (and their objects) fetched
	/// from `holder`, replaying them through the store. Forged, replayed or out-of-order ops are
	/// refused by the store and nothing of that batch is applied.
	pub async fn catch_up(
		&self,
		segment: SegmentId,
		target: u64,
		holder: PeerId,
		verifier: &dyn OpVerifier,
	) -> Result<Head, DeltaError> {
		let store = self.store().clone();
		let mut session = Session::open(self, holder).await?;
		loop {
			let head = store.head(segment).unwrap_or(Head { seq: 0, facts: sync_primitives::commitment::SegmentTrie::new().facts() });
			if head.seq >= target {
				return Ok(head);
			}
			let want = (target - head.seq).min(MAX_OPS_PER_REQUEST as u64) as u32;
			let ops = session.ops(segment, head.seq + 1, want).await?;
			if ops.is_empty() {
				return Err(DeltaError::Short(head.seq));
			}
			for op in &ops {
				if let OpKind::Put { cid, size, .. } = &op.op.kind {
					if !store.has_object(cid)? {
						self.fetch_object(&mut session, *cid, *size).await?;
					}
				}
			}
			// Objects finished by the background committer must be in place before replay.
			store.flush()?;
			store.replay(segment, &ops, verifier)?;
		}
	}

	/// Fetches one whole object from the session's peer, verified group by group.
	async fn fetch_object(&self, session: &mut Session, cid: [u8; 32], size: u64) -> Result<(), DeltaError> {
		let store = self.store().clone();
		if groups_of(size) > 1 {
			let ob = session.outboard(cid, size).await?;
			store.begin_object(&cid, size, &ob).map_err(|e| match e {
				StoreError::BadData { .. } => DeltaError::Peer(PeerError::Misbehaved(e.to_string())),
				other => DeltaError::Store(other),
			})?;
		}
		let groups = groups_of(size);
		let mut first = 0;
		while first < groups {
			let count = (groups - first).min(MAX_GROUPS_PER_REQUEST as u64) as u32;
			let range = GroupRange { cid, first, count };
			session
				.groups(vec![range], &[size], |_, g, data| match data {
					Received::Data(d) => store.write_group(&cid, size, g, d).map(|_| ()).map_err(PeerError::from),
					Received::Missing => Err(PeerError::Refused(crate::protocol::ErrorCode::NotHeld)),
				})
				.await?;
			first += count as u64;
		}
		Ok(())
	}
}
