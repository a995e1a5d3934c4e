//! End-to-end resilience on the lab (`cli::lab`), 3 nodes × 2 pods each:
//!
//! 1. `vrouterd` SIGKILLed on one node and restarted while a pod on another node pings a pod
//!    behind it every 10 ms: 0 packets lost (the kernel state outlives the daemon; the peers
//!    keep its routes under graceful restart), and no route of ours is deleted anywhere.
//! 2. etcd stopped for 60 s and started again: pods keep talking throughout (0 lost), the
//!    kernel state (routes proto 80/81, `inet vrouter`) is the same before and after and no
//!    route was deleted meanwhile; a policy applied after etcd returns takes effect.
//! 3. A node's underlay link cut (its bridge port down): with a 3 s hold time (mesh replaced by
//!    a `peerSelector: all()` BGPPeer with `keepaliveTime: 1s`) the other nodes withdraw its
//!    blocks; they come back, and every pod is reachable again, when the link returns.
//!
//! Bounds are generous polls, never timing assertions. Needs the binaries (`cargo build
//! --bins`).
#![allow(clippy::unwrap_used)]

mod e2e_support;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cli::lab::process;
use e2e_support::{CONVERGE, all_reachable, block_of, parse_route, routes, spec, up, vrctl};
use test_support::assert_eventually;

