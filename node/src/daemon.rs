//! The running daemon: start-up order, readiness, signals, reload and shutdown.
//!
//! ```text
//!  start: metrics endpoint → node addresses (autodetect) → etcd (retry with backoff)
//!         → Node registration (CAS) → liveness lease → VXLAN tunnel address loop
//!         → felix Agent (own threads) → ClusterAgent (BGP speaker, same runtime; not with
//!         --networking-backend vxlan|none) → "vrouterd ready"
//!  every 200 ms: readiness, router id, graceful-restart recovery (`show status`)
//!  SIGHUP: re-read file + environment; apply log level, metrics address, addresses/AS/RR id
//!          (Node update); log what needs a restart
//!  SIGTERM/SIGINT: speaker stops as a restarting speaker (no NOTIFICATION, routes stay),
//!          felix stops (routes and nftables stay), liveness lease left to expire; exit 0
//! ```
//!
//! Nothing on the way down deletes kernel state or the Node resource: a restarted vrouterd
//! adopts felix's routes and nft table, and its speaker restarts gracefully over the
//! protocol-81 routes it finds ([`crate::kernel_state`]).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp::ctl::{ControlBackend, CtlError, CtlOptions, CtlServer, Layout, SpeakerBackend};
use bgp::speaker::cluster::{ClusterAgent, ClusterOptions, DEFAULT_ASN, Launch};
use bgp::speaker::secrets::FileSecrets;
use bgp::speaker::{Shutdown, SpeakerConfig, SpeakerHandle};
use datastore::etcd::{DatastoreError, Store};
use datastore::resource_store::ResourceStore;
use felix::agent::{Agent, AgentConfig, AgentError};
use futures::future::BoxFuture;
use ipnetwork::IpNetwork;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};

use crate::autodetect::{self, AutodetectError};
use crate::config::{self, Config, ConfigError, CtlLayout, Key};
use crate::control::NodeBackend;
use crate::logging::LogHandle;
use crate::metrics::NodeMetrics;
use crate::metrics_http::{Exporter, MetricsServer};
use crate::registration::{
    self, LIVENESS_TTL, Liveness, LivenessRecord, Registered, Registration, RegistrationError,
};
use crate::tunnel::TunnelAllocator;

/// Longest pause between etcd connection attempts at start.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often readiness is checked until reached.
const READY_POLL: Duration = Duration::from_millis(200);

