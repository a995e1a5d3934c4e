//! Route reflection interop: BIRD 2 reflecting for vrouter clients, and vrouter-reflector
//! reflecting for BIRD and GoBGP clients.
//!
//! ```text
//!   bird_reflects_for_vrouter_clients:
//!     n0 BIRD RR (cluster 10.255.0.9, add paths on) ── n1, n2, n3 vrouter speakers (kernel)
//!   vrouter_reflector_reflects_for_bird_and_gobgp:
//!     n0 vrouter-reflector (clients = Nodes in etcd) ── n1 BIRD client, n2 GoBGP client
//! ```
//!
//! Assertions:
//! 1. BIRD as reflector: each vrouter client's block reaches the other clients' kernels via
//!    its owner, carrying ORIGINATOR_ID = the owner and CLUSTER_LIST = [BIRD's cluster id]
//!    as the client decoded them; an anycast /32 announced by two clients reaches the third
//!    as two ADD-PATH paths and is installed as ECMP over both owners; withdrawing it at one
//!    owner leaves the other next hop.
//! 2. vrouter-reflector: BIRD's block reaches GoBGP and GoBGP's block reaches BIRD, each with
//!    ORIGINATOR_ID = the originating client and CLUSTER_LIST = [our cluster id], read from
//!    BIRD's `show route all` and from GoBGP's `global rib -j`.
//! 3. vrouter-reflector with vrouter clients: an anycast /32 from two clients reaches the third
//!    as two ADD-PATH paths (ECMP in its kernel), and one owner's withdraw leaves the other.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::speaker::Shutdown;
use bgp_support::{
    CLUSTER_AS, Vrouter, apply, config, etcd_store, node_yaml, peer, runtime, start_reflector,
};
use test_support::etcd::Etcd;
use test_support::{BgpConfig, Bird, GoBgp, Lab, Node, assert_eventually};

const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 9);
/// The service address two clients announce.
const ANYCAST: &str = "10.96.0.10/32";

/// Probe: the kernel route for `prefix` goes via exactly `hops` (ECMP when several).
fn kernel_hops(node: &Node, prefix: &str, hops: &[Ipv4Addr]) -> Result<(), String> {
    let out = node
        .exec_ok(&["ip", "-4", "route", "show", "exact", prefix, "proto", "81"])
        .map_err(|e| e.to_string())?;
    let mut have: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    have.sort();
    let mut want: Vec<String> = hops.iter().map(ToString::to_string).collect();
    want.sort();
    if have == want {
        Ok(())
    } else {
        Err(format!(
            "{prefix}: via {have:?}, want {want:?}; route: {out}"
        ))
    }
}

/// A vrouter speaker on each client, peering with `rr`; clients 0 and 1 announce [`ANYCAST`],
/// and with `blocks` client `i` also its block `10.244.i.0/26`.
fn start_clients(rr: &Node, clients: &[Node], blocks: bool) -> Vec<Vrouter> {
    clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut cfg = config(c, CLUSTER_AS);
            cfg.peers.push(peer(rr.ip().into(), CLUSTER_AS, false));
            if blocks {
                cfg.originate
                    .push(format!("10.244.{i}.0/26").parse().unwrap());
            }
            if i < 2 {
                cfg.originate.push(ANYCAST.parse().unwrap());
            }
            Vrouter::start(c, cfg)
        })
        .collect()
}

