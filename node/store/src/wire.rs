//! Conversions between the store's types (and those of `sync-primitives`) and the plain wire
//! types of `sync-proto`, which encode identically in SCALE.
//!
//! `RootFacts`/`Entry` and `WireFacts`/`WireEntry` belong to two other crates, so the orphan
//! rule leaves functions here rather than `From` impls; [`Head`] is this crate's, so
//! `Head`/`WireHead` convert with `From`.
use crate::Head;
use sync_primitives::commitment::{Entry, RootFacts};
use sync_proto::{WireEntry, WireFacts, WireHead};

// The wire crate re-declares these; they must be the same numbers.
const _: () = assert!(sync_proto::GROUP_LEN == sync_primitives::commitment::GROUP_LEN);
const _: () = assert!(sync_proto::MAX_KEY_LEN == sync_primitives::commitment::MAX_KEY_LEN);

/// Root facts as they go on the wire.
pub fn facts_to_wire(f: RootFacts) -> WireFacts {
	WireFacts { root: f.root, leaves: f.leaves, entries: f.entries, bytes: f.bytes }
}

/// Root facts as received (the fields are not checked here: a peer's facts are a hint until
/// the chain or a recomputed root confirms them).
pub fn facts_from_wire(w: WireFacts) -> RootFacts {
	RootFacts { root: w.root, leaves: w.leaves, entries: w.entries, bytes: w.bytes }
}

/// An index entry as it goes on the wire.
pub fn entry_to_wire(e: Entry) -> WireEntry {
	WireEntry { key: e.key, cid: e.cid, size: e.size }
}

/// An index entry as received (unverified until its index hashes to the target root).
pub fn entry_from_wire(e: WireEntry) -> Entry {
	Entry { key: e.key, cid: e.cid, size: e.size }
}

impl From<Head> for WireHead {
	fn from(h: Head) -> Self {
		WireHead { seq: h.seq, facts: facts_to_wire(h.facts) }
	}
}

impl From<WireHead> for Head {
	fn from(h: WireHead) -> Self {
		Head { seq: h.seq, facts: facts_from_wire(h.facts) }
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use codec::Encode;

	#[test]
	fn root_facts_and_wire_facts_encode_identically() {
		let facts = RootFacts { root: [0x22; 32], leaves: 3, entries: 2, bytes: 2100 };
		assert_eq!(facts.encode(), facts_to_wire(facts).encode());
		assert_eq!(facts_from_wire(facts_to_wire(facts)), facts);
		let head = Head { seq: 5, facts };
		assert_eq!(Head::from(WireHead::from(head)), head);
		assert_eq!(WireHead::from(head).encode(), (5u64, facts).encode());
		let e = Entry { key: b"k1".to_vec(), cid: [0x11; 32], size: 100 };
		assert_eq!(entry_from_wire(entry_to_wire(e.clone())), e);
		assert_eq!(entry_to_wire(e.clone()).encode(), (e.key, e.cid, e.size).encode());
	}
}
