//! The router task: owns the [`Rib`], the peer tasks and the [`Fib`] sink.
//!
//! Every RIB mutation yields [`BestChange`]s; each is handed to the FIB (best route learned
//! from a peer → install with the ECMP next hops; local or gone → withdraw) and to every
//! established peer's Adj-RIB-Out ([`PeerOut`]: a mark in a bitset over the router's
//! [`PrefixIndex`], export policy ([`ExportTarget`]) running at flush time; with ADD-PATH
//! send, export into the full Adj-RIB-Out right away). Once the events
//! already queued have all been handled (a batch), the router writes every peer's pending
//! changes itself ([`PeerOut::flush`]), never waiting on a socket: a peer whose socket is
//! full is skipped until its peer task has written the backlog ([`PeerEvent::Drained`]).
//!
//! Restarting speaker (RFC 4724 §4.1): when started with `graceful_restart.restarting`, kernel
//! routes from the previous instance stay until every peer has sent End-of-RIB for its
//! families (or the stale time passes); then [`Fib::sync_done`] removes what was not learned
//! again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::connection::Listeners;
use super::export::{ExportCache, ExportClass, ExportTarget};
use super::fib::Fib;
use super::outbound::{FlushContext, PeerOut, Write};
use super::peer::{self, PeerCommand, PeerEvent, PeerTaskHandle};
use super::shared_updates::SharedUpdates;
use super::{Command, PeerConfig, PeerStatus, RibSummary, RouteStatus, Shutdown, SpeakerConfig};
use super::{PeerAction, PeerActionOutcome, RefreshDirection, RouteDetail};
use crate::fsm::SessionConfig;
use crate::rib::{BestChange, Path, PeerInfo, PrefixIndex, Rib};
use crate::wire::{FamilySet, Origin, PathAttributes, Prefix};

/// Peer events handled together before peers are told to flush.
const EVENT_BATCH: usize = 256;

/// How long a removed or stopping peer task gets to send its Cease.
const STOP_GRACE: Duration = Duration::from_secs(2);

struct UpPeer {
    out: PeerOut,
    families: FamilySet,
    end_of_rib: FamilySet,
}

struct PeerEntry {
    config: PeerConfig,
    task: PeerTaskHandle,
    up: Option<UpPeer>,
}

struct Router {
    config: SpeakerConfig,
    rib: Rib,
    fib: Box<dyn Fib>,
    installed: HashMap<Prefix, Vec<IpAddr>>,
    peers: BTreeMap<IpAddr, PeerEntry>,
    events_tx: mpsc::Sender<PeerEvent>,
    listeners: Arc<Listeners>,
    restart_deadline: Option<Instant>,
    /// UPDATE encodings shared by the peers.
    shared: SharedUpdates,
    /// Dense ids of the prefixes the Adj-RIBs-Out refer to.
    index: PrefixIndex,
    /// Reflected attribute sets, shared by every client that gets them.
    cache: ExportCache,
    /// Numbers of the export classes of the peers (what export depends on but the peer).
    classes: HashMap<ExportClass, u32>,
    /// Administratively disabled peers (no task) and since when.
    disabled: BTreeMap<IpAddr, (PeerConfig, SystemTime)>,
}

/// Starts the router task.
pub(crate) fn spawn(
    config: SpeakerConfig,
    fib: Box<dyn Fib>,
    listeners: Arc<Listeners>,
    accept_tasks: Vec<JoinHandle<()>>,
    commands: mpsc::Receiver<Command>,
) {
    let (events_tx, events_rx) = mpsc::channel(super::EVENT_CAPACITY);
    let mut rib = Rib::new(config.asn, config.router_id, config.best_path.clone());
    rib.set_cluster_id(config.cluster_id);
    rib.set_report_all_paths(true);
    let restart_deadline = config
        .graceful_restart
        .as_ref()
        .filter(|gr| gr.restarting)
        .map(|gr| Instant::now() + gr.stale_time);
    let mut router = Router {
        config,
        rib,
        fib,
        installed: HashMap::new(),
        peers: BTreeMap::new(),
        events_tx,
        listeners,
        restart_deadline,
        shared: SharedUpdates::default(),
        index: PrefixIndex::default(),
        cache: ExportCache::default(),
        classes: HashMap::new(),
        disabled: BTreeMap::new(),
    };
    tokio::spawn(async move {
        router.start();
        router.run(commands, events_rx).await;
        for task in accept_tasks {
            task.abort();
        }
    });
}

