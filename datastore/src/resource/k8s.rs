//! Kubernetes kinds vrouter stores: `networking.k8s.io/v1` `NetworkPolicy` (kind
//! [`super::Kind::K8sNetworkPolicy`]) and `v1` `Namespace` (whose labels become the
//! `kns.<name>` profile's labels). Fields as in the Kubernetes API reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Condition, NameRule, ObjectMeta};
use super::numorstring::IntOrString;
use super::rule::PolicyType;
use super::validation::{Checked, Quoted, ValidationError, parse_cidr};

/// A Kubernetes NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sNetworkPolicy {
    /// Metadata (namespaced).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: K8sNetworkPolicySpec,
}

/// `NetworkPolicy.spec` (`networking.k8s.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sNetworkPolicySpec {
    /// Pods the policy applies to; absent or `{}` = every pod in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Ingress rules; `None` and `[]` both allow nothing (when Ingress is a policy type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<K8sIngressRule>>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<K8sEgressRule>>,
    /// Directions; absent = Ingress, plus Egress if egress rules are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<PolicyType>>,
}

/// Kubernetes `LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must equal the given values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based selector requirement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// An ingress rule: traffic from any of `from` to any of `ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sIngressRule {
    /// Sources; empty = everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<K8sPeer>,
    /// Ports; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

/// An egress rule: traffic to any of `to` on any of `ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sEgressRule {
    /// Destinations; empty = everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<K8sPeer>,
    /// Ports; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

/// Kubernetes `NetworkPolicyPeer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sPeer {
    /// Pods (in the policy's namespace, or in `namespaceSelector`'s namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// A CIDR with exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// Kubernetes `IPBlock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    /// The CIDR.
    pub cidr: String,
    /// CIDRs inside it to exclude.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

/// Kubernetes `NetworkPolicyPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sPort {
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port number or named port; absent = all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// End of a numeric port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

