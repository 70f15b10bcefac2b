//! The object API over plain HTTP on its own port (`--sync-http-addr`), for objects of any size:
//! JSON-RPC carries hex in one message, which caps objects at 4 MiB; here bodies are raw bytes,
//! streamed both ways.
//!
//! - `GET /v1/segments/{segment}/objects/{key}` → `200` with the object, streamed one 16 KiB
//!   group at a time, each group checked against the object's outboard before it is sent
//!   (headers `x-sync-cid`, `content-length`); `404` if the key is absent.
//! - `PUT /v1/segments/{segment}/objects/{key}` with a `content-length` body → `200` and
//!   `{ seq, root, cid, size }`: written into a segment this node owns, as one signed op
//!   announced to followers. The body is streamed to a file in the store (hashed as it
//!   arrives, never held in memory) and stored only once it arrived whole. `401` without the
//!   bearer token (`--sync-http-token-file`), `403` from a non-loopback client when no token is
//!   configured or if the node does not own the segment, `411` without a length, `413` above
//!   `--sync-http-max-object`, `503` (with `retry-after`) while the node is catching up on its
//!   segment or [`HttpLimits::max_uploads`] uploads are in progress, `507` if the disk lacks the
//!   room.
//! - `GET /health` → the node's sync health (see [`crate::health`]) as JSON: `200` while it is
//!   `healthy` or `degraded`, `503` when `unhealthy` (for a liveness probe or an alert);
//!   `GET /health/ready` → `200` only when `healthy` (for a load balancer: synced and proven).
//!
//! Keys are the rest of the path, percent-decoded (they may contain `/`). Errors are JSON
//! `{ "error": "…" }` with the status code; nothing is written on an error. One request per
//! connection (`connection: close`), request heads bounded to 16 KiB. HTTP/1.1 is parsed by
//! [hyper](https://hyper.rs) (already in the node through jsonrpsee), not by hand.
//!
//! **Writes are safe by default.** Anyone who can reach the port can read (objects are
//! content-addressed and served to any peer over the data plane anyway), but a write changes
//! the segment this node signs for: without `--sync-http-token-file` only clients on loopback
//! may PUT; with it, every PUT must carry `authorization: Bearer <token>` (compared in constant
//! time), wherever it comes from. Put a TLS-terminating proxy in front for remote writers.
//!
//! Every client is hostile until proven otherwise, so the server bounds what any number of
//! them can hold ([`HttpLimits`]): connections served at once (the rest wait in the listen
//! backlog), a deadline for the request head, a minimum rate for a body, a deadline for every
//! stalled response write, and uploads in progress (each holds one write buffer of
//! [`WRITE_CHUNK`] and a file that grows only as fast as its client sends). A failed `accept`
//! (say, out of file descriptors) is retried with a backoff; the server is not an essential
//! task of the node: if it ever ends, the node (and block authoring) goes on without it.
use crate::{health::Level, SyncHandle};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{
	body::{Frame, Incoming},
	header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING},
	Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{
	future::Future,
	net::SocketAddr,
	path::Path,
	pin::Pin,
	sync::Arc,
	task::{ready, Context, Poll},
	time::Duration,
};
use sync_primitives::hex::hex;
use sync_primitives::{
	commitment::{Hash32, GROUP_LEN},
	outboard::{group_range, groups_of, verify_group, Outboard},
};
use tokio::{
	io::{AsyncRead, AsyncWrite, ReadBuf},
	net::{TcpListener, TcpStream},
	time::{Instant, Sleep},
};

/// Largest request head accepted (hyper's read buffer; it answers `431` beyond).
const MAX_HEAD: usize = 16 * 1024;
/// Largest refused body read to the end before answering.
const DRAIN_MAX: u64 = 64 << 20;
/// Bytes of an upload gathered before they are written to its file (off the async threads).
pub const WRITE_CHUNK: usize = 1 << 20;

