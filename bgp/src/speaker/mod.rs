//! The BGP speaker: the tokio shell around the Sans-IO core, and the only code in the
//! workspace that owns TCP sockets (design.md §2, §6).
//!
//! Tasks (all bounded channels, so one misbehaving peer never stalls the others):
//!
//! ```text
//!  listener ──accepted sockets──▶ router ◀──events (bounded)── peer task ×N ◀── reader task ×conn
//!                                  │ owns Rib, Loc-RIB → Fib, export, every      │ OPEN, KEEPALIVE,
//!                                  │ peer's Adj-RIB-Out; writes the UPDATEs      │ NOTIFICATION;
//!                                  └───────try_write──▶ ConnWriter ×conn ◀───────┘ drains the backlog
//! ```
//!
//! - [`peer`]: one task per configured peer drives `fsm::Session::handle(now, input)`: it
//!   connects (source address = node IP, TCP-MD5, GTSM), reads frames from a reader task,
//!   turns outputs into writes, timers and router events, and resolves connection collisions
//!   (RFC 4271 §6.8) with a second session for the incoming connection.
//! - `outbound`: the router's per-peer output (Adj-RIB-Out, End-of-RIB) and its flush;
//!   `shared_updates`: UPDATE bytes encoded once and shared by every peer that gets the same
//!   message with the same codec context (a reflector's update groups); `writer`: one
//!   connection's write side, shared by the router and the peer task, with its backlog.
//! - [`router`]: owns the [`crate::rib::Rib`], applies peer UPDATEs, runs export policy into
//!   each peer's Adj-RIB-Out (never iBGP-learned to iBGP), and sends best-route changes to the
//!   [`Fib`] (next hop = the originating node, ECMP as multipath).
//! - [`fib`]: the [`Fib`] trait routes leave through, and [`MemoryFib`] for tests;
//!   [`kernel_routes`]: the rtnetlink sink (protocol 81 only).
//! - [`cluster`]: the Calico behaviour from etcd (mesh, BGPPeer, BGPConfiguration, IPAM blocks).
//! - [`netns`]: run a speaker on a thread inside a network namespace (tests, benches).
//! - [`secrets`]: TCP-MD5 passwords from `secretKeyRef`s (files laid out like a mounted secret).
//! - `socket_options`: TCP_MD5SIG and IP_MINTTL, the crate's only `unsafe`.
//!
//! Start one with [`Speaker::start`] inside a tokio runtime; control it through the returned
//! [`SpeakerHandle`].
#![allow(clippy::disallowed_methods)] // the I/O shell owns the clock: Instant::now is allowed here

pub mod cluster;
mod connection;
mod export;
pub mod fib;
pub mod kernel_routes;
pub mod netns;
mod outbound;
mod peer;
mod router;
pub mod secrets;
mod shared_updates;
mod socket_options;
pub mod status;
mod writer;

pub use fib::{CountingFib, Fib, MemoryFib};
pub use kernel_routes::KernelRoutes;
pub use status::{
    FamilyCount, NetworkMatch, PathDetail, PeerAction, PeerActionOutcome, PeerKind,
    RefreshDirection, RouteDetail, RouteFilter, RouteSelection,
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::fsm::{GracefulRestartConfig, SessionContext, State};
use crate::rib::{BestPathConfig, DecisionStep};
use crate::wire::{FamilySet, Prefix};

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;

/// Capacity of the channel from peer tasks to the router: a flood from one peer back-pressures
/// that peer's TCP reads, never the router.
pub(crate) const EVENT_CAPACITY: usize = 1024;
/// Capacity of each peer task's command channel.
pub(crate) const PEER_COMMAND_CAPACITY: usize = 16;

/// One configured peering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (the session's remote end).
    pub address: IpAddr,
    /// The peer's TCP port (179 unless a BGPPeer says `IP:port`).
    pub port: u16,
    /// The peer's AS (equal to ours for iBGP).
    pub remote_asn: u32,
    /// Never connect; wait for the peer (Calico: the higher address of a mesh pair).
    pub passive: bool,
    /// TCP-MD5 key (RFC 2385), if any.
    pub password: Option<String>,
    /// GTSM (RFC 5082): the peer is at most this many hops away.
    pub ttl_security: Option<u8>,
    /// Keepalive interval; the hold time we propose is three times this.
    pub keepalive_time: Option<Duration>,
    /// Graceful-restart time we advertise to this peer (Calico `maxRestartTime`).
    pub max_restart_time: Option<Duration>,
    /// Set the next hop to ourselves on routes we pass on (Calico `nextHopMode: Self`).
    pub next_hop_self: bool,
    /// Where the peering comes from (names the protocol on the control socket).
    pub kind: PeerKind,
    /// The peer is a route-reflector client of ours (RFC 4456; needs
    /// [`SpeakerConfig::cluster_id`]).
    pub route_reflector_client: bool,
}