/// Exit code for a configuration error.
pub const EXIT_CONFIG: u8 = 1;
/// Exit code when etcd stayed unreachable past `--etcd-start-timeout`.
pub const EXIT_ETCD_UNREACHABLE: u8 = 2;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// etcd unreachable for longer than `--etcd-start-timeout`.
    #[error("etcd stayed unreachable for {waited:?} (--etcd-start-timeout): {source}")]
    EtcdUnreachable {
        /// How long we tried.
        waited: Duration,
        /// The last error.
        #[source]
        source: DatastoreError,
    },
    /// etcd settings that cannot work (TLS files, endpoints).
    #[error("etcd configuration")]
    Etcd(#[source] DatastoreError),
    /// The metrics endpoint could not listen.
    #[error("--metrics-listen {addr}: cannot listen")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No node address could be determined.
    #[error("node address (--ipv4/--ipv4-autodetect, --ipv6/--ipv6-autodetect)")]
    Autodetect(#[from] AutodetectError),
    /// The Node resource could not be written.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// The felix agent did not start.
    #[error("starting the felix agent")]
    Agent(#[source] AgentError),
    /// The control socket could not be set up.
    #[error("--control-socket")]
    Control(#[source] CtlError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
}

impl DaemonError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::EtcdUnreachable { .. } => EXIT_ETCD_UNREACHABLE,
            _ => EXIT_CONFIG,
        }
    }
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Terminate(&'static str),
    Reload,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Self, DaemonError> {
        let make = |kind| signal(kind).map_err(DaemonError::Signals);
        Ok(Self {
            term: make(SignalKind::terminate())?,
            int: make(SignalKind::interrupt())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Terminate("SIGTERM"),
            _ = self.int.recv() => Event::Terminate("SIGINT"),
            _ = self.hup.recv() => Event::Reload,
        }
    }
}

/// State the metrics endpoint reads.
struct Shared {
    metrics: NodeMetrics,
    /// One scrape at a time: a refresh rebuilds the per-peer families.
    scrape: tokio::sync::Mutex<()>,
    agent: Mutex<Option<Agent>>,
    speaker: Mutex<Option<SpeakerHandle>>,
    ready: AtomicBool,
}

impl Exporter for Shared {
    fn metrics(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let _scrape = self.scrape.lock().await;
            let speaker = self.speaker.lock().ok().and_then(|s| s.clone());
            self.metrics.refresh(speaker).await;
            self.metrics.set_ready(self.ready.load(Ordering::Acquire));
            match self.agent.lock() {
                Ok(agent) => {
                    let registries: Vec<_> = agent.iter().map(Agent::registry).collect();
                    self.metrics.encode(&registries)
                }
                Err(_) => self.metrics.encode(&[]),
            }
        })
    }

    fn healthy(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Everything the running daemon holds.
struct Daemon {
    args: Vec<OsString>,
    config: Config,
    logs: LogHandle,
    shared: Arc<Shared>,
    metrics_server: Option<MetricsServer>,
    store: Store,
    registration: Registration,
    liveness: Option<Liveness>,
    tunnel: Option<TunnelAllocator>,
    cluster: Option<ClusterAgent>,
    /// Without BGP: the control socket's speaker handle that never comes.
    no_speaker: Option<tokio::sync::watch::Sender<Option<SpeakerHandle>>>,
    control: Option<CtlServer>,
    backend: Option<Arc<NodeBackend>>,
    felix_in_sync: Arc<AtomicBool>,
    started: String,
}

/// Runs the daemon until SIGTERM/SIGINT. `args` are the command line (re-read on SIGHUP).
pub async fn run(args: Vec<OsString>, config: Config, logs: LogHandle) -> Result<(), DaemonError> {
    let mut signals = Signals::install()?;
    let shared = Arc::new(Shared {
        metrics: NodeMetrics::new(&config.node_name),
        scrape: tokio::sync::Mutex::new(()),
        agent: Mutex::new(None),
        speaker: Mutex::new(None),
        ready: AtomicBool::new(false),
    });
    for given in &config.given {
        info!(setting = %given, value = %given.value, "configuration");
    }
    let metrics_server = start_metrics(config.metrics_listen, &shared).await?;
    let ipv4 = autodetect::detect(&config.ipv4, true).await?;
    let ipv6 = autodetect::detect(&config.ipv6, false).await?;
    let Some(store) = connect(&config, &mut signals).await? else {
        return Ok(());
    };
    let registration = Registration {
        node_name: config.node_name.clone(),
        ipv4,
        ipv6,
        asn: config.asn,
        rr_cluster_id: config.rr_cluster_id,
    };
    if !register_until_done(&store, &registration, &mut signals).await? {
        return Ok(());
    }
    let started = now_rfc3339();
    let liveness = Liveness::spawn(
        store.clone(),
        &config.node_name,
        liveness_record(&registration, &started),
        LIVENESS_TTL,
    );
    let mut daemon = Daemon {
        args,
        config,
        logs,
        shared,
        metrics_server,
        store,
        registration,
        liveness: Some(liveness),
        tunnel: None,
        cluster: None,
        no_speaker: None,
        control: None,
        backend: None,
        felix_in_sync: Arc::new(AtomicBool::new(false)),
        started,
    };
    let result = async {
        if daemon.config.backend.tunnel() {
            daemon.tunnel = Some(TunnelAllocator::spawn(
                daemon.store.clone(),
                daemon.config.node_name.clone(),
            ));
        }
        daemon.start_agent().await?;
        if daemon.config.backend.bgp() {
            daemon.start_speaker().await;
        } else {
            info!(backend = ?daemon.config.backend, "networking backend without BGP: no speaker");
        }
        daemon.start_control().await?;
        daemon.serve(&mut signals).await
    }
    .await;
    daemon
        .shutdown(*result.as_ref().unwrap_or(&Shutdown::Restart))
        .await;
    result.map(|_| ())
}

impl Daemon {
    async fn start_agent(&mut self) -> Result<(), DaemonError> {
        let mut agent_config = AgentConfig::new(&self.config.node_name, self.config.etcd.clone());
        if self.config.policy {
            agent_config = agent_config.with_nftables();
        } else {
            info!("--no-policy: routes only, no nftables");
        }
        let agent = tokio::task::spawn_blocking(move || Agent::start(agent_config))
            .await
            .map_err(|_| DaemonError::Agent(AgentError::Panicked("start")))?
            .map_err(DaemonError::Agent)?;
        if let Ok(mut slot) = self.shared.agent.lock() {
            *slot = Some(agent);
        }
        Ok(())
    }

    async fn start_speaker(&mut self) {
        let restarting = match crate::kernel_state::bgp_routes().await {
            Ok(0) => false,
            Ok(routes) => {
                info!(
                    routes,
                    "BGP routes from a previous instance found: restarting gracefully (RFC 4724)"
                );
                true
            }
            Err(error) => {
                warn!(%error, "cannot read kernel routes; starting the speaker fresh");
                false
            }
        };
        let mut base = SpeakerConfig::new(Ipv4Addr::UNSPECIFIED, DEFAULT_ASN);
        base.node_ipv6 = self.registration.ipv6.and_then(|net| match net.ip() {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        });
        if let Some(gr) = &mut base.graceful_restart {
            gr.restarting = restarting;
        }
        self.cluster = Some(ClusterAgent::spawn(
            self.store.clone(),
            ClusterOptions {
                node_name: self.config.node_name.clone(),
                base,
                launch: Launch::Kernel,
                secrets: Some(Arc::new(FileSecrets::new(&self.config.secrets_dir))),
            },
        ));
    }

    async fn start_control(&mut self) -> Result<(), DaemonError> {
        let handles = match &self.cluster {
            Some(cluster) => cluster.handles(),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                self.no_speaker = Some(tx);
                rx
            }
        };
        let speaker = SpeakerBackend::new("vrouterd", env!("CARGO_PKG_VERSION"), handles);
        let backend = Arc::new(NodeBackend::new(speaker, Arc::clone(&self.felix_in_sync)));
        let options = CtlOptions {
            layout: match self.config.ctl_layout {
                CtlLayout::Bird2 => Layout::Bird2,
                CtlLayout::Bird1 => Layout::Bird16,
            },
            ..CtlOptions::default()
        };
        let server = bgp::ctl::serve(&self.config.control_socket, options, Arc::clone(&backend))
            .await
            .map_err(DaemonError::Control)?;
        info!(path = %self.config.control_socket.display(), "control socket listening");
        self.control = Some(server);
        self.backend = Some(backend);
        Ok(())
    }

    fn speaker_handle(&self) -> Option<SpeakerHandle> {
        let handle = self.cluster.as_ref().and_then(ClusterAgent::handle);
        if let Ok(mut slot) = self.shared.speaker.lock() {
            slot.clone_from(&handle);
        }
        handle
    }

    fn felix_in_sync(&self) -> bool {
        self.shared
            .agent
            .lock()
            .ok()
            .is_some_and(|a| a.as_ref().is_some_and(|a| a.status().in_sync()))
    }

    /// Waits for signals (or `down` / `graceful restart` on the control socket); logs
    /// readiness once. Returns how the speaker is to stop.
    async fn serve(&mut self, signals: &mut Signals) -> Result<Shutdown, DaemonError> {
        let start = Instant::now();
        let mut ready = false;
        let mut poll = tokio::time::interval(READY_POLL);
        let mut requests = match &self.backend {
            Some(backend) => backend.shutdown_requests(),
            None => tokio::sync::watch::channel(None).1,
        };
        loop {
            tokio::select! {
                event = signals.next() => match event {
                    Event::Terminate(name) => {
                        info!(signal = name, "shutting down; kernel routes and nftables stay in place");
                        return Ok(Shutdown::Restart);
                    }
                    Event::Reload => self.reload().await,
                },
                Ok(()) = requests.changed() => {
                    let how = *requests.borrow_and_update();
                    if let Some(how) = how {
                        info!(?how, "shutdown requested on the control socket");
                        return Ok(how);
                    }
                }
                _ = poll.tick() => {
                    let speaker = self.speaker_handle();
                    let felix = self.felix_in_sync();
                    if felix && !self.felix_in_sync.swap(true, Ordering::AcqRel)
                        && let Some(backend) = &self.backend
                    {
                        backend.felix_synced_at(std::time::SystemTime::now());
                    }
                    if let (Some(backend), Some(IpAddr::V4(v4))) =
                        (&self.backend, self.registration.ipv4.map(|a| a.ip()))
                    {
                        backend.speaker().set_router_id(v4);
                    }
                    self.follow_restart_recovery(speaker.as_ref()).await;
                    if !ready {
                        let ctl = self.control.is_some();
                        let bgp = speaker.is_some()
                            || self.registration.ipv4.is_none()
                            || !self.config.backend.bgp();
                        if felix && bgp && ctl {
                            ready = true;
                            self.shared.ready.store(true, Ordering::Release);
                            info!(
                                node = %self.config.node_name,
                                ipv4 = ?self.registration.ipv4.map(|a| a.to_string()),
                                ipv6 = ?self.registration.ipv6.map(|a| a.to_string()),
                                policy = self.config.policy,
                                metrics = ?self.metrics_server.as_ref().map(|m| m.addr().to_string()),
                                startup_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                                "vrouterd ready"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Shows graceful-restart recovery on the control socket (`show status`) while the
    /// speaker keeps the previous instance's routes waiting for End-of-RIB.
    async fn follow_restart_recovery(&self, speaker: Option<&SpeakerHandle>) {
        let (Some(backend), Some(speaker)) = (&self.backend, speaker) else {
            return;
        };
        if let Ok(Ok(summary)) = tokio::time::timeout(READY_POLL, speaker.rib_summary()).await {
            let recovering = summary.restart_recovery;
            if backend.daemon().graceful_restart_recovery != recovering {
                info!(recovering, "graceful restart recovery");
            }
            backend.speaker().set_graceful_restart_recovery(recovering);
        }
    }

    /// SIGHUP: re-reads the configuration and applies what can change live.
    async fn reload(&mut self) {
        info!("SIGHUP: reloading the configuration");
        let new = match config::load(&self.args, config::hostname()) {
            Ok(new) => new,
            Err(error) => {
                error!(%error, "reload failed; the running configuration stays");
                return;
            }
        };
        let old = self.config.clone();
        if new.log_level != old.log_level {
            match self.logs.set_level(new.log_level.as_deref()) {
                Ok(()) => info!(level = ?new.log_level, "log level changed"),
                Err(error) => warn!(%error, "cannot change the log level"),
            }
        }
        if new.metrics_listen != old.metrics_listen {
            self.metrics_server = None;
            match start_metrics(new.metrics_listen, &self.shared).await {
                Ok(server) => self.metrics_server = server,
                Err(error) => error!(%error, "metrics endpoint not restarted"),
            }
        }
        let restart_needed = [
            (Key::NodeName, new.node_name != old.node_name),
            (Key::EtcdEndpoints, new.etcd != old.etcd),
            (Key::ControlSocket, new.control_socket != old.control_socket),
            (Key::CtlLayout, new.ctl_layout != old.ctl_layout),
            (Key::LogFormat, new.log_format != old.log_format),
            (Key::NoPolicy, new.policy != old.policy),
            (Key::SecretsDir, new.secrets_dir != old.secrets_dir),
            (Key::NetworkingBackend, new.backend != old.backend),
        ];
        for (key, changed) in restart_needed {
            if changed {
                warn!(
                    setting = key.flag(),
                    "changed; takes effect after a restart"
                );
            }
        }
        if let Some(cluster) = &self.cluster {
            // A missing BGP password file may have appeared; a present one may have changed.
            cluster.recheck_secrets();
        }
        let ipv4 = match autodetect::detect(&new.ipv4, true).await {
            Ok(a) => a,
            Err(error) => {
                error!(%error, "IPv4 address not re-detected; keeping the current one");
                self.registration.ipv4
            }
        };
        let ipv6 = match autodetect::detect(&new.ipv6, false).await {
            Ok(a) => a,
            Err(error) => {
                error!(%error, "IPv6 address not re-detected; keeping the current one");
                self.registration.ipv6
            }
        };
        let registration = Registration {
            node_name: old.node_name.clone(),
            ipv4,
            ipv6,
            asn: new.asn,
            rr_cluster_id: new.rr_cluster_id,
        };
        if registration != self.registration {
            let store = ResourceStore::new(self.store.clone());
            match registration::register(&store, &registration).await {
                Ok(outcome) => {
                    info!(?outcome, "Node updated after reload");
                    if let Some(liveness) = &self.liveness {
                        liveness.update(liveness_record(&registration, &self.started));
                    }
                    self.registration = registration;
                }
                Err(error) => error!(%error, "Node not updated after reload"),
            }
        }
        // Keep the old node name: changing it needs a restart.
        self.config = Config {
            node_name: old.node_name,
            etcd: old.etcd,
            control_socket: old.control_socket,
            ctl_layout: old.ctl_layout,
            log_format: old.log_format,
            policy: old.policy,
            secrets_dir: old.secrets_dir,
            backend: old.backend,
            ..new
        };
    }

    async fn shutdown(&mut self, how: Shutdown) {
        self.shared.ready.store(false, Ordering::Release);
        if let Some(control) = self.control.take() {
            control.shutdown().await;
        }
        if let Some(cluster) = self.cluster.take() {
            // Restart (RFC 4724): no NOTIFICATION, kernel routes stay; peers keep ours while we
            // restart. Stop (`down` on the control socket): Cease, BGP routes withdrawn.
            cluster.stop(how).await;
        }
        let agent = self.shared.agent.lock().ok().and_then(|mut a| a.take());
        if let Some(agent) = agent {
            match tokio::task::spawn_blocking(move || agent.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(%error, "felix agent did not stop cleanly"),
                Err(_) => warn!("felix agent stop panicked"),
            }
        }
        if let Some(tunnel) = self.tunnel.take() {
            tunnel.stop().await;
        }
        if let Some(liveness) = self.liveness.take() {
            // A stop is usually a restart: let the record expire with its lease.
            liveness.stop(false).await;
        }
        self.metrics_server = None;
        info!("vrouterd stopped");
    }
}

async fn start_metrics(
    listen: Option<SocketAddr>,
    shared: &Arc<Shared>,
) -> Result<Option<MetricsServer>, DaemonError> {
    let Some(addr) = listen else {
        info!("metrics endpoint off");
        return Ok(None);
    };
    let exporter: Arc<dyn Exporter> = shared.clone();
    MetricsServer::start(addr, exporter)
        .await
        .map(Some)
        .map_err(|source| DaemonError::Metrics { addr, source })
}

/// Connects to etcd, retrying with backoff; `None` if a stop signal came first.
async fn connect(config: &Config, signals: &mut Signals) -> Result<Option<Store>, DaemonError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        let error = match Store::connect(&config.etcd).await {
            Ok(store) => {
                info!(endpoints = %config.etcd.endpoints.join(","), "connected to etcd");
                return Ok(Some(store));
            }
            Err(error @ DatastoreError::Unavailable { .. }) => error,
            Err(other) => return Err(DaemonError::Etcd(other)),
        };
        let waited = start.elapsed();
        if let Some(limit) = config.etcd_start_timeout
            && waited >= limit
        {
            return Err(DaemonError::EtcdUnreachable {
                waited,
                source: error,
            });
        }
        warn!(%error, ?backoff, "etcd unreachable; retrying");
        let pause = match config.etcd_start_timeout {
            Some(limit) => backoff.min(limit.saturating_sub(waited)),
            None => backoff,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            event = signals.next() => match event {
                Event::Terminate(name) => {
                    info!(signal = name, "stopping before etcd was reached");
                    return Ok(None);
                }
                Event::Reload => info!("SIGHUP ignored while waiting for etcd"),
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Registers the Node, retrying while etcd is unavailable; false if a stop signal came first.
async fn register_until_done(
    store: &Store,
    registration: &Registration,
    signals: &mut Signals,
) -> Result<bool, DaemonError> {
    let resources = ResourceStore::new(store.clone());
    let mut backoff = Duration::from_millis(200);
    loop {
        match registration::register(&resources, registration).await {
            Ok(outcome) => {
                let verb = match outcome {
                    Registered::Created => "created",
                    Registered::Updated => "updated",
                    Registered::Unchanged => "unchanged",
                };
                info!(
                    node = %registration.node_name,
                    ipv4 = ?registration.ipv4.map(|a| a.to_string()),
                    ipv6 = ?registration.ipv6.map(|a| a.to_string()),
                    asn = ?registration.asn,
                    rr_cluster_id = ?registration.rr_cluster_id.map(|a| a.to_string()),
                    outcome = verb,
                    "Node registered"
                );
                return Ok(true);
            }
            Err(error) if error.is_unavailable() => {
                warn!(%error, ?backoff, "etcd unavailable while registering; retrying");
            }
            Err(error) => return Err(error.into()),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            event = signals.next() => if let Event::Terminate(_) = event {
                return Ok(false);
            },
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn liveness_record(registration: &Registration, started: &str) -> LivenessRecord {
    let text = |a: Option<IpNetwork>| a.map(|a| a.to_string());
    LivenessRecord {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: started.to_string(),
        pid: std::process::id(),
        ipv4: text(registration.ipv4),
        ipv6: text(registration.ipv6),
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
