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
//! - [`Output::Policy`]: the compiled [`policy::compile::Ruleset`] plus the local workloads
//!   it must be enforced on.
//!
//! Following Felix's syncer contract (calico.md §1.1), existence is decided by the value
//! (`None` = absent) and the last update for a key wins; invalid resources are left out of
//! the model (and reported), never allowed to break it.

mod endpoints;
mod policy_state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datastore::ipam::{AffinityState, AllocationBlock, BlockAffinity};
use datastore::keys::{IPAM_AFFINITY, IPAM_BLOCKS, RESOURCES, parse_cidr_segment};
use datastore::resource::Resource;
use datastore::syncer::Update;
use ipnetwork::IpNetwork;
use policy::compile::Ruleset;
use policy::model::EndpointId;

pub use endpoints::{LocalEndpoint, local_endpoint};
use policy_state::PolicyCalc;

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
}

/// The policy state the nftables dataplane must enforce.
#[derive(Debug, Clone)]
pub struct PolicyDesired {
    /// The compiled cluster policy (sets hold cluster-wide members; `endpoints` is limited
    /// to the local ones).
    pub ruleset: Ruleset,
    /// Local workload interfaces, sorted by endpoint id.
    pub workloads: Vec<LocalEndpoint>,
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
}

/// The calculation state of one node.
#[derive(Debug)]
pub struct Calc {
    node: String,
    /// This node's WorkloadEndpoints.
    local: BTreeMap<EndpointId, LocalEndpoint>,
    /// Local endpoints last emitted.
    emitted_endpoints: BTreeMap<EndpointId, LocalEndpoint>,
    /// Block CIDR → the node in its `affinity`.
    blocks: HashMap<IpNetwork, Option<String>>,
    /// Blocks with a confirmed affinity for this node.
    affinities: BTreeSet<IpNetwork>,
    /// Routes last emitted.
    emitted_routes: BTreeMap<IpNetwork, RouteDesire>,
    routes_dirty: bool,
    policy: PolicyCalc,
}

impl Calc {
    /// The calculation for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            local: BTreeMap::new(),
            emitted_endpoints: BTreeMap::new(),
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
                }
                _ => {
                    self.blocks.remove(&cidr);
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
        if let Some(Resource::WorkloadEndpoint(w)) = &resource {
            let id = endpoints::endpoint_id_of(w);
            match local_endpoint(&self.node, w) {
                Some(local) => {
                    self.local.insert(id, local);
                }
                None => {
                    self.local.remove(&id);
                }
            }
        } else if let Some(previous) = self.policy.resource(&key)
            && let Resource::WorkloadEndpoint(w) = previous
        {
            // Deleted (or replaced by something else under the same key).
            let id = endpoints::endpoint_id_of(w);
            self.local.remove(&id);
        }
        self.policy.on_resource(key, resource);
    }

    /// Number of local endpoints.
    pub fn local_endpoints(&self) -> usize {
        self.local.len()
    }

    /// Every change of the desired state since the last flush, in no particular order (the
    /// sequencer orders them).
    pub fn flush(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let endpoints_changed = self.local != self.emitted_endpoints;
        if endpoints_changed {
            for id in self.emitted_endpoints.keys() {
                if !self.local.contains_key(id) {
                    out.push(Output::Endpoint {
                        id: id.clone(),
                        endpoint: None,
                    });
                }
            }
            for (id, ep) in &self.local {
                if self.emitted_endpoints.get(id) != Some(ep) {
                    out.push(Output::Endpoint {
                        id: id.clone(),
                        endpoint: Some(ep.clone()),
                    });
                }
            }
            self.emitted_endpoints = self.local.clone();
            self.routes_dirty = true;
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
        if let Some(ruleset) = self.policy.flush(&self.local, endpoints_changed) {
            out.push(Output::Policy(Box::new(PolicyDesired {
                ruleset,
                workloads: self.local.values().cloned().collect(),
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
        routes
    }
}
