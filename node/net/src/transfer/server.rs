//! Serving side of the transfer protocol, within the [`ServeLimits`]:
//! - **admission**: streams in total, per peer, and for unknown peers together (the rest is
//!   kept for known peers, see [`KnownPeers`]); a refused stream is answered `Busy`;
//! - **deadlines**: the whole first request of a stream, the idle time between requests, the
//!   rest of a request frame once it started, the wait for an answer slot, and the write of
//!   each response (a client that does not read loses its stream, and its slot goes to the next
//!   request);
//! - a **gate** of answer slots: known peers' requests before unknown peers', high priority
//!   before low, and at most [`ServeLimits::max_requests_unknown`] unknown ones at once;
//! - **byte rates** per peer (lower for unknown peers) and in total, for groups and outboards;
//! - **store I/O on the blocking pool**, never on the async worker threads; responses are
//!   streamed in frames, never built whole (groups are read a few at a time).
//!
//! Nothing here blames or bans a peer: a client that is slow or idle only loses its stream.
use super::protocol::{priority, Priority};
use crate::{
	bounded::{LruMap, MemoryBudget, PEER_MAP_CAP},
	metrics::Metrics,
	peers::PeerManager,
	snapshot::Holder,
	ServeLimits,
};
use codec::{DecodeAll, Encode};
use futures::{io::BufWriter, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use parking_lot::Mutex;
use std::{
	collections::{HashMap, HashSet, VecDeque},
	future::Future,
	io,
	pin::Pin,
	sync::Arc,
	task::{Context, Poll},
	time::Duration,
};
use sync_primitives::{commitment::Hash32, SegmentId};
use sync_proto::{
	check_limits, write_data_frame, write_frame, write_msg, Envelope, ErrorCode, Request, Response,
	WireError, WireHead, MAX_DATA_FRAME, MAX_REQUEST_BYTES, TAG_DATA, TAG_MISSING, VERSION,
};
use sync_store::{wire::entry_to_wire, GroupSource, Peer, Store, StoreError};
use tokio::{
	sync::{oneshot, watch},
	task::AbortHandle,
	time::{Instant, Sleep},
};

/// How long answering a refusal (`Busy` and the like) and closing the stream may take: a
/// refused stream is dropped after this even if its peer does not read.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Groups read from the store per blocking call (256 KiB): the first bytes leave after one
/// batch, the next batch is read while this one is written, and no blocking thread ever waits
/// on the network.
const GROUP_BATCH: usize = 64;
/// Past this many per-peer buckets, refilled unused ones are dropped when a new one is made
/// (a refilled bucket is the same as a new one, so nothing changes for anyone).
const BUCKET_SWEEP: usize = 1024;

/// `at + d`, saturating far in the future instead of overflowing on an absurd configuration.
fn later(at: Instant, d: Duration) -> Instant {
	at.checked_add(d).unwrap_or_else(|| at + Duration::from_secs(365 * 86_400))
}

/// A token bucket of bytes per second (bursts of a quarter second).
struct Bucket {
	rate: u64,
	burst: f64,
	tokens: f64,
	last: Instant,
}

impl Bucket {
	fn new(rate: u64) -> Self {
		let rate = rate.max(1);
		let burst = rate as f64 / 4.0;
		Bucket { rate, burst, tokens: burst, last: Instant::now() }
	}

	fn refill(&mut self, now: Instant) {
		let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
		self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst);
		self.last = now;
	}

	/// Takes `n` tokens; returns how long to wait before sending.
	fn take(&mut self, n: u64) -> Duration {
		self.refill(Instant::now());
		self.tokens -= n as f64;
		if self.tokens >= 0.0 {
			Duration::ZERO
		} else {
			Duration::from_secs_f64(-self.tokens / self.rate as f64)
		}
	}

	/// Changes the rate (a peer that became known, or stopped being known).
	fn set_rate(&mut self, rate: u64) {
		let rate = rate.max(1);
		if rate != self.rate {
			self.refill(Instant::now());
			self.rate = rate;
			self.burst = rate as f64 / 4.0;
			self.tokens = self.tokens.min(self.burst);
		}
	}

	/// Whether the bucket has refilled completely (it is then the same as a new one).
	fn is_full(&mut self, now: Instant) -> bool {
		self.refill(now);
		self.tokens >= self.burst
	}
}

/// Waits until `bucket` allows `n` bytes; returns how long it waited.
async fn throttle(bucket: Option<&Mutex<Bucket>>, n: u64) -> Duration {
	let Some(b) = bucket else { return Duration::ZERO };
	let wait = b.lock().take(n);
	if !wait.is_zero() {
		tokio::time::sleep(wait).await;
	}
	wait
}

/// The per-peer byte-rate buckets: refilled unused ones are swept past [`BUCKET_SWEEP`], and
/// unknown peers beyond [`PEER_MAP_CAP`] buckets (identities made up faster than their buckets
/// refill) share one overflow bucket at the unknown-peer rate, so the map stays bounded and no
/// peer is ever served faster than its own limit. Known peers (bounded by the chain's holder
/// lists) always get their own.
#[derive(Default)]
struct Buckets {
	per_peer: HashMap<PeerId, Arc<Mutex<Bucket>>>,
	overflow: Option<Arc<Mutex<Bucket>>>,
}

