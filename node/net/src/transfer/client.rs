//! Client side of the transfer protocol: one stream per peer, one request at a time, every
//! response checked against the protocol limits before anything is allocated; and the budget of
//! streams this node holds to each peer (`StreamBudget`: never more than the peer admits,
//! [`STREAMS_PER_PEER`]).
use super::protocol::{PROTOCOL, STREAMS_PER_PEER};
use crate::SyncNetwork;
use codec::DecodeAll;
use futures::{io::BufReader, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc, time::Duration};
use sync_primitives::{
	commitment::{Entry, Hash32},
	outboard::{group_range, outboard_len},
	SegmentId,
};
use sync_proto::{
	read_frame_into, write_frame, write_msg, Envelope, ErrorCode, GroupRange, Request, Response,
	SignedOp, WireError, WireHead, MAX_DATA_FRAME, MAX_HEADER_BYTES, MAX_INDEX_PAGE, MAX_KEY_LEN,
	MAX_OBJECT_BYTES, TAG_DATA, TAG_MISSING, VERSION,
};
use sync_store::wire::entry_from_wire;
use tokio::sync::Notify;

/// How a peer failed a request.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
	/// Connection, stream or timeout failure: the peer may be gone; try it again later.
	#[error("transport: {0}")]
	Transport(String),
	/// The peer refused the request.
	#[error("refused: {0}")]
	Refused(ErrorCode),
	/// The peer broke the protocol or sent data that does not verify: ban it.
	#[error("misbehaved: {0}")]
	Misbehaved(String),
	/// This node failed (its store, its disk): not the peer's doing, never counted against it.
	#[error("local: {0}")]
	Local(String),
}

impl PeerError {
	/// Whether the failure counts against the peer (towards its cooldown): a transport failure
	/// or a protocol violation does; `Busy` (the peer is at its limits, as it should be),
	/// `NotHeld` and `Pruned` (honest answers about what it has) and this node's own failures
	/// do not.
	pub fn blames_peer(&self) -> bool {
		match self {
			PeerError::Transport(_) | PeerError::Misbehaved(_) => true,
			PeerError::Refused(code) => {
				!matches!(code, ErrorCode::Busy | ErrorCode::NotHeld | ErrorCode::Pruned)
			},
			PeerError::Local(_) => false,
		}
	}
}

impl From<WireError> for PeerError {
	fn from(e: WireError) -> Self {
		match e {
			WireError::Io(e) => PeerError::Transport(e.to_string()),
			other => PeerError::Misbehaved(other.to_string()),
		}
	}
}

impl From<sync_store::StoreError> for PeerError {
	/// Data from the peer that the store rejects is the peer's fault; any other store failure
	/// is this node's and does not blame the peer.
	fn from(e: sync_store::StoreError) -> Self {
		match e {
			sync_store::StoreError::BadData { .. } => PeerError::Misbehaved(e.to_string()),
			other => PeerError::Local(format!("store: {other}")),
		}
	}
}

/// What a peer can serve of a segment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerHead {
	/// Complete state.
	pub complete: Option<WireHead>,
	/// Target of a transfer in progress with a verified index.
	pub syncing: Option<WireHead>,
	/// Verified bytes the peer has received so far.
	pub received: u64,
	/// Older states (pinned snapshots) the peer still serves.
	pub pinned: Vec<WireHead>,
}

/// What a stream this node opens is for (see [`StreamBudget`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum StreamUse {
	/// A long session: a snapshot worker's, or a range catch-up.
	Bulk,
	/// An optional long session (a snapshot's second lane): counted as bulk, and taken only
	/// while another bulk stream to the peer stays free for this node's other sessions.
	Spare,
	/// A short exchange: a head poll.
	Short,
}

/// The transfer streams this node holds open to each peer: never more than
/// [`STREAMS_PER_PEER`] (what a server admits per peer), of which long ([`StreamUse::Bulk`])
/// sessions hold at most all but one, so a head poll always gets a stream to its peer. Pure:
/// taken and given back by [`StreamPermit`]s. A peer's entry goes when its last stream closes, so
/// the map only holds peers this node has sessions with.
#[derive(Default, Debug)]
pub(crate) struct StreamBudget {
	/// Per peer: (streams, of which bulk).
	open: HashMap<PeerId, (usize, usize)>,
}

