//! Unit tests of the decision core: no network, no store, no chain.
use super::*;
use crate::view::{LocalSegment, SegmentView};
use sync_net::{Keypair, PeerId};
use sync_primitives::{commitment::RootFacts, HoldingStatus, RootSummary};
use sync_store::Head;

const SEG: SegmentId = 7;
const OTHER: SegmentId = 8;

/// A fixed peer id per `n` (so equal views give equal holder lists).
fn peer(n: u8) -> PeerId {
	let mut secret = [n; 32];
	Keypair::ed25519_from_bytes(&mut secret)
		.expect("any 32 bytes are an Ed25519 secret")
		.public()
		.to_peer_id()
}

fn facts(seq: u64) -> RootFacts {
	let mut root = [0u8; 32];
	root[..8].copy_from_slice(&seq.to_le_bytes());
	RootFacts { root, leaves: seq, entries: seq, bytes: seq * 100 }
}

fn head(seq: u64) -> Head {
	Head { seq, facts: facts(seq) }
}

fn root(index: u32, seq: u64) -> RootSummary {
	RootSummary { seq, index, facts: facts(seq) }
}

fn config(commit_every: u32) -> DutyConfig {
	DutyConfig { peer_id: vec![1, 2, 3], register: None, commit_every, gc_grace: 5 }
}

fn holders() -> Vec<Holder> {
	vec![Holder { peer: peer(1), addrs: vec![], primary: true }]
}

/// The view of an owned segment with `roots` committed (by seq).
fn owned(roots: &[u64]) -> SegmentView {
	SegmentView {
		id: SEG,
		holders: holders(),
		owner: true,
		primary: true,
		holding: None,
		migrating_here: false,
		handover: None,
		roots: roots.iter().enumerate().map(|(i, s)| root(i as u32 + 1, *s)).collect(),
		epochs: vec![],
	}
}

/// The view of a held segment with `roots` committed and the holding's proven seq.
fn held(roots: &[u64], status: HoldingStatus, proven: Option<u64>) -> SegmentView {
	SegmentView { owner: false, primary: false, holding: Some((status, proven)), ..owned(roots) }
}

fn view(segments: Vec<SegmentView>) -> ChainView {
	ChainView { registered: true, segments, ..Default::default() }
}

/// A store whose head is at `head` with `pinned` snapshots, that can prove the roots at the
/// seqs in `provable` (with the committed root, or a different one if the seq is in `wrong`).
fn local(head_seq: Option<u64>, pinned: &[u64], provable: &[u64], wrong: &[u64]) -> LocalState {
	let provable = provable
		.iter()
		.map(|s| {
			let mut r = facts(*s).root;
			if wrong.contains(s) {
				r[31] ^= 1;
			}
			(*s, Some(r))
		})
		.collect();
	let seg = LocalSegment {
		head: head_seq.map(head),
		pinned: pinned.iter().map(|s| head(*s)).collect(),
		provable,
		..Default::default()
	};
	[(SEG, seg)].into_iter().collect()
}

fn items(p: &mut Planner, v: &ChainView, l: &LocalState) -> Vec<Intent> {
	p.intents(v, l, &[]).map(|i| i.items).unwrap_or_default()
}

/// A peer binding for account `n` (the planner only carries them: any bytes do).
fn binding(n: u8) -> Binding {
	(vec![n; 32], [n; 64])
}

fn challenge(id: u64, seed: Option<u8>) -> ChallengeSummary<u32> {
	ChallengeSummary {
		id,
		segment: SEG,
		seq: 5,
		facts: facts(5),
		seed: seed.map(|b| [b; 32]),
		indexes: if seed.is_some() { vec![0, 1] } else { vec![] },
		deadline: 100,
		rechallenge: false,
	}
}

// ---- registration ----

fn registering(role: NodeRole) -> Planner {
	Planner::new(DutyConfig {
		register: Some((role, vec!["/ip4/1.2.3.4/tcp/1".into()])),
		..config(10)
	})
}

#[test]
fn unregistered_node_asks_to_register_when_configured() {
	let mut p = registering(NodeRole::Replica);
	let v = ChainView::default();
	assert!(p.on_finalized(1, &v, &LocalState::new()).is_empty());
	let bindings = [binding(1), binding(2)];
	let got = p.intents(&v, &LocalState::new(), &bindings).expect("first write").items;
	assert_eq!(
		got,
		vec![Intent::Register {
			role: NodeRole::Replica,
			multiaddrs: vec![b"/ip4/1.2.3.4/tcp/1".to_vec()],
			bindings: bindings.to_vec(),
		}]
	);
}

