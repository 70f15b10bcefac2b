//! In-process multi-node tests of snapshot sync: real stores on disk, real libp2p on loopback.
mod common;
use common::*;
use std::{sync::Arc, time::Duration};
use sync_net::{Holder, Keypair, Multiaddr, NetConfig, PeerId, ServeLimits, SyncNetwork};
use sync_store::{Head, Store};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_primary_five_replicas_converge_and_share_the_load() {
	let (p, head) = primary(24 * MIB, 8 * MIB, limit(40 * MIB)).await;
	let mut replicas = Vec::new();
	for _ in 0..5 {
		replicas
			.push(Node::start_in(Arc::new(tempfile::tempdir().unwrap()), limit(40 * MIB)).await);
	}
	let mut holders = vec![p.holder(true)];
	holders.extend(replicas.iter().map(|r| r.holder(false)));
	let (_tx, rx) = watch::channel(holders);
	let syncs: Vec<_> = replicas
		.iter()
		.map(|r| {
			let (net, rx) = (r.net.clone(), rx.clone());
			tokio::spawn(async move { net.sync_segment(SEG, head, rx).await })
		})
		.collect();
	let mut from_replicas = 0;
	for s in syncs {
		let report = s.await.unwrap().unwrap();
		assert_eq!(report.head, Some(head));
		assert!(report.banned.is_empty());
		from_replicas += report
			.by_peer
			.iter()
			.filter(|(peer, _)| **peer != p.net.peer_id())
			.map(|(_, b)| b)
			.sum::<u64>();
	}
	for r in &replicas {
		assert_holds(r.store(), head);
	}
	let data = head.facts.bytes;
	let copies = p.net.served() as f64 / data as f64;
	println!(
		"primary served {copies:.2} copies to 5 replicas; replicas served each other {} MiB",
		from_replicas / MIB
	);
	assert!(copies < 2.0, "the Primary served {copies:.2} copies; replicas must serve each other");
	assert!(
		from_replicas as f64 > 2.0 * data as f64,
		"replicas served each other only {from_replicas} bytes"
	);
}

