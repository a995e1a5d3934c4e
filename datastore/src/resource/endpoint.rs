//! Endpoints: `WorkloadEndpoint` (a pod's interface, written by the CNI plugin; libcalico-go
//! `internalapi/workloadendpoint.go`) and `HostEndpoint` (a host interface, `hostendpoint.go`).

use serde::{Deserialize, Serialize};

use super::meta::{NameRule, ObjectMeta};
use super::numorstring::{Dscp, Protocol};
use super::validation::{
    Checked, Quoted, ValidationError, check_interface_name, check_ipv4, check_ipv6, check_mac,
    check_subdomain, parse_ip, parse_ip_or_cidr,
};

/// A workload (pod) endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEndpoint {
    /// Metadata (namespaced; name `<node>-<orchestrator>-<pod>-<endpoint>` by convention).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: WorkloadEndpointSpec,
}

/// `WorkloadEndpoint.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    /// Orchestrator (`k8s`, `cni`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<String>,
    /// Workload id (non-Kubernetes orchestrators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Node hosting the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Container id.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Endpoint name within the workload (`eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Pod service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Addresses (`10.244.1.5/32`).
    #[serde(default, rename = "ipNetworks", skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<String>,
    /// 1:1 NAT mappings.
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
    /// IPv4 gateway the workload uses.
    #[serde(
        default,
        rename = "ipv4Gateway",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_gateway: Option<String>,
    /// IPv6 gateway the workload uses.
    #[serde(
        default,
        rename = "ipv6Gateway",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_gateway: Option<String>,
    /// Profiles applied to the endpoint (`kns.<namespace>`, `ksa.<ns>.<sa>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Host-side interface name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Workload-side MAC address.
    #[serde(default, rename = "mac", skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadEndpointPort>,
    /// Source prefixes the workload may spoof.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<String>,
    /// Bandwidth/packet-rate limits.
    #[serde(
        default,
        rename = "qosControls",
        skip_serializing_if = "Option::is_none"
    )]
    pub qos_controls: Option<QosControls>,
}

/// A named port of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEndpointPort {
    /// Port name (may be empty with a host port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
    /// Host port mapped to it (0/absent = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Host IP of the mapping.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// A 1:1 NAT of a workload address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpNat {
    /// The workload's address.
    #[serde(rename = "internalIP")]
    pub internal_ip: String,
    /// The external address.
    #[serde(rename = "externalIP")]
    pub external_ip: String,
}

/// Traffic-shaping limits of a workload (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QosControls {
    /// Ingress bandwidth (bit/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_bandwidth: Option<i64>,
    /// Ingress burst (bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_burst: Option<i64>,
    /// Ingress peak rate (bit/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_peakrate: Option<i64>,
    /// Ingress minimum burst (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_minburst: Option<i64>,
    /// Egress bandwidth (bit/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_bandwidth: Option<i64>,
    /// Egress burst (bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_burst: Option<i64>,
    /// Egress peak rate (bit/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_peakrate: Option<i64>,
    /// Egress minimum burst (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_minburst: Option<i64>,
    /// Ingress packets per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_packet_rate: Option<i64>,
    /// Ingress packet burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_packet_burst: Option<i64>,
    /// Egress packets per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_packet_rate: Option<i64>,
    /// Egress packet burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_packet_burst: Option<i64>,
    /// Most concurrent ingress connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_max_connections: Option<i64>,
    /// Most concurrent egress connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_max_connections: Option<i64>,
    /// DSCP to mark egress traffic with (number or name such as `AF11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dscp: Option<Dscp>,
}

/// A host endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEndpoint {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: HostEndpointSpec,
}

/// `HostEndpoint.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostEndpointSpec {
    /// Node the interface is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Interface name, or `*` for all of the node's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Addresses expected on the interface (used by selectors in rules).
    #[serde(default, rename = "expectedIPs", skip_serializing_if = "Vec::is_empty")]
    pub expected_ips: Vec<String>,
    /// Profiles applied to the endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// A named port of a host endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPort {
    /// Port name.
    pub name: String,
    /// Protocol (TCP, UDP or SCTP).
    pub protocol: Protocol,
    /// Port number (> 0).
    pub port: u16,
}

