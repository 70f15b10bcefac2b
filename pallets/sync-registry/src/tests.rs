//! Unit tests: every call, every error, every hook path, the off-chain worker, and random call
//! sequences with the invariants (`do_try_state`) checked after each step.
use crate::{mock::*, *};
use alloc::collections::BTreeMap;
use codec::{Decode, Encode};
use frame_support::{assert_noop, assert_ok, traits::fungible::InspectHold};
use sp_runtime::DispatchError;
use sync_primitives::{
	commitment::{cid_of, Entry, RootFacts, SegmentTrie},
	HoldingStatus, Multiaddrs, NodeRole, NodeStatus, PeerIdBytes, PeerSignature,
};

type E = Error<Test>;

/// The data-plane (Ed25519) key of peer `seed`.
fn peer_key(seed: u8) -> sp_core::ed25519::Pair {
	use sp_core::Pair;
	sp_core::ed25519::Pair::from_seed(&[seed; 32])
}

/// The Ed25519 libp2p peer id of peer `seed`.
fn pid(seed: u8) -> PeerIdBytes {
	use sp_core::Pair;
	let mut v = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
	v.extend_from_slice(&peer_key(seed).public().0);
	v.try_into().unwrap()
}

/// Peer `seed`'s signature binding its peer id to `who` on this chain.
fn bind(who: AccountId, seed: u8) -> PeerSignature {
	use sp_core::Pair;
	let genesis: [u8; 32] = System::block_hash(0).into();
	let msg = sync_primitives::peer_binding_message(&genesis, &who.encode(), &pid(seed));
	peer_key(seed).sign(&msg).0
}

fn addrs(list: &[&str]) -> Multiaddrs {
	list.iter()
		.map(|a| a.as_bytes().to_vec().try_into().unwrap())
		.collect::<Vec<_>>()
		.try_into()
		.unwrap()
}

fn held(who: AccountId) -> Balance {
	Balances::balance_on_hold(&RuntimeHoldReason::SyncRegistry(HoldReason::NodeDeposit), &who)
}

fn register(who: AccountId, role: NodeRole) {
	let seed = who.0[0];
	assert_ok!(SyncRegistry::register_node(
		RuntimeOrigin::signed(who),
		role,
		pid(seed),
		addrs(&["/ip4/127.0.0.1/tcp/30433"]),
		bind(who, seed)
	));
}

/// The owner (or Root, `origin`) offers `who` a Primary seat and `who` accepts it.
fn make_primary(origin: RuntimeOrigin, segment: u64, who: AccountId) {
	assert_ok!(SyncRegistry::add_primary(origin, segment, who));
	assert_ok!(SyncRegistry::accept_primary(RuntimeOrigin::signed(who), segment));
}

/// The owner (or Root, `origin`) requests a migration to `to` and `to` accepts it.
fn migrate(origin: RuntimeOrigin, segment: u64, to: AccountId) {
	assert_ok!(SyncRegistry::request_migration(origin, segment, to));
	assert_ok!(SyncRegistry::accept_migration(RuntimeOrigin::signed(to), segment));
}

fn events() -> Vec<Event<Test>> {
	System::events()
		.into_iter()
		.filter_map(|r| match r.event {
			RuntimeEvent::SyncRegistry(e) => Some(e),
			_ => None,
		})
		.collect()
}

fn has_event(e: Event<Test>) -> bool {
	events().contains(&e)
}

/// A segment's data: object bytes by key and the trie over them.
#[derive(Clone, Default)]
struct Data {
	objects: BTreeMap<Vec<u8>, Vec<u8>>,
	trie: SegmentTrie,
}

impl Data {
	fn with(n: usize, salt: u8) -> Self {
		let mut d = Data::default();
		for i in 0..n {
			let bytes: Vec<u8> =
				(0..(i * 700 + 100)).map(|j| (j as u8) ^ salt ^ (i as u8)).collect();
			d.put(format!("obj/{i}").as_bytes(), bytes);
		}
		d
	}
	fn put(&mut self, key: &[u8], bytes: Vec<u8>) {
		self.trie.insert(Entry {
			key: key.to_vec(),
			cid: cid_of(&bytes),
			size: bytes.len() as u64,
		});
		self.objects.insert(key.to_vec(), bytes);
	}
	fn facts(&self) -> RootFacts {
		self.trie.facts()
	}
	fn prove(&self, id: ChallengeId) -> SyncProof {
		let ch = Challenges::<Test>::get(id).expect("open challenge");
		let seed = SyncRegistry::challenge_seed(id, ch.seed_block);
		self.trie
			.prove(&seed, K, |e| self.objects.get(&e.key).cloned())
			.expect("data complete")
	}
}

/// Alice (Primary) owns segment 0 with `data` committed at seq 1.
fn segment_with(data: &Data) -> SegmentId {
	register(alice(), NodeRole::Primary);
	assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
	assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
	0
}

/// `who` joins segment 0, claims `seq`, and proves it with `data`; returns the challenge id.
fn join_and_prove(who: AccountId, seq: u64, data: &Data) -> ChallengeId {
	if !Holdings::<Test>::contains_key(0, who) {
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(who), 0));
	}
	claim_and_prove(who, seq, data)
}

fn claim_and_prove(who: AccountId, seq: u64, data: &Data) -> ChallengeId {
	assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(who), 0, seq));
	let id = OpenChallenge::<Test>::get(who, 0).unwrap();
	let ch = Challenges::<Test>::get(id).unwrap();
	run_to(ch.seed_block + 1);
	assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(who), id, data.prove(id)));
	id
}

/// `who` claims seq 1 of segment 0 and waits until the challenge's indexes are known.
fn claim_and_see_seed(who: AccountId) -> ChallengeId {
	assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(who), 0, 1));
	let id = OpenChallenge::<Test>::get(who, 0).unwrap();
	run_to(Challenges::<Test>::get(id).unwrap().seed_block + 1);
	id
}

/// Moves to the next block (a segment takes one commit per block).
fn next_block() {
	run_to(System::block_number() + 1);
}

/// The next block, in which Alice (the owner of segment 0) commits `seq` with `facts`.
fn commit_next(seq: u64, facts: sync_primitives::commitment::RootFacts) {
	next_block();
	assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, seq, facts));
}

/// `to`, the target of segment 0's migration, confirms the seal at `seq` with `facts`' root.
fn confirm(to: AccountId, seq: u64, facts: sync_primitives::commitment::RootFacts) {
	assert_ok!(SyncRegistry::confirm_seal(RuntimeOrigin::signed(to), 0, seq, facts.root));
}

/// Runs a test body and then checks the pallet's invariants.
fn run(test: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		test();
		SyncRegistry::do_try_state().expect("invariants hold");
	});
}

// ------------------------------------------------------------------ registration

#[test]
fn register_holds_deposit_and_emits() {
	run(|| {
		register(alice(), NodeRole::Primary);
		let info = Nodes::<Test>::get(alice()).unwrap();
		assert_eq!(
			(info.role, info.status, info.deposit, info.registered_at),
			(NodeRole::Primary, NodeStatus::Joining, DEPOSIT, 1)
		);
		assert_eq!(PeerIds::<Test>::get(pid(1)), Some(alice()));
		assert_eq!(held(alice()), DEPOSIT);
		assert!(has_event(Event::NodeRegistered {
			who: alice(),
			role: NodeRole::Primary,
			peer_id: pid(1),
			deposit: DEPOSIT
		}));
		assert_eq!(SyncRegistry::node_summary(alice()).unwrap().peer_id, pid(1).into_inner());
		assert_eq!(SyncRegistry::account_of_peer(pid(1).into_inner()), Some(alice()));
	});
}

#[test]
fn register_rejects_bad_input_without_changes() {
	run(|| {
		register(alice(), NodeRole::Primary);
		let a = addrs(&["/dns/a/tcp/1"]);
		let r = |who: AccountId, p: PeerIdBytes, ad, sig| {
			SyncRegistry::register_node(RuntimeOrigin::signed(who), NodeRole::Replica, p, ad, sig)
		};
		assert_noop!(r(alice(), pid(9), a.clone(), bind(alice(), 9)), E::AlreadyRegistered);
		assert_noop!(r(bob(), pid(1), a.clone(), bind(bob(), 1)), E::PeerIdTaken);
		assert_noop!(
			r(bob(), vec![0x00, 36, 1, 2].try_into().unwrap(), a.clone(), [0; 64]),
			E::InvalidPeerId
		);
		assert_noop!(r(bob(), pid(2), addrs(&[]), bind(bob(), 2)), E::InvalidMultiaddr);
		assert_noop!(
			r(bob(), pid(2), addrs(&["/ok/1", "tcp 1"]), bind(bob(), 2)),
			E::InvalidMultiaddr
		);
		assert_noop!(r(poor(), pid(3), a.clone(), bind(poor(), 3)), E::InsufficientDeposit);
		assert_noop!(
			SyncRegistry::register_node(
				RuntimeOrigin::none(),
				NodeRole::Replica,
				pid(4),
				a.clone(),
				[0; 64]
			),
			DispatchError::BadOrigin
		);
		assert_noop!(
			SyncRegistry::register_node(
				RuntimeOrigin::root(),
				NodeRole::Replica,
				pid(4),
				a,
				[0; 64]
			),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn update_changes_identity_and_reindexes() {
	run(|| {
		register(alice(), NodeRole::Replica);
		assert_ok!(SyncRegistry::update_node(
			RuntimeOrigin::signed(alice()),
			Some((pid(7), bind(alice(), 7))),
			None
		));
		assert_eq!(PeerIds::<Test>::get(pid(1)), None);
		assert_eq!(PeerIds::<Test>::get(pid(7)), Some(alice()));
		let new = addrs(&["/ip4/10.0.0.1/tcp/1", "/ip6/::1/tcp/2"]);
		assert_ok!(SyncRegistry::update_node(
			RuntimeOrigin::signed(alice()),
			None,
			Some(new.clone())
		));
		assert!(has_event(Event::NodeUpdated { who: alice(), peer_id: pid(7), multiaddrs: new }));
		// the old peer id is free again
		assert_ok!(SyncRegistry::register_node(
			RuntimeOrigin::signed(bob()),
			NodeRole::Replica,
			pid(1),
			addrs(&["/a/1"]),
			bind(bob(), 1)
		));
	});
}

#[test]
fn update_errors() {
	run(|| {
		assert_noop!(
			SyncRegistry::update_node(
				RuntimeOrigin::signed(alice()),
				Some((pid(2), bind(alice(), 2))),
				None
			),
			E::NotRegistered
		);
		register(alice(), NodeRole::Replica);
		register(bob(), NodeRole::Replica);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(alice()), None, None),
			E::NothingToUpdate
		);
		assert_noop!(
			SyncRegistry::update_node(
				RuntimeOrigin::signed(alice()),
				Some((pid(1), bind(alice(), 1))),
				None
			),
			E::NothingToUpdate
		);
		assert_noop!(
			SyncRegistry::update_node(
				RuntimeOrigin::signed(alice()),
				Some((pid(2), bind(alice(), 2))),
				None
			),
			E::PeerIdTaken
		);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(alice()), None, Some(addrs(&["nope"]))),
			E::InvalidMultiaddr
		);
		assert_noop!(
			SyncRegistry::update_node(
				RuntimeOrigin::signed(alice()),
				Some((vec![0x12, 32, 0].try_into().unwrap(), [0; 64])),
				None
			),
			E::InvalidPeerId
		);
	});
}

/// Regression (#13): anyone could register someone else's data-plane peer id; the victim then
/// could not register and its node resolved "me" to the squatter's account.
#[test]
fn peer_id_needs_its_signature() {
	run(|| {
		let a = addrs(&["/ip4/127.0.0.1/tcp/1"]);
		let reg = |who: AccountId, p: PeerIdBytes, sig: PeerSignature| {
			SyncRegistry::register_node(
				RuntimeOrigin::signed(who),
				NodeRole::Replica,
				p,
				a.clone(),
				sig,
			)
		};
		// Bob squats Alice's peer id: without her key he has no binding for his account —
		// neither a forged one, nor the one she made for herself, nor one for another chain.
		assert_noop!(reg(bob(), pid(1), [0; 64]), E::BadPeerSignature);
		assert_noop!(reg(bob(), pid(1), bind(alice(), 1)), E::BadPeerSignature);
		let other_chain = {
			use sp_core::Pair;
			let msg = sync_primitives::peer_binding_message(&[7; 32], &bob().encode(), &pid(1));
			peer_key(1).sign(&msg).0
		};
		assert_noop!(reg(bob(), pid(1), other_chain), E::BadPeerSignature);
		// A binding made with another peer's key.
		assert_noop!(reg(bob(), pid(1), bind(bob(), 2)), E::BadPeerSignature);
		// A small-order "key" verifies a forged signature on any message: refused as a key.
		let mut weak = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20, 1];
		weak.extend_from_slice(&[0; 31]);
		let mut forged = [0u8; 64];
		forged[0] = 1;
		assert_noop!(reg(bob(), weak.try_into().unwrap(), forged), E::PeerIdNotEd25519);
		// Only Ed25519 peer ids can be bound (a sha2-256 multihash id carries no key).
		let mut sha = vec![0x12, 32];
		sha.extend_from_slice(&[5; 32]);
		assert_noop!(reg(bob(), sha.try_into().unwrap(), [0; 64]), E::PeerIdNotEd25519);
		// Alice registers her own id; the same holds when moving to a new peer id.
		assert_ok!(reg(alice(), pid(1), bind(alice(), 1)));
		assert_ok!(reg(bob(), pid(2), bind(bob(), 2)));
		let upd = |sig| {
			SyncRegistry::update_node(RuntimeOrigin::signed(bob()), Some((pid(3), sig)), None)
		};
		assert_noop!(upd(bind(alice(), 3)), E::BadPeerSignature);
		assert_noop!(upd(bind(bob(), 4)), E::BadPeerSignature);
		assert_ok!(upd(bind(bob(), 3)));
		assert_eq!(PeerIds::<Test>::get(pid(3)), Some(bob()));
	});
}

#[test]
fn joining_node_deregisters_at_once() {
	run(|| {
		register(alice(), NodeRole::Primary);
		assert_ok!(SyncRegistry::deregister_node(RuntimeOrigin::signed(alice())));
		assert!(Nodes::<Test>::get(alice()).is_none());
		assert_eq!(held(alice()), 0);
		assert!(has_event(Event::NodeDeregistered {
			who: alice(),
			released: DEPOSIT,
			forced: false
		}));
		assert_noop!(
			SyncRegistry::deregister_node(RuntimeOrigin::signed(alice())),
			E::NotRegistered
		);
	});
}

// ------------------------------------------------------------------ segments, roots, parity

