//! Route driver against the real kernel, in throwaway namespaces: programming, adoption on
//! restart without delete events, other protocols left alone, drift repaired by resync,
//! stale routes removed only after InSync.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

use felix::driver::routes::{RouteTable, RouteTarget};
use felix::ownership::ROUTE_PROTO_AGENT;
use ipnetwork::IpNetwork;
use test_support::{Netns, RouteMonitor};

const IFACE: &str = "vr0123456789a";

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// Adds an up veth `name` (peer `name` with a `p` suffix, also up) in `ns`. (This kernel has
/// no `dummy` driver; a veth pair with both ends in the namespace has carrier.)
fn add_iface(ns: &Netns, name: &str) {
    let peer = format!("{}p", &name[..name.len().min(14)]);
    ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
        .unwrap();
    ns.set_up(&peer).unwrap();
    ns.set_up(name).unwrap();
}

/// A namespace with a workload-named interface that is up.
fn node() -> Netns {
    test_support::trace_init();
    let ns = Netns::new("felixrt").unwrap();
    add_iface(&ns, IFACE);
    ns
}

/// A route table whose netlink socket lives in `ns` (opened on a thread that entered it;
/// the socket stays in that namespace whichever thread uses it afterwards).
fn table_in(ns: &Netns) -> RouteTable {
    ns.run(|| RouteTable::new(ROUTE_PROTO_AGENT).unwrap())
        .unwrap()
}

fn proto80(ns: &Netns) -> String {
    let v4 = ns.ip(&["route", "show", "proto", "80"]).unwrap();
    let v6 = ns.ip(&["-6", "route", "show", "proto", "80"]).unwrap();
    format!("{v4}{v6}")
}

fn want_pod_routes(table: &mut RouteTable) {
    table.set_route(net("10.70.0.1/32"), RouteTarget::Device(IFACE.into()));
    table.set_route(net("10.70.0.2/32"), RouteTarget::Device(IFACE.into()));
    table.set_route(net("10.70.0.0/26"), RouteTarget::Blackhole);
    table.set_route(net("fd00:70::1/128"), RouteTarget::Device(IFACE.into()));
}

#[test]
fn programs_pod_routes_and_block_blackholes() {
    let ns = node();
    let mut table = table_in(&ns);
    want_pod_routes(&mut table);
    let report = table.apply().unwrap();
    assert_eq!(report.added, 4, "{report:?}");
    let routes = proto80(&ns);
    assert!(
        routes.contains(&format!("10.70.0.1 dev {IFACE} scope link")),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("10.70.0.2 dev {IFACE} scope link")),
        "{routes}"
    );
    assert!(routes.contains("blackhole 10.70.0.0/26"), "{routes}");
    assert!(
        routes.contains(&format!("fd00:70::1 dev {IFACE}")),
        "{routes}"
    );

    // Idempotent: nothing to do the second time, also after a full read-back.
    assert_eq!(table.apply().unwrap().added, 0);
    table.request_resync();
    let report = table.apply().unwrap();
    assert_eq!(
        (report.added, report.replaced, report.repaired),
        (0, 0, 0),
        "{report:?}"
    );

    // Retargeting replaces in place; removal (after InSync) deletes.
    table.set_in_sync();
    table.set_route(net("10.70.0.2/32"), RouteTarget::Blackhole);
    table.remove_route(net("10.70.0.1/32"));
    let report = table.apply().unwrap();
    assert_eq!((report.replaced, report.removed), (1, 1), "{report:?}");
    let routes = proto80(&ns);
    assert!(routes.contains("blackhole 10.70.0.2"), "{routes}");
    assert!(!routes.contains("10.70.0.1 "), "{routes}");
}

#[test]
fn restart_adopts_routes_without_deleting_them() {
    let ns = node();
    let mut first = table_in(&ns);
    want_pod_routes(&mut first);
    first.apply().unwrap();
    drop(first);

    // Live before the restart: it has printed a marker route.
    let monitor = RouteMonitor::start(&ns, IFACE, 1).unwrap();

    // A "restarted" agent: fresh table, same desired routes, datastore in sync.
    let mut second = table_in(&ns);
    want_pod_routes(&mut second);
    second.set_in_sync();
    let report = second.apply().unwrap();
    assert_eq!(report.adopted, 4, "{report:?}");
    assert_eq!(
        (report.added, report.replaced, report.removed),
        (0, 0, 0),
        "{report:?}"
    );

    // A closing marker after the restart, so everything before it has been printed.
    monitor.assert_untouched(200, "10.70.0.");
}

