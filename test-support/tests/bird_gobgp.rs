//! Interop smoke test of the BIRD and GoBGP launchers.
//!
//! ```text
//!   node 0 (BIRD, AS 64512)  ── br0 ──  node 1 (GoBGP, AS 64513)
//!   10.S.T.1, originates 10.244.1.0/26   10.S.T.2, originates 10.244.2.0/26
//! ```
//!
//! 1. the eBGP session reaches Established on both sides;
//! 2. GoBGP learns 10.244.1.0/26 with next hop 10.S.T.1;
//! 3. BIRD learns 10.244.2.0/26 and installs it into node 0's kernel (`proto bird`);
//! 4. a prefix GoBGP withdraws disappears from BIRD;
//! 5. after drop, no daemon process is left.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use test_support::{BgpConfig, Bird, GoBgp, Lab, assert_eventually, trace_init};

#[test]
fn bird_and_gobgp_exchange_routes() {
    trace_init();
    let lab = Lab::star(2).unwrap();
    let (a, b) = (lab.node(0), lab.node(1));
    let (a_ip, b_ip) = (IpAddr::V4(a.ip()), IpAddr::V4(b.ip()));

    let bird_cfg = BgpConfig::new(a.ip(), 64512)
        .neighbor(b_ip, 64513)
        .network("10.244.1.0/26")
        .install_routes(true);
    let bird = Bird::start_with(a, &bird_cfg).unwrap();
    let gobgp_cfg = BgpConfig::new(b.ip(), 64513)
        .passive_neighbor(a_ip, 64512)
        .network("10.244.2.0/26");
    let gobgp = GoBgp::start_with(b, &gobgp_cfg).unwrap();

    assert_eventually!(bird.established(b_ip), "BIRD log:\n{}", bird.log_tail(20));
    assert_eventually!(gobgp.established(a_ip));
    assert!(
        bird.protocol_established(&test_support::bgp_config::bird_protocol_name(b_ip))
            .is_ok()
    );

    let rib = assert_eventually!(gobgp.route("10.244.1.0/26"));
    assert!(rib.contains(&a.ip().to_string()), "{rib}");

    let route = assert_eventually!(bird.route("10.244.2.0/26"));
    assert!(route.contains(&format!("via {}", b.ip())), "{route}");
    let kernel = assert_eventually!({
        let table = a.routes().unwrap();
        if table.contains("10.244.2.0/26") && table.contains("proto bird") {
            Ok(table)
        } else {
            Err(format!("kernel table:\n{table}"))
        }
    });
    assert!(
        kernel.contains(&format!("10.244.2.0/26 via {}", b.ip())),
        "{kernel}"
    );

    gobgp.announce("10.244.3.0/26").unwrap();
    assert_eventually!(bird.route("10.244.3.0/26"));
    gobgp.withdraw("10.244.3.0/26").unwrap();
    assert_eventually!(bird.route("10.244.3.0/26").is_err());
    assert!(
        bird.route("10.244.3.0/26")
            .unwrap_err()
            .to_string()
            .contains("10.244.2.0/26")
    );

    let pids = [bird.pid().unwrap(), gobgp.pid().unwrap()];
    drop(bird);
    drop(gobgp);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
}

#[test]
fn bird_raw_config_and_birdc() {
    let lab = Lab::star(1).unwrap();
    let config = "router id 10.9.9.9;\nprotocol device {}\nprotocol static s4 { ipv4; route 10.244.9.0/24 blackhole; }\n";
    let mut bird = Bird::start(lab.node(0), config).unwrap();
    bird.ensure_running().unwrap();
    assert!(
        bird.birdc("show status")
            .unwrap()
            .contains("Router ID is 10.9.9.9")
    );
    assert_eventually!(
        timeout = Duration::from_secs(10),
        bird.route("10.244.9.0/24")
    );
    // birdc error replies are errors.
    assert!(bird.birdc("show nonsense").is_err());
    // Reconfiguration swaps the static route.
    bird.reconfigure(&config.replace("10.244.9.0/24", "10.244.8.0/24"))
        .unwrap();
    assert_eventually!(bird.route("10.244.8.0/24"));
    assert_eventually!(bird.route("10.244.9.0/24").is_err());
    assert!(bird.log_path().unwrap().exists());
}

#[test]
fn broken_bird_config_fails_fast_with_the_log() {
    let lab = Lab::star(1).unwrap();
    let err = Bird::start(
        lab.node(0),
        "router id 10.9.9.9;\nthis is not bird syntax;\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn daemons_and_namespaces_are_gone_after_a_panic() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let lab = Lab::star(2).unwrap();
        let bird = Bird::start_with(lab.node(0), &BgpConfig::new(lab.node(0).ip(), 64512)).unwrap();
        let gobgp =
            GoBgp::start_with(lab.node(1), &BgpConfig::new(lab.node(1).ip(), 64513)).unwrap();
        let names: Vec<String> = lab.nodes().iter().map(|n| n.name().to_string()).collect();
        tx.send((
            names,
            [bird.pid().unwrap(), gobgp.pid().unwrap()],
            bird.socket().to_path_buf(),
        ))
        .unwrap();
        panic!("scenario failed");
    });
    assert!(result.is_err());
    let (names, pids, socket) = rx.recv().unwrap();
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
    let left = test_support::netns::list_namespaces().unwrap();
    for name in names {
        assert!(!left.contains(&name), "{name} survived");
    }
    assert!(!socket.exists(), "BIRD's temp dir survived");
}

#[test]
fn broken_gobgp_config_fails_fast_with_the_log() {
    let lab = Lab::star(1).unwrap();
    let err = GoBgp::start(lab.node(0), "[global.config]\n  as = \"not a number\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gobgpd"), "{err}");
    assert!(err.contains("exited early"), "{err}");
}
