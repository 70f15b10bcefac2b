//! Stall-proof scheduling (issue #14, item 5): no peer input stalls a sync, holds it past a
//! deadline, or makes an honest peer look guilty. Real stores, real libp2p on loopback; the
//! misbehaving holders are bare libp2p nodes speaking the protocol (the `rogue` module below).
mod common;
use common::*;
use std::{
	sync::{atomic::Ordering, Arc},
	time::{Duration, Instant},
};
use sync_net::{
	deltas::{single_owner, OpVerifier},
	fixtures::blob,
	Holder, Keypair, NetConfig, PeerId, ServeLimits,
};
use sync_store::{Head, SegmentWrite};
use tokio::sync::watch;

/// A Primary holding a segment of many objects (1 500 small ones and one of 3 MiB, so there are
/// outboards, groups and two index pages), committed on the test chain, serving within `limits`.
async fn primary_with_many_objects(chain: &Chain, limits: ServeLimits) -> (Node, Head) {
	let p = Node::start_in(Arc::new(tempfile::tempdir().unwrap()), limits).await;
	let mut writes: Vec<SegmentWrite> = (0..1500u64)
		.map(|i| SegmentWrite::Put {
			key: format!("obj-{i:05}").into_bytes(),
			data: blob(i, 200 + (i as usize % 13) * 800),
		})
		.collect();
	writes.push(SegmentWrite::Put { key: b"large".to_vec(), data: blob(u64::MAX, 3 << 20) });
	p.store().apply(SEG, writes).unwrap();
	let committed = chain.commit(p.store());
	(p, committed)
}

fn verifier_for(primary: PeerId) -> Arc<dyn OpVerifier + Send + Sync> {
	Arc::new(single_owner([0; 32], primary))
}

/// The index of the segment at `head` on `p`, as a rogue serves it.
fn wire_listing(p: &Node, head: Head) -> Arc<Vec<sync_proto::WireEntry>> {
	let listing = p.store().listing(SEG, &head.facts.root).unwrap();
	Arc::new(listing.iter().cloned().map(sync_store::wire::entry_to_wire).collect())
}

async fn node(cfg: NetConfig) -> Node {
	Node::start_with(Arc::new(tempfile::tempdir().unwrap()), cfg).await
}

