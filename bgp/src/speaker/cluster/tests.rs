//! Unit tests of the pure cluster reduction: mesh direction, BGPPeer scoping and selectors,
//! AS and port from BGPConfiguration, originated blocks and borrowed addresses.

use std::collections::BTreeMap;

use datastore::keys::{ipam_block_key, resource_key};
use datastore::resource::document::parse_documents;

use ipnetwork::IpNetwork;

use super::*;

const YAML: &str = r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a, labels: {rack: r1, role: worker}}
spec: {bgp: {ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: b, labels: {rack: r2, role: rr}}
spec: {bgp: {ipv4Address: 10.0.0.2/24, asNumber: 64600}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: c, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 10.0.0.3/24, ipv6Address: "fd00::3/64"}}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 65000, listenPort: 1179, nodeMeshMaxRestartTime: 2m}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-r1}
spec: {nodeSelector: "rack == 'r1'", peerIP: "10.0.0.254:1790", asNumber: 65100, keepaliveTime: 10s, nextHopMode: Self}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: only-c}
spec: {node: c, peerIP: 10.0.0.253, asNumber: 65200}
"#;

/// Feeds every resource in `yaml` to `state`, as the resource syncer would.
fn apply(state: &mut ClusterState, yaml: &str) {
    for resource in parse_documents(yaml).unwrap() {
        let key = resource_key(resource.kind().plural(), None, resource.name());
        state.resource(&key, Some(resource));
    }
}

/// The state after the resource syncer reported every resource in `yaml`.
fn state_of(yaml: &str) -> ClusterState {
    let mut state = ClusterState::default();
    apply(&mut state, yaml);
    state
}

fn state() -> ClusterState {
    state_of(YAML)
}

#[test]
fn mesh_lower_address_connects_higher_is_passive() {
    let d = state().desired("b").unwrap();
    assert_eq!(d.asn, 64600, "node AS overrides the global one");
    assert_eq!(d.listen_port, 1179);
    let a = &d.peers[&"10.0.0.1".parse::<IpAddr>().unwrap()];
    let c = &d.peers[&"10.0.0.3".parse::<IpAddr>().unwrap()];
    assert!(a.passive, "b (10.0.0.2) is higher than a: a connects");
    assert!(!c.passive);
    assert_eq!(a.remote_asn, 65000);
    assert_eq!(a.max_restart_time, Some(Duration::from_secs(120)));
    // b has no IPv6 address: no IPv6 mesh sessions; and the ToR peer is for rack r1 only.
    assert_eq!(d.peers.len(), 2);
}

