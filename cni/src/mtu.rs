//! The pod interface's MTU (both veth ends).
//!
//! The network configuration's `mtu`, when set, is the pod MTU itself (Calico's meaning),
//! only clamped to the underlay. Otherwise the plugin detects the underlay's MTU — the MTU of
//! the interface holding the host's default route (IPv4 first, then IPv6; the route a pod's
//! traffic to the outside and to other nodes leaves by) — and subtracts VXLAN's 50 bytes when
//! the pod's pool has a `vxlanMode` other than `Never`. The rule itself is
//! [`datastore::ipam::workload::pod_mtu`], shared with the agent, which keeps host-side veths
//! at or below the same value. With no default route and no `mtu`, the kernel default (1500)
//! stays.
//!
//! FelixConfiguration (`default`, overridden per field by `node.<node>`) is honoured as by the
//! agent: `mtuIfacePattern` makes the underlay MTU the smallest MTU of the matching interfaces
//! (never `vr*` veths) instead of the default route's, and `vxlanMTU` is the MTU of pods in
//! VXLAN pools.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use datastore::etcd::Store;
use datastore::ipam::Ipam;
use datastore::ipam::workload::{HOST_VETH_PREFIX, pod_mtu, pool_uses_vxlan};
use datastore::keys::resource_key;
use datastore::resource::{Kind, Resource};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::netconf::NetConf;

/// The output interface of a default route among `routes`, if any.
fn default_route_iface(routes: &[RouteMessage]) -> Option<u32> {
    routes
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0)
        .find_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })
        })
}

async fn routes(handle: &Handle, v6: bool) -> Result<Vec<RouteMessage>, rtnetlink::Error> {
    let request = if v6 {
        RouteMessageBuilder::<Ipv6Addr>::new().build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new().build()
    };
    handle.route().get(request).execute().try_collect().await
}

/// FelixConfiguration's MTU settings for a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FelixMtu {
    /// `mtuIfacePattern`.
    pub iface_pattern: Option<String>,
    /// `vxlanMTU`.
    pub vxlan_mtu: Option<u32>,
}

/// FelixConfiguration `default` overridden per field by `node.<node>` (unreadable or invalid
/// values are logged and skipped).
pub async fn felix_mtu(store: &Store, node: &str) -> FelixMtu {
    let mut out = FelixMtu::default();
    for name in [format!("node.{node}"), "default".to_string()] {
        let key = resource_key(Kind::FelixConfiguration.plural(), None, &name);
        let resource = match store.get(&key).await {
            Ok(Some(kv)) => Resource::from_json(&String::from_utf8_lossy(&kv.value)),
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, felix_configuration = name, "cannot read FelixConfiguration");
                continue;
            }
        };
        let spec = match resource {
            Ok(Resource::FelixConfiguration(f)) => f.spec,
            _ => continue,
        };
        if out.iface_pattern.is_none() {
            out.iface_pattern = spec.mtu_iface_pattern.filter(|p| !p.is_empty());
        }
        if out.vxlan_mtu.is_none() {
            out.vxlan_mtu = spec
                .vxlan_mtu
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| (68..=65535).contains(m));
        }
    }
    out
}

/// The smallest MTU of the links (name, MTU) matching `pattern`, `vr*` veths excluded.
fn matching_min<'a>(
    links: impl Iterator<Item = (&'a str, u32)>,
    pattern: &regex::Regex,
) -> Option<u32> {
    links
        .filter(|(name, _)| !name.starts_with(HOST_VETH_PREFIX) && pattern.is_match(name))
        .map(|(_, mtu)| mtu)
        .min()
}

/// Every link's name and MTU.
async fn link_mtus(handle: &Handle) -> Result<Vec<(String, u32)>, String> {
    let links: Vec<_> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(links
        .iter()
        .filter_map(|l| {
            let mut name = None;
            let mut mtu = None;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Mtu(m) => mtu = Some(*m),
                    _ => {}
                }
            }
            Some((name?, mtu?))
        })
        .collect())
}

