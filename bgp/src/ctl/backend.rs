//! Where the control socket gets its data and sends its actions: the [`ControlBackend`]
//! trait the daemons implement (or take ready-made as [`SpeakerBackend`]), and the plain data
//! it returns.
#![allow(clippy::disallowed_methods)] // the backend is I/O shell: it stamps times

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::SystemTime;

use futures::TryStreamExt;
use tokio::sync::watch;

use crate::speaker::{
    PeerAction, PeerActionOutcome, PeerStatus, RibSummary, RouteDetail, RouteFilter,
    RouteSelection, Shutdown, SpeakerHandle,
};

/// The daemon as `show status` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    /// Program name (`vrouterd`, `vrouter-reflector`).
    pub name: String,
    /// Version string.
    pub version: String,
    /// BGP router id, once known.
    pub router_id: Option<Ipv4Addr>,
    /// Host name.
    pub hostname: String,
    /// When the daemon started.
    pub started: SystemTime,
    /// When the configuration last changed (the speaker was (re)configured).
    pub reconfigured: SystemTime,
    /// Graceful-restart recovery in progress (`0024` lines).
    pub graceful_restart_recovery: bool,
}

/// Kinds of the non-BGP protocols shown next to the BGP sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolKind {
    /// Interface scanning.
    Device,
    /// Kernel route programming.
    Kernel,
    /// Directly connected networks.
    Direct,
    /// Locally originated routes (IPAM blocks).
    Static,
}

impl ProtocolKind {
    /// BIRD's protocol column.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::Device => "Device",
            ProtocolKind::Kernel => "Kernel",
            ProtocolKind::Direct => "Direct",
            ProtocolKind::Static => "Static",
        }
    }
}

/// A non-BGP protocol row (`device1`, `kernel1`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudoProtocol {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: ProtocolKind,
    /// Routing table it feeds, if any (`master4`).
    pub table: Option<String>,
    /// Running.
    pub up: bool,
    /// Since when.
    pub since: SystemTime,
    /// Info column.
    pub info: String,
    /// Routes imported into the RIB by it.
    pub imported: usize,
    /// Routes exported to it (programmed into the kernel).
    pub exported: usize,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Administratively up.
    pub admin_up: bool,
    /// Carrier (running).
    pub link_up: bool,
    /// Loopback.
    pub loopback: bool,
    /// MTU.
    pub mtu: u32,
    /// Addresses with prefix length.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// Where the control socket reads state and sends actions. `None` from the speaker queries
/// means the speaker is not running (yet): commands answer with no BGP protocols.
pub trait ControlBackend: Send + Sync + 'static {
    /// The daemon's identity and times.
    fn daemon(&self) -> DaemonInfo;
    /// BGP peers.
    fn peers(&self) -> impl Future<Output = Option<Vec<PeerStatus>>> + Send;
    /// Loc-RIB with every candidate route.
    fn routes(&self) -> impl Future<Output = Option<Vec<RouteDetail>>> + Send;
    /// The routes `filter` selects. The default filters [`ControlBackend::routes`]; a
    /// backend over a speaker asks the speaker, which copies only what is selected.
    fn select_routes(
        &self,
        filter: RouteFilter,
    ) -> impl Future<Output = Option<RouteSelection>> + Send {
        async move {
            let routes = self.routes().await?;
            Some(RouteSelection::of_details(&routes, &filter))
        }
    }
    /// RIB sizes.
    fn summary(&self) -> impl Future<Output = Option<RibSummary>> + Send;
    /// Enable/disable/restart/refresh a peer (`None`: speaker not running).
    fn peer_action(
        &self,
        peer: IpAddr,
        action: PeerAction,
    ) -> impl Future<Output = Option<PeerActionOutcome>> + Send;
    /// `graceful restart` (`Shutdown::Restart`) or `down` (`Shutdown::Stop`): the daemon stops.
    fn shutdown(&self, how: Shutdown) -> impl Future<Output = ()> + Send;
    /// Non-BGP protocols to list.
    fn protocols(&self) -> impl Future<Output = Vec<PseudoProtocol>> + Send;
    /// Network interfaces.
    fn interfaces(&self) -> impl Future<Output = Vec<Interface>> + Send;
}

/// A ready [`ControlBackend`] over the current speaker handle (from
/// [`crate::speaker::cluster::ClusterAgent::handles`] or a fixed one).
///
/// `down` and `graceful restart` are not carried out here: they are published on
/// [`SpeakerBackend::shutdown_requests`] for the daemon's main loop, which stops its agent
/// with that [`Shutdown`] and exits.
#[derive(Debug)]
pub struct SpeakerBackend {
    info: Arc<std::sync::Mutex<DaemonInfo>>,
    handles: watch::Receiver<Option<SpeakerHandle>>,
    shutdown: watch::Sender<Option<Shutdown>>,
}

