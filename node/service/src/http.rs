//! The object API over plain HTTP on its own port (`--sync-http-addr`), for objects of any size:
//! JSON-RPC carries hex in one message, which caps objects at 4 MiB; here bodies are raw bytes
//! and reads are streamed.
//!
//! - `GET /v1/segments/{segment}/objects/{key}` → `200` with the object, streamed one 16 KiB
//!   group at a time, each group checked against the object's outboard before it is sent
//!   (headers `x-sync-cid`, `content-length`); `404` if the key is absent.
//! - `PUT /v1/segments/{segment}/objects/{key}` with a `content-length` body → `200` and
//!   `{ seq, root, cid, size }`: written into a segment this node owns, as one signed op
//!   announced to followers. `403` if the node does not own the segment, `411` without a
//!   length, `413` above `--sync-http-max-object`.
//!
//! - `GET /health` → the node's sync health (see [`crate::health`]) as JSON: `200` while it is
//!   `healthy` or `degraded`, `503` when `unhealthy` (for a liveness probe or an alert);
//!   `GET /health/ready` → `200` only when `healthy` (for a load balancer: synced and proven).
//!
//! Keys are the rest of the path, percent-decoded (they may contain `/`). Errors are JSON
//! `{ "error": "…" }` with the status code; nothing is written on an error. One request per
//! connection (`connection: close`), request heads bounded to 16 KiB.
//!
//! Every client is hostile until proven otherwise, so the server bounds what any number of
//! them can hold ([`HttpLimits`]): connections served at once (the rest wait in the listen
//! backlog), a deadline for the request head, a minimum rate for a body, a deadline for every
//! response write, and a budget for the request bodies held in memory over all connections
//! (a PUT's body is buffered whole before it is hashed and written: without the budget, 100
//! concurrent uploads of the largest object could ask for 25 GiB). A failed `accept` (say, out
//! of file descriptors) is retried with a backoff: it never ends the server, which runs as an
//! essential task of the node.
use crate::{health::Level, SyncHandle};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use sync_net::bounded::MemoryBudget;
use sync_primitives::hex::hex;
use sync_primitives::{
	commitment::{Hash32, GROUP_LEN},
	outboard::{group_range, groups_of, verify_group, Outboard},
};
use tokio::{
	io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
	net::{TcpListener, TcpStream},
};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest refused body read to the end before answering.
const DRAIN_MAX: u64 = 64 << 20;

/// What the object API's clients can hold of this node, all of them together.
#[derive(Clone, Debug)]
pub struct HttpLimits {
	/// Connections served at once; more wait in the listen backlog until one ends.
	pub max_connections: usize,
	/// Bytes of request bodies held in memory at once over all connections (a body larger than
	/// this takes all of it: it is received alone). A PUT that cannot get its share within
	/// `head_timeout` is answered `503` (retry later).
	pub body_budget: u64,
	/// The whole request head must arrive within this, or the connection is closed.
	pub head_timeout: Duration,
	/// A body must arrive at least this fast (bytes per second), after a grace of
	/// `head_timeout`, or the request is answered `408` and nothing is written.
	pub min_body_rate: u64,
	/// Every write of a response must complete within this, or the connection is closed.
	pub write_timeout: Duration,
}

impl Default for HttpLimits {
	/// 64 connections; 512 MiB of bodies; a head within 10 s; bodies at 256 KiB/s at least;
	/// 30 s per response write.
	fn default() -> Self {
		HttpLimits {
			max_connections: 64,
			body_budget: 512 << 20,
			head_timeout: Duration::from_secs(10),
			min_body_rate: 256 << 10,
			write_timeout: Duration::from_secs(30),
		}
	}
}

/// What every connection shares.
struct Shared {
	handle: Arc<SyncHandle>,
	max_object: u64,
	limits: HttpLimits,
	/// `limits.body_budget`.
	bodies: MemoryBudget,
}

