//! Export policy (what one peer is told about one prefix), Calico's rules:
//!
//! - our own routes (IPAM blocks, borrowed /32s) go to every peer, next hop = this node
//!   (the session's source address for its family, else the node address of the prefix's
//!   family); over eBGP with our AS prepended;
//! - a route learned over iBGP is never sent to another iBGP peer (RFC 4271 §9.2) unless we
//!   are a route reflector ([`crate::rr::advertise`]: client routes to every iBGP peer,
//!   non-client routes to clients only, ORIGINATOR_ID and CLUSTER_LIST added, nothing sent
//!   back to the route's originator); it may go to eBGP peers;
//! - a route learned over eBGP goes to iBGP peers with its next hop kept (unless
//!   `nextHopMode: Self`) and LOCAL_PREF set, and to other eBGP peers with next hop self;
//! - nothing is sent back to the peer it came from.
//!
//! With ADD-PATH send negotiated for a family, every path of a prefix that passes these rules
//! is advertised, best first (BIRD's `add paths tx`); without it only the best path.
//!
//! [`ExportCache`] builds each reflected attribute set once for all clients instead of once
//! per client, and keeps it while the route it reflects exists: every client then gets the
//! same `Arc` for it, in every flush, so its routes pack together and the message is encoded
//! once for all of them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Weak};

use foldhash::HashMap;

use crate::rib::Path;
use crate::rr::{self, Advertise, PeerRole};
use crate::wire::{AsPath, Family, MpNextHop, Origin, PathAttributes};

/// LOCAL_PREF on routes we send over iBGP (BIRD's default).
pub(crate) const DEFAULT_LOCAL_PREF: u32 = 100;

/// What export needs to know about one established session.
#[derive(Debug, Clone)]
pub(crate) struct ExportTarget {
    pub(crate) address: IpAddr,
    pub(crate) ibgp: bool,
    pub(crate) local_asn: u32,
    /// Next hop for our IPv4 and IPv6 routes toward this peer (None: cannot send that family).
    pub(crate) next_hop_v4: Option<IpAddr>,
    pub(crate) next_hop_v6: Option<IpAddr>,
    pub(crate) next_hop_self: bool,
    /// Attribute sets for our own routes, built once per session (shared so the Adj-RIB-Out
    /// packs all of them into the same UPDATEs).
    pub(crate) local_v4: Option<Arc<PathAttributes>>,
    pub(crate) local_v6: Option<Arc<PathAttributes>>,
    /// The peer's BGP identifier (a reflector sends no route back to its originator).
    pub(crate) peer_id: Ipv4Addr,
    /// The peer is one of our route-reflector clients.
    pub(crate) rr_client: bool,
    /// Our cluster id when we are a route reflector.
    pub(crate) cluster_id: Option<Ipv4Addr>,
}

/// Everything export depends on besides the peer's own address and identifier: targets of
/// one class export every path alike, but for [`ExportTarget::excludes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ExportClass {
    ibgp: bool,
    local_asn: u32,
    next_hop_v4: Option<IpAddr>,
    next_hop_v6: Option<IpAddr>,
    next_hop_self: bool,
    rr_client: bool,
    cluster_id: Option<Ipv4Addr>,
}

/// Reflected attribute sets, shared by every peer that gets the same set (the Adj-RIB-Out
/// packs equal sets together and the encoder sees one `Arc`). Keyed by the learned set's
/// address, which a `Weak` to it keeps from being reused without keeping the set itself
/// alive (so the RIB's interner can still let it go); [`ExportCache::sweep`] drops entries
/// whose learned set is gone.
#[derive(Debug, Default)]
pub(crate) struct ExportCache {
    reflected: HashMap<(usize, Ipv4Addr), (Weak<PathAttributes>, Arc<PathAttributes>)>,
    /// Size at which the next sweep runs.
    sweep_at: usize,
}

impl ExportCache {
    /// Entries kept before the first sweep.
    const MIN_SWEEP: usize = 256;

    /// Drops the entries of learned sets nobody holds any more, once the cache has doubled
    /// since the last sweep (cheap to call after every batch).
    pub(crate) fn sweep(&mut self) {
        if self.reflected.len() < self.sweep_at.max(Self::MIN_SWEEP) {
            return;
        }
        self.reflected
            .retain(|_, (learned, _)| learned.strong_count() > 0);
        self.sweep_at = self.reflected.len() * 2;
    }

    /// Number of reflected sets held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.reflected.len()
    }
}