#[test]
fn unregistered_node_without_register_flag_asks_nothing() {
	let mut p = Planner::new(config(10));
	let v = ChainView::default();
	let intents = p.intents(&v, &LocalState::new(), &[binding(1)]).expect("first write");
	assert!(intents.items.is_empty());
	assert_eq!(intents.peer_id, vec![1, 2, 3]);
}

#[test]
fn unregistered_node_without_sync_account_asks_nothing() {
	// No `sync` key in the keystore: no account could register, so no binding and no intent.
	let mut p = registering(NodeRole::Primary);
	let v = ChainView::default();
	let intents = p.intents(&v, &LocalState::new(), &[]).expect("first write");
	assert!(intents.items.is_empty());
}

#[test]
fn a_key_inserted_later_rewrites_the_registration() {
	let mut p = registering(NodeRole::Primary);
	let v = ChainView::default();
	let l = LocalState::new();
	assert!(p.intents(&v, &l, &[]).is_some());
	let once = p.intents(&v, &l, &[binding(1)]).expect("a binding appeared");
	assert!(
		matches!(&once.items[..], [Intent::Register { bindings, .. }] if bindings == &[binding(1)])
	);
	assert!(p.intents(&v, &l, &[binding(1)]).is_none(), "unchanged");
	let twice = p.intents(&v, &l, &[binding(1), binding(2)]).expect("another account");
	assert!(matches!(&twice.items[..], [Intent::Register { bindings, .. }] if bindings.len() == 2));
}

#[test]
fn registered_node_does_not_register_again() {
	let mut p =
		Planner::new(DutyConfig { register: Some((NodeRole::Primary, vec![])), ..config(10) });
	let got = p
		.intents(&view(vec![]), &LocalState::new(), &[binding(1)])
		.expect("first write");
	assert!(got.items.is_empty());
}

#[test]
fn unchanged_intents_are_not_written_again() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[5], HoldingStatus::Syncing, None)]);
	let l = local(Some(5), &[], &[5], &[]);
	assert!(p.intents(&v, &l, &[]).is_some());
	assert!(p.intents(&v, &l, &[]).is_none(), "same intents twice");
	let l2 = local(Some(5), &[], &[], &[]);
	assert!(p.intents(&v, &l2, &[]).is_some(), "changed intents are written");
}

// ---- commits ----

#[test]
fn owner_takes_writes_and_pins_at_start() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[])]);
	let actions = p.on_finalized(1, &v, &local(None, &[], &[], &[]));
	assert_eq!(
		actions,
		vec![
			Action::SetHolders(SEG, v.segments[0].holders.clone()),
			Action::TakeWrites(SEG),
			Action::Pin(SEG)
		]
	);
	assert!(p.owns(SEG));
}

#[test]
fn owner_commits_newest_pinned_head_when_head_moved() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[3])]);
	let actions = p.on_finalized(1, &v, &local(Some(9), &[], &[], &[]));
	assert!(actions.contains(&Action::Pin(SEG)));
	// The driver pinned seq 9.
	let got = items(&mut p, &v, &local(Some(9), &[9], &[], &[]));
	assert_eq!(got, vec![Intent::Commit { segment: SEG, seq: 9, facts: facts(9) }]);
}

#[test]
fn owner_does_not_commit_when_head_did_not_move() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[9])]);
	p.on_finalized(1, &v, &local(Some(9), &[], &[], &[]));
	assert!(items(&mut p, &v, &local(Some(9), &[9], &[], &[])).is_empty());
}

#[test]
fn commit_cadence_is_every_commit_every_blocks() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[3])]);
	assert!(p
		.on_finalized(100, &v, &local(Some(9), &[], &[], &[]))
		.contains(&Action::Pin(SEG)));
	// Writes go on; the chain took the commit of seq 9.
	let v = view(vec![owned(&[3, 9])]);
	for n in 101..110 {
		let a = p.on_finalized(n, &v, &local(Some(20 + n as u64), &[9], &[], &[]));
		assert!(!a.contains(&Action::Pin(SEG)), "no pin at block {n}");
	}
	assert!(p
		.on_finalized(110, &v, &local(Some(200), &[9], &[], &[]))
		.contains(&Action::Pin(SEG)));
}

