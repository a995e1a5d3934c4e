//! Calico policy rules (`policy_common.go`), shared by NetworkPolicy, GlobalNetworkPolicy and
//! Profile: `Rule`, `EntityRule` and their parts.
//!
//! Selectors, nets and ports stay as written; the `policy` crate parses and checks them.
//! `source`/`destination` are `Option` because calicoctl prints `source: {}` for an empty
//! side and hand-written YAML omits it; both spellings survive a round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::numorstring::{Port, Protocol};
use super::validation::{Checked, ValidationError};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Accept the packet (terminal).
    Allow,
    /// Drop the packet (terminal).
    Deny,
    /// Log the packet and continue with the next rule.
    Log,
    /// Skip the rest of the tier.
    Pass,
}

/// Direction a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic towards the selected endpoints.
    Ingress,
    /// Traffic from the selected endpoints.
    Egress,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// What to do on a match.
    pub action: Action,
    /// Restrict to IPv4 (`4`) or IPv6 (`6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// Match this protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Match ICMP type/code (with an ICMP protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    /// Match every protocol but this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// Match every ICMP type/code but this one.
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    /// Source match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EntityRule>,
    /// Destination match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<EntityRule>,
    /// HTTP (L7) match; vrouter accepts and stores it but cannot enforce it in nftables.
    #[serde(default, rename = "http", skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpMatch>,
    /// Per-rule annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

/// ICMP type and code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpFields {
    /// ICMP type (0–254).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code (0–255); needs a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// One side (source or destination) of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntityRule {
    /// CIDRs the address must be in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
    /// Endpoint/network-set selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Namespace selector (`global()` = non-namespaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Kubernetes service match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceMatch>,
    /// Ports (numbers, `min:max` ranges or named ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// CIDRs the address must not be in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<String>,
    /// Negated selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selector: Option<String>,
    /// Negated ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<Port>,
    /// Service-account match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
}

/// Match on a Kubernetes service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMatch {
    /// Service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Match on Kubernetes service accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountMatch {
    /// Service account names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Selector over service-account labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// HTTP match (methods and paths).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMatch {
    /// HTTP methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Paths (exact or prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<HttpPath>,
}

/// One HTTP path match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPath {
    /// Exact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Per-rule metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The empty side, returned for an absent `source`/`destination`.
static ANY_ENTITY: EntityRule = EntityRule {
    nets: Vec::new(),
    selector: None,
    namespace_selector: None,
    services: None,
    ports: Vec::new(),
    not_nets: Vec::new(),
    not_selector: None,
    not_ports: Vec::new(),
    service_accounts: None,
};

impl Rule {
    /// A rule with only an action.
    pub fn new(action: Action) -> Self {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            icmp: None,
            not_protocol: None,
            not_icmp: None,
            source: None,
            destination: None,
            http: None,
            metadata: None,
        }
    }

    /// The source side (empty = any when absent).
    pub fn source(&self) -> &EntityRule {
        self.source.as_ref().unwrap_or(&ANY_ENTITY)
    }

    /// The destination side (empty = any when absent).
    pub fn destination(&self) -> &EntityRule {
        self.destination.as_ref().unwrap_or(&ANY_ENTITY)
    }

    /// Local checks: `ipVersion` is 4 or 6; ICMP type is at most 254 and a code needs a type.
    pub(crate) fn check(&self, path: &str) -> Checked {
        if let Some(v) = self.ip_version
            && v != 4
            && v != 6
        {
            return Err(ValidationError::new(
                format!("{path}.ipVersion"),
                format!("{v} is not 4 or 6"),
            ));
        }
        for (field, icmp) in [("icmp", &self.icmp), ("notICMP", &self.not_icmp)] {
            let Some(icmp) = icmp else { continue };
            if icmp.icmp_type == Some(255) {
                return Err(ValidationError::new(
                    format!("{path}.{field}.type"),
                    "255 is not a valid ICMP type (0-254)",
                ));
            }
            if icmp.code.is_some() && icmp.icmp_type.is_none() {
                return Err(ValidationError::new(
                    format!("{path}.{field}.code"),
                    "an ICMP code needs an ICMP type",
                ));
            }
        }
        Ok(())
    }
}

/// Checks every rule of an ingress or egress list (`spec.ingress[3]...`).
pub(crate) fn check_rules(path: &str, rules: &[Rule]) -> Checked {
    rules
        .iter()
        .enumerate()
        .try_for_each(|(i, rule)| rule.check(&format!("{path}[{i}]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rule_parses_with_every_field() {
        let text = r#"
action: Allow
ipVersion: 4
protocol: TCP
notProtocol: 17
icmp: {type: 8, code: 0}
notICMP: {type: 3}
source:
  nets: [10.0.0.0/8]
  notNets: [10.1.0.0/16]
  selector: role == 'frontend'
  notSelector: has(quarantine)
  namespaceSelector: global()
  ports: [80, "443", "8000:8080", http]
  notPorts: [22]
  serviceAccounts: {names: [api], selector: app == 'x'}
destination:
  services: {name: kube-dns, namespace: kube-system}
http:
  methods: [GET]
  paths: [{exact: /a}, {prefix: /b}]
metadata:
  annotations: {owner: team-a}
"#;
        let rule: Rule = yaml_serde::from_str(text).unwrap();
        assert_eq!(rule.action, Action::Allow);
        assert_eq!(rule.source().ports.len(), 4);
        assert_eq!(rule.source().ports[2], Port::Text("8000:8080".into()));
        assert_eq!(rule.not_icmp.unwrap().icmp_type, Some(3));
        assert_eq!(
            rule.destination()
                .services
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("kube-dns")
        );
        let back: yaml_serde::Value = yaml_serde::to_value(&rule).unwrap();
        let orig: yaml_serde::Value = yaml_serde::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn absent_sides_read_as_any() {
        let rule = Rule::new(Action::Deny);
        assert_eq!(rule.source(), &EntityRule::default());
        assert_eq!(rule.destination(), &EntityRule::default());
    }

    #[test]
    fn action_spelling_is_strict() {
        let err = yaml_serde::from_str::<Rule>("action: allow").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn local_checks() {
        let mut rule = Rule::new(Action::Allow);
        assert!(check_rules("spec.ingress", std::slice::from_ref(&rule)).is_ok());
        rule.ip_version = Some(5);
        let err =
            check_rules("spec.ingress", &[Rule::new(Action::Deny), rule.clone()]).unwrap_err();
        assert_eq!(err.path, "spec.ingress[1].ipVersion");
        rule.ip_version = None;
        rule.icmp = Some(IcmpFields {
            icmp_type: None,
            code: Some(1),
        });
        assert_eq!(rule.check("r").unwrap_err().path, "r.icmp.code");
        rule.icmp = Some(IcmpFields {
            icmp_type: Some(255),
            code: None,
        });
        assert_eq!(rule.check("r").unwrap_err().path, "r.icmp.type");
    }
}
