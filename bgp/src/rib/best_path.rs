//! Best-path selection (RFC 4271 §9.1.2.2 with the usual tie-breakers and RFC 4456 §9), where
//! every decision names the step that made it ([`DecisionStep`]) for `show route all` and tests.
//!
//! Selection runs the RFC's elimination procedure over the whole candidate set, step by step,
//! rather than sorting with a pairwise comparator: MED is only comparable between routes from
//! the same neighbor AS, so pairwise comparison is not transitive and a sort would depend on
//! arrival order. Elimination makes the result a function of the set alone.
//!
//! Steps, in order: locally originated first; highest LOCAL_PREF; shortest AS_PATH; lowest
//! ORIGIN; lowest MED among routes from the same neighbor AS; eBGP over iBGP; lowest IGP cost
//! to the next hop (when known for every candidate); lowest router id (ORIGINATOR_ID when
//! present); shortest CLUSTER_LIST; lowest peer address; lowest path id. Routes still equal
//! after the IGP-cost step form the ECMP set.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Path;

/// The step of the decision process that separated two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecisionStep {
    /// There was only one route.
    OnlyPath,
    /// A locally originated route beats a learned one.
    LocalOrigin,
    /// Higher LOCAL_PREF (RFC 4271 §9.1.1; 100 when absent).
    LocalPref,
    /// Shorter AS_PATH (§9.1.2.2 a; an AS_SET counts as one).
    AsPathLength,
    /// Lower ORIGIN (§9.1.2.2 b).
    Origin,
    /// Lower MED from the same neighbor AS (§9.1.2.2 c).
    Med,
    /// Learned over eBGP beats learned over iBGP (§9.1.2.2 d).
    EbgpOverIbgp,
    /// Lower IGP cost to the next hop (§9.1.2.2 e).
    IgpCost,
    /// Lower BGP identifier, ORIGINATOR_ID standing in for it (§9.1.2.2 f, RFC 4456 §9).
    RouterId,
    /// Shorter CLUSTER_LIST (RFC 4456 §9).
    ClusterListLength,
    /// Lower peer address (§9.1.2.2 g).
    PeerAddress,
    /// Lower ADD-PATH path id from the same peer (final tie-break, RFC 7911).
    PathId,
}

impl fmt::Display for DecisionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecisionStep::OnlyPath => "only path",
            DecisionStep::LocalOrigin => "local origin",
            DecisionStep::LocalPref => "local preference",
            DecisionStep::AsPathLength => "AS path length",
            DecisionStep::Origin => "origin",
            DecisionStep::Med => "MED",
            DecisionStep::EbgpOverIbgp => "eBGP over iBGP",
            DecisionStep::IgpCost => "IGP cost",
            DecisionStep::RouterId => "router id",
            DecisionStep::ClusterListLength => "cluster list length",
            DecisionStep::PeerAddress => "peer address",
            DecisionStep::PathId => "path id",
        })
    }
}

/// Knobs of the decision process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestPathConfig {
    /// LOCAL_PREF assumed when a route has none.
    pub default_local_pref: u32,
    /// Compare MED across neighbor ASes too.
    pub always_compare_med: bool,
    /// A missing MED is the worst (u32::MAX) rather than 0 (RFC 4271 default).
    pub med_missing_as_worst: bool,
    /// Maximum routes in the ECMP set (1 disables multipath).
    pub max_paths: usize,
}

impl Default for BestPathConfig {
    fn default() -> Self {
        BestPathConfig {
            default_local_pref: 100,
            always_compare_med: false,
            med_missing_as_worst: false,
            max_paths: 16,
        }
    }
}

/// The outcome of selection over a set of routes (indices into the slice given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The best route.
    pub best: usize,
    /// The step that eliminated the last competitor of `best`.
    pub step: DecisionStep,
    /// The ECMP set: routes equal to `best` up to and including the IGP-cost step, one per
    /// distinct next hop, best first.
    pub multipath: Vec<usize>,
}

const STEPS: [DecisionStep; 11] = [
    DecisionStep::LocalOrigin,
    DecisionStep::LocalPref,
    DecisionStep::AsPathLength,
    DecisionStep::Origin,
    DecisionStep::Med,
    DecisionStep::EbgpOverIbgp,
    DecisionStep::IgpCost,
    DecisionStep::RouterId,
    DecisionStep::ClusterListLength,
    DecisionStep::PeerAddress,
    DecisionStep::PathId,
];

