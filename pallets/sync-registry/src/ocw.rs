//! Off-chain worker: answers this node's open challenges.
//!
//! The node's sync service sees a challenge once its seed block is final, builds the
//! [`SyncProof`] from its local store and writes it to offchain *local* storage under
//! [`sync_primitives::offchain::proof_key`]. This worker, for each account whose `sync` key is in
//! the node's keystore, looks up the account's open challenges, takes a stored proof that is
//! ready, and submits [`Call::submit_proof`] signed with that key. A proof it sent is not sent
//! again for [`RESUBMIT_AFTER`] blocks (the pool or a block may still include it).
use crate::{Call, Challenges, Config, OpenChallenge};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{
	offchain::{SendSignedTransaction, Signer},
	pallet_prelude::BlockNumberFor,
};
use sp_runtime::offchain::storage::StorageValueRef;
use sync_primitives::{commitment::SyncProof, offchain};

/// Signs the worker's transactions with the node's `sync` (sr25519) key.
pub struct SyncAuthId;

impl frame_system::offchain::AppCrypto<sp_runtime::MultiSigner, sp_runtime::MultiSignature> for SyncAuthId {
	type RuntimeAppPublic = sync_primitives::crypto::Public;
	type GenericSignature = sp_core::sr25519::Signature;
	type GenericPublic = sp_core::sr25519::Public;
}

// Runtimes (and tests) whose accounts are plain sr25519 keys.
impl frame_system::offchain::AppCrypto<sp_core::sr25519::Public, sp_core::sr25519::Signature> for SyncAuthId {
	type RuntimeAppPublic = sync_primitives::crypto::Public;
	type GenericSignature = sp_core::sr25519::Signature;
	type GenericPublic = sp_core::sr25519::Public;
}

/// Blocks before a submitted proof is submitted again.
pub const RESUBMIT_AFTER: u32 = 5;

/// What the worker did for one challenge (returned for tests and logs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
	/// The seed block is not yet known.
	NotReady,
	/// The node service has not stored a proof yet.
	NoProof,
	/// Sent recently; waiting for inclusion.
	Pending,
	/// Submitted to the pool.
	Submitted,
	/// Building or submitting the transaction failed.
	Failed,
}

/// Runs the worker for block `now`.
pub fn run<T: Config>(now: BlockNumberFor<T>) -> alloc::vec::Vec<(crate::ChallengeId, Outcome)> {
	let mut done = alloc::vec::Vec::new();
	let signer = Signer::<T, T::AuthorityId>::all_accounts();
	if !signer.can_sign() {
		return done;
	}
	for account in Signer::<T, T::AuthorityId>::keystore_accounts() {
		for (_segment, id) in OpenChallenge::<T>::iter_prefix(&account.id) {
			let Some(ch) = Challenges::<T>::get(id) else { continue };
			// The seed block's hash is in state once the next block started.
			if now <= ch.seed_block {
				done.push((id, Outcome::NotReady));
				continue;
			}
			let sent_key = offchain::sent_key(id);
			let sent = StorageValueRef::persistent(&sent_key);
			let last: Option<u32> = sent.get::<u32>().ok().flatten();
			let now_u32: u32 = now.try_into().unwrap_or(u32::MAX);
			if last.is_some_and(|b| now_u32 < b.saturating_add(RESUBMIT_AFTER)) {
				done.push((id, Outcome::Pending));
				continue;
			}
			let proof_key = offchain::proof_key(id);
			let stored = StorageValueRef::persistent(&proof_key);
			let Some(raw) = stored.get::<alloc::vec::Vec<u8>>().ok().flatten() else {
				done.push((id, Outcome::NoProof));
				continue;
			};
			let Ok(proof) = SyncProof::decode(&mut &raw[..]) else {
				log::warn!(target: "sync-registry", "stored proof for challenge {id} does not decode");
				done.push((id, Outcome::Failed));
				continue;
			};
			if proof.encoded_size() > T::MaxProofBytes::get() as usize {
				log::warn!(target: "sync-registry", "stored proof for challenge {id} too large");
				done.push((id, Outcome::Failed));
				continue;
			}
			let signer = Signer::<T, T::AuthorityId>::all_accounts().with_filter(alloc::vec![account.public.clone()]);
			let result = signer.send_single_signed_transaction(&account, Call::<T>::submit_proof { id, proof });
			match result {
				Some(Ok(())) => {
					sent.set(&now_u32);
					log::info!(target: "sync-registry", "submitted proof for challenge {id}");
					done.push((id, Outcome::Submitted));
				},
				_ => {
					log::warn!(target: "sync-registry", "could not submit proof for challenge {id}");
					done.push((id, Outcome::Failed));
				},
			}
		}
	}
	done
}
