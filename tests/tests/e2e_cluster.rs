//! End-to-end on the lab (`cli::lab`): real etcd, `vrouterd` in node namespaces on a bridge,
//! pods made through `vrouter-cni`, traffic measured with real TCP connections and pings.
//!
//! 1. 3 nodes × 2 pods: every pod reaches every other over TCP and ICMP; each node's kernel
//!    holds the other nodes' blocks via BGP (proto 81, via the owner), its pods' /32s and one
//!    blackhole per local block (proto 80) — and nothing else of ours.
//! 2. A policy applied with `vrctl apply` changes the matrix exactly as `vrctl policy test`
//!    predicts for every pair (so on every node, both directions, TCP and ICMP).
//! 3. CNI DEL: the address becomes unreachable and is released; a pod created on another node
//!    is routed and reachable from every pod.
//! 4. `--reflectors 1`: mesh off, every node peers with one `vrouter-reflector`; every pod
//!    reaches every other and each node's BGP routes name the originating node as next hop.
//!
//! Needs the binaries: `cargo build --bins` first when running only `-p vrouter-tests`.
#![allow(clippy::unwrap_used)]

mod e2e_support;

use std::collections::BTreeSet;

use cli::lab::Lab;
use cli::lab::reachability::Cell;
use e2e_support::{
    CONVERGE, all_reachable, block_of, ip_allocated, parse_route, routes, spec, vrctl,
};
use test_support::assert_eventually;

fn up(tag: &str, nodes: usize, pods: usize) -> Lab {
    e2e_support::up(&spec(tag, nodes, pods))
}

#[test]
fn three_nodes_two_pods_each_full_reachability_and_routes() {
    let lab = up("a", 3, 2);
    let state = lab.state().clone();
    let m = lab.measure().unwrap();
    assert_eq!(m.summary(), (30, 30), "{:?}", m.failures());

    for node in &state.nodes {
        let local_pods: Vec<_> = state.pods.iter().filter(|p| p.node == node.name).collect();
        let local_blocks: BTreeSet<String> =
            local_pods.iter().map(|p| block_of(p.ip.unwrap())).collect();
        // proto 81: exactly the other nodes' blocks, each via its owner.
        let mut want_bgp = BTreeSet::new();
        for other in state.nodes.iter().filter(|n| n.name != node.name) {
            for p in state.pods.iter().filter(|p| p.node == other.name) {
                want_bgp.insert((block_of(p.ip.unwrap()), Some(other.ip.to_string())));
            }
        }
        let got_bgp: BTreeSet<_> = routes(&node.name, "81")
            .iter()
            .map(|l| parse_route(l))
            .collect();
        assert_eq!(got_bgp, want_bgp, "BGP routes on {}", node.name);
        // proto 80: the local pods' /32s and one blackhole per local block.
        let lines = routes(&node.name, "80");
        let blackholes: BTreeSet<String> = lines
            .iter()
            .filter(|l| l.starts_with("blackhole "))
            .map(|l| parse_route(l).0)
            .collect();
        assert_eq!(blackholes, local_blocks, "blackholes on {}", node.name);
        let host_routes: BTreeSet<String> = lines
            .iter()
            .filter(|l| !l.starts_with("blackhole "))
            .map(|l| parse_route(l).0)
            .collect();
        let want_hosts: BTreeSet<String> = local_pods
            .iter()
            .map(|p| p.ip.unwrap().to_string())
            .collect();
        assert_eq!(host_routes, want_hosts, "pod routes on {}", node.name);
    }
}

/// `vrctl policy test`'s verdict for one flow: true = allow (exit 0), false = deny (exit 3).
fn predicted(lab: &Lab, from: &str, to: &str, proto: &[&str]) -> bool {
    let mut args = vec!["policy", "test", "--from", from, "--to", to];
    args.extend_from_slice(proto);
    let (code, out) = vrctl(lab, &args);
    assert!(
        code == 0 || code == 3,
        "vrctl policy test failed ({code}): {out}"
    );
    code == 0
}

