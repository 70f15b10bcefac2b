//! The service's options: the `--sync-*` flags of `sync-node` and what they resolve to.
//!
//! Defaults of the data plane's knobs are not written here: clap takes them from
//! `sync_net::PeerManagerConfig::default()` and `sync_net::ServeLimits::default()`, so
//! `sync-node --help` always shows what the data plane really uses.
use std::path::{Path, PathBuf};
use sync_net::{Keypair, Multiaddr, NetConfig, PeerId, PeerManagerConfig, ServeLimits};

/// Data-plane port used when no `--sync-listen-addr` is given.
pub const DEFAULT_PORT: u16 = 30433;
/// Blocks between root commits of an owned segment, unless `--sync-commit-every` says.
pub const DEFAULT_COMMIT_EVERY: u32 = 10;
/// Finalized blocks a segment this node no longer holds keeps its data before it is deleted,
/// unless `--sync-gc-grace` says (600: an hour at 6 s blocks).
pub const DEFAULT_GC_GRACE: u32 = 600;
/// Largest object the HTTP object API accepts, unless `--sync-http-max-object` says.
pub const DEFAULT_HTTP_MAX_OBJECT: u64 = 256 << 20;
/// File name of the data-plane key in the data directory.
pub const KEY_FILE: &str = "network-key";

/// The data directory: `--sync-data-dir` if given, else `sync` in the chain's directory
/// (`<base path>/chains/<chain spec id>`). The one rule, used by the node and by
/// `sync-node key sign-peer-binding`.
pub fn data_dir(sync_data_dir: Option<&Path>, chain_dir: &Path) -> PathBuf {
	sync_data_dir.map_or_else(|| chain_dir.join("sync"), Path::to_path_buf)
}

/// The store's directory inside the data directory `dir`.
pub fn store_dir(dir: &Path) -> PathBuf {
	dir.join(STORE_DIR)
}

/// Name of the store's directory in the data directory.
pub const STORE_DIR: &str = "store";

/// Removes the sync store (objects, indexes, op logs, uploads) of the data directory `dir`:
/// its `store/` directory only, so a `--sync-data-dir` pointing at a directory with anything
/// else in it (a base path, a home directory) loses nothing else, and the data-plane key
/// ([`KEY_FILE`]) stays, as Substrate keeps the network key: the node's peer id, registered on
/// chain, stays the same. `false` if there was no store. For `purge-chain`.
pub fn purge_data_dir(dir: &Path) -> std::io::Result<bool> {
	match std::fs::remove_dir_all(store_dir(dir)) {
		Ok(()) => Ok(true),
		Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
		Err(e) => Err(e),
	}
}

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

/// Data-plane options of `sync-node` (the data plane's defaults are those of `sync_net`).
#[derive(Debug, Clone, clap::Args)]
pub struct SyncParams {
	/// Role of the data plane. Default: `primary` with `--dev`, else `replica`.
	#[arg(long, value_enum)]
	pub sync_role: Option<SyncRole>,

	/// Directory of the data plane's store and key. Default: `sync` in the chain's directory
	/// under `--base-path`.
	#[arg(long, value_name = "PATH")]
	pub sync_data_dir: Option<PathBuf>,

	/// Data-plane listen address (repeatable). Default: all interfaces (loopback with `--dev`),
	/// port [`DEFAULT_PORT`].
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
	#[arg(long, default_value_t = PeerManagerConfig::default().concurrency)]
	pub sync_concurrency: usize,

	/// Most data-plane peers kept for a sync.
	#[arg(long, default_value_t = PeerManagerConfig::default().high_cap)]
	pub sync_high_cap: usize,

	/// Below this many usable peers, discovery runs in the background.
	#[arg(long, default_value_t = PeerManagerConfig::default().low_cap_soft)]
	pub sync_low_cap_soft: usize,

	/// Below this many usable peers, discovery runs at once and reserved peers are promoted.
	#[arg(long, default_value_t = PeerManagerConfig::default().low_cap_hard)]
	pub sync_low_cap_hard: usize,

	/// Inbound transfer streams served at once.
	#[arg(long, default_value_t = ServeLimits::default().max_streams)]
	pub sync_max_streams: usize,

	/// Inbound transfer streams per peer.
	#[arg(long, default_value_t = ServeLimits::default().max_streams_per_peer)]
	pub sync_max_streams_per_peer: usize,

