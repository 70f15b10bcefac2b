//! The sync service: the data plane (`sync-net` over a `sync-store`) inside the node, told by
//! the chain what to hold.
//!
//! It runs as an essential task. On every finalized block it reads, through the runtime API,
//! the node registered with this data plane's peer id, the segments that node owns, is a
//! Primary of, or holds, and for each segment its Primaries and holders with their data-plane
//! addresses. The holder list of each segment is handed to the data plane as a `watch` value;
//! segments this node does not own are followed (snapshot, then live deltas; a co-Primary
//! mirrors the owner the same way), and only ops signed by the segment's Primaries *on chain*
//! are accepted.
//!
//! The data-plane identity is an Ed25519 key kept in `<sync-data-dir>/network-key` (created on
//! first start). Its peer id is what the node is registered with on chain (`register_node`'s
//! `peer_id`), which binds the two: the chain never lists a data plane that cannot prove that
//! key in its Noise handshake.
use crate::service::FullClient;
use futures::StreamExt;
use sc_client_api::BlockchainEvents;
use sp_api::ProvideRuntimeApi;
use std::{
	collections::HashMap,
	path::{Path, PathBuf},
	sync::Arc,
};
use sync_net::{
	deltas::PrimaryKeys, Follower, Holder, Keypair, Multiaddr, NetConfig, PeerId, SyncNetwork,
};
use sync_primitives::{SegmentId, SyncRegistryApi};
use sync_runtime::{opaque::Block, AccountId};
use sync_store::Store;
use tokio::sync::watch;

/// What this node's data plane does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncRole {
	/// Accepts writes to the segments it owns and serves them; mirrors segments it is a
	/// co-Primary of.
	Primary,
	/// Follows the segments the chain assigns it and serves them to others.
	Replica,
	/// No data plane.
	None,
}

/// Data-plane options of `sync-node` (defaults are those of `sync_net::NetConfig`).
#[derive(Debug, Clone, clap::Args)]
pub struct SyncParams {
	/// Role of the data plane. Default: `primary` with `--dev`, else `replica`.
	#[arg(long, value_enum)]
	pub sync_role: Option<SyncRole>,

	/// Directory of the data plane's store and key. Default: `sync` in the chain's directory
	/// under `--base-path`.
	#[arg(long, value_name = "PATH")]
	pub sync_data_dir: Option<PathBuf>,

	/// Data-plane listen address (repeatable). Default `/ip4/0.0.0.0/tcp/30433`
	/// (`/ip4/127.0.0.1/tcp/30433` with `--dev`).
	#[arg(long, value_name = "MULTIADDR")]
	pub sync_listen_addr: Vec<Multiaddr>,

	/// Data-plane peers to connect to at start: `/ip4/…/tcp/…/p2p/<peer id>` (repeatable).
	#[arg(long, value_name = "MULTIADDR")]
	pub sync_bootnodes: Vec<Multiaddr>,

	/// Data-plane peers never cooled down or dropped, e.g. the operator's own nodes
	/// (repeatable).
	#[arg(long, value_name = "PEER_ID")]
	pub sync_trusted_peers: Vec<PeerId>,

	/// Peers one sync downloads from at once.
	#[arg(long, default_value_t = 16)]
	pub sync_concurrency: usize,

	/// Most data-plane peers kept for a sync.
	#[arg(long, default_value_t = 64)]
	pub sync_high_cap: usize,

	/// Below this many usable peers, discovery runs in the background.
	#[arg(long, default_value_t = 8)]
	pub sync_low_cap_soft: usize,

	/// Below this many usable peers, discovery runs at once and reserved peers are promoted.
	#[arg(long, default_value_t = 3)]
	pub sync_low_cap_hard: usize,

	/// Inbound transfer streams served at once.
	#[arg(long, default_value_t = 64)]
	pub sync_max_streams: usize,

