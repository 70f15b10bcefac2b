//! The decision core: state in, actions out.
//!
//! [`Planner`] holds what the service remembers between blocks (when it last committed, which
//! proofs it stored, what it last told the chain, what it follows) and turns a [`ChainView`] plus
//! the [`LocalState`] of the store into [`Action`]s and [`Intents`]. It does no I/O: the driver
//! (`driver.rs`) reads the chain and the store, calls the planner, and executes what it returns,
//! as polkadot-sdk's sync strategies return actions that its engine executes.
//!
//! One finalized block is two steps, because a commit must name a root that stays servable:
//! 1. [`Planner::on_finalized`]: follow/stop following, take/refuse writes, holder lists, pins,
//!    proofs to build;
//! 2. after the driver has pinned, [`Planner::intents`]: what to ask of the chain (register,
//!    commit the newest pinned head, claim, attest), `None` if unchanged since last written.
//!    A registration carries the peer bindings the driver signed for the keystore's `sync`
//!    accounts (an input like the view: the planner signs nothing).
//!
//! A new best block only concerns challenges ([`Planner::on_best`]): their proof windows are
//! short, and waiting for finality would spend a good part of them.
//!
//! The chain's rules are not re-derived here: which root a holder may claim is
//! [`sync_primitives::rules::claim_is_newer`], the function the pallet's `claim_sync` uses.
use crate::{
	binding::Binding,
	view::{ChainView, LocalSegment, LocalState, SegmentView},
};
use std::collections::{BTreeMap, BTreeSet};
use sync_net::Holder;
use sync_primitives::{
	commitment::{Hash32, RootFacts},
	offchain::{Intent, Intents},
	rules, ChallengeSummary, NodeRole, SegmentId,
};

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
	/// Start following the segment from its holders (snapshot, then live deltas).
	Follow(SegmentId),
	/// Stop following the segment (its follower task ends).
	StopFollowing(SegmentId),
	/// Accept writes to the segment: this node owns it on chain.
	TakeWrites(SegmentId),
	/// Refuse writes to the segment: this node no longer owns it.
	RefuseWrites(SegmentId),
	/// Stop local writes to the owned segment at its head (the store's fence): the migration's
	/// target proved it, and this node seals its epoch there (`Intent::Seal`). Followed by a
	/// [`Action::Pin`] of that head, which the seal names.
	Fence(SegmentId),
	/// Take local writes again: the handover this node fenced for was cancelled.
	Unfence(SegmentId),
	/// Take the segment back to the chain's commit at `seq` (the newest epoch starts at
	/// `seq + 1`, but the local log runs on in an older epoch: the chain sealed that one
	/// there, and this node, its old owner, wrote on). Any role: an owner before it writes,
	/// a follower before it follows on.
	Rewind {
		/// Segment.
		segment: SegmentId,
		/// The sealed seq.
		seq: u64,
		/// The chain's root facts at `seq`.
		facts: RootFacts,
	},
	/// Hand the segment's holders (from the chain) to the data plane.
	SetHolders(SegmentId, Vec<Holder>),
	/// Pin the segment's head as a servable snapshot (what a commit names).
	Pin(SegmentId),
	/// Drop what is kept for a segment the node no longer has anything to do with.
	Forget(SegmentId),
	/// Delete the store's data of a segment the chain has not given this node for
	/// [`DutyConfig::gc_grace`] finalized blocks (objects other segments share are kept).
	DropData(SegmentId),
	/// Build and check the proof answering this challenge and store it for the off-chain
	/// worker; report the outcome with [`Planner::proof_stored`] or [`Planner::proof_failed`].
	Prove(ChallengeSummary<u32>),
	/// Drop the stored proof and the worker's sent marker of a challenge no longer open.
	ForgetChallenge(u64),
}

/// The node's options that shape its duties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DutyConfig {
	/// Binary libp2p peer id of the data plane (what the node is registered with).
	pub peer_id: Vec<u8>,
	/// Register this node if no node is registered with its peer id: role and addresses (the
	/// account to register as and its binding come with each [`Planner::intents`] call).
	pub register: Option<(NodeRole, Vec<String>)>,
	/// Blocks between root commits of an owned segment (made only when its head moved).
	pub commit_every: u32,
	/// Finalized blocks a segment the store holds must stay out of the node's view before its
	/// data is deleted (see [`Planner::collect`]).
	pub gc_grace: u32,
}