impl Router {
    fn start(&mut self) {
        if self.restart_deadline.is_none() {
            self.fib.sync_done();
        }
        for prefix in self.config.originate.clone() {
            self.originate(prefix);
        }
        for peer in self.config.peers.clone() {
            self.add_peer(peer);
        }
    }

    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<PeerEvent>,
    ) {
        loop {
            let deadline = self.restart_deadline;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(how, done)) => {
                        self.shutdown(how).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => {
                        self.command(command).await;
                        self.flush_peers();
                    }
                    None => {
                        self.shutdown(Shutdown::Stop).await;
                        return;
                    }
                },
                Some(event) = events.recv() => {
                    // Whatever else is already queued joins this batch, so peers get one
                    // flush (one write) for all of it instead of one per UPDATE received.
                    self.event(event);
                    for _ in 0..EVENT_BATCH {
                        match events.try_recv() {
                            Ok(event) => self.event(event),
                            Err(_) => break,
                        }
                    }
                    self.flush_peers();
                    self.cache.sweep();
                }
                () = sleep_until(deadline) => {
                    tracing::info!("restart: stale time over, removing routes not learned again");
                    self.restart_deadline = None;
                    self.fib.sync_done();
                }
            }
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::AddPeer(peer) => {
                if let Some(disabled) = self.disabled.get_mut(&peer.address) {
                    disabled.0 = peer;
                    return;
                }
                match self.peers.get(&peer.address) {
                    Some(entry) if entry.config == peer => return,
                    Some(_) => self.remove_peer(peer.address).await,
                    None => {}
                }
                self.add_peer(peer);
            }
            Command::RemovePeer(address) => {
                self.disabled.remove(&address);
                self.remove_peer(address).await;
            }
            Command::RouteDetails(reply) => {
                let details = self.rib.loc_rib().iter();
                let _ = reply.send(details.map(|(p, d)| RouteDetail::of(*p, d)).collect());
            }
            Command::SelectRoutes(filter, reply) => {
                let loc_rib = self.rib.loc_rib();
                let _ = reply.send(super::RouteSelection::of_loc_rib(loc_rib, &filter));
            }
            Command::PeerAction(address, action, reply) => {
                let _ = reply.send(self.peer_action(address, action).await);
            }
            Command::Originate(prefix) => self.originate(prefix),
            Command::SetFibExclude(prefixes) => self.set_fib_exclude(prefixes),
            Command::Withdraw(prefix) => {
                let changes = self.rib.withdraw_local(prefix);
                self.apply(changes);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_statuses());
            }
            Command::Routes(reply) => {
                let _ = reply.send(self.route_statuses());
            }
            Command::Summary(reply) => {
                let _ = reply.send(RibSummary {
                    prefixes: self.rib.loc_rib().len(),
                    received: self
                        .peers
                        .keys()
                        .filter_map(|a| self.rib.adj_rib_in(*a))
                        .map(|a| a.len())
                        .sum(),
                    attribute_sets: self.rib.attribute_sets(),
                    originated: self
                        .rib
                        .loc_rib()
                        .iter()
                        .filter(|(_, d)| d.best().is_some_and(|b| b.source.is_local()))
                        .count(),
                    installed: self.installed.len(),
                    restart_recovery: self.restart_deadline.is_some(),
                });
            }
            Command::Accepted(stream, from) => {
                let ip = canonical(from.ip());
                match self.peers.get(&ip) {
                    Some(entry) => {
                        if entry
                            .task
                            .commands
                            .try_send(PeerCommand::Incoming(stream))
                            .is_err()
                        {
                            tracing::warn!(peer = %ip, "peer task busy; dropping connection");
                        }
                    }
                    None => {
                        tracing::info!(%from, "connection from an unconfigured address refused")
                    }
                }
            }
            Command::Shutdown(..) => {} // handled in `run`
        }
    }

    fn add_peer(&mut self, peer: PeerConfig) {
        tracing::info!(peer = %peer.address, asn = peer.remote_asn, passive = peer.passive, "adding peer");
        if let Some(password) = &peer.password {
            self.listeners.set_md5(peer.address, Some(password));
        }
        let session = session_config(&self.config, &peer);
        let source = self.config.source_for(peer.address);
        let task = peer::spawn(peer.clone(), session, source, self.events_tx.clone());
        self.peers.insert(
            peer.address,
            PeerEntry {
                config: peer,
                task,
                up: None,
            },
        );
    }

    async fn remove_peer(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.remove(&address) else {
            return;
        };
        tracing::info!(peer = %address, "removing peer");
        if let Some(mut up) = entry.up {
            up.out.release(&mut self.index);
        }
        stop_task(entry.task, Shutdown::Stop).await;
        if entry.config.password.is_some() {
            self.listeners.set_md5(address, None);
        }
        let changes = self.rib.remove_peer(address);
        self.apply(changes);
    }

    fn originate(&mut self, prefix: Prefix) {
        let attributes = PathAttributes {
            origin: Origin::Igp,
            ..PathAttributes::default()
        };
        let changes = self.rib.originate(prefix, attributes);
        self.apply(changes);
    }

    fn event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Up {
                address,
                context,
                local,
                writer,
            } => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                let ibgp = context.ibgp();
                self.rib.peer_up(PeerInfo {
                    address,
                    router_id: context.remote_id,
                    asn: context.remote_asn,
                    ibgp,
                    rr_client: entry.config.route_reflector_client,
                });
                let v4 = match local {
                    IpAddr::V4(_) => Some(local),
                    IpAddr::V6(_) => self.config.node_ipv4.map(IpAddr::V4),
                };
                let v6 = match local {
                    IpAddr::V6(_) => Some(local),
                    IpAddr::V4(_) => self.config.node_ipv6.map(IpAddr::V6),
                };
                let target = ExportTarget::new(
                    address,
                    ibgp,
                    self.config.asn,
                    v4,
                    v6,
                    entry.config.next_hop_self,
                )
                .reflection(
                    context.remote_id,
                    entry.config.route_reflector_client,
                    self.config.cluster_id,
                );
                let classes = self.classes.len();
                let class = *self
                    .classes
                    .entry(target.class())
                    .or_insert_with(|| u32::try_from(classes).unwrap_or(u32::MAX));
                let out = PeerOut::new(
                    target,
                    class,
                    context.codec(),
                    context.families,
                    writer,
                    self.rib.loc_rib(),
                    &self.index,
                    &mut self.cache,
                );
                let up = UpPeer {
                    out,
                    families: context.families,
                    end_of_rib: FamilySet::EMPTY,
                };
                if let Some(mut old) = entry.up.replace(up) {
                    old.out.release(&mut self.index);
                }
            }
            PeerEvent::Down { address, retain } => {
                if let Some(mut up) = self.peers.get_mut(&address).and_then(|e| e.up.take()) {
                    up.out.release(&mut self.index);
                }
                let changes = self.rib.peer_down(address, retain);
                self.apply(changes);
                self.rib.compact();
            }
            PeerEvent::Update { address, update } => {
                match self.rib.apply_update(address, &update) {
                    Ok(changes) => self.apply(changes),
                    Err(error) => tracing::warn!(peer = %address, %error, "update dropped"),
                }
            }
            PeerEvent::EndOfRib { address, family } => {
                let changes = self.rib.end_of_rib(address, family);
                self.apply(changes);
                if let Some(up) = self.peers.get_mut(&address).and_then(|e| e.up.as_mut()) {
                    up.end_of_rib.insert(family);
                }
                self.check_restart_done();
            }
            PeerEvent::SweepStale { address, families } => {
                let changes = self.rib.sweep_stale(address, families);
                self.apply(changes);
            }
            PeerEvent::RouteRefresh { address, family } => {
                if let Some(up) = self.peers.get_mut(&address).and_then(|e| e.up.as_mut()) {
                    up.out.refresh(family, &self.index);
                }
            }
            // The flush after this batch writes what the peer's changes held back.
            PeerEvent::Drained { address } => {
                tracing::trace!(peer = %address, "backlog written");
            }
        }
    }

    /// Hands best-route changes to the FIB and to every established peer.
    fn apply(&mut self, changes: Vec<BestChange>) {
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            self.program(change);
        }
        let loc_rib = self.rib.loc_rib();
        for change in &changes {
            let id = self.index.insert(change.prefix);
            for entry in self.peers.values_mut() {
                if let Some(up) = &mut entry.up {
                    up.out.changed(change, id, loc_rib, &mut self.cache);
                }
            }
            // A prefix gone from the Loc-RIB keeps its id while a peer still holds it.
            self.index.set_live(id, change.best.is_some());
        }
    }

    /// Writes every established peer's pending changes (after a batch of events or a
    /// command).
    fn flush_peers(&mut self) {
        let mut cx = FlushContext {
            loc_rib: self.rib.loc_rib(),
            index: &mut self.index,
            cache: &mut self.cache,
            encodings: &mut self.shared,
            memo: Default::default(),
        };
        let mut writes = Vec::new();
        let mut counters = Vec::new();
        for (address, entry) in &mut self.peers {
            let Some(up) = &mut entry.up else { continue };
            if let Some(write) = up.out.flush(*address, &mut cx) {
                writes.push(write);
                counters.push(Arc::clone(&entry.task.live));
            }
        }
        if writes.is_empty() {
            return;
        }
        let taken: Vec<u64> = writes.iter().map(Write::run).collect();
        for (live, sent) in counters.iter().zip(taken) {
            if sent > 0
                && let Ok(mut live) = live.lock()
            {
                live.updates_sent += sent;
            }
        }
    }

    fn program(&mut self, change: &BestChange) {
        let hops = match &change.best {
            Some(best) if !best.path.source.is_local() => {
                self.fib_hops(change.prefix, best.multipath.iter())
            }
            _ => Vec::new(),
        };
        self.program_hops(change.prefix, hops);
    }

    /// The FIB next hops of a learned route: none for an excluded prefix.
    fn fib_hops<'a>(
        &self,
        prefix: Prefix,
        multipath: impl Iterator<Item = &'a Path>,
    ) -> Vec<IpAddr> {
        if self.excluded(prefix) {
            return Vec::new();
        }
        let mut hops: Vec<IpAddr> = multipath
            .filter_map(|p| p.next_hop)
            .filter(|nh| !self.is_own_address(*nh) && !nh.is_unspecified())
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    fn excluded(&self, prefix: Prefix) -> bool {
        self.config.fib_exclude.iter().any(|e| covers(*e, prefix))
    }

    /// New FIB exclusions: every Loc-RIB prefix inside the old or the new ones is programmed
    /// again.
    fn set_fib_exclude(&mut self, prefixes: Vec<Prefix>) {
        let touched: Vec<Prefix> = self
            .rib
            .loc_rib()
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| {
                self.config
                    .fib_exclude
                    .iter()
                    .chain(&prefixes)
                    .any(|e| covers(*e, *p))
            })
            .collect();
        tracing::info!(exclude = ?prefixes, routes = touched.len(), "FIB exclusions changed");
        self.config.fib_exclude = prefixes;
        for prefix in touched {
            let hops = match self.rib.loc_rib().get(&prefix) {
                Some(d) if d.best().is_some_and(|b| !b.source.is_local()) => {
                    self.fib_hops(prefix, d.multipath().into_iter())
                }
                _ => Vec::new(),
            };
            self.program_hops(prefix, hops);
        }
    }

    fn program_hops(&mut self, prefix: Prefix, hops: Vec<IpAddr>) {
        if hops.is_empty() {
            if self.installed.remove(&prefix).is_some() {
                self.fib.withdraw(prefix);
            }
        } else if self.installed.get(&prefix) != Some(&hops) {
            self.fib.install(prefix, &hops);
            self.installed.insert(prefix, hops);
        }
    }

    fn is_own_address(&self, ip: IpAddr) -> bool {
        Some(ip) == self.config.node_ipv4.map(IpAddr::V4)
            || Some(ip) == self.config.node_ipv6.map(IpAddr::V6)
    }

    fn check_restart_done(&mut self) {
        if self.restart_deadline.is_none() {
            return;
        }
        let all_done = self.peers.values().all(|e| {
            e.up.as_ref()
                .is_some_and(|up| up.families.iter().all(|f| up.end_of_rib.contains(f)))
        });
        if all_done {
            tracing::info!(
                "restart: End-of-RIB from every peer, removing routes not learned again"
            );
            self.restart_deadline = None;
            self.fib.sync_done();
        }
    }

    fn peer_statuses(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(address, entry)| {
                let live = entry.task.live.lock().map(|l| l.clone()).ok();
                let adj = self.rib.adj_rib_in(*address);
                PeerStatus {
                    address: *address,
                    remote_asn: entry.config.remote_asn,
                    state: live.as_ref().map_or(crate::fsm::State::Idle, |l| l.state),
                    context: live.as_ref().and_then(|l| l.context.clone()),
                    last_error: live.as_ref().and_then(|l| l.last_error.clone()),
                    routes_received: adj.map_or(0, |a| a.len()),
                    routes_stale: adj.map_or(0, |a| a.stale_count()),
                    stale_families: live.as_ref().map_or(FamilySet::EMPTY, |l| l.stale_families),
                    malformed_updates: live.as_ref().map_or(0, |l| l.malformed_updates),
                    kind: entry.config.kind,
                    since: live.as_ref().map_or(SystemTime::now(), |l| l.since),
                    disabled: false,
                    routes_advertised: entry.up.as_ref().map_or(0, |up| up.out.routes()),
                    updates_received: live.as_ref().map_or(0, |l| l.updates_received),
                    updates_sent: live.as_ref().map_or(0, |l| l.updates_sent),
                }
            })
            .map(|status| (status.address, status))
            .chain(self.disabled.values().map(disabled_status))
            .collect::<BTreeMap<IpAddr, PeerStatus>>()
            .into_values()
            .collect()
    }

    fn route_statuses(&self) -> Vec<RouteStatus> {
        self.rib
            .loc_rib()
            .iter()
            .filter_map(|(prefix, destination)| {
                let best = destination.best()?;
                Some(RouteStatus {
                    prefix: *prefix,
                    from: best.source.address(),
                    next_hops: self.installed.get(prefix).cloned().unwrap_or_default(),
                    step: destination.step()?,
                    stale: best.stale,
                    candidates: destination.paths().len(),
                })
            })
            .collect()
    }

    async fn shutdown(&mut self, how: Shutdown) {
        tracing::info!(?how, "speaker shutting down");
        let peers = std::mem::take(&mut self.peers);
        let stops = peers.into_values().map(|entry| stop_task(entry.task, how));
        futures::future::join_all(stops).await;
        if how == Shutdown::Stop {
            for prefix in std::mem::take(&mut self.installed).into_keys() {
                self.fib.withdraw(prefix);
            }
        }
        self.fib.settled().await;
    }
}