impl Buckets {
	/// The bucket of `peer`, at `rate` bytes per second.
	fn get(&mut self, peer: PeerId, known: bool, rate: u64, now: Instant) -> Arc<Mutex<Bucket>> {
		if let Some(b) = self.per_peer.get(&peer) {
			b.lock().set_rate(rate);
			return b.clone();
		}
		if self.per_peer.len() >= BUCKET_SWEEP {
			self.per_peer.retain(|_, b| Arc::strong_count(b) > 1 || !b.lock().is_full(now));
		}
		if !known && self.per_peer.len() >= PEER_MAP_CAP {
			let b = self.overflow.get_or_insert_with(|| Arc::new(Mutex::new(Bucket::new(rate))));
			b.lock().set_rate(rate);
			return b.clone();
		}
		let b = Arc::new(Mutex::new(Bucket::new(rate)));
		self.per_peer.insert(peer, b.clone());
		b
	}
}

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] once they are blocked (the peer
/// does not read, so the transport does not take more) past the write deadline. Reads pass
/// through. The server moves the deadline later by the time it spends on other things than the
/// peer (rate limits, the store) and by the time the response's size is allowed.
struct Timed<S> {
	inner: S,
	deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> Timed<S> {
	fn new(inner: S) -> Self {
		Timed { inner, deadline: None }
	}

	/// Sets (`Some`) or clears (`None`) the write deadline.
	fn set_deadline(&mut self, at: Option<Instant>) {
		let Some(at) = at else {
			self.deadline = None;
			return;
		};
		match self.deadline.as_mut() {
			Some(sleep) => sleep.as_mut().reset(at),
			None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
		}
	}

	/// Moves the write deadline (if any) `by` later.
	fn extend(&mut self, by: Duration) {
		if let Some(sleep) = self.deadline.as_mut() {
			let at = later(sleep.deadline(), by);
			sleep.as_mut().reset(at);
		}
	}

	/// Whether the deadline has passed (registering the task to be woken when it does).
	fn expired(&mut self, cx: &mut Context<'_>) -> bool {
		match self.deadline.as_mut() {
			Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
			None => false,
		}
	}
}

fn write_timed_out() -> io::Error {
	io::Error::new(io::ErrorKind::TimedOut, "write deadline passed")
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
	fn poll_write(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &[u8],
	) -> Poll<io::Result<usize>> {
		let this = &mut *self;
		match Pin::new(&mut this.inner).poll_write(cx, buf) {
			Poll::Pending if this.expired(cx) => Poll::Ready(Err(write_timed_out())),
			other => other,
		}
	}

	fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
		let this = &mut *self;
		match Pin::new(&mut this.inner).poll_flush(cx) {
			Poll::Pending if this.expired(cx) => Poll::Ready(Err(write_timed_out())),
			other => other,
		}
	}

	fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
		let this = &mut *self;
		match Pin::new(&mut this.inner).poll_close(cx) {
			Poll::Pending if this.expired(cx) => Poll::Ready(Err(write_timed_out())),
			other => other,
		}
	}
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
	fn poll_read(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &mut [u8],
	) -> Poll<io::Result<usize>> {
		Pin::new(&mut self.inner).poll_read(cx, buf)
	}
}

/// A served stream as the server reads and writes it.
type Io = BufWriter<Timed<Stream>>;

/// Number of waiting queues of the [`Gate`], in serving order (see [`class`]).
const CLASSES: usize = 4;

/// The queue of a request: known peers' high then low priority, then unknown peers' high then
/// low priority (see [`priority`]).
fn class(known: bool, priority: Priority) -> usize {
	(if known { 0 } else { 2 }) + (if priority == Priority::High { 0 } else { 1 })
}

/// Admission of requests to the answer slots: a freed slot goes to the oldest waiter of the
/// first non-empty queue (see [`class`]), except that unknown peers never hold more than their
/// share of the slots at once.
struct Gate {
	state: Mutex<GateState>,
}

struct GateState {
	/// Free slots.
	free: usize,
	/// Slots unknown peers may still take.
	unknown_free: usize,
	queues: [VecDeque<oneshot::Sender<GatePass>>; CLASSES],
}

impl GateState {
	fn take(&mut self, known: bool) {
		self.free -= 1;
		if !known {
			self.unknown_free -= 1;
		}
	}

	fn give_back(&mut self, known: bool) {
		self.free += 1;
		if !known {
			self.unknown_free += 1;
		}
	}

	/// Hands free slots to waiters, in class order.
	fn dispatch(&mut self, gate: &Arc<Gate>) {
		while self.free > 0 {
			let unknown_ok = self.unknown_free > 0;
			let Some(c) =
				(0..CLASSES).find(|&c| !self.queues[c].is_empty() && (c < 2 || unknown_ok))
			else {
				return;
			};
			let Some(tx) = self.queues[c].pop_front() else { return };
			let known = c < 2;
			self.take(known);
			if let Err(mut pass) = tx.send(GatePass { gate: Some(gate.clone()), known }) {
				// The waiter is gone: the slot comes back unused (without the pass's drop hook,
				// which would lock the state again).
				pass.gate = None;
				self.give_back(known);
			}
		}
	}
}

/// An answer slot; dropping it hands the slot to the next waiter.
struct GatePass {
	gate: Option<Arc<Gate>>,
	known: bool,
}

impl Gate {
	/// `slots` answer slots, of which unknown peers may hold `unknown_slots` at once.
	fn new(slots: usize, unknown_slots: usize) -> Self {
		let free = slots.max(1);
		Gate {
			state: Mutex::new(GateState {
				free,
				unknown_free: unknown_slots.min(free),
				queues: Default::default(),
			}),
		}
	}