fn check_port_protocol(path: &str, protocol: &Protocol) -> Checked {
    if protocol.supports_ports() {
        Ok(())
    } else {
        Err(ValidationError::new(
            path,
            format!("{} does not support ports", Quoted(&protocol.to_string())),
        ))
    }
}

fn check_profiles(profiles: &[String]) -> Checked {
    for (i, profile) in profiles.iter().enumerate() {
        check_subdomain(&format!("spec.profiles[{i}]"), profile)?;
    }
    Ok(())
}

impl WorkloadEndpoint {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(true, NameRule::Subdomain)?;
        let spec = &self.spec;
        if let Some(iface) = &spec.interface_name {
            check_interface_name("spec.interfaceName", iface, false)?;
        }
        for (i, net) in spec.ip_networks.iter().enumerate() {
            parse_ip_or_cidr(&format!("spec.ipNetworks[{i}]"), net)?;
        }
        for (i, nat) in spec.ip_nats.iter().enumerate() {
            parse_ip(&format!("spec.ipNATs[{i}].internalIP"), &nat.internal_ip)?;
            parse_ip(&format!("spec.ipNATs[{i}].externalIP"), &nat.external_ip)?;
        }
        if let Some(gw) = &spec.ipv4_gateway {
            check_ipv4("spec.ipv4Gateway", gw)?;
        }
        if let Some(gw) = &spec.ipv6_gateway {
            check_ipv6("spec.ipv6Gateway", gw)?;
        }
        if let Some(mac) = &spec.mac {
            check_mac("spec.mac", mac)?;
        }
        check_profiles(&spec.profiles)?;
        for (i, port) in spec.ports.iter().enumerate() {
            check_port_protocol(&format!("spec.ports[{i}].protocol"), &port.protocol)?;
            if port.port == 0 {
                return Err(ValidationError::new(
                    format!("spec.ports[{i}].port"),
                    "0 is not a valid port",
                ));
            }
            if port.name.as_deref().unwrap_or_default().is_empty()
                && port.host_port.unwrap_or(0) == 0
            {
                return Err(ValidationError::new(
                    format!("spec.ports[{i}].name"),
                    "is required when no hostPort is set",
                ));
            }
            if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                parse_ip_or_cidr(&format!("spec.ports[{i}].hostIP"), ip)?;
            }
        }
        for (i, prefix) in spec.allow_spoofed_source_prefixes.iter().enumerate() {
            parse_ip_or_cidr(&format!("spec.allowSpoofedSourcePrefixes[{i}]"), prefix)?;
        }
        Ok(())
    }
}

