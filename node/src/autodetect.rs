//! The node's IPv4/IPv6 address: Calico's autodetection methods.
//!
//! Wrong autodetection on multi-NIC hosts is the most common Calico complaint, so every choice
//! is explained: [`choose`] returns the chosen address, the rule that chose it and every
//! candidate it passed over with the reason, and [`detect`] logs all of it (the choice at
//! info, the skipped candidates at debug, or at info when nothing was found).
//!
//! [`choose`] is pure over a list of [`Interface`]s; [`interfaces`] reads them from the kernel
//! (rtnetlink, the current network namespace) and [`kernel_source_for`] asks the kernel which
//! source address it would use for a destination (a connected UDP socket: no packet is sent).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use regex::Regex;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use tracing::{debug, info, warn};

use crate::config::{AddressChoice, Method};

/// Interfaces first-found and skip-interface never pick (Calico's default exclusions, plus
/// vrouter's own workload veths `vr*`).
pub const DEFAULT_SKIP: &[&str] = &[
    "^lo$",
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^cni.*",
    "^vr.*",
    "^cali.*",
    "^vxlan.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-.*",
    "^wireguard.*",
    "^wg-.*",
    "^nodelocaldns.*",
];

/// One host interface and its addresses in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Administratively and operationally usable (`IFF_UP`).
    pub up: bool,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNetwork>,
}

/// A candidate passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The interface.
    pub interface: String,
    /// The address, when the reason is about the address rather than the interface.
    pub address: Option<IpNetwork>,
    /// Why.
    pub reason: String,
}

/// The outcome of a detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The chosen address with its prefix length.
    pub address: IpNetwork,
    /// The interface holding it.
    pub interface: String,
    /// The rule that chose it, in words.
    pub rule: String,
    /// Everything passed over before it.
    pub skipped: Vec<Skipped>,
}

/// Errors detecting an address.
#[derive(Debug, thiserror::Error)]
pub enum AutodetectError {
    /// No candidate satisfied the method.
    #[error("no IPv{family} address found by {method} ({skipped} candidates skipped)")]
    NotFound {
        /// 4 or 6.
        family: u8,
        /// The method.
        method: String,
        /// How many candidates were looked at and passed over.
        skipped: usize,
        /// Them.
        candidates: Vec<Skipped>,
    },
    /// A can-reach destination does not resolve to an address of the family.
    #[error("can-reach={destination}: {reason}")]
    Unreachable {
        /// The destination as given.
        destination: String,
        /// What went wrong.
        reason: String,
    },
    /// The kernel's interface list could not be read.
    #[error("listing interfaces: {0}")]
    Netlink(String),
}

/// True for addresses no node should use as its identity.
fn unusable(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local address"),
        IpAddr::V4(v4) if v4.is_unspecified() => Some("unspecified address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified address"),
        _ => None,
    }
}

fn default_skip() -> Vec<Regex> {
    DEFAULT_SKIP
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
}

/// Chooses an address of one family by `method` among `interfaces`. Pure, except that
/// `can-reach` needs the kernel's source address for the destination: pass it as
/// `reach_source` (see [`kernel_source_for`]).
pub fn choose(
    method: &Method,
    v4: bool,
    interfaces: &[Interface],
    reach_source: Option<IpAddr>,
) -> Result<Detection, AutodetectError> {
    let mut skipped = Vec::new();
    let skip_iface = |skipped: &mut Vec<Skipped>, iface: &Interface, reason: String| {
        skipped.push(Skipped {
            interface: iface.name.clone(),
            address: None,
            reason,
        });
    };
    let family = |net: &IpNetwork| net.is_ipv4() == v4;
    let defaults = default_skip();
    for iface in interfaces {
        let interface_rule = match method {
            Method::FirstFound | Method::SkipInterface(_) => {
                if let Some(r) = defaults.iter().find(|r| r.is_match(&iface.name)) {
                    skip_iface(
                        &mut skipped,
                        iface,
                        format!("on the default skip list ({r})"),
                    );
                    continue;
                }
                if let Method::SkipInterface(r) = method
                    && r.is_match(&iface.name)
                {
                    skip_iface(&mut skipped, iface, format!("matches skip-interface={r}"));
                    continue;
                }
                None
            }
            Method::Interface(r) => {
                if !r.is_match(&iface.name) {
                    skip_iface(&mut skipped, iface, format!("does not match interface={r}"));
                    continue;
                }
                Some(format!("interface {} matches interface={r}", iface.name))
            }
            Method::CanReach(_) | Method::Cidr(_) => None,
        };
        if !iface.up {
            skip_iface(&mut skipped, iface, "interface is down".to_string());
            continue;
        }
        for net in iface.addresses.iter().filter(|n| family(n)) {
            let skip = |skipped: &mut Vec<Skipped>, reason: String| {
                skipped.push(Skipped {
                    interface: iface.name.clone(),
                    address: Some(*net),
                    reason,
                });
            };
            let rule = match method {
                Method::CanReach(dest) => {
                    if Some(net.ip()) != reach_source {
                        skip(&mut skipped, "not the kernel's source address".to_string());
                        continue;
                    }
                    format!("the kernel's source address towards {dest} (can-reach)")
                }
                Method::Cidr(nets) => match nets.iter().find(|c| c.contains(net.ip())) {
                    Some(c) => format!("inside {c} (cidr=)"),
                    None => {
                        skip(&mut skipped, "outside the cidr= networks".to_string());
                        continue;
                    }
                },
                _ => {
                    if let Some(reason) = unusable(net.ip()) {
                        skip(&mut skipped, reason.to_string());
                        continue;
                    }
                    interface_rule.clone().unwrap_or_else(|| {
                        format!("first address of the first usable interface ({method})")
                    })
                }
            };
            return Ok(Detection {
                address: *net,
                interface: iface.name.clone(),
                rule,
                skipped,
            });
        }
    }
    Err(AutodetectError::NotFound {
        family: if v4 { 4 } else { 6 },
        method: method.to_string(),
        skipped: skipped.len(),
        candidates: skipped,
    })
}

