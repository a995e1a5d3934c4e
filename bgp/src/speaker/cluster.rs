//! Calico's BGP behaviour from etcd: who this node peers with and what it originates.
//!
//! [`ClusterState`] is pure: it holds the Nodes, BGPPeers, BGPConfigurations and IPAM blocks
//! the syncers reported and reduces them to a [`Desired`] speaker for one node:
//! - AS: the node's `spec.bgp.asNumber`, else BGPConfiguration `default`'s, else 64512;
//!   listen port from `listenPort` (179); `nodeToNodeMeshEnabled` (default true);
//! - mesh: one iBGP/eBGP session to every other node's IPv4 (and IPv6, when both have one)
//!   address; the higher address of a pair is passive (Calico's rule against races);
//!   `nodeMeshMaxRestartTime` as the GR time;
//! - BGPPeers that apply to this node (`node`, `nodeSelector`, or global): `peerIP` +
//!   `asNumber`, or `peerSelector` (every matching node, at its own AS); `keepaliveTime`,
//!   `maxRestartTime`, `ttlSecurity`, `nextHopMode: Self`;
//! - originate: every IPAM block affine to this node, plus `/32`s (`/128`s) this node
//!   borrowed from other nodes' blocks;
//! - FIB exclusions: the CIDRs of IPv4 IPPools whose `vxlanMode` is `Always` or
//!   `CrossSubnet`. Routes inside them stay in the Loc-RIB (and are still advertised) but are
//!   not installed into the kernel: the node agent owns every route of a VXLAN pool (tunnel
//!   and same-subnet alike), so each route has one owner (ARCHITECTURE.md).
//!
//! Route reflection (Calico semantics): a node with `spec.bgp.routeReflectorClusterID` is a
//! reflector with that cluster id, and its iBGP peers that are not nodes with the same
//! cluster id are its clients. With `nodeToNodeMeshEnabled: false`, a BGPPeer with
//! `peerSelector: route-reflector == 'true'` (and a `nodeSelector` for the other side) wires
//! nodes to their reflectors.
//!
//! Passwords: Calico's `password.secretKeyRef` (BGPPeer `password`, BGPConfiguration
//! `nodeMeshPassword`) names a secret, read through the [`SecretSource`] of
//! [`ClusterOptions::secrets`] (vrouterd: files `<secrets-dir>/<name>/<key>`, see
//! [`super::secrets`]). A peer whose password cannot be read is not started (fail closed); the
//! agent logs it and tries again every [`SECRET_RECHECK`] and on
//! [`ClusterAgent::recheck_secrets`].
//!
//! [`ClusterAgent`] is the driver: two syncers (resources, IPAM blocks), a speaker started
//! once both are in sync, and live peer/prefix changes applied through the handle. A change
//! of AS number or listen port restarts the speaker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datastore::etcd::Store;
use datastore::ipam::ATTR_NODE;
use datastore::ipam::block::AllocationBlock;
use datastore::keys::{IPAM_BLOCKS, RESOURCES, parse_resource_key};
use datastore::resource::bgp::NextHopMode;
use datastore::resource::{BgpConfiguration, BgpPeer, IpPool, Node, Resource};
use datastore::syncer::{SyncEvent, SyncStatus, Syncer, resource_decoder};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use super::netns::{FibChoice, NetnsSpeaker, start_speaker};
use super::secrets::{SecretError, SecretRef, SecretSource};
use super::{BGP_PORT, PeerKind};
use super::{PeerConfig, Shutdown, SpeakerConfig, SpeakerError, SpeakerHandle};
use crate::wire::Prefix;

/// Calico's default AS number.
pub const DEFAULT_ASN: u32 = 64512;
/// How often passwords are read again (a missing one may appear, a present one may change).
pub const SECRET_RECHECK: Duration = Duration::from_secs(5);