/// A background process killed (and reaped) on drop.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ping -i 0.01` from pod `from` to `to`, running until [`stop_ping`].
fn start_ping(from: &str, to: std::net::Ipv4Addr) -> Bg {
    Bg(Command::new("ip")
        .args([
            "netns", "exec", from, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
        ])
        .arg(to.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap())
}

/// Stops a ping with SIGINT (it prints its statistics) and returns (transmitted, received).
fn stop_ping(mut ping: Bg) -> (u64, u64) {
    process::signal(ping.0.id(), "INT");
    let status = ping.0.wait().unwrap();
    let mut out = String::new();
    ping.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping statistics ({status}): {out}"));
    let numbers: Vec<u64> = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// `ip monitor route` inside node `ns`, for the whole test.
fn monitor_routes(ns: &str) -> Bg {
    Bg(Command::new("ip")
        .args(["-n", ns, "monitor", "route"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// Stops a monitor and returns the `Deleted` events of routes of ours (proto 80/81).
fn deleted_routes(mut monitor: Bg) -> Vec<String> {
    process::signal(monitor.0.id(), "TERM");
    let _ = monitor.0.wait();
    let mut out = String::new();
    monitor
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out.lines()
        .filter(|l| l.starts_with("Deleted") && (l.contains("proto 80") || l.contains("proto 81")))
        .map(str::to_string)
        .collect()
}

/// The kernel state vrouter owns on node `ns`: routes of protocol 80 and 81 and the
/// `inet vrouter` table (stateless listing: no counters).
fn kernel_state(ns: &str) -> String {
    let mut text = routes(ns, "80").join("\n");
    text.push('\n');
    text.push_str(&routes(ns, "81").join("\n"));
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-s", "list", "table", "inet", "vrouter",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text
}

#[test]
fn vrouterd_sigkill_and_restart_loses_no_packets() {
    let mut lab = up(&spec("k", 3, 2));
    let state = lab.state().clone();
    let (n0, n1) = (state.nodes[0].name.clone(), state.nodes[1].name.clone());
    let src = state.pods.iter().find(|p| p.node == n0).unwrap().clone();
    let dst = state.pods.iter().find(|p| p.node == n1).unwrap().clone();
    let monitors: Vec<Bg> = state
        .nodes
        .iter()
        .map(|n| monitor_routes(&n.name))
        .collect();
    let ping = start_ping(&src.name, dst.ip.unwrap());
    std::thread::sleep(Duration::from_secs(1));

    lab.stop_daemon(1, "KILL").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    lab.start_daemon(1, &[]).unwrap();
    // Let the restarted speaker re-establish its sessions and finish graceful restart (its
    // End-of-RIB sweeps stale routes): every node has every other node's block again.
    let block = block_of(dst.ip.unwrap());
    assert_eventually!(
        timeout = CONVERGE,
        routes(&n0, "81").iter().any(|l| parse_route(l).0 == block)
    );
    assert_eventually!(timeout = CONVERGE, all_reachable(&lab));
    std::thread::sleep(Duration::from_secs(2));

    let (sent, received) = stop_ping(ping);
    assert!(sent > 100, "ping sent only {sent}");
    assert_eq!(sent, received, "lost {} of {sent} packets", sent - received);
    for (node, monitor) in state.nodes.iter().zip(monitors) {
        let deleted = deleted_routes(monitor);
        assert!(
            deleted.is_empty(),
            "{}: routes deleted: {deleted:?}",
            node.name
        );
    }
}

#[test]
fn etcd_outage_keeps_traffic_and_kernel_state_and_policy_works_after() {
    let mut lab = up(&spec("e", 3, 2));
    let state = lab.state().clone();
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let pods = state.pods.clone();
    let before: Vec<String> = nodes.iter().map(|n| kernel_state(n)).collect();
    let monitors: Vec<Bg> = nodes.iter().map(|n| monitor_routes(n)).collect();
    // n0-p0 → n1-p0 and n2-p1 → n0-p1, throughout.
    let pings = vec![
        start_ping(&pods[0].name, pods[2].ip.unwrap()),
        start_ping(&pods[5].name, pods[1].ip.unwrap()),
    ];

    lab.stop_etcd().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    // Still talking while etcd is down.
    all_reachable(&lab).unwrap();
    lab.start_etcd().unwrap();
    // Give the syncers time to reconnect and resync against the unchanged datastore.
    std::thread::sleep(Duration::from_secs(10));

    for ping in pings {
        let (sent, received) = stop_ping(ping);
        assert!(sent > 1000, "ping sent only {sent}");
        assert_eq!(sent, received, "lost {} of {sent} packets", sent - received);
    }
    for ((node, monitor), before) in nodes.iter().zip(monitors).zip(&before) {
        let deleted = deleted_routes(monitor);
        assert!(deleted.is_empty(), "{node}: routes deleted: {deleted:?}");
        assert_eq!(&kernel_state(node), before, "{node}: kernel state changed");
    }

    // A policy applied now takes effect: nothing may reach the pods of n1 any more.
    let policy = format!(
        "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: isolate-n1
spec:
  selector: node == '{}'
  types: [Ingress]
",
        nodes[1]
    );
    let file = lab.dir().join("isolate.yaml");
    std::fs::write(&file, policy).unwrap();
    let (code, out) = vrctl(&lab, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "vrctl apply: {out}");
    let isolated = || -> Result<(), String> {
        let m = lab.measure().map_err(|e| format!("{e:#}"))?;
        for from in &pods {
            for to in &pods {
                let Some(cell) = m.get(&from.name, &to.name) else {
                    continue;
                };
                let want = to.node != nodes[1];
                if cell.tcp != want || cell.icmp != want {
                    return Err(format!("{} -> {}: {cell:?}", from.name, to.name));
                }
            }
        }
        Ok(())
    };
    assert_eventually!(timeout = CONVERGE, isolated());
}

#[test]
fn underlay_link_cut_withdraws_routes_and_restore_brings_them_back() {
    let mut spec = spec("u", 3, 2);
    spec.bootstrap_yaml = Some(
        "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: all-nodes-fast
spec:
  peerSelector: all()
  keepaliveTime: 1s
  maxRestartTime: 3s
"
        .to_string(),
    );
    let lab = up(&spec);
    let state = lab.state().clone();
    let cut = &state.nodes[2];
    let mut blocks: Vec<String> = state
        .pods
        .iter()
        .filter(|p| p.node == cut.name)
        .map(|p| block_of(p.ip.unwrap()))
        .collect();
    blocks.sort();
    blocks.dedup();
    let others: Vec<String> = state.nodes[..2].iter().map(|n| n.name.clone()).collect();
    let has_blocks = |want: bool| -> Result<(), String> {
        for node in &others {
            let present: Vec<String> = routes(node, "81")
                .iter()
                .map(|l| parse_route(l).0)
                .filter(|dst| blocks.contains(dst))
                .collect();
            if (present.len() == blocks.len()) != want || (!want && !present.is_empty()) {
                return Err(format!("{node} has {present:?} of {blocks:?}"));
            }
        }
        Ok(())
    };
    has_blocks(true).unwrap();

    lab.set_underlay_link(2, false).unwrap();
    // Hold time 3 s, restart time 3 s: polled with a generous bound.
    assert_eventually!(timeout = CONVERGE, has_blocks(false));

    lab.set_underlay_link(2, true).unwrap();
    assert_eventually!(timeout = CONVERGE, has_blocks(true));
    assert_eventually!(timeout = CONVERGE, all_reachable(&lab));
}
