//! The resource kinds vrouter understands: their wire names (`apiVersion` + `kind`), etcd
//! plurals, scope (namespaced or cluster-wide) and the names `vrctl` accepts on the command line.

use std::fmt;

/// `apiVersion` of every Calico resource.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";
/// `apiVersion` of Kubernetes `NetworkPolicy`.
pub const K8S_NETWORKING_API_VERSION: &str = "networking.k8s.io/v1";
/// `apiVersion` of Kubernetes core objects (`Namespace`, `List`).
pub const K8S_CORE_API_VERSION: &str = "v1";

/// A resource kind. Calico's `NetworkPolicy` and Kubernetes' `NetworkPolicy` share the wire
/// name `NetworkPolicy` and are told apart by `apiVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `projectcalico.org/v3` `IPPool` (cluster-scoped).
    IpPool,
    /// `projectcalico.org/v3` `Node` (cluster-scoped).
    Node,
    /// `projectcalico.org/v3` `BGPPeer` (cluster-scoped).
    BgpPeer,
    /// `projectcalico.org/v3` `BGPConfiguration` (cluster-scoped; `default` or `node.<name>`).
    BgpConfiguration,
    /// `projectcalico.org/v3` `NetworkPolicy` (namespaced).
    NetworkPolicy,
    /// `projectcalico.org/v3` `GlobalNetworkPolicy` (cluster-scoped).
    GlobalNetworkPolicy,
    /// `projectcalico.org/v3` `NetworkSet` (namespaced).
    NetworkSet,
    /// `projectcalico.org/v3` `GlobalNetworkSet` (cluster-scoped).
    GlobalNetworkSet,
    /// `projectcalico.org/v3` `Tier` (cluster-scoped).
    Tier,
    /// `projectcalico.org/v3` `Profile` (cluster-scoped).
    Profile,
    /// `projectcalico.org/v3` `WorkloadEndpoint` (namespaced).
    WorkloadEndpoint,
    /// `projectcalico.org/v3` `HostEndpoint` (cluster-scoped).
    HostEndpoint,
    /// `projectcalico.org/v3` `FelixConfiguration` (cluster-scoped; `default` or `node.<name>`).
    FelixConfiguration,
    /// `projectcalico.org/v3` `IPAMConfiguration` (cluster-scoped; name `default`).
    IpamConfiguration,
    /// `networking.k8s.io/v1` `NetworkPolicy` (namespaced).
    K8sNetworkPolicy,
    /// `v1` `Namespace` (cluster-scoped).
    Namespace,
}

impl Kind {
    /// Every kind, in a stable order (the order `vrctl get` lists kinds in).
    pub const ALL: [Kind; 16] = [
        Kind::IpPool,
        Kind::Node,
        Kind::BgpPeer,
        Kind::BgpConfiguration,
        Kind::NetworkPolicy,
        Kind::GlobalNetworkPolicy,
        Kind::NetworkSet,
        Kind::GlobalNetworkSet,
        Kind::Tier,
        Kind::Profile,
        Kind::WorkloadEndpoint,
        Kind::HostEndpoint,
        Kind::FelixConfiguration,
        Kind::IpamConfiguration,
        Kind::K8sNetworkPolicy,
        Kind::Namespace,
    ];

