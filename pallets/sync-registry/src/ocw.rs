//! Off-chain worker: answers this node's open challenges and submits what its sync service
//! asks for.
//!
//! The node's sync service sees a challenge once its seed block is final, builds the
//! [`SyncProof`] from its local store and writes it to offchain *local* storage under
//! [`sync_primitives::offchain::proof_key`]. This worker, for each account whose `sync` key is in
//! the node's keystore, looks up the account's open challenges, takes a stored proof that is
//! ready, and submits [`Call::submit_proof`] signed with that key. A proof it sent is not sent
//! again for [`RESUBMIT_AFTER`] blocks (the pool or a block may still include it).
//!
//! The service also writes its [`Intents`] — register, commit a root, claim a root, attest
//! parity — under [`offchain::INTENTS_KEY`]. The worker signs them with the key of the account
//! registered with the service's peer id (for `Register`: the first keystore account without a
//! node), but first re-checks each against the block's state, so a stale intent (a root
//! already committed, a challenge already open) costs no fee and no failed transaction.
use crate::{
	Call, Challenges, Config, Holdings, Migrations, Nodes, OpenChallenge, ParityVotes, PeerIds,
	Roots, Segments,
};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{
	offchain::{SendSignedTransaction, Signer},
	pallet_prelude::BlockNumberFor,
};
use sp_runtime::offchain::storage::StorageValueRef;
use sync_primitives::offchain::{Intent, Intents};
use sync_primitives::{commitment::SyncProof, offchain};

/// Signs the worker's transactions with the node's `sync` (sr25519) key.
pub struct SyncAuthId;

impl frame_system::offchain::AppCrypto<sp_runtime::MultiSigner, sp_runtime::MultiSignature>
	for SyncAuthId
{
	type RuntimeAppPublic = sync_primitives::crypto::Public;
	type GenericSignature = sp_core::sr25519::Signature;
	type GenericPublic = sp_core::sr25519::Public;
}

