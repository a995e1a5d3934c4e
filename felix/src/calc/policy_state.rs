//! The policy half of the calculation: the cluster's policy-related resources → a
//! [`policy::Model`] (through `policy::convert`) → a compiled [`Ruleset`].
//!
//! - A change to a policy, tier, profile or namespace rebuilds the model and recompiles
//!   (coalesced: once per flush, however many updates arrived).
//! - A change to a Workload/HostEndpoint or (Global)NetworkSet only updates the set index
//!   incrementally (`IpSetIndex::upsert_entity` / `remove_entity`), plus the chain layout of
//!   that one endpoint if it is local; cost independent of the number of endpoints, and the
//!   sets and endpoints it changed are reported ([`PolicyChanges`]). This path does not
//!   re-check duplicate addresses across endpoints; the next full rebuild does.
//! - The ruleset is shared with the dataplane ([`Arc`]); the dataplane drops its reference
//!   once it has rendered, so the incremental path updates it in place.
//! - A resource that fails conversion is left out and reported (Felix's validation filter);
//!   model-level inconsistencies drop the offender (a policy in a missing tier is inactive,
//!   as in Calico; the second endpoint claiming an address is left out).

use std::collections::{BTreeMap, BTreeSet};

use datastore::keys::parse_resource_key;
use datastore::resource::Resource;
use std::sync::Arc;

use policy::compile::{Ruleset, compile, endpoint_rules, entity_data};
use policy::convert::parts_from_resources;
use policy::ipset::{EntityKey, SetChange};
use policy::model::{
    EndpointId, EntityRef, Model, ModelError, ModelParts, NAMESPACE_PROFILE_PREFIX,
};
use tracing::warn;

use super::PolicyChanges;

/// Most offenders dropped before a model build gives up.
const MAX_MODEL_REPAIRS: usize = 64;

/// True for the kinds the policy model is built from.
fn is_policy_kind(r: &Resource) -> bool {
    matches!(
        r,
        Resource::NetworkPolicy(_)
            | Resource::GlobalNetworkPolicy(_)
            | Resource::K8sNetworkPolicy(_)
            | Resource::Tier(_)
            | Resource::Profile(_)
            | Resource::Namespace(_)
            | Resource::NetworkSet(_)
            | Resource::GlobalNetworkSet(_)
            | Resource::WorkloadEndpoint(_)
            | Resource::HostEndpoint(_)
    )
}

/// True for kinds that are selector targets only (handled incrementally).
fn is_entity_kind(r: &Resource) -> bool {
    matches!(
        r,
        Resource::NetworkSet(_)
            | Resource::GlobalNetworkSet(_)
            | Resource::WorkloadEndpoint(_)
            | Resource::HostEndpoint(_)
    )
}

/// Records the sets a membership change touched.
fn touched(changes: &mut PolicyChanges, set_changes: Vec<SetChange>) {
    for c in set_changes {
        let set = match c {
            SetChange::Added { set, .. } | SetChange::Removed { set, .. } => set,
        };
        changes.sets.insert(set);
    }
}

#[derive(Debug, Default)]
pub(crate) struct PolicyCalc {
    resources: BTreeMap<String, Resource>,
    invalid: BTreeMap<String, String>,
    full_dirty: bool,
    entity_dirty: BTreeSet<String>,
    model: Option<Model>,
    ruleset: Option<Arc<Ruleset>>,
}

impl PolicyCalc {
    pub(crate) fn resource(&self, key: &str) -> Option<&Resource> {
        self.resources.get(key)
    }

    pub(crate) fn invalid(&self) -> &BTreeMap<String, String> {
        &self.invalid
    }

    pub(crate) fn on_resource(&mut self, key: String, resource: Option<Resource>) {
        let new = resource.filter(is_policy_kind);
        let entity_new = new.as_ref().is_none_or(is_entity_kind);
        let previous = match new {
            Some(r) => self.resources.insert(key.clone(), r),
            None => self.resources.remove(&key),
        };
        let had_new = self.resources.contains_key(&key);
        if previous.is_none() && !had_new {
            return;
        }
        let entity_previous = previous.as_ref().is_none_or(is_entity_kind);
        if entity_new && entity_previous {
            self.entity_dirty.insert(key);
        } else {
            self.full_dirty = true;
        }
    }