#[test]
fn routes_of_other_protocols_are_never_touched() {
    let ns = node();
    // A static route elsewhere, and one holding a prefix we want.
    ns.ip(&[
        "route",
        "add",
        "10.71.0.0/24",
        "dev",
        IFACE,
        "proto",
        "static",
    ])
    .unwrap();
    ns.ip(&[
        "route",
        "add",
        "10.70.0.1/32",
        "dev",
        IFACE,
        "proto",
        "static",
    ])
    .unwrap();
    let mut table = table_in(&ns);
    want_pod_routes(&mut table);
    table.set_in_sync();
    let report = table.apply().unwrap();
    assert_eq!(report.conflicts, 1, "{report:?}");
    assert_eq!(report.added, 3, "{report:?}");
    table.request_resync();
    table.apply().unwrap();
    let statics = ns.ip(&["route", "show", "proto", "static"]).unwrap();
    assert!(statics.contains("10.71.0.0/24"), "{statics}");
    assert!(statics.contains("10.70.0.1 "), "{statics}");
    assert!(!proto80(&ns).contains("10.70.0.1 "));
}

#[test]
fn resync_restores_a_route_deleted_by_hand() {
    let ns = node();
    let mut table = table_in(&ns);
    want_pod_routes(&mut table);
    table.set_in_sync();
    table.apply().unwrap();
    ns.ip(&["route", "del", "10.70.0.2/32", "proto", "80"])
        .unwrap();
    ns.ip(&["route", "del", "blackhole", "10.70.0.0/26", "proto", "80"])
        .unwrap();
    assert!(!proto80(&ns).contains("10.70.0.2 "));

    // Without a resync the driver trusts its own record: nothing happens.
    assert_eq!(table.apply().unwrap().added, 0);
    table.request_resync();
    let report = table.apply().unwrap();
    assert_eq!(report.repaired, 2, "{report:?}");
    let routes = proto80(&ns);
    assert!(
        routes.contains(&format!("10.70.0.2 dev {IFACE}")),
        "{routes}"
    );
    assert!(routes.contains("blackhole 10.70.0.0/26"), "{routes}");
}

#[test]
fn stale_routes_are_removed_only_after_in_sync() {
    let ns = node();
    ns.ip(&["route", "add", "10.72.0.1/32", "dev", IFACE, "proto", "80"])
        .unwrap();
    ns.ip(&["route", "add", "blackhole", "10.72.0.64/26", "proto", "80"])
        .unwrap();
    let mut table = table_in(&ns);
    table.set_route(net("10.70.0.1/32"), RouteTarget::Device(IFACE.into()));
    let report = table.apply().unwrap();
    assert_eq!((report.added, report.removed), (1, 0), "{report:?}");
    let routes = proto80(&ns);
    assert!(
        routes.contains("10.72.0.1 "),
        "held before InSync: {routes}"
    );
    assert!(routes.contains("10.72.0.64/26"), "{routes}");

    table.set_in_sync();
    let report = table.apply().unwrap();
    assert_eq!(report.removed, 2, "{report:?}");
    let routes = proto80(&ns);
    assert!(!routes.contains("10.72.0."), "{routes}");
    assert!(routes.contains("10.70.0.1 "), "{routes}");
}

#[test]
fn routes_wait_for_a_missing_interface() {
    let ns = node();
    let mut table = table_in(&ns);
    let later = "vrfedcba98765";
    table.set_route(net("10.73.0.1/32"), RouteTarget::Device(later.into()));
    let report = table.apply().unwrap();
    assert_eq!((report.added, report.pending), (0, 1), "{report:?}");
    assert!(table.has_pending_work());
    add_iface(&ns, later);
    let report = table.apply().unwrap();
    assert_eq!(report.added, 1, "{report:?}");
    assert!(proto80(&ns).contains(&format!("10.73.0.1 dev {later}")));
}

fn proto81(ns: &Netns) -> String {
    let v4 = ns.ip(&["route", "show", "proto", "81"]).unwrap();
    let v6 = ns.ip(&["-6", "route", "show", "proto", "81"]).unwrap();
    format!("{v4}{v6}")
}

fn bgp_table_in(ns: &Netns) -> RouteTable {
    ns.run(|| RouteTable::new(81).unwrap()).unwrap()
}

fn via(hops: &[&str]) -> RouteTarget {
    RouteTarget::Via(hops.iter().map(|h| h.parse().unwrap()).collect())
}

