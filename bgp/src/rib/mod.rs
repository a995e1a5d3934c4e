//! Routing information bases (RFC 4271 §3.2), pure: no I/O, no clock.
//!
//! [`Rib`] ties the pieces together: one [`AdjRibIn`] per peer (keyed by prefix and ADD-PATH
//! path id), the [`LocRib`] with best path ([`best_path`], every decision explained by a
//! [`DecisionStep`]) and ECMP, local originations, and RFC 4724 stale handling (mark on a
//! graceful session loss, sweep on End-of-RIB or timer). Every mutation returns the
//! [`BestChange`]s it caused; the caller feeds them to the kernel installer and to each peer's
//! [`AdjRibOut`] (export policy sits between, in the speaker).
//!
//! Import checks done here (RFC 4271 §9.1.2, RFC 4456 §8): a route from an eBGP peer whose
//! AS_PATH holds our AS, or an iBGP route whose ORIGINATOR_ID is ours or whose CLUSTER_LIST
//! holds our cluster id ([`crate::rr::import_loop`]), is not used (it is treated as a withdraw
//! of that NLRI).

pub mod adj_rib_in;
pub mod adj_rib_out;
pub mod best_path;
pub mod loc_rib;
pub mod prefix_index;

pub use adj_rib_in::{AdjRibIn, AdjRibInEntry, Interner};
pub use adj_rib_out::{AdjRibOut, AdjRibOutBits, Packed};
pub use best_path::{BestPathConfig, DecisionStep, Selection, compare, select};
pub use loc_rib::{BestChange, BestRoute, Destination, LocRib};
pub use prefix_index::{IdSet, PrefixIndex};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::wire::{Family, FamilySet, Nlri, PathAttributes, Prefix, Update};

/// A peer as the RIB needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// The peer's transport address (unique per peer).
    pub address: IpAddr,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's AS.
    pub asn: u32,
    /// Whether the session is internal.
    pub ibgp: bool,
    /// The peer is one of our route-reflector clients (RFC 4456).
    pub rr_client: bool,
}

/// Where a route came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSource {
    /// Originated by this speaker (IPAM blocks, borrowed /32s).
    Local {
        /// Our BGP identifier.
        router_id: Ipv4Addr,
    },
    /// Learned from a peer.
    Peer(Arc<PeerInfo>),
}

impl PathSource {
    /// The peer address, or `None` for local routes.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            PathSource::Local { .. } => None,
            PathSource::Peer(p) => Some(p.address),
        }
    }

    /// The BGP identifier of the speaker that sent the route (ours for local routes).
    pub fn router_id(&self) -> Ipv4Addr {
        match self {
            PathSource::Local { router_id } => *router_id,
            PathSource::Peer(p) => p.router_id,
        }
    }

    /// Whether the route is locally originated.
    pub fn is_local(&self) -> bool {
        matches!(self, PathSource::Local { .. })
    }

    /// Whether the route was learned over iBGP.
    pub fn is_ibgp(&self) -> bool {
        matches!(self, PathSource::Peer(p) if p.ibgp)
    }

    /// The role of the speaker the route came from, for reflection (RFC 4456).
    pub fn role(&self) -> crate::rr::PeerRole {
        match self {
            PathSource::Local { .. } => crate::rr::PeerRole::Local,
            PathSource::Peer(p) => crate::rr::PeerRole::of(p.ibgp, p.rr_client),
        }
    }
}

/// One route in the Loc-RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Where it came from.
    pub source: PathSource,
    /// The peer's ADD-PATH path id (0 without ADD-PATH or for local routes).
    pub path_id: u32,
    /// Its attributes (shared).
    pub attributes: Arc<PathAttributes>,
    /// The next hop for this route's family.
    pub next_hop: Option<IpAddr>,
    /// IGP cost to the next hop, when known.
    pub igp_cost: Option<u32>,
    /// Kept across a peer's graceful restart and not yet refreshed.
    pub stale: bool,
}

/// Errors of RIB operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// The peer was never added with [`Rib::peer_up`].
    #[error("unknown peer {0}")]
    UnknownPeer(IpAddr),
}

#[derive(Debug, Clone)]
struct PeerState {
    info: Arc<PeerInfo>,
    adj_rib_in: AdjRibIn,
}

/// Adj-RIBs-In, local routes and the Loc-RIB of one speaker.
#[derive(Debug)]
pub struct Rib {
    local_asn: u32,
    local_id: Ipv4Addr,
    cluster_id: Option<Ipv4Addr>,
    peers: HashMap<IpAddr, PeerState>,
    local: AdjRibIn,
    loc_rib: LocRib,
    interner: Interner,
    igp_costs: HashMap<IpAddr, u32>,
}

