//! The calculation stage: reduces the whole cluster's datastore to this node's desired
//! state. Pure: no sockets, no clock, no kernel; fed with syncer updates, read with
//! [`Calc::flush`].
//!
//! Inputs ([`Update`]s of [`Value`], decoded from etcd by [`decode`]):
//! - resources under `/vrouter/resources/` (policy kinds, namespaces, network sets and every
//!   WorkloadEndpoint of the cluster: remote endpoints matter to selectors);
//! - IPAM blocks (`/vrouter/ipam/blocks/<cidr>`) and this node's affinities
//!   (`/vrouter/ipam/affinity/<node>/<cidr>`).
//!
//! Outputs ([`Output`], only what changed since the last flush):
//! - [`Output::Endpoint`]: local WorkloadEndpoints (`spec.node` == this node) with host
//!   interface, addresses and MAC;
//! - [`Output::Route`]: a `/32` (`/128`) per local workload address to its host veth, and a
//!   blackhole per local IPAM block (a block whose affinity is confirmed for this node and
//!   that is stored with `host:<node>`; not for `/32`/`/128` blocks);
//! - [`Output::Policy`]: the compiled [`policy::compile::Ruleset`] plus the local workload
//!   and host endpoints it must be enforced on and the failsafe ports, shared by [`Arc`],
//!   with what changed since the previous one ([`PolicyChanges`]).
//!
//! Cost per update is independent of the number of endpoints: local endpoints are compared
//! per changed key, never as a whole map, and a label change reaches the dataplane as the
//! sets and endpoints it changed.
//!
//! Following Felix's syncer contract (calico.md §1.1), existence is decided by the value
//! (`None` = absent) and the last update for a key wins; invalid resources are left out of
//! the model (and reported), never allowed to break it.

mod desired;
mod endpoints;
pub mod nat;
mod policy_state;
#[cfg(test)]
mod tests;
pub mod vxlan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datastore::ipam::{AffinityState, AllocationBlock, BlockAffinity};
use datastore::keys::{IPAM_AFFINITY, IPAM_BLOCKS, RESOURCES, parse_cidr_segment};
use datastore::resource::Resource;
use datastore::resource::felix::ProtoPort;
use datastore::syncer::Update;
use ipnetwork::IpNetwork;
use policy::model::EndpointId;
use tracing::warn;

pub use desired::{Failsafe, FailsafePort, LocalHostEndpoint, PolicyChanges, PolicyDesired};
pub use endpoints::{LocalEndpoint, local_endpoint};
use policy_state::PolicyCalc;
use vxlan::{VxlanCalc, VxlanDesired};

/// A decoded datastore value, as the agent's syncers deliver it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A resource.
    Resource(Resource),
    /// An IPAM block.
    Block(AllocationBlock),
    /// A block affinity.
    Affinity(BlockAffinity),
    /// Something under a synced prefix the agent does not use (e.g. IPAM handles).
    Ignored,
}

/// Decodes a stored value by its key (the syncer's decoder).
pub fn decode(key: &str, bytes: &[u8]) -> Result<Value, String> {
    if key.starts_with(RESOURCES) {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        Resource::from_json(text)
            .map(Value::Resource)
            .map_err(|e| e.to_string())
    } else if key.starts_with(IPAM_BLOCKS) {
        AllocationBlock::from_json(bytes)
            .map(Value::Block)
            .map_err(|e| e.to_string())
    } else if key.starts_with(IPAM_AFFINITY) {
        BlockAffinity::from_json(bytes)
            .map(Value::Affinity)
            .map_err(|e| e.to_string())
    } else {
        Ok(Value::Ignored)
    }
}

/// Where a desired route points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteDesire {
    /// To a local workload's host veth.
    Workload(String),
    /// Blackhole (a local IPAM block).
    Blackhole,
    /// Through the VXLAN device to a remote VTEP (`via <tunnel ip> dev vxlan.vrouter onlink`).
    Tunnel(std::net::Ipv4Addr),
    /// Via a node on the same underlay subnet, unencapsulated (VXLAN `CrossSubnet`).
    Gateway(std::net::IpAddr),
}

