//! Invariants: the configuration checks of `integrity_test` and the state checks of
//! `try_state` (also run after every step of the unit tests' random call sequences).
use crate::Pallet;
use frame_support::traits::Get;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::Zero;

impl<T: crate::Config> Pallet<T> {
	/// Checks the runtime's constants (run by `integrity_test`): panics on a misconfiguration.
	pub(crate) fn do_integrity_test() {
		assert!(!T::NodeDeposit::get().is_zero(), "NodeDeposit must be non-zero");
		assert!(T::ChallengeDelay::get() >= 1u32.into(), "ChallengeDelay must be ≥ 1");
		assert!(!T::ProofWindow::get().is_zero(), "ProofWindow must be non-zero");
		assert!(
			T::LeaveDelay::get() > T::ChallengeDelay::get() + T::ProofWindow::get(),
			"LeaveDelay must exceed a challenge window"
		);
		assert!(
			T::ChallengeLeaves::get() >= 1
				&& T::ChallengeLeaves::get() <= sync_primitives::commitment::MAX_CHALLENGE_LEAVES,
			"ChallengeLeaves out of range"
		);
		assert!(T::MaxPrimaries::get() >= 1 && T::RootRetention::get() >= 1);
		assert!(T::MaxScheduledPerBlock::get() >= 2, "MaxScheduledPerBlock must be ≥ 2");
		// Re-checks draw at least once per period and at most once per block.
		assert!(
			T::ReChallengeTicks::get() >= 1
				&& BlockNumberFor::<T>::from(T::ReChallengeTicks::get())
					<= T::ReChallengePeriod::get(),
			"ReChallengeTicks must be in 1..=ReChallengePeriod"
		);
		// A holder must be able to prove a root before it is pruned out of the window.
		assert!(T::MaxLag::get() < T::RootRetention::get(), "MaxLag must be < RootRetention");
		assert!(T::MinDeposit::get() <= T::NodeDeposit::get(), "MinDeposit must be ≤ NodeDeposit");
		assert!(T::MaxSeqStep::get() >= 1, "MaxSeqStep must be ≥ 1");
		// Every segment keeps at least its current epoch.
		assert!(T::MaxOwnerEpochs::get() > 0, "MaxOwnerEpochs must be non-zero");
		assert!(!T::OfferTimeout::get().is_zero(), "OfferTimeout must be non-zero");
		assert!(!T::SealTimeout::get().is_zero(), "SealTimeout must be non-zero");
		assert!(!T::FailureMemory::get().is_zero(), "FailureMemory must be non-zero");
		// A migration target is a Syncing holder until it proves: it must not time out first,
		// and a claim must fit in the timeout.
		assert!(
			T::SyncingTimeout::get() >= T::MigrationTimeout::get()
				&& T::SyncingTimeout::get() > T::ChallengeDelay::get() + T::ProofWindow::get(),
			"SyncingTimeout must cover MigrationTimeout and a challenge"
		);
	}