/// What the object API's clients can hold of this node, all of them together.
#[derive(Clone, Debug)]
pub struct HttpLimits {
	/// Connections served at once; more wait in the listen backlog until one ends.
	pub max_connections: usize,
	/// PUTs receiving a body at once; one that cannot start within `head_timeout` is answered
	/// `503` (retry later). Each holds at most [`WRITE_CHUNK`] of memory.
	pub max_uploads: usize,
	/// Free disk an upload must leave on the store's file system (`507` otherwise), so HTTP
	/// writers cannot fill the disk the store needs for syncing and its database.
	pub disk_reserve: u64,
	/// The whole request head must arrive within this, or the connection is closed.
	pub head_timeout: Duration,
	/// A body must arrive at least this fast (bytes per second), after a grace of
	/// `head_timeout`, or the request is answered `408` and nothing is written.
	pub min_body_rate: u64,
	/// A response write that makes no progress for this long closes the connection.
	pub write_timeout: Duration,
}

impl Default for HttpLimits {
	/// 64 connections; 8 uploads; 1 GiB of disk kept free; a head within 10 s; bodies at
	/// 256 KiB/s at least; 30 s for a stalled write.
	fn default() -> Self {
		HttpLimits {
			max_connections: 64,
			max_uploads: 8,
			disk_reserve: 1 << 30,
			head_timeout: Duration::from_secs(10),
			min_body_rate: 256 << 10,
			write_timeout: Duration::from_secs(30),
		}
	}
}

/// The bearer token PUTs must carry (`--sync-http-token-file`).
#[derive(Clone)]
pub struct BearerToken(blake3::Hash);

impl std::fmt::Debug for BearerToken {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str("BearerToken(…)")
	}
}

/// Shortest token accepted: 128 bits as hex.
pub const MIN_TOKEN_LEN: usize = 32;

impl BearerToken {
	/// The token in `path` (see [`read_token_file`]).
	pub fn from_file(path: &Path) -> Result<Self, String> {
		read_token_file(path).map(|t| Self::new(t.as_bytes()))
	}

	/// A token from its bytes.
	pub fn new(token: &[u8]) -> Self {
		BearerToken(blake3::hash(token))
	}

	/// Whether `presented` is the token. Both are hashed and the hashes compared in constant
	/// time (`blake3::Hash`'s equality), so neither the contents nor the length leak by timing.
	fn matches(&self, presented: &[u8]) -> bool {
		blake3::hash(presented) == self.0
	}
}

/// The token in the file at `path`: its contents, surrounding whitespace removed, at least
/// [`MIN_TOKEN_LEN`] visible ASCII characters (e.g. `openssl rand -hex 32 > token`). What the
/// node (`--sync-http-token-file`) and the CLI (`--http-token-file`) both read.
pub fn read_token_file(path: &Path) -> Result<String, String> {
	let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
	let token = text.trim();
	if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
		return Err(format!(
			"{}: the token must be at least {MIN_TOKEN_LEN} visible ASCII characters (e.g. `openssl rand -hex 32`)",
			path.display()
		));
	}
	Ok(token.to_string())
}

/// The object API's configuration (`--sync-http-*`).
#[derive(Clone, Debug)]
pub struct HttpConfig {
	/// Where it listens.
	pub addr: SocketAddr,
	/// Largest object accepted.
	pub max_object: u64,
	/// The token PUTs must carry; `None`: PUTs from loopback clients only.
	pub token: Option<BearerToken>,
	/// What clients can hold.
	pub limits: HttpLimits,
}

/// What every connection shares.
struct Shared {
	handle: Arc<SyncHandle>,
	config: HttpConfig,
	/// `limits.max_uploads`.
	uploads: tokio::sync::Semaphore,
	/// Bytes of the uploads admitted and not yet done with: the disk check counts them as
	/// used, so uploads admitted together cannot eat the reserve between them.
	admitted: Arc<std::sync::atomic::AtomicU64>,
}

/// An upload's share of [`Shared::admitted`], given back when the upload is done with.
struct Admitted(Arc<std::sync::atomic::AtomicU64>, u64);

impl Drop for Admitted {
	fn drop(&mut self) {
		self.0.fetch_sub(self.1, std::sync::atomic::Ordering::SeqCst);
	}
}

/// Binds the API's address now, so a bad or taken port fails the node's start with a clear
/// error rather than later in a background task.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
	let listener =
		std::net::TcpListener::bind(addr).map_err(|e| format!("--sync-http-addr {addr}: {e}"))?;
	listener
		.set_nonblocking(true)
		.map_err(|e| format!("--sync-http-addr {addr}: {e}"))?;
	Ok(listener)
}

