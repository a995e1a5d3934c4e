//! [`MtuManager`]: keeps local workloads' host-side veths at the pod end's MTU, capped at the
//! pod MTU ceiling.
//!
//! The ceiling is [`datastore::ipam::workload::pod_mtu`] — the rule the CNI plugin applies
//! at ADD — over the underlay MTU: the smallest MTU of the interfaces matching
//! FelixConfiguration `mtuIfacePattern` when set (never the `vr*` veths), else the MTU of the
//! interface holding the default route; for a pod in a VXLAN pool, FelixConfiguration
//! `vxlanMTU` if set, else 50 less.
//!
//! On every endpoint change and every resync, each host veth is set to its target: the pod
//! end's MTU (read through the peer's netns id, without entering the pod's namespace),
//! capped at the ceiling. So drift on the host end is repaired in both directions, a pod
//! whose CNI configuration chose a smaller `mtu` keeps it on both ends, and a host end is
//! lowered when its pool moved to VXLAN or the underlay shrank. When the pod end cannot be
//! read, the host end is only ever lowered to the ceiling (a too-small MTU costs throughput,
//! a too-large one loses packets). The agent changes only the host end: the pod's `eth0`
//! keeps what the CNI plugin set until the pod is re-created.

use std::collections::BTreeMap;

use datastore::ipam::workload::pod_mtu;
use ipnetwork::IpNetwork;
use policy::model::EndpointId;
use regex::Regex;
use tracing::{info, warn};

use crate::calc::Output;
use crate::calc::nat::{MtuConfig, NatDesired};
use crate::driver::links::{self, Link};
use crate::driver::netlink::NetlinkSocket;
use crate::ownership::HOST_VETH_PREFIX;

/// What one apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtuReport {
    /// The underlay MTU found (`None`: unknown; nothing was checked).
    pub underlay: Option<u32>,
    /// Host veths checked.
    pub checked: usize,
    /// Host veths whose MTU was changed (drift repaired, or lowered to a new ceiling).
    pub changed: usize,
    /// Requests that failed.
    pub errors: usize,
}

/// Host veth MTUs: the pod end's, capped at the ceiling.
#[derive(Debug)]
pub struct MtuManager {
    socket: Option<NetlinkSocket>,
    /// Local endpoints: host interface and addresses.
    ifaces: BTreeMap<EndpointId, (String, Vec<IpNetwork>)>,
    pools: NatDesired,
    pattern: Option<Regex>,
    dirty: bool,
}

impl Default for MtuManager {
    fn default() -> Self {
        Self::new()
    }
}

impl MtuManager {
    /// A manager with no endpoints; its socket is opened by the first apply (on the
    /// dataplane thread, inside the node's namespace).
    pub fn new() -> Self {
        Self {
            socket: None,
            ifaces: BTreeMap::new(),
            pools: NatDesired::default(),
            pattern: None,
            dirty: false,
        }
    }

    /// Records an endpoint change; ignores other outputs. No I/O.
    pub fn on_update(&mut self, output: &Output) {
        if let Output::Endpoint { id, endpoint } = output {
            match endpoint {
                Some(ep) => {
                    self.ifaces
                        .insert(id.clone(), (ep.iface.clone(), ep.nets.clone()));
                    self.dirty = true;
                }
                None => {
                    self.ifaces.remove(id);
                }
            }
        }
    }

    /// New pools or MTU settings. No I/O.
    pub fn on_pools(&mut self, desired: &NatDesired) {
        if desired.mtu != self.pools.mtu {
            self.pattern = compile(&desired.mtu);
        }
        self.pools = desired.clone();
        self.dirty = true;
    }

    /// Re-check every interface on the next apply.
    pub fn request_resync(&mut self) {
        self.dirty = true;
    }

    /// True if an apply has work to do.
    pub fn has_pending_work(&self) -> bool {
        self.dirty && !self.ifaces.is_empty()
    }