#[test]
fn commit_every_one_commits_every_block_the_head_moves() {
	let mut p = Planner::new(config(1));
	for n in 1..5u32 {
		let v = view(vec![owned(&[n as u64])]);
		let a = p.on_finalized(n, &v, &local(Some(n as u64 + 1), &[], &[], &[]));
		assert!(a.contains(&Action::Pin(SEG)), "block {n}");
	}
}

#[test]
fn pending_commit_is_asked_for_again_until_the_chain_has_it() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[3])]);
	p.on_finalized(1, &v, &local(Some(9), &[], &[], &[]));
	let want = vec![Intent::Commit { segment: SEG, seq: 9, facts: facts(9) }];
	assert_eq!(items(&mut p, &v, &local(Some(9), &[9], &[], &[])), want);
	// Block 2: not due; the chain has not included it; the head moved on.
	let a = p.on_finalized(2, &v, &local(Some(12), &[9], &[], &[]));
	assert!(!a.contains(&Action::Pin(SEG)));
	let again = p.intents(&v, &local(Some(12), &[9], &[], &[]), &[]);
	assert!(again.is_none(), "unchanged: the same commit stays written");
	// Included: nothing more to ask.
	let v = view(vec![owned(&[3, 9])]);
	assert!(items(&mut p, &v, &local(Some(12), &[9], &[], &[])).is_empty());
}

#[test]
fn first_block_after_start_pins_even_without_a_commit() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[9])]);
	assert!(p
		.on_finalized(50, &v, &local(Some(9), &[], &[], &[]))
		.contains(&Action::Pin(SEG)));
	assert!(!p
		.on_finalized(51, &v, &local(Some(9), &[9], &[], &[]))
		.contains(&Action::Pin(SEG)));
}

#[test]
fn owner_neither_claims_nor_attests() {
	let mut p = Planner::new(config(10));
	let mut s = owned(&[5]);
	s.holding = Some((HoldingStatus::Syncing, None));
	let v = view(vec![s]);
	p.on_finalized(1, &v, &local(Some(5), &[5], &[5], &[]));
	assert!(items(&mut p, &v, &local(Some(5), &[5], &[5], &[])).is_empty());
}

// ---- claims ----

#[test]
fn holder_claims_newest_provable_root() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[3, 5, 8], HoldingStatus::Syncing, None)]);
	let got = items(&mut p, &v, &local(Some(8), &[], &[3, 5, 8], &[]));
	assert_eq!(got, vec![Intent::Claim { segment: SEG, seq: 8 }]);
}

#[test]
fn holder_skips_roots_it_cannot_prove() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[3, 5, 8], HoldingStatus::Syncing, None)]);
	// Not at 8 yet (head 6), 5 still in the log.
	let got = items(&mut p, &v, &local(Some(6), &[], &[3, 5], &[]));
	assert_eq!(got, vec![Intent::Claim { segment: SEG, seq: 5 }]);
}

#[test]
fn holder_does_not_claim_a_root_it_already_proved() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[3, 5], HoldingStatus::Active, Some(5))]);
	assert!(items(&mut p, &v, &local(Some(5), &[], &[3, 5], &[])).is_empty());
}

#[test]
fn holder_does_not_claim_older_than_proven_even_if_newest_is_unprovable() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[3, 5, 8], HoldingStatus::Active, Some(5))]);
	assert!(items(&mut p, &v, &local(Some(6), &[], &[3, 5], &[])).is_empty());
}

#[test]
fn holder_with_a_different_local_root_claims_nothing() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[3, 5], HoldingStatus::Syncing, None)]);
	assert!(items(&mut p, &v, &local(Some(5), &[], &[3, 5], &[5])).is_empty());
}

#[test]
fn migration_target_reproves_the_same_root() {
	let mut p = Planner::new(config(10));
	let mut s = held(&[3, 5], HoldingStatus::Active, Some(5));
	s.migrating_here = true;
	let v = view(vec![s]);
	let got = items(&mut p, &v, &local(Some(5), &[], &[3, 5], &[]));
	assert_eq!(got, vec![Intent::Claim { segment: SEG, seq: 5 }]);
}

