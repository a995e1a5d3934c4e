//! What the speaker reports about itself and the operator actions it takes, for the control
//! socket (`crate::ctl`): the kind of a peering (Calico's mesh / global / node-specific, which
//! also names the BIRD protocol: `Mesh_10_0_0_2`), every candidate route of a prefix with its
//! attributes and the step that decided the best, and enable/disable/restart/route refresh of
//! one peer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Command, SpeakerError, SpeakerHandle};
use crate::rib::{DecisionStep, Destination, LocRib};
use crate::wire::{Family, PathAttributes, Prefix};

/// Where a peering comes from (Calico's BIRD protocol name prefixes and `calicoctl node
/// status` peer types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum PeerKind {
    /// Full mesh between nodes (`Mesh_<ip>`, "node-to-node mesh").
    Mesh,
    /// A BGPPeer naming this node or selecting it (`Node_<ip>`, "node specific").
    NodeSpecific,
    /// A BGPPeer for every node, or a peer configured by hand (`Global_<ip>`, "global").
    #[default]
    Global,
}

impl PeerKind {
    /// The protocol-name prefix Calico uses for this kind.
    pub fn name_prefix(self) -> &'static str {
        match self {
            PeerKind::Mesh => "Mesh",
            PeerKind::NodeSpecific => "Node",
            PeerKind::Global => "Global",
        }
    }

    /// The peer type `calicoctl node status` prints.
    pub fn description(self) -> &'static str {
        match self {
            PeerKind::Mesh => "node-to-node mesh",
            PeerKind::NodeSpecific => "node specific",
            PeerKind::Global => "global",
        }
    }

    /// The kind named by a protocol-name prefix (`Mesh`, `Node`, `Global`).
    pub fn from_name_prefix(prefix: &str) -> Option<PeerKind> {
        [PeerKind::Mesh, PeerKind::NodeSpecific, PeerKind::Global]
            .into_iter()
            .find(|k| k.name_prefix() == prefix)
    }

    /// The BIRD protocol name of a peering: `Mesh_10_0_0_2`, `Global_fd00__1`.
    pub fn protocol_name(self, address: IpAddr) -> String {
        let ip = address.to_string().replace(['.', ':'], "_");
        format!("{}_{ip}", self.name_prefix())
    }
}

/// Which way a route refresh goes (`reload in|out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDirection {
    /// Ask the peer to send its routes again (ROUTE-REFRESH, RFC 2918).
    In,
    /// Send the peer all our routes again.
    Out,
    /// Both.
    Both,
}

/// An operator action on one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAction {
    /// Start a disabled peer.
    Enable,
    /// Stop the session (Cease) and keep it down until enabled.
    Disable,
    /// Drop the session and start it again.
    Restart,
    /// Route refresh.
    Reload(RefreshDirection),
}

/// What a [`PeerAction`] did (BIRD reply codes 0008–0012, 0015, 8006).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerActionOutcome {
    /// Was disabled, now started.
    Enabled,
    /// Was not disabled.
    AlreadyEnabled,
    /// Now disabled.
    Disabled,
    /// Was disabled already.
    AlreadyDisabled,
    /// Session restarted.
    Restarted,
    /// Refresh requested / routes queued again.
    Reloading,
    /// Refresh impossible: the session is not established or the peer lacks route refresh.
    ReloadFailed,
    /// No such peer.
    NotFound,
}

/// One candidate route of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDetail {
    /// The peer it came from; `None` for routes we originate.
    pub from: Option<IpAddr>,
    /// BGP identifier of the sender (ours for local routes).
    pub router_id: Ipv4Addr,
    /// ADD-PATH path id.
    pub path_id: u32,
    /// The route's attributes.
    pub attributes: Arc<PathAttributes>,
    /// Its next hop for the prefix's family.
    pub next_hop: Option<IpAddr>,
    /// Selected as best.
    pub best: bool,
    /// Part of the ECMP set.
    pub multipath: bool,
    /// Held stale for graceful restart.
    pub stale: bool,
}

/// Every route of one prefix, best first, and why the best won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDetail {
    /// The prefix.
    pub prefix: Prefix,
    /// The decision step that selected the best route.
    pub step: Option<DecisionStep>,
    /// Candidates, best first.
    pub paths: Vec<PathDetail>,
}

impl RouteDetail {
    /// Reads one Loc-RIB destination.
    pub(crate) fn of(prefix: Prefix, destination: &Destination) -> RouteDetail {
        let best = destination.best();
        let multipath = destination.multipath();
        let mut paths: Vec<PathDetail> = destination
            .paths()
            .iter()
            .map(|p| PathDetail {
                from: p.source.address(),
                router_id: p.source.router_id(),
                path_id: p.path_id,
                attributes: Arc::clone(&p.attributes),
                next_hop: p.next_hop,
                best: best.is_some_and(|b| std::ptr::eq(b, p)),
                multipath: multipath.iter().any(|m| std::ptr::eq(*m, p)),
                stale: p.stale,
            })
            .collect();
        paths.sort_by_key(|p| !p.best);
        RouteDetail {
            prefix,
            step: destination.step(),
            paths,
        }
    }
}