	/// Inbound transfer streams per peer.
	#[arg(long, default_value_t = 4)]
	pub sync_max_streams_per_peer: usize,

	/// Bytes per second served to one peer (unlimited if unset).
	#[arg(long, value_name = "BYTES")]
	pub sync_serve_rate_per_peer: Option<u64>,

	/// Bytes per second served in total (unlimited if unset).
	#[arg(long, value_name = "BYTES")]
	pub sync_serve_rate_total: Option<u64>,

	/// Register this node on chain (`registerNode`, signed by the `sync` key in the keystore)
	/// with the data plane's peer id and addresses, unless a node with that peer id exists.
	#[arg(long)]
	pub sync_register: bool,

	/// Data-plane address registered on chain (repeatable). Default: the listen addresses.
	#[arg(long, value_name = "MULTIADDR")]
	pub sync_public_addr: Vec<Multiaddr>,

	/// Serve the HTTP object API (streamed bodies, any size) on this address, e.g.
	/// `127.0.0.1:9955`. Off by default.
	#[arg(long, value_name = "ADDR")]
	pub sync_http_addr: Option<std::net::SocketAddr>,

	/// Largest object the HTTP object API accepts, in bytes.
	#[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
	pub sync_http_max_object: u64,

	/// Blocks between root commits of an owned segment (a commit is made only if the head
	/// moved). A holder is Lagging once its proven root is more than the runtime's `MaxLag`
	/// commits old, and a claim-to-proof round takes about 5 blocks, so keep this above
	/// 5 / `MaxLag` (3 with the runtime's `MaxLag` of 2) or holders never become Active while
	/// writes go on.
	#[arg(long, default_value_t = 10, value_name = "BLOCKS")]
	pub sync_commit_every: u32,
}

/// Everything the service needs, resolved from the options and the node's configuration.
pub struct SyncConfig {
	/// The role (never `None` here).
	pub role: SyncRole,
	/// Store and key directory.
	pub data_dir: PathBuf,
	/// The data plane's configuration (its identity loaded from `data_dir`).
	pub net: NetConfig,
	/// Register on chain (with these public addresses, or the listen addresses if empty).
	pub register: Option<Vec<Multiaddr>>,
	/// Blocks between root commits.
	pub commit_every: u32,
	/// HTTP object API: address and largest object.
	pub http: Option<(std::net::SocketAddr, u64)>,
}

impl SyncParams {
	/// Resolves the options; `None` if the data plane is off.
	pub fn resolve(
		&self,
		dev: bool,
		chain_dir: &Path,
		registry: Option<prometheus::Registry>,
	) -> Result<Option<SyncConfig>, String> {
		let role =
			self.sync_role
				.unwrap_or(if dev { SyncRole::Primary } else { SyncRole::Replica });
		if role == SyncRole::None {
			return Ok(None);
		}
		let data_dir = self.sync_data_dir.clone().unwrap_or_else(|| chain_dir.join("sync"));
		std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
		let mut net = NetConfig::new(load_or_create_key(&data_dir.join("network-key"))?);
		net.listen = if self.sync_listen_addr.is_empty() {
			let host = if dev { "127.0.0.1" } else { "0.0.0.0" };
			vec![format!("/ip4/{host}/tcp/30433").parse().expect("valid multiaddr")]
		} else {
			self.sync_listen_addr.clone()
		};
		for addr in &self.sync_bootnodes {
			let Some(sync_net::Protocol::P2p(peer)) = addr.iter().last() else {
				return Err(format!("--sync-bootnodes {addr}: must end with /p2p/<peer id>"));
			};
			net.bootnodes.push((peer, addr.clone()));
		}
		net.peers.trusted = self.sync_trusted_peers.iter().copied().collect();
		net.peers.concurrency = self.sync_concurrency;
		net.peers.high_cap = self.sync_high_cap;
		net.peers.low_cap_soft = self.sync_low_cap_soft;
		net.peers.low_cap_hard = self.sync_low_cap_hard;
		net.limits.max_streams = self.sync_max_streams;
		net.limits.max_streams_per_peer = self.sync_max_streams_per_peer;
		net.limits.bytes_per_sec_per_peer = self.sync_serve_rate_per_peer;
		net.limits.bytes_per_sec_total = self.sync_serve_rate_total;
		net.registry = registry;
		if self.sync_commit_every == 0 {
			return Err("--sync-commit-every must be at least 1".into());
		}
		let register = self.sync_register.then(|| self.sync_public_addr.clone());
		let http = self.sync_http_addr.map(|a| (a, self.sync_http_max_object));
		Ok(Some(SyncConfig {
			role,
			data_dir,
			net,
			register,
			commit_every: self.sync_commit_every,
			http,
		}))
	}
}

