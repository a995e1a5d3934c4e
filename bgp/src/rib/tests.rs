//! RIB tests: table-driven best path asserting the deciding step, ECMP, Adj-RIB-In/Loc-RIB
//! behaviour, graceful-restart stale handling, and a property that selection is independent of
//! the order routes arrive and leave.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::*;
use crate::wire::{AsPath, AsPathSegment, Origin};

mod adj_rib_out;
mod adj_rib_out_bits;

const LOCAL_AS: u32 = 64512;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn peer(last: u8, asn: u32) -> PeerInfo {
    PeerInfo {
        address: IpAddr::V4(ip(last)),
        router_id: ip(last),
        asn,
        ibgp: asn == LOCAL_AS,
        rr_client: false,
    }
}

fn attrs(next_hop: u8) -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        next_hop: Some(ip(next_hop)),
        local_pref: Some(100),
        ..PathAttributes::default()
    }
}

/// A route from iBGP peer 10.0.0.`last`, next hop = the peer.
fn path(last: u8) -> Path {
    let a = Arc::new(attrs(last));
    Path {
        source: PathSource::Peer(Arc::new(peer(last, LOCAL_AS))),
        path_id: 0,
        next_hop: a.next_hop.map(IpAddr::V4),
        attributes: a,
        igp_cost: None,
        stale: false,
    }
}

fn with(mut p: Path, f: impl FnOnce(&mut Path, &mut PathAttributes)) -> Path {
    let mut a = (*p.attributes).clone();
    f(&mut p, &mut a);
    p.attributes = Arc::new(a);
    p
}

fn ebgp(p: Path, asn: u32) -> Path {
    let PathSource::Peer(info) = &p.source else {
        return p;
    };
    let mut info = (**info).clone();
    info.asn = asn;
    info.ibgp = false;
    Path {
        source: PathSource::Peer(Arc::new(info)),
        ..p
    }
}

fn seq(asns: &[u32]) -> AsPath {
    AsPath::sequence(asns)
}

