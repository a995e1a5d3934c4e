//! One label change, datastore event → kernel updated, in process: the update is fed to
//! felix's calc (`Calc::on_update`), flushed through the sequencer into the nftables policy
//! dataplane, and the clock stops when `apply` returns (the kernel has acknowledged the
//! batch). 1,000 policies; 1,000 vs 10,000 endpoints in the cluster, a tenth of them local
//! (100 vs 1,000 workload interfaces on this node). Two kinds of change, alternated back and
//! forth: a remote endpoint's label (set elements only) and a local endpoint's label (set
//! elements and that endpoint's chains). Goal (issue 6): < 1 ms median, not growing with the
//! number of endpoints. Prints median and p90 per case.

#![allow(clippy::unwrap_used)] // a benchmark harness: a panic is the failure report

use std::path::Path;
use std::time::{Duration, Instant};

use datastore::resource::{Resource, parse_documents};
use datastore::resource_store::key_of;
use datastore::syncer::Update;
use felix::agent::enter_netns;
use felix::calc::{Calc, Output, Value};
use felix::nft::PolicyDataplane;
use felix::sequencer::Sequencer;
use test_support::Netns;

const NODE: &str = "bench-node";
const POLICIES: usize = 1_000;
const APPS: usize = 200;
const NAMESPACES: usize = 10;
const CHANGES: usize = 200;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256)
}

fn endpoint(i: usize, local: bool, app: usize) -> Resource {
    let spec = if local {
        format!("node: {NODE}, interfaceName: vr{i:011x}, ")
    } else {
        "node: other, ".to_string()
    };
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
         metadata: {{name: w{i}, namespace: ns{}, labels: {{app: app{app}}}}}\n\
         spec: {{{spec}ipNetworks: [{}/32]}}\n",
        i % NAMESPACES,
        ip(i)
    );
    parse_documents(&yaml).unwrap().remove(0)
}

fn resources(endpoints: usize) -> Vec<Resource> {
    let mut y = String::new();
    for n in 0..NAMESPACES {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n"
        ));
    }
    for p in 0..POLICIES {
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
             metadata: {{name: p{p}}}\nspec:\n  order: {p}\n  selector: app == 'app{}'\n  ingress:\n  \
             - {{action: Allow, protocol: TCP, source: {{selector: app == 'app{}'}}, destination: {{ports: [{}]}}}}\n",
            p % APPS,
            (p + 1) % APPS,
            1000 + p % 50
        ));
    }
    let mut out = parse_documents(&y).unwrap();
    for i in 0..endpoints {
        out.push(endpoint(i, i % 10 == 0, i % APPS));
    }
    out
}

fn update(r: Resource) -> Update<Value> {
    Update {
        key: key_of(&r),
        value: Some(Value::Resource(r)),
        revision: 1,
    }
}

/// Calc → sequencer → dataplane, as the agent's two threads do it, minus the channel.
/// Returns the time spent in the dataplane's `apply` (render, plan, batch, kernel ack).
fn pump(calc: &mut Calc, seq: &mut Sequencer, dp: &mut PolicyDataplane) -> Duration {
    for o in calc.flush() {
        seq.push(o);
    }
    for o in seq.flush() {
        if let Output::Policy(p) = o {
            dp.set_desired(*p);
        }
    }
    let start = Instant::now();
    dp.apply().unwrap();
    start.elapsed()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Case {
    endpoints: usize,
    load: Duration,
    remote: Vec<Duration>,
    local: Vec<Duration>,
    /// Of each, the part spent in the dataplane's apply.
    remote_apply: Vec<Duration>,
    local_apply: Vec<Duration>,
}

fn run(endpoints: usize) -> Case {
    let ns = Netns::new("felixlbl").unwrap();
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        enter_netns(Path::new(&path)).unwrap();
        let mut calc = Calc::new(NODE);
        let mut seq = Sequencer::new();
        seq.set_in_sync();
        let mut dp = PolicyDataplane::new().unwrap();
        let start = Instant::now();
        for r in resources(endpoints) {
            calc.on_update(update(r));
        }
        pump(&mut calc, &mut seq, &mut dp);
        let load = start.elapsed();
        // Remote endpoint 1 (app1) and local endpoint 0 (app0) flip between two apps.
        let (mut remote, mut local) = (Vec::new(), Vec::new());
        let (mut remote_apply, mut local_apply) = (Vec::new(), Vec::new());
        for n in 0..CHANGES {
            let app = if n % 2 == 0 { 7 } else { 1 };
            let change = update(endpoint(1, false, app));
            let start = Instant::now();
            calc.on_update(change);
            remote_apply.push(pump(&mut calc, &mut seq, &mut dp));
            remote.push(start.elapsed());

            let app = if n % 2 == 0 { 7 } else { 0 };
            let change = update(endpoint(0, true, app));
            let start = Instant::now();
            calc.on_update(change);
            local_apply.push(pump(&mut calc, &mut seq, &mut dp));
            local.push(start.elapsed());
        }
        Case {
            endpoints,
            load,
            remote,
            local,
            remote_apply,
            local_apply,
        }
    })
    .join()
    .unwrap()
}

fn main() {
    let mut medians = Vec::new();
    for endpoints in [1_000, 10_000] {
        let mut c = run(endpoints);
        let (rm, r90) = (
            percentile(&mut c.remote, 0.5),
            percentile(&mut c.remote, 0.9),
        );
        let (lm, l90) = (percentile(&mut c.local, 0.5), percentile(&mut c.local, 0.9));
        let ra = percentile(&mut c.remote_apply, 0.5);
        let la = percentile(&mut c.local_apply, 0.5);
        println!(
            "felix_label: {} endpoints ({} local), {POLICIES} policies, initial load {:?}: \
             remote label change median {rm:?} p90 {r90:?} (apply {ra:?}); \
             local label change median {lm:?} p90 {l90:?} (apply {la:?}) ({CHANGES} each)",
            c.endpoints,
            c.endpoints / 10,
            c.load
        );
        medians.push((rm, lm));
    }
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "felix_label: 10k / 1k endpoints: remote {:.2}x, local {:.2}x (goal: < 1 ms median, flat)",
        ratio(medians[0].0, medians[1].0),
        ratio(medians[0].1, medians[1].1)
    );
}
