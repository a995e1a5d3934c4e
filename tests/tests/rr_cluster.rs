//! Six vrouter nodes with the mesh off and two `vrouter-reflector`s sharing one cluster id,
//! all configured from a real etcd.
//!
//! ```text
//!   etcd ◀── 6 ClusterAgents (node0..node5, each a speaker in its namespace, kernel FIB)
//!        ◀── 2 Reflectors (rr0, rr1: cluster id 10.255.0.1, clients = every Node)
//!   all 8 namespaces on one bridge; node i owns block 10.244.i.0/26
//! ```
//!
//! Assertions:
//! 1. With `nodeToNodeMeshEnabled: false` and one global BGPPeer per reflector, every node
//!    peers only with the two reflectors, and every node's kernel gets every other node's
//!    block, proto 81, via the owning node (the reflectors keep next hops).
//! 2. Each node receives every other node's block from both reflectors (two paths each).
//! 3. Killing one reflector (sessions dropped, no NOTIFICATION) deletes no route from any
//!    node's kernel: `ip monitor route` in every node records no deletion until every node has
//!    seen the session go.
//! 4. Restarting it re-syncs: every node is Established with it again and receives the five
//!    other blocks from it.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::fsm::State;
use bgp::speaker::Shutdown;
use bgp::speaker::cluster::ClusterAgent;
use bgp_support::{
    apply, claim_block, cluster_agents, etcd_store, kernel_route, no_kernel_route, node_yaml,
    release_block, runtime, start_reflector,
};
use reflector::Reflector;
use test_support::etcd::Etcd;
use test_support::{Lab, assert_eventually};

const NODES: usize = 6;
const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

/// Probe: `node`'s session with `peer` is Established and holds `routes` routes from it.
fn synced(agent: &ClusterAgent, peer: IpAddr, routes: usize) -> Result<(), String> {
    let handle = agent.handle().ok_or("speaker not started")?;
    let status = runtime()
        .block_on(handle.peer(peer))
        .map_err(|e| e.to_string())?
        .ok_or(format!("no peer {peer}"))?;
    if status.state != State::Established || status.routes_received != routes {
        return Err(format!(
            "{peer}: {} with {} routes (want {routes})",
            status.state, status.routes_received
        ));
    }
    Ok(())
}

fn not_established(agent: &ClusterAgent, peer: IpAddr) -> Result<(), String> {
    let handle = agent.handle().ok_or("speaker not started")?;
    match runtime()
        .block_on(handle.peer(peer))
        .map_err(|e| e.to_string())?
    {
        Some(s) if s.state == State::Established => Err(format!("{peer} still established")),
        _ => Ok(()),
    }
}

#[test]
fn six_nodes_two_reflectors_survive_losing_one() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let store = etcd_store(&etcd);
    let lab = Lab::star(NODES + 2).unwrap();
    let (nodes, rrs) = lab.nodes().split_at(NODES);

    let mut yaml = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
         spec: {nodeToNodeMeshEnabled: false}\n---\n",
    );
    for (i, rr) in rrs.iter().enumerate() {
        yaml.push_str(&format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: rr{i}}}\n\
             spec: {{peerIP: {}, asNumber: 64512}}\n---\n",
            rr.ip()
        ));
    }
    for (i, node) in nodes.iter().enumerate() {
        yaml.push_str(&node_yaml(&format!("node{i}"), node.ip()));
    }
    apply(&store, &yaml);
    for i in 0..NODES {
        claim_block(&store, &format!("10.244.{i}.0/26"), &format!("node{i}"));
    }

    let mut reflectors: Vec<Option<Reflector>> = rrs
        .iter()
        .map(|rr| Some(start_reflector(&store, &etcd, rr, CLUSTER_ID)))
        .collect();
    let agents = cluster_agents(&store, nodes);

    // 1. Every block everywhere, via its owner.
    for (i, node) in nodes.iter().enumerate() {
        for (j, owner) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let line = assert_eventually!(
                timeout = Duration::from_secs(30),
                kernel_route(node, &format!("10.244.{j}.0/26"))
            );
            assert!(line.contains(&format!("via {}", owner.ip())), "{line}");
        }
    }
    // 2. Only the reflectors as peers, each giving the five other blocks.
    let rr_ips: Vec<IpAddr> = rrs.iter().map(|r| IpAddr::V4(r.ip())).collect();
    for agent in &agents {
        for rr in &rr_ips {
            assert_eventually!(synced(agent, *rr, NODES - 1));
        }
        let peers = runtime().block_on(agent.handle().unwrap().peers()).unwrap();
        let addrs: Vec<IpAddr> = peers.iter().map(|p| p.address).collect();
        assert_eq!(addrs, rr_ips, "mesh off: reflectors only");
    }
    let rr_handle = reflectors[0].as_ref().unwrap().handle().clone();
    let rr_peers = runtime().block_on(rr_handle.peers()).unwrap();
    assert_eq!(
        rr_peers.len(),
        NODES,
        "the other reflector is not a Node: not a peer"
    );

    // 3. Kill rr0; watch every kernel for deletions meanwhile.
    let monitors: Vec<_> = nodes
        .iter()
        .map(|n| n.spawn(&["ip", "-4", "monitor", "route"]).unwrap())
        .collect();
    // Let the monitors subscribe before the kill.
    std::thread::sleep(Duration::from_millis(300));
    let rr0 = reflectors[0].take().unwrap();
    runtime().block_on(rr0.stop(Shutdown::Restart));
    for agent in &agents {
        assert_eventually!(not_established(agent, rr_ips[0]));
    }
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..NODES {
            if i != j {
                assert!(kernel_route(node, &format!("10.244.{j}.0/26")).is_ok());
            }
        }
    }
    for (node, monitor) in nodes.iter().zip(&monitors) {
        let log = std::fs::read_to_string(monitor.log_path().unwrap()).unwrap_or_default();
        assert!(
            !log.lines().any(|l| l.starts_with("Deleted")),
            "{}: a route was deleted while one reflector remained:\n{log}",
            node.name()
        );
    }

    // 4. Restart it: every node re-syncs with it.
    reflectors[0] = Some(start_reflector(&store, &etcd, &rrs[0], CLUSTER_ID));
    for agent in &agents {
        assert_eventually!(
            timeout = Duration::from_secs(30),
            synced(agent, rr_ips[0], NODES - 1)
        );
    }
    let rr0 = reflectors[0].as_ref().unwrap();
    let rib = runtime().block_on(rr0.handle().rib_summary()).unwrap();
    assert_eq!(rib.prefixes, NODES);

    // 5. A released block is withdrawn through the reflectors from every kernel, and the
    //    monitors see that deletion (so their silence in step 3 meant something).
    let last = format!("10.244.{}.0/26", NODES - 1);
    release_block(&store, &last);
    for (node, monitor) in nodes[..NODES - 1].iter().zip(&monitors) {
        assert_eventually!(no_kernel_route(node, &last));
        assert_eventually!({
            let log = std::fs::read_to_string(monitor.log_path().unwrap()).unwrap_or_default();
            if log
                .lines()
                .any(|l| l.starts_with("Deleted") && l.contains(&last))
            {
                Ok(())
            } else {
                Err(format!("{}: monitor saw no deletion:\n{log}", node.name()))
            }
        });
    }
    drop(monitors);

    for agent in agents {
        runtime().block_on(agent.stop(Shutdown::Stop));
    }
    for rr in reflectors.into_iter().flatten() {
        runtime().block_on(rr.stop(Shutdown::Stop));
    }
}
