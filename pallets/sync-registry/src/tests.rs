//! Unit tests: every call, every error, and the invariants after each scenario.
use crate::{mock::*, Error, Event, HoldReason, Nodes, PeerIds};
use frame_support::{assert_noop, assert_ok, traits::fungible::InspectHold};
use sp_runtime::DispatchError;
use sync_primitives::{Multiaddrs, NodeRole, NodeStatus, PeerIdBytes};

fn pid(seed: u8) -> PeerIdBytes {
	let mut v = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
	v.extend_from_slice(&[seed; 32]);
	v.try_into().unwrap()
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

fn register(who: AccountId, role: NodeRole, seed: u8) {
	assert_ok!(SyncRegistry::register_node(
		RuntimeOrigin::signed(who),
		role,
		pid(seed),
		addrs(&["/ip4/127.0.0.1/tcp/30433"])
	));
}

/// Runs a test body and then checks the pallet's invariants.
fn run(test: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		test();
		SyncRegistry::do_try_state().expect("invariants hold");
	});
}

#[test]
fn register_holds_deposit_and_emits() {
	run(|| {
		register(ALICE, NodeRole::Primary, 1);
		let info = Nodes::<Test>::get(ALICE).unwrap();
		assert_eq!(info.role, NodeRole::Primary);
		assert_eq!(info.status, NodeStatus::Joining);
		assert_eq!(info.deposit, DEPOSIT);
		assert_eq!(info.registered_at, 1);
		assert_eq!(PeerIds::<Test>::get(pid(1)), Some(ALICE));
		assert_eq!(held(ALICE), DEPOSIT);
		assert_eq!(Balances::free_balance(ALICE), 1_000 - DEPOSIT);
		System::assert_last_event(
			Event::NodeRegistered { who: ALICE, role: NodeRole::Primary, peer_id: pid(1), deposit: DEPOSIT }
				.into(),
		);
		assert_eq!(SyncRegistry::node_summary(ALICE).unwrap().peer_id, pid(1).into_inner());
		assert_eq!(SyncRegistry::account_of_peer(pid(1).into_inner()), Some(ALICE));
	});
}

#[test]
fn register_rejects_bad_input_without_changes() {
	run(|| {
		register(ALICE, NodeRole::Primary, 1);
		// twice
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(ALICE), NodeRole::Replica, pid(9), addrs(&["/dns/a/tcp/1"])),
			Error::<Test>::AlreadyRegistered
		);
		// taken peer id
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(BOB), NodeRole::Replica, pid(1), addrs(&["/dns/a/tcp/1"])),
			Error::<Test>::PeerIdTaken
		);
		// malformed peer id
		let bad: PeerIdBytes = vec![0x00, 36, 1, 2].try_into().unwrap();
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(BOB), NodeRole::Replica, bad, addrs(&["/dns/a/tcp/1"])),
			Error::<Test>::InvalidPeerId
		);
		// no or malformed addresses
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(BOB), NodeRole::Replica, pid(2), addrs(&[])),
			Error::<Test>::InvalidMultiaddr
		);
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(BOB), NodeRole::Replica, pid(2), addrs(&["/ok/1", "tcp 1"])),
			Error::<Test>::InvalidMultiaddr
		);
		// too poor for the deposit
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::signed(POOR), NodeRole::Replica, pid(3), addrs(&["/dns/a/tcp/1"])),
			Error::<Test>::InsufficientDeposit
		);
		// unsigned / root
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::none(), NodeRole::Replica, pid(4), addrs(&["/dns/a/tcp/1"])),
			DispatchError::BadOrigin
		);
		assert_noop!(
			SyncRegistry::register_node(RuntimeOrigin::root(), NodeRole::Replica, pid(4), addrs(&["/dns/a/tcp/1"])),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn update_changes_identity_and_reindexes() {
	run(|| {
		register(ALICE, NodeRole::Replica, 1);
		assert_ok!(SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), Some(pid(2)), None));
		assert_eq!(PeerIds::<Test>::get(pid(1)), None);
		assert_eq!(PeerIds::<Test>::get(pid(2)), Some(ALICE));
		System::assert_last_event(
			Event::NodeUpdated { who: ALICE, peer_id: pid(2), multiaddrs: addrs(&["/ip4/127.0.0.1/tcp/30433"]) }
				.into(),
		);
		let new = addrs(&["/ip4/10.0.0.1/tcp/1", "/ip6/::1/tcp/2"]);
		assert_ok!(SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), None, Some(new.clone())));
		assert_eq!(Nodes::<Test>::get(ALICE).unwrap().multiaddrs, new);
		// the old peer id is free again
		register(BOB, NodeRole::Replica, 1);
	});
}