/// What the planner keeps per segment of the view.
#[derive(Clone, Debug, Default)]
struct Tracked {
	/// Whether the node owned it at the last block (`None` before the first).
	owner: Option<bool>,
	/// Whether a follower runs.
	following: bool,
	/// The holder list last handed to the data plane.
	holders: Option<Vec<Holder>>,
	/// Whether local writes are fenced for a seal ([`Action::Fence`]).
	fenced: bool,
	/// The last [`Action::Rewind`]: the epoch start it went back to and the block it was
	/// asked at (asked again for a new epoch, or [`REWIND_RETRY`] blocks later).
	rewound: Option<(u64, u32)>,
}

/// Blocks before a rewind that did not clear a stale tail is asked again: each one restarts
/// the segment's follower, whose own re-sync to a committed root is the other way out.
const REWIND_RETRY: u32 = 10;

/// What the planner keeps per owned segment for the life of the process (also while the
/// segment is out of the view: its cadence and pins do not restart when it comes back).
#[derive(Clone, Debug, Default)]
struct Commits {
	/// Whether the head was pinned since the start (pins live in memory).
	pinned_once: bool,
	/// Block at which a commit was last decided on (its pin made).
	last: Option<u32>,
	/// `last` before the commit decided on at this block, restored if its pin fails.
	before: Option<u32>,
}

/// The decision core (see the module docs).
#[derive(Debug)]
pub struct Planner {
	config: DutyConfig,
	segments: BTreeMap<SegmentId, Tracked>,
	commits: BTreeMap<SegmentId, Commits>,
	/// Challenges (id, seed) whose proof is stored. The seed is part of the key: a challenge
	/// seen on a best block that is later reorged may get another seed.
	proven: BTreeSet<(u64, Hash32)>,
	/// Challenges whose proof could not be built (logged once, retried every block).
	failed: BTreeSet<u64>,
	/// The intents last written.
	written: Option<Intents>,
	/// Segments the store holds and the view lacks: since which finalized block.
	retired: BTreeMap<SegmentId, u32>,
}

impl Planner {
	/// A planner with nothing done yet.
	pub fn new(config: DutyConfig) -> Self {
		Planner {
			config,
			segments: BTreeMap::new(),
			commits: BTreeMap::new(),
			proven: BTreeSet::new(),
			failed: BTreeSet::new(),
			written: None,
			retired: BTreeMap::new(),
		}
	}

	/// Garbage collection at finalized block `number`: `stored` are the segments the store
	/// holds data of (a head or a transfer). One the view lacks (released after a migration,
	/// left, removed) is deleted ([`Action::DropData`]) once it has been out of the view for
	/// [`DutyConfig::gc_grace`] blocks in a row — time for an operator to notice a mistake, and
	/// for a migration's old owner to keep serving its successor's stragglers; one that comes
	/// back in the meantime is kept. Nothing is collected while the node is not registered:
	/// its view is empty then, which says nothing about what it holds.
	pub fn collect(&mut self, number: u32, view: &ChainView, stored: &[SegmentId]) -> Vec<Action> {
		if !view.registered {
			return Vec::new();
		}
		self.retired.retain(|id, _| stored.contains(id) && view.segment(*id).is_none());
		let mut out = Vec::new();
		for &id in stored {
			if view.segment(id).is_some() {
				continue;
			}
			let since = *self.retired.entry(id).or_insert(number);
			if number.saturating_sub(since) >= self.config.gc_grace {
				self.retired.remove(&id);
				out.push(Action::DropData(id));
			}
		}
		out
	}

