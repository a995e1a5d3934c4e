//! 100,000 pod routes programmed by felix's route driver (`RouteTable::apply`: start-of-day
//! dump, link lookup, multi-message netlink batches) against `ip -batch` of the same routes
//! (`route add X/32 dev IF proto 80 scope link`), side by side in one run, in a throwaway
//! namespace. Goal (issue 6): driver time ≤ 0.5 × `ip -batch`. Prints one line per round
//! and the ratio of the medians.

#![allow(clippy::unwrap_used)] // a benchmark harness: a panic is the failure report

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use felix::agent::enter_netns;
use felix::driver::routes::{RouteTable, RouteTarget};
use felix::ownership::ROUTE_PROTO_AGENT;
use ipnetwork::IpNetwork;
use test_support::Netns;

const ROUTES: u32 = 100_000;
const ROUNDS: usize = 3;
const IFACE: &str = "vr00000000bench";

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i)
}

fn count(ns: &Netns) -> usize {
    ns.ip(&["route", "show", "proto", "80"])
        .unwrap()
        .lines()
        .count()
}

fn flush(ns: &Netns) {
    ns.ip(&["route", "flush", "proto", "80"]).unwrap();
    assert_eq!(count(ns), 0);
}

fn driver_round(ns: &Netns) -> Duration {
    let path = format!("/var/run/netns/{}", ns.name());
    // The table's socket is opened inside the namespace; everything else is timed.
    let mut table = std::thread::spawn(move || {
        enter_netns(Path::new(&path)).unwrap();
        RouteTable::new(ROUTE_PROTO_AGENT).unwrap()
    })
    .join()
    .unwrap();
    let start = Instant::now();
    for i in 0..ROUTES {
        table.set_route(
            IpNetwork::new(addr(i).into(), 32).unwrap(),
            RouteTarget::Device(IFACE.into()),
        );
    }
    let report = table.apply().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(report.added, ROUTES as usize, "{report:?}");
    elapsed
}

fn ip_batch_round(ns: &Netns, batch: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new("ip")
        .args(["-n", ns.name(), "-batch"])
        .arg(batch)
        .status()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(status.success());
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let ns = Netns::new("benchrt").unwrap();
    // No `dummy` driver on every kernel: a veth pair with both ends up in the namespace.
    ns.ip(&[
        "link",
        "add",
        IFACE,
        "type",
        "veth",
        "peer",
        "name",
        "vrbenchpeer",
    ])
    .unwrap();
    ns.set_up("vrbenchpeer").unwrap();
    ns.set_up(IFACE).unwrap();

    let batch = std::env::temp_dir().join(format!("felix-routes-{}.batch", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&batch).unwrap());
    for i in 0..ROUTES {
        writeln!(
            file,
            "route add {}/32 dev {IFACE} proto 80 scope link",
            addr(i)
        )
        .unwrap();
    }
    file.flush().unwrap();
    drop(file);

    let mut driver = Vec::new();
    let mut baseline = Vec::new();
    for round in 1..=ROUNDS {
        let d = driver_round(&ns);
        assert_eq!(count(&ns), ROUTES as usize);
        flush(&ns);
        let b = ip_batch_round(&ns, &batch);
        assert_eq!(count(&ns), ROUTES as usize);
        flush(&ns);
        println!(
            "felix_routes round {round}: route driver {:.3} s ({:.0} routes/s), ip -batch {:.3} s ({:.0} routes/s)",
            d.as_secs_f64(),
            f64::from(ROUTES) / d.as_secs_f64(),
            b.as_secs_f64(),
            f64::from(ROUTES) / b.as_secs_f64(),
        );
        driver.push(d);
        baseline.push(b);
    }
    std::fs::remove_file(&batch).unwrap();
    let (d, b) = (median(driver), median(baseline));
    println!(
        "felix_routes: {ROUTES} pod routes, median route driver {:.3} s vs ip -batch {:.3} s: ratio {:.2}x (goal <= 0.50x)",
        d.as_secs_f64(),
        b.as_secs_f64(),
        d.as_secs_f64() / b.as_secs_f64()
    );
}
