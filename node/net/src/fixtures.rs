//! Deterministic segment contents for tests and the benchmark (real data, written through the
//! store like any Primary write).
use sync_primitives::SegmentId;
use sync_store::{Head, SegmentWrite, Store, StoreError};

/// Pseudo-random bytes from a seed (xorshift; fast enough to generate gigabytes).
pub fn blob(seed: u64, len: usize) -> Vec<u8> {
	let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
	let mut out = Vec::with_capacity(len + 8);
	while out.len() < len {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		out.extend_from_slice(&x.to_le_bytes());
	}
	out.truncate(len);
	out
}

/// Fills `segment` with `total` bytes of mixed objects: sizes spread log-uniformly from 100 B to
/// 4 MiB, plus one object of `large` bytes. Writes in batches of ≈ 64 MiB. Returns the head.
pub fn populate(
	store: &Store,
	segment: SegmentId,
	total: u64,
	large: u64,
) -> Result<Head, StoreError> {
	let mut written = 0u64;
	let mut batch = Vec::new();
	let mut batch_bytes = 0u64;
	let mut head = None;
	if large > 0 {
		batch.push(SegmentWrite::Put {
			key: b"large".to_vec(),
			data: blob(u64::MAX, large as usize),
		});
		batch_bytes += large;
		written += large;
	}
	let mut i = 0u64;
	while written < total {
		// log-uniform in [100, 4 MiB]
		let r =
			(blob(i, 8).iter().fold(0u64, |a, b| a << 8 | *b as u64) % 10_000) as f64 / 10_000.0;
		let size = ((100f64).ln() + r * ((4u64 << 20) as f64 / 100.0).ln()).exp() as u64;
		let size = size.min(total - written).max(1);
		batch.push(SegmentWrite::Put {
			key: format!("obj/{i:08}").into_bytes(),
			data: blob(i, size as usize),
		});
		batch_bytes += size;
		written += size;
		i += 1;
		if batch_bytes >= 64 << 20 {
			head = Some(store.apply(segment, std::mem::take(&mut batch))?);
			batch_bytes = 0;
		}
	}
	if !batch.is_empty() {
		head = Some(store.apply(segment, batch)?);
	}
	Ok(head.or(store.head(segment)).expect("at least one write"))
}
