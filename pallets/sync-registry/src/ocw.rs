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
//! parity, seal a handed-over epoch and confirm a seal — under [`offchain::INTENTS_KEY`]. The worker signs them with the key of the account
//! registered with the service's peer id (for `Register`: the first keystore account without a
//! node), but first re-checks each against the block's state, so a stale intent (a root
//! already committed, a challenge already open) costs no fee and no failed transaction. The
//! re-check *is* the chain rule: [`Pallet::can_register`], [`Pallet::can_commit`],
//! [`Pallet::can_seal`], [`Pallet::can_confirm_seal`], [`Pallet::can_claim`] and
//! [`Pallet::can_attest`], the same functions the dispatchables call.
//!
//! Both kinds of submission go through one guard, [`send_guarded`]: it atomically takes the
//! "sent recently" marker of the proof or intent (a compare-and-set on offchain storage, so two
//! workers running at once — e.g. for sibling blocks — cannot both send), sends, and clears the
//! marker again if the submission failed, so that the next block retries at once.
use crate::{Call, Challenges, Config, Nodes, OpenChallenge, Pallet, PeerIds};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{
	offchain::{SendSignedTransaction, Signer},
	pallet_prelude::BlockNumberFor,
};
use sp_runtime::offchain::storage::{MutateStorageError, StorageRetrievalError, StorageValueRef};
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

/// Blocks before a submitted proof or intent is submitted again.
pub const RESUBMIT_AFTER: u32 = 5;

/// Blocks between two warnings of the same kind (an intent refused every block would
/// otherwise log every block).
pub const WARN_EVERY: u32 = 100;

/// Logs `msg` as a warning unless the same `key` was logged within [`WARN_EVERY`] blocks
/// (offchain *local* storage holds the block it last was). Whether it logged.
pub fn warn_every(key: &[u8], now: u32, msg: impl FnOnce() -> alloc::string::String) -> bool {
	let last = StorageValueRef::local(key);
	if last
		.get::<u32>()
		.ok()
		.flatten()
		.is_some_and(|at| now < at.saturating_add(WARN_EVERY))
	{
		return false;
	}
	last.set(&now);
	log::warn!(target: "sync-registry", "{}", msg());
	true
}

/// The [`warn_every`] key of an intent kind's `what` (e.g. `no-key`).
fn intent_log_key(intent: &Intent, what: &str) -> alloc::vec::Vec<u8> {
	alloc::format!("sync-registry::warned::{}::{what}", intent.kind()).into_bytes()
}

/// What [`send_guarded`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Guarded {
	/// Sent under the same marker less than [`RESUBMIT_AFTER`] blocks ago (or another worker is
	/// sending right now): not sent.
	Recent,
	/// `send` succeeded; the marker records `now`.
	Sent,
	/// `send` failed; the marker was cleared so the next run retries.
	Failed,
}