	/// Waits for a slot. Cancel-safe: a slot handed to a waiter that went away is passed on.
	async fn enter(self: &Arc<Self>, known: bool, priority: Priority) -> GatePass {
		let rx = {
			let mut s = self.state.lock();
			// Waiters of an eligible class exist only while no slot is free for them.
			if s.free > 0 && (known || s.unknown_free > 0) {
				s.take(known);
				return GatePass { gate: Some(self.clone()), known };
			}
			let (tx, rx) = oneshot::channel();
			s.queues[class(known, priority)].push_back(tx);
			rx
		};
		rx.await.unwrap_or(GatePass { gate: None, known })
	}

	fn release(self: &Arc<Self>, known: bool) {
		let mut s = self.state.lock();
		s.give_back(known);
		s.dispatch(self);
	}
}

impl Drop for GatePass {
	fn drop(&mut self) {
		if let Some(gate) = self.gate.take() {
			gate.release(self.known);
		}
	}
}

/// The peers the chain lists as holders (Primaries and Replicas) of the segments this node
/// holds or syncs, plus the operator's trusted peers: "known" peers, which get the larger
/// stream quota, the answer slots first and no unknown-peer rate (see [`ServeLimits`]), and
/// whose connections the per-IP and unknown-peer connection limits never refuse.
///
/// Fed per segment, by `SyncNetwork::set_known_peers` (the node passes the holder lists it
/// reads from the chain for every segment it tracks, including the ones it owns) and from the
/// holder lists given to `follow` and `sync_segment`.
pub(crate) struct KnownPeers {
	trusted: HashSet<PeerId>,
	state: Mutex<KnownState>,
}

#[derive(Default)]
struct KnownState {
	by_segment: HashMap<SegmentId, Vec<PeerId>>,
	all: HashSet<PeerId>,
	/// The task keeping each segment's list equal to a holder watch.
	feeds: HashMap<SegmentId, AbortHandle>,
}

impl KnownPeers {
	/// No known peers but `trusted`.
	pub(crate) fn new(trusted: HashSet<PeerId>) -> Arc<Self> {
		Arc::new(KnownPeers { trusted, state: Mutex::new(KnownState::default()) })
	}

	/// Whether `peer` is known.
	pub(crate) fn contains(&self, peer: &PeerId) -> bool {
		self.trusted.contains(peer) || self.state.lock().all.contains(peer)
	}

	/// Replaces the known peers of `segment` (an empty list forgets the segment).
	pub(crate) fn set(&self, segment: SegmentId, peers: Vec<PeerId>) {
		let mut guard = self.state.lock();
		let s = &mut *guard;
		if peers.is_empty() {
			s.by_segment.remove(&segment);
		} else {
			s.by_segment.insert(segment, peers);
		}
		s.all = s.by_segment.values().flatten().copied().collect();
	}

	/// Keeps the known peers of `segment` equal to the holders in `holders` while it is open
	/// (the last list stays after it closes); replaces an earlier feed of the segment.
	pub(crate) fn feed(
		self: &Arc<Self>,
		segment: SegmentId,
		mut holders: watch::Receiver<Vec<Holder>>,
	) {
		if let Some(old) = self.state.lock().feeds.remove(&segment) {
			old.abort();
		}
		let known = self.clone();
		let task = tokio::spawn(async move {
			loop {
				let peers: Vec<PeerId> =
					holders.borrow_and_update().iter().map(|h| h.peer).collect();
				known.set(segment, peers);
				if holders.changed().await.is_err() {
					return;
				}
			}
		});
		self.state.lock().feeds.insert(segment, task.abort_handle());
	}
}

/// Inbound streams being served.
#[derive(Default)]
struct Streams {
	per_peer: HashMap<PeerId, usize>,
	total: usize,
	unknown: usize,
}

impl Streams {
	fn release(&mut self, peer: PeerId, known: bool) {
		self.total = self.total.saturating_sub(1);
		if !known {
			self.unknown = self.unknown.saturating_sub(1);
		}
		if let Some(n) = self.per_peer.get_mut(&peer) {
			*n = n.saturating_sub(1);
			if *n == 0 {
				self.per_peer.remove(&peer);
			}
		}
	}
}

/// Releases a peer's stream slot when a served stream ends.
struct Slot {
	server: Arc<Server>,
	peer: PeerId,
	known: bool,
}

impl Drop for Slot {
	fn drop(&mut self) {
		self.server.metrics.streams.with_label_values(&["inbound"]).dec();
		self.server.streams.lock().release(self.peer, self.known);
	}
}

/// Counts a request in `sync_net_requests_serving` while it is answered.
struct Serving(prometheus::IntGauge);

impl Serving {
	fn new(metrics: &Metrics) -> Self {
		metrics.serving.inc();
		Serving(metrics.serving.clone())
	}
}

impl Drop for Serving {
	fn drop(&mut self) {
		self.0.dec();
	}
}

/// The serving side: what it serves from, its limits, and the state that enforces them.
pub(crate) struct Server {
	store: Store,
	metrics: Metrics,
	peers: Arc<PeerManager>,
	known: Arc<KnownPeers>,
	limits: ServeLimits,
	/// Bytes served to each peer (the [`PEER_MAP_CAP`] most recently served).
	served_to: Mutex<LruMap<PeerId, u64>>,
	/// Streams being served (per peer: at most `max_streams` entries, dropped at zero).
	streams: Mutex<Streams>,
	peer_buckets: Mutex<Buckets>,
	total_bucket: Option<Mutex<Bucket>>,
	/// Requests answered at once, known peers first, high priority first.
	gate: Arc<Gate>,
	/// What `Outboard` answers hold in memory at once (`limits.outboard_memory`).
	outboard_memory: MemoryBudget,
}