/// Serves the API on `addr` until the node stops, within [`HttpLimits::default`].
pub async fn serve(
	addr: SocketAddr,
	handle: Arc<SyncHandle>,
	max_object: u64,
) -> std::io::Result<()> {
	let listener = TcpListener::bind(addr).await?;
	log::info!(target: "sync", "💾 Object API on http://{}/v1/segments/<id>/objects/<key>", listener.local_addr()?);
	serve_on(listener, handle, max_object, HttpLimits::default()).await;
	Ok(())
}

/// Serves the API on `listener` within `limits`; never returns.
pub async fn serve_on(
	listener: TcpListener,
	handle: Arc<SyncHandle>,
	max_object: u64,
	limits: HttpLimits,
) {
	let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
	let shared = Arc::new(Shared {
		handle,
		max_object,
		bodies: MemoryBudget::new(limits.body_budget),
		limits,
	});
	let mut backoff = ACCEPT_BACKOFF_MIN;
	loop {
		let Ok(permit) = connections.clone().acquire_owned().await else { return };
		let stream = match listener.accept().await {
			Ok((stream, _)) => {
				backoff = ACCEPT_BACKOFF_MIN;
				stream
			},
			Err(e) => {
				log::warn!(target: "sync", "object API: accept failed ({e}); retrying in {backoff:?}");
				drop(permit);
				tokio::time::sleep(backoff).await;
				backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
				continue;
			},
		};
		let shared = shared.clone();
		tokio::spawn(async move {
			let _permit = permit;
			if let Err(e) = serve_one(stream, &shared).await {
				log::debug!(target: "sync", "object API connection: {e}");
			}
		});
	}
}

/// The first wait after a failed `accept`, doubled per failure in a row up to the max.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// `fut`, or a timeout error once `limit` has passed.
async fn within<T>(
	limit: Duration,
	fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
	tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
		Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed"))
	})
}

/// A refused request: status and message.
struct Refusal(u16, String);

fn refuse(code: u16, msg: impl Into<String>) -> Refusal {
	Refusal(code, msg.into())
}

async fn serve_one(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
	let limits = &shared.limits;
	let mut reader = BufReader::new(stream);
	let (method, path, length) = match within(limits.head_timeout, read_head(&mut reader)).await? {
		Ok(h) => h,
		Err(Refusal(code, msg)) => {
			return within(limits.write_timeout, respond_error(reader.get_mut(), code, &msg)).await
		},
	};
	let result = match method.as_str() {
		"GET" if path == "/health" || path == "/health/ready" => {
			let health = shared.handle.health();
			let ok = match path.as_str() {
				"/health" => health.status != Level::Unhealthy,
				_ => health.status == Level::Healthy,
			};
			let code = if ok { 200 } else { 503 };
			let body = health.to_json();
			return within(limits.write_timeout, respond_json(reader.get_mut(), code, &body)).await;
		},
		"GET" => get(&mut reader, &shared.handle, &path, limits.write_timeout).await,
		"PUT" => put(&mut reader, shared, &path, length).await,
		_ => Err(refuse(405, "only GET and PUT")),
	};
	match result {
		Ok(()) => Ok(()),
		Err(Refusal(code, msg)) => {
			within(limits.write_timeout, respond_error(reader.get_mut(), code, &msg)).await
		},
	}
}

/// Reads the request line and headers: method, path, content length.
async fn read_head(
	reader: &mut BufReader<TcpStream>,
) -> std::io::Result<Result<(String, String, Option<u64>), Refusal>> {
	let mut head = Vec::new();
	loop {
		let n = reader.read_until(b'\n', &mut head).await?;
		if n == 0 {
			return Ok(Err(refuse(400, "connection closed in the request head")));
		}
		if head.len() > MAX_HEAD {
			return Ok(Err(refuse(431, "request head too large")));
		}
		if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
			break;
		}
	}
	let text = String::from_utf8_lossy(&head);
	let mut lines = text.lines();
	let mut first = lines.next().unwrap_or_default().split_whitespace();
	let (Some(method), Some(path)) = (first.next(), first.next()) else {
		return Ok(Err(refuse(400, "malformed request line")));
	};
	let mut length = None;
	for line in lines {
		if let Some((name, value)) = line.split_once(':') {
			if name.trim().eq_ignore_ascii_case("content-length") {
				match value.trim().parse::<u64>() {
					Ok(v) => length = Some(v),
					Err(_) => return Ok(Err(refuse(400, "bad content-length"))),
				}
			}
			if name.trim().eq_ignore_ascii_case("transfer-encoding") {
				return Ok(Err(refuse(411, "send a content-length, not a transfer-encoding")));
			}
		}
	}
	Ok(Ok((method.to_string(), path.to_string(), length)))
}