/// The data-plane key: 32 secret bytes in a file only the node's user can read.
fn load_or_create_key(path: &Path) -> Result<Keypair, String> {
	let err = |e: std::io::Error| format!("{}: {e}", path.display());
	if path.exists() {
		let mut bytes = std::fs::read(path).map_err(err)?;
		return Keypair::ed25519_from_bytes(&mut bytes)
			.map_err(|e| format!("{}: {e}", path.display()));
	}
	let key = Keypair::generate_ed25519();
	let secret = key.clone().try_into_ed25519().expect("generated as Ed25519").secret();
	let tmp = path.with_extension("tmp");
	std::fs::write(&tmp, secret.as_ref()).map_err(err)?;
	#[cfg(unix)]
	{
		use std::os::unix::fs::PermissionsExt;
		std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
	}
	std::fs::rename(&tmp, path).map_err(err)?;
	Ok(key)
}

/// What the RPC methods and the op verifier see of the running service.
#[derive(Default)]
pub struct SyncHandle {
	net: std::sync::OnceLock<SyncNetwork>,
	/// The segments of this node as of the last finalized block (the one place they are kept).
	segments: parking_lot::RwLock<std::collections::BTreeMap<SegmentId, SegmentView>>,
}

impl SyncHandle {
	/// The data plane, once started.
	pub fn network(&self) -> Option<&SyncNetwork> {
		self.net.get()
	}

	/// Whether this node owns `segment` on chain (accepts writes for it).
	pub fn owns(&self, segment: SegmentId) -> bool {
		self.segments.read().get(&segment).is_some_and(|s| s.duty.owner)
	}
}

/// Starts the service as an essential task: if the data plane cannot start, the node stops.
pub fn spawn(
	task_manager: &sc_service::TaskManager,
	client: Arc<FullClient>,
	backend: Arc<crate::service::FullBackend>,
	config: SyncConfig,
	handle: Arc<SyncHandle>,
) {
	if let Some((addr, max_object)) = config.http {
		let h = handle.clone();
		task_manager
			.spawn_essential_handle()
			.spawn("sync-object-http", Some("sync"), async move {
				if let Err(e) = crate::object_http::serve(addr, h, max_object).await {
					log::error!(target: "sync", "object API on {addr} stopped: {e}");
				}
			});
	}
	task_manager
		.spawn_essential_handle()
		.spawn("sync-service", Some("sync"), async move {
			if let Err(e) = run(client, backend, config, handle).await {
				log::error!(target: "sync", "sync service stopped: {e}");
			}
		});
}

/// What the service tracks per segment.
struct Tracked {
	holders: watch::Sender<Vec<Holder>>,
	follower: Option<Follower>,
	/// Whether this node owned it at the last block (`None` before the first).
	owner: Option<bool>,
	last_logged: Option<u64>,
	last_status: Option<(sync_primitives::HoldingStatus, Option<u64>)>,
	/// Verified bytes of a snapshot in progress at the last progress line, and when.
	progress: Option<(i64, std::time::Instant)>,
}

