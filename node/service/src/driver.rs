//! The thin driver: reads the chain and the store, asks the [`Planner`], executes its actions.
//!
//! Everything that decides lives in `plan`; what is here is I/O (store reads, the data plane,
//! offchain storage, logs) and the order of the two steps of a finalized block.
use crate::{
	binding::{self, Binding},
	chain::{OffchainDb, Registry, SyncAccounts, Wake},
	config::{SyncConfig, SyncRole},
	health::{Health, Level},
	metrics::DutyMetrics,
	plan::{Action, DutyConfig, Planner},
	view::{ChainView, LocalSegment, LocalState},
	SyncHandle,
};
use codec::Encode;
use futures::{Stream, StreamExt};
use sp_core::traits::{SpawnEssentialNamed, SpawnNamed};
use std::{
	collections::{BTreeMap, BTreeSet, HashMap},
	sync::Arc,
	time::Instant,
};
use sync_net::{deltas::EpochKeys, Follower, Holder, Keypair, Multiaddr, SyncNetwork};
use sync_primitives::{
	offchain::{proof_key, sent_key, Intent, INTENTS_KEY},
	ChallengeSummary, HoldingStatus, NodeRole, SegmentId,
};
use sync_store::{Head, Store};
use tokio::sync::watch;

/// Starts the service: the sync service as an essential task (if the data plane cannot start,
/// the node stops) and the object API, if configured, as an ordinary one on `tasks` (a failure
/// of it never stops the node). The object API's address is bound here, so a bad or taken port
/// fails the start with a clear error.
///
/// `accounts` are the keystore's `sync` accounts: with `--sync-register`, the data-plane key
/// signs a peer binding for each, so the off-chain worker can register as one of them.
/// `major_syncing` tells whether the chain is major-syncing: meanwhile its finalized state is
/// history, and the service does not act on it.
#[allow(clippy::too_many_arguments)]
pub fn spawn<R, O, W, A>(
	spawner: &dyn SpawnEssentialNamed,
	tasks: &dyn SpawnNamed,
	registry: R,
	offchain: O,
	wakes: W,
	accounts: A,
	major_syncing: impl Fn() -> bool + Send + 'static,
	mut config: SyncConfig,
	handle: Arc<SyncHandle>,
) -> Result<(), String>
where
	R: Registry,
	O: OffchainDb,
	W: Stream<Item = Wake<R::Hash>> + Send + Unpin + 'static,
	A: SyncAccounts,
{
	if let Some(http) = config.http.take() {
		let listener = crate::http::bind(http.addr)?;
		let h = handle.clone();
		tasks.spawn(
			"sync-object-http",
			Some("sync"),
			Box::pin(async move { crate::http::serve(listener, h, http).await }),
		);
	}
	spawner.spawn_essential(
		"sync-service",
		Some("sync"),
		Box::pin(async move {
			let chain = Chain { registry, syncing: Box::new(major_syncing) };
			if let Err(e) = run(chain, offchain, wakes, accounts, config, handle).await {
				log::error!(target: "sync", "sync service stopped: {e}");
			}
		}),
	);
	Ok(())
}

/// What the driver keeps per segment: the data plane's handles and what it last logged.
struct Tracked {
	holders: watch::Sender<Vec<Holder>>,
	/// The segment's retained committed roots (finalized): the only snapshot targets.
	anchors: watch::Sender<Vec<Head>>,
	follower: Option<Follower>,
	last_logged: Option<u64>,
	last_status: Option<(HoldingStatus, Option<u64>)>,
	/// Verified bytes of a snapshot in progress at the last progress line, and when.
	progress: Option<(i64, Instant)>,
}

impl Default for Tracked {
	fn default() -> Self {
		Tracked {
			holders: watch::channel(Vec::new()).0,
			anchors: watch::channel(Vec::new()).0,
			follower: None,
			last_logged: None,
			last_status: None,
			progress: None,
		}
	}
}

