//! In-process tests of the serving limits on real libp2p nodes on loopback: stalled and
//! non-reading streams are timed out, known holders are served ahead of a flood of throwaway
//! identities, unknown peers are rate-limited, and connections per IP are bounded.
mod common;
use codec::Encode;
use common::*;
use futures::{AsyncReadExt, AsyncWriteExt};
use std::{
	sync::{
		atomic::{AtomicBool, Ordering},
		Arc,
	},
	time::{Duration, Instant},
};
use sync_net::{
	transfer::client::{Received, Session},
	ServeLimits,
};
use sync_proto::{GroupRange, Request, Response};
use sync_store::Entry;
use tokio::sync::watch;

/// Bare libp2p clients speaking the transfer protocol by hand: throwaway identities.
mod bare {
	use super::*;
	use codec::Decode;
	use futures::StreamExt;
	use libp2p::{
		noise,
		swarm::{dial_opts::DialOpts, SwarmEvent},
		tcp, yamux, PeerId, Stream,
	};
	use sync_net::transfer::protocol::PROTOCOL;
	use sync_proto::{Envelope, VERSION};

	/// A fresh identity connected to one server.
	pub struct Client {
		pub peer: PeerId,
		control: libp2p_stream::Control,
		server: PeerId,
		task: tokio::task::JoinHandle<()>,
	}

	impl Drop for Client {
		fn drop(&mut self) {
			self.task.abort();
		}
	}

	/// Connects a new identity to `server`; `Err` if the connection is refused or closed.
	pub async fn try_connect(server: &Node) -> Result<Client, String> {
		let mut swarm = libp2p::SwarmBuilder::with_new_identity()
			.with_tokio()
			.with_tcp(
				tcp::Config::default().nodelay(true),
				noise::Config::new,
				yamux::Config::default,
			)
			.map_err(|e| e.to_string())?
			.with_behaviour(|_| libp2p_stream::Behaviour::new())
			.map_err(|e| e.to_string())?
			.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
			.build();
		let peer = *swarm.local_peer_id();
		let target = server.net.peer_id();
		swarm
			.dial(DialOpts::peer_id(target).addresses(server.addrs.clone()).build())
			.map_err(|e| e.to_string())?;
		let connected = tokio::time::timeout(Duration::from_secs(10), async {
			loop {
				match swarm.select_next_some().await {
					SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
						return Ok(())
					},
					SwarmEvent::OutgoingConnectionError { error, .. } => {
						return Err(error.to_string())
					},
					SwarmEvent::ConnectionClosed { .. } => return Err("closed".to_string()),
					_ => {},
				}
			}
		})
		.await
		.map_err(|_| "dial timed out".to_string())?;
		connected?;
		let control = swarm.behaviour().new_control();
		let task = tokio::spawn(async move {
			loop {
				swarm.select_next_some().await;
			}
		});
		Ok(Client { peer, control, server: target, task })
	}

	pub async fn connect(server: &Node) -> Client {
		try_connect(server).await.expect("connects")
	}

	impl Client {
		/// A new transfer stream to the server.
		pub async fn open(&self) -> Option<Stream> {
			let mut control = self.control.clone();
			let open = control.open_stream(self.server, PROTOCOL);
			tokio::time::timeout(Duration::from_secs(5), open).await.ok()?.ok()
		}

		/// Whether the server answers a `Head` on a new stream within 2 s.
		pub async fn head_ok(&self) -> bool {
			let asked = async {
				let mut s = self.open().await?;
				s.write_all(&frame(Request::Head { segment: SEG })).await.ok()?;
				s.flush().await.ok()?;
				let r = Response::decode(&mut &read_frame(&mut s).await.ok()?[..]).ok()?;
				Some(matches!(r, Response::Head { .. }))
			};
			tokio::time::timeout(Duration::from_secs(2), asked).await.ok().flatten() == Some(true)
		}
	}

	/// A request as one frame on the wire.
	pub fn frame(request: Request) -> Vec<u8> {
		let payload = Envelope { version: VERSION, request }.encode();
		let mut out = (payload.len() as u32).to_le_bytes().to_vec();
		out.extend(payload);
		out
	}

	/// Reads one frame (≤ 1 MiB: the server under test is this node's own).
	pub async fn read_frame(s: &mut Stream) -> std::io::Result<Vec<u8>> {
		let mut len = [0u8; 4];
		s.read_exact(&mut len).await?;
		let len = u32::from_le_bytes(len) as usize;
		if len > 1 << 20 {
			return Err(std::io::Error::other("frame too long"));
		}
		let mut buf = vec![0u8; len];
		s.read_exact(&mut buf).await?;
		Ok(buf)
	}

	/// Asks for `count` groups and reads them; the data bytes received (0 if refused).
	pub async fn fetch(s: &mut Stream, range: GroupRange) -> std::io::Result<u64> {
		let count = range.count;
		s.write_all(&frame(Request::Groups { ranges: vec![range] })).await?;
		s.flush().await?;
		let header = read_frame(s).await?;
		match Response::decode(&mut &header[..]) {
			Ok(Response::Groups) => {},
			_ => return Ok(0),
		}
		let mut n = 0;
		for _ in 0..count {
			n += read_frame(s).await?.len().saturating_sub(1) as u64;
		}
		Ok(n)
	}
}

