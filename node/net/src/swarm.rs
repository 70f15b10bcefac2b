//! The libp2p swarm: TCP + Noise + Yamux, one behaviour per concern (connection limits,
//! transfer streams, identify, Kademlia provider records, ping, a block list for banned peers),
//! driven by one task that the rest of the crate talks to through `Command`s.
use crate::{config::NetConfig, metrics::Metrics, transfer::server::KnownPeers};
use futures::StreamExt;
use libp2p::{
	allow_block_list, connection_limits,
	core::{transport::PortUse, ConnectedPoint, Endpoint},
	gossipsub, identify, kad,
	multiaddr::Protocol,
	noise, ping,
	swarm::{
		behaviour::ConnectionEstablished, dial_opts::DialOpts, dummy, ConnectionClosed,
		ConnectionDenied, ConnectionId, DialError, FromSwarm, ListenError, ListenFailure,
		NetworkBehaviour, SwarmEvent, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
	},
	tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::{
	collections::HashMap,
	net::IpAddr,
	sync::Arc,
	task::{Context, Poll},
	time::Duration,
};
use sync_primitives::SegmentId;
use tokio::sync::{mpsc, oneshot, watch};

/// Kademlia protocol of the sync network (separate from the chain's DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/sync-registry/kad/1");

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
	// The limits first: a connection they refuse reaches no other behaviour.
	limits: connection_limits::Behaviour,
	ip_limits: IpLimits,
	stream: libp2p_stream::Behaviour,
	identify: identify::Behaviour,
	kad: kad::Behaviour<kad::store::MemoryStore>,
	ping: ping::Behaviour,
	gossip: gossipsub::Behaviour,
	blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

/// Requests to the swarm task.
pub(crate) enum Command {
	AddAddresses(PeerId, Vec<Multiaddr>),
	Dial(PeerId, Vec<Multiaddr>, oneshot::Sender<Result<(), String>>),
	Ban(PeerId),
	/// Lifts a ban (the oldest, dropped from the bounded ban list).
	Unban(PeerId),
	Provide(SegmentId),
	FindProviders(SegmentId, oneshot::Sender<Vec<PeerId>>),
	Subscribe(gossipsub::IdentTopic),
	Unsubscribe(gossipsub::IdentTopic),
	Publish(gossipsub::IdentTopic, Vec<u8>),
	Validated(gossipsub::MessageId, PeerId, gossipsub::MessageAcceptance),
}

/// A gossip message waiting for validation: (propagation source, id, message).
pub(crate) type GossipIn = (PeerId, gossipsub::MessageId, gossipsub::Message);

/// DHT key under which holders of a segment announce themselves.
pub fn segment_key(segment: SegmentId) -> kad::RecordKey {
	kad::RecordKey::new(&format!("/sync-registry/segment/{segment}"))
}

/// Yamux as the data plane uses it: `Some(window)` fixes the per-stream receive window (and
/// buffer) so bulk responses are not stalled on window updates; `None` keeps auto-tuning.
pub fn yamux_config(window: Option<u32>) -> yamux::Config {
	let mut c = yamux::Config::default();
	if let Some(w) = window {
		// The only way to size the window in libp2p-yamux 0.46 (it selects yamux 0.12).
		#[allow(deprecated)]
		c.set_receive_window_size(w).set_max_buffer_size(w as usize);
	}
	c
}

/// Gossipsub scoring of a segment's announcement topic. Announcements are sparse (one per
/// write batch of one Primary), so mesh-delivery quotas (P3, P3b) would punish honest peers
/// and are off; time in mesh (P1) and first deliveries (P2) earn a little; each invalid message
/// delivered (P4, squared) costs 20: one takes a relayer below the gossip threshold, two below
/// the graylist (its messages ignored until the count decays, halving every second).
pub(crate) fn topic_score() -> gossipsub::TopicScoreParams {
	gossipsub::TopicScoreParams {
		topic_weight: 1.0,
		time_in_mesh_weight: 0.01,
		time_in_mesh_quantum: Duration::from_secs(1),
		time_in_mesh_cap: 300.0,
		first_message_deliveries_weight: 1.0,
		first_message_deliveries_decay: 0.5,
		first_message_deliveries_cap: 10.0,
		mesh_message_deliveries_weight: 0.0,
		mesh_failure_penalty_weight: 0.0,
		invalid_message_deliveries_weight: -20.0,
		invalid_message_deliveries_decay: 0.5,
		..Default::default()
	}
}

/// Score thresholds (see [`topic_score`]): gossip −10, publish −50, graylist −80.
fn score_thresholds() -> gossipsub::PeerScoreThresholds {
	gossipsub::PeerScoreThresholds {
		gossip_threshold: -10.0,
		publish_threshold: -50.0,
		graylist_threshold: -80.0,
		..Default::default()
	}
}

/// Why [`IpLimits`] refused a connection.
#[derive(Debug, thiserror::Error)]
#[error("inbound connection refused by the {0} limit")]
struct Refused(&'static str);

/// Inbound connection limits `connection_limits` cannot express: by remote IP address
/// (handshakes in progress from it, and those plus the established connections of unknown peers
/// from it) and for unknown peers in total. Known peers' connections (see [`KnownPeers`]) are
/// never refused or counted here once they have said who they are, so a flood of throwaway
/// identities cannot keep the chain's holders out.
pub(crate) struct IpLimits {
	per_ip: usize,
	unknown_max: usize,
	known: Arc<KnownPeers>,
	metrics: Metrics,
	/// Inbound connections in their handshake, by remote IP.
	pending: HashMap<ConnectionId, IpAddr>,
	/// Established inbound connections of unknown peers, by remote IP (if it has one).
	unknown: HashMap<ConnectionId, Option<IpAddr>>,
}

/// The IP address of a (TCP or QUIC) multiaddress.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
	addr.iter().find_map(|p| match p {
		Protocol::Ip4(a) => Some(IpAddr::V4(a)),
		Protocol::Ip6(a) => Some(IpAddr::V6(a)),
		_ => None,
	})
}

impl IpLimits {
	fn new(limits: &crate::ServeLimits, known: Arc<KnownPeers>, metrics: Metrics) -> Self {
		IpLimits {
			per_ip: limits.max_connections_per_ip as usize,
			unknown_max: limits.max_unknown_connections as usize,
			known,
			metrics,
			pending: HashMap::new(),
			unknown: HashMap::new(),
		}
	}

	/// Handshakes in progress from `ip`.
	fn pending_from(&self, ip: IpAddr) -> usize {
		self.pending.values().filter(|a| **a == ip).count()
	}

	/// Handshakes and unknown peers' connections from `ip`.
	fn count_for_ip(&self, ip: IpAddr) -> usize {
		self.pending_from(ip) + self.unknown.values().filter(|a| **a == Some(ip)).count()
	}

	fn deny(&self, reason: &'static str) -> ConnectionDenied {
		self.metrics.connections_denied.with_label_values(&[reason]).inc();
		ConnectionDenied::new(Refused(reason))
	}
}

impl NetworkBehaviour for IpLimits {
	type ConnectionHandler = dummy::ConnectionHandler;
	type ToSwarm = std::convert::Infallible;

	fn handle_pending_inbound_connection(
		&mut self,
		connection_id: ConnectionId,
		_local_addr: &Multiaddr,
		remote_addr: &Multiaddr,
	) -> Result<(), ConnectionDenied> {
		// The peer is not known yet: only handshakes count here, so a known peer behind an
		// address full of unknown ones still gets to say who it is.
		if let Some(ip) = ip_of(remote_addr) {
			if self.pending_from(ip) >= self.per_ip {
				return Err(self.deny("per_ip"));
			}
			self.pending.insert(connection_id, ip);
		}
		Ok(())
	}

	fn handle_established_inbound_connection(
		&mut self,
		connection_id: ConnectionId,
		peer: PeerId,
		_local_addr: &Multiaddr,
		remote_addr: &Multiaddr,
	) -> Result<THandler<Self>, ConnectionDenied> {
		let ip = self.pending.remove(&connection_id).or_else(|| ip_of(remote_addr));
		if !self.known.contains(&peer) {
			if ip.is_some_and(|ip| self.count_for_ip(ip) >= self.per_ip) {
				return Err(self.deny("per_ip"));
			}
			if self.unknown.len() >= self.unknown_max {
				return Err(self.deny("unknown"));
			}
		}
		Ok(dummy::ConnectionHandler)
	}

	fn handle_established_outbound_connection(
		&mut self,
		_connection_id: ConnectionId,
		_peer: PeerId,
		_addr: &Multiaddr,
		_role_override: Endpoint,
		_port_use: PortUse,
	) -> Result<THandler<Self>, ConnectionDenied> {
		Ok(dummy::ConnectionHandler)
	}

	fn on_swarm_event(&mut self, event: FromSwarm) {
		match event {
			FromSwarm::ConnectionEstablished(ConnectionEstablished {
				peer_id,
				connection_id,
				endpoint: ConnectedPoint::Listener { send_back_addr, .. },
				..
			}) if !self.known.contains(&peer_id) => {
				// Counted only once established: another behaviour may still have refused it.
				self.unknown.insert(connection_id, ip_of(send_back_addr));
			},
			FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
				self.unknown.remove(&connection_id);
			},
			FromSwarm::ListenFailure(ListenFailure { connection_id, error, .. }) => {
				self.pending.remove(&connection_id);
				if let ListenError::Denied { cause } = error {
					if cause.downcast_ref::<connection_limits::Exceeded>().is_some() {
						self.metrics.connections_denied.with_label_values(&["limit"]).inc();
					}
				}
			},
			_ => {},
		}
	}

	fn on_connection_handler_event(
		&mut self,
		_peer_id: PeerId,
		_connection_id: ConnectionId,
		event: THandlerOutEvent<Self>,
	) {
		match event {}
	}

	fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
		Poll::Pending
	}
}