impl StreamBudget {
	/// Takes a stream to `peer` for `kind`, if the peer's budget has room for it.
	pub(crate) fn try_take(&mut self, peer: PeerId, kind: StreamUse) -> bool {
		let (all, bulk) = self.open.get(&peer).copied().unwrap_or((0, 0));
		let bulk_room = match kind {
			StreamUse::Short => true,
			StreamUse::Bulk => bulk + 1 < STREAMS_PER_PEER,
			StreamUse::Spare => bulk + 2 < STREAMS_PER_PEER,
		};
		if all >= STREAMS_PER_PEER || !bulk_room {
			return false;
		}
		let e = self.open.entry(peer).or_insert((0, 0));
		e.0 += 1;
		if kind != StreamUse::Short {
			e.1 += 1;
		}
		true
	}

	/// Gives back a stream taken for `kind`.
	pub(crate) fn release(&mut self, peer: PeerId, kind: StreamUse) {
		if let Some(e) = self.open.get_mut(&peer) {
			e.0 = e.0.saturating_sub(1);
			if kind != StreamUse::Short {
				e.1 = e.1.saturating_sub(1);
			}
			if e.0 == 0 {
				self.open.remove(&peer);
			}
		}
	}

	/// Streams open to `peer`.
	#[cfg(test)]
	pub(crate) fn open_to(&self, peer: &PeerId) -> usize {
		self.open.get(peer).map_or(0, |e| e.0)
	}
}

/// The [`StreamBudget`] shared by this node's sessions, and the wake-up of those waiting for a
/// stream.
#[derive(Default)]
pub(crate) struct OutStreams {
	budget: Mutex<StreamBudget>,
	freed: Notify,
}

impl OutStreams {
	/// Waits at most `within` for a stream to `peer` for `kind` (`None`: none was free by then).
	pub(crate) async fn acquire(
		self: &Arc<Self>,
		peer: PeerId,
		kind: StreamUse,
		within: Duration,
	) -> Option<StreamPermit> {
		let now = tokio::time::Instant::now();
		let deadline = now.checked_add(within).unwrap_or(now + Duration::from_secs(86_400));
		loop {
			// Registered before the check, so a release in between is not missed.
			let freed = self.freed.notified();
			if self.budget.lock().try_take(peer, kind) {
				return Some(StreamPermit { streams: self.clone(), peer, kind });
			}
			if tokio::time::timeout_at(deadline, freed).await.is_err() {
				return None;
			}
		}
	}

	/// Streams open to `peer` now.
	#[cfg(test)]
	pub(crate) fn open_to(&self, peer: &PeerId) -> usize {
		self.budget.lock().open_to(peer)
	}
}

/// One stream of the [`StreamBudget`], given back when dropped (with the session holding it).
pub(crate) struct StreamPermit {
	streams: Arc<OutStreams>,
	peer: PeerId,
	kind: StreamUse,
}

impl Drop for StreamPermit {
	fn drop(&mut self) {
		self.streams.budget.lock().release(self.peer, self.kind);
		self.streams.freed.notify_waiters();
	}
}

/// One group as received.
pub enum Received<'a> {
	/// Bytes (not yet verified: the caller verifies against the outboard/CID before writing).
	Data(&'a [u8]),
	/// The peer does not have it.
	Missing,
}

/// Ends the requests in flight of the sessions that share it, at once: a snapshot source's
/// lanes share one, so the verdict on a misbehaving source also ends its other lane's request
/// (which goes through its normal failure accounting) instead of leaving it to its deadline.
#[derive(Default)]
pub(crate) struct Abort {
	set: std::sync::atomic::AtomicBool,
	notify: Notify,
}

impl Abort {
	/// Aborts every request of the sessions that share this, now and later.
	pub(crate) fn abort(&self) {
		self.set.store(true, std::sync::atomic::Ordering::SeqCst);
		self.notify.notify_waiters();
	}

	async fn aborted(&self) {
		loop {
			let notified = self.notify.notified();
			if self.set.load(std::sync::atomic::Ordering::SeqCst) {
				return;
			}
			notified.await;
		}
	}
}