/// What the cluster wants this node's speaker to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Our AS.
    pub asn: u32,
    /// Our router id (the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// Listen port.
    pub listen_port: u16,
    /// Peers by address.
    pub peers: BTreeMap<IpAddr, PeerConfig>,
    /// Prefixes to originate.
    pub originate: BTreeSet<Prefix>,
    /// Our route-reflector cluster id (`spec.bgp.routeReflectorClusterID`).
    pub cluster_id: Option<Ipv4Addr>,
    /// Peers whose TCP-MD5 password comes from a secret (resolved by the agent).
    pub secrets: BTreeMap<IpAddr, SecretRef>,
    /// Prefixes whose routes are not installed (the VXLAN pools; the agent routes them).
    pub fib_exclude: BTreeSet<Prefix>,
}

fn secret_ref(password: Option<&datastore::resource::bgp::BgpPassword>) -> Option<SecretRef> {
    let selector = password?.secret_key_ref.as_ref()?;
    Some(SecretRef {
        name: selector.name.clone(),
        key: selector.key.clone(),
        optional: selector.optional.unwrap_or(false),
    })
}

/// The BGP-relevant part of the datastore. Pure.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    nodes: BTreeMap<String, Node>,
    peers: BTreeMap<String, BgpPeer>,
    configs: BTreeMap<String, BgpConfiguration>,
    blocks: BTreeMap<String, AllocationBlock>,
    pools: BTreeMap<String, IpPool>,
}

impl ClusterState {
    /// Applies a resource update (`None`: the key is gone).
    pub fn resource(&mut self, key: &str, value: Option<Resource>) {
        let Some(k) = parse_resource_key(key) else {
            return;
        };
        let name = k.name;
        match (k.plural.as_str(), value) {
            ("nodes", Some(Resource::Node(n))) => {
                self.nodes.insert(name, n);
            }
            ("bgppeers", Some(Resource::BgpPeer(p))) => {
                self.peers.insert(name, p);
            }
            ("bgpconfigurations", Some(Resource::BgpConfiguration(c))) => {
                self.configs.insert(name, c);
            }
            ("ippools", Some(Resource::IpPool(p))) => {
                self.pools.insert(name, p);
            }
            ("nodes", _) => {
                self.nodes.remove(&name);
            }
            ("bgppeers", _) => {
                self.peers.remove(&name);
            }
            ("bgpconfigurations", _) => {
                self.configs.remove(&name);
            }
            ("ippools", _) => {
                self.pools.remove(&name);
            }
            _ => {}
        }
    }

    /// Applies an IPAM block update.
    pub fn block(&mut self, key: &str, value: Option<AllocationBlock>) {
        match value {
            Some(block) => self.blocks.insert(key.to_string(), block),
            None => self.blocks.remove(key),
        };
    }

    fn node_asn(&self, node: &Node, global: u32) -> u32 {
        node.spec
            .bgp
            .as_ref()
            .and_then(|b| b.as_number.as_ref())
            .map_or(global, |a| a.get())
    }