impl PeerConfig {
    /// A peering with defaults: port 179, active, no password, no GTSM.
    pub fn new(address: IpAddr, remote_asn: u32) -> PeerConfig {
        PeerConfig {
            address,
            port: BGP_PORT,
            remote_asn,
            passive: false,
            password: None,
            ttl_security: None,
            keepalive_time: None,
            max_restart_time: None,
            next_hop_self: false,
            kind: PeerKind::default(),
            route_reflector_client: false,
        }
    }

    /// The same peering, passive.
    pub fn passive(mut self, passive: bool) -> PeerConfig {
        self.passive = passive;
        self
    }

    /// The same peering with a TCP-MD5 password.
    pub fn password(mut self, password: impl Into<String>) -> PeerConfig {
        self.password = Some(password.into());
        self
    }
}

/// Everything a speaker needs at start.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// Our BGP identifier (Calico: the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// Our AS number (Calico default 64512).
    pub asn: u32,
    /// The node's IPv4 address: source of IPv4 sessions and next hop of our IPv4 routes.
    pub node_ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address: source of IPv6 sessions and next hop of our IPv6 routes.
    pub node_ipv6: Option<Ipv6Addr>,
    /// Listen port (BGPConfiguration `listenPort`); `None` disables the listener.
    pub listen_port: Option<u16>,
    /// Hold time proposed to peers without their own keepalive setting.
    pub hold_time: u16,
    /// ConnectRetryTimer.
    pub connect_retry: Duration,
    /// Wait after a failed session before trying again (BIRD's `error wait time`).
    pub idle_hold: Duration,
    /// Graceful restart (Calico turns it on everywhere). `restarting` marks a restart: peers
    /// keep our routes, and kernel routes from before are kept until our peers' End-of-RIB.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Decision-process knobs (ECMP width).
    pub best_path: BestPathConfig,
    /// Peers at start (more can be added live).
    pub peers: Vec<PeerConfig>,
    /// Prefixes we originate at start.
    pub originate: Vec<Prefix>,
    /// Our route-reflector cluster id (RFC 4456): `Some` makes this speaker a reflector for
    /// the peers marked `route_reflector_client`.
    pub cluster_id: Option<Ipv4Addr>,
    /// Prefixes inside these are never installed into the FIB (they stay in the Loc-RIB and
    /// are still advertised): the pools whose routes another owner programs (VXLAN pools:
    /// the node agent). Changed live with [`SpeakerHandle::set_fib_exclude`].
    pub fib_exclude: Vec<Prefix>,
}

impl SpeakerConfig {
    /// A speaker with Calico's defaults: hold 240 s (BIRD), connect retry 5 s, error wait 5 s,
    /// graceful restart on, listening on port 179.
    pub fn new(router_id: Ipv4Addr, asn: u32) -> SpeakerConfig {
        SpeakerConfig {
            router_id,
            asn,
            node_ipv4: Some(router_id),
            node_ipv6: None,
            listen_port: Some(BGP_PORT),
            hold_time: 240,
            connect_retry: Duration::from_secs(5),
            idle_hold: Duration::from_secs(5),
            graceful_restart: Some(GracefulRestartConfig::default()),
            best_path: BestPathConfig::default(),
            peers: Vec::new(),
            originate: Vec::new(),
            cluster_id: None,
            fib_exclude: Vec::new(),
        }
    }

    /// The node address of the same family as `peer` (the session's source address).
    pub fn source_for(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.node_ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.node_ipv6.map(IpAddr::V6),
        }
    }
}

/// Errors starting or talking to a speaker.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// A socket could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The speaker has stopped.
    #[error("the speaker has stopped")]
    Stopped,
}

/// A peer as `show protocols` would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// Its configured AS.
    pub remote_asn: u32,
    /// FSM state.
    pub state: State,
    /// The negotiated session, while one is up.
    pub context: Option<SessionContext>,
    /// Why the session last went down (or failed to come up).
    pub last_error: Option<String>,
    /// Routes in the peer's Adj-RIB-In.
    pub routes_received: usize,
    /// Routes of the peer held stale for graceful restart.
    pub routes_stale: usize,
    /// Families the FSM holds stale for the peer.
    pub stale_families: FamilySet,
    /// UPDATE messages received with RFC 7606 errors recovered from.
    pub malformed_updates: u64,
    /// Where the peering comes from.
    pub kind: PeerKind,
    /// Wall-clock time of the last state change (or of the peer's creation).
    pub since: SystemTime,
    /// Administratively disabled (`disable`): no session until enabled.
    pub disabled: bool,
    /// Routes in the peer's Adj-RIB-Out (what we advertise to it).
    pub routes_advertised: usize,
    /// UPDATE messages received from the peer (End-of-RIB included), over all its sessions.
    pub updates_received: u64,
    /// UPDATE messages sent to the peer (End-of-RIB included), over all its sessions.
    pub updates_sent: u64,
}

/// One Loc-RIB entry as the handle reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The prefix.
    pub prefix: Prefix,
    /// The best route's source: `None` for our own routes, else the peer's address.
    pub from: Option<IpAddr>,
    /// Next hops of the ECMP set (what is installed in the kernel).
    pub next_hops: Vec<IpAddr>,
    /// The step that selected the best route.
    pub step: DecisionStep,
    /// The best route is stale (graceful restart).
    pub stale: bool,
    /// Number of candidate routes.
    pub candidates: usize,
}