/// Selects the best route among `paths` (None if empty).
pub fn select(paths: &[Path], config: &BestPathConfig) -> Option<Selection> {
    let mut candidates: Vec<usize> = (0..paths.len()).collect();
    if candidates.is_empty() {
        return None;
    }
    let mut step = DecisionStep::OnlyPath;
    let mut ecmp: Option<Vec<usize>> = None;
    for s in STEPS {
        if candidates.len() > 1 {
            let before = candidates.len();
            candidates = eliminate(s, paths, candidates, config);
            if candidates.len() < before {
                step = s;
            }
        }
        if s == DecisionStep::IgpCost {
            ecmp = Some(candidates.clone());
        }
    }
    let best = candidates[0];
    let mut multipath = vec![best];
    let mut equal = ecmp.unwrap_or_default();
    // Best first, the rest in the order the remaining tie-breakers give them.
    equal.sort_by(|a, b| tie_break_order(&paths[*a], &paths[*b]));
    for index in equal {
        if multipath.len() >= config.max_paths.max(1) {
            break;
        }
        let next_hop = paths[index].next_hop;
        if index != best && !multipath.iter().any(|m| paths[*m].next_hop == next_hop) {
            multipath.push(index);
        }
    }
    Some(Selection {
        best,
        step,
        multipath,
    })
}

/// Compares two routes: `Ordering::Less` means `a` is preferred. The step says why.
pub fn compare(a: &Path, b: &Path, config: &BestPathConfig) -> (Ordering, DecisionStep) {
    let pair = [a.clone(), b.clone()];
    match select(&pair, config) {
        Some(Selection { best: 0, step, .. }) => (Ordering::Less, step),
        Some(Selection { step, .. }) => (Ordering::Greater, step),
        None => (Ordering::Equal, DecisionStep::OnlyPath),
    }
}

fn local_pref(path: &Path, config: &BestPathConfig) -> u32 {
    path.attributes
        .local_pref
        .unwrap_or(config.default_local_pref)
}

fn med(path: &Path, config: &BestPathConfig) -> u32 {
    path.attributes
        .med
        .unwrap_or(if config.med_missing_as_worst {
            u32::MAX
        } else {
            0
        })
}

fn router_id(path: &Path) -> Ipv4Addr {
    path.attributes
        .originator_id
        .unwrap_or(path.source.router_id())
}

fn peer_address(path: &Path) -> IpAddr {
    path.source
        .address()
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

/// Keeps the candidates that are best for one step (a total order for every step but MED).
fn eliminate(
    step: DecisionStep,
    paths: &[Path],
    candidates: Vec<usize>,
    config: &BestPathConfig,
) -> Vec<usize> {
    if step == DecisionStep::Med {
        return eliminate_med(paths, candidates, config);
    }
    if step == DecisionStep::IgpCost && candidates.iter().any(|c| paths[*c].igp_cost.is_none()) {
        return candidates; // only comparable when known for every candidate
    }
    let key = |p: &Path| -> (u64, IpAddr) {
        let zero = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        match step {
            DecisionStep::LocalOrigin => (u64::from(!p.source.is_local()), zero),
            DecisionStep::LocalPref => (u64::from(u32::MAX - local_pref(p, config)), zero),
            DecisionStep::AsPathLength => (p.attributes.as_path.path_len() as u64, zero),
            DecisionStep::Origin => (p.attributes.origin as u64, zero),
            DecisionStep::EbgpOverIbgp => (u64::from(p.source.is_ibgp()), zero),
            DecisionStep::IgpCost => (u64::from(p.igp_cost.unwrap_or(u32::MAX)), zero),
            DecisionStep::RouterId => (u64::from(u32::from(router_id(p))), zero),
            DecisionStep::ClusterListLength => (p.attributes.cluster_list.len() as u64, zero),
            DecisionStep::PeerAddress => (0, peer_address(p)),
            DecisionStep::PathId => (u64::from(p.path_id), zero),
            DecisionStep::OnlyPath | DecisionStep::Med => (0, zero),
        }
    };
    let Some(best) = candidates.iter().map(|c| key(&paths[*c])).min() else {
        return candidates;
    };
    candidates
        .into_iter()
        .filter(|c| key(&paths[*c]) == best)
        .collect()
}

/// RFC 4271 §9.1.2.2 (c): remove a route if another route from the same neighbor AS has a
/// lower MED (or from any AS with `always_compare_med`).
fn eliminate_med(paths: &[Path], candidates: Vec<usize>, config: &BestPathConfig) -> Vec<usize> {
    let group = |p: &Path| {
        if config.always_compare_med {
            None
        } else {
            Some(p.attributes.as_path.neighbor_as())
        }
    };
    candidates
        .iter()
        .copied()
        .filter(|c| {
            let path = &paths[*c];
            !candidates.iter().any(|other| {
                let o = &paths[*other];
                group(o) == group(path) && med(o, config) < med(path, config)
            })
        })
        .collect()
}

/// Orders routes equal through the IGP-cost step by the remaining tie-breakers.
fn tie_break_order(a: &Path, b: &Path) -> Ordering {
    router_id(a)
        .cmp(&router_id(b))
        .then(
            a.attributes
                .cluster_list
                .len()
                .cmp(&b.attributes.cluster_list.len()),
        )
        .then(peer_address(a).cmp(&peer_address(b)))
        .then(a.path_id.cmp(&b.path_id))
}
