//! The service's duty metrics (`sync_duty_*`, `sync_health*`), next to the data plane's
//! `sync_net_*` in the node's Prometheus registry: what an operator alerts on (see
//! `deploy/prometheus/alerts.yml`). The driver sets them once per finalized block; which
//! challenges were settled, and how, is a pure function ([`settled`]).
use crate::health::{Health, Level};
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use sync_primitives::{ChallengeSummary, HoldingStatus, SegmentId};

/// How an open challenge of this node left the chain's open list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
	/// Gone by its deadline: its proof was accepted.
	Accepted,
	/// Gone after its deadline: not proven in time (the chain penalises the holding).
	Expired,
}

impl Settled {
	fn label(self) -> &'static str {
		match self {
			Settled::Accepted => "accepted",
			Settled::Expired => "expired",
		}
	}
}

/// The challenges open at the previous finalized block (`id → deadline`) that are no longer
/// open at block `number`, and how each was settled.
pub fn settled(
	before: &BTreeMap<u64, u32>,
	open: &[ChallengeSummary<u32>],
	number: u32,
) -> Vec<(u64, Settled)> {
	before
		.iter()
		.filter(|(id, _)| !open.iter().any(|c| c.id == **id))
		.map(|(id, deadline)| {
			(*id, if number <= *deadline { Settled::Accepted } else { Settled::Expired })
		})
		.collect()
}

/// The service's metrics.
#[derive(Clone)]
pub struct DutyMetrics {
	/// Intents handed to the off-chain worker at the last finalized block, by kind.
	pub intents: IntGaugeVec,
	/// Proofs by outcome: `built` (stored for the off-chain worker), `build_failed` (the store
	/// could not prove), `submitted` (the worker sent it to the pool), and, as the chain
	/// settles them, `accepted` / `expired`.
	pub proofs: IntCounterVec,
	/// Challenges of this node open on chain.
	pub challenges_open: IntGauge,
	/// Blocks left before the nearest open challenge's deadline (absent without one).
	pub proof_slack: IntGauge,
	/// This node's holdings by status on chain.
	pub holdings: IntGaugeVec,
	/// Per owned segment: finalized blocks since this node saw its last commit land.
	pub commit_age: IntGaugeVec,
	/// The health verdict: 0 healthy, 1 degraded, 2 unhealthy.
	pub health: IntGauge,
	/// 1 for each health reason present now, by code.
	pub health_reasons: IntGaugeVec,
	/// Bytes available on the store's file system, and its size.
	pub disk: IntGaugeVec,
	/// The registered account's spendable balance and the fee of the costliest duty, in the
	/// chain's smallest unit (floats: balances overflow an `i64`).
	pub funds: GaugeVec,
}

impl DutyMetrics {
	/// Creates the metrics, registered in `registry` if one is given.
	pub fn new(registry: Option<&Registry>) -> prometheus::Result<DutyMetrics> {
		let gauge_vec = |n: &str, h: &str, l: &[&str]| IntGaugeVec::new(Opts::new(n, h), l);
		let m = DutyMetrics {
			intents: gauge_vec(
				"sync_duty_intents",
				"Intents handed to the off-chain worker at the last finalized block",
				&["kind"],
			)?,
			proofs: IntCounterVec::new(
				Opts::new(
					"sync_duty_proofs_total",
					"Proofs of Proof-of-Sync challenges by outcome",
				),
				&["outcome"],
			)?,
			challenges_open: IntGauge::new(
				"sync_duty_challenges_open",
				"Challenges of this node open on chain",
			)?,
			proof_slack: IntGauge::new(
				"sync_duty_proof_slack_blocks",
				"Blocks left before the nearest open challenge's deadline",
			)?,
			holdings: gauge_vec(
				"sync_duty_holdings",
				"This node's holdings by status on chain",
				&["status"],
			)?,
			commit_age: gauge_vec(
				"sync_duty_commit_age_blocks",
				"Finalized blocks since the owned segment's last commit landed",
				&["segment"],
			)?,
			health: IntGauge::new("sync_health_status", "0 healthy, 1 degraded, 2 unhealthy")?,
			health_reasons: gauge_vec(
				"sync_health_reason",
				"1 for each health reason present now",
				&["code"],
			)?,
			disk: gauge_vec(
				"sync_store_disk_bytes",
				"The store's file system: bytes available and its size",
				&["kind"],
			)?,
			funds: GaugeVec::new(
				Opts::new(
					"sync_duty_account_balance",
					"The registered account: spendable balance and the costliest duty's fee",
				),
				&["kind"],
			)?,
		};
		if let Some(r) = registry {
			r.register(Box::new(m.intents.clone()))?;
			r.register(Box::new(m.proofs.clone()))?;
			r.register(Box::new(m.challenges_open.clone()))?;
			r.register(Box::new(m.proof_slack.clone()))?;
			r.register(Box::new(m.holdings.clone()))?;
			r.register(Box::new(m.commit_age.clone()))?;
			r.register(Box::new(m.health.clone()))?;
			r.register(Box::new(m.health_reasons.clone()))?;
			r.register(Box::new(m.disk.clone()))?;
			r.register(Box::new(m.funds.clone()))?;
		}
		// Every outcome is exported from the start (an alert on a rate needs the series).
		for outcome in ["built", "build_failed", "submitted", "accepted", "expired"] {
			m.proofs.with_label_values(&[outcome]);
		}
		Ok(m)
	}