/// Flips one byte in every large object file of a store (disk rot on a serving node).
fn corrupt_large_objects(dir: &std::path::Path) -> usize {
	let mut n = 0;
	for sub in std::fs::read_dir(dir.join("objects")).unwrap() {
		for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
			let path = f.unwrap().path();
			if path.extension().is_none() {
				let mut bytes = std::fs::read(&path).unwrap();
				for i in (0..bytes.len()).step_by(16 * 1024) {
					bytes[i] ^= 0x5a;
				}
				std::fs::write(&path, bytes).unwrap();
				n += 1;
			}
		}
	}
	n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_banned_and_nothing_corrupt_is_stored() {
	let (p, head) = primary(6 * MIB, 4 * MIB, ServeLimits::default()).await;
	// A complete Replica whose disk rotted: it serves bad bytes for every large object.
	let c = Node::start().await;
	let (tx, rx) = watch::channel(vec![p.holder(true)]);
	c.net.sync_segment(SEG, head, rx).await.unwrap();
	assert!(corrupt_large_objects(c.dir.path()) > 0);
	drop(tx);

	let registry = prometheus::Registry::new();
	let d = {
		let dir = Arc::new(tempfile::tempdir().unwrap());
		let mut cfg = NetConfig::new(Keypair::generate_ed25519());
		cfg.registry = Some(registry.clone());
		Node::start_with(dir, cfg).await
	};
	// The complete Replica is preferred over the Primary, so it is asked first.
	let (_tx, rx) = watch::channel(vec![p.holder(true), c.holder(false)]);
	let report = d.net.sync_segment(SEG, head, rx).await.unwrap();
	// The node's registry exports what happened.
	let exported: std::collections::HashMap<String, f64> = registry
		.gather()
		.iter()
		.flat_map(|f| {
			f.get_metric().iter().map(move |m| {
				let labels: Vec<String> =
					m.get_label().iter().map(|l| l.get_value().to_string()).collect();
				let v = if f.get_field_type() == prometheus::proto::MetricType::COUNTER {
					m.get_counter().get_value()
				} else {
					m.get_gauge().get_value()
				};
				(format!("{}{:?}", f.get_name(), labels), v)
			})
		})
		.collect();
	assert_eq!(exported["sync_net_bans_total[]"], 1.0);
	assert_eq!(exported["sync_net_peer_failures_total[\"misbehaved\"]"], 1.0);
	assert_eq!(exported["sync_net_bytes_received_total[]"], report.fetched_bytes as f64);
	assert_eq!(exported["sync_net_segment_stage[\"1\"]"], 0.0, "idle after the sync");
	assert_eq!(exported["sync_net_segment_verified_bytes[\"1\"]"], head.facts.bytes as f64);
	// (labels in name order: outcome, side)
	assert!(exported["sync_net_requests_total[\"ok\", \"client\"]"] > 0.0);
	assert_eq!(exported["sync_net_streams[\"outbound\"]"], 0.0, "every stream closed");
	assert_eq!(report.banned, vec![c.net.peer_id()]);
	// Each of the source's lanes may have one corrupt group in flight when the first is found.
	let lanes = sync_net::snapshot::LANES as u64;
	assert!(
		(1..=lanes).contains(&report.rejected_groups),
		"detected within one chunk group per lane: {}",
		report.rejected_groups
	);
	assert!(d.net.is_banned(&c.net.peer_id()));
	assert_holds(d.store(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_transfer_resumes_without_refetching_verified_data() {
	let (p, head) = primary(16 * MIB, 12 * MIB, limit(24 * MIB)).await;
	let dir = Arc::new(tempfile::tempdir().unwrap());
	let total = head.facts.bytes;
	let first = {
		let r = Node::start_in(dir.clone(), ServeLimits::default()).await;
		let (_tx, rx) = watch::channel(vec![p.holder(true)]);
		let net = r.net.clone();
		let task = tokio::spawn(async move { net.sync_segment(SEG, head, rx).await });
		let started = std::time::Instant::now();
		while r.net.received() < total / 2 {
			assert!(started.elapsed() < Duration::from_secs(60), "sync made no progress");
			tokio::time::sleep(Duration::from_millis(10)).await;
		}
		task.abort();
		let _ = task.await;
		r.net.shutdown();
		r.net.received()
	};
	// Let the aborted tasks drop their store handles, then reopen the same directory.
	tokio::time::sleep(Duration::from_millis(300)).await;
	let r = Node::start_in(dir.clone(), ServeLimits::default()).await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let report = r.net.sync_segment(SEG, head, rx).await.unwrap();
	assert_holds(r.store(), head);
	println!(
		"first run verified {} KiB; resume found {} KiB, fetched {} KiB of {} KiB",
		first / 1024,
		report.resumed_bytes / 1024,
		report.fetched_bytes / 1024,
		total / 1024
	);
	assert!(first >= total / 2 && first < total);
	// Everything verified before the stop is kept; only the rest (plus the one unit that was in
	// flight, ≤ 1 MiB) is fetched again.
	assert!(report.resumed_bytes + MIB >= first, "resume kept {} of {first}", report.resumed_bytes);
	assert!(report.fetched_bytes <= total - first + MIB, "fetched {} again", report.fetched_bytes);
	assert_eq!(report.resumed_bytes + report.fetched_bytes, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_holders_leave_and_join_mid_sync() {
	let (p, head) = primary(12 * MIB, 4 * MIB, ServeLimits::default()).await;
	let mut complete = Vec::new();
	for _ in 0..3 {
		let r = Node::start_in(Arc::new(tempfile::tempdir().unwrap()), limit(8 * MIB)).await;
		let (_tx, rx) = watch::channel(vec![p.holder(true)]);
		r.net.sync_segment(SEG, head, rx).await.unwrap();
		complete.push(r);
	}
	p.net.shutdown();
	let (r1, r2, r3) = (&complete[0], &complete[1], &complete[2]);
	let d = Node::start().await;
	let (tx, rx) = watch::channel(vec![r1.holder(false), r2.holder(false)]);
	let net = d.net.clone();
	let task = tokio::spawn(async move { net.sync_segment(SEG, head, rx).await });
	let received = || d.net.received();
	let started = std::time::Instant::now();
	while received() < head.facts.bytes / 4 {
		assert!(started.elapsed() < Duration::from_secs(60), "sync made no progress");
		tokio::time::sleep(Duration::from_millis(5)).await;
	}
	// r1 leaves, r3 joins.
	r1.net.shutdown();
	tx.send(vec![r2.holder(false), r3.holder(false)]).unwrap();
	while received() < head.facts.bytes * 6 / 10 {
		assert!(started.elapsed() < Duration::from_secs(60), "sync made no progress");
		tokio::time::sleep(Duration::from_millis(5)).await;
	}
	// r2 leaves: r3 alone finishes.
	r2.net.shutdown();
	tx.send(vec![r3.holder(false)]).unwrap();
	let report = task.await.unwrap().unwrap();
	assert_holds(d.store(), head);
	let from = |r: &Node| report.by_peer.get(&r.net.peer_id()).copied().unwrap_or(0);
	println!("r1 {} r2 {} r3 {} bytes", from(r1), from(r2), from(r3));
	// r3 is the only holder after r2 left at 60 %: it served at least the rest.
	assert!(from(r3) >= head.facts.bytes * 3 / 10, "r3 finished the sync");
	assert!(from(r1) + from(r2) >= head.facts.bytes / 4);
	assert_eq!(report.fetched_bytes, head.facts.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_the_server_keeps_serving() {
	use codec::Encode;
	use sync_net::transfer::client::Session;
	use sync_proto::{Envelope, ErrorCode, GroupRange, Request, Response, MAX_REQUEST_BYTES};
	let (p, head) = primary(2 * MIB, 0, ServeLimits::default()).await;
	let c = Node::start().await;
	c.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();

	let req = |version: u8, request: Request| Envelope { version, request }.encode();
	// Unknown version: refused, stream closed.
	let mut s = Session::open(&c.net, p.net.peer_id()).await.unwrap();
	let r = s.raw_request(&req(9, Request::Head { segment: SEG })).await.unwrap();
	assert_eq!(r, Response::Error(ErrorCode::UnsupportedVersion));
	// Garbage: refused.
	let mut s = Session::open(&c.net, p.net.peer_id()).await.unwrap();
	assert_eq!(
		s.raw_request(&[1, 0xff, 0xee]).await.unwrap(),
		Response::Error(ErrorCode::Malformed)
	);
	// Truncated (valid prefix of a request): refused.
	let mut s = Session::open(&c.net, p.net.peer_id()).await.unwrap();
	let full = req(1, Request::Index { segment: SEG, root: head.facts.root, start: 0, count: 10 });
	assert_eq!(
		s.raw_request(&full[..full.len() - 3]).await.unwrap(),
		Response::Error(ErrorCode::Malformed)
	);
	// Oversized frame: refused before it is read.
	let mut s = Session::open(&c.net, p.net.peer_id()).await.unwrap();
	let big = vec![1u8; MAX_REQUEST_BYTES + 1];
	assert_eq!(s.raw_request(&big).await.unwrap(), Response::Error(ErrorCode::TooLarge));
	// Over the limits: refused, but the stream stays usable.
	let mut s = Session::open(&c.net, p.net.peer_id()).await.unwrap();
	let too_many = Request::Groups {
		ranges: vec![GroupRange { cid: [0; 32], size: 1 << 30, first: 0, count: 65 }],
	};
	assert_eq!(
		s.raw_request(&req(1, too_many)).await.unwrap(),
		Response::Error(ErrorCode::TooLarge)
	);
	let too_long = Request::Index { segment: SEG, root: head.facts.root, start: 0, count: 5000 };
	assert_eq!(
		s.raw_request(&req(1, too_long)).await.unwrap(),
		Response::Error(ErrorCode::TooLarge)
	);
	let h = s.head(SEG).await.unwrap();
	assert_eq!(h.complete.map(|h| Head::from(h).facts), Some(head.facts));
	// Unknown segment / wrong root: NotHeld.
	let r = s
		.raw_request(&req(1, Request::Index { segment: 99, root: [1; 32], start: 0, count: 1 }))
		.await
		.unwrap();
	assert_eq!(r, Response::Error(ErrorCode::NotHeld));
	assert!(p.net.metrics().requests.with_label_values(&["server", "refused"]).get() >= 6);

	// The server still serves a normal sync.
	let d = Node::start().await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	d.net.sync_segment(SEG, head, rx).await.unwrap();
	assert_holds(d.store(), head);
}

mod rogue {
	//! A bare libp2p node speaking the transfer protocol badly, to test the client side.
	use super::*;
	use codec::{Decode, Encode};
	use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
	use std::sync::atomic::{AtomicU64, Ordering};
	use sync_proto::{
		Envelope, ErrorCode, Op, OpKind, Request, Response, SignedOp, WireEntry, WireHead,
	};
	use sync_store::wire::facts_to_wire;

	#[derive(Clone, Copy)]
	pub enum Mode {
		/// Announces a 100 MiB response header.
		Oversized,
		/// Sends a group frame of the wrong length.
		WrongLength,
		/// Sends half a frame and closes.
		Truncated,
		/// Serves the index of `head` one entry per page, a page a second: each page beats the
		/// per-page timeout, the whole index never comes.
		DripIndex,
		/// Advertises states the chain did not commit: a far higher head and pin with a fake
		/// entry count, and other facts at `head`'s (committed) seq. Refuses everything else.
		FakePins,
		/// Advertises a head 1 000 seqs ahead and answers `Ops` with one op putting an object of
		/// `u64::MAX` bytes (junk signature); answers an outboard request with that length.
		HugeOp,
		/// Advertises `head` and answers `Ops` with [`FORGED`]: the owner's ops with another
		/// path of unsigned ops to the genuine checkpoint.
		ForgedPath,
	}

	/// The ops a [`Mode::ForgedPath`] rogue serves (set once per test process).
	pub static FORGED: std::sync::OnceLock<Vec<SignedOp>> = std::sync::OnceLock::new();

	pub async fn start(head: Head, mode: Mode) -> Holder {
		start_counting(head, mode).await.0
	}

	/// Also returns how many data requests (`Index`, `Outboard`, `Groups`) it received.
	pub async fn start_counting(head: Head, mode: Mode) -> (Holder, Arc<AtomicU64>) {
		let asked = Arc::new(AtomicU64::new(0));
		let counter = asked.clone();
		let (peer, addr, mut incoming) = bare_transfer_node().await;
		tokio::spawn(async move {
			while let Some((_, mut s)) = incoming.next().await {
				let asked = counter.clone();
				tokio::spawn(async move {
					loop {
						let mut len = [0u8; 4];
						if s.read_exact(&mut len).await.is_err() {
							return;
						}
						let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
						s.read_exact(&mut buf).await.unwrap();
						let env = Envelope::decode(&mut &buf[..]).unwrap();
						if matches!(
							env.request,
							Request::Index { .. }
								| Request::Outboard { .. }
								| Request::Groups { .. }
						) {
							asked.fetch_add(1, Ordering::SeqCst);
						}
						let wire = |seq: u64, facts| WireHead { seq, facts: facts_to_wire(facts) };
						let reply = match (mode, env.request) {
							(Mode::FakePins, Request::Head { .. }) => {
								let mut fake = head.facts;
								fake.root = [0xee; 32];
								fake.entries = 1 << 40;
								let mut other = head.facts;
								other.root = [0xdd; 32];
								Response::Head {
									complete: Some(wire(head.seq + 1_000_000, fake)),
									syncing: None,
									received: 0,
									pinned: vec![
										wire(head.seq, other),
										wire(head.seq + 999_999, fake),
									],
								}
								.encode()
							},
							(Mode::HugeOp, Request::Head { .. }) => Response::Head {
								complete: Some(wire(head.seq + 1_000, head.facts)),
								syncing: None,
								received: 0,
								pinned: vec![],
							}
							.encode(),
							(Mode::HugeOp, Request::Ops { segment, from, .. }) => {
								let op = Op {
									segment,
									epoch: 1,
									seq: from,
									prev_op: [0; 32],
									kind: OpKind::Put {
										key: b"x".to_vec(),
										cid: [7; 32],
										size: u64::MAX,
									},
									prev_root: head.facts.root,
									new_root: [8; 32],
								};
								Response::Ops {
									ops: vec![SignedOp {
										op,
										signer: vec![1; 36],
										signature: vec![1; 64],
									}],
								}
								.encode()
							},
							(Mode::HugeOp, Request::Outboard { .. }) => {
								Response::Outboard { len: u64::MAX / 2 }.encode()
							},
							(Mode::DripIndex, Request::Index { .. }) => {
								tokio::time::sleep(Duration::from_secs(1)).await;
								let entry = WireEntry { key: b"k".to_vec(), cid: [3; 32], size: 1 };
								Response::Index { entries: vec![entry], total: head.facts.entries }
									.encode()
							},
							(_, Request::Head { .. }) => {
								let h = WireHead::from(head);
								Response::Head {
									complete: Some(h),
									syncing: None,
									received: 0,
									pinned: vec![],
								}
								.encode()
							},
							(Mode::ForgedPath, Request::Ops { from, max, .. }) => {
								let ops = FORGED.get().cloned().unwrap_or_default();
								let ops: Vec<SignedOp> = ops
									.into_iter()
									.filter(|o| o.op.seq >= from)
									.take(max as usize)
									.collect();
								Response::Ops { ops }.encode()
							},
							(
								Mode::FakePins | Mode::HugeOp | Mode::DripIndex | Mode::ForgedPath,
								_,
							) => Response::Error(ErrorCode::NotHeld).encode(),
							(_, request) => match mode {
								Mode::Oversized => {
									let _ = s.write_all(&(100u32 << 20).to_le_bytes()).await;
									let _ = s.write_all(&[0u8; 1024]).await;
									let _ = s.flush().await;
									tokio::time::sleep(Duration::from_secs(5)).await;
									return;
								},
								Mode::Truncated => {
									let _ = s.write_all(&100u32.to_le_bytes()).await;
									let _ = s.write_all(&[0u8; 10]).await;
									let _ = s.close().await;
									return;
								},
								Mode::WrongLength => match request {
									Request::Groups { .. } => {
										let mut out = Vec::new();
										let hdr = Response::Groups.encode();
										out.extend((hdr.len() as u32).to_le_bytes());
										out.extend(hdr);
										out.extend(8u32.to_le_bytes());
										out.extend([0u8; 8]);
										let _ = s.write_all(&out).await;
										let _ = s.flush().await;
										continue;
									},
									_ => Response::Error(ErrorCode::NotHeld).encode(),
								},
								Mode::FakePins
								| Mode::HugeOp
								| Mode::DripIndex
								| Mode::ForgedPath => {
									unreachable!("answered above")
								},
							},
						};
						let _ = s.write_all(&(reply.len() as u32).to_le_bytes()).await;
						let _ = s.write_all(&reply).await;
						let _ = s.flush().await;
					}
				});
			}
		});
		(Holder { peer, addrs: vec![addr], primary: false }, asked)
	}

	pub fn peer_of(h: &Holder) -> PeerId {
		h.peer
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_responses_are_rejected_and_sync_completes_elsewhere() {
	// A slow Primary, so the rogue (a "complete Replica", preferred) gets work.
	let (p, head) = primary(3 * MIB, 2 * MIB, limit(4 * MIB)).await;
	for (mode, banned) in [
		(rogue::Mode::Oversized, true),
		(rogue::Mode::WrongLength, true),
		(rogue::Mode::Truncated, false),
	] {
		let bad = rogue::start(head, mode).await;
		let d = Node::start().await;
		let (_tx, rx) = watch::channel(vec![p.holder(true), bad.clone()]);
		let report = d.net.sync_segment(SEG, head, rx).await.unwrap();
		assert_holds(d.store(), head);
		assert_eq!(report.banned.contains(&rogue::peer_of(&bad)), banned);
		assert_eq!(report.by_peer.get(&bad.peer).copied().unwrap_or(0), 0);
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_are_discovered_through_kademlia_provider_records() {
	let (p, head) = primary(2 * MIB, 0, ServeLimits::default()).await;
	// R knows P; C knows only R.
	let start_with = |boot: Vec<(PeerId, Multiaddr)>| async move {
		let dir = tempfile::tempdir().unwrap();
		let mut cfg = NetConfig::new(Keypair::generate_ed25519());
		cfg.bootnodes = boot;
		let net = SyncNetwork::start(cfg, Store::open(dir.path()).unwrap()).await.unwrap();
		let addrs = net.listen_addrs().await;
		(net, addrs, dir)
	};
	let (r, raddrs, _rd) = start_with(vec![(p.net.peer_id(), p.addrs[0].clone())]).await;
	r.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	p.net.provide(SEG);
	let (c, _, _cd) = start_with(vec![(r.peer_id(), raddrs[0].clone())]).await;
	let mut found = Vec::new();
	for _ in 0..50 {
		found = c.find_providers(SEG).await;
		if found.contains(&p.net.peer_id()) {
			break;
		}
		tokio::time::sleep(Duration::from_millis(100)).await;
	}
	assert!(found.contains(&p.net.peer_id()), "found {found:?}");
	// Sync from the discovered holder, dialled by peer id alone (addresses from the DHT).
	let holders = found
		.into_iter()
		.map(|peer| Holder { peer, addrs: vec![], primary: false })
		.collect();
	let (_tx, rx) = watch::channel(holders);
	c.sync_segment(SEG, head, rx).await.unwrap();
	assert_holds(c.store(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_by_n_ops_catches_up_by_range_fetch_and_refuses_forged_ops() {
	use sync_net::deltas::{single_owner, KeypairSigner};
	use sync_store::SegmentWrite;
	let key = Keypair::generate_ed25519();
	// The genesis hash of `NetConfig::new` (all zero): the chain these nodes sign for.
	let signer = KeypairSigner::new(key.clone(), [0; 32], 1);
	let pdir = Arc::new(tempfile::tempdir().unwrap());
	let p = {
		let mut cfg = NetConfig::new(key.clone());
		cfg.limits = ServeLimits::default();
		Node::start_with(pdir, cfg).await
	};
	let write = |i: u64| SegmentWrite::Put {
		key: format!("k{i}").into_bytes(),
		data: sync_net::fixtures::blob(i, 500 + (i as usize % 7) * 9_000),
	};
	let (snapshot, _) = p.store().apply_signed(SEG, (0..10).map(write).collect(), &signer).unwrap();
	// The Replica takes the snapshot at seq 10 …
	let r = Node::start().await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	r.net.sync_segment(SEG, snapshot, rx).await.unwrap();
	// … while the Primary keeps writing: 50 more ops, one a delete.
	let mut more: Vec<SegmentWrite> = (10..60).map(write).collect();
	more.push(SegmentWrite::Delete { key: b"k3".to_vec() });
	let (head, _) = p.store().apply_signed(SEG, more, &signer).unwrap();
	assert_eq!(head.seq, 61);
	r.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();

	// A verifier that does not list this Primary refuses the ops; nothing changes.
	let nobody = single_owner([0; 32], PeerId::random());
	let err = r.net.catch_up(SEG, head.seq, p.net.peer_id(), &nobody, None).await.unwrap_err();
	assert!(
		matches!(
			err,
			sync_net::deltas::DeltaError::Store(sync_store::StoreError::BadSignature {
				seq: 61,
				..
			})
		),
		"{err}"
	);
	assert_eq!(r.store().head(SEG), Some(snapshot));

	let primary = p.net.peer_id();
	let chain = single_owner([0; 32], primary);
	let caught = r.net.catch_up(SEG, head.seq, p.net.peer_id(), &chain, None).await.unwrap();
	assert_eq!(caught, head);
	assert_holds(r.store(), head);
	// Asking again applies nothing twice.
	assert_eq!(r.net.catch_up(SEG, head.seq, p.net.peer_id(), &chain, None).await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_while_the_primary_keeps_writing_and_converges() {
	use std::sync::atomic::{AtomicBool, Ordering};
	use sync_net::deltas::{single_owner, KeypairSigner};
	use sync_store::SegmentWrite;
	let key = Keypair::generate_ed25519();
	let pdir = Arc::new(tempfile::tempdir().unwrap());
	let p = { Node::start_with(pdir, NetConfig::new(key.clone())).await };
	let signer = KeypairSigner::new(key, [0; 32], 1);
	let write = |i: u64| SegmentWrite::Put {
		key: format!("k{}", i % 40).into_bytes(),
		data: sync_net::fixtures::blob(i, 300 + (i as usize % 5) * 7_000),
	};
	p.store().apply_signed(SEG, (0..40).map(write).collect(), &signer).unwrap();
	// The Primary writes continuously (overwriting keys too) until told to stop.
	let stop = Arc::new(AtomicBool::new(false));
	let writer = {
		let (store, stop) = (p.store().clone(), stop.clone());
		std::thread::spawn(move || {
			let mut i = 40;
			while !stop.load(Ordering::SeqCst) {
				store.apply_signed(SEG, vec![write(i)], &signer).unwrap();
				i += 1;
				std::thread::sleep(Duration::from_millis(2));
			}
		})
	};
	let r = Node::start().await;
	let primary = p.net.peer_id();
	let chain = single_owner([0; 32], primary);
	// Snapshot at the root the Primary pinned (as it does for what it commits on chain), then
	// follow with deltas while writes go on.
	let snapshot = p.store().pin_snapshot(SEG).unwrap().unwrap();
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	r.net.sync_segment(SEG, snapshot, rx).await.unwrap();
	for _ in 0..3 {
		let now = p.store().head(SEG).unwrap();
		assert!(now.seq > snapshot.seq, "writes continued during the snapshot");
		r.net.catch_up(SEG, now.seq, primary, &chain, None).await.unwrap();
	}
	stop.store(true, Ordering::SeqCst);
	writer.join().unwrap();
	let last = p.store().head(SEG).unwrap();
	assert_eq!(r.net.catch_up(SEG, last.seq, primary, &chain, None).await.unwrap(), last);
	assert_holds(r.store(), last);
	// Every op is in the follower's log once, in order, after the snapshot.
	let ops = r.store().ops(SEG, snapshot.seq + 1, 100_000).unwrap();
	assert_eq!(ops.len() as u64, last.seq - snapshot.seq);
	assert!(ops.iter().enumerate().all(|(i, o)| o.op.seq == snapshot.seq + 1 + i as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_entry_count_is_bounded() {
	// A committed root with 300 entries; a holder that serves its index one entry a second
	// (every page beats the 3 s per-page timeout; the whole index would take 300 s).
	let p = Node::start().await;
	let small = |i: u64| sync_store::SegmentWrite::Put {
		key: format!("e{i:04}").into_bytes(),
		data: sync_net::fixtures::blob(i, 100),
	};
	let head = p.store().apply(SEG, (0..300).map(small).collect()).unwrap();
	let drip = rogue::start(head, rogue::Mode::DripIndex).await;
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	cfg.request_timeout = Duration::from_secs(3);
	cfg.index_page_time = Duration::from_millis(100);
	let d = Node::start_with(Arc::new(tempfile::tempdir().unwrap()), cfg).await;
	// Only the drip-feeder at first, so it is asked for the index; the Primary comes later.
	let (tx, rx) = watch::channel(vec![drip.clone()]);
	let started = std::time::Instant::now();
	let sync = tokio::spawn({
		let net = d.net.clone();
		async move { net.sync_segment(SEG, head, rx).await }
	});
	tokio::time::sleep(Duration::from_secs(4)).await;
	tx.send_replace(vec![drip.clone(), p.holder(true)]);
	let report = tokio::time::timeout(Duration::from_secs(60), sync)
		.await
		.expect("the drip-feeder cannot hold the sync")
		.unwrap()
		.unwrap();
	assert_holds(d.store(), head);
	assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
	assert_eq!(report.by_peer.get(&drip.peer).copied().unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_pin_is_not_adopted() {
	use sync_net::deltas::{single_owner, KeypairSigner};
	let key = Keypair::generate_ed25519();
	let p =
		Node::start_with(Arc::new(tempfile::tempdir().unwrap()), NetConfig::new(key.clone())).await;
	let write = |i: u64| sync_store::SegmentWrite::Put {
		key: format!("k{i}").into_bytes(),
		data: sync_net::fixtures::blob(i, 1000 + i as usize * 300),
	};
	p.store()
		.apply_signed(SEG, (0..20).map(write).collect(), &KeypairSigner::new(key, [0; 32], 1))
		.unwrap();
	let chain = Chain::new();
	let committed = chain.commit(p.store());
	// The rogue advertises a head and a pin a million seqs ahead (with 2^40 entries) and other
	// facts at the committed seq; it is listed first.
	let (rogue, asked) = rogue::start_counting(committed, rogue::Mode::FakePins).await;
	let f = Node::start().await;
	let (_tx, rx) = watch::channel(vec![rogue.clone(), p.holder(true)]);
	let primary = p.net.peer_id();
	let verifier: Arc<dyn sync_net::deltas::OpVerifier + Send + Sync> =
		Arc::new(single_owner([0; 32], primary));
	let follower = f.net.follow(SEG, rx, chain.anchors(), verifier);
	let got = tokio::time::timeout(Duration::from_secs(30), follower.reached(committed.seq))
		.await
		.expect("follows the committed root");
	assert_eq!(got, committed, "the chain's root, not the rogue's");
	assert_holds(f.store(), committed);
	assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing asked of the rogue");
	assert!(f.net.metrics().contradicting_heads.get() >= 1, "the contradiction was seen");
	let failures = f.net.peer_book().record(&rogue.peer).map_or(0, |r| r.failures);
	assert!(failures >= 1, "the rogue counted a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_size_op_is_refused_before_fetch() {
	let (p, head) = primary(2 * MIB, 0, ServeLimits::default()).await;
	let r = Node::start().await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	r.net.sync_segment(SEG, head, rx).await.unwrap();
	// A holder answers the gap with an op putting a u64::MAX-byte object (and would answer the
	// outboard request with a matching length): the op is verified first, so nothing is asked
	// for and nothing allocated by its size.
	let (bad, asked) = rogue::start_counting(head, rogue::Mode::HugeOp).await;
	r.net.dial(bad.peer, bad.addrs.clone()).await.unwrap();
	// Any signature by the rogue would do: the size is refused whatever the signer.
	let anyone = sync_net::deltas::single_owner([0; 32], bad.peer);
	let err = r
		.net
		.catch_up(SEG, head.seq + 1_000, bad.peer, &anyone, None)
		.await
		.unwrap_err();
	assert!(err.is_invalid(), "{err}");
	assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0, "no object fetched");
	assert_eq!(r.store().head(SEG), Some(head), "nothing applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_op_path_is_refused() {
	// The owner writes three puts in one batch (only the last is a signed checkpoint). A rogue
	// holder serves another path of unsigned ops to the same checkpoint — the two unsigned puts
	// in the other order, each re-chained to the forged one before it, so every root and every
	// `prev_op` of the forgery is consistent but the checkpoint's signed `prev_op` names the real
	// op. The follower refuses the batch (nothing applied, no object fetched), bans the rogue,
	// and replays the owner's own path from an honest holder.
	use sync_net::deltas::{single_owner, KeypairSigner};
	use sync_primitives::commitment::{Entry, SegmentTrie};
	use sync_proto::{OpKind, SignedOp, NO_PREV_OP};
	use sync_store::SegmentWrite;
	let (p, head) = primary(2 * MIB, 0, ServeLimits::default()).await;
	let r = Node::start().await;
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	r.net.sync_segment(SEG, head, rx).await.unwrap();
	let key = p.cfg.keypair.clone();
	let signer = KeypairSigner::new(key, [0; 32], 1);
	let write = |i: u8| SegmentWrite::Put {
		key: format!("forged/{i}").into_bytes(),
		data: vec![i; 20_000 + i as usize],
	};
	let (end, real) = p.store().apply_signed(SEG, (0..3).map(write).collect(), &signer).unwrap();
	assert_eq!(real.iter().map(SignedOp::is_checkpoint).collect::<Vec<_>>(), [false, false, true]);
	// The forgery: ops 1 and 2 of the batch swapped, roots and op chain recomputed.
	let mut trie = SegmentTrie::new();
	for e in r.store().listing(SEG, &head.facts.root).unwrap().iter() {
		trie.insert(e.clone());
	}
	let mut forged = Vec::new();
	let mut prev_op = real[0].op.prev_op;
	for real_op in [&real[1], &real[0]] {
		let OpKind::Put { key, cid, size } = &real_op.op.kind else { panic!("a put") };
		let mut op = real_op.op.clone();
		op.seq = head.seq + 1 + forged.len() as u64;
		op.prev_op = prev_op;
		op.prev_root = trie.facts().root;
		trie.insert(Entry { key: key.clone(), cid: *cid, size: *size });
		op.new_root = trie.facts().root;
		prev_op = op.hash();
		forged.push(SignedOp { op, signer: real_op.signer.clone(), signature: Vec::new() });
	}
	assert_eq!(forged[1].op.new_root, real[2].op.prev_root, "the same root before the checkpoint");
	assert_ne!(prev_op, real[2].op.prev_op, "but not the same op");
	assert_ne!(prev_op, NO_PREV_OP);
	forged.push(real[2].clone());
	let _ = rogue::FORGED.set(forged);
	let (bad, asked) = rogue::start_counting(end, rogue::Mode::ForgedPath).await;
	r.net.dial(bad.peer, bad.addrs.clone()).await.unwrap();
	let owner = single_owner([0; 32], p.net.peer_id());
	let err = r.net.catch_up(SEG, end.seq, bad.peer, &owner, None).await.unwrap_err();
	assert!(err.is_invalid(), "{err}");
	assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0, "no object fetched");
	assert_eq!(r.store().head(SEG), Some(head), "nothing applied");
	// The follow loop bans such a holder; the owner's own path replays.
	let caught = r.net.catch_up(SEG, end.seq, p.net.peer_id(), &owner, None).await.unwrap();
	assert_eq!(caught, end);
	assert_eq!(r.store().ops(SEG, head.seq + 1, 10).unwrap(), real);
}
