//! A harness for end-to-end scenarios with real `sync-node` processes.
//!
//! Each [`Node`] is a child process on loopback with the `local` chain spec, free ports, its
//! own base path in a temporary directory and its log in a file there. Nodes are killed when
//! dropped (a failing scenario never leaves one behind) and their directories removed.
//! [`Rpc`] speaks JSON-RPC over plain HTTP to a node; [`Chain`] signs extrinsics with the dev
//! keys and reads the registry through the runtime API, like any client would.
use codec::{Decode, Encode};
use serde_json::{json, Value};
use sp_core::{crypto::Pair as _, H256};
use sp_keyring::Sr25519Keyring;
use std::{
	io::{Read, Write},
	net::{TcpListener, TcpStream},
	path::{Path, PathBuf},
	process::{Child, Command, Stdio},
	time::{Duration, Instant},
};
use sync_primitives::{NodeSummary, SegmentId, SegmentSummary};
use sync_runtime::{AccountId, RuntimeCall};

static NODE_BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the node binary the harness starts (the scenarios pass cargo's
/// `CARGO_BIN_EXE_sync-node`, built in the same cargo graph); `$SYNC_NODE_BIN` overrides it.
pub fn use_node_binary(path: impl Into<PathBuf>) {
	let _ = NODE_BINARY.set(path.into());
}

/// The node binary: `$SYNC_NODE_BIN`, else the one set by [`use_node_binary`].
pub fn node_binary() -> PathBuf {
	if let Ok(p) = std::env::var("SYNC_NODE_BIN") {
		return p.into();
	}
	let bin = NODE_BINARY
		.get()
		.cloned()
		.expect("no sync-node binary: call use_node_binary or set SYNC_NODE_BIN");
	assert!(bin.exists(), "sync-node not found at {}", bin.display());
	bin
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
	TcpListener::bind("127.0.0.1:0")
		.and_then(|l| l.local_addr())
		.expect("a free port")
		.port()
}

/// JSON-RPC over HTTP to one node.
#[derive(Clone, Copy, Debug)]
pub struct Rpc {
	/// The node's RPC port.
	pub port: u16,
}

impl Rpc {
	/// Calls `method`; `Err` carries the JSON-RPC error message or the transport error.
	pub fn call(&self, method: &str, params: Value) -> Result<Value, String> {
		let body =
			json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
		let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
		s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
		write!(
			s,
			"POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
			self.port,
			body.len()
		)
		.map_err(|e| e.to_string())?;
		let mut raw = Vec::new();
		s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
		let text = String::from_utf8_lossy(&raw);
		let json = text.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("malformed HTTP response")?;
		let v: Value = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
		if let Some(err) = v.get("error") {
			return Err(err["message"].as_str().unwrap_or("error").to_string());
		}
		Ok(v["result"].clone())
	}
}

/// One `sync-node` process.
pub struct Node {
	/// Dev account name (`alice`, …), also the node's name.
	pub name: &'static str,
	/// JSON-RPC client.
	pub rpc: Rpc,
	/// Substrate p2p port.
	pub p2p_port: u16,
	/// Data-plane port.
	pub sync_port: u16,
	args: Vec<String>,
	dir: tempfile::TempDir,
	child: Option<Child>,
	starts: u32,
}

impl Node {
	/// Starts `--chain local --<name>` with `extra` arguments.
	pub fn start(name: &'static str, extra: &[String]) -> Node {
		let dir = tempfile::Builder::new()
			.prefix(&format!("sync-e2e-{name}-"))
			.tempdir()
			.expect("temp dir");
		let (rpc, p2p_port, sync_port) = (free_port(), free_port(), free_port());
		let mut args: Vec<String> = [
			"--chain",
			"local",
			&format!("--{name}"),
			"--base-path",
			&dir.path().display().to_string(),
			"--rpc-port",
			&rpc.to_string(),
			"--port",
			&p2p_port.to_string(),
			"--sync-listen-addr",
			&format!("/ip4/127.0.0.1/tcp/{sync_port}"),
			"--no-prometheus",
			"--no-telemetry",
			"--no-mdns",
			"--rpc-max-request-size",
			"32",
			"--rpc-max-response-size",
			"32",
		]
		.iter()
		.map(|s| s.to_string())
		.collect();
		// A fixed node key per node, so a restarted authority keeps its p2p identity.
		let key: [u8; 32] = sp_crypto_hashing::blake2_256(name.as_bytes());
		args.extend(["--node-key".to_string(), hex(&key)[2..].to_string()]);
		args.extend(extra.iter().cloned());
		let mut node = Node {
			name,
			rpc: Rpc { port: rpc },
			p2p_port,
			sync_port,
			args,
			dir,
			child: None,
			starts: 0,
		};
		node.spawn();
		node
	}

	fn spawn(&mut self) {
		self.starts += 1;
		let log = std::fs::File::create(self.log_path()).expect("log file");
		let child = Command::new(node_binary())
			.args(&self.args)
			.stdin(Stdio::null())
			.stdout(log.try_clone().expect("log file"))
			.stderr(log)
			.spawn()
			.expect("spawn sync-node");
		self.child = Some(child);
		let deadline = Instant::now() + Duration::from_secs(120);
		while let Err(e) = self.rpc.call("sync_status", json!([])) {
			if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
				panic!("{} exited at start ({status}):\n{}", self.name, self.log_tail(60));
			}
			assert!(
				Instant::now() < deadline,
				"{} not ready ({e}):\n{}",
				self.name,
				self.log_tail(60)
			);
			std::thread::sleep(Duration::from_millis(300));
		}
	}

	fn log_path(&self) -> PathBuf {
		self.dir.path().join(format!("node-{}.log", self.starts))
	}

	/// The last `n` lines of the node's current log.
	pub fn log_tail(&self, n: usize) -> String {
		let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
		let lines: Vec<&str> = text.lines().collect();
		lines[lines.len().saturating_sub(n)..].join("\n")
	}

	/// The node's whole current log.
	pub fn log(&self) -> String {
		std::fs::read_to_string(self.log_path()).unwrap_or_default()
	}

	/// `/ip4/127.0.0.1/tcp/<p2p>/p2p/<peer id>` of the Substrate network (for `--bootnodes`).
	pub fn bootnode(&self) -> String {
		let peer = self.rpc.call("system_localPeerId", json!([])).expect("peer id");
		format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, peer.as_str().expect("string"))
	}

	/// The dev account of this node.
	pub fn account(&self) -> AccountId {
		keyring(self.name).to_account_id()
	}

	/// `kill -9`: no shutdown code runs.
	pub fn kill9(&mut self) {
		if let Some(mut c) = self.child.take() {
			let _ = c.kill();
			let _ = c.wait();
		}
	}

	/// SIGTERM and wait for a clean exit (SIGKILL after 20 s).
	pub fn stop(&mut self) {
		if let Some(mut c) = self.child.take() {
			let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
			let deadline = Instant::now() + Duration::from_secs(20);
			while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
				std::thread::sleep(Duration::from_millis(100));
			}
			let _ = c.kill();
			let _ = c.wait();
		}
	}

	/// Starts the node again with the same arguments, base path and data directory.
	pub fn restart(&mut self) {
		self.stop();
		self.spawn();
	}

	/// The node's directory (base path).
	pub fn dir(&self) -> &Path {
		self.dir.path()
	}

	/// `sync_status` of the node.
	pub fn status(&self) -> Value {
		self.rpc.call("sync_status", json!([])).unwrap_or(Value::Null)
	}

	/// `sync_status` of one segment.
	pub fn segment_status(&self, segment: SegmentId) -> Option<Value> {
		self.status()["segments"]
			.as_array()?
			.iter()
			.find(|s| s["segment"] == segment)
			.cloned()
	}
}

