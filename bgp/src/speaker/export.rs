//! Export policy (what one peer is told about one prefix), Calico's rules:
//!
//! - our own routes (IPAM blocks, borrowed /32s) go to every peer, next hop = this node
//!   (the session's source address for its family, else the node address of the prefix's
//!   family); over eBGP with our AS prepended;
//! - a route learned over iBGP is never sent to another iBGP peer (RFC 4271 §9.2; reflection
//!   is the route reflector's job) but may go to eBGP peers;
//! - a route learned over eBGP goes to iBGP peers with its next hop kept (unless
//!   `nextHopMode: Self`) and LOCAL_PREF set, and to other eBGP peers with next hop self;
//! - nothing is sent back to the peer it came from.

use std::net::IpAddr;
use std::sync::Arc;

use crate::rib::Path;
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

    /// The attribute sets to advertise for a prefix whose best route is `best` (empty:
    /// withdraw).
    pub(crate) fn export(&self, family: Family, best: Option<&Path>) -> Vec<Arc<PathAttributes>> {
        let Some(best) = best else {
            return Vec::new();
        };
        if best.source.is_local() {
            let local = match family {
                Family::Ipv4Unicast => &self.local_v4,
                Family::Ipv6Unicast => &self.local_v6,
            };
            return local.iter().cloned().collect();
        }
        if best.source.address() == Some(self.address) {
            return Vec::new();
        }
        let learned_ibgp = best.source.is_ibgp();
        if learned_ibgp && self.ibgp {
            return Vec::new();
        }
        let mut attrs = (*best.attributes).clone();
        attrs.originator_id = None;
        attrs.cluster_list.clear();
        if self.ibgp {
            attrs.local_pref = Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
            if self.next_hop_self {
                match self.with_next_hop(attrs, family) {
                    Some(a) => attrs = a,
                    None => return Vec::new(),
                }
            }
        } else {
            attrs.local_pref = None;
            attrs.med = None;
            attrs.as_path = attrs.as_path.prepend(self.local_asn);
            match self.with_next_hop(attrs, family) {
                Some(a) => attrs = a,
                None => return Vec::new(),
            }
        }
        vec![Arc::new(attrs)]
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
}