#[test]
fn best_path_table_names_the_deciding_step() {
    let local = Path {
        source: PathSource::Local {
            router_id: LOCAL_ID,
        },
        ..path(100)
    };
    let always_med = BestPathConfig {
        always_compare_med: true,
        ..BestPathConfig::default()
    };
    let missing_worst = BestPathConfig {
        med_missing_as_worst: true,
        ..BestPathConfig::default()
    };
    let default = BestPathConfig::default();
    // (case, preferred, other, config, deciding step)
    let table: Vec<(&str, Path, Path, &BestPathConfig, DecisionStep)> = vec![
        (
            "local route first",
            local.clone(),
            with(path(2), |_, a| a.local_pref = Some(500)),
            &default,
            DecisionStep::LocalOrigin,
        ),
        (
            "higher local pref",
            with(path(2), |_, a| a.local_pref = Some(200)),
            path(1),
            &default,
            DecisionStep::LocalPref,
        ),
        (
            "missing local pref is 100",
            with(path(2), |_, a| a.local_pref = None),
            with(path(1), |_, a| a.local_pref = Some(99)),
            &default,
            DecisionStep::LocalPref,
        ),
        (
            "local pref before path length",
            with(path(2), |_, a| {
                a.local_pref = Some(200);
                a.as_path = seq(&[1, 2, 3])
            }),
            path(1),
            &default,
            DecisionStep::LocalPref,
        ),
        (
            "shorter as path",
            with(path(2), |_, a| a.as_path = seq(&[65001])),
            with(path(1), |_, a| a.as_path = seq(&[65001, 65002])),
            &default,
            DecisionStep::AsPathLength,
        ),
        (
            "as set counts one",
            with(path(2), |_, a| {
                a.as_path = AsPath {
                    segments: vec![
                        AsPathSegment::Sequence(vec![1]),
                        AsPathSegment::Set(vec![2, 3, 4]),
                    ],
                }
            }),
            with(path(1), |_, a| a.as_path = seq(&[1, 2, 3])),
            &default,
            DecisionStep::AsPathLength,
        ),
        (
            "lower origin",
            path(2),
            with(path(1), |_, a| a.origin = Origin::Incomplete),
            &default,
            DecisionStep::Origin,
        ),
        (
            "egp before incomplete",
            with(path(2), |_, a| a.origin = Origin::Egp),
            with(path(1), |_, a| a.origin = Origin::Incomplete),
            &default,
            DecisionStep::Origin,
        ),
        (
            "lower med same neighbor as",
            with(path(2), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(10)
            }),
            with(path(1), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(20)
            }),
            &default,
            DecisionStep::Med,
        ),
        (
            "med not compared across neighbor ases",
            with(path(1), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(50)
            }),
            with(path(2), |_, a| {
                a.as_path = seq(&[65002]);
                a.med = Some(10)
            }),
            &default,
            DecisionStep::RouterId,
        ),
        (
            "always compare med",
            with(path(2), |_, a| {
                a.as_path = seq(&[65002]);
                a.med = Some(10)
            }),
            with(path(1), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(50)
            }),
            &always_med,
            DecisionStep::Med,
        ),
        (
            "missing med is zero",
            with(path(2), |_, a| a.as_path = seq(&[65001])),
            with(path(1), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(5)
            }),
            &default,
            DecisionStep::Med,
        ),
        (
            "missing med as worst",
            with(path(2), |_, a| {
                a.as_path = seq(&[65001]);
                a.med = Some(5)
            }),
            with(path(1), |_, a| a.as_path = seq(&[65001])),
            &missing_worst,
            DecisionStep::Med,
        ),
        (
            "ebgp over ibgp",
            ebgp(path(2), 65001),
            path(1),
            &default,
            DecisionStep::EbgpOverIbgp,
        ),
        (
            "lower igp cost",
            with(path(2), |p, _| p.igp_cost = Some(10)),
            with(path(1), |p, _| p.igp_cost = Some(20)),
            &default,
            DecisionStep::IgpCost,
        ),
        (
            "igp cost ignored unless known for both",
            path(1),
            with(path(2), |p, _| p.igp_cost = Some(1)),
            &default,
            DecisionStep::RouterId,
        ),
        (
            "lower router id",
            path(1),
            path(2),
            &default,
            DecisionStep::RouterId,
        ),
        (
            "originator id stands for router id",
            path(2),
            with(path(1), |_, a| a.originator_id = Some(ip(9))),
            &default,
            DecisionStep::RouterId,
        ),
        (
            "shorter cluster list",
            with(path(2), |_, a| {
                a.originator_id = Some(ip(7));
                a.cluster_list = vec![ip(50)]
            }),
            with(path(1), |_, a| {
                a.originator_id = Some(ip(7));
                a.cluster_list = vec![ip(50), ip(51)]
            }),
            &default,
            DecisionStep::ClusterListLength,
        ),
        (
            "lower peer address",
            with(path(1), |_, a| a.originator_id = Some(ip(7))),
            with(path(2), |_, a| a.originator_id = Some(ip(7))),
            &default,
            DecisionStep::PeerAddress,
        ),
        (
            "lower path id",
            with(path(1), |p, _| p.path_id = 1),
            with(path(1), |p, _| p.path_id = 2),
            &default,
            DecisionStep::PathId,
        ),
    ];
    for (case, preferred, other, config, step) in table {
        assert_eq!(
            compare(&preferred, &other, config),
            (Ordering::Less, step),
            "{case}"
        );
        assert_eq!(
            compare(&other, &preferred, config),
            (Ordering::Greater, step),
            "{case} (swapped)"
        );
    }
}

#[test]
fn single_route_is_decided_by_only_path() {
    let s = select(&[path(1)], &BestPathConfig::default()).unwrap();
    assert_eq!(
        (s.best, s.step, s.multipath),
        (0, DecisionStep::OnlyPath, vec![0])
    );
    assert_eq!(select(&[], &BestPathConfig::default()), None);
}

