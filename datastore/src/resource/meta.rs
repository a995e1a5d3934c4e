//! `metadata` of every resource: Kubernetes `ObjectMeta` as Calico uses it, and its local checks.
//!
//! Accepted and kept (round-tripped): `name`, `generateName`, `namespace`, `selfLink`, `uid`,
//! `resourceVersion`, `generation`, `creationTimestamp`, `deletionTimestamp`,
//! `deletionGracePeriodSeconds`, `labels`, `annotations`, `ownerReferences`, `finalizers` and
//! `managedFields`, so YAML from `kubectl get -o yaml` and `calicoctl get -o yaml` applies as is.
//! Anything else is an error. Timestamps stay strings (their spelling is the server's).
//! Empty `labels: {}` / `annotations: {}` are dropped on output, like Go's `omitempty`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validation::{
    Checked, Quoted, ValidationError, check_label_key, check_label_name, check_label_value,
    check_subdomain, is_dns_label,
};

/// Object metadata (Kubernetes `ObjectMeta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name; required by [`ObjectMeta::check`] (empty when only `generateName` is set).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix for a server-generated name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace of a namespaced object; see `Resource::normalize` for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Deprecated Kubernetes self link (kept when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// Server-assigned unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Opaque version for optimistic concurrency (the etcd mod revision in vrouter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Generation of the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339 creation time, as written by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// RFC 3339 deletion time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Grace period before deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Labels (selected by selectors).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (free-form).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Owners of this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Finalizers that must clear before deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Server-side-apply field ownership, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// A Kubernetes `OwnerReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OwnerReference {
    /// Owner's `apiVersion`.
    pub api_version: String,
    /// Owner's `kind`.
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// Owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether the owner blocks deletion until this object is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A Kubernetes `ManagedFieldsEntry`; `fieldsV1` is kept as an opaque JSON value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// Manager (client) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// `Apply` or `Update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// API version of the managed fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// RFC 3339 time of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Format of `fieldsV1` (`FieldsV1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields_type: Option<String>,
    /// The managed field set.
    #[serde(default, rename = "fieldsV1", skip_serializing_if = "Option::is_none")]
    pub fields_v1: Option<serde_json::Value>,
    /// Subresource (`status`, `scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// A status condition (Kubernetes `metav1.Condition`, also `NamespaceCondition`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (`Ready`).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a kind's names are constrained (Calico's validator, `lib/validator/v3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label, no dots (Tier, Namespace).
    Label,
    /// Calico NetworkPolicy: `label`, `label.label`, or `knp.default.<subdomain>`.
    NetworkPolicy,
    /// GlobalNetworkPolicy: `label` or `label.label`.
    GlobalNetworkPolicy,
}

/// Most bytes of annotations Kubernetes accepts on one object.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

impl ObjectMeta {
    /// Metadata with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        }
    }

    /// Metadata with a namespace and name.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        }
    }

    /// Local checks: the name rule, namespace presence for the scope, label syntax.
    pub(crate) fn check(&self, namespaced: bool, rule: NameRule) -> Checked {
        check_name(&self.name, rule)?;
        match (&self.namespace, namespaced) {
            (Some(ns), true) => check_label_name("metadata.namespace", ns)?,
            (Some(ns), false) => {
                return Err(ValidationError::new(
                    "metadata.namespace",
                    format!("{} is set but this kind is not namespaced", Quoted(ns)),
                ));
            }
            (None, _) => {}
        }
        for (key, value) in &self.labels {
            check_label_key(&format!("metadata.labels[{key:?}]"), key)?;
            check_label_value(&format!("metadata.labels[{key:?}]"), value)?;
        }
        let mut annotation_bytes = 0;
        for (key, value) in &self.annotations {
            check_label_key(&format!("metadata.annotations[{key:?}]"), key)?;
            annotation_bytes += key.len() + value.len();
        }
        if annotation_bytes > ANNOTATIONS_MAX_BYTES {
            return Err(ValidationError::new(
                "metadata.annotations",
                format!("total size {annotation_bytes} bytes exceeds {ANNOTATIONS_MAX_BYTES}"),
            ));
        }
        Ok(())
    }
}

fn check_name(name: &str, rule: NameRule) -> Checked {
    const PATH: &str = "metadata.name";
    match rule {
        NameRule::Subdomain => check_subdomain(PATH, name),
        NameRule::Label => check_label_name(PATH, name),
        NameRule::NetworkPolicy | NameRule::GlobalNetworkPolicy => {
            if name.is_empty() {
                return Err(ValidationError::new(PATH, "is required"));
            }
            let parts: Vec<&str> = name.split('.').collect();
            let simple = parts.len() <= 2 && parts.iter().all(|p| is_dns_label(p));
            let k8s_derived = rule == NameRule::NetworkPolicy
                && ["knp.default.", "ossg.default."].iter().any(|prefix| {
                    name.strip_prefix(prefix)
                        .is_some_and(super::validation::is_dns_subdomain)
                });
            if simple || k8s_derived {
                Ok(())
            } else {
                Err(ValidationError::new(
                    PATH,
                    format!(
                        "{} must be a DNS-1123 label, optionally with one '.' \
                         (lower case alphanumerics and '-')",
                        Quoted(name)
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_calico_rules() {
        assert!(check_name("pool-1", NameRule::Subdomain).is_ok());
        assert!(check_name("node.worker-1", NameRule::Subdomain).is_ok());
        assert!(check_name("", NameRule::Subdomain).is_err());
        assert!(check_name("Pool", NameRule::Subdomain).is_err());
        assert!(check_name("security", NameRule::Label).is_ok());
        assert!(check_name("sec.ops", NameRule::Label).is_err());
        assert!(check_name("allow-web", NameRule::NetworkPolicy).is_ok());
        assert!(check_name("security.allow-web", NameRule::NetworkPolicy).is_ok());
        assert!(check_name("a.b.c", NameRule::NetworkPolicy).is_err());
        assert!(check_name("knp.default.a.b.c", NameRule::NetworkPolicy).is_ok());
        assert!(check_name("knp.default.a.b.c", NameRule::GlobalNetworkPolicy).is_err());
        let err = check_name("Bad_Name", NameRule::GlobalNetworkPolicy).unwrap_err();
        assert_eq!(err.path, "metadata.name");
        assert!(err.message.contains("\"Bad_Name\""), "{err}");
    }

    #[test]
    fn namespace_must_match_scope() {
        let mut meta = ObjectMeta::named("x");
        assert!(meta.check(false, NameRule::Subdomain).is_ok());
        meta.namespace = Some("default".into());
        let err = meta.check(false, NameRule::Subdomain).unwrap_err();
        assert_eq!(err.path, "metadata.namespace");
        assert!(meta.check(true, NameRule::Subdomain).is_ok());
        meta.namespace = Some("Not_A_Namespace".into());
        assert!(meta.check(true, NameRule::Subdomain).is_err());
    }

    #[test]
    fn labels_are_checked_with_their_key_in_the_path() {
        let mut meta = ObjectMeta::named("x");
        meta.labels.insert("app".into(), "web".into());
        assert!(meta.check(false, NameRule::Subdomain).is_ok());
        meta.labels.insert("tier".into(), "front end".into());
        let err = meta.check(false, NameRule::Subdomain).unwrap_err();
        assert_eq!(err.path, r#"metadata.labels["tier"]"#);
    }
}