#[test]
fn create_segment_requires_an_active_primary() {
	run(|| {
		assert_noop!(
			SyncRegistry::create_segment(RuntimeOrigin::signed(alice())),
			E::NotRegistered
		);
		register(bob(), NodeRole::Replica);
		assert_noop!(SyncRegistry::create_segment(RuntimeOrigin::signed(bob())), E::WrongRole);
		register(alice(), NodeRole::Primary);
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
		assert!(has_event(Event::SegmentCreated { segment: 0, owner: alice() }));
		assert!(has_event(Event::NodeStatusChanged { who: alice(), status: NodeStatus::Active }));
		assert_eq!(NodeSegments::<Test>::get(alice()).into_inner(), vec![0]);
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
		assert_eq!(NextSegmentId::<Test>::get(), 2);
		// a node at its segment limit (4) cannot create more
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
		assert_noop!(
			SyncRegistry::create_segment(RuntimeOrigin::signed(alice())),
			E::TooManySegments
		);
	});
}

#[test]
fn commit_root_checks_owner_seq_and_facts_and_prunes_window() {
	run(|| {
		let data = Data::with(3, 1);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(bob()), 0, 2, data.facts()),
			E::NotOwner
		);
		next_block();
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 1, data.facts()),
			E::StaleSeq
		);
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 9, 2, data.facts()),
			E::UnknownSegment
		);
		let mut bad = data.facts();
		bad.leaves = 0;
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, bad),
			E::InvalidRootFacts
		);
		let mut bad = data.facts();
		bad.leaves = bad.bytes; // far more chunks than bytes allow
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, bad),
			E::InvalidRootFacts
		);
		for seq in 2..=6 {
			commit_next(seq * 10, data.facts());
		}
		let roots = Roots::<Test>::get(0);
		assert_eq!(roots.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![30, 40, 50, 60]);
		assert_eq!(roots.last().unwrap().index, 6);
		let f = data.facts();
		assert!(has_event(Event::RootCommitted {
			segment: 0,
			seq: 60,
			root: f.root,
			leaves: f.leaves,
			entries: f.entries,
			bytes: f.bytes,
			index: 6,
			committer: alice()
		}));
	});
}

#[test]
fn co_primary_cannot_commit() {
	run(|| {
		let data = Data::with(2, 3);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		make_primary(RuntimeOrigin::signed(alice()), 0, bob());
		next_block();
		// A co-Primary's commit — even of the owner's very root — is refused.
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(bob()), 0, 2, data.facts()),
			E::NotOwner
		);
		// The empty-segment commit that made holders Active on nothing is refused too.
		let empty = RootFacts { root: [7; 32], leaves: 0, entries: 0, bytes: 0 };
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(bob()), 0, 2, empty),
			E::NotOwner
		);
		assert!(matches!(SyncRegistry::can_commit(&bob(), 0, 2, &data.facts()), Err(E::NotOwner)));
	});
}

#[test]
fn empty_root_requires_empty_hash() {
	run(|| {
		let data = Data::with(1, 4);
		segment_with(&data);
		next_block();
		let fake = RootFacts { root: [7; 32], leaves: 0, entries: 0, bytes: 0 };
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, fake),
			E::InvalidRootFacts
		);
		let empty = SegmentTrie::new().facts();
		assert_eq!(empty.root, sync_primitives::commitment::empty_root());
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, empty));
	});
}

#[test]
fn bricking_seq_and_burst_commits_are_refused() {
	run(|| {
		let data = Data::with(1, 5);
		segment_with(&data);
		next_block();
		// `seq = u64::MAX` (after which every commit would be stale) exceeds the step bound.
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, u64::MAX, data.facts()),
			E::SeqStepTooLarge
		);
		assert_noop!(
			SyncRegistry::commit_root(
				RuntimeOrigin::signed(alice()),
				0,
				1 + MAX_SEQ_STEP + 1,
				data.facts()
			),
			E::SeqStepTooLarge
		);
		assert_ok!(SyncRegistry::commit_root(
			RuntimeOrigin::signed(alice()),
			0,
			1 + MAX_SEQ_STEP,
			data.facts()
		));
		// A second commit in the same block (MaxLag + 1 of them would make every holder
		// Lagging at once) is refused.
		assert_noop!(
			SyncRegistry::commit_root(
				RuntimeOrigin::signed(alice()),
				0,
				2 + MAX_SEQ_STEP,
				data.facts()
			),
			E::CommitTooSoon
		);
	});
}

#[test]
fn root_can_reset_roots_and_clear_a_stuck_migration() {
	run(|| {
		let data = Data::with(2, 6);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		assert_noop!(
			SyncRegistry::force_reset_roots(RuntimeOrigin::signed(alice()), 0),
			DispatchError::BadOrigin
		);
		assert_ok!(SyncRegistry::force_reset_roots(RuntimeOrigin::root(), 0));
		assert!(has_event(Event::RootsReset { segment: 0 }));
		assert!(Roots::<Test>::get(0).is_empty());
		// Commit indexes keep counting; seqs may start again.
		commit_next(1, data.facts());
		assert_eq!(Roots::<Test>::get(0).last().unwrap().index, 2);
		// A pending migration: Root clears it, target and schedule included.
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(
			SyncRegistry::force_clear_migration(RuntimeOrigin::signed(alice()), 0),
			DispatchError::BadOrigin
		);
		assert_ok!(SyncRegistry::force_clear_migration(RuntimeOrigin::root(), 0));
		assert!(Migrations::<Test>::get(0).is_none());
		assert!(!Holdings::<Test>::contains_key(0, bob()));
		assert!(!Agenda::<Test>::iter().any(|(_, t, _)| t == Task::Migration(0)));
		assert_noop!(SyncRegistry::force_clear_migration(RuntimeOrigin::root(), 0), E::NoMigration);
	});
}

#[test]
fn co_primary_divergence_is_recorded() {
	run(|| {
		let data = Data::with(2, 7);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		make_primary(RuntimeOrigin::signed(alice()), 0, bob());
		let f = data.facts();
		// Bob computed a different root at seq 1: recorded, not refused.
		assert_ok!(SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 1, [9; 32]));
		assert!(has_event(Event::RootDiverged {
			segment: 0,
			seq: 1,
			who: bob(),
			committed: f.root,
			attested: [9; 32]
		}));
		assert_eq!(Divergences::<Test>::get(0, bob()), Some((1, [9; 32])));
		assert_eq!(
			SyncRegistry::segment_summary(0).unwrap().divergences,
			vec![(bob(), 1, [9; 32])]
		);
		// The same divergence again changes nothing.
		assert_noop!(
			SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 1, [9; 32]),
			E::AlreadyAttested
		);
		// Agreeing later supersedes it.
		assert_ok!(SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 1, f.root));
		assert_eq!(Divergences::<Test>::get(0, bob()), None);
		// Leaving the Primary seat forgets votes and divergences.
		assert_ok!(SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 1, [8; 32]));
		assert_ok!(SyncRegistry::remove_primary(RuntimeOrigin::signed(alice()), 0, bob()));
		assert_eq!(Divergences::<Test>::get(0, bob()), None);
		assert!(!ParityVotes::<Test>::get(0).unwrap().2.contains(&bob()));
	});
}

/// Regression (#13): anyone (an owner) could make a node a co-Primary, filling its segment
/// list, flipping it to `Syncing` and blocking its `announce_leave`. An offer now changes
/// nothing for the target until it accepts.
#[test]
fn co_primary_needs_consent() {
	run(|| {
		let data = Data::with(2, 3);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		let status = Nodes::<Test>::get(bob()).unwrap().status;
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, bob()));
		let until = System::block_number() + OFFER_TIMEOUT;
		assert!(has_event(Event::PrimaryOffered { segment: 0, who: bob(), until }));
		assert!(NodeSegments::<Test>::get(bob()).is_empty());
		assert!(!Holdings::<Test>::contains_key(0, bob()));
		assert!(!Segments::<Test>::get(0).unwrap().primaries.contains(&bob()));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, status);
		// Only the offered account can take it, once.
		assert_noop!(SyncRegistry::accept_primary(RuntimeOrigin::signed(charlie()), 0), E::NoOffer);
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, bob()),
			E::AlreadyOffered
		);
		assert_ok!(SyncRegistry::accept_primary(RuntimeOrigin::signed(bob()), 0));
		assert!(has_event(Event::PrimaryAdded { segment: 0, who: bob() }));
		assert!(has_event(Event::HolderJoined { segment: 0, who: bob() }));
		assert!(Segments::<Test>::get(0).unwrap().primaries.contains(&bob()));
		assert_noop!(SyncRegistry::accept_primary(RuntimeOrigin::signed(bob()), 0), E::NoOffer);
		// An offer expires; an expired offer holds no seat and is cleared by the next offer.
		register(charlie(), NodeRole::Primary);
		register(dave(), NodeRole::Primary);
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, charlie()));
		// Owner, bob and charlie's offer: the segment's three seats are taken.
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, dave()),
			E::TooManyPrimaries
		);
		run_to(System::block_number() + OFFER_TIMEOUT + 1);
		assert_noop!(SyncRegistry::accept_primary(RuntimeOrigin::signed(charlie()), 0), E::NoOffer);
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, dave()));
		assert!(has_event(Event::PrimaryOfferWithdrawn { segment: 0, who: charlie() }));
		assert!(!PrimaryOffers::<Test>::contains_key(0, charlie()));
		// The owner can withdraw an offer not taken yet.
		assert_ok!(SyncRegistry::remove_primary(RuntimeOrigin::signed(alice()), 0, dave()));
		assert!(has_event(Event::PrimaryOfferWithdrawn { segment: 0, who: dave() }));
		assert_noop!(SyncRegistry::accept_primary(RuntimeOrigin::signed(dave()), 0), E::NoOffer);
		assert!(NodeSegments::<Test>::get(dave()).is_empty());
		assert!(NodeSegments::<Test>::get(charlie()).is_empty());
	});
}

/// Review of #13: seats offered by an old owner survived an owner change, so the new owner
/// could get co-Primaries (writers) it never chose.
#[test]
fn an_owner_change_withdraws_the_old_owners_offers() {
	run(|| {
		let data = Data::with(2, 9);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, charlie()));
		assert_ok!(SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, bob()));
		assert!(has_event(Event::PrimaryOfferWithdrawn { segment: 0, who: charlie() }));
		assert_noop!(SyncRegistry::accept_primary(RuntimeOrigin::signed(charlie()), 0), E::NoOffer);
	});
}

/// Review of #13: a migration target that also held an offer was counted twice, so another
/// offered account could not take a free seat.
#[test]
fn the_migration_target_holds_one_seat() {
	run(|| {
		let data = Data::with(2, 10);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		// MaxPrimaries = 3: alice, and offers to bob and charlie.
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, bob()));
		assert_ok!(SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, charlie()));
		assert_ok!(SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, bob()));
		assert_ok!(SyncRegistry::accept_primary(RuntimeOrigin::signed(charlie()), 0));
		assert_ok!(SyncRegistry::accept_migration(RuntimeOrigin::signed(bob()), 0));
		assert_eq!(Segments::<Test>::get(0).unwrap().primaries.len(), 2);
	});
}

/// Regression (#13): a migration request made its target a holder at once (segment list,
/// `Syncing`, leave blocked). Now the target is untouched until `accept_migration`.
#[test]
fn migration_target_needs_consent() {
	run(|| {
		let data = Data::with(2, 3);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		assert_ok!(SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, bob()));
		assert!(NodeSegments::<Test>::get(bob()).is_empty());
		assert!(!Holdings::<Test>::contains_key(0, bob()));
		assert_eq!(SyncRegistry::segment_summary(0).unwrap().migration, None);
		assert_noop!(
			SyncRegistry::accept_migration(RuntimeOrigin::signed(charlie()), 0),
			E::NoOffer
		);
		// Not blocked: the target may leave, and then it can no longer accept.
		assert_ok!(SyncRegistry::announce_leave(RuntimeOrigin::signed(bob())));
		assert_noop!(
			SyncRegistry::accept_migration(RuntimeOrigin::signed(bob()), 0),
			E::NodeLeaving
		);
		// Unaccepted, it times out with nothing to undo.
		run_to(System::block_number() + MIGRATION_TIMEOUT + 1);
		assert!(has_event(Event::MigrationTimedOut { segment: 0, to: bob() }));
		assert!(Migrations::<Test>::get(0).is_none());
		// Accepted, the target holds the segment and is shown as the target.
		assert_ok!(SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, charlie()));
		assert_ok!(SyncRegistry::accept_migration(RuntimeOrigin::signed(charlie()), 0));
		assert!(has_event(Event::MigrationAccepted { segment: 0, to: charlie() }));
		assert!(Holdings::<Test>::contains_key(0, charlie()));
		assert_eq!(SyncRegistry::segment_summary(0).unwrap().migration, Some((charlie(), false)));
		assert_noop!(
			SyncRegistry::accept_migration(RuntimeOrigin::signed(charlie()), 0),
			E::NoOffer
		);
	});
}

#[test]
fn primaries_attest_until_parity() {
	run(|| {
		let data = Data::with(2, 2);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Replica);
		// origins and roles
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(bob()), 0, bob()),
			E::NotOwner
		);
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, charlie()),
			E::WrongRole
		);
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, dave()),
			E::NotRegistered
		);
		make_primary(RuntimeOrigin::signed(alice()), 0, bob());
		assert!(has_event(Event::PrimaryAdded { segment: 0, who: bob() }));
		assert!(has_event(Event::HolderJoined { segment: 0, who: bob() }));
		assert_noop!(SyncRegistry::add_primary(RuntimeOrigin::root(), 0, bob()), E::AlreadyPrimary);
		// attest
		let f = data.facts();
		assert_noop!(
			SyncRegistry::attest_root(RuntimeOrigin::signed(charlie()), 0, 1, f.root),
			E::NotPrimary
		);
		assert_noop!(
			SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 2, f.root),
			E::UnknownRoot
		);
		assert_noop!(
			SyncRegistry::attest_root(RuntimeOrigin::signed(alice()), 0, 1, f.root),
			E::IsOwner
		);
		assert_ok!(SyncRegistry::attest_root(RuntimeOrigin::signed(bob()), 0, 1, f.root));
		assert!(has_event(Event::RootAttested { segment: 0, seq: 1, who: bob() }));
		assert!(has_event(Event::ParityReached { segment: 0, seq: 1, root: f.root }));
		// a new commit resets the votes
		commit_next(2, f);
		assert_eq!(ParityVotes::<Test>::get(0).unwrap().2.into_inner(), vec![alice()]);
		// removal
		assert_noop!(
			SyncRegistry::remove_primary(RuntimeOrigin::signed(alice()), 0, alice()),
			E::IsOwner
		);
		assert_noop!(
			SyncRegistry::remove_primary(RuntimeOrigin::signed(alice()), 0, charlie()),
			E::NotPrimary
		);
		assert_ok!(SyncRegistry::remove_primary(RuntimeOrigin::root(), 0, bob()));
		assert!(has_event(Event::PrimaryRemoved { segment: 0, who: bob() }));
		assert!(Holdings::<Test>::contains_key(0, bob()), "stays a holder");
	});
}