impl ExportTarget {
    /// Builds the target and its local attribute sets.
    pub(crate) fn new(
        address: IpAddr,
        ibgp: bool,
        local_asn: u32,
        next_hop_v4: Option<IpAddr>,
        next_hop_v6: Option<IpAddr>,
        next_hop_self: bool,
    ) -> ExportTarget {
        let mut target = ExportTarget {
            address,
            ibgp,
            local_asn,
            next_hop_v4,
            next_hop_v6,
            next_hop_self,
            local_v4: None,
            local_v6: None,
            peer_id: Ipv4Addr::UNSPECIFIED,
            rr_client: false,
            cluster_id: None,
        };
        let base = PathAttributes {
            origin: Origin::Igp,
            as_path: if ibgp {
                AsPath::default()
            } else {
                AsPath::sequence(&[local_asn])
            },
            local_pref: ibgp.then_some(DEFAULT_LOCAL_PREF),
            ..PathAttributes::default()
        };
        target.local_v4 = target
            .with_next_hop(base.clone(), Family::Ipv4Unicast)
            .map(Arc::new);
        target.local_v6 = target
            .with_next_hop(base, Family::Ipv6Unicast)
            .map(Arc::new);
        target
    }

    fn next_hop(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4Unicast => self.next_hop_v4,
            Family::Ipv6Unicast => self.next_hop_v6,
        }
    }

    /// Sets our next hop for `family` on `attrs` (None if we have no address of that family).
    fn with_next_hop(&self, mut attrs: PathAttributes, family: Family) -> Option<PathAttributes> {
        let nh = self.next_hop(family)?;
        match (family, nh) {
            (Family::Ipv4Unicast, IpAddr::V4(v4)) => {
                attrs.next_hop = Some(v4);
                attrs.mp_next_hop = None;
            }
            (_, global) => {
                attrs.next_hop = None;
                attrs.mp_next_hop = Some(MpNextHop {
                    global,
                    link_local: None,
                });
            }
        }
        Some(attrs)
    }

    /// The same target with its reflection settings: the peer's identifier, whether it is a
    /// client, and our cluster id (None: not a reflector).
    pub(crate) fn reflection(
        mut self,
        peer_id: Ipv4Addr,
        rr_client: bool,
        cluster_id: Option<Ipv4Addr>,
    ) -> ExportTarget {
        self.peer_id = peer_id;
        self.rr_client = rr_client && self.ibgp;
        self.cluster_id = cluster_id;
        self
    }

    /// The attribute sets to advertise for a prefix whose best route is `best` (empty:
    /// withdraw).
    #[cfg(test)]
    pub(crate) fn export(&self, family: Family, best: Option<&Path>) -> Vec<Arc<PathAttributes>> {
        self.export_paths(family, best.into_iter(), &mut ExportCache::default())
    }

    /// The attribute sets to advertise for `paths` (best first; only the best unless the
    /// session sends every path with ADD-PATH), each path that passes export once.
    pub(crate) fn export_paths<'a>(
        &self,
        family: Family,
        paths: impl Iterator<Item = &'a Path>,
        cache: &mut ExportCache,
    ) -> Vec<Arc<PathAttributes>> {
        let mut out: Vec<Arc<PathAttributes>> = Vec::new();
        for path in paths {
            if let Some(attrs) = self.export_path(family, path, cache)
                && !out.contains(&attrs)
            {
                out.push(attrs);
            }
        }
        out
    }

    /// The attribute set to advertise for one path (None: not to this peer).
    pub(crate) fn export_path(
        &self,
        family: Family,
        path: &Path,
        cache: &mut ExportCache,
    ) -> Option<Arc<PathAttributes>> {
        if self.excludes(path) {
            return None;
        }
        self.export_for_class(family, path, cache)
    }

    /// What export depends on besides the peer's own address and identifier.
    pub(crate) fn class(&self) -> ExportClass {
        ExportClass {
            ibgp: self.ibgp,
            local_asn: self.local_asn,
            next_hop_v4: self.next_hop_v4,
            next_hop_v6: self.next_hop_v6,
            next_hop_self: self.next_hop_self,
            rr_client: self.rr_client,
            cluster_id: self.cluster_id,
        }
    }

    /// Whether `path` is not for this peer for reasons of the peer's own: it came from the
    /// peer, or (reflected) the peer is its originator.
    pub(crate) fn excludes(&self, path: &Path) -> bool {
        if path.source.is_local() {
            return false;
        }
        if path.source.address() == Some(self.address) {
            return true;
        }
        let to = PeerRole::of(self.ibgp, self.rr_client);
        rr::advertise(path.source.role(), to, self.cluster_id) == Advertise::Reflect
            && rr::is_originator(&path.attributes, self.peer_id)
    }

    /// [`ExportTarget::export_path`] without [`ExportTarget::excludes`]: the same for every
    /// target of one [`ExportClass`] (so one result serves all of them).
    pub(crate) fn export_for_class(
        &self,
        family: Family,
        path: &Path,
        cache: &mut ExportCache,
    ) -> Option<Arc<PathAttributes>> {
        if path.source.is_local() {
            return match family {
                Family::Ipv4Unicast => self.local_v4.clone(),
                Family::Ipv6Unicast => self.local_v6.clone(),
            };
        }
        let to = PeerRole::of(self.ibgp, self.rr_client);
        match rr::advertise(path.source.role(), to, self.cluster_id) {
            Advertise::No => None,
            Advertise::Reflect => {
                let cluster_id = self.cluster_id?;
                let learned_from = path.source.router_id();
                if self.next_hop_self {
                    let mut attrs = self.reflected(path, learned_from, cluster_id);
                    attrs = self.with_next_hop(attrs, family)?;
                    return Some(Arc::new(attrs));
                }
                let key = (Arc::as_ptr(&path.attributes) as usize, learned_from);
                let entry = cache.reflected.entry(key).or_insert_with(|| {
                    let attrs = self.reflected(path, learned_from, cluster_id);
                    (Arc::downgrade(&path.attributes), Arc::new(attrs))
                });
                Some(Arc::clone(&entry.1))
            }
            Advertise::Normal => {
                let mut attrs = (*path.attributes).clone();
                rr::strip(&mut attrs);
                if self.ibgp {
                    attrs.local_pref = Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
                    if self.next_hop_self {
                        attrs = self.with_next_hop(attrs, family)?;
                    }
                } else {
                    attrs.local_pref = None;
                    attrs.med = None;
                    attrs.as_path = attrs.as_path.prepend(self.local_asn);
                    attrs = self.with_next_hop(attrs, family)?;
                }
                Some(Arc::new(attrs))
            }
        }
    }

    fn reflected(
        &self,
        path: &Path,
        learned_from: Ipv4Addr,
        cluster_id: Ipv4Addr,
    ) -> PathAttributes {
        let mut attrs = (*path.attributes).clone();
        rr::reflect(&mut attrs, learned_from, cluster_id);
        attrs.local_pref = Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::{PathSource, PeerInfo};
    use std::net::Ipv4Addr;

    fn peer_path(ibgp: bool, from: &str) -> Path {
        let address: IpAddr = from.parse().unwrap();
        Path {
            source: PathSource::Peer(Arc::new(PeerInfo {
                address,
                router_id: Ipv4Addr::new(1, 1, 1, 1),
                asn: if ibgp { 64512 } else { 65000 },
                ibgp,
                rr_client: false,
            })),
            path_id: 0,
            attributes: Arc::new(PathAttributes {
                next_hop: Some(Ipv4Addr::new(10, 0, 0, 9)),
                as_path: if ibgp {
                    AsPath::default()
                } else {
                    AsPath::sequence(&[65000])
                },
                ..PathAttributes::default()
            }),
            next_hop: Some("10.0.0.9".parse().unwrap()),
            igp_cost: None,
            stale: false,
        }
    }

    fn target(ibgp: bool) -> ExportTarget {
        ExportTarget::new(
            "10.0.0.2".parse().unwrap(),
            ibgp,
            64512,
            Some("10.0.0.1".parse().unwrap()),
            Some("fd00::1".parse().unwrap()),
            false,
        )
    }

    #[test]
    fn local_routes_carry_our_next_hop_per_family() {
        let ibgp = target(true);
        let v4 = ibgp.local_v4.as_ref().unwrap();
        assert_eq!(v4.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(v4.local_pref, Some(DEFAULT_LOCAL_PREF));
        assert!(v4.as_path.segments.is_empty());
        let v6 = ibgp.local_v6.as_ref().unwrap();
        assert_eq!(
            v6.mp_next_hop.unwrap().global,
            "fd00::1".parse::<IpAddr>().unwrap()
        );
        let ebgp = target(false);
        assert_eq!(ebgp.local_v4.as_ref().unwrap().as_path.path_len(), 1);
        assert_eq!(ebgp.local_v4.as_ref().unwrap().local_pref, None);
    }

    #[test]
    fn ibgp_learned_is_not_sent_to_ibgp_but_to_ebgp() {
        let path = peer_path(true, "10.0.0.3");
        assert!(
            target(true)
                .export(Family::Ipv4Unicast, Some(&path))
                .is_empty()
        );
        let out = target(false).export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(out[0].as_path.neighbor_as(), Some(64512));
    }

    #[test]
    fn ebgp_learned_goes_to_ibgp_with_next_hop_kept_and_not_back() {
        let path = peer_path(false, "10.0.0.3");
        let out = target(true).export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out[0].next_hop, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(out[0].local_pref, Some(DEFAULT_LOCAL_PREF));
        let back = peer_path(false, "10.0.0.2");
        assert!(
            target(true)
                .export(Family::Ipv4Unicast, Some(&back))
                .is_empty()
        );
        assert!(target(true).export(Family::Ipv4Unicast, None).is_empty());
    }

    const CLUSTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);

    /// An iBGP route from `from` (router id = address), client or not.
    fn ibgp_path(from: &str, client: bool, next_hop: &str) -> Path {
        let address: Ipv4Addr = from.parse().unwrap();
        let nh: Ipv4Addr = next_hop.parse().unwrap();
        Path {
            source: PathSource::Peer(Arc::new(PeerInfo {
                address: IpAddr::V4(address),
                router_id: address,
                asn: 64512,
                ibgp: true,
                rr_client: client,
            })),
            path_id: 0,
            attributes: Arc::new(PathAttributes {
                next_hop: Some(nh),
                local_pref: Some(100),
                ..PathAttributes::default()
            }),
            next_hop: Some(IpAddr::V4(nh)),
            igp_cost: None,
            stale: false,
        }
    }

    /// An iBGP target at `address`, client or not, of a reflector (or of a plain speaker).
    fn rr_target(address: &str, client: bool, cluster: Option<Ipv4Addr>) -> ExportTarget {
        let id: Ipv4Addr = address.parse().unwrap();
        target(true).reflect_to(IpAddr::V4(id), id, client, cluster)
    }

    impl ExportTarget {
        fn reflect_to(
            mut self,
            address: IpAddr,
            id: Ipv4Addr,
            client: bool,
            cluster: Option<Ipv4Addr>,
        ) -> ExportTarget {
            self.address = address;
            self.reflection(id, client, cluster)
        }
    }

    #[test]
    fn reflector_reflects_client_route_to_clients_with_originator_and_cluster_list() {
        let path = ibgp_path("10.0.0.5", true, "10.0.0.5");
        let out =
            rr_target("10.0.0.6", true, Some(CLUSTER)).export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].originator_id, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(out[0].cluster_list, vec![CLUSTER]);
        assert_eq!(
            out[0].next_hop,
            Some(Ipv4Addr::new(10, 0, 0, 5)),
            "next hop kept"
        );
        // ... and to non-clients (another reflector).
        let out =
            rr_target("10.0.0.7", false, Some(CLUSTER)).export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out[0].cluster_list, vec![CLUSTER]);
        // Not back to the client it came from.
        assert!(
            rr_target("10.0.0.5", true, Some(CLUSTER))
                .export(Family::Ipv4Unicast, Some(&path))
                .is_empty()
        );
    }

    #[test]
    fn reflector_sends_non_client_routes_to_clients_only() {
        let path = ibgp_path("10.0.0.7", false, "10.0.0.7");
        assert_eq!(
            rr_target("10.0.0.6", true, Some(CLUSTER))
                .export(Family::Ipv4Unicast, Some(&path))
                .len(),
            1
        );
        assert!(
            rr_target("10.0.0.8", false, Some(CLUSTER))
                .export(Family::Ipv4Unicast, Some(&path))
                .is_empty()
        );
    }

    #[test]
    fn a_speaker_without_cluster_id_reflects_nothing() {
        let path = ibgp_path("10.0.0.5", true, "10.0.0.5");
        assert!(
            rr_target("10.0.0.6", true, None)
                .export(Family::Ipv4Unicast, Some(&path))
                .is_empty()
        );
    }

    #[test]
    fn reflected_route_keeps_originator_and_skips_the_originator_client() {
        // Learned from another reflector (non-client) with ORIGINATOR_ID 10.0.0.9 already set.
        let mut path = ibgp_path("10.0.0.200", false, "10.0.0.9");
        path.attributes = Arc::new(PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
            cluster_list: vec![Ipv4Addr::new(10, 0, 0, 253)],
            ..(*path.attributes).clone()
        });
        let out =
            rr_target("10.0.0.6", true, Some(CLUSTER)).export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out[0].originator_id, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(
            out[0].cluster_list,
            vec![CLUSTER, Ipv4Addr::new(10, 0, 0, 253)]
        );
        assert!(
            rr_target("10.0.0.9", true, Some(CLUSTER))
                .export(Family::Ipv4Unicast, Some(&path))
                .is_empty()
        );
        // Toward eBGP the reflection attributes are removed.
        let out = target(false)
            .reflection(Ipv4Addr::new(10, 0, 0, 2), false, Some(CLUSTER))
            .export(Family::Ipv4Unicast, Some(&path));
        assert_eq!(out[0].originator_id, None);
        assert!(out[0].cluster_list.is_empty());
    }

    #[test]
    fn every_path_is_exported_once_and_reflected_sets_are_shared() {
        // Anycast: the same /32 from two clients, different next hops.
        let a = ibgp_path("10.0.0.5", true, "10.0.0.5");
        let b = ibgp_path("10.0.0.6", true, "10.0.0.6");
        let mut cache = ExportCache::default();
        let to_c = rr_target("10.0.0.7", true, Some(CLUSTER));
        let out = to_c.export_paths(Family::Ipv4Unicast, [&a, &b].into_iter(), &mut cache);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].next_hop, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(out[1].next_hop, Some(Ipv4Addr::new(10, 0, 0, 6)));
        // One of the two is the receiving client's own route: only the other goes back.
        let to_a = rr_target("10.0.0.5", true, Some(CLUSTER));
        let back = to_a.export_paths(Family::Ipv4Unicast, [&a, &b].into_iter(), &mut cache);
        assert_eq!(back.len(), 1);
        assert!(
            Arc::ptr_eq(&back[0], &out[1]),
            "one attribute set per batch, not per client"
        );
    }

    #[test]
    fn clients_of_one_class_share_the_export_but_for_their_own_exclusions() {
        let path = ibgp_path("10.0.0.5", true, "10.0.0.5");
        let source = rr_target("10.0.0.5", true, Some(CLUSTER));
        let other = rr_target("10.0.0.6", true, Some(CLUSTER));
        assert_eq!(source.class(), other.class());
        assert!(source.excludes(&path) && !other.excludes(&path));
        let mut cache = ExportCache::default();
        let for_class = source
            .export_for_class(Family::Ipv4Unicast, &path, &mut cache)
            .unwrap();
        let for_other = other
            .export_path(Family::Ipv4Unicast, &path, &mut cache)
            .unwrap();
        assert!(Arc::ptr_eq(&for_class, &for_other));
        assert!(
            source
                .export_path(Family::Ipv4Unicast, &path, &mut cache)
                .is_none()
        );
        // A non-client is another class.
        assert_ne!(
            rr_target("10.0.0.7", false, Some(CLUSTER)).class(),
            other.class()
        );
    }

    #[test]
    fn the_cache_keeps_no_learned_set_alive_and_sweeps_the_gone() {
        let mut cache = ExportCache::default();
        let to_c = rr_target("10.0.0.7", true, Some(CLUSTER));
        let mut paths: Vec<Path> = (0..ExportCache::MIN_SWEEP)
            .map(|i| {
                let mut p = ibgp_path("10.0.0.5", true, "10.0.0.5");
                p.attributes = Arc::new(PathAttributes {
                    med: Some(u32::try_from(i).unwrap()),
                    ..(*p.attributes).clone()
                });
                p
            })
            .collect();
        let first = to_c.export_path(Family::Ipv4Unicast, &paths[0], &mut cache);
        let again = to_c.export_path(Family::Ipv4Unicast, &paths[0], &mut cache);
        assert!(
            Arc::ptr_eq(&first.unwrap(), &again.unwrap()),
            "same set across flushes"
        );
        assert_eq!(
            Arc::strong_count(&paths[0].attributes),
            1,
            "no reference kept"
        );
        for p in &paths {
            to_c.export_path(Family::Ipv4Unicast, p, &mut cache);
        }
        assert_eq!(cache.len(), ExportCache::MIN_SWEEP);
        paths.truncate(10);
        cache.sweep();
        assert_eq!(cache.len(), 10);
    }
}
