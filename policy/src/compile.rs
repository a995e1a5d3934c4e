//! The compiler: turns a [`Model`] into abstract rules for `felix` to render into nftables.
//!
//! Output ([`Ruleset`]): one rule list per policy and profile (shared by all endpoints using
//! it), per endpoint and direction the ordered tiers with the policies that apply to it, and the
//! named IP sets every address match refers to (built and kept current by [`IpSetIndex`]).
//! A model rule becomes one or more [`CompiledRule`]s (alternatives are ORed: numeric ports under
//! the selector's set, or each named port's `addr . proto . port` set). Chain semantics the
//! renderer must implement are those of [`crate::evaluate`].

use std::collections::{BTreeMap, BTreeSet};

use crate::ipset::{EntityData, EntityKey, IpSetId, IpSetIndex, Member, SetKey};
use crate::model::{Direction, EndpointId, EntityRef, Labels, Model, PolicyId, TierDefaultAction};
use crate::rule::{Action, EntityMatch, IcmpMatch, IpVersion, PortMatch, Protocol, Rule};

/// Which end of the packet a match inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Source address/port.
    Source,
    /// Destination address/port.
    Destination,
}

/// One match condition; a rule matches when all its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// Packet IP version.
    IpVersion(IpVersion),
    /// Protocol equals.
    Protocol(Protocol),
    /// Protocol differs.
    NotProtocol(Protocol),
    /// ICMP type/code.
    Icmp(IcmpMatch),
    /// Not this ICMP type/code.
    NotIcmp(IcmpMatch),
    /// Address in (or, negated, not in) a set of networks.
    AddrInSet {
        /// Which address.
        side: Side,
        /// The set.
        set: IpSetId,
        /// Negated match.
        negated: bool,
    },
    /// Port in (or not in) inclusive ranges.
    Ports {
        /// Which port.
        side: Side,
        /// Ranges.
        ranges: Vec<(u16, u16)>,
        /// Negated match.
        negated: bool,
    },
    /// `addr . protocol . port` in (or not in) a named-port set.
    NamedPortSet {
        /// Which end.
        side: Side,
        /// The set.
        set: IpSetId,
        /// Negated match.
        negated: bool,
    },
}

/// One abstract rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledRule {
    /// All must hold.
    pub matches: Vec<Match>,
    /// What to do.
    pub action: Action,
    /// Index of the model rule it came from (for explanations and counters).
    pub rule_index: usize,
}

/// A policy or profile's compiled rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompiledRules {
    /// Ingress rules in order.
    pub ingress: Vec<CompiledRule>,
    /// Egress rules in order.
    pub egress: Vec<CompiledRule>,
}

/// One tier as seen by one endpoint in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRules {
    /// Tier name.
    pub tier: String,
    /// Its default action after the policies.
    pub default_action: TierDefaultAction,
    /// The policies that apply, in order.
    pub policies: Vec<PolicyId>,
}

/// What one endpoint's chains contain.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRules {
    /// Ingress tiers (only tiers with at least one applicable policy).
    pub ingress: Vec<TierRules>,
    /// Egress tiers.
    pub egress: Vec<TierRules>,
    /// Profiles consulted after the tiers, in order (then drop).
    pub profiles: Vec<String>,
}

impl EndpointRules {
    /// The tiers for `direction`.
    pub fn tiers(&self, direction: Direction) -> &[TierRules] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// One tier of the model in evaluation order, with every policy in it whatever it selects.
#[derive(Debug, Clone, PartialEq)]
pub struct TierOrder {
    /// Tier name.
    pub tier: String,
    /// Its default action after the policies.
    pub default_action: TierDefaultAction,
    /// The policies that apply to ingress, in order.
    pub ingress: Vec<PolicyId>,
    /// The policies that apply to egress, in order.
    pub egress: Vec<PolicyId>,
}

impl TierOrder {
    /// The policies for `direction`.
    pub fn policies(&self, direction: Direction) -> &[PolicyId] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// The compiled model.
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// Compiled policies.
    pub policies: BTreeMap<PolicyId, CompiledRules>,
    /// Every tier and its policies in evaluation order (the order each endpoint's
    /// [`EndpointRules`] follows), for renderers that select policies per endpoint in data.
    pub tiers: Vec<TierOrder>,
    /// Each policy's endpoint selector in canonical form (namespaced policies include their
    /// namespace): policies with the same text select the same endpoints.
    pub policy_selectors: BTreeMap<PolicyId, String>,
    /// Compiled profiles.
    pub profiles: BTreeMap<String, CompiledRules>,
    /// Per-endpoint chain layout.
    pub endpoints: BTreeMap<EndpointId, EndpointRules>,
    /// Set definitions and members; keep feeding it entity updates for incremental changes.
    pub ip_sets: IpSetIndex,
}

impl Ruleset {
    /// Members of a set.
    pub fn set_members(&self, id: &IpSetId) -> BTreeSet<Member> {
        self.ip_sets.members(id).unwrap_or_default()
    }

