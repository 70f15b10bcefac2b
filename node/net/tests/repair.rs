//! In-process multi-node tests of the background scrub and the repair (real stores on disk,
//! real libp2p on loopback): rot on a follower's disk found, quarantined (served as `Missing`),
//! fetched again from the Primary and served again; the owner Primary repairing from a Replica;
//! and this node's own store failing during a transfer and a repair without anyone being blamed.
//!
//! Large objects (more than one 16 KiB group) are plain files (`objects/xx/<cid>`), so the tests
//! flip a byte in the file. Small ones live inline in the store's database, where no file offset
//! names them: they are rotted through `Store::rot_inline_object` (the store's `test-util`
//! feature), which rewrites their stored bytes with one bit flipped, as rot would.
mod common;
use common::*;
use std::{
	os::unix::fs::FileExt,
	path::{Path, PathBuf},
	sync::Arc,
	time::{Duration, Instant},
};
use sync_net::{
	deltas::{single_owner, OpVerifier},
	fixtures::blob,
	metrics::Metrics,
	transfer::client::{Received, Session},
	Keypair, NetConfig, PeerId, SyncNetwork,
};
use sync_primitives::{
	commitment::{cid_of, Hash32, GROUP_LEN},
	hex::hex_plain,
	outboard::groups_of,
};
use sync_proto::GroupRange;
use sync_store::{Cid, Head, SegmentWrite};
use tokio::sync::watch;

/// A node that scrubs fast: 64 MiB/s, a pass every 200 ms (the segments here are ≈ 1.2 MiB, so a
/// byte that rots is found within half a second).
fn scrubbing() -> NetConfig {
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.scrub_rate = 64 * MIB;
	cfg.scrub_pass_interval = Duration::from_millis(200);
	cfg.head_poll = Duration::from_millis(300);
	cfg
}

/// Four large objects of 13 to 19 groups (the last one partial) and sixteen small ones (inline).
fn contents() -> Vec<SegmentWrite> {
	let mut w = Vec::new();
	for i in 0..4u64 {
		w.push(SegmentWrite::Put {
			key: format!("large/{i}").into_bytes(),
			data: blob(100 + i, 200_000 + i as usize * 33_000),
		});
	}
	for i in 0..16u64 {
		w.push(SegmentWrite::Put {
			key: format!("small/{i}").into_bytes(),
			data: blob(1_000 + i, 100 + i as usize * 500),
		});
	}
	w
}

/// The owner Primary with [`contents`], its head committed on the test chain.
async fn owner(cfg: NetConfig) -> (Node, Head, Arc<Chain>) {
	let p = Node::start_with(Arc::new(tempfile::tempdir().unwrap()), cfg).await;
	p.store().apply(SEG, contents()).unwrap();
	let chain = Chain::new();
	let head = chain.commit(p.store());
	(p, head, chain)
}

fn verifier(primary: PeerId) -> Arc<dyn OpVerifier + Send + Sync> {
	Arc::new(single_owner([0; 32], primary))
}

/// Where the store keeps the complete large object `cid`.
fn object_file(dir: &Path, cid: &Hash32) -> PathBuf {
	let h = hex_plain(cid);
	dir.join("objects").join(&h[..2]).join(&h)
}

/// Flips one bit of the byte at `at` of the file at `path` (disk rot).
fn flip(path: &Path, at: u64) {
	let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
	let mut b = [0u8];
	f.read_exact_at(&mut b, at).unwrap();
	f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
}

async fn eventually(what: &str, limit: Duration, done: impl Fn() -> bool) {
	let started = Instant::now();
	while !done() {
		assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
		tokio::time::sleep(Duration::from_millis(20)).await;
	}
}

/// Waits for a whole scrub pass of `net` from now (every object of the segment at `head`
/// checked once more).
async fn a_full_pass(net: &SyncNetwork, head: Head) {
	let objects = net.store().listing(SEG, &head.facts.root).unwrap().len() as u64;
	let m = net.metrics();
	let seen = m.scrubbed_objects.get();
	eventually("a scrub pass", Duration::from_secs(20), || {
		m.scrubbed_objects.get() >= seen + 2 * objects
	})
	.await;
}