#[test]
fn non_transitive_med_is_resolved_by_elimination_in_any_order() {
    // r1 and r3 share neighbor AS 100 (r3's lower MED removes r1); r2 comes from AS 200.
    // Pairwise: r1 beats r2 (router id), r3 beats r1 (MED), r2 beats r3 (router id): a cycle.
    let r1 = with(path(1), |_, a| {
        a.as_path = seq(&[100]);
        a.med = Some(20)
    });
    let r2 = with(path(2), |_, a| {
        a.as_path = seq(&[200]);
        a.med = Some(10)
    });
    let r3 = with(path(3), |_, a| {
        a.as_path = seq(&[100]);
        a.med = Some(10)
    });
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let all = [r1, r2, r3];
    for order in orders {
        let paths: Vec<Path> = order.iter().map(|i| all[*i].clone()).collect();
        let s = select(&paths, &BestPathConfig::default()).unwrap();
        assert_eq!(paths[s.best].source.router_id(), ip(2), "order {order:?}");
        assert_eq!(s.step, DecisionStep::RouterId);
    }
}

#[test]
fn ecmp_set_holds_equal_routes_with_distinct_next_hops() {
    let same_nh_as_1 = with(path(4), |p, _| p.next_hop = Some(IpAddr::V4(ip(1))));
    let worse = with(path(5), |_, a| a.local_pref = Some(50));
    let paths = vec![path(3), worse, path(1), same_nh_as_1, path(2)];
    let s = select(&paths, &BestPathConfig::default()).unwrap();
    assert_eq!(paths[s.best].source.router_id(), ip(1));
    let ids: Vec<Ipv4Addr> = s
        .multipath
        .iter()
        .map(|i| paths[*i].source.router_id())
        .collect();
    assert_eq!(ids, vec![ip(1), ip(2), ip(3)]);
    let one = BestPathConfig {
        max_paths: 2,
        ..BestPathConfig::default()
    };
    assert_eq!(select(&paths, &one).unwrap().multipath.len(), 2);
}

#[test]
fn ecmp_excludes_routes_with_higher_igp_cost() {
    let paths = vec![
        with(path(1), |p, _| p.igp_cost = Some(10)),
        with(path(2), |p, _| p.igp_cost = Some(10)),
        with(path(3), |p, _| p.igp_cost = Some(11)),
    ];
    let s = select(&paths, &BestPathConfig::default()).unwrap();
    assert_eq!(s.multipath, vec![0, 1]);
}

// --- Rib ---

fn rib() -> Rib {
    let mut rib = Rib::new(LOCAL_AS, LOCAL_ID, BestPathConfig::default());
    for last in 1..=3 {
        rib.peer_up(peer(last, LOCAL_AS));
    }
    rib
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(ip(last))
}

fn announce(next_hop: u8, prefixes: &[&str]) -> Update {
    Update::announce(
        attrs(next_hop),
        prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
    )
}

#[test]
fn update_selects_best_and_reports_the_change() {
    let mut rib = rib();
    let changes = rib
        .apply_update(addr(2), &announce(2, &["10.244.1.0/26"]))
        .unwrap();
    assert_eq!(changes.len(), 1);
    let best = changes[0].best.as_ref().unwrap();
    assert_eq!(best.step, DecisionStep::OnlyPath);
    assert_eq!(best.path.next_hop, Some(addr(2)));
    let changes = rib
        .apply_update(addr(1), &announce(1, &["10.244.1.0/26"]))
        .unwrap();
    let best = changes[0].best.as_ref().unwrap();
    assert_eq!(best.path.source.address(), Some(addr(1)));
    assert_eq!(best.step, DecisionStep::RouterId);
    assert_eq!(
        best.multipath.len(),
        2,
        "equal iBGP routes form an ECMP set"
    );
}