impl Server {
	/// A server of `store` within `limits`, refusing peers `peers` has banned and favouring
	/// the peers in `known`.
	pub(crate) fn new(
		store: Store,
		metrics: Metrics,
		peers: Arc<PeerManager>,
		limits: ServeLimits,
		known: Arc<KnownPeers>,
	) -> Arc<Self> {
		Arc::new(Server {
			store,
			metrics,
			peers,
			known,
			total_bucket: limits.bytes_per_sec_total.map(|r| Mutex::new(Bucket::new(r))),
			gate: Arc::new(Gate::new(limits.max_requests, limits.max_requests_unknown)),
			outboard_memory: MemoryBudget::new(limits.outboard_memory),
			limits,
			served_to: Mutex::new(LruMap::new(PEER_MAP_CAP)),
			streams: Mutex::new(Streams::default()),
			peer_buckets: Mutex::new(Buckets::default()),
		})
	}

	/// Bytes served to each peer so far (the [`PEER_MAP_CAP`] most recently served peers).
	pub(crate) fn served_to(&self) -> HashMap<PeerId, u64> {
		self.served_to.lock().iter().map(|(p, n)| (*p, *n)).collect()
	}

	/// The known peers (shared with the swarm's connection limits).
	pub(crate) fn known(&self) -> &Arc<KnownPeers> {
		&self.known
	}

	/// Takes a stream slot for `peer`, or says which limit refuses it.
	fn admit(&self, peer: PeerId, known: bool) -> Result<(), &'static str> {
		let l = &self.limits;
		let mut s = self.streams.lock();
		let quota = if known { l.max_streams_per_peer } else { l.max_streams_per_unknown_peer };
		if s.total >= l.max_streams {
			return Err("total");
		}
		if !known && s.unknown >= l.max_streams_unknown {
			return Err("unknown");
		}
		if s.per_peer.get(&peer).copied().unwrap_or(0) >= quota {
			return Err("per_peer");
		}
		s.total += 1;
		if !known {
			s.unknown += 1;
		}
		*s.per_peer.entry(peer).or_insert(0) += 1;
		Ok(())
	}

	/// The byte-rate bucket of `peer` (`None`: no per-peer limit applies to it).
	fn peer_bucket(&self, peer: PeerId, known: bool) -> Option<Arc<Mutex<Bucket>>> {
		let per_peer = self.limits.bytes_per_sec_per_peer;
		let rate = match (known, per_peer, self.limits.unknown_peer_bytes_per_sec) {
			(true, rate, _) => rate,
			(false, Some(a), Some(b)) => Some(a.min(b)),
			(false, a, b) => a.or(b),
		};
		let rate = rate?;
		Some(self.peer_buckets.lock().get(peer, known, rate, Instant::now()))
	}

	fn count_timeout(&self, reason: &str) {
		self.metrics.timed_out.with_label_values(&[reason]).inc();
	}

	/// Allows `bytes` more on the write deadline (at the floor rate).
	fn allow(&self, io: &mut Io, bytes: u64) {
		let floor = self.limits.write_floor_rate.max(1) as f64;
		io.get_mut().extend(Duration::from_secs_f64(bytes as f64 / floor));
	}

	/// Waits for the rate limits (the peer's, then the total) to allow `n` bytes; the wait is
	/// not counted against the write deadline.
	async fn throttled(&self, io: &mut Io, peer_bucket: Option<&Mutex<Bucket>>, n: u64) {
		let waited = throttle(peer_bucket, n).await + throttle(self.total_bucket.as_ref(), n).await;
		io.get_mut().extend(waited);
	}
}

/// Accepts inbound transfer streams until the network shuts down. libp2p-stream drops inbound
/// streams that arrive while this loop is not waiting for the next one, so it only decides and
/// hands off.
pub(crate) async fn accept_loop(net: Arc<Server>, mut incoming: libp2p_stream::IncomingStreams) {
	while let Some((peer, mut stream)) = incoming.next().await {
		if net.peers.is_banned(&peer) {
			continue;
		}
		let known = net.known.contains(&peer);
		if let Err(reason) = net.admit(peer, known) {
			net.metrics.streams_refused.with_label_values(&[reason]).inc();
			tokio::spawn(async move { refuse(&mut stream, ErrorCode::Busy).await });
			continue;
		}
		net.metrics.streams.with_label_values(&["inbound"]).inc();
		let slot = Slot { server: net.clone(), peer, known };
		tokio::spawn(async move {
			if let Err(e) = serve_stream(&slot.server, peer, stream).await {
				log::debug!(target: "sync-net", "stream from {peer} ended: {e}");
			}
			drop(slot);
		});
	}
}

/// Answers `code` and closes the stream, within [`REFUSAL_TIMEOUT`] (errors are ignored: the
/// stream is dropped either way).
async fn refuse<W: AsyncWrite + Unpin>(io: &mut W, code: ErrorCode) {
	let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
		write_msg(io, &Response::Error(code)).await?;
		io.close().await?;
		Ok::<(), WireError>(())
	})
	.await;
}