	/// Step 1 of finalized block `number`: what to follow, accept writes for, pin and prove.
	pub fn on_finalized(
		&mut self,
		number: u32,
		view: &ChainView,
		local: &LocalState,
	) -> Vec<Action> {
		let mut out = Vec::new();
		let gone: Vec<SegmentId> = self
			.segments
			.keys()
			.filter(|id| view.segment(**id).is_none())
			.copied()
			.collect();
		for id in gone {
			if let Some(t) = self.segments.remove(&id) {
				if t.following {
					out.push(Action::StopFollowing(id));
				}
				if t.owner == Some(true) {
					out.push(Action::RefuseWrites(id));
				}
				out.push(Action::Forget(id));
			}
		}
		let commit_every = self.config.commit_every;
		for s in &view.segments {
			let t = self.segments.entry(s.id).or_default();
			if t.holders.as_ref() != Some(&s.holders) {
				t.holders = Some(s.holders.clone());
				out.push(Action::SetHolders(s.id, s.holders.clone()));
			}
			let l = local.get(&s.id);
			// A log running on in a sealed epoch (an old owner that missed its seal) goes back
			// to the sealed commit first, whatever the node's role now.
			let stale = l.is_some_and(|l| l.stale_tail);
			if stale {
				let first = s.epochs.last().map_or(1, |e| e.first_seq);
				let due = t.rewound.is_none_or(|(at, block)| {
					at != first || number >= block.saturating_add(REWIND_RETRY)
				});
				if due {
					t.rewound = Some((first, number));
					out.extend(rewind(s));
				}
			}
			// An owner writes; everyone else follows (a migration target until it owns the
			// segment, an old owner after it).
			if s.owner {
				let head = l.and_then(|l| l.head);
				// Ownership moved at the sealed seq, past what this node has fetched: it keeps
				// following (the old owner serves until its release, the Replicas too) and
				// takes writes once its log reaches the seq before its epoch.
				if behind_of(s, head.map_or(0, |h| h.seq)) {
					if !t.following {
						t.following = true;
						out.push(Action::Follow(s.id));
					}
					continue;
				}
				if stale {
					// Rewinding (above): no writes, pins or commits of ops past the seal.
					continue;
				}
				if t.following {
					t.following = false;
					out.push(Action::StopFollowing(s.id));
				}
				if t.owner != Some(true) {
					// (The driver lifts a fence left from an earlier epoch of this node.)
					t.fenced = false;
					out.push(Action::TakeWrites(s.id));
				}
				let c = self.commits.entry(s.id).or_default();
				// The fenced handover: once the target's proof is in, stop writes and pin the
				// last op, which the seal names (see `intents`); no more commits before it.
				if s.sealing() {
					if !t.fenced {
						t.fenced = true;
						c.pinned_once = true;
						out.push(Action::Fence(s.id));
						out.push(Action::Pin(s.id));
					}
					t.owner = Some(true);
					continue;
				}
				if t.fenced {
					t.fenced = false;
					out.push(Action::Unfence(s.id));
				}
				if commit_due(c, number, commit_every, head.map(|h| h.seq), latest_seq(s)) {
					c.before = c.last.replace(number);
					c.pinned_once = true;
					out.push(Action::Pin(s.id));
				} else if !c.pinned_once {
					// After a start the pins are gone: pin the head at once, so Replicas can
					// snapshot the committed root again.
					c.pinned_once = true;
					out.push(Action::Pin(s.id));
				}
			} else {
				if t.owner == Some(true) {
					out.push(Action::RefuseWrites(s.id));
				}
				if !t.following {
					t.following = true;
					out.push(Action::Follow(s.id));
				}
			}
			t.owner = Some(s.owner);
		}
		out.extend(self.prove_new(&view.challenges));
		out
	}

