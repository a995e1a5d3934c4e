//! VXLAN (pure): which VTEP this node needs and how it reaches the other nodes' pods, reduced
//! from IPPools (`vxlanMode`), Nodes (underlay address, VTEP address and MAC), FelixConfiguration
//! (`vxlanVNI`, `vxlanPort`, `vxlanMTU`; `node.<node>` beats `default` per field) and IPAM
//! blocks (Calico's `VXLANResolver` and the VXLAN part of `L3RouteResolver`, calico.md §1.1).
//!
//! Outputs:
//! - [`VxlanDesired`]: the local device (`vxlan.vrouter`: VNI, port, local underlay address,
//!   tunnel address and MAC) and one [`VtepPeer`] per remote node that published a VTEP (its
//!   tunnel address → MAC → underlay address: a permanent neighbour and a static FDB entry);
//! - [`VxlanCalc::routes`]: for every remote block of an IPv4 pool whose `vxlanMode` is not
//!   `Never` (and every address another node borrowed from a block), either
//!   [`RouteDesire::Tunnel`] (`via <remote tunnel ip> dev vxlan.vrouter onlink`) or, with
//!   `CrossSubnet` towards a node whose underlay address is in this node's subnet,
//!   [`RouteDesire::Gateway`] (`via <remote node ip>`, unencapsulated).
//!
//! The agent owns every route of a VXLAN pool, same-subnet ones included; the BGP speaker
//! installs none of them (`bgp::speaker::cluster`, ARCHITECTURE.md "One owner per route").
//! The device exists while some IPv4 pool uses VXLAN and this node has an underlay address and
//! a published VTEP (vrouterd's tunnel-address allocator writes it, `node/src/tunnel.rs`).
//! IPv6 pools are not tunnelled (their routes stay with BGP).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use datastore::ipam::{ATTR_NODE, AllocationBlock};
use datastore::keys::parse_resource_key;
use datastore::resource::Resource;
use datastore::resource::felix::{DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_VNI};
use datastore::resource::ippool::EncapMode;
use ipnetwork::{IpNetwork, Ipv4Network};
use tracing::warn;

use super::RouteDesire;

/// The local VTEP device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtepDevice {
    /// VXLAN network identifier (`vxlanVNI`, default 4096).
    pub vni: u32,
    /// UDP destination port (`vxlanPort`, default 4789).
    pub port: u16,
    /// This node's underlay address (the outer source).
    pub local: Ipv4Addr,
    /// This node's tunnel address (`spec.ipv4VXLANTunnelAddr`), a /32 on the device.
    pub addr: Ipv4Addr,
    /// The device MAC (`spec.vxlanTunnelMACAddr`).
    pub mac: [u8; 6],
    /// `vxlanMTU`; `None`: the underlay interface's MTU minus 50 (the driver reads it).
    pub mtu: Option<u32>,
}

/// A remote node's VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtepPeer {
    /// Its device MAC.
    pub mac: [u8; 6],
    /// Its underlay address (where encapsulated packets go).
    pub underlay: Ipv4Addr,
}

/// The VTEP state this node wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanDesired {
    /// The local device; `None`: no device (no VXLAN pool, or no VTEP published yet).
    pub device: Option<VtepDevice>,
    /// Remote VTEPs by tunnel address (empty without a device).
    pub peers: BTreeMap<Ipv4Addr, VtepPeer>,
}

/// What the calculation knows about a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeView {
    /// `spec.bgp.ipv4Address` (address and subnet).
    underlay: Option<Ipv4Network>,
    /// `spec.ipv4VXLANTunnelAddr` and `spec.vxlanTunnelMACAddr`, when both are valid.
    vtep: Option<(Ipv4Addr, [u8; 6])>,
}

/// FelixConfiguration VXLAN settings of one resource (`None`: not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VxlanConfig {
    vni: Option<u32>,
    port: Option<u16>,
    mtu: Option<u32>,
}

/// An IPv4 block: its affine node and the addresses other nodes borrowed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BlockView {
    owner: Option<String>,
    borrowed: Vec<(Ipv4Addr, String)>,
}

