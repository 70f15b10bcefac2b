//! Benchmarks of `pallet-sync-registry` (frame-benchmarking v2). Each benchmark takes the
//! most expensive path of its call: maximum address list, an occupied reverse index.
use super::*;
use crate::Pallet as SyncRegistry;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_support::traits::fungible::Mutate;
use frame_system::RawOrigin;
use sp_runtime::traits::Bounded;
use sync_primitives::{MultiaddrBytes, NodeRole, MAX_MULTIADDRS};

fn peer_id(seed: u8) -> PeerIdBytes {
	let mut v = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
	v.extend_from_slice(&[seed; 32]);
	v.try_into().expect("38 bytes fit")
}

fn max_addrs() -> Multiaddrs {
	let addr: MultiaddrBytes = {
		let mut a = b"/ip4/255.255.255.255/tcp/65535/p2p/".to_vec();
		a.resize(sync_primitives::MAX_MULTIADDR_LEN as usize, b'x');
		a.try_into().expect("exactly max len")
	};
	vec![addr; MAX_MULTIADDRS as usize].try_into().expect("exactly max count")
}

fn funded<T: Config>(name: &'static str) -> T::AccountId
where
	T::Currency: Mutate<T::AccountId>,
{
	let who: T::AccountId = account(name, 0, 0);
	T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 4u32.into());
	who
}

#[benchmarks(where T::Currency: Mutate<T::AccountId>)]
mod benches {
	use super::*;

	#[benchmark]
	fn register_node() {
		let who = funded::<T>("node");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), NodeRole::Primary, peer_id(1), max_addrs());
		assert!(Nodes::<T>::contains_key(&who));
	}

	#[benchmark]
	fn update_node() {
		let who = funded::<T>("node");
		SyncRegistry::<T>::register_node(
			RawOrigin::Signed(who.clone()).into(),
			NodeRole::Replica,
			peer_id(1),
			max_addrs(),
		)
		.expect("registers");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), Some(peer_id(2)), Some(max_addrs()));
		assert_eq!(Nodes::<T>::get(&who).map(|n| n.peer_id), Some(peer_id(2)));
	}

	#[benchmark]
	fn deregister_node() {
		let who = funded::<T>("node");
		SyncRegistry::<T>::register_node(
			RawOrigin::Signed(who.clone()).into(),
			NodeRole::Replica,
			peer_id(1),
			max_addrs(),
		)
		.expect("registers");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(!Nodes::<T>::contains_key(&who));
	}

	#[benchmark]
	fn force_deregister() {
		let who = funded::<T>("node");
		SyncRegistry::<T>::register_node(
			RawOrigin::Signed(who.clone()).into(),
			NodeRole::Primary,
			peer_id(1),
			max_addrs(),
		)
		.expect("registers");
		#[extrinsic_call]
		_(RawOrigin::Root, who.clone());
		assert!(!Nodes::<T>::contains_key(&who));
	}

	impl_benchmark_test_suite!(SyncRegistry, crate::mock::new_test_ext(), crate::mock::Test);
}