struct Driver<O> {
	net: SyncNetwork,
	handle: Arc<SyncHandle>,
	offchain: O,
	metrics: DutyMetrics,
	/// This node's challenges open at the last finalized block: id → deadline.
	open: BTreeMap<u64, u32>,
	/// Open challenges whose proof the off-chain worker has submitted (its sent marker seen).
	submitted: BTreeSet<u64>,
	/// Per owned segment: its last commit's index and the finalized block it was first seen at.
	commits: HashMap<SegmentId, (u32, u32)>,
	verifier: Arc<dyn sync_net::deltas::OpVerifier + Send + Sync>,
	tracked: HashMap<SegmentId, Tracked>,
	registered: Option<bool>,
}

/// Peer bindings of the data-plane key for the keystore's `sync` accounts, signed again only
/// when the accounts change (an operator may insert a key while the node runs).
struct Binder<A> {
	key: Keypair,
	genesis: [u8; 32],
	accounts: A,
	/// The accounts `bindings` were signed for (`None` before the first read).
	signed_for: Option<Vec<Vec<u8>>>,
	bindings: Vec<Binding>,
}

impl<A: SyncAccounts> Binder<A> {
	fn current(&mut self) -> &[Binding] {
		let accounts = self.accounts.accounts();
		if self.signed_for.as_ref() != Some(&accounts) {
			if accounts.is_empty() {
				log::warn!(
					target: "sync",
					"--sync-register: no `sync` key in the keystore, so no account to register \
					 as: insert one (`sync-node key insert --key-type sync --scheme sr25519`)"
				);
			}
			self.bindings =
				binding::bindings(&self.key, &self.genesis, &accounts).unwrap_or_else(|e| {
					log::warn!(target: "sync", "--sync-register: {e}");
					Vec::new()
				});
			self.signed_for = Some(accounts);
		}
		&self.bindings
	}
}

/// The chain as the driver reads it: the registry and whether the chain is major-syncing.
struct Chain<R> {
	registry: R,
	syncing: Box<dyn Fn() -> bool + Send>,
}

