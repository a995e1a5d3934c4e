//! The lab's underlay: a namespace `<lab>-ul` holding bridge `br0`; every node namespace has
//! `eth0` on a veth into it, and the root namespace joins it through `<lab>-host` (address
//! `.1`), which is how `vrouterd` and the CNI plugin inside node namespaces reach the etcd
//! running in the root namespace.
//!
//! ```text
//!   root ns: <lab>-host 10.250.K.1/24 ──┐
//!                                 <lab>-ul: br0
//!   <lab>-n0: eth0 .10 ─────────────────┤ (n0)
//!   <lab>-n1: eth0 .11 ─────────────────┘ (n1)
//! ```
//!
//! The /24 is chosen so that no route of the root namespace overlaps it (other labs' host
//! links included), starting from a hash of the lab name.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};

use super::process::{ip, ip_in, run_ok};

/// The bridge inside the underlay namespace.
pub const BRIDGE: &str = "br0";
/// The node side of a node's underlay veth.
pub const NODE_DEV: &str = "eth0";
/// Host number of the first node (`.10`, `.11`, …).
pub const FIRST_NODE_HOST: u8 = 10;
/// Second octet of every lab underlay: 10.250.0.0/16 (test-support's labs use 10.100–199).
const UNDERLAY_OCTET: u8 = 250;

/// The underlay namespace of lab `lab`.
pub fn underlay_ns(lab: &str) -> String {
    format!("{lab}-ul")
}

/// The root-namespace link of lab `lab`.
pub fn host_link(lab: &str) -> String {
    format!("{lab}-host")
}

/// The bridge port (in the underlay namespace) of node `index`.
pub fn node_port(index: usize) -> String {
    format!("n{index}")
}

/// Underlay address of node `index`.
pub fn node_ip(net: [u8; 3], index: usize) -> anyhow::Result<Ipv4Addr> {
    let host = u8::try_from(index + usize::from(FIRST_NODE_HOST))
        .ok()
        .filter(|h| *h < GATEWAY_HOST)
        .with_context(|| format!("node index {index} does not fit in the lab's /24"))?;
    let [a, b, c] = net;
    Ok(Ipv4Addr::new(a, b, c, host))
}

/// Parses `a.b.c.d/len` or a bare address (a /32) from the first field of an `ip route` line.
fn parse_prefix(text: &str) -> Option<(u32, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()?),
        None => (text, 32),
    };
    let addr: Ipv4Addr = addr.parse().ok()?;
    (len <= 32).then_some((u32::from(addr), len))
}

fn overlaps((a, alen): (u32, u8), (b, blen): (u32, u8)) -> bool {
    let len = alen.min(blen);
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    a & mask == b & mask
}

/// Picks a free 10.250.K.0/24: none of `routes` (root namespace `ip -4 route` destinations,
/// `default` ignored) overlaps it. The search starts at a hash of `lab`.
pub fn pick_subnet(lab: &str, routes: &[String]) -> anyhow::Result<[u8; 3]> {
    let taken: Vec<(u32, u8)> = routes
        .iter()
        .filter_map(|r| parse_prefix(r))
        .filter(|(_, len)| *len > 0)
        .collect();
    let start = lab
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for step in 0..256u32 {
        let k = u8::try_from((start + step) % 256).unwrap_or(0);
        let candidate = (u32::from(Ipv4Addr::new(10, UNDERLAY_OCTET, k, 0)), 24);
        if !taken.iter().any(|t| overlaps(*t, candidate)) {
            return Ok([10, UNDERLAY_OCTET, k]);
        }
    }
    bail!("no free /24 in 10.{UNDERLAY_OCTET}.0.0/16 for the lab underlay")
}

/// Destinations of every IPv4 route in the root namespace (all tables).
pub fn root_routes() -> anyhow::Result<Vec<String>> {
    let out = ip(&["-4", "route", "show", "table", "all"])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let first = words.next()?;
            // `local 10.0.0.1 …`, `broadcast …`, `blackhole …`: the prefix is the next word.
            match first {
                "local" | "broadcast" | "blackhole" | "unreachable" | "prohibit" | "throw"
                | "multicast" | "anycast" => words.next(),
                _ => Some(first),
            }
            .map(str::to_string)
        })
        .collect())
}