    /// The compiled rules of a policy for one direction.
    pub fn policy_rules(&self, id: &PolicyId, direction: Direction) -> &[CompiledRule] {
        match (self.policies.get(id), direction) {
            (Some(c), Direction::Ingress) => &c.ingress,
            (Some(c), Direction::Egress) => &c.egress,
            (None, _) => &[],
        }
    }
}

/// The key an entity has in the set index.
pub fn entity_key(model: &Model, e: EntityRef) -> EntityKey {
    match e {
        EntityRef::Endpoint(i) => EntityKey::Endpoint(model.endpoints()[i].id.clone()),
        EntityRef::NetworkSet(i) => {
            let s = &model.network_sets()[i];
            EntityKey::NetworkSet {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
            }
        }
    }
}

/// The data an entity contributes to the set index.
pub fn entity_data(model: &Model, e: EntityRef) -> EntityData {
    EntityData {
        labels: model.entity_labels(e).clone(),
        nets: model.entity_nets(e).to_vec(),
        ports: model.entity_ports(e).to_vec(),
    }
}

struct Compiler {
    sets: IpSetIndex,
}

impl Compiler {
    fn set(&mut self, key: SetKey) -> IpSetId {
        self.sets.add_set(key).0
    }

    /// The alternatives (ORed) for one side; each is a list of ANDed matches.
    fn side(&mut self, m: &EntityMatch, side: Side) -> Vec<Vec<Match>> {
        let mut common = Vec::new();
        if !m.nets.is_empty() {
            common.push(Match::AddrInSet {
                side,
                set: self.set(SetKey::Nets(m.nets.clone())),
                negated: false,
            });
        }
        if !m.not_nets.is_empty() {
            common.push(Match::AddrInSet {
                side,
                set: self.set(SetKey::Nets(m.not_nets.clone())),
                negated: true,
            });
        }
        if let Some(s) = &m.not_selector {
            common.push(Match::AddrInSet {
                side,
                set: self.set(SetKey::Selector(s.clone())),
                negated: true,
            });
        }
        let (numeric, named) = split_ports(&m.not_ports);
        if !numeric.is_empty() {
            common.push(Match::Ports {
                side,
                ranges: numeric,
                negated: true,
            });
        }
        for name in named {
            let set = self.set(SetKey::NamedPort {
                selector: m.selector.clone(),
                name,
            });
            common.push(Match::NamedPortSet {
                side,
                set,
                negated: true,
            });
        }
        let selector_match = m.selector.clone().map(|s| Match::AddrInSet {
            side,
            set: self.set(SetKey::Selector(s)),
            negated: false,
        });
        if m.ports.is_empty() {
            return vec![common.into_iter().chain(selector_match).collect()];
        }
        let (numeric, named) = split_ports(&m.ports);
        let mut alternatives = Vec::new();
        if !numeric.is_empty() {
            let mut alt = common.clone();
            alt.extend(selector_match);
            alt.push(Match::Ports {
                side,
                ranges: numeric,
                negated: false,
            });
            alternatives.push(alt);
        }
        for name in named {
            let mut alt = common.clone();
            let set = self.set(SetKey::NamedPort {
                selector: m.selector.clone(),
                name,
            });
            alt.push(Match::NamedPortSet {
                side,
                set,
                negated: false,
            });
            alternatives.push(alt);
        }
        alternatives
    }

