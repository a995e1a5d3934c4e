//! Typed resources (Calico `projectcalico.org/v3` + Kubernetes), strict YAML/JSON parsing and
//! printing.
//!
//! Layout:
//! - [`kind`]: [`Kind`]: wire names, etcd plurals, scope, command-line names.
//! - [`meta`]: [`ObjectMeta`] and name rules.
//! - one file per kind group: [`ippool`] (IPPool, IPAMConfiguration), [`node`], [`bgp`]
//!   (BGPPeer, BGPConfiguration), [`policy`] (NetworkPolicy, GlobalNetworkPolicy, Tier,
//!   Profile) with rules in [`rule`], [`endpoint`] (WorkloadEndpoint, HostEndpoint),
//!   [`networkset`], [`felix`] (FelixConfiguration), [`k8s`] (Kubernetes NetworkPolicy,
//!   Namespace); number-or-string scalars in [`numorstring`].
//! - [`document`]: multi-document YAML/JSON/`List` parsing with located errors, and printing.
//! - [`validation`]: [`ValidationError`] and the shared field checks.
//!
//! Contract: parsing is strict (every struct is `deny_unknown_fields`; errors name the field
//! path, e.g. `spec.ingress[0].foo`) and faithful (YAML → [`Resource`] → YAML keeps every
//! field the types model and adds none; values that need semantic checks, such as selectors,
//! ports and rule CIDRs, keep their spelling). Exceptions, all matching calicoctl's own
//! output: a missing `spec` prints as `spec: {}` on Calico kinds, empty `labels: {}` /
//! `annotations: {}` and empty lists are dropped, and an integral float `order: 100.0`
//! prints as `100`. Parsing does not default anything: call [`Resource::normalize`] (sets
//! the `default` namespace) and [`Resource::validate`] (local checks) before storing.

pub mod bgp;
pub mod document;
pub mod endpoint;
pub mod felix;
pub mod ippool;
pub mod k8s;
pub mod kind;
pub mod meta;
pub mod networkset;
pub mod node;
pub mod numorstring;
pub mod policy;
pub mod rule;
pub mod validation;

#[cfg(test)]
mod roundtrip;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use bgp::{BgpConfiguration, BgpPeer};
pub use document::{
    DecodeError, DocumentError, ResourceList, parse_and_validate_documents, parse_documents,
    parse_located, resources_to_list_yaml, resources_to_yaml,
};
pub use endpoint::{HostEndpoint, WorkloadEndpoint};
pub use felix::FelixConfiguration;
pub use ippool::{IpPool, IpamConfiguration};
pub use k8s::{K8sNetworkPolicy, Namespace};
pub use kind::Kind;
pub use meta::ObjectMeta;
pub use networkset::{GlobalNetworkSet, NetworkSet};
pub use node::Node;
pub use policy::{GlobalNetworkPolicy, NetworkPolicy, Profile, Tier};
pub use validation::ValidationError;

/// Namespace a namespaced object without one lives in.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Any resource vrouter stores. Each variant wraps the kind's struct (`metadata`, `spec` and,
/// where the kind has one, `status`); `apiVersion` and `kind` are implied by the variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `IPPool`.
    IpPool(IpPool),
    /// `Node`.
    Node(Node),
    /// `BGPPeer`.
    BgpPeer(BgpPeer),
    /// `BGPConfiguration`.
    BgpConfiguration(BgpConfiguration),
    /// Calico `NetworkPolicy`.
    NetworkPolicy(NetworkPolicy),
    /// `GlobalNetworkPolicy`.
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// `NetworkSet`.
    NetworkSet(NetworkSet),
    /// `GlobalNetworkSet`.
    GlobalNetworkSet(GlobalNetworkSet),
    /// `Tier`.
    Tier(Tier),
    /// `Profile`.
    Profile(Profile),
    /// `WorkloadEndpoint`.
    WorkloadEndpoint(WorkloadEndpoint),
    /// `HostEndpoint`.
    HostEndpoint(HostEndpoint),
    /// `FelixConfiguration`.
    FelixConfiguration(FelixConfiguration),
    /// `IPAMConfiguration`.
    IpamConfiguration(IpamConfiguration),
    /// Kubernetes `networking.k8s.io/v1` `NetworkPolicy`.
    K8sNetworkPolicy(K8sNetworkPolicy),
    /// Kubernetes `v1` `Namespace`.
    Namespace(Namespace),
}

