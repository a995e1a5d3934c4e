//! The router task: owns the [`Rib`], the peer tasks and the [`Fib`] sink.
//!
//! Every RIB mutation yields [`BestChange`]s; each is handed to the FIB (best route learned
//! from a peer → install with the ECMP next hops; local or gone → withdraw) and to every
//! established peer's Adj-RIB-Out through export policy ([`ExportTarget`]). The router never
//! waits on a peer: it fills the peer's [`Outbox`] and notifies it.
//!
//! Restarting speaker (RFC 4724 §4.1): when started with `graceful_restart.restarting`, kernel
//! routes from the previous instance stay until every peer has sent End-of-RIB for its
//! families (or the stale time passes); then [`Fib::sync_done`] removes what was not learned
//! again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::connection::Listeners;
use super::export::ExportTarget;
use super::fib::Fib;
use super::peer::{self, Outbox, PeerCommand, PeerEvent, PeerTaskHandle};
use super::{Command, PeerConfig, PeerStatus, RibSummary, RouteStatus, Shutdown, SpeakerConfig};
use crate::fsm::SessionConfig;
use crate::rib::{BestChange, PeerInfo, Rib};
use crate::wire::{FamilySet, Origin, PathAttributes, Prefix};

/// How long a removed or stopping peer task gets to send its Cease.
const STOP_GRACE: Duration = Duration::from_secs(2);

struct UpPeer {
    target: ExportTarget,
    outbox: Arc<Outbox>,
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
    let rib = Rib::new(config.asn, config.router_id, config.best_path.clone());
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
                    Some(command) => self.command(command).await,
                    None => {
                        self.shutdown(Shutdown::Stop).await;
                        return;
                    }
                },
                Some(event) = events.recv() => self.event(event),
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
                match self.peers.get(&peer.address) {
                    Some(entry) if entry.config == peer => return,
                    Some(_) => self.remove_peer(peer.address).await,
                    None => {}
                }
                self.add_peer(peer);
            }
            Command::RemovePeer(address) => self.remove_peer(address).await,
            Command::Originate(prefix) => self.originate(prefix),
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
                outbox,
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
                );
                if let Ok(mut rib_out) = outbox.rib_out.lock() {
                    for (prefix, destination) in self.rib.loc_rib().iter() {
                        let family = prefix.family();
                        if context.families.contains(family) {
                            rib_out.set(*prefix, &target.export(family, destination.best()));
                        }
                    }
                }
                outbox.ready.store(true, Ordering::Release);
                outbox.notify.notify_one();
                entry.up = Some(UpPeer {
                    target,
                    outbox,
                    families: context.families,
                    end_of_rib: FamilySet::EMPTY,
                });
            }
            PeerEvent::Down { address, retain } => {
                if let Some(entry) = self.peers.get_mut(&address) {
                    entry.up = None;
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
                if let Some(up) = self.peers.get(&address).and_then(|e| e.up.as_ref()) {
                    if let Ok(mut rib_out) = up.outbox.rib_out.lock() {
                        rib_out.refresh(family);
                    }
                    up.outbox.notify.notify_one();
                }
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
        for entry in self.peers.values() {
            let Some(up) = &entry.up else { continue };
            if let Ok(mut rib_out) = up.outbox.rib_out.lock() {
                for change in &changes {
                    let family = change.prefix.family();
                    if up.families.contains(family) {
                        let best = change.best.as_ref().map(|b| &b.path);
                        rib_out.set(change.prefix, &up.target.export(family, best));
                    }
                }
                if rib_out.has_pending() {
                    up.outbox.notify.notify_one();
                }
            }
        }
    }

    fn program(&mut self, change: &BestChange) {
        let mut hops: Vec<IpAddr> = match &change.best {
            Some(best) if !best.path.source.is_local() => best
                .multipath
                .iter()
                .filter_map(|p| p.next_hop)
                .filter(|nh| !self.is_own_address(*nh) && !nh.is_unspecified())
                .collect(),
            _ => Vec::new(),
        };
        hops.sort();
        hops.dedup();
        let prefix = change.prefix;
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
                }
            })
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
    fn mapped_addresses_are_canonical() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.2".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