#[test]
fn withdraw_falls_back_to_the_next_best_route() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26"]))
        .unwrap();
    rib.apply_update(addr(2), &announce(2, &["10.244.1.0/26"]))
        .unwrap();
    let changes = rib
        .apply_update(
            addr(1),
            &Update::withdraw(vec![Nlri::new(pfx("10.244.1.0/26"))]),
        )
        .unwrap();
    assert_eq!(
        changes[0].best.as_ref().unwrap().path.source.address(),
        Some(addr(2))
    );
    let changes = rib
        .apply_update(
            addr(2),
            &Update::withdraw(vec![Nlri::new(pfx("10.244.1.0/26"))]),
        )
        .unwrap();
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: pfx("10.244.1.0/26"),
            best: None,
            best_changed: true,
        }]
    );
    assert!(rib.loc_rib().is_empty());
}

#[test]
fn withdrawing_an_unknown_route_changes_nothing() {
    let mut rib = rib();
    let changes = rib
        .apply_update(
            addr(1),
            &Update::withdraw(vec![Nlri::new(pfx("10.9.0.0/16"))]),
        )
        .unwrap();
    assert!(changes.is_empty());
}

#[test]
fn add_path_routes_from_one_peer_are_kept_apart() {
    let mut rib = rib();
    let p = pfx("10.244.3.0/26");
    rib.apply_update(
        addr(1),
        &Update::announce(attrs(4), vec![Nlri::with_path_id(p, 1)]),
    )
    .unwrap();
    rib.apply_update(
        addr(1),
        &Update::announce(attrs(5), vec![Nlri::with_path_id(p, 2)]),
    )
    .unwrap();
    assert_eq!(rib.adj_rib_in(addr(1)).unwrap().len(), 2);
    assert_eq!(rib.loc_rib().get(&p).unwrap().paths().len(), 2);
    let best = rib.best(&p).unwrap();
    assert_eq!(best.path_id, 1);
    assert_eq!(
        rib.loc_rib().get(&p).unwrap().step(),
        Some(DecisionStep::PathId)
    );
    rib.apply_update(addr(1), &Update::withdraw(vec![Nlri::with_path_id(p, 1)]))
        .unwrap();
    assert_eq!(rib.best(&p).unwrap().path_id, 2);
}

#[test]
fn a_new_announcement_implicitly_replaces_the_old() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.1.0.0/24"]))
        .unwrap();
    let mut better = attrs(1);
    better.local_pref = Some(300);
    let changes = rib
        .apply_update(
            addr(1),
            &Update::announce(better, vec![Nlri::new(pfx("10.1.0.0/24"))]),
        )
        .unwrap();
    assert_eq!(
        changes[0].best.as_ref().unwrap().path.attributes.local_pref,
        Some(300)
    );
    assert_eq!(
        rib.loc_rib()
            .get(&pfx("10.1.0.0/24"))
            .unwrap()
            .paths()
            .len(),
        1
    );
    // Re-sending identical attributes changes nothing.
    let again = rib
        .apply_update(
            addr(1),
            &Update::announce(
                rib.best(&pfx("10.1.0.0/24"))
                    .unwrap()
                    .attributes
                    .as_ref()
                    .clone(),
                vec![Nlri::new(pfx("10.1.0.0/24"))],
            ),
        )
        .unwrap();
    assert!(again.is_empty());
}

#[test]
fn treat_as_withdraw_update_removes_the_route() {
    use crate::wire::{CodecContext, Message, decode_message};
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.5.0/26"]))
        .unwrap();
    // reference/bgp.md §6.7: ORIGIN=5 for 10.244.5.0/26 (treat-as-withdraw).
    let bytes = crate::wire::tests::hex(
        "ffffffffffffffffffffffffffffffff00310200000015400101054002004003040a000004400504000000641a0af40500",
    );
    let ctx = CodecContext {
        four_octet_as: true,
        ibgp: true,
        ..CodecContext::default()
    };
    let Message::Update(update) = decode_message(&bytes, &ctx).unwrap() else {
        panic!()
    };
    let changes = rib.apply_update(addr(1), &update).unwrap();
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: pfx("10.244.5.0/26"),
            best: None,
            best_changed: true,
        }]
    );
}