#[test]
fn segment_limits_are_enforced() {
	run(|| {
		let data = Data::with(1, 3);
		segment_with(&data);
		for i in 2..=5 {
			register(account(i), NodeRole::Primary);
		}
		make_primary(RuntimeOrigin::root(), 0, account(2));
		make_primary(RuntimeOrigin::root(), 0, account(3));
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::root(), 0, account(4)),
			E::TooManyPrimaries
		);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(account(4)), 0));
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(account(5)), 0));
		register(account(6), NodeRole::Replica);
		assert_noop!(
			SyncRegistry::join_segment(RuntimeOrigin::signed(account(6)), 0),
			E::TooManyHolders
		);
		assert_noop!(
			SyncRegistry::join_segment(RuntimeOrigin::signed(account(5)), 0),
			E::AlreadyHolder
		);
		assert_noop!(SyncRegistry::join_segment(RuntimeOrigin::signed(alice()), 0), E::IsOwner);
		assert_noop!(
			SyncRegistry::join_segment(RuntimeOrigin::signed(account(6)), 7),
			E::UnknownSegment
		);
		assert_noop!(
			SyncRegistry::join_segment(RuntimeOrigin::signed(account(7)), 0),
			E::NotRegistered
		);
		assert_noop!(
			SyncRegistry::leave_segment(RuntimeOrigin::signed(account(6)), 0),
			E::NotHolder
		);
		// a co-Primary leaving also gives up its seat
		assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(account(2)), 0));
		assert!(has_event(Event::HolderLeft { segment: 0, who: account(2) }));
		assert!(!Segments::<Test>::get(0).unwrap().primaries.contains(&account(2)));
		assert_eq!(Nodes::<Test>::get(account(2)).unwrap().status, NodeStatus::Joining);
	});
}

// ------------------------------------------------------------------ Proof-of-Sync

#[test]
fn proof_of_sync_makes_a_holder_active() {
	run(|| {
		let data = Data::with(5, 4);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_noop!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1), E::NotHolder);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Syncing);
		assert_noop!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 5), E::UnknownRoot);
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		assert_noop!(
			SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1),
			E::ChallengeAlreadyOpen
		);
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		let ch = Challenges::<Test>::get(id).unwrap();
		assert_eq!(ch.seed_block, 1 + CHALLENGE_DELAY);
		assert_eq!(ch.deadline, 1 + CHALLENGE_DELAY + PROOF_WINDOW);
		assert!(has_event(Event::ChallengeIssued {
			id,
			segment: 0,
			who: bob(),
			seq: 1,
			kind: ChallengeKind::Claim,
			seed_block: ch.seed_block,
			deadline: ch.deadline
		}));
		// before the seed block exists nobody can answer
		assert_noop!(
			SyncRegistry::submit_proof(
				RuntimeOrigin::signed(bob()),
				id,
				SyncProof { chunks: Default::default() }
			),
			E::ChallengeNotReady
		);
		run_to(ch.seed_block + 1);
		let proof = data.prove(id);
		// wrong signer, unknown challenge, tampered, truncated, proof for another seed
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(alice()), id, proof.clone()),
			E::NotChallenged
		);
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id + 1, proof.clone()),
			E::UnknownChallenge
		);
		let mut bad = proof.clone();
		bad.chunks[0].chunk[0] ^= 1;
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, bad),
			E::InvalidProof
		);
		let mut short = proof.clone();
		short.chunks.pop();
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, short),
			E::InvalidProof
		);
		let other = data.trie.prove(&[7u8; 32], K, |e| data.objects.get(&e.key).cloned()).unwrap();
		if other != proof {
			assert_noop!(
				SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, other),
				E::InvalidProof
			);
		}
		// a holder with the wrong data cannot prove
		let wrong = Data::with(5, 99);
		let seed = SyncRegistry::challenge_seed(id, ch.seed_block);
		if let Some(p) = wrong.trie.prove(&seed, K, |e| wrong.objects.get(&e.key).cloned()) {
			assert_noop!(
				SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, p),
				E::InvalidProof
			);
		}
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, proof));
		assert!(has_event(Event::SyncProven {
			id,
			segment: 0,
			who: bob(),
			seq: 1,
			root: data.facts().root,
			kind: ChallengeKind::Claim
		}));
		let h = Holdings::<Test>::get(0, bob()).unwrap();
		assert_eq!(
			(h.status, h.proven.map(|p| p.seq), h.failures),
			(HoldingStatus::Active, Some(1), 0)
		);
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Active);
		assert!(Challenges::<Test>::get(id).is_none());
		assert_noop!(
			SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1),
			E::AlreadyProven
		);
	});
}

#[test]
fn oversized_proof_is_refused() {
	run(|| {
		let data = Data::with(3, 5);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		run_to(1 + CHALLENGE_DELAY + 1);
		let mut proof = data.prove(id);
		// Make every chunk proof as large as its bounds allow (which chunks the seed picks
		// decides how large they are to start with).
		let step = sync_primitives::commitment::TrieStep {
			bit: 0,
			right: false,
			sibling: [0; 32],
			sibling_weight: 1,
		};
		while proof.chunks[0].trie_path.try_push(step.clone()).is_ok() {}
		while proof.encoded_size() <= 16 * 1024 {
			let c = proof.chunks[0].clone();
			if proof.chunks.try_push(c).is_err() {
				break;
			}
		}
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, proof),
			E::ProofTooLarge
		);
	});
}

#[test]
fn missed_deadline_expires_penalises_and_finally_drops() {
	run(|| {
		let data = Data::with(2, 6);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		let penalty = DEPOSIT / 10;
		for round in 1..=3u32 {
			assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
			let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
			let ch = Challenges::<Test>::get(id).unwrap();
			run_to(ch.deadline);
			assert!(Challenges::<Test>::get(id).is_some(), "still open at the deadline");
			run_to(ch.deadline + 1);
			assert!(Challenges::<Test>::get(id).is_none());
			assert!(has_event(Event::ChallengeExpired {
				id,
				segment: 0,
				who: bob(),
				failures: round
			}));
			assert!(has_event(Event::Penalized { who: bob(), amount: penalty }));
			assert_eq!(held(bob()), DEPOSIT - penalty * round as u64);
			assert_eq!(
				Nodes::<Test>::get(bob()).unwrap().deposit,
				DEPOSIT - penalty * round as u64
			);
			if round < 3 {
				let h = Holdings::<Test>::get(0, bob()).unwrap();
				assert_eq!((h.status, h.failures), (HoldingStatus::Syncing, round));
			}
		}
		assert!(has_event(Event::HolderDropped { segment: 0, who: bob() }));
		assert!(Holdings::<Test>::get(0, bob()).is_none());
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Joining);
	});
}

#[test]
fn active_holders_are_rechallenged() {
	run(|| {
		let data = Data::with(4, 7);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		let first = join_and_prove(bob(), 1, &data);
		let proven_at = System::block_number();
		run_to(proven_at + RECHALLENGE_PERIOD);
		let id = OpenChallenge::<Test>::get(bob(), 0).expect("re-challenged");
		assert_ne!(id, first);
		let ch = Challenges::<Test>::get(id).unwrap();
		assert_eq!((ch.kind, ch.seq), (ChallengeKind::ReChallenge, 1));
		// answered: stays Active, failures stay 0
		run_to(ch.seed_block + 1);
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, data.prove(id)));
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().status, HoldingStatus::Active);
		// the next one is left unanswered: back to Syncing
		let now = System::block_number();
		run_to(now + RECHALLENGE_PERIOD);
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		let ch = Challenges::<Test>::get(id).unwrap();
		run_to(ch.deadline + 1);
		let h = Holdings::<Test>::get(0, bob()).unwrap();
		assert_eq!((h.status, h.failures), (HoldingStatus::Syncing, 1));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Syncing);
	});
}

/// Review of #13: removing a holder (or cancelling the migration it was added for) is no
/// failure of the holder's, so a colluding owner could use it to erase a failure the holder
/// was due once its challenge's indexes were known. Both wait for the challenge's outcome.
#[test]
fn owner_cannot_erase_a_pending_failure() {
	run(|| {
		let data = Data::with(2, 4);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		let ch = Challenges::<Test>::get(id).unwrap();
		register(charlie(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, charlie());
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(charlie()), 0, 1));
		// Until the deadline, neither removal nor cancelling the migration lets the holder
		// off (not even before the seed is public: its block's author knows it earlier).
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, bob()),
			E::ChallengeInProgress
		);
		run_to(ch.seed_block + 1);
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, bob()),
			E::ChallengeInProgress
		);
		assert_noop!(
			SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0),
			E::ChallengeInProgress
		);
		// Once the challenges expired (failures counted), both are possible.
		run_to(ch.deadline + 3);
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().failures, 1);
		assert_ok!(SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, bob()));
		assert_ok!(SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0));
		// The removed holder's failure is remembered.
		assert_eq!(FailureRecords::<Test>::get(0, bob()).map(|r| r.failures), Some(1));
	});
}

/// Review of #13: a Lagging holder was re-challenged on its old root, which an honest node may
/// have pruned; it is not re-checked until it proves a newer root (it shows `Lagging`).
#[test]
fn lagging_holders_must_catch_up_instead_of_being_rechallenged() {
	run(|| {
		let data = Data::with(3, 6);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		join_and_prove(bob(), 1, &data);
		for seq in 2..=4 {
			commit_next(seq, data.facts());
		}
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().status, HoldingStatus::Lagging);
		// At its next re-check it is not challenged on the old root but must catch up: it is
		// `Syncing`, with the `Syncing` timeout, and no failure.
		let check = Holdings::<Test>::get(0, bob()).unwrap().next_check.unwrap();
		run_to(check);
		assert!(OpenChallenge::<Test>::get(bob(), 0).is_none());
		let h = Holdings::<Test>::get(0, bob()).unwrap();
		assert_eq!((h.status, h.failures, h.next_check), (HoldingStatus::Syncing, 0, None));
		assert_eq!(h.syncing_until, Some(check + SYNCING_TIMEOUT));
		// Proving a newer root makes it Active again; not doing so in time drops it.
		run_to(check + SYNCING_TIMEOUT + 1);
		assert!(has_event(Event::HolderDropped { segment: 0, who: bob() }));
	});
}

/// Regression (#13): re-challenges landed at a predictable `now + ReChallengePeriod`. They
/// now come at random ticks: a draw every `ReChallengePeriod / ReChallengeTicks` blocks fires
/// with probability `1 / ReChallengeTicks`.
#[test]
fn rechallenges_come_at_random_ticks() {
	run(|| {
		ReChallengeTicks::set(4);
		let tick = RECHALLENGE_PERIOD / 4;
		let data = Data::with(4, 7);
		segment_with(&data);
		let holders = [bob(), charlie(), dave(), account(5)];
		let mut proven_at = BTreeMap::new();
		for w in holders {
			register(w, NodeRole::Replica);
			join_and_prove(w, 1, &data);
			proven_at.insert(w, System::block_number());
			assert_eq!(
				Holdings::<Test>::get(0, w).unwrap().next_check,
				Some(System::block_number() + tick)
			);
		}
		let mut waited = BTreeMap::new();
		let end = System::block_number() + 40 * tick;
		while System::block_number() < end && waited.len() < holders.len() {
			next_block();
			for w in holders {
				if waited.contains_key(&w) {
					continue;
				}
				if let Some(id) = OpenChallenge::<Test>::get(w, 0) {
					assert_eq!(
						Challenges::<Test>::get(id).unwrap().kind,
						ChallengeKind::ReChallenge
					);
					let d = System::block_number() - proven_at[&w];
					assert_eq!(d % tick, 0, "re-challenges come only at ticks");
					waited.insert(w, d / tick);
				}
			}
		}
		assert_eq!(waited.len(), holders.len(), "every holder was re-challenged: {waited:?}");
		assert!(waited.values().any(|k| *k > 1), "not every draw fires: {waited:?}");
		ReChallengeTicks::set(1);
	});
}

/// Regression (#13): the seed was `blake2(block_hash(claim_block + 1) ‖ id)`, which the seed
/// block's author can grind (reorder extrinsics, nudge the timestamp). It now comes from the
/// beacon, which only the per-block randomness (BABE's VRF output) moves.
#[test]
fn challenge_seed_ignores_the_block_hash() {
	let seed_with = |vrf: Option<[u8; 32]>| {
		new_test_ext().execute_with(|| {
			let data = Data::with(2, 5);
			segment_with(&data);
			register(bob(), NodeRole::Replica);
			assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
			assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
			let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
			let ch = Challenges::<Test>::get(id).unwrap();
			VrfOverride::set(vrf);
			run_to(ch.seed_block + 1);
			VrfOverride::set(None);
			let seed = SyncRegistry::challenge_seed(id, ch.seed_block);
			// The author of the seed block picks other contents: another hash, same seed.
			frame_system::BlockHash::<Test>::insert(
				ch.seed_block,
				sp_core::H256::repeat_byte(0x42),
			);
			assert_eq!(SyncRegistry::challenge_seed(id, ch.seed_block), seed);
			let beacon = Beacon::<Test>::get(ch.seed_block).expect("folded");
			assert_eq!(
				seed,
				sp_io::hashing::blake2_256(&[&beacon[..], &id.to_le_bytes()].concat())
			);
			seed
		})
	};
	let (a, b, c) = (seed_with(None), seed_with(Some([1; 32])), seed_with(Some([2; 32])));
	assert!(a != b && b != c && a != c, "the randomness decides the seed");
}

/// The beacon keeps only what open challenges can still need.
#[test]
fn beacon_is_pruned_after_the_proof_window() {
	run(|| {
		run_to(3 * PROOF_WINDOW + 10);
		let now = System::block_number();
		let kept: Vec<u64> = Beacon::<Test>::iter_keys().collect();
		assert_eq!(kept.len() as u64, PROOF_WINDOW + 2);
		assert!(kept.iter().all(|b| *b + PROOF_WINDOW + 2 >= now && *b < now));
	});
}

#[test]
fn holder_lags_after_max_lag_commits_and_recovers_by_proving() {
	run(|| {
		let mut data = Data::with(3, 8);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		join_and_prove(bob(), 1, &data);
		// two more commits: still within MaxLag = 2
		for seq in 2..=3 {
			data.put(format!("new/{seq}").as_bytes(), vec![seq as u8; 3000]);
			commit_next(seq, data.facts());
		}
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().status, HoldingStatus::Active);
		data.put(b"new/4", vec![4; 10]);
		commit_next(4, data.facts());
		assert!(has_event(Event::HolderLagging {
			segment: 0,
			who: bob(),
			proven_seq: 1,
			latest_seq: 4
		}));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Lagging);
		// proving the newest root makes it Active again
		claim_and_prove(bob(), 4, &data);
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().status, HoldingStatus::Active);
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Active);
	});
}

