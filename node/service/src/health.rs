//! Sync health: whether this node's data is synced and proven, and if not, why — as a pure
//! function ([`assess`]) of what the node knows, so the `sync_health` RPC, `GET /health` on
//! the object API and the driver's log lines all say the same thing.
//!
//! | code | level | when |
//! |---|---|---|
//! | `service_down` | unhealthy | the data plane has not started (or stopped) |
//! | `chain_major_syncing` | degraded | the chain is major-syncing: its finalized state is history, so the service waits before acting on it |
//! | `waiting_for_chain` | degraded | no finalized block read yet |
//! | `not_registered` | degraded | no node is registered on chain with this data plane's peer id |
//! | `no_sync_key` | unhealthy | no `sync` key in the keystore: the off-chain worker can sign no duty (claims, proofs, commits) |
//! | `no_account_key` | unhealthy | the keystore has `sync` keys, but not the one of the account the node is registered to: its duties cannot be signed |
//! | `low_balance` | degraded | the registered account can pay for fewer than [`LOW_BALANCE_DUTIES`] duty transactions (proofs, claims, commits): fund it (never unhealthy: a restart cannot fix it) |
//! | `unreachable_addresses` | unhealthy | every address registered on chain is loopback or unspecified (allowed with `--dev` or on a local chain spec): no peer can dial this node |
//! | `no_usable_peers` | degraded | a followed segment has other holders on chain, but no peer is usable (all cooling down or banned) |
//! | `segment_lagging` | unhealthy | the chain marks this node's holding `Lagging` (it missed its proof window) |
//! | `segment_syncing` | degraded | the holding is `Syncing` on chain, or a snapshot is in progress |
//! | `segment_behind` | degraded | the local copy is behind the newest committed root by at least [`BEHIND_COMMITS`] commits |
//!
//! The status is the worst level of its reasons (`healthy` with none).
use std::collections::BTreeMap;
use sync_net::Multiaddr;
use sync_primitives::{HoldingStatus, SegmentId};

/// Every reason code [`assess`] gives (the module table's), so each can be exported as a
/// series from the start (`sync_health_reason{code}` 0 or 1).
pub const CODES: [&str; 12] = [
	"service_down",
	"chain_major_syncing",
	"waiting_for_chain",
	"not_registered",
	"no_sync_key",
	"no_account_key",
	"low_balance",
	"unreachable_addresses",
	"no_usable_peers",
	"segment_lagging",
	"segment_syncing",
	"segment_behind",
];

/// Duties (of the costliest kind, a proof) the registered account must be able to pay for
/// before its balance counts as low: about a day of re-challenges and commits.
pub const LOW_BALANCE_DUTIES: u128 = 100;

/// Commits behind the chain's newest at which a followed segment counts as behind.
pub const BEHIND_COMMITS: u64 = 2;

/// How healthy the node is (ordered: the status is the worst of its reasons).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
	/// Synced and proven.
	#[default]
	Healthy,
	/// Working, but not (yet) where it should be: say so, do not page.
	Degraded,
	/// Cannot do its job until an operator acts (or the chain demotes it).
	Unhealthy,
}

impl Level {
	/// The level as the API writes it.
	pub fn as_str(self) -> &'static str {
		match self {
			Level::Healthy => "healthy",
			Level::Degraded => "degraded",
			Level::Unhealthy => "unhealthy",
		}
	}
}

/// One reason the node is not healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
	/// How bad it is.
	pub level: Level,
	/// Machine-readable code (see the module table).
	pub code: &'static str,
	/// The segment it concerns, if one.
	pub segment: Option<SegmentId>,
	/// What an operator reads.
	pub detail: String,
}

