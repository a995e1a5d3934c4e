//! `BGPPeer` (`bgppeer.go`) and `BGPConfiguration` (`bgpconfig.go`): who a node peers with,
//! and the cluster-wide (`default`) or per-node (`node.<name>`) BGP settings.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::meta::{NameRule, ObjectMeta};
use super::numorstring::AsNumber;
use super::validation::{
    Checked, Quoted, ValidationError, check_cidr, check_ipv4, check_ipv6, parse_ip,
    parse_ip_or_cidr,
};

/// A BGP peering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: BgpPeerSpec,
}

/// `BGPPeer.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Local node this peering applies to (absent with no `nodeSelector` = every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Local nodes this peering applies to (selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Remote address: `IP`, `IPv4:port` or `[IPv6]:port`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<String>,
    /// Remote AS number.
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Local AS number to use for this peering.
    #[serde(
        default,
        rename = "localASNumber",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_as_number: Option<AsNumber>,
    /// Remote nodes to peer with (selector), instead of `peerIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    /// Deprecated: keep the original next hop (use `nextHopMode: Keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_original_next_hop: Option<bool>,
    /// Next-hop handling for routes sent to this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// TCP-MD5 password source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    /// Source address for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// Graceful-restart time (Go duration, `120s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    /// Keepalive time (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// How often the local AS may appear in received AS paths.
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<i32>,
    /// GTSM: the peer is at most this many hops away (RFC 5082).
    #[serde(
        default,
        rename = "ttlSecurity",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_security: Option<u8>,
    /// Gateway through which the peer is reached (adds a /32 route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<String>,
    /// BGPFilter names applied to this peering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Peer with local workloads matching this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_workload_selector: Option<String>,
    /// Whether the reverse peering is generated automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_peering: Option<ReversePeering>,
}

/// Next-hop mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NextHopMode {
    /// BIRD's default behaviour.
    Auto,
    /// Always set next hop to self.
    #[serde(rename = "Self")]
    SelfNextHop,
    /// Keep the received next hop.
    Keep,
}

/// Session source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceAddress {
    /// Use the node IP as source.
    #[serde(rename = "UseNodeIP")]
    UseNodeIp,
    /// Let the kernel choose.
    None,
}

/// Reverse peering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReversePeering {
    /// Generated automatically.
    Auto,
    /// Configured by hand.
    Manual,
}

/// Where a BGP password comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPassword {
    /// A key in a Kubernetes secret (in the node agent's namespace).
    #[serde(
        default,
        rename = "secretKeyRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// Kubernetes `SecretKeySelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeySelector {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key within the secret.
    pub key: String,
    /// Whether the secret may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Parses a `peerIP`: `IP`, `IPv4:port` or `[IPv6]:port` (port 1–65535).
pub fn parse_peer_ip(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let sock = text.parse::<SocketAddr>().ok()?;
    (sock.port() != 0).then_some((sock.ip(), Some(sock.port())))
}

impl BgpPeerSpec {
    /// The parsed `peerIP` (address and optional port).
    pub fn peer_addr(&self) -> Option<(IpAddr, Option<u16>)> {
        parse_peer_ip(self.peer_ip.as_deref()?)
    }

    fn check(&self) -> Checked {
        if self.node.is_some() && self.node_selector.is_some() {
            return Err(ValidationError::new(
                "spec.nodeSelector",
                "node and nodeSelector cannot both be set",
            ));
        }
        if self.peer_ip.is_some() && self.peer_selector.is_some() {
            return Err(ValidationError::new(
                "spec.peerSelector",
                "peerIP and peerSelector cannot both be set",
            ));
        }
        if self.peer_selector.is_some() && self.as_number.is_some() {
            return Err(ValidationError::new(
                "spec.asNumber",
                "asNumber cannot be set with peerSelector (the peers' own AS numbers are used)",
            ));
        }
        let peer = match &self.peer_ip {
            Some(text) => Some(parse_peer_ip(text).ok_or_else(|| {
                ValidationError::new(
                    "spec.peerIP",
                    format!(
                        "{} is not an IP address, IPv4:port or [IPv6]:port",
                        Quoted(text)
                    ),
                )
            })?),
            None => None,
        };
        if let Some((ip, _)) = peer
            && self.as_number.is_none()
        {
            return Err(ValidationError::new(
                "spec.asNumber",
                format!("is required with peerIP {ip}"),
            ));
        }
        if self.keep_original_next_hop == Some(true) && self.next_hop_mode.is_some() {
            return Err(ValidationError::new(
                "spec.nextHopMode",
                "keepOriginalNextHop and nextHopMode cannot both be set",
            ));
        }
        if let Some(gw) = &self.reachable_by {
            if peer.is_none() {
                return Err(ValidationError::new("spec.reachableBy", "requires peerIP"));
            }
            let gw_ip = parse_ip("spec.reachableBy", gw)?;
            if let Some((ip, _)) = peer
                && ip.is_ipv4() != gw_ip.is_ipv4()
            {
                return Err(ValidationError::new(
                    "spec.reachableBy",
                    format!(
                        "{} and peerIP {ip} are of different address families",
                        Quoted(gw)
                    ),
                ));
            }
        }
        if let Some(n) = self.num_allowed_local_as_numbers
            && n < 0
        {
            return Err(ValidationError::new(
                "spec.numAllowedLocalASNumbers",
                format!("{n} must not be negative"),
            ));
        }
        Ok(())
    }
}