/// Which network a route query is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMatch {
    /// Exactly this prefix.
    Exact(Prefix),
    /// The longest prefix covering this one (a FIB lookup).
    Longest(Prefix),
}

/// Which Loc-RIB routes a query wants (`show route …`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// Only this family (BIRD table).
    pub family: Option<Family>,
    /// Only this network.
    pub network: Option<NetworkMatch>,
    /// Only paths from this source: `Some(None)` our own routes, `Some(Some(ip))` a peer's.
    pub source: Option<Option<IpAddr>>,
    /// Numbers only: no route list, but totals per family.
    pub count_only: bool,
}

/// Route numbers of one family (`show route count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyCount {
    /// The family.
    pub family: Family,
    /// Paths the filter selected.
    pub selected: usize,
    /// Every path of the family.
    pub total: usize,
    /// Networks of the family.
    pub networks: usize,
}

/// The answer to a [`RouteFilter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSelection {
    /// Selected prefixes with their selected paths (empty with `count_only`).
    pub routes: Vec<RouteDetail>,
    /// Per family (of the filter's families), only with `count_only`.
    pub counts: Vec<FamilyCount>,
}

impl RouteSelection {
    /// Runs `filter` over a Loc-RIB: a network lookup touches at most a prefix length's worth
    /// of entries; only counts walk everything, without copying.
    pub(crate) fn of_loc_rib(loc_rib: &LocRib, filter: &RouteFilter) -> RouteSelection {
        select(
            || loc_rib.iter().map(|(p, d)| (*p, d)),
            |p| loc_rib.get(p),
            |d: &Destination| d.paths().iter().map(|p| p.source.address()).collect(),
            RouteDetail::of,
            filter,
        )
    }

    /// Runs `filter` over route details already fetched (backends without a better way).
    pub fn of_details(routes: &[RouteDetail], filter: &RouteFilter) -> RouteSelection {
        let index: BTreeMap<Prefix, &RouteDetail> = routes.iter().map(|r| (r.prefix, r)).collect();
        select(
            || routes.iter().map(|r| (r.prefix, r)),
            |p| index.get(p).copied(),
            |r: &RouteDetail| r.paths.iter().map(|p| p.from).collect(),
            |_, r| r.clone(),
            filter,
        )
    }
}

fn select<'a, T: 'a, I: Iterator<Item = (Prefix, &'a T)>>(
    all: impl Fn() -> I,
    get: impl Fn(&Prefix) -> Option<&'a T>,
    sources: impl Fn(&T) -> Vec<Option<IpAddr>>,
    detail: impl Fn(Prefix, &T) -> RouteDetail,
    filter: &RouteFilter,
) -> RouteSelection {
    let family_ok = |p: &Prefix| filter.family.is_none_or(|f| f == p.family());
    let chosen: Vec<(Prefix, &'a T)> = match filter.network {
        Some(NetworkMatch::Exact(p)) => get(&p).map(|d| (p, d)).into_iter().collect(),
        Some(NetworkMatch::Longest(p)) => (0..=p.prefix_len())
            .rev()
            .filter_map(|len| Prefix::new(p.addr(), len))
            .find_map(|q| get(&q).map(|d| (q, d)))
            .into_iter()
            .collect(),
        None if filter.count_only => Vec::new(),
        None => all().collect(),
    };
    let matching = |d: &T| -> usize {
        match filter.source {
            None => sources(d).len(),
            Some(source) => sources(d).iter().filter(|s| **s == source).count(),
        }
    };
    let mut selection = RouteSelection::default();
    if !filter.count_only {
        for (prefix, d) in chosen.into_iter().filter(|(p, _)| family_ok(p)) {
            if matching(d) == 0 {
                continue;
            }
            let mut route = detail(prefix, d);
            if let Some(source) = filter.source {
                route.paths.retain(|p| p.from == source);
            }
            selection.routes.push(route);
        }
        return selection;
    }
    let families = [Family::Ipv4Unicast, Family::Ipv6Unicast];
    selection.counts = families
        .into_iter()
        .filter(|f| filter.family.is_none_or(|x| x == *f))
        .map(|family| FamilyCount {
            family,
            selected: 0,
            total: 0,
            networks: 0,
        })
        .collect();
    let network_ok = |p: &Prefix| match filter.network {
        None => true,
        Some(_) => chosen.iter().any(|(c, _)| c == p),
    };
    for (prefix, d) in all() {
        let Some(count) = selection
            .counts
            .iter_mut()
            .find(|c| c.family == prefix.family())
        else {
            continue;
        };
        count.total += sources(d).len();
        count.networks += 1;
        if network_ok(&prefix) {
            count.selected += matching(d);
        }
    }
    selection
}

