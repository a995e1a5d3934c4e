//! [`Agent`]: the running node agent — two threads joined by one channel.
//!
//! ```text
//!  datastore thread (caller's netns)            dataplane thread (node netns)
//!  ┌──────────────────────────────────┐         ┌───────────────────────────────────────┐
//!  │ current_thread runtime           │         │ setns(/var/run/netns/<name>) first     │
//!  │ Store::connect (retry)           │ Input   │ current_thread runtime (timers only)   │
//!  │ Syncer /vrouter/resources/ ──────┼──mpsc──▶│ calc ─▶ sequencer ─▶ managers ─▶ kernel│
//!  │ Syncer /vrouter/ipam/blocks/ ────┤         │  nft policy+NAT, sysctls, MTU, routes  │
//!  │ Syncer /vrouter/ipam/affinity/n/ ┘         │ VXLAN VTEP, resync timer (90 s)        │
//!  └──────────────────────────────────┘         └───────────────────────────────────────┘
//! ```
//!
//! The datastore thread stays in the caller's namespace (etcd is reached there); the
//! dataplane thread enters the node's namespace before opening any netlink or nftables
//! socket, so every kernel object it touches belongs to that namespace (crates.md §1). It
//! needs no async I/O: netlink requests complete inside `sendmsg`; its runtime only provides
//! the channel and timers. Entering the namespace uses rustix's safe `setns` wrapper, as the
//! CNI plugin does.
//!
//! Lifecycle: updates are applied as they arrive (routes and sysctls before InSync, so a
//! restart adopts and re-programs promptly), stale kernel state is removed and policy is
//! programmed only after all three syncers reported InSync once. Stopping the agent leaves
//! every kernel object in place (routes keep forwarding, nftables keeps filtering).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use datastore::etcd::{EtcdConfig, Store};
use datastore::keys::{IPAM_BLOCKS, RESOURCES, ipam_affinity_prefix};
use datastore::syncer::{Decoder, SyncEvent, SyncStatus, Syncer, Update};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::calc::nat::{NatCalc, NatDesired};
use crate::calc::{self, Calc, Output, Value};
use crate::driver::routes::RouteError;
use crate::driver::vxlan::{VtepError, VtepReport};
use crate::manager::endpoints::EndpointManager;
use crate::manager::mtu::MtuManager;
use crate::manager::policy::{PolicyManager, PolicyPlane, PolicyPlaneError};
use crate::manager::routes::RouteManager;
use crate::manager::vtep::VtepManager;
use crate::metrics::{IpFamily, Metrics, Part};
use crate::nft::{NatCounters, NatDataplane, NatState, NftError};
use crate::sequencer::Sequencer;

/// Default period of the kernel resync (Felix's `RouteRefreshInterval`).
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(90);
/// Retry period while some work is pending (missing interface, failed request).
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Most inputs consumed before applying (bounds latency under a flood).
const MAX_INPUTS_PER_APPLY: usize = 20_000;
/// Channel capacity between the threads.
const CHANNEL_CAPACITY: usize = 4096;
/// Period of reading the NAT rules' counters back into the metrics.
const NAT_COUNTER_INTERVAL: Duration = Duration::from_secs(5);
/// Longest pause between etcd connection attempts.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Builds the policy dataplane on the dataplane thread (inside the namespace).
pub type PolicyPlaneFactory =
    Box<dyn FnOnce() -> Result<Box<dyn PolicyPlane>, PolicyPlaneError> + Send>;

