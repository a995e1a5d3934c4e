//! Pod-to-pod TCP throughput across nodes, native routing vs VXLAN, in one run on the lab
//! (`cli::lab`): two nodes on one underlay bridge running `vrouterd`, the lab pool first
//! `vxlanMode: Never` (BGP routes, packets cross the underlay as they are), then `Always`
//! (every packet encapsulated in UDP 4789 by the nodes' `vxlan.vrouter` devices).
//!
//! Each mode gets its own pod pair, created while the mode is in force, so the pods' MTU is
//! the one a cluster would give them (underlay's for native, 50 less for VXLAN: the overhead
//! is part of what is measured). `iperf3 -c` runs in the pod on node 0 against `iperf3 -s` in
//! the pod on node 1, [`RUNS`] runs of [`SECONDS`] s per mode; the median goodput of each mode
//! and the ratio are printed. Before the VXLAN runs the bench checks that node 0 routes the
//! peer pod's block through `vxlan.vrouter`.
//!
//! Needs root and `iperf3`. Builds the release binaries first (`cargo build --release --bins`
//! of the node, cni, cli and reflector crates; a no-op when fresh).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::lab::{self, Lab, LabSpec};

const RUNS: usize = 3;
const SECONDS: u32 = 5;
const PORT: u16 = 5201;
const SETTLE: Duration = Duration::from_secs(60);

/// `iperf3 -s` in a pod; killed when dropped.
struct Server(Child);

impl Server {
    fn start(pod: &str) -> Server {
        let server = Server(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    pod,
                    "iperf3",
                    "-s",
                    "-p",
                    &PORT.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 (run `make deps`)"),
        );
        let start = Instant::now();
        loop {
            let out = Command::new("ss")
                .args(["-N", pod, "-Hltn"])
                .output()
                .expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&format!(":{PORT} ")) {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "iperf3 -s did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `iperf3 -c` run from pod `from` to `to`: received goodput in Gbit/s.
fn iperf(from: &str, to: Ipv4Addr) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", from, "iperf3", "-c", &to.to_string()])
        .args(["-p", &PORT.to_string(), "-t", &SECONDS.to_string(), "-J"])
        .output()
        .expect("iperf3 -c");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 output ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no sum_received in {json}"))
        / 1e9
}

fn mtu(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", lab::pod::POD_DEV])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits until node 0 routes `block` the way `check` wants and the pods can talk.
fn settle(lab: &Lab, node: &str, block: &str, check: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["-n", node, "route", "show", block])
            .output()
            .expect("ip route");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if check(&text) && lab.measure().expect("measure").all_reachable() {
            return;
        }
        assert!(
            start.elapsed() < SETTLE,
            "{node} never routed {block} as wanted: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates a pod on node 0 and one on node 1 (mode in force), measures, returns the runs.
fn measure_mode(lab: &mut Lab, label: &str, tunnel: bool) -> Vec<f64> {
    let (client, _) = lab.add_pod_with(0, true).expect("pod on node 0");
    let (server, _) = lab.add_pod_with(1, true).expect("pod on node 1");
    let to = server.ip.expect("server ip");
    let node0 = lab.state().nodes[0].name.clone();
    let block = format!(
        "{}/26",
        ipnetwork::Ipv4Network::new(to, 26)
            .expect("block")
            .network()
    );
    settle(lab, &node0, &block, |r| {
        r.contains("vxlan.vrouter") == tunnel && !r.is_empty()
    });
    let _server = Server::start(&server.name);
    let runs: Vec<f64> = (0..RUNS).map(|_| iperf(&client.name, to)).collect();
    println!(
        "vxlan_iperf {label:<7} pod MTU {:>5}  runs {:?} Gbit/s  median {:.2} Gbit/s",
        mtu(&client.name),
        runs.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
        median(runs.clone())
    );
    runs
}

fn main() {
    let bin_dir = bench::release_binaries(bench::LAB_PACKAGES, "vrouterd");
    let name = format!("vb-x{}", std::process::id() % 10_000);
    let mut spec = LabSpec::new(&name, 2, 0);
    spec.bin_dir = Some(bin_dir);
    let mut lab = Lab::up(&spec).expect("lab up");
    let state = lab.state().clone();
    let yaml = |mode: &str| {
        lab::pool_yaml(&state.pool, state.block_size)
            .replace("vxlanMode: Never", &format!("vxlanMode: {mode}"))
    };
    let native = measure_mode(&mut lab, "native", false);
    lab.apply_yaml(&yaml("Always")).expect("pool to Always");
    let vxlan = measure_mode(&mut lab, "vxlan", true);
    let (n, v) = (median(native), median(vxlan));
    println!(
        "vxlan_iperf VXLAN / native goodput: {:.2} ({v:.2} / {n:.2} Gbit/s; {RUNS} x {SECONDS} s each)",
        v / n
    );
    lab.down().expect("lab down");
}
