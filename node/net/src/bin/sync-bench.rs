//! `sync-bench`: data-plane figures on loopback, printed as a table (never asserted).
//!
//! 1. Verified snapshot sync of a segment (default 1 GiB: mixed objects plus one 256 MiB
//!    object) from a Primary in a child process to this process, in MB/s, and this process's
//!    peak RSS during it (the receiving node alone).
//! 2. Primary egress when n = 1, 2, 4, 8 Replicas join at once (in-process), as a fraction of
//!    the data per Replica (goal ≤ 1.5/n).
//! 3. Resume after `kill -9` at 50 %: a child process syncs, is killed, this process reopens its
//!    store and finishes; bytes fetched twice, as a fraction of the data (goal ≤ 1 %).
//!
//! 5. Delta replay, durable: ops/s a follower's store replays (one durable transaction per
//!    256-op response, objects present), and end to end over the network (`catch_up`: ops,
//!    their objects, replay) (goal ≥ 100k ops/s).
//! 6. Primary write throughput (batches of 16 puts of 1 KiB) alone, and while a co-Primary
//!    joins (snapshot of a 64 MiB segment, then live deltas) in the same process (goal: drop
//!    ≤ 20 %).
//! 7. Time from the start of a write on the Primary to the same root on 5 Replicas, p50/p99.
//!
//! `sync-bench [--size-mib N] [--large-mib N] [--egress-mib N] [--ops N] [--dir PATH]
//! [--only-sync | --only-deltas]`
use codec::{Decode, Encode};
use std::{
	io::{BufRead, BufReader, Write},
	process::{Command, Stdio},
	time::{Duration, Instant},
};
use sync_net::{fixtures::populate, Holder, Keypair, Multiaddr, NetConfig, PeerId, SyncNetwork};
use sync_proto::WireHead;
use sync_store::{Head, Store};
use tokio::sync::watch;

const MIB: u64 = 1 << 20;
const SEG: u64 = 1;

fn arg(name: &str, default: u64) -> u64 {
	let args: Vec<String> = std::env::args().collect();
	args.iter()
		.position(|a| a == name)
		.and_then(|i| args.get(i + 1))
		.and_then(|v| v.parse().ok())
		.unwrap_or(default)
}

use sync_primitives::hex::hex_plain as hex;
/// Bytes of the hex a child process printed.
fn unhex(s: &str) -> Vec<u8> {
	sync_primitives::hex::unhex(s).expect("the child prints hex")
}

