//! `sync-node put | get | status`: the object API from the command line, through a running
//! node's JSON-RPC (`sync_put`, `sync_get`, `sync_status`) over plain HTTP, or — with
//! `--http host:port` — through its HTTP object API (`--sync-http-addr`), which streams
//! objects of any size between the file and the socket.
use serde_json::{json, Value};
use std::{
	io::{Read, Write},
	net::TcpStream,
	path::PathBuf,
	time::Duration,
};
use sync_primitives::hex::{hex, unhex};

/// Where the node's RPC listens.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcTarget {
	/// The node's RPC endpoint (`host:port`).
	#[arg(long, default_value = "127.0.0.1:9944")]
	pub rpc: String,
	/// The node's HTTP object API (`host:port`, see `--sync-http-addr`): objects are streamed
	/// instead of going through JSON-RPC (which caps them at 4 MiB).
	#[arg(long)]
	pub http: Option<String>,
	/// File with the bearer token of the node's object API (its `--sync-http-token-file`),
	/// sent with `--http` writes.
	#[arg(long, value_name = "PATH", requires = "http")]
	pub http_token_file: Option<PathBuf>,
}

/// Percent-encodes a key for a URL path (unreserved characters stay).
fn encode_key(key: &str) -> String {
	key.bytes()
		.map(|b| match b {
			b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
				(b as char).to_string()
			},
			_ => format!("%{b:02X}"),
		})
		.collect()
}

/// Sends one request to the HTTP object API with `body` (`len` bytes) and returns the
/// connection positioned after the response head, with the status and content length.
fn http_request(
	target: &RpcTarget,
	method: &str,
	path: &str,
	body: Option<(&mut dyn Read, u64)>,
) -> Result<(u16, Option<u64>, std::io::BufReader<TcpStream>), String> {
	use std::io::BufRead;
	let addr = target.http.as_deref().ok_or("--http is needed")?;
	let auth = match &target.http_token_file {
		Some(path) => {
			format!("Authorization: Bearer {}\r\n", sync_service::http::read_token_file(path)?)
		},
		None => String::new(),
	};
	let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
	s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
	let len = body.as_ref().map_or(0, |(_, l)| *l);
	write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {len}\r\nConnection: close\r\n\r\n")
		.map_err(|e| e.to_string())?;
	if let Some((r, _)) = body {
		std::io::copy(r, &mut s).map_err(|e| format!("sending the body: {e}"))?;
	}
	let mut reader = std::io::BufReader::new(s);
	let mut line = String::new();
	reader.read_line(&mut line).map_err(|e| e.to_string())?;
	let status = line
		.split_whitespace()
		.nth(1)
		.and_then(|c| c.parse().ok())
		.ok_or("malformed HTTP response")?;
	let mut length = None;
	loop {
		line.clear();
		reader.read_line(&mut line).map_err(|e| e.to_string())?;
		if line.trim().is_empty() {
			break;
		}
		if let Some((n, v)) = line.split_once(':') {
			if n.trim().eq_ignore_ascii_case("content-length") {
				length = v.trim().parse().ok();
			}
		}
	}
	Ok((status, length, reader))
}

/// The JSON body of a response, whatever its status.
fn http_body(status: u16, mut reader: impl Read) -> Result<Value, String> {
	let mut body = String::new();
	reader.read_to_string(&mut body).map_err(|e| e.to_string())?;
	serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}"))
}

/// The JSON body of a response (success or `{ "error" }`).
fn http_json(status: u16, reader: impl Read) -> Result<Value, String> {
	let v = http_body(status, reader)?;
	match v.get("error").and_then(Value::as_str) {
		Some(e) => Err(format!("HTTP {status}: {e}")),
		None => Ok(v),
	}
}

/// `sync-node put`: writes a file as an object into a segment the node owns.
///
/// Writers follow the segment: a node that does not take the write says why (JSON-RPC codes
/// 9001 `NotOwner`, 9006 `Behind`, 9007 `Handover`, or the HTTP body's `reason`) and, when the
/// chain says, who the owner is now. `put` retries for `--retry-for` seconds: the same node
/// while it catches up, and the named owner among `--node` (matched by its peer id).
#[derive(Debug, Clone, clap::Args)]
pub struct PutCmd {
	/// Segment id.
	#[arg(long)]
	pub segment: u64,
	/// Object key.
	#[arg(long)]
	pub key: String,
	/// File to store.
	pub file: PathBuf,
	#[clap(flatten)]
	pub target: RpcTarget,
	/// Another node's RPC endpoint (`host:port`) to follow the segment to when the chain
	/// names it the owner (repeat for more).
	#[arg(long = "node", value_name = "HOST:PORT")]
	pub nodes: Vec<String>,
	/// The HTTP object API of each `--node`, in the same order (with `--http`).
	#[arg(long = "node-http", value_name = "HOST:PORT", requires = "http")]
	pub nodes_http: Vec<String>,
	/// How long to keep retrying a write the nodes refuse for now (catching up, handing the
	/// segment over), in seconds; 0 tries once.
	#[arg(long, default_value_t = 60)]
	pub retry_for: u64,
}