    /// The new ruleset and what changed, if anything did (always on the first call).
    /// `changes` holds the caller's own changes (local endpoints, host endpoints, failsafe
    /// ports); `is_local` tells this node's endpoints.
    pub(crate) fn flush(
        &mut self,
        is_local: &dyn Fn(&EndpointId) -> bool,
        mut changes: PolicyChanges,
    ) -> Option<(Arc<Ruleset>, PolicyChanges)> {
        let first = self.ruleset.is_none();
        if first || self.full_dirty {
            self.rebuild(is_local);
            changes = PolicyChanges::everything();
        } else if !self.entity_dirty.is_empty() {
            if !self.incremental(is_local, &mut changes) {
                self.rebuild(is_local);
                changes = PolicyChanges::everything();
            }
        } else if changes.is_empty() {
            return None;
        }
        self.entity_dirty.clear();
        self.full_dirty = false;
        if !changes.all {
            // A local endpoint that appeared or went away: its rules follow it.
            if let Some(ruleset) = self.ruleset.as_mut() {
                let model = self.model.as_ref()?;
                for id in &changes.endpoints {
                    let present = ruleset.endpoints.contains_key(id);
                    if is_local(id) && !present {
                        if let Some(i) = model.endpoint_index(id) {
                            Arc::make_mut(ruleset).endpoints.insert(
                                id.clone(),
                                endpoint_rules(
                                    model,
                                    model.endpoint_labels(i),
                                    model.endpoint_profiles(i),
                                ),
                            );
                        }
                    } else if !is_local(id) && present {
                        Arc::make_mut(ruleset).endpoints.remove(id);
                    }
                }
            }
        }
        Some((Arc::clone(self.ruleset.as_ref()?), changes))
    }

    fn rebuild(&mut self, is_local: &dyn Fn(&EndpointId) -> bool) {
        let mut parts = ModelParts::default();
        self.invalid.clear();
        for (key, r) in &self.resources {
            match parts_from_resources(std::iter::once(r)) {
                Ok(p) => {
                    parts.tiers.extend(p.tiers);
                    parts.policies.extend(p.policies);
                    parts.profiles.extend(p.profiles);
                    parts.namespaces.extend(p.namespaces);
                    parts.endpoints.extend(p.endpoints);
                    parts.network_sets.extend(p.network_sets);
                }
                Err(e) => {
                    warn!(%key, error = %e, "resource left out of the policy model");
                    self.invalid.insert(key.clone(), e.to_string());
                }
            }
        }
        let model = build_model(parts, &mut self.invalid);
        let mut ruleset = compile(&model);
        ruleset.endpoints.retain(|id, _| is_local(id));
        self.model = Some(model);
        self.ruleset = Some(Arc::new(ruleset));
    }

    /// Applies entity changes to the set index, recording what changed; false if a full
    /// rebuild is needed instead.
    fn incremental(
        &mut self,
        is_local: &dyn Fn(&EndpointId) -> bool,
        changes: &mut PolicyChanges,
    ) -> bool {
        let (Some(model), Some(ruleset)) = (self.model.as_ref(), self.ruleset.as_mut()) else {
            return false;
        };
        let ruleset = Arc::make_mut(ruleset);
        for key in &self.entity_dirty {
            let Some(r) = self.resources.get(key) else {
                // Deleted: identify the entity by its key.
                let Some(entity) = entity_key_of(key) else {
                    return false;
                };
                touched(changes, ruleset.ip_sets.remove_entity(&entity));
                if let EntityKey::Endpoint(id) = &entity
                    && ruleset.endpoints.remove(id).is_some()
                {
                    changes.endpoints.insert(id.clone());
                }
                self.invalid.remove(key);
                continue;
            };
            let parts = match parts_from_resources(std::iter::once(r)) {
                Ok(parts) => parts,
                Err(e) => {
                    warn!(%key, error = %e, "resource left out of the policy model");
                    self.invalid.insert(key.clone(), e.to_string());
                    if let Some(entity) = entity_key_of(key) {
                        touched(changes, ruleset.ip_sets.remove_entity(&entity));
                        if let EntityKey::Endpoint(id) = &entity
                            && ruleset.endpoints.remove(id).is_some()
                        {
                            changes.endpoints.insert(id.clone());
                        }
                    }
                    continue;
                }
            };
            self.invalid.remove(key);
            let Some(mini) = single_entity_model(model, parts) else {
                return false;
            };
            let (entity, data) = if mini.endpoints().len() == 1 {
                let id = mini.endpoints()[0].id.clone();
                if is_local(&id) {
                    let rules =
                        endpoint_rules(model, mini.endpoint_labels(0), mini.endpoint_profiles(0));
                    if ruleset.endpoints.get(&id) != Some(&rules) {
                        ruleset.endpoints.insert(id.clone(), rules);
                        changes.endpoints.insert(id.clone());
                    }
                } else if ruleset.endpoints.remove(&id).is_some() {
                    changes.endpoints.insert(id.clone());
                }
                (
                    EntityKey::Endpoint(id),
                    entity_data(&mini, EntityRef::Endpoint(0)),
                )
            } else if mini.network_sets().len() == 1 {
                let s = &mini.network_sets()[0];
                (
                    EntityKey::NetworkSet {
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                    },
                    entity_data(&mini, EntityRef::NetworkSet(0)),
                )
            } else {
                return false;
            };
            touched(changes, ruleset.ip_sets.upsert_entity(entity, data));
        }
        true
    }
}

