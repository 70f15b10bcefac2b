//! Serving side of the transfer protocol: bounded streams (global and per peer), optional
//! byte-rate limits, and requests answered straight from the store in streamed frames.
use crate::{
	protocol::*,
	NetInner,
};
use codec::DecodeAll;
use futures::{io::BufWriter, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use parking_lot::Mutex;
use std::{
	collections::HashMap,
	sync::Arc,
	time::{Duration, Instant},
};
use sync_store::StoreError;

/// A token bucket of bytes per second (bursts of a quarter second).
pub(crate) struct Bucket {
	rate: u64,
	burst: f64,
	tokens: f64,
	last: Instant,
}

impl Bucket {
	pub(crate) fn new(rate: u64) -> Self {
		let burst = rate as f64 / 4.0;
		Bucket { rate, burst, tokens: burst, last: Instant::now() }
	}
	/// Takes `n` tokens; returns how long to wait before sending.
	fn take(&mut self, n: u64) -> Duration {
		let now = Instant::now();
		self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate as f64).min(self.burst);
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

/// Releases a peer's stream slot when a served stream ends.
struct Slot {
	net: Arc<NetInner>,
	peer: PeerId,
}
impl Drop for Slot {
	fn drop(&mut self) {
		self.net.metrics.streams.with_label_values(&["inbound"]).dec();
		let mut open = self.net.serving.lock();
		if let Some(n) = open.get_mut(&self.peer) {
			*n -= 1;
			if *n == 0 {
				open.remove(&self.peer);
			}
		}
	}
}

/// Accepts inbound transfer streams until the network shuts down.
pub(crate) async fn accept_loop(net: Arc<NetInner>, mut incoming: libp2p_stream::IncomingStreams) {
	while let Some((peer, stream)) = incoming.next().await {
		if net.bans.lock().contains(&peer) {
			continue;
		}
		let limits = &net.config.limits;
		let global = net.stream_permits.clone().try_acquire_owned();
		let admitted = {
			let mut open = net.serving.lock();
			let n = open.entry(peer).or_insert(0);
			if global.is_ok() && *n < limits.max_streams_per_peer {
				*n += 1;
				true
			} else {
				if *n == 0 {
					open.remove(&peer);
				}
				false
			}
		};
		if !admitted {
			tokio::spawn(async move {
				let mut s = stream;
				let _ = write_msg(&mut s, &Response::Error(ErrorCode::Busy)).await;
				let _ = s.close().await;
			});
			continue;
		}
		net.metrics.streams.with_label_values(&["inbound"]).inc();
		let slot = Slot { net: net.clone(), peer };
		let permit = global.expect("checked above");
		tokio::spawn(async move {
			if let Err(e) = serve_stream(&slot.net, peer, stream).await {
				log::debug!(target: "sync-net", "stream from {peer} ended: {e}");
			}
			drop(permit);
			drop(slot);
		});
	}
}

async fn serve_stream(net: &Arc<NetInner>, peer: PeerId, stream: Stream) -> Result<(), WireError> {
	let mut io = BufWriter::with_capacity(256 * 1024, stream);
	let mut buf = Vec::new();
	let peer_bucket = net.config.limits.bytes_per_sec_per_peer.map(|r| {
		net.peer_buckets.lock().entry(peer).or_insert_with(|| Arc::new(Mutex::new(Bucket::new(r)))).clone()
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
		answer(net, peer, peer_bucket.as_deref(), &mut io, env.request).await?;
		net.metrics.requests.with_label_values(&["server", "ok"]).inc();
		io.flush().await?;
	}
}

async fn answer(
	net: &Arc<NetInner>,
	peer: PeerId,
	peer_bucket: Option<&Mutex<Bucket>>,
	io: &mut BufWriter<Stream>,
	request: Request,
) -> Result<(), WireError> {
	let store = &net.store;
	match request {
		Request::Head { segment } => {
			let complete = store.head(segment).map(|h| WireHead { seq: h.seq, facts: h.facts });
			let syncing = match store.transfer(segment) {
				Ok(Some(t)) if t.index_staged => Some(WireHead { seq: t.target.seq, facts: t.target.facts }),
				_ => None,
			};
			let received = net.metrics.bytes_in.get();
			let pinned = store.pinned(segment).into_iter().map(|h| WireHead { seq: h.seq, facts: h.facts }).collect();
			write_msg(io, &Response::Head { complete, syncing, received, pinned }).await
		},
		Request::Index { segment, root, start, count } => match store.index_page(segment, &root, start, count as u64) {
			Ok((entries, total)) => {
				let entries = entries.into_iter().map(WireEntry::from).collect();
				write_msg(io, &Response::Index { entries, total }).await
			},
			Err(_) => write_msg(io, &Response::Error(ErrorCode::NotHeld)).await,
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

fn count_refused(net: &NetInner) {
	net.metrics.requests.with_label_values(&["server", "refused"]).inc();
}

fn count_served(net: &NetInner, peer: PeerId, n: u64) {
	net.metrics.bytes_out.inc_by(n);
	*net.served_to.lock().entry(peer).or_insert(0) += n;
}

/// Bytes served per peer (for reports and benchmarks).
pub(crate) type ServedTo = Mutex<HashMap<PeerId, u64>>;