    /// The speaker `node_name` should run, or `None` while the node has no IPv4 BGP address.
    pub fn desired(&self, node_name: &str) -> Option<Desired> {
        let me = self.nodes.get(node_name)?;
        let my_bgp = me.spec.bgp.as_ref()?;
        let my_v4 = my_bgp.ipv4()?;
        let my_v6 = my_bgp.ipv6();
        let config = self.configs.get("default").map(|c| &c.spec);
        let global_asn = config
            .and_then(|c| c.as_number.as_ref())
            .map_or(DEFAULT_ASN, |a| a.get());
        let asn = self.node_asn(me, global_asn);
        let mesh = config
            .and_then(|c| c.node_to_node_mesh_enabled)
            .unwrap_or(true);
        let mesh_restart = config
            .and_then(|c| c.node_mesh_max_restart_time.as_deref())
            .and_then(parse_go_duration);
        let mesh_secret = config.and_then(|c| secret_ref(c.node_mesh_password.as_ref()));
        let mut secrets = BTreeMap::new();
        let mut peers = BTreeMap::new();
        if mesh {
            for (name, node) in &self.nodes {
                if name == node_name {
                    continue;
                }
                let Some(bgp) = &node.spec.bgp else { continue };
                let remote_asn = self.node_asn(node, global_asn);
                let mut add = |mine: IpAddr, theirs: IpAddr| {
                    let mut peer = PeerConfig::new(theirs, remote_asn).passive(theirs < mine);
                    peer.max_restart_time = mesh_restart;
                    peer.kind = PeerKind::Mesh;
                    peers.insert(theirs, peer);
                };
                if let Some(v4) = bgp.ipv4() {
                    add(IpAddr::V4(my_v4), IpAddr::V4(v4));
                }
                if let (Some(mine), Some(theirs)) = (my_v6, bgp.ipv6()) {
                    add(IpAddr::V6(mine), IpAddr::V6(theirs));
                }
            }
            if let Some(secret) = &mesh_secret {
                for addr in peers.keys() {
                    secrets.insert(*addr, secret.clone());
                }
            }
        }
        for resource in self.peers.values() {
            let spec = &resource.spec;
            let applies = match (&spec.node, &spec.node_selector) {
                (Some(node), _) => node == node_name,
                (None, Some(selector)) => selects(selector, me),
                (None, None) => true,
            };
            // Calico peers selector-matched nodes both ways: a node the peerSelector picks
            // peers with every node the nodeSelector (or `node`) picks.
            let reverse = spec.peer_addr().is_none()
                && spec
                    .peer_selector
                    .as_deref()
                    .is_some_and(|s| selects(s, me));
            if !applies && !reverse {
                continue;
            }
            // Peers this resource adds or replaces take its password (or none).
            let before = peers.clone();
            let tune = |mut peer: PeerConfig| {
                peer.keepalive_time = spec.keepalive_time.as_deref().and_then(parse_go_duration);
                peer.max_restart_time =
                    spec.max_restart_time.as_deref().and_then(parse_go_duration);
                peer.ttl_security = spec.ttl_security.filter(|t| *t > 0);
                peer.next_hop_self = spec.next_hop_mode == Some(NextHopMode::SelfNextHop);
                peer.kind = match (&spec.node, &spec.node_selector) {
                    (None, None) => PeerKind::Global,
                    _ => PeerKind::NodeSpecific,
                };
                peer
            };
            if !applies {
                // Only the reverse direction applies.
            } else if let Some((ip, port)) = spec.peer_addr() {
                let remote_asn = spec.as_number.as_ref().map_or(global_asn, |a| a.get());
                let mut peer = tune(PeerConfig::new(ip, remote_asn));
                peer.port = port.unwrap_or(BGP_PORT);
                peers.insert(ip, peer);
            } else if let Some(selector) = &spec.peer_selector {
                for (other, node) in &self.nodes {
                    if other == node_name || !selects(selector, node) {
                        continue;
                    }
                    let remote_asn = self.node_asn(node, global_asn);
                    if let Some(v4) = node.spec.bgp.as_ref().and_then(|b| b.ipv4()) {
                        peers.insert(
                            IpAddr::V4(v4),
                            tune(PeerConfig::new(IpAddr::V4(v4), remote_asn)),
                        );
                    }
                }
            }
            if reverse {
                for (other, node) in &self.nodes {
                    let picked = match (&spec.node, &spec.node_selector) {
                        (Some(n), _) => n == other,
                        (None, Some(selector)) => selects(selector, node),
                        (None, None) => true,
                    };
                    if other == node_name || !picked {
                        continue;
                    }
                    let remote_asn = self.node_asn(node, global_asn);
                    if let Some(v4) = node.spec.bgp.as_ref().and_then(|b| b.ipv4()) {
                        peers
                            .entry(IpAddr::V4(v4))
                            .or_insert_with(|| tune(PeerConfig::new(IpAddr::V4(v4), remote_asn)));
                    }
                }
            }
            let secret = secret_ref(spec.password.as_ref());
            for (addr, peer) in &peers {
                if before.get(addr) != Some(peer) {
                    match &secret {
                        Some(s) => secrets.insert(*addr, s.clone()),
                        None => secrets.remove(addr),
                    };
                }
            }
        }
        peers.remove(&IpAddr::V4(my_v4));
        secrets.retain(|addr, _| peers.contains_key(addr));
        let cluster_id = cluster_id_of(me);
        if let Some(mine) = cluster_id {
            for peer in peers.values_mut() {
                let same_cluster = self.nodes.values().any(|n| {
                    cluster_id_of(n) == Some(mine)
                        && n.spec.bgp.as_ref().is_some_and(|b| {
                            b.ipv4().map(IpAddr::V4) == Some(peer.address)
                                || b.ipv6().map(IpAddr::V6) == Some(peer.address)
                        })
                });
                peer.route_reflector_client = peer.remote_asn == asn && !same_cluster;
            }
        }
        Some(Desired {
            cluster_id,
            asn,
            router_id: my_v4,
            listen_port: config.and_then(|c| c.listen_port).unwrap_or(BGP_PORT),
            peers,
            originate: self.originated(node_name),
            secrets,
            fib_exclude: self.vxlan_pools(),
        })
    }