/// Answers `code` within [`REFUSAL_TIMEOUT`]; the stream stays open.
async fn answer_error(io: &mut Io, code: ErrorCode) -> Result<(), WireError> {
	let reply = async {
		write_msg(io, &Response::Error(code)).await?;
		io.flush().await?;
		Ok::<(), WireError>(())
	};
	match tokio::time::timeout(REFUSAL_TIMEOUT, reply).await {
		Ok(r) => r,
		Err(_) => Err(WireError::Io(write_timed_out())),
	}
}

/// What reading a request frame came to.
enum Incoming {
	/// A frame is in the buffer.
	Request,
	/// The peer closed the stream (or reset it mid-frame).
	Closed,
	/// No byte arrived in time.
	Quiet,
	/// The frame started but did not complete in time.
	Stalled,
	/// The frame announces more than [`MAX_REQUEST_BYTES`].
	TooLarge,
}

/// Reads one request frame into `buf`: its first byte by `start_by`, the rest by `start_by`
/// too (`rest: None`) or within `rest` of the first byte.
async fn read_request<R: AsyncRead + Unpin>(
	io: &mut R,
	buf: &mut Vec<u8>,
	start_by: Instant,
	rest: Option<Duration>,
) -> io::Result<Incoming> {
	let mut len = [0u8; 4];
	match tokio::time::timeout_at(start_by, io.read(&mut len[..1])).await {
		Err(_) => return Ok(Incoming::Quiet),
		Ok(Ok(0)) => return Ok(Incoming::Closed),
		Ok(Ok(_)) => {},
		Ok(Err(e)) => return Err(e),
	}
	let rest_by = rest.map_or(start_by, |d| later(Instant::now(), d));
	let frame = async {
		io.read_exact(&mut len[1..]).await?;
		let n = u32::from_le_bytes(len) as usize;
		if n > MAX_REQUEST_BYTES {
			return Ok(false);
		}
		buf.resize(n, 0);
		io.read_exact(buf).await?;
		Ok::<bool, io::Error>(true)
	};
	match tokio::time::timeout_at(rest_by, frame).await {
		Err(_) => Ok(Incoming::Stalled),
		Ok(Ok(true)) => Ok(Incoming::Request),
		Ok(Ok(false)) => Ok(Incoming::TooLarge),
		Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Incoming::Closed),
		Ok(Err(e)) => Err(e),
	}
}

async fn serve_stream(net: &Arc<Server>, peer: PeerId, stream: Stream) -> Result<(), WireError> {
	let limits = &net.limits;
	let mut io: Io = BufWriter::with_capacity(256 * 1024, Timed::new(stream));
	let mut buf = Vec::new();
	let opened = Instant::now();
	let mut first = true;
	loop {
		// The whole first request by the first-request deadline; later ones start within the
		// idle timeout and complete within the read timeout.
		let (start_by, rest) = if first {
			(later(opened, limits.first_request_timeout), None)
		} else {
			(later(Instant::now(), limits.idle_timeout), Some(limits.request_read_timeout))
		};
		match read_request(&mut io, &mut buf, start_by, rest).await? {
			Incoming::Request => {},
			Incoming::Closed => return Ok(()),
			Incoming::Quiet => {
				net.count_timeout(if first { "first_request" } else { "idle" });
				// `Busy`, not silence: a client that left its session idle reads "try later"
				// and opens a new stream, blaming nobody.
				refuse(&mut io, ErrorCode::Busy).await;
				return Ok(());
			},
			Incoming::Stalled => {
				net.count_timeout(if first { "first_request" } else { "read" });
				return Ok(());
			},
			Incoming::TooLarge => {
				count_refused(net);
				refuse(&mut io, ErrorCode::TooLarge).await;
				return Ok(());
			},
		}
		first = false;
		if buf.first() != Some(&VERSION) {
			count_refused(net);
			refuse(&mut io, ErrorCode::UnsupportedVersion).await;
			return Ok(());
		}
		let Ok(env) = Envelope::decode_all(&mut &buf[..]) else {
			count_refused(net);
			refuse(&mut io, ErrorCode::Malformed).await;
			return Ok(());
		};
		if let Err(code) = check_limits(&env.request) {
			count_refused(net);
			answer_error(&mut io, code).await?;
			continue;
		}
		// Looked up per request: a peer may join or leave the holder lists.
		let known = net.known.contains(&peer);
		let priority = priority(&env.request);
		let label = [if priority == Priority::High { "high" } else { "low" }];
		net.metrics.queued.with_label_values(&label).inc();
		let pass =
			tokio::time::timeout(limits.queue_timeout, net.gate.enter(known, priority)).await;
		net.metrics.queued.with_label_values(&label).dec();
		let Ok(pass) = pass else {
			net.count_timeout("queue");
			answer_error(&mut io, ErrorCode::Busy).await?;
			continue;
		};
		let serving = Serving::new(&net.metrics);
		io.get_mut().set_deadline(Some(later(Instant::now(), limits.write_timeout)));
		let answered = match answer(net, peer, known, &mut io, env.request).await {
			Ok(()) => io.flush().await.map_err(WireError::from),
			Err(e) => Err(e),
		};
		io.get_mut().set_deadline(None);
		drop(serving);
		drop(pass);
		if let Err(e) = answered {
			if matches!(&e, WireError::Io(err) if err.kind() == io::ErrorKind::TimedOut) {
				net.count_timeout("write");
			}
			return Err(e);
		}
		net.metrics.requests.with_label_values(&["server", "ok"]).inc();
	}
}

