//! Serving side of the transfer protocol: bounded streams (global and per peer), optional
//! byte-rate limits, and requests answered straight from the store in streamed frames.
use super::protocol::{priority, Priority};
use crate::{metrics::Metrics, peers::PeerManager, ServeLimits};
use codec::DecodeAll;
use futures::{io::BufWriter, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use parking_lot::Mutex;
use std::{
	collections::{HashMap, VecDeque},
	sync::Arc,
	time::{Duration, Instant},
};
use sync_proto::{
	check_limits, read_frame_into, write_data_frame, write_msg, Envelope, ErrorCode, Request,
	Response, WireError, WireHead, MAX_DATA_FRAME, MAX_REQUEST_BYTES, TAG_DATA, TAG_MISSING,
	VERSION,
};
use sync_store::{wire::entry_to_wire, Store, StoreError};
use tokio::sync::{oneshot, Semaphore};

/// A token bucket of bytes per second (bursts of a quarter second).
struct Bucket {
	rate: u64,
	burst: f64,
	tokens: f64,
	last: Instant,
}

impl Bucket {
	fn new(rate: u64) -> Self {
		let burst = rate as f64 / 4.0;
		Bucket { rate, burst, tokens: burst, last: Instant::now() }
	}
	/// Takes `n` tokens; returns how long to wait before sending.
	fn take(&mut self, n: u64) -> Duration {
		let now = Instant::now();
		self.tokens = (self.tokens
			+ now.duration_since(self.last).as_secs_f64() * self.rate as f64)
			.min(self.burst);
		self.last = now;
		self.tokens -= n as f64;
		if self.tokens >= 0.0 {
			Duration::ZERO
		} else {
			Duration::from_secs_f64(-self.tokens / self.rate as f64)
		}
	}
}

async fn throttle(bucket: Option<&Mutex<Bucket>>, n: u64) {
	if let Some(b) = bucket {
		let wait = b.lock().take(n);
		if !wait.is_zero() {
			tokio::time::sleep(wait).await;
		}
	}
}

/// Admission of requests to the serving slots: a freed slot goes to the oldest waiting
/// high-priority request, else the oldest low-priority one (see [`priority`]).
struct Gate {
	state: Mutex<GateState>,
}

struct GateState {
	free: usize,
	high: VecDeque<oneshot::Sender<GatePass>>,
	low: VecDeque<oneshot::Sender<GatePass>>,
}

/// A serving slot; dropping it hands the slot to the next waiter.
struct GatePass(Option<Arc<Gate>>);

impl Gate {
	fn new(slots: usize) -> Self {
		Gate {
			state: Mutex::new(GateState {
				free: slots.max(1),
				high: VecDeque::new(),
				low: VecDeque::new(),
			}),
		}
	}

	/// Waits for a slot. Cancel-safe: a slot handed to a waiter that went away is passed on.
	async fn enter(self: &Arc<Self>, priority: Priority) -> GatePass {
		let rx = {
			let mut s = self.state.lock();
			if s.free > 0 {
				s.free -= 1;
				return GatePass(Some(self.clone()));
			}
			let (tx, rx) = oneshot::channel();
			match priority {
				Priority::High => s.high.push_back(tx),
				Priority::Low => s.low.push_back(tx),
			}
			rx
		};
		rx.await.unwrap_or(GatePass(None))
	}

	fn release(self: &Arc<Self>) {
		let mut s = self.state.lock();
		loop {
			let Some(tx) = s.high.pop_front().or_else(|| s.low.pop_front()) else {
				s.free += 1;
				return;
			};
			match tx.send(GatePass(Some(self.clone()))) {
				Ok(()) => return,
				// The waiter is gone: the pass comes back unused; try the next one.
				Err(mut pass) => pass.0 = None,
			}
		}
	}
}

impl Drop for GatePass {
	fn drop(&mut self) {
		if let Some(gate) = self.0.take() {
			gate.release();
		}
	}
}

/// Releases a peer's stream slot when a served stream ends.
struct Slot {
	server: Arc<Server>,
	peer: PeerId,
}
impl Drop for Slot {
	fn drop(&mut self) {
		self.server.metrics.streams.with_label_values(&["inbound"]).dec();
		let mut open = self.server.serving.lock();
		if let Some(n) = open.get_mut(&self.peer) {
			*n -= 1;
			if *n == 0 {
				open.remove(&self.peer);
			}
		}
	}
}

/// The serving side: what it serves from, its limits, and the state that enforces them.
pub(crate) struct Server {
	store: Store,
	metrics: Metrics,
	peers: Arc<PeerManager>,
	limits: ServeLimits,
	/// Bytes served to each peer.
	served_to: Mutex<HashMap<PeerId, u64>>,
	/// Streams being served, per peer.
	serving: Mutex<HashMap<PeerId, usize>>,
	/// Streams served at once, over all peers.
	stream_permits: Arc<Semaphore>,
	peer_buckets: Mutex<HashMap<PeerId, Arc<Mutex<Bucket>>>>,
	total_bucket: Option<Mutex<Bucket>>,
	/// Requests answered at once, high priority first.
	gate: Arc<Gate>,
}

impl Server {
	/// A server of `store` within `limits`, refusing peers `peers` has banned.
	pub(crate) fn new(
		store: Store,
		metrics: Metrics,
		peers: Arc<PeerManager>,
		limits: ServeLimits,
	) -> Arc<Self> {
		Arc::new(Server {
			store,
			metrics,
			peers,
			stream_permits: Arc::new(Semaphore::new(limits.max_streams)),
			total_bucket: limits.bytes_per_sec_total.map(|r| Mutex::new(Bucket::new(r))),
			gate: Arc::new(Gate::new(limits.max_requests)),
			limits,
			served_to: Mutex::new(HashMap::new()),
			serving: Mutex::new(HashMap::new()),
			peer_buckets: Mutex::new(HashMap::new()),
		})
	}

	/// Bytes served to each peer so far.
	pub(crate) fn served_to(&self) -> HashMap<PeerId, u64> {
		self.served_to.lock().clone()
	}
}

/// Accepts inbound transfer streams until the network shuts down.
pub(crate) async fn accept_loop(net: Arc<Server>, mut incoming: libp2p_stream::IncomingStreams) {
	while let Some((peer, stream)) = incoming.next().await {
		if net.peers.is_banned(&peer) {
			continue;
		}
		let admitted = net.stream_permits.clone().try_acquire_owned().ok().filter(|_| {
			let mut open = net.serving.lock();
			let n = open.entry(peer).or_insert(0);
			if *n < net.limits.max_streams_per_peer {
				*n += 1;
				true
			} else {
				if *n == 0 {
					open.remove(&peer);
				}
				false
			}
		});
		let Some(permit) = admitted else {
			tokio::spawn(async move {
				let mut s = stream;
				let _ = write_msg(&mut s, &Response::Error(ErrorCode::Busy)).await;
				let _ = s.close().await;
			});
			continue;
		};
		net.metrics.streams.with_label_values(&["inbound"]).inc();
		let slot = Slot { server: net.clone(), peer };
		tokio::spawn(async move {
			if let Err(e) = serve_stream(&slot.server, peer, stream).await {
				log::debug!(target: "sync-net", "stream from {peer} ended: {e}");
			}
			drop(permit);
			drop(slot);
		});
	}
}

async fn serve_stream(net: &Arc<Server>, peer: PeerId, stream: Stream) -> Result<(), WireError> {
	let mut io = BufWriter::with_capacity(256 * 1024, stream);
	let mut buf = Vec::new();
	let peer_bucket = net.limits.bytes_per_sec_per_peer.map(|r| {
		net.peer_buckets
			.lock()
			.entry(peer)
			.or_insert_with(|| Arc::new(Mutex::new(Bucket::new(r))))
			.clone()
	});
	loop {
		match read_frame_into(&mut io, MAX_REQUEST_BYTES, &mut buf).await {
			Ok(()) => {},
			Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
			Err(WireError::TooLarge { .. }) => {
				count_refused(net);
				write_msg(&mut io, &Response::Error(ErrorCode::TooLarge)).await?;
				io.close().await?;
				return Ok(());
			},
			Err(e) => return Err(e),
		}
		if buf.first() != Some(&VERSION) {
			count_refused(net);
			write_msg(&mut io, &Response::Error(ErrorCode::UnsupportedVersion)).await?;
			io.close().await?;
			return Ok(());
		}
		let Ok(env) = Envelope::decode_all(&mut &buf[..]) else {
			count_refused(net);
			write_msg(&mut io, &Response::Error(ErrorCode::Malformed)).await?;
			io.close().await?;
			return Ok(());
		};
		if let Err(code) = check_limits(&env.request) {
			count_refused(net);
			write_msg(&mut io, &Response::Error(code)).await?;
			io.flush().await?;
			continue;
		}
		let priority = priority(&env.request);
		let label = [if priority == Priority::High { "high" } else { "low" }];
		net.metrics.queued.with_label_values(&label).inc();
		let pass = net.gate.enter(priority).await;
		net.metrics.queued.with_label_values(&label).dec();
		net.metrics.serving.inc();
		let answered = answer(net, peer, peer_bucket.as_deref(), &mut io, env.request).await;
		net.metrics.serving.dec();
		drop(pass);
		answered?;
		net.metrics.requests.with_label_values(&["server", "ok"]).inc();
		io.flush().await?;
	}
}

async fn answer(
	net: &Arc<Server>,
	peer: PeerId,
	peer_bucket: Option<&Mutex<Bucket>>,
	io: &mut BufWriter<Stream>,
	request: Request,
) -> Result<(), WireError> {
	let store = &net.store;
	match request {
		Request::Head { segment } => {
			let complete = store.head(segment).map(WireHead::from);
			let syncing = match store.transfer(segment) {
				Ok(Some(t)) if t.index_staged => Some(WireHead::from(t.target)),
				_ => None,
			};
			// Progress of this segment's transfer (what co-downloaders watch), not the node's
			// total: bytes of another segment are no progress on this one.
			let received = if syncing.is_some() {
				net.metrics.progress.with_label_values(&[&segment.to_string()]).get().max(0) as u64
			} else {
				0
			};
			let pinned = store.pinned(segment).into_iter().map(WireHead::from).collect();
			write_msg(io, &Response::Head { complete, syncing, received, pinned }).await
		},
		Request::Index { segment, root, start, count } => {
			match store.index_page(segment, &root, start, count as u64) {
				Ok((entries, total)) => {
					let entries = entries.into_iter().map(entry_to_wire).collect();
					write_msg(io, &Response::Index { entries, total }).await
				},
				Err(_) => write_msg(io, &Response::Error(ErrorCode::NotHeld)).await,
			}
		},
		Request::Outboard { cid } => match store.outboard(&cid) {
			Ok(ob) => {
				write_msg(io, &Response::Outboard { len: ob.len() as u64 }).await?;
				for part in ob.chunks(MAX_DATA_FRAME - 1) {
					write_data_frame(io, TAG_DATA, part).await?;
				}
				count_served(net, peer, ob.len() as u64);
				Ok(())
			},
			Err(_) => write_msg(io, &Response::Error(ErrorCode::NotHeld)).await,
		},
		Request::Ops { segment, from, max } => match store.ops(segment, from, max as usize) {
			Ok(ops) => write_msg(io, &Response::Ops { ops }).await,
			Err(StoreError::Pruned { .. }) => {
				write_msg(io, &Response::Error(ErrorCode::Pruned)).await
			},
			Err(e) => {
				log::warn!(target: "sync-net", "serving ops of {segment}: {e}");
				write_msg(io, &Response::Error(ErrorCode::Internal)).await
			},
		},
		Request::Groups { ranges } => {
			write_msg(io, &Response::Groups).await?;
			let mut buf = Vec::with_capacity(MAX_DATA_FRAME);
			for r in ranges {
				// Each group is written as soon as it is read: the first bytes leave at once.
				let src = match store.open_groups(&r.cid) {
					Ok(src) => Some(src),
					Err(StoreError::UnknownObject(_)) => None,
					Err(e) => {
						log::warn!(target: "sync-net", "serving {:?}: {e}", r.cid);
						None
					},
				};
				for g in r.first..r.first + r.count as u64 {
					let held = match &src {
						Some(src) => src.read_into(g, &mut buf).unwrap_or_else(|e| {
							log::warn!(target: "sync-net", "serving {:?}/{g}: {e}", r.cid);
							false
						}),
						None => false,
					};
					if held {
						throttle(peer_bucket, buf.len() as u64).await;
						throttle(net.total_bucket.as_ref(), buf.len() as u64).await;
						write_data_frame(io, TAG_DATA, &buf).await?;
						count_served(net, peer, buf.len() as u64);
					} else {
						write_data_frame(io, TAG_MISSING, &[]).await?;
					}
				}
			}
			Ok(())
		},
	}
}

fn count_refused(net: &Server) {
	net.metrics.requests.with_label_values(&["server", "refused"]).inc();
}

fn count_served(net: &Server, peer: PeerId, n: u64) {
	net.metrics.bytes_out.inc_by(n);
	*net.served_to.lock().entry(peer).or_insert(0) += n;
}

#[cfg(test)]
mod tests {
	use super::*;

	#[tokio::test]
	async fn freed_slots_go_to_high_priority_requests_first() {
		let gate = Arc::new(Gate::new(1));
		let held = gate.enter(Priority::Low).await;
		let order = Arc::new(Mutex::new(Vec::new()));
		let mut waiters = Vec::new();
		for (name, p) in [
			("low1", Priority::Low),
			("low2", Priority::Low),
			("high1", Priority::High),
			("high2", Priority::High),
		] {
			let (g, o) = (gate.clone(), order.clone());
			waiters.push(tokio::spawn(async move {
				let pass = g.enter(p).await;
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
			tokio::spawn(async move { g.enter(Priority::High).await })
		};
		tokio::time::sleep(Duration::from_millis(5)).await;
		gone.abort();
		drop(held);
		for w in waiters {
			w.await.unwrap();
		}
		assert_eq!(*order.lock(), vec!["high1", "high2", "low1", "low2"]);
		assert_eq!(gate.state.lock().free, 1, "every slot came back");
	}
}
