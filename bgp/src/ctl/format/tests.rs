//! Formats checked against the BIRD 2.0.12 transcripts of reference/bgp.md §1.3.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::ctl::{Interface, ProtocolKind, PseudoProtocol};
use crate::fsm::State;
use crate::rib::DecisionStep;
use crate::speaker::{PeerKind, PeerStatus};
use crate::wire::{AsPath, FamilySet, Prefix};

/// 2026-11-23 at h:m:s.ms UTC.
fn at(h: u64, m: u64, s: u64, ms: u64) -> SystemTime {
    // 2026-11-23 is day 20780 since the epoch.
    UNIX_EPOCH + Duration::from_millis(((20780 * 86400 + h * 3600 + m * 60 + s) * 1000) + ms)
}

fn peer(address: &str, state: State, since: SystemTime, error: Option<&str>) -> PeerStatus {
    PeerStatus {
        address: address.parse().unwrap(),
        remote_asn: 64512,
        state,
        context: None,
        last_error: error.map(str::to_string),
        routes_received: 0,
        routes_stale: 0,
        stale_families: FamilySet::EMPTY,
        malformed_updates: 0,
        kind: PeerKind::Mesh,
        since,
        disabled: false,
        routes_advertised: 0,
        updates_received: 0,
        updates_sent: 0,
    }
}

#[test]
fn times_are_civil_utc() {
    assert_eq!(datetime(at(3, 4, 32, 16)), "2026-11-23 03:04:32.016");
    let now = at(3, 5, 0, 0);
    assert_eq!(
        short_time(at(3, 4, 11, 246), now, Layout::Bird2),
        "03:04:11.246"
    );
    assert_eq!(
        short_time(at(3, 4, 11, 246), now, Layout::Bird16),
        "03:04:11"
    );
    let old = at(3, 4, 11, 0) - Duration::from_secs(3 * 86400);
    assert_eq!(short_time(old, now, Layout::Bird2), "2026-11-20");
}

#[test]
fn protocols_match_the_bird2_transcript() {
    let now = at(3, 5, 0, 0);
    let device = PseudoProtocol {
        name: "device1".into(),
        kind: ProtocolKind::Device,
        table: None,
        up: true,
        since: at(3, 4, 11, 246),
        info: String::new(),
        imported: 0,
        exported: 0,
    };
    let mut c3 = peer(
        "10.0.0.4",
        State::Active,
        at(3, 4, 51, 425),
        Some("connect: Connection refused (os error 111)"),
    );
    c3.kind = PeerKind::Global;
    let mut c1v6 = peer("fd00::2", State::Idle, at(3, 4, 54, 428), None);
    c1v6.disabled = true;
    let rows = vec![
        pseudo_row(&device),
        bgp_row(
            &peer(
                "10.0.0.2",
                State::Established,
                at(3, 4, 15, 13),
                Some("connection lost"),
            ),
            "c1",
            None,
        ),
        bgp_row(&c3, "c3", None),
        bgp_row(&c1v6, "c1v6", None),
    ];
    let text = protocols(&rows, false, Layout::Bird2, now).encode();
    assert_eq!(
        text,
        "2002-Name       Proto      Table      State  Since         Info\n\
         1002-device1    Device     ---        up     03:04:11.246  \n \
         c1         BGP        ---        up     03:04:15.013  Established   \n \
         c3         BGP        ---        start  03:04:51.425  Active        Socket: Connection refused\n \
         c1v6       BGP        ---        down   03:04:54.428  \n\
         0000 \n"
    );
    let text = protocols(&rows[1..2], false, Layout::Bird16, now).encode();
    assert_eq!(
        text,
        "2002-name     proto    table    state  since       info\n\
         1002-c1       BGP      master   up     03:04:15    Established   \n\
         0000 \n"
    );
    let all = protocols(&rows[2..3], true, Layout::Bird2, now).encode();
    assert!(
        all.contains("1006-  Description:    global\n   BGP state:          Active\n"),
        "{all}"
    );
    assert!(
        all.contains("     Last error:       Socket: Connection refused\n"),
        "{all}"
    );
    assert!(all.contains("     State:          DOWN\n"), "{all}");
    assert!(all.ends_with(" \n0000 \n"), "{all}");
}

