//! Who the reflector peers with, from etcd (pure).
//!
//! [`ClientSet`] holds the Node resources and BGPConfiguration `default` the syncer reported
//! and reduces them to one [`PeerConfig`] per node address: every Node with a BGP address that
//! the client selector matches. A node is a route-reflector client unless it carries our
//! cluster id (`spec.bgp.routeReflectorClusterID`): such nodes reflect for the same clients
//! (Calico's node-as-reflector), and RFC 4456 wants reflectors of one cluster to be
//! non-clients of each other. A node's AS is its `spec.bgp.asNumber`, else the
//! BGPConfiguration's, else ours; a node in another AS is an eBGP peer (never a client).
//! Nodes at our own address are skipped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bgp::speaker::PeerConfig;
use datastore::keys::parse_resource_key;
use datastore::resource::{BgpConfiguration, Node, Resource};

/// Settings the reduction needs.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    /// Our AS (also the default AS of nodes when no BGPConfiguration names one).
    pub asn: u32,
    /// Our cluster id.
    pub cluster_id: Ipv4Addr,
    /// Our own addresses (never a peer).
    pub own: Vec<IpAddr>,
    /// Which nodes are clients.
    pub selector: policy::Selector,
    /// Wait for clients to connect (true) or connect as well.
    pub passive: bool,
}

/// Nodes and the BGP configuration, as the syncer reported them.
#[derive(Debug, Clone, Default)]
pub struct ClientSet {
    nodes: BTreeMap<String, Node>,
    config: Option<BgpConfiguration>,
}

impl ClientSet {
    /// Applies a resource update (`None`: the key is gone). Other kinds are ignored.
    pub fn resource(&mut self, key: &str, value: Option<Resource>) {
        let Some(k) = parse_resource_key(key) else {
            return;
        };
        match (k.plural.as_str(), value) {
            ("nodes", Some(Resource::Node(n))) => {
                self.nodes.insert(k.name, n);
            }
            ("nodes", None) => {
                self.nodes.remove(&k.name);
            }
            ("bgpconfigurations", Some(Resource::BgpConfiguration(c))) if k.name == "default" => {
                self.config = Some(c);
            }
            ("bgpconfigurations", None) if k.name == "default" => self.config = None,
            _ => {}
        }
    }

    /// Number of Node resources known.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The peers the reflector should have, by address.
    pub fn desired(&self, policy: &ClientPolicy) -> BTreeMap<IpAddr, PeerConfig> {
        let global_asn = self
            .config
            .as_ref()
            .and_then(|c| c.spec.as_number.as_ref())
            .map_or(policy.asn, |a| a.get());
        let mut peers = BTreeMap::new();
        for (name, node) in &self.nodes {
            let Some(bgp) = &node.spec.bgp else { continue };
            if !policy.selector.matches(&node.metadata.labels) {
                continue;
            }
            let asn = bgp.as_number.as_ref().map_or(global_asn, |a| a.get());
            let same_cluster = bgp
                .route_reflector_cluster_id
                .as_deref()
                .and_then(|c| c.parse::<Ipv4Addr>().ok())
                == Some(policy.cluster_id);
            let addresses = [bgp.ipv4().map(IpAddr::V4), bgp.ipv6().map(IpAddr::V6)];
            for address in addresses.into_iter().flatten() {
                if policy.own.contains(&address) {
                    continue;
                }
                let mut peer = PeerConfig::new(address, asn).passive(policy.passive);
                peer.route_reflector_client = asn == policy.asn && !same_cluster;
                if peers.insert(address, peer).is_some() {
                    tracing::warn!(node = %name, %address, "two nodes share an address; one peer kept");
                }
            }
        }
        peers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use datastore::keys::resource_key;
    use datastore::resource::document::parse_documents;

    const YAML: &str = r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: b, labels: {rack: r2}}
spec: {bgp: {ipv4Address: 10.0.0.2/24, asNumber: 65001}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr-node, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 10.0.0.3/24, routeReflectorClusterID: 224.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: no-bgp, labels: {rack: r1}}
spec: {}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: me, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 10.0.0.254/24}}
"#;

    fn set() -> ClientSet {
        let mut set = ClientSet::default();
        for r in parse_documents(YAML).unwrap() {
            set.resource(&resource_key(r.kind().plural(), None, r.name()), Some(r));
        }
        set
    }

    fn policy(selector: &str) -> ClientPolicy {
        ClientPolicy {
            asn: 64512,
            cluster_id: Ipv4Addr::new(224, 0, 0, 1),
            own: vec!["10.0.0.254".parse().unwrap()],
            selector: policy::Selector::parse(selector).unwrap(),
            passive: true,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_node_with_a_bgp_address_but_ourselves() {
        let d = set().desired(&policy("all()"));
        let addrs: Vec<IpAddr> = d.keys().copied().collect();
        assert_eq!(
            addrs,
            vec![
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.3"),
                ip("fd00::1")
            ]
        );
        assert!(d[&ip("10.0.0.1")].route_reflector_client);
        assert!(d[&ip("fd00::1")].route_reflector_client && d[&ip("fd00::1")].passive);
        // Another AS: eBGP, never a client.
        assert_eq!(d[&ip("10.0.0.2")].remote_asn, 65001);
        assert!(!d[&ip("10.0.0.2")].route_reflector_client);
        // A node reflecting for the same cluster is a non-client.
        assert!(!d[&ip("10.0.0.3")].route_reflector_client);
    }

    #[test]
    fn selector_and_live_changes() {
        let mut s = set();
        let d = s.desired(&policy("rack == 'r2'"));
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), vec![ip("10.0.0.2")]);
        s.resource(&resource_key("nodes", None, "b"), None);
        assert!(s.desired(&policy("rack == 'r2'")).is_empty());
        // The BGPConfiguration's AS becomes the nodes' default.
        let cfg = parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 65010}\n",
        )
        .unwrap()
        .remove(0);
        s.resource(
            &resource_key("bgpconfigurations", None, "default"),
            Some(cfg),
        );
        let d = s.desired(&policy("all()"));
        assert_eq!(d[&ip("10.0.0.1")].remote_asn, 65010);
        assert!(!d[&ip("10.0.0.1")].route_reflector_client);
        assert_eq!(s.nodes(), 4);
    }
}