async fn run(
	client: Arc<FullClient>,
	backend: Arc<crate::service::FullBackend>,
	config: SyncConfig,
	handle: Arc<SyncHandle>,
) -> Result<(), String> {
	let SyncConfig { role, data_dir, net, register, commit_every, http: _ } = config;
	let store = Store::open(data_dir.join("store")).map_err(|e| format!("store: {e}"))?;
	let net = SyncNetwork::start(net, store).await.map_err(|e| e.to_string())?;
	let _ = handle.net.set(net.clone());
	let addrs = net.listen_addrs().await;
	log::info!(
		target: "sync",
		"💾 Data plane ({role:?}) peer id {} listening on {}",
		net.peer_id(),
		addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
	);
	// Ops are accepted only if signed by a Primary of the segment on chain.
	let verifier = {
		let h = handle.clone();
		Arc::new(PrimaryKeys(move |seg, peer: &PeerId| {
			h.segments.read().get(&seg).is_some_and(|s| s.primaries.contains(peer))
		}))
	};
	let register = register.map(|public| {
		let addrs = if public.is_empty() {
			addrs
				.iter()
				.filter(|a| {
					!a.iter()
						.any(|p| matches!(p, sync_net::Protocol::Ip4(ip) if ip.is_unspecified()))
				})
				.cloned()
				.collect()
		} else {
			public
		};
		let role = if role == SyncRole::Primary {
			sync_primitives::NodeRole::Primary
		} else {
			sync_primitives::NodeRole::Replica
		};
		(role, addrs.iter().map(|a: &Multiaddr| a.to_string()).collect())
	});
	let mut duties =
		crate::duties::Duties::new(crate::duties::DutyConfig { register, commit_every }, backend);
	let mut tracked: HashMap<SegmentId, Tracked> = HashMap::new();
	let mut registered: Option<bool> = None;
	/// What the service wakes up for.
	enum Wake {
		/// A finalized block: the whole view (what to hold, follow, commit, claim).
		Finalized(<Block as sp_runtime::traits::Block>::Hash, u32),
		/// A new best block: only open challenges (their proof windows are short).
		Best(<Block as sp_runtime::traits::Block>::Hash),
	}
	let finality = client
		.finality_notification_stream()
		.map(|n| Wake::Finalized(n.hash, n.header.number));
	let best = client
		.import_notification_stream()
		.filter(|n| futures::future::ready(n.is_new_best))
		.map(|n| Wake::Best(n.hash));
	let mut wakes = futures::stream::select(finality, best);
	let mut me: Option<AccountId> = None;
	while let Some(wake) = wakes.next().await {
		let (hash, number) = match wake {
			Wake::Finalized(hash, number) => (hash, number),
			Wake::Best(hash) => {
				if let Some(account) = me.clone() {
					if let Ok(challenges) = client.runtime_api().open_challenges(hash, account) {
						duties.prove_all(&net, challenges, true).await;
					}
				}
				continue;
			},
		};
		let view = match chain_view(&client, hash, &net) {
			Ok(v) => v,
			Err(e) => {
				log::warn!(target: "sync", "reading the registry at {hash}: {e}");
				continue;
			},
		};
		let now_registered = view.is_some();
		if registered != Some(now_registered) {
			registered = Some(now_registered);
			if !now_registered {
				log::info!(
					target: "sync",
					"Data plane {} is not registered on chain yet: register it with `syncRegistry.registerNode` (peer id above)",
					net.peer_id()
				);
			}
		}
		me = view.as_ref().map(|v| v.0.clone());
		let (segments, challenges) = view.map(|(_, s, c)| (s, c)).unwrap_or_default();
		*handle.segments.write() = segments.iter().map(|s| (s.id, s.clone())).collect();
		tracked.retain(|id, _| segments.iter().any(|s| s.id == *id));
		for s in &segments {
			let t = tracked.entry(s.id).or_insert_with(|| Tracked {
				holders: watch::channel(Vec::new()).0,
				follower: None,
				owner: None,
				last_logged: None,
				last_status: None,
				progress: None,
			});
			if t.owner != Some(s.duty.owner) {
				let what =
					if s.duty.owner { "owner: serving and accepting writes" } else { "following" };
				log::info!(target: "sync", "segment {}: {what} ({} holders on chain)", s.id, s.holders.len());
				t.owner = Some(s.duty.owner);
			}
			t.holders
				.send_if_modified(|h| std::mem::replace(h, s.holders.clone()) != s.holders);
			// An owner writes; everyone else follows (a migration target until it owns the
			// segment, an old owner after it).
			if s.duty.owner {
				t.follower = None;
			} else if t.follower.is_none() {
				t.follower = Some(net.follow(s.id, t.holders.subscribe(), verifier.clone()));
			}
			log_progress(&net, s.id, t);
			let head = net.store().head(s.id);
			if head.map(|h| h.seq) != t.last_logged {
				t.last_logged = head.map(|h| h.seq);
				if let Some(h) = head {
					log::info!(
						target: "sync",
						"segment {}: seq {} root {} ({} entries, {} bytes)",
						s.id,
						h.seq,
						sync_store::Cid(h.facts.root),
						h.facts.entries,
						h.facts.bytes
					);
				}
			}
			if let Some((status, proven)) = s.duty.holding {
				if t.last_status != Some((status, proven)) {
					t.last_status = Some((status, proven));
					log::info!(target: "sync", "segment {}: on chain {status:?}, proven seq {proven:?}", s.id);
				}
			}
		}
		let duty: Vec<_> = segments.iter().map(|s| s.duty.clone()).collect();
		duties.on_finalized(number, &net, now_registered, &duty, challenges).await;
	}
	Ok(())
}

