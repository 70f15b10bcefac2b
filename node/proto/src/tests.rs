//! Golden bytes: every message type and every enum variant encoded from a fixed sample and
//! compared with its bytes written out by hand from the SCALE rules (LE integers, compact
//! lengths, `Option` = 0/1 prefix, enum = index byte). A change to any of these is a change of
//! the wire format (and of `README.md`, whose worked examples are these bytes).
use super::*;
use codec::{Decode, DecodeAll, Encode};

const CID: Hash32 = [0x11; 32];
const ROOT: Hash32 = [0x22; 32];
const PREV_OP: Hash32 = [0x33; 32];
const NEW_ROOT: Hash32 = [0x44; 32];
const GENESIS: Hash32 = [0x55; 32];

fn hex(bytes: &[u8]) -> String {
	bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` encodes to `expected` (hex) and decodes back from it, consuming every byte.
fn golden<T: Encode + Decode + PartialEq + std::fmt::Debug>(value: &T, expected: &str) {
	let bytes = value.encode();
	assert_eq!(hex(&bytes), expected, "encoding of {value:?}");
	assert_eq!(&T::decode_all(&mut &bytes[..]).expect("decodes"), value);
}

fn range() -> GroupRange {
	GroupRange { cid: CID, size: 40_000, first: 2, count: 3 }
}
fn facts() -> WireFacts {
	WireFacts { root: ROOT, leaves: 3, entries: 2, bytes: 2100 }
}
fn head() -> WireHead {
	WireHead { seq: 5, facts: facts() }
}
fn entry() -> WireEntry {
	WireEntry { key: b"k1".to_vec(), cid: CID, size: 100 }
}
fn put() -> OpKind {
	OpKind::Put { key: b"k1".to_vec(), cid: CID, size: 100 }
}
fn op() -> Op {
	Op {
		segment: 7,
		epoch: 2,
		seq: 5,
		prev_op: PREV_OP,
		kind: put(),
		prev_root: ROOT,
		new_root: NEW_ROOT,
	}
}
fn signed() -> SignedOp {
	SignedOp { op: op(), signer: vec![0xaa, 0xaa], signature: vec![0xbb, 0xbb, 0xbb] }
}
fn announcement() -> Announcement {
	Announcement {
		segment: 7,
		epoch: 2,
		seq: 5,
		op_hash: PREV_OP,
		new_root: NEW_ROOT,
		signer: vec![0xaa, 0xaa],
		signature: vec![0xbb, 0xbb, 0xbb],
	}
}

// Pieces written once and reused below.
macro_rules! cid {
	() => {
		"1111111111111111111111111111111111111111111111111111111111111111"
	};
}
macro_rules! root {
	() => {
		"2222222222222222222222222222222222222222222222222222222222222222"
	};
}
macro_rules! prev_op {
	() => {
		"3333333333333333333333333333333333333333333333333333333333333333"
	};
}
macro_rules! new_root {
	() => {
		"4444444444444444444444444444444444444444444444444444444444444444"
	};
}
macro_rules! genesis {
	() => {
		"5555555555555555555555555555555555555555555555555555555555555555"
	};
}
macro_rules! range {
	() => {
		concat!(cid!(), "409c000000000000", "0200000000000000", "03000000")
	};
}
macro_rules! facts {
	() => {
		concat!(root!(), "0300000000000000", "0200000000000000", "3408000000000000")
	};
}
macro_rules! head {
	() => {
		concat!("0500000000000000", facts!())
	};
}
macro_rules! entry {
	() => {
		concat!("08", "6b31", cid!(), "6400000000000000")
	};
}
macro_rules! put {
	() => {
		concat!("00", "08", "6b31", cid!(), "6400000000000000")
	};
}
macro_rules! op {
	() => {
		concat!(
			"0700000000000000",
			"02000000",
			"0500000000000000",
			prev_op!(),
			put!(),
			root!(),
			new_root!()
		)
	};
}
macro_rules! signed {
	() => {
		concat!(op!(), "08", "aaaa", "0c", "bbbbbb")
	};
}

#[test]
fn group_range() {
	golden(&range(), range!());
}

#[test]
fn requests() {
	golden(&Request::Head { segment: 7 }, concat!("00", "0700000000000000"));
	golden(
		&Request::Index { segment: 7, root: ROOT, start: 1024, count: 1024 },
		concat!("01", "0700000000000000", root!(), "0004000000000000", "00040000"),
	);
	golden(
		&Request::Outboard { cid: CID, size: 40_000 },
		concat!("02", cid!(), "409c000000000000"),
	);
	golden(
		&Request::Ops { segment: 7, from: 5, max: 256 },
		concat!("03", "0700000000000000", "0500000000000000", "00010000"),
	);
	golden(&Request::Groups { ranges: vec![range()] }, concat!("04", "04", range!()));
	golden(&Request::Groups { ranges: vec![] }, "0400");
}

#[test]
fn envelope() {
	golden(
		&Envelope { version: VERSION, request: Request::Head { segment: 7 } },
		concat!("01", "00", "0700000000000000"),
	);
}

#[test]
fn heads_facts_and_entries() {
	golden(&facts(), facts!());
	golden(&head(), head!());
	golden(&entry(), entry!());
}

#[test]
fn error_codes() {
	for (code, byte) in [
		(ErrorCode::UnsupportedVersion, "00"),
		(ErrorCode::Malformed, "01"),
		(ErrorCode::TooLarge, "02"),
		(ErrorCode::NotHeld, "03"),
		(ErrorCode::Busy, "04"),
		(ErrorCode::Internal, "05"),
		(ErrorCode::Pruned, "06"),
	] {
		golden(&code, byte);
	}
}

#[test]
fn responses() {
	golden(
		&Response::Head {
			complete: Some(head()),
			syncing: None,
			received: 1000,
			pinned: vec![head()],
		},
		concat!("00", "01", head!(), "00", "e803000000000000", "04", head!()),
	);
	golden(
		&Response::Head { complete: None, syncing: Some(head()), received: 0, pinned: vec![] },
		concat!("00", "00", "01", head!(), "0000000000000000", "00"),
	);
	golden(
		&Response::Index { entries: vec![entry()], total: 1 },
		concat!("01", "04", entry!(), "0100000000000000"),
	);
	golden(&Response::Outboard { len: 1024 }, concat!("02", "0004000000000000"));
	golden(&Response::Groups, "03");
	golden(&Response::Ops { ops: vec![signed()] }, concat!("04", "04", signed!()));
	golden(&Response::Ops { ops: vec![] }, "0400");
	golden(&Response::Error(ErrorCode::Pruned), "0506");
	golden(&Response::Error(ErrorCode::UnsupportedVersion), "0500");
}

#[test]
fn op_kinds_ops_and_signed_ops() {
	golden(&put(), put!());
	golden(&OpKind::Delete { key: b"k1".to_vec() }, concat!("01", "08", "6b31"));
	golden(&op(), op!());
	golden(&signed(), signed!());
	// Between checkpoints: empty signature.
	golden(&SignedOp { signature: vec![], ..signed() }, concat!(op!(), "08", "aaaa", "00"));
	assert!(signed().is_checkpoint());
	assert!(!SignedOp { signature: vec![], ..signed() }.is_checkpoint());
}

#[test]
fn announcements() {
	golden(
		&announcement(),
		concat!(
			"0700000000000000",
			"02000000",
			"0500000000000000",
			prev_op!(),
			new_root!(),
			"08",
			"aaaa",
			"0c",
			"bbbbbb"
		),
	);
	let a = Announcement::unsigned(&op());
	assert_eq!(
		(a.segment, a.epoch, a.seq, a.op_hash, a.new_root),
		(7, 2, 5, op().hash(), NEW_ROOT)
	);
	assert!(a.signer.is_empty() && a.signature.is_empty());
}

#[test]
fn signing_payloads() {
	// "sync-registry/op/v3" in ASCII, then the genesis hash, then the op.
	assert_eq!(
		hex(&op_signing_payload(&GENESIS, &op())),
		concat!("73796e632d72656769737472792f6f702f7633", genesis!(), op!())
	);
	// "sync-registry/announce/v3", the genesis hash, segment, epoch, seq, op hash, new root.
	assert_eq!(
		hex(&announcement().signing_payload(&GENESIS)),
		concat!(
			"73796e632d72656769737472792f616e6e6f756e63652f7633",
			genesis!(),
			"0700000000000000",
			"02000000",
			"0500000000000000",
			prev_op!(),
			new_root!()
		)
	);
	// Another chain, another payload.
	assert_ne!(op_signing_payload(&[0; 32], &op()), op_signing_payload(&GENESIS, &op()));
	assert_ne!(announcement().signing_payload(&[0; 32]), announcement().signing_payload(&GENESIS));
}

#[test]
fn op_hash_is_blake3_of_the_encoding() {
	assert_eq!(op().hash(), *blake3::hash(&op().encode()).as_bytes());
	let other = Op { prev_op: NO_PREV_OP, ..op() };
	assert_ne!(other.hash(), op().hash(), "the hash covers prev_op");
	assert_ne!(Op { epoch: 3, ..op() }.hash(), op().hash(), "and the epoch");
}

#[test]
fn limits_are_checked_for_every_request() {
	assert_eq!(check_limits(&Request::Head { segment: 1 }), Ok(()));
	assert_eq!(check_limits(&Request::Outboard { cid: CID, size: 40_000 }), Ok(()));
	// The review's M3: an outboard claim beyond the largest object asked for the whole
	// outboard memory budget, holding every other answer behind it.
	let outboard = |size| Request::Outboard { cid: CID, size };
	assert_eq!(check_limits(&outboard(MAX_OBJECT_BYTES)), Ok(()));
	assert_eq!(check_limits(&outboard(MAX_OBJECT_BYTES + 1)), Err(ErrorCode::TooLarge));
	assert_eq!(check_limits(&outboard(u64::MAX)), Err(ErrorCode::TooLarge));
	let index = |count| Request::Index { segment: 1, root: ROOT, start: 0, count };
	assert_eq!(check_limits(&index(MAX_INDEX_PAGE)), Ok(()));
	assert_eq!(check_limits(&index(MAX_INDEX_PAGE + 1)), Err(ErrorCode::TooLarge));
	let ops = |max| Request::Ops { segment: 1, from: 1, max };
	assert_eq!(check_limits(&ops(MAX_OPS_PER_REQUEST)), Ok(()));
	assert_eq!(check_limits(&ops(MAX_OPS_PER_REQUEST + 1)), Err(ErrorCode::TooLarge));
	let groups = |ranges: Vec<(u64, u32)>| Request::Groups {
		ranges: ranges
			.into_iter()
			.map(|(first, count)| GroupRange { cid: CID, size: 40_000, first, count })
			.collect(),
	};
	assert_eq!(check_limits(&groups(vec![(0, 32), (0, 32)])), Ok(()));
	assert_eq!(check_limits(&groups(vec![(0, 32), (0, 33)])), Err(ErrorCode::TooLarge));
	assert_eq!(check_limits(&groups(vec![])), Err(ErrorCode::TooLarge));
	assert_eq!(check_limits(&groups(vec![(0, 1), (0, 0)])), Err(ErrorCode::TooLarge));
	assert_eq!(check_limits(&groups(vec![(u64::MAX, 1)])), Err(ErrorCode::TooLarge));
	assert_eq!(check_limits(&groups(vec![(u64::MAX - 1, 1)])), Ok(()));
}

#[test]
fn frames_are_length_prefixed_and_bounded() {
	use futures::executor::block_on;
	let mut out = Vec::new();
	block_on(write_msg(&mut out, &Request::Head { segment: 7 })).expect("writes");
	block_on(write_data_frame(&mut out, TAG_MISSING, &[])).expect("writes");
	block_on(write_data_frame(&mut out, TAG_DATA, b"ab")).expect("writes");
	assert_eq!(
		hex(&out),
		concat!("09000000", "00", "0700000000000000", "01000000", "01", "03000000", "00", "6162")
	);
	let mut r = futures::io::Cursor::new(out.clone());
	let req: Request = block_on(read_msg(&mut r, MAX_REQUEST_BYTES)).expect("reads");
	assert_eq!(req, Request::Head { segment: 7 });
	let mut buf = Vec::new();
	block_on(read_frame_into(&mut r, MAX_DATA_FRAME, &mut buf)).expect("reads");
	assert_eq!(buf, vec![TAG_MISSING]);
	// A frame longer than the limit is refused before anything is read or allocated.
	let mut r = futures::io::Cursor::new(out);
	assert!(matches!(
		block_on(read_frame_into(&mut r, 8, &mut buf)),
		Err(WireError::TooLarge { len: 9, max: 8 })
	));
}

#[test]
fn hostile_lengths_fail_to_decode_without_allocating_them() {
	// A response announcing 2^22 ops in five bytes: an error, not an allocation.
	let bytes = [0x04, 0x02, 0x00, 0x00, 0x01];
	assert!(Response::decode_all(&mut &bytes[..]).is_err());
	// An unknown variant index.
	assert!(Request::decode_all(&mut &[0x05u8, 0][..]).is_err());
	assert!(ErrorCode::decode_all(&mut &[0x07u8][..]).is_err());
}