#[test]
fn ebgp_route_carrying_our_as_is_not_used() {
    let mut rib = rib();
    rib.peer_up(peer(9, 65009));
    let mut a = attrs(9);
    a.as_path = seq(&[65009, LOCAL_AS]);
    let changes = rib
        .apply_update(
            addr(9),
            &Update::announce(a, vec![Nlri::new(pfx("10.7.0.0/16"))]),
        )
        .unwrap();
    assert!(changes.is_empty());
    assert!(rib.best(&pfx("10.7.0.0/16")).is_none());
}

#[test]
fn ibgp_route_with_our_originator_id_is_not_used() {
    let mut rib = rib();
    let mut a = attrs(1);
    a.originator_id = Some(LOCAL_ID);
    rib.apply_update(
        addr(1),
        &Update::announce(a, vec![Nlri::new(pfx("10.8.0.0/16"))]),
    )
    .unwrap();
    assert!(rib.best(&pfx("10.8.0.0/16")).is_none());
}

#[test]
fn reflector_treats_our_cluster_id_in_cluster_list_as_withdraw() {
    let mut rib = rib();
    let cluster = ip(200);
    rib.set_cluster_id(Some(cluster));
    rib.apply_update(addr(1), &announce(1, &["10.9.0.0/16"]))
        .unwrap();
    assert!(rib.best(&pfx("10.9.0.0/16")).is_some());
    // The same NLRI comes back around through our cluster: the earlier route is withdrawn.
    let mut a = attrs(1);
    a.originator_id = Some(ip(7));
    a.cluster_list = vec![ip(201), cluster];
    let changes = rib
        .apply_update(
            addr(1),
            &Update::announce(a.clone(), vec![Nlri::new(pfx("10.9.0.0/16"))]),
        )
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].best.is_none());
    // A speaker that is not a reflector accepts it.
    rib.set_cluster_id(None);
    rib.apply_update(
        addr(1),
        &Update::announce(a, vec![Nlri::new(pfx("10.9.0.0/16"))]),
    )
    .unwrap();
    assert!(rib.best(&pfx("10.9.0.0/16")).is_some());
}

#[test]
fn update_from_an_unknown_peer_is_an_error() {
    let mut rib = rib();
    assert_eq!(
        rib.apply_update(addr(42), &announce(42, &["10.0.0.0/8"])),
        Err(RibError::UnknownPeer(addr(42)))
    );
}

#[test]
fn local_route_wins_and_can_be_withdrawn() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.9.0/26"]))
        .unwrap();
    let changes = rib.originate(pfx("10.244.9.0/26"), attrs(100));
    let best = changes[0].best.as_ref().unwrap();
    assert!(best.path.source.is_local());
    assert_eq!(best.step, DecisionStep::LocalOrigin);
    let changes = rib.withdraw_local(pfx("10.244.9.0/26"));
    assert_eq!(
        changes[0].best.as_ref().unwrap().path.source.address(),
        Some(addr(1))
    );
    assert!(rib.withdraw_local(pfx("10.244.9.0/26")).is_empty());
}

#[test]
fn igp_cost_changes_reselect_the_best_route() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.2.0.0/16"]))
        .unwrap();
    rib.apply_update(addr(2), &announce(2, &["10.2.0.0/16"]))
        .unwrap();
    assert_eq!(
        rib.best(&pfx("10.2.0.0/16")).unwrap().source.address(),
        Some(addr(1))
    );
    rib.set_igp_cost(addr(1), Some(20));
    let changes = rib.set_igp_cost(addr(2), Some(10));
    let best = changes[0].best.as_ref().unwrap();
    assert_eq!(best.path.source.address(), Some(addr(2)));
    assert_eq!(best.step, DecisionStep::IgpCost);
    assert_eq!(best.multipath.len(), 1);
}

#[test]
fn prefixes_of_one_update_share_one_attribute_set() {
    let mut rib = rib();
    let prefixes: Vec<String> = (0..100).map(|i| format!("10.100.{i}.0/24")).collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    rib.apply_update(addr(1), &announce(1, &refs)).unwrap();
    rib.apply_update(addr(2), &announce(1, &refs)).unwrap();
    assert_eq!(rib.attribute_sets(), 1);
    assert_eq!(rib.loc_rib().len(), 100);
}

