//! Commands against an in-memory backend: selection logic of `show route` (longest match,
//! exact network, table, protocol, IPv6), counts, peer actions and their codes, restrict.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::ctl::backend::{DaemonInfo, Interface, ProtocolKind, PseudoProtocol};
use crate::fsm::State;
use crate::speaker::{PathDetail, PeerKind, RibSummary};
use crate::wire::{FamilySet, Origin, PathAttributes, Prefix};

struct Fake {
    peers: Vec<PeerStatus>,
    routes: Vec<RouteDetail>,
    actions: Mutex<Vec<(IpAddr, PeerAction)>>,
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

impl ControlBackend for Fake {
    fn daemon(&self) -> DaemonInfo {
        DaemonInfo {
            name: "vrouterd".into(),
            version: "0.1.0".into(),
            router_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
            hostname: "node0".into(),
            started: t0(),
            reconfigured: t0(),
            graceful_restart_recovery: true,
        }
    }
    async fn peers(&self) -> Option<Vec<PeerStatus>> {
        Some(self.peers.clone())
    }
    async fn routes(&self) -> Option<Vec<RouteDetail>> {
        Some(self.routes.clone())
    }
    async fn summary(&self) -> Option<RibSummary> {
        Some(RibSummary {
            prefixes: self.routes.len(),
            received: 3,
            attribute_sets: 2,
            originated: 1,
            installed: 2,
            restart_recovery: false,
        })
    }
    async fn peer_action(&self, peer: IpAddr, action: PeerAction) -> Option<PeerActionOutcome> {
        if let Ok(mut actions) = self.actions.lock() {
            actions.push((peer, action));
        }
        Some(match action {
            PeerAction::Reload(_) => PeerActionOutcome::ReloadFailed,
            _ => PeerActionOutcome::Restarted,
        })
    }
    async fn shutdown(&self, _how: Shutdown) {}
    async fn protocols(&self) -> Vec<PseudoProtocol> {
        vec![PseudoProtocol {
            name: "static1".into(),
            kind: ProtocolKind::Static,
            table: Some("master4".into()),
            up: true,
            since: t0(),
            info: String::new(),
            imported: 1,
            exported: 0,
        }]
    }
    async fn interfaces(&self) -> Vec<Interface> {
        Vec::new()
    }
}

fn peer(address: &str) -> PeerStatus {
    PeerStatus {
        address: address.parse().unwrap(),
        remote_asn: 64512,
        state: State::Established,
        context: None,
        last_error: None,
        routes_received: 1,
        routes_stale: 0,
        stale_families: FamilySet::EMPTY,
        malformed_updates: 0,
        kind: PeerKind::Mesh,
        since: t0(),
        disabled: false,
        routes_advertised: 1,
        updates_received: 2,
        updates_sent: 2,
    }
}

fn route(prefix: &str, paths: &[Option<&str>]) -> RouteDetail {
    RouteDetail {
        prefix: prefix.parse::<Prefix>().unwrap(),
        step: Some(crate::rib::DecisionStep::PeerAddress),
        paths: paths
            .iter()
            .enumerate()
            .map(|(i, from)| PathDetail {
                from: from.map(|f| f.parse().unwrap()),
                router_id: Ipv4Addr::new(10, 0, 0, 9),
                path_id: 0,
                attributes: Arc::new(PathAttributes {
                    origin: Origin::Igp,
                    ..PathAttributes::default()
                }),
                next_hop: from.map(|f| f.parse().unwrap()),
                best: i == 0,
                multipath: false,
                stale: false,
            })
            .collect(),
    }
}

fn fake() -> Fake {
    Fake {
        peers: vec![peer("10.0.0.2"), peer("fd00::2")],
        routes: vec![
            route("10.244.0.0/26", &[None]),
            route("10.244.1.0/24", &[Some("10.0.0.2")]),
            route("10.244.1.0/26", &[Some("10.0.0.2"), Some("10.0.0.3")]),
            route("fd00:244::/64", &[Some("fd00::2")]),
        ],
        actions: Mutex::new(Vec::new()),
    }
}

async fn run(backend: &Fake, session: &mut Session, line: &str) -> String {
    let now = t0() + Duration::from_secs(60);
    execute(backend, session, line, now).await.0.encode()
}

fn nets(reply: &str) -> Vec<String> {
    reply
        .lines()
        .filter_map(|l| l.strip_prefix(' ').or_else(|| l.strip_prefix("1007-")))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit()) && l.contains('/'))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn show_route_selects_like_bird() {
    let b = fake();
    let mut s = Session::default();
    let r = run(&b, &mut s, "show route for 10.244.1.7").await;
    assert_eq!(nets(&r), ["10.244.1.0/26"], "{r}");
    let r = run(&b, &mut s, "show route for 10.244.1.200").await;
    assert_eq!(nets(&r), ["10.244.1.0/24"], "{r}");
    let r = run(&b, &mut s, "show route 10.244.1.0/24").await;
    assert_eq!(nets(&r), ["10.244.1.0/24"], "{r}");
    let r = run(&b, &mut s, "show route for fd00:244::1").await;
    assert!(r.starts_with("1007-Table master6:\n fd00:244::/64 "), "{r}");
    let r = run(&b, &mut s, "show route").await;
    assert!(r.contains("\n 10.244.1.0/26 "), "{r}");
    assert!(
        r.contains("\n \n Table master6:\n"),
        "tables separated by an empty row: {r}"
    );
    let r = run(&b, &mut s, "show route protocol Mesh_10_0_0_2").await;
    assert_eq!(nets(&r), ["10.244.1.0/24", "10.244.1.0/26"], "{r}");
    assert!(!r.contains("10.0.0.3"), "only that protocol's paths: {r}");
    let r = run(&b, &mut s, "show route protocol static1").await;
    assert_eq!(nets(&r), ["10.244.0.0/26"], "{r}");
    let r = run(&b, &mut s, "show route table master6 count").await;
    assert_eq!(
        r,
        "1007-1 of 1 routes for 1 networks in table master6\n0000 \n"
    );
    let r = run(&b, &mut s, "show route protocol Mesh_10_0_0_2 count").await;
    assert_eq!(
        r,
        "1007-2 of 4 routes for 3 networks in table master4\n \
         0 of 1 routes for 1 networks in table master6\n\
         0014 Total: 2 of 5 routes for 4 networks in 2 tables\n"
    );
    assert_eq!(
        run(&b, &mut s, "show route for 192.0.2.1").await,
        "8001 Network not found\n"
    );
}