/// Errors starting or running the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The network namespace could not be entered.
    #[error("cannot enter network namespace {path}")]
    Netns {
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A thread or runtime could not be created.
    #[error("cannot start the {what}")]
    Start {
        /// What.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The route driver could not start.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The VTEP driver could not start.
    #[error("VXLAN driver: {0}")]
    Vtep(#[from] VtepError),
    /// The policy dataplane could not start.
    #[error(transparent)]
    Policy(#[from] PolicyPlaneError),
    /// The NAT dataplane could not start.
    #[error("outbound NAT dataplane: {0}")]
    Nat(#[from] NftError),
    /// A thread ended abnormally.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// Agent configuration (cluster intent comes from the datastore, not from here).
pub struct AgentConfig {
    /// This node's name (`spec.node` of its WorkloadEndpoints, IPAM affinities).
    pub node_name: String,
    /// How to reach etcd.
    pub etcd: EtcdConfig,
    /// Period of the kernel read-back that repairs drift.
    pub resync_interval: Duration,
    /// Network namespace to program (`/var/run/netns/<name>`); `None` = the caller's.
    pub netns: Option<PathBuf>,
    /// The policy dataplane; `None` runs routes and sysctls only.
    pub policy_plane: Option<PolicyPlaneFactory>,
    /// Programs outbound NAT for pools with `natOutgoing` (nftables, chain
    /// `vr-nat-postrouting` in table `inet vrouter`).
    pub nat: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("node_name", &self.node_name)
            .field("etcd", &self.etcd)
            .field("resync_interval", &self.resync_interval)
            .field("netns", &self.netns)
            .field("policy_plane", &self.policy_plane.is_some())
            .field("nat", &self.nat)
            .finish()
    }
}

impl AgentConfig {
    /// Defaults: resync every 90 s, the caller's namespace, no policy dataplane.
    pub fn new(node_name: impl Into<String>, etcd: EtcdConfig) -> Self {
        Self {
            node_name: node_name.into(),
            etcd,
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            netns: None,
            policy_plane: None,
            nat: false,
        }
    }

    /// Enforces policy with the nftables dataplane (table `inet vrouter`), outbound NAT
    /// included.
    pub fn with_nftables(mut self) -> Self {
        self.policy_plane = Some(crate::manager::policy::nftables_plane());
        self.nat = true;
        self
    }

    /// Programs the namespace `/var/run/netns/<name>`.
    pub fn in_netns(mut self, name: &str) -> Self {
        self.netns = Some(PathBuf::from(format!("/var/run/netns/{name}")));
        self
    }
}

/// Which syncer an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/vrouter/resources/`.
    Resources,
    /// `/vrouter/ipam/blocks/`.
    Blocks,
    /// `/vrouter/ipam/affinity/<node>/`.
    Affinities,
}

const SOURCES: [Source; 3] = [Source::Resources, Source::Blocks, Source::Affinities];

/// What the datastore side sends the dataplane thread.
#[derive(Debug)]
pub enum Input {
    /// A key changed.
    Update(Update<Value>),
    /// A syncer's status changed.
    Status(Source, SyncStatus),
}

/// Counters the agent's owner can poll (tests wait on them instead of sleeping).
#[derive(Debug, Default)]
pub struct AgentStatus {
    in_sync: AtomicBool,
    applies: AtomicU64,
    resyncs: AtomicU64,
}

impl AgentStatus {
    /// True once every syncer reported InSync and that state was applied.
    pub fn in_sync(&self) -> bool {
        self.in_sync.load(Ordering::Acquire)
    }

    /// Number of apply passes completed.
    pub fn applies(&self) -> u64 {
        self.applies.load(Ordering::Acquire)
    }

    /// Number of kernel resyncs completed.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::Acquire)
    }
}

/// A running agent. Dropping it stops both threads (kernel state stays in place).
pub struct Agent {
    registry: Registry,
    metrics: Metrics,
    status: Arc<AgentStatus>,
    stop_datastore: Option<oneshot::Sender<()>>,
    datastore: Option<JoinHandle<()>>,
    dataplane: Option<JoinHandle<Result<(), AgentError>>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts the agent: the dataplane thread (entering the namespace, opening the
    /// kernel sockets; errors there are returned) and the datastore thread.
    pub fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let status = Arc::new(AgentStatus::default());
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();

        let AgentConfig {
            node_name,
            etcd,
            resync_interval,
            netns,
            policy_plane,
            nat,
        } = config;
        let dp_node = node_name.clone();
        let dp_metrics = metrics.clone();
        let dp_status = Arc::clone(&status);
        let dataplane = std::thread::Builder::new()
            .name("felix-dataplane".into())
            .spawn(move || {
                let setup = || -> Result<(Dataplane, tokio::runtime::Runtime), AgentError> {
                    if let Some(path) = &netns {
                        enter_netns(path)?;
                    }
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .map_err(|source| AgentError::Start {
                            what: "dataplane runtime",
                            source,
                        })?;
                    let policy = match policy_plane {
                        Some(factory) => Some(PolicyManager::new(factory()?)),
                        None => None,
                    };
                    let mut dataplane = Dataplane::new(&dp_node, policy, dp_metrics, dp_status)?;
                    if nat {
                        dataplane.nat = Some(NatDataplane::new()?);
                    }
                    Ok((dataplane, runtime))
                };
                match setup() {
                    Ok((mut dataplane, runtime)) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(dataplane.run(rx, resync_interval));
                        Ok(())
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let _ = ready_tx.send(Err(e));
                        Err(AgentError::Start {
                            what: "dataplane",
                            source: std::io::Error::other(message),
                        })
                    }
                }
            })
            .map_err(|source| AgentError::Start {
                what: "dataplane thread",
                source,
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = dataplane.join();
                return Err(e);
            }
            Err(_) => {
                let _ = dataplane.join();
                return Err(AgentError::Panicked("dataplane"));
            }
        }

        let (stop_tx, stop_rx) = oneshot::channel();
        let datastore = std::thread::Builder::new()
            .name("felix-datastore".into())
            .spawn(move || run_datastore(etcd, node_name, tx, stop_rx))
            .map_err(|source| AgentError::Start {
                what: "datastore thread",
                source,
            })?;
        info!("felix agent started");
        Ok(Agent {
            registry,
            metrics,
            status,
            stop_datastore: Some(stop_tx),
            datastore: Some(datastore),
            dataplane: Some(dataplane),
        })
    }

    /// The metrics registry (for the node daemon's `/metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Progress counters.
    pub fn status(&self) -> &AgentStatus {
        &self.status
    }

    /// Stops both threads and waits for them; kernel state is left in place.
    pub fn stop(mut self) -> Result<(), AgentError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AgentError> {
        if let Some(stop) = self.stop_datastore.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.datastore.take() {
            t.join().map_err(|_| AgentError::Panicked("datastore"))?;
        }
        // The datastore thread dropped the channel's sender: the dataplane loop ends.
        if let Some(t) = self.dataplane.take() {
            t.join().map_err(|_| AgentError::Panicked("dataplane"))??;
        }
        info!("felix agent stopped");
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            warn!(%error, "felix agent did not stop cleanly");
        }
    }
}