async fn run<R: Registry, O: OffchainDb, A: SyncAccounts>(
	chain: Chain<R>,
	offchain: O,
	mut wakes: impl Stream<Item = Wake<R::Hash>> + Unpin,
	accounts: A,
	config: SyncConfig,
	handle: Arc<SyncHandle>,
) -> Result<(), String> {
	let SyncConfig {
		role,
		data_dir,
		mut net,
		register,
		commit_every,
		gc_grace,
		http: _,
		local_chain,
	} = config;
	let Chain { registry, syncing } = chain;
	handle.set_node(|n| {
		n.local_chain = local_chain;
		n.sync_keys = accounts.accounts().len();
	});
	// The bindings, the ops and the announcements sign for this chain only (its genesis hash is
	// part of what is signed), and ops and announcements are checked for it.
	let genesis = registry.genesis()?;
	net.genesis = genesis;
	let mut binder = Binder {
		key: net.keypair.clone(),
		genesis,
		accounts,
		signed_for: None,
		bindings: Vec::new(),
	};
	let metrics = DutyMetrics::new(net.registry.as_ref()).unwrap_or_else(|e| {
		log::warn!(target: "sync", "duty metrics not exported: {e}");
		DutyMetrics::new(None).expect("valid metrics")
	});
	let store =
		Store::open(crate::config::store_dir(&data_dir)).map_err(|e| format!("store: {e}"))?;
	let net = SyncNetwork::start(net, store).await.map_err(|e| e.to_string())?;
	handle.set_network(net.clone());
	let addrs = net.listen_addrs().await;
	log::info!(
		target: "sync",
		"💾 Data plane ({role:?}) peer id {} listening on {}",
		net.peer_id(),
		addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
	);
	let register = register.map(|public| {
		let addrs = if public.is_empty() { routable(&addrs) } else { public };
		if addrs.is_empty() {
			// The chain refuses a node without addresses; the off-chain worker would skip it.
			log::warn!(
				target: "sync",
				"--sync-register: no routable data-plane address (listening on the unspecified \
				 address only?); pass --sync-public-addr"
			);
		}
		let role = if role == SyncRole::Primary { NodeRole::Primary } else { NodeRole::Replica };
		(role, addrs.iter().map(|a| a.to_string()).collect())
	});
	let me = net.peer_id();
	let has_register = register.is_some();
	let mut planner =
		Planner::new(DutyConfig { peer_id: me.to_bytes(), register, commit_every, gc_grace });
	// Ops are accepted only if signed for this chain by a Primary of the segment on chain.
	let verifier = {
		let h = handle.clone();
		Arc::new(EpochKeys::new(genesis, move |seg, epoch| h.epoch_of(seg, epoch)))
	};
	let mut driver = Driver {
		net,
		handle,
		offchain,
		metrics,
		open: BTreeMap::new(),
		submitted: BTreeSet::new(),
		commits: HashMap::new(),
		verifier,
		tracked: HashMap::new(),
		registered: None,
	};
	let mut health = driver.handle.health();
	// Every reason is named once at start.
	log_health(&Health::default(), &health);
	while let Some(wake) = wakes.next().await {
		// During the chain's major sync its finalized state is history: nothing is acted on.
		let major = syncing();
		driver.handle.set_node(|n| n.major_syncing = major);
		if major {
			health = log_health(&health, &driver.handle.health());
			driver.metrics.set_health(&health);
			continue;
		}
		match wake {
			Wake::Best(hash) => match registry.open_challenges(hash, &me) {
				// Not registered at this block (say, a fork without the registration): no
				// challenges to answer, and nothing kept is forgotten on its account.
				Ok(None) => {},
				Ok(Some(challenges)) => {
					let actions = planner.on_best(&challenges);
					driver.execute(&mut planner, actions).await;
				},
				Err(e) => log::debug!(target: "sync", "open challenges at {hash}: {e}"),
			},
			Wake::Finalized(hash, number) => {
				let view = match registry.view(hash, &me) {
					Ok(v) => v,
					Err(e) => {
						log::warn!(target: "sync", "reading the registry at {hash}: {e}");
						continue;
					},
				};
				driver.note_registration(view.registered);
				driver.handle.set_segments(&view);
				driver.note_duties(&view, number);
				let keys = binder.accounts.accounts();
				let account_key = view.account.as_ref().map(|a| keys.contains(a));
				driver.handle.set_node(|n| {
					n.registered = Some(view.registered);
					n.addresses = view.addresses.clone();
					n.sync_keys = keys.len();
					n.account_key = account_key;
					n.funds = view.funds;
				});
				let mut local = local_state(driver.net.store(), &view);
				driver.set_anchors(&view);
				let actions = planner.on_finalized(number, &view, &local);
				driver.execute(&mut planner, actions).await;
				match driver.net.store().stored_segments() {
					Ok(stored) => {
						let collect = planner.collect(number, &view, &stored);
						driver.execute(&mut planner, collect).await;
					},
					Err(e) => log::warn!(target: "sync", "listing the store's segments: {e}"),
				}
				driver.log_segments(&view);
				// Step 2 sees the pins just made.
				for (id, l) in local.iter_mut() {
					l.pinned = driver.net.store().pinned(*id);
				}
				// Bindings matter only for a registration still to be made.
				let bindings: &[Binding] =
					if !view.registered && has_register { binder.current() } else { &[] };
				if let Some(intents) = planner.intents(&view, &local, bindings) {
					for item in &intents.items {
						if let Intent::Commit { segment, seq, facts } = item {
							log::info!(
								target: "sync",
								"segment {segment}: committing seq {seq} root {}",
								sync_store::Cid(facts.root)
							);
						}
					}
					driver.offchain.set(INTENTS_KEY, &intents.encode());
					for kind in ["register", "commit", "claim", "attest"] {
						let n = intents.items.iter().filter(|i| i.kind() == kind).count();
						driver.metrics.intents.with_label_values(&[kind]).set(n as i64);
					}
				}
				health = log_health(&health, &driver.handle.health());
				driver.metrics.set_health(&health);
			},
		}
	}
	Ok(())
}