#[test]
fn errors_take_bird_classes() {
    assert_eq!(
        bird_error("received notification 6/2 (Cease/Administrative Shutdown)").as_deref(),
        Some("Received: Cease/Administrative Shutdown")
    );
    assert_eq!(
        bird_error("hold timer expired").as_deref(),
        Some("BGP Error: Hold timer expired")
    );
    assert_eq!(bird_error("manual stop"), None);
}

fn detail(from: Option<&str>, nh: &str, best: bool) -> crate::speaker::PathDetail {
    let attributes = PathAttributes {
        origin: Origin::Incomplete,
        as_path: AsPath::default(),
        next_hop: nh.parse().ok(),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    crate::speaker::PathDetail {
        from: from.map(|f| f.parse().unwrap()),
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        path_id: 0,
        attributes: Arc::new(attributes),
        next_hop: nh.parse().ok(),
        best,
        multipath: best,
        stale: false,
    }
}

#[test]
fn routes_match_the_bird2_transcript() {
    let route = RouteDetail {
        prefix: "10.244.2.0/26".parse::<Prefix>().unwrap(),
        step: Some(DecisionStep::RouterId),
        paths: vec![
            detail(Some("10.0.0.1"), "10.0.0.3", true),
            detail(Some("10.0.0.5"), "10.0.0.3", false),
        ],
    };
    let mut ctx = RouteContext {
        peers: BTreeMap::new(),
        local: ("static1".into(), at(3, 4, 11, 0)),
        interfaces: vec![("10.0.0.0".parse().unwrap(), 24, "eth0".into())],
        now: Some(at(3, 12, 0, 0)),
    };
    ctx.peers.insert(
        "10.0.0.1".parse().unwrap(),
        ("rr1".into(), at(3, 9, 35, 93)),
    );
    ctx.peers.insert(
        "10.0.0.5".parse().unwrap(),
        ("rr2".into(), at(3, 11, 51, 167)),
    );
    let mut reply = Reply::new();
    reply.row(code::ROUTE, "Table master4:");
    route_rows(&route, &ctx, false, Layout::Bird2, &mut reply);
    let expected = [
        "1007-Table master4:",
        " 10.244.2.0/26        unicast [rr1 03:09:35.093 from 10.0.0.1] * (100) [?]",
        " \tvia 10.0.0.3 on eth0",
        "                      unicast [rr2 03:11:51.167 from 10.0.0.5] (100) [?]",
        " \tvia 10.0.0.3 on eth0",
        "0000 ",
        "",
    ];
    assert_eq!(reply.finish(code::OK, "").encode(), expected.join("\n"));
    let mut reply = Reply::new();
    route_rows(&route, &ctx, true, Layout::Bird2, &mut reply);
    let text = reply.finish(code::OK, "").encode();
    assert!(text.contains("1008-\tType: BGP univ\n \tSelection: best, decided by router id\n1012-\tBGP.origin: Incomplete\n \tBGP.as_path: \n \tBGP.next_hop: 10.0.0.3\n \tBGP.local_pref: 100\n"), "{text}");
    let mut reply = Reply::new();
    route_rows(&route, &ctx, false, Layout::Bird16, &mut reply);
    let text = reply.finish(code::OK, "").encode();
    assert!(
        text.starts_with("1007-10.244.2.0/26      via 10.0.0.3 on eth0 [rr1 03:09:35 from 10.0.0.1] * (100/0) [?]\n"),
        "{text}"
    );
}

#[test]
fn memory_uses_bird_columns() {
    assert_eq!(size(2008), "2008.0  B");
    assert_eq!(size(45466), "44.4 kB");
    let text = memory(&[("Routing tables:", 45466, 21504)], (45466, 21504)).encode();
    assert_eq!(
        text,
        "1018-vrouter memory usage\n                   Effective    Overhead\n \
         Routing tables:     44.4 kB     21.0 kB\n \
         Total:              44.4 kB     21.0 kB\n0000 \n"
    );
}

#[test]
fn interfaces_list_flags_and_addresses() {
    let list = vec![Interface {
        name: "eth0".into(),
        index: 2,
        admin_up: true,
        link_up: true,
        loopback: false,
        mtu: 1500,
        addresses: vec![("10.0.0.1".parse().unwrap(), 24)],
    }];
    assert_eq!(
        interfaces(&list, false).encode(),
        "1001-eth0 up (index=2)\n1004-\tMultiAccess AdminUp LinkUp MTU=1500\n\
         1003-\t10.0.0.1/24 (Preferred, scope univ)\n0000 \n"
    );
}
