//! End-to-end scenarios with real `sync-node` processes on the `local` chain (Alice, Bob and
//! Charlie author and finalize; Dave, Eve and Ferdie join later). Every node registers itself
//! (`--sync-register`), the owner commits its root every 5 blocks, and every holder proves
//! through its off-chain worker. Serving is limited to 1 MiB/s per peer so syncs take long
//! enough to be interrupted and measured.
//!
//! 1. A Primary with data; two Replicas join, sync (snapshot, then deltas while writes go on),
//!    prove, and are Active on chain; reads served by the Replicas match.
//! 2. A third Replica syncs mostly from the other Replicas: the Primary's egress is measured
//!    and must stay well under one copy.
//! 3. A co-Primary joins while writes go on (offered the seat by the owner, accepted by her
//!    own account) and reaches parity (attests the latest root).
//! 4. A Replica is killed (`kill -9`) 40 % into its snapshot and restarted: it resumes (does not fetch
//!    again what it verified) and becomes Active.
//! 5. A Replica stopped while the Primary commits more roots becomes Lagging on chain, then
//!    Active again after a restart.
//!
//! This file is an integration test of the `sync-node` package (see `node/cli/Cargo.toml`), so
//! cargo builds the node binary in the same graph as every other test and passes its path as
//! `CARGO_BIN_EXE_sync-node`. Alone: `cargo test --release -p sync-node --test scenarios`.
use serde_json::json;
use std::{
	sync::{
		atomic::{AtomicBool, AtomicU64, Ordering},
		Arc,
	},
	thread::JoinHandle,
	time::{Duration, Instant},
};
use sync_e2e::{eventually, hex, unhex, Chain, Node, Rpc};
use sync_primitives::{HoldingStatus, SegmentId};
use sync_runtime::RuntimeCall;

const MIB: usize = 1 << 20;
/// Bytes per second each node serves to one peer.
const RATE: usize = MIB;

fn registry(call: pallet_sync_registry::Call<sync_runtime::Runtime>) -> RuntimeCall {
	RuntimeCall::SyncRegistry(call)
}

/// Deterministic object content.
fn blob(seed: u64, len: usize) -> Vec<u8> {
	let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
	(0..len)
		.map(|_| {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			x as u8
		})
		.collect()
}

fn args(role: &str, boot: Option<&str>) -> Vec<String> {
	let mut a: Vec<String> = ["--sync-role", role, "--sync-register", "--sync-commit-every", "5"]
		.map(String::from)
		.to_vec();
	a.extend(["--sync-serve-rate-per-peer".into(), RATE.to_string()]);
	if let Some(b) = boot {
		a.extend(["--bootnodes".into(), b.to_string()]);
	}
	a
}

fn put(rpc: Rpc, segment: SegmentId, key: &str, data: &[u8]) -> u64 {
	let r = rpc
		.call("sync_put", json!([segment, key, hex(data)]))
		.unwrap_or_else(|e| panic!("put {key}: {e}"));
	r["seq"].as_u64().expect("seq")
}

fn get(node: &Node, segment: SegmentId, key: &str) -> Option<Vec<u8>> {
	let r = node.rpc.call("sync_get", json!([segment, key])).ok()?;
	r["data"].as_str().map(unhex)
}

/// Small writes on the owner every 250 ms in the background, until stopped.
struct Writer {
	stop: Arc<AtomicBool>,
	count: Arc<AtomicU64>,
	thread: Option<JoinHandle<()>>,
}

impl Writer {
	fn start(rpc: Rpc, segment: SegmentId, prefix: &'static str) -> Writer {
		let stop = Arc::new(AtomicBool::new(false));
		let count = Arc::new(AtomicU64::new(0));
		let (s, c) = (stop.clone(), count.clone());
		let thread = std::thread::spawn(move || {
			while !s.load(Ordering::Relaxed) {
				let n = c.load(Ordering::Relaxed);
				if rpc
					.call(
						"sync_put",
						json!([segment, format!("{prefix}/{n}"), hex(&blob(10_000 + n, 2048))]),
					)
					.is_ok()
				{
					c.fetch_add(1, Ordering::Relaxed);
				}
				std::thread::sleep(Duration::from_millis(250));
			}
		});
		Writer { stop, count, thread: Some(thread) }
	}