/// `/v1/segments/{segment}/objects/{key}` → (segment, key bytes).
fn parse_path(path: &str) -> Result<(u64, Vec<u8>), Refusal> {
	let rest = path
		.strip_prefix("/v1/segments/")
		.ok_or_else(|| refuse(404, "no such endpoint"))?;
	let (segment, key) =
		rest.split_once("/objects/").ok_or_else(|| refuse(404, "no such endpoint"))?;
	let segment = segment.parse().map_err(|_| refuse(400, "segment is not a number"))?;
	let key = percent_decode(key).ok_or_else(|| refuse(400, "bad percent-encoding in the key"))?;
	if key.is_empty() || key.len() > sync_primitives::commitment::MAX_KEY_LEN as usize {
		return Err(refuse(400, "key must be 1 to 256 bytes"));
	}
	Ok((segment, key))
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
	let b = s.as_bytes();
	let mut out = Vec::with_capacity(b.len());
	let mut i = 0;
	while i < b.len() {
		if b[i] == b'%' {
			let digits = b.get(i + 1..i + 3)?;
			// `from_str_radix` alone would take a sign (`%+1`).
			if !digits.iter().all(u8::is_ascii_hexdigit) {
				return None;
			}
			out.push(u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?);
			i += 3;
		} else {
			out.push(b[i]);
			i += 1;
		}
	}
	Some(out)
}

async fn get(
	reader: &mut BufReader<TcpStream>,
	handle: &SyncHandle,
	path: &str,
	write_timeout: Duration,
) -> Result<(), Refusal> {
	let (segment, key) = parse_path(path)?;
	let net = handle.network().ok_or_else(|| refuse(503, "the sync service is not running"))?;
	let entry = net.store().lookup(segment, &key).ok_or_else(|| refuse(404, "no such object"))?;
	let store = net.store().clone();
	let cid = entry.cid;
	let size = entry.size;
	let outboard = store
		.outboard(&cid)
		.ok()
		.and_then(|b| Outboard::from_bytes(size, &b).ok())
		.ok_or_else(|| refuse(500, "object not complete in this store"))?;
	let source = store.open_groups(&cid).map_err(|e| refuse(500, e.to_string()))?;
	let stream = reader.get_mut();
	let head = format!(
		"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {size}\r\nx-sync-cid: {}\r\nconnection: close\r\n\r\n",
		hex(&cid)
	);
	// From here on the status is sent: a group that fails its check ends the connection early
	// (the client sees a short body), it is never sent.
	if within(write_timeout, stream.write_all(head.as_bytes())).await.is_err() {
		return Ok(());
	}
	let mut buf = Vec::with_capacity(GROUP_LEN as usize);
	for g in 0..groups_of(size) {
		let ok = read_group(&source, &outboard, &cid, size, g, &mut buf);
		if !ok {
			log::warn!(target: "sync", "object API: object {} group {g} unavailable or corrupt; response cut short", hex(&cid));
			return Ok(());
		}
		if within(write_timeout, stream.write_all(&buf)).await.is_err() {
			// The client stopped reading (or left): its connection slot goes back.
			return Ok(());
		}
	}
	let _ = within(write_timeout, stream.shutdown()).await;
	Ok(())
}

/// Reads group `g` into `buf` and checks it against the outboard (or the CID).
fn read_group(
	source: &sync_store::GroupSource,
	outboard: &Outboard,
	cid: &Hash32,
	size: u64,
	g: u64,
	buf: &mut Vec<u8>,
) -> bool {
	buf.clear();
	if !matches!(source.read_into(g, buf), Ok(true)) {
		return false;
	}
	let leaf = if groups_of(size) > 1 {
		let Some((s, e)) = group_range(size, g) else { return false };
		outboard.subtree_cv(s, e - s)
	} else {
		None
	};
	verify_group(cid, size, leaf.as_ref(), g, buf).is_ok()
}

