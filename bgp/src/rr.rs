//! Route reflection (RFC 4456), pure: which iBGP peers a route may be reflected to, the
//! attributes a reflected route carries, and the loop checks on import.
//!
//! Roles ([`PeerRole`]): a route is learned from (or sent to) an eBGP peer, an iBGP
//! *client* (`route_reflector_client`), an iBGP *non-client*, or it is our own.
//!
//! - [`advertise`] (RFC 4456 §6, RFC 4271 §9.2): local and eBGP-learned routes go to everyone;
//!   an iBGP-learned route goes to eBGP peers, and to iBGP peers only when we are a reflector:
//!   from a client to every client and non-client, from a non-client to clients only.
//! - [`reflect`] (§7-8): on reflection ORIGINATOR_ID is set to the router id of the peer we
//!   learned the route from when absent, and our cluster id is prepended to CLUSTER_LIST.
//!   Both are removed toward eBGP peers ([`strip`]): they are iBGP-only attributes.
//! - [`import_loop`] (§8): a route whose ORIGINATOR_ID is our router id, or whose CLUSTER_LIST
//!   holds our cluster id, is a loop and is ignored (the RIB treats it as a withdraw of its
//!   NLRI).
//! - [`is_originator`]: a reflector does not send a route back to the client that originated
//!   it (the client would drop it as a loop anyway).
//!
//! Best path (§9: ORIGINATOR_ID stands in for the router id, then shorter CLUSTER_LIST wins)
//! is in [`crate::rib::best_path`].

use std::fmt;
use std::net::Ipv4Addr;

use crate::wire::PathAttributes;

/// How a peer relates to us, as far as reflection is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// Our own route (no peer).
    Local,
    /// An external peer.
    Ebgp,
    /// An internal peer that is one of our route-reflector clients.
    Client,
    /// An internal peer that is not a client (another reflector, or a mesh peer).
    NonClient,
}

impl PeerRole {
    /// The role of a peer from its session type and configuration.
    pub fn of(ibgp: bool, client: bool) -> PeerRole {
        match (ibgp, client) {
            (false, _) => PeerRole::Ebgp,
            (true, true) => PeerRole::Client,
            (true, false) => PeerRole::NonClient,
        }
    }

    /// Whether the peer is internal.
    pub fn is_ibgp(self) -> bool {
        matches!(self, PeerRole::Client | PeerRole::NonClient)
    }
}

/// What export does with one route toward one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertise {
    /// Not sent.
    No,
    /// Sent with the usual iBGP/eBGP attribute rules.
    Normal,
    /// Reflected: iBGP-learned route to an iBGP peer, with ORIGINATOR_ID and CLUSTER_LIST.
    Reflect,
}

/// Decides whether a route learned from a `from` peer goes to a `to` peer. `cluster_id` is
/// `Some` when this speaker is a route reflector.
pub fn advertise(from: PeerRole, to: PeerRole, cluster_id: Option<Ipv4Addr>) -> Advertise {
    match (from, to) {
        (PeerRole::Local | PeerRole::Ebgp, _) | (_, PeerRole::Ebgp) => Advertise::Normal,
        (PeerRole::Client, PeerRole::Client | PeerRole::NonClient)
        | (PeerRole::NonClient, PeerRole::Client)
            if cluster_id.is_some() =>
        {
            Advertise::Reflect
        }
        _ => Advertise::No,
    }
}

/// Adds the reflection attributes to a route learned from the iBGP peer `learned_from`
/// (its BGP identifier): ORIGINATOR_ID when absent, and `cluster_id` in front of CLUSTER_LIST.
pub fn reflect(attributes: &mut PathAttributes, learned_from: Ipv4Addr, cluster_id: Ipv4Addr) {
    if attributes.originator_id.is_none() {
        attributes.originator_id = Some(learned_from);
    }
    attributes.cluster_list.insert(0, cluster_id);
}

/// Removes the iBGP-only reflection attributes (toward eBGP peers, and on routes we do not
/// reflect).
pub fn strip(attributes: &mut PathAttributes) {
    attributes.originator_id = None;
    attributes.cluster_list.clear();
}

