//! Two real vrouterd in a mesh: a BGP-learned route (protocol 81) survives the restarts of
//! either side without a single delete in the kernel.
//!
//! ```text
//!   ns a: eth0 10.96.0.1/24 ── veth ── ns b: eth0 10.96.0.2/24
//!   block 10.244.1.0/26 affine to node-a  →  b: 10.244.1.0/26 via 10.96.0.1 proto 81
//! ```
//!
//! 1. b learns a's block.
//! 2. SIGKILL b, start it again: it finds the route, starts as a restarting speaker (RFC 4724)
//!    and keeps the route until a's End-of-RIB; `ip monitor route` in b sees no `Deleted`.
//! 3. SIGTERM a (graceful), start it again: b holds a's route as stale meanwhile and takes it
//!    fresh afterwards; still no `Deleted` in b.
//! 4. b's `/metrics`: sessions, UPDATEs received and sent, routes received and installed.
//! 5. SIGTERM a, SIGKILL b, start b while a is away: b waits for a's End-of-RIB, and its
//!    control socket (`show status`) and `/metrics` say graceful-restart recovery is in
//!    progress; start a: the recovery ends, the route stays; still no `Deleted` in b.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use datastore::ipam::block::AllocationBlock;
use datastore::keys::ipam_block_key;
use ipnetwork::IpNetwork;
use support::{Vrouterd, WAIT, ctl, etcd_in, etcd_store, http_get};
use test_support::etcd::Etcd;
use test_support::{ChildGuard, Netns, eventually_ok, veth_pair};

const BLOCK: &str = "10.244.1.0/26";
const METRICS_PORT: u16 = 9192;

/// The value of the sample `name` (with its labels) in b's `/metrics`.
fn metric(b: &Netns, name: &str) -> Result<f64, String> {
    let text = http_get(b, METRICS_PORT, "/metrics").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .ok_or_else(|| format!("no {name} in:\n{text}"))
}

fn recovering(b: &Netns, socket: &Path, expected: bool) -> Result<(), String> {
    let text = ctl(socket, "show status")?;
    let shown = text.contains("Graceful restart recovery in progress");
    let gauge = metric(b, "vrouter_bgp_graceful_restart_recovery")? == 1.0;
    if shown == expected && gauge == expected {
        Ok(())
    } else {
        Err(format!("metric {gauge}, show status:\n{text}"))
    }
}

fn established(socket: &Path) -> Result<(), String> {
    let text = ctl(socket, "show protocols")?;
    if text.contains("Established") {
        Ok(())
    } else {
        Err(text)
    }
}

fn learned(b: &Netns) -> Result<String, String> {
    let routes = b
        .ip(&["route", "show", "proto", "81"])
        .map_err(|e| e.to_string())?;
    if routes.contains(&format!("{BLOCK} via 10.96.0.1")) {
        Ok(routes)
    } else {
        Err(routes)
    }
}