#[test]
fn bird_reflects_for_vrouter_clients() {
    test_support::trace_init();
    let lab = Lab::star(4).unwrap();
    let rr = lab.node(0);
    let clients = &lab.nodes()[1..];
    let mut bird_cfg = BgpConfig::new(rr.ip(), CLUSTER_AS)
        .rr_cluster_id(CLUSTER_ID)
        .add_paths(true);
    for c in clients {
        bird_cfg = bird_cfg.rr_client(c.ip().into(), CLUSTER_AS);
    }
    let bird = Bird::start_with(rr, &bird_cfg).unwrap();
    let vrouters = start_clients(rr, clients, true);
    for (vr, c) in vrouters.iter().zip(clients) {
        let status = assert_eventually!(vr.established(rr.ip().into()));
        assert!(!status.context.unwrap().add_path_receive.is_empty());
        assert_eventually!(bird.established(c.ip().into()));
    }
    for (i, node) in clients.iter().enumerate() {
        for (j, owner) in clients.iter().enumerate() {
            if i != j {
                assert_eventually!(kernel_hops(
                    node,
                    &format!("10.244.{j}.0/26"),
                    &[owner.ip()]
                ));
            }
        }
    }
    // What BIRD reflected carries ORIGINATOR_ID = the owner and CLUSTER_LIST = [BIRD's
    // cluster id], as the vrouter client decoded it.
    for (i, (vr, node)) in vrouters.iter().zip(clients).enumerate() {
        let owner = (i + 1) % clients.len();
        let prefix = format!("10.244.{owner}.0/26");
        let (originator, cluster_list) = assert_eventually!(reflection_at(vr, &prefix));
        assert_eq!(
            originator,
            Some(clients[owner].ip()),
            "{}: {prefix}",
            node.name()
        );
        assert_eq!(cluster_list, vec![CLUSTER_ID], "{}: {prefix}", node.name());
    }
    // Anycast from clients 0 and 1: client 2 gets both paths and installs ECMP.
    assert_eventually!(kernel_hops(
        &clients[2],
        ANYCAST,
        &[clients[0].ip(), clients[1].ip()]
    ));
    let route = assert_eventually!(vrouters[2].route(ANYCAST));
    assert_eq!(route.candidates, 2, "both paths survive reflection");
    vrouters[0].withdraw(ANYCAST);
    assert_eventually!(kernel_hops(&clients[2], ANYCAST, &[clients[1].ip()]));
    drop(vrouters);
}

/// ORIGINATOR_ID and CLUSTER_LIST of the best path a vrouter holds for `prefix`.
fn reflection_at(vr: &Vrouter, prefix: &str) -> Result<(Option<Ipv4Addr>, Vec<Ipv4Addr>), String> {
    let details = runtime()
        .block_on(vr.handle().route_details())
        .map_err(|e| e.to_string())?;
    let detail = details
        .iter()
        .find(|d| d.prefix.to_string() == prefix)
        .ok_or(format!("no {prefix}"))?;
    let best = detail
        .paths
        .iter()
        .find(|p| p.best)
        .ok_or(format!("no best path for {prefix}"))?;
    Ok((
        best.attributes.originator_id,
        best.attributes.cluster_list.clone(),
    ))
}

/// The value of BIRD's `BGP.<attribute>:` line in `show route all` output.
fn bird_attribute(text: &str, attribute: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("BGP.{attribute}:")))
        .map(|v| v.trim().to_string())
}

/// ORIGINATOR_ID (type 9) and CLUSTER_LIST (type 10) of GoBGP's path for `prefix`, from
/// `gobgp global rib -j`.
fn gobgp_reflection(gobgp: &GoBgp, prefix: &str) -> Result<(String, Vec<String>), String> {
    let out = gobgp
        .gobgp(&["global", "rib", "-a", "ipv4", prefix, "-j"])
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let paths = json
        .get(prefix)
        .and_then(|p| p.as_array())
        .ok_or(format!("no {prefix} in {out}"))?;
    let attrs = paths
        .first()
        .and_then(|p| p.get("attrs"))
        .and_then(|a| a.as_array())
        .ok_or(format!("no attrs in {out}"))?;
    let by_type = |t: u64| {
        attrs
            .iter()
            .find(|a| a.get("type").and_then(|v| v.as_u64()) == Some(t))
    };
    let originator = by_type(9)
        .and_then(|a| a.get("value"))
        .and_then(|v| v.as_str())
        .ok_or(format!("no ORIGINATOR_ID in {out}"))?
        .to_string();
    let cluster_list = by_type(10)
        .and_then(|a| a.get("value"))
        .and_then(|v| v.as_array())
        .ok_or(format!("no CLUSTER_LIST in {out}"))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    Ok((originator, cluster_list))
}