	/// Invariants of the registry, checked by `try_state` and after every test step:
	/// - `PeerIds` is exactly the inverse of the nodes' peer ids; node counter is exact;
	/// - each node's recorded deposit is on hold for it;
	/// - every segment's owner is a registered Primary, is in `primaries` and is no holder;
	/// - every holder listed by a segment has a holding record and vice versa, and every
	///   Primary other than the owner is a holder or the retained old provider;
	/// - each `Active`/`Lagging` holding has a proven root that was committed for the
	///   segment, and an `Active` one is within `MaxLag` commits of the latest;
	/// - `NodeSegments` lists exactly the segments a node owns, co-owns or holds;
	/// - every open challenge is indexed once and belongs to a current holder; roots are
	///   strictly increasing and within the window;
	/// - the agenda holds exactly the live work: every challenge's expiry, every holding's
	///   re-challenge and `Syncing` timeout, every migration's deadline and every remembered
	///   failure's end are scheduled, and every task refers to something that exists and
	///   points back at that block;
	/// - every `Active`/`Lagging` holding has a re-challenge scheduled or a challenge open; a
	///   `Syncing` one without an open challenge has its timeout running, and only then;
	/// - parity votes and divergences come from current Primaries;
	/// - a migration's phases are in order (accepted, proven, completed), a pending one is of
	///   the current owner, a completed one is not, and a proven target has a proven holding;
	/// - every segment has ownership epochs numbered consecutively with non-decreasing
	///   `first_seq`, the last one naming the current owner and its registered peer id; no
	///   epochs of unknown segments;
	/// - each node's cached status equals the status derived from its holdings.
	#[cfg(any(feature = "try-runtime", feature = "std", test))]
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use crate::{
			Agenda, Challenges, Divergences, FailureRecords, HoldReason, HoldingStatus, Holdings,
			Migrations, NodeSegments, Nodes, OpenChallenge, OwnerEpochs, ParityVotes, PeerIds,
			Roots, Segments, Task,
		};
		use frame_support::{ensure, traits::fungible::InspectHold};
		use sp_runtime::traits::Saturating;
		use sync_primitives::NodeRole;
		use sync_primitives::NodeStatus;
		let mut count = 0u32;
		for (who, info) in Nodes::<T>::iter() {
			count += 1;
			ensure!(PeerIds::<T>::get(&info.peer_id).as_ref() == Some(&who), "peer id not indexed");
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::NodeDeposit.into(), &who) >= info.deposit,
				"node deposit not on hold"
			);
			for s in NodeSegments::<T>::get(&who) {
				let seg = Segments::<T>::get(s).ok_or("NodeSegments names unknown segment")?;
				ensure!(
					seg.owner == who
						|| seg.primaries.contains(&who)
						|| Holdings::<T>::contains_key(s, &who),
					"NodeSegments entry without a role"
				);
			}
		}
		ensure!(count == Nodes::<T>::count(), "Nodes counter out of sync");
		ensure!(PeerIds::<T>::iter().count() as u32 == count, "dangling PeerIds entry");
		for (s, seg) in Segments::<T>::iter() {
			let owner = Nodes::<T>::get(&seg.owner).ok_or("owner not registered")?;
			ensure!(owner.role == NodeRole::Primary, "owner is not a Primary");
			ensure!(seg.primaries.contains(&seg.owner), "owner not among primaries");
			ensure!(!Holdings::<T>::contains_key(s, &seg.owner), "owner is a holder");
			ensure!(NodeSegments::<T>::get(&seg.owner).contains(&s), "owner not indexed");
			let roots = Roots::<T>::get(s);
			ensure!(
				roots.windows(2).all(|w| w[0].seq < w[1].seq && w[0].index < w[1].index),
				"roots not increasing"
			);
			// (Empty after `force_reset_roots`, when commits keep their count.)
			ensure!(
				roots.last().is_none_or(|r| r.index == seg.commits),
				"commit counter out of sync"
			);
			if let Some((_, _, votes)) = ParityVotes::<T>::get(s) {
				ensure!(votes.iter().all(|v| seg.primaries.contains(v)), "vote of a non-Primary");
			}
			for (d, _) in Divergences::<T>::iter_prefix(s) {
				ensure!(seg.primaries.contains(&d), "divergence of a non-Primary");
			}
			let epochs = OwnerEpochs::<T>::get(s);
			let last = epochs.last().ok_or("segment without ownership epoch")?;
			ensure!(
				epochs.windows(2).all(|w| w[0].epoch.checked_add(1) == Some(w[1].epoch)),
				"epochs not consecutive"
			);
			ensure!(
				epochs.windows(2).all(|w| w[0].first_seq <= w[1].first_seq),
				"epoch first seqs decrease"
			);
			ensure!(last.owner == seg.owner, "last epoch is not the owner's");
			ensure!(last.peer_id == owner.peer_id, "last epoch has a stale peer id");
			let migration = Self::migration(s);
			if let Some(m) = migration.as_ref() {
				ensure!(
					m.accepted || (!m.completed && !m.target_added && m.proven.is_none()),
					"unaccepted migration acted on"
				);
			}
			let mut offers = 0u32;
			for (a, _) in crate::PrimaryOffers::<T>::iter_prefix(s) {
				ensure!(!seg.primaries.contains(&a), "seat offered to a Primary");
				offers = offers.saturating_add(1);
			}
			ensure!(offers <= T::MaxPrimaries::get(), "too many offers");
			for p in seg.primaries.iter() {
				let retained = migration.as_ref().is_some_and(|m| m.completed && &m.from == p);
				ensure!(
					p == &seg.owner || Holdings::<T>::contains_key(s, p) || retained,
					"co-Primary without holding"
				);
				ensure!(NodeSegments::<T>::get(p).contains(&s), "primary not indexed");
			}
			for h in seg.holders.iter() {
				let hd = Holdings::<T>::get(s, h).ok_or("listed holder without holding")?;
				ensure!(NodeSegments::<T>::get(h).contains(&s), "holder not indexed");
				match hd.status {
					HoldingStatus::Syncing => {},
					st => {
						let p = hd.proven.ok_or("Active/Lagging holding without proof")?;
						ensure!(
							p.index >= 1 && p.index <= seg.commits,
							"proven root never committed"
						);
						if st == HoldingStatus::Active {
							ensure!(
								p.index.saturating_add(T::MaxLag::get()) >= seg.commits,
								"Active holder is lagging"
							);
						}
						if let Some(r) = roots.iter().find(|r| r.index == p.index) {
							ensure!(
								r.facts == p.facts && r.seq == p.seq,
								"proven root differs from commit"
							);
						}
					},
				}
			}
		}
		for (s, h, hd) in Holdings::<T>::iter() {
			let seg = Segments::<T>::get(s).ok_or("holding of unknown segment")?;
			ensure!(seg.holders.contains(&h), "holding not listed by segment");
			let open = OpenChallenge::<T>::contains_key(&h, s);
			match hd.next_check {
				Some(at) => ensure!(
					Agenda::<T>::contains_key(at, Task::ReChallenge(s, h.clone())),
					"re-challenge not scheduled"
				),
				None => ensure!(
					hd.status == HoldingStatus::Syncing
						|| open || Nodes::<T>::get(&h).is_some_and(|n| n.leave_at.is_some()),
					"Active holder without re-challenge or open challenge"
				),
			}
			let syncing_idle = hd.status == HoldingStatus::Syncing && !open;
			match hd.syncing_until {
				Some(at) => {
					ensure!(syncing_idle, "Syncing timeout on a busy or proven holding");
					ensure!(
						Agenda::<T>::contains_key(at, Task::SyncingTimeout(s, h.clone())),
						"Syncing timeout not scheduled"
					);
				},
				None => ensure!(!syncing_idle, "idle Syncing holding without timeout"),
			}
		}
		for (s, m) in Migrations::<T>::iter() {
			ensure!(
				Agenda::<T>::contains_key(m.until, Task::Migration(s)),
				"migration unscheduled"
			);
			// The phases follow each other (accepted before proven: see the epochs' checks),
			// proven before sealed before completed (the target's confirmation), a sealed epoch
			// has no commit past its seal, and a proven target has a proven holding.
			ensure!(!m.completed || m.proven.is_some(), "migration completed without a proof");
			ensure!(m.sealed.is_none() || m.proven.is_some(), "migration sealed without a proof");
			ensure!(!m.completed || m.sealed.is_some(), "migration completed without a seal");
			if let (Some(seq), false) = (m.sealed, m.completed) {
				ensure!(
					Roots::<T>::get(s).last().is_none_or(|r| r.seq <= seq),
					"sealed migration with a commit past its seal"
				);
			}
			let owner = Segments::<T>::get(s).map(|seg| seg.owner);
			if m.completed {
				ensure!(owner.as_ref() != Some(&m.from), "completed migration left the old owner");
			} else {
				ensure!(owner.as_ref() == Some(&m.from), "pending migration of another owner");
				if m.proven.is_some() {
					ensure!(
						Holdings::<T>::get(s, &m.to).is_some_and(|h| h.proven.is_some()),
						"proven migration target without a proven holding"
					);
				}
			}
		}
		for (s, who, r) in FailureRecords::<T>::iter() {
			let at = r.until.saturating_add(1u32.into());
			ensure!(
				Agenda::<T>::contains_key(at, Task::ForgetFailures(s, who)),
				"failure record never forgotten"
			);
		}
		let cursor = crate::AgendaCursor::<T>::get();
		let next = frame_system::Pallet::<T>::block_number().saturating_add(1u32.into());
		ensure!(cursor.is_none_or(|c| c <= next), "agenda cursor ahead of the chain");
		for (at, task, ()) in Agenda::<T>::iter() {
			ensure!(cursor.is_none_or(|c| at >= c), "task behind the agenda cursor");
			let live = match &task {
				Task::Expire(id) => Challenges::<T>::get(id)
					.is_some_and(|c| c.deadline.saturating_add(1u32.into()) == at),
				Task::ReChallenge(s, who) => {
					Holdings::<T>::get(s, who).is_some_and(|h| h.next_check == Some(at))
				},
				Task::SyncingTimeout(s, who) => {
					Holdings::<T>::get(s, who).is_some_and(|h| h.syncing_until == Some(at))
				},
				Task::Migration(s) => Migrations::<T>::get(s).is_some_and(|m| m.until == at),
				Task::ForgetFailures(s, who) => FailureRecords::<T>::get(s, who)
					.is_some_and(|r| r.until.saturating_add(1u32.into()) == at),
			};
			ensure!(live, "scheduled task refers to nothing");
		}
		for (who, info) in Nodes::<T>::iter() {
			// The O(1) counters against a recount of the node's holdings …
			let (mut syncing, mut lagging) = (0u32, 0u32);
			for s in NodeSegments::<T>::get(&who) {
				match Holdings::<T>::get(s, &who).map(|h| h.status) {
					Some(HoldingStatus::Syncing) => syncing += 1,
					Some(HoldingStatus::Lagging) => lagging += 1,
					_ => {},
				}
			}
			ensure!(
				(info.syncing, info.lagging) == (syncing, lagging),
				"holding counters out of sync"
			);
			// … and the cached status against the one they give.
			if info.status != NodeStatus::Leaving {
				ensure!(
					info.status == Self::derive_status(&who, &info),
					"cached node status is stale"
				);
			}
		}
		for (id, ch) in Challenges::<T>::iter() {
			ensure!(
				OpenChallenge::<T>::get(&ch.who, ch.segment) == Some(id),
				"challenge not indexed"
			);
			ensure!(Holdings::<T>::contains_key(ch.segment, &ch.who), "challenge of non-holder");
			let at = ch.deadline.saturating_add(1u32.into());
			ensure!(
				Agenda::<T>::contains_key(at, Task::Expire(id)),
				"challenge expiry not scheduled"
			);
		}
		for (who, s, id) in OpenChallenge::<T>::iter() {
			let ch = Challenges::<T>::get(id).ok_or("open challenge index dangling")?;
			ensure!(ch.who == who && ch.segment == s, "open challenge index wrong");
		}
		for s in OwnerEpochs::<T>::iter_keys() {
			ensure!(Segments::<T>::contains_key(s), "epochs of unknown segment");
		}
		Ok(())
	}
}