impl SpeakerBackend {
    /// A backend for the daemon `name` following `handles`.
    pub fn new(
        name: &str,
        version: &str,
        handles: watch::Receiver<Option<SpeakerHandle>>,
    ) -> SpeakerBackend {
        let now = SystemTime::now();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let backend = SpeakerBackend {
            info: Arc::new(std::sync::Mutex::new(DaemonInfo {
                name: name.to_string(),
                version: version.to_string(),
                router_id: None,
                hostname,
                started: now,
                reconfigured: now,
                graceful_restart_recovery: false,
            })),
            handles,
            shutdown: watch::channel(None).0,
        };
        // A speaker (re)start is a reconfiguration (`show status`, the pseudo protocols'
        // since). Outside a runtime (tests of the formats) nothing follows.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let info = Arc::clone(&backend.info);
            let mut changes = backend.handles.clone();
            runtime.spawn(async move {
                while changes.changed().await.is_ok() {
                    if let Ok(mut info) = info.lock() {
                        info.reconfigured = SystemTime::now();
                    }
                }
            });
        }
        backend
    }

    /// A backend over one fixed speaker.
    pub fn fixed(name: &str, version: &str, handle: SpeakerHandle) -> SpeakerBackend {
        let (tx, rx) = watch::channel(Some(handle));
        // The receiver keeps the value; the sender may go.
        drop(tx);
        SpeakerBackend::new(name, version, rx)
    }

    /// Sets the router id and the time of the last reconfiguration.
    pub fn set_router_id(&self, router_id: Ipv4Addr) {
        if let Ok(mut info) = self.info.lock() {
            if info.router_id != Some(router_id) {
                info.reconfigured = SystemTime::now();
            }
            info.router_id = Some(router_id);
        }
    }

    /// Marks graceful-restart recovery (shown by `show status`).
    pub fn set_graceful_restart_recovery(&self, recovering: bool) {
        if let Ok(mut info) = self.info.lock() {
            info.graceful_restart_recovery = recovering;
        }
    }

    /// `down` / `graceful restart` requests; the daemon waits on this and stops.
    pub fn shutdown_requests(&self) -> watch::Receiver<Option<Shutdown>> {
        self.shutdown.subscribe()
    }

    fn handle(&self) -> Option<SpeakerHandle> {
        self.handles.borrow().clone()
    }
}

impl ControlBackend for SpeakerBackend {
    fn daemon(&self) -> DaemonInfo {
        match self.info.lock() {
            Ok(info) => info.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn peers(&self) -> Option<Vec<PeerStatus>> {
        self.handle()?.peers().await.ok()
    }

    async fn routes(&self) -> Option<Vec<RouteDetail>> {
        self.handle()?.route_details().await.ok()
    }

    async fn select_routes(&self, filter: RouteFilter) -> Option<RouteSelection> {
        self.handle()?.select_routes(filter).await.ok()
    }

    async fn summary(&self) -> Option<RibSummary> {
        self.handle()?.rib_summary().await.ok()
    }

    async fn peer_action(&self, peer: IpAddr, action: PeerAction) -> Option<PeerActionOutcome> {
        self.handle()?.peer_action(peer, action).await.ok()
    }

    async fn shutdown(&self, how: Shutdown) {
        self.shutdown.send_replace(Some(how));
    }

    async fn protocols(&self) -> Vec<PseudoProtocol> {
        let info = self.daemon();
        let summary = self.summary().await;
        let (originated, learned) = summary.map_or((0, 0), |s| (s.originated, s.installed));
        let up = self.handle().is_some();
        let row = |name: &str, kind, table: Option<&str>, imported, exported| PseudoProtocol {
            name: name.to_string(),
            kind,
            table: table.map(str::to_string),
            up,
            since: info.reconfigured,
            info: String::new(),
            imported,
            exported,
        };
        vec![
            row("device1", ProtocolKind::Device, None, 0, 0),
            row("kernel1", ProtocolKind::Kernel, Some("master4"), 0, learned),
            row(
                "static1",
                ProtocolKind::Static,
                Some("master4"),
                originated,
                0,
            ),
        ]
    }

    async fn interfaces(&self) -> Vec<Interface> {
        match read_interfaces().await {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%error, "cannot list interfaces");
                Vec::new()
            }
        }
    }
}

/// The interfaces of the current network namespace, over rtnetlink.
pub async fn read_interfaces() -> Result<Vec<Interface>, std::io::Error> {
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};

    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    let result = async {
        let mut out = Vec::new();
        let mut links = handle.link().get().execute();
        while let Some(link) = links.try_next().await? {
            let flags = link.header.flags;
            let mut iface = Interface {
                name: String::new(),
                index: link.header.index,
                admin_up: flags.contains(LinkFlags::Up),
                link_up: flags.contains(LinkFlags::Running),
                loopback: flags.contains(LinkFlags::Loopback),
                mtu: 0,
                addresses: Vec::new(),
            };
            for attribute in link.attributes {
                match attribute {
                    LinkAttribute::IfName(name) => iface.name = name,
                    LinkAttribute::Mtu(mtu) => iface.mtu = mtu,
                    _ => {}
                }
            }
            out.push(iface);
        }
        let mut addresses = handle.address().get().execute();
        while let Some(address) = addresses.try_next().await? {
            let len = address.header.prefix_len;
            let index = address.header.index;
            let ip = address.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let (Some(ip), Some(iface)) = (ip, out.iter_mut().find(|i| i.index == index)) {
                iface.addresses.push((ip, len));
            }
        }
        Ok::<_, rtnetlink::Error>(out)
    }
    .await;
    task.abort();
    result.map_err(|e| std::io::Error::other(e.to_string()))
}
