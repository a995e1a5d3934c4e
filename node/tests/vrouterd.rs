//! The real `vrouterd` binary on one node: a `vt-*` namespace with an uplink and one pod,
//! etcd reached through a proxy listening inside the namespace.
//!
//! ```text
//!   host: etcd 127.0.0.1:P ◀── proxy ◀── 127.0.0.1:Q in the node namespace
//!   node ns: eth0 10.98.0.2/24 (uplink: a veth with its peer), vr… ── pod ns eth0 10.66.0.1/32
//!            vrouterd --node-name node-a --asn 64600 (file: metricsListen 127.0.0.1:9091)
//! ```
//!
//! 1. Start: the address chosen by first-found is logged with its rule; `vrouterd ready`.
//! 2. The Node resource carries the address and AS; a label set before start is kept.
//! 3. `/vrouter/status/node-a` exists under a lease, with the version and address.
//! 4. `/metrics` has felix, BGP, process and build metrics; `/healthz` is 200.
//! 5. The pod's WorkloadEndpoint gets its route (protocol 80); the nft table exists; the
//!    control socket answers `show protocols` (with a `felix1` row) and `show status`.
//! 6. SIGHUP after the config file changed (`logLevel: debug`, another `metricsListen`,
//!    `ipv4Autodetect: cidr=` matching a second address): debug lines appear, metrics move,
//!    the Node and the liveness record carry the new address, the AS is kept.
//! 7. SIGTERM: exit 0; the route and the nft table stay.
//! 8. Restart, SIGKILL, restart: no `Deleted` route event in `ip monitor route` meanwhile.
//!
//! Exit codes: a bad flag or variable exits 1 naming it; etcd unreachable past
//! `--etcd-start-timeout` exits 2; SIGTERM while waiting for etcd exits 0.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use datastore::etcd::Store;
use datastore::keys::status_key;
use datastore::resource::{Kind, Resource, parse_and_validate_documents};
use datastore::resource_store::{ResourceStore, Verb};
use felix::ownership::{endpoint_id, host_veth_name};
use support::{Vrouterd, WAIT, etcd_in, etcd_store, http_get};
use test_support::etcd::Etcd;
use test_support::{ChildGuard, Netns, eventually_ok, veth_pair};

const NODE: &str = "node-a";
const METRICS_PORT: u16 = 9091;
const METRICS_PORT_2: u16 = 9092;

fn apply(rt: &tokio::runtime::Runtime, store: &Store, yaml: &str) {
    let resources = parse_and_validate_documents(yaml).unwrap();
    rt.block_on(ResourceStore::new(store.clone()).write(Verb::Apply, &resources))
        .unwrap();
}

fn write_config(path: &Path, level: &str, metrics_port: u16, ipv4_method: &str) {
    std::fs::write(
        path,
        format!(
            "# vrouterd test config\nlogLevel: {level}\nlogFormat: pretty\n\
             metricsListen: 127.0.0.1:{metrics_port}\nipv4Autodetect: {ipv4_method}\n"
        ),
    )
    .unwrap();
}

fn proto80(ns: &Netns) -> String {
    ns.ip(&["route", "show", "proto", "80"]).unwrap()
}

fn nft_table(ns: &Netns) -> Result<String, String> {
    ns.exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .map_err(|e| e.to_string())
}