impl BgpPeer {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        self.spec.check()
    }
}

/// BGP settings: `default` for the cluster, `node.<name>` for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfiguration {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: BgpConfigurationSpec,
}

/// `BGPConfiguration.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    /// Log level of the BGP speaker (`Info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    /// Full node-to-node mesh (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Default AS number (64512).
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Service LoadBalancer CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrBlock>,
    /// Service external-IP CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrBlock>,
    /// Service cluster-IP CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrBlock>,
    /// Aggregate LoadBalancer routes (`Enabled`/`Disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_load_balancer_aggregation: Option<String>,
    /// Named communities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Communities to attach to advertised prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// BGP listen port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// TCP-MD5 password for mesh sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    /// Graceful-restart time for mesh sessions (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
    /// Listen on the node IP only (`NodeIP`) or everywhere (`None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,
    /// Interfaces whose routes are not imported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    /// IPv4 address local workloads peer with.
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV4",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv4: Option<String>,
    /// IPv6 address local workloads peer with.
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv6: Option<String>,
    /// Which cluster routes the BGP daemon programs (`Enabled`/`Disabled`/`EnabledNoEncapOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_cluster_routes: Option<String>,
    /// Kernel metric for normal IPv4 routes (1..=2147483646, default 1024).
    #[serde(
        default,
        rename = "ipv4NormalRoutePriority",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_normal_route_priority: Option<i64>,
    /// Kernel metric for normal IPv6 routes.
    #[serde(
        default,
        rename = "ipv6NormalRoutePriority",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_normal_route_priority: Option<i64>,
}

/// Listen address mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BindMode {
    /// Listen on all addresses.
    None,
    /// Listen on the node IP only.
    #[serde(rename = "NodeIP")]
    NodeIp,
}

/// A CIDR to advertise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrBlock {
    /// The CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// A named BGP community value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// Name used in `prefixAdvertisements`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `aa:nn` (standard, RFC 1997) or `aa:nn:mm` (large, RFC 8092).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Communities for one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// The prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Community names or literal values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

/// Whether `value` is a standard (`aa:nn`, 16-bit parts) or large (`aa:nn:mm`, 32-bit parts)
/// community.
pub fn is_valid_community(value: &str) -> bool {
    let parts: Vec<&str> = value.split(':').collect();
    let all_digits = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    all_digits
        && match parts.len() {
            2 => parts.iter().all(|p| p.parse::<u16>().is_ok()),
            3 => parts.iter().all(|p| p.parse::<u32>().is_ok()),
            _ => false,
        }
}