	/// Step 2 of a finalized block, once the driver has executed step 1's pins (`local` read
	/// after them): everything the node wants of the chain now, or `None` if that is what was
	/// written last time.
	///
	/// `bindings` are the data-plane key's peer bindings for the keystore's `sync` accounts
	/// (only read while the node is unregistered and `register` is set). Without any, there is
	/// no account the off-chain worker could register as, so no registration is asked for.
	pub fn intents(
		&mut self,
		view: &ChainView,
		local: &LocalState,
		bindings: &[Binding],
	) -> Option<Intents> {
		let mut items = Vec::new();
		if !view.registered && !bindings.is_empty() {
			if let Some((role, addrs)) = &self.config.register {
				let multiaddrs = addrs.iter().map(|a| a.as_bytes().to_vec()).collect();
				items.push(Intent::Register {
					role: *role,
					multiaddrs,
					bindings: bindings.to_vec(),
				});
			}
		}
		let empty = LocalSegment::default();
		for s in &view.segments {
			let l = local.get(&s.id).unwrap_or(&empty);
			if s.sealing() {
				// Once: a sealed epoch waits for the target's confirmation.
				if s.handover.as_ref().is_some_and(|h| h.sealed.is_none()) {
					items.extend(seal(s, l));
				}
			} else if let Some(seq) = s.seal_to_confirm() {
				items.extend(confirm_seal(s, l, seq));
			} else if s.owner {
				// Not of a log that does not continue its epoch exactly.
				if !l.stale_tail && !behind(s, l) {
					items.extend(commit(s, l));
				}
			} else {
				items.extend(claim(s, l));
				if s.primary {
					items.extend(attest(s, l));
				}
			}
		}
		let intents = Intents { peer_id: self.config.peer_id.clone(), items };
		if self.written.as_ref() == Some(&intents) {
			return None;
		}
		self.written = Some(intents.clone());
		Some(intents)
	}

	/// A new best block with the node's open `challenges` at it (the newest view): what was
	/// kept for challenges no longer open is dropped, and new seeds are proven.
	///
	/// A finalized block's list lags behind the best one and would drop proofs of challenges
	/// issued since, so only this step forgets.
	pub fn on_best(&mut self, challenges: &[ChallengeSummary<u32>]) -> Vec<Action> {
		let is_open = |id: u64| challenges.iter().any(|c| c.id == id);
		let closed: BTreeSet<u64> = self
			.proven
			.iter()
			.map(|(id, _)| *id)
			.chain(self.failed.iter().copied())
			.filter(|id| !is_open(*id))
			.collect();
		self.proven.retain(|(id, _)| !closed.contains(id));
		self.failed.retain(|id| !closed.contains(id));
		let mut out: Vec<Action> = closed.into_iter().map(Action::ForgetChallenge).collect();
		out.extend(self.prove_new(challenges));
		out
	}

	/// The proof of challenge `id` under `seed` is stored: it is not built again.
	pub fn proof_stored(&mut self, id: u64, seed: Hash32) {
		self.failed.remove(&id);
		self.proven.insert((id, seed));
	}

	/// The proof of challenge `id` could not be built (it is tried again on the next block).
	/// Returns whether this is the first failure, i.e. whether to log it.
	pub fn proof_failed(&mut self, id: u64) -> bool {
		self.failed.insert(id)
	}

	/// The pin of `segment` asked for by [`Action::Pin`] failed: a commit decided on with it
	/// is not counted, so the next block tries again.
	pub fn pin_failed(&mut self, segment: SegmentId) {
		if let Some(c) = self.commits.get_mut(&segment) {
			c.last = c.before;
		}
	}

	/// Whether this node owned `segment` at the last finalized block.
	pub fn owns(&self, segment: SegmentId) -> bool {
		self.segments.get(&segment).is_some_and(|t| t.owner == Some(true))
	}

	fn prove_new(&self, challenges: &[ChallengeSummary<u32>]) -> Vec<Action> {
		challenges
			.iter()
			.filter(|ch| ch.seed.is_some_and(|seed| !self.proven.contains(&(ch.id, seed))))
			.map(|ch| Action::Prove(ch.clone()))
			.collect()
	}
}

/// Whether an owner's copy ends before its epoch begins (the seq before the newest epoch's
/// first): it must follow up to there before it writes or commits.
fn behind(s: &SegmentView, l: &LocalSegment) -> bool {
	behind_of(s, l.head.map_or(0, |h| h.seq))
}

fn behind_of(s: &SegmentView, head_seq: u64) -> bool {
	head_seq.saturating_add(1) < s.epochs.last().map_or(1, |e| e.first_seq)
}

