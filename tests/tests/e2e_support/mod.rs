//! Shared by the `e2e_*` tests: unique lab names, lab specs, a lab brought up to full
//! reachability, kernel route probes.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use cli::lab::reachability::Matrix;
use cli::lab::{Lab, LabSpec};

/// Generous bound for BGP convergence and policy programming (polled; no timing asserted).
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A lab name unique to this test process and `tag` (one letter per test): `vt-<tag><pid>`.
/// The `vt-` prefix makes `make test`'s leftover check catch namespaces a test forgot.
pub fn lab_name(tag: &str) -> String {
    format!("vt-{tag}{}", std::process::id() % 100_000)
}

/// A spec for a lab of `nodes` nodes with `pods` pods each; its state lives in a directory
/// named after the lab under /run/vrouter-lab.
pub fn spec(tag: &str, nodes: usize, pods: usize) -> LabSpec {
    LabSpec::new(&lab_name(tag), nodes, pods)
}

/// Measures the lab's reachability matrix; `Err` lists the pairs that cannot reach each
/// other.
pub fn all_reachable(lab: &Lab) -> Result<Matrix, String> {
    let m = lab.measure().map_err(|e| format!("{e:#}"))?;
    if m.all_reachable() {
        Ok(m)
    } else {
        Err(format!("unreachable: {:?}", m.failures()))
    }
}

/// Brings up a lab and waits (up to [`CONVERGE`]) until every pod reaches every other; on
/// failure prints the daemon logs and panics.
pub fn up(spec: &LabSpec) -> Lab {
    let lab = Lab::up(spec).unwrap();
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || all_reachable(&lab)) {
        dump_logs(&lab);
        panic!("lab {} never became fully reachable: {e}", lab.state().lab);
    }
    lab
}

/// `ip -n <ns> args…` stdout (panics on failure).
pub fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Routes of protocol `proto` in node `ns`'s main table, one line each, sorted.
pub fn routes(ns: &str, proto: &str) -> Vec<String> {
    let mut lines: Vec<String> = ip(ns, &["-4", "route", "show", "proto", proto])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// Every namespace on the host whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Prints the lab's daemon logs (on failure, for diagnosis).
pub fn dump_logs(lab: &Lab) {
    for node in &lab.state().nodes {
        let text = std::fs::read_to_string(&node.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "---- {} ({} lines, last 40)\n{}",
            node.log.display(),
            lines.len(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}

/// Destination prefix and gateway of an `ip route` line (`blackhole X` → (X, None)).
pub fn parse_route(line: &str) -> (String, Option<String>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let dst = if words.first() == Some(&"blackhole") {
        words.get(1)
    } else {
        words.first()
    };
    let via = words
        .iter()
        .position(|w| *w == "via")
        .and_then(|i| words.get(i + 1));
    (
        dst.map(|d| d.to_string()).unwrap_or_default(),
        via.map(|v| v.to_string()),
    )
}

/// The /26 block (the lab pool's block size) holding `ip`.
pub fn block_of(ip: std::net::Ipv4Addr) -> String {
    let net = ipnetwork::Ipv4Network::new(ip, 26).unwrap();
    format!("{}/26", net.network())
}

/// A current-thread tokio runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether `ip` is allocated in any IPAM block of the lab's etcd.
pub fn ip_allocated(lab: &Lab, ip: std::net::Ipv4Addr) -> bool {
    let endpoint = lab.etcd_endpoint().unwrap();
    runtime().block_on(async {
        let store = datastore::etcd::Store::connect(&datastore::etcd::EtcdConfig::new([endpoint]))
            .await
            .unwrap();
        let blocks = datastore::ipam::client::Ipam::new(store)
            .blocks()
            .await
            .unwrap();
        blocks
            .iter()
            .any(|b| b.holder(std::net::IpAddr::V4(ip)).is_some())
    })
}

/// Runs `vrctl --etcd-endpoints <lab> args…` and returns (exit code, stdout).
pub fn vrctl(lab: &Lab, args: &[&str]) -> (i32, String) {
    let out = Command::new(lab.state().bin_dir.join("vrctl"))
        .arg("--etcd-endpoints")
        .arg(lab.etcd_endpoint().unwrap())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