/// Bytes of the outboard of an object of `size` bytes.
fn outboard_bytes(size: u64) -> u64 {
	sync_primitives::outboard::outboard_len(size).saturating_mul(32)
}

/// Runs a store call on the blocking pool (store I/O never runs on the async worker threads);
/// the time it takes is not counted against the write deadline.
async fn store_call<T: Send + 'static>(
	io: &mut Io,
	f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WireError> {
	store_result(io, tokio::task::spawn_blocking(f)).await
}

/// Waits for a store call already running on the blocking pool; the wait is not counted
/// against the write deadline.
async fn store_result<T>(io: &mut Io, task: tokio::task::JoinHandle<T>) -> Result<T, WireError> {
	let started = Instant::now();
	let r = task.await;
	io.get_mut().extend(started.elapsed());
	r.map_err(|e| WireError::Io(io::Error::other(format!("store task failed: {e}"))))
}

/// Writes one header frame, its bytes allowed on the write deadline.
async fn send_frame(net: &Server, io: &mut Io, payload: &[u8]) -> Result<(), WireError> {
	net.allow(io, payload.len() as u64 + 4);
	write_frame(io, payload).await
}

async fn answer(
	net: &Arc<Server>,
	peer: PeerId,
	known: bool,
	io: &mut Io,
	request: Request,
) -> Result<(), WireError> {
	let store = net.store.clone();
	match request {
		Request::Head { segment } => {
			// Progress of this segment's transfer (what co-downloaders watch), not the node's
			// total: bytes of another segment are no progress on this one.
			// Read only for a segment with a transfer here (below), so a peer asking for
			// arbitrary segment ids creates no metric series.
			let progress = net.metrics.progress.clone();
			let frame = store_call(io, move || {
				let wire = WireHead::from;
				let complete = store.head(segment).map(wire);
				let syncing = match store.transfer(segment) {
					Ok(Some(t)) if t.index_staged => Some(wire(t.target)),
					_ => None,
				};
				let received = if syncing.is_some() {
					progress.with_label_values(&[&segment.to_string()]).get().max(0) as u64
				} else {
					0
				};
				let pinned = store.pinned(segment).into_iter().map(wire).collect();
				Response::Head { complete, syncing, received, pinned }.encode()
			})
			.await?;
			send_frame(net, io, &frame).await
		},
		Request::Index { segment, root, start, count } => {
			// Cut and encoded on the blocking pool: the first page at a new head root builds the
			// listing, from a database snapshot and outside the store's segment lock, so asking
			// for the head's index over and over stalls no write (see `Store::listing`), and
			// builds peers ask for take a bounded share of a core (`Throttled`: `Busy`).
			let page = store_call(io, move || {
				let class = if known { Peer::Known } else { Peer::Unknown };
				store.index_page(segment, &root, start, count as u64, class).map(
					|(entries, total)| {
						let entries = entries.into_iter().map(entry_to_wire).collect();
						Response::Index { entries, total }.encode()
					},
				)
			})
			.await?;
			let frame = match page {
				Ok(frame) => frame,
				Err(StoreError::Throttled(_)) => {
					net.count_timeout("head_listing");
					Response::Error(ErrorCode::Busy).encode()
				},
				Err(_) => Response::Error(ErrorCode::NotHeld).encode(),
			};
			send_frame(net, io, &frame).await
		},
		Request::Outboard { cid, size } => {
			// Only for the object of that size: a claim of another size is not this object, and
			// a claim of an object not held here waits for no memory.
			let held = {
				let store = store.clone();
				store_call(io, move || store.open_groups(&cid).is_ok_and(|s| s.size() == size))
			};
			if !held.await? {
				return send_frame(net, io, &Response::Error(ErrorCode::NotHeld).encode()).await;
			}
			// Memory for the whole outboard, out of the budget every stream shares, before it
			// is loaded (`check_limits` bounds `size`, and it is the real object's).
			let waited = Instant::now();
			let share =
				net.outboard_memory.share(outboard_bytes(size), net.limits.queue_timeout).await;
			// Waiting for memory is not the client's slowness: not on its write deadline.
			io.get_mut().extend(waited.elapsed());
			let Some(_share) = share else {
				net.count_timeout("outboard_memory");
				return send_frame(net, io, &Response::Error(ErrorCode::Busy).encode()).await;
			};
			let ob = store_call(io, move || {
				// (Checked again: it may have gone meanwhile.)
				store.open_groups(&cid).ok().filter(|s| s.size() == size)?;
				store.outboard(&cid).ok()
			});
			let Some(ob) = ob.await? else {
				return send_frame(net, io, &Response::Error(ErrorCode::NotHeld).encode()).await;
			};
			send_frame(net, io, &Response::Outboard { len: ob.len() as u64 }.encode()).await?;
			// The header goes out now, not with the first (rate-limited) part: the client
			// expects it within its request timeout.
			io.flush().await?;
			let frames = ob.len().div_ceil(MAX_DATA_FRAME - 1) as u64;
			net.allow(io, ob.len() as u64 + 5 * frames);
			let bucket = net.peer_bucket(peer, known);
			for part in ob.chunks(MAX_DATA_FRAME - 1) {
				net.throttled(io, bucket.as_deref(), part.len() as u64).await;
				write_data_frame(io, TAG_DATA, part).await?;
				count_served(net, peer, part.len() as u64);
			}
			Ok(())
		},
		Request::Ops { segment, from, max } => {
			let frame = store_call(io, move || match store.ops(segment, from, max as usize) {
				Ok(ops) => Response::Ops { ops }.encode(),
				Err(StoreError::Pruned { .. }) => Response::Error(ErrorCode::Pruned).encode(),
				Err(e) => {
					log::warn!(target: "sync-net", "serving ops of {segment}: {e}");
					Response::Error(ErrorCode::Internal).encode()
				},
			})
			.await?;
			send_frame(net, io, &frame).await
		},
		Request::Groups { ranges } => {
			send_frame(net, io, &Response::Groups.encode()).await?;
			let bucket = net.peer_bucket(peer, known);
			// Exactly `count` frames per range, in order (a group past the object's end, or
			// past u64::MAX, is "missing").
			let plan: Vec<(usize, u64)> = ranges
				.iter()
				.enumerate()
				.flat_map(|(i, r)| (0..r.count as u64).map(move |k| (i, r.first.saturating_add(k))))
				.collect();
			net.allow(io, plan.len() as u64 * (MAX_DATA_FRAME as u64 + 4));
			let reader = GroupReader {
				store,
				objects: ranges.iter().map(|r| (r.cid, r.size)).collect(),
				sources: Vec::new(),
			};
			// One batch read ahead: the next batch is read on the blocking pool while this one
			// is written, so the stream never waits for the disk between batches (at most two
			// batches in memory).
			let read = |mut reader: GroupReader, batch: Vec<(usize, u64)>| {
				tokio::task::spawn_blocking(move || {
					let groups = reader.read(&batch);
					(reader, groups)
				})
			};
			let mut batches = plan.chunks(GROUP_BATCH).map(<[_]>::to_vec);
			let mut ahead = batches.next().map(|b| read(reader, b));
			while let Some(task) = ahead.take() {
				let (back, groups) = store_result(io, task).await?;
				ahead = batches.next().map(|b| read(back, b));
				for group in groups {
					match group {
						Some(data) => {
							net.throttled(io, bucket.as_deref(), data.len() as u64).await;
							write_data_frame(io, TAG_DATA, &data).await?;
							count_served(net, peer, data.len() as u64);
						},
						None => write_data_frame(io, TAG_MISSING, &[]).await?,
					}
				}
			}
			Ok(())
		},
	}
}