	/// The verdict, as gauges: the status, and one series per reason present.
	pub fn set_health(&self, h: &Health) {
		self.health.set(match h.status {
			Level::Healthy => 0,
			Level::Degraded => 1,
			Level::Unhealthy => 2,
		});
		// Every code has a series, 0 or 1 (an alert on one needs it to exist).
		for code in crate::health::CODES {
			let present = h.reasons.iter().any(|r| r.code == code);
			self.health_reasons.with_label_values(&[code]).set(i64::from(present));
		}
	}

	/// The open challenges at finalized block `number`.
	pub fn set_challenges(&self, open: &[ChallengeSummary<u32>], number: u32) {
		self.challenges_open.set(open.len() as i64);
		let slack = open.iter().map(|c| i64::from(c.deadline) - i64::from(number)).min();
		self.proof_slack.set(slack.unwrap_or(0));
	}

	/// The holdings' statuses at a finalized block.
	pub fn set_holdings(&self, statuses: impl Iterator<Item = HoldingStatus>) {
		self.holdings.reset();
		for s in ["Syncing", "Active", "Lagging"] {
			self.holdings.with_label_values(&[s]);
		}
		for s in statuses {
			self.holdings.with_label_values(&[&format!("{s:?}")]).inc();
		}
	}

	/// The store's file system (`sync_store::Store::disk_space`).
	pub fn set_disk(&self, avail: u64, size: u64) {
		self.disk.with_label_values(&["available"]).set(avail as i64);
		self.disk.with_label_values(&["size"]).set(size as i64);
	}

	/// What the registered account can spend (series absent while not known).
	pub fn set_funds(&self, funds: Option<crate::view::Funds>) {
		match funds {
			Some(f) => {
				self.funds.with_label_values(&["spendable"]).set(f.spendable as f64);
				self.funds.with_label_values(&["duty_fee"]).set(f.duty_fee as f64);
			},
			None => self.funds.reset(),
		}
	}

	/// Counts settled challenges.
	pub fn count_settled(&self, settled: &[(u64, Settled)]) {
		for (_, s) in settled {
			self.proofs.with_label_values(&[s.label()]).inc();
		}
	}

	/// Removes the segment's series (the node no longer holds it).
	pub fn forget_segment(&self, segment: SegmentId) {
		let _ = self.commit_age.remove_label_values(&[&segment.to_string()]);
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use sync_primitives::commitment::RootFacts;

	fn challenge(id: u64, deadline: u32) -> ChallengeSummary<u32> {
		ChallengeSummary {
			id,
			segment: 1,
			seq: 1,
			facts: RootFacts { root: [0; 32], leaves: 0, entries: 0, bytes: 0 },
			seed: None,
			indexes: vec![],
			deadline,
			rechallenge: false,
		}
	}

	#[test]
	fn challenges_gone_by_their_deadline_were_accepted_after_it_expired() {
		let before: BTreeMap<u64, u32> = [(1, 10), (2, 10), (3, 20)].into();
		let open = [challenge(3, 20)];
		assert_eq!(
			settled(&before, &open, 10),
			vec![(1, Settled::Accepted), (2, Settled::Accepted)]
		);
		assert_eq!(settled(&before, &open, 11), vec![(1, Settled::Expired), (2, Settled::Expired)]);
		assert!(settled(&before, &[challenge(1, 10), challenge(2, 10), challenge(3, 20)], 30)
			.is_empty());
	}

	#[test]
	fn gauges_follow_the_verdict_and_the_chain() {
		let registry = Registry::new();
		let m = DutyMetrics::new(Some(&registry)).unwrap();
		let mut inputs = crate::health::Inputs { running: true, ..Default::default() };
		m.set_health(&crate::health::assess(&inputs));
		assert_eq!(m.health.get(), 2, "no sync key");
		assert_eq!(m.health_reasons.with_label_values(&["no_sync_key"]).get(), 1);
		inputs.sync_keys = 1;
		inputs.registered = Some(false);
		m.set_health(&crate::health::assess(&inputs));
		assert_eq!(m.health.get(), 1);
		let present: Vec<String> = registry
			.gather()
			.iter()
			.filter(|f| f.get_name() == "sync_health_reason")
			.flat_map(|f| f.get_metric().to_vec())
			.filter(|x| x.get_gauge().get_value() == 1.0)
			.map(|x| x.get_label()[0].get_value().to_string())
			.collect();
		assert_eq!(present, vec!["not_registered"], "a cleared reason is 0");
		assert_eq!(m.health_reasons.with_label_values(&["no_sync_key"]).get(), 0);
		m.set_challenges(&[challenge(1, 30), challenge(2, 25)], 20);
		assert_eq!((m.challenges_open.get(), m.proof_slack.get()), (2, 5));
		m.set_holdings(
			[HoldingStatus::Active, HoldingStatus::Active, HoldingStatus::Lagging].into_iter(),
		);
		assert_eq!(m.holdings.with_label_values(&["Active"]).get(), 2);
		assert_eq!(m.holdings.with_label_values(&["Syncing"]).get(), 0);
	}
}