    fn rule(&mut self, rule: &Rule, rule_index: usize, out: &mut Vec<CompiledRule>) {
        let mut base = Vec::new();
        base.extend(rule.ip_version.map(Match::IpVersion));
        base.extend(rule.protocol.map(Match::Protocol));
        base.extend(rule.not_protocol.map(Match::NotProtocol));
        base.extend(rule.icmp.map(Match::Icmp));
        base.extend(rule.not_icmp.map(Match::NotIcmp));
        let src = self.side(&rule.source, Side::Source);
        let dst = self.side(&rule.destination, Side::Destination);
        for s in &src {
            for d in &dst {
                let matches = base.iter().chain(s).chain(d).cloned().collect();
                out.push(CompiledRule {
                    matches,
                    action: rule.action,
                    rule_index,
                });
            }
        }
    }

    fn rules(&mut self, ingress: &[Rule], egress: &[Rule]) -> CompiledRules {
        let mut c = CompiledRules::default();
        for (i, r) in ingress.iter().enumerate() {
            self.rule(r, i, &mut c.ingress);
        }
        for (i, r) in egress.iter().enumerate() {
            self.rule(r, i, &mut c.egress);
        }
        c
    }
}

fn split_ports(ports: &[PortMatch]) -> (Vec<(u16, u16)>, Vec<String>) {
    let mut numeric = Vec::new();
    let mut named = Vec::new();
    for p in ports {
        match p {
            PortMatch::Range { first, last } => numeric.push((*first, *last)),
            PortMatch::Named(n) => named.push(n.clone()),
        }
    }
    (numeric, named)
}

/// The chain layout of an endpoint with effective `labels` and `profiles`: per direction the
/// tiers (in order) with the policies of each that select it; tiers with none are left out.
pub fn endpoint_rules(model: &Model, labels: &Labels, profiles: &[String]) -> EndpointRules {
    let tiers_for = |direction: Direction| -> Vec<TierRules> {
        model
            .tiers()
            .iter()
            .filter_map(|tp| {
                let policies: Vec<PolicyId> = tp
                    .policies
                    .iter()
                    .filter(|p| p.applies(direction) && p.selector.matches(labels))
                    .map(|p| p.id.clone())
                    .collect();
                (!policies.is_empty()).then(|| TierRules {
                    tier: tp.tier.name.clone(),
                    default_action: tp.tier.default_action,
                    policies,
                })
            })
            .collect()
    };
    EndpointRules {
        ingress: tiers_for(Direction::Ingress),
        egress: tiers_for(Direction::Egress),
        profiles: profiles.to_vec(),
    }
}

/// Compiles the whole model.
pub fn compile(model: &Model) -> Ruleset {
    let mut sets = IpSetIndex::new();
    for e in model.entities() {
        sets.upsert_entity(entity_key(model, e), entity_data(model, e));
    }
    let mut c = Compiler { sets };
    let mut policies = BTreeMap::new();
    let mut tiers = Vec::new();
    let mut policy_selectors = BTreeMap::new();
    for tp in model.tiers() {
        for p in &tp.policies {
            policies.insert(p.id.clone(), c.rules(&p.ingress, &p.egress));
            policy_selectors.insert(p.id.clone(), p.selector.canonical().to_string());
        }
        let ids = |direction: Direction| -> Vec<PolicyId> {
            tp.policies
                .iter()
                .filter(|p| p.applies(direction))
                .map(|p| p.id.clone())
                .collect()
        };
        tiers.push(TierOrder {
            tier: tp.tier.name.clone(),
            default_action: tp.tier.default_action,
            ingress: ids(Direction::Ingress),
            egress: ids(Direction::Egress),
        });
    }
    let profiles = model
        .profiles()
        .iter()
        .map(|(name, p)| (name.clone(), c.rules(&p.ingress, &p.egress)))
        .collect();
    let mut endpoints = BTreeMap::new();
    for (i, ep) in model.endpoints().iter().enumerate() {
        endpoints.insert(
            ep.id.clone(),
            endpoint_rules(model, model.endpoint_labels(i), model.endpoint_profiles(i)),
        );
    }
    Ruleset {
        policies,
        tiers,
        policy_selectors,
        profiles,
        endpoints,
        ip_sets: c.sets,
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