/// Applies `$body` to the inner struct of any variant, bound as `$inner`.
macro_rules! each_variant {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            Resource::IpPool($inner) => $body,
            Resource::Node($inner) => $body,
            Resource::BgpPeer($inner) => $body,
            Resource::BgpConfiguration($inner) => $body,
            Resource::NetworkPolicy($inner) => $body,
            Resource::GlobalNetworkPolicy($inner) => $body,
            Resource::NetworkSet($inner) => $body,
            Resource::GlobalNetworkSet($inner) => $body,
            Resource::Tier($inner) => $body,
            Resource::Profile($inner) => $body,
            Resource::WorkloadEndpoint($inner) => $body,
            Resource::HostEndpoint($inner) => $body,
            Resource::FelixConfiguration($inner) => $body,
            Resource::IpamConfiguration($inner) => $body,
            Resource::K8sNetworkPolicy($inner) => $body,
            Resource::Namespace($inner) => $body,
        }
    };
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::IpPool(_) => Kind::IpPool,
            Resource::Node(_) => Kind::Node,
            Resource::BgpPeer(_) => Kind::BgpPeer,
            Resource::BgpConfiguration(_) => Kind::BgpConfiguration,
            Resource::NetworkPolicy(_) => Kind::NetworkPolicy,
            Resource::GlobalNetworkPolicy(_) => Kind::GlobalNetworkPolicy,
            Resource::NetworkSet(_) => Kind::NetworkSet,
            Resource::GlobalNetworkSet(_) => Kind::GlobalNetworkSet,
            Resource::Tier(_) => Kind::Tier,
            Resource::Profile(_) => Kind::Profile,
            Resource::WorkloadEndpoint(_) => Kind::WorkloadEndpoint,
            Resource::HostEndpoint(_) => Kind::HostEndpoint,
            Resource::FelixConfiguration(_) => Kind::FelixConfiguration,
            Resource::IpamConfiguration(_) => Kind::IpamConfiguration,
            Resource::K8sNetworkPolicy(_) => Kind::K8sNetworkPolicy,
            Resource::Namespace(_) => Kind::Namespace,
        }
    }

    /// The metadata.
    pub fn meta(&self) -> &ObjectMeta {
        each_variant!(self, r => &r.metadata)
    }

    /// The metadata, mutably (to set `resourceVersion`, `uid`, ...).
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_variant!(self, r => &mut r.metadata)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.meta().name
    }

    /// The namespace for a namespaced kind (`default` when unset); `None` for cluster-scoped
    /// kinds.
    pub fn namespace_or_default(&self) -> Option<&str> {
        self.kind().is_namespaced().then(|| {
            self.meta()
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE)
        })
    }

    /// Fills in what the API server would default before storing: the `default` namespace
    /// for namespaced kinds. Nothing else is defaulted (semantic defaults such as a policy's
    /// tier are read through accessors, so stored YAML stays as the user wrote it).
    pub fn normalize(&mut self) {
        if self.kind().is_namespaced() {
            let meta = self.meta_mut();
            if meta.namespace.is_none() {
                meta.namespace = Some(DEFAULT_NAMESPACE.to_owned());
            }
        }
    }

    /// Local validation (names, namespace scope, addresses, ranges, field combinations).
    /// Selector syntax and rule semantics are checked by the `policy` crate.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Resource::IpPool(r) => r.check(),
            Resource::Node(r) => r.check(),
            Resource::BgpPeer(r) => r.check(),
            Resource::BgpConfiguration(r) => r.check(),
            Resource::NetworkPolicy(r) => r.check(),
            Resource::GlobalNetworkPolicy(r) => r.check(),
            Resource::NetworkSet(r) => r.check(),
            Resource::GlobalNetworkSet(r) => r.check(),
            Resource::Tier(r) => r.check(),
            Resource::Profile(r) => r.check(),
            Resource::WorkloadEndpoint(r) => r.check(),
            Resource::HostEndpoint(r) => r.check(),
            Resource::FelixConfiguration(r) => r.check(),
            Resource::IpamConfiguration(r) => r.check(),
            Resource::K8sNetworkPolicy(r) => r.check(),
            Resource::Namespace(r) => r.check(),
        }
    }

    /// `Kind/name` or `Kind/namespace/name` (`NetworkPolicy/default/allow-web`); Kubernetes'
    /// NetworkPolicy is `NetworkPolicy.networking.k8s.io/<ns>/<name>`.
    pub fn display_id(&self) -> String {
        display_id(self.kind(), self.namespace_or_default(), self.name())
    }

    /// The JSON stored in etcd: one object including `apiVersion` and `kind`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .expect("invariant: resources have string keys and finite values")
    }

    /// Decodes the JSON stored in etcd (strictly: unknown fields are errors).
    pub fn from_json(text: &str) -> Result<Resource, DecodeError> {
        document::decode_json(text)
    }

    /// One YAML document (no leading `---`).
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("invariant: resources have string keys")
    }
}