#[test]
fn proving_a_root_that_went_stale_meanwhile_leaves_the_holder_lagging() {
	run(|| {
		let mut data = Data::with(3, 16);
		segment_with(&data);
		let old = data.clone();
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		// three commits while the challenge is open: seq 1 is now beyond MaxLag = 2
		for seq in 2..=4 {
			data.put(format!("late/{seq}").as_bytes(), vec![seq as u8; 100]);
			commit_next(seq, data.facts());
		}
		run_to(Challenges::<Test>::get(id).unwrap().seed_block + 1);
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, old.prove(id)));
		let h = Holdings::<Test>::get(0, bob()).unwrap();
		assert_eq!((h.status, h.proven.map(|p| p.seq)), (HoldingStatus::Lagging, Some(1)));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Lagging);
	});
}

#[test]
fn expiries_beyond_the_per_block_budget_run_in_later_blocks() {
	run(|| {
		let data = Data::with(2, 9);
		segment_with(&data);
		for i in 2..=4 {
			register(account(i), NodeRole::Replica);
			assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(account(i)), 0));
			assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(account(i)), 0, 1));
		}
		let ids: Vec<u64> =
			(2..=4).map(|i| OpenChallenge::<Test>::get(account(i), 0).unwrap()).collect();
		let base = 1 + CHALLENGE_DELAY + PROOF_WINDOW;
		// Deadlines never move: all three are due at the same block.
		assert!(ids.iter().all(|id| Challenges::<Test>::get(id).unwrap().deadline == base));
		// The mock runs 2 tasks per block: two expire at base + 1, the third one block later.
		run_to(base + 1);
		assert_eq!(ids.iter().filter(|id| Challenges::<Test>::contains_key(id)).count(), 1);
		run_to(base + 2);
		assert!(ids.iter().all(|id| !Challenges::<Test>::contains_key(id)));
		assert_eq!(Agenda::<Test>::iter_prefix(base + 1).count(), 0);
	});
}

#[test]
fn schedule_flood_does_not_block_others() {
	run(|| {
		let data = Data::with(2, 9);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		register(charlie(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(charlie()), 0));
		// Bob claims and leaves over and over in one block (paying a failure each time): each
		// leave removes its challenge's expiry, so nothing piles up.
		for _ in 0..40 {
			assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
			assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
			if SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0).is_err() {
				break;
			}
		}
		// Charlie's claim is unaffected and is due at its exact deadline.
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(charlie()), 0, 1));
		let id = OpenChallenge::<Test>::get(charlie(), 0).unwrap();
		let ch = Challenges::<Test>::get(id).unwrap();
		assert_eq!(ch.deadline, 1 + CHALLENGE_DELAY + PROOF_WINDOW);
		let expiries =
			Agenda::<Test>::iter().filter(|(_, t, _)| matches!(t, Task::Expire(_))).count();
		assert!(expiries <= 2, "only live challenges are scheduled, got {expiries}");
		run_to(ch.seed_block + 1);
		assert_ok!(SyncRegistry::submit_proof(
			RuntimeOrigin::signed(charlie()),
			id,
			data.prove(id)
		));
		let h = Holdings::<Test>::get(0, charlie()).unwrap();
		assert_eq!(h.status, HoldingStatus::Active);
		// …and its re-challenge is scheduled exactly one period later.
		assert_eq!(h.next_check, Some(ch.seed_block + 1 + RECHALLENGE_PERIOD));
	});
}

// ------------------------------------------------------------------ failures cost

#[test]
fn crafted_trie_bit_is_an_error() {
	run(|| {
		let data = Data::with(3, 11);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		let id = claim_and_see_seed(bob());
		for bit in [65535u16, 256] {
			let mut p = data.prove(id);
			for c in p.chunks.iter_mut() {
				let mut path = c.trie_path.clone().into_inner();
				if let Some(step) = path.first_mut() {
					step.bit = bit;
				}
				c.trie_path = path.try_into().unwrap();
			}
			let r = SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, p);
			assert_eq!(r.map_err(|e| e.error), Err(E::InvalidProof.into()));
		}
		// The honest proof still lands, fee-free.
		let r = SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, data.prove(id));
		assert_eq!(r.unwrap().pays_fee, frame_support::dispatch::Pays::No);
	});
}

#[test]
fn proofs_are_operational_and_free_only_when_accepted() {
	use frame_support::dispatch::{DispatchClass, GetDispatchInfo, Pays};
	let call =
		Call::<Test>::submit_proof { id: 0, proof: SyncProof { chunks: Default::default() } };
	let info = call.get_dispatch_info();
	assert_eq!((info.class, info.pays_fee), (DispatchClass::Operational, Pays::Yes));
	run(|| {
		let data = Data::with(2, 12);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		let id = claim_and_see_seed(bob());
		let mut bad = data.prove(id);
		bad.chunks[0].chunk[0] ^= 1;
		let refused = SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, bad);
		assert_eq!(refused.unwrap_err().post_info.pays_fee, Pays::Yes);
		let ok = SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, data.prove(id));
		assert_eq!(ok.unwrap().pays_fee, Pays::No);
	});
}

#[test]
fn abandoning_a_challenge_is_a_failure() {
	run(|| {
		let data = Data::with(2, 13);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		// Claim, see the seed, leave: the challenge counts as failed and is penalised.
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		let id = claim_and_see_seed(bob());
		assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
		assert!(has_event(Event::ChallengeAbandoned { id, segment: 0, who: bob(), failures: 1 }));
		assert!(has_event(Event::Penalized { who: bob(), amount: DEPOSIT / 10 }));
		assert_eq!(held(bob()), DEPOSIT - DEPOSIT / 10);
		// Rejoining does not reset the count…
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().failures, 1);
		// …and MaxFailures (3) abandoned rounds drop the holder like missed ones.
		for round in 2..=3 {
			claim_and_see_seed(bob());
			assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
			assert_eq!(FailureRecords::<Test>::get(0, bob()).unwrap().failures, round);
			assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		}
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().failures, 3);
		// Leaving before the seed is public is abandoning it too: the seed block's author
		// knows the seed while it builds that block (and could include the leave in it).
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
		assert_eq!(FailureRecords::<Test>::get(0, bob()).unwrap().failures, 4);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		// So is being forced out.
		claim_and_see_seed(bob());
		assert_ok!(SyncRegistry::force_deregister(RuntimeOrigin::root(), bob()));
		assert!(events().iter().any(|e| matches!(
			e,
			Event::ChallengeAbandoned { who, failures: 5, .. } if *who == bob()
		)));
	});
}

#[test]
fn remembered_failures_are_forgotten_after_the_cooling_period() {
	run(|| {
		let data = Data::with(2, 14);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		claim_and_see_seed(bob());
		assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
		let until = FailureRecords::<Test>::get(0, bob()).unwrap().until;
		assert_eq!(until, System::block_number() + FAILURE_MEMORY);
		run_to(until + 1);
		assert_eq!(FailureRecords::<Test>::get(0, bob()), None, "forgotten by its task");
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().failures, 0);
	});
}

#[test]
fn deposit_below_minimum_suspends_until_topped_up() {
	run(|| {
		let data = Data::with(2, 15);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		// Six abandoned challenges burn 60 % of the deposit: below MinDeposit (50 %).
		for _ in 0..6 {
			assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
			claim_and_see_seed(bob());
			assert_ok!(SyncRegistry::leave_segment(RuntimeOrigin::signed(bob()), 0));
		}
		let deposit = Nodes::<Test>::get(bob()).unwrap().deposit;
		assert_eq!(deposit, DEPOSIT * 4 / 10);
		assert!(has_event(Event::NodeSuspended { who: bob(), deposit }));
		assert_noop!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0), E::DepositTooLow);
		// (A holder that became suspended cannot claim either.)
		assert!(matches!(SyncRegistry::can_claim(&bob(), 0, 1), Err(E::NotHolder)));
		assert_ok!(SyncRegistry::top_up_deposit(RuntimeOrigin::signed(bob())));
		assert!(has_event(Event::DepositToppedUp {
			who: bob(),
			amount: DEPOSIT * 6 / 10,
			deposit: DEPOSIT
		}));
		assert_eq!(held(bob()), DEPOSIT);
		assert_noop!(
			SyncRegistry::top_up_deposit(RuntimeOrigin::signed(bob())),
			E::NothingToUpdate
		);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		// The poor cannot top up.
		assert_noop!(SyncRegistry::top_up_deposit(RuntimeOrigin::signed(poor())), E::NotRegistered);
	});
}

#[test]
fn suspended_holder_cannot_claim() {
	run(|| {
		let data = Data::with(2, 16);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		Nodes::<Test>::mutate(bob(), |n| n.as_mut().unwrap().deposit = DEPOSIT / 2 - 1);
		assert_noop!(
			SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1),
			E::DepositTooLow
		);
		Nodes::<Test>::mutate(bob(), |n| n.as_mut().unwrap().deposit = DEPOSIT);
	});
}

#[test]
fn idle_syncing_holding_is_dropped() {
	run(|| {
		let data = Data::with(2, 17);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		register(charlie(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(charlie()), 0));
		let joined = System::block_number();
		// Charlie has a challenge open when its timeout would end: the challenge decides.
		run_to(joined + SYNCING_TIMEOUT - 2);
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(charlie()), 0, 1));
		run_to(joined + SYNCING_TIMEOUT);
		assert!(has_event(Event::HolderDropped { segment: 0, who: bob() }));
		assert!(!Holdings::<Test>::contains_key(0, bob()));
		assert_noop!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0), E::RejoinBarred);
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Joining);
		assert!(Holdings::<Test>::contains_key(0, charlie()));
		// Charlie's missed challenge restarts its timeout.
		let id = OpenChallenge::<Test>::get(charlie(), 0).unwrap();
		let deadline = Challenges::<Test>::get(id).unwrap().deadline;
		run_to(deadline + 1);
		let h = Holdings::<Test>::get(0, charlie()).unwrap();
		assert_eq!(h.syncing_until, Some(deadline + 1 + SYNCING_TIMEOUT));
	});
}

#[test]
fn owner_can_remove_a_holder() {
	run(|| {
		let data = Data::with(2, 18);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		register(charlie(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(charlie()), 0, bob()),
			E::NotOwner
		);
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, alice()),
			E::IsOwner
		);
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, charlie()),
			E::NotHolder
		);
		// With a challenge open, the removal waits for its outcome (see
		// `owner_cannot_erase_a_pending_failure`); answered, the holder can be removed.
		assert_noop!(
			SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, bob()),
			E::ChallengeInProgress
		);
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		run_to(Challenges::<Test>::get(id).unwrap().seed_block + 1);
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, data.prove(id)));
		assert_ok!(SyncRegistry::remove_holder(RuntimeOrigin::signed(alice()), 0, bob()));
		assert!(has_event(Event::HolderRemoved { segment: 0, who: bob() }));
		// Being removed is not the holder's failure: no penalty, no abandoned challenge.
		assert_eq!(held(bob()), DEPOSIT);
		assert!(!events().iter().any(|e| matches!(e, Event::ChallengeAbandoned { .. })));
		assert!(OpenChallenge::<Test>::get(bob(), 0).is_none());
		assert!(NodeSegments::<Test>::get(bob()).is_empty());
		// Root may too.
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(charlie()), 0));
		assert_ok!(SyncRegistry::remove_holder(RuntimeOrigin::root(), 0, charlie()));
		// A removed holder cannot squat the seat again at once…
		assert_noop!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0), E::RejoinBarred);
		// …only after the cooling period.
		run_to(System::block_number() + FAILURE_MEMORY + 1);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
	});
}

#[test]
fn leaving_node_is_not_rechallenged_and_deregisters_without_penalty() {
	run(|| {
		let data = Data::with(2, 20);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		join_and_prove(bob(), 1, &data);
		assert!(Holdings::<Test>::get(0, bob()).unwrap().next_check.is_some());
		assert_ok!(SyncRegistry::announce_leave(RuntimeOrigin::signed(bob())));
		assert_eq!(Holdings::<Test>::get(0, bob()).unwrap().next_check, None);
		let leave_at = Nodes::<Test>::get(bob()).unwrap().leave_at.unwrap();
		run_to(leave_at.max(1 + RECHALLENGE_PERIOD + 1));
		assert!(OpenChallenge::<Test>::get(bob(), 0).is_none(), "no re-challenge while leaving");
		assert_ok!(SyncRegistry::deregister_node(RuntimeOrigin::signed(bob())));
		assert!(!events().iter().any(|e| matches!(e, Event::Penalized { .. })));
	});
}

#[test]
fn empty_roots_and_stale_reproofs_cannot_be_claimed() {
	run(|| {
		let data = Data::with(2, 21);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		join_and_prove(bob(), 1, &data);
		next_block();
		let empty = SegmentTrie::new().facts();
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, empty));
		assert_noop!(
			SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 2),
			E::NothingToProve
		);
		// A migration target may re-prove its root only if that root completes the migration.
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(
			SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1),
			E::AlreadyProven
		);
	});
}

#[test]
fn co_primaries_cannot_take_a_pending_targets_seat() {
	run(|| {
		let data = Data::with(2, 22);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		register(dave(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, dave());
		// MaxPrimaries = 3: alice + one more, the last seat is dave's.
		make_primary(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(
			SyncRegistry::add_primary(RuntimeOrigin::signed(alice()), 0, charlie()),
			E::TooManyPrimaries
		);
		claim_and_prove(dave(), 1, &data);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		confirm(dave(), 1, data.facts());
		let seg = Segments::<Test>::get(0).unwrap();
		assert_eq!(seg.owner, dave());
		assert!(seg.primaries.contains(&alice()), "the old provider is retained");
		// The retained provider is released by the chain, not removed by the new owner.
		assert_noop!(
			SyncRegistry::remove_primary(RuntimeOrigin::signed(dave()), 0, alice()),
			E::MigrationPending
		);
	});
}

// ------------------------------------------------------------------ leaving

#[test]
fn leaving_waits_out_the_delay() {
	run(|| {
		let data = Data::with(2, 10);
		segment_with(&data);
		assert_noop!(SyncRegistry::announce_leave(RuntimeOrigin::signed(alice())), E::OwnsSegments);
		register(bob(), NodeRole::Replica);
		join_and_prove(bob(), 1, &data);
		assert_noop!(SyncRegistry::deregister_node(RuntimeOrigin::signed(bob())), E::NodeBusy);
		assert_ok!(SyncRegistry::announce_leave(RuntimeOrigin::signed(bob())));
		let leave_at = System::block_number() + LEAVE_DELAY;
		assert!(has_event(Event::NodeLeaving { who: bob(), leave_at }));
		assert_eq!(Nodes::<Test>::get(bob()).unwrap().status, NodeStatus::Leaving);
		assert_noop!(SyncRegistry::announce_leave(RuntimeOrigin::signed(bob())), E::AlreadyLeaving);
		assert_noop!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0), E::NodeLeaving);
		assert_noop!(
			SyncRegistry::deregister_node(RuntimeOrigin::signed(bob())),
			E::LeaveDelayNotPassed
		);
		run_to(leave_at);
		assert_ok!(SyncRegistry::deregister_node(RuntimeOrigin::signed(bob())));
		assert!(has_event(Event::HolderLeft { segment: 0, who: bob() }));
		assert!(Holdings::<Test>::get(0, bob()).is_none());
		assert!(OpenChallenge::<Test>::iter_prefix(bob()).next().is_none());
		assert_eq!(held(bob()), 0);
	});
}