/// Runs one request: `Transport(what)` past its deadline `t`, `Local("aborted")` once `abort`
/// is set (see [`Abort`]). The one rule every request of a [`Session`] follows.
async fn bounded<T>(
	t: Duration,
	abort: Option<Arc<Abort>>,
	what: impl FnOnce() -> String,
	f: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
	let aborted = async {
		match &abort {
			Some(a) => a.aborted().await,
			None => std::future::pending().await,
		}
	};
	tokio::select! {
		r = tokio::time::timeout(t, f) => r.map_err(|_| PeerError::Transport(what()))?,
		_ = aborted => Err(PeerError::Local("request aborted".into())),
	}
}

/// An open request stream to one peer.
pub struct Session {
	metrics: crate::metrics::Metrics,
	peer: PeerId,
	io: BufReader<Stream>,
	buf: Vec<u8>,
	timeout: Duration,
	index_page_time: Duration,
	response_floor_rate: u64,
	abort: Option<Arc<Abort>>,
	/// The node's own sessions hold a stream of the per-peer budget (dropped after the stream).
	_permit: Option<StreamPermit>,
}

impl Drop for Session {
	fn drop(&mut self) {
		self.metrics.streams.with_label_values(&["outbound"]).dec();
	}
}

impl Session {
	/// Opens a stream to `peer` (dialling it if needed, with the addresses the swarm knows),
	/// outside the per-peer stream budget (tests and tools; the node's own sessions hold one of
	/// the [`STREAMS_PER_PEER`] streams of their peer's budget).
	pub async fn open(net: &SyncNetwork, peer: PeerId) -> Result<Session, PeerError> {
		Self::open_inner(net, peer, None).await
	}

	/// Opens a stream to `peer` holding `permit`, one stream of the peer's budget.
	pub(crate) async fn open_with(
		net: &SyncNetwork,
		peer: PeerId,
		permit: StreamPermit,
	) -> Result<Session, PeerError> {
		Self::open_inner(net, peer, Some(permit)).await
	}

	async fn open_inner(
		net: &SyncNetwork,
		peer: PeerId,
		permit: Option<StreamPermit>,
	) -> Result<Session, PeerError> {
		let mut control = net.control();
		let stream =
			tokio::time::timeout(net.config().connect_timeout, control.open_stream(peer, PROTOCOL))
				.await
				.map_err(|_| PeerError::Transport("open timed out".into()))?
				.map_err(|e| PeerError::Transport(e.to_string()))?;
		net.metrics().streams.with_label_values(&["outbound"]).inc();
		Ok(Session {
			metrics: net.metrics().clone(),
			peer,
			io: BufReader::with_capacity(4 * 1024, stream),
			buf: Vec::with_capacity(MAX_DATA_FRAME),
			timeout: net.config().request_timeout,
			index_page_time: net.config().index_page_time,
			response_floor_rate: net.config().response_floor_rate,
			abort: None,
			_permit: permit,
		})
	}

	/// The peer this session talks to.
	pub fn peer(&self) -> PeerId {
		self.peer
	}

	/// Ends this session's requests when `abort` is set (see [`Abort`]).
	pub(crate) fn abort_with(&mut self, abort: Arc<Abort>) {
		self.abort = Some(abort);
	}

	async fn send(&mut self, request: Request) -> Result<Response, PeerError> {
		write_msg(&mut self.io, &Envelope { version: VERSION, request }).await?;
		self.io.flush().await.map_err(|e| PeerError::Transport(e.to_string()))?;
		read_frame_into(&mut self.io, MAX_HEADER_BYTES, &mut self.buf).await?;
		let resp = Response::decode_all(&mut &self.buf[..])
			.map_err(|e| PeerError::Misbehaved(e.to_string()))?;
		if let Response::Error(code) = resp {
			return Err(PeerError::Refused(code));
		}
		Ok(resp)
	}