/// Formats an id as [`Resource::display_id`] does, for objects not parsed yet.
pub fn display_id(kind: Kind, namespace: Option<&str>, name: &str) -> String {
    let kind_name = match kind {
        Kind::K8sNetworkPolicy => "NetworkPolicy.networking.k8s.io",
        other => other.kind_name(),
    };
    match namespace {
        Some(ns) => format!("{kind_name}/{ns}/{name}"),
        None => format!("{kind_name}/{name}"),
    }
}

/// The wire form: `apiVersion` and `kind` ahead of the kind's own fields.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        each_variant!(self, body => Envelope {
            api_version: kind.api_version(),
            kind: kind.kind_name(),
            body,
        }
        .serialize(serializer))
    }
}

impl<'de> Deserialize<'de> for Resource {
    /// Deserializes from any self-describing format through a YAML value; prefer
    /// [`parse_documents`] or [`Resource::from_json`], whose errors carry field paths.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = yaml_serde::Value::deserialize(deserializer)?;
        document::decode_value(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(namespace: Option<&str>) -> Resource {
        Resource::NetworkPolicy(NetworkPolicy {
            metadata: ObjectMeta {
                namespace: namespace.map(str::to_owned),
                ..ObjectMeta::named("allow-web")
            },
            spec: Default::default(),
        })
    }

    #[test]
    fn normalize_defaults_the_namespace_of_namespaced_kinds_only() {
        let mut np = policy(None);
        assert_eq!(np.namespace_or_default(), Some("default"));
        assert_eq!(np.meta().namespace, None);
        np.normalize();
        assert_eq!(np.meta().namespace.as_deref(), Some("default"));
        let mut np = policy(Some("web"));
        np.normalize();
        assert_eq!(np.meta().namespace.as_deref(), Some("web"));
        let mut pool = Resource::IpPool(IpPool::new("p", "10.0.0.0/16"));
        pool.normalize();
        assert_eq!(pool.meta().namespace, None);
        assert_eq!(pool.namespace_or_default(), None);
    }

    #[test]
    fn display_ids() {
        assert_eq!(policy(None).display_id(), "NetworkPolicy/default/allow-web");
        assert_eq!(
            policy(Some("web")).display_id(),
            "NetworkPolicy/web/allow-web"
        );
        assert_eq!(
            Resource::IpPool(IpPool::new("p", "10.0.0.0/16")).display_id(),
            "IPPool/p"
        );
        assert_eq!(
            display_id(Kind::K8sNetworkPolicy, Some("a"), "b"),
            "NetworkPolicy.networking.k8s.io/a/b"
        );
    }

    #[test]
    fn json_includes_type_and_round_trips() {
        let mut pool = Resource::IpPool(IpPool::new("pool1", "10.0.0.0/16"));
        pool.meta_mut().resource_version = Some("17".into());
        let json = pool.to_json();
        assert_eq!(
            json,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"pool1","resourceVersion":"17"},"spec":{"cidr":"10.0.0.0/16"}}"#
        );
        assert_eq!(Resource::from_json(&json).unwrap(), pool);
        let err = Resource::from_json(
            r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"pool1"},"spec":{"cidr":"10.0.0.0/16","colour":"red"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.colour");
        assert_eq!(err.id.as_deref(), Some("IPPool/pool1"));
    }

    #[test]
    fn yaml_starts_with_type() {
        let yaml = Resource::IpPool(IpPool::new("pool1", "10.0.0.0/16")).to_yaml();
        assert_eq!(
            yaml,
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool1\nspec:\n  cidr: 10.0.0.0/16\n"
        );
    }

    #[test]
    fn serde_deserialize_goes_through_the_strict_decoder() {
        let res: Resource = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod"}}"#,
        )
        .unwrap();
        assert_eq!(res, Resource::Namespace(Namespace::new("prod")));
        let err = serde_json::from_str::<Resource>(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod","colour":"red"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("metadata.colour"), "{err}");
    }
}