// --- Graceful restart (RFC 4724) ---

#[test]
fn gr_session_loss_marks_routes_stale_and_keeps_them_selected() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26"]))
        .unwrap();
    let mut v6 = attrs(1);
    v6.mp_next_hop = Some(crate::wire::MpNextHop {
        global: "fd00::1".parse().unwrap(),
        link_local: None,
    });
    rib.apply_update(
        addr(1),
        &Update::announce(v6, vec![Nlri::new(pfx("fd10::/64"))]),
    )
    .unwrap();
    assert_eq!(
        rib.best(&pfx("fd10::/64")).unwrap().next_hop,
        Some("fd00::1".parse().unwrap())
    );
    let changes = rib.peer_down(addr(1), FamilySet::of(&[Family::Ipv4Unicast]));
    let best = rib.best(&pfx("10.244.1.0/26")).unwrap();
    assert!(best.stale, "route kept, marked stale");
    assert_eq!(rib.adj_rib_in(addr(1)).unwrap().stale_count(), 1);
    // The IPv6 family was not covered by GR: its route is withdrawn at once.
    assert!(
        changes
            .iter()
            .any(|c| c.prefix == pfx("fd10::/64") && c.best.is_none())
    );
}

#[test]
fn gr_refreshed_routes_survive_the_end_of_rib_sweep() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26", "10.244.2.0/26"]))
        .unwrap();
    rib.peer_down(addr(1), FamilySet::of(&Family::ALL));
    rib.peer_up(peer(1, LOCAL_AS));
    // After the restart the peer re-announces only one prefix, then End-of-RIB.
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26"]))
        .unwrap();
    assert!(!rib.best(&pfx("10.244.1.0/26")).unwrap().stale);
    let changes = rib.end_of_rib(addr(1), Family::Ipv4Unicast);
    assert_eq!(
        changes,
        vec![BestChange {
            prefix: pfx("10.244.2.0/26"),
            best: None,
            best_changed: true,
        }]
    );
    assert!(rib.best(&pfx("10.244.1.0/26")).is_some());
    assert_eq!(rib.adj_rib_in(addr(1)).unwrap().stale_count(), 0);
}

#[test]
fn gr_timer_sweep_removes_every_stale_route() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26", "10.244.2.0/26"]))
        .unwrap();
    rib.peer_down(addr(1), FamilySet::of(&Family::ALL));
    let changes = rib.sweep_stale(addr(1), FamilySet::of(&Family::ALL));
    assert_eq!(changes.len(), 2);
    assert!(rib.loc_rib().is_empty());
}

#[test]
fn session_loss_without_gr_withdraws_everything() {
    let mut rib = rib();
    rib.apply_update(addr(1), &announce(1, &["10.244.1.0/26"]))
        .unwrap();
    rib.apply_update(addr(2), &announce(2, &["10.244.1.0/26"]))
        .unwrap();
    let changes = rib.peer_down(addr(1), FamilySet::EMPTY);
    assert_eq!(
        changes[0].best.as_ref().unwrap().path.source.address(),
        Some(addr(2))
    );
    assert!(rib.adj_rib_in(addr(1)).unwrap().is_empty());
    drop(changes);
    let changes = rib.remove_peer(addr(2));
    assert_eq!(changes.len(), 1);
    drop(changes);
    rib.compact();
    assert!(rib.loc_rib().is_empty());
    assert!(rib.adj_rib_in(addr(2)).is_none());
    assert_eq!(
        rib.attribute_sets(),
        0,
        "unused attribute sets are released"
    );
}