/// Serves the API on `listener` (from [`bind`]) until the node stops.
pub async fn serve(listener: std::net::TcpListener, handle: Arc<SyncHandle>, config: HttpConfig) {
	let listener = match TcpListener::from_std(listener) {
		Ok(l) => l,
		Err(e) => {
			log::error!(target: "sync", "object API on {}: {e}", config.addr);
			return;
		},
	};
	if let Ok(local) = listener.local_addr() {
		log::info!(target: "sync", "💾 Object API on http://{local}/v1/segments/<id>/objects/<key>");
		if config.token.is_none() && !local.ip().is_loopback() {
			log::warn!(target: "sync", "object API on {local}: no --sync-http-token-file, so it accepts writes from loopback clients only");
		}
	}
	serve_on(listener, handle, config).await
}

/// Serves the API on `listener` within `config.limits`; never returns.
pub async fn serve_on(listener: TcpListener, handle: Arc<SyncHandle>, config: HttpConfig) {
	let limits = config.limits.clone();
	let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
	let shared = Arc::new(Shared {
		handle,
		uploads: tokio::sync::Semaphore::new(limits.max_uploads.max(1)),
		admitted: Default::default(),
		config,
	});
	let mut backoff = ACCEPT_BACKOFF_MIN;
	loop {
		let Ok(permit) = connections.clone().acquire_owned().await else { return };
		let (stream, peer) = match listener.accept().await {
			Ok(accepted) => {
				backoff = ACCEPT_BACKOFF_MIN;
				accepted
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
			let io = TokioIo::new(WriteDeadline::new(stream, shared.config.limits.write_timeout));
			let service = hyper::service::service_fn(|req| {
				let shared = shared.clone();
				async move { Ok::<_, std::convert::Infallible>(respond(&shared, peer, req).await) }
			});
			let conn = hyper::server::conn::http1::Builder::new()
				.timer(TokioTimer::new())
				.header_read_timeout(shared.config.limits.head_timeout)
				.max_buf_size(MAX_HEAD)
				.keep_alive(false)
				.serve_connection(io, service);
			if let Err(e) = conn.await {
				log::debug!(target: "sync", "object API connection from {peer}: {e}");
			}
		});
	}
}

/// The first wait after a failed `accept`, doubled per failure in a row up to the max.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A connection whose writes fail with `TimedOut` once one makes no progress for `limit`: a
/// client that stops reading gives its slot back.
struct WriteDeadline {
	io: TcpStream,
	limit: Duration,
	stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
	fn new(io: TcpStream, limit: Duration) -> Self {
		WriteDeadline { io, limit, stalled: None }
	}

	/// `poll` (a write, flush or shutdown of the stream), bounded by the stall deadline.
	fn bounded<T>(
		&mut self,
		cx: &mut Context<'_>,
		poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
	) -> Poll<std::io::Result<T>> {
		if let Poll::Ready(r) = poll(Pin::new(&mut self.io), cx) {
			self.stalled = None;
			return Poll::Ready(r);
		}
		let limit = self.limit;
		let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
		ready!(stalled.as_mut().poll(cx));
		self.stalled = None;
		Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write stalled")))
	}
}

impl AsyncRead for WriteDeadline {
	fn poll_read(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &mut ReadBuf<'_>,
	) -> Poll<std::io::Result<()>> {
		Pin::new(&mut self.io).poll_read(cx, buf)
	}
}

impl AsyncWrite for WriteDeadline {
	fn poll_write(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &[u8],
	) -> Poll<std::io::Result<usize>> {
		self.bounded(cx, |io, cx| io.poll_write(cx, buf))
	}
	fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
		self.bounded(cx, |io, cx| io.poll_flush(cx))
	}
	fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
		self.bounded(cx, |io, cx| io.poll_shutdown(cx))
	}
}

/// A response body: a JSON answer or a streamed object.
type Body = BoxBody<Bytes, std::io::Error>;

/// A refused request: status and message.
struct Refusal(StatusCode, String, Option<Box<crate::NotWritable>>);

fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
	Refusal(code, msg.into(), None)
}

