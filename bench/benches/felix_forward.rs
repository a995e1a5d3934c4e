//! Forwarding cost of 1,000 policies (issue 6, goal ≤ 5 % loss): two pod namespaces attached
//! by `vr…` veths to a node namespace that routes between them, iperf3 TCP throughput from
//! pod A to pod B with no nftables table at all vs with 1,000 GlobalNetworkPolicies
//! programmed by felix's real `PolicyDataplane`, alternated in the same run.
//!
//! The policies are built so the flow is decided as late as possible: all 1,000 select pod B
//! (`role == 'server'`), each allows TCP to the probed ports from its own source selector
//! (`app == 'client<i>'`, a named set each), and only the last in order admits pod A
//! (`app == 'client'`). A new connection's first packet therefore walks the dispatch map, the
//! shared workload policy chain (1,000 membership-guarded jumps) and 1,000 policy chains with a
//! set lookup each; the rest of the connection is accepted by the conntrack rule at the top of
//! the forward chain, which is what iperf3's bulk transfer measures. The machine is shared, so each round measures both cases back to back (alternating which
//! goes first) and the loss is taken from the median of the per-round ratios. Prints each
//! round, the medians and the loss.

#![allow(clippy::unwrap_used)] // a benchmark harness: a panic is the failure report

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use felix::calc::LocalEndpoint;
use felix::nft::{PolicyDataplane, PolicyState};
use policy::model::EndpointId;
use test_support::{ChildGuard, Netns, veth_pair};

const POLICIES: usize = 1_000;
const SECONDS: &str = "3";
const ROUNDS: usize = 6;
const IPERF_PORT: u16 = 5201;
const SETTLE: Duration = Duration::from_secs(3);

/// Runs `f` on a thread inside `ns`'s network namespace.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        f()
    })
    .join()
    .unwrap()
}

struct Pod {
    ns: Netns,
    name: &'static str,
    iface: String,
    ip: Ipv4Addr,
}

impl Pod {
    fn workload(&self) -> LocalEndpoint {
        LocalEndpoint {
            id: EndpointId::new("bench", self.name),
            iface: self.iface.clone(),
            nets: vec![format!("{}/32", self.ip).parse().unwrap()],
            mac: None,
        }
    }
}

/// The node namespace routing between two pods (as the CNI plugin wires them).
fn topology() -> (Netns, [Pod; 2]) {
    let node = Netns::new("fwdnode").unwrap();
    node.enable_forwarding().unwrap();
    let pod = |i: usize, name: &'static str| {
        let ns = Netns::new(&format!("fwd{name}")).unwrap();
        let iface = format!("vr{:011x}", 0xf0d0 + i);
        let ip = Ipv4Addr::new(10, 67, 0, i as u8 + 1);
        veth_pair(&node, &iface, &ns, "eth0").unwrap();
        node.ip(&["addr", "add", "169.254.1.1/32", "dev", &iface])
            .unwrap();
        node.add_dev_route(&format!("{ip}/32"), &iface).unwrap();
        ns.add_addr("eth0", &format!("{ip}/32")).unwrap();
        ns.ip(&["route", "add", "169.254.1.1", "dev", "eth0"])
            .unwrap();
        ns.add_route("default", "169.254.1.1").unwrap();
        Pod {
            ns,
            name,
            iface,
            ip,
        }
    };
    let a = pod(0, "client");
    let b = pod(1, "server");
    (node, [a, b])
}

/// The model: pod A `app: client`, pod B `role: server`, and 1,000 policies of which only
/// the last admits A.
fn state(pods: &[Pod; 2]) -> PolicyState {
    let mut y = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
         metadata: {name: client, namespace: bench, labels: {app: client}}\n",
    );
    y.push_str(&format!(
        "spec: {{interfaceName: {}, ipNetworks: [{}/32]}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
         metadata: {{name: server, namespace: bench, labels: {{role: server}}}}\n\
         spec: {{interfaceName: {}, ipNetworks: [{}/32]}}\n",
        pods[0].iface, pods[0].ip, pods[1].iface, pods[1].ip
    ));
    for p in 0..POLICIES {
        let from = if p == POLICIES - 1 {
            "client".to_string()
        } else {
            format!("client{p}")
        };
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
             metadata: {{name: p{p}}}\nspec:\n  order: {p}\n  selector: role == 'server'\n  \
             ingress:\n  - {{action: Allow, protocol: TCP, source: {{selector: app == '{from}'}}, \
             destination: {{ports: [{IPERF_PORT}]}}}}\n"
        ));
    }
    let docs = datastore::resource::parse_documents(&y).unwrap();
    let model = policy::convert::model_from_resources(&docs).unwrap();
    PolicyState::new(
        policy::compile::compile(&model),
        pods.iter().map(Pod::workload),
    )
}

/// iperf3 from A to B: received bits per second.
fn iperf(pods: &[Pod; 2]) -> f64 {
    let out = pods[0]
        .ns
        .exec_ok(&[
            "iperf3",
            "-c",
            &pods[1].ip.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "-t",
            SECONDS,
            "-J",
        ])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
}

fn install(node: &Netns, state: &PolicyState) -> Duration {
    let state = state.clone();
    in_netns(node, move || {
        let mut dp = PolicyDataplane::new().unwrap();
        dp.set_desired(state);
        let start = Instant::now();
        dp.apply().unwrap();
        start.elapsed()
    })
}

fn remove(node: &Netns) {
    node.exec_ok(&["nft", "delete", "table", "inet", "vrouter"])
        .unwrap();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (node, pods) = topology();
    let state = state(&pods);
    let _server: ChildGuard = pods[1]
        .ns
        .spawn(&["iperf3", "-s", "-p", &IPERF_PORT.to_string()])
        .unwrap();
    pods[1]
        .ns
        .wait_for_listen(IPERF_PORT, Duration::from_secs(10))
        .unwrap();

    let (mut bare, mut policed, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut installed = false;
    for round in 1..=ROUNDS {
        let mut pair = [0.0f64; 2];
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for with_policy in order {
            if with_policy && !installed {
                let took = install(&node, &state);
                println!("felix_forward: {POLICIES} policies installed in {took:?}");
                installed = true;
            } else if !with_policy && installed {
                remove(&node);
                installed = false;
            }
            // Let the kernel finish the deferred work of the change (freeing a removed
            // table's 13,000 rules and sets runs in the background and would be charged to
            // the next measurement).
            std::thread::sleep(SETTLE);
            let bps = iperf(&pods);
            let what = if with_policy {
                format!("{POLICIES} policies")
            } else {
                "no policy".to_string()
            };
            println!(
                "felix_forward: round {round} {what}: {:.2} Gbit/s",
                bps / 1e9
            );
            if with_policy {
                policed.push(bps);
                pair[1] = bps;
            } else {
                bare.push(bps);
                pair[0] = bps;
            }
        }
        ratios.push(pair[1] / pair[0]);
    }
    let (b, p) = (median(&mut bare), median(&mut policed));
    let r = median(&mut ratios);
    println!(
        "felix_forward: median no policy {:.2} Gbit/s, {POLICIES} policies {:.2} Gbit/s; \
         median per-round ratio {r:.3}: loss {:.1} % (goal <= 5 %)",
        b / 1e9,
        p / 1e9,
        (1.0 - r) * 100.0,
    );
}