/// The source address the kernel would use towards `destination` (an address or a host
/// name): a UDP socket is connected, which sends nothing, and its local address read.
pub fn kernel_source_for(destination: &str, v4: bool) -> Result<IpAddr, AutodetectError> {
    let error = |reason: String| AutodetectError::Unreachable {
        destination: destination.to_string(),
        reason,
    };
    let target = match destination.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => (destination, 0)
            .to_socket_addrs()
            .map_err(|e| error(format!("cannot resolve: {e}")))?
            .map(|a| a.ip())
            .find(|ip| ip.is_ipv4() == v4)
            .ok_or_else(|| error("resolves to no address of this family".to_string()))?,
    };
    if target.is_ipv4() != v4 {
        return Err(error("not an address of this family".to_string()));
    }
    let bind: SocketAddr = if v4 {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(|e| error(e.to_string()))?;
    socket
        .connect((target, 9))
        .map_err(|e| error(format!("no route: {e}")))?;
    let local = socket.local_addr().map_err(|e| error(e.to_string()))?;
    Ok(local.ip())
}

/// The interfaces of the current network namespace, in index order, with their addresses.
pub async fn interfaces() -> Result<Vec<Interface>, AutodetectError> {
    let netlink = |e: rtnetlink::Error| AutodetectError::Netlink(e.to_string());
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| AutodetectError::Netlink(e.to_string()))?;
    let task = tokio::spawn(connection);
    let result = async {
        let links: Vec<_> = handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(netlink)?;
        let addresses: Vec<_> = handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(netlink)?;
        let mut out: Vec<(u32, Interface)> = links
            .iter()
            .filter_map(|link| {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                Some((
                    link.header.index,
                    Interface {
                        name,
                        up: link.header.flags.contains(LinkFlags::Up),
                        addresses: Vec::new(),
                    },
                ))
            })
            .collect();
        out.sort_by_key(|(index, _)| *index);
        for message in &addresses {
            // IPv4 point-to-point links carry the peer in Address and ours in Local.
            let local = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = local.or_else(|| {
                message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            let Some(ip) = address else { continue };
            let Ok(net) = IpNetwork::new(ip, message.header.prefix_len) else {
                continue;
            };
            if let Some((_, iface)) = out.iter_mut().find(|(i, _)| *i == message.header.index) {
                iface.addresses.push(net);
            }
        }
        Ok(out.into_iter().map(|(_, iface)| iface).collect())
    }
    .await;
    task.abort();
    result
}

/// Resolves one family's address choice, logging the decision and the candidates skipped.
/// `Ok(None)`: the family is disabled.
pub async fn detect(
    choice: &AddressChoice,
    v4: bool,
) -> Result<Option<IpNetwork>, AutodetectError> {
    let family = if v4 { "ipv4" } else { "ipv6" };
    let method = match choice {
        AddressChoice::Disabled => {
            info!(family, "no address of this family (disabled)");
            return Ok(None);
        }
        AddressChoice::Fixed(net) => {
            info!(family, address = %net, rule = "given explicitly", "node address chosen");
            return Ok(Some(*net));
        }
        AddressChoice::Autodetect(method) => method,
    };
    let list = interfaces().await?;
    let source = match method {
        Method::CanReach(dest) => Some(kernel_source_for(dest, v4)?),
        _ => None,
    };
    match choose(method, v4, &list, source) {
        Ok(detection) => {
            for skip in &detection.skipped {
                debug!(
                    family,
                    interface = %skip.interface,
                    address = ?skip.address.map(|a| a.to_string()),
                    reason = %skip.reason,
                    "address candidate skipped"
                );
            }
            info!(
                family,
                address = %detection.address,
                interface = %detection.interface,
                rule = %detection.rule,
                skipped = detection.skipped.len(),
                "node address chosen"
            );
            Ok(Some(detection.address))
        }
        Err(error) => {
            if let AutodetectError::NotFound { candidates, .. } = &error {
                for skip in candidates {
                    info!(
                        family,
                        interface = %skip.interface,
                        address = ?skip.address.map(|a| a.to_string()),
                        reason = %skip.reason,
                        "address candidate skipped"
                    );
                }
            }
            warn!(family, %error, "address autodetection failed");
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, up: bool, addresses: &[&str]) -> Interface {
        Interface {
            name: name.to_string(),
            up,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn host() -> Vec<Interface> {
        vec![
            iface("lo", true, &["127.0.0.1/8", "::1/128"]),
            iface("docker0", true, &["172.17.0.1/16"]),
            iface("eth0", false, &["192.0.2.10/24"]),
            iface(
                "eth1",
                true,
                &[
                    "169.254.1.1/16",
                    "10.0.1.5/24",
                    "fe80::1/64",
                    "fd00:1::5/64",
                ],
            ),
            iface("vr1234567890a", true, &["10.65.0.1/32"]),
            iface("eth2", true, &["10.0.2.5/24", "fd00:2::5/64"]),
        ]
    }

    #[test]
    fn first_found_skips_the_default_list_down_links_and_link_local() {
        let d = choose(&Method::FirstFound, true, &host(), None).unwrap();
        assert_eq!(d.address.to_string(), "10.0.1.5/24");
        assert_eq!(d.interface, "eth1");
        let reasons: Vec<String> = d
            .skipped
            .iter()
            .map(|s| format!("{} {}", s.interface, s.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                "lo on the default skip list (^lo$)",
                "docker0 on the default skip list (^docker.*)",
                "eth0 interface is down",
                "eth1 link-local address",
            ]
        );
        let v6 = choose(&Method::FirstFound, false, &host(), None).unwrap();
        assert_eq!(v6.address.to_string(), "fd00:1::5/64");
    }

    #[test]
    fn interface_and_skip_interface_regexes() {
        let m = Method::parse("interface=eth2").unwrap().unwrap();
        let d = choose(&m, true, &host(), None).unwrap();
        assert_eq!(d.address.to_string(), "10.0.2.5/24");
        assert!(d.rule.contains("interface=eth2"), "{}", d.rule);
        let m = Method::parse("skip-interface=eth[01]").unwrap().unwrap();
        let d = choose(&m, true, &host(), None).unwrap();
        assert_eq!(d.interface, "eth2");
        assert!(
            d.skipped
                .iter()
                .any(|s| s.interface == "eth1" && s.reason.contains("skip-interface"))
        );
    }

    #[test]
    fn cidr_and_can_reach() {
        let m = Method::parse("cidr=10.0.2.0/24,192.0.2.0/24")
            .unwrap()
            .unwrap();
        assert_eq!(
            choose(&m, true, &host(), None).unwrap().address.to_string(),
            "10.0.2.5/24"
        );
        let m = Method::CanReach("10.0.2.1".into());
        let d = choose(&m, true, &host(), Some("10.0.2.5".parse().unwrap())).unwrap();
        assert_eq!(
            d.address.to_string(),
            "10.0.2.5/24",
            "keeps the prefix length"
        );
        assert!(d.rule.contains("can-reach"));
    }

    #[test]
    fn nothing_found_reports_every_candidate() {
        let only_lo = vec![iface("lo", true, &["127.0.0.1/8"])];
        let error = choose(&Method::FirstFound, true, &only_lo, None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no IPv4 address found by first-found")
        );
        match error {
            AutodetectError::NotFound { candidates, .. } => assert_eq!(candidates.len(), 1),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn kernel_source_of_loopback_is_loopback() {
        let source = kernel_source_for("127.0.0.1", true).unwrap();
        assert_eq!(source, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(kernel_source_for("::1", true).is_err(), "wrong family");
    }
}