/// A write this node does not take: `403` if it does not own the segment, `503` (with
/// `retry-after`) while it catches up, rewinds or hands the segment over; the body carries
/// [`crate::NotWritable::data`] and `x-sync-owner` names where to write when known.
fn not_writable(segment: sync_primitives::SegmentId, e: crate::NotWritable) -> Refusal {
	let code = match e {
		crate::NotWritable::NotOwner { .. } => StatusCode::FORBIDDEN,
		_ => StatusCode::SERVICE_UNAVAILABLE,
	};
	Refusal(code, e.message(segment), Some(Box::new(e)))
}

/// Answers one request; every error is a JSON refusal.
async fn respond(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
	let path = req.uri().path().to_string();
	let result = match *req.method() {
		Method::GET if path == "/health" || path == "/health/ready" => {
			// Off the async threads: it reads the store.
			let h = shared.handle.clone();
			let Ok(health) = tokio::task::spawn_blocking(move || h.health()).await else {
				return json(
					StatusCode::INTERNAL_SERVER_ERROR,
					&serde_json::json!({ "error": "health" }),
				);
			};
			let ok = match path.as_str() {
				"/health" => health.status != Level::Unhealthy,
				_ => health.status == Level::Healthy,
			};
			let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
			return json(code, &health.to_json());
		},
		Method::GET => get(shared, &path).await,
		Method::PUT => put(shared, peer, &path, req).await,
		_ => Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "only GET and PUT")),
	};
	result.unwrap_or_else(|Refusal(code, msg, why)| {
		let mut body = why.as_ref().map_or_else(|| serde_json::json!({}), |w| w.data());
		body["error"] = serde_json::json!(msg);
		let mut resp = json(code, &body);
		let owner = why.as_ref().and_then(|w| w.redirect()).map(|p| p.peer.to_string());
		if let Some(v) = owner.and_then(|o| HeaderValue::from_str(&o).ok()) {
			resp.headers_mut().insert("x-sync-owner", v);
		}
		if code == StatusCode::SERVICE_UNAVAILABLE {
			resp.headers_mut()
				.insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
		}
		if code == StatusCode::UNAUTHORIZED {
			resp.headers_mut()
				.insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
		}
		resp
	})
}

/// A JSON answer with its status.
fn json(code: StatusCode, body: &serde_json::Value) -> Response<Body> {
	let mut resp = Response::new(
		Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed(),
	);
	*resp.status_mut() = code;
	resp.headers_mut()
		.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
	resp
}

/// `/v1/segments/{segment}/objects/{key}` → (segment, key bytes).
fn parse_path(path: &str) -> Result<(u64, Vec<u8>), Refusal> {
	let rest = path
		.strip_prefix("/v1/segments/")
		.ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such endpoint"))?;
	let (segment, key) = rest
		.split_once("/objects/")
		.ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such endpoint"))?;
	let segment = segment
		.parse()
		.map_err(|_| refuse(StatusCode::BAD_REQUEST, "segment is not a number"))?;
	let key = percent_decode(key)
		.ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "bad percent-encoding in the key"))?;
	if key.is_empty() || key.len() > sync_primitives::commitment::MAX_KEY_LEN as usize {
		return Err(refuse(StatusCode::BAD_REQUEST, "key must be 1 to 256 bytes"));
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

/// Streams an object, each group checked before it is sent. Everything that touches the
/// store runs off the async threads, and the whole response must be sent within
/// `head_timeout + size / min_body_rate` (a client that reads slowly but steadily cannot hold
/// its connection slot for ever).
async fn get(shared: &Shared, path: &str) -> Result<Response<Body>, Refusal> {
	let (segment, key) = parse_path(path)?;
	let net = shared.handle.network().ok_or_else(unavailable)?;
	let store = net.store().clone();
	let internal = |e: String| refuse(StatusCode::INTERNAL_SERVER_ERROR, e);
	let (cid, size, outboard, source) = blocking(move || {
		let entry = store
			.lookup(segment, &key)
			.ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such object"))?;
		let (cid, size) = (entry.cid, entry.size);
		let outboard = store
			.outboard(&cid)
			.ok()
			.and_then(|b| Outboard::from_bytes(size, &b).ok())
			.ok_or_else(|| internal("object not complete in this store".into()))?;
		let source = store.open_groups(&cid).map_err(|e| internal(e.to_string()))?;
		Ok((cid, size, outboard, source))
	})
	.await?;
	let deadline = std::time::Instant::now() + body_deadline(&shared.config.limits, size);
	// The status is sent before the data: a group that fails its check (or comes too late)
	// ends the response early (the connection is closed, the client sees a short body); it is
	// never sent. The reader runs on a blocking thread, a few groups ahead of the socket.
	let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
	tokio::task::spawn_blocking(move || {
		for g in 0..groups_of(size) {
			let mut buf = Vec::with_capacity(GROUP_LEN as usize);
			let frame = if std::time::Instant::now() > deadline {
				Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "response too slow"))
			} else if read_group(&source, &outboard, &cid, size, g, &mut buf) {
				Ok(Frame::data(Bytes::from(buf)))
			} else {
				log::warn!(target: "sync", "object API: object {} group {g} unavailable or corrupt; response cut short", hex(&cid));
				Err(std::io::Error::other("object group unavailable or corrupt"))
			};
			let last = frame.is_err();
			// The client is gone (its connection closed): stop reading.
			if tx.blocking_send(frame).is_err() || last {
				return;
			}
		}
	});
	let frames = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|f| (f, rx)) });
	let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
	let headers = resp.headers_mut();
	headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
	headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
	if let Ok(v) = HeaderValue::from_str(&hex(&cid)) {
		headers.insert("x-sync-cid", v);
	}
	Ok(resp)
}