#[test]
fn vrouter_reflector_reflects_for_bird_and_gobgp() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let store = etcd_store(&etcd);
    let lab = Lab::star(3).unwrap();
    let (rr, b, g) = (lab.node(0), lab.node(1), lab.node(2));
    apply(
        &store,
        &(node_yaml("bird", b.ip()) + &node_yaml("gobgp", g.ip())),
    );
    let reflector = start_reflector(&store, &etcd, rr, CLUSTER_ID);

    let bird = Bird::start_with(
        b,
        &BgpConfig::new(b.ip(), CLUSTER_AS)
            .neighbor(rr.ip().into(), CLUSTER_AS)
            .network("10.244.1.0/26"),
    )
    .unwrap();
    let gobgp = GoBgp::start_with(
        g,
        &BgpConfig::new(g.ip(), CLUSTER_AS)
            .neighbor(rr.ip().into(), CLUSTER_AS)
            .network("10.244.2.0/26"),
    )
    .unwrap();
    assert_eventually!(bird.established(rr.ip().into()));
    assert_eventually!(gobgp.established(rr.ip().into()));

    // GoBGP's block at BIRD, reflected.
    let text = assert_eventually!(
        timeout = Duration::from_secs(30),
        bird.route("10.244.2.0/26")
    );
    assert_eq!(
        bird_attribute(&text, "originator_id").as_deref(),
        Some(g.ip().to_string().as_str()),
        "{text}"
    );
    assert_eq!(
        bird_attribute(&text, "cluster_list").as_deref(),
        Some(CLUSTER_ID.to_string().as_str()),
        "{text}"
    );
    assert!(
        text.contains(&format!("via {}", g.ip())),
        "next hop kept: {text}"
    );

    // BIRD's block at GoBGP, reflected.
    let (originator, cluster_list) = assert_eventually!(
        timeout = Duration::from_secs(30),
        gobgp_reflection(&gobgp, "10.244.1.0/26")
    );
    assert_eq!(originator, b.ip().to_string());
    assert_eq!(cluster_list, vec![CLUSTER_ID.to_string()]);

    // Neither client gets its own route back (ORIGINATOR_ID check on our side).
    let status = runtime()
        .block_on(reflector.handle().peer(IpAddr::V4(b.ip())))
        .unwrap()
        .unwrap();
    assert_eq!(status.routes_received, 1);
    runtime().block_on(reflector.stop(Shutdown::Stop));
}

/// 3. vrouter-reflector with vrouter clients: an anycast /32 from two clients survives
///    reflection as two ADD-PATH paths and the third client installs ECMP.
#[test]
fn vrouter_reflector_keeps_anycast_paths_with_add_path() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let store = etcd_store(&etcd);
    let lab = Lab::star(4).unwrap();
    let rr = lab.node(0);
    let clients = &lab.nodes()[1..];
    let yaml: String = clients
        .iter()
        .enumerate()
        .map(|(i, c)| node_yaml(&format!("c{i}"), c.ip()))
        .collect();
    apply(&store, &yaml);
    let reflector = start_reflector(&store, &etcd, rr, CLUSTER_ID);
    let vrouters = start_clients(rr, clients, false);
    for vr in &vrouters {
        assert_eventually!(vr.established(rr.ip().into()));
    }
    assert_eventually!(kernel_hops(
        &clients[2],
        ANYCAST,
        &[clients[0].ip(), clients[1].ip()]
    ));
    // Each anycast owner gets the other owner's path only (its own is not sent back).
    let route = assert_eventually!(vrouters[0].route(ANYCAST));
    assert_eq!(
        route.candidates, 2,
        "own + the other owner's reflected path"
    );
    vrouters[1].withdraw(ANYCAST);
    assert_eventually!(kernel_hops(&clients[2], ANYCAST, &[clients[0].ip()]));
    drop(vrouters);
    runtime().block_on(reflector.stop(Shutdown::Stop));
}
