//! A ruleset of 10,000 policy rules over named sets, programmed by felix's nftables policy
//! dataplane (`PolicyDataplane::new` + `apply`: one atomic netlink batch) against `nft -f` of
//! the equivalent text (`PolicyDataplane::desired_script`, the same objects), side by side in
//! one run, each into a fresh throwaway namespace. Goal (issue 6): dataplane ≤ 0.5 × `nft -f`.
//! Also measured: one label change handed over as a complete state (full render and whole-table
//! compare; the per-change path from the datastore event is `felix_label`) and a no-op apply.
//! Prints one line per round and the ratio of the medians (wall clock, the goal's measure),
//! and the same ratio over CPU time (the dataplane thread's, kernel work included, against
//! `nft`'s), which other processes on the machine disturb much less.

#![allow(clippy::unwrap_used)] // a benchmark harness: a panic is the failure report

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use felix::agent::enter_netns;
use felix::calc::LocalEndpoint;
use felix::nft::{PolicyDataplane, PolicyState};
use nix::sys::resource::{UsageWho, getrusage};
use policy::model::EndpointId;
use test_support::Netns;

const APPS: usize = 200;
const ENDPOINTS: usize = 2_000;
const POLICIES: usize = 500;
const RULES_PER_POLICY: usize = 20;
/// Rounds per side (`FELIX_NFT_ROUNDS` overrides: more rounds, steadier medians on a busy
/// machine).
const ROUNDS: usize = 5;

fn iface(i: usize) -> String {
    format!("vr{i:011x}")
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256)
}

/// 2,000 endpoints (one local workload per app), 500 policies × 20 rules = 10,000 rules,
/// each rule matching a selector set and a port.
fn yaml(relabel: bool) -> String {
    let mut y = String::new();
    for n in 0..10 {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n"
        );
    }
    for i in 0..ENDPOINTS {
        // A remote endpoint (not a local workload) changes its app: set elements only.
        let app = if relabel && i == APPS {
            APPS - 1
        } else {
            i % APPS
        };
        let local = if i < APPS {
            format!("interfaceName: {}, ", iface(i))
        } else {
            String::new()
        };
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: w{i}, namespace: ns{}, labels: {{app: app{app}}}}}\n\
             spec: {{{local}ipNetworks: [{}/32]}}\n",
            i % 10,
            ip(i)
        );
    }
    for p in 0..POLICIES {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
             metadata: {{name: p{p}}}\nspec:\n  order: {p}\n  selector: app == 'app{}'\n  ingress:\n",
            p % APPS
        );
        for r in 0..RULES_PER_POLICY {
            let _ = writeln!(
                y,
                "  - {{action: Allow, ipVersion: 4, protocol: TCP, source: {{selector: app == 'app{}'}}, destination: {{ports: [{}]}}}}",
                (p + r + 1) % APPS,
                1000 + r
            );
        }
    }
    y
}

fn state(relabel: bool) -> PolicyState {
    let docs = datastore::resource::parse_documents(&yaml(relabel)).unwrap();
    let model = policy::convert::model_from_resources(&docs).unwrap();
    PolicyState::new(
        policy::compile::compile(&model),
        (0..APPS).map(|i| LocalEndpoint {
            id: EndpointId::new(format!("ns{}", i % 10), format!("w{i}")),
            iface: iface(i),
            nets: vec![format!("{}/32", ip(i)).parse().unwrap()],
            mac: None,
        }),
    )
}

/// Runs `f` on a thread inside `ns`.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        enter_netns(Path::new(&path)).unwrap();
        f()
    })
    .join()
    .unwrap()
}

fn rules_in(ns: &Netns) -> usize {
    ns.exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .unwrap()
        .lines()
        .filter(|l| l.contains("comment \"vr:"))
        .count()
}

/// User + system CPU time used so far by `who`.
fn cpu(who: UsageWho) -> Duration {
    let u = getrusage(who).unwrap();
    let t = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    t(u.user_time()) + t(u.system_time())
}

/// Waits for the kernel to free a deleted namespace's table (a worker does it after the
/// namespace goes), so that work does not run into the next measurement.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let t = Instant::now();
    let desired = state(false);
    let relabelled = state(true);
    println!("felix_nft: model + compile x2: {:?}", t.elapsed());
    let script = {
        let d = desired.clone();
        let ns = Netns::new("nftscr").unwrap();
        in_netns(&ns, move || {
            let mut dp = PolicyDataplane::new().unwrap();
            dp.set_desired(d);
            dp.desired_script()
        })
    };
    let path = std::env::temp_dir().join(format!("felix-nft-bench-{}.nft", std::process::id()));
    std::fs::write(&path, &script).unwrap();

    let rounds = std::env::var("FELIX_NFT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let (mut agent, mut nft) = (Vec::new(), Vec::new());
    let (mut agent_cpu, mut nft_cpu) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Agent: fresh namespace, new() (creates the skeleton) + apply() of the whole state.
        let ns = Netns::new("nftdp").unwrap();
        let d = desired.clone();
        let r = relabelled.clone();
        let (took, used, report, label, noop) = in_netns(&ns, move || {
            let (start, cpu_start) = (Instant::now(), cpu(UsageWho::RUSAGE_THREAD));
            let mut dp = PolicyDataplane::new().unwrap();
            dp.set_desired(d);
            let report = dp.apply().unwrap();
            let took = start.elapsed();
            let used = cpu(UsageWho::RUSAGE_THREAD) - cpu_start;
            dp.set_desired(r);
            let label = dp.apply().unwrap();
            let noop = dp.apply().unwrap();
            (took, used, report, label, noop)
        });
        let rules = rules_in(&ns);
        println!(
            "round {round}: dataplane {took:?}, cpu {used:?} ({rules} rules, {} messages, {} sets, {} elements); \
             label change {} µs ({} messages, {} elements +{} -{}, only elements: {}); no-op apply {} µs",
            report.messages,
            report.sets_created,
            report.elements_added,
            label.micros,
            label.messages,
            label.elements_added + label.elements_removed,
            label.elements_added,
            label.elements_removed,
            label.only_elements_changed(),
            noop.micros,
        );
        agent.push(took);
        agent_cpu.push(used);
        drop(ns);
        settle();

        // Baseline: nft -f of the same text into a fresh namespace.
        let ns = Netns::new("nftf").unwrap();
        let (start, cpu_start) = (Instant::now(), cpu(UsageWho::RUSAGE_CHILDREN));
        let out = Command::new("ip")
            .args(["netns", "exec", ns.name(), "nft", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let took = start.elapsed();
        let used = cpu(UsageWho::RUSAGE_CHILDREN) - cpu_start;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "round {round}: nft -f {took:?}, cpu {used:?} ({} rules)",
            rules_in(&ns)
        );
        nft.push(took);
        nft_cpu.push(used);
        drop(ns);
        settle();
    }
    let _ = std::fs::remove_file(&path);
    let (a, n) = (median(agent), median(nft));
    println!(
        "felix_nft: 10,000-rule ruleset: dataplane {a:?} vs nft -f {n:?} (medians of {rounds}): \
         ratio {:.2}x (goal <= 0.5x)",
        a.as_secs_f64() / n.as_secs_f64()
    );
    let (a, n) = (median(agent_cpu), median(nft_cpu));
    println!(
        "felix_nft: cpu time: dataplane {a:?} vs nft -f {n:?} (medians of {rounds}): ratio {:.2}x",
        a.as_secs_f64() / n.as_secs_f64()
    );
}