#[test]
fn update_errors() {
	run(|| {
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), Some(pid(2)), None),
			Error::<Test>::NotRegistered
		);
		register(ALICE, NodeRole::Replica, 1);
		register(BOB, NodeRole::Replica, 2);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), None, None),
			Error::<Test>::NothingToUpdate
		);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), Some(pid(1)), None),
			Error::<Test>::NothingToUpdate
		);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), Some(pid(2)), None),
			Error::<Test>::PeerIdTaken
		);
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), None, Some(addrs(&["nope"]))),
			Error::<Test>::InvalidMultiaddr
		);
		let bad: PeerIdBytes = vec![0x12, 32, 0].try_into().unwrap();
		assert_noop!(
			SyncRegistry::update_node(RuntimeOrigin::signed(ALICE), Some(bad), None),
			Error::<Test>::InvalidPeerId
		);
	});
}

#[test]
fn deregister_releases_deposit() {
	run(|| {
		register(ALICE, NodeRole::Primary, 1);
		assert_ok!(SyncRegistry::deregister_node(RuntimeOrigin::signed(ALICE)));
		assert!(Nodes::<Test>::get(ALICE).is_none());
		assert_eq!(PeerIds::<Test>::get(pid(1)), None);
		assert_eq!(held(ALICE), 0);
		assert_eq!(Balances::free_balance(ALICE), 1_000);
		System::assert_last_event(Event::NodeDeregistered { who: ALICE, released: DEPOSIT, forced: false }.into());
		assert_noop!(SyncRegistry::deregister_node(RuntimeOrigin::signed(ALICE)), Error::<Test>::NotRegistered);
	});
}

#[test]
fn deregister_refused_while_busy() {
	run(|| {
		register(ALICE, NodeRole::Primary, 1);
		Nodes::<Test>::mutate(ALICE, |n| n.as_mut().unwrap().status = NodeStatus::Active);
		assert_noop!(SyncRegistry::deregister_node(RuntimeOrigin::signed(ALICE)), Error::<Test>::NodeBusy);
	});
}

#[test]
fn force_deregister_is_root_only() {
	run(|| {
		register(ALICE, NodeRole::Primary, 1);
		Nodes::<Test>::mutate(ALICE, |n| n.as_mut().unwrap().status = NodeStatus::Active);
		assert_noop!(
			SyncRegistry::force_deregister(RuntimeOrigin::signed(BOB), ALICE),
			DispatchError::BadOrigin
		);
		assert_noop!(SyncRegistry::force_deregister(RuntimeOrigin::root(), BOB), Error::<Test>::NotRegistered);
		assert_ok!(SyncRegistry::force_deregister(RuntimeOrigin::root(), ALICE));
		assert_eq!(held(ALICE), 0);
		System::assert_last_event(Event::NodeDeregistered { who: ALICE, released: DEPOSIT, forced: true }.into());
	});
}

#[test]
fn try_state_detects_broken_index() {
	new_test_ext().execute_with(|| {
		register(ALICE, NodeRole::Primary, 1);
		PeerIds::<Test>::remove(pid(1));
		assert!(SyncRegistry::do_try_state().is_err());
	});
}