fn unavailable() -> Refusal {
	refuse(StatusCode::SERVICE_UNAVAILABLE, "the sync service is not running")
}

/// Headers a proxy adds to what it forwards.
const FORWARDED_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Whether `peer` may write with the headers it sent: the token if one is configured, else
/// only from loopback, and not through a proxy.
fn authorize(
	token: Option<&BearerToken>,
	peer: SocketAddr,
	headers: &hyper::HeaderMap,
) -> Result<(), Refusal> {
	match token {
		Some(token) => {
			// `Bearer` is case-insensitive (RFC 7235); the token is what follows the space.
			let presented = headers.get(AUTHORIZATION).and_then(|v| {
				let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
				scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().as_bytes())
			});
			match presented {
				Some(p) if token.matches(p) => Ok(()),
				_ => Err(refuse(
					StatusCode::UNAUTHORIZED,
					"a PUT needs `authorization: Bearer <token>` (--sync-http-token-file)",
				)),
			}
		},
		// A request a proxy forwarded comes from loopback but is not local: behind a proxy,
		// writes need the token.
		None if FORWARDED_HEADERS.iter().any(|h| headers.contains_key(*h)) => Err(refuse(
			StatusCode::FORBIDDEN,
			"a forwarded PUT (through a proxy) needs the node to be started with --sync-http-token-file",
		)),
		None if peer.ip().to_canonical().is_loopback() => Ok(()),
		None => Err(refuse(
			StatusCode::FORBIDDEN,
			"writes from other hosts need the node to be started with --sync-http-token-file",
		)),
	}
}