#[test]
fn bgp_routes_survive_restarts_of_either_side_without_deletes() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let (rt, store) = etcd_store(&etcd);
    let cidr: IpNetwork = BLOCK.parse().unwrap();
    rt.block_on(
        store.create(
            &ipam_block_key(&cidr),
            AllocationBlock::new(cidr, Some("node-a"))
                .unwrap()
                .to_json(),
        ),
    )
    .unwrap();

    let a = Netns::new("gra").unwrap();
    let b = Netns::new("grb").unwrap();
    veth_pair(&a, "eth0", &b, "eth0").unwrap();
    for (ns, addr) in [(&a, "10.96.0.1/24"), (&b, "10.96.0.2/24")] {
        ns.add_addr("eth0", addr).unwrap();
        ns.set_up("eth0").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let proxies = [etcd_in(&a, &etcd), etcd_in(&b, &etcd)];
    let args = |name: &str, proxy: usize| -> Vec<String> {
        [
            "--config",
            "/dev/null",
            "--node-name",
            name,
            "--etcd-endpoints",
            &proxies[proxy].url(),
            "--ipv4-autodetect",
            "interface=eth0",
            "--control-socket",
            dir.path().join(format!("{name}.ctl")).to_str().unwrap(),
            "--metrics-listen",
            if name == "node-b" {
                "127.0.0.1:9192"
            } else {
                "off"
            },
            "--no-policy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (args_a, args_b) = (args("node-a", 0), args("node-b", 1));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let socket_b = dir.path().join("node-b.ctl");
    let mut da = Vrouterd::start(&a, &args_a, &log_a);
    let mut db = Vrouterd::start(&b, &args_b, &log_b);
    da.wait_log("vrouterd ready", 1);
    db.wait_log("vrouterd ready", 1);

    // 1. b learns a's block.
    eventually_ok(WAIT, || learned(&b)).unwrap();

    let monitor_log = dir.path().join("monitor-b.log");
    let mut monitor = ChildGuard::spawn(
        "ip monitor",
        Command::new("ip").args(["-n", b.name(), "monitor", "route"]),
        Some(&monitor_log),
    )
    .unwrap();

    // 2. b crashes and comes back.
    db.child.kill().unwrap();
    learned(&b).expect("the route outlives the process");
    let mut db = Vrouterd::start(&b, &args_b, &log_b);
    db.wait_log("vrouterd ready", 2);
    db.wait_log("restarting gracefully", 1);
    db.wait_log("End-of-RIB from every peer", 1);
    learned(&b).unwrap();

    // 3. a restarts gracefully.
    assert_eq!(da.terminate().code(), Some(0));
    learned(&b).expect("b keeps a's route while a restarts");
    let mut da = Vrouterd::start(&a, &args_a, &log_a);
    da.wait_log("vrouterd ready", 2);
    eventually_ok(WAIT, || established(&socket_b)).unwrap();
    learned(&b).unwrap();

    // 4. b's BGP counters.
    let peer_a = "{peer=\"10.96.0.1\"}";
    eventually_ok(WAIT, || {
        let established = metric(&b, "vrouter_bgp_sessions{state=\"Established\"}")?;
        let received = metric(&b, &format!("vrouter_bgp_peer_updates_received_total{peer_a}"))?;
        let sent = metric(&b, &format!("vrouter_bgp_peer_updates_sent_total{peer_a}"))?;
        let routes = metric(&b, &format!("vrouter_bgp_peer_routes_received{peer_a}"))?;
        let installed = metric(&b, "vrouter_bgp_routes_installed")?;
        // a's block and its End-of-RIB in; at least b's End-of-RIB out.
        if established == 1.0 && received >= 2.0 && sent >= 1.0 && routes == 1.0 && installed == 1.0
        {
            Ok(())
        } else {
            Err(format!(
                "established {established} received {received} sent {sent} routes {routes} installed {installed}"
            ))
        }
    })
    .unwrap();
    recovering(&b, &socket_b, false).unwrap();

    // 5. b restarts while a is away: recovery until a's End-of-RIB.
    assert_eq!(da.terminate().code(), Some(0));
    db.child.kill().unwrap();
    let mut db = Vrouterd::start(&b, &args_b, &log_b);
    db.wait_log("vrouterd ready", 3);
    eventually_ok(WAIT, || recovering(&b, &socket_b, true)).unwrap();
    learned(&b).expect("the restarting b keeps a's route");
    let mut da = Vrouterd::start(&a, &args_a, &log_a);
    da.wait_log("vrouterd ready", 3);
    eventually_ok(WAIT, || recovering(&b, &socket_b, false)).unwrap();
    eventually_ok(WAIT, || established(&socket_b)).unwrap();
    learned(&b).unwrap();

    monitor.terminate().unwrap();
    let events = std::fs::read_to_string(&monitor_log).unwrap();
    assert!(!events.contains("Deleted"), "route churn in b:\n{events}");
    assert_eq!(db.terminate().code(), Some(0));
    assert_eq!(da.terminate().code(), Some(0));
}