/// The VXLAN calculation of one node.
#[derive(Debug, Default)]
pub struct VxlanCalc {
    node: String,
    /// IPv4 pools by name: CIDR and mode.
    pools: BTreeMap<String, (Ipv4Network, EncapMode)>,
    nodes: BTreeMap<String, NodeView>,
    /// FelixConfiguration `default` (`.0`) and `node.<node>` (`.1`).
    felix: (VxlanConfig, VxlanConfig),
    blocks: HashMap<Ipv4Network, BlockView>,
    emitted: Option<VxlanDesired>,
    /// Pools, nodes or settings changed since the last flush.
    dirty: bool,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn node_view(node: &datastore::resource::Node) -> NodeView {
    let underlay = node
        .spec
        .bgp
        .as_ref()
        .and_then(|b| b.ipv4_address.as_deref())
        .and_then(|a| a.parse::<Ipv4Network>().ok());
    let addr = node
        .spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()
        .and_then(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok());
    let mac = node
        .spec
        .vxlan_tunnel_mac_addr
        .as_deref()
        .and_then(parse_mac);
    NodeView {
        underlay,
        vtep: addr.zip(mac),
    }
}

fn valid_mtu(name: &str, mtu: i64) -> Option<u32> {
    match u32::try_from(mtu) {
        Ok(m) if (68..=65535).contains(&m) => Some(m),
        _ => {
            warn!(
                felix_configuration = name,
                vxlan_mtu = mtu,
                "spec.vxlanMTU must be 68-65535; ignored"
            );
            None
        }
    }
}

impl VxlanCalc {
    /// The calculation for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            dirty: true,
            ..Self::default()
        }
    }

    /// Takes a resource update (IPPools, Nodes, FelixConfigurations; others are ignored).
    /// Returns true if the VXLAN routes may have changed.
    pub fn on_resource(&mut self, key: &str, resource: Option<&Resource>) -> bool {
        let changed = self.resource_changed(key, resource);
        self.dirty |= changed;
        changed
    }

    fn resource_changed(&mut self, key: &str, resource: Option<&Resource>) -> bool {
        let Some(k) = parse_resource_key(key) else {
            return false;
        };
        match k.plural.as_str() {
            "ippools" => {
                let pool = match resource {
                    Some(Resource::IpPool(p)) => match p.spec.network() {
                        Some(IpNetwork::V4(net)) => {
                            Some((net, p.spec.vxlan_mode.unwrap_or(EncapMode::Never)))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let before = match pool {
                    Some(p) => self.pools.insert(k.name, p),
                    None => self.pools.remove(&k.name),
                };
                before != pool
            }
            "nodes" => {
                let view = match resource {
                    Some(Resource::Node(n)) => Some(node_view(n)),
                    _ => None,
                };
                let before = match view.clone() {
                    Some(v) => self.nodes.insert(k.name, v),
                    None => self.nodes.remove(&k.name),
                };
                before != view
            }
            "felixconfigurations" => {
                let config = match resource {
                    Some(Resource::FelixConfiguration(f)) => VxlanConfig {
                        vni: f.spec.vxlan_vni.and_then(|v| u32::try_from(v).ok()),
                        port: f.spec.vxlan_port.and_then(|p| u16::try_from(p).ok()),
                        mtu: f.spec.vxlan_mtu.and_then(|m| valid_mtu(&k.name, m)),
                    },
                    _ => VxlanConfig::default(),
                };
                let slot = if k.name == "default" {
                    &mut self.felix.0
                } else if k.name == format!("node.{}", self.node) {
                    &mut self.felix.1
                } else {
                    return false;
                };
                let changed = *slot != config;
                *slot = config;
                changed
            }
            _ => false,
        }
    }

    /// Takes an IPAM block update. Returns true if the VXLAN routes may have changed.
    pub fn on_block(&mut self, cidr: IpNetwork, block: Option<&AllocationBlock>) -> bool {
        let IpNetwork::V4(cidr) = cidr else {
            return false;
        };
        let view = block.map(|b| {
            let owner = b.affine_node().map(str::to_string);
            let borrowed = b
                .allocated()
                .into_iter()
                .filter_map(|a| {
                    let node = a.attribute.attrs.get(ATTR_NODE)?;
                    let IpAddr::V4(ip) = a.ip else { return None };
                    (Some(node) != owner.as_ref()).then(|| (ip, node.clone()))
                })
                .collect();
            BlockView { owner, borrowed }
        });
        let before = match view.clone() {
            Some(v) => self.blocks.insert(cidr, v),
            None => self.blocks.remove(&cidr),
        };
        before != view
    }

    fn any_vxlan_pool(&self) -> bool {
        self.pools
            .values()
            .any(|(_, mode)| *mode != EncapMode::Never)
    }

    /// The VTEP state wanted now.
    pub fn desired(&self) -> VxlanDesired {
        let me = self.nodes.get(&self.node);
        let device = match me {
            Some(NodeView {
                underlay: Some(underlay),
                vtep: Some((addr, mac)),
            }) if self.any_vxlan_pool() => {
                let (default, node) = self.felix;
                Some(VtepDevice {
                    vni: node.vni.or(default.vni).unwrap_or(DEFAULT_VXLAN_VNI),
                    port: node.port.or(default.port).unwrap_or(DEFAULT_VXLAN_PORT),
                    local: underlay.ip(),
                    addr: *addr,
                    mac: *mac,
                    mtu: node.mtu.or(default.mtu),
                })
            }
            _ => None,
        };
        let mut peers = BTreeMap::new();
        if device.is_some() {
            for (name, view) in &self.nodes {
                if *name == self.node {
                    continue;
                }
                if let (Some(underlay), Some((addr, mac))) = (view.underlay, view.vtep) {
                    peers.insert(
                        addr,
                        VtepPeer {
                            mac,
                            underlay: underlay.ip(),
                        },
                    );
                }
            }
        }
        VxlanDesired { device, peers }
    }

    /// The desired state if it changed since the last call.
    pub fn flush(&mut self) -> Option<VxlanDesired> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let now = self.desired();
        if self.emitted.as_ref() == Some(&now) {
            return None;
        }
        self.emitted = Some(now.clone());
        Some(now)
    }

    /// How to reach `node`'s pods of a pool in `mode`, if it can be reached now.
    fn route_to(&self, node: &str, mode: EncapMode, tunnel: bool) -> Option<RouteDesire> {
        let view = self.nodes.get(node)?;
        let mine = self.nodes.get(&self.node).and_then(|v| v.underlay);
        let same_subnet = match (mine, view.underlay) {
            (Some(mine), Some(theirs)) => mine.contains(theirs.ip()),
            _ => false,
        };
        if mode == EncapMode::CrossSubnet && same_subnet {
            return view
                .underlay
                .map(|u| RouteDesire::Gateway(IpAddr::V4(u.ip())));
        }
        if !tunnel {
            return None;
        }
        view.vtep.map(|(addr, _)| RouteDesire::Tunnel(addr))
    }

    /// Routes to other nodes' pods in VXLAN pools (see the module docs). Local blocks and
    /// local workloads are not here: the caller's own routes win for those.
    pub fn routes(&self) -> BTreeMap<IpNetwork, RouteDesire> {
        let mut routes = BTreeMap::new();
        let tunnel = self.desired().device.is_some();
        let mode_of = |net: &Ipv4Network| {
            self.pools
                .values()
                .filter(|(pool, _)| pool.contains(net.network()) && pool.prefix() <= net.prefix())
                .map(|(_, mode)| *mode)
                .find(|mode| *mode != EncapMode::Never)
        };
        for (cidr, block) in &self.blocks {
            let Some(mode) = mode_of(cidr) else { continue };
            if let Some(owner) = &block.owner
                && *owner != self.node
                && let Some(route) = self.route_to(owner, mode, tunnel)
            {
                routes.insert(IpNetwork::V4(*cidr), route);
            }
            for (ip, node) in &block.borrowed {
                if *node == self.node {
                    continue;
                }
                if let Some(route) = self.route_to(node, mode, tunnel) {
                    routes.insert(IpNetwork::V4(Ipv4Network::from(*ip)), route);
                }
            }
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::resource::document::parse_documents;

    fn resource(yaml: &str) -> Resource {
        parse_documents(yaml).unwrap().remove(0)
    }

    fn pool(calc: &mut VxlanCalc, cidr: &str, mode: &str) -> bool {
        let r = resource(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: {cidr}, vxlanMode: {mode}}}\n"
        ));
        calc.on_resource("/vrouter/resources/ippools/p", Some(&r))
    }

    fn node(calc: &mut VxlanCalc, name: &str, underlay: &str, vtep: Option<(&str, &str)>) {
        let mut spec = format!("  bgp: {{ipv4Address: {underlay}}}\n");
        if let Some((addr, mac)) = vtep {
            spec.push_str(&format!(
                "  ipv4VXLANTunnelAddr: {addr}\n  vxlanTunnelMACAddr: \"{mac}\"\n"
            ));
        }
        let r = resource(&format!(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        ));
        calc.on_resource(&format!("/vrouter/resources/nodes/{name}"), Some(&r));
    }

    fn block(calc: &mut VxlanCalc, cidr: &str, owner: &str, borrowed: &[(&str, &str)]) {
        let net: IpNetwork = cidr.parse().unwrap();
        let mut b = AllocationBlock::new(net, Some(owner)).unwrap();
        for (ip, by) in borrowed {
            let attrs = [(ATTR_NODE.to_string(), by.to_string())].into();
            b.assign(ip.parse().unwrap(), Some(&format!("h-{ip}")), &attrs)
                .unwrap();
        }
        calc.on_block(net, Some(&b));
    }

    /// n0 and n1 share 10.1.0.0/24; n2 is in 10.2.0.0/24. Every node has a VTEP.
    fn cluster(mode: &str) -> VxlanCalc {
        let mut c = VxlanCalc::new("n0");
        pool(&mut c, "10.244.0.0/16", mode);
        node(
            &mut c,
            "n0",
            "10.1.0.10/24",
            Some(("10.244.0.1", "02:00:00:00:00:10")),
        );
        node(
            &mut c,
            "n1",
            "10.1.0.11/24",
            Some(("10.244.1.1", "02:00:00:00:00:11")),
        );
        node(
            &mut c,
            "n2",
            "10.2.0.10/24",
            Some(("10.244.2.1", "02:00:00:00:00:12")),
        );
        block(&mut c, "10.244.0.0/24", "n0", &[]);
        block(&mut c, "10.244.1.0/24", "n1", &[]);
        block(&mut c, "10.244.2.0/24", "n2", &[("10.244.2.77", "n1")]);
        c
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn always_tunnels_to_every_remote_node() {
        let c = cluster("Always");
        let d = c.desired();
        let dev = d.device.clone().unwrap();
        assert_eq!(
            (dev.vni, dev.port, dev.local, dev.addr, dev.mtu),
            (
                4096,
                4789,
                "10.1.0.10".parse().unwrap(),
                "10.244.0.1".parse().unwrap(),
                None
            )
        );
        assert_eq!(dev.mac, [2, 0, 0, 0, 0, 0x10]);
        assert_eq!(d.peers.len(), 2);
        assert_eq!(
            d.peers[&"10.244.2.1".parse::<Ipv4Addr>().unwrap()].underlay,
            "10.2.0.10".parse::<Ipv4Addr>().unwrap()
        );
        let routes = c.routes();
        assert_eq!(routes.len(), 3, "{routes:?}");
        assert_eq!(
            routes[&net("10.244.1.0/24")],
            RouteDesire::Tunnel("10.244.1.1".parse().unwrap())
        );
        assert_eq!(
            routes[&net("10.244.2.0/24")],
            RouteDesire::Tunnel("10.244.2.1".parse().unwrap())
        );
        // Borrowed by n1 from n2's block: to n1.
        assert_eq!(
            routes[&net("10.244.2.77/32")],
            RouteDesire::Tunnel("10.244.1.1".parse().unwrap())
        );
        assert!(!routes.contains_key(&net("10.244.0.0/24")), "own block");
    }

    #[test]
    fn cross_subnet_routes_natively_inside_the_subnet() {
        let c = cluster("CrossSubnet");
        let routes = c.routes();
        assert_eq!(
            routes[&net("10.244.1.0/24")],
            RouteDesire::Gateway("10.1.0.11".parse().unwrap())
        );
        assert_eq!(
            routes[&net("10.244.2.0/24")],
            RouteDesire::Tunnel("10.244.2.1".parse().unwrap())
        );
        assert_eq!(
            routes[&net("10.244.2.77/32")],
            RouteDesire::Gateway("10.1.0.11".parse().unwrap())
        );
        assert!(c.desired().device.is_some());
    }

    #[test]
    fn never_means_no_device_and_no_routes_and_mode_changes_are_live() {
        let mut c = cluster("Never");
        assert_eq!(c.desired(), VxlanDesired::default());
        assert!(c.routes().is_empty());
        assert_eq!(c.flush(), Some(VxlanDesired::default()));
        assert_eq!(c.flush(), None, "unchanged");
        assert!(pool(&mut c, "10.244.0.0/16", "CrossSubnet"));
        let d = c.flush().unwrap();
        assert!(d.device.is_some());
        assert_eq!(c.routes().len(), 3);
        assert!(pool(&mut c, "10.244.0.0/16", "Always"));
        assert_eq!(c.flush(), None, "the VTEPs do not depend on the mode");
        assert!(
            c.routes()
                .values()
                .all(|r| matches!(r, RouteDesire::Tunnel(_)))
        );
        assert!(!pool(&mut c, "10.244.0.0/16", "Always"), "no change");
        c.on_resource("/vrouter/resources/ippools/p", None);
        assert_eq!(c.flush(), Some(VxlanDesired::default()));
        assert!(c.routes().is_empty());
    }

    #[test]
    fn without_a_local_vtep_only_same_subnet_routes_remain() {
        let mut c = cluster("CrossSubnet");
        node(&mut c, "n0", "10.1.0.10/24", None);
        assert_eq!(c.desired(), VxlanDesired::default());
        let routes = c.routes();
        assert_eq!(routes.len(), 2, "{routes:?}");
        assert!(
            routes
                .values()
                .all(|r| matches!(r, RouteDesire::Gateway(_)))
        );
        // A remote node without a VTEP gets no tunnel route and no peer entry.
        let mut c = cluster("Always");
        node(&mut c, "n2", "10.2.0.10/24", None);
        assert_eq!(c.desired().peers.len(), 1);
        assert!(!c.routes().contains_key(&net("10.244.2.0/24")));
    }

    #[test]
    fn felix_configuration_node_beats_default_per_field() {
        let mut c = cluster("Always");
        let default = resource(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {vxlanVNI: 7, vxlanPort: 8472, vxlanMTU: 1400}\n",
        );
        let mine = resource(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.n0}\nspec: {vxlanPort: 4790}\n",
        );
        let other = resource(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.n1}\nspec: {vxlanPort: 1}\n",
        );
        c.on_resource(
            "/vrouter/resources/felixconfigurations/default",
            Some(&default),
        );
        c.on_resource(
            "/vrouter/resources/felixconfigurations/node.n0",
            Some(&mine),
        );
        assert!(!c.on_resource(
            "/vrouter/resources/felixconfigurations/node.n1",
            Some(&other)
        ));
        let dev = c.desired().device.unwrap();
        assert_eq!((dev.vni, dev.port, dev.mtu), (7, 4790, Some(1400)));
    }

    #[test]
    fn ipv6_pools_and_bad_fields_are_ignored() {
        let mut c = VxlanCalc::new("n0");
        pool(&mut c, "fd00::/48", "Always");
        node(
            &mut c,
            "n0",
            "10.1.0.10/24",
            Some(("10.244.0.1", "02:00:00:00:00:10")),
        );
        assert_eq!(c.desired().device, None, "an IPv6 pool makes no IPv4 VTEP");
        assert_eq!(parse_mac("02:00:00:00:00:1"), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }
}
