//! Outbound NAT and pod MTU inputs, reduced from IPPools, Nodes and FelixConfiguration
//! (pure): the CIDRs of the pools with `natOutgoing`, of every pool, every node's addresses,
//! the pools whose pods sit behind VXLAN (their interfaces leave room for it, see
//! [`datastore::ipam::workload::pod_mtu`]) and the MTU settings of FelixConfiguration
//! `default` and `node.<node>` (`mtuIfacePattern`, `vxlanMTU`; the node's win per field).
//!
//! Fed with every resource update, read with [`NatCalc::flush`], which returns a new
//! [`NatDesired`] only when it changed. Every pool counts, disabled ones too: disabling a pool
//! stops new allocations, while its existing pods keep their addresses and their NAT.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use datastore::ipam::workload::pool_uses_vxlan;
use datastore::keys::{RESOURCES, parse_resource_key};
use datastore::resource::{Kind, Resource};
use datastore::syncer::Update;
use ipnetwork::IpNetwork;
use tracing::warn;

use super::Value;

/// What the NAT chain and the MTU rule need to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatDesired {
    /// CIDRs of the pools with `natOutgoing: true`.
    pub masq_pools: BTreeSet<IpNetwork>,
    /// CIDRs of every pool.
    pub all_pools: BTreeSet<IpNetwork>,
    /// Every node's addresses: BGP `ipv4Address`/`ipv6Address`, IPIP and VXLAN tunnel
    /// addresses, `spec.addresses`.
    pub node_addrs: BTreeSet<IpAddr>,
    /// CIDRs of the pools with a `vxlanMode` other than `Never`.
    pub vxlan_pools: BTreeSet<IpNetwork>,
    /// MTU settings.
    pub mtu: MtuConfig,
}

/// FelixConfiguration's MTU settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtuConfig {
    /// `mtuIfacePattern`: a regular expression; the underlay MTU is the smallest MTU of the
    /// matching interfaces (default: the interface of the default route).
    pub iface_pattern: Option<String>,
    /// `vxlanMTU`: the MTU of pods in VXLAN pools (default: underlay − 50).
    pub vxlan_mtu: Option<u32>,
}

impl NatDesired {
    /// True when `ip` belongs to a VXLAN pool.
    pub fn in_vxlan_pool(&self, ip: IpAddr) -> bool {
        self.vxlan_pools.iter().any(|p| p.contains(ip))
    }
}

/// One pool's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pool {
    cidr: IpNetwork,
    nat_outgoing: bool,
    vxlan: bool,
}

/// The NAT calculation: pools and nodes by etcd key.
#[derive(Debug, Default)]
pub struct NatCalc {
    node: String,
    /// FelixConfiguration `default` (`.0`) and `node.<node>` (`.1`).
    felix: (MtuConfig, MtuConfig),
    pools: BTreeMap<String, Pool>,
    nodes: BTreeMap<String, Vec<IpAddr>>,
    emitted: Option<NatDesired>,
    dirty: bool,
}

fn node_addrs(node: &datastore::resource::Node) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(bgp) = &node.spec.bgp {
        out.extend(bgp.ipv4().map(IpAddr::V4));
        out.extend(bgp.ipv6().map(IpAddr::V6));
        out.extend(bgp.ipv4_ipip_tunnel_addr.as_deref().and_then(parse_addr));
    }
    for tunnel in [
        &node.spec.ipv4_vxlan_tunnel_addr,
        &node.spec.ipv6_vxlan_tunnel_addr,
    ] {
        out.extend(tunnel.as_deref().and_then(parse_addr));
    }
    out.extend(
        node.spec
            .addresses
            .iter()
            .filter_map(|a| parse_addr(&a.address)),
    );
    out
}

/// An address, with or without a prefix length.
fn parse_addr(text: &str) -> Option<IpAddr> {
    text.split('/').next()?.parse().ok()
}