    /// The wire `kind` (`"IPPool"`); not unique on its own, see [`Kind::api_version`].
    pub fn kind_name(self) -> &'static str {
        match self {
            Kind::IpPool => "IPPool",
            Kind::Node => "Node",
            Kind::BgpPeer => "BGPPeer",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::NetworkPolicy | Kind::K8sNetworkPolicy => "NetworkPolicy",
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            Kind::NetworkSet => "NetworkSet",
            Kind::GlobalNetworkSet => "GlobalNetworkSet",
            Kind::Tier => "Tier",
            Kind::Profile => "Profile",
            Kind::WorkloadEndpoint => "WorkloadEndpoint",
            Kind::HostEndpoint => "HostEndpoint",
            Kind::FelixConfiguration => "FelixConfiguration",
            Kind::IpamConfiguration => "IPAMConfiguration",
            Kind::Namespace => "Namespace",
        }
    }

    /// The wire `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::K8sNetworkPolicy => K8S_NETWORKING_API_VERSION,
            Kind::Namespace => K8S_CORE_API_VERSION,
            _ => CALICO_API_VERSION,
        }
    }

    /// Lower-case plural used in etcd keys (`/vrouter/resources/<plural>/...`). Calico's
    /// plurals, plus `k8snetworkpolicies` so the two `NetworkPolicy` kinds never share a key.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::IpPool => "ippools",
            Kind::Node => "nodes",
            Kind::BgpPeer => "bgppeers",
            Kind::BgpConfiguration => "bgpconfigurations",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::GlobalNetworkPolicy => "globalnetworkpolicies",
            Kind::NetworkSet => "networksets",
            Kind::GlobalNetworkSet => "globalnetworksets",
            Kind::Tier => "tiers",
            Kind::Profile => "profiles",
            Kind::WorkloadEndpoint => "workloadendpoints",
            Kind::HostEndpoint => "hostendpoints",
            Kind::FelixConfiguration => "felixconfigurations",
            Kind::IpamConfiguration => "ipamconfigurations",
            Kind::K8sNetworkPolicy => "k8snetworkpolicies",
            Kind::Namespace => "namespaces",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            Kind::NetworkPolicy
                | Kind::NetworkSet
                | Kind::WorkloadEndpoint
                | Kind::K8sNetworkPolicy
        )
    }

    /// The kind for a wire `(apiVersion, kind)` pair, if vrouter knows it.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version() == api_version && k.kind_name() == kind)
    }

    /// The kind for its etcd plural (inverse of [`Kind::plural`]).
    pub fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == plural)
    }

    /// Parses a kind as typed on the command line, as calicoctl does: case-insensitive
    /// singular, plural or short alias (`ippool`, `IPPools`, `ipp`, `gnp`, `netpol`, `wep`).
    /// `networkpolicy`/`np`/`netpol` mean Calico's; Kubernetes' is `k8snetworkpolicy`/`knp`.
    pub fn parse_cli(text: &str) -> Option<Kind> {
        let lower = text.trim().to_ascii_lowercase();
        let kind = match lower.as_str() {
            "ippool" | "ippools" | "ipp" | "ipps" | "pool" | "pools" => Kind::IpPool,
            "node" | "nodes" | "no" | "nos" => Kind::Node,
            "bgppeer" | "bgppeers" | "bgpp" | "bgpps" | "bp" | "bps" => Kind::BgpPeer,
            "bgpconfiguration" | "bgpconfigurations" | "bgpconfig" | "bgpconfigs" => {
                Kind::BgpConfiguration
            }
            "networkpolicy" | "networkpolicies" | "policy" | "policies" | "np" | "nps" | "pol"
            | "pols" | "netpol" | "netpols" => Kind::NetworkPolicy,
            "globalnetworkpolicy" | "globalnetworkpolicies" | "gnp" | "gnps" => {
                Kind::GlobalNetworkPolicy
            }
            "networkset" | "networksets" | "netset" | "netsets" => Kind::NetworkSet,
            "globalnetworkset" | "globalnetworksets" | "gnetset" | "gnetsets" => {
                Kind::GlobalNetworkSet
            }
            "tier" | "tiers" => Kind::Tier,
            "profile" | "profiles" | "pro" | "pros" => Kind::Profile,
            "workloadendpoint" | "workloadendpoints" | "wep" | "weps" => Kind::WorkloadEndpoint,
            "hostendpoint" | "hostendpoints" | "hep" | "heps" => Kind::HostEndpoint,
            "felixconfiguration" | "felixconfigurations" | "felixconfig" | "felixconfigs" => {
                Kind::FelixConfiguration
            }
            "ipamconfiguration" | "ipamconfigurations" | "ipamconfig" | "ipamconfigs" => {
                Kind::IpamConfiguration
            }
            "k8snetworkpolicy" | "k8snetworkpolicies" | "knp" | "knps" => Kind::K8sNetworkPolicy,
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            _ => return None,
        };
        Some(kind)
    }
}

