//! `NetworkSet` (namespaced) and `GlobalNetworkSet`: labelled lists of CIDRs that rule
//! selectors match like endpoints.

use serde::{Deserialize, Serialize};

use super::meta::{NameRule, ObjectMeta};
use super::validation::{Checked, ValidationError, parse_ip_or_cidr};

/// A namespaced set of networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSet {
    /// Metadata (namespaced; labels are what selectors match).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NetworkSetSpec,
}

/// A cluster-wide set of networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalNetworkSet {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NetworkSetSpec,
}

/// `spec` of both network-set kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSetSpec {
    /// The networks: CIDRs, or bare addresses meaning a /32 or /128.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
}

/// Label that maps a namespace into Calico's v1 model and must not be set by users.
const RESERVED_NAMESPACE_LABEL: &str = "projectcalico.org/namespace";

fn check_set(meta: &ObjectMeta, spec: &NetworkSetSpec) -> Checked {
    if meta.labels.contains_key(RESERVED_NAMESPACE_LABEL) {
        return Err(ValidationError::new(
            format!("metadata.labels[{RESERVED_NAMESPACE_LABEL:?}]"),
            "is reserved and cannot be set on a network set",
        ));
    }
    for (i, net) in spec.nets.iter().enumerate() {
        parse_ip_or_cidr(&format!("spec.nets[{i}]"), net)?;
    }
    Ok(())
}

impl NetworkSet {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(true, NameRule::Subdomain)?;
        check_set(&self.metadata, &self.spec)
    }
}

impl GlobalNetworkSet {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        check_set(&self.metadata, &self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::roundtrip::{assert_invalid, assert_round_trip};

    #[test]
    fn calico_docs_network_sets_round_trip() {
        let Resource::NetworkSet(set) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: external-database
  namespace: staging
  labels:
    role: db
spec:
  nets:
    - 198.51.100.0/28
    - 203.0.113.0/24
",
        ) else {
            panic!("not a network set")
        };
        assert_eq!(set.spec.nets.len(), 2);
        assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: a-name-for-the-set
  labels:
    role: external-database
spec:
  nets:
    - 198.51.100.0/28
    - 203.0.113.0/24
    - 2001:db8::/32
    - 192.0.2.7
",
        );
    }

    #[test]
    fn network_set_checks() {
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [10.0.0.0/8, 10.0.0.0/40]}\n",
        );
        assert_eq!(err.path, "spec.nets[1]");
        assert!(err.message.contains("10.0.0.0/40"), "{err}");
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: s, namespace: a, labels: {projectcalico.org/namespace: a}}\nspec: {}\n",
        );
        assert!(err.path.starts_with("metadata.labels"), "{err}");
    }
}