/// Logs what changed in the node's health: one line per reason that appeared (an error if it
/// makes the node unhealthy: a misconfiguration is named once, at start or when it happens) and
/// per reason that cleared. Returns `now`.
fn log_health(before: &Health, now: &Health) -> Health {
	let (appeared, cleared) = crate::health::changes(before, now);
	for r in appeared {
		let at = r.segment.map(|s| format!("segment {s}: ")).unwrap_or_default();
		match r.level {
			Level::Unhealthy => {
				log::error!(target: "sync", "health: {at}{} ({})", r.detail, r.code)
			},
			_ => log::warn!(target: "sync", "health: {at}{} ({})", r.detail, r.code),
		}
	}
	for r in cleared {
		let at = r.segment.map(|s| format!("segment {s}: ")).unwrap_or_default();
		log::info!(target: "sync", "health: {at}{} cleared", r.code);
	}
	if before.status != now.status {
		log::info!(target: "sync", "health: {}", now.status.as_str());
	}
	now.clone()
}

/// The listen addresses a peer can dial (not the unspecified address).
fn routable(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
	addrs
		.iter()
		.filter(|a| {
			!a.iter()
				.any(|p| matches!(p, sync_net::Protocol::Ip4(ip) if ip.is_unspecified()))
		})
		.cloned()
		.collect()
}

/// What the store holds of the view's segments (see [`LocalSegment`]).
fn local_state(store: &Store, view: &ChainView) -> LocalState {
	view.segments
		.iter()
		.map(|s| {
			let provable = if s.owner {
				Default::default()
			} else {
				s.roots.iter().map(|r| (r.seq, store.provable_root(s.id, r.seq))).collect()
			};
			let head = store.head(s.id);
			// A log running past the newest epoch's start in an older epoch (an old owner's
			// ops after the chain sealed its epoch; read only then: one op).
			let stale_tail = match (s.epochs.last(), head) {
				(Some(e), Some(h)) if h.seq >= e.first_seq => store
					.ops(s.id, e.first_seq, 1)
					.ok()
					.and_then(|o| o.first().map(|o| o.op.epoch < e.epoch))
					.unwrap_or(false),
				_ => false,
			};
			let l = LocalSegment {
				head,
				pinned: store.pinned(s.id),
				provable,
				fenced: store.fenced(s.id),
				stale_tail,
			};
			(s.id, l)
		})
		.collect()
}

impl<O: OffchainDb> Driver<O> {
	/// Hands each segment's committed roots (finalized) to the data plane, before the actions
	/// of the block start or stop followers.
	fn set_anchors(&mut self, view: &ChainView) {
		for s in &view.segments {
			let roots: Vec<Head> =
				s.roots.iter().map(|r| Head { seq: r.seq, facts: r.facts }).collect();
			self.tracked
				.entry(s.id)
				.or_default()
				.anchors
				.send_if_modified(|a| std::mem::replace(a, roots.clone()) != roots);
		}
	}

