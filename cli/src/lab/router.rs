//! The lab's optional second underlay subnet (`LabSpec::subnets == 2`, `vrctl lab up
//! --subnets 2`): nodes in two /24s on two bridges, joined by a router namespace that knows
//! only its two connected subnets — no route to any pod CIDR, no BGP. It is both subnets'
//! default gateway (`.254`), so the only way pod traffic crosses it is encapsulated
//! (VXLAN between node addresses); native pod packets towards the other subnet die there.
//!
//! ```text
//!   <lab>-ul: br0 (subnet A) ── rt-a ─┐          ┌─ rt-b ── br1 (subnet B)
//!                                <lab>-rt: eth0 A.254 / eth1 B.254, forwarding
//! ```
//!
//! The root namespace (etcd) reaches subnet B through the router: a route for B's /24 via
//! A.254 on the lab's host link, removed with that link.

use std::net::Ipv4Addr;

use super::process::{ip, ip_in};
use super::underlay::{self, BRIDGE, GATEWAY_HOST};

/// The second subnet's bridge in the underlay namespace.
pub const SECOND_BRIDGE: &str = "br1";

/// The router namespace of lab `lab`.
pub fn router_ns(lab: &str) -> String {
    format!("{lab}-rt")
}

/// How many of `nodes` nodes are on the first subnet (the rest are on the second).
pub fn first_subnet_nodes(nodes: usize) -> usize {
    nodes.div_ceil(2)
}

/// The router's address on a subnet (the nodes' default gateway there).
pub fn gateway(subnet: [u8; 3]) -> Ipv4Addr {
    let [a, b, c] = subnet;
    Ipv4Addr::new(a, b, c, GATEWAY_HOST)
}

/// Builds the second bridge and the router (its namespace `rt` already created) between
/// subnets `first` and `second`, and the root namespace's route to `second` over `host_link`.
pub fn connect(
    ul: &str,
    rt: &str,
    host_link: &str,
    first: [u8; 3],
    second: [u8; 3],
) -> anyhow::Result<()> {
    underlay::create_bridge_named(ul, SECOND_BRIDGE)?;
    for (port, dev, bridge, subnet) in [
        ("rt-a", "eth0", BRIDGE, first),
        ("rt-b", "eth1", SECOND_BRIDGE, second),
    ] {
        ip_in(
            ul,
            &[
                "link", "add", port, "type", "veth", "peer", "name", dev, "netns", rt,
            ],
        )?;
        ip_in(ul, &["link", "set", port, "master", bridge, "up"])?;
        ip_in(
            rt,
            &[
                "addr",
                "add",
                &format!("{}/24", gateway(subnet)),
                "dev",
                dev,
            ],
        )?;
        ip_in(rt, &["link", "set", dev, "up"])?;
    }
    underlay::sysctl(rt, "net.ipv4.ip_forward", "1")?;
    let [a, b, c] = second;
    ip(&[
        "route",
        "add",
        &format!("{a}.{b}.{c}.0/24"),
        "via",
        &gateway(first).to_string(),
        "dev",
        host_link,
    ])
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_split_with_the_first_subnet_taking_the_odd_one() {
        assert_eq!(first_subnet_nodes(4), 2);
        assert_eq!(first_subnet_nodes(3), 2);
        assert_eq!(first_subnet_nodes(1), 1);
        assert_eq!(gateway([10, 250, 3]), Ipv4Addr::new(10, 250, 3, 254));
    }
}
