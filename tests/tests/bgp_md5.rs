//! TCP-MD5 (RFC 2385) between vrouter and BIRD 2: the right key establishes, a wrong key
//! never does, whichever side connects (the kernel drops unsigned or mis-signed segments, so not even a TCP
//! handshake completes), and no key on our side against a keyed BIRD fails the same way.
//!
//! ```text
//!   node 0 BIRD (password "s3cret")  ── br0 ──  node 1 vrouter (key under test)
//! ```
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::time::{Duration, Instant};

use bgp_support::{CLUSTER_AS, Vrouter, config, peer};
use test_support::{BgpConfig, Bird, Lab, assert_eventually};

/// BIRD config with a TCP-MD5 password on its one session.
fn bird_with_password(cfg: &BgpConfig, password: &str) -> String {
    let text = cfg.to_bird().unwrap();
    text.replacen(
        "  local as",
        &format!("  password \"{password}\";\n  local as"),
        1,
    )
}

fn session(key: Option<&str>, passive: bool) -> (Lab, Bird, Vrouter) {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0).clone(), lab.node(1).clone());
    let bird_cfg = BgpConfig::new(b.ip(), CLUSTER_AS)
        .neighbor(v.ip().into(), CLUSTER_AS)
        .network("10.244.2.0/26");
    let bird = Bird::start(&b, &bird_with_password(&bird_cfg, "s3cret")).unwrap();
    let mut cfg = config(&v, CLUSTER_AS);
    let mut p = peer(b.ip().into(), CLUSTER_AS, passive);
    p.password = key.map(str::to_string);
    cfg.peers.push(p);
    let vr = Vrouter::start(&v, cfg);
    (lab, bird, vr)
}

#[test]
fn right_key_establishes_when_we_connect() {
    right_key_establishes(false);
}

#[test]
fn right_key_establishes_when_bird_connects() {
    // The key sits on our listening socket.
    right_key_establishes(true);
}

fn right_key_establishes(passive: bool) {
    let (lab, bird, vr) = session(Some("s3cret"), passive);
    let (b, v) = (lab.node(0), lab.node(1));
    assert_eventually!(vr.established(b.ip().into()));
    assert_eventually!(bird.established(v.ip().into()));
    assert_eventually!(vr.kernel_route("10.244.2.0/26"));
}

fn never_establishes(key: Option<&str>) {
    let (lab, bird, vr) = session(key, false);
    let (b, v) = (lab.node(0), lab.node(1));
    // Both sides retry every second; give them many attempts.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert!(vr.established(b.ip().into()).is_err());
        assert!(bird.established(v.ip().into()).is_err());
        std::thread::sleep(Duration::from_millis(250));
    }
    let status = vr.peer(b.ip().into()).unwrap();
    assert!(status.context.is_none() && status.routes_received == 0);
}

#[test]
fn wrong_key_never_establishes() {
    never_establishes(Some("wrong"));
}

#[test]
fn missing_key_never_establishes() {
    never_establishes(None);
}