/// What the node knows of one of its segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentInput {
	/// This node owns (writes) it: it is the reference, never behind.
	pub owner: bool,
	/// Holders on chain other than this node.
	pub other_holders: usize,
	/// This node's holding status on chain, if it holds the segment.
	pub chain_status: Option<HoldingStatus>,
	/// Seq of the local head.
	pub local_seq: Option<u64>,
	/// Seqs of the retained committed roots, oldest first.
	pub committed: Vec<u64>,
	/// A snapshot sync of it is in progress.
	pub snapshot: bool,
}

impl SegmentInput {
	/// Committed roots the local head has not reached.
	pub fn commits_behind(&self) -> u64 {
		if self.owner {
			return 0;
		}
		self.committed
			.iter()
			.filter(|s| self.local_seq.is_none_or(|at| **s > at))
			.count() as u64
	}

	/// Seqs between the local head and the newest committed root.
	pub fn seqs_behind(&self) -> u64 {
		if self.owner {
			return 0;
		}
		let newest = self.committed.last().copied().unwrap_or(0);
		newest.saturating_sub(self.local_seq.unwrap_or(0))
	}
}

/// Everything [`assess`] looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
	/// The data plane runs.
	pub running: bool,
	/// `--dev` or a local chain: loopback addresses are fine.
	pub local_chain: bool,
	/// The chain is major-syncing.
	pub major_syncing: bool,
	/// Whether a node is registered with this peer id (`None`: no finalized block read yet).
	pub registered: Option<bool>,
	/// `sync` keys in the keystore.
	pub sync_keys: usize,
	/// Whether the keystore holds the key of the account the node is registered to (`None`:
	/// not registered, or not known).
	pub account_key: Option<bool>,
	/// The data-plane addresses registered on chain.
	pub addresses: Vec<Multiaddr>,
	/// What the registered account can spend on duties (`None`: not known).
	pub funds: Option<crate::view::Funds>,
	/// Peers the peer manager lets this node ask now.
	pub usable_peers: usize,
	/// The node's segments.
	pub segments: BTreeMap<SegmentId, SegmentInput>,
}

/// The verdict: status, reasons and where each segment stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
	/// The worst level among `reasons` (`Healthy` without any).
	pub status: Level,
	/// Why it is not healthy, worst first.
	pub reasons: Vec<Reason>,
	/// Per segment: the holding's status on chain and how far behind the chain the local copy
	/// is, in commits and in seqs.
	pub segments: Vec<(SegmentId, Option<HoldingStatus>, u64, u64)>,
}

impl Health {
	/// The verdict as the RPC and the HTTP endpoints answer it.
	pub fn to_json(&self) -> serde_json::Value {
		use serde_json::json;
		json!({
			"status": self.status.as_str(),
			"reasons": self.reasons.iter().map(|r| json!({
				"level": r.level.as_str(),
				"code": r.code,
				"segment": r.segment,
				"detail": r.detail,
			})).collect::<Vec<_>>(),
			"segments": self.segments.iter().map(|(id, st, commits, seqs)| json!({
				"segment": id,
				"chainStatus": st.map(|s| format!("{s:?}")),
				"commitsBehind": commits,
				"seqsBehind": seqs,
			})).collect::<Vec<_>>(),
		})
	}
}

/// What changed between two verdicts: the reasons that appeared and those that cleared (a
/// reason is its code and segment; its detail may change without it being new).
pub fn changes<'a>(before: &'a Health, now: &'a Health) -> (Vec<&'a Reason>, Vec<&'a Reason>) {
	let key = |r: &Reason| (r.code, r.segment);
	let has = |h: &Health, r: &Reason| h.reasons.iter().any(|o| key(o) == key(r));
	let appeared = now.reasons.iter().filter(|r| !has(before, r)).collect();
	let cleared = before.reasons.iter().filter(|r| !has(now, r)).collect();
	(appeared, cleared)
}

