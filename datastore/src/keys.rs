//! The etcd key layout (design.md §4), in one place. Nothing else in the workspace builds keys.
//!
//! ```text
//! /vrouter/resources/<plural>/<name>                cluster-scoped resources
//! /vrouter/resources/<plural>/<namespace>/<name>    namespaced resources
//! /vrouter/ipam/blocks/<cidr>                        IPAM allocation blocks
//! /vrouter/ipam/affinity/<node>/<cidr>               block affinities
//! /vrouter/ipam/handles/<id>                         allocation handles
//! /vrouter/status/<node>                             node liveness, under a lease
//! ```
//!
//! A CIDR is written with `-` in place of `/` (`10.65.0.0-26`, as Calico does) so that it stays
//! one key segment and a prefix listing of `/vrouter/ipam/blocks/` is one level deep.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// Root of everything vrouter stores.
pub const ROOT: &str = "/vrouter/";
/// Root of the resource keys.
pub const RESOURCES: &str = "/vrouter/resources/";
/// Root of the IPAM block keys.
pub const IPAM_BLOCKS: &str = "/vrouter/ipam/blocks/";
/// Root of the IPAM affinity keys.
pub const IPAM_AFFINITY: &str = "/vrouter/ipam/affinity/";
/// Root of the IPAM handle keys.
pub const IPAM_HANDLES: &str = "/vrouter/ipam/handles/";
/// Root of the node liveness keys.
pub const STATUS: &str = "/vrouter/status/";

/// Where a resource lives, decoded from its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// Lower-case plural of the kind (`ippools`, `networkpolicies`).
    pub plural: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ResourceKey {
    /// The etcd key of this resource.
    pub fn to_key(&self) -> String {
        resource_key(&self.plural, self.namespace.as_deref(), &self.name)
    }
}

/// Key of one resource.
pub fn resource_key(plural: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{RESOURCES}{plural}/{ns}/{name}"),
        None => format!("{RESOURCES}{plural}/{name}"),
    }
}

/// Prefix under which every resource of a kind lives (all namespaces).
pub fn resource_prefix(plural: &str) -> String {
    format!("{RESOURCES}{plural}/")
}

/// Prefix under which every resource of a namespaced kind in one namespace lives.
pub fn namespace_prefix(plural: &str, namespace: &str) -> String {
    format!("{RESOURCES}{plural}/{namespace}/")
}

/// Decodes a resource key; `None` if `key` is not one.
pub fn parse_resource_key(key: &str) -> Option<ResourceKey> {
    let rest = key.strip_prefix(RESOURCES)?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match parts.as_slice() {
        [plural, name] => Some(ResourceKey {
            plural: (*plural).to_string(),
            namespace: None,
            name: (*name).to_string(),
        }),
        [plural, namespace, name] => Some(ResourceKey {
            plural: (*plural).to_string(),
            namespace: Some((*namespace).to_string()),
            name: (*name).to_string(),
        }),
        _ => None,
    }
}

/// A CIDR as one key segment: `10.65.0.0/26` → `10.65.0.0-26`.
pub fn cidr_segment(cidr: &IpNetwork) -> String {
    format!("{}-{}", cidr.network(), cidr.prefix())
}

/// Inverse of [`cidr_segment`]; `None` for anything that is not a canonical network.
pub fn parse_cidr_segment(segment: &str) -> Option<IpNetwork> {
    let (addr, len) = segment.rsplit_once('-')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = IpNetwork::new(addr, len).ok()?;
    (net.network() == addr).then_some(net)
}

/// Key of an IPAM block.
pub fn ipam_block_key(cidr: &IpNetwork) -> String {
    format!("{IPAM_BLOCKS}{}", cidr_segment(cidr))
}

/// Key of a node's affinity to a block.
pub fn ipam_affinity_key(node: &str, cidr: &IpNetwork) -> String {
    format!("{IPAM_AFFINITY}{node}/{}", cidr_segment(cidr))
}

/// Prefix of all affinities of one node.
pub fn ipam_affinity_prefix(node: &str) -> String {
    format!("{IPAM_AFFINITY}{node}/")
}

/// Key of an allocation handle (`k8s-pod-network.<containerID>`, `vxlan-tunnel-addr-<node>`).
pub fn ipam_handle_key(handle: &str) -> String {
    format!("{IPAM_HANDLES}{handle}")
}

/// Key of a node's liveness record.
pub fn status_key(node: &str) -> String {
    format!("{STATUS}{node}")
}

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
pub fn prefix_range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An all-0xff (or empty) prefix covers the whole keyspace: etcd spells that "\0".
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_keys_round_trip() {
        let cluster = resource_key("ippools", None, "default-ipv4");
        assert_eq!(cluster, "/vrouter/resources/ippools/default-ipv4");
        let ns = resource_key("networkpolicies", Some("prod"), "allow-web");
        assert_eq!(ns, "/vrouter/resources/networkpolicies/prod/allow-web");
        let parsed = parse_resource_key(&ns).expect("parses");
        assert_eq!(parsed.plural, "networkpolicies");
        assert_eq!(parsed.namespace.as_deref(), Some("prod"));
        assert_eq!(parsed.name, "allow-web");
        assert_eq!(parsed.to_key(), ns);
        assert_eq!(
            parse_resource_key(&cluster).expect("parses").namespace,
            None
        );
    }

    #[test]
    fn malformed_resource_keys_are_rejected() {
        for key in [
            "/vrouter/resources/",
            "/vrouter/resources/ippools",
            "/vrouter/resources/ippools/",
            "/vrouter/resources/a/b/c/d",
            "/vrouter/resources/a//b",
            "/other/resources/ippools/x",
        ] {
            assert_eq!(parse_resource_key(key), None, "{key}");
        }
    }

    #[test]
    fn cidr_segments_round_trip_for_both_families() {
        let v4: IpNetwork = "10.65.0.0/26".parse().expect("cidr");
        let v6: IpNetwork = "fd00:10::/122".parse().expect("cidr");
        assert_eq!(ipam_block_key(&v4), "/vrouter/ipam/blocks/10.65.0.0-26");
        assert_eq!(ipam_block_key(&v6), "/vrouter/ipam/blocks/fd00:10::-122");
        assert_eq!(parse_cidr_segment(&cidr_segment(&v4)), Some(v4));
        assert_eq!(parse_cidr_segment(&cidr_segment(&v6)), Some(v6));
        assert_eq!(parse_cidr_segment("10.65.0.1-26"), None, "host bits set");
        assert_eq!(parse_cidr_segment("10.65.0.0-33"), None);
        assert_eq!(parse_cidr_segment("nonsense"), None);
        assert_eq!(
            ipam_affinity_key("node-1", &v4),
            "/vrouter/ipam/affinity/node-1/10.65.0.0-26"
        );
        assert_eq!(
            ipam_handle_key("k8s-pod-network.abc"),
            "/vrouter/ipam/handles/k8s-pod-network.abc"
        );
        assert_eq!(status_key("node-1"), "/vrouter/status/node-1");
    }

    #[test]
    fn prefix_range_end_increments_the_last_byte() {
        assert_eq!(prefix_range_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_range_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_range_end(""), vec![0]);
    }
}