/// Moves the calling thread into the network namespace at `path` (e.g.
/// `/var/run/netns/<name>`); sockets it opens afterwards belong to that namespace. Use it on
/// a thread of its own: the thread never returns to its previous namespace.
pub fn enter_netns(path: &Path) -> Result<(), AgentError> {
    let error = |source| AgentError::Netns {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(error)?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| error(e.into()))
}

/// The datastore thread: connects, runs the three syncers, forwards their events.
fn run_datastore(
    etcd: EtcdConfig,
    node: String,
    tx: mpsc::Sender<Input>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            warn!(%error, "cannot build the datastore runtime");
            return;
        }
    };
    runtime.block_on(async move {
        tokio::select! {
            _ = stop => {}
            () = forward(etcd, node, tx) => {}
        }
    });
}

async fn forward(etcd: EtcdConfig, node: String, tx: mpsc::Sender<Input>) {
    let mut backoff = Duration::from_millis(100);
    let store = loop {
        match Store::connect(&etcd).await {
            Ok(store) => break store,
            Err(error) => {
                warn!(%error, ?backoff, "cannot reach etcd; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
            }
        }
    };
    let decoder: Decoder<Value> = Arc::new(calc::decode);
    let mut resources = Syncer::spawn(store.clone(), RESOURCES, Arc::clone(&decoder));
    let mut blocks = Syncer::spawn(store.clone(), IPAM_BLOCKS, Arc::clone(&decoder));
    let mut affinities = Syncer::spawn(store, ipam_affinity_prefix(&node), decoder);
    loop {
        let (source, event) = tokio::select! {
            e = resources.next() => (Source::Resources, e),
            e = blocks.next() => (Source::Blocks, e),
            e = affinities.next() => (Source::Affinities, e),
        };
        let input = match event {
            None => return,
            Some(SyncEvent::Update(u)) => Input::Update(u),
            Some(SyncEvent::Status(s)) => Input::Status(source, s),
            Some(SyncEvent::Invalid { key, error, .. }) => {
                debug!(%key, %error, "undecodable value");
                continue;
            }
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}

/// The dataplane side: calc → sequencer → managers.
struct Dataplane {
    calc: Calc,
    sequencer: Sequencer,
    routes: RouteManager,
    vtep: VtepManager,
    endpoints: EndpointManager,
    mtu: MtuManager,
    policy: Option<PolicyManager>,
    /// Pools and nodes → outbound NAT sets.
    nat_calc: NatCalc,
    nat: Option<NatDataplane>,
    /// NAT counters last read (metrics get the increase).
    nat_seen: NatCounters,
    metrics: Metrics,
    status: Arc<AgentStatus>,
    in_sync: [bool; 3],
    seen_in_sync: bool,
}

impl Dataplane {
    fn new(
        node: &str,
        policy: Option<PolicyManager>,
        metrics: Metrics,
        status: Arc<AgentStatus>,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            calc: Calc::new(node),
            sequencer: Sequencer::new(),
            routes: RouteManager::new()?,
            vtep: VtepManager::new()?,
            endpoints: EndpointManager::new(),
            mtu: MtuManager::new(),
            policy,
            nat_calc: NatCalc::new(node),
            nat: None,
            nat_seen: NatCounters::default(),
            metrics,
            status,
            in_sync: [false; 3],
            seen_in_sync: false,
        })
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Input>, resync_interval: Duration) {
        let mut next_resync = Instant::now() + resync_interval;
        let mut next_counters = Instant::now() + NAT_COUNTER_INTERVAL;
        let mut resync_now = false;
        loop {
            let until_resync = next_resync.saturating_duration_since(Instant::now());
            let mut wait = if self.has_pending_work() {
                until_resync.min(RETRY_INTERVAL)
            } else {
                until_resync
            };
            if self.nat.is_some() {
                wait = wait.min(next_counters.saturating_duration_since(Instant::now()));
            }
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(input)) => {
                    self.handle(input);
                    let mut taken = 1;
                    while taken < MAX_INPUTS_PER_APPLY {
                        match rx.try_recv() {
                            Ok(input) => {
                                self.handle(input);
                                taken += 1;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(None) => return,
                Err(_) => {}
            }
            if Instant::now() >= next_resync {
                resync_now = true;
                next_resync = Instant::now() + resync_interval;
            }
            if resync_now {
                resync_now = false;
                self.request_resync();
            }
            self.flush_and_apply();
            if Instant::now() >= next_counters {
                next_counters = Instant::now() + NAT_COUNTER_INTERVAL;
                self.read_nat_counters();
            }
        }
    }

    /// Adds the NAT rules' counter increases to the metrics (a counter that went down was
    /// re-created: all of its value is new).
    fn read_nat_counters(&mut self) {
        let Some(nat) = &mut self.nat else {
            return;
        };
        let now = match nat.counters() {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "cannot read the NAT counters");
                return;
            }
        };
        let seen = std::mem::replace(&mut self.nat_seen, now);
        for (family, (packets, bytes), (seen_packets, seen_bytes)) in
            [("ipv4", now.v4, seen.v4), ("ipv6", now.v6, seen.v6)]
        {
            let grown = |n: u64, before: u64| if n >= before { n - before } else { n };
            let label = IpFamily::new(family);
            self.metrics
                .nat_outgoing_connections
                .get_or_create(&label)
                .inc_by(grown(packets, seen_packets));
            self.metrics
                .nat_outgoing_first_packet_bytes
                .get_or_create(&label)
                .inc_by(grown(bytes, seen_bytes));
        }
    }

    fn has_pending_work(&self) -> bool {
        self.routes.has_pending_work()
            || self.vtep.has_pending_work()
            || self.endpoints.has_pending_work()
            || self.mtu.has_pending_work()
            || (self.seen_in_sync && self.policy.as_ref().is_some_and(|p| p.has_pending_work()))
            || (self.seen_in_sync && self.nat.as_ref().is_some_and(|n| n.has_pending_work()))
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Update(update) => {
                self.metrics.datastore_updates.inc();
                self.nat_calc.on_update(&update);
                self.calc.on_update(update);
            }
            Input::Status(source, status) => {
                let index = SOURCES.iter().position(|s| *s == source).unwrap_or(0);
                if status == SyncStatus::InSync {
                    self.in_sync[index] = true;
                }
                if !self.seen_in_sync && self.in_sync.iter().all(|s| *s) {
                    info!(node = self.calc.node(), "datastore in sync");
                    self.seen_in_sync = true;
                    self.sequencer.set_in_sync();
                    self.routes.set_in_sync();
                    self.vtep.set_in_sync();
                }
            }
        }
    }

    fn request_resync(&mut self) {
        self.routes.request_resync();
        self.vtep.request_resync();
        self.endpoints.request_resync();
        self.mtu.request_resync();
        if let Some(p) = &mut self.policy {
            p.request_resync();
        }
        if let Some(n) = &mut self.nat {
            n.request_resync();
        }
        self.status.resyncs.fetch_add(1, Ordering::AcqRel);
    }

    fn flush_and_apply(&mut self) {
        for output in self.calc.flush() {
            self.sequencer.push(output);
        }
        for output in self.sequencer.flush() {
            match output {
                Output::Policy(desired) => {
                    if let Some(p) = &mut self.policy {
                        p.on_policy(*desired);
                    }
                }
                other => {
                    self.endpoints.on_update(&other);
                    self.mtu.on_update(&other);
                    self.vtep.on_update(&other);
                    self.routes.on_update(&other);
                }
            }
        }
        // Policy first (nothing becomes reachable unfiltered), then the interfaces, then
        // routes. Policy waits for InSync: a partial datastore must not narrow filtering.
        if self.seen_in_sync
            && let Some(policy) = &mut self.policy
            && policy.has_pending_work()
        {
            let start = Instant::now();
            let result = policy.apply();
            self.observe("policy", start);
            match result {
                Ok(report) => self.repaired("policy", report.repaired),
                Err(error) => {
                    warn!(%error, "policy apply failed; retrying");
                    self.kernel_error("policy", 1);
                }
            }
        }
        if let Some(desired) = self.nat_calc.flush() {
            self.on_nat(&desired);
        }
        // NAT after policy and, like it, only once in sync: a partial pool list must not
        // masquerade pod-to-pod traffic.
        if self.seen_in_sync
            && let Some(nat) = &mut self.nat
            && nat.has_pending_work()
        {
            let start = Instant::now();
            let result = nat.apply();
            self.observe("nat", start);
            match result {
                Ok(report) => {
                    if report.read_back && report.objects + report.elements > 0 {
                        self.repaired("nat", report.objects + report.elements);
                    }
                }
                Err(error) => {
                    warn!(%error, "NAT apply failed; retrying");
                    self.kernel_error("nat", 1);
                }
            }
        }
        if self.endpoints.has_pending_work() {
            let start = Instant::now();
            let report = self.endpoints.apply();
            self.observe("sysctl", start);
            self.kernel_error("sysctl", report.errors);
        }
        if self.mtu.has_pending_work() {
            let start = Instant::now();
            let report = self.mtu.apply();
            self.observe("mtu", start);
            self.repaired("mtu", report.changed);
            self.kernel_error("mtu", report.errors);
        }
        // VTEP additions before the routes through it; its removals after the routes.
        if self.vtep.has_pending_work() {
            let start = Instant::now();
            let result = self.vtep.apply_additions();
            self.observe("vtep", start);
            self.vtep_applied(result);
        }
        if self.routes.has_pending_work() {
            let start = Instant::now();
            let result = self.routes.apply();
            self.observe("routes", start);
            match result {
                Ok(report) => {
                    if report != Default::default() {
                        debug!(?report, "routes applied");
                    }
                    self.repaired("routes", report.repaired);
                    self.kernel_error("routes", report.errors);
                }
                Err(error) => {
                    warn!(%error, "route apply failed; retrying");
                    self.kernel_error("routes", 1);
                }
            }
        }
        if self.vtep.has_pending_work() {
            let start = Instant::now();
            let result = self.vtep.apply();
            self.observe("vtep", start);
            self.vtep_applied(result);
        }
        if self.seen_in_sync && !self.status.in_sync() {
            self.status.in_sync.store(true, Ordering::Release);
        }
        self.status.applies.fetch_add(1, Ordering::AcqRel);
    }

    fn vtep_applied(&self, result: Result<VtepReport, VtepError>) {
        match result {
            Ok(report) => {
                if report.changes > 0 || report.adopted > 0 {
                    debug!(?report, "VTEP applied");
                }
                self.repaired("vtep", report.repaired);
                self.kernel_error("vtep", report.errors);
            }
            Err(error) => {
                warn!(%error, "VTEP apply failed; retrying");
                self.kernel_error("vtep", 1);
            }
        }
    }

    /// New pools, nodes or MTU settings: the NAT sets and the MTU ceilings.
    fn on_nat(&mut self, desired: &NatDesired) {
        self.mtu.on_pools(desired);
        if let Some(nat) = &mut self.nat {
            nat.set_desired(NatState {
                masq_pools: desired.masq_pools.iter().copied().collect(),
                all_pools: desired.all_pools.iter().copied().collect(),
                node_addrs: desired.node_addrs.iter().copied().collect(),
            });
        }
    }

    fn observe(&self, part: &str, start: Instant) {
        self.metrics
            .apply_seconds
            .get_or_create(&Part::new(part))
            .observe(start.elapsed().as_secs_f64());
    }

    fn repaired(&self, part: &str, n: usize) {
        if n > 0 {
            info!(part, repaired = n, "resync repaired drift");
            self.metrics
                .resync_repairs
                .get_or_create(&Part::new(part))
                .inc_by(n as u64);
        }
    }

    fn kernel_error(&self, part: &str, n: usize) {
        if n > 0 {
            self.metrics
                .kernel_errors
                .get_or_create(&Part::new(part))
                .inc_by(n as u64);
        }
    }
}