impl LabelSelector {
    fn check(&self, path: &str) -> Checked {
        for (i, req) in self.match_expressions.iter().enumerate() {
            let here = format!("{path}.matchExpressions[{i}]");
            match req.operator.as_str() {
                "In" | "NotIn" if req.values.is_empty() => {
                    return Err(ValidationError::new(
                        format!("{here}.values"),
                        format!("must be non-empty for operator {}", req.operator),
                    ));
                }
                "Exists" | "DoesNotExist" if !req.values.is_empty() => {
                    return Err(ValidationError::new(
                        format!("{here}.values"),
                        format!("must be empty for operator {}", req.operator),
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(ValidationError::new(
                        format!("{here}.operator"),
                        format!("{} is not In, NotIn, Exists or DoesNotExist", Quoted(other)),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl K8sPeer {
    fn check(&self, path: &str) -> Checked {
        if let Some(sel) = &self.pod_selector {
            sel.check(&format!("{path}.podSelector"))?;
        }
        if let Some(sel) = &self.namespace_selector {
            sel.check(&format!("{path}.namespaceSelector"))?;
        }
        match &self.ip_block {
            Some(block) => {
                if self.pod_selector.is_some() || self.namespace_selector.is_some() {
                    return Err(ValidationError::new(
                        format!("{path}.ipBlock"),
                        "cannot be combined with podSelector or namespaceSelector",
                    ));
                }
                let net = parse_cidr(&format!("{path}.ipBlock.cidr"), &block.cidr)?;
                for (i, except) in block.except.iter().enumerate() {
                    let here = format!("{path}.ipBlock.except[{i}]");
                    let inner = parse_cidr(&here, except)?;
                    if inner.is_ipv4() != net.is_ipv4()
                        || inner.prefix() < net.prefix()
                        || !net.contains(inner.network())
                    {
                        return Err(ValidationError::new(
                            here,
                            format!("{} is not inside {}", Quoted(except), Quoted(&block.cidr)),
                        ));
                    }
                }
            }
            None if self.pod_selector.is_none() && self.namespace_selector.is_none() => {
                return Err(ValidationError::new(
                    path,
                    "one of podSelector, namespaceSelector or ipBlock is required",
                ));
            }
            None => {}
        }
        Ok(())
    }
}

impl K8sPort {
    fn check(&self, path: &str) -> Checked {
        if let Some(proto) = &self.protocol
            && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
        {
            return Err(ValidationError::new(
                format!("{path}.protocol"),
                format!("{} is not TCP, UDP or SCTP", Quoted(proto)),
            ));
        }
        if let Some(IntOrString::Int(p)) = self.port
            && !(1..=65535).contains(&p)
        {
            return Err(ValidationError::new(
                format!("{path}.port"),
                format!("{p} is not a valid port (1-65535)"),
            ));
        }
        if let Some(end) = self.end_port {
            match self.port {
                Some(IntOrString::Int(start)) if (start..=65535).contains(&end) => {}
                Some(IntOrString::Int(start)) => {
                    return Err(ValidationError::new(
                        format!("{path}.endPort"),
                        format!("{end} must be between port {start} and 65535"),
                    ));
                }
                _ => {
                    return Err(ValidationError::new(
                        format!("{path}.endPort"),
                        "requires a numeric port",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_k8s_rule(path: &str, peers: (&str, &[K8sPeer]), ports: &[K8sPort]) -> Checked {
    let (peer_field, peers) = peers;
    for (i, peer) in peers.iter().enumerate() {
        peer.check(&format!("{path}.{peer_field}[{i}]"))?;
    }
    for (i, port) in ports.iter().enumerate() {
        port.check(&format!("{path}.ports[{i}]"))?;
    }
    Ok(())
}

impl K8sNetworkPolicySpec {
    /// `policyTypes` with the Kubernetes defaulting applied.
    pub fn effective_policy_types(&self) -> Vec<PolicyType> {
        match &self.policy_types {
            Some(types) if !types.is_empty() => types.clone(),
            _ if self.egress.is_some() => vec![PolicyType::Ingress, PolicyType::Egress],
            _ => vec![PolicyType::Ingress],
        }
    }

    /// Ingress rules (empty when absent).
    pub fn ingress_rules(&self) -> &[K8sIngressRule] {
        self.ingress.as_deref().unwrap_or_default()
    }

    /// Egress rules (empty when absent).
    pub fn egress_rules(&self) -> &[K8sEgressRule] {
        self.egress.as_deref().unwrap_or_default()
    }
}

impl K8sNetworkPolicy {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(true, NameRule::Subdomain)?;
        let spec = &self.spec;
        if let Some(sel) = &spec.pod_selector {
            sel.check("spec.podSelector")?;
        }
        for (i, rule) in spec.ingress_rules().iter().enumerate() {
            check_k8s_rule(
                &format!("spec.ingress[{i}]"),
                ("from", &rule.from),
                &rule.ports,
            )?;
        }
        for (i, rule) in spec.egress_rules().iter().enumerate() {
            check_k8s_rule(&format!("spec.egress[{i}]"), ("to", &rule.to), &rule.ports)?;
        }
        if let Some(types) = &spec.policy_types {
            for (i, t) in types.iter().enumerate() {
                if types[..i].contains(t) {
                    return Err(ValidationError::new(
                        format!("spec.policyTypes[{i}]"),
                        format!("{t:?} is listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A Kubernetes Namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Metadata (cluster-scoped; labels feed the `kns.<name>` profile).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NamespaceSpec>,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}

/// `Namespace.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Finalizers (`kubernetes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// `Namespace.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Namespace {
    /// A namespace with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Namespace {
            metadata: ObjectMeta::named(name),
            spec: None,
            status: None,
        }
    }

    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Label)
    }
}

#[cfg(test)]
mod tests {
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::super::{Kind, Resource};
    use super::*;

    /// The example from the Kubernetes "Network Policies" concept page.
    const K8S_DOCS_POLICY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
";

    #[test]
    fn kubernetes_docs_policy_round_trips() {
        let res = assert_round_trip(K8S_DOCS_POLICY);
        assert_eq!(res.kind(), Kind::K8sNetworkPolicy);
        let Resource::K8sNetworkPolicy(np) = res else {
            panic!("not a k8s policy")
        };
        assert_eq!(np.spec.ingress_rules()[0].from.len(), 3);
        assert_eq!(
            np.spec.egress_rules()[0].ports[0].port,
            Some(IntOrString::Int(5978))
        );
    }

    #[test]
    fn kubernetes_docs_default_policies_round_trip() {
        for text in [
            // default-deny-ingress
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-ingress\nspec:\n  podSelector: {}\n  policyTypes:\n  - Ingress\n",
            // allow-all-ingress
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-all-ingress\nspec:\n  podSelector: {}\n  ingress:\n  - {}\n  policyTypes:\n  - Ingress\n",
            // deny all egress with an explicit empty list
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-egress\nspec:\n  podSelector: {}\n  egress: []\n",
        ] {
            assert_round_trip(text);
        }
    }

    #[test]
    fn end_port_and_named_ports_and_expressions_round_trip() {
        let Resource::K8sNetworkPolicy(np) = assert_round_trip(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: multi-port-egress
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
    matchExpressions:
    - {key: tier, operator: In, values: [backend, cache]}
    - {key: canary, operator: DoesNotExist}
  policyTypes:
    - Egress
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 32000
          endPort: 32768
        - protocol: UDP
          port: dns
",
        ) else {
            panic!("not a k8s policy")
        };
        assert_eq!(np.spec.effective_policy_types(), [PolicyType::Egress]);
        assert_eq!(
            np.spec.egress_rules()[0].ports[1].port,
            Some(IntOrString::String("dns".into()))
        );
    }

    #[test]
    fn k8s_policy_checks() {
        let head = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  podSelector: {}\n";
        let err = assert_invalid(&format!(
            "{head}  ingress:\n  - from:\n    - ipBlock: {{cidr: 172.17.0.0/16, except: [10.0.0.0/24]}}\n"
        ));
        assert_eq!(err.path, "spec.ingress[0].from[0].ipBlock.except[0]");
        let err = assert_invalid(&format!(
            "{head}  egress:\n  - to:\n    - ipBlock: {{cidr: 10.0.0.0/33}}\n"
        ));
        assert_eq!(err.path, "spec.egress[0].to[0].ipBlock.cidr");
        let err = assert_invalid(&format!("{head}  ingress:\n  - from:\n    - {{}}\n"));
        assert_eq!(err.path, "spec.ingress[0].from[0]");
        let err = assert_invalid(&format!(
            "{head}  ingress:\n  - ports:\n    - {{protocol: TCP, port: 100, endPort: 90}}\n"
        ));
        assert_eq!(err.path, "spec.ingress[0].ports[0].endPort");
        let err = assert_invalid(&format!(
            "{head}  ingress:\n  - ports:\n    - {{protocol: ICMP}}\n"
        ));
        assert_eq!(err.path, "spec.ingress[0].ports[0].protocol");
        let err = assert_invalid(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  podSelector: {matchExpressions: [{key: a, operator: Maybe}]}\n",
        );
        assert_eq!(err.path, "spec.podSelector.matchExpressions[0].operator");
    }

    #[test]
    fn namespaces_round_trip() {
        let Resource::Namespace(ns) = assert_round_trip(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: production\n  labels:\n    name: production\n",
        ) else {
            panic!("not a namespace")
        };
        assert_eq!(ns.metadata.labels["name"], "production");
        // As `kubectl get ns -o yaml` prints it.
        assert_round_trip(
            r#"apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels:
    kubernetes.io/metadata.name: kube-system
  name: kube-system
  resourceVersion: "4"
  uid: 0b4e3b5c-9a1f-4f0e-8a36-2d1c1e4f5a6b
spec:
  finalizers:
  - kubernetes
status:
  phase: Active
"#,
        );
        let err = assert_invalid("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n");
        assert_eq!(err.path, "metadata.name");
    }
}
