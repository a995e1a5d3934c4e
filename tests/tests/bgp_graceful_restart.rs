//! Graceful restart (RFC 4724) between vrouter and BIRD 2, in both directions.
//!
//! ```text
//!   node 0: BIRD (graceful restart on, kernel protocol)  ── br0 ──  node 1: vrouter (proto 81)
//! ```
//!
//! 1. vrouter restarts: the old instance goes away without NOTIFICATION; BIRD keeps vrouter's
//!    route (and its kernel entry) the whole time; vrouter's kernel keeps BIRD's route across
//!    the gap; the new instance (R bit) re-learns it, and after End-of-RIB removes a leftover
//!    protocol-81 route nobody advertises any more.
//! 2. BIRD restarts (killed, started again with `-R`): vrouter keeps BIRD's route stale in its
//!    RIB and kernel while BIRD is away and through the re-established session, and it is
//!    fresh again after BIRD's End-of-RIB.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::path::Path;
use std::time::{Duration, Instant};

use bgp::speaker::Shutdown;
use bgp_support::{CLUSTER_AS, Vrouter, config, kernel_route, peer};
use test_support::{BgpConfig, Bird, ChildGuard, Lab, Node, assert_eventually, run_ok};

fn bird_config(b: &Node, v: &Node) -> String {
    BgpConfig::new(b.ip(), CLUSTER_AS)
        .passive_neighbor(v.ip().into(), CLUSTER_AS)
        .network("10.244.2.0/26")
        .install_routes(true)
        .to_bird()
        .unwrap()
        .replacen("  local as", "  graceful restart on;\n  local as", 1)
        .replace(
            "{ import none; export where source = RTS_BGP; }; }",
            "{ import none; export where source = RTS_BGP; }; graceful restart; }",
        )
}

fn vrouter(v: &Node, b: &Node, restarting: bool) -> Vrouter {
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers.push(peer(b.ip().into(), CLUSTER_AS, false));
    cfg.originate.push("10.244.1.0/26".parse().unwrap());
    if let Some(gr) = &mut cfg.graceful_restart {
        gr.restarting = restarting;
    }
    Vrouter::start(v, cfg)
}

/// Polls `check` for `period`, failing at the first miss.
fn holds_for(period: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if let Err(e) = check() {
            panic!("{what}: {e}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn vrouter_restart_keeps_routes_on_both_sides() {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0), lab.node(1));
    let bird = Bird::start(b, &bird_config(b, v)).unwrap();
    let mut old = vrouter(v, b, false);
    assert_eventually!(old.established(b.ip().into()));
    let ctx = old.peer(b.ip().into()).unwrap().context.unwrap();
    assert!(ctx.graceful_restart.unwrap().restart_time > Duration::ZERO);
    assert_eventually!(bird.route("10.244.1.0/26"));
    assert_eventually!(
        b.routes()
            .map(|t| t.contains("10.244.1.0/26"))
            .unwrap_or(false)
    );
    assert_eventually!(old.kernel_route("10.244.2.0/26"));
    // A protocol-81 route nobody will advertise again (left by "an earlier run").
    v.exec_ok(&[
        "ip",
        "route",
        "add",
        "10.244.99.0/24",
        "via",
        &b.ip().to_string(),
        "proto",
        "81",
    ])
    .unwrap();

    old.shutdown(Shutdown::Restart);
    let both_kept = || -> Result<(), String> {
        bird.route("10.244.1.0/26").map_err(|e| e.to_string())?;
        if !b
            .routes()
            .map_err(|e| e.to_string())?
            .contains("10.244.1.0/26")
        {
            return Err("BIRD's kernel lost 10.244.1.0/26".to_string());
        }
        kernel_route(v, "10.244.2.0/26").map(drop)
    };
    holds_for(Duration::from_secs(3), "while vrouter is down", both_kept);

    let new = vrouter(v, b, true);
    let mut seen_established = false;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !seen_established {
        both_kept().unwrap();
        seen_established = new.established(b.ip().into()).is_ok();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen_established, "the new instance never re-established");
    holds_for(Duration::from_secs(1), "after re-establishment", both_kept);
    let route = assert_eventually!(new.route("10.244.2.0/26"));
    assert!(!route.stale);
    // End-of-RIB from BIRD ends our restart: the leftover goes, BIRD's route stays.
    assert_eventually!(new.no_kernel_route("10.244.99.0/24"));
    assert!(new.kernel_route("10.244.2.0/26").is_ok());
}

fn birdc(socket: &Path, cmd: &str) -> String {
    run_ok(
        std::process::Command::new("birdc")
            .arg("-s")
            .arg(socket)
            .arg(cmd),
    )
    .unwrap_or_default()
}

#[test]
fn bird_restart_keeps_routes_until_end_of_rib() {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0), lab.node(1));
    let config_text = bird_config(b, v);
    let first = Bird::start(b, &config_text).unwrap();
    let vr = vrouter(v, b, false);
    assert_eventually!(vr.established(b.ip().into()));
    let line = assert_eventually!(vr.kernel_route("10.244.2.0/26"));
    assert!(line.contains(&b.ip().to_string()));

    // BIRD dies: no NOTIFICATION, the TCP connection just closes.
    run_ok(std::process::Command::new("kill").args(["-9", &first.pid().unwrap().to_string()]))
        .unwrap();
    let stale = assert_eventually!({
        let r = vr.route("10.244.2.0/26")?;
        if r.stale {
            Ok(r)
        } else {
            Err(format!("not stale yet: {r:?}"))
        }
    });
    assert_eq!(stale.next_hops, vec![std::net::IpAddr::V4(b.ip())]);
    holds_for(Duration::from_secs(2), "while BIRD is down", || {
        vr.kernel_route("10.244.2.0/26").map(drop)
    });

    // BIRD comes back in graceful-restart recovery mode (R and F bits).
    let dir = first.config_path().parent().unwrap().to_path_buf();
    let socket = dir.join("bird2.ctl");
    let mut cmd = b.command("bird");
    cmd.arg("-f")
        .arg("-R")
        .arg("-c")
        .arg(first.config_path())
        .arg("-s")
        .arg(&socket)
        .arg("-P")
        .arg(dir.join("bird2.pid"));
    let _second = ChildGuard::spawn("bird", &mut cmd, Some(&dir.join("bird2.log"))).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let mut up = false;
    while Instant::now() < until && !up {
        vr.kernel_route("10.244.2.0/26").unwrap();
        up = vr.established(b.ip().into()).is_ok();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "BIRD never came back: {}",
        birdc(&socket, "show protocols all")
    );
    let fresh = assert_eventually!({
        let r = vr.route("10.244.2.0/26")?;
        if r.stale {
            Err(format!("still stale: {r:?}"))
        } else {
            Ok(r)
        }
    });
    assert_eq!(fresh.next_hops, vec![std::net::IpAddr::V4(b.ip())]);
    assert!(vr.kernel_route("10.244.2.0/26").is_ok());
    // BIRD's End-of-RIB ends the stale period for the family.
    assert_eventually!(vr.peer(b.ip().into()).unwrap().stale_families.is_empty());
}