#[test]
fn policy_changes_reachability_as_policy_test_predicts() {
    let lab = up("p", 3, 2);
    let n = lab.node_names();
    // Pods on n1 accept only TCP to the listener port from pods on n0: ICMP to them, TCP from
    // n2 and from each other are denied; everything else keeps the namespace profile's allow.
    let policy = format!(
        "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: lab-only-from-n0
spec:
  selector: node == '{n1}'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: node == '{n0}'
    destination:
      ports: [{port}]
",
        n0 = n[0],
        n1 = n[1],
        port = lab.state().listen_port
    );
    let file = lab.dir().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let (code, out) = vrctl(&lab, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "vrctl apply: {out}");

    let port = lab.state().listen_port.to_string();
    let pods = lab.targets();
    let mut expected = Vec::new();
    for from in &pods {
        for to in &pods {
            if from.name == to.name {
                continue;
            }
            let (src, dst) = (from.ip.to_string(), to.ip.to_string());
            let tcp = predicted(&lab, &src, &dst, &["--protocol", "TCP", "--port", &port]);
            let icmp = predicted(
                &lab,
                &src,
                &dst,
                &["--protocol", "ICMP", "--icmp-type", "8", "--icmp-code", "0"],
            );
            expected.push((from.name.clone(), to.name.clone(), Cell { tcp, icmp }));
        }
    }
    // The prediction is not trivial: some pairs allowed, some denied, mixed ones too.
    assert!(expected.iter().any(|(_, _, c)| c.ok()));
    assert!(expected.iter().any(|(_, _, c)| !c.tcp && !c.icmp));
    assert!(expected.iter().any(|(_, _, c)| c.tcp && !c.icmp));

    let matches = || -> Result<(), String> {
        let m = lab.measure().map_err(|e| format!("{e:#}"))?;
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(f, t, c)| m.get(f, t) != Some(*c))
            .map(|(f, t, c)| format!("{f}->{t}: predicted {c:?}, measured {:?}", m.get(f, t)))
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    };
    assert_eventually!(timeout = CONVERGE, matches());

    // Deleting the policy restores the full matrix.
    let (code, out) = vrctl(&lab, &["delete", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "vrctl delete: {out}");
    assert_eventually!(timeout = CONVERGE, all_reachable(&lab));
}

#[test]
fn deleted_pod_is_unreachable_and_released_new_pod_on_another_node_is_routed() {
    let mut lab = up("d", 3, 2);
    let victim = lab.state().pods[0].clone();
    let ip = victim.ip.unwrap();
    assert!(ip_allocated(&lab, ip));
    lab.delete_pod(&victim.name).unwrap();
    assert!(
        !ip_allocated(&lab, ip),
        "{ip} still allocated after CNI DEL"
    );
    // Its /32 is gone from its node; nobody reaches its address any more.
    assert!(
        !routes(&victim.node, "80")
            .iter()
            .any(|l| parse_route(l).0 == ip.to_string()),
        "route to {ip} left on {}",
        victim.node
    );
    // A fresh pod on node 2 (it may reuse the address) is reachable from every pod.
    let fresh = lab.add_pod(2).unwrap();
    assert_ne!(fresh.node, victim.node);
    assert_eventually!(timeout = CONVERGE, all_reachable(&lab));
    let m = lab.measure().unwrap();
    assert_eq!(m.pods.len(), 6);
    assert!(m.pods.iter().all(|p| p.name != victim.name));
    if fresh.ip != Some(ip) {
        // The old address is not answered by anything in the lab.
        for node in &lab.state().nodes {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &node.name, "ping", "-c1", "-W1"])
                .arg(ip.to_string())
                .output()
                .unwrap();
            assert!(!out.status.success(), "{ip} answers from {}", node.name);
        }
    }
}

#[test]
fn route_reflector_lab_mesh_off_full_reachability() {
    let mut spec = spec("r", 3, 1);
    spec.reflectors = 1;
    let lab = e2e_support::up(&spec);
    // Routes are learned through the reflector (mesh off): each node's BGP routes name the
    // originating node as next hop, and no node peers with another node directly.
    let state = lab.state().clone();
    let (code, out) = vrctl(&lab, &["get", "bgpconfig", "default", "-o", "yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nodeToNodeMeshEnabled: false"), "{out}");
    for node in state.nodes.iter().filter(|n| !n.reflector) {
        let got: BTreeSet<_> = routes(&node.name, "81")
            .iter()
            .map(|l| parse_route(l))
            .collect();
        let want: BTreeSet<_> = state
            .pods
            .iter()
            .filter(|p| p.node != node.name)
            .map(|p| {
                let owner = state.node(&p.node).unwrap();
                (block_of(p.ip.unwrap()), Some(owner.ip.to_string()))
            })
            .collect();
        assert_eq!(got, want, "BGP routes on {}", node.name);
    }
}
