//! The normalized, validated cluster model the evaluator and compiler work on: tiers,
//! policies (Calico and Kubernetes alike, already converted to one rule shape), profiles,
//! namespaces, workload endpoints and network sets.
//!
//! [`Model::new`] sorts tiers and policies into evaluation order, synthesises the per-namespace
//! `kns.<ns>` profiles and computes every entity's *effective labels* (own labels, labels
//! inherited from its profiles such as `pcns.*`, and `projectcalico.org/namespace`), which is
//! what every selector in the model is evaluated against — exactly Felix's view.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::rule::{Action, Protocol, Rule};
use crate::selector::{NAMESPACE_LABEL, NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL, Selector};

/// A label map.
pub type Labels = BTreeMap<String, String>;

/// Name of the tier policies land in when they name none.
pub const DEFAULT_TIER: &str = "default";
/// Order of the `default` tier (fixed by Calico).
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;
/// Prefix of the profile Calico creates for each Kubernetes namespace.
pub const NAMESPACE_PROFILE_PREFIX: &str = "kns.";
/// The label Kubernetes puts on every namespace with its own name.
pub const K8S_NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Traffic direction relative to the endpoint whose policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Which API a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `projectcalico.org/v3` NetworkPolicy (namespaced).
    NetworkPolicy,
    /// `projectcalico.org/v3` GlobalNetworkPolicy.
    GlobalNetworkPolicy,
    /// `networking.k8s.io/v1` NetworkPolicy.
    KubernetesNetworkPolicy,
}

/// Identity of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    /// Its API kind.
    pub kind: PolicyKind,
    /// Its namespace (`None` for global policies).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl PolicyId {
    /// The name Calico's backend orders policies by (`knp.default.<name>` for Kubernetes ones).
    fn sort_name(&self) -> String {
        match self.kind {
            PolicyKind::KubernetesNetworkPolicy => format!("knp.default.{}", self.name),
            _ => self.name.clone(),
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::KubernetesNetworkPolicy => "Kubernetes NetworkPolicy",
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// What happens at the end of a tier when policies applied but none decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TierDefaultAction {
    /// Drop (Calico's default).
    Deny,
    /// Continue with the next tier.
    Pass,
}

/// A policy tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// Tier name.
    pub name: String,
    /// Order (lower first; `None` = last).
    pub order: Option<f64>,
    /// End-of-tier behaviour.
    pub default_action: TierDefaultAction,
}

impl Tier {
    /// The built-in `default` tier.
    pub fn default_tier() -> Tier {
        Tier {
            name: DEFAULT_TIER.into(),
            order: Some(DEFAULT_TIER_ORDER),
            default_action: TierDefaultAction::Deny,
        }
    }
}

/// A policy, normalized: `selector` already includes namespace scoping.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Identity.
    pub id: PolicyId,
    /// Tier name.
    pub tier: String,
    /// Order within the tier (lower first; `None` = last).
    pub order: Option<f64>,
    /// Which endpoints the policy applies to (over effective labels).
    pub selector: Selector,
    /// Applies to ingress traffic.
    pub applies_ingress: bool,
    /// Applies to egress traffic.
    pub applies_egress: bool,
    /// Ingress rules in order.
    pub ingress: Vec<Rule>,
    /// Egress rules in order.
    pub egress: Vec<Rule>,
}

impl Policy {
    /// Whether the policy takes part in `direction`.
    pub fn applies(&self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.applies_ingress,
            Direction::Egress => self.applies_egress,
        }
    }

    /// The rules for `direction`.
    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A profile: rules consulted when no policy applied, and labels its endpoints inherit.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name (`kns.<ns>` for namespaces).
    pub name: String,
    /// Labels every endpoint using the profile inherits.
    pub labels_to_apply: Labels,
    /// Ingress rules.
    pub ingress: Vec<Rule>,
    /// Egress rules.
    pub egress: Vec<Rule>,
}

impl Profile {
    /// The rules for `direction`.
    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A Kubernetes namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels (`kubernetes.io/metadata.name` is added if missing, as the API server does).
    pub labels: Labels,
}

/// Identity of a workload endpoint: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId {
    /// Namespace.
    pub namespace: String,
    /// Name (the pod name for Kubernetes workloads).
    pub name: String,
}

