//! Benchmarks of `pallet-sync-registry` (frame-benchmarking v2). Each takes the most expensive
//! path of its call: longest address lists, fullest segments, a proof of `k` chunks from a
//! deep trie and a multi-level BLAKE3 object, a full node segment list.
use super::*;
use crate::Pallet as SyncRegistry;
use alloc::{vec, vec::Vec};
use frame_benchmarking::v2::*;
use frame_support::traits::{fungible::Mutate, Get, Hooks};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_runtime::traits::{One, Saturating, Zero};
use sync_primitives::{
	commitment::{cid_of, Entry, SegmentTrie},
	MultiaddrBytes, MAX_MULTIADDRS,
};

/// Key type of the benchmarks' data-plane keys (in the benchmark's keystore only).
const PEER_KEY: sp_core::crypto::KeyTypeId = sp_core::crypto::KeyTypeId(*b"bpid");

/// An Ed25519 peer id for `(name, i)` and its binding to `who` (a real signature, so
/// registration pays the verification it does on chain).
fn peer_of<T: Config>(who: &T::AccountId, name: &str, i: u32) -> (PeerIdBytes, PeerSignature) {
	let seed = alloc::format!("//{name}//{i}").into_bytes();
	let public = sp_io::crypto::ed25519_generate(PEER_KEY, Some(seed));
	let mut v = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
	v.extend_from_slice(&public.0);
	let peer: PeerIdBytes = v.try_into().expect("38 bytes fit");
	let msg = SyncRegistry::<T>::peer_binding_message_for(who, &peer);
	let sig = sp_io::crypto::ed25519_sign(PEER_KEY, &public, &msg).expect("key in keystore");
	(peer, sig.0)
}

/// Enough to pay any number of deposits in a benchmark.
fn endowment<T: Config>() -> BalanceOf<T> {
	T::NodeDeposit::get().saturating_mul(1_000u32.into())
}

fn max_addrs() -> Multiaddrs {
	let addr: MultiaddrBytes = {
		let mut a = b"/ip4/255.255.255.255/tcp/65535/p2p/".to_vec();
		a.resize(sync_primitives::MAX_MULTIADDR_LEN as usize, b'x');
		a.try_into().expect("exactly max len")
	};
	vec![addr; MAX_MULTIADDRS as usize].try_into().expect("exactly max count")
}

