//! Calico policy kinds: `NetworkPolicy` (namespaced), `GlobalNetworkPolicy`, `Tier` and
//! `Profile`. Rules are in [`super::rule`]; selector syntax is checked by the `policy` crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Condition, NameRule, ObjectMeta};
use super::numorstring::Order;
use super::rule::{Action, PolicyType, Rule, check_rules};
use super::validation::{Checked, Quoted, ValidationError, check_label_key, check_label_value};

/// Name of the tier a policy without `tier` belongs to.
pub const DEFAULT_TIER: &str = "default";
/// Order of the `default` tier.
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;
/// Most rules in one direction of a policy.
const MAX_RULES: usize = 1024;

/// A namespaced Calico network policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Metadata (namespaced).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NetworkPolicySpec,
}

/// `NetworkPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Tier (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Order within the tier; absent = last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// Ingress rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Endpoints the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Directions the policy applies to (defaulted from the rules when absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Service accounts the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Hints (`AssumeNeededOnEveryNode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<String>,
}

/// A cluster-wide Calico network policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalNetworkPolicy {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: GlobalNetworkPolicySpec,
}

/// `GlobalNetworkPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalNetworkPolicySpec {
    /// Tier (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Order within the tier; absent = last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Endpoints the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Directions the policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Untracked policy (host endpoints only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_track: Option<bool>,
    /// Applied before DNAT (host endpoints, ingress only).
    #[serde(default, rename = "preDNAT", skip_serializing_if = "Option::is_none")]
    pub pre_dnat: Option<bool>,
    /// Also applies to forwarded traffic (host endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_on_forward: Option<bool>,
    /// Service accounts the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Namespaces the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Hints (`AssumeNeededOnEveryNode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<String>,
}

/// A policy tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Metadata (cluster-scoped; the name is a DNS label).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: TierSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TierStatus>,
}

/// `Tier.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TierSpec {
    /// Order among tiers; absent = last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// End-of-tier action when policies applied but none decided (`Deny` or `Pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<Action>,
}

/// `Tier.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierStatus {
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A profile: rules and labels inherited by endpoints that list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ProfileSpec,
}

/// `Profile.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileSpec {
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Labels applied to every endpoint using this profile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: BTreeMap<String, String>,
}

/// Fields NetworkPolicy and GlobalNetworkPolicy check the same way.
struct PolicyParts<'a> {
    tier: Option<&'a str>,
    ingress: &'a [Rule],
    egress: &'a [Rule],
    types: &'a [PolicyType],
    hints: &'a [String],
}