impl BgpConfigurationSpec {
    fn check(&self) -> Checked {
        let blocks = [
            ("serviceLoadBalancerIPs", &self.service_load_balancer_ips),
            ("serviceExternalIPs", &self.service_external_ips),
            ("serviceClusterIPs", &self.service_cluster_ips),
        ];
        for (field, list) in blocks {
            for (i, block) in list.iter().enumerate() {
                if let Some(cidr) = &block.cidr {
                    parse_ip_or_cidr(&format!("spec.{field}[{i}].cidr"), cidr)?;
                }
            }
        }
        for (i, community) in self.communities.iter().enumerate() {
            let value = community.value.as_deref().unwrap_or_default();
            if !is_valid_community(value) {
                return Err(ValidationError::new(
                    format!("spec.communities[{i}].value"),
                    format!("{} is not a community (aa:nn or aa:nn:mm)", Quoted(value)),
                ));
            }
            if community.name.as_deref().unwrap_or_default().is_empty() {
                return Err(ValidationError::new(
                    format!("spec.communities[{i}].name"),
                    "is required",
                ));
            }
        }
        for (i, adv) in self.prefix_advertisements.iter().enumerate() {
            let cidr = adv.cidr.as_deref().unwrap_or_default();
            check_cidr(&format!("spec.prefixAdvertisements[{i}].cidr"), cidr)?;
            for (j, c) in adv.communities.iter().enumerate() {
                let defined = self
                    .communities
                    .iter()
                    .any(|d| d.name.as_deref() == Some(c.as_str()));
                if !defined && !is_valid_community(c) {
                    return Err(ValidationError::new(
                        format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                        format!(
                            "{} is neither a defined community nor a community value",
                            Quoted(c)
                        ),
                    ));
                }
            }
        }
        if self.listen_port == Some(0) {
            return Err(ValidationError::new(
                "spec.listenPort",
                "0 is not a valid port",
            ));
        }
        if let Some(v) = &self.local_workload_peering_ipv4 {
            check_ipv4("spec.localWorkloadPeeringIPV4", v)?;
        }
        if let Some(v) = &self.local_workload_peering_ipv6 {
            check_ipv6("spec.localWorkloadPeeringIPV6", v)?;
        }
        let priorities = [
            (
                "spec.ipv4NormalRoutePriority",
                self.ipv4_normal_route_priority,
            ),
            (
                "spec.ipv6NormalRoutePriority",
                self.ipv6_normal_route_priority,
            ),
        ];
        for (path, value) in priorities {
            if let Some(p) = value
                && !(1..=2_147_483_646).contains(&p)
            {
                return Err(ValidationError::new(
                    path,
                    format!("{p} is out of range (1..=2147483646)"),
                ));
            }
        }
        Ok(())
    }
}

impl BgpConfiguration {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        self.spec.check()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::*;

