//! Kernel state of one pod attachment, programmed with rtnetlink: the veth pair, the pod's
//! addresses and routes, the host-side settings and host routes.
//!
//! Work inside the pod's network namespace runs on a dedicated OS thread that enters the
//! namespace with `setns(2)` (rustix's safe wrapper; the workspace forbids `unsafe`), opens
//! its own netlink socket there and drives it on a current-thread runtime, then exits: the
//! thread's namespace never leaks into a pooled thread.
//!
//! Order of ADD (each step undone by [`detach`], which is idempotent):
//! 1. in the pod namespace: refuse if `CNI_IFNAME` exists; remove a leftover host-side veth
//!    of a crashed ADD; create the veth `CNI_IFNAME` ⇄ host name with the host end made in the
//!    host namespace at once (not moved there: a move waits for an RCU grace period); bring
//!    `CNI_IFNAME` up; add the addresses (`/32`, `/128`) and the routes of
//!    [`crate::gateway`];
//! 2. on the host: fixed MAC `ee:ee:ee:ee:ee:ee`, MTU, up, `proxy_arp`/`proxy_ndp`,
//!    forwarding, and a `/32` (`/128`) route per address to the host veth, with the agent's
//!    route protocol (80): the pod is reachable at once and the agent adopts the route.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use datastore::ipam::workload::ROUTE_PROTO_AGENT;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::gateway::{GATEWAY_V4, GATEWAY_V6, HOST_VETH_MAC, format_mac, host_prefix};

/// Errors programming or checking the kernel.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The network namespace cannot be opened or entered.
    #[error("cannot enter network namespace {path}: {reason}")]
    Netns {
        /// Its path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A netlink request failed.
    #[error("{what}: {reason}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        reason: String,
    },
    /// The sandbox already has an interface of that name.
    #[error("interface {ifname} already exists in the pod namespace")]
    Exists {
        /// The name.
        ifname: String,
    },
    /// CHECK found the state different from what ADD programs.
    #[error("{0}")]
    Check(String),
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> DataplaneError {
    let what = what.into();
    move |e| DataplaneError::Netlink {
        what,
        reason: e.to_string(),
    }
}

/// What to attach.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// Path of the pod's network namespace.
    pub netns: String,
    /// Interface name in the pod.
    pub ifname: String,
    /// Host-side veth name.
    pub host_ifname: String,
    /// Addresses of the pod.
    pub ips: Vec<IpAddr>,
    /// MTU, if not the kernel default.
    pub mtu: Option<u32>,
}

/// What [`attach`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// MAC of the host-side veth.
    pub host_mac: String,
    /// MAC of the pod-side interface.
    pub pod_mac: String,
}

/// Runs `work` with a netlink handle inside the network namespace at `path`.
async fn in_netns<F, Fut, T>(path: &str, work: F) -> Result<T, DataplaneError>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, DataplaneError>>,
    T: Send + 'static,
{
    let netns_error = |reason: String| DataplaneError::Netns {
        path: path.to_string(),
        reason,
    };
    let target = File::open(path).map_err(|e| netns_error(e.to_string()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned_path = path.to_string();
    std::thread::Builder::new()
        .name("netns".to_string())
        .spawn(move || {
            let run = || -> Result<T, DataplaneError> {
                let error = |reason: String| DataplaneError::Netns {
                    path: owned_path.clone(),
                    reason,
                };
                rustix::thread::move_into_link_name_space(
                    target.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| error(e.to_string()))?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| error(e.to_string()))?;
                runtime.block_on(async move {
                    let (connection, handle, _) =
                        rtnetlink::new_connection().map_err(|e| error(e.to_string()))?;
                    tokio::spawn(connection);
                    work(handle).await
                })
            };
            // The receiver only goes away if the caller was cancelled.
            let _sent = tx.send(run());
        })
        .map_err(|e| netns_error(e.to_string()))?;
    rx.await
        .map_err(|_| netns_error("namespace thread died".to_string()))?
}

/// A netlink handle in the caller's (host) namespace.
fn host_handle() -> Result<Handle, DataplaneError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| DataplaneError::Netlink {
            what: "opening a netlink socket".to_string(),
            reason: e.to_string(),
        })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The link called `name`, if it exists.
async fn link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, DataplaneError> {
    let request = handle.link().get().match_name(name.to_string()).execute();
    match request.try_collect::<Vec<_>>().await {
        Ok(mut links) => Ok(links.pop()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(netlink(format!("looking up {name}"))(e)),
    }
}

fn mac_of(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(bytes) => Some(format_mac(bytes)),
            _ => None,
        })
        .unwrap_or_default()
}

fn link_route(dst: IpAddr, prefix: u8, index: u32) -> RouteMessage {
    match dst {
        IpAddr::V4(v4) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .destination_prefix(v4, prefix)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
        IpAddr::V6(v6) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .destination_prefix(v6, prefix)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
    }
}