// --- Order independence ---

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_path(index: u8) -> impl Strategy<Value = Path> {
        (
            prop_oneof![Just(100u32), Just(200)],
            proptest::collection::vec(1u32..4, 0..3),
            prop_oneof![Just(Origin::Igp), Just(Origin::Incomplete)],
            proptest::option::of(0u32..3),
            any::<bool>(),
            proptest::option::of(0u32..2),
            0u8..4,
        )
            .prop_map(move |(lp, as_path, origin, med, ebgp_peer, cost, nh)| {
                let p = with(path(index + 1), |p, a| {
                    a.local_pref = Some(lp);
                    a.as_path = seq(&as_path);
                    a.origin = origin;
                    a.med = med;
                    a.next_hop = Some(ip(200 + nh));
                    p.next_hop = Some(IpAddr::V4(ip(200 + nh)));
                    p.igp_cost = cost;
                });
                if ebgp_peer {
                    ebgp(p, 65000 + u32::from(index))
                } else {
                    p
                }
            })
    }

    fn arb_paths() -> impl Strategy<Value = Vec<Path>> {
        (1u8..8).prop_flat_map(|n| (0..n).map(arb_path).collect::<Vec<_>>())
    }

    fn outcome(
        rib: &Rib,
        prefix: &Prefix,
    ) -> Option<(Option<IpAddr>, DecisionStep, Vec<Option<IpAddr>>)> {
        let d = rib.loc_rib().get(prefix)?;
        Some((
            d.best()?.source.address(),
            d.step()?,
            d.multipath().iter().map(|p| p.source.address()).collect(),
        ))
    }

    fn feed(paths: &[Path], order: &[usize], prefix: Prefix) -> Rib {
        let mut rib = Rib::new(LOCAL_AS, LOCAL_ID, BestPathConfig::default());
        for i in order {
            let p = &paths[*i];
            let PathSource::Peer(info) = &p.source else {
                unreachable!()
            };
            rib.peer_up((**info).clone());
            if let Some(cost) = p.igp_cost {
                rib.set_igp_cost(p.next_hop.unwrap(), Some(cost));
            }
            let update = Update::announce((*p.attributes).clone(), vec![Nlri::new(prefix)]);
            rib.apply_update(info.address, &update).unwrap();
        }
        rib
    }

    proptest! {
        #[test]
        fn best_path_is_independent_of_arrival_order(
            (paths, order) in arb_paths().prop_flat_map(|paths| {
                let order: Vec<usize> = (0..paths.len()).collect();
                (Just(paths), Just(order).prop_shuffle())
            })
        ) {
            // Costs are per next hop: make paths sharing a next hop agree on it.
            let mut paths = paths;
            for i in 0..paths.len() {
                let nh = paths[i].next_hop;
                let cost = paths.iter().find(|p| p.next_hop == nh).and_then(|p| p.igp_cost);
                paths[i].igp_cost = cost;
            }
            let prefix = pfx("10.244.0.0/26");
            let natural: Vec<usize> = (0..paths.len()).collect();
            let a = feed(&paths, &natural, prefix);
            let b = feed(&paths, &order, prefix);
            prop_assert_eq!(outcome(&a, &prefix), outcome(&b, &prefix));
        }

        #[test]
        fn withdrawals_leave_the_same_result_as_never_announcing(
            (paths, order, keep) in arb_paths().prop_flat_map(|paths| {
                let n = paths.len();
                let order: Vec<usize> = (0..n).collect();
                (Just(paths), Just(order).prop_shuffle(), proptest::collection::vec(any::<bool>(), n))
            })
        ) {
            let mut paths = paths;
            for p in &mut paths {
                p.igp_cost = None;
            }
            let prefix = pfx("10.244.0.0/26");
            let all: Vec<usize> = (0..paths.len()).collect();
            let mut rib = feed(&paths, &all, prefix);
            for i in &order {
                if !keep[*i] {
                    let address = paths[*i].source.address().unwrap();
                    rib.apply_update(address, &Update::withdraw(vec![Nlri::new(prefix)])).unwrap();
                }
            }
            let kept: Vec<usize> = order.iter().copied().filter(|i| keep[*i]).collect();
            let fresh = feed(&paths, &kept, prefix);
            prop_assert_eq!(outcome(&rib, &prefix), outcome(&fresh, &prefix));
        }
    }
}