async fn put(
	shared: &Shared,
	peer: SocketAddr,
	path: &str,
	req: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
	let (config, limits) = (&shared.config, &shared.config.limits);
	authorize(config.token.as_ref(), peer, req.headers())?;
	let (segment, key) = parse_path(path)?;
	if req.headers().contains_key(TRANSFER_ENCODING) {
		return Err(refuse(
			StatusCode::LENGTH_REQUIRED,
			"send a content-length, not a transfer-encoding",
		));
	}
	let length = match req.headers().get(CONTENT_LENGTH) {
		None => return Err(refuse(StatusCode::LENGTH_REQUIRED, "content-length required")),
		// hyper has checked it is one valid number.
		Some(v) => v
			.to_str()
			.ok()
			.and_then(|v| v.parse::<u64>().ok())
			.ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "bad content-length"))?,
	};
	let net = shared.handle.network().ok_or_else(unavailable)?.clone();
	let epoch = shared.handle.write_epoch_of(&net, segment);
	let store = net.store().clone();
	let refused = match &epoch {
		Err(e) => Some(not_writable(segment, e.clone())),
		Ok(_) if length > config.max_object => Some(refuse(
			StatusCode::PAYLOAD_TOO_LARGE,
			format!("object of {length} bytes is larger than {}", config.max_object),
		)),
		Ok(_) => None,
	};
	if let Some(r) = refused {
		drain(req, length, limits).await;
		return Err(r);
	}
	let _upload = tokio::time::timeout(limits.head_timeout, shared.uploads.acquire())
		.await
		.ok()
		.and_then(Result::ok)
		.ok_or_else(|| {
			refuse(StatusCode::SERVICE_UNAVAILABLE, "too many uploads in progress; retry later")
		})?;
	// Room on disk for this upload besides the ones admitted before it and the reserve.
	let _admitted = {
		use std::sync::atomic::Ordering::SeqCst;
		let free = store.disk_space().map(|(free, _)| free).unwrap_or(u64::MAX);
		let before = shared.admitted.fetch_add(length, SeqCst);
		let admitted = Admitted(shared.admitted.clone(), length);
		let needed = length.saturating_add(before).saturating_add(limits.disk_reserve);
		if free < needed {
			drop(admitted);
			drain(req, length, limits).await;
			return Err(refuse(
				StatusCode::INSUFFICIENT_STORAGE,
				format!(
					"{free} bytes free: not enough for {length} plus {before} being uploaded plus the {} kept free",
					limits.disk_reserve
				),
			));
		}
		admitted
	};
	let failed = |e: String| refuse(StatusCode::INTERNAL_SERVER_ERROR, e);
	let s = store.clone();
	let upload =
		blocking(move || s.begin_upload(length).map_err(|e| failed(e.to_string()))).await?;
	let deadline = Instant::now() + body_deadline(limits, length);
	let object = receive(req.into_body(), upload, deadline).await?;
	let (cid, size) = (object.cid(), object.size());
	let write = sync_store::SegmentWrite::PutStaged { key, object };
	let epoch = epoch.unwrap_or_default(); // Ok: refused above otherwise
	let handle = shared.handle.clone();
	let head = blocking(move || {
		// The upload may have taken minutes: sign only in the epoch the chain still gives
		// this node (an op of an epoch that ended is refused by every follower: a lost write
		// acknowledged with 200).
		match handle.write_epoch_of(&net, segment) {
			Ok(e) if e == epoch => {},
			// A handover began, or ownership moved, during the upload: the typed refusal
			// (with the owner to follow), as before an upload.
			Err(e) => return Err(not_writable(segment, e)),
			Ok(_) => {
				return Err(refuse(
					StatusCode::CONFLICT,
					format!("the ownership of segment {segment} changed during the upload; nothing was written (retry with the new owner)"),
				))
			},
		}
		net.write(segment, epoch, vec![write]).map_err(|e| match e {
			sync_store::StoreError::Fenced { .. } => not_writable(segment, handle.fenced(segment)),
			e => failed(e.to_string()),
		})
	})
	.await?;
	Ok(json(
		StatusCode::OK,
		&serde_json::json!({ "seq": head.seq, "root": hex(&head.facts.root), "cid": hex(&cid), "size": size }),
	))
}

/// Receives a body into `upload`, [`WRITE_CHUNK`] at a time written off the async threads,
/// by `deadline` (`408` after it).
async fn receive(
	mut body: Incoming,
	mut upload: sync_store::Upload,
	deadline: Instant,
) -> Result<sync_store::StagedObject, Refusal> {
	let bad = |e: String| refuse(StatusCode::BAD_REQUEST, format!("body: {e}"));
	let mut buf = Vec::with_capacity(WRITE_CHUNK);
	loop {
		let frame = tokio::time::timeout_at(deadline, body.frame())
			.await
			.map_err(|_| refuse(StatusCode::REQUEST_TIMEOUT, "body too slow"))?;
		let end = match frame {
			None => true,
			Some(Err(e)) => return Err(bad(e.to_string())),
			Some(Ok(frame)) => {
				if let Ok(data) = frame.into_data() {
					buf.extend_from_slice(&data);
				}
				false
			},
		};
		if buf.len() >= WRITE_CHUNK || (end && !buf.is_empty()) {
			let (u, b) = blocking(move || {
				let written = upload.write(&buf);
				buf.clear();
				written.map(|()| (upload, buf)).map_err(store_failed)
			})
			.await?;
			(upload, buf) = (u, b);
		}
		if end {
			return blocking(move || upload.finish().map_err(store_failed)).await;
		}
	}
}

