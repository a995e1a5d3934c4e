//! `Node` (libcalico-go `internalapi/node.go`): a host's BGP identity, tunnel addresses and
//! addresses, written by the node agent at start and read by every peer for the full mesh.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::meta::{NameRule, ObjectMeta};
use super::numorstring::AsNumber;
use super::validation::{
    Checked, Quoted, ValidationError, check_ipv4, check_ipv6, check_mac, parse_ip_or_cidr,
};

/// A Calico node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Metadata (cluster-scoped; the name is the hostname).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Observed state (calicoctl prints `status: {}` when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

/// `Node.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// BGP identity; absent = the node runs no BGP.
    #[serde(default, rename = "bgp", skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// IPv4 address of the node's VXLAN device.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<String>,
    /// MAC of the node's IPv4 VXLAN device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    /// IPv6 address of the node's VXLAN device.
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<String>,
    /// MAC of the node's IPv6 VXLAN device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr_v6: Option<String>,
    /// Orchestrator references (`k8s` node name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
    /// WireGuard interface addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<NodeWireguardSpec>,
    /// The node's addresses by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Host interfaces and their addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<NodeInterface>,
}

/// `Node.spec.bgp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBgpSpec {
    /// Node AS number (default: the global one from BGPConfiguration).
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// IPv4 address with prefix length (`10.0.0.1/24`); the BGP router id and peering address.
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<String>,
    /// IPv6 address with prefix length.
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<String>,
    /// IPv4 address of the IP-in-IP tunnel device.
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<String>,
    /// Route-reflector cluster id (an IPv4 dotted quad); set = this node is a reflector.
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<String>,
}

/// An address of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// Address, with or without prefix length.
    pub address: String,
    /// Address type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub address_type: Option<NodeAddressType>,
}

/// Kind of node address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeAddressType {
    /// The address the node agent detected and uses.
    #[serde(rename = "CalicoNodeIP")]
    CalicoNodeIp,
    /// Kubernetes InternalIP.
    #[serde(rename = "InternalIP")]
    InternalIp,
    /// Kubernetes ExternalIP.
    #[serde(rename = "ExternalIP")]
    ExternalIp,
}

/// A host interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInterface {
    /// Interface name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// Orchestrator reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrchRef {
    /// The orchestrator's name for the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Orchestrator (`k8s`).
    pub orchestrator: String,
}

/// `Node.spec.wireguard`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWireguardSpec {
    /// IPv4 address of the WireGuard device.
    #[serde(
        default,
        rename = "interfaceIPv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv4_address: Option<String>,
    /// IPv6 address of the WireGuard device.
    #[serde(
        default,
        rename = "interfaceIPv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv6_address: Option<String>,
}

/// `Node.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStatus {
    /// WireGuard public key (IPv4 device).
    #[serde(
        default,
        rename = "wireguardPublicKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_public_key: Option<String>,
    /// WireGuard public key (IPv6 device).
    #[serde(
        default,
        rename = "wireguardPublicKeyV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_public_key_v6: Option<String>,
    /// Pod CIDRs Kubernetes assigned to the node.
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
}

impl NodeBgpSpec {
    /// The IPv4 peering address (`ipv4Address` without its prefix length).
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        match self.ipv4_address.as_deref()?.parse::<IpNetwork>().ok()? {
            IpNetwork::V4(net) => Some(net.ip()),
            IpNetwork::V6(_) => None,
        }
    }

    /// The IPv6 peering address.
    pub fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        match self.ipv6_address.as_deref()?.parse::<IpNetwork>().ok()? {
            IpNetwork::V6(net) => Some(net.ip()),
            IpNetwork::V4(_) => None,
        }
    }
}

/// Checks an `ipvNAddress` field: an address of the right family, with or without prefix.
fn check_family_cidr(path: &str, value: &str, want_v4: bool) -> Checked {
    let net = parse_ip_or_cidr(path, value)?;
    if net.is_ipv4() != want_v4 {
        return Err(ValidationError::new(
            path,
            format!(
                "{} is not an IPv{} address",
                Quoted(value),
                if want_v4 { 4 } else { 6 }
            ),
        ));
    }
    Ok(())
}