#[tokio::test]
async fn actions_status_and_restrict() {
    let b = fake();
    let mut s = Session::default();
    let r = run(&b, &mut s, "restart \"Mesh_*\"").await;
    assert_eq!(
        r,
        "0012-Mesh_10_0_0_2: restarted\n Mesh_fd00__2: restarted\n0000 \n"
    );
    let r = run(&b, &mut s, "reload out Mesh_fd00__2").await;
    assert_eq!(r, "8006-Mesh_fd00__2: reload failed\n0000 \n");
    let actions = b.actions.lock().unwrap().clone();
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[2].1, PeerAction::Reload(RefreshDirection::Out));
    let r = run(&b, &mut s, "show status").await;
    assert!(
        r.contains("\n0024-Graceful restart recovery in progress\n0013 "),
        "{r}"
    );
    assert!(
        r.contains("1011-Router ID is 10.0.0.1\n Hostname is node0\n"),
        "{r}"
    );
    let r = run(&b, &mut s, "show memory").await;
    assert!(r.starts_with("1018-vrouter memory usage\n"), "{r}");
    assert_eq!(
        run(&b, &mut s, "restrict").await,
        "0016 Access restricted\n"
    );
    assert_eq!(run(&b, &mut s, "reload all").await, "8007 Access denied\n");
    assert!(s.restricted);
    let (reply, after) = execute(&b, &mut Session::default(), "down", t0()).await;
    assert_eq!(
        (reply.encode().as_str(), after),
        ("0007 Shutdown ordered\n", Some(Shutdown::Stop))
    );
}