/// Creates the attachment (see the module documentation). On error, call [`detach`].
pub async fn attach(pod: &PodNetwork) -> Result<Attached, DataplaneError> {
    let host = host_handle()?;
    // A leftover of a crashed ADD for the same endpoint.
    if let Some(stale) = link(&host, &pod.host_ifname).await? {
        host.link()
            .del(stale.header.index)
            .execute()
            .await
            .map_err(netlink(format!("deleting stale {}", pod.host_ifname)))?;
    }
    let host_ns = File::open("/proc/thread-self/ns/net").map_err(|e| DataplaneError::Netns {
        path: "/proc/thread-self/ns/net".to_string(),
        reason: e.to_string(),
    })?;
    let inside = pod.clone();
    let pod_mac = in_netns(&pod.netns, move |h| async move {
        if link(&h, &inside.ifname).await?.is_some() {
            return Err(DataplaneError::Exists {
                ifname: inside.ifname.clone(),
            });
        }
        if let Some(stale) = link(&h, &inside.host_ifname).await? {
            h.link()
                .del(stale.header.index)
                .execute()
                .await
                .map_err(netlink("deleting a stale host veth in the pod"))?;
        }
        // The host end is created in the host namespace directly (the peer's own
        // IFLA_NET_NS_FD): moving it there afterwards costs the kernel an RCU grace period
        // (`synchronize_net`), 10-20 ms.
        let peer = LinkUnspec::new_with_name(&inside.host_ifname)
            .setns_by_fd(host_ns.as_raw_fd())
            .build();
        let mut veth = LinkVeth::new(&inside.ifname, &inside.host_ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        if let Some(mtu) = inside.mtu {
            veth = veth.mtu(mtu);
        }
        h.link()
            .add(veth.build())
            .execute()
            .await
            .map_err(netlink(format!("creating veth {}", inside.ifname)))?;
        let own = link(&h, &inside.ifname)
            .await?
            .ok_or_else(|| DataplaneError::Check(format!("{} vanished", inside.ifname)))?;
        let index = own.header.index;
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink(format!("bringing {} up", inside.ifname)))?;
        for ip in &inside.ips {
            h.address()
                .add(index, *ip, host_prefix(*ip))
                .execute()
                .await
                .map_err(netlink(format!("adding {ip} to {}", inside.ifname)))?;
        }
        if inside.ips.iter().any(IpAddr::is_ipv4) {
            h.route()
                .add(link_route(GATEWAY_V4.into(), 32, index))
                .execute()
                .await
                .map_err(netlink("adding the 169.254.1.1 link route"))?;
            let default = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(GATEWAY_V4)
                .output_interface(index)
                .build();
            h.route()
                .add(default)
                .execute()
                .await
                .map_err(netlink("adding the IPv4 default route"))?;
        }
        if inside.ips.iter().any(IpAddr::is_ipv6) {
            let default = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(GATEWAY_V6)
                .output_interface(index)
                .build();
            h.route()
                .add(default)
                .execute()
                .await
                .map_err(netlink("adding the IPv6 default route"))?;
        }
        Ok(mac_of(&own))
    })
    .await?;

    let veth = link(&host, &pod.host_ifname).await?.ok_or_else(|| {
        DataplaneError::Check(format!("{} did not arrive on the host", pod.host_ifname))
    })?;
    let index = veth.header.index;
    let mut settings = LinkUnspec::new_with_index(index).address(HOST_VETH_MAC.to_vec());
    if let Some(mtu) = pod.mtu {
        settings = settings.mtu(mtu);
    }
    host.link()
        .set(settings.up().build())
        .execute()
        .await
        .map_err(netlink(format!("configuring {}", pod.host_ifname)))?;
    host_sysctls(&pod.host_ifname, &pod.ips);
    for ip in &pod.ips {
        let mut route = link_route(*ip, host_prefix(*ip), index);
        // The agent's protocol: the agent adopts this route rather than meeting a foreign one.
        route.header.protocol = RouteProtocol::from(ROUTE_PROTO_AGENT);
        host.route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("adding the host route to {ip}")))?;
    }
    Ok(Attached {
        host_mac: format_mac(&HOST_VETH_MAC),
        pod_mac,
    })
}