/// Whether no peer can dial `addr`: loopback or unspecified.
fn local_only(addr: &Multiaddr) -> bool {
	use sync_net::Protocol;
	addr.iter().any(|p| match p {
		Protocol::Ip4(ip) => ip.is_loopback() || ip.is_unspecified(),
		Protocol::Ip6(ip) => ip.is_loopback() || ip.is_unspecified(),
		Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => h == "localhost",
		_ => false,
	})
}

/// The node's health (the rules of the module table, in one place).
pub fn assess(i: &Inputs) -> Health {
	let mut reasons = Vec::new();
	let mut add = |level, code, segment, detail: String| {
		reasons.push(Reason { level, code, segment, detail })
	};
	if !i.running {
		add(Level::Unhealthy, "service_down", None, "the data plane is not running".into());
	}
	if i.major_syncing {
		add(
			Level::Degraded,
			"chain_major_syncing",
			None,
			"the chain is major-syncing; the service waits for it before acting on its state"
				.into(),
		);
	}
	if i.sync_keys == 0 {
		add(
			Level::Unhealthy,
			"no_sync_key",
			None,
			"no `sync` key in the keystore: no duty can be signed (insert one with `sync-node \
			 key insert --key-type sync --scheme sr25519`)"
				.into(),
		);
	}
	match i.registered {
		None => {
			add(Level::Degraded, "waiting_for_chain", None, "no finalized block read yet".into())
		},
		Some(false) => add(
			Level::Degraded,
			"not_registered",
			None,
			"no node is registered on chain with this data plane's peer id".into(),
		),
		Some(true) => {
			if i.sync_keys > 0 && i.account_key == Some(false) {
				add(
					Level::Unhealthy,
					"no_account_key",
					None,
					"the keystore has no `sync` key for the account this node is registered to: \
					 its duties cannot be signed (insert that account's key)"
						.into(),
				);
			}
			if let Some(f) = i.funds.filter(|f| f.duties() < LOW_BALANCE_DUTIES) {
				// Degraded, never unhealthy: a restart (what a failing liveness probe does)
				// cannot fund an account, and a fee spike would fail a whole fleet at once.
				add(
					Level::Degraded,
					"low_balance",
					None,
					format!(
						"the registered account can spend {} (units of the chain's smallest \
						 denomination), enough for {} duties at {} each; keep at least {}: fund it",
						f.spendable,
						f.duties(),
						f.duty_fee,
						f.duty_fee.saturating_mul(LOW_BALANCE_DUTIES)
					),
				);
			}
			if !i.local_chain && i.addresses.iter().all(local_only) {
				let listed: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
				add(
					Level::Unhealthy,
					"unreachable_addresses",
					None,
					format!(
						"no registered address is reachable from other hosts ({}); register a \
						 public one (--sync-public-addr)",
						if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
					),
				);
			}
		},
	}
	let follows_others = i.segments.values().any(|s| !s.owner && s.other_holders > 0);
	if i.running && follows_others && i.usable_peers == 0 {
		add(
			Level::Degraded,
			"no_usable_peers",
			None,
			"segments have holders on chain, but no peer is usable now (cooling down or banned)"
				.into(),
		);
	}
	for (id, s) in &i.segments {
		let id = Some(*id);
		match s.chain_status {
			Some(HoldingStatus::Lagging) => add(
				Level::Unhealthy,
				"segment_lagging",
				id,
				"the chain marks this holding Lagging: it missed its proof window".into(),
			),
			Some(HoldingStatus::Syncing) => {
				add(Level::Degraded, "segment_syncing", id, "syncing (on chain)".into())
			},
			_ if s.snapshot => {
				add(Level::Degraded, "segment_syncing", id, "snapshot in progress".into())
			},
			_ => {},
		}
		let behind = s.commits_behind();
		if behind >= BEHIND_COMMITS {
			add(
				Level::Degraded,
				"segment_behind",
				id,
				format!("{behind} commits ({} seqs) behind the chain", s.seqs_behind()),
			);
		}
	}
	reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
	let status = reasons.first().map_or(Level::Healthy, |r| r.level);
	let segments = i
		.segments
		.iter()
		.map(|(id, s)| (*id, s.chain_status, s.commits_behind(), s.seqs_behind()))
		.collect();
	Health { status, reasons, segments }
}