    /// CIDRs of the IPv4 pools with `vxlanMode` `Always` or `CrossSubnet` (disabled ones too:
    /// their pods are still there).
    fn vxlan_pools(&self) -> BTreeSet<Prefix> {
        self.pools
            .values()
            .filter(|p| datastore::ipam::workload::pool_uses_vxlan(p))
            .filter_map(|p| match p.spec.network()? {
                net @ ipnetwork::IpNetwork::V4(_) => Prefix::new(net.network(), net.prefix()),
                ipnetwork::IpNetwork::V6(_) => None,
            })
            .collect()
    }

    /// Blocks affine to `node_name`, and addresses it borrowed from other nodes' blocks.
    fn originated(&self, node_name: &str) -> BTreeSet<Prefix> {
        let mut out = BTreeSet::new();
        for block in self.blocks.values() {
            if block.is_affine_to(node_name) {
                if let Some(p) = Prefix::new(block.cidr.network(), block.cidr.prefix()) {
                    out.insert(p);
                }
                continue;
            }
            for allocation in block.allocated() {
                if allocation
                    .attribute
                    .attrs
                    .get(ATTR_NODE)
                    .map(String::as_str)
                    == Some(node_name)
                {
                    let len = if allocation.ip.is_ipv4() { 32 } else { 128 };
                    out.extend(Prefix::new(allocation.ip, len));
                }
            }
        }
        out
    }
}

/// A node's route-reflector cluster id (validated as IPv4 when the resource was parsed).
fn cluster_id_of(node: &Node) -> Option<Ipv4Addr> {
    node.spec
        .bgp
        .as_ref()?
        .route_reflector_cluster_id
        .as_deref()?
        .parse()
        .ok()
}

fn selects(selector: &str, node: &Node) -> bool {
    match policy::Selector::parse(selector) {
        Ok(s) => s.matches(&node.metadata.labels),
        Err(error) => {
            tracing::warn!(%selector, %error, "bad selector");
            false
        }
    }
}

/// Parses the Go durations Calico uses (`120s`, `2m`, `1m30s`, `500ms`, `1h`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * seconds).ok()?;
    }
    Some(total)
}

/// How the agent starts its speaker.
#[derive(Debug, Clone)]
pub enum Launch {
    /// On the current runtime, programming the kernel of the current namespace.
    Kernel,
    /// On a thread inside the namespace at this path (tests: one node per namespace).
    Netns(PathBuf, FibChoice),
}

/// Settings of a [`ClusterAgent`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This node's name (the Node resource).
    pub node_name: String,
    /// Timers, GR and best-path settings; AS, router id, port, peers and prefixes are
    /// replaced by what the cluster says.
    pub base: SpeakerConfig,
    /// Where the speaker runs.
    pub launch: Launch,
    /// Where `secretKeyRef` passwords are read; `None`: peers that need one are not started.
    pub secrets: Option<Arc<dyn SecretSource>>,
}

/// Fills in the passwords of `desired`'s peers; a peer whose password cannot be read is
/// dropped (fail closed) and its error kept in `failures`, logged when it changes.
pub fn resolve_passwords(
    mut desired: Desired,
    source: Option<&dyn SecretSource>,
    failures: &mut BTreeMap<IpAddr, SecretError>,
) -> Desired {
    let mut failed = BTreeMap::new();
    for (addr, reference) in &desired.secrets {
        let result = match source {
            Some(source) => source.password(reference),
            None => Err(SecretError::NoSource),
        };
        match result {
            Ok(password) => {
                if let Some(peer) = desired.peers.get_mut(addr) {
                    if password.is_none() {
                        tracing::warn!(peer = %addr, secret = %reference, "optional secret absent: peering without TCP-MD5");
                    }
                    peer.password = password;
                }
                if failures.remove(addr).is_some() {
                    tracing::info!(peer = %addr, secret = %reference, "BGP password readable again: starting the peer");
                }
            }
            Err(error) => {
                if failures.get(addr) != Some(&error) {
                    tracing::error!(
                        peer = %addr,
                        secret = %reference,
                        %error,
                        "BGP password unavailable: peer not started (no session without its TCP-MD5 key)"
                    );
                }
                desired.peers.remove(addr);
                failed.insert(*addr, error);
            }
        }
    }
    *failures = failed;
    desired
}

