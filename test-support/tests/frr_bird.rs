//! Interop smoke test of the FRR launcher against BIRD.
//!
//! ```text
//!   node 0 (FRR zebra+bgpd, AS 64512) ── br0 ── node 1 (BIRD, AS 64512, passive)
//!   originates 10.244.5.0/26 + fd10:5::/64    originates 10.244.6.0/26 + fd10:6::/64
//! ```
//!
//! 1. the iBGP sessions (IPv4 and IPv6 neighbors) reach Established;
//! 2. BIRD learns FRR's prefixes, FRR learns BIRD's;
//! 3. zebra installs BIRD's IPv4 prefix into node 0's kernel (`proto bgp`);
//! 4. after drop, zebra and bgpd are gone and the state dir is removed.

use std::net::IpAddr;
use std::path::Path;

use test_support::{BgpConfig, Bird, Frr, Lab, assert_eventually, trace_init};

#[test]
fn frr_and_bird_exchange_routes() {
    trace_init();
    let lab = Lab::star(2).unwrap();
    let (a, b) = (lab.node(0), lab.node(1));
    let (a_ip, b_ip) = (IpAddr::V4(a.ip()), IpAddr::V4(b.ip()));
    let (a_ip6, b_ip6) = (IpAddr::V6(a.ip6()), IpAddr::V6(b.ip6()));

    let frr_cfg = BgpConfig::new(a.ip(), 64512)
        .neighbor(b_ip, 64512)
        .neighbor(b_ip6, 64512)
        .network("10.244.5.0/26")
        .network("fd10:5::/64");
    let frr = Frr::start_with(a, &frr_cfg).unwrap();
    let bird_cfg = BgpConfig::new(b.ip(), 64512)
        .passive_neighbor(a_ip, 64512)
        .passive_neighbor(a_ip6, 64512)
        .network("10.244.6.0/26")
        .network("fd10:6::/64");
    let bird = Bird::start_with(b, &bird_cfg).unwrap();

    assert_eventually!(frr.established(b_ip), "FRR logs:\n{}", frr.log_tail(20));
    assert_eventually!(frr.established(b_ip6));
    assert_eventually!(bird.established(a_ip));

    let route = assert_eventually!(bird.route("10.244.5.0/26"));
    assert!(route.contains(&format!("via {}", a.ip())), "{route}");
    assert_eventually!(bird.route("fd10:5::/64"));
    assert_eventually!(frr.route("10.244.6.0/26"));
    assert_eventually!(frr.route("fd10:6::/64"));
    assert!(frr.route("10.244.7.0/26").is_err());

    let kernel = assert_eventually!({
        let table = a.routes().unwrap();
        if table.lines().any(|l| l.starts_with("10.244.6.0/26")) {
            Ok(table)
        } else {
            Err(format!("kernel table:\n{table}"))
        }
    });
    let line = kernel
        .lines()
        .find(|l| l.starts_with("10.244.6.0/26"))
        .unwrap();
    assert!(line.contains(&format!("via {} dev eth0", b.ip())), "{line}");
    assert!(line.contains("proto bgp"), "{line}");

    let json = frr.vtysh_json("show bgp summary json").unwrap();
    assert_eq!(json["ipv4Unicast"]["as"], 64512, "{json}");

    let dir = frr.dir().to_path_buf();
    let pids = frr.pids();
    drop(frr);
    for pid in pids.into_iter().flatten() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
    assert!(!dir.exists());
}