/// CPU seconds (user + system) this process has used.
fn cpu_secs() -> f64 {
	cpu_secs_of("self")
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_secs_of(pid: &str) -> f64 {
	let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
	let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
	let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
		+ fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
	ticks / 100.0
}

fn rss_peak_kib() -> u64 {
	std::fs::read_to_string("/proc/self/status")
		.ok()
		.and_then(|s| {
			s.lines()
				.find(|l| l.starts_with("VmHWM:"))
				.map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
		})
		.unwrap_or(0)
}

/// The bench's downloaders stand for holders the chain lists, but no chain tells the serving
/// node who they are: serve every peer with a known peer's limits (streams, answer slots, no
/// unknown-peer byte rate), as a registered Replica is served. And the bench measures transfers:
/// no background scrub reads the store meanwhile.
fn serve_as_registered(cfg: &mut NetConfig) {
	let l = &mut cfg.limits;
	l.unknown_peer_bytes_per_sec = None;
	l.max_streams_per_unknown_peer = l.max_streams_per_peer;
	l.max_streams_unknown = l.max_streams;
	l.max_requests_unknown = l.max_requests;
	cfg.scrub_rate = 0;
}

async fn start(dir: &std::path::Path) -> SyncNetwork {
	let store = Store::open(dir).expect("open store");
	let mut cfg = NetConfig::new(Keypair::generate_ed25519());
	serve_as_registered(&mut cfg);
	if let Ok(w) = std::env::var("SYNC_BENCH_YAMUX_WINDOW") {
		cfg.yamux_window = w.parse().ok();
	}
	SyncNetwork::start(cfg, store).await.expect("start network")
}

/// Child: a Primary with generated data; prints `READY peer addr head` and serves until stdin closes.
async fn child_serve(dir: String, size: u64, large: u64) {
	let net = start(dir.as_ref()).await;
	let t = Instant::now();
	let head = match net.store().head(SEG) {
		Some(h) => h,
		None => populate(net.store(), SEG, size, large).expect("populate"),
	};
	eprintln!(
		"primary: {} MiB generated and stored in {:.1} s",
		head.facts.bytes / MIB,
		t.elapsed().as_secs_f64()
	);
	let addr = net.listen_addrs().await[0].clone();
	let wire = WireHead::from(head).encode();
	println!("READY {} {} {}", net.peer_id(), addr, hex(&wire));
	std::io::stdout().flush().unwrap();
	let _ = tokio::task::spawn_blocking(|| {
		let mut s = String::new();
		let _ = std::io::stdin().read_line(&mut s);
	})
	.await;
}

/// Child: syncs from the Primary, printing bytes received every millisecond (until killed).
async fn child_fetch(dir: String, peer: String, addr: String, head: String) {
	let net = start(dir.as_ref()).await;
	let (head, holder) = parse_primary(&peer, &addr, &head);
	let (_tx, rx) = watch::channel(vec![holder]);
	let n = net.clone();
	tokio::spawn(async move {
		let mut out = std::io::stdout();
		loop {
			let _ = writeln!(out, "{}", n.received());
			let _ = out.flush();
			tokio::time::sleep(Duration::from_millis(1)).await;
		}
	});
	net.sync_segment(SEG, head, rx).await.expect("sync");
}

fn parse_primary(peer: &str, addr: &str, head: &str) -> (Head, Holder) {
	let w = WireHead::decode(&mut &unhex(head)[..]).expect("head");
	let peer: PeerId = peer.parse().expect("peer id");
	let addr: Multiaddr = addr.parse().expect("multiaddr");
	(Head::from(w), Holder { peer, addrs: vec![addr], primary: true })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
	let args: Vec<String> = std::env::args().collect();
	match args.get(1).map(String::as_str) {
		Some("serve") => {
			return child_serve(args[2].clone(), args[3].parse().unwrap(), args[4].parse().unwrap())
				.await
		},
		Some("fetch") => {
			return child_fetch(args[2].clone(), args[3].clone(), args[4].clone(), args[5].clone())
				.await
		},
		Some("raw-serve") => return raw::serve(args[2].parse().unwrap()).await,
		_ => {},
	}
	let size = arg("--size-mib", 1024) * MIB;
	let large = arg("--large-mib", 256) * MIB;
	let egress_size = arg("--egress-mib", 128) * MIB;
	let base = std::env::args()
		.collect::<Vec<_>>()
		.windows(2)
		.find(|w| w[0] == "--dir")
		.map(|w| std::path::PathBuf::from(&w[1]))
		.unwrap_or_else(std::env::temp_dir)
		.join(format!("sync-bench-{}", std::process::id()));
	std::fs::create_dir_all(&base).unwrap();
	let exe = std::env::current_exe().unwrap();
	println!(
		"sync-bench: segment {} MiB (one object of {} MiB), {} cores",
		size / MIB,
		large / MIB,
		num_cpus()
	);

	if std::env::args().any(|a| a == "--only-deltas") {
		let figures = deltas::run(&base, arg("--ops", 200_000)).await;
		figures.print();
		let _ = std::fs::remove_dir_all(&base);
		return;
	}

	// (0) Transport ceilings: one stream, no store, over TCP (what sync-net uses) and QUIC.
	for quic in [false, true] {
		let mut cmd = Command::new(&exe);
		cmd.args(["raw-serve", &size.to_string()]).stdout(Stdio::piped());
		if quic {
			cmd.env("RAW_QUIC", "1");
		}
		let mut child = cmd.spawn().expect("spawn");
		let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
		let p: Vec<&str> = line.split_whitespace().collect();
		let c0 = cpu_secs();
		let t0 = Instant::now();
		let r = raw::fetch(p[1], p[2], size).await;
		let (cpu, secs) = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
		let _ = child.kill();
		let _ = child.wait();
		let name = if quic { "QUIC (quinn, TLS 1.3)" } else { "TCP + Noise + Yamux" };
		println!("(0) transport ceiling, one libp2p stream over {name}, no store: {r:.0} MB/s (receiver CPU {cpu:.2} s in {secs:.2} s)");
	}
	// The Primary, in its own process.
	let mut primary = Command::new(&exe)
		.args([
			"serve",
			base.join("primary").to_str().unwrap(),
			&size.to_string(),
			&large.to_string(),
		])
		.stdin(Stdio::piped())
		.stdout(Stdio::piped())
		.spawn()
		.expect("spawn primary");
	let mut lines = BufReader::new(primary.stdout.take().unwrap()).lines();
	let ready = lines.next().expect("primary output").unwrap();
	let parts: Vec<&str> = ready.split_whitespace().collect();
	assert_eq!(parts[0], "READY");
	let (head, holder) = parse_primary(parts[1], parts[2], parts[3]);
	let data = head.facts.bytes;

	// (1) + (4): verified sync into this process, three times (fresh store each), median shown.
	let rss_before = rss_peak_kib();
	let runs = arg("--runs", 3).max(1);
	let mut rates = Vec::new();
	let mut rss = 0;
	for run in 0..runs {
		let node = start(&base.join(format!("replica-{run}"))).await;
		let (_tx, rx) = watch::channel(vec![holder.clone()]);
		let t = Instant::now();
		let cpu0 = cpu_secs();
		let ppid = primary.id().to_string();
		let pcpu0 = cpu_secs_of(&ppid);
		let report = node.sync_segment(SEG, head, rx).await.expect("sync");
		let secs = t.elapsed().as_secs_f64();
		let cpu = cpu_secs() - cpu0;
		let pcpu = cpu_secs_of(&ppid) - pcpu0;
		let mbps = data as f64 / 1e6 / secs;
		if run == 0 {
			rss = rss_peak_kib();
		}
		println!(
			"(1) run {}: verified sync of {} MiB in {:.2} s = {:.0} MB/s ({} objects; {:.2} % outboard); CPU receiver {:.2} ns/B, Primary {:.2} ns/B, {:.2} of 2 cores busy",
			run + 1,
			data / MIB,
			secs,
			mbps,
			head.facts.entries,
			100.0 * report.outboard_bytes as f64 / data as f64,
			cpu * 1e9 / data as f64,
			pcpu * 1e9 / data as f64,
			(cpu + pcpu) / secs
		);
		rates.push(mbps);
		node.shutdown();
	}
	rates.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
	let mbps = rates[rates.len() / 2];
	println!(
		"(1) median {mbps:.0} MB/s over {runs} runs (min {:.0}, max {:.0})",
		rates[0],
		rates[rates.len() - 1]
	);
	if std::env::args().any(|a| a == "--only-sync") {
		drop(primary.stdin.take());
		let _ = primary.wait();
		let _ = std::fs::remove_dir_all(&base);
		return;
	}

	// (3): kill -9 at 50 %, resume here.
	let fetch_dir = base.join("killed");
	let mut child = Command::new(&exe)
		.args(["fetch", fetch_dir.to_str().unwrap(), parts[1], parts[2], parts[3]])
		.stdout(Stdio::piped())
		.spawn()
		.expect("spawn fetcher");
	let mut progress = BufReader::new(child.stdout.take().unwrap()).lines();
	let mut last = 0u64;
	while last < data / 2 {
		last = progress.next().expect("fetcher output").unwrap().parse().unwrap_or(last);
	}
	child.kill().expect("SIGKILL");
	for l in progress.map_while(Result::ok) {
		last = l.parse().unwrap_or(last);
	}
	let _ = child.wait();
	let node = start(&fetch_dir).await;
	let (_tx3, rx) = watch::channel(vec![holder.clone()]);
	let resumed = node.sync_segment(SEG, head, rx).await.expect("resume");
	let refetched = (last + resumed.fetched_bytes).saturating_sub(data);
	println!(
		"(3) resume after kill -9 at {:.0} %: kept {} MiB, fetched {} MiB, re-fetched {:.2} MiB = {:.3} % of the data",
		100.0 * last as f64 / data as f64,
		resumed.resumed_bytes / MIB,
		resumed.fetched_bytes / MIB,
		refetched as f64 / MIB as f64,
		100.0 * refetched as f64 / data as f64
	);
	node.shutdown();
	drop(node);
	drop(primary.stdin.take());
	let _ = primary.wait();

	// (2): Primary egress with n Replicas joining at once (all in this process).
	let mut egress = Vec::new();
	let pdir = base.join("egress-primary");
	let p = start(&pdir).await;
	let ehead = populate(p.store(), SEG, egress_size, egress_size / 8).expect("populate");
	let paddr = p.listen_addrs().await;
	for n in [1usize, 2, 4, 8] {
		let before = p.served();
		let mut replicas = Vec::new();
		for i in 0..n {
			let r = start(&base.join(format!("egress-{n}-{i}"))).await;
			let a = r.listen_addrs().await;
			replicas.push((r, a));
		}
		let mut holders = vec![Holder { peer: p.peer_id(), addrs: paddr.clone(), primary: true }];
		holders.extend(replicas.iter().map(|(r, a)| Holder {
			peer: r.peer_id(),
			addrs: a.clone(),
			primary: false,
		}));
		let (_tx, rx) = watch::channel(holders);
		let tasks: Vec<_> = replicas
			.iter()
			.map(|(r, _)| {
				let (r, rx) = (r.clone(), rx.clone());
				tokio::spawn(async move { r.sync_segment(SEG, ehead, rx).await })
			})
			.collect();
		for t in tasks {
			let r = t.await.unwrap().expect("replica sync");
			if std::env::var("SYNC_TRACE").is_ok() {
				let fromp = r.by_peer.get(&p.peer_id()).copied().unwrap_or(0);
				eprintln!(
					"n={n} from primary {:.2} fetched {:.2} outboards {}",
					fromp as f64 / ehead.facts.bytes as f64,
					r.fetched_bytes as f64 / ehead.facts.bytes as f64,
					r.outboard_bytes
				);
			}
		}
		let served = (p.served() - before) as f64 / ehead.facts.bytes as f64;
		egress.push((n, served));
		for (r, _) in replicas {
			r.shutdown();
		}
		for i in 0..n {
			let _ = std::fs::remove_dir_all(base.join(format!("egress-{n}-{i}")));
		}
	}
	p.shutdown();
	let figures = deltas::run(&base, arg("--ops", 200_000)).await;
	println!("(2) Primary egress, {} MiB segment:", ehead.facts.bytes / MIB);
	println!("    n  copies served  per Replica  goal (1.5/n)");
	for (n, c) in &egress {
		println!("    {n}  {c:>13.2}  {:>11.3}  {:>12.3}", c / *n as f64, 1.5 / *n as f64);
	}
	println!();
	println!("| figure | measured | goal |");
	println!("|---|---|---|");
	println!(
		"| (1) verified sync, {} MiB, loopback (median of {runs}) | {:.0} MB/s | ≥ 500 MB/s |",
		data / MIB,
		mbps
	);
	for (n, c) in &egress {
		println!(
			"| (2) Primary egress per Replica, n = {n} | {:.3} × data | ≤ {:.3} |",
			c / *n as f64,
			1.5 / *n as f64
		);
	}
	println!(
		"| (3) re-fetched after kill -9 at 50 % | {:.3} % | ≤ 1 % |",
		100.0 * refetched as f64 / data as f64
	);
	println!(
		"| (4) peak RSS of the receiving node during (1) | {} MiB (process before: {} MiB) | — |",
		rss / 1024,
		rss_before / 1024
	);
	figures.print_rows();
	let _ = std::fs::remove_dir_all(&base);
}

fn num_cpus() -> usize {
	std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Transport ceiling: one libp2p stream (TCP + Noise + Yamux as configured by sync-net) pushing
/// `bytes` from a child process to this one, nothing else.
mod raw {
	use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
	use libp2p::{noise, tcp, StreamProtocol};
	use std::time::{Duration, Instant};
	const P: StreamProtocol = StreamProtocol::new("/raw/1");

	fn swarm(window: Option<u32>) -> libp2p::Swarm<libp2p_stream::Behaviour> {
		libp2p::SwarmBuilder::with_new_identity()
			.with_tokio()
			.with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, move || {
				sync_net::swarm::yamux_config(window)
			})
			.unwrap()
			.with_quic()
			.with_behaviour(|_| libp2p_stream::Behaviour::new())
			.unwrap()
			.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
			.build()
	}

	pub async fn serve(bytes: u64) {
		let mut s = swarm(Some(16 << 20));
		let listen = if std::env::var("RAW_QUIC").is_ok() {
			"/ip4/127.0.0.1/udp/0/quic-v1"
		} else {
			"/ip4/127.0.0.1/tcp/0"
		};
		s.listen_on(listen.parse().unwrap()).unwrap();
		let mut incoming = s.behaviour().new_control().accept(P).unwrap();
		let addr = loop {
			if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
				s.select_next_some().await
			{
				break address;
			}
		};
		println!("RAW {} {}", s.local_peer_id(), addr);
		tokio::spawn(async move {
			while let Some((_, mut st)) = incoming.next().await {
				let buf = vec![7u8; 1 << 20];
				let mut left = bytes;
				while left > 0 {
					st.write_all(&buf).await.unwrap();
					left -= buf.len() as u64;
				}
				st.close().await.unwrap();
			}
		});
		loop {
			s.select_next_some().await;
		}
	}

	pub async fn fetch(peer: &str, addr: &str, bytes: u64) -> f64 {
		let mut s = swarm(Some(16 << 20));
		let mut control = s.behaviour().new_control();
		let peer: libp2p::PeerId = peer.parse().unwrap();
		s.dial(
			libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
				.addresses(vec![addr.parse().unwrap()])
				.build(),
		)
		.unwrap();
		tokio::spawn(async move {
			loop {
				s.select_next_some().await;
			}
		});
		let mut st = control.open_stream(peer, P).await.unwrap();
		let t = Instant::now();
		let mut buf = vec![0u8; 1 << 20];
		let mut got = 0u64;
		while got < bytes {
			let n = st.read(&mut buf).await.unwrap();
			if n == 0 {
				break;
			}
			got += n as u64;
		}
		got as f64 / 1e6 / t.elapsed().as_secs_f64()
	}
}

/// Figures (5)–(7): live deltas.
mod deltas {
	use super::*;
	use std::sync::{
		atomic::{AtomicBool, AtomicU64, Ordering},
		Arc,
	};
	use sync_net::{deltas::single_owner, fixtures::blob};
	use sync_proto::{OpKind, OpVerifier, SignedOp};
	use sync_store::SegmentWrite;

	pub struct Figures {
		ops: u64,
		replay_store: f64,
		replay_store_big: f64,
		replay_net: f64,
		primary_only_write: f64,
		joins: Vec<Join>,
		lat: Vec<Duration>,
	}

	fn pct(v: &[Duration], p: f64) -> f64 {
		v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
	}

	impl Figures {
		pub fn print(&self) {
			println!("| figure | measured | goal |");
			println!("|---|---|---|");
			self.print_rows();
		}
		pub fn print_rows(&self) {
			println!(
				"| (5) delta replay, durable, {} ops: store, 256 / 4 096 ops per transaction; end to end over the network | {:.0} / {:.0}; {:.0} ops/s (Primary's own signed writes, 256 per batch: {:.0} ops/s) | ≥ 100 000 ops/s |",
				self.ops, self.replay_store, self.replay_store_big, self.replay_net, self.primary_only_write
			);
			for j in &self.joins {
				let limit = j.per_peer.map_or("unthrottled".to_string(), |r| {
					format!("serving ≤ {} MiB/s per peer", r / MIB)
				});
				println!(
					"| (6) Primary write throughput alone / while a co-Primary joins ({limit}) | {:.0} / {:.0} ops/s ({:+.1} %); co-Primary at parity {:.2} s after writes stop | drop ≤ 20 % |",
					j.alone,
					j.joining,
					100.0 * (j.joining / j.alone - 1.0),
					j.parity_secs
				);
			}
			println!(
				"| (7) write on the Primary → same root on 5 Replicas ({} writes) | p50 {:.1} ms, p99 {:.1} ms | — |",
				self.lat.len(),
				pct(&self.lat, 0.5),
				pct(&self.lat, 0.99)
			);
		}
	}

	async fn node(dir: &std::path::Path) -> (SyncNetwork, Holder) {
		node_limited(dir, None).await
	}

	async fn node_limited(dir: &std::path::Path, per_peer: Option<u64>) -> (SyncNetwork, Holder) {
		let mut cfg = NetConfig::new(Keypair::generate_ed25519());
		cfg.head_poll = Duration::from_millis(500);
		serve_as_registered(&mut cfg);
		cfg.limits.bytes_per_sec_per_peer = per_peer;
		let net = SyncNetwork::start(cfg, Store::open(dir).expect("open store"))
			.await
			.expect("start");
		let addrs = net.listen_addrs().await;
		let h = Holder { peer: net.peer_id(), addrs, primary: false };
		(net, h)
	}

	fn verifier(primary: PeerId) -> Arc<dyn OpVerifier + Send + Sync> {
		// The genesis hash of `NetConfig::new` (all zero), which the Primary signs for.
		Arc::new(single_owner([0; 32], primary))
	}

	fn small(i: u64) -> SegmentWrite {
		SegmentWrite::Put {
			key: format!("key-{i:09}").into_bytes(),
			data: blob(i, 64 + (i % 256) as usize),
		}
	}

	/// One run of (6).
	pub struct Join {
		per_peer: Option<u64>,
		alone: f64,
		joining: f64,
		parity_secs: f64,
	}

	async fn join_while_writing(base: &std::path::Path, per_peer: Option<u64>) -> Join {
		let (p, mut ph) = node_limited(&base.join("w-primary"), per_peer).await;
		ph.primary = true;
		populate(p.store(), SEG, 64 * MIB, 8 * MIB).expect("populate");
		// The owner pins what it commits; the committed root is the joiner's snapshot target.
		let committed = p.store().pin_snapshot(SEG).expect("pin").expect("held");
		let (_anchors_tx, anchors) = watch::channel(vec![committed]);
		let writes = |p: SyncNetwork, stop: Arc<AtomicBool>, count: Arc<AtomicU64>, from: u64| {
			std::thread::spawn(move || {
				let mut i = from;
				while !stop.load(Ordering::SeqCst) {
					let batch = (i..i + 16)
						.map(|k| SegmentWrite::Put {
							key: format!("w{k}").into_bytes(),
							data: blob(k, 1024),
						})
						.collect();
					p.write(SEG, 1, batch).expect("write");
					i += 16;
					count.fetch_add(16, Ordering::Relaxed);
				}
				i
			})
		};
		let window = Duration::from_secs(4);
		let measure = |from: u64, p: SyncNetwork| {
			let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
			let w = writes(p, stop.clone(), count.clone(), from);
			(stop, count, w)
		};
		let (stop, count, w) = measure(0, p.clone());
		tokio::time::sleep(window).await;
		stop.store(true, Ordering::SeqCst);
		let next = w.join().unwrap();
		let alone = count.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
		let (c, mut ch) = node(&base.join("w-co")).await;
		ch.primary = true;
		let (stop, count, w) = measure(next, p.clone());
		let (_tx, rx) = watch::channel(vec![ph.clone(), ch]);
		let follower = c.follow(SEG, rx, anchors, verifier(p.peer_id()));
		tokio::time::sleep(window).await;
		stop.store(true, Ordering::SeqCst);
		w.join().unwrap();
		let joining = count.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
		let t = Instant::now();
		let last = p.store().head(SEG).unwrap();
		let got = tokio::time::timeout(Duration::from_secs(300), follower.reached(last.seq))
			.await
			.expect("co-Primary parity");
		let parity_secs = t.elapsed().as_secs_f64();
		assert_eq!(got, last, "co-Primary at the owner's root");
		drop(follower);
		c.shutdown();
		p.shutdown();
		Join { per_peer, alone, joining, parity_secs }
	}

	pub async fn run(base: &std::path::Path, ops: u64) -> Figures {
		// (5) A Primary log of `ops` small puts written in batches of 256.
		let (p, mut ph) = node(&base.join("d-primary")).await;
		ph.primary = true;
		let t = Instant::now();
		for b in (0..ops).step_by(256) {
			p.write(SEG, 1, (b..(b + 256).min(ops)).map(small).collect()).expect("write");
		}
		let primary_only_write = ops as f64 / t.elapsed().as_secs_f64();
		let head = p.store().head(SEG).expect("head");
		// Store replay: ops read into memory, replays timed, into fresh stores holding the objects.
		let mut batches = Vec::new();
		let mut from = 1;
		while from <= head.seq {
			let batch = p.store().ops(SEG, from, 256).expect("ops");
			from += batch.len() as u64;
			batches.push(batch);
		}
		let v = verifier(p.peer_id());
		let replay_at = |dir: &str, per_tx: &[Vec<SignedOp>]| {
			let f = Store::open(base.join(dir)).expect("open");
			for o in per_tx.iter().flatten() {
				if let OpKind::Put { cid, size, .. } = &o.op.kind {
					f.write_group(cid, *size, 0, &p.store().read_object(cid).expect("object"))
						.expect("copy");
				}
			}
			f.flush().expect("flush");
			let t = Instant::now();
			for b in per_tx {
				f.replay(SEG, b, &*v).expect("replay");
			}
			let rate = ops as f64 / t.elapsed().as_secs_f64();
			assert_eq!(f.head(SEG), Some(head));
			rate
		};
		let replay_store = replay_at("d-replay-256", &batches);
		// The same with 16 responses (4 096 ops) per durable transaction.
		let big: Vec<Vec<_>> = batches.chunks(16).map(|c| c.concat()).collect();
		let replay_store_big = replay_at("d-replay-4096", &big);
		// End to end: a fresh node catches up over the network (ops + objects + replay).
		let (g, _) = node(&base.join("d-net")).await;
		g.dial(p.peer_id(), ph.addrs.clone()).await.expect("dial");
		let anyone = single_owner([0; 32], p.peer_id());
		let t = Instant::now();
		let reached =
			g.catch_up(SEG, head.seq, p.peer_id(), &anyone, None).await.expect("catch up");
		let replay_net = ops as f64 / t.elapsed().as_secs_f64();
		assert_eq!(reached, head);
		g.shutdown();
		p.shutdown();

		// (6) Write throughput alone, then while a co-Primary joins; unthrottled, and with the
		// Primary's serving limited to 16 MiB/s per peer.
		let mut joins = Vec::new();
		for (k, per_peer) in [None, Some(16 * MIB)].into_iter().enumerate() {
			joins.push(join_while_writing(&base.join(format!("w{k}")), per_peer).await);
		}
		// (7) Latency from a write to the same root on 5 Replicas.
		let (p, mut ph) = node(&base.join("l-primary")).await;
		ph.primary = true;
		p.write(SEG, 1, (0..100).map(small).collect()).expect("write");
		let committed = p.store().pin_snapshot(SEG).expect("pin").expect("held");
		let (_anchors_tx, anchors) = watch::channel(vec![committed]);
		let mut nodes = Vec::new();
		let mut holders = vec![ph];
		for i in 0..5 {
			let (r, h) = node(&base.join(format!("l-replica-{i}"))).await;
			holders.push(h);
			nodes.push(r);
		}
		let (_tx, rx) = watch::channel(holders);
		let v = verifier(p.peer_id());
		let followers: Vec<_> = nodes
			.iter()
			.map(|r| r.follow(SEG, rx.clone(), anchors.clone(), v.clone()))
			.collect();
		let start_seq = p.store().head(SEG).unwrap().seq;
		for f in &followers {
			f.reached(start_seq).await;
		}
		let writes = 300u64;
		// Each follower records when its head first reached each seq.
		let seen: Vec<_> = followers
			.iter()
			.map(|f| {
				let mut rx = f.head();
				tokio::spawn(async move {
					let mut at = vec![None; writes as usize + 1];
					let mut prev = start_seq;
					while rx.changed().await.is_ok() {
						let now = Instant::now();
						let Some(h) = *rx.borrow() else { continue };
						for s in prev + 1..=h.seq.min(start_seq + writes) {
							at[(s - start_seq) as usize] = Some(now);
						}
						prev = prev.max(h.seq);
						if prev >= start_seq + writes {
							break;
						}
					}
					at
				})
			})
			.collect();
		let mut started = Vec::new();
		for i in 0..writes {
			started.push(Instant::now());
			p.write(SEG, 1, vec![small(1_000 + i)]).expect("write");
			tokio::time::sleep(Duration::from_millis(10)).await;
		}
		let mut all = Vec::new();
		for s in seen {
			all.push(
				tokio::time::timeout(Duration::from_secs(60), s)
					.await
					.expect("replicas converge")
					.unwrap(),
			);
		}
		let mut lat: Vec<Duration> = (1..=writes as usize)
			.map(|k| {
				all.iter()
					.map(|at| at[k].expect("reached").duration_since(started[k - 1]))
					.max()
					.unwrap()
			})
			.collect();
		lat.sort();
		drop(followers);
		for r in nodes {
			r.shutdown();
		}
		p.shutdown();
		Figures { ops, replay_store, replay_store_big, replay_net, primary_only_write, joins, lat }
	}
}
