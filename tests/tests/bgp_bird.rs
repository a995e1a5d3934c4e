//! Interop with BIRD 2: a vrouter speaker in one lab node, BIRD in another.
//!
//! ```text
//!   node 0 (10.S.T.1, fd00:76:S:T::1)  ── br0 ──  node 1 (10.S.T.2, fd00:76:S:T::2)
//!   BIRD 2                                          vrouter speaker (kernel FIB, proto 81)
//! ```
//!
//! Assertions:
//! 1. iBGP (AS 64512 both sides, BIRD active, vrouter passive — the mesh rule): Established
//!    with 4-octet AS, route refresh and graceful restart negotiated, as both sides report.
//! 2. Routes both ways: BIRD's static block reaches vrouter's Loc-RIB and kernel (proto 81,
//!    via BIRD's node); vrouter's block reaches BIRD's table with vrouter's node as next hop.
//! 3. Withdraw both ways removes the route (and the kernel route).
//! 4. eBGP (BIRD AS 64513, vrouter active): the same exchange, AS_PATH prepended.
//! 5. IPv6 prefixes over an IPv6 session (MP-BGP).
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::net::IpAddr;

use bgp_support::{CLUSTER_AS, Vrouter, config, peer};
use test_support::{BgpConfig, Bird, Lab, assert_eventually};

#[test]
fn ibgp_with_bird_exchanges_and_withdraws_routes() {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0), lab.node(1));
    let bird_cfg = BgpConfig::new(b.ip(), CLUSTER_AS)
        .neighbor(v.ip().into(), CLUSTER_AS)
        .network("10.244.2.0/26");
    let bird = Bird::start_with(b, &bird_cfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers.push(peer(b.ip().into(), CLUSTER_AS, true));
    cfg.originate.push("10.244.1.0/26".parse().unwrap());
    let vr = Vrouter::start(v, cfg);

    let status = assert_eventually!(vr.established(b.ip().into()));
    assert_eventually!(bird.established(v.ip().into()));
    let ctx = status.context.unwrap();
    assert!(ctx.ibgp() && ctx.four_octet_as && ctx.route_refresh);
    assert!(
        ctx.graceful_restart.is_some(),
        "BIRD advertises GR by default"
    );
    let caps = bird.birdc("show protocols all").unwrap();
    assert!(caps.contains("4-octet AS numbers"), "{caps}");

    // BIRD → vrouter: Loc-RIB and kernel, next hop = BIRD's node.
    let route = assert_eventually!(vr.route("10.244.2.0/26"));
    assert_eq!(route.next_hops, vec![IpAddr::V4(b.ip())]);
    let line = assert_eventually!(vr.kernel_route("10.244.2.0/26"));
    assert!(line.contains(&format!("via {}", b.ip())), "{line}");
    // vrouter → BIRD, next hop = vrouter's node.
    let text = assert_eventually!(bird.route("10.244.1.0/26"));
    assert!(text.contains(&v.ip().to_string()), "{text}");

    // Withdraw from vrouter.
    vr.withdraw("10.244.1.0/26");
    assert_eventually!(bird.route("10.244.1.0/26").is_err());
    // Withdraw from BIRD: reconfigure without its static route.
    let bare = BgpConfig::new(b.ip(), CLUSTER_AS).neighbor(v.ip().into(), CLUSTER_AS);
    bird.reconfigure(&bare.to_bird().unwrap()).unwrap();
    assert_eventually!(vr.no_route("10.244.2.0/26"));
    assert_eventually!(vr.no_kernel_route("10.244.2.0/26"));
    // The session survived all of it.
    assert!(vr.established(b.ip().into()).is_ok());
}

#[test]
fn ebgp_with_bird_prepends_and_installs() {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0), lab.node(1));
    let bird_cfg = BgpConfig::new(b.ip(), 64513)
        .passive_neighbor(v.ip().into(), CLUSTER_AS)
        .network("10.244.2.0/26");
    let bird = Bird::start_with(b, &bird_cfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers.push(peer(b.ip().into(), 64513, false));
    cfg.originate.push("10.244.1.0/26".parse().unwrap());
    let vr = Vrouter::start(v, cfg);

    let status = assert_eventually!(vr.established(b.ip().into()));
    assert!(!status.context.unwrap().ibgp());
    let text = assert_eventually!(bird.route("10.244.1.0/26"));
    assert!(text.contains("BGP.as_path: 64512"), "{text}");
    assert_eventually!(vr.kernel_route("10.244.2.0/26"));
    vr.withdraw("10.244.1.0/26");
    assert_eventually!(bird.route("10.244.1.0/26").is_err());
}

#[test]
fn ipv6_prefixes_over_mp_bgp_with_bird() {
    let lab = Lab::star(2).unwrap();
    let (b, v) = (lab.node(0), lab.node(1));
    let bird_cfg = BgpConfig::new(b.ip(), CLUSTER_AS)
        .passive_neighbor(v.ip6().into(), CLUSTER_AS)
        .network("fd10:244:2::/64");
    let bird = Bird::start_with(b, &bird_cfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers.push(peer(b.ip6().into(), CLUSTER_AS, false));
    cfg.originate.push("fd10:244:1::/64".parse().unwrap());
    let vr = Vrouter::start(v, cfg);

    let status = assert_eventually!(vr.established(b.ip6().into()));
    assert!(
        status
            .context
            .unwrap()
            .families
            .contains(bgp::wire::Family::Ipv6Unicast)
    );
    let route = assert_eventually!(vr.route("fd10:244:2::/64"));
    assert_eq!(route.next_hops, vec![IpAddr::V6(b.ip6())]);
    assert_eventually!(vr.kernel_route("fd10:244:2::/64"));
    let text = assert_eventually!(bird.route("fd10:244:1::/64"));
    assert!(text.contains(&v.ip6().to_string()), "{text}");
    vr.withdraw("fd10:244:1::/64");
    assert_eventually!(bird.route("fd10:244:1::/64").is_err());
}