    /// Lowers every local host veth above its ceiling.
    pub fn apply(&mut self) -> MtuReport {
        let mut report = MtuReport::default();
        self.dirty = false;
        let socket = match self.socket.take() {
            Some(s) => s,
            None => match NetlinkSocket::open() {
                Ok(s) => s,
                Err(error) => {
                    warn!(%error, "cannot open a netlink socket for MTUs");
                    report.errors += 1;
                    return report;
                }
            },
        };
        let socket = self.socket.insert(socket);
        let all = match links::links(socket) {
            Ok(l) => l,
            Err(error) => {
                warn!(%error, "cannot list interfaces");
                report.errors += 1;
                return report;
            }
        };
        let underlay = match underlay_mtu(socket, &all, self.pattern.as_ref()) {
            Ok(u) => u,
            Err(error) => {
                warn!(%error, "cannot find the default route's interface");
                report.errors += 1;
                None
            }
        };
        report.underlay = underlay;
        let Some(underlay) = underlay else {
            return report;
        };
        for (iface, nets) in self.ifaces.values() {
            let Some(link) = all.get(iface) else {
                continue;
            };
            report.checked += 1;
            let vxlan = nets.iter().any(|n| self.pools.in_vxlan_pool(n.ip()));
            let configured = if vxlan {
                self.pools.mtu.vxlan_mtu
            } else {
                None
            };
            let Some(ceiling) = pod_mtu(configured, Some(underlay), vxlan) else {
                continue;
            };
            let pod_end = match link.peer {
                Some((index, nsid)) => {
                    links::peer_mtu(socket, nsid, index).unwrap_or_else(|error| {
                        warn!(%iface, %error, "cannot read the pod end's MTU");
                        None
                    })
                }
                None => None,
            };
            let target = match pod_end {
                Some(pod) => pod.min(ceiling),
                None => link.mtu.min(ceiling),
            };
            if link.mtu == target {
                continue;
            }
            match links::set_mtu(socket, link.index, target) {
                Ok(()) => {
                    info!(%iface, from = link.mtu, to = target, ?pod_end, "set workload MTU");
                    report.changed += 1;
                }
                Err(error) => {
                    warn!(%iface, %error, "cannot set workload MTU");
                    report.errors += 1;
                    self.dirty = true;
                }
            }
        }
        report
    }
}

fn compile(config: &MtuConfig) -> Option<Regex> {
    let pattern = config.iface_pattern.as_deref()?;
    match Regex::new(pattern) {
        Ok(re) => Some(re),
        Err(error) => {
            warn!(pattern, %error,
                "FelixConfiguration spec.mtuIfacePattern is not a valid regular expression; \
                 using the default route's interface");
            None
        }
    }
}

/// The underlay MTU: smallest MTU of the interfaces matching `pattern` (not `vr*`), or the
/// default route interface's.
fn underlay_mtu(
    socket: &mut NetlinkSocket,
    all: &BTreeMap<String, Link>,
    pattern: Option<&Regex>,
) -> std::io::Result<Option<u32>> {
    if let Some(re) = pattern {
        return Ok(matching_min(all, re));
    }
    let Some(index) = links::default_route_iface(socket)? else {
        return Ok(None);
    };
    Ok(all.values().find(|l| l.index == index).map(|l| l.mtu))
}

fn matching_min(all: &BTreeMap<String, Link>, re: &Regex) -> Option<u32> {
    all.iter()
        .filter(|(name, _)| !name.starts_with(HOST_VETH_PREFIX) && re.is_match(name))
        .map(|(_, l)| l.mtu)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_picks_the_smallest_matching_non_workload_mtu() {
        let mut all = BTreeMap::new();
        for (name, index, mtu) in [
            ("eth0", 2, 9000),
            ("eth1", 3, 1500),
            ("vr0123456789a", 4, 100),
            ("lo", 1, 65536),
        ] {
            all.insert(
                name.to_string(),
                Link {
                    index,
                    mtu,
                    peer: None,
                },
            );
        }
        let re = Regex::new("^(eth|vr)").unwrap();
        assert_eq!(matching_min(&all, &re), Some(1500));
        assert_eq!(matching_min(&all, &Regex::new("^bond").unwrap()), None);
        assert!(
            compile(&MtuConfig {
                iface_pattern: Some("(".into()),
                vxlan_mtu: None
            })
            .is_none()
        );
    }
}
