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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(host_veth_name(""), "vrcbf29ce4842");
        assert_ne!(a, host_veth_name("default/node--1-k8s-web--1-eth0"));
    }
}