/// Protocol 81 (BGP): gateway and ECMP multipath routes; a new instance adopts them without
/// churn and removes the ones not wanted again only after in-sync; a route it installed
/// itself and no longer wants goes at once.
#[test]
fn gateway_and_multipath_routes_are_adopted_and_swept_after_sync() {
    let ns = node();
    ns.add_addr(IFACE, "10.80.0.1/24").unwrap();
    ns.add_addr(IFACE, "fd80::1/64").unwrap();
    let mut table = bgp_table_in(&ns);
    table.set_route(net("10.90.1.0/26"), via(&["10.80.0.2"]));
    table.set_route(net("10.90.2.0/26"), via(&["10.80.0.3", "10.80.0.2"]));
    table.set_route(net("10.90.3.0/26"), via(&["10.80.0.4"]));
    table.set_route(net("fd90::/64"), via(&["fd80::2", "fd80::3"]));
    let report = table.apply().unwrap();
    assert_eq!((report.added, report.errors), (4, 0), "{report:?}");
    let routes = proto81(&ns);
    assert!(routes.contains("10.90.1.0/26 via 10.80.0.2"), "{routes}");
    assert!(
        routes.contains("nexthop via 10.80.0.2") && routes.contains("nexthop via 10.80.0.3"),
        "{routes}"
    );
    assert!(routes.contains("nexthop via fd80::3"), "{routes}");
    // Unchanged next hops in another order: nothing to do.
    table.set_route(net("10.90.2.0/26"), via(&["10.80.0.2", "10.80.0.3"]));
    let again = table.apply().unwrap();
    assert_eq!((again.added, again.replaced), (0, 0), "{again:?}");
    drop(table);

    // A restarted speaker: the same routes are adopted, one is no longer learned, one
    // changed next hops; nothing is deleted before in-sync.
    let mut table = bgp_table_in(&ns);
    table.set_route(net("10.90.1.0/26"), via(&["10.80.0.2"]));
    table.set_route(net("10.90.2.0/26"), via(&["10.80.0.3", "10.80.0.2"]));
    table.set_route(net("fd90::/64"), via(&["fd80::2"]));
    let report = table.apply().unwrap();
    assert_eq!(report.adopted, 2, "{report:?}");
    assert_eq!((report.added, report.removed, report.replaced), (0, 0, 1));
    assert!(proto81(&ns).contains("10.90.3.0/26"), "kept until in-sync");
    // A route this instance learned and withdrew goes at once, before in-sync.
    table.set_route(net("10.90.4.0/26"), via(&["10.80.0.4"]));
    table.apply().unwrap();
    table.remove_route(net("10.90.4.0/26"));
    assert_eq!(table.apply().unwrap().removed, 1);
    table.set_in_sync();
    let report = table.apply().unwrap();
    assert_eq!(report.removed, 1, "the leftover is swept: {report:?}");
    let routes = proto81(&ns);
    assert!(
        !routes.contains("10.90.3.0/26") && routes.contains("10.90.1.0/26"),
        "{routes}"
    );
    // Drift: a route deleted by hand comes back at the next resync.
    ns.ip(&["route", "del", "10.90.1.0/26", "proto", "81"])
        .unwrap();
    table.request_resync();
    assert_eq!(table.apply().unwrap().repaired, 1);
    assert!(proto81(&ns).contains("10.90.1.0/26 via 10.80.0.2"));
}

#[test]
fn a_prefix_another_protocol_hands_over_is_taken_within_a_few_applies() {
    let ns = node();
    // BGP (protocol 81) still holds the prefix when the agent wants it (a pool turned VXLAN).
    ns.ip(&["route", "add", "10.73.0.0/26", "dev", IFACE, "proto", "81"])
        .unwrap();
    let mut table = table_in(&ns);
    table.set_in_sync();
    table.set_route(net("10.73.0.0/26"), RouteTarget::Blackhole);
    let report = table.apply().unwrap();
    assert_eq!(report.conflicts, 1, "{report:?}");
    assert!(
        table.has_pending_work(),
        "a conflict is retried without waiting for resync"
    );
    // The other owner lets go; the next apply (no resync) takes the prefix.
    ns.ip(&["route", "del", "10.73.0.0/26", "proto", "81"])
        .unwrap();
    let report = table.apply().unwrap();
    assert_eq!(report.added, 1, "{report:?}");
    assert!(proto80(&ns).contains("blackhole 10.73.0.0/26"));
    assert!(!table.has_pending_work());
}