#[test]
fn lagging_holder_recovers_by_claiming_the_newest_root() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[2, 5, 9, 14], HoldingStatus::Lagging, Some(2))]);
	let got = items(&mut p, &v, &local(Some(14), &[], &[9, 14], &[]));
	assert_eq!(got, vec![Intent::Claim { segment: SEG, seq: 14 }]);
}

#[test]
fn non_holder_co_primary_does_not_claim() {
	let mut p = Planner::new(config(10));
	let mut s = held(&[5], HoldingStatus::Syncing, None);
	s.holding = None;
	let v = view(vec![s]);
	assert!(items(&mut p, &v, &local(Some(5), &[], &[5], &[])).is_empty());
}

// ---- attestations ----

#[test]
fn co_primary_attests_latest_root_once_reached() {
	let mut p = Planner::new(config(10));
	let mut s = held(&[3, 5], HoldingStatus::Active, Some(5));
	s.primary = true;
	let v = view(vec![s]);
	let got = items(&mut p, &v, &local(Some(5), &[], &[3, 5], &[]));
	assert_eq!(got, vec![Intent::Attest { segment: SEG, seq: 5, root: facts(5).root }]);
}

#[test]
fn co_primary_does_not_attest_before_reaching_the_root() {
	let mut p = Planner::new(config(10));
	let mut s = held(&[3, 5], HoldingStatus::Active, Some(3));
	s.primary = true;
	let v = view(vec![s]);
	assert_eq!(items(&mut p, &v, &local(Some(4), &[], &[3], &[])), vec![]);
}

#[test]
fn co_primary_reports_a_different_root_as_a_divergence() {
	let mut p = Planner::new(config(10));
	let mut s = held(&[5], HoldingStatus::Active, Some(5));
	s.primary = true;
	let v = view(vec![s]);
	let mut mine = facts(5).root;
	mine[31] ^= 1;
	assert_eq!(
		items(&mut p, &v, &local(Some(5), &[], &[5], &[5])),
		vec![Intent::Attest { segment: SEG, seq: 5, root: mine }]
	);
}

// ---- followers and ownership ----

#[test]
fn held_segment_is_followed_once() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[], HoldingStatus::Syncing, None)]);
	let a = p.on_finalized(1, &v, &LocalState::new());
	assert_eq!(
		a,
		vec![Action::SetHolders(SEG, v.segments[0].holders.clone()), Action::Follow(SEG)]
	);
	assert!(p.on_finalized(2, &v, &LocalState::new()).is_empty(), "nothing changed");
	assert!(!p.owns(SEG));
}

#[test]
fn changed_holders_are_handed_over() {
	let mut p = Planner::new(config(10));
	let mut v = view(vec![held(&[], HoldingStatus::Syncing, None)]);
	p.on_finalized(1, &v, &LocalState::new());
	v.segments[0]
		.holders
		.push(Holder { peer: peer(2), addrs: vec![], primary: false });
	let a = p.on_finalized(2, &v, &LocalState::new());
	assert_eq!(a, vec![Action::SetHolders(SEG, v.segments[0].holders.clone())]);
}

#[test]
fn ownership_moving_here_stops_the_follower_and_takes_writes() {
	let mut p = Planner::new(config(10));
	let v = view(vec![held(&[5], HoldingStatus::Active, Some(5))]);
	p.on_finalized(1, &v, &local(Some(5), &[], &[5], &[]));
	let v = view(vec![owned(&[5])]);
	let a = p.on_finalized(2, &v, &local(Some(5), &[], &[5], &[]));
	assert_eq!(&a[..2], &[Action::StopFollowing(SEG), Action::TakeWrites(SEG)]);
	assert!(p.owns(SEG));
}

#[test]
fn ownership_moving_away_refuses_writes_and_follows_the_new_owner() {
	let mut p = Planner::new(config(10));
	p.on_finalized(1, &view(vec![owned(&[5])]), &local(Some(5), &[], &[], &[]));
	let v = view(vec![held(&[5], HoldingStatus::Active, Some(5))]);
	let a = p.on_finalized(2, &v, &local(Some(5), &[], &[5], &[]));
	assert_eq!(a, vec![Action::RefuseWrites(SEG), Action::Follow(SEG)]);
	assert!(!p.owns(SEG));
}