	/// Stops and returns how many writes were made.
	fn stop(mut self) -> u64 {
		self.stop.store(true, Ordering::Relaxed);
		if let Some(t) = self.thread.take() {
			let _ = t.join();
		}
		self.count.load(Ordering::Relaxed)
	}
}

impl Drop for Writer {
	fn drop(&mut self) {
		self.stop.store(true, Ordering::Relaxed);
	}
}

/// Head (seq, root) of a node's copy of the segment.
fn head(node: &Node, segment: SegmentId) -> Option<(u64, String)> {
	let s = node.segment_status(segment)?;
	Some((s["seq"].as_u64()?, s["root"].as_str()?.to_string()))
}

fn status_of(chain: &Chain, segment: SegmentId, node: &Node) -> Option<HoldingStatus> {
	chain.holding(segment, &node.account()).map(|(s, _)| s)
}

fn wait_status(
	chain: &Chain,
	segment: SegmentId,
	node: &Node,
	want: HoldingStatus,
	timeout: Duration,
) -> Duration {
	let started = Instant::now();
	eventually(
		timeout,
		&format!("{} {want:?} on chain", node.name),
		|| (status_of(chain, segment, node) == Some(want)).then_some(()),
		|| {
			format!(
				"{} holding {:?}\n--- {} log ---\n{}",
				node.name,
				chain.holding(segment, &node.account()),
				node.name,
				node.log_tail(40)
			)
		},
	);
	started.elapsed()
}

/// Waits until `node` has exactly the owner's head (writes stopped).
fn wait_same_head(owner: &Node, node: &Node, segment: SegmentId) {
	eventually(
		Duration::from_secs(120),
		&format!("{} at the owner's head", node.name),
		|| {
			let h = head(owner, segment)?;
			(head(node, segment)? == h).then_some(())
		},
		|| node.log_tail(30),
	);
}