/// The objects of one `Groups` request, each opened on first use (on the blocking pool).
struct GroupReader {
	store: Store,
	/// Per range: the object's CID and the size the client names.
	objects: Vec<(Hash32, u64)>,
	/// Per range: not opened yet (`None`), or opened (`Some(None)`: not held here, or held
	/// with another size than the client names).
	sources: Vec<Option<Option<GroupSource>>>,
}

impl GroupReader {
	/// Reads `(range, group)` pairs: each group's bytes, or `None` if it is not held here.
	fn read(&mut self, batch: &[(usize, u64)]) -> Vec<Option<Vec<u8>>> {
		if self.sources.len() < self.objects.len() {
			self.sources.resize_with(self.objects.len(), || None);
		}
		let GroupReader { store, objects, sources } = self;
		batch
			.iter()
			.map(|&(i, g)| {
				let (cid, size) = objects.get(i)?;
				let src = sources
					.get_mut(i)?
					.get_or_insert_with(|| open_source(store, cid).filter(|s| s.size() == *size))
					.as_ref()?;
				let mut buf = Vec::new();
				match src.read_into(g, &mut buf) {
					Ok(true) => Some(buf),
					Ok(false) => None,
					Err(e) => {
						log::warn!(target: "sync-net", "serving {cid:?}/{g}: {e}");
						None
					},
				}
			})
			.collect()
	}
}

fn open_source(store: &Store, cid: &Hash32) -> Option<GroupSource> {
	match store.open_groups(cid) {
		Ok(src) => Some(src),
		Err(StoreError::UnknownObject(_)) => None,
		Err(e) => {
			log::warn!(target: "sync-net", "serving {cid:?}: {e}");
			None
		},
	}
}

fn count_refused(net: &Server) {
	net.metrics.requests.with_label_values(&["server", "refused"]).inc();
}

fn count_served(net: &Server, peer: PeerId, n: u64) {
	net.metrics.bytes_out.inc_by(n);
	*net.served_to.lock().get_or_insert_with(peer, || 0).0 += n;
}

#[cfg(test)]
mod tests {
	use super::*;

	#[tokio::test]
	async fn freed_slots_go_to_known_peers_then_high_priority_first() {
		let gate = Arc::new(Gate::new(1, 1));
		let held = gate.enter(true, Priority::Low).await;
		let order = Arc::new(Mutex::new(Vec::new()));
		let mut waiters = Vec::new();
		for (name, known, p) in [
			("unknown-low", false, Priority::Low),
			("unknown-high", false, Priority::High),
			("known-low1", true, Priority::Low),
			("known-low2", true, Priority::Low),
			("known-high1", true, Priority::High),
			("known-high2", true, Priority::High),
		] {
			let (g, o) = (gate.clone(), order.clone());
			waiters.push(tokio::spawn(async move {
				let pass = g.enter(known, p).await;
				o.lock().push(name);
				tokio::task::yield_now().await;
				drop(pass);
			}));
			// Queue them in this order.
			tokio::time::sleep(Duration::from_millis(5)).await;
		}
		// A waiter that gives up does not swallow a slot.
		let gone = {
			let g = gate.clone();
			tokio::spawn(async move { g.enter(true, Priority::High).await })
		};
		tokio::time::sleep(Duration::from_millis(5)).await;
		gone.abort();
		drop(held);
		for w in waiters {
			w.await.unwrap();
		}
		assert_eq!(
			*order.lock(),
			vec![
				"known-high1",
				"known-high2",
				"known-low1",
				"known-low2",
				"unknown-high",
				"unknown-low"
			]
		);
		let s = gate.state.lock();
		assert_eq!((s.free, s.unknown_free), (1, 1), "every slot came back");
	}