impl PolicyParts<'_> {
    fn check(&self) -> Checked {
        if let Some(tier) = self.tier {
            super::validation::check_label_name("spec.tier", tier)?;
        }
        for (field, rules) in [("ingress", self.ingress), ("egress", self.egress)] {
            if rules.len() > MAX_RULES {
                return Err(ValidationError::new(
                    format!("spec.{field}"),
                    format!("{} rules exceed the limit of {MAX_RULES}", rules.len()),
                ));
            }
            check_rules(&format!("spec.{field}"), rules)?;
        }
        for (i, t) in self.types.iter().enumerate() {
            if self.types[..i].contains(t) {
                return Err(ValidationError::new(
                    format!("spec.types[{i}]"),
                    format!("{t:?} is listed twice"),
                ));
            }
        }
        for (i, hint) in self.hints.iter().enumerate() {
            if hint != "AssumeNeededOnEveryNode" {
                return Err(ValidationError::new(
                    format!("spec.performanceHints[{i}]"),
                    format!(
                        "{} is not a known hint (AssumeNeededOnEveryNode)",
                        Quoted(hint)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Calico's defaulting of `types`: as given, else Ingress, plus Egress if there are egress
/// rules (Egress alone when there are only egress rules).
fn effective_types(types: &[PolicyType], ingress: &[Rule], egress: &[Rule]) -> Vec<PolicyType> {
    if !types.is_empty() {
        return types.to_vec();
    }
    match (ingress.is_empty(), egress.is_empty()) {
        (true, false) => vec![PolicyType::Egress],
        (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
        _ => vec![PolicyType::Ingress],
    }
}

impl NetworkPolicySpec {
    /// The tier, defaulted.
    pub fn tier(&self) -> &str {
        self.tier.as_deref().unwrap_or(DEFAULT_TIER)
    }

    /// `types` with Calico's defaulting applied.
    pub fn effective_types(&self) -> Vec<PolicyType> {
        effective_types(&self.types, &self.ingress, &self.egress)
    }
}

impl GlobalNetworkPolicySpec {
    /// The tier, defaulted.
    pub fn tier(&self) -> &str {
        self.tier.as_deref().unwrap_or(DEFAULT_TIER)
    }

    /// `types` with Calico's defaulting applied.
    pub fn effective_types(&self) -> Vec<PolicyType> {
        effective_types(&self.types, &self.ingress, &self.egress)
    }
}

impl NetworkPolicy {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(true, NameRule::NetworkPolicy)?;
        let spec = &self.spec;
        PolicyParts {
            tier: spec.tier.as_deref(),
            ingress: &spec.ingress,
            egress: &spec.egress,
            types: &spec.types,
            hints: &spec.performance_hints,
        }
        .check()
    }
}

impl GlobalNetworkPolicy {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::GlobalNetworkPolicy)?;
        let spec = &self.spec;
        PolicyParts {
            tier: spec.tier.as_deref(),
            ingress: &spec.ingress,
            egress: &spec.egress,
            types: &spec.types,
            hints: &spec.performance_hints,
        }
        .check()?;
        if spec.pre_dnat == Some(true) {
            if spec.do_not_track == Some(true) {
                return Err(ValidationError::new(
                    "spec.preDNAT",
                    "preDNAT and doNotTrack cannot both be true",
                ));
            }
            if !spec.egress.is_empty() || spec.effective_types().contains(&PolicyType::Egress) {
                return Err(ValidationError::new(
                    "spec.preDNAT",
                    "a preDNAT policy cannot have egress rules or the Egress type",
                ));
            }
            if spec.apply_on_forward != Some(true) {
                return Err(ValidationError::new(
                    "spec.applyOnForward",
                    "must be true for a preDNAT policy",
                ));
            }
        }
        if spec.do_not_track == Some(true) && spec.apply_on_forward != Some(true) {
            return Err(ValidationError::new(
                "spec.applyOnForward",
                "must be true for a doNotTrack policy",
            ));
        }
        Ok(())
    }
}

impl Tier {
    /// The tier's order; the `default` tier is fixed at 1,000,000, others default to last.
    pub fn effective_order(&self) -> Option<f64> {
        self.spec
            .order
            .map(|o| o.0)
            .or_else(|| (self.metadata.name == DEFAULT_TIER).then_some(DEFAULT_TIER_ORDER))
    }

    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Label)?;
        if let Some(action) = self.spec.default_action
            && !matches!(action, Action::Deny | Action::Pass)
        {
            return Err(ValidationError::new(
                "spec.defaultAction",
                format!("{action:?} is not Deny or Pass"),
            ));
        }
        if self.metadata.name == DEFAULT_TIER
            && let Some(order) = self.spec.order
            && order.0 != DEFAULT_TIER_ORDER
        {
            return Err(ValidationError::new(
                "spec.order",
                format!("{order} is not the default tier's fixed order {DEFAULT_TIER_ORDER}"),
            ));
        }
        Ok(())
    }
}

impl Profile {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        check_rules("spec.ingress", &self.spec.ingress)?;
        check_rules("spec.egress", &self.spec.egress)?;
        for (key, value) in &self.spec.labels_to_apply {
            let path = format!("spec.labelsToApply[{key:?}]");
            check_label_key(&path, key)?;
            check_label_value(&path, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::numorstring::{Port, Protocol};
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::*;

    #[test]
    fn calico_docs_network_policy_round_trips() {
        let Resource::NetworkPolicy(np) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-6379
  namespace: production
spec:
  selector: role == 'database'
  types:
    - Ingress
    - Egress
  ingress:
    - action: Log
      protocol: TCP
      source:
        selector: role == 'frontend'
    - action: Deny
      protocol: TCP
      source:
        selector: role == 'frontend'
  egress:
    - action: Allow
",
        ) else {
            panic!("not a network policy")
        };
        assert_eq!(np.spec.tier(), "default");
        assert_eq!(
            np.spec.ingress[0].protocol,
            Some(Protocol::Name("TCP".into()))
        );
        assert_eq!(
            np.spec.effective_types(),
            [PolicyType::Ingress, PolicyType::Egress]
        );
    }

    #[test]
    fn every_network_policy_field_round_trips() {
        let Resource::NetworkPolicy(np) = assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: security.allow-web
  namespace: web
spec:
  tier: security
  order: 10.5
  selector: app == 'web'
  serviceAccountSelector: all()
  types: [Ingress]
  performanceHints: [AssumeNeededOnEveryNode]
  ingress:
  - action: Allow
    ipVersion: 6
    protocol: TCP
    source:
      nets: ["fd00::/8"]
    destination:
      ports: [80, "443", "8080:8090", http-alt]
  - action: Pass
    source: {}
    destination: {}
"#,
        ) else {
            panic!("not a network policy")
        };
        assert_eq!(np.spec.order, Some(Order(10.5)));
        assert_eq!(np.spec.ingress[0].destination().ports[0], Port::Number(80));
        // calicoctl's `source: {}` is kept, but means the same as no source.
        assert_eq!(np.spec.ingress[1].source, Some(Default::default()));
    }

    #[test]
    fn calico_docs_global_network_policy_round_trips() {
        let Resource::GlobalNetworkPolicy(gnp) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-tcp-6379
spec:
  selector: role == 'database'
  types:
  - Ingress
  - Egress
  ingress:
  - action: Allow
    metadata:
      annotations:
        from: frontend
        to: database
    protocol: TCP
    source:
      selector: role == 'frontend'
    destination:
      ports:
      - 6379
  egress:
  - action: Allow
",
        ) else {
            panic!("not a gnp")
        };
        assert_eq!(
            gnp.spec.ingress[0].destination().ports,
            [Port::Number(6379)]
        );
    }

    #[test]
    fn every_global_network_policy_field_round_trips() {
        assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: platform.host-ingress
spec:
  tier: platform
  order: 100
  selector: has(host-endpoint)
  namespaceSelector: global()
  serviceAccountSelector: ""
  types: [Ingress]
  doNotTrack: false
  preDNAT: true
  applyOnForward: true
  performanceHints: [AssumeNeededOnEveryNode]
  ingress:
  - action: Deny
    protocol: ICMP
    icmp: {type: 8}
    notProtocol: UDPLite
  - action: Allow
    protocol: 1
    notICMP: {type: 3, code: 1}
"#,
        );
    }

    #[test]
    fn policy_checks() {
        let head = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: default}\nspec:\n";
        let err = assert_invalid(&format!(
            "{head}  ingress: [{{action: Allow, ipVersion: 5}}]\n"
        ));
        assert_eq!(err.path, "spec.ingress[0].ipVersion");
        let err = assert_invalid(&format!("{head}  types: [Ingress, Ingress]\n"));
        assert_eq!(err.path, "spec.types[1]");
        let err = assert_invalid(&format!("{head}  tier: Security\n"));
        assert_eq!(err.path, "spec.tier");
        let err = assert_invalid(&format!("{head}  performanceHints: [Fast]\n"));
        assert_eq!(err.path, "spec.performanceHints[0]");
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a.b.c, namespace: default}\nspec: {}\n",
        );
        assert_eq!(err.path, "metadata.name");
        let gnp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n";
        let err = assert_invalid(&format!(
            "{gnp}  preDNAT: true\n  applyOnForward: true\n  egress: [{{action: Allow}}]\n"
        ));
        assert_eq!(err.path, "spec.preDNAT");
        let err = assert_invalid(&format!("{gnp}  doNotTrack: true\n"));
        assert_eq!(err.path, "spec.applyOnForward");
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g, namespace: default}\nspec: {}\n",
        );
        assert_eq!(err.path, "metadata.namespace");
    }

    #[test]
    fn types_default_like_calico() {
        let allow = || Rule::new(Action::Allow);
        assert_eq!(effective_types(&[], &[], &[]), [PolicyType::Ingress]);
        assert_eq!(effective_types(&[], &[allow()], &[]), [PolicyType::Ingress]);
        assert_eq!(effective_types(&[], &[], &[allow()]), [PolicyType::Egress]);
        assert_eq!(
            effective_types(&[], &[allow()], &[allow()]),
            [PolicyType::Ingress, PolicyType::Egress]
        );
        assert_eq!(
            effective_types(&[PolicyType::Egress], &[allow()], &[]),
            [PolicyType::Egress]
        );
    }

    #[test]
    fn calico_docs_tier_round_trips() {
        let Resource::Tier(tier) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: internal-access
spec:
  order: 100
  defaultAction: Pass
status:
  conditions:
  - type: Ready
    status: \"True\"
    lastTransitionTime: \"2025-03-01T00:00:00Z\"
    reason: Ready
",
        ) else {
            panic!("not a tier")
        };
        assert_eq!(tier.effective_order(), Some(100.0));
        let default = Tier {
            metadata: ObjectMeta::named("default"),
            spec: TierSpec::default(),
            status: None,
        };
        assert_eq!(default.effective_order(), Some(DEFAULT_TIER_ORDER));
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {defaultAction: Allow}\n",
        );
        assert_eq!(err.path, "spec.defaultAction");
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: a.b}\nspec: {}\n",
        );
        assert_eq!(err.path, "metadata.name");
    }

    #[test]
    fn calico_docs_profile_round_trips() {
        assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: Profile
metadata:
  name: dev-apps
spec:
  ingress:
    - action: Deny
      source:
        nets:
          - 10.0.20.0/24
    - action: Allow
      source:
        selector: stage == 'development'
  egress:
    - action: Allow
  labelsToApply:
    stage: development
",
        );
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p}\nspec: {labelsToApply: {'bad key!': x}}\n",
        );
        assert!(err.path.starts_with("spec.labelsToApply"), "{err}");
    }
}