/// The underlay MTU: the smallest MTU of the interfaces matching `pattern` if given, else
/// the MTU of the interface holding the host's default route (`None`: none found).
pub async fn underlay_mtu_matching(pattern: Option<&regex::Regex>) -> Result<Option<u32>, String> {
    let Some(re) = pattern else {
        return underlay_mtu().await;
    };
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("opening a netlink socket: {e}"))?;
    let task = tokio::spawn(connection);
    let links = link_mtus(&handle).await;
    task.abort();
    Ok(matching_min(
        links?.iter().map(|(n, m)| (n.as_str(), *m)),
        re,
    ))
}

/// The MTU of the interface holding the host's default route (`None`: no default route).
pub async fn underlay_mtu() -> Result<Option<u32>, String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("opening a netlink socket: {e}"))?;
    let task = tokio::spawn(connection);
    let result = async {
        for v6 in [false, true] {
            let routes = routes(&handle, v6).await.map_err(|e| e.to_string())?;
            let Some(index) = default_route_iface(&routes) else {
                continue;
            };
            let links: Vec<_> = handle
                .link()
                .get()
                .match_index(index)
                .execute()
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            let mtu = links
                .iter()
                .flat_map(|l| &l.attributes)
                .find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                });
            if mtu.is_some() {
                return Ok(mtu);
            }
        }
        Ok(None)
    }
    .await;
    task.abort();
    result
}

/// True when one of `ips` belongs to a pool that uses VXLAN.
async fn in_vxlan_pool(store: &Store, ips: &[IpAddr]) -> bool {
    match Ipam::new(store.clone()).pools().await {
        Ok(pools) => pools.iter().any(|pool| {
            pool_uses_vxlan(pool)
                && pool
                    .spec
                    .network()
                    .is_some_and(|net| ips.iter().any(|ip| net.contains(*ip)))
        }),
        Err(error) => {
            tracing::warn!(%error, "cannot list IP pools; assuming no VXLAN for the MTU");
            false
        }
    }
}

/// The MTU to give a pod with addresses `ips` (see the module documentation).
pub async fn for_pod(conf: &NetConf, store: &Store, ips: &[IpAddr]) -> Option<u32> {
    let felix = felix_mtu(store, &conf.node()).await;
    let pattern = felix
        .iface_pattern
        .as_deref()
        .and_then(|p| match regex::Regex::new(p) {
            Ok(re) => Some(re),
            Err(error) => {
                tracing::warn!(pattern = p, %error,
                    "FelixConfiguration spec.mtuIfacePattern is not a valid regular expression");
                None
            }
        });
    let underlay = match underlay_mtu_matching(pattern.as_ref()).await {
        Ok(mtu) => mtu,
        Err(error) => {
            tracing::warn!(%error, "cannot detect the underlay MTU");
            None
        }
    };
    let vxlan = conf.mtu.is_none() && in_vxlan_pool(store, ips).await;
    let configured = match conf.mtu {
        Some(m) => Some(m),
        None if vxlan => felix.vxlan_mtu,
        None => None,
    };
    let mtu = pod_mtu(configured, underlay, vxlan);
    if let (Some(configured), Some(chosen)) = (conf.mtu, mtu)
        && configured != chosen
    {
        tracing::warn!(
            configured,
            underlay = ?underlay,
            chosen,
            "configured mtu is larger than the underlay; clamped"
        );
    }
    mtu
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::RouteHeader;

    fn route(prefix: u8, oif: Option<u32>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header = RouteHeader {
            destination_prefix_length: prefix,
            ..RouteHeader::default()
        };
        if let Some(i) = oif {
            r.attributes.push(RouteAttribute::Oif(i));
        }
        r
    }

    #[test]
    fn pattern_picks_the_smallest_matching_non_workload_mtu() {
        let links = [
            ("eth0", 9000),
            ("eth1", 1500),
            ("vr0123456789a", 100),
            ("lo", 65536),
        ];
        let re = regex::Regex::new("^(eth|vr)").unwrap();
        assert_eq!(matching_min(links.iter().copied(), &re), Some(1500));
        let none = regex::Regex::new("^bond").unwrap();
        assert_eq!(matching_min(links.iter().copied(), &none), None);
    }

    #[test]
    fn default_route_interface_is_found() {
        assert_eq!(default_route_iface(&[route(24, Some(3))]), None);
        assert_eq!(
            default_route_iface(&[route(24, Some(3)), route(0, None), route(0, Some(7))]),
            Some(7)
        );
    }
}