/// Asks `holder`, as node `x`, for every group of object `(cid, size)`: how many came back
/// `Missing`, and the bytes of the others.
async fn ask(x: &Node, holder: &Node, cid: Hash32, size: u64) -> (u64, Vec<u8>) {
	x.net.dial(holder.net.peer_id(), holder.addrs.clone()).await.unwrap();
	let mut s = Session::open(&x.net, holder.net.peer_id()).await.unwrap();
	let groups = groups_of(size);
	assert!(groups <= 64, "one request");
	let (mut missing, mut bytes) = (0, Vec::new());
	s.groups(vec![GroupRange { cid, size, first: 0, count: groups as u32 }], |_, _, r| {
		match r {
			Received::Data(d) => bytes.extend_from_slice(d),
			Received::Missing => missing += 1,
		}
		Ok(())
	})
	.await
	.unwrap();
	(missing, bytes)
}

/// `net` holds nothing against `peer`: no ban, no cooldown, no failure counted, no ban at all.
fn blameless(what: &str, net: &SyncNetwork, peer: &PeerId) {
	assert!(!net.is_banned(peer), "{what}: banned");
	assert!(net.peer_usable(peer), "{what}: cooling down");
	let rec = net.peer_book().record(peer).cloned().unwrap_or_default();
	assert_eq!((rec.failures, rec.cooldown_until, rec.banned), (0, None, false), "{what}");
	let m: &Metrics = net.metrics();
	assert_eq!(m.bans.get(), 0, "{what}: nobody banned");
	assert_eq!(m.failures.with_label_values(&["misbehaved"]).get(), 0, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_rot_is_scrubbed_and_refetched() {
	let (p, committed, chain) = owner(NetConfig::new(Keypair::generate_ed25519())).await;
	let f = Node::start_with(Arc::new(tempfile::tempdir().unwrap()), scrubbing()).await;
	let (holders, rx) = watch::channel(vec![p.holder(true)]);
	let follower = f.net.follow(SEG, rx, chain.anchors(), verifier(p.net.peer_id()));
	let got = tokio::time::timeout(Duration::from_secs(30), follower.reached(committed.seq))
		.await
		.expect("F follows the committed root");
	assert_eq!(got, committed);
	assert_holds(f.store(), committed);
	let big = f.store().lookup(SEG, b"large/1").unwrap();
	let small = f.store().lookup(SEG, b"small/3").unwrap();
	assert!(groups_of(big.size) > 4 && groups_of(small.size) == 1);
	let m = f.net.metrics();
	// The intact copy passes.
	a_full_pass(&f.net, committed).await;
	assert_eq!(m.corrupt_objects.get(), 0);
	assert_eq!(m.repair_pending.get(), 0);

	// P leaves F's holder list for a while, so the quarantine can be watched before the repair.
	holders.send_replace(Vec::new());
	// Rot on F: a byte in the fourth group of the large object's file, a bit of the small one.
	flip(&object_file(f.dir.path(), &big.cid), 3 * GROUP_LEN + 17);
	assert!(f.store().rot_inline_object(&small.cid).unwrap());
	eventually("the scrub finds both", Duration::from_secs(10), || m.corrupt_objects.get() >= 2)
		.await;
	assert_eq!(m.corrupt_objects.get(), 2);
	for e in [&big, &small] {
		assert!(!f.store().has_object(&e.cid).unwrap(), "{:?} quarantined", Cid(e.cid));
		assert!(f.dir.path().join("quarantine").join(hex_plain(&e.cid)).exists());
	}
	eventually("listed for repair", Duration::from_secs(10), || m.repair_pending.get() == 2).await;
	// Meanwhile another node asking F for them gets `Missing`, never the rotten bytes.
	let x = Node::start().await;
	for e in [&big, &small] {
		let (missing, bytes) = ask(&x, &f, e.cid, e.size).await;
		assert_eq!(missing, groups_of(e.size), "{:?}: every group Missing", Cid(e.cid));
		assert!(bytes.is_empty());
	}

	// P is back: F fetches both again from it, verified against their CIDs.
	holders.send_replace(vec![p.holder(true)]);
	eventually("repaired", Duration::from_secs(30), || m.repaired_objects.get() >= 2).await;
	assert_eq!(m.repaired_objects.get(), 2);
	assert_eq!(m.repair_pending.get(), 0);
	assert_holds(f.store(), committed);
	// F serves them again: the bytes P has.
	let (missing, bytes) = ask(&x, &f, big.cid, big.size).await;
	assert_eq!(missing, 0);
	assert!(bytes == p.store().read_object(&big.cid).unwrap(), "F serves the large object again");
	let (missing, bytes) = ask(&x, &f, small.cid, small.size).await;
	assert_eq!((missing, cid_of(&bytes)), (0, small.cid), "F serves the small object again");
	// And the scrub finds nothing more.
	a_full_pass(&f.net, committed).await;
	assert_eq!(m.corrupt_objects.get(), 2);
	// The damage was F's: nobody is blamed for it, P least of all.
	blameless("after the repair", &f.net, &p.net.peer_id());
	drop(follower);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_repairs_from_a_replica() {
	let (p, head, _chain) = owner(scrubbing()).await;
	let r = Node::start().await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	r.net.sync_segment(SEG, head, rx).await.unwrap();
	assert_holds(r.store(), head);
	// The owner does not follow its segment: the node lists its holders (with addresses).
	p.net.set_holders(SEG, vec![p.holder(true), r.holder(false)]);
	let m = p.net.metrics();
	let big = p.store().lookup(SEG, b"large/0").unwrap();
	let served = r.net.served();
	flip(&object_file(p.dir.path(), &big.cid), 5);
	eventually("the owner's scrub finds it", Duration::from_secs(10), || {
		m.corrupt_objects.get() >= 1
	})
	.await;
	eventually("repaired from the Replica", Duration::from_secs(30), || {
		m.repaired_objects.get() >= 1
	})
	.await;
	assert_holds(p.store(), head);
	assert!(r.net.served() > served, "the Replica served the object back");
	blameless("the owner's repair", &p.net, &r.net.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_error_does_not_blame_peer() {
	let (p, head, _chain) = owner(NetConfig::new(Keypair::generate_ed25519())).await;
	let f = Node::start_with(Arc::new(tempfile::tempdir().unwrap()), scrubbing()).await;
	let m = f.net.metrics();
	let local = || m.failures.with_label_values(&["local"]).get();
	let pp = p.net.peer_id();

	// 1. A snapshot sync whose store cannot create one large object's partial file: a directory
	// stands where `partial/<cid>` is to be created (root ignores permission bits, not this), so
	// the store's open fails with EISDIR, a failure of this node.
	let victim = p.store().lookup(SEG, b"large/2").unwrap();
	let blocker = f.dir.path().join("partial").join(hex_plain(&victim.cid));
	std::fs::create_dir(&blocker).unwrap();
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let sync = tokio::spawn({
		let net = f.net.clone();
		async move { net.sync_segment(SEG, head, rx).await }
	});
	eventually("the store fails, locally", Duration::from_secs(20), || local() >= 2).await;
	assert!(!sync.is_finished(), "no sync without the object");
	assert!(!f.store().has_object(&victim.cid).unwrap());
	blameless("during the sync's fault", &f.net, &pp);
	std::fs::remove_dir(&blocker).unwrap();
	let report = tokio::time::timeout(Duration::from_secs(30), sync)
		.await
		.expect("the sync completes once the fault is gone")
		.unwrap()
		.unwrap();
	assert_eq!(report.head, Some(head));
	assert!(report.banned.is_empty());
	assert_holds(f.store(), head);
	blameless("after the sync", &f.net, &pp);

	// 2. The repair of a rotted object meets the same fault.
	let victim = p.store().lookup(SEG, b"large/3").unwrap();
	let (failed, repaired) = (local(), m.repaired_objects.get());
	let blocker = f.dir.path().join("partial").join(hex_plain(&victim.cid));
	std::fs::create_dir(&blocker).unwrap();
	flip(&object_file(f.dir.path(), &victim.cid), GROUP_LEN + 5);
	eventually("quarantined", Duration::from_secs(10), || m.corrupt_objects.get() >= 1).await;
	eventually("the repair fails, locally", Duration::from_secs(20), || local() >= failed + 2)
		.await;
	assert!(!f.store().has_object(&victim.cid).unwrap());
	assert_eq!(m.repair_pending.get(), 1);
	blameless("during the repair's fault", &f.net, &pp);
	std::fs::remove_dir(&blocker).unwrap();
	eventually("repaired once the fault is gone", Duration::from_secs(30), || {
		m.repaired_objects.get() > repaired
	})
	.await;
	assert_holds(f.store(), head);
	blameless("after the repair", &f.net, &pp);
}