#[test]
fn force_deregister_is_root_only_and_spares_owners() {
	run(|| {
		let data = Data::with(1, 11);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_noop!(
			SyncRegistry::force_deregister(RuntimeOrigin::signed(alice()), bob()),
			DispatchError::BadOrigin
		);
		assert_noop!(
			SyncRegistry::force_deregister(RuntimeOrigin::root(), charlie()),
			E::NotRegistered
		);
		assert_noop!(
			SyncRegistry::force_deregister(RuntimeOrigin::root(), alice()),
			E::OwnsSegments
		);
		assert_ok!(SyncRegistry::force_deregister(RuntimeOrigin::root(), bob()));
		assert!(has_event(Event::NodeDeregistered { who: bob(), released: DEPOSIT, forced: true }));
		assert!(Segments::<Test>::get(0).unwrap().holders.is_empty());
	});
}

// ------------------------------------------------------------------ migration

#[test]
fn migration_moves_ownership_only_after_the_proof() {
	run(|| {
		let data = Data::with(4, 12);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Replica);
		assert_noop!(
			SyncRegistry::request_migration(RuntimeOrigin::signed(bob()), 0, bob()),
			E::NotOwner
		);
		assert_noop!(
			SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, charlie()),
			E::WrongRole
		);
		assert_noop!(
			SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, alice()),
			E::AlreadyOwner
		);
		assert_noop!(
			SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0),
			E::NoMigration
		);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		let until = 1 + MIGRATION_TIMEOUT;
		assert!(has_event(Event::MigrationRequested {
			segment: 0,
			from: alice(),
			to: bob(),
			until
		}));
		assert_noop!(
			SyncRegistry::request_migration(RuntimeOrigin::root(), 0, bob()),
			E::MigrationPending
		);
		assert_noop!(
			SyncRegistry::announce_leave(RuntimeOrigin::signed(bob())),
			E::MigrationPending
		);
		assert_eq!(
			Segments::<Test>::get(0).unwrap().owner,
			alice(),
			"nothing moves before the proof"
		);
		// a bad proof changes nothing
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		run_to(System::block_number() + CHALLENGE_DELAY + 1);
		let mut bad = data.prove(id);
		bad.chunks[0].cid[0] ^= 1;
		assert_noop!(
			SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, bad),
			E::InvalidProof
		);
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(bob()), id, data.prove(id)));
		// The proof does not move ownership: it asks the old owner to seal its epoch.
		let seal_by = System::block_number() + SEAL_TIMEOUT;
		assert!(has_event(Event::MigrationProven { segment: 0, to: bob(), seq: 1, seal_by }));
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice(), "owned until the seal");
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		// Sealed, ownership waits for the target's confirmation of the sealed root.
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice(), "owned until confirmed");
		confirm(bob(), 1, data.facts());
		let seg = Segments::<Test>::get(0).unwrap();
		assert_eq!(seg.owner, bob());
		assert!(seg.primaries.contains(&alice()) && seg.primaries.contains(&bob()));
		assert!(!seg.holders.contains(&bob()));
		assert!(has_event(Event::EpochSealed {
			segment: 0,
			owner: alice(),
			seq: 1,
			timed_out: false
		}));
		assert!(has_event(Event::MigrationCompleted {
			segment: 0,
			from: alice(),
			to: bob(),
			seq: 1
		}));
		// the new owner commits; the old one is retained, then released
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(bob()), 0, 2, data.facts()));
		let release = System::block_number() + MIGRATION_RETENTION;
		run_to(release);
		assert!(has_event(Event::ProviderReleased { segment: 0, who: alice() }));
		assert!(!Segments::<Test>::get(0).unwrap().primaries.contains(&alice()));
		assert!(Migrations::<Test>::get(0).is_none());
		assert_eq!(Nodes::<Test>::get(alice()).unwrap().status, NodeStatus::Joining);
		assert_ok!(SyncRegistry::announce_leave(RuntimeOrigin::signed(alice())));
	});
}

#[test]
fn migration_can_be_cancelled_or_time_out() {
	run(|| {
		let data = Data::with(2, 13);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(
			SyncRegistry::cancel_migration(RuntimeOrigin::signed(charlie()), 0),
			E::NotOwner
		);
		assert_ok!(SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0));
		assert!(has_event(Event::MigrationCancelled { segment: 0, to: bob() }));
		assert!(
			Holdings::<Test>::get(0, bob()).is_none(),
			"target added for the migration is removed"
		);
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice());
		// timeout
		migrate(RuntimeOrigin::root(), 0, charlie());
		let until = Migrations::<Test>::get(0).unwrap().until;
		run_to(until);
		assert!(has_event(Event::MigrationTimedOut { segment: 0, to: charlie() }));
		assert!(Migrations::<Test>::get(0).is_none());
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice());
	});
}

#[test]
fn force_set_owner_moves_ownership() {
	run(|| {
		let data = Data::with(1, 14);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		assert_noop!(
			SyncRegistry::force_set_owner(RuntimeOrigin::signed(alice()), 0, bob()),
			DispatchError::BadOrigin
		);
		assert_noop!(
			SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, alice()),
			E::AlreadyOwner
		);
		assert_ok!(SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, bob()));
		assert!(has_event(Event::OwnerForced { segment: 0, from: alice(), to: bob() }));
		let seg = Segments::<Test>::get(0).unwrap();
		assert_eq!(seg.owner, bob());
		assert!(seg.holders.contains(&alice()), "old owner must prove like any holder");
	});
}

// ------------------------------------------------------------------ ownership epochs

/// The retained epochs of segment `s` as (epoch, owner, peer id, first seq), oldest first.
fn epochs_of(s: SegmentId) -> Vec<(u32, AccountId, PeerIdBytes, u64)> {
	OwnerEpochs::<Test>::get(s)
		.into_iter()
		.map(|e| (e.epoch, e.owner, e.peer_id, e.first_seq))
		.collect()
}

#[test]
fn creating_a_segment_starts_epoch_one() {
	run(|| {
		let data = Data::with(1, 30);
		segment_with(&data);
		assert_eq!(epochs_of(0), vec![(1, alice(), pid(1), 1)]);
		assert!(has_event(Event::EpochStarted {
			segment: 0,
			epoch: 1,
			owner: alice(),
			peer_id: pid(1),
			first_seq: 1
		}));
		// The runtime API returns them, oldest first.
		assert_eq!(
			SyncRegistry::segment_summary(0).unwrap().epochs,
			vec![sync_primitives::EpochSummary {
				epoch: 1,
				peer_id: pid(1).into_inner(),
				first_seq: 1
			}]
		);
	});
}

/// The defect: the target's epoch started after the seq it *proved*, while the old owner may
/// have signed further ops before the proof landed: two keys for the same seqs. The old
/// owner's epoch now ends exactly where it sealed it, and the target's starts right after.
#[test]
fn a_sealed_migration_starts_the_targets_epoch_right_after_the_sealed_seq() {
	run(|| {
		let data = Data::with(2, 31);
		segment_with(&data);
		commit_next(5, data.facts());
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		// Nothing moves before the proof, nor at it.
		assert_eq!(epochs_of(0).len(), 1);
		claim_and_prove(bob(), 5, &data);
		assert_eq!(epochs_of(0).len(), 1);
		// Alice wrote on after the seq Bob proved; she seals at her last op, 9.
		let mut later = data.clone();
		later.put(b"late", vec![7; 10]);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 9, later.facts()));
		confirm(bob(), 9, later.facts());
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, bob());
		assert_eq!(
			Roots::<Test>::get(0).last().map(|r| (r.seq, r.facts)),
			Some((9, later.facts()))
		);
		assert_eq!(epochs_of(0), vec![(1, alice(), pid(1), 1), (2, bob(), pid(2), 10)]);
		assert!(has_event(Event::EpochStarted {
			segment: 0,
			epoch: 2,
			owner: bob(),
			peer_id: pid(2),
			first_seq: 10
		}));
		assert!(has_event(Event::MigrationCompleted {
			segment: 0,
			from: alice(),
			to: bob(),
			seq: 9
		}));
		let api = SyncRegistry::segment_summary(0).unwrap().epochs;
		assert_eq!(
			api.iter().map(|e| (e.epoch, e.first_seq)).collect::<Vec<_>>(),
			[(1, 1), (2, 10)]
		);
		assert_eq!(api[1].peer_id, pid(2).into_inner());
	});
}

/// The seal rules: only the owner, only once the target proved, only at its last op (the
/// latest commit with the same facts, or a new commit under `commit_root`'s rules); a refused
/// seal changes nothing.
#[test]
fn seal_rules() {
	run(|| {
		let data = Data::with(2, 40);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		let seal =
			|who, seq, facts| SyncRegistry::seal_segment(RuntimeOrigin::signed(who), 0, seq, facts);
		assert_noop!(seal(alice(), 1, data.facts()), E::NoMigration);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(seal(alice(), 1, data.facts()), E::NotProven);
		claim_and_prove(bob(), 1, &data);
		assert_noop!(seal(bob(), 1, data.facts()), E::NotOwner);
		assert_noop!(seal(charlie(), 1, data.facts()), E::NotOwner);
		assert_noop!(
			SyncRegistry::seal_segment(RuntimeOrigin::root(), 0, 1, data.facts()),
			DispatchError::BadOrigin
		);
		assert_noop!(
			SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 7, 1, data.facts()),
			E::UnknownSegment
		);
		let other = Data::with(3, 41);
		assert_noop!(seal(alice(), 1, other.facts()), E::SealMismatch);
		commit_next(4, other.facts());
		assert_noop!(seal(alice(), 3, data.facts()), E::StaleSeq);
		// An inconsistent new commit, or one too far ahead, is refused as `commit_root`
		// refuses it.
		next_block();
		let mut bad = data.facts();
		bad.leaves = 0;
		assert_noop!(seal(alice(), 5, bad), E::InvalidRootFacts);
		assert_noop!(seal(alice(), 4 + MAX_SEQ_STEP + 1, data.facts()), E::SeqStepTooLarge);
		assert_ok!(seal(alice(), 4, other.facts()));
		// Once: the migration is sealed; the owner commits nothing past the seal.
		assert_noop!(seal(alice(), 4, other.facts()), E::AlreadySealed);
		assert_noop!(seal(alice(), 5, other.facts()), E::AlreadySealed);
		next_block();
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 5, other.facts()),
			E::AlreadySealed
		);
		confirm(bob(), 4, other.facts());
		assert_eq!(epochs_of(0).last().map(|e| e.3), Some(5));
		assert_noop!(seal(bob(), 4, other.facts()), E::NoMigration);
	});
}

/// The defect (review of #15): a `Commit` the owner sent before it fenced lands in the block
/// its seal lands in; the seal's own new commit was refused as `CommitTooSoon`, and the chain
/// sealed at the older commit on the timeout, dropping the writes in between. A seal's commit
/// may follow the owner's last commit in the same block.
#[test]
fn a_seal_may_follow_the_owners_last_commit_in_the_same_block() {
	run(|| {
		let data = Data::with(2, 43);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		next_block();
		let later = Data::with(3, 44);
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 4, data.facts()));
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 5, later.facts()),
			E::CommitTooSoon
		);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 5, later.facts()));
		confirm(bob(), 5, later.facts());
		assert_eq!(Roots::<Test>::get(0).last().map(|r| r.seq), Some(5));
		assert_eq!(epochs_of(0).last().map(|e| (e.1, e.3)), Some((bob(), 6)));
		assert_eq!(Segments::<Test>::get(0).map(|s| s.owner), Some(bob()));
	});
}

/// The defect (review of #15): the target's holding went `Lagging` on the old owner's commits
/// after its proof; ownership moved and it stopped being a holder, but its cached node status
/// stayed `Lagging` (`try_state`: "cached node status is stale").
#[test]
fn a_lagging_targets_status_is_refreshed_when_it_takes_the_segment_over() {
	run(|| {
		let data = Data::with(2, 45);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		for seq in 2..=4 {
			commit_next(seq, data.facts());
		}
		assert_eq!(Holdings::<Test>::get(0, bob()).map(|h| h.status), Some(HoldingStatus::Lagging));
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 4, data.facts()));
		confirm(bob(), 4, data.facts());
		assert_eq!(Holdings::<Test>::get(0, bob()), None);
	});
}

/// The defect: a stale `Commit` of the old owner could still land after the move. After the
/// seal it is refused, and so is a second seal.
#[test]
fn a_stale_commit_of_the_old_owner_is_refused_after_the_seal() {
	run(|| {
		let data = Data::with(2, 42);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		confirm(bob(), 1, data.facts());
		next_block();
		assert_noop!(
			SyncRegistry::commit_root(RuntimeOrigin::signed(alice()), 0, 2, data.facts()),
			E::NotOwner
		);
		assert_noop!(
			SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 2, data.facts()),
			E::NotOwner
		);
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(bob()), 0, 2, data.facts()));
	});
}

/// The timeout path: an old owner that does not seal within `SealTimeout` blocks of the
/// proof (crashed) has its epoch sealed by the chain at the latest commit.
#[test]
fn an_unsealed_proven_migration_is_sealed_at_the_latest_commit() {
	run(|| {
		let data = Data::with(2, 43);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		commit_next(3, data.facts());
		let seal_by = Migrations::<Test>::get(0).unwrap().until;
		run_to(seal_by - 1);
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice(), "not before the timeout");
		run_to(seal_by);
		assert!(has_event(Event::EpochSealed {
			segment: 0,
			owner: alice(),
			seq: 3,
			timed_out: true
		}));
		// The target confirms it reached the chain's seal, and ownership moves.
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice(), "not before confirmed");
		confirm(bob(), 3, data.facts());
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, bob());
		assert!(has_event(Event::MigrationCompleted {
			segment: 0,
			from: alice(),
			to: bob(),
			seq: 3
		}));
		assert_eq!(epochs_of(0).last().map(|e| (e.1, e.3)), Some((bob(), 4)));
		assert!(Migrations::<Test>::get(0).is_some_and(|m| m.completed));
	});
}