	/// Bytes per second served to one peer (unlimited if unset).
	#[arg(long, value_name = "BYTES")]
	pub sync_serve_rate_per_peer: Option<u64>,

	/// Bytes per second served in total (unlimited if unset).
	#[arg(long, value_name = "BYTES")]
	pub sync_serve_rate_total: Option<u64>,

	/// Bytes per second served to one peer the chain does not list as a holder of a segment
	/// this node holds (0: no extra limit).
	#[arg(
		long,
		value_name = "BYTES",
		default_value_t = ServeLimits::default().unknown_peer_bytes_per_sec.unwrap_or(0)
	)]
	pub sync_unknown_peer_rate: u64,

	/// Bytes per second the background scrub re-reads and re-verifies stored objects at,
	/// quarantining and re-fetching what fails (0: no scrub).
	#[arg(long, value_name = "BYTES", default_value_t = sync_net::config::DEFAULT_SCRUB_RATE)]
	pub sync_scrub_rate: u64,

	/// Most data-plane connections at once (inbound and outbound).
	#[arg(long, default_value_t = ServeLimits::default().max_connections)]
	pub sync_max_connections: u32,

	/// Most inbound data-plane connections per remote IP address from peers the chain does not
	/// list as holders (raise it if many such nodes share one address).
	#[arg(long, default_value_t = ServeLimits::default().max_connections_per_ip)]
	pub sync_max_connections_per_ip: u32,

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
	#[arg(long, default_value_t = DEFAULT_HTTP_MAX_OBJECT, value_name = "BYTES")]
	pub sync_http_max_object: u64,

	/// File holding the bearer token every PUT to the HTTP object API must carry
	/// (`authorization: Bearer <token>`; at least 32 visible characters, e.g. from
	/// `openssl rand -hex 32`). Without it, only clients on loopback may PUT.
	#[arg(long, value_name = "PATH")]
	pub sync_http_token_file: Option<PathBuf>,

	/// Blocks between root commits of an owned segment (a commit is made only if the head
	/// moved). A holder is Lagging once its proven root is more than the runtime's `MaxLag`
	/// commits old, and a claim-to-proof round takes about 5 blocks, so keep this above
	/// 5 / `MaxLag` (3 with the runtime's `MaxLag` of 2) or holders never become Active while
	/// writes go on.
	#[arg(long, default_value_t = DEFAULT_COMMIT_EVERY, value_name = "BLOCKS")]
	pub sync_commit_every: u32,

	/// Finalized blocks the data of a segment this node no longer holds (released after a
	/// migration, left, removed) is kept before it is deleted; objects other segments share
	/// are kept.
	#[arg(long, default_value_t = DEFAULT_GC_GRACE, value_name = "BLOCKS")]
	pub sync_gc_grace: u32,
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
	/// Blocks before the data of a segment no longer held is deleted.
	pub gc_grace: u32,
	/// HTTP object API.
	pub http: Option<crate::http::HttpConfig>,
	/// `--dev`, or a chain spec of a local or development chain: registering loopback
	/// addresses is fine there (see [`crate::health`]). [`SyncParams::resolve`] sets it from
	/// `--dev`; the node also sets it for a local chain spec.
	pub local_chain: bool,
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
		let data_dir = data_dir(self.sync_data_dir.as_deref(), chain_dir);
		std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
		let mut net = NetConfig::new(load_or_create_key(&data_dir.join(KEY_FILE))?);
		net.listen = if self.sync_listen_addr.is_empty() {
			let host =
				if dev { std::net::Ipv4Addr::LOCALHOST } else { std::net::Ipv4Addr::UNSPECIFIED };
			vec![Multiaddr::empty()
				.with(sync_net::Protocol::Ip4(host))
				.with(sync_net::Protocol::Tcp(DEFAULT_PORT))]
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
		net.limits.unknown_peer_bytes_per_sec =
			(self.sync_unknown_peer_rate > 0).then_some(self.sync_unknown_peer_rate);
		net.limits.max_connections = self.sync_max_connections;
		net.scrub_rate = self.sync_scrub_rate;
		net.limits.max_connections_per_ip = self.sync_max_connections_per_ip;
		net.registry = registry;
		if self.sync_commit_every == 0 {
			return Err("--sync-commit-every must be at least 1".into());
		}
		if self.sync_gc_grace == 0 {
			return Err("--sync-gc-grace must be at least 1 (blocks)".into());
		}
		let register = self.sync_register.then(|| self.sync_public_addr.clone());
		let token = match (&self.sync_http_token_file, self.sync_http_addr) {
			(Some(_), None) => {
				return Err("--sync-http-token-file needs --sync-http-addr (the object API)".into())
			},
			(Some(path), Some(_)) => Some(crate::http::BearerToken::from_file(path)?),
			(None, _) => None,
		};
		let http = self.sync_http_addr.map(|addr| crate::http::HttpConfig {
			addr,
			max_object: self.sync_http_max_object,
			token,
			limits: Default::default(),
		});
		Ok(Some(SyncConfig {
			role,
			data_dir,
			net,
			register,
			commit_every: self.sync_commit_every,
			gc_grace: self.sync_gc_grace,
			http,
			local_chain: dev,
		}))
	}
}