#[test]
fn segment_leaving_the_view_is_forgotten() {
	let mut p = Planner::new(config(10));
	let mut other = owned(&[]);
	other.id = OTHER;
	p.on_finalized(
		1,
		&view(vec![held(&[], HoldingStatus::Syncing, None), other.clone()]),
		&LocalState::new(),
	);
	let a = p.on_finalized(2, &view(vec![]), &LocalState::new());
	assert_eq!(
		a,
		vec![
			Action::StopFollowing(SEG),
			Action::Forget(SEG),
			Action::RefuseWrites(OTHER),
			Action::Forget(OTHER)
		]
	);
	assert!(!p.owns(OTHER));
}

// ---- proofs ----

#[test]
fn challenge_without_seed_is_not_proven_yet() {
	let mut p = Planner::new(config(10));
	let v = ChainView { challenges: vec![challenge(1, None)], ..view(vec![]) };
	assert!(p.on_finalized(1, &v, &LocalState::new()).is_empty());
	assert!(p.on_best(&[challenge(1, None)]).is_empty());
}

#[test]
fn seeded_challenge_is_proven_once() {
	let mut p = Planner::new(config(10));
	let ch = challenge(1, Some(9));
	assert_eq!(p.on_best(std::slice::from_ref(&ch)), vec![Action::Prove(ch.clone())]);
	p.proof_stored(1, [9; 32]);
	assert!(p.on_best(std::slice::from_ref(&ch)).is_empty());
	let v = ChainView { challenges: vec![ch], ..view(vec![]) };
	assert!(p.on_finalized(3, &v, &LocalState::new()).is_empty());
}

#[test]
fn reseeded_challenge_after_a_reorg_is_proven_again() {
	let mut p = Planner::new(config(10));
	p.on_best(&[challenge(1, Some(9))]);
	p.proof_stored(1, [9; 32]);
	let reseeded = challenge(1, Some(4));
	assert_eq!(p.on_best(std::slice::from_ref(&reseeded)), vec![Action::Prove(reseeded)]);
}

#[test]
fn failed_proof_is_retried_and_logged_once() {
	let mut p = Planner::new(config(10));
	let ch = challenge(1, Some(9));
	p.on_best(std::slice::from_ref(&ch));
	assert!(p.proof_failed(1), "first failure is logged");
	assert_eq!(p.on_best(std::slice::from_ref(&ch)), vec![Action::Prove(ch.clone())]);
	assert!(!p.proof_failed(1), "second failure is not");
}

#[test]
fn closed_challenges_are_forgotten_on_best_blocks() {
	let mut p = Planner::new(config(10));
	p.on_best(&[challenge(1, Some(9)), challenge(2, Some(9))]);
	p.proof_stored(1, [9; 32]);
	p.proof_failed(2);
	let a = p.on_best(&[challenge(3, None)]);
	assert_eq!(a, vec![Action::ForgetChallenge(1), Action::ForgetChallenge(2)]);
	assert!(p.on_best(&[]).is_empty(), "forgotten once");
}

#[test]
fn finalized_blocks_never_forget_challenges() {
	let mut p = Planner::new(config(10));
	p.on_best(&[challenge(1, Some(9))]);
	p.proof_stored(1, [9; 32]);
	// The finalized view lags: it does not list challenge 1 yet.
	let a = p.on_finalized(5, &view(vec![]), &LocalState::new());
	assert!(a.is_empty());
	// Still stored: not proven again when the best block lists it.
	assert!(p.on_best(&[challenge(1, Some(9))]).is_empty());
}

#[test]
fn failed_pin_does_not_delay_the_next_commit() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[3])]);
	assert!(p
		.on_finalized(100, &v, &local(Some(9), &[], &[], &[]))
		.contains(&Action::Pin(SEG)));
	p.pin_failed(SEG);
	assert!(p
		.on_finalized(101, &v, &local(Some(9), &[], &[], &[]))
		.contains(&Action::Pin(SEG)));
	// That one worked: the cadence counts from it.
	assert!(!p
		.on_finalized(102, &v, &local(Some(12), &[9], &[], &[]))
		.contains(&Action::Pin(SEG)));
}

#[test]
fn commit_cadence_survives_the_segment_leaving_the_view() {
	let mut p = Planner::new(config(10));
	let v = view(vec![owned(&[3])]);
	assert!(p
		.on_finalized(100, &v, &local(Some(9), &[], &[], &[]))
		.contains(&Action::Pin(SEG)));
	p.on_finalized(101, &view(vec![]), &LocalState::new());
	let back = p.on_finalized(102, &view(vec![owned(&[3, 9])]), &local(Some(12), &[9], &[], &[]));
	assert!(back.contains(&Action::TakeWrites(SEG)));
	assert!(!back.contains(&Action::Pin(SEG)), "no new pin before the cadence: {back:?}");
}