// Runtimes (and tests) whose accounts are plain sr25519 keys.
impl frame_system::offchain::AppCrypto<sp_core::sr25519::Public, sp_core::sr25519::Signature>
	for SyncAuthId
{
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

/// Runs the worker for block `now`: proofs first (they have deadlines), then intents.
pub fn run<T: Config>(now: BlockNumberFor<T>) -> alloc::vec::Vec<(crate::ChallengeId, Outcome)> {
	let done = answer_challenges::<T>(now);
	run_intents::<T>(now);
	done
}

/// Submits stored proofs for the keystore accounts' open challenges.
pub fn answer_challenges<T: Config>(
	now: BlockNumberFor<T>,
) -> alloc::vec::Vec<(crate::ChallengeId, Outcome)> {
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
			let signer = Signer::<T, T::AuthorityId>::all_accounts()
				.with_filter(alloc::vec![account.public.clone()]);
			let result = signer
				.send_single_signed_transaction(&account, Call::<T>::submit_proof { id, proof });
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

/// What the worker did with one intent (returned for tests and logs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IntentOutcome {
	/// The chain would refuse it now (or it is already done): not sent.
	Stale,
	/// No keystore key for the account it needs.
	NoKey,
	/// Sent recently; waiting for inclusion.
	Pending,
	/// Submitted to the pool.
	Submitted,
	/// Building or submitting the transaction failed.
	Failed,
}

/// Submits the node service's [`Intents`] that the chain would accept at this block.
pub fn run_intents<T: Config>(now: BlockNumberFor<T>) -> alloc::vec::Vec<(Intent, IntentOutcome)> {
	let mut done = alloc::vec::Vec::new();
	let stored = StorageValueRef::persistent(offchain::INTENTS_KEY);
	let Some(intents) = stored.get::<Intents>().ok().flatten() else { return done };
	let Ok(peer_id) = sync_primitives::PeerIdBytes::try_from(intents.peer_id.clone()) else {
		return done;
	};
	let accounts: alloc::vec::Vec<_> = Signer::<T, T::AuthorityId>::keystore_accounts().collect();
	let registered = PeerIds::<T>::get(&peer_id);
	let now_u32: u32 = now.try_into().unwrap_or(u32::MAX);
	for intent in intents.items {
		let account = match (&intent, &registered) {
			(Intent::Register { .. }, Some(_)) => {
				done.push((intent, IntentOutcome::Stale));
				continue;
			},
			(Intent::Register { .. }, None) => {
				accounts.iter().find(|a| !Nodes::<T>::contains_key(&a.id))
			},
			(_, Some(who)) => accounts.iter().find(|a| &a.id == who),
			(_, None) => {
				done.push((intent, IntentOutcome::Stale));
				continue;
			},
		};
		let Some(account) = account else {
			done.push((intent, IntentOutcome::NoKey));
			continue;
		};
		let Some(call) = call_for::<T>(&intent, &account.id, &peer_id) else {
			done.push((intent, IntentOutcome::Stale));
			continue;
		};
		let sent_key = offchain::intent_sent_key(&intent);
		let sent = StorageValueRef::persistent(&sent_key);
		let last: Option<u32> = sent.get::<u32>().ok().flatten();
		if last.is_some_and(|b| now_u32 < b.saturating_add(RESUBMIT_AFTER)) {
			done.push((intent, IntentOutcome::Pending));
			continue;
		}
		let signer = Signer::<T, T::AuthorityId>::all_accounts()
			.with_filter(alloc::vec![account.public.clone()]);
		match signer.send_single_signed_transaction(account, call) {
			Some(Ok(())) => {
				sent.set(&now_u32);
				log::info!(target: "sync-registry", "submitted {intent:?}");
				done.push((intent, IntentOutcome::Submitted));
			},
			_ => {
				log::warn!(target: "sync-registry", "could not submit {intent:?}");
				done.push((intent, IntentOutcome::Failed));
			},
		}
	}
	done
}

/// The call for `intent` by `who`, if the chain would accept it at this block.
fn call_for<T: Config>(
	intent: &Intent,
	who: &T::AccountId,
	peer_id: &sync_primitives::PeerIdBytes,
) -> Option<Call<T>> {
	match intent {
		Intent::Register { role, multiaddrs } => {
			let multiaddrs: alloc::vec::Vec<sync_primitives::MultiaddrBytes> =
				multiaddrs.iter().filter_map(|a| a.clone().try_into().ok()).collect();
			let multiaddrs = sync_primitives::Multiaddrs::try_from(multiaddrs).ok()?;
			sync_primitives::validate_peer_id(peer_id).ok()?;
			multiaddrs
				.iter()
				.all(|a| sync_primitives::validate_multiaddr(a).is_ok())
				.then_some(())?;
			Some(Call::register_node { role: *role, peer_id: peer_id.clone(), multiaddrs })
		},
		Intent::Commit { segment, seq, facts } => {
			let seg = Segments::<T>::get(segment)?;
			seg.primaries.contains(who).then_some(())?;
			let newer = Roots::<T>::get(segment).last().is_none_or(|r| r.seq < *seq);
			newer.then_some(Call::commit_root { segment: *segment, seq: *seq, facts: *facts })
		},
		Intent::Claim { segment, seq } => {
			let holding = Holdings::<T>::get(segment, who)?;
			(!OpenChallenge::<T>::contains_key(who, segment)).then_some(())?;
			let root = Roots::<T>::get(segment).into_iter().find(|r| r.seq == *seq)?;
			let migrating =
				Migrations::<T>::get(segment).is_some_and(|m| !m.completed && &m.to == who);
			let newer = holding
				.proven
				.is_none_or(|p| root.index > p.index || (migrating && root.index == p.index));
			newer.then_some(Call::claim_sync { segment: *segment, seq: *seq })
		},
		Intent::Attest { segment, seq, root } => {
			let seg = Segments::<T>::get(segment)?;
			seg.primaries.contains(who).then_some(())?;
			let (vseq, vroot, votes) = ParityVotes::<T>::get(segment)?;
			(vseq == *seq && vroot == *root && !votes.contains(who)).then_some(Call::attest_root {
				segment: *segment,
				seq: *seq,
				root: *root,
			})
		},
	}
}