	async fn execute(&mut self, planner: &mut Planner, actions: Vec<Action>) {
		for action in actions {
			match action {
				Action::Follow(id) => {
					self.log_role(id, "following");
					self.follow(id);
				},
				Action::StopFollowing(id) => {
					if let Some(t) = self.tracked.get_mut(&id) {
						t.follower = None;
					}
				},
				Action::TakeWrites(id) => {
					self.log_role(id, "owner: serving and accepting writes");
					self.net.store().unfence(id);
					self.handle.set_writable(id, true);
				},
				Action::Fence(id) => {
					let at = self.net.store().fence(id).map_or(0, |h| h.seq);
					log::info!(target: "sync", "segment {id}: handover: writes stopped at seq {at}; sealing the epoch there");
				},
				Action::Unfence(id) => {
					self.net.store().unfence(id);
					log::info!(target: "sync", "segment {id}: handover cancelled: accepting writes again");
				},
				Action::Rewind { segment, seq, facts } => {
					// A follower's state is of the head it started from: stopped before the
					// rewind (a replay it has in flight makes the rewind `NotReached`, and the
					// planner asks again later), restarted from the rewound head.
					let follower = self.tracked.get_mut(&segment).and_then(|t| t.follower.take());
					let following = follower.is_some();
					drop(follower);
					let rewound = self.net.store().rewind(segment, seq, &facts);
					if following {
						self.follow(segment);
					}
					match rewound {
						Ok(_) => log::warn!(
							target: "sync",
							"segment {segment}: the chain sealed the previous epoch at seq {seq}; the local ops after it were dropped"
						),
						Err(e) => {
							log::warn!(target: "sync", "segment {segment}: rewinding to the sealed seq {seq}: {e}")
						},
					}
				},
				Action::RefuseWrites(id) => self.handle.set_writable(id, false),
				Action::SetHolders(id, holders) => {
					// Known peers of the server (served first) and the repair's sources with
					// their addresses, also for owned segments, which are not followed.
					self.net.set_holders(id, holders.clone());
					let t = self.tracked.entry(id).or_default();
					t.holders.send_replace(holders);
				},
				Action::Pin(id) => match self.net.store().pin_snapshot(id) {
					Ok(Some(head)) => {
						log::debug!(target: "sync", "segment {id}: pinned seq {}", head.seq)
					},
					Ok(None) => planner.pin_failed(id),
					Err(e) => {
						log::warn!(target: "sync", "segment {id}: pinning the head: {e}");
						planner.pin_failed(id);
					},
				},
				Action::Forget(id) => {
					self.net.set_holders(id, Vec::new());
					self.tracked.remove(&id);
					self.net.metrics().forget_segment(id);
					self.metrics.forget_segment(id);
				},
				Action::DropData(id) => {
					// In the background: the driver goes on with the block's duties (proofs
					// have deadlines) while a large segment is deleted.
					let store = self.net.store().clone();
					tokio::task::spawn_blocking(move || match store.drop_segment(id) {
						Ok(d) => log::info!(
							target: "sync",
							"segment {id}: no longer held; its data deleted ({} objects, {} bytes; {} shared with other segments kept)",
							d.objects, d.bytes, d.shared
						),
						Err(e) => {
							log::warn!(target: "sync", "segment {id}: deleting its data: {e}")
						},
					});
				},
				Action::Prove(ch) => self.prove(planner, ch).await,
				Action::ForgetChallenge(id) => {
					self.offchain.remove(&proof_key(id));
					self.offchain.remove(&sent_key(id));
				},
			}
		}
	}

	/// Builds the proof off the async runtime, checks it (the store verifies what it builds)
	/// and stores it for the off-chain worker.
	async fn prove(&mut self, planner: &mut Planner, ch: ChallengeSummary<u32>) {
		let Some(seed) = ch.seed else { return };
		let store = self.net.store().clone();
		let (segment, seq, facts, indexes) = (ch.segment, ch.seq, ch.facts, ch.indexes.clone());
		let started = Instant::now();
		let built =
			tokio::task::spawn_blocking(move || store.prove(segment, seq, &facts, &indexes)).await;
		match built {
			Ok(Ok(proof)) => {
				self.metrics.proofs.with_label_values(&["built"]).inc();
				self.offchain.set(&proof_key(ch.id), &proof.encode().encode());
				planner.proof_stored(ch.id, seed);
				log::info!(
					target: "sync",
					"segment {segment}: proof for challenge {} (seq {seq}, {} chunks) built in {} ms",
					ch.id,
					ch.indexes.len(),
					started.elapsed().as_millis()
				);
			},
			Ok(Err(e)) => {
				self.metrics.proofs.with_label_values(&["build_failed"]).inc();
				if planner.proof_failed(ch.id) {
					log::warn!(
						target: "sync",
						"segment {segment}: cannot prove challenge {} at seq {seq}: {e}",
						ch.id
					);
				}
			},
			Err(e) => log::warn!(target: "sync", "proof task failed: {e}"),
		}
	}

	/// The duty gauges of a finalized block: challenges open and settled since the last one,
	/// the holdings' statuses, and how long ago each owned segment's last commit landed.
	fn note_duties(&mut self, view: &ChainView, number: u32) {
		let m = &self.metrics;
		m.count_settled(&crate::metrics::settled(&self.open, &view.challenges, number));
		self.open = view.challenges.iter().map(|c| (c.id, c.deadline)).collect();
		m.set_challenges(&view.challenges, number);
		// The worker marks what it sent (offchain storage it shares with the service): each
		// proof counts once as submitted.
		self.submitted.retain(|id| self.open.contains_key(id));
		for c in &view.challenges {
			if !self.submitted.contains(&c.id) && self.offchain.get(&sent_key(c.id)).is_some() {
				self.submitted.insert(c.id);
				m.proofs.with_label_values(&["submitted"]).inc();
			}
		}
		m.set_funds(view.funds);
		m.set_holdings(view.segments.iter().filter_map(|s| s.holding.map(|(st, _)| st)));
		for s in view.segments.iter().filter(|s| s.owner) {
			let index = s.roots.last().map_or(0, |r| r.index);
			let seen = self.commits.entry(s.id).or_insert((index, number));
			if seen.0 != index {
				*seen = (index, number);
			}
			let age = i64::from(number.saturating_sub(seen.1));
			m.commit_age.with_label_values(&[&s.id.to_string()]).set(age);
		}
		self.commits.retain(|id, _| view.segment(*id).is_some_and(|s| s.owner));
		match self.net.store().disk_space() {
			Ok((avail, size)) => m.set_disk(avail, size),
			Err(e) => log::debug!(target: "sync", "store disk space: {e}"),
		}
	}