/// Cancelling after the proof (before the seal) leaves the old owner owning and writing in
/// its epoch: no new epoch, its next commit is taken, the target stays a proven holder.
#[test]
fn cancelling_a_proven_migration_leaves_the_old_owner_writing() {
	run(|| {
		let data = Data::with(2, 44);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		assert_ok!(SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0));
		assert!(Migrations::<Test>::get(0).is_none());
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice());
		assert_eq!(epochs_of(0).len(), 1);
		assert_noop!(
			SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()),
			E::NoMigration
		);
		commit_next(2, data.facts());
		assert!(Holdings::<Test>::get(0, bob()).is_some_and(|h| h.proven.is_some()));
	});
}

/// The runtime API shows the phase the node acts on: accepted, proven (the old owner
/// seals), completed.
#[test]
fn migration_summary_shows_the_phase() {
	run(|| {
		let data = Data::with(2, 45);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		assert_ok!(SyncRegistry::request_migration(RuntimeOrigin::signed(alice()), 0, bob()));
		assert_eq!(SyncRegistry::migration_summary(0), None, "not accepted: nobody involved");
		assert_ok!(SyncRegistry::accept_migration(RuntimeOrigin::signed(bob()), 0));
		let m = SyncRegistry::migration_summary(0).unwrap();
		assert_eq!((m.from, m.to, m.proven, m.completed), (alice(), bob(), None, false));
		claim_and_prove(bob(), 1, &data);
		let m = SyncRegistry::migration_summary(0).unwrap();
		assert_eq!(
			(m.proven, m.completed, m.until),
			(Some(1), false, System::block_number() + SEAL_TIMEOUT)
		);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		let m = SyncRegistry::migration_summary(0).unwrap();
		assert_eq!((m.sealed, m.completed), (Some(1), false));
		confirm(bob(), 1, data.facts());
		assert!(SyncRegistry::migration_summary(0).unwrap().completed);
	});
}

/// The defect (review of #15): ownership moved at the old owner's seal, so an owner could
/// seal at a root nobody serves and leave the target owning a segment it cannot catch up to.
/// Ownership now moves only when the target confirms the sealed root; an unconfirmed seal
/// times out and the old owner keeps the segment, writing on from its seal.
#[test]
fn an_unconfirmed_seal_leaves_the_segment_with_its_old_owner() {
	run(|| {
		let data = Data::with(2, 49);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		let bogus = Data::with(3, 50);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 2, bogus.facts()));
		let confirm_by = System::block_number() + SEAL_TIMEOUT;
		assert_eq!(
			Migrations::<Test>::get(0).map(|m| (m.sealed, m.until)),
			Some((Some(2), confirm_by))
		);
		// Only the target, only the sealed seq and root.
		let c =
			|who, seq, root| SyncRegistry::confirm_seal(RuntimeOrigin::signed(who), 0, seq, root);
		assert_noop!(c(charlie(), 2, bogus.facts().root), E::NoMigration);
		assert_noop!(c(alice(), 2, bogus.facts().root), E::NoMigration);
		assert_noop!(c(bob(), 1, data.facts().root), E::SealMismatch);
		assert_noop!(c(bob(), 2, data.facts().root), E::SealMismatch);
		assert_noop!(
			SyncRegistry::confirm_seal(RuntimeOrigin::root(), 0, 2, bogus.facts().root),
			DispatchError::BadOrigin
		);
		run_to(confirm_by - 1);
		assert!(Migrations::<Test>::get(0).is_some());
		run_to(confirm_by);
		assert!(has_event(Event::MigrationTimedOut { segment: 0, to: bob() }));
		assert!(Migrations::<Test>::get(0).is_none());
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice());
		assert_eq!(epochs_of(0).len(), 1, "no epoch started");
		// The seal's commit stays an ordinary commit of the old owner, who writes on.
		commit_next(3, bogus.facts());
		assert!(Holdings::<Test>::get(0, bob()).is_some_and(|h| h.proven.is_some()));
	});
}

/// Confirming before the seal is refused; cancelling a sealed, unconfirmed migration leaves
/// the old owner owning (nothing moved, nothing forked).
#[test]
fn a_seal_is_confirmed_only_once_sealed_and_a_sealed_migration_can_be_cancelled() {
	run(|| {
		let data = Data::with(2, 51);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_noop!(
			SyncRegistry::confirm_seal(RuntimeOrigin::signed(bob()), 0, 1, data.facts().root),
			E::NotSealed
		);
		claim_and_prove(bob(), 1, &data);
		assert_noop!(
			SyncRegistry::confirm_seal(RuntimeOrigin::signed(bob()), 0, 1, data.facts().root),
			E::NotSealed
		);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		assert_ok!(SyncRegistry::cancel_migration(RuntimeOrigin::signed(alice()), 0));
		assert_eq!(Segments::<Test>::get(0).unwrap().owner, alice());
		assert_noop!(
			SyncRegistry::confirm_seal(RuntimeOrigin::signed(bob()), 0, 1, data.facts().root),
			E::NoMigration
		);
		commit_next(2, data.facts());
	});
}

#[test]
fn try_state_detects_migration_phases_out_of_order() {
	run(|| {
		let data = Data::with(2, 46);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		assert_ok!(SyncRegistry::do_try_state());
		let good = Migrations::<Test>::get(0).unwrap();
		for (broken, m) in [
			("migration completed without a proof", Migration { completed: true, ..good.clone() }),
			(
				"proven migration target without a proven holding",
				Migration { proven: Some(1), ..good.clone() },
			),
			(
				"unaccepted migration acted on",
				Migration { proven: Some(1), accepted: false, target_added: false, ..good.clone() },
			),
			("migration sealed without a proof", Migration { sealed: Some(1), ..good.clone() }),
			(
				"migration completed without a seal",
				Migration { completed: true, proven: Some(1), ..good.clone() },
			),
		] {
			Migrations::<Test>::insert(0, m);
			assert_eq!(SyncRegistry::do_try_state(), Err(broken.into()));
		}
		Migrations::<Test>::insert(0, good);
		assert_ok!(SyncRegistry::do_try_state());
	});
}

/// Stores `m` as version 4 stored a migration record (no `proven`), at storage version 4.
fn store_as_v4(segment: SegmentId, m: &MigrationOf<Test>) {
	use frame_support::traits::StorageVersion;
	let old = crate::migrations::v5::MigrationV4 {
		from: m.from,
		to: m.to,
		requested_at: m.requested_at,
		min_index: m.min_index,
		until: m.until,
		completed: m.completed,
		accepted: m.accepted,
		target_added: m.target_added,
	};
	let key = Migrations::<Test>::hashed_key_for(segment);
	frame_support::storage::unhashed::put_raw(&key, &codec::Encode::encode(&old));
	StorageVersion::new(4).put::<SyncRegistry>();
}

/// Storage version 4 → 5: a pending version-4 record decodes with `proven: None`, the version
/// is bumped, and a second run does nothing.
#[test]
fn storage_migration_v5_adds_proven() {
	use frame_support::traits::{GetStorageVersion, OnRuntimeUpgrade, StorageVersion};
	run(|| {
		let data = Data::with(2, 47);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		let now = Migrations::<Test>::get(0).unwrap();
		store_as_v4(0, &now);
		assert!(Migrations::<Test>::try_get(0).is_err(), "the old shape does not decode");
		crate::migrations::v5::MigrateV4ToV5::<Test>::on_runtime_upgrade();
		assert_eq!(SyncRegistry::on_chain_storage_version(), StorageVersion::new(5));
		crate::migrations::v5::MigrateV4ToV5::<Test>::on_runtime_upgrade();
		assert_eq!(SyncRegistry::on_chain_storage_version(), StorageVersion::new(5));
		crate::migrations::v6::MigrateV5ToV6::<Test>::on_runtime_upgrade();
		assert_eq!(Migrations::<Test>::get(0), Some(now.clone()));
		assert_eq!(SyncRegistry::on_chain_storage_version(), StorageVersion::new(6));
		crate::migrations::v6::MigrateV5ToV6::<Test>::on_runtime_upgrade();
		assert_eq!(Migrations::<Test>::get(0), Some(now));
	});
}

/// The defect (review of #15): a migration version 4 had completed was rewritten with
/// `proven: None`, and `try_state` failed ("completed without a proof") until its release.
#[test]
fn storage_migration_v5_keeps_a_completed_migration_proven() {
	use frame_support::traits::OnRuntimeUpgrade;
	run(|| {
		let data = Data::with(2, 48);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, bob());
		claim_and_prove(bob(), 1, &data);
		assert_ok!(SyncRegistry::seal_segment(RuntimeOrigin::signed(alice()), 0, 1, data.facts()));
		confirm(bob(), 1, data.facts());
		let now = Migrations::<Test>::get(0).unwrap();
		assert!(now.completed && now.proven == Some(1) && now.sealed == Some(1));
		store_as_v4(0, &now);
		crate::migrations::v5::MigrateV4ToV5::<Test>::on_runtime_upgrade();
		crate::migrations::v6::MigrateV5ToV6::<Test>::on_runtime_upgrade();
		assert_eq!(Migrations::<Test>::get(0), Some(now));
		assert_ok!(SyncRegistry::do_try_state());
	});
}

#[test]
fn force_set_owner_starts_an_epoch_after_the_latest_commit() {
	run(|| {
		let data = Data::with(1, 32);
		segment_with(&data);
		commit_next(3, data.facts());
		register(bob(), NodeRole::Primary);
		assert_ok!(SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, bob()));
		assert_eq!(epochs_of(0), vec![(1, alice(), pid(1), 1), (2, bob(), pid(2), 4)]);
		assert!(has_event(Event::EpochStarted {
			segment: 0,
			epoch: 2,
			owner: bob(),
			peer_id: pid(2),
			first_seq: 4
		}));
		// Without retained roots the next epoch would start at 1: it is raised to the last
		// epoch's first seq, so first seqs never decrease.
		assert_ok!(SyncRegistry::force_reset_roots(RuntimeOrigin::root(), 0));
		assert_ok!(SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, alice()));
		assert_eq!(epochs_of(0)[2], (3, alice(), pid(1), 4));
	});
}

#[test]
fn an_owners_new_peer_id_starts_an_epoch_of_each_owned_segment() {
	run(|| {
		let data = Data::with(1, 33);
		segment_with(&data);
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(alice())));
		register(bob(), NodeRole::Primary);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		// Only the addresses: no new epoch.
		let r = SyncRegistry::update_node(
			RuntimeOrigin::signed(alice()),
			None,
			Some(addrs(&["/ip4/10.0.0.1/tcp/1"])),
		);
		assert_eq!(r.unwrap().actual_weight, Some(<() as WeightInfo>::update_node(0)));
		assert_eq!(epochs_of(0).len(), 1);
		// A new peer id: a new epoch of both owned segments, charged for both.
		let r = SyncRegistry::update_node(
			RuntimeOrigin::signed(alice()),
			Some((pid(7), bind(alice(), 7))),
			None,
		);
		assert_eq!(r.unwrap().actual_weight, Some(<() as WeightInfo>::update_node(2)));
		assert_eq!(epochs_of(0), vec![(1, alice(), pid(1), 1), (2, alice(), pid(7), 2)]);
		assert_eq!(epochs_of(1), vec![(1, alice(), pid(1), 1), (2, alice(), pid(7), 1)]);
		assert!(has_event(Event::EpochStarted {
			segment: 1,
			epoch: 2,
			owner: alice(),
			peer_id: pid(7),
			first_seq: 1
		}));
		// A holder that owns nothing re-keys: the segments' owners did not change key.
		assert_ok!(SyncRegistry::update_node(
			RuntimeOrigin::signed(bob()),
			Some((pid(8), bind(bob(), 8))),
			None
		));
		assert_eq!(epochs_of(0).len(), 2);
	});
}

#[test]
fn a_full_epoch_history_drops_the_oldest() {
	run(|| {
		let data = Data::with(1, 34);
		segment_with(&data);
		for seed in 10..10 + MAX_OWNER_EPOCHS as u8 {
			assert_ok!(SyncRegistry::update_node(
				RuntimeOrigin::signed(alice()),
				Some((pid(seed), bind(alice(), seed))),
				None
			));
		}
		let kept = epochs_of(0);
		assert_eq!(kept.len() as u32, MAX_OWNER_EPOCHS);
		// Epoch 1 is gone; 2 ..= MAX_OWNER_EPOCHS + 1 remain, the last with the latest key.
		assert_eq!(kept[0].0, 2);
		assert_eq!(kept[0].2, pid(10));
		assert_eq!(
			*kept.last().unwrap(),
			(MAX_OWNER_EPOCHS + 1, alice(), pid(9 + MAX_OWNER_EPOCHS as u8), 2)
		);
	});
}

/// No call removes a segment from storage (segments are never deleted), so no call removes
/// its epochs either; `try_state` makes sure epochs never outlive their segment.
#[test]
fn epochs_of_an_unknown_segment_break_the_invariants() {
	new_test_ext().execute_with(|| {
		let data = Data::with(1, 35);
		segment_with(&data);
		assert_ok!(SyncRegistry::do_try_state());
		let stray: EpochsOf<Test> =
			vec![OwnerEpoch { epoch: 1, owner: alice(), peer_id: pid(1), first_seq: 1 }]
				.try_into()
				.unwrap();
		OwnerEpochs::<Test>::insert(7, stray);
		assert_eq!(SyncRegistry::do_try_state(), Err("epochs of unknown segment".into()));
		OwnerEpochs::<Test>::remove(7);
		assert_ok!(SyncRegistry::do_try_state());
	});
}

#[test]
fn try_state_detects_corrupted_epochs() {
	new_test_ext().execute_with(|| {
		let data = Data::with(1, 36);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		assert_ok!(SyncRegistry::force_set_owner(RuntimeOrigin::root(), 0, bob()));
		assert_ok!(SyncRegistry::do_try_state());
		let honest = OwnerEpochs::<Test>::get(0);
		let put = |list: Vec<(u32, AccountId, PeerIdBytes, u64)>| {
			let epochs: Vec<_> = list
				.into_iter()
				.map(|(epoch, owner, peer_id, first_seq)| OwnerEpoch {
					epoch,
					owner,
					peer_id,
					first_seq,
				})
				.collect();
			OwnerEpochs::<Test>::insert(0, EpochsOf::<Test>::try_from(epochs).unwrap());
		};
		let check = |broken: &'static str| {
			assert_eq!(SyncRegistry::do_try_state(), Err(broken.into()));
		};

		// The last epoch names the old owner.
		put(vec![(1, alice(), pid(1), 1), (2, alice(), pid(1), 2)]);
		check("last epoch is not the owner's");
		// The owner's key, but not the one it has registered.
		put(vec![(1, alice(), pid(1), 1), (2, bob(), pid(1), 2)]);
		check("last epoch has a stale peer id");
		// A gap in the numbering.
		put(vec![(1, alice(), pid(1), 1), (3, bob(), pid(2), 2)]);
		check("epochs not consecutive");
		// An epoch that starts before the previous one.
		put(vec![(1, alice(), pid(1), 5), (2, bob(), pid(2), 2)]);
		check("epoch first seqs decrease");
		// No epoch at all.
		OwnerEpochs::<Test>::remove(0);
		check("segment without ownership epoch");

		OwnerEpochs::<Test>::insert(0, honest);
		assert_ok!(SyncRegistry::do_try_state());
	});
}