	/// What the peer has of `segment`.
	pub async fn head(&mut self, segment: SegmentId) -> Result<PeerHead, PeerError> {
		let (t, abort) = (self.timeout, self.abort.clone());
		match bounded(t, abort, || "timed out".into(), self.send(Request::Head { segment })).await?
		{
			Response::Head { complete, syncing, received, pinned } => {
				Ok(PeerHead { complete, syncing, received, pinned })
			},
			other => Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
		}
	}

	/// The whole index of `segment` at `root`, paged. `expected` is the entry count of the
	/// target's facts (the chain's, for a committed root); the whole index must arrive within
	/// `request_timeout + pages × index_page_time` (each page also within `request_timeout`), and
	/// memory grows only with the entries received.
	pub async fn index(
		&mut self,
		segment: SegmentId,
		root: Hash32,
		expected: u64,
	) -> Result<Vec<Entry>, PeerError> {
		let mut out = Vec::new();
		self.index_into(segment, root, expected, &mut out).await?;
		Ok(out)
	}

	/// Continues fetching the index of `segment` at `root` after the entries already in `out`
	/// (pages another source delivered) until it has `expected` entries. The rest must arrive
	/// within `request_timeout + remaining pages × index_page_time` (each page also within
	/// `request_timeout`); every page must be full, consistent with `expected` and of bounded
	/// keys. On an error, `out` keeps the whole pages received before it.
	pub async fn index_into(
		&mut self,
		segment: SegmentId,
		root: Hash32,
		expected: u64,
		out: &mut Vec<Entry>,
	) -> Result<(), PeerError> {
		if out.len() as u64 > expected {
			return Err(PeerError::Local("more index entries than the root facts".into()));
		}
		let rest = expected - out.len() as u64;
		let pages = rest.div_ceil(MAX_INDEX_PAGE as u64).min(u32::MAX as u64) as u32;
		let deadline = self.timeout.saturating_add(self.index_page_time.saturating_mul(pages));
		let (t, abort) = (self.timeout, self.abort.clone());
		let all = async {
			out.reserve(rest.min(MAX_INDEX_PAGE as u64) as usize);
			while (out.len() as u64) < expected {
				let start = out.len() as u64;
				let f = self.send(Request::Index { segment, root, start, count: MAX_INDEX_PAGE });
				match tokio::time::timeout(t, f)
					.await
					.map_err(|_| PeerError::Transport("timed out".into()))??
				{
					Response::Index { entries, total } => {
						// Full pages of bounded keys only: a holder cannot make the index
						// arrive an entry at a time, nor each entry carry a frame's worth of key.
						let full = (expected - start).min(MAX_INDEX_PAGE as u64) as usize;
						if total != expected
							|| entries.len() != full
							|| entries.iter().any(|e| e.key.len() > MAX_KEY_LEN as usize)
						{
							return Err(PeerError::Misbehaved(
								"index page inconsistent with the root facts".into(),
							));
						}
						out.extend(entries.into_iter().map(entry_from_wire));
					},
					other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
				}
			}
			Ok(())
		};
		let what = || format!("index of {expected} entries not delivered in {deadline:?}");
		bounded(deadline, abort, what, all).await
	}