/// Why an imported route was found to be a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopReason {
    /// ORIGINATOR_ID is our router id: the route is our own, reflected back.
    OriginatorIsUs,
    /// Our cluster id is in CLUSTER_LIST: the route went around through our cluster.
    ClusterListHasOurs,
}

impl fmt::Display for LoopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoopReason::OriginatorIsUs => "ORIGINATOR_ID is our router id",
            LoopReason::ClusterListHasOurs => "CLUSTER_LIST holds our cluster id",
        })
    }
}

/// RFC 4456 §8 loop checks for a route received over iBGP.
pub fn import_loop(
    attributes: &PathAttributes,
    router_id: Ipv4Addr,
    cluster_id: Option<Ipv4Addr>,
) -> Option<LoopReason> {
    if attributes.originator_id == Some(router_id) {
        return Some(LoopReason::OriginatorIsUs);
    }
    if cluster_id.is_some_and(|id| attributes.cluster_list.contains(&id)) {
        return Some(LoopReason::ClusterListHasOurs);
    }
    None
}

/// Whether the peer with BGP identifier `peer_id` originated the route (so a reflector does
/// not send it back).
pub fn is_originator(attributes: &PathAttributes, peer_id: Ipv4Addr) -> bool {
    attributes.originator_id == Some(peer_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RR: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 0, 0, 254));
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn roles_from_session_and_config() {
        assert_eq!(PeerRole::of(false, true), PeerRole::Ebgp);
        assert_eq!(PeerRole::of(true, true), PeerRole::Client);
        assert_eq!(PeerRole::of(true, false), PeerRole::NonClient);
        assert!(PeerRole::Client.is_ibgp() && !PeerRole::Ebgp.is_ibgp());
    }

    #[test]
    fn without_reflection_ibgp_learned_never_goes_to_ibgp() {
        for from in [PeerRole::Client, PeerRole::NonClient] {
            for to in [PeerRole::Client, PeerRole::NonClient] {
                assert_eq!(advertise(from, to, None), Advertise::No, "{from:?}->{to:?}");
            }
            assert_eq!(advertise(from, PeerRole::Ebgp, None), Advertise::Normal);
        }
    }

    #[test]
    fn client_routes_are_reflected_to_clients_and_non_clients() {
        assert_eq!(
            advertise(PeerRole::Client, PeerRole::Client, RR),
            Advertise::Reflect
        );
        assert_eq!(
            advertise(PeerRole::Client, PeerRole::NonClient, RR),
            Advertise::Reflect
        );
    }

    #[test]
    fn non_client_routes_go_to_clients_only() {
        assert_eq!(
            advertise(PeerRole::NonClient, PeerRole::Client, RR),
            Advertise::Reflect
        );
        assert_eq!(
            advertise(PeerRole::NonClient, PeerRole::NonClient, RR),
            Advertise::No
        );
    }

    #[test]
    fn local_and_ebgp_routes_go_everywhere_unreflected() {
        for from in [PeerRole::Local, PeerRole::Ebgp] {
            for to in [PeerRole::Client, PeerRole::NonClient, PeerRole::Ebgp] {
                assert_eq!(advertise(from, to, RR), Advertise::Normal);
                assert_eq!(advertise(from, to, None), Advertise::Normal);
            }
        }
        assert_eq!(
            advertise(PeerRole::Client, PeerRole::Ebgp, RR),
            Advertise::Normal
        );
    }

    #[test]
    fn reflection_sets_originator_when_absent_and_prepends_cluster_id() {
        let mut attrs = PathAttributes::default();
        let client = Ipv4Addr::new(10, 0, 0, 7);
        reflect(&mut attrs, client, Ipv4Addr::new(1, 1, 1, 1));
        assert_eq!(attrs.originator_id, Some(client));
        assert_eq!(attrs.cluster_list, vec![Ipv4Addr::new(1, 1, 1, 1)]);
        // A second reflector keeps the first ORIGINATOR_ID and prepends its own cluster id.
        reflect(
            &mut attrs,
            Ipv4Addr::new(10, 0, 0, 8),
            Ipv4Addr::new(2, 2, 2, 2),
        );
        assert_eq!(attrs.originator_id, Some(client));
        assert_eq!(
            attrs.cluster_list,
            vec![Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(1, 1, 1, 1)]
        );
        strip(&mut attrs);
        assert_eq!(attrs.originator_id, None);
        assert!(attrs.cluster_list.is_empty());
    }

    #[test]
    fn loop_when_originator_is_us() {
        let attrs = PathAttributes {
            originator_id: Some(ME),
            ..PathAttributes::default()
        };
        assert_eq!(
            import_loop(&attrs, ME, None),
            Some(LoopReason::OriginatorIsUs)
        );
        assert_eq!(
            import_loop(&attrs, ME, RR),
            Some(LoopReason::OriginatorIsUs)
        );
        assert_eq!(import_loop(&attrs, Ipv4Addr::new(10, 0, 0, 2), None), None);
    }

    #[test]
    fn loop_when_our_cluster_id_is_listed() {
        let attrs = PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
            cluster_list: vec![Ipv4Addr::new(3, 3, 3, 3), RR.unwrap_or(ME)],
            ..PathAttributes::default()
        };
        assert_eq!(
            import_loop(&attrs, ME, RR),
            Some(LoopReason::ClusterListHasOurs)
        );
        // Not a reflector: a cluster list is just data.
        assert_eq!(import_loop(&attrs, ME, None), None);
        assert_eq!(
            import_loop(&attrs, ME, Some(Ipv4Addr::new(4, 4, 4, 4))),
            None
        );
        assert_eq!(
            LoopReason::ClusterListHasOurs.to_string(),
            "CLUSTER_LIST holds our cluster id"
        );
    }

    /// The whole RFC 4456 §6 / RFC 4271 §9.2 table, every (from, to) pair, reflector or not.
    #[test]
    fn advertise_table_is_complete() {
        use Advertise::{No, Normal, Reflect};
        use PeerRole::{Client, Ebgp, Local, NonClient};
        // (from, to, as a reflector, as a plain speaker)
        let table = [
            (Local, Client, Normal, Normal),
            (Local, NonClient, Normal, Normal),
            (Local, Ebgp, Normal, Normal),
            (Ebgp, Client, Normal, Normal),
            (Ebgp, NonClient, Normal, Normal),
            (Ebgp, Ebgp, Normal, Normal),
            (Client, Client, Reflect, No),
            (Client, NonClient, Reflect, No),
            (Client, Ebgp, Normal, Normal),
            (NonClient, Client, Reflect, No),
            (NonClient, NonClient, No, No),
            (NonClient, Ebgp, Normal, Normal),
        ];
        for (from, to, reflector, plain) in table {
            assert_eq!(advertise(from, to, RR), reflector, "{from:?}->{to:?} (RR)");
            assert_eq!(advertise(from, to, None), plain, "{from:?}->{to:?}");
        }
    }

    #[test]
    fn reflection_keeps_a_present_originator_even_with_an_empty_cluster_list() {
        let origin = Ipv4Addr::new(10, 0, 0, 42);
        let mut attrs = PathAttributes {
            originator_id: Some(origin),
            ..PathAttributes::default()
        };
        reflect(
            &mut attrs,
            Ipv4Addr::new(10, 0, 0, 7),
            Ipv4Addr::new(1, 1, 1, 1),
        );
        assert_eq!(attrs.originator_id, Some(origin));
        assert_eq!(attrs.cluster_list, vec![Ipv4Addr::new(1, 1, 1, 1)]);
    }

    #[test]
    fn clean_routes_are_not_loops() {
        let attrs = PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
            cluster_list: vec![Ipv4Addr::new(3, 3, 3, 3)],
            ..PathAttributes::default()
        };
        assert_eq!(import_loop(&attrs, ME, RR), None);
        assert_eq!(import_loop(&PathAttributes::default(), ME, RR), None);
        assert_eq!(
            LoopReason::OriginatorIsUs.to_string(),
            "ORIGINATOR_ID is our router id"
        );
    }

    #[test]
    fn originator_is_not_sent_its_own_route() {
        let attrs = PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
            ..PathAttributes::default()
        };
        assert!(is_originator(&attrs, Ipv4Addr::new(10, 0, 0, 9)));
        assert!(!is_originator(&attrs, Ipv4Addr::new(10, 0, 0, 8)));
        assert!(!is_originator(&PathAttributes::default(), ME));
    }
}
