//! The sync service's JSON-RPC methods: the object API and status.
use crate::SyncHandle;
use std::sync::Arc;
use sync_net::SyncNetwork;

/// Most bytes of an object moved through one JSON-RPC call (hex doubles it on the wire).
pub const MAX_RPC_OBJECT: usize = 4 << 20;

/// The object API and status as JSON-RPC methods:
/// - `sync_status()`: peer id, addresses, and per tracked segment its head (seq, root,
///   entries, bytes), whether this node owns it, its lag in seqs and the pinned snapshots;
/// - `sync_health()`: the node's sync health (see [`crate::health`]): `status` (`healthy`,
///   `degraded`, `unhealthy`), `reasons` (`level`, `code`, `segment`, `detail`, worst first) and
///   per segment its status on chain and how far behind the chain it is;
/// - `sync_put(segment, key, dataHex)`: writes an object into a segment this node owns on
///   chain (one signed op, announced to followers); returns the new seq and root. An *unsafe*
///   method: refused (JSON-RPC `-32601`, as Substrate answers every unsafe method) where the
///   node serves only safe methods (`--rpc-methods safe`, the default with `--rpc-external`);
///   a write costs this node's disk and the network's bandwidth, and the chain authorises no
///   caller;
/// - `sync_get(segment, key)`: the object under `key` (`null` if absent), verified against its
///   CID on read.
pub fn rpc_module(
	handle: Arc<SyncHandle>,
) -> Result<jsonrpsee::RpcModule<SyncHandle>, jsonrpsee::core::RegisterMethodError> {
	use jsonrpsee::types::ErrorObjectOwned;
	use serde_json::{json, Value};
	type Reply = Result<Value, ErrorObjectOwned>;
	fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
		ErrorObjectOwned::owned(code, msg.into(), None::<()>)
	}
	fn net(h: &SyncHandle) -> Result<&SyncNetwork, ErrorObjectOwned> {
		h.network().ok_or_else(|| {
			err(9000, "the sync service is not running (--sync-role none, or starting)")
		})
	}
	use sync_primitives::hex::{hex, unhex};
	let mut m = jsonrpsee::RpcModule::from_arc(handle);
	m.register_blocking_method("sync_status", |_, h, _| -> Reply {
		let net = net(&h)?;
		let segments: Vec<Value> = h
			.segments()
			.iter()
			.map(|(id, s)| {
				let head = net.store().head(*id);
				let (status, proven) =
					s.holding.map_or((None, None), |(st, p)| (Some(format!("{st:?}")), p));
				let transfer = net.store().transfer(*id).ok().flatten();
				// What the node is doing with the segment right now.
				let stage = match (s.owner, &transfer, head) {
					(true, _, _) => "owner",
					(false, Some(_), _) => "snapshot",
					(false, None, Some(_)) => "following",
					(false, None, None) => "waiting",
				};
				json!({
					"segment": id,
					"stage": stage,
					"holdersOnChain": s.holders.len(),
					"owner": s.owner,
					"primary": s.primary,
					"chainStatus": status,
					"provenSeq": proven,
					"committedSeq": s.roots.last().map(|r| r.seq),
					"seq": head.map(|h| h.seq),
					"root": head.map(|h| hex(&h.facts.root)),
					"entries": head.map(|h| h.facts.entries),
					"bytes": head.map(|h| h.facts.bytes),
					"lagSeqs": net.metrics().lag.with_label_values(&[&id.to_string()]).get(),
					"pinned": net.store().pinned(*id).iter().map(|h| h.seq).collect::<Vec<_>>(),
					"syncing": transfer.map(|t| json!({
						"targetSeq": t.target.seq,
						"verifiedBytes": net.metrics().progress.with_label_values(&[&id.to_string()]).get(),
						"totalBytes": t.target.facts.bytes,
					})),
				})
			})
			.collect();
		let [usable, cooling, banned] = net.peer_book().states(std::time::Instant::now());
		Ok(json!({
			"peerId": net.peer_id().to_string(),
			"bytesServed": net.served(),
			"bytesReceived": net.received(),
			"peers": { usable.0: usable.1, cooling.0: cooling.1, banned.0: banned.1 },
			"segments": segments,
		}))
	})?;
	m.register_blocking_method("sync_health", |_, h, _| -> Reply { Ok(h.health().to_json()) })?;
	m.register_blocking_method("sync_put", |params, h, ext| -> Reply {
		unsafe_allowed(&ext)?;
		let (segment, key, data): (u64, String, String) = params.parse()?;
		let net = net(&h)?;
		let refused = |e: crate::NotWritable| {
			let code = match e {
				crate::NotWritable::NotOwner { .. } => 9001,
				crate::NotWritable::Behind { .. } | crate::NotWritable::Rewinding { .. } => 9006,
				crate::NotWritable::Handover { .. } => 9007,
			};
			ErrorObjectOwned::owned(code, e.message(segment), Some(e.data()))
		};
		let epoch = h.write_epoch_of(net, segment).map_err(refused)?;
		let digits = data.strip_prefix("0x").unwrap_or(&data);
		if digits.len() / 2 > MAX_RPC_OBJECT {
			return Err(err(9002, format!("object larger than {MAX_RPC_OBJECT} bytes")));
		}
		let bytes = unhex(digits).map_err(|_| err(9003, "data is not hex"))?;
		let write = sync_store::SegmentWrite::Put { key: key.into_bytes(), data: bytes };
		let head = net.write(segment, epoch, vec![write]).map_err(|e| match e {
			sync_store::StoreError::Fenced { .. } => refused(h.fenced(segment)),
			e => err(9004, e.to_string()),
		})?;
		Ok(json!({ "seq": head.seq, "root": hex(&head.facts.root), "entries": head.facts.entries, "bytes": head.facts.bytes }))
	})?;
	m.register_blocking_method("sync_get", |params, h, _| -> Reply {
		let (segment, key): (u64, String) = params.parse()?;
		let net = net(&h)?;
		let Some(entry) = net.store().lookup(segment, key.as_bytes()) else {
			return Ok(Value::Null);
		};
		if entry.size as usize > MAX_RPC_OBJECT {
			return Err(err(
				9002,
				format!("object of {} bytes is larger than {MAX_RPC_OBJECT}", entry.size),
			));
		}
		let data = net.store().read_object(&entry.cid).map_err(|e| err(9004, e.to_string()))?;
		if sync_primitives::commitment::cid_of(&data) != entry.cid {
			return Err(err(9005, "stored object does not match its CID"));
		}
		Ok(json!({ "cid": hex(&entry.cid), "size": entry.size, "data": hex(&data) }))
	})?;
	Ok(m)
}

