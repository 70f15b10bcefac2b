//! In-process multi-node tests of live delta sync: gossip announcements, range fetch, joins
//! while the Primary keeps writing, co-Primary parity, restarts, and peer-book persistence.
mod common;
use common::*;
use std::{
	sync::{
		atomic::{AtomicBool, Ordering},
		Arc,
	},
	time::Duration,
};
use sync_net::{
	deltas::{epoch_keys, single_owner, EpochKeys},
	fixtures::blob,
	sign_announcement, Follower, Holder, Keypair, NetConfig, PeerId, SyncNetwork,
};
use sync_proto::OpVerifier;
use sync_store::{Head, SegmentWrite, Store};
use tokio::sync::watch;

/// Defaults, with gossip and head polling sped up for tests.
fn fast() -> NetConfig {
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.gossip_heartbeat = Duration::from_millis(100);
	cfg.head_poll = Duration::from_millis(300);
	cfg
}

async fn node(cfg: NetConfig) -> Node {
	Node::start_with(Arc::new(tempfile::tempdir().unwrap()), cfg).await
}

fn put(i: u64) -> SegmentWrite {
	SegmentWrite::Put {
		key: format!("k{}", i % 500).into_bytes(),
		data: blob(i, 200 + (i as usize % 7) * 5_000),
	}
}

/// The chain's view: this peer owns the segment, in epoch 1 from seq 1 (on the chain of
/// `NetConfig::new`'s all-zero genesis hash, which the nodes sign for). Co-Primaries follow the
/// owner's log; they do not sign it.
fn owner(peer: PeerId) -> Arc<dyn OpVerifier + Send + Sync> {
	Arc::new(single_owner([0; 32], peer))
}

/// Writes one op every `every` on the Primary (a steady client load) until stopped.
fn steady_writer(
	net: SyncNetwork,
	from: u64,
	every: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
	let stop = Arc::new(AtomicBool::new(false));
	let s = stop.clone();
	let t = std::thread::spawn(move || {
		let mut i = from;
		while !s.load(Ordering::SeqCst) {
			net.write(SEG, 1, vec![put(i)]).unwrap();
			i += 1;
			std::thread::sleep(every);
		}
		i - from
	});
	(stop, t)
}

async fn reach(f: &Follower, head: Head) {
	let got = tokio::time::timeout(Duration::from_secs(30), f.reached(head.seq))
		.await
		.expect("follower converges");
	assert_eq!(got, head, "same seq, same root");
}

/// Stops `r`, runs `meanwhile` (writes it misses), and starts it again on the same store.
async fn offline_while(r: Node, meanwhile: impl FnOnce()) -> Node {
	let Node { net, dir, cfg, .. } = r;
	net.shutdown();
	drop(net);
	meanwhile();
	Node::start_with(dir, cfg).await
}