impl fmt::Display for Kind {
    /// The wire kind name (`IPPool`), as used in display ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_from_type() {
        for kind in Kind::ALL {
            assert_eq!(
                Kind::from_type(kind.api_version(), kind.kind_name()),
                Some(kind)
            );
            assert_eq!(Kind::from_plural(kind.plural()), Some(kind));
        }
    }

    #[test]
    fn network_policies_are_told_apart_by_api_version() {
        assert_eq!(
            Kind::from_type("projectcalico.org/v3", "NetworkPolicy"),
            Some(Kind::NetworkPolicy)
        );
        assert_eq!(
            Kind::from_type("networking.k8s.io/v1", "NetworkPolicy"),
            Some(Kind::K8sNetworkPolicy)
        );
        assert_eq!(Kind::from_type("v1", "NetworkPolicy"), None);
        assert_eq!(Kind::from_type("projectcalico.org/v3", "Namespace"), None);
        assert_eq!(Kind::from_type("projectcalico.org/v2", "IPPool"), None);
    }

    #[test]
    fn plurals_are_unique_and_match_calico() {
        let mut plurals: Vec<_> = Kind::ALL.iter().map(|k| k.plural()).collect();
        plurals.sort_unstable();
        plurals.dedup();
        assert_eq!(plurals.len(), Kind::ALL.len());
        assert_eq!(Kind::IpPool.plural(), "ippools");
        assert_eq!(Kind::NetworkPolicy.plural(), "networkpolicies");
        assert_eq!(Kind::K8sNetworkPolicy.plural(), "k8snetworkpolicies");
        assert_eq!(Kind::Namespace.plural(), "namespaces");
    }

    #[test]
    fn cli_names_accept_calicoctl_spellings() {
        let cases = [
            ("ippool", Kind::IpPool),
            ("ippools", Kind::IpPool),
            ("IPPool", Kind::IpPool),
            ("ipp", Kind::IpPool),
            ("gnp", Kind::GlobalNetworkPolicy),
            ("globalnetworkpolicy", Kind::GlobalNetworkPolicy),
            ("netpol", Kind::NetworkPolicy),
            ("networkpolicy", Kind::NetworkPolicy),
            ("NetworkPolicies", Kind::NetworkPolicy),
            ("k8snetworkpolicy", Kind::K8sNetworkPolicy),
            ("bgpconfig", Kind::BgpConfiguration),
            ("bgppeer", Kind::BgpPeer),
            ("wep", Kind::WorkloadEndpoint),
            ("hep", Kind::HostEndpoint),
            ("netsets", Kind::NetworkSet),
            ("gnetsets", Kind::GlobalNetworkSet),
            ("ns", Kind::Namespace),
            ("ipamconfig", Kind::IpamConfiguration),
            ("felixconfig", Kind::FelixConfiguration),
        ];
        for (text, kind) in cases {
            assert_eq!(Kind::parse_cli(text), Some(kind), "{text}");
        }
        assert_eq!(Kind::parse_cli("ippoool"), None);
        assert_eq!(Kind::parse_cli(""), None);
    }

    #[test]
    fn scope_matches_calico() {
        let namespaced: Vec<_> = Kind::ALL
            .into_iter()
            .filter(|k| k.is_namespaced())
            .collect();
        assert_eq!(
            namespaced,
            [
                Kind::NetworkPolicy,
                Kind::NetworkSet,
                Kind::WorkloadEndpoint,
                Kind::K8sNetworkPolicy
            ]
        );
    }
}