#[cfg(test)]
mod tests {
	use super::*;

	fn good() -> Inputs {
		Inputs {
			running: true,
			registered: Some(true),
			sync_keys: 1,
			addresses: vec!["/ip4/203.0.113.7/tcp/30444".parse().unwrap()],
			usable_peers: 3,
			..Default::default()
		}
	}

	fn codes(h: &Health) -> Vec<&'static str> {
		h.reasons.iter().map(|r| r.code).collect()
	}

	#[test]
	fn a_registered_node_with_a_key_and_a_public_address_is_healthy() {
		let h = assess(&good());
		assert_eq!((h.status, codes(&h)), (Level::Healthy, vec![]));
	}

	#[test]
	fn misconfigurations_are_unhealthy_each_with_its_reason() {
		let mut i = good();
		i.sync_keys = 0;
		i.addresses = vec!["/ip4/127.0.0.1/tcp/30444".parse().unwrap()];
		let h = assess(&i);
		assert_eq!(h.status, Level::Unhealthy);
		assert_eq!(codes(&h), vec!["no_sync_key", "unreachable_addresses"]);
		// Keys, but not the registered account's.
		let mut other = good();
		other.account_key = Some(false);
		assert_eq!(codes(&assess(&other)), vec!["no_account_key"]);
		other.account_key = Some(true);
		assert!(codes(&assess(&other)).is_empty());
		// Loopback is what `--dev` registers.
		i.local_chain = true;
		assert_eq!(codes(&assess(&i)), vec!["no_sync_key"]);
		// Not registered (yet): degraded, and addresses are not judged.
		let mut i = good();
		i.registered = Some(false);
		i.addresses.clear();
		assert_eq!(
			(assess(&i).status, codes(&assess(&i))),
			(Level::Degraded, vec!["not_registered"])
		);
		i.registered = None;
		assert_eq!(codes(&assess(&i)), vec!["waiting_for_chain"]);
		i.running = false;
		assert_eq!(assess(&i).status, Level::Unhealthy);
	}

	#[test]
	fn holdings_report_their_chain_status_and_lag() {
		let mut i = good();
		let follower = |status, local_seq, committed: &[u64]| SegmentInput {
			owner: false,
			other_holders: 1,
			chain_status: status,
			local_seq,
			committed: committed.to_vec(),
			snapshot: false,
		};
		i.segments.insert(1, follower(Some(HoldingStatus::Active), Some(40), &[20, 40]));
		assert_eq!(assess(&i).status, Level::Healthy, "at the newest commit");
		i.segments
			.insert(2, follower(Some(HoldingStatus::Lagging), Some(20), &[20, 40, 60]));
		i.segments.insert(3, follower(Some(HoldingStatus::Syncing), None, &[10]));
		let h = assess(&i);
		assert_eq!(h.status, Level::Unhealthy);
		assert_eq!(codes(&h), vec!["segment_lagging", "segment_behind", "segment_syncing"]);
		let behind = h.reasons.iter().find(|r| r.code == "segment_behind").unwrap();
		assert_eq!(behind.segment, Some(2));
		assert_eq!(behind.detail, "2 commits (40 seqs) behind the chain");
		// An owner is the reference: never behind.
		let owner = SegmentInput { owner: true, ..follower(None, Some(5), &[20, 40, 60]) };
		assert_eq!((owner.commits_behind(), owner.seqs_behind()), (0, 0));
	}

	/// The defect: an unfunded account failed silently (its duties' transactions were refused
	/// by the pool). Below 100 duties' worth the node is degraded, even with nothing left (a
	/// liveness probe must not restart a fleet over a fee spike); the detail says how much is
	/// needed.
	#[test]
	fn low_balance_is_reported_before_duties_fail() {
		use crate::view::Funds;
		let with =
			|spendable| Inputs { funds: Some(Funds { spendable, duty_fee: 1_000 }), ..good() };
		let h = assess(&with(100_000));
		assert_eq!((h.status, codes(&h)), (Level::Healthy, vec![]));
		let h = assess(&with(99_999));
		assert_eq!((h.status, codes(&h)), (Level::Degraded, vec!["low_balance"]));
		assert!(h.reasons[0].detail.contains("enough for 99 duties"), "{}", h.reasons[0].detail);
		assert!(h.reasons[0].detail.contains("keep at least 100000"), "{}", h.reasons[0].detail);
		let h = assess(&with(999));
		assert_eq!((h.status, codes(&h)), (Level::Degraded, vec!["low_balance"]));
		// Free transactions (a zero fee) never make a balance low.
		let free = Inputs { funds: Some(Funds { spendable: 0, duty_fee: 0 }), ..good() };
		assert_eq!(assess(&free).status, Level::Healthy);
	}

	#[test]
	fn codes_lists_every_code_assess_gives() {
		let mut seen = std::collections::BTreeSet::new();
		let seg = |status, local_seq, snapshot| SegmentInput {
			owner: false,
			other_holders: 1,
			chain_status: status,
			local_seq,
			committed: vec![10, 20, 30],
			snapshot,
		};
		let all_wrong = |registered| Inputs {
			running: false,
			local_chain: false,
			major_syncing: true,
			registered,
			sync_keys: 0,
			account_key: Some(false),
			addresses: vec![],
			funds: Some(crate::view::Funds { spendable: 5, duty_fee: 10 }),
			usable_peers: 0,
			segments: [
				(1, seg(Some(HoldingStatus::Lagging), Some(5), false)),
				(2, seg(Some(HoldingStatus::Syncing), None, false)),
				(3, seg(None, Some(30), true)),
			]
			.into(),
		};
		for registered in [None, Some(false), Some(true)] {
			let mut i = all_wrong(registered);
			seen.extend(assess(&i).reasons.iter().map(|r| r.code));
			i.running = true;
			seen.extend(assess(&i).reasons.iter().map(|r| r.code));
			i.sync_keys = 1;
			seen.extend(assess(&i).reasons.iter().map(|r| r.code));
		}
		assert_eq!(seen, CODES.into_iter().collect(), "CODES is exactly what assess gives");
	}

	#[test]
	fn changes_name_what_appeared_and_what_cleared() {
		let mut i = good();
		i.registered = None;
		let start = assess(&i);
		i.registered = Some(true);
		i.sync_keys = 0;
		let now = assess(&i);
		let (appeared, cleared) = changes(&start, &now);
		assert_eq!(appeared.iter().map(|r| r.code).collect::<Vec<_>>(), vec!["no_sync_key"]);
		assert_eq!(cleared.iter().map(|r| r.code).collect::<Vec<_>>(), vec!["waiting_for_chain"]);
		let again = assess(&i);
		let (appeared, cleared) = changes(&now, &again);
		assert!(appeared.is_empty() && cleared.is_empty(), "the same verdict: nothing to log");
	}

	#[test]
	fn followers_without_usable_peers_and_a_syncing_chain_are_degraded() {
		let mut i = good();
		i.usable_peers = 0;
		i.segments.insert(1, SegmentInput { other_holders: 2, ..Default::default() });
		i.major_syncing = true;
		let h = assess(&i);
		assert_eq!(h.status, Level::Degraded);
		assert_eq!(codes(&h), vec!["chain_major_syncing", "no_usable_peers"]);
		// An owner alone on chain needs no peer.
		i.segments.insert(1, SegmentInput { owner: true, ..Default::default() });
		i.major_syncing = false;
		assert_eq!(assess(&i).status, Level::Healthy);
	}
}