impl EndpointId {
    /// Builds an id.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> EndpointId {
        EndpointId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The id of HostEndpoint `name` (cluster-scoped: an empty namespace, which no
    /// Kubernetes namespace can have).
    pub fn host(name: impl Into<String>) -> EndpointId {
        EndpointId::new(String::new(), name)
    }

    /// True for a HostEndpoint's id.
    pub fn is_host(&self) -> bool {
        self.namespace.is_empty()
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "HostEndpoint {}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A named port an endpoint declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    /// Port name.
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

/// A workload endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Identity.
    pub id: EndpointId,
    /// Its own labels.
    pub labels: Labels,
    /// Its addresses (normally /32 and /128 networks).
    pub nets: Vec<IpNetwork>,
    /// Declared named ports.
    pub ports: Vec<NamedPort>,
    /// Profiles in order; empty means `kns.<namespace>` (what the CNI plugin assigns).
    pub profiles: Vec<String>,
    /// Service account name, if any.
    pub service_account: Option<String>,
}

/// A NetworkSet (namespaced) or GlobalNetworkSet (`namespace == None`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSet {
    /// Namespace, or `None` for a GlobalNetworkSet.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Member networks.
    pub nets: Vec<IpNetwork>,
}

/// Everything needed to build a [`Model`].
#[derive(Debug, Clone, Default)]
pub struct ModelParts {
    /// Tiers (the `default` tier is added if absent).
    pub tiers: Vec<Tier>,
    /// Policies of all kinds.
    pub policies: Vec<Policy>,
    /// Explicit profiles (`kns.<ns>` profiles are synthesised from namespaces unless given).
    pub profiles: Vec<Profile>,
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// Workload endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Network sets, namespaced and global.
    pub network_sets: Vec<NetworkSet>,
}

/// Why a set of parts does not form a consistent model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A policy names a tier that does not exist.
    #[error("{policy} is in tier {tier:?}, which does not exist")]
    UnknownTier {
        /// The policy.
        policy: PolicyId,
        /// The missing tier.
        tier: String,
    },
    /// Two objects with the same identity.
    #[error("duplicate {kind} {name}")]
    Duplicate {
        /// Kind of object.
        kind: &'static str,
        /// Its identity.
        name: String,
    },
    /// An address used by two endpoints.
    #[error("address {addr} is used by both {first} and {second}")]
    DuplicateAddress {
        /// The address.
        addr: IpAddr,
        /// First owner.
        first: EndpointId,
        /// Second owner.
        second: EndpointId,
    },
}

/// A tier with its policies in evaluation order.
#[derive(Debug, Clone)]
pub struct TierPolicies {
    /// The tier.
    pub tier: Tier,
    /// Its policies, sorted by order then name.
    pub policies: Vec<Policy>,
}

/// Something selectors can select: an endpoint or a network set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityRef {
    /// Index into [`Model::endpoints`].
    Endpoint(usize),
    /// Index into [`Model::network_sets`].
    NetworkSet(usize),
}

/// The validated cluster model.
#[derive(Debug, Clone)]
pub struct Model {
    tiers: Vec<TierPolicies>,
    profiles: BTreeMap<String, Profile>,
    namespaces: BTreeMap<String, Namespace>,
    endpoints: Vec<Endpoint>,
    endpoint_labels: Vec<Labels>,
    endpoint_profiles: Vec<Vec<String>>,
    network_sets: Vec<NetworkSet>,
    network_set_labels: Vec<Labels>,
    by_id: HashMap<EndpointId, usize>,
    by_addr: HashMap<IpAddr, usize>,
}