    #[test]
    fn calico_docs_bgppeers_round_trip() {
        let Resource::BgpPeer(peer) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: some.name
spec:
  node: rack1-host1
  peerIP: 192.168.1.1
  asNumber: 63400
",
        ) else {
            panic!("not a peer")
        };
        assert_eq!(
            peer.spec.peer_addr(),
            Some(("192.168.1.1".parse().unwrap(), None))
        );
        assert_eq!(peer.spec.as_number.as_ref().map(AsNumber::get), Some(63400));
        assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
",
        );
    }

    #[test]
    fn every_bgppeer_field_round_trips() {
        assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor-a
spec:
  nodeSelector: rack == 'a'
  peerIP: "[fd00::1]:1179"
  asNumber: "1.10"
  localASNumber: 64513
  nextHopMode: Self
  password:
    secretKeyRef:
      name: bgp-secrets
      key: rr-password
      optional: false
  sourceAddress: UseNodeIP
  maxRestartTime: 120s
  keepaliveTime: 30s
  numAllowedLocalASNumbers: 1
  ttlSecurity: 1
  reachableBy: fd00::fe
  filters: [export-only-pools]
  localWorkloadSelector: role == 'bgp-speaker'
  reversePeering: Manual
"#,
        );
        assert_round_trip(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: legacy}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, keepOriginalNextHop: true}\n",
        );
    }

    #[test]
    fn bgppeer_checks() {
        let head = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec:\n";
        for good in ["10.0.0.1", "10.0.0.1:1179", "fd00::1", "[fd00::1]:179"] {
            assert!(parse_peer_ip(good).is_some(), "{good}");
        }
        for bad in [
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "fd00::1:179:x",
            "host:179",
            "",
        ] {
            assert!(parse_peer_ip(bad).is_none(), "{bad}");
        }
        let err = assert_invalid(&format!("{head}  peerIP: 10.0.0.256\n  asNumber: 1\n"));
        assert_eq!(err.path, "spec.peerIP");
        assert!(err.message.contains("10.0.0.256"), "{err}");
        let err = assert_invalid(&format!("{head}  peerIP: 10.0.0.1\n"));
        assert_eq!(err.path, "spec.asNumber");
        let err = assert_invalid(&format!("{head}  node: a\n  nodeSelector: all()\n"));
        assert_eq!(err.path, "spec.nodeSelector");
        let err = assert_invalid(&format!(
            "{head}  peerIP: 10.0.0.1\n  asNumber: 1\n  peerSelector: all()\n"
        ));
        assert_eq!(err.path, "spec.peerSelector");
        let err = assert_invalid(&format!(
            "{head}  peerIP: 10.0.0.1\n  asNumber: 1\n  reachableBy: 'fd00::1'\n"
        ));
        assert_eq!(err.path, "spec.reachableBy");
        let err = assert_invalid(&format!("{head}  reachableBy: 10.0.0.1\n"));
        assert_eq!(err.path, "spec.reachableBy");
        let err = assert_invalid(&format!(
            "{head}  peerIP: 10.0.0.1\n  asNumber: 1\n  keepOriginalNextHop: true\n  nextHopMode: Keep\n"
        ));
        assert_eq!(err.path, "spec.nextHopMode");
    }

    #[test]
    fn as_number_range_is_a_parse_error_with_path() {
        let err = super::super::parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNumber: 4294967296}\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.asNumber");
        assert!(err.message.contains("out of range"), "{err}");
    }

    #[test]
    fn calico_docs_bgpconfiguration_round_trips() {
        let Resource::BgpConfiguration(cfg) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs:
    - cidr: 10.96.0.0/12
  serviceExternalIPs:
    - cidr: 104.244.42.129/32
    - cidr: 172.217.3.0/24
  listenPort: 178
  bindMode: NodeIP
  communities:
    - name: bgp-large-community
      value: 63400:300:100
  prefixAdvertisements:
    - cidr: 172.218.4.0/26
      communities:
        - bgp-large-community
        - 63400:120
",
        ) else {
            panic!("not a bgp configuration")
        };
        assert_eq!(cfg.spec.listen_port, Some(178));
        assert_eq!(cfg.spec.bind_mode, Some(BindMode::NodeIp));
    }

    #[test]
    fn every_bgpconfiguration_field_round_trips() {
        assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.worker-1
spec:
  logSeverityScreen: Debug
  nodeToNodeMeshEnabled: false
  asNumber: 64512
  serviceLoadBalancerIPs: [{cidr: 192.0.2.0/24}]
  serviceExternalIPs: [{cidr: 198.51.100.0/24}]
  serviceClusterIPs: [{cidr: "fd00:96::/108"}]
  serviceLoadBalancerAggregation: Disabled
  communities: [{name: c1, value: "65000:100"}]
  prefixAdvertisements: [{cidr: 192.0.2.0/24, communities: [c1]}]
  listenPort: 179
  nodeMeshPassword: {secretKeyRef: {name: bgp, key: mesh}}
  nodeMeshMaxRestartTime: 90s
  bindMode: None
  ignoredInterfaces: [docker0, "vxlan*"]
  localWorkloadPeeringIPV4: 169.254.0.179
  localWorkloadPeeringIPV6: "fe80::179"
  programClusterRoutes: Enabled
  ipv4NormalRoutePriority: 1024
  ipv6NormalRoutePriority: 1024
"#,
        );
    }

    #[test]
    fn bgpconfiguration_checks() {
        let head = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n";
        assert!(is_valid_community("65000:100"));
        assert!(is_valid_community("4200000000:1:2"));
        assert!(!is_valid_community("70000:1"));
        assert!(!is_valid_community("1:2:3:4"));
        assert!(!is_valid_community("a:b"));
        let err = assert_invalid(&format!(
            "{head}  communities: [{{name: c, value: '70000:1'}}]\n"
        ));
        assert_eq!(err.path, "spec.communities[0].value");
        let err = assert_invalid(&format!(
            "{head}  prefixAdvertisements: [{{cidr: 10.0.0.0/8, communities: [undefined]}}]\n"
        ));
        assert_eq!(err.path, "spec.prefixAdvertisements[0].communities[0]");
        let err = assert_invalid(&format!(
            "{head}  serviceClusterIPs: [{{cidr: 10.96.0.0/33}}]\n"
        ));
        assert_eq!(err.path, "spec.serviceClusterIPs[0].cidr");
        let err = assert_invalid(&format!("{head}  listenPort: 0\n"));
        assert_eq!(err.path, "spec.listenPort");
        let err = assert_invalid(&format!("{head}  ipv4NormalRoutePriority: 0\n"));
        assert_eq!(err.path, "spec.ipv4NormalRoutePriority");
    }
}