#[test]
fn scenarios() {
	sync_e2e::use_node_binary(env!("CARGO_BIN_EXE_sync-node"));
	let started = Instant::now();
	let alice = Node::start("alice", &args("primary", None));
	let boot = alice.bootnode();
	let bob = Node::start("bob", &args("replica", Some(&boot)));
	let charlie = Node::start("charlie", &args("replica", Some(&boot)));
	let chain = Chain::new(alice.rpc);
	for n in [&alice, &bob, &charlie] {
		eventually(
			Duration::from_secs(120),
			&format!("{} registered", n.name),
			|| chain.node(&n.account()),
			|| n.log_tail(30),
		);
	}
	println!("[setup] 3 authorities up and registered themselves in {:.1?}", started.elapsed());

	// ---- Scenario 1 ----------------------------------------------------------------------
	chain.submit(
		sync_e2e::keyring("alice"),
		registry(pallet_sync_registry::Call::create_segment {}),
	);
	let segment: SegmentId = eventually(
		Duration::from_secs(30),
		"segment created",
		|| chain.node_segments(&alice.account()).last().copied(),
		String::new,
	);
	let mut objects = Vec::new();
	for i in 0..8u64 {
		objects.push((format!("big/{i}"), blob(i, 3 * MIB + 1000 * i as usize)));
	}
	for i in 0..100u64 {
		objects.push((format!("small/{i}"), blob(100 + i, 1 + (i as usize * 397) % 16_000)));
	}
	// Writes go to the owner once its service saw the segment on a finalized block.
	eventually(
		Duration::from_secs(60),
		"alice owns the segment",
		|| alice.segment_status(segment)?["owner"].as_bool()?.then_some(()),
		|| alice.log_tail(20),
	);
	for (k, v) in &objects {
		put(alice.rpc, segment, k, v);
	}
	let total: u64 = objects.iter().map(|(_, v)| v.len() as u64).sum();
	println!(
		"[1] segment {segment}: {} objects, {:.1} MiB written on the Primary",
		objects.len(),
		total as f64 / MIB as f64
	);
	let writer = Writer::start(alice.rpc, segment, "live1");
	let joined = Instant::now();
	for n in [&bob, &charlie] {
		chain.submit(
			sync_e2e::keyring(n.name),
			registry(pallet_sync_registry::Call::join_segment { segment }),
		);
	}
	for n in [&bob, &charlie] {
		let t = wait_status(&chain, segment, n, HoldingStatus::Active, Duration::from_secs(300));
		println!(
			"[1] {} Active on chain {:.1?} after joining (waited {t:.1?})",
			n.name,
			joined.elapsed()
		);
	}
	let live = writer.stop();
	for n in [&bob, &charlie] {
		wait_same_head(&alice, n, segment);
		for (k, v) in objects.iter().step_by(7).chain(objects.iter().take(8)) {
			assert_eq!(get(n, segment, k).as_deref(), Some(&v[..]), "{} serves {k}", n.name);
		}
		assert_eq!(
			get(n, segment, &format!("live1/{}", live - 1)),
			Some(blob(10_000 + live - 1, 2048))
		);
	}
	println!("[1] ok: {live} writes during the sync; Bob and Charlie serve the same bytes and root as Alice");

	// ---- Scenario 2 ----------------------------------------------------------------------
	let dave = Node::start("dave", &args("replica", Some(&boot)));
	eventually(
		Duration::from_secs(120),
		"dave registered",
		|| chain.node(&dave.account()),
		|| dave.log_tail(30),
	);
	let served = |n: &Node| n.status()["bytesServed"].as_u64().unwrap_or(0);
	let (a0, b0, c0) = (served(&alice), served(&bob), served(&charlie));
	let seg_bytes = alice.segment_status(segment).unwrap()["bytes"].as_u64().unwrap();
	let t = Instant::now();
	chain.submit(
		sync_e2e::keyring("dave"),
		registry(pallet_sync_registry::Call::join_segment { segment }),
	);
	wait_same_head(&alice, &dave, segment);
	let synced = t.elapsed();
	let (a1, b1, c1) = (served(&alice), served(&bob), served(&charlie));
	let egress = (a1 - a0) as f64 / seg_bytes as f64;
	println!(
		"[2] dave synced {:.1} MiB in {synced:.1?}; served by Alice {:.2} MiB ({:.3} copies), Bob {:.1} MiB, Charlie {:.1} MiB",
		seg_bytes as f64 / MIB as f64,
		(a1 - a0) as f64 / MIB as f64,
		egress,
		(b1 - b0) as f64 / MIB as f64,
		(c1 - c0) as f64 / MIB as f64
	);
	assert!(
		egress < 0.1,
		"Primary egress {egress:.3} copies; the Replicas should serve the third one"
	);
	assert!((b1 - b0) + (c1 - c0) >= seg_bytes * 9 / 10, "the Replicas served the copy");

	// ---- Scenario 3 ----------------------------------------------------------------------
	let eve = Node::start("eve", &args("primary", Some(&boot)));
	eventually(
		Duration::from_secs(120),
		"eve registered",
		|| chain.node(&eve.account()),
		|| eve.log_tail(30),
	);
	let writer = Writer::start(alice.rpc, segment, "live3");
	let t = Instant::now();
	// The owner offers the seat; it is Eve's only once she accepts it (signed by her account).
	chain.submit(
		sync_e2e::keyring("alice"),
		registry(pallet_sync_registry::Call::add_primary { segment, who: eve.account() }),
	);
	assert!(
		!chain.segment(segment).unwrap().primaries.contains(&eve.account()),
		"an offered seat is not taken until accepted"
	);
	chain.submit(
		sync_e2e::keyring("eve"),
		registry(pallet_sync_registry::Call::accept_primary { segment }),
	);
	eventually(
		Duration::from_secs(60),
		"eve a Primary once she accepted the seat",
		|| chain.segment(segment)?.primaries.contains(&eve.account()).then_some(()),
		|| eve.log_tail(30),
	);
	let (seq, root, votes) = eventually(
		Duration::from_secs(300),
		"parity with the co-Primary",
		|| {
			let (seq, root, votes) = chain.parity_votes(segment)?;
			(votes.contains(&eve.account()) && votes.contains(&alice.account()))
				.then_some((seq, root, votes))
		},
		|| format!("votes {:?}\n--- eve ---\n{}", chain.parity_votes(segment), eve.log_tail(40)),
	);
	println!("[3] eve reached parity at seq {seq} ({} Primaries attested root {}) {:.1?} after being added, writes going on", votes.len(), hex(&root), t.elapsed());
	let latest = chain.segment(segment).unwrap().roots.last().unwrap().facts.root;
	assert!(
		latest == root
			|| chain
				.segment(segment)
				.unwrap()
				.roots
				.iter()
				.any(|r| r.seq == seq && r.facts.root == root)
	);
	// Dave, who synced while no root was committed past his snapshot, proves the newer roots.
	wait_status(&chain, segment, &dave, HoldingStatus::Active, Duration::from_secs(240));
	println!("[2] dave Active on chain");

	// ---- Scenario 4 ----------------------------------------------------------------------
	let mut ferdie = Node::start("ferdie", &args("replica", Some(&boot)));
	eventually(
		Duration::from_secs(120),
		"ferdie registered",
		|| chain.node(&ferdie.account()),
		|| ferdie.log_tail(30),
	);
	chain.submit(
		sync_e2e::keyring("ferdie"),
		registry(pallet_sync_registry::Call::join_segment { segment }),
	);
	let (verified, target) = eventually(
		Duration::from_secs(120),
		"ferdie 40 % into its snapshot",
		|| {
			let s = ferdie.segment_status(segment)?;
			let v = s["syncing"]["verifiedBytes"].as_u64()?;
			let t = s["syncing"]["totalBytes"].as_u64()?;
			(v >= t * 2 / 5).then_some((v, t))
		},
		|| ferdie.log_tail(30),
	);
	ferdie.kill9();
	println!(
		"[4] ferdie killed (-9) with {:.1} of {:.1} MiB verified",
		verified as f64 / MIB as f64,
		target as f64 / MIB as f64
	);
	ferdie.restart();
	let t = Instant::now();
	wait_status(&chain, segment, &ferdie, HoldingStatus::Active, Duration::from_secs(300));
	let received = ferdie.status()["bytesReceived"].as_u64().unwrap();
	println!(
		"[4] ferdie resumed and is Active {:.1?} after the restart; received {:.1} MiB after it (segment {:.1} MiB)",
		t.elapsed(),
		received as f64 / MIB as f64,
		target as f64 / MIB as f64
	);
	// A restart from scratch would receive the whole target again (and then some); a resumed
	// one the rest, plus live deltas and at most the last unflushed 2 MiB again.
	assert!(
		received < target - verified / 4,
		"ferdie fetched again what it had verified: {received} bytes after the restart, {verified} of {target} verified before"
	);

	// ---- Scenario 5 ----------------------------------------------------------------------
	let mut dave = dave;
	dave.stop();
	let t = Instant::now();
	wait_status(&chain, segment, &dave, HoldingStatus::Lagging, Duration::from_secs(300));
	println!(
		"[5] dave Lagging on chain {:.1?} after it stopped (roots kept being committed)",
		t.elapsed()
	);
	dave.restart();
	let t = Instant::now();
	wait_status(&chain, segment, &dave, HoldingStatus::Active, Duration::from_secs(300));
	println!("[5] dave Active again {:.1?} after the restart", t.elapsed());
	let writes = writer.stop();
	println!(
		"[done] all scenarios in {:.1?} ({writes} writes during scenarios 3–5)",
		started.elapsed()
	);
	drop((alice, bob, charlie, eve, ferdie, dave));
}