/// Builds the swarm; `known` is shared with the server (who is a known peer), `metrics` counts
/// refused connections.
pub(crate) fn build(
	config: &NetConfig,
	known: Arc<KnownPeers>,
	metrics: Metrics,
) -> Result<(Swarm<Behaviour>, libp2p_stream::Control), String> {
	let window = config.yamux_window;
	let max_streams = config.yamux_max_streams;
	let l = &config.limits;
	let limits = connection_limits::ConnectionLimits::default()
		.with_max_established(Some(l.max_connections))
		.with_max_established_per_peer(Some(l.max_connections_per_peer))
		.with_max_pending_incoming(Some(l.max_pending_incoming));
	let ip_limits = IpLimits::new(l, known, metrics);
	let gossip_cfg = gossipsub::ConfigBuilder::default()
		.heartbeat_interval(config.gossip_heartbeat)
		.validation_mode(gossipsub::ValidationMode::Strict)
		.validate_messages()
		.message_id_fn(crate::live::gossip::message_id)
		.max_transmit_size(sync_proto::MAX_ANNOUNCEMENT_BYTES * 4)
		.build()
		.map_err(|e| e.to_string())?;
	let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
		.with_tokio()
		.with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, move || {
			let mut c = yamux_config(window);
			c.set_max_num_streams(max_streams);
			c
		})
		.map_err(|e| e.to_string())?
		.with_behaviour(|key| {
			let peer = key.public().to_peer_id();
			let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
			kad_cfg.set_query_timeout(Duration::from_secs(10));
			let mut kad =
				kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_cfg);
			kad.set_mode(Some(kad::Mode::Server));
			let mut gossip = gossipsub::Behaviour::new(
				gossipsub::MessageAuthenticity::Signed(key.clone()),
				gossip_cfg,
			)?;
			gossip.with_peer_score(gossipsub::PeerScoreParams::default(), score_thresholds())?;
			Ok(Behaviour {
				limits: connection_limits::Behaviour::new(limits),
				ip_limits,
				stream: libp2p_stream::Behaviour::new(),
				identify: identify::Behaviour::new(identify::Config::new(
					"/sync-registry/id/1".into(),
					key.public(),
				)),
				kad,
				ping: ping::Behaviour::new(ping::Config::new()),
				gossip,
				blocked: Default::default(),
			})
		})
		.map_err(|e| e.to_string())?
		.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
		.build();
	for addr in &config.listen {
		swarm.listen_on(addr.clone()).map_err(|e| e.to_string())?;
	}
	for (peer, addr) in &config.bootnodes {
		swarm.behaviour_mut().kad.add_address(peer, addr.clone());
		let _ = swarm.dial(DialOpts::peer_id(*peer).addresses(vec![addr.clone()]).build());
	}
	let control = swarm.behaviour().stream.new_control();
	Ok((swarm, control))
}