/// The node's log holds every seq from its first logged one to the head exactly once, in order.
fn assert_log_contiguous(store: &Store, head: Head) -> u64 {
	let first = store.first_logged(SEG).unwrap().expect("ops logged");
	let ops = store.ops(SEG, first, 1_000_000).unwrap();
	assert_eq!(ops.len() as u64, head.seq - first + 1);
	assert!(ops.iter().enumerate().all(|(i, o)| o.op.seq == first + i as u64));
	assert_eq!(ops.last().unwrap().op.new_root, head.facts.root);
	first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_while_three_replicas_and_a_co_primary_join_and_all_converge() {
	let p = node(fast()).await;
	p.net.write(SEG, 1, (0..100).map(put).collect()).unwrap();
	let chain = Chain::new();
	chain.commit(p.store());
	let committer = chain.committer(p.store().clone(), Duration::from_millis(200));
	let (stop, writer) = steady_writer(p.net.clone(), 100, Duration::from_millis(3));
	let co = node(fast()).await;
	let mut replicas = Vec::new();
	for _ in 0..3 {
		replicas.push(node(fast()).await);
	}
	let mut holders = vec![p.holder(true), co.holder(true)];
	holders.extend(replicas.iter().map(|r| r.holder(false)));
	let (_tx, rx) = watch::channel(holders);
	let verifier = owner(p.net.peer_id());
	let nodes: Vec<&Node> = std::iter::once(&co).chain(replicas.iter()).collect();
	let followers: Vec<Follower> = nodes
		.iter()
		.map(|n| n.net.follow(SEG, rx.clone(), chain.anchors(), verifier.clone()))
		.collect();
	// Everyone joined (snapshot of a pinned root) and is following live while writes go on.
	let during = p.store().head(SEG).unwrap();
	for f in &followers {
		tokio::time::timeout(Duration::from_secs(30), f.reached(during.seq))
			.await
			.expect("joined");
	}
	tokio::time::sleep(Duration::from_millis(500)).await;
	stop.store(true, Ordering::SeqCst);
	let written = writer.join().unwrap();
	committer.abort();
	let last = p.store().head(SEG).unwrap();
	assert!(last.seq > during.seq, "writes continued after the joins");
	for (n, f) in nodes.iter().zip(&followers) {
		reach(f, last).await;
		assert_holds(n.store(), last);
		let first = assert_log_contiguous(n.store(), last);
		let stats = f.stats();
		println!(
			"{}: {} snapshot(s), {} range fetches, {} ops replayed, log from seq {first}",
			n.net.peer_id(),
			stats.snapshots.load(Ordering::Relaxed),
			stats.catch_ups.load(Ordering::Relaxed),
			stats.ops.load(Ordering::Relaxed)
		);
		assert!(stats.snapshots.load(Ordering::Relaxed) >= 1, "joined through a snapshot");
		assert!(stats.ops.load(Ordering::Relaxed) > 0, "then followed with deltas");
	}
	// The co-Primary mirrors the owner: the same root, and the owner's log.
	assert_eq!(co.store().head(SEG).unwrap().facts.root, last.facts.root);
	println!("the Primary wrote {written} ops while the others joined");
	assert_eq!(p.net.metrics().gossip.with_label_values(&["forged"]).get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_offline_for_n_ops_catches_up_by_range_fetch_after_restart() {
	let p = node(fast()).await;
	for i in 0..10 {
		p.net.write(SEG, 1, (i * 10..i * 10 + 10).map(put).collect()).unwrap();
	}
	let chain = Chain::new();
	chain.commit(p.store());
	let r = node(fast()).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let verifier = owner(p.net.peer_id());
	let f = r.net.follow(SEG, rx.clone(), chain.anchors(), verifier.clone());
	reach(&f, p.store().head(SEG).unwrap()).await;
	drop(f);
	// Offline while the Primary writes 300 ops in 30 announced batches.
	let r = offline_while(r, || {
		for i in 10..40 {
			p.net.write(SEG, 1, (i * 10..i * 10 + 10).map(put).collect()).unwrap();
		}
	})
	.await;
	let last = p.store().head(SEG).unwrap();
	assert_eq!(r.store().head(SEG).unwrap().seq, 100, "the head survived the restart");
	chain.commit(p.store());
	let f = r.net.follow(SEG, rx, chain.anchors(), verifier);
	reach(&f, last).await;
	assert_eq!(
		f.stats().snapshots.load(Ordering::Relaxed),
		0,
		"no snapshot: the gap was fetched by range"
	);
	assert_eq!(f.stats().ops.load(Ordering::Relaxed), 300);
	assert_holds(r.store(), last);
	assert_log_contiguous(r.store(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_offline_longer_than_the_log_catches_up_through_a_newer_snapshot() {
	// The Primary keeps 100 ops of log.
	let mut pcfg = fast();
	pcfg.log_retention = 100;
	let p = node(pcfg).await;
	p.net.write(SEG, 1, (0..50).map(put).collect()).unwrap();
	let chain = Chain::new();
	chain.commit(p.store());
	let r = node(fast()).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let verifier = owner(p.net.peer_id());
	let f = r.net.follow(SEG, rx.clone(), chain.anchors(), verifier.clone());
	reach(&f, p.store().head(SEG).unwrap()).await;
	let snapshots_before = f.stats().snapshots.load(Ordering::Relaxed);
	drop(f);
	let r = offline_while(r, || {
		for i in 5..50 {
			p.net.write(SEG, 1, (i * 10..i * 10 + 10).map(put).collect()).unwrap();
		}
	})
	.await;
	let last = p.store().head(SEG).unwrap();
	let first = p.store().first_logged(SEG).unwrap().unwrap();
	assert!(first > 51, "the Primary pruned the ops the Replica misses (log starts at {first})");
	chain.commit(p.store());
	let f = r.net.follow(SEG, rx, chain.anchors(), verifier);
	reach(&f, last).await;
	assert_eq!(
		f.stats().snapshots.load(Ordering::Relaxed),
		1,
		"caught up through a newer snapshot (before: {snapshots_before})"
	);
	assert_holds(r.store(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_conflicting_announcements_are_rejected() {
	let pcfg = fast();
	let pkey = pcfg.keypair.clone();
	let p = node(pcfg).await;
	// Committed after the first batch: F snapshots seq 5 and replays the rest.
	let chain = Chain::new();
	for i in 0..4 {
		p.net.write(SEG, 1, (i * 5..i * 5 + 5).map(put).collect()).unwrap();
		if i == 0 {
			chain.commit(p.store());
		}
	}
	// F joins after those announcements went out: it learns them by polling and range fetch.
	let f_node = node(fast()).await;
	let verifier = owner(p.net.peer_id());
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let f = f_node.net.follow(SEG, rx, chain.anchors(), verifier.clone());
	let head = p.store().head(SEG).unwrap();
	reach(&f, head).await;
	let first = f_node.store().first_logged(SEG).unwrap().unwrap();
	assert!(first <= 10, "F logs the ops it replayed after its snapshot");
	let log_before = f_node.store().ops(SEG, first, 100).unwrap();

	// Two rogue nodes connected to F and on the topic (following nothing useful).
	let x = node(fast()).await;
	let y = node(fast()).await;
	let (_none, empty) = watch::channel(Vec::<Holder>::new());
	let _fx = x.net.follow(SEG, empty.clone(), chain.anchors(), verifier.clone());
	let _fy = y.net.follow(SEG, empty, chain.anchors(), verifier.clone());
	for rogue in [&x, &y] {
		rogue.net.dial(f_node.net.peer_id(), f_node.addrs.clone()).await.unwrap();
	}
	tokio::time::sleep(Duration::from_millis(500)).await; // subscriptions exchanged
	let gossip = |label: &str| f_node.net.metrics().gossip.with_label_values(&[label]).get();
	let until = |label: &'static str| async move {
		for _ in 0..100 {
			if gossip(label) > 0 {
				return;
			}
			tokio::time::sleep(Duration::from_millis(50)).await;
		}
		panic!("no `{label}` verdict");
	};

	// A replay: the Primary's genuine announcement of seq 10, sent again.
	let op10 = p.store().ops(SEG, 10, 1).unwrap().remove(0);
	x.net.announce(&sign_announcement(&op10, &pkey, &p.cfg.genesis));
	until("replayed").await;
	assert!(!f_node.net.is_banned(&x.net.peer_id()), "a replay is dropped, not punished");

	// A forgery: a new seq signed by a key that is not a Primary of the segment.
	let mut next = p.store().ops(SEG, 20, 1).unwrap().remove(0);
	next.op.seq = 21;
	x.net.announce(&sign_announcement(&next, &x.cfg.keypair, &x.cfg.genesis));
	until("forged").await;
	assert!(f_node.net.is_banned(&x.net.peer_id()), "the sender of a forgery is banned");

	// A conflict: the owner's key (leaked, or equivocating) on another op at an applied seq.
	// Judged from F's own history (which could be the one to be replaced: a former owner's ops
	// past the new owner's start), so it is dropped, not forwarded, and nobody is blamed.
	let mut other = p.store().ops(SEG, 15, 1).unwrap().remove(0);
	other.op.new_root = [7; 32];
	y.net.announce(&sign_announcement(&other, &pkey, &p.cfg.genesis));
	until("conflicting").await;
	assert!(!f_node.net.is_banned(&y.net.peer_id()), "a state-dependent verdict bans no one");

	// An epoch F's view of the chain does not know (a newer owner, perhaps): dropped, no blame.
	let mut later = p.store().ops(SEG, 20, 1).unwrap().remove(0);
	later.op.seq = 21;
	later.op.epoch = 2;
	y.net.announce(&sign_announcement(&later, &y.cfg.keypair, &y.cfg.genesis));
	until("unknown_epoch").await;
	assert!(!f_node.net.is_banned(&y.net.peer_id()));

	// Nothing was applied: same head, same log.
	assert_eq!(f_node.store().head(SEG), Some(head));
	assert_eq!(f_node.store().ops(SEG, first, 100).unwrap(), log_before);
	// The genuine Primary is still followed.
	p.net.write(SEG, 1, (20..30).map(put).collect()).unwrap();
	reach(&f, p.store().head(SEG).unwrap()).await;
	assert_eq!(gossip("accepted") + gossip("replayed"), gossip("accepted") + 1, "one replay seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_mid_replay_ends_with_the_same_root_and_no_duplicates() {
	let p = node(fast()).await;
	p.net.write(SEG, 1, (0..10).map(put).collect()).unwrap();
	// One commit, after the first write: everything after it is replay.
	let chain = Chain::new();
	chain.commit(p.store());
	let tiny = |i: u64| SegmentWrite::Put {
		key: format!("t{}", i % 3000).into_bytes(),
		data: blob(i, 64 + (i as usize % 200)),
	};
	for b in 0..80 {
		p.net.write(SEG, 1, (b * 100..b * 100 + 100).map(tiny).collect()).unwrap();
	}
	let last = p.store().head(SEG).unwrap();
	let r = node(fast()).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let verifier = owner(p.net.peer_id());
	let f = r.net.follow(SEG, rx.clone(), chain.anchors(), verifier.clone());
	let mut heads = f.head();
	let mid = loop {
		heads.changed().await.unwrap();
		if let Some(h) = *heads.borrow() {
			if h.seq > 2_000 {
				break h;
			}
		}
	};
	drop(f);
	let r = r.restart().await;
	let resumed = r.store().head(SEG).unwrap();
	println!("stopped at seq {} (saw {}), of {}", resumed.seq, mid.seq, last.seq);
	assert!(resumed.seq >= mid.seq && resumed.seq < last.seq, "stopped mid-replay");
	let f = r.net.follow(SEG, rx, chain.anchors(), verifier);
	reach(&f, last).await;
	assert_eq!(f.stats().snapshots.load(Ordering::Relaxed), 0);
	assert_eq!(
		f.stats().ops.load(Ordering::Relaxed),
		last.seq - resumed.seq,
		"nothing applied twice"
	);
	assert_holds(r.store(), last);
	assert_log_contiguous(r.store(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_scores_and_cooldowns_survive_a_restart_trusted_peers_are_never_cooled() {
	// Served at 4 MiB/s, so the sync lasts long enough for the gone holders to fail repeatedly.
	let (p, head) = primary(2 * MIB, 0, limit(4 * MIB)).await;
	// Two holders that are gone (nothing listens there); one of them is trusted.
	let gone = |_| Holder {
		peer: PeerId::random(),
		addrs: vec!["/ip4/127.0.0.1/tcp/9".parse().unwrap()],
		primary: false,
	};
	let (dead, trusted) = (gone(0), gone(1));
	let mut cfg = fast();
	cfg.connect_timeout = Duration::from_millis(500);
	cfg.peers.trusted = [trusted.peer].into();
	let r = node(cfg).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true), dead.clone(), trusted.clone()]);
	r.net.sync_segment(SEG, head, rx).await.unwrap();
	assert_holds(r.store(), head);
	let book = r.net.peer_book();
	assert!(book.record(&trusted.peer).unwrap().failures >= 2);
	assert!(book.record(&dead.peer).unwrap().failures >= 2);
	assert!(!r.net.peer_usable(&dead.peer), "cooling down after its second failure");
	assert!(r.net.peer_usable(&trusted.peer), "trusted peers never cool down");
	assert!(book.record(&p.net.peer_id()).unwrap().score > 0);
	let r = r.restart().await;
	let back = r.net.peer_book();
	assert_eq!(
		back.record(&dead.peer).unwrap().failures,
		book.record(&dead.peer).unwrap().failures
	);
	assert!(!r.net.peer_usable(&dead.peer), "the cooldown survived the restart");
	assert_eq!(
		back.record(&p.net.peer_id()).unwrap().score,
		book.record(&p.net.peer_id()).unwrap().score
	);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayer_of_forged_gossip_is_not_banned() {
	// An equivocating owner key signs a second op at seq 10; the rogue Y that publishes it
	// reaches F only through H, an honest follower that has neither op (its head is empty), so
	// H judges it valid and relays it. F has the real op 10: it drops the message. The verdict
	// depends on F's own history (an honest new owner's op would look the same to a node that
	// followed a former owner past the new one's start), so neither the honest relayer H nor
	// the author is banned; F keeps following the owner.
	let pcfg = fast();
	let pkey = pcfg.keypair.clone();
	let p = node(pcfg).await;
	// Committed at seq 5: F snapshots it and replays (logs) ops 6..20.
	p.net.write(SEG, 1, (0..5).map(put).collect()).unwrap();
	let chain = Chain::new();
	chain.commit(p.store());
	p.net.write(SEG, 1, (5..20).map(put).collect()).unwrap();
	let verifier = owner(p.net.peer_id());
	let f_node = node(fast()).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let f = f_node.net.follow(SEG, rx, chain.anchors(), verifier.clone());
	reach(&f, p.store().head(SEG).unwrap()).await;
	// H and Y follow with no holders (H's head stays empty); Y - H - F, Y not connected to F.
	let h = node(fast()).await;
	let y = node(fast()).await;
	let (_none, empty) = watch::channel(Vec::<Holder>::new());
	let _fh = h.net.follow(SEG, empty.clone(), chain.anchors(), verifier.clone());
	let _fy = y.net.follow(SEG, empty, chain.anchors(), verifier.clone());
	h.net.dial(f_node.net.peer_id(), f_node.addrs.clone()).await.unwrap();
	y.net.dial(h.net.peer_id(), h.addrs.clone()).await.unwrap();
	tokio::time::sleep(Duration::from_millis(800)).await; // subscriptions and meshes formed
	let mut other = p.store().ops(SEG, 10, 1).unwrap().remove(0);
	other.op.new_root = [7; 32];
	y.net.announce(&sign_announcement(&other, &pkey, &p.cfg.genesis));
	let conflicting = || f_node.net.metrics().gossip.with_label_values(&["conflicting"]).get();
	let relayed = || h.net.metrics().gossip.with_label_values(&["accepted"]).get();
	// Both verdicts (H's acceptance may come after F's, if the mesh delivered to F first).
	for _ in 0..200 {
		if conflicting() > 0 && relayed() > 0 {
			break;
		}
		tokio::time::sleep(Duration::from_millis(50)).await;
	}
	let seen = |n: &Node| {
		[
			"accepted",
			"replayed",
			"forged",
			"conflicting",
			"unknown_epoch",
			"not_followed",
			"unchecked",
		]
		.map(|l| (l, n.net.metrics().gossip.with_label_values(&[l]).get()))
	};
	println!("H saw {:?}; F saw {:?}", seen(&h), seen(&f_node));
	assert!(conflicting() > 0, "F saw the equivocation (relayed by H)");
	assert_eq!(h.net.metrics().gossip.with_label_values(&["accepted"]).get(), 1, "H relayed it");
	assert!(!f_node.net.is_banned(&h.net.peer_id()), "the honest relayer is not banned");
	assert!(
		!f_node.net.is_banned(&y.net.peer_id()),
		"nor the author, on a state-dependent verdict"
	);
	// F still follows the genuine Primary.
	p.net.write(SEG, 1, (20..30).map(put).collect()).unwrap();
	reach(&f, p.store().head(SEG).unwrap()).await;
}

/// The chain's ownership history of SEG: `old` owned epoch 1 from seq 1, sealed at
/// `first_seq - 1`; `new` owns epoch 2 from `first_seq`.
fn two_owners(old: PeerId, new: PeerId, first_seq: u64) -> Arc<dyn OpVerifier + Send + Sync> {
	two_owners_seen(old, new, first_seq, Arc::new(AtomicBool::new(true)))
}

/// [`two_owners`] as a node's chain view sees it: epoch 2 (and so the end of epoch 1) only
/// once `seen` is set.
fn two_owners_seen(
	old: PeerId,
	new: PeerId,
	first_seq: u64,
	seen: Arc<AtomicBool>,
) -> Arc<dyn OpVerifier + Send + Sync> {
	let both = epoch_keys([(1, old, 1), (2, new, first_seq)]);
	let before = epoch_keys([(1, old, 1)]);
	Arc::new(EpochKeys::new([0; 32], move |seg, epoch| {
		let keys = if seen.load(Ordering::SeqCst) { &both } else { &before };
		keys.iter().find(|k| seg == SEG && k.epoch == epoch).copied()
	}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_of_a_former_primary_still_verifies() {
	// A owns SEG (epoch 1): seq 5 is committed, then it writes on to seq 20 in checkpointed
	// batches. H (a Replica) and B (the migration target) follow it to its head.
	let a = node(fast()).await;
	a.net.write(SEG, 1, (0..5).map(put).collect()).unwrap();
	let chain = Chain::new();
	let committed = chain.commit(a.store());
	for i in 1..4 {
		a.net.write(SEG, 1, (i * 5..i * 5 + 5).map(put).collect()).unwrap();
	}
	let a_head = a.store().head(SEG).unwrap();
	let (h, b) = (node(fast()).await, node(fast()).await);
	let (_tx, rx) = watch::channel(vec![a.holder(true)]);
	let before = owner(a.net.peer_id());
	let fh = h.net.follow(SEG, rx.clone(), chain.anchors(), before.clone());
	let fb = b.net.follow(SEG, rx, chain.anchors(), before);
	reach(&fh, a_head).await;
	reach(&fb, a_head).await;
	// The migration completes (B proved seq 20: epoch 2 from seq 21); A is released and gone.
	// B stops following and writes on in its own epoch.
	drop(fb);
	let a_peer = a.net.peer_id();
	a.net.shutdown();
	drop(a);
	b.net.write(SEG, 2, (20..30).map(put).collect()).unwrap();
	let b_head = b.store().head(SEG).unwrap();
	assert_eq!(b_head.seq, 30);
	let history = two_owners(a_peer, b.net.peer_id(), 21);

	// C was offline across the migration: it snapshots the committed seq 5 and replays A's ops
	// 6..20 (checkpoints signed by A, who is no Primary any more) and B's 21..30, from H and B.
	let c = node(fast()).await;
	let (_tx2, rx2) = watch::channel(vec![b.holder(true), h.holder(false)]);
	let fc = c.net.follow(SEG, rx2, chain.anchors(), history.clone());
	reach(&fc, b_head).await;
	assert!(!c.net.is_banned(&h.net.peer_id()) && !c.net.is_banned(&b.net.peer_id()));
	let logged = c.store().ops(SEG, committed.seq + 1, 100).unwrap();
	assert_eq!(logged.len(), 25, "A's ops 6..20 and B's 21..30 replayed, not snapshotted");
	assert!(logged.iter().all(|o| o.op.epoch == if o.op.seq <= 20 { 1 } else { 2 }));

	// A verifier that knows only the current owner (the defect) refuses A's checkpoints.
	let d = node(fast()).await;
	let (_tx3, rx3) = watch::channel(vec![h.holder(false)]);
	d.net.sync_segment(SEG, committed, rx3).await.unwrap();
	let only_b = owner(b.net.peer_id());
	let err = d.net.catch_up(SEG, 20, h.net.peer_id(), &*only_b, None).await.unwrap_err();
	assert!(err.is_invalid(), "{err}");
	// The chain's history accepts them from the same holder.
	assert_eq!(d.net.catch_up(SEG, 20, h.net.peer_id(), &*history, None).await.unwrap(), a_head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn former_owner_writing_on_does_not_wedge_followers() {
	// A owned SEG (epoch 1); its epoch was sealed at seq 5 and B owns epoch 2 from 6. A, not
	// yet aware (a timed-out seal), writes on in epoch 1, and F, whose chain view does not show
	// epoch 2 yet either, follows it past the seal. Then F's view catches up; B writes its own
	// ops 6.. and the chain commits B's root: F's ops no longer continue B's history (Forked,
	// nobody banned), so F re-syncs to B's committed root and follows B.
	let a = node(fast()).await;
	let b = node(fast()).await;
	let f = node(fast()).await;
	let seen = Arc::new(AtomicBool::new(false));
	let history = two_owners(a.net.peer_id(), b.net.peer_id(), 6);
	let f_view = two_owners_seen(a.net.peer_id(), b.net.peer_id(), 6, seen.clone());
	a.net.write(SEG, 1, (0..5).map(put).collect()).unwrap();
	let chain = Chain::new();
	let sealed = chain.commit(a.store());
	let (_tb, rb) = watch::channel(vec![a.holder(true)]);
	let fb = b.net.follow(SEG, rb, chain.anchors(), history.clone());
	reach(&fb, a.store().head(SEG).unwrap()).await;
	drop(fb);
	// A writes on (epoch 1, seqs 6..15); F follows A and B.
	a.net.write(SEG, 1, (5..15).map(put).collect()).unwrap();
	let (tf, rf) = watch::channel(vec![a.holder(false), b.holder(true)]);
	let ff = f.net.follow(SEG, rf, chain.anchors(), f_view);
	reach(&ff, a.store().head(SEG).unwrap()).await;
	seen.store(true, Ordering::SeqCst);
	// G's view shows the seal from the start: it never takes A's ops past it.
	let g = node(fast()).await;
	let (_tg, rg) = watch::channel(vec![a.holder(false), b.holder(true)]);
	let fg = g.net.follow(SEG, rg, chain.anchors(), history.clone());
	reach(&fg, sealed).await;
	tokio::time::sleep(Duration::from_millis(500)).await;
	assert_eq!(g.store().head(SEG).map(|h| h.seq), Some(5), "A's ops past its seal are not taken");
	// B, the owner, writes its own 6..20 and commits 20.
	b.net.write(SEG, 2, (100..115).map(put).collect()).unwrap();
	let committed = chain.commit(b.store());
	assert_eq!(committed.seq, 20);
	let got = tokio::time::timeout(Duration::from_secs(30), ff.reached(committed.seq))
		.await
		.expect("F re-syncs to B's committed root");
	assert!(got.seq >= committed.seq);
	b.net.write(SEG, 2, (115..120).map(put).collect()).unwrap();
	let b_head = b.store().head(SEG).unwrap();
	reach(&ff, b_head).await;
	reach(&fg, b_head).await;
	for n in [&f, &g] {
		assert!(!n.net.is_banned(&a.net.peer_id()) && !n.net.is_banned(&b.net.peer_id()));
	}
	// A's word no longer sets F's goal: an announcement past its seal is ignored, and so is
	// one of its epoch from before the seal (a former owner's).
	let mut next = a.store().ops(SEG, 15, 1).unwrap().remove(0);
	next.op.seq = 40;
	a.net.announce(&sign_announcement(&next, &a.cfg.keypair, &a.cfg.genesis));
	let ended = || f.net.metrics().gossip.with_label_values(&["past_epoch_end"]).get();
	for _ in 0..100 {
		if ended() > 0 {
			break;
		}
		tokio::time::sleep(Duration::from_millis(50)).await;
	}
	assert!(ended() > 0, "A's announcement past its seal is ignored");
	drop(tf);
}