	/// The outboard of object `(cid, size)` (unverified; the store checks it against the CID),
	/// within `request_timeout + length / response_floor_rate`, each byte `k` by
	/// `request_timeout + k / response_floor_rate`.
	pub async fn outboard(&mut self, cid: Hash32, size: u64) -> Result<Vec<u8>, PeerError> {
		if size > MAX_OBJECT_BYTES {
			// The size comes from this node's own verified index or op, which never names one.
			return Err(PeerError::Local(format!("an object of {size} bytes is too large")));
		}
		let want = outboard_len(size).saturating_mul(32);
		// Byte `k` is due by `base + k / floor` after the request (`NetConfig::
		// response_floor_rate`), the whole outboard by `base + want / floor`: a holder that
		// answers the header and then sends nothing loses the unit after `base`, not after the
		// whole scaled deadline. (`want` is at most 256 MiB, so `by` stays far from overflow.)
		let (abort, base) = (self.abort.clone(), self.timeout);
		let floor = self.response_floor_rate.max(1) as f64;
		let by = move |bytes: u64| {
			base.saturating_add(Duration::try_from_secs_f64(bytes as f64 / floor).unwrap_or(base))
		};
		let t = by(want);
		let started = tokio::time::Instant::now();
		let due =
			move |received: usize| started + by(received.saturating_add(MAX_DATA_FRAME) as u64);
		let f = async {
			// The header, too, within `base`.
			let header =
				tokio::time::timeout_at(started + base, self.send(Request::Outboard { cid, size }));
			let header =
				header.await.map_err(|_| PeerError::Transport("no outboard header".into()))?;
			match header? {
				Response::Outboard { len } if len == want => {},
				Response::Outboard { len } => {
					return Err(PeerError::Misbehaved(format!(
						"outboard of {len} bytes, expected {want}"
					)))
				},
				other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
			}
			// Grows with the bytes received (verified against the CID by the store once complete),
			// not with the size the op claims.
			let mut out = Vec::with_capacity(want.min(MAX_DATA_FRAME as u64 * 64) as usize);
			while (out.len() as u64) < want {
				let frame = read_frame_into(&mut self.io, MAX_DATA_FRAME, &mut self.buf);
				tokio::time::timeout_at(due(out.len()), frame).await.map_err(|_| {
					PeerError::Transport(format!("outboard stalled at {} bytes", out.len()))
				})??;
				if self.buf.first() != Some(&TAG_DATA)
					|| out.len() + self.buf.len() - 1 > want as usize
				{
					return Err(PeerError::Misbehaved("bad outboard frame".into()));
				}
				out.extend_from_slice(&self.buf[1..]);
			}
			Ok(out)
		};
		bounded(t, abort, || "timed out".into(), f).await
	}