/// Runs the swarm until the command channel closes.
pub(crate) async fn run(
	mut swarm: Swarm<Behaviour>,
	mut commands: mpsc::UnboundedReceiver<Command>,
	listen: watch::Sender<Vec<Multiaddr>>,
	gossip_in: mpsc::Sender<GossipIn>,
) {
	let mut providers: HashMap<kad::QueryId, (Vec<PeerId>, oneshot::Sender<Vec<PeerId>>)> =
		HashMap::new();
	let mut dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>> = HashMap::new();
	loop {
		tokio::select! {
			cmd = commands.recv() => {
				let Some(cmd) = cmd else { return };
				match cmd {
					Command::AddAddresses(peer, addrs) => {
						for a in addrs {
							swarm.behaviour_mut().kad.add_address(&peer, a);
						}
					},
					Command::Dial(peer, addrs, reply) => {
						if swarm.is_connected(&peer) {
							let _ = reply.send(Ok(()));
							continue;
						}
						for a in &addrs {
							swarm.behaviour_mut().kad.add_address(&peer, a.clone());
						}
						match swarm.dial(DialOpts::peer_id(peer).addresses(addrs).build()) {
							// Already being dialled: wait for that attempt.
							Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => dials.entry(peer).or_default().push(reply),
							Err(e) => { let _ = reply.send(Err(e.to_string())); },
						}
					},
					Command::Ban(peer) => {
						swarm.behaviour_mut().blocked.block_peer(peer);
						swarm.behaviour_mut().kad.remove_peer(&peer);
						swarm.behaviour_mut().gossip.blacklist_peer(&peer);
					},
					Command::Unban(peer) => {
						swarm.behaviour_mut().blocked.unblock_peer(peer);
						swarm.behaviour_mut().gossip.remove_blacklisted_peer(&peer);
					},
					Command::Subscribe(topic) => {
						let gossip = &mut swarm.behaviour_mut().gossip;
						let _ = gossip.set_topic_params(topic.clone(), topic_score());
						let _ = gossip.subscribe(&topic);
					},
					Command::Unsubscribe(topic) => {
						let _ = swarm.behaviour_mut().gossip.unsubscribe(&topic);
					},
					Command::Publish(topic, data) => {
						if let Err(e) = swarm.behaviour_mut().gossip.publish(topic, data) {
							log::debug!(target: "sync-net", "publish: {e}");
						}
					},
					Command::Validated(id, source, acceptance) => {
						let _ = swarm.behaviour_mut().gossip.report_message_validation_result(&id, &source, acceptance);
					},
					Command::Provide(segment) => {
						let _ = swarm.behaviour_mut().kad.start_providing(segment_key(segment));
					},
					Command::FindProviders(segment, reply) => {
						let id = swarm.behaviour_mut().kad.get_providers(segment_key(segment));
						providers.insert(id, (Vec::new(), reply));
					},
				}
			},
			event = swarm.select_next_some() => match event {
				SwarmEvent::NewListenAddr { .. } | SwarmEvent::ExpiredListenAddr { .. } => {
					let _ = listen.send(swarm.listeners().cloned().collect());
				},
				SwarmEvent::ConnectionEstablished { peer_id, .. } => {
					for r in dials.remove(&peer_id).unwrap_or_default() {
						let _ = r.send(Ok(()));
					}
				},
				SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
					for r in dials.remove(&peer).unwrap_or_default() {
						let _ = r.send(Err(error.to_string()));
					}
				},
				SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message { propagation_source, message_id, message })) => {
					// Validation runs off the swarm task; if it is swamped, drop (not forward) the rest.
					if let Err(mpsc::error::TrySendError::Full((source, id, _))) = gossip_in.try_send((propagation_source, message_id, message)) {
						let _ = swarm.behaviour_mut().gossip.report_message_validation_result(&id, &source, gossipsub::MessageAcceptance::Ignore);
					}
				},
				SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
					for a in info.listen_addrs {
						swarm.behaviour_mut().kad.add_address(&peer_id, a);
					}
				},
				SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
					id,
					result: kad::QueryResult::GetProviders(res),
					step,
					..
				})) => {
					if let Some((found, _)) = providers.get_mut(&id) {
						if let Ok(kad::GetProvidersOk::FoundProviders { providers: p, .. }) = res {
							found.extend(p);
						}
					}
					if step.last {
						if let Some((mut found, reply)) = providers.remove(&id) {
							found.sort();
							found.dedup();
							let _ = reply.send(found);
						}
					}
				},
				_ => {},
			},
		}
	}
}
