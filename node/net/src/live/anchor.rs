//! Anchors: the roots the chain committed for a segment, the only states a follower adopts
//! without a signed op path from a state it already trusts.
//!
//! A follower learns two things from its holders: how far the log goes (a hint for whom to ask
//! for ops; the ops themselves are verified against the Primary's signatures) and which
//! snapshots they serve. A snapshot is a whole index and is verified only against the root it
//! is fetched for, so that root must come from the chain: the node passes the segment's
//! retained committed roots (finalized state) as [`Anchors`], and the follower snapshots only
//! to one of them. A holder advertising a state at a committed seq with other facts cannot
//! back it (it is forged, or the holder is on another history) and is penalised; an
//! unanchored pin is never a target, however high.
//!
//! These are pure functions of the anchors and the polled heads; the follow loop
//! ([`super::follow`]) acts on them.
use crate::transfer::client::PeerHead;
use sync_primitives::commitment::Hash32;
use sync_proto::WireHead;
use sync_store::Head;

/// The chain's retained committed roots of one segment, oldest first, from finalized state
/// (`seq` and the committed facts).
pub type Anchors = tokio::sync::watch::Receiver<Vec<Head>>;

fn is(h: &WireHead, a: &Head) -> bool {
	Head::from(*h) == *a
}

fn advertised(p: &PeerHead) -> impl Iterator<Item = &WireHead> {
	p.complete.iter().chain(p.syncing.iter()).chain(p.pinned.iter())
}

/// Whether a holder serves anchor `a`: complete at it or pinned at it. A holder that is itself
/// syncing to `a` does not count: it serves only what it has fetched so far, so two nodes
/// syncing to a root nobody holds any more would otherwise keep each other on it (the snapshot
/// engine still asks such co-downloaders for what they have).
pub(crate) fn serves(p: &PeerHead, a: &Head) -> bool {
	p.complete.iter().chain(p.pinned.iter()).any(|h| is(h, a))
}

/// The snapshot target: the newest anchor some holder serves.
pub(crate) fn snapshot_target<'a>(
	anchors: &[Head],
	heads: impl Iterator<Item = &'a PeerHead> + Clone,
) -> Option<Head> {
	anchors.iter().rev().find(|a| heads.clone().any(|p| serves(p, a))).copied()
}

/// Whether `p` advertises a state at a committed seq with other facts than the chain's: it
/// cannot back that state with anything the chain vouches for.
pub(crate) fn contradicts(anchors: &[Head], p: &PeerHead) -> bool {
	advertised(p).any(|h| anchors.iter().any(|a| a.seq == h.seq && Head::from(*h).facts != a.facts))
}

/// The anchor a holder whose head is `head` should pin so others can snapshot it: the newest
/// anchor at or below its head, unless already pinned.
pub(crate) fn pin_wanted(anchors: &[Head], head: &Head, pinned: &[Head]) -> Option<Head> {
	let newest = anchors.iter().rev().find(|a| a.seq <= head.seq)?;
	(!pinned.contains(newest)).then_some(*newest)
}

/// The newest committed seq at which the local state disagrees with the chain, given the local
/// root at a seq (`None` where the store cannot tell: before its log, after its head).
pub(crate) fn diverged(anchors: &[Head], root_at: impl Fn(u64) -> Option<Hash32>) -> Option<u64> {
	anchors
		.iter()
		.rev()
		.find(|a| root_at(a.seq).is_some_and(|r| r != a.facts.root))
		.map(|a| a.seq)
}

#[cfg(test)]
mod tests {
	use super::*;
	use sync_primitives::commitment::RootFacts;

	fn head(seq: u64, r: u8) -> Head {
		Head { seq, facts: RootFacts { root: [r; 32], leaves: 1, entries: 1, bytes: seq } }
	}
	fn wire(h: Head) -> WireHead {
		WireHead::from(h)
	}
	fn peer(complete: Option<Head>, pinned: &[Head]) -> PeerHead {
		PeerHead {
			complete: complete.map(wire),
			syncing: None,
			received: 0,
			pinned: pinned.iter().copied().map(wire).collect(),
		}
	}

	#[test]
	fn rogue_pin_is_not_a_target() {
		let anchors = [head(10, 1), head(20, 2)];
		// A rogue advertises a far higher pin and head; an honest holder pins seq 20.
		let rogue = peer(Some(head(1_000, 9)), &[head(999, 8)]);
		let honest = peer(Some(head(25, 3)), &[head(10, 1), head(20, 2)]);
		assert_eq!(snapshot_target(&anchors, [&rogue, &honest].into_iter()), Some(head(20, 2)));
		assert_eq!(snapshot_target(&anchors, [&rogue].into_iter()), None, "nothing anchored");
		assert_eq!(snapshot_target(&[], [&honest].into_iter()), None, "no commits: no snapshot");
	}

	#[test]
	fn a_holder_syncing_to_an_anchor_does_not_serve_it() {
		let anchors = [head(10, 1), head(20, 2)];
		let mut co = peer(None, &[]);
		co.syncing = Some(wire(head(20, 2)));
		co.received = 1 << 30;
		assert!(!serves(&co, &head(20, 2)), "a co-downloader is not a source of the target");
		assert_eq!(snapshot_target(&anchors, [&co].into_iter()), None);
		let holder = peer(Some(head(10, 1)), &[]);
		assert_eq!(snapshot_target(&anchors, [&co, &holder].into_iter()), Some(head(10, 1)));
		// It still counts against the chain if it advertises other facts at a committed seq.
		co.syncing = Some(wire(head(20, 7)));
		assert!(contradicts(&anchors, &co));
	}

	#[test]
	fn older_anchor_when_the_newest_is_not_served() {
		let anchors = [head(10, 1), head(20, 2)];
		let p = peer(Some(head(10, 1)), &[]);
		assert_eq!(snapshot_target(&anchors, [&p].into_iter()), Some(head(10, 1)));
	}

	#[test]
	fn a_head_at_a_committed_seq_with_other_facts_contradicts_the_chain() {
		let anchors = [head(10, 1), head(20, 2)];
		assert!(contradicts(&anchors, &peer(Some(head(20, 7)), &[])));
		assert!(contradicts(&anchors, &peer(None, &[head(10, 5)])));
		let mut other_facts = head(20, 2);
		other_facts.facts.entries = 1 << 40;
		assert!(contradicts(&anchors, &peer(None, &[other_facts])), "fake entry count");
		assert!(!contradicts(&anchors, &peer(Some(head(25, 7)), &[head(20, 2)])), "uncommitted");
	}

	#[test]
	fn the_newest_reached_anchor_is_pinned_once() {
		let anchors = [head(10, 1), head(20, 2), head(30, 3)];
		assert_eq!(pin_wanted(&anchors, &head(25, 0), &[]), Some(head(20, 2)));
		assert_eq!(pin_wanted(&anchors, &head(25, 0), &[head(20, 2)]), None);
		assert_eq!(pin_wanted(&anchors, &head(5, 0), &[]), None);
	}

	#[test]
	fn divergence_is_found_at_the_newest_disagreeing_seq() {
		let anchors = [head(10, 1), head(20, 2)];
		let agree = |s: u64| Some(if s == 10 { [1; 32] } else { [2; 32] });
		assert_eq!(diverged(&anchors, agree), None);
		let fork = |s: u64| Some(if s == 10 { [1; 32] } else { [6; 32] });
		assert_eq!(diverged(&anchors, fork), Some(20));
		assert_eq!(diverged(&anchors, |_| None), None, "nothing known locally");
	}
}
