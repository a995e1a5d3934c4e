//! The pod's view of the host: every pod routes through a fixed link-local gateway that the
//! host answers for (Calico's scheme, reference/calico.md §1.3), so no per-pod gateway
//! address is ever allocated.
//!
//! - IPv4: `169.254.1.1 dev <ifname> scope link` + `default via 169.254.1.1`; the host veth
//!   has `proxy_arp` on and answers the ARP with its own MAC.
//! - IPv6: `default via fe80::ecee:eeff:feee:eeee`, the link-local address the kernel derives
//!   from the host veth's fixed MAC `ee:ee:ee:ee:ee:ee`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::spec::{IpConfig, Route};

/// IPv4 gateway of every pod.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// IPv6 gateway of every pod (link-local of [`HOST_VETH_MAC`]).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// MAC address of every host-side veth.
pub const HOST_VETH_MAC: [u8; 6] = [0xee; 6];

/// The host route prefix length of an address (32 or 128).
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The gateway for an address's family.
pub fn gateway_for(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        GATEWAY_V4.into()
    } else {
        GATEWAY_V6.into()
    }
}

/// The result entry of an address: `ip/32` (or `/128`) with the family's gateway.
pub fn ip_config(ip: IpAddr, interface: Option<usize>) -> IpConfig {
    IpConfig {
        address: format!("{ip}/{}", host_prefix(ip)),
        gateway: Some(gateway_for(ip).to_string()),
        interface,
    }
}

/// Default routes for the families present in `ips`.
pub fn default_routes(ips: &[IpAddr]) -> Vec<Route> {
    let mut routes = Vec::new();
    if ips.iter().any(IpAddr::is_ipv4) {
        routes.push(Route {
            dst: "0.0.0.0/0".to_string(),
            gw: Some(GATEWAY_V4.to_string()),
        });
    }
    if ips.iter().any(IpAddr::is_ipv6) {
        routes.push(Route {
            dst: "::/0".to_string(),
            gw: Some(GATEWAY_V6.to_string()),
        });
    }
    routes
}

/// `aa:bb:...` formatting of a MAC address.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_v6_is_the_eui64_link_local_of_the_host_mac() {
        // EUI-64: flip the U/L bit of the first octet, insert ff:fe in the middle.
        let m = HOST_VETH_MAC;
        let eui = [m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
        let mut octets = [0u8; 16];
        octets[0] = 0xfe;
        octets[1] = 0x80;
        octets[8..].copy_from_slice(&eui);
        assert_eq!(Ipv6Addr::from(octets), GATEWAY_V6);
        assert_eq!(format_mac(&m), "ee:ee:ee:ee:ee:ee");
    }

    #[test]
    fn results_per_family() {
        let v4: IpAddr = "10.65.0.5".parse().expect("ip");
        let v6: IpAddr = "fd00::5".parse().expect("ip");
        assert_eq!(ip_config(v4, Some(1)).address, "10.65.0.5/32");
        assert_eq!(ip_config(v6, None).address, "fd00::5/128");
        let routes = default_routes(&[v4, v6]);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].gw.as_deref(), Some("169.254.1.1"));
        assert_eq!(routes[1].gw.as_deref(), Some("fe80::ecee:eeff:feee:eeee"));
    }
}