/// During a snapshot sync, one line per finalized block: verified bytes of the target, rate
/// since the last line, and the time left at that rate.
fn log_progress(net: &SyncNetwork, segment: SegmentId, t: &mut Tracked) {
	let Ok(Some(transfer)) = net.store().transfer(segment) else {
		t.progress = None;
		return;
	};
	let done = net.metrics().progress.with_label_values(&[&segment.to_string()]).get();
	let total = transfer.target.facts.bytes as i64;
	let now = std::time::Instant::now();
	let mib = |b: i64| b as f64 / (1 << 20) as f64;
	if let Some((before, at)) = t.progress {
		let rate = (done - before).max(0) as f64 / now.duration_since(at).as_secs_f64().max(1e-3);
		let eta = if rate > 0.0 {
			format!("{:.0} s", (total - done).max(0) as f64 / rate)
		} else {
			"unknown".into()
		};
		log::info!(
			target: "sync",
			"segment {segment}: syncing to seq {}: {:.1} of {:.1} MiB ({:.1} MiB/s, ETA {eta})",
			transfer.target.seq,
			mib(done),
			mib(total),
			rate / (1 << 20) as f64
		);
	}
	t.progress = Some((done, now));
}

/// One segment as the service sees it.
#[derive(Clone)]
pub struct SegmentView {
	id: SegmentId,
	/// Data-plane peer ids of its Primaries (whose op signatures are accepted).
	primaries: Vec<PeerId>,
	holders: Vec<Holder>,
	/// This node's part in it (owner, holding, roots to claim).
	duty: crate::duties::SegmentDuty,
}

/// The chain as this node sees it at a block: its account, segments and open challenges.
type ChainView = (AccountId, Vec<SegmentView>, Vec<sync_primitives::ChallengeSummary<u32>>);