/// Reads the data-plane key at `path` (32 secret Ed25519 bytes, see [`KEY_FILE`]); never
/// creates one.
pub fn load_key(path: &Path) -> Result<Keypair, String> {
	let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
	Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The data-plane key: 32 secret bytes in a file only the node's user can read.
fn load_or_create_key(path: &Path) -> Result<Keypair, String> {
	let err = |e: std::io::Error| format!("{}: {e}", path.display());
	if path.exists() {
		return load_key(path);
	}
	let key = Keypair::generate_ed25519();
	let secret = key.clone().try_into_ed25519().map_err(|e| e.to_string())?.secret();
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

#[cfg(test)]
mod tests {
	use super::*;

	/// The defect: `purge-chain` left the sync data behind. Purging removes the store (its
	/// `store/` directory) and nothing else: the data-plane key stays, and so does anything
	/// else in a `--sync-data-dir` that is not only the node's (here, a keystore).
	#[test]
	fn purge_chain_removes_sync_data_but_the_key() {
		let dir = tempfile::tempdir().unwrap();
		let data = dir.path().join("sync");
		assert!(!purge_data_dir(&data).unwrap());
		let store = store_dir(&data);
		std::fs::create_dir_all(store.join("objects/ab")).unwrap();
		std::fs::write(store.join("objects/ab/abcd"), b"object").unwrap();
		std::fs::write(store.join("db.redb"), b"db").unwrap();
		std::fs::write(data.join(KEY_FILE), b"key").unwrap();
		std::fs::create_dir_all(data.join("keystore")).unwrap();
		assert!(purge_data_dir(&data).unwrap());
		let mut left: Vec<_> =
			std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
		left.sort();
		assert_eq!(left, ["keystore", KEY_FILE]);
		assert_eq!(std::fs::read(data.join(KEY_FILE)).unwrap(), b"key");
	}
	use clap::Parser;

	#[derive(Parser)]
	struct Cmd {
		#[clap(flatten)]
		sync: SyncParams,
	}

	fn resolve(
		args: &[&str],
		dev: bool,
	) -> (Result<Option<SyncConfig>, String>, tempfile::TempDir) {
		let dir = tempfile::tempdir().expect("temp dir");
		let cmd = Cmd::try_parse_from(std::iter::once("sync-node").chain(args.iter().copied()))
			.expect("arguments parse");
		(cmd.sync.resolve(dev, dir.path(), None), dir)
	}

	/// The operator's flag table (docs/node.md) lists every `--sync-*` flag, one per row, with
	/// the default the binary uses: a default changed in code fails here until the table says
	/// it too (the help texts are the flags' doc comments, so `--help` is generated already).
	#[test]
	fn flag_table_matches_the_flags_and_their_defaults() {
		use clap::CommandFactory;
		let doc = include_str!("../../../docs/node.md");
		let rows: Vec<(&str, &str)> = doc
			.lines()
			.filter_map(|l| l.strip_prefix("| `--sync-"))
			.map(|l| {
				let mut cells = l.split(" | ");
				let flag = cells.next().unwrap_or_default();
				let name = flag.split(['`', ' ']).next().unwrap_or_default();
				(name, cells.next().unwrap_or_default())
			})
			.collect();
		let cmd = Cmd::command();
		let flags: Vec<_> = cmd.get_arguments().filter_map(|a| Some((a.get_long()?, a))).collect();
		for (long, arg) in &flags {
			let name = long.strip_prefix("sync-").expect("every flag is --sync-*");
			let Some((_, default)) = rows.iter().find(|(n, _)| n == &name) else {
				panic!("--{long} is missing from the flag table in docs/node.md");
			};
			for value in arg.get_default_values() {
				let value = value.to_string_lossy();
				assert!(
					default.contains(&format!("`{value}`")),
					"--{long}: the table's default `{default}` does not show `{value}`"
				);
			}
		}
		for (name, _) in &rows {
			assert!(
				flags.iter().any(|(l, _)| l.strip_prefix("sync-") == Some(*name)),
				"docs/node.md lists --sync-{name}, which the node does not have"
			);
		}
	}

	#[test]
	fn defaults_are_the_data_planes_own() {
		let (config, _dir) = resolve(&[], false);
		let config = config.expect("resolves").expect("on by default");
		assert_eq!(config.role, SyncRole::Replica);
		assert_eq!(config.commit_every, DEFAULT_COMMIT_EVERY);
		let (peers, limits) = (PeerManagerConfig::default(), ServeLimits::default());
		assert_eq!(config.net.peers.concurrency, peers.concurrency);
		assert_eq!(config.net.peers.high_cap, peers.high_cap);
		assert_eq!(config.net.peers.low_cap_soft, peers.low_cap_soft);
		assert_eq!(config.net.peers.low_cap_hard, peers.low_cap_hard);
		assert_eq!(config.net.limits.max_streams, limits.max_streams);
		assert_eq!(config.net.limits.max_streams_per_peer, limits.max_streams_per_peer);
		assert_eq!(config.net.limits.unknown_peer_bytes_per_sec, limits.unknown_peer_bytes_per_sec);
		assert_eq!(config.net.limits.max_connections, limits.max_connections);
		assert_eq!(config.net.limits.max_connections_per_ip, limits.max_connections_per_ip);
		assert_eq!(
			config.net.listen,
			vec!["/ip4/0.0.0.0/tcp/30433".parse::<Multiaddr>().expect("addr")]
		);
		assert!(config.register.is_none() && config.http.is_none());
	}

	#[test]
	fn dev_runs_a_primary_on_loopback() {
		let (config, _dir) = resolve(&[], true);
		let config = config.expect("resolves").expect("on");
		assert_eq!(config.role, SyncRole::Primary);
		assert_eq!(
			config.net.listen,
			vec!["/ip4/127.0.0.1/tcp/30433".parse::<Multiaddr>().expect("addr")]
		);
	}

	#[test]
	fn role_none_turns_the_data_plane_off() {
		let (config, _dir) = resolve(&["--sync-role", "none"], true);
		assert!(config.expect("resolves").is_none());
	}

	#[test]
	fn zero_commit_cadence_is_refused() {
		let (config, _dir) = resolve(&["--sync-commit-every", "0"], false);
		assert!(config.is_err());
	}

	#[test]
	fn bootnode_without_peer_id_is_refused() {
		let (config, _dir) = resolve(&["--sync-bootnodes", "/ip4/1.2.3.4/tcp/1"], false);
		assert!(config.err().is_some_and(|e| e.contains("/p2p/")));
	}

	#[test]
	fn network_key_is_kept_across_starts() {
		let dir = tempfile::tempdir().expect("temp dir");
		let cmd = Cmd::try_parse_from(["sync-node"]).expect("parse");
		let peer = |c: SyncConfig| c.net.keypair.public().to_peer_id();
		let a = cmd.sync.resolve(false, dir.path(), None).expect("first").expect("on");
		let b = cmd.sync.resolve(false, dir.path(), None).expect("second").expect("on");
		assert_eq!(peer(a), peer(b));
	}

	#[test]
	fn the_key_file_is_where_sign_peer_binding_looks() {
		let dir = tempfile::tempdir().expect("temp dir");
		let cmd = Cmd::try_parse_from(["sync-node"]).expect("parse");
		let config = cmd.sync.resolve(false, dir.path(), None).expect("resolves").expect("on");
		let path = data_dir(None, dir.path()).join(KEY_FILE);
		assert_eq!(config.data_dir, dir.path().join("sync"));
		let key = load_key(&path).expect("the node created it there");
		assert_eq!(key.public().to_peer_id(), config.net.keypair.public().to_peer_id());
		let elsewhere = std::path::Path::new("/elsewhere");
		assert_eq!(data_dir(Some(elsewhere), dir.path()), elsewhere);
		assert!(load_key(&dir.path().join("missing")).is_err(), "never created");
	}
}