impl Node {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        let spec = &self.spec;
        if let Some(bgp) = &spec.bgp {
            if bgp == &NodeBgpSpec::default() {
                return Err(ValidationError::new("spec.bgp", "must not be empty"));
            }
            if let Some(v) = &bgp.ipv4_address {
                check_family_cidr("spec.bgp.ipv4Address", v, true)?;
            }
            if let Some(v) = &bgp.ipv6_address {
                check_family_cidr("spec.bgp.ipv6Address", v, false)?;
            }
            if let Some(v) = &bgp.ipv4_ipip_tunnel_addr {
                check_ipv4("spec.bgp.ipv4IPIPTunnelAddr", v)?;
            }
            if let Some(v) = &bgp.route_reflector_cluster_id {
                check_ipv4("spec.bgp.routeReflectorClusterID", v)?;
            }
        }
        if let Some(v) = &spec.ipv4_vxlan_tunnel_addr {
            check_ipv4("spec.ipv4VXLANTunnelAddr", v)?;
        }
        if let Some(v) = &spec.ipv6_vxlan_tunnel_addr {
            check_ipv6("spec.ipv6VXLANTunnelAddr", v)?;
        }
        if let Some(v) = &spec.vxlan_tunnel_mac_addr {
            check_mac("spec.vxlanTunnelMACAddr", v)?;
        }
        if let Some(v) = &spec.vxlan_tunnel_mac_addr_v6 {
            check_mac("spec.vxlanTunnelMACAddrV6", v)?;
        }
        if let Some(wg) = &spec.wireguard {
            if let Some(v) = &wg.interface_ipv4_address {
                check_ipv4("spec.wireguard.interfaceIPv4Address", v)?;
            }
            if let Some(v) = &wg.interface_ipv6_address {
                check_ipv6("spec.wireguard.interfaceIPv6Address", v)?;
            }
        }
        for (i, addr) in spec.addresses.iter().enumerate() {
            parse_ip_or_cidr(&format!("spec.addresses[{i}].address"), &addr.address)?;
        }
        for (i, iface) in spec.interfaces.iter().enumerate() {
            for (j, addr) in iface.addresses.iter().enumerate() {
                parse_ip_or_cidr(&format!("spec.interfaces[{i}].addresses[{j}]"), addr)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::*;

    /// As `calicoctl get node -o yaml` prints a Kubernetes-backed node.
    const CALICOCTL_NODE: &str = r#"apiVersion: projectcalico.org/v3
kind: Node
metadata:
  annotations:
    projectcalico.org/kube-labels: '{"kubernetes.io/hostname":"node1"}'
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: node1
  name: node1
  resourceVersion: "58219"
  uid: 7c1ad6fa-0f1f-4a9e-9f3b-4cdb1b2a1f00
spec:
  addresses:
  - address: 10.128.0.4/32
    type: CalicoNodeIP
  - address: 10.128.0.4
    type: InternalIP
  bgp:
    ipv4Address: 10.128.0.4/32
    ipv4IPIPTunnelAddr: 192.168.77.128
  orchRefs:
  - nodeName: node1
    orchestrator: k8s
status:
  podCIDRs:
  - 192.168.0.0/24
"#;

    #[test]
    fn calicoctl_node_round_trips() {
        let Resource::Node(node) = assert_round_trip(CALICOCTL_NODE) else {
            panic!("not a node")
        };
        let bgp = node.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4(), Some("10.128.0.4".parse().unwrap()));
        assert_eq!(
            node.spec.addresses[0].address_type,
            Some(NodeAddressType::CalicoNodeIp)
        );
    }

    #[test]
    fn every_node_field_round_trips() {
        assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: rr1.example
spec:
  bgp:
    asNumber: 64513
    ipv4Address: 10.0.0.1/24
    ipv6Address: fd00::1/64
    ipv4IPIPTunnelAddr: 10.244.0.1
    routeReflectorClusterID: 224.0.0.1
  ipv4VXLANTunnelAddr: 10.244.0.2
  vxlanTunnelMACAddr: 66:1f:0b:3c:aa:01
  ipv6VXLANTunnelAddr: fd00:244::2
  vxlanTunnelMACAddrV6: 66:1f:0b:3c:aa:02
  orchRefs:
  - orchestrator: k8s
  wireguard:
    interfaceIPv4Address: 10.244.0.3
    interfaceIPv6Address: fd00:244::3
  addresses:
  - address: 192.0.2.10
    type: ExternalIP
  - address: 10.0.0.1/24
  interfaces:
  - name: eth0
    addresses: [10.0.0.1/24, fd00::1/64]
status:
  wireguardPublicKey: jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=
  wireguardPublicKeyV6: 3o8jG4c2hD1fU7hT0P2lS9sY0Ww6q1kI6mZx1kC9P2A=
  podCIDRs: [10.244.0.0/24]
"#,
        );
        // `status: {}` (printed by calicoctl) survives too.
        assert_round_trip(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {}\nstatus: {}\n",
        );
    }

    #[test]
    fn node_address_checks() {
        let head = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\n";
        let err = assert_invalid(&format!(
            "{head}spec:\n  bgp: {{ipv4Address: 10.0.0.300/24}}\n"
        ));
        assert_eq!(err.path, "spec.bgp.ipv4Address");
        assert!(err.message.contains("10.0.0.300/24"), "{err}");
        let err = assert_invalid(&format!(
            "{head}spec:\n  bgp: {{ipv4Address: fd00::1/64}}\n"
        ));
        assert!(err.message.contains("not an IPv4"), "{err}");
        let err = assert_invalid(&format!("{head}spec:\n  bgp: {{}}\n"));
        assert_eq!(err.path, "spec.bgp");
        let err = assert_invalid(&format!(
            "{head}spec:\n  addresses:\n  - address: 10.0.0.1\n  - address: nope\n"
        ));
        assert_eq!(err.path, "spec.addresses[1].address");
        let err = assert_invalid(&format!(
            "{head}spec:\n  bgp: {{routeReflectorClusterID: 'fd00::1'}}\n"
        ));
        assert_eq!(err.path, "spec.bgp.routeReflectorClusterID");
        let err = assert_invalid(&format!("{head}spec:\n  vxlanTunnelMACAddr: zz\n"));
        assert_eq!(err.path, "spec.vxlanTunnelMACAddr");
    }
}