impl Drop for Node {
	fn drop(&mut self) {
		self.kill9();
	}
}

/// The dev key of a node name.
pub fn keyring(name: &str) -> Sr25519Keyring {
	match name {
		"alice" => Sr25519Keyring::Alice,
		"bob" => Sr25519Keyring::Bob,
		"charlie" => Sr25519Keyring::Charlie,
		"dave" => Sr25519Keyring::Dave,
		"eve" => Sr25519Keyring::Eve,
		"ferdie" => Sr25519Keyring::Ferdie,
		other => panic!("no dev key for {other}"),
	}
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`
/// and `context()` (e.g. log tails).
pub fn eventually<T>(
	timeout: Duration,
	what: &str,
	mut check: impl FnMut() -> Option<T>,
	context: impl Fn() -> String,
) -> T {
	let deadline = Instant::now() + timeout;
	loop {
		if let Some(v) = check() {
			return v;
		}
		assert!(
			Instant::now() < deadline,
			"timeout after {timeout:?} waiting for {what}\n{}",
			context()
		);
		std::thread::sleep(Duration::from_millis(200));
	}
}

pub use sync_primitives::hex::hex;

/// Bytes of a `0x…` hex string the node returned.
pub fn unhex(s: &str) -> Vec<u8> {
	sync_primitives::hex::unhex(s).expect("the node returns hex")
}

/// Signs extrinsics and reads the registry through one node's RPC.
pub struct Chain {
	rpc: Rpc,
	genesis: H256,
}

impl Chain {
	/// A client of the chain through `rpc`.
	pub fn new(rpc: Rpc) -> Chain {
		let g = rpc.call("chain_getBlockHash", json!([0])).expect("genesis hash");
		let genesis = H256::from_slice(&unhex(g.as_str().expect("hash")));
		Chain { rpc, genesis }
	}

	fn state_call<R: Decode>(&self, method: &str, args: impl Encode) -> R {
		let out = self.rpc.call("state_call", json!([method, hex(&args.encode())])).expect(method);
		R::decode(&mut &unhex(out.as_str().expect("hex"))[..]).expect("decodes")
	}

	/// The on-chain nonce of `who` at the best block.
	pub fn nonce(&self, who: &AccountId) -> u32 {
		self.state_call("AccountNonceApi_account_nonce", who)
	}

	/// Signs `call` as `who`, submits it, and waits until it is in a block (the nonce moved).
	/// A nonce race with the node's own off-chain worker (same account) is retried.
	pub fn submit(&self, who: Sr25519Keyring, call: RuntimeCall) {
		use sync_runtime::{Runtime, SignedPayload, TxExtension, UncheckedExtrinsic, VERSION};
		let account = who.to_account_id();
		for attempt in 1.. {
			let nonce = self.nonce(&account);
			let ext: TxExtension = (
				frame_system::AuthorizeCall::<Runtime>::new(),
				frame_system::CheckNonZeroSender::<Runtime>::new(),
				frame_system::CheckSpecVersion::<Runtime>::new(),
				frame_system::CheckTxVersion::<Runtime>::new(),
				frame_system::CheckGenesis::<Runtime>::new(),
				frame_system::CheckEra::<Runtime>::from(sp_runtime::generic::Era::Immortal),
				frame_system::CheckNonce::<Runtime>::from(nonce),
				frame_system::CheckWeight::<Runtime>::new(),
				pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(0),
				frame_system::WeightReclaim::<Runtime>::new(),
			);
			let implicit = (
				(),
				(),
				VERSION.spec_version,
				VERSION.transaction_version,
				self.genesis,
				self.genesis,
				(),
				(),
				(),
				(),
			);
			let payload = SignedPayload::from_raw(call.clone(), ext.clone(), implicit);
			let signature = payload.using_encoded(|p| who.pair().sign(p));
			let xt = UncheckedExtrinsic::new_signed(
				call.clone(),
				account.clone().into(),
				signature.into(),
				ext,
			);
			match self.rpc.call("author_submitExtrinsic", json!([hex(&xt.encode())])) {
				Ok(_) => {
					eventually(
						Duration::from_secs(60),
						"inclusion",
						|| (self.nonce(&account) > nonce).then_some(()),
						String::new,
					);
					return;
				},
				Err(e)
					if attempt < 8
						&& (e.contains("Priority is too low")
							|| e.contains("outdated")
							|| e.contains("stale")) =>
				{
					std::thread::sleep(Duration::from_millis(1500))
				},
				Err(e) => panic!("{call:?} by {who}: {e}"),
			}
		}
	}

	/// A segment as the runtime API reports it.
	pub fn segment(&self, id: SegmentId) -> Option<SegmentSummary<AccountId>> {
		self.state_call("SyncRegistryApi_segment_info", id)
	}

	/// The segments `who` owns, is a Primary of, or holds.
	pub fn node_segments(&self, who: &AccountId) -> Vec<SegmentId> {
		self.state_call("SyncRegistryApi_node_segments", who)
	}

	/// A node as the runtime API reports it.
	pub fn node(&self, who: &AccountId) -> Option<NodeSummary<AccountId, u128, u32>> {
		self.state_call("SyncRegistryApi_node_info", who)
	}

	/// The holding status and proven seq of `who` in `segment`.
	pub fn holding(
		&self,
		segment: SegmentId,
		who: &AccountId,
	) -> Option<(sync_primitives::HoldingStatus, Option<u64>)> {
		self.segment(segment)?
			.holders
			.into_iter()
			.find(|(a, _, _)| a == who)
			.map(|(_, s, p)| (s, p))
	}

	/// `ParityVotes` of a segment: the latest root's seq and hash, and who attested it.
	pub fn parity_votes(&self, segment: SegmentId) -> Option<(u64, [u8; 32], Vec<AccountId>)> {
		let mut key = sp_crypto_hashing::twox_128(b"SyncRegistry").to_vec();
		key.extend(sp_crypto_hashing::twox_128(b"ParityVotes"));
		key.extend(sp_crypto_hashing::twox_64(&segment.encode()));
		key.extend(segment.encode());
		let v = self.rpc.call("state_getStorage", json!([hex(&key)])).ok()?;
		Decode::decode(&mut &unhex(v.as_str()?)[..]).ok()
	}
}