impl SpeakerHandle {
    /// The routes `filter` selects (the cheap way to answer `show route …`).
    pub async fn select_routes(&self, filter: RouteFilter) -> Result<RouteSelection, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SelectRoutes(filter, tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Every Loc-RIB prefix with all its candidate routes, ordered by prefix.
    pub async fn route_details(&self) -> Result<Vec<RouteDetail>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::RouteDetails(tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Enables, disables, restarts or refreshes one peer.
    pub async fn peer_action(
        &self,
        address: IpAddr,
        action: PeerAction,
    ) -> Result<PeerActionOutcome, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::PeerAction(address, action, tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc_rib() -> LocRib {
        use crate::rib::{BestPathConfig, Path, PathSource, PeerInfo};
        let mut rib = LocRib::new(BestPathConfig::default());
        let peer = |a: &str| {
            PathSource::Peer(Arc::new(PeerInfo {
                address: a.parse().unwrap(),
                router_id: a.parse().unwrap(),
                asn: 64512,
                ibgp: true,
                rr_client: false,
            }))
        };
        let path = |source: PathSource| Path {
            next_hop: source.address(),
            source,
            path_id: 0,
            attributes: Arc::new(PathAttributes::default()),
            igp_cost: None,
            stale: false,
        };
        let local = PathSource::Local {
            router_id: Ipv4Addr::new(10, 0, 0, 1),
        };
        rib.upsert("10.244.0.0/26".parse().unwrap(), path(local));
        for (prefix, from) in [
            ("10.244.1.0/24", "10.0.0.2"),
            ("10.244.1.0/26", "10.0.0.2"),
            ("10.244.1.0/26", "10.0.0.3"),
            ("fd00:244::/64", "10.0.0.2"),
        ] {
            rib.upsert(prefix.parse().unwrap(), path(peer(from)));
        }
        rib
    }

    #[test]
    fn loc_rib_queries_select_without_walking() {
        let rib = loc_rib();
        let pick = |filter: RouteFilter| -> Vec<(String, usize)> {
            RouteSelection::of_loc_rib(&rib, &filter)
                .routes
                .iter()
                .map(|r| (r.prefix.to_string(), r.paths.len()))
                .collect()
        };
        let longest = |a: &str| RouteFilter {
            network: Some(NetworkMatch::Longest(a.parse().unwrap())),
            ..RouteFilter::default()
        };
        assert_eq!(
            pick(longest("10.244.1.7/32")),
            [("10.244.1.0/26".into(), 2)]
        );
        assert_eq!(
            pick(longest("10.244.1.200/32")),
            [("10.244.1.0/24".into(), 1)]
        );
        assert!(pick(longest("192.0.2.1/32")).is_empty());
        let exact = RouteFilter {
            network: Some(NetworkMatch::Exact("10.244.1.0/25".parse().unwrap())),
            ..RouteFilter::default()
        };
        assert!(pick(exact).is_empty());
        let from3 = RouteFilter {
            source: Some(Some("10.0.0.3".parse().unwrap())),
            ..RouteFilter::default()
        };
        assert_eq!(pick(from3), [("10.244.1.0/26".into(), 1)]);
        let v6 = RouteFilter {
            family: Some(Family::Ipv6Unicast),
            ..RouteFilter::default()
        };
        assert_eq!(pick(v6), [("fd00:244::/64".into(), 1)]);
        let counts = RouteSelection::of_loc_rib(
            &rib,
            &RouteFilter {
                source: Some(Some("10.0.0.2".parse().unwrap())),
                count_only: true,
                ..RouteFilter::default()
            },
        );
        assert!(counts.routes.is_empty());
        let numbers: Vec<(usize, usize, usize)> = counts
            .counts
            .iter()
            .map(|c| (c.selected, c.total, c.networks))
            .collect();
        assert_eq!(numbers, [(2, 4, 3), (1, 1, 1)]);
    }

    #[test]
    fn protocol_names_follow_calico() {
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(PeerKind::Mesh.protocol_name(v4), "Mesh_10_0_0_2");
        assert_eq!(PeerKind::NodeSpecific.protocol_name(v6), "Node_fd00__2");
        assert_eq!(PeerKind::from_name_prefix("Global"), Some(PeerKind::Global));
        assert_eq!(PeerKind::from_name_prefix("Peer"), None);
    }
}