#[test]
fn ipv6_mesh_and_bgppeer_scoping() {
    let d = state().desired("c").unwrap();
    let v6 = &d.peers[&"fd00::1".parse::<IpAddr>().unwrap()];
    assert!(v6.passive && v6.remote_asn == 65000);
    let tor = &d.peers[&"10.0.0.254".parse::<IpAddr>().unwrap()];
    assert_eq!((tor.port, tor.remote_asn), (1790, 65100));
    assert_eq!(tor.keepalive_time, Some(Duration::from_secs(10)));
    assert!(tor.next_hop_self);
    assert!(
        d.peers
            .contains_key(&"10.0.0.253".parse::<IpAddr>().unwrap())
    );
    let a = state().desired("a").unwrap();
    assert!(
        !a.peers
            .contains_key(&"10.0.0.253".parse::<IpAddr>().unwrap())
    );
    assert!(
        a.peers
            .contains_key(&"10.0.0.254".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn mesh_off_and_peer_selector() {
    let mut s = state();
    let extra = r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: to-rr}
spec: {peerSelector: "role == 'rr'"}
"#;
    apply(&mut s, extra);
    let d = s.desired("a").unwrap();
    assert_eq!(d.asn, DEFAULT_ASN);
    let peers: Vec<_> = d.peers.keys().map(ToString::to_string).collect();
    assert!(peers.contains(&"10.0.0.2".to_string()), "{peers:?}");
    assert!(
        !peers.contains(&"10.0.0.3".to_string()),
        "mesh is off: {peers:?}"
    );
    assert_eq!(
        d.peers[&"10.0.0.2".parse::<IpAddr>().unwrap()].remote_asn,
        64600
    );
    // The rr node does not peer with itself.
    let rr = s.desired("b").unwrap();
    assert!(
        !rr.peers
            .contains_key(&"10.0.0.2".parse::<IpAddr>().unwrap())
    );
    // Deleting the BGPPeer takes the session away.
    s.resource(&resource_key("bgppeers", None, "to-rr"), None);
    assert!(
        !s.desired("a")
            .unwrap()
            .peers
            .contains_key(&"10.0.0.2".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn originates_affine_blocks_and_borrowed_addresses() {
    let mut s = state();
    let mine: IpNetwork = "10.244.1.0/26".parse().unwrap();
    let theirs: IpNetwork = "10.244.2.0/26".parse().unwrap();
    s.block(
        &ipam_block_key(&mine),
        Some(AllocationBlock::new(mine, Some("a")).unwrap()),
    );
    let mut other = AllocationBlock::new(theirs, Some("b")).unwrap();
    let attrs = BTreeMap::from([(ATTR_NODE.to_string(), "a".to_string())]);
    let borrowed = other.allocate(1, Some("h1"), &attrs);
    let b_attrs = BTreeMap::from([(ATTR_NODE.to_string(), "b".to_string())]);
    other.allocate(1, Some("h2"), &b_attrs);
    s.block(&ipam_block_key(&theirs), Some(other));
    let d = s.desired("a").unwrap();
    let expected: BTreeSet<Prefix> = [
        "10.244.1.0/26".parse().unwrap(),
        Prefix::new(borrowed[0], 32).unwrap(),
    ]
    .into();
    assert_eq!(d.originate, expected);
    let b = s.desired("b").unwrap();
    assert_eq!(
        b.originate.len(),
        1,
        "b's own block only, not the address a borrowed"
    );
    s.block(&ipam_block_key(&mine), None);
    assert_eq!(s.desired("a").unwrap().originate.len(), 1);
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("120s"), Some(Duration::from_secs(120)));
    assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_go_duration("10"), None);
    assert_eq!(parse_go_duration(""), None);
    assert_eq!(parse_go_duration("5x"), None);
}

#[test]
fn unknown_node_has_no_speaker() {
    assert!(state().desired("nobody").is_none());
}

const RR_YAML: &str = r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr1, labels: {route-reflector: "true"}}
spec: {bgp: {ipv4Address: 10.0.1.1/24, routeReflectorClusterID: 224.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr2, labels: {route-reflector: "true"}}
spec: {bgp: {ipv4Address: 10.0.1.2/24, routeReflectorClusterID: 224.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.0.1.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n2}
spec: {bgp: {ipv4Address: 10.0.1.12/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-with-route-reflectors}
spec: {nodeSelector: all(), peerSelector: "route-reflector == 'true'"}
"#;

fn rr_state() -> ClusterState {
    state_of(RR_YAML)
}

#[test]
fn node_with_cluster_id_reflects_for_peers_outside_its_cluster() {
    let d = rr_state().desired("rr1").unwrap();
    assert_eq!(d.cluster_id, Some(Ipv4Addr::new(224, 0, 0, 1)));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // The peerSelector picks rr1, so rr1 peers with every node the nodeSelector picks.
    let clients: Vec<IpAddr> = d
        .peers
        .values()
        .filter(|p| p.route_reflector_client)
        .map(|p| p.address)
        .collect();
    assert_eq!(clients, vec![ip("10.0.1.11"), ip("10.0.1.12")]);
    // The other reflector of the same cluster is a non-client.
    assert!(!d.peers[&ip("10.0.1.2")].route_reflector_client);
    assert_eq!(d.peers.len(), 3);
}

#[test]
fn ordinary_nodes_without_mesh_peer_only_with_reflectors() {
    let d = rr_state().desired("n1").unwrap();
    assert_eq!(d.cluster_id, None);
    let peers: Vec<IpAddr> = d.peers.keys().copied().collect();
    assert_eq!(
        peers,
        vec![
            "10.0.1.1".parse::<IpAddr>().unwrap(),
            "10.0.1.2".parse().unwrap()
        ]
    );
    assert!(d.peers.values().all(|p| !p.route_reflector_client));
}

/// A secret source over a map (`name/key` → password); absent entries are missing files.
#[derive(Debug)]
struct MapSecrets(BTreeMap<String, String>);

impl SecretSource for MapSecrets {
    fn password(&self, reference: &SecretRef) -> Result<Option<String>, SecretError> {
        match self.0.get(&reference.to_string()) {
            Some(p) => Ok(Some(p.clone())),
            None if reference.optional => Ok(None),
            None => Err(SecretError::Missing {
                path: std::path::PathBuf::from(format!("/secrets/{reference}")),
            }),
        }
    }
}

fn with_passwords() -> ClusterState {
    let mut s = state();
    let extra = r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 65000, nodeMeshPassword: {secretKeyRef: {name: bgp, key: mesh}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: only-c}
spec: {node: c, peerIP: 10.0.0.253, asNumber: 65200, password: {secretKeyRef: {name: bgp, key: tor}}}
"#;
    apply(&mut s, extra);
    s
}

#[test]
fn secret_refs_follow_the_resource_that_made_each_peer() {
    let d = with_passwords().desired("c").unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(d.secrets[&ip("10.0.0.1")].to_string(), "bgp/mesh");
    assert_eq!(d.secrets[&ip("10.0.0.253")].to_string(), "bgp/tor");
    // tor-r1 (no password) replaced nothing of the mesh but added 10.0.0.254 without one.
    assert!(!d.secrets.contains_key(&ip("10.0.0.254")));
    assert!(
        d.peers.values().all(|p| p.password.is_none()),
        "pure: unresolved"
    );
}

#[test]
fn unreadable_passwords_keep_the_peer_down_until_they_appear() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let desired = with_passwords().desired("c").unwrap();
    let mut failures = BTreeMap::new();
    let only_mesh = MapSecrets(BTreeMap::from([("bgp/mesh".into(), "m3sh".into())]));
    let d = resolve_passwords(desired.clone(), Some(&only_mesh), &mut failures);
    assert_eq!(d.peers[&ip("10.0.0.1")].password.as_deref(), Some("m3sh"));
    assert!(!d.peers.contains_key(&ip("10.0.0.253")), "fail closed");
    assert!(
        d.peers.contains_key(&ip("10.0.0.254")),
        "no password needed"
    );
    assert_eq!(
        failures[&ip("10.0.0.253")].to_string(),
        "/secrets/bgp/tor: not found"
    );
    let both = MapSecrets(BTreeMap::from([
        ("bgp/mesh".into(), "m3sh".into()),
        ("bgp/tor".into(), "t0r".into()),
    ]));
    let d = resolve_passwords(desired.clone(), Some(&both), &mut failures);
    assert_eq!(d.peers[&ip("10.0.0.253")].password.as_deref(), Some("t0r"));
    assert!(failures.is_empty());
    let d = resolve_passwords(desired, None, &mut failures);
    assert!(
        !d.peers.contains_key(&ip("10.0.0.1")),
        "no source: not started"
    );
    // Mesh to a and b (IPv4), to a over IPv6, and the ToR with its own secret.
    assert_eq!(failures.len(), 4, "{failures:?}");
}

#[test]
fn vxlan_pools_are_kept_out_of_the_fib_and_follow_mode_changes() {
    let mut s = state();
    assert!(s.desired("a").unwrap().fib_exclude.is_empty());
    let pool = |cidr: &str, mode: &str| {
        parse_documents(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p-{}}}\nspec: {{cidr: \"{cidr}\", vxlanMode: {mode}}}\n",
            cidr.replace(['/', '.', ':'], "-")
        ))
        .unwrap()
        .remove(0)
    };
    for (cidr, mode) in [
        ("10.244.0.0/16", "CrossSubnet"),
        ("10.245.0.0/16", "Never"),
        ("10.246.0.0/16", "Always"),
        ("fd10::/48", "Always"),
    ] {
        let r = pool(cidr, mode);
        let key = resource_key("ippools", None, r.name());
        s.resource(&key, Some(r));
    }
    let excluded: Vec<String> = s
        .desired("a")
        .unwrap()
        .fib_exclude
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(excluded, ["10.244.0.0/16", "10.246.0.0/16"]);
    // Back to Never, then the pool deleted: nothing excluded. A Node of the same name as a
    // deleted pool stays.
    let r = pool("10.244.0.0/16", "Never");
    s.resource(&resource_key("ippools", None, r.name()), Some(r));
    s.resource(&resource_key("ippools", None, "p-10-246-0-0-16"), None);
    s.resource(&resource_key("ippools", None, "a"), None);
    let d = s.desired("a").unwrap();
    assert!(d.fib_exclude.is_empty(), "{:?}", d.fib_exclude);
}