async fn put(
	reader: &mut BufReader<TcpStream>,
	shared: &Shared,
	path: &str,
	length: Option<u64>,
) -> Result<(), Refusal> {
	let (handle, max_object, limits) = (&shared.handle, shared.max_object, &shared.limits);
	let (segment, key) = parse_path(path)?;
	let net = handle
		.network()
		.ok_or_else(|| refuse(503, "the sync service is not running"))?
		.clone();
	let length = length.ok_or_else(|| refuse(411, "content-length required"))?;
	let epoch = handle.write_epoch_of(&net, segment);
	let refused = if let Err(e) = epoch {
		let status = match e {
			crate::NotWritable::NotOwner => 403,
			crate::NotWritable::Behind { .. } => 503,
		};
		Some(refuse(status, e.message(segment)))
	} else if length > max_object {
		Some(refuse(413, format!("object of {length} bytes is larger than {max_object}")))
	} else {
		None
	};
	if let Some(r) = refused {
		// Read (and drop) a body the client is still sending, so it sees the answer rather
		// than a reset; past DRAIN_MAX the connection is just closed.
		if length <= DRAIN_MAX {
			let (mut body, mut sink) = (reader.take(length), tokio::io::sink());
			let drain = tokio::io::copy(&mut body, &mut sink);
			let _ = within(body_deadline(limits, length), drain).await;
		}
		return Err(r);
	}
	// Memory for the body, out of the budget all connections share, before it is allocated.
	let _budget = shared
		.bodies
		.share(length, limits.head_timeout)
		.await
		.ok_or_else(|| refuse(503, "too many uploads in progress; retry later"))?;
	let mut data = vec![0u8; length as usize];
	within(body_deadline(limits, length), reader.read_exact(&mut data))
		.await
		.map_err(|e| match e.kind() {
			std::io::ErrorKind::TimedOut => refuse(408, "body too slow"),
			_ => refuse(400, format!("body: {e}")),
		})?;
	let size = data.len() as u64;
	let cid = sync_primitives::commitment::cid_of(&data);
	let write = sync_store::SegmentWrite::Put { key, data };
	let epoch = epoch.unwrap_or_default(); // Ok: refused above otherwise
	let head = tokio::task::spawn_blocking(move || net.write(segment, epoch, vec![write]))
		.await
		.map_err(|e| refuse(500, e.to_string()))?
		.map_err(|e| refuse(500, e.to_string()))?;
	let body = serde_json::json!({ "seq": head.seq, "root": hex(&head.facts.root), "cid": hex(&cid), "size": size }).to_string();
	let resp = format!(
		"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
		body.len()
	);
	let _ = reader.get_mut().write_all(resp.as_bytes()).await;
	Ok(())
}

async fn respond_error(stream: &mut TcpStream, code: u16, msg: &str) -> std::io::Result<()> {
	respond_json(stream, code, &serde_json::json!({ "error": msg })).await
}

/// A JSON answer with its status, and the connection closed.
async fn respond_json(
	stream: &mut TcpStream,
	code: u16,
	body: &serde_json::Value,
) -> std::io::Result<()> {
	let reason = match code {
		200 => "OK",
		400 => "Bad Request",
		403 => "Forbidden",
		404 => "Not Found",
		405 => "Method Not Allowed",
		408 => "Request Timeout",
		411 => "Length Required",
		413 => "Payload Too Large",
		431 => "Request Header Fields Too Large",
		503 => "Service Unavailable",
		_ => "Internal Server Error",
	};
	let body = body.to_string();
	let resp = format!(
		"HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
		body.len()
	);
	stream.write_all(resp.as_bytes()).await?;
	stream.shutdown().await
}