/// One change of this node's desired state.
#[derive(Debug, Clone)]
pub enum Output {
    /// A local endpoint appeared, changed (`Some`) or went away (`None`).
    Endpoint {
        /// The endpoint.
        id: EndpointId,
        /// Its new state.
        endpoint: Option<LocalEndpoint>,
    },
    /// A route is wanted (`Some`) or no longer wanted (`None`).
    Route {
        /// Destination.
        dst: IpNetwork,
        /// Target.
        target: Option<RouteDesire>,
    },
    /// The policy state changed.
    Policy(Box<PolicyDesired>),
    /// The VTEP state (VXLAN device and remote VTEPs) changed.
    Vtep(VxlanDesired),
}

/// FelixConfiguration failsafe lists of one resource (`None`: field not set).
#[derive(Debug, Clone, Default, PartialEq)]
struct FailsafeConfig {
    inbound: Option<Vec<ProtoPort>>,
    outbound: Option<Vec<ProtoPort>>,
}

/// The calculation state of one node.
#[derive(Debug)]
pub struct Calc {
    node: String,
    /// This node's WorkloadEndpoints.
    local: Arc<BTreeMap<EndpointId, LocalEndpoint>>,
    /// Local endpoints touched since the last flush.
    local_dirty: BTreeSet<EndpointId>,
    /// Local endpoints last emitted.
    emitted_endpoints: BTreeMap<EndpointId, LocalEndpoint>,
    /// This node's HostEndpoints with a named interface.
    hosts: Arc<BTreeMap<EndpointId, LocalHostEndpoint>>,
    hosts_dirty: bool,
    /// FelixConfiguration `default` and `node.<node>` failsafe settings.
    felix_default: FailsafeConfig,
    felix_node: FailsafeConfig,
    failsafe: Arc<Failsafe>,
    failsafe_dirty: bool,
    /// Block CIDR → the node in its `affinity`.
    blocks: HashMap<IpNetwork, Option<String>>,
    /// Blocks with a confirmed affinity for this node.
    affinities: BTreeSet<IpNetwork>,
    /// Routes last emitted.
    emitted_routes: BTreeMap<IpNetwork, RouteDesire>,
    routes_dirty: bool,
    policy: PolicyCalc,
    /// VXLAN: the VTEP and the routes to other nodes' pods in VXLAN pools.
    vxlan: VxlanCalc,
}