/// Whether the server lets this call through to an unsafe method. Substrate's RPC server puts
/// its `DenyUnsafe` policy on every call; a call without one (a server that did not, a test
/// harness) is denied, never let through.
fn unsafe_allowed(ext: &jsonrpsee::Extensions) -> Result<(), jsonrpsee::types::ErrorObjectOwned> {
	use sc_rpc_api::{DenyUnsafe, UnsafeRpcError};
	match ext.get::<DenyUnsafe>() {
		Some(policy) => policy.check_if_safe().map_err(Into::into),
		None => Err(UnsafeRpcError.into()),
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use sc_rpc_api::DenyUnsafe;

	/// The defect: `sync_put` never asked the server's policy, so `--rpc-external` with
	/// `--rpc-methods safe` let anyone write into the node's segments.
	#[test]
	fn sync_put_is_unsafe_rpc() {
		let mut deny = jsonrpsee::Extensions::new();
		deny.insert(DenyUnsafe::Yes);
		let err = unsafe_allowed(&deny).unwrap_err();
		assert_eq!(err.code(), jsonrpsee::types::error::ErrorCode::MethodNotFound.code());
		assert!(unsafe_allowed(&jsonrpsee::Extensions::new()).is_err(), "no policy: denied");
		let mut allow = jsonrpsee::Extensions::new();
		allow.insert(DenyUnsafe::No);
		assert!(unsafe_allowed(&allow).is_ok());
	}
}
