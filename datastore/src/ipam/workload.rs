//! Names shared by the CNI plugin (which creates them) and Felix (which finds the interface
//! and endpoint by them): the WorkloadEndpoint name, the endpoint id and the host-side veth
//! name. This is the one place these are computed.
//!
//! - WorkloadEndpoint name, like Calico (`libcalico-go/lib/names`):
//!   `<node>-<orchestrator>-<workload>-<interface>` where every part has `-` doubled, so the
//!   name splits back unambiguously: node `node-1`, pod `web-0`, `eth0` →
//!   `node--1-k8s-web--0-eth0`. Kubernetes pods use orchestrator `k8s` and the pod name;
//!   other runtimes use `cni` and the container id.
//! - Endpoint id: `<namespace>/<workload endpoint name>` (unique in the cluster).
//! - Host veth name: `vr` + the first 11 hex digits of the 64-bit FNV-1a hash of the
//!   endpoint id (15 characters, the kernel's `IFNAMSIZ - 1`).

/// Orchestrator name of Kubernetes pods.
pub const ORCHESTRATOR_K8S: &str = "k8s";
/// Orchestrator name of plain CNI workloads (no pod name known).
pub const ORCHESTRATOR_CNI: &str = "cni";
/// Prefix of every host-side workload interface.
pub const HOST_VETH_PREFIX: &str = "vr";

/// Route protocol (`rtm_protocol`) of the agent's routes: pod `/32`s and block blackholes.
/// The CNI plugin installs each pod's host route with it too, so the agent adopts that route
/// as its own instead of finding a foreign route in the way (`felix::ownership` re-exports it;
/// Calico's `DefaultRouteProto` is the same number).
pub const ROUTE_PROTO_AGENT: u8 = 80;

fn escape(part: &str) -> String {
    part.replace('-', "--")
}

/// The WorkloadEndpoint name for `workload` (pod name, or container id) on `node`.
pub fn workload_endpoint_name(
    node: &str,
    orchestrator: &str,
    workload: &str,
    interface: &str,
) -> String {
    format!(
        "{}-{}-{}-{}",
        escape(node),
        escape(orchestrator),
        escape(workload),
        escape(interface)
    )
}

/// The endpoint id: `<namespace>/<workload endpoint name>`.
pub fn endpoint_id(namespace: &str, workload_endpoint: &str) -> String {
    format!("{namespace}/{workload_endpoint}")
}

/// 64-bit FNV-1a: stable across releases and platforms (the name must not change when
/// vrouter is upgraded, or Felix would lose track of existing pods).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The host-side veth name of the endpoint with id `endpoint_id` (see [`endpoint_id`]).
pub fn host_veth_name(endpoint_id: &str) -> String {
    let hex = format!("{:016x}", fnv1a64(endpoint_id.as_bytes()));
    format!("{HOST_VETH_PREFIX}{}", &hex[..11])
}

/// The MAC of node `node`'s VXLAN device (`vxlanTunnelMACAddr`): derived from the node name
/// (FNV-1a), locally administered and unicast, so it is the same after every restart and the
/// agent adopts its device without churn.
pub fn vxlan_tunnel_mac(node: &str) -> String {
    let hash = fnv1a64(format!("vxlan/{node}").as_bytes()).to_be_bytes();
    let first = (hash[0] | 0x02) & !0x01;
    format!(
        "{first:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        hash[1], hash[2], hash[3], hash[4], hash[5]
    )
}

/// Bytes VXLAN adds to each packet on an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8)
/// + inner Ethernet (14). Calico's rule: VXLAN MTU = underlay MTU − 50.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The smallest MTU an IPv4 link may have (RFC 791); [`pod_mtu`] never goes below it.
const MIN_IPV4_MTU: u32 = 68;

/// True when pods of `pool` are reached through VXLAN (`vxlanMode` `Always` or
/// `CrossSubnet`): their interface MTU leaves room for [`VXLAN_OVERHEAD`].
pub fn pool_uses_vxlan(pool: &crate::resource::IpPool) -> bool {
    use crate::resource::ippool::EncapMode;
    matches!(
        pool.spec.vxlan_mode,
        Some(EncapMode::Always | EncapMode::CrossSubnet)
    )
}

/// The MTU of a pod's interface (both veth ends), the one rule the CNI plugin and the agent
/// share: `configured` (an operator's override, taken as the pod MTU itself) if set, else the
/// underlay's MTU minus [`VXLAN_OVERHEAD`] for a VXLAN pool; never larger than the underlay.
/// `None` when neither is known (the kernel default stays).
pub fn pod_mtu(configured: Option<u32>, underlay: Option<u32>, vxlan: bool) -> Option<u32> {
    let wanted = match (configured, underlay) {
        (Some(c), _) => c,
        (None, Some(u)) if vxlan => u.saturating_sub(VXLAN_OVERHEAD),
        (None, Some(u)) => u,
        (None, None) => return None,
    };
    let clamped = underlay.map_or(wanted, |u| wanted.min(u));
    Some(clamped.max(MIN_IPV4_MTU))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_mtu_follows_the_underlay() {
        assert_eq!(pod_mtu(None, Some(1500), false), Some(1500));
        assert_eq!(pod_mtu(None, Some(1500), true), Some(1450));
        assert_eq!(pod_mtu(None, Some(9000), true), Some(8950));
        assert_eq!(pod_mtu(Some(1400), Some(1500), true), Some(1400));
        assert_eq!(
            pod_mtu(Some(9000), Some(1500), false),
            Some(1500),
            "clamped"
        );
        assert_eq!(pod_mtu(Some(1400), None, false), Some(1400));
        assert_eq!(pod_mtu(None, None, true), None);
        assert_eq!(pod_mtu(None, Some(100), true), Some(68));
        let mut pool = crate::resource::IpPool::new("p", "10.0.0.0/16");
        assert!(!pool_uses_vxlan(&pool));
        pool.spec.vxlan_mode = Some(crate::resource::ippool::EncapMode::CrossSubnet);
        assert!(pool_uses_vxlan(&pool));
        pool.spec.vxlan_mode = Some(crate::resource::ippool::EncapMode::Never);
        assert!(!pool_uses_vxlan(&pool));
    }

    #[test]
    fn names_follow_calico() {
        assert_eq!(
            workload_endpoint_name("node-1", ORCHESTRATOR_K8S, "web-0", "eth0"),
            "node--1-k8s-web--0-eth0"
        );
        assert_eq!(endpoint_id("prod", "n-k8s-p-eth0"), "prod/n-k8s-p-eth0");
    }

    #[test]
    fn veth_names_are_stable_and_fit_ifnamsiz() {
        let a = host_veth_name("default/node--1-k8s-web--0-eth0");
        assert_eq!(a.len(), 13);
        assert!(a.starts_with("vr"));
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()));
        // Pinned: changing the function renames every pod's interface on upgrade.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        let mac = vxlan_tunnel_mac("node-1");
        assert_eq!(mac, vxlan_tunnel_mac("node-1"), "stable");
        assert_ne!(mac, vxlan_tunnel_mac("node-2"));
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "locally administered unicast: {mac}");
        assert_eq!(mac.len(), 17);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(host_veth_name(""), "vrcbf29ce4842");
        assert_ne!(a, host_veth_name("default/node--1-k8s-web--1-eth0"));
    }
}