fn node<T: Config>(name: &'static str, i: u32, role: NodeRole) -> T::AccountId
where
	T::Currency: Mutate<T::AccountId>,
{
	let who: T::AccountId = account(name, i, 0);
	T::Currency::set_balance(&who, endowment::<T>());
	let (peer, sig) = peer_of::<T>(&who, name, i);
	SyncRegistry::<T>::register_node(
		RawOrigin::Signed(who.clone()).into(),
		role,
		peer,
		max_addrs(),
		sig,
	)
	.expect("registers");
	who
}

/// `owner` offers `who` a Primary seat of `s` and `who` takes it.
fn make_primary<T: Config>(owner: &T::AccountId, s: SegmentId, who: &T::AccountId) {
	SyncRegistry::<T>::add_primary(RawOrigin::Signed(owner.clone()).into(), s, who.clone())
		.expect("offers");
	SyncRegistry::<T>::accept_primary(RawOrigin::Signed(who.clone()).into(), s).expect("accepts");
}

/// `owner` requests a migration of `s` to `to` and `to` accepts it.
fn migrate_to<T: Config>(owner: &T::AccountId, s: SegmentId, to: &T::AccountId) {
	SyncRegistry::<T>::request_migration(RawOrigin::Signed(owner.clone()).into(), s, to.clone())
		.expect("requests");
	SyncRegistry::<T>::accept_migration(RawOrigin::Signed(to.clone()).into(), s).expect("accepts");
}

/// [`migrate_to`], then the target's proof of seq 1 is accepted: the migration is proven and
/// waits for the seal.
fn proven_migration<T: Config>(owner: &T::AccountId, s: SegmentId, to: &T::AccountId) {
	migrate_to::<T>(owner, s, to);
	proven_holder::<T>(to, small_facts());
	let m = Migrations::<T>::get(s).expect("pending");
	let now = frame_system::Pallet::<T>::block_number();
	SyncRegistry::<T>::note_proven(s, m, 1, now);
}

/// Segment data whose proofs are large: many keys (deep trie) and a multi-level object.
struct Data {
	objects: Vec<(Vec<u8>, Vec<u8>)>,
	trie: SegmentTrie,
}

impl Data {
	fn build() -> Self {
		let mut objects = Vec::new();
		for i in 0..2048u32 {
			let key = {
				let mut k = b"bench/object/".to_vec();
				k.extend_from_slice(&i.to_le_bytes());
				k.resize(sync_primitives::commitment::MAX_KEY_LEN as usize, b'k');
				k
			};
			objects.push((key, vec![(i % 251) as u8; 1000]));
		}
		objects
			.push((b"bench/large".to_vec(), (0..256 * 1024u32).map(|i| (i % 253) as u8).collect()));
		let mut trie = SegmentTrie::new();
		for (k, v) in &objects {
			trie.insert(Entry { key: k.clone(), cid: cid_of(v), size: v.len() as u64 });
		}
		Data { objects, trie }
	}
}

fn prove_for<T: Config>(data: &Data, id: ChallengeId) -> SyncProof {
	let ch = Challenges::<T>::get(id).expect("open");
	let seed = SyncRegistry::<T>::challenge_seed(id, ch.seed_block);
	data.trie
		.prove(&seed, T::ChallengeLeaves::get(), |e| {
			data.objects.iter().find(|(k, _)| *k == e.key).map(|(_, v)| v.clone())
		})
		.expect("complete data")
}

/// Owner with one committed root (and `holders` non-owner holders).
fn segment<T: Config>(facts: RootFacts, holders: u32) -> (T::AccountId, SegmentId)
where
	T::Currency: Mutate<T::AccountId>,
{
	let owner = node::<T>("owner", 0, NodeRole::Primary);
	SyncRegistry::<T>::create_segment(RawOrigin::Signed(owner.clone()).into()).expect("creates");
	SyncRegistry::<T>::commit_root(RawOrigin::Signed(owner.clone()).into(), 0, 1, facts)
		.expect("commits");
	for i in 0..holders {
		let h = node::<T>("holder", i, NodeRole::Replica);
		SyncRegistry::<T>::join_segment(RawOrigin::Signed(h).into(), 0).expect("joins");
	}
	(owner, 0)
}

fn small_facts() -> RootFacts {
	let mut t = SegmentTrie::new();
	t.insert(Entry { key: b"k".to_vec(), cid: cid_of(b"v"), size: 1 });
	t.facts()
}

/// Advances to `n`, recording a parent hash so challenge seeds exist.
fn go_to<T: Config>(n: BlockNumberFor<T>) {
	let parent = n - One::one();
	frame_system::BlockHash::<T>::insert(parent, T::Hash::default());
	frame_system::Pallet::<T>::set_block_number(n);
}

/// Moves to the next block (a segment takes one commit per block).
fn next_block<T: Config>() {
	go_to::<T>(frame_system::Pallet::<T>::block_number() + One::one());
}

/// Fills the ownership history of `s` to `MaxOwnerEpochs` entries, the last one still the
/// current owner's, so the next epoch drops the oldest: `start_epoch`'s worst case.
fn full_epochs<T: Config>(s: SegmentId) {
	let current = OwnerEpochs::<T>::get(s).last().cloned().expect("a segment has an epoch");
	let epochs: Vec<_> = (1..=T::MaxOwnerEpochs::get())
		.map(|epoch| OwnerEpoch { epoch, first_seq: 1, ..current.clone() })
		.collect();
	OwnerEpochs::<T>::insert(s, EpochsOf::<T>::try_from(epochs).expect("exactly the bound"));
}

/// Fills the root window of `s` (owned by `owner`) with `RootRetention` commits of seqs
/// `1..=RootRetention`.
fn full_roots<T: Config>(s: SegmentId, owner: &T::AccountId) {
	let n = T::RootRetention::get();
	let at = frame_system::Pallet::<T>::block_number();
	let roots: Vec<_> = (1..=n)
		.map(|i| CommittedRoot {
			seq: i as u64,
			facts: small_facts(),
			index: i,
			committer: owner.clone(),
			at,
		})
		.collect();
	Roots::<T>::insert(s, RootWindowOf::<T>::try_from(roots).expect("exactly the bound"));
	Segments::<T>::mutate(s, |seg| {
		if let Some(seg) = seg {
			seg.commits = n;
		}
	});
}

/// `who` holds segment 0 with an accepted proof of seq 1.
fn proven_holder<T: Config>(who: &T::AccountId, facts: RootFacts) {
	Holdings::<T>::mutate(0, who, |h| {
		let h = h.as_mut().expect("holder");
		h.status = HoldingStatus::Active;
		h.proven = Some(ProvenRoot { seq: 1, index: 1, facts });
	});
}

/// A proven migration of a segment with `h` Active holders and a full ownership history,
/// its owner `MaxLag` commits on since the proof: the seal's next commit makes them
/// Lagging. Returns the owner, the segment, the target and the seal's seq.
fn sealable<T: Config>(h: u32) -> (T::AccountId, SegmentId, T::AccountId, u64)
where
	T::Currency: Mutate<T::AccountId>,
{
	let facts = small_facts();
	let (owner, s) = segment::<T>(facts, h);
	for i in 0..h {
		proven_holder::<T>(&account("holder", i, 0), facts);
	}
	full_epochs::<T>(s);
	let to = node::<T>("target", 0, NodeRole::Primary);
	proven_migration::<T>(&owner, s, &to);
	for seq in 2..=(T::MaxLag::get() as u64 + 1) {
		next_block::<T>();
		SyncRegistry::<T>::commit_root(RawOrigin::Signed(owner.clone()).into(), s, seq, facts)
			.expect("commits");
	}
	next_block::<T>();
	(owner, s, to, T::MaxLag::get() as u64 + 2)
}

#[benchmarks(where T::Currency: Mutate<T::AccountId>)]
mod benches {
	use super::*;

	#[benchmark]
	fn register_node() {
		let who: T::AccountId = account("node", 0, 0);
		T::Currency::set_balance(&who, endowment::<T>());
		let (peer, sig) = peer_of::<T>(&who, "seed", 1);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), NodeRole::Primary, peer, max_addrs(), sig);
		assert!(Nodes::<T>::contains_key(&who));
	}

	/// A node owning `s` segments, each with a full root window and a full ownership history,
	/// moves to a new peer id (and the longest address list): a new epoch per segment.
	#[benchmark]
	fn update_node(s: Linear<0, { T::MaxSegmentsPerNode::get() }>) {
		let who = node::<T>("node", 0, NodeRole::Primary);
		for i in 0..s {
			SyncRegistry::<T>::create_segment(RawOrigin::Signed(who.clone()).into())
				.expect("creates");
			full_roots::<T>(i as u64, &who);
			full_epochs::<T>(i as u64);
		}
		let (peer, sig) = peer_of::<T>(&who, "seed", 99);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), Some((peer.clone(), sig)), Some(max_addrs()));
		assert_eq!(Nodes::<T>::get(&who).map(|n| n.peer_id), Some(peer.clone()));
		for i in 0..s {
			let epochs = OwnerEpochs::<T>::get(i as u64);
			assert_eq!(epochs.len() as u32, T::MaxOwnerEpochs::get(), "the oldest was dropped");
			let last = epochs.last().expect("epochs");
			assert_eq!(last.peer_id, peer);
			assert_eq!(last.first_seq, T::RootRetention::get() as u64 + 1);
		}
	}

	/// A leaving node holding `s` segments.
	#[benchmark]
	fn deregister_node(s: Linear<0, { T::MaxSegmentsPerNode::get() }>) {
		let owner = node::<T>("owner", 0, NodeRole::Primary);
		let who = node::<T>("node", 0, NodeRole::Replica);
		for i in 0..s {
			SyncRegistry::<T>::create_segment(RawOrigin::Signed(owner.clone()).into()).ok();
			SyncRegistry::<T>::join_segment(RawOrigin::Signed(who.clone()).into(), i as u64)
				.expect("joins");
		}
		if s > 0 {
			SyncRegistry::<T>::announce_leave(RawOrigin::Signed(who.clone()).into())
				.expect("announces");
			go_to::<T>(
				frame_system::Pallet::<T>::block_number() + T::LeaveDelay::get() + One::one(),
			);
		}
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(!Nodes::<T>::contains_key(&who));
	}

	#[benchmark]
	fn announce_leave(s: Linear<0, { T::MaxSegmentsPerNode::get() }>) {
		let owner = node::<T>("owner", 0, NodeRole::Primary);
		let who = node::<T>("node", 0, NodeRole::Replica);
		for i in 0..s {
			SyncRegistry::<T>::create_segment(RawOrigin::Signed(owner.clone()).into()).ok();
			SyncRegistry::<T>::join_segment(RawOrigin::Signed(who.clone()).into(), i as u64)
				.expect("joins");
		}
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(Nodes::<T>::get(&who).unwrap().leave_at.is_some());
	}

	#[benchmark]
	fn create_segment() {
		let who = node::<T>("owner", 0, NodeRole::Primary);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(Segments::<T>::contains_key(0));
		assert_eq!(OwnerEpochs::<T>::get(0).len(), 1);
	}

	/// An offer that first clears `MaxPrimaries - 1` expired offers.
	#[benchmark]
	fn add_primary() {
		let (owner, s) = segment::<T>(small_facts(), T::MaxHolders::get() - 1);
		for i in 1..T::MaxPrimaries::get() {
			let p = node::<T>("offered", i, NodeRole::Primary);
			SyncRegistry::<T>::add_primary(RawOrigin::Signed(owner.clone()).into(), s, p)
				.expect("offers");
		}
		go_to::<T>(
			frame_system::Pallet::<T>::block_number()
				.saturating_add(T::OfferTimeout::get())
				.saturating_add(One::one()),
		);
		let who = node::<T>("primary", 0, NodeRole::Primary);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s, who.clone());
		assert!(PrimaryOffers::<T>::contains_key(s, &who));
	}

	/// Taking an offered seat among `MaxPrimaries - 2` other live offers, joining a segment
	/// with one free holder seat.
	#[benchmark]
	fn accept_primary() {
		let (owner, s) = segment::<T>(small_facts(), T::MaxHolders::get() - 1);
		for i in 1..T::MaxPrimaries::get().saturating_sub(1) {
			let p = node::<T>("offered", i, NodeRole::Primary);
			SyncRegistry::<T>::add_primary(RawOrigin::Signed(owner.clone()).into(), s, p)
				.expect("offers");
		}
		let who = node::<T>("primary", 0, NodeRole::Primary);
		SyncRegistry::<T>::add_primary(RawOrigin::Signed(owner).into(), s, who.clone())
			.expect("offers");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), s);
		assert!(Segments::<T>::get(s).unwrap().primaries.contains(&who));
	}

	/// The target accepts and joins a segment with one free holder seat.
	#[benchmark]
	fn accept_migration() {
		let (owner, s) = segment::<T>(small_facts(), T::MaxHolders::get() - 1);
		let to = node::<T>("target", 0, NodeRole::Primary);
		SyncRegistry::<T>::request_migration(RawOrigin::Signed(owner).into(), s, to.clone())
			.expect("requests");
		#[extrinsic_call]
		_(RawOrigin::Signed(to.clone()), s);
		assert!(Holdings::<T>::contains_key(s, &to));
	}

	#[benchmark]
	fn remove_primary() {
		let (owner, s) = segment::<T>(small_facts(), 0);
		let who = node::<T>("primary", 0, NodeRole::Primary);
		make_primary::<T>(&owner, s, &who);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s, who.clone());
		assert!(!Segments::<T>::get(s).unwrap().primaries.contains(&who));
	}

	#[benchmark]
	fn join_segment() {
		let (_owner, s) = segment::<T>(small_facts(), T::MaxHolders::get() - 1);
		let who = node::<T>("node", 0, NodeRole::Replica);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), s);
		assert!(Holdings::<T>::contains_key(s, &who));
	}

	#[benchmark]
	fn leave_segment() {
		let (_owner, s) = segment::<T>(small_facts(), T::MaxHolders::get());
		let who: T::AccountId = account("holder", T::MaxHolders::get() - 1, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), s);
		assert!(!Holdings::<T>::contains_key(s, &who));
	}

	/// Commit with `h` Active holders that all become Lagging.
	#[benchmark]
	fn commit_root(h: Linear<0, { T::MaxHolders::get() }>) {
		let facts = small_facts();
		let (owner, s) = segment::<T>(facts, h);
		for i in 0..h {
			proven_holder::<T>(&account("holder", i, 0), facts);
		}
		for seq in 2..=(T::MaxLag::get() as u64 + 1) {
			next_block::<T>();
			SyncRegistry::<T>::commit_root(RawOrigin::Signed(owner.clone()).into(), s, seq, facts)
				.expect("commits");
		}
		next_block::<T>();
		let seq = T::MaxLag::get() as u64 + 2;
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s, seq, facts);
		assert_eq!(Roots::<T>::get(s).last().unwrap().seq, seq);
	}

	#[benchmark]
	fn attest_root() {
		let facts = small_facts();
		let (owner, s) = segment::<T>(facts, 0);
		let mut last = owner.clone();
		for i in 1..T::MaxPrimaries::get() {
			let p = node::<T>("primary", i, NodeRole::Primary);
			make_primary::<T>(&owner, s, &p);
			last = p;
		}
		next_block::<T>();
		SyncRegistry::<T>::commit_root(RawOrigin::Signed(owner.clone()).into(), s, 2, facts)
			.expect("commits");
		for i in 1..T::MaxPrimaries::get() - 1 {
			SyncRegistry::<T>::attest_root(
				RawOrigin::Signed(account("primary", i, 0)).into(),
				s,
				2,
				facts.root,
			)
			.expect("attests");
		}
		#[extrinsic_call]
		_(RawOrigin::Signed(last), s, 2, facts.root);
	}

	#[benchmark]
	fn claim_sync() {
		let (_owner, s) = segment::<T>(small_facts(), 1);
		let who: T::AccountId = account("holder", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), s, 1);
		assert!(OpenChallenge::<T>::contains_key(&who, s));
	}

	/// The largest proof the pallet verifies, which also proves a migration.
	#[benchmark]
	fn submit_proof() {
		let data = Data::build();
		let (owner, s) = segment::<T>(data.trie.facts(), 0);
		full_epochs::<T>(s);
		let who = node::<T>("target", 0, NodeRole::Primary);
		migrate_to::<T>(&owner, s, &who);
		SyncRegistry::<T>::claim_sync(RawOrigin::Signed(who.clone()).into(), s, 1).expect("claims");
		let id = OpenChallenge::<T>::get(&who, s).expect("open");
		let ch = Challenges::<T>::get(id).expect("open");
		go_to::<T>(ch.seed_block + One::one());
		let proof = prove_for::<T>(&data, id);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id, proof);
		assert_eq!(Migrations::<T>::get(s).and_then(|m| m.proven), Some(1));
	}

	/// The old owner seals at a new commit that makes `h` Active holders Lagging.
	#[benchmark]
	fn seal_segment(h: Linear<0, { T::MaxHolders::get() - 1 }>) {
		let (owner, s, _, seq) = sealable::<T>(h);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s, seq, small_facts());
		assert_eq!(Migrations::<T>::get(s).and_then(|m| m.sealed), Some(seq));
	}

	/// The target confirms the seal: ownership moves with a new epoch in a full ownership
	/// history, from a segment with the most holders.
	#[benchmark]
	fn confirm_seal() {
		let (owner, s, to, seq) = sealable::<T>(T::MaxHolders::get() - 1);
		let facts = small_facts();
		SyncRegistry::<T>::seal_segment(RawOrigin::Signed(owner).into(), s, seq, facts)
			.expect("seals");
		#[extrinsic_call]
		_(RawOrigin::Signed(to.clone()), s, seq, facts.root);
		assert_eq!(Segments::<T>::get(s).unwrap().owner, to);
		assert_eq!(
			OwnerEpochs::<T>::get(s).last().map(|e| (e.owner.clone(), e.first_seq)),
			Some((to, seq + 1))
		);
	}

	#[benchmark]
	fn request_migration() {
		let (owner, s) = segment::<T>(small_facts(), T::MaxHolders::get() - 1);
		let to = node::<T>("target", 0, NodeRole::Primary);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s, to.clone());
		assert!(Migrations::<T>::contains_key(s));
	}

	#[benchmark]
	fn cancel_migration() {
		let (owner, s) = segment::<T>(small_facts(), 0);
		let to = node::<T>("target", 0, NodeRole::Primary);
		migrate_to::<T>(&owner, s, &to);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), s);
		assert!(!Migrations::<T>::contains_key(s));
	}

	/// With a full root window and a full ownership history.
	#[benchmark]
	fn force_set_owner() {
		let (owner, s) = segment::<T>(small_facts(), 1);
		full_roots::<T>(s, &owner);
		full_epochs::<T>(s);
		let to = node::<T>("target", 0, NodeRole::Primary);
		#[extrinsic_call]
		_(RawOrigin::Root, s, to.clone());
		assert_eq!(Segments::<T>::get(s).unwrap().owner, to);
		let first_seq = T::RootRetention::get() as u64 + 1;
		assert_eq!(
			OwnerEpochs::<T>::get(s).last().map(|e| (e.owner.clone(), e.first_seq)),
			Some((to, first_seq))
		);
	}

	/// `on_initialize` with nothing due.
	#[benchmark]
	fn on_initialize_base() {
		let now: BlockNumberFor<T> = 10u32.into();
		#[block]
		{
			SyncRegistry::<T>::on_initialize(now);
		}
	}

	/// Expiring one challenge whose holder is dropped after its last allowed failure.
	#[benchmark]
	fn expire_challenge() {
		let (_owner, s) = segment::<T>(small_facts(), 1);
		let who: T::AccountId = account("holder", 0, 0);
		Holdings::<T>::mutate(s, &who, |h| {
			h.as_mut().unwrap().failures = T::MaxFailures::get().saturating_sub(1)
		});
		SyncRegistry::<T>::claim_sync(RawOrigin::Signed(who.clone()).into(), s, 1).expect("claims");
		let id = OpenChallenge::<T>::get(&who, s).unwrap();
		#[block]
		{
			SyncRegistry::<T>::expire_challenge(id);
		}
		assert!(!OpenChallenge::<T>::contains_key(&who, s));
	}

	/// Issuing one re-challenge.
	#[benchmark]
	fn rechallenge() {
		let facts = small_facts();
		let (_owner, s) = segment::<T>(facts, 1);
		let who: T::AccountId = account("holder", 0, 0);
		proven_holder::<T>(&who, facts);
		#[block]
		{
			SyncRegistry::<T>::rechallenge(s, &who);
		}
		assert!(OpenChallenge::<T>::contains_key(&who, s));
	}

	/// A deadline: the old owner did not seal a proven migration, so the chain seals at the
	/// latest commit for the target to confirm. (The weight stays the hand estimate that
	/// covers a move of ownership, which `confirm_seal` reuses.)
	#[benchmark]
	fn migration_deadline() {
		let (owner, s) = segment::<T>(small_facts(), 0);
		full_epochs::<T>(s);
		let to = node::<T>("target", 0, NodeRole::Primary);
		proven_migration::<T>(&owner, s, &to);
		let m = Migrations::<T>::get(s).unwrap();
		let at = m.until;
		#[block]
		{
			SyncRegistry::<T>::migration_deadline(s, at);
		}
		assert_eq!(Segments::<T>::get(s).unwrap().owner, owner);
		assert!(Migrations::<T>::get(s).is_some_and(|m| m.sealed == Some(1) && !m.completed));
	}

	/// Topping up a deposit after a penalty.
	#[benchmark]
	fn top_up_deposit() {
		let who = node::<T>("node", 0, NodeRole::Replica);
		SyncRegistry::<T>::penalize(&who);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert_eq!(Nodes::<T>::get(&who).unwrap().deposit, T::NodeDeposit::get());
	}

	/// Clearing a full root window, votes and every co-Primary's divergence.
	#[benchmark]
	fn force_reset_roots() {
		let facts = small_facts();
		let (owner, s) = segment::<T>(facts, 0);
		for i in 1..T::MaxPrimaries::get() {
			let p = node::<T>("primary", i, NodeRole::Primary);
			make_primary::<T>(&owner, s, &p);
			SyncRegistry::<T>::attest_root(RawOrigin::Signed(p).into(), s, 1, [i as u8; 32])
				.expect("diverges");
		}
		#[extrinsic_call]
		_(RawOrigin::Root, s);
		assert!(Roots::<T>::get(s).is_empty());
	}

	/// Dropping an idle `Syncing` holder (also the pending migration target).
	#[benchmark]
	fn syncing_timeout() {
		let (owner, s) = segment::<T>(small_facts(), 0);
		let to = node::<T>("target", 0, NodeRole::Primary);
		migrate_to::<T>(&owner, s, &to);
		#[block]
		{
			SyncRegistry::<T>::syncing_timeout(s, &to);
		}
		assert!(!Holdings::<T>::contains_key(s, &to));
	}

	/// Forgetting a remembered failure.
	#[benchmark]
	fn forget_failures() {
		let (_owner, s) = segment::<T>(small_facts(), 0);
		let who: T::AccountId = account("gone", 0, 0);
		FailureRecords::<T>::insert(
			s,
			&who,
			FailureRecord { failures: 1, until: Zero::zero(), barred: true },
		);
		#[block]
		{
			SyncRegistry::<T>::forget_failures(s, &who, One::one());
		}
		assert!(!FailureRecords::<T>::contains_key(s, &who));
	}

	/// `on_initialize` catching up over `n` empty blocks of the agenda.
	#[benchmark]
	fn agenda_scan(n: Linear<1, { T::MaxScheduledPerBlock::get() }>) {
		let now: BlockNumberFor<T> = 1_000u32.into();
		AgendaCursor::<T>::put(now + One::one() - BlockNumberFor::<T>::from(n));
		#[block]
		{
			SyncRegistry::<T>::on_initialize(now);
		}
		assert_eq!(AgendaCursor::<T>::get(), Some(now + One::one()));
	}

	impl_benchmark_test_suite!(SyncRegistry, crate::mock::new_test_ext(), crate::mock::Test);
}