// ------------------------------------------------------------------ off-chain worker

/// Test externalities with an off-chain worker context: offchain storage, a transaction pool
/// to inspect, and a keystore holding one `sync` key (whose account is returned).
fn ocw_ext() -> (
	sp_io::TestExternalities,
	std::sync::Arc<parking_lot::RwLock<sp_core::offchain::testing::PoolState>>,
	AccountId,
) {
	use sp_core::offchain::{testing, OffchainDbExt, OffchainWorkerExt, TransactionPoolExt};
	use sp_keystore::{testing::MemoryKeystore, Keystore, KeystoreExt};
	let (offchain, _state) = testing::TestOffchainExt::new();
	let (pool, pool_state) = testing::TestTransactionPoolExt::new();
	let keystore = MemoryKeystore::new();
	let public = keystore
		.sr25519_generate_new(sync_primitives::KEY_TYPE, Some("//SyncNode"))
		.unwrap();
	let mut ext = new_test_ext();
	ext.register_extension(OffchainWorkerExt::new(offchain.clone()));
	ext.register_extension(OffchainDbExt::new(offchain));
	ext.register_extension(TransactionPoolExt::new(pool));
	ext.register_extension(KeystoreExt::new(keystore));
	(ext, pool_state, public)
}

/// Segment 0 with data, and `public` a funded Replica holding it that claimed root 1: the data,
/// the node and its open challenge.
fn challenged_replica(public: AccountId) -> (Data, AccountId, ChallengeId) {
	let data = Data::with(3, 15);
	segment_with(&data);
	let node: AccountId = public;
	<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&node, 100_000);
	register(node, NodeRole::Replica);
	assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(node), 0));
	assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(node), 0, 1));
	let id = OpenChallenge::<Test>::get(node, 0).unwrap();
	(data, node, id)
}

#[test]
fn offchain_worker_submits_the_stored_proof_once() {
	let (mut ext, pool_state, public) = ocw_ext();
	ext.execute_with(|| {
		let (data, node, id) = challenged_replica(public);
		let ch = Challenges::<Test>::get(id).unwrap();

		// seed block not produced yet
		assert_eq!(
			crate::ocw::run::<Test>(ch.seed_block),
			vec![(id, crate::ocw::Outcome::NotReady)]
		);
		run_to(ch.seed_block + 1);
		// the node service has not stored a proof yet
		let now = System::block_number();
		assert_eq!(crate::ocw::run::<Test>(now), vec![(id, crate::ocw::Outcome::NoProof)]);
		// the node service stores it (as sync-node does)
		let proof = data.prove(id);
		sp_io::offchain::local_storage_set(
			sp_core::offchain::StorageKind::PERSISTENT,
			&sync_primitives::offchain::proof_key(id),
			&proof.encode().encode(),
		);
		assert_eq!(crate::ocw::run::<Test>(now), vec![(id, crate::ocw::Outcome::Submitted)]);
		let tx = pool_state.write().transactions.pop().unwrap();
		let tx = Extrinsic::decode(&mut &*tx).unwrap();
		assert_eq!(
			tx.function,
			RuntimeCall::SyncRegistry(crate::Call::submit_proof { id, proof: proof.clone() })
		);
		// not re-sent while it may still be included
		assert_eq!(crate::ocw::run::<Test>(now + 1), vec![(id, crate::ocw::Outcome::Pending)]);
		assert!(pool_state.read().transactions.is_empty());
		// and the submitted call is accepted on chain
		assert_ok!(SyncRegistry::submit_proof(RuntimeOrigin::signed(node), id, proof));
		assert!(crate::ocw::run::<Test>(now + 1).is_empty());
	});
}

/// The defect: the worker's `NoKey` was never logged and pool refusals had no reason, so a
/// missing key or an unfunded account failed silently. Each is logged with its reason, once
/// per `WARN_EVERY` blocks per kind (not every block).
#[test]
fn offchain_worker_warnings_name_the_reason_and_are_rate_limited() {
	let (mut ext, _pool, _public) = ocw_ext();
	ext.execute_with(|| {
		use crate::ocw::{warn_every, NoKey, WARN_EVERY};
		let key = b"sync-registry::warned::test";
		assert!(warn_every(key, 10, || "first".into()));
		assert!(!warn_every(key, 11, || unreachable!("rate-limited")));
		assert!(!warn_every(key, 10 + WARN_EVERY - 1, || unreachable!("rate-limited")));
		assert!(warn_every(key, 10 + WARN_EVERY, || "again".into()));
		assert!(warn_every(b"sync-registry::warned::other", 11, || "another kind".into()));
		for why in
			[NoKey::NoSyncKey, NoKey::NoBinding, NoKey::CannotHoldDeposit, NoKey::NotInKeystore]
		{
			assert!(!why.explain().is_empty());
		}
		assert!(NoKey::CannotHoldDeposit.explain().contains("fund"));
	});
}

#[test]
fn offchain_worker_submits_only_the_intents_the_chain_would_accept() {
	use crate::ocw::IntentOutcome::*;
	use sync_primitives::offchain::{Intent, Intents, INTENTS_KEY};

	let (mut ext, pool_state, public) = ocw_ext();
	ext.execute_with(|| {
		let node: AccountId = public;
		<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&node, 100_000);
		let data = Data::with(3, 15);
		segment_with(&data);
		let peer = pid(77);
		let set = |items: Vec<Intent>| {
			sp_io::offchain::local_storage_set(
				sp_core::offchain::StorageKind::PERSISTENT,
				INTENTS_KEY,
				&Intents { peer_id: peer.to_vec(), items }.encode(),
			)
		};
		let take = || {
			let tx = pool_state.write().transactions.pop().expect("a transaction was submitted");
			assert!(pool_state.read().transactions.is_empty(), "exactly one transaction");
			Extrinsic::decode(&mut &*tx).unwrap().function
		};
		let binding = bind(node, 77);
		// A binding for another account is ignored: the worker registers only an account the
		// data-plane key signed for.
		let stranger = Intent::Register { role: NodeRole::Replica, multiaddrs: vec![b"/ip4/127.0.0.1/tcp/4001".to_vec()], bindings: vec![(alice().encode(), bind(alice(), 77))] };
		set(vec![stranger.clone()]);
		assert_eq!(crate::ocw::run_intents::<Test>(System::block_number()), vec![(stranger, NoKey(crate::ocw::NoKey::NoBinding))]);
		let register = Intent::Register { role: NodeRole::Replica, multiaddrs: vec![b"/ip4/127.0.0.1/tcp/4001".to_vec()], bindings: vec![(node.encode(), binding)] };
		// Nor is an account that cannot hold the deposit (it would pay a failing fee).
		<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&node, DEPOSIT / 2);
		set(vec![register.clone()]);
		assert_eq!(crate::ocw::run_intents::<Test>(System::block_number()), vec![(register.clone(), NoKey(crate::ocw::NoKey::CannotHoldDeposit))]);
		<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&node, 100_000);
		let claim = Intent::Claim { segment: 0, seq: 1 };
		set(vec![register.clone(), claim.clone()]);
		// Not registered: registers with the keystore key; a claim needs a registered node.
		let now = System::block_number();
		assert_eq!(crate::ocw::run_intents::<Test>(now), vec![(register.clone(), Submitted), (claim.clone(), Stale)]);
		let RuntimeCall::SyncRegistry(call) = take() else { panic!("not a registry call") };
		assert!(matches!(call, crate::Call::register_node { role: NodeRole::Replica, ref peer_id, .. } if *peer_id == peer));
		// Not sent again while it may be in the pool.
		assert_eq!(crate::ocw::run_intents::<Test>(now + 1)[0], (register.clone(), Pending));
		// Dispatched: the registration is stale, the claim still is (not a holder yet) …
		assert_ok!(SyncRegistry::register_node(
			RuntimeOrigin::signed(node),
			NodeRole::Replica,
			peer.clone(),
			addrs(&["/ip4/127.0.0.1/tcp/4001"]),
			binding
		));
		assert_eq!(crate::ocw::run_intents::<Test>(now + 1), vec![(register.clone(), Stale), (claim.clone(), Stale)]);
		// … until the node joins.
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(node), 0));
		assert_eq!(crate::ocw::run_intents::<Test>(now + 1)[1], (claim.clone(), Submitted));
		assert_eq!(take(), RuntimeCall::SyncRegistry(crate::Call::claim_sync { segment: 0, seq: 1 }));
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(node), 0, 1));
		// An open challenge makes the claim stale; so do unknown roots and other people's roots.
		let commit = Intent::Commit { segment: 0, seq: 2, facts: data.facts() };
		let attest = Intent::Attest { segment: 0, seq: 1, root: data.facts().root };
		set(vec![claim.clone(), Intent::Claim { segment: 0, seq: 9 }, commit.clone(), attest.clone()]);
		let out = crate::ocw::run_intents::<Test>(now + 10);
		assert!(out.iter().all(|(_, o)| *o == Stale), "{out:?}");
		assert!(pool_state.read().transactions.is_empty());
	});
}

#[test]
fn offchain_worker_resends_a_proof_only_after_the_window() {
	use crate::ocw::{Outcome, RESUBMIT_AFTER};
	let (mut ext, pool_state, public) = ocw_ext();
	ext.execute_with(|| {
		let (data, _node, id) = challenged_replica(public);
		run_to(Challenges::<Test>::get(id).unwrap().seed_block + 1);
		sp_io::offchain::local_storage_set(
			sp_core::offchain::StorageKind::PERSISTENT,
			&sync_primitives::offchain::proof_key(id),
			&data.prove(id).encode().encode(),
		);
		let now = System::block_number();
		assert_eq!(crate::ocw::run::<Test>(now), vec![(id, Outcome::Submitted)]);
		// A second run in the same block, and every run in the window, is `Pending`.
		assert_eq!(crate::ocw::run::<Test>(now), vec![(id, Outcome::Pending)]);
		let last = now + u64::from(RESUBMIT_AFTER) - 1;
		assert_eq!(crate::ocw::run::<Test>(last), vec![(id, Outcome::Pending)]);
		assert_eq!(pool_state.read().transactions.len(), 1);
		// The first transaction was not included: after the window it is sent again, once.
		let again = now + u64::from(RESUBMIT_AFTER);
		assert_eq!(crate::ocw::run::<Test>(again), vec![(id, Outcome::Submitted)]);
		assert_eq!(crate::ocw::run::<Test>(again), vec![(id, Outcome::Pending)]);
		assert_eq!(pool_state.read().transactions.len(), 2);
	});
}

#[test]
fn send_guard_takes_the_marker_once_and_releases_it_on_failure() {
	use crate::ocw::{send_guarded, Guarded, RESUBMIT_AFTER};
	let (mut ext, _pool, _public) = ocw_ext();
	ext.execute_with(|| {
		let key = b"test::sent";
		let mut sends = 0;
		assert_eq!(
			send_guarded(key, 10, || {
				sends += 1;
				true
			}),
			Guarded::Sent
		);
		// Taken: `send` is not even called while the window lasts.
		for at in 10..10 + RESUBMIT_AFTER {
			assert_eq!(send_guarded(key, at, || panic!("sent twice")), Guarded::Recent);
		}
		assert_eq!(
			send_guarded(key, 10 + RESUBMIT_AFTER, || {
				sends += 1;
				true
			}),
			Guarded::Sent
		);
		assert_eq!(sends, 2);
		// A failed send leaves no marker: the next run retries at once.
		let other = b"test::failed";
		assert_eq!(send_guarded(other, 10, || false), Guarded::Failed);
		assert_eq!(send_guarded(other, 10, || true), Guarded::Sent);
		assert_eq!(send_guarded(other, 11, || true), Guarded::Recent);
	});
}

#[test]
fn offchain_worker_applies_the_dispatchables_rules() {
	use crate::ocw::IntentOutcome::*;
	use sync_primitives::offchain::{Intent, Intents, INTENTS_KEY};
	let (mut ext, _pool, public) = ocw_ext();
	ext.execute_with(|| {
		let owner: AccountId = public;
		<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&owner, 100_000);
		register(owner, NodeRole::Primary);
		assert_ok!(SyncRegistry::create_segment(RuntimeOrigin::signed(owner)));
		let data = Data::with(3, 15);
		let mut bad = data.facts();
		bad.leaves = bad.entries - 1;
		let set = |items: Vec<Intent>| {
			let peer_id = Nodes::<Test>::get(owner).unwrap().peer_id.to_vec();
			sp_io::offchain::local_storage_set(
				sp_core::offchain::StorageKind::PERSISTENT,
				INTENTS_KEY,
				&Intents { peer_id, items }.encode(),
			)
		};
		// Inconsistent facts: `can_commit` refuses them, so the worker does not send them.
		assert!(matches!(SyncRegistry::can_commit(&owner, 0, 1, &bad), Err(E::InvalidRootFacts)));
		let commit_bad = Intent::Commit { segment: 0, seq: 1, facts: bad };
		let commit = Intent::Commit { segment: 0, seq: 1, facts: data.facts() };
		set(vec![commit_bad.clone(), commit.clone()]);
		let now = System::block_number();
		assert_eq!(
			crate::ocw::run_intents::<Test>(now),
			vec![(commit_bad, Stale), (commit.clone(), Submitted)]
		);
		// Once committed, the same seq is stale (`StaleSeq`) and the owner may not attest its
		// own commit (`IsOwner`: its commit is its vote).
		assert_ok!(SyncRegistry::commit_root(RuntimeOrigin::signed(owner), 0, 1, data.facts()));
		let attest = Intent::Attest { segment: 0, seq: 1, root: data.facts().root };
		set(vec![commit.clone(), attest.clone()]);
		assert_eq!(
			crate::ocw::run_intents::<Test>(now + 10),
			vec![(commit, Stale), (attest, Stale)]
		);
		let root = data.facts().root;
		assert!(matches!(SyncRegistry::can_attest(&owner, 0, 1, &root), Err(E::IsOwner)));
	});
}

// ------------------------------------------------------------------ invariants