/// Sort key for `order` fields: `None` sorts after every number.
pub(crate) fn order_cmp(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The allow-all profile Calico creates for a namespace.
fn namespace_profile(ns: &Namespace) -> Profile {
    let mut labels_to_apply: Labels = ns
        .labels
        .iter()
        .map(|(k, v)| (format!("{NAMESPACE_LABEL_PREFIX}{k}"), v.clone()))
        .collect();
    labels_to_apply.insert(
        format!("{NAMESPACE_LABEL_PREFIX}projectcalico.org/name"),
        ns.name.clone(),
    );
    Profile {
        name: format!("{NAMESPACE_PROFILE_PREFIX}{}", ns.name),
        labels_to_apply,
        ingress: vec![Rule::new(Action::Allow)],
        egress: vec![Rule::new(Action::Allow)],
    }
}

/// Own labels over inherited profile labels (earlier profiles win over later ones), plus the
/// namespace and service-account labels.
fn effective_labels(
    own: &Labels,
    profiles: &[String],
    all_profiles: &BTreeMap<String, Profile>,
    namespace: Option<&str>,
    service_account: Option<&str>,
) -> Labels {
    let mut out = Labels::new();
    for name in profiles.iter().rev() {
        if let Some(p) = all_profiles.get(name) {
            out.extend(
                p.labels_to_apply
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
    }
    out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(ns) = namespace {
        out.insert(NAMESPACE_LABEL.to_string(), ns.to_string());
    }
    if let Some(sa) = service_account {
        out.insert(SERVICE_ACCOUNT_LABEL.to_string(), sa.to_string());
    }
    out
}

impl Model {
    /// Checks references, sorts into evaluation order and computes effective labels.
    pub fn new(parts: ModelParts) -> Result<Model, ModelError> {
        let mut tiers: BTreeMap<String, Tier> = BTreeMap::new();
        for t in parts.tiers {
            if tiers.insert(t.name.clone(), t.clone()).is_some() {
                return Err(ModelError::Duplicate {
                    kind: "tier",
                    name: t.name,
                });
            }
        }
        tiers
            .entry(DEFAULT_TIER.to_string())
            .or_insert_with(Tier::default_tier);

        let mut grouped: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
        let mut seen_policies = std::collections::HashSet::new();
        for p in parts.policies {
            if !tiers.contains_key(&p.tier) {
                return Err(ModelError::UnknownTier {
                    policy: p.id.clone(),
                    tier: p.tier.clone(),
                });
            }
            if !seen_policies.insert(p.id.clone()) {
                return Err(ModelError::Duplicate {
                    kind: "policy",
                    name: p.id.to_string(),
                });
            }
            grouped.entry(p.tier.clone()).or_default().push(p);
        }
        let mut tier_list: Vec<TierPolicies> = tiers
            .into_values()
            .map(|tier| {
                let mut policies = grouped.remove(&tier.name).unwrap_or_default();
                policies.sort_by(|a, b| {
                    order_cmp(a.order, b.order)
                        .then_with(|| a.id.sort_name().cmp(&b.id.sort_name()))
                        .then_with(|| a.id.namespace.cmp(&b.id.namespace))
                        .then_with(|| a.id.kind.cmp(&b.id.kind))
                });
                TierPolicies { tier, policies }
            })
            .collect();
        tier_list.sort_by(|a, b| {
            order_cmp(a.tier.order, b.tier.order).then_with(|| a.tier.name.cmp(&b.tier.name))
        });

        let mut namespaces = BTreeMap::new();
        for mut ns in parts.namespaces {
            ns.labels
                .entry(K8S_NAMESPACE_NAME_LABEL.to_string())
                .or_insert_with(|| ns.name.clone());
            if namespaces.contains_key(&ns.name) {
                return Err(ModelError::Duplicate {
                    kind: "namespace",
                    name: ns.name,
                });
            }
            namespaces.insert(ns.name.clone(), ns);
        }
        let mut profiles = BTreeMap::new();
        for p in parts.profiles {
            if profiles.contains_key(&p.name) {
                return Err(ModelError::Duplicate {
                    kind: "profile",
                    name: p.name,
                });
            }
            profiles.insert(p.name.clone(), p);
        }
        for ns in namespaces.values() {
            let p = namespace_profile(ns);
            profiles.entry(p.name.clone()).or_insert(p);
        }

        let mut by_id = HashMap::new();
        let mut by_addr: HashMap<IpAddr, usize> = HashMap::new();
        let mut endpoint_labels = Vec::with_capacity(parts.endpoints.len());
        let mut endpoint_profiles = Vec::with_capacity(parts.endpoints.len());
        for (i, ep) in parts.endpoints.iter().enumerate() {
            if by_id.insert(ep.id.clone(), i).is_some() {
                return Err(ModelError::Duplicate {
                    kind: "workload endpoint",
                    name: ep.id.to_string(),
                });
            }
            for net in &ep.nets {
                if let Some(prev) = by_addr.insert(net.ip(), i)
                    && prev != i
                {
                    {
                        return Err(ModelError::DuplicateAddress {
                            addr: net.ip(),
                            first: parts.endpoints[prev].id.clone(),
                            second: ep.id.clone(),
                        });
                    }
                }
            }
            // Host endpoints have no namespace: no namespace profile, no namespace label.
            let eff_profiles = if ep.profiles.is_empty() && !ep.id.is_host() {
                vec![format!("{NAMESPACE_PROFILE_PREFIX}{}", ep.id.namespace)]
            } else {
                ep.profiles.clone()
            };
            endpoint_labels.push(effective_labels(
                &ep.labels,
                &eff_profiles,
                &profiles,
                (!ep.id.is_host()).then_some(ep.id.namespace.as_str()),
                ep.service_account.as_deref(),
            ));
            endpoint_profiles.push(eff_profiles);
        }
        let mut seen_sets = std::collections::HashSet::new();
        let network_set_labels = parts
            .network_sets
            .iter()
            .map(|s| {
                if !seen_sets.insert((s.namespace.clone(), s.name.clone())) {
                    let name = match &s.namespace {
                        Some(ns) => format!("{ns}/{}", s.name),
                        None => s.name.clone(),
                    };
                    return Err(ModelError::Duplicate {
                        kind: "network set",
                        name,
                    });
                }
                let profs: Vec<String> = s
                    .namespace
                    .iter()
                    .map(|ns| format!("{NAMESPACE_PROFILE_PREFIX}{ns}"))
                    .collect();
                Ok(effective_labels(
                    &s.labels,
                    &profs,
                    &profiles,
                    s.namespace.as_deref(),
                    None,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Model {
            tiers: tier_list,
            profiles,
            namespaces,
            endpoints: parts.endpoints,
            endpoint_labels,
            endpoint_profiles,
            network_sets: parts.network_sets,
            network_set_labels,
            by_id,
            by_addr,
        })
    }

    /// Tiers with their policies, in evaluation order.
    pub fn tiers(&self) -> &[TierPolicies] {
        &self.tiers
    }

    /// All profiles by name (including synthesised `kns.<ns>` ones).
    pub fn profiles(&self) -> &BTreeMap<String, Profile> {
        &self.profiles
    }

    /// All namespaces by name.
    pub fn namespaces(&self) -> &BTreeMap<String, Namespace> {
        &self.namespaces
    }

    /// All endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// All network sets.
    pub fn network_sets(&self) -> &[NetworkSet] {
        &self.network_sets
    }

    /// The endpoint with this id.
    pub fn endpoint(&self, id: &EndpointId) -> Option<&Endpoint> {
        self.by_id.get(id).map(|i| &self.endpoints[*i])
    }

    /// Index of the endpoint with this id.
    pub fn endpoint_index(&self, id: &EndpointId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Index of the endpoint owning this address.
    pub fn endpoint_by_addr(&self, addr: &IpAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Effective labels of endpoint `i` (what selectors see).
    pub fn endpoint_labels(&self, i: usize) -> &Labels {
        &self.endpoint_labels[i]
    }

    /// Effective profile list of endpoint `i`.
    pub fn endpoint_profiles(&self, i: usize) -> &[String] {
        &self.endpoint_profiles[i]
    }

    /// Effective labels of network set `i`.
    pub fn network_set_labels(&self, i: usize) -> &Labels {
        &self.network_set_labels[i]
    }

    /// Effective labels of an entity.
    pub fn entity_labels(&self, e: EntityRef) -> &Labels {
        match e {
            EntityRef::Endpoint(i) => &self.endpoint_labels[i],
            EntityRef::NetworkSet(i) => &self.network_set_labels[i],
        }
    }

    /// The named ports of an entity (network sets have none).
    pub fn entity_ports(&self, e: EntityRef) -> &[NamedPort] {
        match e {
            EntityRef::Endpoint(i) => &self.endpoints[i].ports,
            EntityRef::NetworkSet(_) => &[],
        }
    }

    /// The networks an entity contributes to the IP sets selecting it.
    pub fn entity_nets(&self, e: EntityRef) -> &[IpNetwork] {
        match e {
            EntityRef::Endpoint(i) => &self.endpoints[i].nets,
            EntityRef::NetworkSet(i) => &self.network_sets[i].nets,
        }
    }

    /// Every entity whose networks contain `addr`: the endpoint owning it and every network set
    /// covering it. A selector matches an address when it selects any of these.
    pub fn entities_covering(&self, addr: &IpAddr) -> Vec<EntityRef> {
        let mut out = Vec::new();
        if let Some(i) = self.by_addr.get(addr) {
            out.push(EntityRef::Endpoint(*i));
        }
        for (i, s) in self.network_sets.iter().enumerate() {
            if s.nets.iter().any(|n| n.contains(*addr)) {
                out.push(EntityRef::NetworkSet(i));
            }
        }
        out
    }

    /// All entities, endpoints first.
    pub fn entities(&self) -> impl Iterator<Item = EntityRef> + '_ {
        (0..self.endpoints.len())
            .map(EntityRef::Endpoint)
            .chain((0..self.network_sets.len()).map(EntityRef::NetworkSet))
    }

    /// A printable name for an entity.
    pub fn entity_name(&self, e: EntityRef) -> String {
        match e {
            EntityRef::Endpoint(i) => format!("endpoint {}", self.endpoints[i].id),
            EntityRef::NetworkSet(i) => {
                let s = &self.network_sets[i];
                match &s.namespace {
                    Some(ns) => format!("NetworkSet {ns}/{}", s.name),
                    None => format!("GlobalNetworkSet {}", s.name),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::labels;

    fn policy(name: &str, tier: &str, order: Option<f64>) -> Policy {
        Policy {
            id: PolicyId {
                kind: PolicyKind::GlobalNetworkPolicy,
                namespace: None,
                name: name.into(),
            },
            tier: tier.into(),
            order,
            selector: Selector::all(),
            applies_ingress: true,
            applies_egress: false,
            ingress: vec![],
            egress: vec![],
        }
    }

    fn endpoint(ns: &str, name: &str, ip: &str) -> Endpoint {
        Endpoint {
            id: EndpointId::new(ns, name),
            labels: labels(&[("app", name)]),
            nets: vec![ip.parse().expect("net")],
            ports: vec![],
            profiles: vec![],
            service_account: Some("sa".into()),
        }
    }

    #[test]
    fn tiers_and_policies_are_sorted() {
        let parts = ModelParts {
            tiers: vec![
                Tier {
                    name: "b".into(),
                    order: Some(10.0),
                    default_action: TierDefaultAction::Deny,
                },
                Tier {
                    name: "a".into(),
                    order: Some(10.0),
                    default_action: TierDefaultAction::Pass,
                },
                Tier {
                    name: "last".into(),
                    order: None,
                    default_action: TierDefaultAction::Deny,
                },
                Tier {
                    name: "first".into(),
                    order: Some(1.0),
                    default_action: TierDefaultAction::Deny,
                },
            ],
            policies: vec![
                policy("z", "default", Some(1.0)),
                policy("nil", "default", None),
                policy("y", "default", Some(1.0)),
                policy("early", "default", Some(0.5)),
            ],
            ..ModelParts::default()
        };
        let m = Model::new(parts).expect("valid");
        let names: Vec<&str> = m.tiers().iter().map(|t| t.tier.name.as_str()).collect();
        assert_eq!(names, vec!["first", "a", "b", "default", "last"]);
        let default = &m.tiers()[3];
        let pols: Vec<&str> = default
            .policies
            .iter()
            .map(|p| p.id.name.as_str())
            .collect();
        assert_eq!(pols, vec!["early", "y", "z", "nil"]);
    }

    #[test]
    fn unknown_tier_and_duplicates_are_errors() {
        let err = Model::new(ModelParts {
            policies: vec![policy("p", "nope", None)],
            ..ModelParts::default()
        })
        .expect_err("unknown tier");
        assert_eq!(
            err.to_string(),
            r#"GlobalNetworkPolicy p is in tier "nope", which does not exist"#
        );
        let err = Model::new(ModelParts {
            policies: vec![
                policy("p", "default", None),
                policy("p", "default", Some(1.0)),
            ],
            ..ModelParts::default()
        })
        .expect_err("duplicate");
        assert!(matches!(err, ModelError::Duplicate { kind: "policy", .. }));
        let err = Model::new(ModelParts {
            endpoints: vec![
                endpoint("a", "x", "10.0.0.1/32"),
                endpoint("b", "y", "10.0.0.1/32"),
            ],
            ..ModelParts::default()
        })
        .expect_err("shared address");
        assert!(matches!(err, ModelError::DuplicateAddress { .. }));
    }

    #[test]
    fn effective_labels_inherit_namespace() {
        let parts = ModelParts {
            namespaces: vec![Namespace {
                name: "prod".into(),
                labels: labels(&[("team", "blue")]),
            }],
            endpoints: vec![endpoint("prod", "web", "10.0.0.1/32")],
            network_sets: vec![NetworkSet {
                namespace: Some("prod".into()),
                name: "ext".into(),
                labels: labels(&[("kind", "ext")]),
                nets: vec!["192.0.2.0/24".parse().expect("net")],
            }],
            ..ModelParts::default()
        };
        let m = Model::new(parts).expect("valid");
        let l = m.endpoint_labels(0);
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(l.get("pcns.team").map(String::as_str), Some("blue"));
        assert_eq!(
            l.get("pcns.kubernetes.io/metadata.name")
                .map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            l.get("pcns.projectcalico.org/name").map(String::as_str),
            Some("prod")
        );
        assert_eq!(l.get(NAMESPACE_LABEL).map(String::as_str), Some("prod"));
        assert_eq!(l.get(SERVICE_ACCOUNT_LABEL).map(String::as_str), Some("sa"));
        assert_eq!(m.endpoint_profiles(0), ["kns.prod".to_string()]);
        assert_eq!(
            m.network_set_labels(0).get("pcns.team").map(String::as_str),
            Some("blue")
        );
        assert!(m.profiles().contains_key("kns.prod"));

        let addr: IpAddr = "192.0.2.9".parse().expect("addr");
        assert_eq!(m.entities_covering(&addr), vec![EntityRef::NetworkSet(0)]);
        let addr: IpAddr = "10.0.0.1".parse().expect("addr");
        assert_eq!(m.entities_covering(&addr), vec![EntityRef::Endpoint(0)]);
        assert_eq!(m.endpoint_by_addr(&addr), Some(0));
        assert_eq!(
            m.entity_name(EntityRef::NetworkSet(0)),
            "NetworkSet prod/ext"
        );
        assert_eq!(m.entities().count(), 2);
    }

    #[test]
    fn own_labels_override_profile_labels() {
        let parts = ModelParts {
            profiles: vec![
                Profile {
                    name: "p1".into(),
                    labels_to_apply: labels(&[("x", "1"), ("y", "1")]),
                    ingress: vec![],
                    egress: vec![],
                },
                Profile {
                    name: "p2".into(),
                    labels_to_apply: labels(&[("x", "2"), ("z", "2")]),
                    ingress: vec![],
                    egress: vec![],
                },
            ],
            endpoints: vec![Endpoint {
                profiles: vec!["p1".into(), "p2".into()],
                labels: labels(&[("y", "own")]),
                ..endpoint("ns", "e", "10.0.0.2/32")
            }],
            ..ModelParts::default()
        };
        let m = Model::new(parts).expect("valid");
        let l = m.endpoint_labels(0);
        assert_eq!(l.get("x").map(String::as_str), Some("1"));
        assert_eq!(l.get("y").map(String::as_str), Some("own"));
        assert_eq!(l.get("z").map(String::as_str), Some("2"));
    }

    #[test]
    fn order_comparison() {
        assert_eq!(order_cmp(Some(1.0), None), Ordering::Less);
        assert_eq!(order_cmp(None, Some(1.0)), Ordering::Greater);
        assert_eq!(order_cmp(Some(2.0), Some(1.0)), Ordering::Greater);
        assert_eq!(order_cmp(None, None), Ordering::Equal);
    }
}