/// True when `outer` contains `inner` (same family, at most as long, same leading bits).
fn covers(outer: Prefix, inner: Prefix) -> bool {
    if outer.prefix_len() > inner.prefix_len() {
        return false;
    }
    match ipnetwork::IpNetwork::new(outer.addr(), outer.prefix_len()) {
        Ok(net) => net.contains(inner.addr()),
        Err(_) => false,
    }
}

/// Operator actions (`enable`, `disable`, `restart`, `reload` on the control socket).
impl Router {
    async fn peer_action(&mut self, address: IpAddr, action: PeerAction) -> PeerActionOutcome {
        let disabled = self.disabled.contains_key(&address);
        if !disabled && !self.peers.contains_key(&address) {
            return PeerActionOutcome::NotFound;
        }
        match action {
            PeerAction::Enable if disabled => {
                if let Some((config, _)) = self.disabled.remove(&address) {
                    self.add_peer(config);
                }
                PeerActionOutcome::Enabled
            }
            PeerAction::Enable => PeerActionOutcome::AlreadyEnabled,
            PeerAction::Disable | PeerAction::Reload(_) if disabled => {
                PeerActionOutcome::AlreadyDisabled
            }
            PeerAction::Disable => {
                if let Some(entry) = self.peers.get(&address) {
                    let config = entry.config.clone();
                    self.remove_peer(address).await;
                    self.disabled.insert(address, (config, SystemTime::now()));
                }
                PeerActionOutcome::Disabled
            }
            PeerAction::Restart => {
                if let Some((config, _)) = self.disabled.remove(&address) {
                    self.add_peer(config);
                } else if let Some(entry) = self.peers.get(&address) {
                    let config = entry.config.clone();
                    self.remove_peer(address).await;
                    self.add_peer(config);
                }
                PeerActionOutcome::Restarted
            }
            PeerAction::Reload(direction) => self.reload(address, direction),
        }
    }