/// The segments and open challenges of the node registered with this data plane's peer id,
/// at block `at`; `None` if no node is registered with it.
fn chain_view(
	client: &FullClient,
	at: <Block as sp_runtime::traits::Block>::Hash,
	net: &SyncNetwork,
) -> Result<Option<ChainView>, String> {
	let api = client.runtime_api();
	let e = |e: sp_api::ApiError| e.to_string();
	let Some(me) = api.node_by_peer_id(at, net.peer_id().to_bytes()).map_err(e)? else {
		return Ok(None);
	};
	let mut peers: HashMap<AccountId, Option<(PeerId, Vec<Multiaddr>)>> = HashMap::new();
	let mut data_plane_of =
		|account: &AccountId| -> Result<Option<(PeerId, Vec<Multiaddr>)>, String> {
			if let Some(p) = peers.get(account) {
				return Ok(p.clone());
			}
			let found = api.node_info(at, account.clone()).map_err(e)?.and_then(|n| {
				let peer = PeerId::from_bytes(&n.peer_id).ok()?;
				let addrs = n
					.multiaddrs
					.iter()
					.filter_map(|a| std::str::from_utf8(a).ok()?.parse::<Multiaddr>().ok())
					.collect();
				Some((peer, addrs))
			});
			peers.insert(account.clone(), found.clone());
			Ok(found)
		};
	let mut out = Vec::new();
	for id in api.node_segments(at, me.clone()).map_err(e)? {
		let Some(info) = api.segment_info(at, id).map_err(e)? else { continue };
		let mut primaries = Vec::new();
		let mut holders = Vec::new();
		for account in &info.primaries {
			if let Some((peer, addrs)) = data_plane_of(account)? {
				primaries.push(peer);
				holders.push(Holder { peer, addrs, primary: true });
			}
		}
		for (account, _status, _) in &info.holders {
			if let Some((peer, addrs)) = data_plane_of(account)? {
				if !holders.iter().any(|h| h.peer == peer) {
					holders.push(Holder { peer, addrs, primary: false });
				}
			}
		}
		let holding = info
			.holders
			.iter()
			.find(|(a, _, _)| *a == me)
			.map(|(_, status, proven)| (*status, *proven));
		let duty = crate::duties::SegmentDuty {
			id,
			owner: info.owner == me,
			primary: info.primaries.contains(&me),
			holding,
			migrating_here: info.migration.as_ref().is_some_and(|(to, done)| *to == me && !done),
			roots: info.roots.clone(),
		};
		out.push(SegmentView { id, primaries, holders, duty });
	}
	let challenges = api.open_challenges(at, me.clone()).map_err(e)?;
	Ok(Some((me, out, challenges)))
}

/// Most bytes of an object moved through one JSON-RPC call (hex doubles it on the wire).
pub const MAX_RPC_OBJECT: usize = 4 << 20;

