//! Interop with FRR 8.4 (bgpd + zebra): a vrouter speaker in one lab node, FRR in another.
//!
//! ```text
//!   node 0 (10.S.T.1)  ── br0 ──  node 1 (10.S.T.2)
//!   FRR (zebra installs)           vrouter speaker (kernel FIB, proto 81)
//! ```
//!
//! Assertions: iBGP and eBGP sessions reach Established with 4-octet AS and route refresh;
//! FRR's `network` reaches vrouter's Loc-RIB and kernel; vrouter's block reaches FRR's BGP
//! table and, through zebra, FRR's kernel; withdrawals remove them on both sides.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::net::IpAddr;

use bgp_support::{CLUSTER_AS, Vrouter, config, peer};
use test_support::{BgpConfig, Frr, Lab, assert_eventually};

fn exchange(remote_as: u32, vrouter_passive: bool) {
    let lab = Lab::star(2).unwrap();
    let (f, v) = (lab.node(0), lab.node(1));
    let mut fcfg = BgpConfig::new(f.ip(), remote_as).network("10.244.2.0/26");
    fcfg = if vrouter_passive {
        fcfg.neighbor(v.ip().into(), CLUSTER_AS)
    } else {
        fcfg.passive_neighbor(v.ip().into(), CLUSTER_AS)
    };
    let frr = Frr::start_with(f, &fcfg).unwrap();
    let mut cfg = config(v, CLUSTER_AS);
    cfg.peers
        .push(peer(f.ip().into(), remote_as, vrouter_passive));
    cfg.originate.push("10.244.1.0/26".parse().unwrap());
    let vr = Vrouter::start(v, cfg);

    let status = assert_eventually!(vr.established(f.ip().into()));
    assert_eventually!(frr.established(v.ip().into()));
    let ctx = status.context.unwrap();
    assert_eq!(ctx.ibgp(), remote_as == CLUSTER_AS);
    assert!(ctx.four_octet_as && ctx.route_refresh);
    let json = frr
        .vtysh_json(&format!("show bgp neighbors {} json", v.ip()))
        .unwrap();
    let caps = json[v.ip().to_string()]["neighborCapabilities"].to_string();
    assert!(caps.contains("4byteAs"), "{caps}");

    let route = assert_eventually!(vr.route("10.244.2.0/26"));
    assert_eq!(route.next_hops, vec![IpAddr::V4(f.ip())]);
    assert_eventually!(vr.kernel_route("10.244.2.0/26"));
    let text = assert_eventually!(frr.route("10.244.1.0/26"));
    assert!(text.contains(&v.ip().to_string()), "{text}");
    // zebra installed it in FRR's kernel.
    assert_eventually!(
        f.routes()
            .map(|t| t.contains("10.244.1.0/26"))
            .unwrap_or(false)
    );

    frr.vtysh(&format!(
        "configure terminal\nrouter bgp {remote_as}\naddress-family ipv4 unicast\nno network 10.244.2.0/26"
    ))
    .unwrap();
    assert_eventually!(vr.no_route("10.244.2.0/26"));
    assert_eventually!(vr.no_kernel_route("10.244.2.0/26"));
    vr.withdraw("10.244.1.0/26");
    assert_eventually!(frr.route("10.244.1.0/26").is_err());
    assert!(vr.established(f.ip().into()).is_ok());
}

#[test]
fn ibgp_with_frr() {
    exchange(CLUSTER_AS, true);
}

#[test]
fn ebgp_with_frr() {
    exchange(64513, false);
}
