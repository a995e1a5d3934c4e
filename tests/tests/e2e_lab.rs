//! The lab machinery itself (`cli::lab`), without node daemons: etcd, underlay, node
//! namespaces, pods made through `vrouter-cni` as a runtime would, the measured matrix, CNI
//! DEL, and `lab down` after a crash.
//!
//! Without `vrouterd` nobody speaks BGP, so only pods on the same node reach each other: the
//! CNI plugin's host routes and proxy ARP are all there is. The matrix must show exactly that.
#![allow(clippy::unwrap_used)]

mod e2e_support;

use std::collections::BTreeSet;

use cli::lab::{self, Lab, process};
use e2e_support::{namespaces_with_prefix, routes, spec};

/// Tears the lab in `dir` down if the test panics after `persist()`.
struct DownGuard(std::path::PathBuf);

impl Drop for DownGuard {
    fn drop(&mut self) {
        let _ = lab::teardown(&self.0);
    }
}

#[test]
fn lab_without_daemons_wires_pods_through_cni_and_cleans_up_after_a_crash() {
    let mut spec = spec("l", 2, 2);
    spec.daemons = false;
    let lab = Lab::up(&spec).unwrap();
    let state = lab.state().clone();
    let name = state.lab.clone();

    // Four pods with distinct addresses from the pool, each with a /32 on its node (proto 80).
    assert_eq!(state.pods.len(), 4);
    let ips: BTreeSet<_> = state.pods.iter().map(|p| p.ip.unwrap()).collect();
    assert_eq!(ips.len(), 4);
    let pool: ipnetwork::Ipv4Network = lab::DEFAULT_POOL.parse().unwrap();
    for pod in &state.pods {
        let ip = pod.ip.unwrap();
        assert!(pool.contains(ip), "{ip} outside {pool}");
        let node_routes = routes(&pod.node, "80");
        assert!(
            node_routes
                .iter()
                .any(|r| r.starts_with(&format!("{ip} dev vr"))),
            "{}: no route to {ip}: {node_routes:?}",
            pod.node
        );
    }

    // Same-node pairs reachable over TCP and ICMP, cross-node pairs not (no BGP yet).
    let matrix = lab.measure().unwrap();
    for from in &state.pods {
        for to in &state.pods {
            let Some(cell) = matrix.get(&from.name, &to.name) else {
                assert_eq!(from.name, to.name);
                continue;
            };
            let same = from.node == to.node;
            assert_eq!(cell.tcp, same, "tcp {} -> {}", from.name, to.name);
            assert_eq!(cell.icmp, same, "icmp {} -> {}", from.name, to.name);
        }
    }
    assert_eq!(matrix.summary(), (4, 12));
    let text = lab::report::matrix(&matrix);
    assert!(text.contains("reachability: 4/12 pairs"), "{text}");

    // CNI DEL: the pod's route and namespace are gone.
    let mut lab = lab;
    let victim = state.pods[0].clone();
    lab.delete_pod(&victim.name).unwrap();
    let ip = victim.ip.unwrap().to_string();
    assert!(
        !routes(&victim.node, "80")
            .iter()
            .any(|r| r.starts_with(&format!("{ip} "))),
        "route to {ip} left behind"
    );
    assert!(namespaces_with_prefix(&victim.name).is_empty());
    // A new pod on the same node gets an address and is reachable from its neighbour.
    let fresh = lab.add_pod(0).unwrap();
    assert!(fresh.ip.is_some());
    let matrix = lab.measure().unwrap();
    assert!(matrix.get(&state.pods[1].name, &fresh.name).unwrap().ok());

    // A crash: the process that built the lab goes away without tearing anything down.
    let dir = lab.dir().to_path_buf();
    let _guard = DownGuard(dir.clone());
    let marker = format!("{}/", dir.display());
    lab.persist();
    assert!(
        !process::pids_with_marker(&marker).is_empty(),
        "etcd and listeners run"
    );
    assert_eq!(namespaces_with_prefix(&format!("{name}-")).len(), 1 + 2 + 4);

    // `lab down` from the state file alone removes everything.
    lab::teardown(&dir).unwrap();
    assert!(namespaces_with_prefix(&format!("{name}-")).is_empty());
    assert!(process::pids_with_marker(&marker).is_empty());
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(format!("{name}-host"))
            .exists()
    );
    assert!(!dir.exists());
    // And a second `down` of a lab that is gone is fine.
    lab::teardown(&dir).unwrap();
}
