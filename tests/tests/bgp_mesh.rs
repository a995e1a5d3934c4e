//! Three vrouter speakers in a full mesh configured from a real etcd.
//!
//! ```text
//!           etcd (host loopback) ◀── three ClusterAgents (host side, syncers)
//!                                        │ each drives a speaker inside its node namespace
//!   n0 10.S.T.1 ── br0 ── n1 10.S.T.2 ── br0 ── n2 10.S.T.3
//!   block 10.244.0.0/26   block 10.244.1.0/26   block 10.244.2.0/26
//! ```
//!
//! Assertions:
//! 1. From Node resources alone (mesh on by default, AS 64512) every pair peers, lower
//!    address active; each kernel gets the other two nodes' blocks, proto 81, via the owner.
//! 2. A block claimed later (live) reaches the other kernels; deleting it withdraws it.
//! 3. Turning the mesh off in BGPConfiguration tears the sessions down and the routes go.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::time::Duration;

use bgp::speaker::Shutdown;
use bgp_support::{
    apply, claim_block, cluster_agents, etcd_store, kernel_route, no_kernel_route, node_yaml,
    release_block, runtime,
};
use test_support::etcd::Etcd;
use test_support::{Lab, assert_eventually};

#[test]
fn three_node_mesh_from_etcd_converges() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let store = etcd_store(&etcd);
    let lab = Lab::star(3).unwrap();
    let yaml: String = lab
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| node_yaml(&format!("node{i}"), node.ip()))
        .collect();
    apply(&store, &yaml);
    for i in 0..3 {
        claim_block(&store, &format!("10.244.{i}.0/26"), &format!("node{i}"));
    }

    let agents = cluster_agents(&store, lab.nodes());

    for (i, node) in lab.nodes().iter().enumerate() {
        for (j, owner) in lab.nodes().iter().enumerate() {
            let prefix = format!("10.244.{j}.0/26");
            if i == j {
                assert!(
                    no_kernel_route(node, &prefix).is_ok(),
                    "own block is not learned"
                );
                continue;
            }
            let line = assert_eventually!(kernel_route(node, &prefix));
            assert!(line.contains(&format!("via {}", owner.ip())), "{line}");
        }
    }
    let handle = agents[0].handle().unwrap();
    let peers = runtime().block_on(handle.peers()).unwrap();
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p.remote_asn == 64512));

    // A block claimed live, then released.
    claim_block(&store, "10.244.10.0/26", "node0");
    for node in &lab.nodes()[1..] {
        assert_eventually!(kernel_route(node, "10.244.10.0/26"));
    }
    release_block(&store, "10.244.10.0/26");
    for node in &lab.nodes()[1..] {
        assert_eventually!(no_kernel_route(node, "10.244.10.0/26"));
    }

    // Mesh off: sessions go, and with them the learned routes.
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
         spec: {nodeToNodeMeshEnabled: false}\n",
    );
    for node in lab.nodes() {
        for j in 0..3 {
            assert_eventually!(
                timeout = Duration::from_secs(30),
                no_kernel_route(node, &format!("10.244.{j}.0/26"))
            );
        }
    }
    for agent in agents {
        runtime().block_on(agent.stop(Shutdown::Stop));
    }
}
