//! Every tag that marks kernel state as vrouter's, in one place (design.md §5, style §8.2).
//!
//! A freshly restarted agent has no memory: it recognises what it programmed before only
//! through these tags, read back from the kernel.
//!
//! | kernel state | how it is recognised |
//! |---|---|
//! | pod `/32` (`/128`) routes, IPAM block blackholes | route protocol [`ROUTE_PROTO_AGENT`] (80) in [`ROUTE_TABLE_MAIN`] |
//! | routes learned over BGP | route protocol [`ROUTE_PROTO_BGP`] (81) in [`ROUTE_TABLE_MAIN`] |
//! | nftables rules, sets, maps | everything in table [`NFT_FAMILY`] [`NFT_TABLE`] (`inet vrouter`) |
//! | host-side workload veths | name prefix [`HOST_VETH_PREFIX`] (`vr` + 11 hex digits of a hash of the endpoint id) |
//! | the VXLAN tunnel endpoint, its address, neighbours and FDB entries | device name [`VXLAN_DEVICE`] (everything on it is ours) |
//!
//! The veth name ([`host_veth_name`]) and the agent's route protocol live in
//! `datastore::ipam::workload` because the CNI plugin (which creates the veth and the pod's host
//! route) and the agent (which adopts both) must agree exactly; this module re-exports that one
//! definition rather than copying it.

pub use datastore::ipam::workload::{
    HOST_VETH_PREFIX, ROUTE_PROTO_AGENT, endpoint_id, host_veth_name,
};

// 0..=4 are kernel/boot/static; the two must differ so neither owner touches the other's.
const _: () = assert!(ROUTE_PROTO_AGENT > 4 && ROUTE_PROTO_BGP > 4);
const _: () = assert!(ROUTE_PROTO_AGENT != ROUTE_PROTO_BGP);

/// Route protocol of routes the BGP speaker installs (best paths learned from peers).
pub const ROUTE_PROTO_BGP: u8 = 81;

/// Name of the VXLAN device (Calico's is `vxlan.calico`).
pub const VXLAN_DEVICE: &str = "vxlan.vrouter";

/// The routing table both protocols use (`main`).
pub const ROUTE_TABLE_MAIN: u32 = 254;

/// Name of the one nftables table vrouter owns; anything inside it is ours.
pub const NFT_TABLE: &str = "vrouter";

/// Family of [`NFT_TABLE`] (`inet`: one table for IPv4 and IPv6).
pub const NFT_FAMILY: &str = "inet";

/// True if `ifname` is a host-side workload interface by the naming rule: the prefix
/// followed by exactly 11 lower-case hex digits.
pub fn is_workload_iface(ifname: &str) -> bool {
    ifname.strip_prefix(HOST_VETH_PREFIX).is_some_and(|rest| {
        rest.len() == 11
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_follow_the_shared_rule() {
        let name = host_veth_name(&endpoint_id("prod", "node--1-k8s-web--0-eth0"));
        assert!(is_workload_iface(&name), "{name}");
        assert_eq!(name.len(), 13);
        assert!(!is_workload_iface("vr0"));
        assert!(!is_workload_iface("eth0"));
        assert!(!is_workload_iface("vrABCDEF01234"));
        assert!(!is_workload_iface("vr0123456789ab"));
    }
}