impl NatCalc {
    /// An empty calculation for node `node`; its first flush emits (empty sets still make
    /// the chain).
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            dirty: true,
            ..Self::default()
        }
    }

    fn on_felix_configuration(&mut self, name: &str, resource: Option<&Resource>) {
        let slot = if name == "default" {
            &mut self.felix.0
        } else if name == format!("node.{}", self.node) {
            &mut self.felix.1
        } else {
            return;
        };
        let config = match resource {
            Some(Resource::FelixConfiguration(f)) => MtuConfig {
                iface_pattern: f.spec.mtu_iface_pattern.clone().filter(|p| !p.is_empty()),
                vxlan_mtu: f.spec.vxlan_mtu.and_then(|m| match u32::try_from(m) {
                    Ok(m) if (68..=65535).contains(&m) => Some(m),
                    _ => {
                        warn!(
                            felix_configuration = name,
                            vxlan_mtu = m,
                            "spec.vxlanMTU must be 68-65535; ignored"
                        );
                        None
                    }
                }),
            },
            _ => MtuConfig::default(),
        };
        if *slot != config {
            *slot = config;
            self.dirty = true;
        }
    }

    /// Takes one syncer update (anything but IPPools and Nodes is ignored). No I/O.
    pub fn on_update(&mut self, update: &Update<Value>) {
        if !update.key.starts_with(RESOURCES) {
            return;
        }
        let resource = match &update.value {
            Some(Value::Resource(r)) => Some(r),
            _ => None,
        };
        self.on_resource(&update.key, resource);
    }

    /// Takes one resource by key (`None`: deleted).
    pub fn on_resource(&mut self, key: &str, resource: Option<&Resource>) {
        let Some(k) = parse_resource_key(key) else {
            return;
        };
        if k.plural == Kind::FelixConfiguration.plural() {
            self.on_felix_configuration(&k.name, resource);
        } else if k.plural == Kind::IpPool.plural() {
            let pool = match resource {
                Some(Resource::IpPool(p)) => match p.spec.network() {
                    Some(cidr) => Some(Pool {
                        cidr,
                        nat_outgoing: p.spec.nat_outgoing.unwrap_or(false),
                        vxlan: pool_uses_vxlan(p),
                    }),
                    None => {
                        warn!(%key, cidr = %p.spec.cidr, "IPPool with an invalid spec.cidr left out of NAT");
                        None
                    }
                },
                _ => None,
            };
            let changed = match pool {
                Some(p) => self.pools.insert(key.to_string(), p.clone()) != Some(p),
                None => self.pools.remove(key).is_some(),
            };
            self.dirty |= changed;
        } else if k.plural == Kind::Node.plural() {
            let addrs = match resource {
                Some(Resource::Node(n)) => Some(node_addrs(n)),
                _ => None,
            };
            let changed = match addrs {
                Some(a) => self.nodes.insert(key.to_string(), a.clone()) != Some(a),
                None => self.nodes.remove(key).is_some(),
            };
            self.dirty |= changed;
        }
    }

    /// The desired state, if it changed since the last flush.
    pub fn flush(&mut self) -> Option<NatDesired> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let mut desired = NatDesired::default();
        for pool in self.pools.values() {
            desired.all_pools.insert(pool.cidr);
            if pool.nat_outgoing {
                desired.masq_pools.insert(pool.cidr);
            }
            if pool.vxlan {
                desired.vxlan_pools.insert(pool.cidr);
            }
        }
        desired.node_addrs = self.nodes.values().flatten().copied().collect();
        let (default, node) = &self.felix;
        desired.mtu = MtuConfig {
            iface_pattern: node.iface_pattern.clone().or(default.iface_pattern.clone()),
            vxlan_mtu: node.vxlan_mtu.or(default.vxlan_mtu),
        };
        if self.emitted.as_ref() == Some(&desired) {
            return None;
        }
        self.emitted = Some(desired.clone());
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::resource::parse_and_validate_documents;

    fn resource(yaml: &str) -> Resource {
        parse_and_validate_documents(yaml)
            .expect("valid yaml")
            .remove(0)
    }

    fn pool(name: &str, cidr: &str, nat: bool, vxlan: &str) -> Resource {
        resource(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\n\
             spec:\n  cidr: {cidr}\n  natOutgoing: {nat}\n  vxlanMode: {vxlan}\n"
        ))
    }

    fn key(plural: &str, name: &str) -> String {
        datastore::keys::resource_key(plural, None, name)
    }

    #[test]
    fn pools_and_nodes_become_sets() {
        let mut calc = NatCalc::new("n1");
        assert_eq!(
            calc.flush(),
            Some(NatDesired::default()),
            "first flush emits"
        );
        assert_eq!(calc.flush(), None);
        calc.on_resource(
            &key("ippools", "a"),
            Some(&pool("a", "10.65.0.0/16", true, "Never")),
        );
        calc.on_resource(
            &key("ippools", "b"),
            Some(&pool("b", "10.66.0.0/16", false, "Always")),
        );
        calc.on_resource(
            &key("ippools", "c"),
            Some(&pool("c", "fd00:65::/64", true, "Never")),
        );
        let node = resource(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n\
             spec:\n  bgp:\n    ipv4Address: 192.0.2.1/24\n    ipv6Address: 2001:db8::1/64\n\
             \x20 ipv4VXLANTunnelAddr: 10.66.0.1\n  addresses:\n  - address: 198.51.100.7/24\n",
        );
        calc.on_resource(&key("nodes", "n1"), Some(&node));
        let d = calc.flush().expect("changed");
        let nets =
            |v: &[&str]| -> BTreeSet<IpNetwork> { v.iter().map(|s| s.parse().unwrap()).collect() };
        assert_eq!(d.masq_pools, nets(&["10.65.0.0/16", "fd00:65::/64"]));
        assert_eq!(
            d.all_pools,
            nets(&["10.65.0.0/16", "10.66.0.0/16", "fd00:65::/64"])
        );
        assert_eq!(d.vxlan_pools, nets(&["10.66.0.0/16"]));
        let addrs: BTreeSet<IpAddr> = ["192.0.2.1", "2001:db8::1", "10.66.0.1", "198.51.100.7"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(d.node_addrs, addrs);
        assert!(d.in_vxlan_pool("10.66.3.4".parse().unwrap()));
        assert!(!d.in_vxlan_pool("10.65.3.4".parse().unwrap()));

        // Toggling natOutgoing changes only the masquerade set; a no-op update emits nothing.
        calc.on_resource(
            &key("ippools", "a"),
            Some(&pool("a", "10.65.0.0/16", false, "Never")),
        );
        let toggled = calc.flush().expect("changed");
        assert_eq!(toggled.masq_pools, nets(&["fd00:65::/64"]));
        assert_eq!(toggled.all_pools, d.all_pools);
        calc.on_resource(
            &key("ippools", "a"),
            Some(&pool("a", "10.65.0.0/16", false, "Never")),
        );
        assert_eq!(calc.flush(), None);

        // Deletions, and resources of other kinds are ignored.
        calc.on_resource(&key("ippools", "b"), None);
        calc.on_resource(&key("nodes", "n1"), None);
        calc.on_resource(&key("globalnetworksets", "x"), None);
        let gone = calc.flush().expect("changed");
        assert!(gone.node_addrs.is_empty());
        assert_eq!(gone.all_pools, nets(&["10.65.0.0/16", "fd00:65::/64"]));
        assert!(gone.vxlan_pools.is_empty());
    }

    #[test]
    fn mtu_settings_node_over_default() {
        let mut calc = NatCalc::new("n1");
        let felix = |name: &str, spec: &str| {
            resource(&format!(
                "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\n\
                 metadata:\n  name: {name}\nspec:\n{spec}"
            ))
        };
        calc.on_resource(
            &key("felixconfigurations", "default"),
            Some(&felix(
                "default",
                "  mtuIfacePattern: ^eth\n  vxlanMTU: 1400\n",
            )),
        );
        calc.on_resource(
            &key("felixconfigurations", "node.n1"),
            Some(&felix("node.n1", "  vxlanMTU: 1300\n")),
        );
        calc.on_resource(
            &key("felixconfigurations", "node.other"),
            Some(&felix("node.other", "  vxlanMTU: 1000\n")),
        );
        let d = calc.flush().expect("changed");
        assert_eq!(
            d.mtu,
            MtuConfig {
                iface_pattern: Some("^eth".into()),
                vxlan_mtu: Some(1300),
            }
        );
        calc.on_resource(&key("felixconfigurations", "node.n1"), None);
        assert_eq!(calc.flush().expect("changed").mtu.vxlan_mtu, Some(1400));
    }
}