// ---- garbage collection ----

fn registered(segments: Vec<SegmentView>) -> ChainView {
	ChainView { registered: true, segments, ..Default::default() }
}

/// The defect: data of segments the node no longer held was never deleted. A segment the
/// store holds and the view lacks is dropped after `gc_grace` blocks out of the view in a row,
/// once; one still in the view never is.
#[test]
fn released_segment_data_is_deleted_after_the_grace() {
	let mut p = Planner::new(config(10));
	let v = registered(vec![owned(&[])]);
	for n in 100..200 {
		assert_eq!(p.collect(n, &v, &[SEG]), vec![], "a held segment is kept (block {n})");
	}
	let gone = registered(vec![]);
	for n in 200..205 {
		assert_eq!(p.collect(n, &gone, &[SEG, OTHER]), vec![], "within the grace (block {n})");
	}
	let mut dropped = p.collect(205, &gone, &[SEG, OTHER]);
	dropped.sort_by_key(|a| format!("{a:?}"));
	assert_eq!(dropped, vec![Action::DropData(SEG), Action::DropData(OTHER)]);
	// Deleted: the store no longer lists them, nothing more to do.
	assert_eq!(p.collect(206, &gone, &[]), vec![]);
}

/// A segment that comes back within the grace (a migration back, a rejoin) is kept, and its
/// grace starts over if it leaves again.
#[test]
fn segment_back_in_view_within_the_grace_is_kept() {
	let mut p = Planner::new(config(10));
	let (gone, back) = (registered(vec![]), registered(vec![owned(&[])]));
	assert_eq!(p.collect(10, &gone, &[SEG]), vec![]);
	assert_eq!(p.collect(14, &gone, &[SEG]), vec![]);
	assert_eq!(p.collect(15, &back, &[SEG]), vec![]);
	assert_eq!(p.collect(16, &gone, &[SEG]), vec![], "the grace starts over");
	assert_eq!(p.collect(20, &gone, &[SEG]), vec![]);
	assert_eq!(p.collect(21, &gone, &[SEG]), vec![Action::DropData(SEG)]);
}

/// An unregistered node's view is empty whatever it holds (before its registration lands, or
/// after a removal): nothing is collected then.
#[test]
fn unregistered_node_collects_nothing() {
	let mut p = Planner::new(config(10));
	for n in 0..100 {
		assert_eq!(p.collect(n, &ChainView::default(), &[SEG]), vec![]);
	}
}

// ---- the fenced handover ----

/// An owned segment whose migration to `peer(2)` is accepted, proven or not.
fn handing_over(roots: &[u64], proven: bool) -> SegmentView {
	let to = crate::view::Peer { peer: peer(2), addrs: vec![] };
	SegmentView {
		handover: Some(crate::view::Handover {
			to: Some(to),
			to_me: false,
			proven,
			sealed: None,
			completed: false,
		}),
		..owned(roots)
	}
}

/// The defect (#15): the old owner kept writing (and committing) after the target took over.
/// Once the target's proof is in, the owner fences its writes, pins that head, asks for the
/// seal of exactly that head (not a commit), and lifts the fence if the migration is cancelled.
#[test]
fn the_owner_fences_pins_and_seals_once_the_target_proved() {
	let mut p = Planner::new(config(1));
	let l = local(Some(9), &[5], &[], &[]);
	let syncing = view(vec![handing_over(&[5], false)]);
	let a = p.on_finalized(1, &syncing, &l);
	assert!(
		a.contains(&Action::TakeWrites(SEG)) && !a.contains(&Action::Fence(SEG)),
		"writes go on while the target syncs"
	);
	let proven = view(vec![handing_over(&[5], true)]);
	let a = p.on_finalized(2, &proven, &l);
	let fence = a.iter().position(|x| *x == Action::Fence(SEG)).expect("fenced");
	assert_eq!(a.get(fence + 1), Some(&Action::Pin(SEG)), "the fenced head is pinned right after");
	assert!(!a.contains(&Action::TakeWrites(SEG)) && !a.contains(&Action::RefuseWrites(SEG)));
	// Not pinned yet: nothing to seal, and no commit either.
	let mut fenced = l.clone();
	fenced.get_mut(&SEG).unwrap().fenced = Some(Some(head(9)));
	assert_eq!(items(&mut p, &proven, &fenced), vec![]);
	fenced.get_mut(&SEG).unwrap().pinned.push(head(9));
	assert_eq!(
		items(&mut p, &proven, &fenced),
		vec![Intent::Seal { segment: SEG, seq: 9, facts: facts(9) }]
	);
	assert_eq!(p.on_finalized(3, &proven, &fenced), vec![], "fenced once");
	// Cancelled: writes again, commits again.
	let a = p.on_finalized(4, &syncing, &fenced);
	assert!(a.contains(&Action::Unfence(SEG)), "{a:?}");
	assert_eq!(
		items(&mut p, &syncing, &fenced),
		vec![Intent::Commit { segment: SEG, seq: 9, facts: facts(9) }]
	);
}