/// Waits until `cond` holds, failing after `limit`.
async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
	let started = Instant::now();
	while !cond() {
		assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
		tokio::time::sleep(Duration::from_millis(20)).await;
	}
}

fn timed_out(n: &Node, reason: &str) -> u64 {
	n.net.metrics().timed_out.with_label_values(&[reason]).get()
}

/// The largest object of the segment at `head`.
fn largest(p: &Node, head: sync_store::Head) -> Entry {
	let listing = p.store().listing(SEG, &head.facts.root).unwrap();
	listing.iter().max_by_key(|e| e.size).unwrap().clone()
}

/// All identities of these tests share 127.0.0.1: the per-IP limit (which alone stops a flood
/// from one address) is lifted so the stream limits and deadlines are what is tested.
fn one_address() -> ServeLimits {
	ServeLimits { max_connections_per_ip: 1_000, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_are_timed_out() {
	let (p, head) = primary(2 * MIB, MIB, one_address()).await;
	let honest = Node::start().await;
	p.net.set_known_peers(SEG, vec![honest.net.peer_id()]);

	// 20 throwaway identities, 4 streams each, each sending 2 bytes of a length prefix and
	// opening a new stream as soon as (100 ms after) the server closes the last.
	let stop = Arc::new(AtomicBool::new(false));
	let mut clients = Vec::new();
	for _ in 0..20 {
		clients.push(Arc::new(bare::connect(&p).await));
	}
	let mut flood = Vec::new();
	for c in &clients {
		for _ in 0..4 {
			let (c, stop) = (c.clone(), stop.clone());
			flood.push(tokio::spawn(async move {
				let until = Instant::now() + Duration::from_secs(60);
				while !stop.load(Ordering::SeqCst) && Instant::now() < until {
					if let Some(mut s) = c.open().await {
						let _ = s.write_all(&[0x20, 0x00]).await;
						let _ = s.flush().await;
						// Held until the server closes it (after `Busy`, or silently).
						let mut sink = [0u8; 64];
						while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
					}
					tokio::time::sleep(Duration::from_millis(100)).await;
				}
			}));
		}
	}
	// The flood holds the unknown peers' whole share, is refused beyond it, and the stalled
	// streams are closed at the first-request deadline (and re-opened).
	wait_for("stalled streams timed out", Duration::from_secs(15), || {
		timed_out(&p, "first_request") >= 32
	})
	.await;
	let refused = |r: &str| p.net.metrics().streams_refused.with_label_values(&[r]).get();
	assert!(refused("unknown") + refused("per_peer") > 0, "the flood exceeds the unknown share");

	// The honest known holder: a `Head`, then a whole snapshot sync, within 2 s of asking.
	let asked = Instant::now();
	honest.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	// libp2p-stream drops an inbound stream that arrives in the same instant as another one
	// (see the README on serving): one retry, inside the 2 s.
	let mut attempts = 0;
	let served = loop {
		attempts += 1;
		let got = match Session::open(&honest.net, p.net.peer_id()).await {
			Ok(mut s) => s.head(SEG).await,
			Err(e) => Err(e),
		};
		match got {
			Ok(h) => break h,
			Err(e) if attempts < 3 => println!("attempt {attempts}: {e}"),
			Err(e) => panic!("head refused during the flood: {e}"),
		}
	};
	assert_eq!(served.complete.map(sync_store::Head::from), Some(head));
	let head_took = asked.elapsed();
	let (_tx, rx) = watch::channel(vec![p.holder(true)]);
	let report = honest.net.sync_segment(SEG, head, rx).await.unwrap();
	let took = asked.elapsed();
	stop.store(true, Ordering::SeqCst);
	assert_holds(honest.store(), head);
	println!(
		"during the flood: head in {head_took:?} ({attempts} attempt(s)), {} KiB synced in \
		 {took:?}; {} stalled streams timed out, {} refused",
		report.fetched_bytes / 1024,
		timed_out(&p, "first_request"),
		refused("unknown") + refused("per_peer") + refused("total"),
	);
	assert!(took < Duration::from_secs(2), "the honest holder waited {took:?}");
	for f in flood {
		f.abort();
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_client_frees_its_slot() {
	// Four answer slots, all usable by unknown peers; a 1 MiB response may block 1 s + 1 s.
	let limits = ServeLimits {
		max_requests: 4,
		max_requests_unknown: 4,
		write_timeout: Duration::from_secs(1),
		unknown_peer_bytes_per_sec: None,
		..one_address()
	};
	let (p, head) = primary(6 * MIB, 4 * MIB, limits).await;
	let big = largest(&p, head);
	let cid = big.cid;
	let range = move |first: u64| GroupRange { cid, size: big.size, first, count: 64 };

	// Four throwaway identities ask for 1 MiB each and never read: every answer slot.
	let mut hogs = Vec::new();
	for i in 0..4 {
		let c = bare::connect(&p).await;
		let mut s = c.open().await.expect("stream");
		s.write_all(&bare::frame(Request::Groups { ranges: vec![range(i * 64)] }))
			.await
			.unwrap();
		s.flush().await.unwrap();
		hogs.push((c, s));
	}
	let serving = || p.net.metrics().serving.get();
	wait_for("every slot taken by a non-reader", Duration::from_secs(5), || serving() == 4).await;

	// An honest client (unknown too, so it needs one of the same slots) asks meanwhile.
	let d = Node::start().await;
	d.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	let mut s = Session::open(&d.net, p.net.peer_id()).await.unwrap();
	let asked = Instant::now();
	let mut got = 0u64;
	s.groups(vec![range(0)], |_, _, r| {
		if let Received::Data(data) = r {
			got += data.len() as u64;
		}
		Ok(())
	})
	.await
	.expect("served once a non-reader's write deadline freed a slot");
	let waited = asked.elapsed();
	assert_eq!(got, MIB);
	println!("served after {waited:?}; {} writes timed out", timed_out(&p, "write"));
	assert!(timed_out(&p, "write") >= 1, "a non-reader lost its stream");
	assert!(waited < Duration::from_secs(10), "waited {waited:?}");
	drop(s);
	wait_for("all four non-readers timed out", Duration::from_secs(10), || {
		timed_out(&p, "write") >= 4
	})
	.await;
	wait_for("sync_net_requests_serving back to 0", Duration::from_secs(5), || serving() == 0)
		.await;
	let inbound = || p.net.metrics().streams.with_label_values(&["inbound"]).get();
	wait_for("every inbound stream closed", Duration::from_secs(5), || inbound() == 0).await;
	// Their streams are gone: after what was buffered, reading ends.
	for (_c, mut s) in hogs {
		let drained = tokio::time::timeout(Duration::from_secs(5), async {
			let mut sink = vec![0u8; 64 * 1024];
			while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
		})
		.await;
		assert!(drained.is_ok(), "a non-reader's stream stayed open");
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peers_are_rate_limited_known_peers_first() {
	// Four answer slots, at most two for unknown peers; unknown peers get 256 KiB/s each.
	let rate = 256 << 10;
	let limits = ServeLimits {
		max_requests: 4,
		max_requests_unknown: 2,
		unknown_peer_bytes_per_sec: Some(rate),
		..one_address()
	};
	let (p, head) = primary(6 * MIB, 4 * MIB, limits).await;
	let big = largest(&p, head);
	let cid = big.cid;
	let range = move |first: u64| GroupRange { cid, size: big.size, first, count: 64 };

	// Six unknown downloaders (honest, only not on the chain) ask for 1 MiB at a time.
	let started = Instant::now();
	let stop = Arc::new(AtomicBool::new(false));
	let mut unknown = Vec::new();
	for i in 0..6u64 {
		let c = Arc::new(bare::connect(&p).await);
		let stop = stop.clone();
		let task = tokio::spawn({
			let c = c.clone();
			async move {
				let Some(mut s) = c.open().await else { return };
				while !stop.load(Ordering::SeqCst) {
					if bare::fetch(&mut s, range((i % 4) * 64)).await.is_err() {
						return;
					}
				}
			}
		});
		unknown.push((c, task));
	}
	// Two are answered (slowly), the others wait.
	let queued = || p.net.metrics().queued.with_label_values(&["low"]).get();
	wait_for("unknown requests queued", Duration::from_secs(5), || queued() >= 3).await;
	let waiting = queued();

	// A known holder asks for 1 MiB: answered at once and at full speed, ahead of them.
	let k = Node::start().await;
	p.net.set_known_peers(SEG, vec![k.net.peer_id()]);
	k.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	let mut s = Session::open(&k.net, p.net.peer_id()).await.unwrap();
	let asked = Instant::now();
	let mut got = 0u64;
	s.groups(vec![range(0)], |_, _, r| {
		if let Received::Data(data) = r {
			got += data.len() as u64;
		}
		Ok(())
	})
	.await
	.unwrap();
	let took = asked.elapsed();
	assert_eq!(got, MIB);
	println!("known holder served 1 MiB in {took:?} while {waiting} unknown requests waited");
	// An unknown peer needs ≥ 3 s for 1 MiB at 256 KiB/s (burst 64 KiB).
	assert!(took < Duration::from_secs(2), "the known holder waited {took:?}");
	assert!(queued() >= 1, "unknown requests were still waiting after the known one");

	// Every unknown peer got at most its rate (plus its burst and one group in flight).
	tokio::time::sleep(Duration::from_secs(2)).await;
	stop.store(true, Ordering::SeqCst);
	let elapsed = started.elapsed().as_secs_f64();
	let served = p.net.served_to();
	for (c, task) in unknown {
		task.abort();
		let bytes = served.get(&c.peer).copied().unwrap_or(0) as f64;
		let bound = rate as f64 * elapsed + (rate / 4) as f64 + 16_384.0;
		assert!(bytes <= bound, "an unknown peer got {bytes} bytes in {elapsed:.1} s");
	}
	assert_eq!(served.get(&k.net.peer_id()).copied(), Some(MIB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited_for_unknown_peers() {
	let limits = ServeLimits { max_connections_per_ip: 3, ..Default::default() };
	let (p, _head) = primary(MIB, 0, limits).await;
	let mut admitted = Vec::new();
	for _ in 0..3 {
		let c = bare::connect(&p).await;
		assert!(c.head_ok().await, "within the per-IP limit");
		admitted.push(c);
	}
	// A fourth unknown identity from the same address is refused.
	let refused = match bare::try_connect(&p).await {
		Err(_) => true,
		Ok(c) => !c.head_ok().await,
	};
	assert!(refused, "a fourth unknown connection from one IP was served");
	assert!(p.net.metrics().connections_denied.with_label_values(&["per_ip"]).get() >= 1);
	// A known holder from the same address is not.
	let k = Node::start().await;
	p.net.set_known_peers(SEG, vec![k.net.peer_id()]);
	k.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	let mut s = Session::open(&k.net, p.net.peer_id()).await.unwrap();
	assert!(s.head(SEG).await.is_ok(), "a known holder is not refused by the per-IP limit");
	// The admitted identities are still served.
	for c in &admitted {
		assert!(c.head_ok().await);
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_size_claim_is_not_served_and_blames_no_one() {
	// An owner can sign a `Put` naming a real CID with another size. An honest server holding
	// that CID must not look like it sent a wrong length: asked for the object under another
	// size, it answers "not held" (outboard) and "missing" (groups), and only for the true size
	// does it serve the bytes.
	let (p, head) = primary(2 * MIB, MIB, one_address()).await;
	let big = largest(&p, head);
	assert!(big.size > 16_384, "a large object");
	let d = Node::start().await;
	d.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	for lie in [big.size - 1, big.size + 1, big.size + (1 << 20)] {
		let mut s = Session::open(&d.net, p.net.peer_id()).await.unwrap();
		let err = s.outboard(big.cid, lie).await.unwrap_err();
		assert!(matches!(err, sync_net::transfer::client::PeerError::Refused(_)), "{lie}: {err:?}");
		let mut s = Session::open(&d.net, p.net.peer_id()).await.unwrap();
		let (mut missing, mut data) = (0, 0);
		s.groups(vec![GroupRange { cid: big.cid, size: lie, first: 0, count: 2 }], |_, _, r| {
			match r {
				Received::Data(_) => data += 1,
				Received::Missing => missing += 1,
			}
			Ok(())
		})
		.await
		.expect("answered in order, every frame of the expected length");
		assert_eq!((missing, data), (2, 0), "{lie}");
	}
	let mut s = Session::open(&d.net, p.net.peer_id()).await.unwrap();
	assert!(!s.outboard(big.cid, big.size).await.unwrap().is_empty(), "the true size is served");
	assert!(!d.net.is_banned(&p.net.peer_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outboard_deadline_scales_with_its_size() {
	// A 16 MiB object's outboard is 64 KiB. Served at 16 KiB/s (an honest holder's per-peer
	// rate) it takes about 4 s, twice this client's request timeout: the deadline must grow
	// with the outboard's length, or honest holders of large objects time out.
	let (p, head) = primary(MIB, 16 * MIB, limit(16 << 10)).await;
	let big = largest(&p, head);
	assert_eq!(big.size, 16 * MIB);
	let timeout = Duration::from_secs(2);
	let mut cfg = sync_net::NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
	cfg.request_timeout = timeout;
	cfg.response_floor_rate = 8 << 10;
	let d = Node::start_with(Arc::new(tempfile::tempdir().unwrap()), cfg).await;
	d.net.dial(p.net.peer_id(), p.addrs.clone()).await.unwrap();
	p.net.set_known_peers(SEG, vec![d.net.peer_id()]);
	let mut s = Session::open(&d.net, p.net.peer_id()).await.unwrap();
	let started = Instant::now();
	let ob = s.outboard(big.cid, big.size).await.expect("served within the scaled deadline");
	let took = started.elapsed();
	assert_eq!(ob.len() as u64, sync_primitives::outboard::outboard_len(big.size) * 32);
	assert!(took > timeout, "rate-limited: {took:?} (else this tests nothing)");
	// A drip far below the floor is still cut off: at 2 KiB/s the 64 KiB would take 32 s,
	// more than 2 s + 64 KiB / 8 KiB/s.
	drop(p);
	let (slow, head) = primary(MIB, 16 * MIB, limit(2 << 10)).await;
	let big = largest(&slow, head);
	d.net.dial(slow.net.peer_id(), slow.addrs.clone()).await.unwrap();
	slow.net.set_known_peers(SEG, vec![d.net.peer_id()]);
	let mut s = Session::open(&d.net, slow.net.peer_id()).await.unwrap();
	let started = Instant::now();
	let err = s.outboard(big.cid, big.size).await.unwrap_err();
	assert!(matches!(err, sync_net::transfer::client::PeerError::Transport(_)), "{err:?}");
	assert!(started.elapsed() < Duration::from_secs(20), "cut at its deadline");
}
