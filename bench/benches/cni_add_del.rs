//! CNI benchmark: ADD and DEL latency (median, p99) of `vrouter-cni` + `vrouter-ipam`
//! invoked as a runtime does (env + stdin, IPAM delegated through CNI_PATH, real etcd), on a
//! node that already runs 100 pods. Baseline in the same run: the same kernel work (veth
//! pair, address, two pod routes, host up) done by two `ip -batch` calls, the floor any
//! plugin that forks `ip` pays before touching a datastore.
//!
//! Needs root. The plugins are built first with `cargo build --release -p cni --bins` (a
//! no-op when fresh). Plain `std::time`; prints one line per measurement.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datastore::etcd::{EtcdConfig, Store};
use datastore::keys::resource_key;
use datastore::resource::{IpPool, Kind, Resource};
use test_support::Netns;
use test_support::etcd::Etcd;

const EXISTING_PODS: usize = 100;
const SAMPLES: usize = 60;
const NODE: &str = "bench-node";

fn invoke(plugin: &PathBuf, env: &[(&str, &str)], stdin: &[u8]) {
    let mut child = Command::new(plugin)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn plugin");
    let _ignored = child.stdin.take().expect("stdin").write_all(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        env.first(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn ip_batch(netns: Option<&str>, script: &str) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    assert!(
        child.wait().expect("wait").success(),
        "ip -batch failed: {script}"
    );
}

struct Stats {
    median: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn print(name: &str, s: &Stats, baseline: Option<&Stats>) {
    let ratio = baseline
        .map(|b| {
            format!(
                "  ({:.1}x baseline median)",
                s.median.as_secs_f64() / b.median.as_secs_f64()
            )
        })
        .unwrap_or_default();
    println!(
        "{name:<32} median {:>8.2} ms   p99 {:>8.2} ms{ratio}",
        s.median.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = bench::release_binaries(&["cni"], "vrouter-cni");
    let cni = dir.join("vrouter-cni");
    let cni_path = dir.display().to_string();
    let etcd = Etcd::start().expect("etcd");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::connect(&EtcdConfig::new([etcd.endpoint()]))
            .await
            .expect("connect");
        let pool = IpPool::new("bench", "10.99.0.0/22");
        store
            .create(
                &resource_key(Kind::IpPool.plural(), None, "bench"),
                Resource::IpPool(pool).to_json().into_bytes(),
            )
            .await
            .expect("pool");
    });
    let conf = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "k8s-pod-network",
        "type": "vrouter-cni",
        "etcd_endpoints": etcd.endpoint(),
        "nodename": NODE,
        "ipam": { "type": "vrouter-ipam" }
    })
    .to_string();

    let env_for = |command: &'static str, id: &str, netns: &str, args: &str| {
        vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", netns.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_ARGS", args.to_string()),
            ("CNI_PATH", cni_path.clone()),
        ]
    };
    let run = |env: &[(&str, String)]| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        invoke(&cni, &pairs, conf.as_bytes());
    };

    // 100 pods already on the node.
    let mut existing = Vec::new();
    for i in 0..EXISTING_PODS {
        let ns = Netns::new("benchpod").expect("netns");
        let path = format!("/var/run/netns/{}", ns.name());
        let args = format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=existing-{i}");
        run(&env_for("ADD", &format!("existing-{i}"), &path, &args));
        existing.push((ns, path, args, format!("existing-{i}")));
    }

    // Measured: ADD then DEL of one more pod, in a fresh namespace each time.
    let (mut adds, mut dels, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let ns = Netns::new("benchnew").expect("netns");
        let path = format!("/var/run/netns/{}", ns.name());
        let args = format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=new-{i}");
        let id = format!("new-{i}");
        let start = Instant::now();
        run(&env_for("ADD", &id, &path, &args));
        let added = Instant::now();
        run(&env_for("DEL", &id, &path, &args));
        let done = Instant::now();
        adds.push(added - start);
        dels.push(done - added);
        totals.push(done - start);
    }

    // Baseline: the same kernel work with `ip -batch`.
    let mut base_adds = Vec::new();
    let mut base_dels = Vec::new();
    for i in 0..SAMPLES {
        let ns = Netns::new("benchip").expect("netns");
        let host_if = format!("vrbench{i}");
        let ip = format!("10.98.{}.{}", i / 250, i % 250 + 1);
        let start = Instant::now();
        ip_batch(
            None,
            &format!(
                "link add {host_if} type veth peer name eth0 netns {ns}\nlink set {host_if} up\nroute add {ip}/32 dev {host_if} scope link\n",
                ns = ns.name()
            ),
        );
        ip_batch(
            Some(ns.name()),
            &format!(
                "link set eth0 up\naddr add {ip}/32 dev eth0\nroute add 169.254.1.1 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\n"
            ),
        );
        let added = Instant::now();
        ip_batch(None, &format!("link del {host_if}\n"));
        base_adds.push(added - start);
        base_dels.push(added.elapsed());
    }

    println!("CNI ADD/DEL on a node with {EXISTING_PODS} pods, {SAMPLES} samples each");
    let (base_add, base_del) = (stats(base_adds), stats(base_dels));
    print("baseline ip -batch ADD", &base_add, None);
    print("baseline ip -batch DEL", &base_del, None);
    print("vrouter-cni ADD", &stats(adds), Some(&base_add));
    print("vrouter-cni DEL", &stats(dels), Some(&base_del));
    print("vrouter-cni ADD+DEL", &stats(totals), None);

    for (_ns, path, args, id) in &existing {
        run(&env_for("DEL", id, path, args));
    }
}