	/// Requests groups; each range names its object's size (from the verified index or op). Calls `on_group(range index, group, data)` for each group as it arrives; an error
	/// from `on_group` aborts the request and is returned.
	pub async fn groups(
		&mut self,
		ranges: Vec<GroupRange>,
		mut on_group: impl FnMut(usize, u64, Received<'_>) -> Result<(), PeerError>,
	) -> Result<(), PeerError> {
		let plan: Vec<(usize, u64, u64)> = ranges
			.iter()
			.enumerate()
			.flat_map(|(i, r)| (r.first..r.first + r.count as u64).map(move |g| (i, g, r.size)))
			.collect();
		let (t, abort) = (self.timeout, self.abort.clone());
		let f = async {
			match self.send(Request::Groups { ranges }).await? {
				Response::Groups => {},
				other => return Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
			}
			for (i, g, size) in plan {
				read_frame_into(&mut self.io, MAX_DATA_FRAME, &mut self.buf).await?;
				let (s, e) = group_range(size, g)
					.ok_or_else(|| PeerError::Misbehaved("group out of range".into()))?;
				match self.buf.first() {
					Some(&TAG_DATA) if (self.buf.len() - 1) as u64 == e - s => {
						on_group(i, g, Received::Data(&self.buf[1..]))?
					},
					Some(&TAG_MISSING) if self.buf.len() == 1 => on_group(i, g, Received::Missing)?,
					_ => return Err(PeerError::Misbehaved("bad group frame".into())),
				}
			}
			Ok(())
		};
		bounded(t, abort, || "request timed out".into(), f).await
	}

	/// Up to `max` logged ops of `segment` from seq `from`; checks they are consecutive from
	/// `from` (signatures and roots are checked by the store when they are replayed).
	pub async fn ops(
		&mut self,
		segment: SegmentId,
		from: u64,
		max: u32,
	) -> Result<Vec<SignedOp>, PeerError> {
		let (t, abort) = (self.timeout, self.abort.clone());
		let f = self.send(Request::Ops { segment, from, max });
		match bounded(t, abort, || "timed out".into(), f).await? {
			Response::Ops { ops } => {
				let consecutive = ops
					.iter()
					.enumerate()
					.all(|(i, o)| o.op.segment == segment && o.op.seq == from + i as u64);
				if !consecutive || ops.len() > max as usize {
					return Err(PeerError::Misbehaved("ops out of order".into()));
				}
				Ok(ops)
			},
			other => Err(PeerError::Misbehaved(format!("unexpected {other:?}"))),
		}
	}

	/// Sends raw bytes as one frame and reads the response header (tests of malformed input).
	pub async fn raw_request(&mut self, payload: &[u8]) -> Result<Response, PeerError> {
		write_frame(&mut self.io, payload).await?;
		self.io.flush().await.map_err(|e| PeerError::Transport(e.to_string()))?;
		read_frame_into(&mut self.io, MAX_HEADER_BYTES, &mut self.buf).await?;
		Response::decode_all(&mut &self.buf[..]).map_err(|e| PeerError::Misbehaved(e.to_string()))
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// The defect: a snapshot's second lane took bulk streams like any session, so two syncs
	/// from one peer (two lanes each) left a third sync, or a catch-up, waiting on a stream for as
	/// long as they ran. A lane's stream is a spare one: it leaves a bulk stream free.
	#[test]
	fn a_second_lane_leaves_a_bulk_stream_for_others() {
		let mut b = StreamBudget::default();
		let p = PeerId::random();
		// Sync A: its first lane and its second.
		assert!(b.try_take(p, StreamUse::Bulk));
		assert!(b.try_take(p, StreamUse::Spare));
		// Sync B: its first lane gets a stream; its second does not (it would take the last).
		assert!(b.try_take(p, StreamUse::Bulk));
		assert!(!b.try_take(p, StreamUse::Spare));
		assert!(b.try_take(p, StreamUse::Short), "a head poll still gets one");
		// A lane gives back what it took, as bulk.
		b.release(p, StreamUse::Spare);
		b.release(p, StreamUse::Short);
		assert!(b.try_take(p, StreamUse::Bulk), "a catch-up gets the lane's stream");
	}

	#[test]
	fn streams_to_one_peer_never_exceed_what_it_admits() {
		// One rule for both ends: the server admits what the client opens.
		assert_eq!(crate::ServeLimits::default().max_streams_per_peer, STREAMS_PER_PEER);
		let mut b = StreamBudget::default();
		let (p, q) = (PeerId::random(), PeerId::random());
		// Long sessions (say, snapshot workers of many segments) leave one stream for a poll.
		let bulk = (0..10).filter(|_| b.try_take(p, StreamUse::Bulk)).count();
		assert_eq!(bulk, STREAMS_PER_PEER - 1);
		assert!(b.try_take(p, StreamUse::Short), "a head poll still gets a stream");
		assert!(!b.try_take(p, StreamUse::Short) && !b.try_take(p, StreamUse::Bulk));
		assert_eq!(b.open_to(&p), STREAMS_PER_PEER);
		// Every other peer has its own budget.
		assert!(b.try_take(q, StreamUse::Bulk));
		// Short exchanges may take every stream, long ones never the last.
		b.release(p, StreamUse::Bulk);
		assert!(b.try_take(p, StreamUse::Short));
		assert!(!b.try_take(p, StreamUse::Bulk));
		for kind in [StreamUse::Short, StreamUse::Short, StreamUse::Bulk, StreamUse::Bulk] {
			b.release(p, kind);
		}
		b.release(q, StreamUse::Bulk);
		assert_eq!(b.open_to(&p), 0);
		assert!(b.open.is_empty(), "peers without streams are forgotten");
	}

	#[tokio::test]
	async fn a_session_waits_for_a_stream_to_its_peer_to_close() {
		let streams = Arc::new(OutStreams::default());
		let p = PeerId::random();
		let mut held = Vec::new();
		for _ in 0..STREAMS_PER_PEER {
			held.push(streams.acquire(p, StreamUse::Short, Duration::ZERO).await.expect("free"));
		}
		let none = streams.acquire(p, StreamUse::Short, Duration::from_millis(20)).await;
		assert!(none.is_none(), "all taken: it waited, then gave up");
		let waiter = {
			let s = streams.clone();
			tokio::spawn(async move {
				s.acquire(p, StreamUse::Short, Duration::from_secs(5)).await.is_some()
			})
		};
		tokio::time::sleep(Duration::from_millis(20)).await;
		drop(held.pop());
		assert!(waiter.await.unwrap(), "woken when a stream closed");
		assert_eq!(streams.open_to(&p), STREAMS_PER_PEER - 1, "the waiter's stream is back too");
	}
}