	fn note_registration(&mut self, registered: bool) {
		if self.registered == Some(registered) {
			return;
		}
		self.registered = Some(registered);
		if !registered {
			log::info!(
				target: "sync",
				"Data plane {} is not registered on chain yet: register it with \
				 `syncRegistry.registerNode` (peer id above, and the binding signature that \
				 `sync-node key sign-peer-binding` prints for the account), or run with \
				 --sync-register",
				self.net.peer_id()
			);
		}
	}

	/// Starts (or restarts) following `id` from the store's head.
	fn follow(&mut self, id: SegmentId) {
		let t = self.tracked.entry(id).or_default();
		let (holders, anchors) = (t.holders.subscribe(), t.anchors.subscribe());
		t.follower = Some(self.net.follow(id, holders, anchors, self.verifier.clone()));
	}

	fn log_role(&self, id: SegmentId, what: &str) {
		let holders = self.handle.holders_on_chain(id);
		log::info!(target: "sync", "segment {id}: {what} ({holders} holders on chain)");
	}

	/// Progress, head and on-chain status lines, each when it changed.
	fn log_segments(&mut self, view: &ChainView) {
		for s in &view.segments {
			let Some(t) = self.tracked.get_mut(&s.id) else { continue };
			log_progress(&self.net, s.id, t);
			let head = self.net.store().head(s.id);
			if head.map(|h| h.seq) != t.last_logged {
				t.last_logged = head.map(|h| h.seq);
				if let Some(h) = head {
					log::info!(
						target: "sync",
						"segment {}: seq {} root {} ({} entries, {} bytes)",
						s.id,
						h.seq,
						sync_store::Cid(h.facts.root),
						h.facts.entries,
						h.facts.bytes
					);
				}
			}
			if let Some((status, proven)) = s.holding {
				if t.last_status != Some((status, proven)) {
					t.last_status = Some((status, proven));
					log::info!(
						target: "sync",
						"segment {}: on chain {status:?}, proven seq {proven:?}",
						s.id
					);
				}
			}
		}
	}
}

/// During a snapshot sync, one line per finalized block: verified bytes of the target, rate
/// since the last line, and the time left at that rate.
fn log_progress(net: &SyncNetwork, segment: SegmentId, t: &mut Tracked) {
	let Ok(Some(transfer)) = net.store().transfer(segment) else {
		t.progress = None;
		return;
	};
	let done = net.metrics().progress.with_label_values(&[&segment.to_string()]).get();
	let total = i64::try_from(transfer.target.facts.bytes).unwrap_or(i64::MAX);
	let now = Instant::now();
	let mib = |b: i64| b as f64 / (1 << 20) as f64;
	if let Some((before, at)) = t.progress {
		let rate = done.saturating_sub(before).max(0) as f64
			/ now.duration_since(at).as_secs_f64().max(1e-3);
		let eta = if rate > 0.0 {
			format!("{:.0} s", total.saturating_sub(done).max(0) as f64 / rate)
		} else {
			"unknown".into()
		};
		log::info!(
			target: "sync",
			"segment {segment}: syncing to seq {}: {:.1} of {:.1} MiB ({:.1} MiB/s, ETA {eta})",
			transfer.target.seq,
			mib(done),
			mib(total),
			rate / (1 << 20) as f64
		);
	}
	t.progress = Some((done, now));
}
