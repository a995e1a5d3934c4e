//! The policy state calc hands to the policy dataplane ([`PolicyDesired`]): the compiled
//! ruleset and this node's workload and host interfaces, shared by reference ([`Arc`]) so a
//! hand-over costs nothing, plus [`PolicyChanges`], what changed since the previous
//! hand-over, so the dataplane renders and programs only that. Also this node's failsafe
//! ports ([`Failsafe`], from FelixConfiguration).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datastore::resource::felix::ProtoPort;
use ipnetwork::IpNetwork;
use policy::compile::Ruleset;
use policy::ipset::IpSetId;
use policy::model::EndpointId;

use super::LocalEndpoint;

/// A HostEndpoint of this node with a named interface (`interfaceName: "*"` is not
/// enforced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHostEndpoint {
    /// Policy-model identity ([`EndpointId::host`]).
    pub id: EndpointId,
    /// The host interface (`spec.interfaceName`).
    pub iface: String,
}

/// A port traffic to or from the host may always use, before any host-endpoint policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailsafePort {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// Destination port.
    pub port: u16,
    /// Only for this peer network (source for inbound, destination for outbound).
    pub net: Option<IpNetwork>,
}

/// Failsafe ports (FelixConfiguration `failsafeInboundHostPorts` /
/// `failsafeOutboundHostPorts`); the default is Felix's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failsafe {
    /// Inbound: traffic to the host arriving on a host endpoint (destination port).
    pub inbound: Vec<FailsafePort>,
    /// Outbound: traffic from the host leaving through a host endpoint (destination port).
    pub outbound: Vec<FailsafePort>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

fn ports(list: &[(u8, u16)]) -> Vec<FailsafePort> {
    list.iter()
        .map(|&(protocol, port)| FailsafePort {
            protocol,
            port,
            net: None,
        })
        .collect()
}

impl Default for Failsafe {
    /// Felix's defaults (`config_params.go`): SSH, DHCP, BGP, etcd, Typha, the API server
    /// and kube-proxy/flannel health ports.
    fn default() -> Self {
        let common = [
            (TCP, 179),
            (TCP, 2379),
            (TCP, 2380),
            (TCP, 5473),
            (TCP, 6443),
            (TCP, 6666),
            (TCP, 6667),
        ];
        let mut inbound = vec![(TCP, 22), (UDP, 68)];
        inbound.extend(common);
        let mut outbound = vec![(UDP, 53), (UDP, 67)];
        outbound.extend(common);
        Failsafe {
            inbound: ports(&inbound),
            outbound: ports(&outbound),
        }
    }
}

/// Converts a FelixConfiguration failsafe list; `field` names it in errors.
pub(crate) fn failsafe_ports(field: &str, list: &[ProtoPort]) -> Result<Vec<FailsafePort>, String> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let protocol = match p
                .protocol
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("tcp") => TCP,
                Some("udp") => UDP,
                Some("sctp") => SCTP,
                Some(other) => {
                    return Err(format!(
                        "{field}[{i}].protocol: {other:?} is not TCP, UDP or SCTP"
                    ));
                }
            };
            let net = match &p.net {
                None => None,
                Some(text) if text.is_empty() => None,
                Some(text) => {
                    let net: IpNetwork = text
                        .parse()
                        .map_err(|_| format!("{field}[{i}].net: {text:?} is not a valid CIDR"))?;
                    Some(IpNetwork::new(net.network(), net.prefix()).map_err(|e| e.to_string())?)
                }
            };
            Ok(FailsafePort {
                protocol,
                port: p.port,
                net,
            })
        })
        .collect()
}

/// What changed in the policy state since the previous hand-over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    /// Everything may have changed (policies, tiers, profiles, host endpoints, failsafe
    /// ports, or the first hand-over): render the whole table.
    pub all: bool,
    /// IP sets whose members changed.
    pub sets: BTreeSet<IpSetId>,
    /// Local endpoints (workload or host) whose interface, addresses or chain layout
    /// changed, appeared or went away.
    pub endpoints: BTreeSet<EndpointId>,
}