    fn reload(&mut self, address: IpAddr, direction: RefreshDirection) -> PeerActionOutcome {
        let Some(entry) = self.peers.get_mut(&address) else {
            return PeerActionOutcome::NotFound;
        };
        let Some(up) = &mut entry.up else {
            return PeerActionOutcome::ReloadFailed;
        };
        let context = entry.task.live.lock().ok().and_then(|l| l.context.clone());
        if matches!(direction, RefreshDirection::In | RefreshDirection::Both) {
            if !context.is_some_and(|c| c.route_refresh) {
                return PeerActionOutcome::ReloadFailed;
            }
            for family in up.families.iter() {
                let command = PeerCommand::RouteRefresh(family);
                if entry.task.commands.try_send(command).is_err() {
                    return PeerActionOutcome::ReloadFailed;
                }
            }
        }
        if matches!(direction, RefreshDirection::Out | RefreshDirection::Both) {
            for family in up.families.iter() {
                up.out.refresh(family, &self.index);
            }
        }
        PeerActionOutcome::Reloading
    }
}

fn disabled_status((config, since): &(PeerConfig, SystemTime)) -> (IpAddr, PeerStatus) {
    let status = PeerStatus {
        address: config.address,
        remote_asn: config.remote_asn,
        state: crate::fsm::State::Idle,
        context: None,
        last_error: None,
        routes_received: 0,
        routes_stale: 0,
        stale_families: FamilySet::EMPTY,
        malformed_updates: 0,
        kind: config.kind,
        since: *since,
        disabled: true,
        routes_advertised: 0,
        updates_received: 0,
        updates_sent: 0,
    };
    (config.address, status)
}

