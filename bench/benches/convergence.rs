//! Convergence benchmark on the lab (`cli::lab`): a 10-node cluster (real etcd, `vrouterd` in
//! node namespaces on a bridge), 100 pods created one after the other on node A through
//! `vrouter-cni`; for each, the time until node B's kernel has a route to it. Then the same
//! with the node-to-node mesh off and one `vrouter-reflector`. Also the resident memory of
//! node A's `vrouterd` with 100 local endpoints (and of an idle node's, for comparison).
//!
//! The pool's block size is 32, so every pod is its own IPAM block and every pod makes node
//! B install a new BGP route (with Calico's /26 blocks only the first pod of a block would).
//! Node B's routes are watched with `ip -n B monitor route`, and the IPAM block writes with
//! `etcdctl watch --prefix /vrouter/ipam/blocks/`; each line is timestamped when it arrives
//! (no polling). The pod is created when the runtime calls CNI ADD (its namespace exists
//! already), so the latency of the goal (p99 < 50 ms) is CNI ADD start → route on node B. It
//! is split at the block claim in etcd, which is what the nodes react to: CNI ADD start →
//! block claimed (the plugin and IPAM), block claimed → route on B (vrouterd on A: watch,
//! BGP UPDATE; vrouterd on B: best path, kernel). The route is usually on B before ADD
//! returns (the plugin still sets up the veth and writes the WorkloadEndpoint).
//!
//! Needs root. Builds the release binaries first (`cargo build --release --bins` of the node,
//! cni, cli and reflector crates; a no-op when fresh).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli::lab::{Lab, LabSpec};

const NODES: usize = 10;
const PODS: usize = 100;
const NODE_A: usize = 0;
const NODE_B: usize = 5;
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of a watching command: (arrival instant, key) of every event it reports.
struct Monitor {
    child: std::process::Child,
    events: mpsc::Receiver<(Instant, String)>,
    seen: BTreeMap<String, Instant>,
}

impl Monitor {
    /// Routes added in namespace `ns`, keyed by destination address.
    fn routes(ns: &str) -> Monitor {
        Monitor::start(
            Command::new("ip").args(["-n", ns, "monitor", "route"]),
            |line| {
                if line.starts_with("Deleted") {
                    return None;
                }
                let dst = line.split_whitespace().next()?;
                Some(dst.trim_end_matches("/32").to_string())
            },
        )
    }

    /// IPAM block writes in etcd, keyed by the block's first address (`/32` blocks: the pod's).
    fn blocks(endpoint: &str) -> Monitor {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            "--endpoints",
            endpoint,
            "watch",
            "--prefix",
            "/vrouter/ipam/blocks/",
        ]);
        Monitor::start(&mut cmd, |line| {
            let segment = line.strip_prefix("/vrouter/ipam/blocks/")?;
            Some(segment.split('-').next()?.to_string())
        })
    }

    fn start(cmd: &mut Command, key: fn(&str) -> Option<String>) -> Monitor {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the monitor");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let Some(key) = key(&line) else { continue };
                if tx.send((at, key)).is_err() {
                    break;
                }
            }
        });
        Monitor {
            child,
            events,
            seen: BTreeMap::new(),
        }
    }

    /// When `ip` was first reported (waiting for it).
    fn wait_for(&mut self, ip: Ipv4Addr) -> Instant {
        let key = ip.to_string();
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            if let Some(at) = self.seen.get(&key) {
                return *at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((at, dst)) => {
                    self.seen.entry(dst).or_insert(at);
                }
                Err(_) => panic!("no event for {ip} within {EVENT_TIMEOUT:?}"),
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn summary(label: &str, what: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "convergence {label:<22} {what:<34} p50 {:>6.1} ms  p90 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.9)),
        ms(percentile(samples, 0.99)),
        ms(*samples.last().expect("samples")),
    );
}

fn run(name: &str, label: &str, reflectors: usize, bin_dir: &Path) {
    let mut spec = LabSpec::new(name, NODES, 0);
    spec.reflectors = reflectors;
    spec.block_size = 32;
    spec.bin_dir = Some(bin_dir.to_path_buf());
    let mut lab = Lab::up(&spec).expect("lab up");
    let node_b = lab.state().nodes[NODE_B].name.clone();
    let mut routes = Monitor::routes(&node_b);
    let mut blocks = Monitor::blocks(&lab.etcd_endpoint().expect("etcd"));

    // Warm-up: sessions established and one route through end to end.
    let (warm, _) = lab.add_pod_with(NODE_A, false).expect("pod");
    routes.wait_for(warm.ip.expect("ip"));

    let (mut total, mut to_claim, mut from_claim, mut add) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut early = 0;
    for _ in 0..PODS {
        let (pod, times) = lab.add_pod_with(NODE_A, false).expect("pod");
        let ip = pod.ip.expect("ip");
        let routed = routes.wait_for(ip);
        let claimed = blocks.wait_for(ip);
        if routed < times.returned {
            early += 1;
        }
        total.push(routed.saturating_duration_since(times.started));
        to_claim.push(claimed.saturating_duration_since(times.started));
        from_claim.push(routed.saturating_duration_since(claimed));
        add.push(times.returned.saturating_duration_since(times.started));
    }
    summary(label, "CNI ADD start -> route on B", &mut total);
    summary(label, "  CNI ADD start -> block claimed", &mut to_claim);
    summary(label, "  block claimed -> route on B", &mut from_claim);
    summary(label, "CNI ADD start -> ADD returned", &mut add);
    println!("convergence {label:<22} route on B before ADD returned: {early}/{PODS}");
    let a = lab.daemon_pid(NODE_A).expect("vrouterd on A");
    let idle = lab.daemon_pid(NODE_B).expect("vrouterd on B");
    println!(
        "vrouterd RSS {label:<22} node A with {} local endpoints: {:.1} MiB; node B (none): {:.1} MiB",
        PODS + 1,
        rss_kib(a) as f64 / 1024.0,
        rss_kib(idle) as f64 / 1024.0,
    );
    drop(routes);
    drop(blocks);
    lab.down().expect("lab down");
}

fn main() {
    let bin_dir = bench::release_binaries(bench::LAB_PACKAGES, "vrouterd");
    let pid = std::process::id() % 10_000;
    run(&format!("vb-m{pid}"), "mesh (10 nodes)", 0, &bin_dir);
    run(&format!("vb-r{pid}"), "1 reflector, mesh off", 1, &bin_dir);
}