impl PolicyChanges {
    /// Everything changed.
    pub fn everything() -> Self {
        PolicyChanges {
            all: true,
            ..Default::default()
        }
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.all && self.sets.is_empty() && self.endpoints.is_empty()
    }

    /// Adds `other`'s changes to these (coalescing two hand-overs into one).
    pub fn merge(&mut self, other: PolicyChanges) {
        if self.all || other.all {
            *self = PolicyChanges::everything();
            return;
        }
        self.sets.extend(other.sets);
        self.endpoints.extend(other.endpoints);
    }
}

/// The policy state the nftables dataplane must enforce.
#[derive(Debug, Clone)]
pub struct PolicyDesired {
    /// The compiled cluster policy (sets hold cluster-wide members; `endpoints` is limited
    /// to this node's workload and host endpoints).
    pub ruleset: Arc<Ruleset>,
    /// Local workloads by endpoint id.
    pub workloads: Arc<BTreeMap<EndpointId, LocalEndpoint>>,
    /// Local host endpoints by endpoint id.
    pub host_endpoints: Arc<BTreeMap<EndpointId, LocalHostEndpoint>>,
    /// Failsafe ports for host endpoints.
    pub failsafe: Arc<Failsafe>,
    /// What changed since the previous hand-over.
    pub changes: PolicyChanges,
}

impl PolicyDesired {
    /// A complete state (`changes` = everything) with workloads, no host endpoints and the
    /// default failsafe ports.
    pub fn new(ruleset: Ruleset, workloads: impl IntoIterator<Item = LocalEndpoint>) -> Self {
        PolicyDesired {
            ruleset: Arc::new(ruleset),
            workloads: Arc::new(workloads.into_iter().map(|w| (w.id.clone(), w)).collect()),
            host_endpoints: Arc::new(BTreeMap::new()),
            failsafe: Arc::new(Failsafe::default()),
            changes: PolicyChanges::everything(),
        }
    }

    /// With these host endpoints.
    pub fn with_host_endpoints(
        mut self,
        host_endpoints: impl IntoIterator<Item = LocalHostEndpoint>,
    ) -> Self {
        self.host_endpoints = Arc::new(
            host_endpoints
                .into_iter()
                .map(|h| (h.id.clone(), h))
                .collect(),
        );
        self
    }

    /// With these failsafe ports.
    pub fn with_failsafe(mut self, failsafe: Failsafe) -> Self {
        self.failsafe = Arc::new(failsafe);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failsafe_defaults_and_parsing() {
        let d = Failsafe::default();
        assert!(d.inbound.iter().any(|p| p.protocol == TCP && p.port == 22));
        assert!(d.inbound.iter().any(|p| p.protocol == UDP && p.port == 68));
        assert!(d.outbound.iter().any(|p| p.protocol == UDP && p.port == 53));
        assert_eq!(d.inbound.len(), 9);
        assert_eq!(d.outbound.len(), 9);
        let list = vec![
            ProtoPort {
                protocol: Some("UDP".into()),
                port: 53,
                net: Some("10.0.0.1/8".into()),
            },
            ProtoPort {
                protocol: None,
                port: 22,
                net: None,
            },
        ];
        let got = failsafe_ports("failsafeInboundHostPorts", &list).unwrap();
        assert_eq!(got[0].protocol, UDP);
        assert_eq!(got[0].net, Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(got[1].protocol, TCP);
        let bad = vec![ProtoPort {
            protocol: Some("icmp".into()),
            port: 1,
            net: None,
        }];
        assert_eq!(
            failsafe_ports("failsafeInboundHostPorts", &bad).unwrap_err(),
            "failsafeInboundHostPorts[0].protocol: \"icmp\" is not TCP, UDP or SCTP"
        );
    }

    #[test]
    fn changes_merge() {
        let mut a = PolicyChanges::default();
        assert!(a.is_empty());
        a.endpoints.insert(EndpointId::new("ns", "a"));
        let mut b = PolicyChanges::default();
        b.sets.insert(IpSetId("s:1".into()));
        a.merge(b);
        assert_eq!((a.endpoints.len(), a.sets.len()), (1, 1));
        a.merge(PolicyChanges::everything());
        assert!(a.all && a.endpoints.is_empty());
    }
}