impl Rib {
    /// An empty RIB for a speaker with AS `local_asn` and identifier `local_id`.
    pub fn new(local_asn: u32, local_id: Ipv4Addr, config: BestPathConfig) -> Rib {
        Rib {
            local_asn,
            local_id,
            cluster_id: None,
            peers: HashMap::new(),
            local: AdjRibIn::default(),
            loc_rib: LocRib::new(config),
            interner: Interner::default(),
            igp_costs: HashMap::new(),
        }
    }

    /// Makes this speaker a route reflector with `cluster_id` (RFC 4456): routes whose
    /// CLUSTER_LIST holds it are loops from then on.
    pub fn set_cluster_id(&mut self, cluster_id: Option<Ipv4Addr>) {
        self.cluster_id = cluster_id;
    }

    /// Reports a change of any route of a prefix, not only of its selection (ADD-PATH send of
    /// every path, [`LocRib::set_report_all_paths`]).
    pub fn set_report_all_paths(&mut self, all: bool) {
        self.loc_rib.set_report_all_paths(all);
    }

    /// Registers a peer (or updates its identity after it reconnects, keeping stale routes).
    pub fn peer_up(&mut self, info: PeerInfo) {
        let address = info.address;
        let info = Arc::new(info);
        match self.peers.get_mut(&address) {
            Some(state) => state.info = info,
            None => {
                self.peers.insert(
                    address,
                    PeerState {
                        info,
                        adj_rib_in: AdjRibIn::default(),
                    },
                );
            }
        }
    }

