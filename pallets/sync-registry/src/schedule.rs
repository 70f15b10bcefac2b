//! Scheduling: one storage item per task, and the `on_initialize` tick that runs them.
//!
//! Every piece of deferred work — a challenge expiry, a re-challenge, a migration timeout or
//! release, a `Syncing` timeout, forgetting remembered failures — is one [`Task`] key in
//! [`Agenda`] under the block it is due at. Whoever makes a task obsolete removes it at once
//! (a proof removes its expiry, a leave removes the holder's re-challenge and timeout, a cancel
//! removes the migration's deadline), so the agenda holds exactly the live work: its size is
//! bounded by the state it refers to (challenges, holdings, migrations), never by history.
//!
//! Scheduling never fails and never moves a deadline: there is no per-block bucket to fill, so
//! no account can make another account's claim, re-challenge or migration fail by flooding.
//! Running is bounded instead: `on_initialize` runs at most [`Config::MaxScheduledPerBlock`]
//! tasks (and looks at at most as many empty blocks), oldest first from [`AgendaCursor`]. A
//! task may therefore run a few blocks after it is due when more than that many fall due at
//! once; every task checks the state it acts on (an expiry after the deadline is still an
//! expiry; a proof after the deadline is refused regardless), so running late is safe.
use crate::{Agenda, AgendaCursor, Beacon, Config, Pallet, Task, TaskOf, WeightInfo};
use codec::Encode;
use frame_support::{pallet_prelude::*, traits::Randomness};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{One, Saturating};
use sync_primitives::commitment::Hash32;

impl<T: Config> Pallet<T> {
	/// The `on_initialize` work of block `now`: run the tasks due, oldest first, up to the
	/// per-block budget. Returns its weight.
	pub(crate) fn do_on_initialize(now: BlockNumberFor<T>) -> Weight {
		// First, so that tasks of this block (re-challenge draws) see the parent's beacon.
		Self::fold_beacon(now);
		let budget = T::MaxScheduledPerBlock::get();
		let (mut ran, mut scanned) = (0u32, 0u32);
		let mut weight = T::WeightInfo::on_initialize_base();
		let mut at = AgendaCursor::<T>::get().unwrap_or(now);
		while at <= now && ran < budget && scanned < budget {
			match Agenda::<T>::iter_key_prefix(at).next() {
				Some(task) => {
					Agenda::<T>::remove(at, &task);
					weight.saturating_accrue(Self::run_task(task, now));
					ran += 1;
				},
				None => {
					at.saturating_inc();
					scanned += 1;
				},
			}
		}
		AgendaCursor::<T>::put(at);
		weight.saturating_add(T::WeightInfo::agenda_scan(scanned))
	}

	/// Folds the parent block's randomness into the beacon and prunes the entry that no open
	/// challenge can need any more (a seed block's beacon is read until `ProofWindow` blocks
	/// after it).
	pub(crate) fn fold_beacon(now: BlockNumberFor<T>) {
		let parent = now.saturating_sub(One::one());
		// The parent's VRF output: fixed before the parent's author chose its contents.
		let (r, _) = T::Randomness::random(b"sync-registry/beacon");
		let prev = Beacon::<T>::get(parent.saturating_sub(One::one())).unwrap_or_default();
		Beacon::<T>::insert(parent, sp_io::hashing::blake2_256(&(prev, r, parent).encode()));
		let keep = T::ProofWindow::get().saturating_add(2u32.into());
		if parent >= keep {
			Beacon::<T>::remove(parent.saturating_sub(keep));
		}
	}

	/// The beacon of block `b` (all-zero before block `b + 1` started; never used then,
	/// because proofs and views wait until the seed block has passed).
	pub fn beacon(b: BlockNumberFor<T>) -> Hash32 {
		Beacon::<T>::get(b).unwrap_or_default()
	}

	/// Runs one due task; returns its weight.
	fn run_task(task: TaskOf<T>, now: BlockNumberFor<T>) -> Weight {
		match task {
			Task::Expire(id) => {
				Self::expire_challenge(id);
				T::WeightInfo::expire_challenge()
			},
			Task::ReChallenge(segment, who) => {
				Self::rechallenge(segment, &who);
				T::WeightInfo::rechallenge()
			},
			Task::Migration(segment) => {
				Self::migration_deadline(segment, now);
				T::WeightInfo::migration_deadline()
			},
			Task::SyncingTimeout(segment, who) => {
				Self::syncing_timeout(segment, &who);
				T::WeightInfo::syncing_timeout()
			},
			Task::ForgetFailures(segment, who) => {
				Self::forget_failures(segment, &who, now);
				T::WeightInfo::forget_failures()
			},
		}
	}

	/// Schedules `task` at block `at` (never earlier than the next block, so a task scheduled
	/// by `on_initialize` itself cannot be lost behind the cursor).
	pub(crate) fn schedule(at: BlockNumberFor<T>, task: TaskOf<T>) -> BlockNumberFor<T> {
		let next = frame_system::Pallet::<T>::block_number().saturating_add(1u32.into());
		let at = at.max(next);
		Agenda::<T>::insert(at, task, ());
		at
	}

	/// Removes `task` scheduled at `at` (no-op if it is not there).
	pub(crate) fn unschedule(at: BlockNumberFor<T>, task: &TaskOf<T>) {
		Agenda::<T>::remove(at, task);
	}

	/// Points a record's task slot (`slot` holds the block its `task` is scheduled at) at
	/// `at`: the task scheduled before, if any, is removed; with `Some(at)` it is scheduled
	/// anew and `slot` records the block actually used.
	pub(crate) fn reschedule(
		slot: &mut Option<BlockNumberFor<T>>,
		task: TaskOf<T>,
		at: Option<BlockNumberFor<T>>,
	) {
		if let Some(old) = slot.take() {
			Self::unschedule(old, &task);
		}
		*slot = at.map(|at| Self::schedule(at, task));
	}
}