/// Why a node did not take a write, as it said: its message, the typed reason (`NotOwner`,
/// `Behind`, `Rewinding`, `Handover`) and the owner it named (base58 peer id), if any.
#[derive(Debug)]
struct Refused {
	message: String,
	reason: Option<String>,
	owner: Option<String>,
}

/// The outcome of one write attempt that did not succeed.
enum PutError {
	/// The node refused it for now, or named another owner: maybe retried.
	Refused(Refused),
	/// Anything else: not retried.
	Fatal(String),
}

impl Refused {
	/// From the `data` of an RPC error or the body of an HTTP error.
	fn from_data(message: String, data: Option<&Value>) -> Self {
		let text = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str).map(String::from);
		Refused { message, reason: text("reason"), owner: text("owner") }
	}
}

/// `sync-node get`: reads an object by key from any holder of the segment.
#[derive(Debug, Clone, clap::Args)]
pub struct GetCmd {
	/// Segment id.
	#[arg(long)]
	pub segment: u64,
	/// Object key.
	#[arg(long)]
	pub key: String,
	/// Where to write it (default: standard output).
	#[arg(long)]
	pub out: Option<PathBuf>,
	#[clap(flatten)]
	pub target: RpcTarget,
}

/// `sync-node status`: the node's sync status as JSON.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusCmd {
	#[clap(flatten)]
	pub target: RpcTarget,
}

/// One JSON-RPC call over HTTP/1.1 (the node's RPC port serves both WebSocket and HTTP).
fn call(target: &RpcTarget, method: &str, params: Value) -> Result<Value, String> {
	call_typed(target, method, params).map_err(|e| match e {
		PutError::Refused(r) => r.message,
		PutError::Fatal(e) => e,
	})
}

/// [`call`], with the error's `data` when the node refused a write.
fn call_typed(target: &RpcTarget, method: &str, params: Value) -> Result<Value, PutError> {
	let fatal = PutError::Fatal;
	let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
	let mut s = TcpStream::connect(&target.rpc)
		.map_err(|e| fatal(format!("connect {}: {e}", target.rpc)))?;
	s.set_read_timeout(Some(Duration::from_secs(120)))
		.map_err(|e| fatal(e.to_string()))?;
	write!(
		s,
		"POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
		target.rpc,
		body.len()
	)
	.map_err(|e| fatal(e.to_string()))?;
	let mut raw = Vec::new();
	s.read_to_end(&mut raw).map_err(|e| fatal(e.to_string()))?;
	let text = String::from_utf8_lossy(&raw);
	let (head, payload) = text
		.split_once("\r\n\r\n")
		.ok_or_else(|| fatal("malformed HTTP response".into()))?;
	if !head.starts_with("HTTP/1.1 200") {
		return Err(fatal(format!("RPC: {}", head.lines().next().unwrap_or(""))));
	}
	let reply: Value =
		serde_json::from_str(payload.trim()).map_err(|e| fatal(format!("RPC reply: {e}")))?;
	if let Some(e) = reply.get("error") {
		let message =
			format!("{method}: {}", e.get("message").and_then(Value::as_str).unwrap_or("error"));
		return Err(match e.get("data") {
			Some(d) if d.get("reason").is_some() => {
				PutError::Refused(Refused::from_data(message, Some(d)))
			},
			_ => fatal(message),
		});
	}
	Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}