/// Runs a speaker configured from etcd and keeps it in line with the datastore.
#[derive(Debug)]
pub struct ClusterAgent {
    handle: watch::Receiver<Option<SpeakerHandle>>,
    task: AgentTask,
    recheck: Arc<Notify>,
}

impl ClusterAgent {
    /// Reads every password again now (vrouterd calls it on SIGHUP).
    pub fn recheck_secrets(&self) {
        self.recheck.notify_one();
    }

    /// Starts syncing from `store` on the current runtime.
    pub fn spawn(store: Store, options: ClusterOptions) -> ClusterAgent {
        let (handle_tx, handle) = watch::channel(None);
        let recheck = Arc::new(Notify::new());
        let task =
            AgentTask::spawn(|stop| agent(store, options, handle_tx, stop, Arc::clone(&recheck)));
        ClusterAgent {
            handle,
            task,
            recheck,
        }
    }

    /// The running speaker's handle (None until the datastore is in sync).
    pub fn handle(&self) -> Option<SpeakerHandle> {
        self.handle.borrow().clone()
    }

    /// Follows the running speaker's handle: `None` until the datastore is in sync, and a
    /// new handle whenever the speaker is restarted (AS, router id or port change).
    pub fn handles(&self) -> watch::Receiver<Option<SpeakerHandle>> {
        self.handle.clone()
    }

    /// Stops the speaker (`how`) and the agent.
    pub async fn stop(self, how: Shutdown) {
        self.task.stop(how).await;
    }
}

/// The task that keeps a speaker in line with etcd ([`ClusterAgent`]'s, the reflector's):
/// [`AgentTask::stop`] hands it a [`Shutdown`] for its speaker and waits for it to end;
/// dropping the value aborts it.
#[derive(Debug)]
pub struct AgentTask {
    stop: Option<oneshot::Sender<Shutdown>>,
    task: Option<JoinHandle<()>>,
}