/// Back to the root the chain sealed the previous epoch at (the newest epoch's first seq less
/// one), if the chain keeps it.
fn rewind(s: &SegmentView) -> Option<Action> {
	let first = s.epochs.last().map_or(1, |e| e.first_seq);
	let Some(r) = s.roots.iter().find(|r| r.seq.saturating_add(1) == first) else {
		log::warn!(
			target: "sync",
			"segment {}: the local log runs past seq {} in a sealed epoch, and the chain keeps no root there to go back to",
			s.id,
			first.saturating_sub(1)
		);
		return None;
	};
	Some(Action::Rewind { segment: s.id, seq: r.seq, facts: r.facts })
}

fn latest_seq(s: &SegmentView) -> Option<u64> {
	s.roots.last().map(|r| r.seq)
}

/// An owner commits its head every `commit_every` blocks, if the head moved past the chain's
/// latest root.
fn commit_due(
	c: &Commits,
	number: u32,
	commit_every: u32,
	head: Option<u64>,
	committed: Option<u64>,
) -> bool {
	let moved = head.is_some_and(|h| rules::commit_is_newer(h, committed));
	moved && c.last.is_none_or(|b| number >= b.saturating_add(commit_every))
}

/// The commit to ask for: the newest pinned head past the chain's latest root (pinned when the
/// commit was decided on, and asked for again until the chain has it).
fn commit(s: &SegmentView, l: &LocalSegment) -> Option<Intent> {
	let committed = latest_seq(s);
	let pin = l.pinned.iter().rev().find(|p| rules::commit_is_newer(p.seq, committed))?;
	Some(Intent::Commit { segment: s.id, seq: pin.seq, facts: pin.facts })
}

/// The seal to ask for while handing the segment over: the head the writes were fenced at,
/// once it is pinned (so the root the chain records is servable).
fn seal(s: &SegmentView, l: &LocalSegment) -> Option<Intent> {
	let head = l.fenced.flatten()?;
	l.pinned.contains(&head).then_some(Intent::Seal {
		segment: s.id,
		seq: head.seq,
		facts: head.facts,
	})
}

/// A migration's target confirms the old owner's seal at `seq` once its store has the
/// committed root there; until then it follows (and the chain aborts the migration if it
/// never gets there, so a target never owns a segment it cannot serve).
fn confirm_seal(s: &SegmentView, l: &LocalSegment, seq: u64) -> Option<Intent> {
	let committed = s.roots.iter().find(|r| r.seq == seq)?;
	let root = l.provable_root(seq)?;
	if root != committed.facts.root {
		log::warn!(
			target: "sync",
			"segment {}: local root at the sealed seq {seq} differs from the committed one: not confirming",
			s.id
		);
		return None;
	}
	Some(Intent::ConfirmSeal { segment: s.id, seq, root })
}

/// A holder claims the newest retained root it can prove that the chain lets it claim.
fn claim(s: &SegmentView, l: &LocalSegment) -> Option<Intent> {
	let (_, proven) = s.holding?;
	for r in s.roots.iter().rev() {
		if !rules::claim_is_newer(r.seq, proven, s.migrating_here) {
			return None;
		}
		match l.provable_root(r.seq) {
			Some(root) if root == r.facts.root => {
				return Some(Intent::Claim { segment: s.id, seq: r.seq })
			},
			Some(_) => {
				log::warn!(
					target: "sync",
					"segment {}: local root at seq {} differs from the committed one",
					s.id,
					r.seq
				);
				return None;
			},
			None => continue,
		}
	}
	None
}

/// A co-Primary attests the root its store has at the latest committed seq, once it has one:
/// the committed root is its parity vote; a different one is a divergence the chain records
/// (once: `can_attest` refuses a repeat, so the off-chain worker does not resend it).
fn attest(s: &SegmentView, l: &LocalSegment) -> Option<Intent> {
	let latest = s.roots.last()?;
	let root = l.provable_root(latest.seq)?;
	Some(Intent::Attest { segment: s.id, seq: latest.seq, root })
}

#[cfg(test)]
mod tests;