/// A store error while receiving a body: `507` when the disk is full, `400` for a body of
/// another length than declared, `500` otherwise.
fn store_failed(e: sync_store::StoreError) -> Refusal {
	match &e {
		sync_store::StoreError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
			refuse(StatusCode::INSUFFICIENT_STORAGE, format!("storing the body: {e}"))
		},
		sync_store::StoreError::UploadLength { .. } => {
			refuse(StatusCode::BAD_REQUEST, format!("body: {e}"))
		},
		_ => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("storing the body: {e}")),
	}
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
	f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
	tokio::task::spawn_blocking(f)
		.await
		.map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Reads (and drops) the body of a refused PUT the client is still sending, so it sees the
/// answer rather than a reset; not past [`DRAIN_MAX`], nor when the client waits for
/// `100 Continue` before it sends (reading the body would ask for it).
async fn drain(req: Request<Incoming>, length: u64, limits: &HttpLimits) {
	if length > DRAIN_MAX || req.headers().contains_key(EXPECT) {
		return;
	}
	let mut body = req.into_body();
	let _ = tokio::time::timeout(body_deadline(limits, length), async {
		while let Some(Ok(_)) = body.frame().await {}
	})
	.await;
}

/// How long a body of `length` bytes may take: the head's grace plus `length` at the minimum
/// rate.
fn body_deadline(limits: &HttpLimits, length: u64) -> Duration {
	limits.head_timeout + Duration::from_secs(length / limits.min_body_rate.max(1))
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

#[cfg(test)]
mod tests {
	use super::*;
	use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

	async fn server_with(limits: HttpLimits, token: Option<BearerToken>) -> SocketAddr {
		let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
		let addr = listener.local_addr().unwrap();
		let config = HttpConfig { addr, max_object: 1 << 20, token, limits };
		tokio::spawn(serve_on(listener, Arc::new(SyncHandle::default()), config));
		addr
	}

	async fn server(limits: HttpLimits) -> SocketAddr {
		server_with(limits, None).await
	}

	/// Sends `request` whole and reads the answer to the end: (status line, body).
	async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, String) {
		let mut c = TcpStream::connect(addr).await.unwrap();
		c.write_all(request).await.unwrap();
		let mut buf = Vec::new();
		tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
			.await
			.unwrap()
			.unwrap();
		let text = String::from_utf8(buf).unwrap();
		let (head, body) = text.split_once("\r\n\r\n").unwrap();
		(head.lines().next().unwrap().to_string(), body.to_string())
	}

	/// The defect: PUT had no authentication. Without a token only loopback clients may
	/// write; with one, every PUT needs it (wherever it comes from), and GET stays open.
	#[test]
	fn http_put_needs_the_token_or_loopback() {
		let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
		let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
		let local6: SocketAddr = "[::1]:5000".parse().unwrap();
		let none = hyper::HeaderMap::new();
		let code = |r: Result<(), Refusal>| r.err().map(|Refusal(c, _, _)| c.as_u16());
		assert_eq!(code(authorize(None, local, &none)), None);
		assert_eq!(code(authorize(None, local6, &none)), None);
		assert_eq!(code(authorize(None, remote, &none)), Some(403));
		let token = BearerToken::new(b"0123456789abcdef0123456789abcdef");
		let mut good = hyper::HeaderMap::new();
		good.insert(AUTHORIZATION, "Bearer 0123456789abcdef0123456789abcdef".parse().unwrap());
		let mut bad = hyper::HeaderMap::new();
		bad.insert(AUTHORIZATION, "Bearer 0123456789abcdef0123456789abcdeX".parse().unwrap());
		let mut basic = hyper::HeaderMap::new();
		basic.insert(AUTHORIZATION, "Basic 0123456789abcdef0123456789abcdef".parse().unwrap());
		assert_eq!(code(authorize(Some(&token), remote, &good)), None);
		// The scheme is case-insensitive.
		let mut lower = hyper::HeaderMap::new();
		lower.insert(AUTHORIZATION, "bearer 0123456789abcdef0123456789abcdef".parse().unwrap());
		assert_eq!(code(authorize(Some(&token), remote, &lower)), None);
		// An IPv4 loopback client on a dual-stack listener is loopback too.
		let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
		assert_eq!(code(authorize(None, mapped, &none)), None);
		// The review's finding: behind a proxy on the same host every client is "loopback".
		// A forwarded request needs the token.
		for h in FORWARDED_HEADERS {
			let mut fwd = hyper::HeaderMap::new();
			fwd.insert(h, "203.0.113.9".parse().unwrap());
			assert_eq!(code(authorize(None, local, &fwd)), Some(403), "{h}");
			let mut both = good.clone();
			both.insert(h, "203.0.113.9".parse().unwrap());
			assert_eq!(code(authorize(Some(&token), local, &both)), None, "{h} with the token");
		}
		for (who, headers) in [(remote, &bad), (remote, &none), (local, &none), (local, &basic)] {
			assert_eq!(code(authorize(Some(&token), who, headers)), Some(401), "{who} {headers:?}");
		}
	}

	/// A token file must hold a real secret: short, empty or non-printable tokens are refused
	/// at start; surrounding whitespace (a trailing newline) is not part of it.
	#[test]
	fn weak_or_missing_token_files_are_refused() {
		let dir = tempfile::tempdir().unwrap();
		let path = dir.path().join("token");
		assert!(BearerToken::from_file(&path).is_err());
		for weak in ["", "short", "with space in the middle of a long token"] {
			std::fs::write(&path, weak).unwrap();
			assert!(BearerToken::from_file(&path).is_err(), "{weak:?}");
		}
		std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
		assert!(BearerToken::from_file(&path)
			.unwrap()
			.matches(b"0123456789abcdef0123456789abcdef"));
	}

	/// Over the wire: a PUT without the token is answered `401` with `www-authenticate`; with
	/// it, the request goes on (here to `503`: no sync service in this test).
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn http_put_without_token_is_unauthorized() {
		let token = "0123456789abcdef0123456789abcdef";
		let addr =
			server_with(HttpLimits::default(), Some(BearerToken::new(token.as_bytes()))).await;
		let put = |auth: &str| {
			format!("PUT /v1/segments/1/objects/k HTTP/1.1\r\nhost: x\r\n{auth}content-length: 3\r\n\r\nabc")
		};
		let (status, body) = exchange(addr, put("").as_bytes()).await;
		assert!(status.starts_with("HTTP/1.1 401"), "{status} {body}");
		let (status, _) =
			exchange(addr, put(&format!("authorization: Bearer {token}\r\n")).as_bytes()).await;
		assert!(status.starts_with("HTTP/1.1 503"), "{status}");
	}

	/// Malformed requests get a typed answer from the parser, never a hang or a crash: a
	/// head past 16 KiB is `431`, a PUT without a length `411`, garbage `400`.
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn malformed_http_requests_are_refused() {
		let addr = server(HttpLimits::default()).await;
		let huge = format!("GET /health HTTP/1.1\r\nx-pad: {}\r\n\r\n", "a".repeat(20_000));
		let (status, _) = exchange(addr, huge.as_bytes()).await;
		assert!(status.starts_with("HTTP/1.1 431"), "{status}");
		let chunked = b"PUT /v1/segments/1/objects/k HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
		let (status, _) = exchange(addr, chunked).await;
		assert!(status.starts_with("HTTP/1.1 411"), "{status}");
		let (status, _) = exchange(addr, b"\x16\x03\x01 garbage\r\n\r\n").await;
		assert!(status.starts_with("HTTP/1.1 400"), "{status}");
	}

	/// The defect class of the stalled head, for a response: a client that stops reading a
	/// streamed answer gives its connection slot back once a write stalls for the limit.
	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn stalled_writes_fail_after_the_limit() {
		let (a, mut b) = {
			let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
			let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
			(l.accept().await.unwrap().0, c)
		};
		let mut w = WriteDeadline::new(a, Duration::from_millis(200));
		let chunk = vec![0u8; 1 << 16];
		let t = std::time::Instant::now();
		let err = loop {
			if let Err(e) = w.write_all(&chunk).await {
				break e;
			}
			assert!(t.elapsed() < Duration::from_secs(10), "writes never stalled");
		};
		assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
		let mut one = [0u8; 1];
		b.read_exact(&mut one).await.unwrap();
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
		let (status, body) =
			exchange(addr, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes()).await;
		(status, serde_json::from_str(&body).unwrap())
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