#[test]
fn try_state_detects_corrupted_state() {
	new_test_ext().execute_with(|| {
		let data = Data::with(3, 15);
		segment_with(&data);
		register(bob(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(bob()), 0));
		assert_ok!(SyncRegistry::do_try_state());

		// An `Active` holding without any accepted proof.
		let honest = Holdings::<Test>::get(0, bob()).unwrap();
		Holdings::<Test>::insert(
			0,
			bob(),
			Holding { status: HoldingStatus::Active, ..honest.clone() },
		);
		assert_eq!(
			SyncRegistry::do_try_state(),
			Err("Active/Lagging holding without proof".into())
		);
		Holdings::<Test>::insert(0, bob(), honest);
		assert_ok!(SyncRegistry::do_try_state());

		// A holding the segment does not list.
		register(dave(), NodeRole::Replica);
		Holdings::<Test>::insert(
			0,
			dave(),
			Holding {
				status: HoldingStatus::Syncing,
				proven: None,
				failures: 0,
				joined_at: 1,
				next_check: None,
				syncing_until: None,
			},
		);
		assert!(SyncRegistry::do_try_state().is_err());
		Holdings::<Test>::remove(0, dave());
		assert_ok!(SyncRegistry::do_try_state());

		// A peer id index pointing at the wrong account.
		PeerIds::<Test>::insert(Nodes::<Test>::get(bob()).unwrap().peer_id, dave());
		assert_eq!(SyncRegistry::do_try_state(), Err("peer id not indexed".into()));
	});
}

#[test]
fn try_state_detects_broken_schedule_votes_and_status() {
	new_test_ext().execute_with(|| {
		let data = Data::with(3, 19);
		segment_with(&data);
		register(bob(), NodeRole::Primary);
		register(charlie(), NodeRole::Replica);
		make_primary(RuntimeOrigin::signed(alice()), 0, bob());
		join_and_prove(charlie(), 1, &data);
		assert_ok!(SyncRegistry::claim_sync(RuntimeOrigin::signed(bob()), 0, 1));
		assert_ok!(SyncRegistry::do_try_state());
		let check = |broken: &'static str| {
			assert_eq!(SyncRegistry::do_try_state(), Err(broken.into()));
		};

		// A challenge whose expiry was lost.
		let id = OpenChallenge::<Test>::get(bob(), 0).unwrap();
		let at = Challenges::<Test>::get(id).unwrap().deadline + 1;
		Agenda::<Test>::remove(at, Task::Expire(id));
		check("challenge expiry not scheduled");
		Agenda::<Test>::insert(at, Task::Expire(id), ());
		assert_ok!(SyncRegistry::do_try_state());

		// A task that refers to nothing.
		Agenda::<Test>::insert(at, Task::Expire(999), ());
		check("scheduled task refers to nothing");
		Agenda::<Test>::remove(at, Task::Expire(999));

		// An Active holder that will never be re-checked.
		let honest = Holdings::<Test>::get(0, charlie()).unwrap();
		let next = honest.next_check.unwrap();
		Agenda::<Test>::remove(next, Task::ReChallenge(0, charlie()));
		check("re-challenge not scheduled");
		Holdings::<Test>::insert(0, charlie(), Holding { next_check: None, ..honest.clone() });
		check("Active holder without re-challenge or open challenge");
		Holdings::<Test>::insert(0, charlie(), honest);
		Agenda::<Test>::insert(next, Task::ReChallenge(0, charlie()), ());
		assert_ok!(SyncRegistry::do_try_state());

		// An idle Syncing holding whose timeout is gone.
		register(dave(), NodeRole::Replica);
		assert_ok!(SyncRegistry::join_segment(RuntimeOrigin::signed(dave()), 0));
		let idle = Holdings::<Test>::get(0, dave()).unwrap();
		Holdings::<Test>::insert(0, dave(), Holding { syncing_until: None, ..idle.clone() });
		check("idle Syncing holding without timeout");
		Holdings::<Test>::insert(0, dave(), idle);
		assert_ok!(SyncRegistry::do_try_state());

		// A parity vote of someone who is no Primary.
		ParityVotes::<Test>::mutate(0, |v| v.as_mut().unwrap().2.try_push(charlie()).unwrap());
		check("vote of a non-Primary");
		ParityVotes::<Test>::mutate(0, |v| v.as_mut().unwrap().2.retain(|p| *p != charlie()));
		Divergences::<Test>::insert(0, charlie(), (1, [1; 32]));
		check("divergence of a non-Primary");
		Divergences::<Test>::remove(0, charlie());
		assert_ok!(SyncRegistry::do_try_state());

		// A holding counter that drifted from the holdings (status is derived from them).
		Nodes::<Test>::mutate(charlie(), |n| n.as_mut().unwrap().syncing += 1);
		check("holding counters out of sync");
		Nodes::<Test>::mutate(charlie(), |n| n.as_mut().unwrap().syncing -= 1);
		assert_ok!(SyncRegistry::do_try_state());

		// A cached node status that no longer matches its holdings.
		Nodes::<Test>::mutate(charlie(), |n| n.as_mut().unwrap().status = NodeStatus::Lagging);
		check("cached node status is stale");
		Nodes::<Test>::mutate(charlie(), |n| n.as_mut().unwrap().status = NodeStatus::Active);
		assert_ok!(SyncRegistry::do_try_state());

		// A migration whose deadline is not scheduled.
		register(account(5), NodeRole::Primary);
		migrate(RuntimeOrigin::signed(alice()), 0, account(5));
		let until = Migrations::<Test>::get(0).unwrap().until;
		Agenda::<Test>::remove(until, Task::Migration(0));
		check("migration unscheduled");
	});
}

// ------------------------------------------------------------------ random sequences

mod sequences {
	use super::*;
	use proptest::prelude::*;

	/// One call (or block advance) of a random sequence; `s` picks segment 0 or 1.
	#[derive(Clone, Debug)]
	enum Op {
		Register(u8, bool),
		Create(u8),
		Join(u8, u8),
		Leave(u8, u8),
		AddPrimary(u8, u8),
		AcceptPrimary(u8, u8),
		RemovePrimary(u8, u8),
		RemoveHolder(u8, u8),
		Commit(u8, u8),
		Attest(u8, u8, bool),
		Claim(u8, u8),
		Prove(u8, u8),
		BadProof(u8, u8),
		Advance(u8),
		Announce(u8),
		Deregister(u8),
		ForceDeregister(u8),
		TopUp(u8),
		Migrate(u8, u8),
		AcceptMigration(u8, u8),
		Cancel(u8),
		Update(u8, u8, bool),
		ForceOwner(u8, u8),
		ResetRoots(u8),
		ClearMigration(u8),
		/// The owner seals at the latest commit (`true`) or at a new seq.
		Seal(u8, bool),
		/// `who` confirms the segment's seal with the root the chain has there (`true`) or
		/// another one.
		ConfirmSeal(u8, u8, bool),
	}

	fn op() -> impl Strategy<Value = Op> {
		let who = 1u8..=5;
		let seg = 0u8..2;
		prop_oneof![
			(who.clone(), any::<bool>()).prop_map(|(w, p)| Op::Register(w, p)),
			who.clone().prop_map(Op::Create),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Join(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Leave(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::AddPrimary(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::AcceptPrimary(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::RemovePrimary(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::RemoveHolder(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Commit(w, s)),
			(who.clone(), seg.clone(), any::<bool>()).prop_map(|(w, s, g)| Op::Attest(w, s, g)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Claim(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Prove(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Prove(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::BadProof(w, s)),
			(1u8..12).prop_map(Op::Advance),
			(20u8..80).prop_map(Op::Advance),
			who.clone().prop_map(Op::Announce),
			who.clone().prop_map(Op::Deregister),
			who.clone().prop_map(Op::ForceDeregister),
			who.clone().prop_map(Op::TopUp),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::Migrate(w, s)),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::AcceptMigration(w, s)),
			(who.clone(), 1u8..=7, any::<bool>()).prop_map(|(w, p, own)| Op::Update(w, p, own)),
			seg.clone().prop_map(Op::Cancel),
			(who.clone(), seg.clone()).prop_map(|(w, s)| Op::ForceOwner(w, s)),
			seg.clone().prop_map(Op::ResetRoots),
			seg.clone().prop_map(Op::ClearMigration),
			(seg.clone(), any::<bool>()).prop_map(|(s, latest)| Op::Seal(s, latest)),
			(who.clone(), seg.clone(), any::<bool>())
				.prop_map(|(w, s, good)| Op::ConfirmSeal(w, s, good)),
			(who.clone(), seg.clone(), any::<bool>())
				.prop_map(|(w, s, good)| Op::ConfirmSeal(w, s, good)),
		]
	}

	fn storage_root() -> Vec<u8> {
		sp_io::storage::root(sp_runtime::StateVersion::V1)
	}

	proptest! {
		#![proptest_config(ProptestConfig::with_cases(64))]
		/// Random call sequences over two segments: after every step the invariants hold
		/// (`do_try_state`), every refused call changed nothing, every valid proof is accepted
		/// without a fee and every corrupted one is refused.
		#[test]
		fn invariants_hold_after_every_call(ops in proptest::collection::vec(op(), 1..80)) {
			new_test_ext().execute_with(|| {
				// data of every committed (segment, seq)
				let mut versions: BTreeMap<(u64, u64), Data> = BTreeMap::new();
				let mut seq = 0u64;
				for op in ops {
					let o = |w: u8| RuntimeOrigin::signed(account(w));
					let owner = |s: u8| Segments::<Test>::get(s as u64).map(|g| g.owner.0[0]).unwrap_or(1);
					let before = storage_root();
					let r: sp_runtime::DispatchResult = match op {
						Op::Register(w, p) => SyncRegistry::register_node(o(w), if p { NodeRole::Primary } else { NodeRole::Replica }, pid(w), addrs(&["/a/1"]), bind(account(w), w)),
						Op::Create(w) => SyncRegistry::create_segment(o(w)),
						Op::Join(w, s) => SyncRegistry::join_segment(o(w), s as u64),
						Op::Leave(w, s) => SyncRegistry::leave_segment(o(w), s as u64),
						Op::AddPrimary(w, s) => SyncRegistry::add_primary(o(owner(s)), s as u64, account(w)),
						Op::AcceptPrimary(w, s) => SyncRegistry::accept_primary(o(w), s as u64),
						Op::RemovePrimary(w, s) => SyncRegistry::remove_primary(o(owner(s)), s as u64, account(w)),
						Op::RemoveHolder(w, s) => SyncRegistry::remove_holder(o(owner(s)), s as u64, account(w)),
						Op::Commit(w, s) => {
							seq += 1;
							let d = Data::with((seq % 4) as usize + 1, seq as u8);
							versions.insert((s as u64, seq), d.clone());
							SyncRegistry::commit_root(o(w), s as u64, seq, d.facts()).map(|_| ()).map_err(|e| e.error)
						},
						Op::Attest(w, s, good) => {
							let latest = Roots::<Test>::get(s as u64).last().copied();
							let (q, root) = latest.map(|r| (r.seq, if good { r.facts.root } else { [w; 32] })).unwrap_or((0, [0; 32]));
							SyncRegistry::attest_root(o(w), s as u64, q, root)
						},
						Op::Claim(w, s) => {
							let latest = Roots::<Test>::get(s as u64).last().map(|r| r.seq).unwrap_or(0);
							SyncRegistry::claim_sync(o(w), s as u64, latest)
						},
						Op::Prove(w, s) | Op::BadProof(w, s) => match OpenChallenge::<Test>::get(account(w), s as u64) {
							Some(id) if System::block_number() > Challenges::<Test>::get(id).unwrap().seed_block => {
								let ch = Challenges::<Test>::get(id).unwrap();
								let Some(d) = versions.get(&(s as u64, ch.seq)).filter(|d| d.facts() == ch.facts) else { continue };
								let mut p = d.prove(id);
								if matches!(op, Op::BadProof(..)) {
									p.chunks[0].chunk[0] ^= 1;
									let r = SyncRegistry::submit_proof(o(w), id, p);
									prop_assert_eq!(r.map_err(|e| e.error), Err(E::InvalidProof.into()));
									Ok(())
								} else {
									let r = SyncRegistry::submit_proof(o(w), id, p);
									prop_assert!(r.is_ok(), "valid proof refused: {:?}", r);
									prop_assert_eq!(r.unwrap().pays_fee, frame_support::dispatch::Pays::No);
									Ok(())
								}
							},
							_ => Ok(()),
						},
						Op::Advance(n) => {
							run_to(System::block_number() + n as u64);
							Ok(())
						},
						Op::Announce(w) => SyncRegistry::announce_leave(o(w)),
						Op::Deregister(w) => SyncRegistry::deregister_node(o(w)).map(|_| ()).map_err(|e| e.error),
						Op::ForceDeregister(w) => SyncRegistry::force_deregister(RuntimeOrigin::root(), account(w)).map(|_| ()).map_err(|e| e.error),
						Op::TopUp(w) => SyncRegistry::top_up_deposit(o(w)),
						Op::Migrate(w, s) => SyncRegistry::request_migration(o(owner(s)), s as u64, account(w)),
						Op::AcceptMigration(w, s) => SyncRegistry::accept_migration(o(w), s as u64),
						// A new peer id with its own binding, or with one signed by another key.
						Op::Update(w, p, own) => SyncRegistry::update_node(o(w), Some((pid(p), bind(account(w), if own { p } else { p % 7 + 1 }))), None).map(|_| ()).map_err(|e| e.error),
						Op::Cancel(s) => SyncRegistry::cancel_migration(RuntimeOrigin::root(), s as u64),
						Op::ForceOwner(w, s) => SyncRegistry::force_set_owner(RuntimeOrigin::root(), s as u64, account(w)),
						Op::ResetRoots(s) => SyncRegistry::force_reset_roots(RuntimeOrigin::root(), s as u64),
						Op::ClearMigration(s) => SyncRegistry::force_clear_migration(RuntimeOrigin::root(), s as u64),
						Op::Seal(s, at_latest) => {
							let latest = Roots::<Test>::get(s as u64).last().copied();
							let (q, facts) = match latest {
								Some(r) if at_latest => (r.seq, r.facts),
								_ => {
									seq += 1;
									let d = Data::with((seq % 4) as usize + 1, seq as u8);
									versions.insert((s as u64, seq), d.clone());
									(seq, d.facts())
								},
							};
							SyncRegistry::seal_segment(o(owner(s)), s as u64, q, facts).map(|_| ()).map_err(|e| e.error)
						},
						Op::ConfirmSeal(w, s, good) => {
							let q = Migrations::<Test>::get(s as u64).and_then(|m| m.sealed).unwrap_or(1);
							let mut root = Roots::<Test>::get(s as u64).iter().find(|r| r.seq == q).map_or([0; 32], |r| r.facts.root);
							if !good {
								root[0] ^= 1;
							}
							SyncRegistry::confirm_seal(o(w), s as u64, q, root)
						},
					};
					if let Err(e) = r {
						prop_assert!(matches!(e, DispatchError::Module(_)), "untyped error {:?} from {:?}", e, op);
						prop_assert_eq!(&before, &storage_root(), "refused {:?} changed state", op);
					}
					if let Err(e) = SyncRegistry::do_try_state() {
						prop_assert!(false, "invariant broken after {:?}: {:?}", op, e);
					}
				}
				Ok(())
			})?;
		}
	}
}