impl AgentTask {
    /// Spawns `run(stop)` on the current runtime; `stop` receives what [`AgentTask::stop`]
    /// is given (or fails when the value is dropped).
    pub fn spawn<F>(run: impl FnOnce(oneshot::Receiver<Shutdown>) -> F) -> AgentTask
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stop_rx) = oneshot::channel();
        AgentTask {
            stop: Some(stop),
            task: Some(tokio::spawn(run(stop_rx))),
        }
    }

    /// Sends `how` to the task and waits for it to end.
    pub async fn stop(mut self, how: Shutdown) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AgentTask {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A running speaker plus whatever keeps its thread alive.
struct Running {
    handle: SpeakerHandle,
    desired: Desired,
    _thread: Option<NetnsSpeaker>,
}

async fn launch(options: &ClusterOptions, desired: &Desired) -> Result<Running, SpeakerError> {
    let mut config = options.base.clone();
    config.asn = desired.asn;
    config.router_id = desired.router_id;
    config.node_ipv4 = Some(desired.router_id);
    config.listen_port = Some(desired.listen_port);
    config.peers = desired.peers.values().cloned().collect();
    config.originate = desired.originate.iter().copied().collect();
    config.cluster_id = desired.cluster_id;
    config.fib_exclude = desired.fib_exclude.iter().copied().collect();
    let (handle, thread) = match &options.launch {
        Launch::Kernel => start_speaker(None, config, FibChoice::Kernel).await?,
        Launch::Netns(path, fib) => start_speaker(Some(path), config, fib.clone()).await?,
    };
    Ok(Running {
        handle,
        desired: desired.clone(),
        _thread: thread,
    })
}

async fn reconcile(running: &mut Running, desired: Desired) -> Result<(), SpeakerError> {
    let h = &running.handle;
    for (addr, peer) in &desired.peers {
        if running.desired.peers.get(addr) != Some(peer) {
            h.add_peer(peer.clone()).await?;
        }
    }
    for addr in running.desired.peers.keys() {
        if !desired.peers.contains_key(addr) {
            h.remove_peer(*addr).await?;
        }
    }
    for prefix in desired.originate.difference(&running.desired.originate) {
        h.originate(*prefix).await?;
    }
    for prefix in running.desired.originate.difference(&desired.originate) {
        h.withdraw(*prefix).await?;
    }
    if desired.fib_exclude != running.desired.fib_exclude {
        h.set_fib_exclude(desired.fib_exclude.iter().copied().collect())
            .await?;
    }
    running.desired = desired;
    Ok(())
}

async fn agent(
    store: Store,
    options: ClusterOptions,
    handle_tx: watch::Sender<Option<SpeakerHandle>>,
    mut stop: oneshot::Receiver<Shutdown>,
    recheck: Arc<Notify>,
) {
    let decode_resource = resource_decoder(&["nodes", "bgppeers", "bgpconfigurations", "ippools"]);
    let decode_block: datastore::syncer::Decoder<AllocationBlock> =
        Arc::new(|_: &str, bytes: &[u8]| {
            AllocationBlock::from_json(bytes).map_err(|e| e.to_string())
        });
    let mut resources = Syncer::spawn(store.clone(), RESOURCES, decode_resource);
    let mut blocks = Syncer::spawn(store, IPAM_BLOCKS, decode_block);
    let mut state = ClusterState::default();
    let (mut resources_synced, mut blocks_synced) = (false, false);
    let mut running: Option<Running> = None;
    let mut failures = BTreeMap::new();
    let mut secret_timer = tokio::time::interval(SECRET_RECHECK);
    loop {
        tokio::select! {
            _ = secret_timer.tick() => {
                let uses_secrets = state
                    .desired(&options.node_name)
                    .is_some_and(|d| !d.secrets.is_empty());
                if !uses_secrets {
                    continue;
                }
            }
            () = recheck.notified() => {}
            how = &mut stop => {
                if let Some(r) = running.take() {
                    let _ = r.handle.shutdown(how.unwrap_or(Shutdown::Stop)).await;
                }
                return;
            }
            event = resources.next() => match event {
                Some(SyncEvent::Update(u)) => state.resource(&u.key, u.value.flatten()),
                Some(SyncEvent::Status(s)) => resources_synced |= s == SyncStatus::InSync,
                Some(SyncEvent::Invalid { key, error, .. }) => tracing::warn!(%key, %error, "undecodable resource"),
                None => return,
            },
            event = blocks.next() => match event {
                Some(SyncEvent::Update(u)) => state.block(&u.key, u.value),
                Some(SyncEvent::Status(s)) => blocks_synced |= s == SyncStatus::InSync,
                Some(SyncEvent::Invalid { key, error, .. }) => tracing::warn!(%key, %error, "undecodable block"),
                None => return,
            },
        }
        if !(resources_synced && blocks_synced) {
            continue;
        }
        let Some(desired) = state.desired(&options.node_name) else {
            continue;
        };
        let desired = resolve_passwords(desired, options.secrets.as_deref(), &mut failures);
        let restart = running.as_ref().is_some_and(|r| {
            r.desired.asn != desired.asn
                || r.desired.listen_port != desired.listen_port
                || r.desired.router_id != desired.router_id
                || r.desired.cluster_id != desired.cluster_id
        });
        if restart && let Some(old) = running.take() {
            tracing::info!(
                "AS, router id, listen port or cluster id changed: restarting the speaker"
            );
            let _ = old.handle.shutdown(Shutdown::Stop).await;
        }
        match &mut running {
            Some(r) => {
                if r.desired != desired
                    && let Err(error) = reconcile(r, desired).await
                {
                    tracing::error!(%error, "speaker stopped");
                    return;
                }
            }
            None => match launch(&options, &desired).await {
                Ok(r) => {
                    let _ = handle_tx.send(Some(r.handle.clone()));
                    running = Some(r);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot start the speaker");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
