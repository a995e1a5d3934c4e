//! [`BgpConfig`]: one description of a test BGP speaker (router id, AS, neighbors, prefixes
//! to originate) that every launcher renders into its own dialect — BIRD
//! ([`BgpConfig::to_bird`]), GoBGP ([`BgpConfig::to_gobgp`]) and FRR ([`BgpConfig::to_frr`]) —
//! so a scenario can swap one peer implementation for another without rewriting its setup.
//!
//! Timers are short for tests: connect retry 1 s, hold 30 s, keepalive 10 s. IPv4 neighbors
//! carry the IPv4 prefixes and IPv6 neighbors the IPv6 ones.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::error::{HarnessError, Result};

/// A BGP neighbor of a test speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbor's address (the session's remote end).
    pub addr: IpAddr,
    /// The neighbor's AS number (equal to ours for iBGP).
    pub asn: u32,
    /// Only accept the neighbor's connection, never open one.
    pub passive: bool,
    /// The neighbor is our route-reflector client (needs [`BgpConfig::rr_cluster_id`]).
    pub rr_client: bool,
}

/// A test BGP speaker's configuration; build it, then hand it to
/// [`crate::Bird::start_with`], [`crate::GoBgp::start_with`] or [`crate::Frr::start_with`].
///
/// ```
/// use test_support::BgpConfig;
/// let cfg = BgpConfig::new("10.0.0.1".parse().unwrap(), 64512)
///     .neighbor("10.0.0.2".parse().unwrap(), 64513)
///     .network("10.244.1.0/26");
/// assert!(cfg.to_bird().unwrap().contains("neighbor 10.0.0.2 as 64513"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Local AS number.
    pub asn: u32,
    /// Sessions to configure.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to originate (`10.244.1.0/26`, `fd10::/64`).
    pub networks: Vec<String>,
    /// Install routes learned over BGP into the namespace's kernel table. BIRD adds a
    /// `protocol kernel`; FRR always installs through zebra; GoBGP never does.
    pub install_routes: bool,
    /// Hold time in seconds (keepalive is a third of it).
    pub hold_time: u16,
    /// Route-reflector cluster id: this speaker reflects for its `rr_client` neighbors
    /// (BIRD `rr client; rr cluster id`, GoBGP `route-reflector`) and exports every route
    /// to them with the next hop kept.
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// ADD-PATH (RFC 7911) receive and send on every session (BIRD `add paths on`, GoBGP
    /// `add-paths receive` + `send-max 8`).
    pub add_paths: bool,
}

impl BgpConfig {
    /// A speaker with no neighbors and nothing to originate.
    pub fn new(router_id: Ipv4Addr, asn: u32) -> Self {
        Self {
            router_id,
            asn,
            neighbors: Vec::new(),
            networks: Vec::new(),
            install_routes: false,
            hold_time: 30,
            rr_cluster_id: None,
            add_paths: false,
        }
    }

    /// Adds an active neighbor.
    pub fn neighbor(mut self, addr: IpAddr, asn: u32) -> Self {
        self.neighbors.push(Neighbor {
            addr,
            asn,
            passive: false,
            rr_client: false,
        });
        self
    }

    /// Adds a passive neighbor (we wait for it to connect).
    pub fn passive_neighbor(mut self, addr: IpAddr, asn: u32) -> Self {
        self.neighbors.push(Neighbor {
            addr,
            asn,
            passive: true,
            rr_client: false,
        });
        self
    }

    /// Adds a passive neighbor that is our route-reflector client.
    pub fn rr_client(mut self, addr: IpAddr, asn: u32) -> Self {
        self.neighbors.push(Neighbor {
            addr,
            asn,
            passive: true,
            rr_client: true,
        });
        self
    }

    /// Makes this speaker a route reflector with `cluster_id`.
    pub fn rr_cluster_id(mut self, cluster_id: Ipv4Addr) -> Self {
        self.rr_cluster_id = Some(cluster_id);
        self
    }

    /// Turns ADD-PATH receive and send on for every session.
    pub fn add_paths(mut self, on: bool) -> Self {
        self.add_paths = on;
        self
    }

    /// Adds a prefix to originate. Checked when the config is rendered.
    pub fn network(mut self, prefix: &str) -> Self {
        self.networks.push(prefix.to_string());
        self
    }

    /// Sets whether learned routes go into the kernel (see [`BgpConfig::install_routes`]).
    pub fn install_routes(mut self, on: bool) -> Self {
        self.install_routes = on;
        self
    }

    /// Sets the hold time in seconds (at least 3).
    pub fn hold_time(mut self, seconds: u16) -> Self {
        self.hold_time = seconds;
        self
    }

    pub(crate) fn keepalive(&self) -> u16 {
        (self.hold_time / 3).max(1)
    }

    /// The originated prefixes, parsed and checked (no host bits set).
    pub fn prefixes(&self) -> Result<Vec<IpNetwork>> {
        self.networks
            .iter()
            .map(|text| {
                let invalid = |reason: String| HarnessError::Invalid {
                    what: format!("prefix {text:?}"),
                    reason,
                };
                let net: IpNetwork = text.parse().map_err(|e| invalid(format!("{e}")))?;
                if net.ip() != net.network() {
                    return Err(invalid("host bits set".to_string()));
                }
                Ok(net)
            })
            .collect()
    }

    /// Checks the settings a renderer relies on.
    pub(crate) fn validate(&self) -> Result<Vec<IpNetwork>> {
        if self.hold_time < 3 {
            return Err(HarnessError::Invalid {
                what: "hold time".to_string(),
                reason: "must be at least 3 seconds (RFC 4271 §4.2)".to_string(),
            });
        }
        self.prefixes()
    }
}

/// BIRD protocol name used for the session with `addr` in rendered configs, e.g.
/// `peer_10_0_0_2`.
pub fn bird_protocol_name(addr: IpAddr) -> String {
    let body: String = addr
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("peer_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        let cfg = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512)
            .network("10.244.1.0/26")
            .network("fd10::/64");
        assert_eq!(cfg.prefixes().unwrap().len(), 2);
        let bad = cfg.clone().network("10.244.1.5/26");
        assert!(
            bad.prefixes()
                .unwrap_err()
                .to_string()
                .contains("host bits")
        );
        let garbage = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 1).network("nonsense");
        assert!(garbage.prefixes().is_err());
    }

    #[test]
    fn short_hold_time_rejected() {
        let cfg = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512).hold_time(2);
        assert!(cfg.validate().is_err());
        assert_eq!(cfg.hold_time(9).keepalive(), 3);
    }

    #[test]
    fn protocol_names_are_bird_symbols() {
        assert_eq!(
            bird_protocol_name("10.0.0.2".parse().unwrap()),
            "peer_10_0_0_2"
        );
        assert_eq!(
            bird_protocol_name("fd00::2".parse().unwrap()),
            "peer_fd00__2"
        );
    }
}