/// Sealed, the old owner stays fenced and asks for nothing more (not the seal again, no
/// commit) while the target confirms; an unconfirmed seal (the migration timed out) lifts the
/// fence and commits go on.
#[test]
fn a_sealed_owner_stays_fenced_and_asks_nothing_while_the_target_confirms() {
	let mut p = Planner::new(config(1));
	let mut l = local(Some(9), &[9], &[], &[]);
	l.get_mut(&SEG).unwrap().fenced = Some(Some(head(9)));
	let proven = view(vec![handing_over(&[5], true)]);
	p.on_finalized(1, &proven, &l);
	assert_eq!(
		items(&mut p, &proven, &l),
		vec![Intent::Seal { segment: SEG, seq: 9, facts: facts(9) }]
	);
	let mut sealed = handing_over(&[5, 9], true);
	sealed.handover.as_mut().unwrap().sealed = Some(9);
	let sealed = view(vec![sealed]);
	let a = p.on_finalized(2, &sealed, &l);
	assert!(!a.iter().any(|x| matches!(x, Action::Unfence(_) | Action::Pin(_))), "{a:?}");
	assert_eq!(items(&mut p, &sealed, &l), vec![]);
	let a = p.on_finalized(3, &view(vec![owned(&[5, 9])]), &l);
	assert!(a.contains(&Action::Unfence(SEG)), "{a:?}");
}

/// The defect (review of #15): ownership moved at the old owner's seal, so a seal at a root
/// nobody serves left the target owning a segment it could not catch up to. The target now
/// confirms the seal, and only once its store has the sealed root at the sealed seq.
#[test]
fn a_target_confirms_the_seal_only_once_its_copy_has_the_sealed_root() {
	let mut p = Planner::new(config(1));
	let mut target = held(&[5, 9], HoldingStatus::Active, Some(5));
	target.handover = Some(crate::view::Handover {
		to: None,
		to_me: true,
		proven: true,
		sealed: Some(9),
		completed: false,
	});
	let v = view(vec![target]);
	let a = p.on_finalized(1, &v, &local(Some(7), &[], &[5], &[]));
	assert!(a.contains(&Action::Follow(SEG)), "{a:?}");
	assert_eq!(items(&mut p, &v, &local(Some(7), &[], &[5], &[])), vec![], "not there yet");
	assert_eq!(items(&mut p, &v, &local(Some(9), &[], &[5, 9], &[9])), vec![], "another root");
	assert_eq!(
		items(&mut p, &v, &local(Some(9), &[], &[5, 9], &[])),
		vec![Intent::ConfirmSeal { segment: SEG, seq: 9, root: facts(9).root }]
	);
}

/// The target does not fence: it is not the owner while the old one seals, and once it owns
/// the segment the migration is completed.
#[test]
fn only_the_owner_fences() {
	let mut p = Planner::new(config(1));
	let l = local(Some(9), &[], &[9], &[]);
	let mut target = held(&[5], HoldingStatus::Active, Some(5));
	target.handover = Some(crate::view::Handover {
		to: None,
		to_me: true,
		proven: true,
		sealed: None,
		completed: false,
	});
	let a = p.on_finalized(1, &view(vec![target]), &l);
	assert!(!a.iter().any(|x| matches!(x, Action::Fence(_))), "{a:?}");
	let mut done = handing_over(&[9], true);
	done.handover.as_mut().unwrap().completed = true;
	let a = p.on_finalized(2, &view(vec![done]), &l);
	assert!(
		a.contains(&Action::TakeWrites(SEG)) && !a.iter().any(|x| matches!(x, Action::Fence(_)))
	);
}