/// Sends at most once per [`RESUBMIT_AFTER`] blocks per `key`.
///
/// The marker under `key` (offchain *persistent* storage, a `u32` block number) is checked and
/// set to `now` in one [`StorageValueRef::mutate`], i.e. a compare-and-set: of two workers that
/// race, one wins and the other sees [`Guarded::Recent`]. Only the winner calls `send`.
///
/// If `send` fails (nothing reached the pool, so nothing can be included twice), the marker is
/// cleared so the next block retries instead of waiting out the window. A marker left by a
/// submission the pool later drops simply expires after [`RESUBMIT_AFTER`] blocks; the node
/// service removes markers of closed challenges.
pub fn send_guarded(key: &[u8], now: u32, send: impl FnOnce() -> bool) -> Guarded {
	struct TooRecent;
	let marker = StorageValueRef::persistent(key);
	let taken = marker.mutate(|last: Result<Option<u32>, StorageRetrievalError>| match last {
		Ok(Some(at)) if now < at.saturating_add(RESUBMIT_AFTER) => Err(TooRecent),
		// Nothing sent, sent long enough ago, or an undecodable marker: take it.
		_ => Ok(now),
	});
	match taken {
		Ok(_) => {},
		Err(MutateStorageError::ValueFunctionFailed(TooRecent))
		| Err(MutateStorageError::ConcurrentModification(_)) => return Guarded::Recent,
	}
	if send() {
		Guarded::Sent
	} else {
		// Roll back only our own marker (a concurrent worker cannot have replaced it: it
		// would have seen ours as recent).
		let mut marker = StorageValueRef::persistent(key);
		if marker.get::<u32>().ok().flatten() == Some(now) {
			marker.clear();
		}
		Guarded::Failed
	}
}

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
			// The seed block's beacon is in state once the next block started.
			if now <= ch.seed_block {
				done.push((id, Outcome::NotReady));
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
			let now_u32: u32 = now.try_into().unwrap_or(u32::MAX);
			let outcome = send_guarded(&offchain::sent_key(id), now_u32, || {
				let signer = Signer::<T, T::AuthorityId>::all_accounts()
					.with_filter(alloc::vec![account.public.clone()]);
				let call = Call::<T>::submit_proof { id, proof };
				matches!(signer.send_single_signed_transaction(&account, call), Some(Ok(())))
			});
			done.push((
				id,
				match outcome {
					Guarded::Recent => Outcome::Pending,
					Guarded::Sent => {
						log::info!(target: "sync-registry", "submitted proof for challenge {id}");
						Outcome::Submitted
					},
					Guarded::Failed => {
						log::warn!(
							target: "sync-registry",
							"proof for challenge {id}: the transaction pool refused the transaction of {:?} (spendable balance {:?}; an unfunded account cannot pay the fee; the pool's log has the reason)",
							account.id,
							Pallet::<T>::spendable(&account.id)
						);
						Outcome::Failed
					},
				},
			));
		}
	}
	done
}

/// Why no keystore account can sign an intent (logged for the operator).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NoKey {
	/// The keystore has no `sync` key at all.
	NoSyncKey,
	/// No keystore account without a node has a peer binding from this node's data-plane key.
	NoBinding,
	/// Keystore accounts have a binding, but none can hold the node deposit: unfunded.
	CannotHoldDeposit,
	/// The node is registered to an account whose `sync` key is not in the keystore.
	NotInKeystore,
}

impl NoKey {
	/// What an operator reads.
	pub fn explain(self) -> &'static str {
		match self {
			NoKey::NoSyncKey => "the keystore has no `sync` key (insert one: `sync-node key insert --key-type sync --scheme sr25519`)",
			NoKey::NoBinding => "no keystore `sync` account without a node has a peer binding from this node's data-plane key",
			NoKey::CannotHoldDeposit => "no keystore account with a peer binding can hold the node deposit: fund the account",
			NoKey::NotInKeystore => "the keystore lacks the `sync` key of the account this node is registered to",
		}
	}
}