    /// The session to a peer went down: routes of `retain` families become stale (graceful
    /// restart), every other route of the peer is withdrawn.
    pub fn peer_down(&mut self, address: IpAddr, retain: FamilySet) -> Vec<BestChange> {
        let flush: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| !retain.contains(*f))
            .collect();
        let mut changes = self.clear_families(address, FamilySet::of(&flush));
        let Some(state) = self.peers.get_mut(&address) else {
            return changes;
        };
        state.adj_rib_in.mark_stale(retain);
        let stale: Vec<(Nlri, Arc<PathAttributes>)> = state
            .adj_rib_in
            .iter()
            .filter(|(_, e)| e.stale)
            .map(|(n, e)| (*n, Arc::clone(&e.attributes)))
            .collect();
        let source = PathSource::Peer(Arc::clone(&state.info));
        for (nlri, attributes) in stale {
            let path = self.path(source.clone(), nlri, attributes, true);
            changes.extend(self.loc_rib.upsert(nlri.prefix, path));
        }
        changes
    }

    /// Forgets a peer entirely (deconfigured), withdrawing all its routes.
    pub fn remove_peer(&mut self, address: IpAddr) -> Vec<BestChange> {
        let changes = self.clear_families(address, FamilySet::of(&Family::ALL));
        self.peers.remove(&address);
        changes
    }

    /// Applies an UPDATE received from a peer (RFC 7606 already applied by the decoder).
    pub fn apply_update(
        &mut self,
        address: IpAddr,
        update: &Update,
    ) -> Result<Vec<BestChange>, RibError> {
        let state = self
            .peers
            .get(&address)
            .ok_or(RibError::UnknownPeer(address))?;
        let info = Arc::clone(&state.info);
        let mut changes = Vec::new();
        for nlri in &update.withdrawn {
            changes.extend(self.withdraw_from(address, *nlri));
        }
        if update.announced.is_empty() {
            return Ok(changes);
        }
        let looped = if info.ibgp {
            crate::rr::import_loop(&update.attributes, self.local_id, self.cluster_id).is_some()
        } else {
            update.attributes.as_path.contains(self.local_asn)
        };
        if looped {
            for nlri in &update.announced {
                changes.extend(self.withdraw_from(address, *nlri));
            }
            return Ok(changes);
        }
        let attributes = self.interner.intern(update.attributes.clone());
        let source = PathSource::Peer(Arc::clone(&info));
        for nlri in &update.announced {
            let Some(state) = self.peers.get_mut(&address) else {
                break;
            };
            if state.adj_rib_in.insert(*nlri, Arc::clone(&attributes)) {
                let path = self.path(source.clone(), *nlri, Arc::clone(&attributes), false);
                changes.extend(self.loc_rib.upsert(nlri.prefix, path));
            }
        }
        Ok(changes)
    }

    /// The peer sent End-of-RIB for `family`: its stale routes of that family go.
    pub fn end_of_rib(&mut self, address: IpAddr, family: Family) -> Vec<BestChange> {
        self.sweep_stale(address, FamilySet::of(&[family]))
    }

    /// Removes the peer's stale routes of `families` (restart or stale-path timer expired).
    pub fn sweep_stale(&mut self, address: IpAddr, families: FamilySet) -> Vec<BestChange> {
        let Some(state) = self.peers.get_mut(&address) else {
            return Vec::new();
        };
        let gone = state.adj_rib_in.sweep_stale(families);
        self.remove_paths(address, gone)
    }

    /// Originates a local route.
    pub fn originate(&mut self, prefix: Prefix, attributes: PathAttributes) -> Vec<BestChange> {
        let attributes = self.interner.intern(attributes);
        let nlri = Nlri::new(prefix);
        self.local.insert(nlri, Arc::clone(&attributes));
        let path = self.path(
            PathSource::Local {
                router_id: self.local_id,
            },
            nlri,
            attributes,
            false,
        );
        self.loc_rib.upsert(prefix, path).into_iter().collect()
    }

    /// Withdraws a local route.
    pub fn withdraw_local(&mut self, prefix: Prefix) -> Vec<BestChange> {
        let nlri = Nlri::new(prefix);
        if !self.local.remove(&nlri) {
            return Vec::new();
        }
        self.loc_rib.remove(prefix, None, 0).into_iter().collect()
    }

    /// Sets the IGP cost of a next hop (None: unknown) and reselects the prefixes using it.
    pub fn set_igp_cost(&mut self, next_hop: IpAddr, cost: Option<u32>) -> Vec<BestChange> {
        match cost {
            Some(c) => self.igp_costs.insert(next_hop, c),
            None => self.igp_costs.remove(&next_hop),
        };
        let prefixes: Vec<Prefix> = self
            .loc_rib
            .iter()
            .filter(|(_, d)| d.paths().iter().any(|p| p.next_hop == Some(next_hop)))
            .map(|(p, _)| *p)
            .collect();
        let mut changes = Vec::new();
        for prefix in prefixes {
            changes.extend(self.loc_rib.update_paths(prefix, |path| {
                let hit = path.next_hop == Some(next_hop) && path.igp_cost != cost;
                if hit {
                    path.igp_cost = cost;
                }
                hit
            }));
        }
        changes
    }

    /// The Loc-RIB.
    pub fn loc_rib(&self) -> &LocRib {
        &self.loc_rib
    }

    /// A peer's Adj-RIB-In.
    pub fn adj_rib_in(&self, address: IpAddr) -> Option<&AdjRibIn> {
        self.peers.get(&address).map(|s| &s.adj_rib_in)
    }

    /// The best route of a prefix.
    pub fn best(&self, prefix: &Prefix) -> Option<&Path> {
        self.loc_rib.get(prefix).and_then(Destination::best)
    }

    /// Releases attribute sets no route uses any more. The interner also does this by itself
    /// as it grows; call this after a batch of removals once their [`BestChange`]s are handled
    /// (those hold references too).
    pub fn compact(&mut self) {
        self.interner.collect();
    }

    /// Distinct attribute sets held (memory diagnostics).
    pub fn attribute_sets(&self) -> usize {
        self.interner.len()
    }

    fn path(
        &self,
        source: PathSource,
        nlri: Nlri,
        attributes: Arc<PathAttributes>,
        stale: bool,
    ) -> Path {
        let next_hop = attributes.next_hop_for(nlri.prefix.family());
        let igp_cost = next_hop.and_then(|nh| self.igp_costs.get(&nh).copied());
        Path {
            source,
            path_id: nlri.path_id,
            attributes,
            next_hop,
            igp_cost,
            stale,
        }
    }

    fn withdraw_from(&mut self, address: IpAddr, nlri: Nlri) -> Option<BestChange> {
        let state = self.peers.get_mut(&address)?;
        if !state.adj_rib_in.remove(&nlri) {
            return None;
        }
        self.loc_rib
            .remove(nlri.prefix, Some(address), nlri.path_id)
    }

    fn clear_families(&mut self, address: IpAddr, families: FamilySet) -> Vec<BestChange> {
        let Some(state) = self.peers.get_mut(&address) else {
            return Vec::new();
        };
        let gone = state.adj_rib_in.clear(families);
        self.remove_paths(address, gone)
    }

    /// Removes from the Loc-RIB the peer's paths `gone` (just dropped from its Adj-RIB-In).
    fn remove_paths(&mut self, address: IpAddr, gone: Vec<Nlri>) -> Vec<BestChange> {
        let mut changes = Vec::new();
        for nlri in gone {
            changes.extend(
                self.loc_rib
                    .remove(nlri.prefix, Some(address), nlri.path_id),
            );
        }
        changes
    }
}

#[cfg(test)]
mod tests;