/// The object API and status as JSON-RPC methods:
/// - `sync_status()`: peer id, addresses, and per tracked segment its head (seq, root,
///   entries, bytes), whether this node owns it, its lag in seqs and the pinned snapshots;
/// - `sync_put(segment, key, dataHex)`: writes an object into a segment this node owns on
///   chain (one signed op, announced to followers); returns the new seq and root;
/// - `sync_get(segment, key)`: the object under `key` (`null` if absent), verified against its
///   CID on read.
pub fn rpc_module(
	handle: Arc<SyncHandle>,
) -> Result<jsonrpsee::RpcModule<SyncHandle>, jsonrpsee::core::RegisterMethodError> {
	use jsonrpsee::types::ErrorObjectOwned;
	use serde_json::{json, Value};
	type Reply = Result<Value, ErrorObjectOwned>;
	fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
		ErrorObjectOwned::owned(code, msg.into(), None::<()>)
	}
	fn net(h: &SyncHandle) -> Result<&SyncNetwork, ErrorObjectOwned> {
		h.net.get().ok_or_else(|| {
			err(9000, "the sync service is not running (--sync-role none, or starting)")
		})
	}
	use crate::object_cmd::{hex, unhex};
	let mut m = jsonrpsee::RpcModule::from_arc(handle);
	m.register_blocking_method("sync_status", |_, h, _| -> Reply {
		let net = net(&h)?;
		let segments: Vec<Value> = h
			.segments
			.read()
			.iter()
			.map(|(id, s)| {
				let head = net.store().head(*id);
				let (status, proven) =
					s.duty.holding.map_or((None, None), |(st, p)| (Some(format!("{st:?}")), p));
				let transfer = net.store().transfer(*id).ok().flatten();
				// What the node is doing with the segment right now.
				let stage = match (s.duty.owner, &transfer, head) {
					(true, _, _) => "owner",
					(false, Some(_), _) => "snapshot",
					(false, None, Some(_)) => "following",
					(false, None, None) => "waiting",
				};
				json!({
					"segment": id,
					"stage": stage,
					"holdersOnChain": s.holders.len(),
					"owner": s.duty.owner,
					"primary": s.duty.primary,
					"chainStatus": status,
					"provenSeq": proven,
					"committedSeq": s.duty.roots.last().map(|r| r.seq),
					"seq": head.map(|h| h.seq),
					"root": head.map(|h| hex(&h.facts.root)),
					"entries": head.map(|h| h.facts.entries),
					"bytes": head.map(|h| h.facts.bytes),
					"lagSeqs": net.metrics().lag.with_label_values(&[&id.to_string()]).get(),
					"pinned": net.store().pinned(*id).iter().map(|h| h.seq).collect::<Vec<_>>(),
					"syncing": transfer.map(|t| json!({
						"targetSeq": t.target.seq,
						"verifiedBytes": net.metrics().progress.with_label_values(&[&id.to_string()]).get(),
						"totalBytes": t.target.facts.bytes,
					})),
				})
			})
			.collect();
		let [usable, cooling, banned] = net.peer_book().states(std::time::Instant::now());
		Ok(json!({
			"peerId": net.peer_id().to_string(),
			"bytesServed": net.served(),
			"bytesReceived": net.received(),
			"peers": { usable.0: usable.1, cooling.0: cooling.1, banned.0: banned.1 },
			"segments": segments,
		}))
	})?;
	m.register_blocking_method("sync_put", |params, h, _| -> Reply {
		let (segment, key, data): (u64, String, String) = params.parse()?;
		let net = net(&h)?;
		if !h.segments.read().get(&segment).is_some_and(|s| s.duty.owner) {
			return Err(err(9001, format!("this node does not own segment {segment} on chain; write to its owner")));
		}
		let digits = data.strip_prefix("0x").unwrap_or(&data);
		if digits.len() / 2 > MAX_RPC_OBJECT {
			return Err(err(9002, format!("object larger than {MAX_RPC_OBJECT} bytes")));
		}
		let bytes = unhex(digits).map_err(|_| err(9003, "data is not hex"))?;
		let write = sync_store::SegmentWrite::Put { key: key.into_bytes(), data: bytes };
		let head = net.write(segment, vec![write]).map_err(|e| err(9004, e.to_string()))?;
		Ok(json!({ "seq": head.seq, "root": hex(&head.facts.root), "entries": head.facts.entries, "bytes": head.facts.bytes }))
	})?;
	m.register_blocking_method("sync_get", |params, h, _| -> Reply {
		let (segment, key): (u64, String) = params.parse()?;
		let net = net(&h)?;
		let Some(entry) = net.store().lookup(segment, key.as_bytes()) else {
			return Ok(Value::Null);
		};
		if entry.size as usize > MAX_RPC_OBJECT {
			return Err(err(
				9002,
				format!("object of {} bytes is larger than {MAX_RPC_OBJECT}", entry.size),
			));
		}
		let data = net.store().read_object(&entry.cid).map_err(|e| err(9004, e.to_string()))?;
		if sync_primitives::commitment::cid_of(&data) != entry.cid {
			return Err(err(9005, "stored object does not match its CID"));
		}
		Ok(json!({ "cid": hex(&entry.cid), "size": entry.size, "data": hex(&data) }))
	})?;
	Ok(m)
}