async fn stop_task(task: PeerTaskHandle, how: Shutdown) {
    let PeerTaskHandle {
        commands,
        task: join,
        ..
    } = task;
    let _ = commands.send(PeerCommand::Stop(how)).await;
    let abort = join.abort_handle();
    if tokio::time::timeout(STOP_GRACE, join).await.is_err() {
        abort.abort();
    }
}

/// The FSM configuration for one peer: Calico's BIRD template values, the peer's overrides.
pub(crate) fn session_config(config: &SpeakerConfig, peer: &PeerConfig) -> SessionConfig {
    let mut session = SessionConfig::new(config.asn, peer.remote_asn, config.router_id);
    session.passive = peer.passive;
    session.hold_time = peer.keepalive_time.map_or(config.hold_time, |k| {
        u16::try_from(k.as_secs().saturating_mul(3).clamp(3, 65535)).unwrap_or(u16::MAX)
    });
    session.connect_retry = config.connect_retry;
    session.idle_hold = Some(config.idle_hold);
    session.graceful_restart = config.graceful_restart.clone().map(|mut gr| {
        if let Some(time) = peer.max_restart_time {
            gr.restart_time = u16::try_from(time.as_secs().min(4095)).unwrap_or(4095);
        }
        gr
    });
    session
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn session_config_takes_peer_overrides() {
        let speaker = SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512);
        let mut peer = PeerConfig::new("10.0.0.2".parse().unwrap(), 64513).passive(true);
        peer.keepalive_time = Some(Duration::from_secs(10));
        peer.max_restart_time = Some(Duration::from_secs(30));
        let s = session_config(&speaker, &peer);
        assert!(s.passive && !s.ibgp());
        assert_eq!(s.hold_time, 30);
        assert_eq!(s.graceful_restart.unwrap().restart_time, 30);
        let default = session_config(
            &speaker,
            &PeerConfig::new("10.0.0.3".parse().unwrap(), 64512),
        );
        assert_eq!(default.hold_time, 240);
        assert!(default.ibgp());
    }

    #[test]
    fn exclusions_cover_longer_prefixes_of_the_same_family() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        assert!(covers(p("10.244.0.0/16"), p("10.244.3.0/26")));
        assert!(covers(p("10.244.0.0/16"), p("10.244.0.0/16")));
        assert!(!covers(p("10.244.0.0/16"), p("10.0.0.0/8")));
        assert!(!covers(p("10.244.0.0/16"), p("10.245.0.0/26")));
        assert!(!covers(p("10.244.0.0/16"), p("fd00::/64")));
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.2".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