/// Sizes of the RIB (cheap to ask for, unlike [`SpeakerHandle::routes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RibSummary {
    /// Prefixes in the Loc-RIB.
    pub prefixes: usize,
    /// Routes in all Adj-RIBs-In together.
    pub received: usize,
    /// Distinct path-attribute sets held.
    pub attribute_sets: usize,
    /// Prefixes whose best route is one we originate.
    pub originated: usize,
    /// Prefixes handed to the FIB (learned best routes).
    pub installed: usize,
    /// Graceful-restart recovery (RFC 4724 §4.1): this speaker restarted and keeps the
    /// previous instance's kernel routes until every peer has sent End-of-RIB or the stale
    /// time passes.
    pub restart_recovery: bool,
}

/// How to stop a speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Administrative shutdown: Cease to every peer, our kernel routes removed.
    Stop,
    /// Restart (RFC 4724): sessions dropped without NOTIFICATION so GR peers keep our routes,
    /// kernel routes left in place for the next instance.
    Restart,
}

/// Requests from a [`SpeakerHandle`] to the router task.
#[derive(Debug)]
pub(crate) enum Command {
    AddPeer(PeerConfig),
    RemovePeer(IpAddr),
    Originate(Prefix),
    Withdraw(Prefix),
    SetFibExclude(Vec<Prefix>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Routes(oneshot::Sender<Vec<RouteStatus>>),
    Summary(oneshot::Sender<RibSummary>),
    RouteDetails(oneshot::Sender<Vec<RouteDetail>>),
    SelectRoutes(RouteFilter, oneshot::Sender<RouteSelection>),
    PeerAction(IpAddr, PeerAction, oneshot::Sender<PeerActionOutcome>),
    Accepted(tokio::net::TcpStream, SocketAddr),
    Shutdown(Shutdown, oneshot::Sender<()>),
}

/// The speaker.
#[derive(Debug)]
pub struct Speaker;

impl Speaker {
    /// Binds the listener, starts the router and one task per configured peer on the current
    /// tokio runtime, and returns the control handle. Sockets belong to the network namespace
    /// of the thread that creates them: see [`netns`] to run a speaker inside one.
    pub async fn start(
        config: SpeakerConfig,
        fib: Box<dyn Fib>,
    ) -> Result<SpeakerHandle, SpeakerError> {
        let (commands, rx) = mpsc::channel(256);
        let listeners = connection::listen(&config).await?;
        let listeners = Arc::new(listeners);
        let accept_tasks = connection::spawn_accept(&listeners, &commands);
        router::spawn(config, fib, listeners, accept_tasks, rx);
        Ok(SpeakerHandle { commands })
    }
}

/// Controls a running speaker. Cheap to clone; every call is a message to the router task.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    commands: mpsc::Sender<Command>,
}

impl SpeakerHandle {
    async fn send(&self, command: Command) -> Result<(), SpeakerError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Adds a peer (or replaces the configuration of one, restarting only its session).
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        self.send(Command::AddPeer(peer)).await
    }

    /// Removes a peer: Cease, its routes withdrawn.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        self.send(Command::RemovePeer(address)).await
    }

    /// Originates a prefix (an IPAM block or a borrowed /32).
    pub async fn originate(&self, prefix: Prefix) -> Result<(), SpeakerError> {
        self.send(Command::Originate(prefix)).await
    }

    /// Withdraws a prefix we originated.
    pub async fn withdraw(&self, prefix: Prefix) -> Result<(), SpeakerError> {
        self.send(Command::Withdraw(prefix)).await
    }

    /// Replaces the prefixes whose routes are kept out of the FIB
    /// ([`SpeakerConfig::fib_exclude`]): routes inside newly excluded prefixes are withdrawn
    /// from the FIB, routes no longer excluded are installed.
    pub async fn set_fib_exclude(&self, prefixes: Vec<Prefix>) -> Result<(), SpeakerError> {
        self.send(Command::SetFibExclude(prefixes)).await
    }

    /// Every peer's status, ordered by address.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// One peer's status.
    pub async fn peer(&self, address: IpAddr) -> Result<Option<PeerStatus>, SpeakerError> {
        Ok(self
            .peers()
            .await?
            .into_iter()
            .find(|p| p.address == address))
    }

    /// The Loc-RIB, ordered by prefix.
    pub async fn routes(&self) -> Result<Vec<RouteStatus>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Routes(tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// RIB sizes.
    pub async fn rib_summary(&self) -> Result<RibSummary, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Summary(tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// The Loc-RIB entry of one prefix.
    pub async fn route(&self, prefix: Prefix) -> Result<Option<RouteStatus>, SpeakerError> {
        Ok(self
            .routes()
            .await?
            .into_iter()
            .find(|r| r.prefix == prefix))
    }

    /// Stops the speaker and waits until sessions are closed and the kernel is settled.
    pub async fn shutdown(&self, how: Shutdown) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Shutdown(how, tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }
}