/// An owner whose epoch starts after the chain's seal while its log ran on in the older epoch
/// (a timed-out seal) takes its copy back to the sealed commit.
#[test]
fn an_owner_with_a_stale_tail_rewinds_to_the_sealed_commit() {
	let mut p = Planner::new(config(100));
	let mut s = owned(&[5, 8]);
	s.epochs = sync_net::deltas::epoch_keys([(1, peer(1), 1), (2, peer(2), 9)]);
	let mut l = local(Some(12), &[], &[], &[]);
	l.get_mut(&SEG).unwrap().stale_tail = true;
	let a = p.on_finalized(1, &view(vec![s.clone()]), &l);
	let rewind = Action::Rewind { segment: SEG, seq: 8, facts: facts(8) };
	assert!(a.contains(&rewind), "{a:?}");
	// The defect (review of #15): the owner went on to pin and commit the stale head.
	assert!(!a.iter().any(|x| matches!(x, Action::Pin(_) | Action::TakeWrites(_))), "{a:?}");
	assert_eq!(items(&mut p, &view(vec![s.clone()]), &l), vec![], "no commit of the tail");
	// Not asked every block (each restarts a follower): again after REWIND_RETRY blocks.
	assert!(!p.on_finalized(2, &view(vec![s.clone()]), &l).contains(&rewind));
	assert!(p.on_finalized(1 + super::REWIND_RETRY, &view(vec![s]), &l).contains(&rewind));
}

/// An old owner that missed its seal (the chain sealed at its latest commit while it was
/// down) and is now a follower rewinds too, before it follows on.
#[test]
fn a_former_owner_with_a_stale_tail_rewinds_before_following() {
	let mut p = Planner::new(config(100));
	let mut s = held(&[5, 8], HoldingStatus::Lagging, Some(5));
	s.epochs = sync_net::deltas::epoch_keys([(1, peer(1), 1), (2, peer(2), 9)]);
	let mut l = local(Some(12), &[], &[5, 8], &[]);
	l.get_mut(&SEG).unwrap().stale_tail = true;
	let a = p.on_finalized(1, &view(vec![s]), &l);
	let rewind = a
		.iter()
		.position(|x| *x == Action::Rewind { segment: SEG, seq: 8, facts: facts(8) });
	let follow = a.iter().position(|x| *x == Action::Follow(SEG));
	assert!(rewind.is_some() && rewind < follow, "{a:?}");
}

/// The old owner sealed past the seq the target proved, and ownership moved before the target
/// fetched the rest: the new owner keeps following, takes no writes and commits nothing until
/// its log reaches the sealed seq, then stops following and takes writes.
#[test]
fn a_new_owner_behind_the_sealed_seq_keeps_following_until_it_reaches_it() {
	let mut p = Planner::new(config(1));
	let mut target = held(&[5], HoldingStatus::Active, Some(5));
	target.handover = Some(crate::view::Handover {
		to: None,
		to_me: true,
		proven: true,
		sealed: None,
		completed: false,
	});
	let a = p.on_finalized(1, &view(vec![target]), &local(Some(7), &[], &[5], &[]));
	assert!(a.contains(&Action::Follow(SEG)), "{a:?}");
	let mut owns = owned(&[5, 9]);
	owns.epochs = sync_net::deltas::epoch_keys([(1, peer(2), 1), (2, peer(1), 10)]);
	let behind = local(Some(7), &[], &[5], &[]);
	let a = p.on_finalized(2, &view(vec![owns.clone()]), &behind);
	assert!(
		!a.iter().any(|x| matches!(
			x,
			Action::StopFollowing(_) | Action::TakeWrites(_) | Action::Pin(_)
		)),
		"{a:?}"
	);
	assert_eq!(items(&mut p, &view(vec![owns.clone()]), &behind), vec![], "no commit");
	let a = p.on_finalized(3, &view(vec![owns]), &local(Some(9), &[], &[5, 9], &[]));
	assert!(
		a.contains(&Action::StopFollowing(SEG)) && a.contains(&Action::TakeWrites(SEG)),
		"{a:?}"
	);
}