#[test]
fn single_node_lifecycle() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let (rt, store) = etcd_store(&etcd);
    let node = Netns::new("vrd").unwrap();
    node.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "veth-up",
    ])
    .unwrap();
    node.set_up("veth-up").unwrap();
    node.add_addr("eth0", "10.98.0.2/24").unwrap();
    node.set_up("eth0").unwrap();
    let pod = Netns::new("vrdpod").unwrap();
    let wep_name = format!("{NODE}-k8s-pod0-eth0").replace('-', "--");
    let veth = host_veth_name(&endpoint_id("prod", &wep_name));
    veth_pair(&node, &veth, &pod, "eth0").unwrap();
    pod.add_addr("eth0", "10.66.0.1/32").unwrap();
    let proxy = etcd_in(&node, &etcd);

    // An operator labelled the node before vrouterd ever ran.
    apply(
        &rt,
        &store,
        &format!(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {NODE}, labels: {{rack: r1}}}}\n"
        ),
    );
    apply(
        &rt,
        &store,
        &format!(
            "apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {{name: {wep_name}, namespace: prod, labels: {{app: web}}}}
spec: {{node: {NODE}, orchestrator: k8s, pod: pod0, endpoint: eth0, interfaceName: {veth}, ipNetworks: [10.66.0.1/32]}}
"
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vrouterd.yaml");
    write_config(&config, "info", METRICS_PORT, "first-found");
    let args: Vec<String> = [
        "--config",
        config.to_str().unwrap(),
        "--node-name",
        NODE,
        "--etcd-endpoints",
        &format!("http://127.0.0.1:{}", proxy.addr().port()),
        "--asn",
        "64600",
        "--control-socket",
        dir.path().join("vrouter.ctl").to_str().unwrap(),
        "--secrets-dir",
        dir.path().join("secrets").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = dir.path().join("vrouterd.log");
    let mut daemon = Vrouterd::start(&node, &args, &log);

    // 1. Ready, and the address choice explained.
    daemon.wait_log("vrouterd ready", 1);
    let text = daemon.log_text();
    let chosen = text
        .lines()
        .find(|l| l.contains("node address chosen") && l.contains("ipv4"))
        .unwrap_or_else(|| panic!("no address line in:\n{text}"));
    assert!(chosen.contains("10.98.0.2/24"), "{chosen}");
    assert!(chosen.contains("interface=eth0"), "{chosen}");
    assert!(chosen.contains("first-found"), "{chosen}");

    // 2. The Node: address and AS set, the operator's label kept.
    let resources = ResourceStore::new(store.clone());
    let stored = rt.block_on(resources.get(Kind::Node, None, NODE)).unwrap();
    let Some(Resource::Node(stored)) = stored else {
        panic!("no Node {NODE}");
    };
    let bgp = stored.spec.bgp.clone().unwrap();
    assert_eq!(bgp.ipv4_address.as_deref(), Some("10.98.0.2/24"));
    assert_eq!(bgp.as_number.map(|a| a.get()), Some(64600));
    assert_eq!(
        stored.metadata.labels.get("rack").map(String::as_str),
        Some("r1")
    );

    // 3. Liveness under a lease.
    let key = status_key(NODE);
    let json = etcd.etcdctl(&["get", &key, "-w", "json"]).unwrap();
    let lease = json
        .split("\"lease\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no lease in {json}"));
    assert_ne!(lease.trim(), "0", "{json}");
    let value = etcd.etcdctl(&["get", &key, "--print-value-only"]).unwrap();
    assert!(value.contains("\"ipv4\":\"10.98.0.2/24\""), "{value}");
    assert!(value.contains("\"version\":"), "{value}");

    // 4. Metrics and health, asked from inside the namespace.
    let metrics = eventually_ok(WAIT, || {
        let reply = http_get(&node, METRICS_PORT, "/metrics").map_err(|e| e.to_string())?;
        if reply.contains("vrouter_bgp_speaker_up 1") {
            Ok(reply)
        } else {
            Err(reply)
        }
    })
    .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    for needle in [
        "text/plain; version=0.0.4",
        "vrouter_felix_",
        "vrouter_bgp_sessions",
        "vrouter_bgp_loc_rib_prefixes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "vrouter_build_info{",
        "vrouter_node_ready 1",
        "# EOF",
    ] {
        assert!(metrics.contains(needle), "no {needle} in:\n{metrics}");
    }
    let health = http_get(&node, METRICS_PORT, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // 5. The workload's route and the policy table.
    let want = format!("10.66.0.1 dev {veth}");
    eventually_ok(WAIT, || {
        let routes = proto80(&node);
        if routes.contains(&want) {
            Ok(())
        } else {
            Err(routes)
        }
    })
    .unwrap();
    eventually_ok(WAIT, || nft_table(&node)).unwrap();

    // 5b. The control socket speaks BIRD's protocol, with a felix row.
    let socket = dir.path().join("vrouter.ctl");
    let mut ctl = bgp::ctl::client::Client::connect(&socket, Duration::from_secs(5)).unwrap();
    assert!(ctl.welcome().starts_with("vrouterd"), "{}", ctl.welcome());
    let protocols = eventually_ok(WAIT, || {
        let reply = ctl.command("show protocols").map_err(|e| e.to_string())?;
        let text: Vec<String> = reply.lines.iter().map(|l| l.text.clone()).collect();
        let text = text.join("\n");
        if text.contains("felix1") && text.contains("in sync") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .unwrap();
    assert!(protocols.contains("kernel1"), "{protocols}");
    let status = ctl.command("show status").unwrap();
    assert!(
        status.lines.iter().any(|l| l.text.contains("10.98.0.2")),
        "router id: {status:?}"
    );
    drop(ctl);

    // 6. SIGHUP applies a new log level, metrics address and address rule from the file.
    assert!(!daemon.log_text().contains("DEBUG"), "debug before reload");
    node.add_addr("eth0", "10.98.1.2/24").unwrap();
    write_config(&config, "debug", METRICS_PORT_2, "cidr=10.98.1.0/24");
    daemon.signal("HUP");
    daemon.wait_log("log level changed", 1);
    // The reload re-runs address detection, whose skipped candidates are debug lines.
    daemon.wait_log("address candidate skipped", 1);
    assert!(daemon.log_text().contains("DEBUG"));
    eventually_ok(WAIT, || http_get(&node, METRICS_PORT_2, "/healthz")).unwrap();
    assert!(
        http_get(&node, METRICS_PORT, "/healthz").is_err(),
        "old port closed"
    );
    daemon.wait_log("Node updated after reload", 1);
    let Some(Resource::Node(stored)) = rt.block_on(resources.get(Kind::Node, None, NODE)).unwrap()
    else {
        panic!("no Node {NODE}");
    };
    let bgp = stored.spec.bgp.unwrap();
    assert_eq!(bgp.ipv4_address.as_deref(), Some("10.98.1.2/24"));
    assert_eq!(bgp.as_number.map(|a| a.get()), Some(64600), "AS kept");
    eventually_ok(WAIT, || {
        let value = etcd
            .etcdctl(&["get", &key, "--print-value-only"])
            .map_err(|e| e.to_string())?;
        value.contains("10.98.1.2/24").then_some(()).ok_or(value)
    })
    .unwrap();

    // 7. SIGTERM: exit 0, kernel state stays.
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(daemon.log_text().contains("vrouterd stopped"));
    assert!(!socket.exists(), "control socket removed on exit");
    assert!(proto80(&node).contains(&want), "route kept after SIGTERM");
    nft_table(&node).expect("nft table kept after SIGTERM");

    // 8. Restart, crash, restart: nothing deleted.
    let mut daemon = Vrouterd::start(&node, &args, &log);
    daemon.wait_log("vrouterd ready", 2);
    let monitor_log = dir.path().join("monitor.log");
    let mut monitor = ChildGuard::spawn(
        "ip monitor",
        Command::new("ip").args(["-n", node.name(), "monitor", "route"]),
        Some(&monitor_log),
    )
    .unwrap();
    daemon.child.kill().unwrap();
    assert!(proto80(&node).contains(&want), "route kept after SIGKILL");
    let mut daemon = Vrouterd::start(&node, &args, &log);
    daemon.wait_log("vrouterd ready", 3);
    // Let the restarted agent finish a resync pass over what it adopted.
    eventually_ok(WAIT, || {
        let reply = http_get(&node, METRICS_PORT_2, "/healthz").map_err(|e| e.to_string())?;
        reply.starts_with("HTTP/1.1 200").then_some(()).ok_or(reply)
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    monitor.terminate().unwrap();
    let events = std::fs::read_to_string(&monitor_log).unwrap();
    assert!(
        !events.contains("Deleted"),
        "route churn on restart:\n{events}"
    );
    assert!(proto80(&node).contains(&want));
    nft_table(&node).unwrap();
    assert_eq!(daemon.terminate().code(), Some(0));
}

fn run_vrouterd(ns: Option<&Netns>, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = match ns {
        Some(ns) => ns.command(env!("CARGO_BIN_EXE_vrouterd")),
        None => Command::new(env!("CARGO_BIN_EXE_vrouterd")),
    };
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn exit_codes() {
    test_support::trace_init();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.yaml");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap();
    let (code, stderr) = run_vrouterd(None, &["--config", config, "--asn", "sixty"], &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("flag --asn: \"sixty\" is not valid"),
        "{stderr}"
    );
    let (code, stderr) = run_vrouterd(
        None,
        &["--config", config, "--node-name", "n1"],
        &[("VROUTER_METRICS_LISTEN", "everywhere")],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("environment VROUTER_METRICS_LISTEN: \"everywhere\""),
        "{stderr}"
    );
    let (code, stderr) = run_vrouterd(None, &["--config", "/nonexistent/vrouterd.yaml"], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent/vrouterd.yaml"), "{stderr}");

    // Nothing listens on 127.0.0.1:1 in a fresh namespace.
    let ns = Netns::new("vrdexit").unwrap();
    let no_etcd = [
        "--config",
        config,
        "--node-name",
        "n1",
        "--ipv4",
        "10.0.0.1/24",
        "--metrics-listen",
        "off",
        "--etcd-endpoints",
        "http://127.0.0.1:1",
    ];
    let timing_out = [
        &no_etcd[..],
        &["--etcd-start-timeout", "1s", "--log-format", "json"],
    ];
    let (code, stderr) = run_vrouterd(Some(&ns), &timing_out.concat(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("etcd stayed unreachable"), "{stderr}");
    let json_lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|v| v["level"] == "WARN" && v["message"] == "etcd unreachable; retrying"),
        "{stderr}"
    );

    // Without a timeout it waits; SIGTERM then ends it with 0.
    let log = dir.path().join("waiting.log");
    let args: Vec<String> = no_etcd.iter().map(|s| s.to_string()).collect();
    let mut waiting = Vrouterd::start(&ns, &args, &log);
    waiting.wait_log("etcd unreachable; retrying", 2);
    assert_eq!(
        waiting.terminate().code(),
        Some(0),
        "{}",
        waiting.log_text()
    );
}