/// Whether `peer` is neither banned nor resting in `n`'s peer book.
fn in_good_standing(n: &Node, peer: &PeerId) -> bool {
	let record = n.net.peer_book().record(peer).cloned().unwrap_or_default();
	!n.net.is_banned(peer) && !record.banned && record.cooldown_until.is_none()
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
	let started = Instant::now();
	while !done() {
		assert!(started.elapsed() < within, "{what}: not within {within:?}");
		tokio::time::sleep(Duration::from_millis(20)).await;
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_complete_holder_does_not_stall() {
	let chain = Chain::new();
	// A slow Primary (≈ 3 s for the segment), so the liar is connected and asked before the
	// Primary could have served everything anyway.
	let (p, committed) = primary_with_many_objects(&chain, limit(4 * MIB)).await;
	// L advertises the committed root, complete, and answers every data request (index,
	// outboards, groups) as not held / missing. Listed first, so it is asked first.
	let (liar, seen) = rogue::start(committed, rogue::Mode::LyingComplete).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.head_poll = Duration::from_millis(300);
	// Far beyond the bound below: only the demotion can let the Primary in that fast.
	cfg.primary_fallback_after = Duration::from_secs(120);
	let f = node(cfg).await;
	let (_tx, rx) = watch::channel(vec![liar.clone(), p.holder(true)]);
	let started = Instant::now();
	let follower = f.net.follow(SEG, rx, chain.anchors(), verifier_for(p.net.peer_id()));
	let got = tokio::time::timeout(Duration::from_secs(30), follower.reached(committed.seq))
		.await
		.expect("the lying holder stalled the sync");
	println!(
		"reached the committed root in {:?}; the liar was asked {} data requests",
		started.elapsed(),
		seen.data.load(Ordering::SeqCst)
	);
	assert_eq!(got, committed);
	assert_holds(f.store(), committed);
	assert!(seen.data.load(Ordering::SeqCst) >= 1, "the liar was asked (it was listed first)");
	assert!(f.net.metrics().demoted.get() >= 1, "the liar was demoted");
	// Demoted, not punished: saying "not held" is no misbehaviour.
	assert!(!f.net.is_banned(&liar.peer));
	assert_eq!(f.net.metrics().bans.get(), 0);
	// The honest Primary took over and looks no worse for it.
	assert!(in_good_standing(&f, &p.net.peer_id()), "the Primary is not cooled down or banned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_counter_without_serving_does_not_stall() {
	let chain = Chain::new();
	let (p, committed) = primary_with_many_objects(&chain, ServeLimits::default()).await;
	// R claims to be syncing to the target with a verified index and a counter that grows on
	// every poll, and serves nothing: its share would wait for it forever.
	let (counter, seen) = rogue::start(committed, rogue::Mode::GrowingCounter).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.primary_fallback_after = Duration::from_secs(2);
	let f = node(cfg).await;
	let (_tx, rx) = watch::channel(vec![counter.clone(), p.holder(true)]);
	let started = Instant::now();
	let report =
		tokio::time::timeout(Duration::from_secs(30), f.net.sync_segment(SEG, committed, rx))
			.await
			.expect("a growing counter held the sync")
			.unwrap();
	println!(
		"synced in {:?}; the counter was polled {} times",
		started.elapsed(),
		seen.heads.load(Ordering::SeqCst)
	);
	assert_holds(f.store(), committed);
	assert!(seen.heads.load(Ordering::SeqCst) > 1, "its counter was read (and grew)");
	assert_eq!(report.by_peer.get(&counter.peer).copied().unwrap_or(0), 0);
	assert!(
		report.banned.is_empty() && report.demoted.is_empty(),
		"a co-downloader's 'missing' is no lie"
	);
	assert!(in_good_standing(&f, &p.net.peer_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_holder_does_not_hold_the_head_poll() {
	let chain = Chain::new();
	let (p, committed) = primary_with_many_objects(&chain, ServeLimits::default()).await;
	// S accepts streams and never answers; listed first.
	let (silent, _) = rogue::start(committed, rogue::Mode::Silent).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.head_poll = Duration::from_millis(300);
	cfg.head_timeout = Duration::from_secs(1);
	// Without the head poll's own deadline, the first poll alone would wait this long.
	cfg.request_timeout = Duration::from_secs(30);
	let f = node(cfg).await;
	let (_tx, rx) = watch::channel(vec![silent.clone(), p.holder(true)]);
	let started = Instant::now();
	let follower = f.net.follow(SEG, rx, chain.anchors(), verifier_for(p.net.peer_id()));
	let got = tokio::time::timeout(Duration::from_secs(20), follower.reached(committed.seq))
		.await
		.expect("the silent holder held the follower");
	let took = started.elapsed();
	assert_eq!(got, committed);
	assert_holds(f.store(), committed);
	assert!(took < Duration::from_secs(15), "took {took:?}: a poll waited for the silent holder");
	// The timeout is the silent holder's failure, and only its.
	let failures = |peer: &PeerId| f.net.peer_book().record(peer).map_or(0, |r| r.failures);
	wait_until("the silent holder's poll failed", Duration::from_secs(5), || {
		failures(&silent.peer) >= 1
	})
	.await;
	assert!(in_good_standing(&f, &p.net.peer_id()), "the Primary is not blamed for it");
	assert!(failures(&p.net.peer_id()) < failures(&silent.peer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_resumes_at_the_page_where_a_stalled_source_stopped() {
	use sync_proto::MAX_INDEX_PAGE;
	// 3 000 entries: three index pages.
	let p = Node::start().await;
	let small = |i: u64| SegmentWrite::Put {
		key: format!("e{i:05}").into_bytes(),
		data: blob(i, 100 + (i as usize % 7) * 50),
	};
	let head = p.store().apply(SEG, (0..3000).map(small).collect()).unwrap();
	let entries = wire_listing(&p, head);
	let page = MAX_INDEX_PAGE as u64;
	// A serves the first two pages honestly and never answers the third; B serves every page.
	// Neither has any object.
	let (a, seen_a) = rogue::start(
		head,
		rogue::Mode::Index { entries: entries.clone(), stall_from: Some(2 * page) },
	)
	.await;
	let (b, seen_b) =
		rogue::start(head, rogue::Mode::Index { entries: entries.clone(), stall_from: None }).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.request_timeout = Duration::from_secs(2);
	cfg.index_page_time = Duration::from_millis(100);
	let f = node(cfg).await;
	let (tx, rx) = watch::channel(vec![a.clone()]);
	let sync = tokio::spawn({
		let net = f.net.clone();
		async move { net.sync_segment(SEG, head, rx).await }
	});
	wait_until("A stalled on the third page", Duration::from_secs(20), || {
		seen_a.index_starts.lock().unwrap().contains(&(2 * page))
	})
	.await;
	tx.send_replace(vec![a.clone(), b.clone()]);
	wait_until("B was asked for the index", Duration::from_secs(30), || {
		!seen_b.index_starts.lock().unwrap().is_empty()
	})
	.await;
	// The objects come from the Primary once the two object-less holders are demoted.
	tx.send_replace(vec![a.clone(), b.clone(), p.holder(true)]);
	let report = tokio::time::timeout(Duration::from_secs(60), sync)
		.await
		.expect("the sync finishes")
		.unwrap()
		.unwrap();
	assert_holds(f.store(), head);
	let starts_a = seen_a.index_starts.lock().unwrap().clone();
	let starts_b = seen_b.index_starts.lock().unwrap().clone();
	println!("index pages asked of A at {starts_a:?}, of B at {starts_b:?}");
	assert_eq!(&starts_a[..3], &[0, page, 2 * page], "A served two pages, then stalled");
	assert!(
		starts_b.iter().all(|s| *s >= 2 * page),
		"B continued where A stopped, not from the start: {starts_b:?}"
	);
	assert!(report.banned.is_empty(), "pages that verify blame nobody");
}

/// The defect: a lane that found its source misbehaving stopped only itself; the penalty (the
/// ban, which disconnects the peer) waited until the other lane's request in flight had ended,
/// up to a whole request timeout later, while the peer kept both its streams. The verdict is
/// given at once, and the held request ends with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_lane_is_judged_before_the_other_lanes_request_ends() {
	// With bans the disconnect would end the held request by itself; without them only the
	// verdict's abort does.
	for ban in [true, false] {
		judged_at_once(ban).await;
	}
}

async fn judged_at_once(ban: bool) {
	let chain = Chain::new();
	let (p, head) = primary_with_many_objects(&chain, ServeLimits::default()).await;
	let entries = wire_listing(&p, head);
	let (r, seen) = rogue::start(head, rogue::Mode::HoldThenBreak { entries }).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	// Far longer than the verdict may take: the held request would end only at this timeout.
	cfg.request_timeout = Duration::from_secs(60);
	cfg.peers.ban_on_invalid = ban;
	let f = node(cfg).await;
	// The rogue (a complete Replica) is asked ahead of the Primary.
	let (_tx, rx) = watch::channel(vec![r.clone(), p.holder(true)]);
	let sync = tokio::spawn({
		let net = f.net.clone();
		async move { net.sync_segment(SEG, head, rx).await }
	});
	wait_until("both lanes asked the rogue for objects", Duration::from_secs(20), || {
		seen.objects.load(Ordering::SeqCst) >= 2
	})
	.await;
	let broke = Instant::now();
	let misbehaved = || f.net.metrics().failures.with_label_values(&["misbehaved"]).get();
	wait_until("the rogue is judged", Duration::from_secs(60), || misbehaved() >= 1).await;
	assert!(
		broke.elapsed() < Duration::from_secs(10),
		"ban {ban}: judged {:?} after its violation: it waited for the held request",
		broke.elapsed()
	);
	assert_eq!(f.net.is_banned(&r.peer), ban);
	let report = sync.await.unwrap().unwrap();
	// The held request ended with the verdict: its unit was fetched elsewhere at once.
	assert!(
		broke.elapsed() < Duration::from_secs(30),
		"ban {ban}: synced {:?} after the violation: the other lane's request ran to its deadline",
		broke.elapsed()
	);
	if ban {
		assert_eq!(report.banned, vec![r.peer], "judged once");
	}
	assert_holds(f.store(), head);
}

/// The defect: a source's first lane kept its stream for as long as the sync ran, even while
/// the scheduler had nothing for it (a Primary held back while a Replica serves; every source
/// at the tail of a sync), holding a stream of the peer's budget and one of the peer's answer
/// slots. An idle lane gives its stream back and opens one for its next unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_lane_gives_its_stream_back() {
	let chain = Chain::new();
	let (p, head) = primary_with_many_objects(&chain, ServeLimits::default()).await;
	// A complete Replica serving at 1 MiB/s: the sync takes seconds, and the Primary (held
	// back while the Replica delivers) has nothing to do meanwhile.
	let c = Node::start_in(Arc::new(tempfile::tempdir().unwrap()), limit(MIB)).await;
	let (_t, rx) = watch::channel(vec![p.holder(true)]);
	c.net.sync_segment(SEG, head, rx).await.unwrap();
	let f = node(NetConfig::new(Keypair::generate_ed25519())).await;
	let (_tx, rx) = watch::channel(vec![c.holder(false), p.holder(true)]);
	let sync = tokio::spawn({
		let net = f.net.clone();
		async move { net.sync_segment(SEG, head, rx).await }
	});
	let inbound = |n: &Node| n.net.metrics().streams.with_label_values(&["inbound"]).get();
	wait_until("the Primary's worker connected", Duration::from_secs(20), || inbound(&p) > 0).await;
	wait_until("the idle Primary's stream is given back", Duration::from_secs(20), || {
		inbound(&p) == 0
	})
	.await;
	assert!(!sync.is_finished(), "given back while the sync still ran");
	let report = sync.await.unwrap().unwrap();
	assert!(report.banned.is_empty());
	assert_holds(f.store(), head);
}

/// Bare libp2p nodes speaking the transfer protocol to stall a sync (the pattern of
/// `tests/snapshot.rs`'s rogue, with the behaviours of this file).
mod rogue {
	use super::*;
	use codec::{Decode, Encode};
	use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
	use libp2p::Stream;
	use std::sync::{atomic::AtomicU64, Mutex};
	use sync_proto::{
		Envelope, ErrorCode, Request, Response, WireEntry, WireHead, MAX_REQUEST_BYTES, TAG_MISSING,
	};

	#[derive(Clone)]
	pub enum Mode {
		/// Advertises the complete target; answers `NotHeld` to index and outboard requests and
		/// a missing frame for every group.
		LyingComplete,
		/// Advertises a transfer to the target with a verified index and a `received` counter
		/// that grows on every `Head`; serves nothing (as `LyingComplete`).
		GrowingCounter,
		/// Reads the first request of every stream and never answers.
		Silent,
		/// Advertises the complete target and serves its index (`entries`) honestly, except that
		/// a page starting at `stall_from` or later is never answered; objects as
		/// `LyingComplete`.
		Index { entries: Arc<Vec<WireEntry>>, stall_from: Option<u64> },
		/// Advertises the complete target and serves its index (`entries`) honestly; holds the
		/// first object request (`Outboard`, `Groups`) it gets without answering, and answers
		/// every later one with a `Head` (a protocol violation).
		HoldThenBreak { entries: Arc<Vec<WireEntry>> },
	}

	/// What the rogue was asked.
	#[derive(Default)]
	pub struct Seen {
		/// `Head` requests.
		pub heads: AtomicU64,
		/// Data requests (`Index`, `Outboard`, `Groups`).
		pub data: AtomicU64,
		/// The `start` of every `Index` request, in arrival order.
		pub index_starts: Mutex<Vec<u64>>,
		/// Object requests (`Outboard`, `Groups`) a `HoldThenBreak` rogue got.
		pub objects: AtomicU64,
	}

	pub async fn start(head: Head, mode: Mode) -> (Holder, Arc<Seen>) {
		let seen = Arc::new(Seen::default());
		let (peer, addr, mut incoming) = bare_transfer_node().await;
		let counts = seen.clone();
		tokio::spawn(async move {
			while let Some((_, stream)) = incoming.next().await {
				tokio::spawn(serve(stream, head, mode.clone(), counts.clone()));
			}
		});
		(Holder { peer, addrs: vec![addr], primary: false }, seen)
	}

	fn frame(payload: &[u8]) -> Vec<u8> {
		let mut out = (payload.len() as u32).to_le_bytes().to_vec();
		out.extend_from_slice(payload);
		out
	}

	/// Holds the stream without answering until the client drops it.
	async fn hold(s: &mut Stream) {
		let mut sink = [0u8; 64];
		while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
	}

	async fn serve(mut s: Stream, head: Head, mode: Mode, seen: Arc<Seen>) {
		loop {
			let mut len = [0u8; 4];
			if s.read_exact(&mut len).await.is_err() {
				return;
			}
			let n = u32::from_le_bytes(len) as usize;
			if n > MAX_REQUEST_BYTES {
				return;
			}
			let mut buf = vec![0u8; n];
			if s.read_exact(&mut buf).await.is_err() {
				return;
			}
			let Ok(env) = Envelope::decode(&mut &buf[..]) else { return };
			if matches!(mode, Mode::Silent) {
				hold(&mut s).await;
				return;
			}
			let at = WireHead::from(head);
			let reply = match env.request {
				Request::Head { .. } => {
					let heads = seen.heads.fetch_add(1, Ordering::SeqCst) + 1;
					match mode {
						Mode::GrowingCounter => Response::Head {
							complete: None,
							syncing: Some(at),
							received: heads,
							pinned: vec![],
						},
						_ => Response::Head {
							complete: Some(at),
							syncing: None,
							received: 0,
							pinned: vec![],
						},
					}
				},
				Request::Index { start, count, .. } => {
					seen.data.fetch_add(1, Ordering::SeqCst);
					seen.index_starts.lock().unwrap().push(start);
					let entries = match &mode {
						Mode::Index { stall_from: Some(k), .. } if start >= *k => {
							hold(&mut s).await;
							return;
						},
						Mode::Index { entries, .. } | Mode::HoldThenBreak { entries } => {
							Some(entries)
						},
						_ => None,
					};
					match entries {
						Some(entries) => {
							let from = (start as usize).min(entries.len());
							let to =
								(start as usize).saturating_add(count as usize).min(entries.len());
							Response::Index {
								entries: entries[from..to].to_vec(),
								total: entries.len() as u64,
							}
						},
						None => Response::Error(ErrorCode::NotHeld),
					}
				},
				Request::Outboard { .. } | Request::Groups { .. }
					if matches!(mode, Mode::HoldThenBreak { .. }) =>
				{
					seen.data.fetch_add(1, Ordering::SeqCst);
					if seen.objects.fetch_add(1, Ordering::SeqCst) == 0 {
						hold(&mut s).await;
						return;
					}
					Response::Head { complete: None, syncing: None, received: 0, pinned: vec![] }
				},
				Request::Outboard { .. } => {
					seen.data.fetch_add(1, Ordering::SeqCst);
					Response::Error(ErrorCode::NotHeld)
				},
				Request::Groups { ranges } => {
					seen.data.fetch_add(1, Ordering::SeqCst);
					let groups: u64 = ranges.iter().map(|r| r.count as u64).sum();
					let mut out = frame(&Response::Groups.encode());
					for _ in 0..groups {
						out.extend(frame(&[TAG_MISSING]));
					}
					if s.write_all(&out).await.is_err() || s.flush().await.is_err() {
						return;
					}
					continue;
				},
				Request::Ops { .. } => Response::Ops { ops: vec![] },
			};
			if s.write_all(&frame(&reply.encode())).await.is_err() || s.flush().await.is_err() {
				return;
			}
		}
	}
}
