//! Interop with GoBGP (gobgpd 3.10): a vrouter speaker in one lab node, gobgpd in another.
//!
//! ```text
//!   node 0 (10.S.T.1)  ── br0 ──  node 1 (10.S.T.2)
//!   gobgpd                         vrouter speaker (kernel FIB, proto 81)
//! ```
//!
//! Assertions: iBGP and eBGP sessions reach Established with 4-octet AS, route refresh and
//! (GoBGP's default) no graceful restart negotiated; GoBGP's announcement reaches vrouter's
//! Loc-RIB and kernel, vrouter's block reaches GoBGP's RIB with vrouter's node as next hop,
//! and withdrawals on both sides remove them. IPv6 over an IPv6 session works the same way.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::net::IpAddr;

use bgp_support::{CLUSTER_AS, Vrouter, config, peer};
use test_support::{BgpConfig, GoBgp, Lab, assert_eventually};

fn exchange(remote_as: u32, vrouter_passive: bool) {
    let lab = Lab::star(2).unwrap();
    let (g, v) = (lab.node(0), lab.node(1));
    let mut gcfg = BgpConfig::new(g.ip(), remote_as).network("10.244.2.0/26");
    gcfg = if vrouter_passive {
        gcfg.neighbor(v.ip().into(), CLUSTER_AS)
    } else {
        gcfg.passive_neighbor(v.ip().into(), CLUSTER_AS)
    };
    let gobgp = GoBgp::start_with(g, &gcfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers
        .push(peer(g.ip().into(), remote_as, vrouter_passive));
    cfg.originate.push("10.244.1.0/26".parse().unwrap());
    let vr = Vrouter::start(v, cfg);

    let status = assert_eventually!(vr.established(g.ip().into()));
    assert_eventually!(gobgp.established(v.ip().into()));
    let ctx = status.context.unwrap();
    assert_eq!(ctx.ibgp(), remote_as == CLUSTER_AS);
    assert!(ctx.four_octet_as && ctx.route_refresh);

    let route = assert_eventually!(vr.route("10.244.2.0/26"));
    assert_eq!(route.next_hops, vec![IpAddr::V4(g.ip())]);
    let line = assert_eventually!(vr.kernel_route("10.244.2.0/26"));
    assert!(line.contains(&format!("via {}", g.ip())), "{line}");
    let rib = assert_eventually!(gobgp.route("10.244.1.0/26"));
    assert!(rib.contains(&v.ip().to_string()), "{rib}");

    gobgp.withdraw("10.244.2.0/26").unwrap();
    assert_eventually!(vr.no_route("10.244.2.0/26"));
    assert_eventually!(vr.no_kernel_route("10.244.2.0/26"));
    vr.withdraw("10.244.1.0/26");
    assert_eventually!(gobgp.route("10.244.1.0/26").is_err());
    assert!(vr.established(g.ip().into()).is_ok());
}

#[test]
fn ibgp_with_gobgp() {
    exchange(CLUSTER_AS, true);
}

#[test]
fn ebgp_with_gobgp() {
    exchange(64513, false);
}

#[test]
fn ipv6_over_mp_bgp_with_gobgp() {
    let lab = Lab::star(2).unwrap();
    let (g, v) = (lab.node(0), lab.node(1));
    let gcfg = BgpConfig::new(g.ip(), CLUSTER_AS)
        .passive_neighbor(v.ip6().into(), CLUSTER_AS)
        .network("fd10:244:2::/64");
    let gobgp = GoBgp::start_with(g, &gcfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers.push(peer(g.ip6().into(), CLUSTER_AS, false));
    cfg.originate.push("fd10:244:1::/64".parse().unwrap());
    let vr = Vrouter::start(v, cfg);
    assert_eventually!(vr.established(g.ip6().into()));
    let route = assert_eventually!(vr.route("fd10:244:2::/64"));
    assert_eq!(route.next_hops, vec![IpAddr::V6(g.ip6())]);
    assert_eventually!(vr.kernel_route("fd10:244:2::/64"));
    let rib = assert_eventually!(gobgp.route("fd10:244:1::/64"));
    assert!(rib.contains(&v.ip6().to_string()), "{rib}");
}