/// The set-index identity of the entity stored under `key`.
fn entity_key_of(key: &str) -> Option<EntityKey> {
    let k = parse_resource_key(key)?;
    match (k.plural.as_str(), k.namespace) {
        ("workloadendpoints", Some(ns)) => Some(EntityKey::Endpoint(EndpointId::new(ns, k.name))),
        ("hostendpoints", None) => Some(EntityKey::Endpoint(EndpointId::host(k.name))),
        ("networksets", Some(ns)) => Some(EntityKey::NetworkSet {
            namespace: Some(ns),
            name: k.name,
        }),
        ("globalnetworksets", None) => Some(EntityKey::NetworkSet {
            namespace: None,
            name: k.name,
        }),
        _ => None,
    }
}

/// A model holding one entity plus the profiles and namespace its effective labels come
/// from (taken from the full `model`), so its labels are computed exactly as a full build
/// would, at a cost independent of the cluster size.
fn single_entity_model(model: &Model, mut parts: ModelParts) -> Option<Model> {
    let namespace = parts
        .endpoints
        .first()
        .map(|e| e.id.namespace.clone())
        .or_else(|| parts.network_sets.first().and_then(|s| s.namespace.clone()));
    if let Some(ep) = parts.endpoints.first() {
        let names: Vec<String> = if ep.profiles.is_empty() && !ep.id.is_host() {
            vec![format!("{NAMESPACE_PROFILE_PREFIX}{}", ep.id.namespace)]
        } else {
            ep.profiles.clone()
        };
        parts.profiles = names
            .iter()
            .filter_map(|n| model.profiles().get(n).cloned())
            .collect();
    }
    if let Some(ns) = namespace.and_then(|ns| model.namespaces().get(&ns).cloned()) {
        parts.namespaces = vec![ns];
    }
    Model::new(parts).ok()
}

/// Builds the model, dropping offenders until it is consistent.
fn build_model(mut parts: ModelParts, invalid: &mut BTreeMap<String, String>) -> Model {
    for _ in 0..MAX_MODEL_REPAIRS {
        match Model::new(parts.clone()) {
            Ok(model) => return model,
            Err(e) => {
                warn!(error = %e, "policy model inconsistent; leaving the offender out");
                match &e {
                    ModelError::UnknownTier { policy, .. } => {
                        parts.policies.retain(|p| &p.id != policy);
                        invalid.insert(policy.to_string(), e.to_string());
                    }
                    ModelError::DuplicateAddress { second, .. } => {
                        parts.endpoints.retain(|ep| &ep.id != second);
                        invalid.insert(second.to_string(), e.to_string());
                    }
                    ModelError::Duplicate { kind, name } => {
                        invalid.insert(format!("{kind} {name}"), e.to_string());
                        match *kind {
                            "tier" => dedup_by(&mut parts.tiers, |t| t.name.clone()),
                            "profile" => dedup_by(&mut parts.profiles, |p| p.name.clone()),
                            "namespace" => dedup_by(&mut parts.namespaces, |n| n.name.clone()),
                            "workload endpoint" => {
                                dedup_by(&mut parts.endpoints, |ep| ep.id.to_string())
                            }
                            "policy" => dedup_by(&mut parts.policies, |p| p.id.to_string()),
                            _ => dedup_by(&mut parts.network_sets, |s| {
                                format!("{:?}/{}", s.namespace, s.name)
                            }),
                        }
                    }
                }
            }
        }
    }
    // Unreachable in practice (each round drops one offender); fail closed to no policy
    // objects rather than loop forever: every endpoint then falls to its profile defaults.
    Model::new(ModelParts::default()).expect("invariant: an empty model is consistent")
}

fn dedup_by<T>(items: &mut Vec<T>, key: impl Fn(&T) -> String) {
    let mut seen = BTreeSet::new();
    items.retain(|item| seen.insert(key(item)));
}
