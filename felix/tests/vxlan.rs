//! VTEP driver against the real kernel, in throwaway namespaces: the `vxlan.vrouter` device
//! with its address, neighbours and FDB; adoption on restart without churn; stale entries
//! removed only after InSync; drift repaired by resync; onlink tunnel routes adopted; and a
//! real encapsulated ping between two namespaces programmed only by the driver.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

use std::net::Ipv4Addr;

use felix::calc::vxlan::{VtepDevice, VtepPeer, VxlanDesired};
use felix::driver::routes::{RouteTable, RouteTarget};
use felix::driver::vxlan::VtepTable;
use felix::ownership::{ROUTE_PROTO_AGENT, VXLAN_DEVICE};
use test_support::{Netns, veth_pair};

/// A namespace with `eth0` (a veth; its peer `eth0p` stays in the same namespace) holding
/// `underlay`/24, MTU 1500.
fn node(underlay: &str) -> Netns {
    test_support::trace_init();
    let ns = Netns::new("felixvx").unwrap();
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])
    .unwrap();
    ns.set_up("eth0p").unwrap();
    ns.set_up("eth0").unwrap();
    ns.add_addr("eth0", &format!("{underlay}/24")).unwrap();
    ns
}

fn vtep_in(ns: &Netns) -> VtepTable {
    ns.run(|| VtepTable::new().unwrap()).unwrap()
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn device(local: &str, addr: &str, last: u8) -> VtepDevice {
    VtepDevice {
        vni: 4096,
        port: 4789,
        local: ip4(local),
        addr: ip4(addr),
        mac: [0x02, 0xaa, 0, 0, 0, last],
        mtu: None,
    }
}

fn peer(last: u8) -> (Ipv4Addr, VtepPeer) {
    (
        Ipv4Addr::new(10, 244, last, 1),
        VtepPeer {
            mac: [0x02, 0xaa, 0, 0, 0, last],
            underlay: Ipv4Addr::new(10, 9, 0, last),
        },
    )
}

fn desired(peers: &[u8]) -> VxlanDesired {
    VxlanDesired {
        device: Some(device("10.9.0.1", "10.244.1.1", 1)),
        peers: peers.iter().map(|p| peer(*p)).collect(),
    }
}

fn show(ns: &Netns, args: &[&str]) -> String {
    ns.ip(args).unwrap()
}

fn fdb(ns: &Netns) -> String {
    ns.exec_ok(&["bridge", "fdb", "show", "dev", VXLAN_DEVICE])
        .unwrap()
}

fn neigh(ns: &Netns) -> String {
    show(ns, &["neigh", "show", "dev", VXLAN_DEVICE])
}

fn ifindex(ns: &Netns) -> String {
    show(ns, &["-o", "link", "show", VXLAN_DEVICE])
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn programs_the_device_its_address_neighbours_and_fdb() {
    let ns = node("10.9.0.1");
    let mut table = vtep_in(&ns);
    table.set_desired(desired(&[2, 3]));
    let report = table.apply().unwrap();
    assert!(report.created, "{report:?}");
    let link = show(&ns, &["-d", "link", "show", VXLAN_DEVICE]);
    for want in [
        "vxlan id 4096",
        "local 10.9.0.1",
        "dstport 4789",
        "nolearning",
        "mtu 1450",
        "02:aa:00:00:00:01",
        ",UP",
    ] {
        assert!(link.contains(want), "{want} missing: {link}");
    }
    let addrs = show(&ns, &["-4", "addr", "show", "dev", VXLAN_DEVICE]);
    assert!(addrs.contains("inet 10.244.1.1/32"), "{addrs}");
    let n = neigh(&ns);
    assert!(
        n.contains("10.244.2.1 lladdr 02:aa:00:00:00:02 PERMANENT"),
        "{n}"
    );
    assert!(
        n.contains("10.244.3.1 lladdr 02:aa:00:00:00:03 PERMANENT"),
        "{n}"
    );
    let f = fdb(&ns);
    assert!(
        f.contains("02:aa:00:00:00:02 dst 10.9.0.2 self permanent"),
        "{f}"
    );
    assert!(
        f.contains("02:aa:00:00:00:03 dst 10.9.0.3 self permanent"),
        "{f}"
    );

    // Idempotent, also after a full read-back.
    assert_eq!(table.apply().unwrap().changes, 0);
    table.request_resync();
    let report = table.apply().unwrap();
    assert_eq!((report.changes, report.repaired), (0, 0), "{report:?}");

    // A peer whose node moved: neighbour kept, FDB destination replaced.
    let mut moved = desired(&[2, 3]);
    moved.peers.get_mut(&ip4("10.244.3.1")).unwrap().underlay = ip4("10.9.0.33");
    table.set_desired(moved);
    table.set_in_sync();
    table.apply().unwrap();
    let f = fdb(&ns);
    assert!(f.contains("02:aa:00:00:00:03 dst 10.9.0.33"), "{f}");
    assert!(!f.contains("dst 10.9.0.3 "), "{f}");
}

#[test]
fn a_restarted_agent_adopts_the_vtep_without_churn() {
    let ns = node("10.9.0.1");
    let mut first = vtep_in(&ns);
    first.set_desired(desired(&[2, 3]));
    first.apply().unwrap();
    let index = ifindex(&ns);
    drop(first);

    let mut second = vtep_in(&ns);
    second.set_desired(desired(&[2, 3]));
    second.set_in_sync();
    let report = second.apply().unwrap();
    assert!(!report.created && !report.deleted, "{report:?}");
    assert_eq!(report.changes, 0, "{report:?}");
    assert_eq!(report.adopted, 3, "address and two peers: {report:?}");
    assert_eq!(ifindex(&ns), index, "the device was not re-created");
}

#[test]
fn stale_vtep_state_is_removed_only_after_in_sync() {
    let ns = node("10.9.0.1");
    let mut first = vtep_in(&ns);
    first.set_desired(desired(&[2, 3, 4]));
    first.apply().unwrap();
    ns.ip(&["addr", "add", "10.244.9.9/32", "dev", VXLAN_DEVICE])
        .unwrap();
    drop(first);

    // Restart: only peer 2 is wanted (so far).
    let mut table = vtep_in(&ns);
    table.set_desired(desired(&[2]));
    let report = table.apply().unwrap();
    assert_eq!(report.removed, 0, "{report:?}");
    assert!(neigh(&ns).contains("10.244.4.1"));
    assert!(fdb(&ns).contains("dst 10.9.0.4"));

    table.set_in_sync();
    let report = table.apply().unwrap();
    assert_eq!(
        report.removed, 5,
        "2 neighbours, 2 FDB entries, 1 address: {report:?}"
    );
    let n = neigh(&ns);
    assert!(
        n.contains("10.244.2.1") && !n.contains("10.244.3.1") && !n.contains("10.244.4.1"),
        "{n}"
    );
    let f = fdb(&ns);
    assert!(
        f.contains("dst 10.9.0.2") && !f.contains("dst 10.9.0.3"),
        "{f}"
    );
    let addrs = show(&ns, &["-4", "addr", "show", "dev", VXLAN_DEVICE]);
    assert!(!addrs.contains("10.244.9.9"), "{addrs}");

    // No VXLAN wanted any more: the device goes, but only in sync.
    let mut fresh = vtep_in(&ns);
    fresh.set_desired(VxlanDesired::default());
    fresh.apply().unwrap();
    assert!(
        show(&ns, &["link"]).contains(VXLAN_DEVICE),
        "kept before InSync"
    );
    fresh.set_in_sync();
    assert!(fresh.apply().unwrap().deleted);
    assert!(!show(&ns, &["link"]).contains(VXLAN_DEVICE));
}

#[test]
fn resync_repairs_drift() {
    let ns = node("10.9.0.1");
    let mut table = vtep_in(&ns);
    table.set_desired(desired(&[2, 3]));
    table.set_in_sync();
    table.apply().unwrap();
    ns.ip(&["neigh", "del", "10.244.2.1", "dev", VXLAN_DEVICE])
        .unwrap();
    ns.exec_ok(&[
        "bridge",
        "fdb",
        "del",
        "02:aa:00:00:00:03",
        "dev",
        VXLAN_DEVICE,
        "dst",
        "10.9.0.3",
    ])
    .unwrap();
    ns.ip(&["link", "set", VXLAN_DEVICE, "mtu", "1300"])
        .unwrap();
    ns.ip(&[
        "neigh",
        "add",
        "10.244.7.1",
        "lladdr",
        "02:aa:00:00:00:07",
        "dev",
        VXLAN_DEVICE,
        "nud",
        "permanent",
    ])
    .unwrap();

    // Without a resync the driver trusts its record.
    assert_eq!(table.apply().unwrap().changes, 0);
    table.request_resync();
    let report = table.apply().unwrap();
    assert_eq!(report.repaired, 4, "{report:?}");
    let n = neigh(&ns);
    assert!(
        n.contains("10.244.2.1 lladdr 02:aa:00:00:00:02 PERMANENT"),
        "{n}"
    );
    assert!(!n.contains("10.244.7.1"), "{n}");
    assert!(fdb(&ns).contains("02:aa:00:00:00:03 dst 10.9.0.3"));
    assert!(show(&ns, &["link", "show", VXLAN_DEVICE]).contains("mtu 1450"));

    // Another VNI (FelixConfiguration changed): the device is re-created, entries again.
    let mut other = desired(&[2, 3]);
    other.device.as_mut().unwrap().vni = 4097;
    other.device.as_mut().unwrap().mtu = Some(1400);
    table.set_desired(other);
    let report = table.apply().unwrap();
    assert!(report.created && report.deleted, "{report:?}");
    let link = show(&ns, &["-d", "link", "show", VXLAN_DEVICE]);
    assert!(
        link.contains("vxlan id 4097") && link.contains("mtu 1400"),
        "{link}"
    );
    assert!(neigh(&ns).contains("10.244.3.1"));
}

#[test]
fn onlink_tunnel_routes_are_programmed_and_adopted() {
    let ns = node("10.9.0.1");
    let mut vtep = vtep_in(&ns);
    vtep.set_desired(desired(&[2]));
    vtep.apply().unwrap();
    let mut routes = ns
        .run(|| RouteTable::new(ROUTE_PROTO_AGENT).unwrap())
        .unwrap();
    let target = RouteTarget::OnlinkVia {
        gateway: "10.244.2.1".parse().unwrap(),
        device: VXLAN_DEVICE.to_string(),
    };
    routes.set_route("10.244.2.0/26".parse().unwrap(), target.clone());
    routes.set_route(
        "10.244.5.0/26".parse().unwrap(),
        RouteTarget::Via(vec!["10.9.0.5".parse().unwrap()]),
    );
    assert_eq!(routes.apply().unwrap().added, 2);
    let shown = show(&ns, &["route", "show", "proto", "80"]);
    assert!(
        shown.contains("10.244.2.0/26 via 10.244.2.1 dev vxlan.vrouter onlink"),
        "{shown}"
    );
    assert!(
        shown.contains("10.244.5.0/26 via 10.9.0.5 dev eth0"),
        "{shown}"
    );

    // Read back: nothing to repair; a restarted table adopts both.
    routes.request_resync();
    assert_eq!(routes.apply().unwrap().repaired, 0);
    let mut again = ns
        .run(|| RouteTable::new(ROUTE_PROTO_AGENT).unwrap())
        .unwrap();
    again.set_route("10.244.2.0/26".parse().unwrap(), target);
    again.set_route(
        "10.244.5.0/26".parse().unwrap(),
        RouteTarget::Via(vec!["10.9.0.5".parse().unwrap()]),
    );
    let report = again.apply().unwrap();
    assert_eq!(
        (report.adopted, report.added, report.replaced),
        (2, 0, 0),
        "{report:?}"
    );
}

#[test]
fn two_vteps_carry_a_ping_between_tunnel_addresses() {
    // Two "nodes" on one veth pair: a = 10.9.0.1, b = 10.9.0.2.
    test_support::trace_init();
    let a = Netns::new("felixvxa").unwrap();
    let b = Netns::new("felixvxb").unwrap();
    veth_pair(&a, "eth0", &b, "eth0").unwrap();
    for (ns, addr) in [(&a, "10.9.0.1/24"), (&b, "10.9.0.2/24")] {
        ns.add_addr("eth0", addr).unwrap();
    }
    let dev = |local: &str, addr: &str, last: u8| device(local, addr, last);
    let mut ta = vtep_in(&a);
    ta.set_desired(VxlanDesired {
        device: Some(dev("10.9.0.1", "10.244.1.1", 1)),
        peers: [(
            ip4("10.244.2.1"),
            VtepPeer {
                mac: [0x02, 0xaa, 0, 0, 0, 2],
                underlay: ip4("10.9.0.2"),
            },
        )]
        .into(),
    });
    let mut tb = vtep_in(&b);
    tb.set_desired(VxlanDesired {
        device: Some(dev("10.9.0.2", "10.244.2.1", 2)),
        peers: [(
            ip4("10.244.1.1"),
            VtepPeer {
                mac: [0x02, 0xaa, 0, 0, 0, 1],
                underlay: ip4("10.9.0.1"),
            },
        )]
        .into(),
    });
    ta.apply().unwrap();
    tb.apply().unwrap();
    for (ns, via) in [(&a, "10.244.2.1"), (&b, "10.244.1.1")] {
        ns.ip(&[
            "route",
            "add",
            &format!("{via}/32"),
            "via",
            via,
            "dev",
            VXLAN_DEVICE,
            "onlink",
        ])
        .unwrap();
    }
    a.ping("10.244.2.1".parse().unwrap()).unwrap();
    let received: u64 = b
        .exec_ok(&["cat", "/sys/class/net/vxlan.vrouter/statistics/rx_packets"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(received > 0, "the ping did not arrive through the tunnel");
}