/// Per-interface sysctls of the host veth. IPv6 ones are skipped when the host has IPv6
/// off; a failed IPv4 one is logged (the pod still works for traffic the host originates).
fn host_sysctls(ifname: &str, ips: &[IpAddr]) {
    let mut settings = vec![
        (format!("/proc/sys/net/ipv4/conf/{ifname}/proxy_arp"), "1"),
        (
            format!("/proc/sys/net/ipv4/neigh/{ifname}/proxy_delay"),
            "0",
        ),
        (format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"), "1"),
    ];
    if ips.iter().any(IpAddr::is_ipv6) {
        settings.push((format!("/proc/sys/net/ipv6/conf/{ifname}/proxy_ndp"), "1"));
        settings.push((format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding"), "1"));
        settings.push((format!("/proc/sys/net/ipv6/conf/{ifname}/accept_ra"), "0"));
    }
    for (path, value) in settings {
        if let Err(e) = std::fs::write(&path, value) {
            tracing::warn!(%path, error = %e, "cannot set sysctl");
        }
    }
}

/// Removes the attachment: the host veth (which takes its pod end with it) and, when the
/// namespace still exists, a host-side veth a crashed ADD left inside it. Idempotent: returns
/// whether anything was removed.
pub async fn detach(host_ifname: &str, netns: Option<&str>) -> Result<bool, DataplaneError> {
    let host = host_handle()?;
    let mut removed = false;
    if let Some(l) = link(&host, host_ifname).await? {
        match host.link().del(l.header.index).execute().await {
            Ok(()) => removed = true,
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => {}
            Err(e) => return Err(netlink(format!("deleting {host_ifname}"))(e)),
        }
    }
    if let Some(path) = netns.filter(|p| std::path::Path::new(p).exists()) {
        let name = host_ifname.to_string();
        let in_pod = in_netns(path, move |h| async move {
            match link(&h, &name).await? {
                Some(l) => {
                    h.link()
                        .del(l.header.index)
                        .execute()
                        .await
                        .map_err(netlink(format!("deleting {name} in the pod")))?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await;
        match in_pod {
            Ok(r) => removed |= r,
            // The namespace is going away (or is not one): nothing of ours can be in it.
            Err(DataplaneError::Netns { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

fn route_to(route: &RouteMessage) -> (Option<IpAddr>, Option<IpAddr>) {
    let mut dst = None;
    let mut gw = None;
    for a in &route.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => dst = Some((*v4).into()),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => dst = Some((*v6).into()),
            RouteAttribute::Gateway(RouteAddress::Inet(v4)) => gw = Some((*v4).into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => gw = Some((*v6).into()),
            _ => {}
        }
    }
    (dst, gw)
}

/// CHECK: the pod interface exists and is up with every address, the gateway routes are in
/// place, and the host veth exists and is up.
pub async fn verify(pod: &PodNetwork) -> Result<(), DataplaneError> {
    let host = host_handle()?;
    let veth = link(&host, &pod.host_ifname).await?.ok_or_else(|| {
        DataplaneError::Check(format!("host veth {} is missing", pod.host_ifname))
    })?;
    if !veth.header.flags.contains(LinkFlags::Up) {
        return Err(DataplaneError::Check(format!(
            "{} is down",
            pod.host_ifname
        )));
    }
    let inside = pod.clone();
    in_netns(&pod.netns, move |h| async move {
        let own = link(&h, &inside.ifname).await?.ok_or_else(|| {
            DataplaneError::Check(format!("{} is missing in the pod", inside.ifname))
        })?;
        if !own.header.flags.contains(LinkFlags::Up) {
            return Err(DataplaneError::Check(format!("{} is down", inside.ifname)));
        }
        let index = own.header.index;
        let addresses: Vec<IpAddr> = h
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .map_err(netlink("listing addresses"))?
            .iter()
            .flat_map(|m| m.attributes.iter())
            .filter_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
            .collect();
        for ip in &inside.ips {
            if !addresses.contains(ip) {
                return Err(DataplaneError::Check(format!(
                    "{ip} is not on {} (found {addresses:?})",
                    inside.ifname
                )));
            }
        }
        let mut routes = Vec::new();
        for family in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let found: Vec<RouteMessage> = h
                .route()
                .get(family)
                .execute()
                .try_collect()
                .await
                .map_err(netlink("listing routes"))?;
            routes.extend(found.iter().map(route_to));
        }
        if inside.ips.iter().any(IpAddr::is_ipv4) {
            let gateway: IpAddr = GATEWAY_V4.into();
            if !routes.contains(&(Some(gateway), None)) {
                return Err(DataplaneError::Check(
                    "the 169.254.1.1 link route is missing".to_string(),
                ));
            }
            if !routes.contains(&(None, Some(gateway))) {
                return Err(DataplaneError::Check(
                    "the IPv4 default route via 169.254.1.1 is missing".to_string(),
                ));
            }
        }
        if inside.ips.iter().any(IpAddr::is_ipv6)
            && !routes.contains(&(None, Some(GATEWAY_V6.into())))
        {
            return Err(DataplaneError::Check(
                "the IPv6 default route is missing".to_string(),
            ));
        }
        Ok(())
    })
    .await
}