/// What the worker did with one intent (returned for tests and logs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IntentOutcome {
	/// The chain would refuse it now (or it is already done): not sent.
	Stale,
	/// No keystore key for the account it needs, and why.
	NoKey(NoKey),
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
			// The first keystore account without a node that the data-plane key signed a
			// binding for and that can hold the deposit (an unfunded one would only pay a
			// failing transaction's fee every few blocks while a funded one waits).
			(Intent::Register { bindings, .. }, None) => accounts.iter().find(|a| {
				!Nodes::<T>::contains_key(&a.id)
					&& {
						let id = a.id.encode();
						bindings.iter().any(|(b, _)| *b == id)
					} && <T::Currency as frame_support::traits::fungible::InspectHold<_>>::can_hold(
					&crate::HoldReason::NodeDeposit.into(),
					&a.id,
					T::NodeDeposit::get(),
				)
			}),
			(_, Some(who)) => accounts.iter().find(|a| &a.id == who),
			(_, None) => {
				done.push((intent, IntentOutcome::Stale));
				continue;
			},
		};
		let Some(account) = account else {
			let why = match (&intent, &registered) {
				_ if accounts.is_empty() => NoKey::NoSyncKey,
				(Intent::Register { bindings, .. }, None) => {
					let bound = accounts.iter().any(|a| {
						!Nodes::<T>::contains_key(&a.id) && {
							let id = a.id.encode();
							bindings.iter().any(|(b, _)| *b == id)
						}
					});
					if bound {
						NoKey::CannotHoldDeposit
					} else {
						NoKey::NoBinding
					}
				},
				_ => NoKey::NotInKeystore,
			};
			warn_every(&intent_log_key(&intent, "no-key"), now_u32, || {
				alloc::format!("{} intent not sent: {}", intent.kind(), why.explain())
			});
			done.push((intent, IntentOutcome::NoKey(why)));
			continue;
		};
		let Some(call) = call_for::<T>(&intent, &account.id, &peer_id) else {
			done.push((intent, IntentOutcome::Stale));
			continue;
		};
		let outcome = send_guarded(&offchain::intent_sent_key(&intent), now_u32, || {
			let signer = Signer::<T, T::AuthorityId>::all_accounts()
				.with_filter(alloc::vec![account.public.clone()]);
			matches!(signer.send_single_signed_transaction(account, call), Some(Ok(())))
		});
		let outcome = match outcome {
			Guarded::Recent => IntentOutcome::Pending,
			Guarded::Sent => {
				log::info!(target: "sync-registry", "submitted the {} intent {intent:?}", intent.kind());
				IntentOutcome::Submitted
			},
			Guarded::Failed => {
				let spendable = Pallet::<T>::spendable(&account.id);
				warn_every(&intent_log_key(&intent, "failed"), now_u32, || {
					alloc::format!(
						"{} intent: the transaction pool refused the transaction of {:?} (spendable balance {:?}; an unfunded account cannot pay the fee; the pool's log has the reason)",
						intent.kind(),
						account.id,
						spendable
					)
				});
				IntentOutcome::Failed
			},
		};
		done.push((intent, outcome));
	}
	done
}

/// The call for `intent` by `who`, if the chain would accept it at this block (by the same
/// `can_*` rule the dispatchable applies).
fn call_for<T: Config>(
	intent: &Intent,
	who: &T::AccountId,
	peer_id: &sync_primitives::PeerIdBytes,
) -> Option<Call<T>> {
	let stale = |e: crate::Error<T>| {
		log::debug!(target: "sync-registry", "intent {intent:?} is stale: {e:?}");
	};
	match intent {
		Intent::Register { role, multiaddrs, bindings } => {
			let multiaddrs: alloc::vec::Vec<sync_primitives::MultiaddrBytes> =
				multiaddrs.iter().filter_map(|a| a.clone().try_into().ok()).collect();
			let multiaddrs = sync_primitives::Multiaddrs::try_from(multiaddrs).ok()?;
			let account = who.encode();
			let (_, peer_signature) = bindings.iter().find(|(a, _)| *a == account)?;
			Pallet::<T>::can_register(who, peer_id, &multiaddrs, peer_signature)
				.map_err(stale)
				.ok()?;
			Some(Call::register_node {
				role: *role,
				peer_id: peer_id.clone(),
				multiaddrs,
				peer_signature: *peer_signature,
			})
		},
		Intent::Commit { segment, seq, facts } => {
			Pallet::<T>::can_commit(who, *segment, *seq, facts).map_err(stale).ok()?;
			Some(Call::commit_root { segment: *segment, seq: *seq, facts: *facts })
		},
		Intent::Seal { segment, seq, facts } => {
			Pallet::<T>::can_seal(who, *segment, *seq, facts).map_err(stale).ok()?;
			Some(Call::seal_segment { segment: *segment, seq: *seq, facts: *facts })
		},
		Intent::ConfirmSeal { segment, seq, root } => {
			Pallet::<T>::can_confirm_seal(who, *segment, *seq, root).map_err(stale).ok()?;
			Some(Call::confirm_seal { segment: *segment, seq: *seq, root: *root })
		},
		Intent::Claim { segment, seq } => {
			Pallet::<T>::can_claim(who, *segment, *seq).map_err(stale).ok()?;
			Some(Call::claim_sync { segment: *segment, seq: *seq })
		},
		Intent::Attest { segment, seq, root } => {
			Pallet::<T>::can_attest(who, *segment, *seq, root).map_err(stale).ok()?;
			Some(Call::attest_root { segment: *segment, seq: *seq, root: *root })
		},
	}
}