impl HostEndpoint {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        let spec = &self.spec;
        if let Some(iface) = &spec.interface_name {
            check_interface_name("spec.interfaceName", iface, true)?;
        }
        if spec.interface_name.is_none() && spec.expected_ips.is_empty() {
            return Err(ValidationError::new(
                "spec.interfaceName",
                "interfaceName or expectedIPs is required",
            ));
        }
        for (i, ip) in spec.expected_ips.iter().enumerate() {
            parse_ip(&format!("spec.expectedIPs[{i}]"), ip)?;
        }
        check_profiles(&spec.profiles)?;
        for (i, port) in spec.ports.iter().enumerate() {
            check_port_protocol(&format!("spec.ports[{i}].protocol"), &port.protocol)?;
            if port.port == 0 {
                return Err(ValidationError::new(
                    format!("spec.ports[{i}].port"),
                    "0 is not a valid port",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::roundtrip::{assert_invalid, assert_round_trip};

    /// As the CNI plugin writes it and `calicoctl get wep -o yaml` prints it.
    const K8S_WEP: &str = r#"apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels:
    app: frontend
    projectcalico.org/namespace: default
    projectcalico.org/orchestrator: k8s
    projectcalico.org/serviceaccount: default
  name: node1-k8s-frontend--5gs43-eth0
  namespace: default
  resourceVersion: "1022"
  uid: 295cd0ce-7b5a-11e9-a5a0-42010a800004
spec:
  containerID: 8a3f2d0ecd9a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0
  endpoint: eth0
  interfaceName: cali0ef24ba9ae5
  ipNetworks:
  - 192.168.91.113/32
  node: node1
  orchestrator: k8s
  pod: frontend-5gs43
  ports:
  - name: http
    port: 80
    protocol: TCP
    hostIP: ""
    hostPort: 0
  profiles:
  - kns.default
  - ksa.default.default
  serviceAccountName: default
"#;

    #[test]
    fn k8s_workload_endpoint_round_trips() {
        let Resource::WorkloadEndpoint(wep) = assert_round_trip(K8S_WEP) else {
            panic!("not a wep")
        };
        assert_eq!(wep.spec.ports[0].host_port, Some(0));
        assert_eq!(wep.spec.profiles, ["kns.default", "ksa.default.default"]);
    }

    #[test]
    fn every_workload_endpoint_field_round_trips() {
        assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: host1-cni-abc123-eth0
  namespace: tenant-a
spec:
  orchestrator: cni
  workload: abc123
  node: host1
  containerID: abc123
  endpoint: eth0
  ipNetworks: [10.244.1.5/32, "fd00:244::5/128"]
  ipNATs:
  - internalIP: 10.244.1.5
    externalIP: 198.51.100.7
  ipv4Gateway: 169.254.1.1
  ipv6Gateway: "fe80::ecee:eeff:feee:eeee"
  profiles: [kns.tenant-a]
  interfaceName: vr0a1b2c3d4e5
  mac: ee:ee:ee:ee:ee:ee
  ports:
  - name: dns
    protocol: UDP
    port: 53
  - protocol: TCP
    port: 8080
    hostPort: 18080
    hostIP: 10.0.0.1
  allowSpoofedSourcePrefixes: [192.0.2.0/24]
  qosControls:
    ingressBandwidth: 1000000
    ingressBurst: 40000
    ingressPeakrate: 2000000
    ingressMinburst: 1500
    egressBandwidth: 1000000
    egressBurst: 40000
    egressPeakrate: 2000000
    egressMinburst: 1500
    ingressPacketRate: 1000
    ingressPacketBurst: 100
    egressPacketRate: 1000
    egressPacketBurst: 100
    ingressMaxConnections: 500
    egressMaxConnections: 500
    dscp: AF11
"#,
        );
    }

    #[test]
    fn workload_endpoint_checks() {
        let head = "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: w, namespace: default}\nspec:\n";
        let err = assert_invalid(&format!(
            "{head}  ipNetworks: [10.0.0.1/32, 10.0.0.999/32]\n"
        ));
        assert_eq!(err.path, "spec.ipNetworks[1]");
        let err = assert_invalid(&format!("{head}  interfaceName: this-name-is-too-long\n"));
        assert_eq!(err.path, "spec.interfaceName");
        let err = assert_invalid(&format!(
            "{head}  ports: [{{name: p, protocol: ICMP, port: 1}}]\n"
        ));
        assert_eq!(err.path, "spec.ports[0].protocol");
        let err = assert_invalid(&format!("{head}  ports: [{{protocol: TCP, port: 80}}]\n"));
        assert_eq!(err.path, "spec.ports[0].name");
        let err = assert_invalid(&format!("{head}  mac: not-a-mac\n"));
        assert_eq!(err.path, "spec.mac");
        let err = assert_invalid(&format!("{head}  profiles: [Bad_Profile]\n"));
        assert_eq!(err.path, "spec.profiles[0]");
    }

    #[test]
    fn calico_docs_host_endpoint_round_trips() {
        assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: some.name
  labels:
    type: production
spec:
  interfaceName: eth0
  node: myhost
  expectedIPs:
    - 192.168.0.1
    - 192.168.0.2
  profiles:
    - profile1
    - profile2
  ports:
    - name: some-port
      port: 1234
      protocol: TCP
    - name: another-port
      port: 5432
      protocol: UDP
",
        );
        let head =
            "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\nspec:\n";
        assert_round_trip(&format!("{head}  node: n\n  interfaceName: '*'\n"));
        let err = assert_invalid(&format!("{head}  node: n\n"));
        assert_eq!(err.path, "spec.interfaceName");
        let err = assert_invalid(&format!("{head}  expectedIPs: [10.0.0.0/24]\n"));
        assert_eq!(err.path, "spec.expectedIPs[0]");
        let err = assert_invalid(&format!(
            "{head}  interfaceName: eth0\n  ports: [{{name: x, protocol: TCP, port: 0}}]\n"
        ));
        assert_eq!(err.path, "spec.ports[0].port");
    }
}