/// Creates network namespace `name` and brings its `lo` up.
pub fn add_namespace(name: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", name])?;
    ip_in(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes namespace `name` after SIGKILLing whatever still runs inside it. Missing is fine.
pub fn delete_namespace(name: &str) -> anyhow::Result<()> {
    if !namespace_exists(name) {
        return Ok(());
    }
    if let Ok(out) = ip(&["netns", "pids", name]) {
        for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            super::process::signal(pid, "KILL");
        }
    }
    ip(&["netns", "del", name]).map(drop)
}

/// Whether namespace `name` exists.
pub fn namespace_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Whether link `name` exists in the root namespace.
pub fn root_link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Creates the bridge inside the (already created) underlay namespace.
pub fn create_bridge(ul: &str) -> anyhow::Result<()> {
    create_bridge_named(ul, BRIDGE)
}

/// Creates bridge `bridge` inside the underlay namespace.
pub fn create_bridge_named(ul: &str, bridge: &str) -> anyhow::Result<()> {
    ip_in(
        ul,
        &[
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ],
    )?;
    ip_in(ul, &["link", "set", bridge, "up"]).map(drop)
}

/// Joins the root namespace to the bridge: `host_link` in the root namespace with `host_ip/24`.
pub fn attach_host(ul: &str, host_link: &str, host_ip: Ipv4Addr) -> anyhow::Result<()> {
    ip(&[
        "link", "add", host_link, "type", "veth", "peer", "name", "host", "netns", ul,
    ])?;
    ip_in(ul, &["link", "set", "host", "master", BRIDGE, "up"])?;
    ip(&["addr", "add", &format!("{host_ip}/24"), "dev", host_link])?;
    ip(&["link", "set", host_link, "up"]).map(drop)
}

/// Host number of the node namespaces' default gateway: an address nobody has, standing in
/// for a host's upstream router. Proxy ARP on the pods' host veths only answers for a
/// gateway (169.254.1.1) the node has a route to; stray traffic dies here (no ARP reply).
pub const GATEWAY_HOST: u8 = 254;

/// Wires node namespace `node_ns` (already created) to the bridge as `eth0` with `addr/24`,
/// a default route to the unanswered `.254`, forwarding on.
pub fn attach_node(ul: &str, port: &str, node_ns: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    attach_node_to(ul, BRIDGE, port, node_ns, addr)
}

/// [`attach_node`] on bridge `bridge` (the second subnet's, with two subnets).
pub fn attach_node_to(
    ul: &str,
    bridge: &str,
    port: &str,
    node_ns: &str,
    addr: Ipv4Addr,
) -> anyhow::Result<()> {
    ip_in(
        ul,
        &[
            "link", "add", port, "type", "veth", "peer", "name", NODE_DEV, "netns", node_ns,
        ],
    )?;
    ip_in(ul, &["link", "set", port, "master", bridge, "up"])?;
    ip_in(
        node_ns,
        &["addr", "add", &format!("{addr}/24"), "dev", NODE_DEV],
    )?;
    ip_in(node_ns, &["link", "set", NODE_DEV, "up"])?;
    let [a, b, c, _] = addr.octets();
    let gateway = Ipv4Addr::new(a, b, c, GATEWAY_HOST).to_string();
    ip_in(
        node_ns,
        &["route", "add", "default", "via", &gateway, "dev", NODE_DEV],
    )?;
    sysctl(node_ns, "net.ipv4.ip_forward", "1")?;
    sysctl(node_ns, "net.ipv6.conf.all.forwarding", "1")
}

/// Sets a node's bridge port down (`up == false`: the node's underlay link is cut) or up.
pub fn set_port(ul: &str, port: &str, up: bool) -> anyhow::Result<()> {
    ip_in(ul, &["link", "set", port, if up { "up" } else { "down" }]).map(drop)
}

/// Writes a sysctl inside namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    run_ok(
        std::process::Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw"])
            .arg(format!("{key}={value}")),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_avoids_overlapping_routes() {
        let first = pick_subnet("vl", &[]).expect("free");
        let taken = vec![
            "default".to_string(),
            format!("{}.{}.{}.0/24", first[0], first[1], first[2]),
        ];
        let second = pick_subnet("vl", &taken).expect("free");
        assert_ne!(first, second);
        // A covering /16 leaves nothing.
        assert!(pick_subnet("vl", &["10.250.0.0/16".to_string()]).is_err());
        // A bare host address inside the candidate counts too.
        let host = format!("{}.{}.{}.7", first[0], first[1], first[2]);
        assert_ne!(pick_subnet("vl", &[host]).expect("free"), first);
    }

    #[test]
    fn node_addresses_start_at_ten() {
        assert_eq!(
            node_ip([10, 250, 3], 0).expect("fits"),
            Ipv4Addr::new(10, 250, 3, 10)
        );
        assert!(node_ip([10, 250, 3], 243).is_ok());
        assert!(node_ip([10, 250, 3], 244).is_err());
    }
}