impl Calc {
    /// The calculation for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        let node = node.into();
        Self {
            vxlan: VxlanCalc::new(node.clone()),
            node,
            local: Arc::new(BTreeMap::new()),
            local_dirty: BTreeSet::new(),
            emitted_endpoints: BTreeMap::new(),
            hosts: Arc::new(BTreeMap::new()),
            hosts_dirty: false,
            felix_default: FailsafeConfig::default(),
            felix_node: FailsafeConfig::default(),
            failsafe: Arc::new(Failsafe::default()),
            failsafe_dirty: false,
            blocks: HashMap::new(),
            affinities: BTreeSet::new(),
            emitted_routes: BTreeMap::new(),
            routes_dirty: false,
            policy: PolicyCalc::default(),
        }
    }

    /// The node this calculation is for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes one update. Cheap: the work happens in [`Calc::flush`].
    pub fn on_update(&mut self, update: Update<Value>) {
        let Update { key, value, .. } = update;
        if key.starts_with(RESOURCES) {
            let resource = match value {
                Some(Value::Resource(r)) => Some(r),
                _ => None,
            };
            self.on_resource(key, resource);
        } else if let Some(rest) = key.strip_prefix(IPAM_BLOCKS) {
            let Some(cidr) = parse_cidr_segment(rest) else {
                return;
            };
            match value {
                Some(Value::Block(b)) => {
                    let owner = b.affine_node().map(str::to_string);
                    self.blocks.insert(cidr, owner);
                    self.vxlan.on_block(cidr, Some(&b));
                }
                _ => {
                    self.blocks.remove(&cidr);
                    self.vxlan.on_block(cidr, None);
                }
            }
            self.routes_dirty = true;
        } else if let Some(rest) = key.strip_prefix(IPAM_AFFINITY) {
            let Some((node, segment)) = rest.split_once('/') else {
                return;
            };
            let Some(cidr) = parse_cidr_segment(segment) else {
                return;
            };
            if node != self.node {
                return;
            }
            match value {
                Some(Value::Affinity(a)) if a.state == AffinityState::Confirmed => {
                    self.affinities.insert(cidr);
                }
                _ => {
                    self.affinities.remove(&cidr);
                }
            }
            self.routes_dirty = true;
        }
    }

    fn on_resource(&mut self, key: String, resource: Option<Resource>) {
        // The local view after this update (`None` inside: not local), compared with the
        // current one so an unchanged endpoint (a label change) costs no copy.
        let next_wep = match &resource {
            Some(Resource::WorkloadEndpoint(w)) => {
                Some((endpoints::endpoint_id_of(w), local_endpoint(&self.node, w)))
            }
            _ => None,
        };
        let next_hep = match &resource {
            Some(Resource::HostEndpoint(h)) => Some((
                EndpointId::host(h.metadata.name.clone()),
                self.local_host(h),
            )),
            _ => None,
        };
        // Whatever was stored under the key before and is not replaced goes away.
        match self.policy.resource(&key) {
            Some(Resource::WorkloadEndpoint(w)) => {
                let id = endpoints::endpoint_id_of(w);
                if next_wep.as_ref().map(|(n, _)| n) != Some(&id) && self.local.contains_key(&id) {
                    Arc::make_mut(&mut self.local).remove(&id);
                    self.local_dirty.insert(id);
                }
            }
            Some(Resource::HostEndpoint(h)) => {
                let id = EndpointId::host(h.metadata.name.clone());
                if next_hep.as_ref().map(|(n, _)| n) != Some(&id) && self.hosts.contains_key(&id) {
                    Arc::make_mut(&mut self.hosts).remove(&id);
                    self.hosts_dirty = true;
                }
            }
            _ => {}
        }
        if let Some((id, local)) = next_wep
            && self.local.get(&id) != local.as_ref()
        {
            match local {
                Some(l) => Arc::make_mut(&mut self.local).insert(id.clone(), l),
                None => Arc::make_mut(&mut self.local).remove(&id),
            };
            self.local_dirty.insert(id);
        }
        if let Some((id, local)) = next_hep
            && self.hosts.get(&id) != local.as_ref()
        {
            match local {
                Some(l) => Arc::make_mut(&mut self.hosts).insert(id, l),
                None => Arc::make_mut(&mut self.hosts).remove(&id),
            };
            self.hosts_dirty = true;
        }
        self.on_felix_configuration(&key, resource.as_ref());
        if self.vxlan.on_resource(&key, resource.as_ref()) {
            self.routes_dirty = true;
        }
        self.policy.on_resource(key, resource);
    }

    /// The local view of a HostEndpoint: on this node with a named interface.
    fn local_host(&self, h: &datastore::resource::HostEndpoint) -> Option<LocalHostEndpoint> {
        if h.spec.node.as_deref() != Some(self.node.as_str()) {
            return None;
        }
        let iface = h.spec.interface_name.as_deref().unwrap_or("");
        if iface.is_empty() || iface == "*" {
            warn!(host_endpoint = %h.metadata.name, interface = iface,
                "host endpoint without a named interface is not enforced");
            return None;
        }
        Some(LocalHostEndpoint {
            id: EndpointId::host(h.metadata.name.clone()),
            iface: iface.to_string(),
        })
    }

    /// Tracks the failsafe ports of FelixConfiguration `default` and `node.<node>`.
    fn on_felix_configuration(&mut self, key: &str, resource: Option<&Resource>) {
        let Some(k) = datastore::keys::parse_resource_key(key) else {
            return;
        };
        if k.plural != "felixconfigurations" {
            return;
        }
        let config = match resource {
            Some(Resource::FelixConfiguration(f)) => FailsafeConfig {
                inbound: f.spec.failsafe_inbound_host_ports.clone(),
                outbound: f.spec.failsafe_outbound_host_ports.clone(),
            },
            _ => FailsafeConfig::default(),
        };
        let slot = if k.name == "default" {
            &mut self.felix_default
        } else if k.name == format!("node.{}", self.node) {
            &mut self.felix_node
        } else {
            return;
        };
        if *slot != config {
            *slot = config;
            self.failsafe_dirty = true;
        }
    }

    /// Node settings over `default` over Felix's defaults; an invalid list is reported
    /// and the next level used instead.
    fn effective_failsafe(&self) -> Failsafe {
        let defaults = Failsafe::default();
        let pick = |field: &str,
                    node: &Option<Vec<ProtoPort>>,
                    default: &Option<Vec<ProtoPort>>,
                    fallback: Vec<FailsafePort>| {
            for list in [node, default].into_iter().flatten() {
                match desired::failsafe_ports(field, list) {
                    Ok(ports) => return ports,
                    Err(error) => warn!(%error, "invalid failsafe ports ignored"),
                }
            }
            fallback
        };
        Failsafe {
            inbound: pick(
                "failsafeInboundHostPorts",
                &self.felix_node.inbound,
                &self.felix_default.inbound,
                defaults.inbound,
            ),
            outbound: pick(
                "failsafeOutboundHostPorts",
                &self.felix_node.outbound,
                &self.felix_default.outbound,
                defaults.outbound,
            ),
        }
    }

    /// Number of local endpoints.
    pub fn local_endpoints(&self) -> usize {
        self.local.len()
    }

    /// Every change of the desired state since the last flush, in no particular order (the
    /// sequencer orders them).
    pub fn flush(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let mut changes = PolicyChanges::default();
        for id in std::mem::take(&mut self.local_dirty) {
            let now = self.local.get(&id);
            if self.emitted_endpoints.get(&id) == now {
                continue;
            }
            match now {
                Some(ep) => {
                    self.emitted_endpoints.insert(id.clone(), ep.clone());
                }
                None => {
                    self.emitted_endpoints.remove(&id);
                }
            }
            out.push(Output::Endpoint {
                id: id.clone(),
                endpoint: now.cloned(),
            });
            changes.endpoints.insert(id);
            self.routes_dirty = true;
        }
        if let Some(vtep) = self.vxlan.flush() {
            out.push(Output::Vtep(vtep));
        }
        if std::mem::take(&mut self.failsafe_dirty) {
            let failsafe = self.effective_failsafe();
            if *self.failsafe != failsafe {
                self.failsafe = Arc::new(failsafe);
                changes.all = true;
            }
        }
        if std::mem::take(&mut self.hosts_dirty) {
            changes.all = true;
        }
        if self.routes_dirty {
            self.routes_dirty = false;
            let wanted = self.desired_routes();
            for dst in self.emitted_routes.keys() {
                if !wanted.contains_key(dst) {
                    out.push(Output::Route {
                        dst: *dst,
                        target: None,
                    });
                }
            }
            for (dst, target) in &wanted {
                if self.emitted_routes.get(dst) != Some(target) {
                    out.push(Output::Route {
                        dst: *dst,
                        target: Some(target.clone()),
                    });
                }
            }
            self.emitted_routes = wanted;
        }
        let (local, hosts) = (&self.local, &self.hosts);
        let is_local = |id: &EndpointId| local.contains_key(id) || hosts.contains_key(id);
        if let Some((ruleset, changes)) = self.policy.flush(&is_local, changes) {
            out.push(Output::Policy(Box::new(PolicyDesired {
                ruleset,
                workloads: Arc::clone(&self.local),
                host_endpoints: Arc::clone(&self.hosts),
                failsafe: Arc::clone(&self.failsafe),
                changes,
            })));
        }
        out
    }

    /// Problems with resources left out of the policy model (key → reason).
    pub fn invalid_resources(&self) -> &BTreeMap<String, String> {
        self.policy.invalid()
    }

    fn desired_routes(&self) -> BTreeMap<IpNetwork, RouteDesire> {
        let mut routes = BTreeMap::new();
        for cidr in &self.affinities {
            let host_route = cidr.prefix() == if cidr.is_ipv4() { 32 } else { 128 };
            if !host_route
                && self
                    .blocks
                    .get(cidr)
                    .is_some_and(|owner| owner.as_deref() == Some(self.node.as_str()))
            {
                routes.insert(*cidr, RouteDesire::Blackhole);
            }
        }
        // Endpoints in id order: if two claim the same address, the first id wins.
        for ep in self.local.values() {
            for net in &ep.nets {
                routes
                    .entry(*net)
                    .and_modify(|t| {
                        if *t == RouteDesire::Blackhole {
                            *t = RouteDesire::Workload(ep.iface.clone());
                        }
                    })
                    .or_insert_with(|| RouteDesire::Workload(ep.iface.clone()));
            }
        }
        // Other nodes' pods in VXLAN pools; a local route for the same prefix wins.
        for (dst, route) in self.vxlan.routes() {
            routes.entry(dst).or_insert(route);
        }
        routes
    }
}