impl PutCmd {
	/// Runs the command: writes to the first node, following the segment to the owner the
	/// nodes name among `--node` and retrying refusals for now until `--retry-for` ends.
	pub fn run(&self) -> Result<(), String> {
		if self.target.http.is_some() && self.nodes_http.len() != self.nodes.len() {
			return Err("give one --node-http per --node with --http".into());
		}
		let mut targets = vec![self.target.clone()];
		for (i, rpc) in self.nodes.iter().enumerate() {
			targets.push(RpcTarget {
				rpc: rpc.clone(),
				http: self.nodes_http.get(i).cloned(),
				http_token_file: self.target.http_token_file.clone(),
			});
		}
		let deadline = std::time::Instant::now() + Duration::from_secs(self.retry_for);
		let mut peer_ids: Vec<Option<String>> = vec![None; targets.len()];
		let mut at = 0;
		loop {
			let refused = match self.put_once(&targets[at]) {
				Ok(v) => {
					println!("{v}");
					return Ok(());
				},
				Err(PutError::Fatal(e)) => return Err(e),
				Err(PutError::Refused(r)) => r,
			};
			let retryable = matches!(
				refused.reason.as_deref(),
				Some("Behind" | "Rewinding" | "Handover" | "NotOwner")
			);
			if !retryable || std::time::Instant::now() >= deadline {
				return Err(refused.message);
			}
			let named = refused.owner.as_ref().and_then(|owner| {
				(0..targets.len()).find(|&i| {
					if peer_ids[i].is_none() {
						peer_ids[i] = call(&targets[i], "sync_status", json!([]))
							.ok()
							.and_then(|s| s.get("peerId")?.as_str().map(String::from));
					}
					peer_ids[i].as_ref() == Some(owner)
				})
			});
			match (named, refused.reason.as_deref()) {
				(Some(i), _) if i != at => {
					eprintln!("{}; following the segment to {}", refused.message, targets[i].rpc);
					at = i;
					continue;
				},
				// Not the owner, and it names no endpoint we know: try the next one.
				(None, Some("NotOwner")) if targets.len() > 1 => at = (at + 1) % targets.len(),
				(None, Some("NotOwner")) => return Err(refused.message),
				_ => {},
			}
			std::thread::sleep(Duration::from_millis(500));
		}
	}

	/// One write attempt against `target`.
	fn put_once(&self, target: &RpcTarget) -> Result<Value, PutError> {
		let fatal = PutError::Fatal;
		let data =
			|| std::fs::File::open(&self.file).map_err(|e| format!("{}: {e}", self.file.display()));
		if target.http.is_some() {
			let mut f = data().map_err(fatal)?;
			let len = f.metadata().map_err(|e| fatal(e.to_string()))?.len();
			let path = format!("/v1/segments/{}/objects/{}", self.segment, encode_key(&self.key));
			let (status, _, reader) =
				http_request(target, "PUT", &path, Some((&mut f, len))).map_err(fatal)?;
			let v = http_body(status, reader).map_err(fatal)?;
			return match v.get("error").and_then(Value::as_str) {
				None => Ok(v),
				Some(e) if v.get("reason").is_some() => Err(PutError::Refused(Refused::from_data(
					format!("HTTP {status}: {e}"),
					Some(&v),
				))),
				Some(e) => Err(fatal(format!("HTTP {status}: {e}"))),
			};
		}
		let mut bytes = Vec::new();
		data()
			.map_err(fatal)?
			.read_to_end(&mut bytes)
			.map_err(|e| fatal(e.to_string()))?;
		call_typed(target, "sync_put", json!([self.segment, self.key, hex(&bytes)]))
	}
}

impl GetCmd {
	/// Runs the command.
	pub fn run(&self) -> Result<(), String> {
		if self.target.http.is_some() {
			let path = format!("/v1/segments/{}/objects/{}", self.segment, encode_key(&self.key));
			let (status, length, mut reader) = http_request(&self.target, "GET", &path, None)?;
			if status != 200 {
				return http_json(status, reader).map(|_| ());
			}
			let mut out: Box<dyn Write> = match &self.out {
				Some(p) => {
					Box::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?)
				},
				None => Box::new(std::io::stdout()),
			};
			let copied = std::io::copy(&mut reader, &mut out).map_err(|e| e.to_string())?;
			if Some(copied) != length {
				return Err(format!("response cut short: {copied} of {length:?} bytes (the node found a group it could not verify?)"));
			}
			return Ok(());
		}
		let r = call(&self.target, "sync_get", json!([self.segment, self.key]))?;
		let data = r
			.get("data")
			.and_then(Value::as_str)
			.ok_or_else(|| format!("no object under {:?}", self.key))?;
		let bytes = unhex(data).map_err(|e| e.to_string())?;
		match &self.out {
			Some(p) => std::fs::write(p, &bytes).map_err(|e| format!("{}: {e}", p.display())),
			None => std::io::stdout().write_all(&bytes).map_err(|e| e.to_string()),
		}
	}
}

impl StatusCmd {
	/// Runs the command.
	pub fn run(&self) -> Result<(), String> {
		let r = call(&self.target, "sync_status", json!([]))?;
		println!("{}", serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?);
		Ok(())
	}
}