	#[tokio::test]
	async fn unknown_peers_never_hold_more_than_their_share() {
		let gate = Arc::new(Gate::new(2, 1));
		let a = gate.enter(false, Priority::High).await;
		// The second unknown request waits although a slot is free …
		let b = {
			let g = gate.clone();
			tokio::spawn(async move { g.enter(false, Priority::High).await })
		};
		tokio::time::sleep(Duration::from_millis(20)).await;
		assert!(!b.is_finished(), "unknown peers hold their one slot");
		// … which a known peer takes at once.
		let k = tokio::time::timeout(Duration::from_secs(1), gate.enter(true, Priority::Low))
			.await
			.expect("the known peer's slot is kept for it");
		drop(a);
		let b = tokio::time::timeout(Duration::from_secs(1), b).await.unwrap().unwrap();
		drop((b, k));
		let s = gate.state.lock();
		assert_eq!((s.free, s.unknown_free), (2, 1));
	}

	/// A writer whose peer never reads.
	struct Stuck;
	impl AsyncWrite for Stuck {
		fn poll_write(
			self: Pin<&mut Self>,
			_: &mut Context<'_>,
			_: &[u8],
		) -> Poll<io::Result<usize>> {
			Poll::Pending
		}
		fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
			Poll::Pending
		}
		fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
			Poll::Pending
		}
	}

	#[tokio::test]
	async fn blocked_writes_fail_at_the_deadline_which_waits_move_later() {
		let mut w = Timed::new(Stuck);
		let t0 = Instant::now();
		w.set_deadline(Some(t0 + Duration::from_millis(50)));
		w.extend(Duration::from_millis(50));
		let err = w.write_all(b"hello").await.unwrap_err();
		assert_eq!(err.kind(), io::ErrorKind::TimedOut);
		assert!(t0.elapsed() >= Duration::from_millis(100), "extended by 50 ms");
		// Without a deadline a blocked write just waits.
		w.set_deadline(None);
		assert!(tokio::time::timeout(Duration::from_millis(50), w.write_all(b"x"))
			.await
			.is_err());
		// A writer that takes the bytes is never failed, even past its deadline.
		let mut ok = Timed::new(Vec::<u8>::new());
		ok.set_deadline(Some(Instant::now()));
		tokio::time::sleep(Duration::from_millis(5)).await;
		ok.write_all(b"fine").await.unwrap();
		assert_eq!(ok.inner, b"fine");
	}

	#[test]
	fn rate_buckets_stay_bounded_under_many_identities() {
		let mut b = Buckets::default();
		let now = Instant::now();
		let known = PeerId::random();
		let mut held = Vec::new();
		for i in 0..PEER_MAP_CAP + 1000 {
			// Every identity is mid-transfer (its bucket in use, not refilled): nothing to sweep.
			let bucket = b.get(PeerId::random(), false, 1 << 20, now);
			bucket.lock().take(1000);
			held.push(bucket);
			assert!(b.per_peer.len() <= PEER_MAP_CAP, "after {i}");
		}
		assert!(b.overflow.is_some(), "the rest share one bucket");
		// A known peer still gets its own bucket, at its own rate.
		let k = b.get(known, true, 4 << 20, now);
		assert!(Arc::ptr_eq(&k, &b.get(known, true, 4 << 20, now)));
		assert!(!Arc::ptr_eq(&k, b.overflow.as_ref().unwrap()));
		assert_eq!(b.per_peer.len(), PEER_MAP_CAP + 1);
		// Once the transfers end and the buckets refill, they are swept.
		drop(held);
		let later = now + Duration::from_secs(3600);
		b.get(PeerId::random(), false, 1 << 20, later);
		assert!(b.per_peer.len() <= 3, "refilled unused buckets swept: {}", b.per_peer.len());
	}

	#[test]
	fn bytes_served_per_peer_stay_bounded_under_many_identities() {
		let mut served: LruMap<PeerId, u64> = LruMap::new(PEER_MAP_CAP);
		let holder = PeerId::random();
		for _ in 0..3 * PEER_MAP_CAP {
			*served.get_or_insert_with(PeerId::random(), || 0).0 += 1;
			*served.get_or_insert_with(holder, || 0).0 += 10;
		}
		assert_eq!(served.len(), PEER_MAP_CAP);
		assert_eq!(served.peek(&holder), Some(&(30 * PEER_MAP_CAP as u64)));
	}

	#[test]
	fn buckets_change_rate_and_refill_to_new() {
		let mut b = Bucket::new(4 << 20);
		assert_eq!(b.take(1 << 20), Duration::ZERO, "a quarter second of burst");
		assert!(!b.is_full(Instant::now()));
		b.set_rate(1 << 20);
		assert!(b.tokens <= b.burst && b.burst == (1 << 18) as f64);
		let wait = b.take(1 << 20);
		assert!(wait >= Duration::from_millis(700), "{wait:?}");
		let mut zero = Bucket::new(0);
		assert!(zero.take(1) > Duration::ZERO, "a zero rate is one byte a second, never a panic");
	}
}