/// How long a body of `length` bytes may take: the head's grace plus `length` at the minimum
/// rate.
fn body_deadline(limits: &HttpLimits, length: u64) -> Duration {
	limits.head_timeout + Duration::from_secs(length / limits.min_body_rate.max(1))
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn percent_decoding_refuses_signs_and_short_escapes() {
		assert_eq!(percent_decode("a%2Fb"), Some(b"a/b".to_vec()));
		assert_eq!(percent_decode("%+1"), None);
		assert_eq!(percent_decode("%4"), None);
		assert_eq!(percent_decode("%zz"), None);
	}

	#[test]
	fn paths_name_a_segment_and_a_key() {
		assert_eq!(parse_path("/v1/segments/3/objects/a%20b").ok(), Some((3, b"a b".to_vec())));
		assert!(parse_path("/v1/segments/x/objects/a").is_err());
		assert!(parse_path("/v1/segments/3/objects/").is_err());
		assert!(parse_path("/v2/segments/3/objects/a").is_err());
	}

	async fn server(limits: HttpLimits) -> SocketAddr {
		let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
		let addr = listener.local_addr().unwrap();
		tokio::spawn(serve_on(listener, Arc::new(SyncHandle::default()), 1 << 20, limits));
		addr
	}

	/// The defect: no deadline on the request head, so a client that sent part of one held
	/// its connection and task forever (a slow-loris with many connections held them all).
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn stalled_http_client_is_cut_off() {
		let limits = HttpLimits { head_timeout: Duration::from_millis(200), ..Default::default() };
		let addr = server(limits).await;
		let mut c = TcpStream::connect(addr).await.unwrap();
		c.write_all(b"GET /v1/segm").await.unwrap();
		let t = std::time::Instant::now();
		let mut buf = Vec::new();
		tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
			.await
			.expect("the server closes a stalled connection")
			.ok();
		assert!(t.elapsed() < Duration::from_secs(5), "closed after {:?}", t.elapsed());
		assert!(buf.is_empty(), "no answer to half a request: {:?}", String::from_utf8_lossy(&buf));
	}

	/// The defect: no connection limit, so any number of clients held a task and a socket each.
	/// Past the limit a client waits (in the listen backlog) until a connection ends.
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn http_connections_are_bounded() {
		let limits = HttpLimits {
			max_connections: 2,
			head_timeout: Duration::from_secs(60),
			..Default::default()
		};
		let addr = server(limits).await;
		let idle = TcpStream::connect(addr).await.unwrap();
		let _idle2 = TcpStream::connect(addr).await.unwrap();
		tokio::time::sleep(Duration::from_millis(100)).await;
		let mut third = TcpStream::connect(addr).await.unwrap();
		third.write_all(b"GET /v1/segments/1/objects/k HTTP/1.1\r\n\r\n").await.unwrap();
		let mut buf = [0u8; 64];
		let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
		assert!(early.is_err(), "served while both connections were held");
		drop(idle);
		let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
			.await
			.expect("served once a connection ended")
			.unwrap();
		// No sync service in this test: the request itself is answered 503.
		assert!(buf[..n].starts_with(b"HTTP/1.1 503"), "{:?}", String::from_utf8_lossy(&buf[..n]));
	}

	async fn fetch(addr: SocketAddr, path: &str) -> (String, serde_json::Value) {
		let mut c = TcpStream::connect(addr).await.unwrap();
		c.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
		let mut buf = Vec::new();
		tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
			.await
			.unwrap()
			.unwrap();
		let text = String::from_utf8(buf).unwrap();
		let (head, body) = text.split_once("\r\n\r\n").unwrap();
		(head.lines().next().unwrap().to_string(), serde_json::from_str(body).unwrap())
	}

	/// `GET /health` and `/health/ready` answer the node's verdict with its reasons; a node
	/// whose data plane is not running is unhealthy, and neither probe passes.
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn health_endpoints_answer_the_verdict() {
		let addr = server(HttpLimits::default()).await;
		for path in ["/health", "/health/ready"] {
			let (status, body) = fetch(addr, path).await;
			assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{path}");
			assert_eq!(body["status"], "unhealthy");
			let codes: Vec<&str> = body["reasons"]
				.as_array()
				.unwrap()
				.iter()
				.map(|r| r["code"].as_str().unwrap())
				.collect();
			assert!(codes.contains(&"service_down") && codes.contains(&"no_sync_key"), "{codes:?}");
		}
	}
}
