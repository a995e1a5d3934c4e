//! Typed resource operations over [`Store`]: get, list, and calicoctl's create / replace /
//! apply / delete of many resources as **one** etcd transaction.
//!
//! What is stored is the resource's JSON (`apiVersion`, `kind`, `metadata`, `spec`) with
//! `uid` and `creationTimestamp` set on creation and kept by later writes. `resourceVersion`
//! is never stored: it is the key's etcd mod revision, filled in on every read, and a
//! `resourceVersion` given on input is a precondition (the write fails if the object changed
//! since), as with calicoctl and the Kubernetes API.
//!
//! Semantics (calicoctl's): `create` fails if any object exists; `replace` fails if any is
//! missing; `apply` creates or updates and writes nothing for an object whose content is
//! unchanged (so re-applying a file moves no revision); `delete` fails if any is missing.
//! Every object is validated ([`Resource::validate`]) before anything is written, and the
//! writes of one call land together or not at all.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::etcd::{DatastoreError, KeyValue, Store, Write};
use crate::keys::{namespace_prefix, resource_key, resource_prefix};
use crate::resource::{Kind, Resource, ValidationError};

/// How often a whole call is re-planned after losing a race to another writer.
const RACE_RETRIES: usize = 5;

/// Errors from resource operations; every variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// `create` of an object that exists.
    #[error("{id}: resource already exists")]
    AlreadyExists {
        /// `Kind/ns/name`.
        id: String,
    },
    /// `replace`/`delete` of an object that does not exist.
    #[error("{id}: resource does not exist")]
    NotFound {
        /// `Kind/ns/name`.
        id: String,
    },
    /// The given `resourceVersion` is not the stored one.
    #[error(
        "{id}: resourceVersion {given} is out of date (stored: {stored}); get it again and retry"
    )]
    StaleVersion {
        /// `Kind/ns/name`.
        id: String,
        /// The `resourceVersion` on input.
        given: String,
        /// The stored revision.
        stored: i64,
    },
    /// The same object appears twice in one call.
    #[error("{id}: appears more than once")]
    Duplicate {
        /// `Kind/ns/name`.
        id: String,
    },
    /// The object fails validation.
    #[error("{id}: {source}")]
    Invalid {
        /// `Kind/ns/name`.
        id: String,
        /// What is wrong.
        #[source]
        source: ValidationError,
    },
    /// A stored value cannot be decoded (written by something else, or a newer version).
    #[error("{key}: stored value cannot be decoded: {message}")]
    Undecodable {
        /// The etcd key.
        key: String,
        /// Why.
        message: String,
    },
    /// Other writers kept changing the same objects.
    #[error("gave up after {RACE_RETRIES} attempts: the objects kept changing concurrently")]
    Contended,
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
}

/// Which calicoctl verb a call performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Every object must be new.
    Create,
    /// Every object must exist.
    Replace,
    /// Create or update; unchanged objects are left alone.
    Apply,
    /// Every object must exist; it is removed.
    Delete,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It was created.
    Created,
    /// It was updated.
    Updated,
    /// It already had this content; nothing was written.
    Unchanged,
    /// It was deleted.
    Deleted,
}

/// The result for one object, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Kind/ns/name`.
    pub id: String,
    /// What happened.
    pub change: Change,
    /// The object's revision afterwards (for `Deleted`: the deletion's revision).
    pub revision: i64,
}

/// Typed access to the resources in etcd.
#[derive(Debug, Clone)]
pub struct ResourceStore {
    store: Store,
}

/// The etcd key of a resource (after [`Resource::normalize`]).
pub fn key_of(resource: &Resource) -> String {
    resource_key(
        resource.kind().plural(),
        resource.namespace_or_default(),
        resource.name(),
    )
}

fn decode(kv: &KeyValue) -> Result<Resource, ResourceError> {
    let text = std::str::from_utf8(&kv.value).map_err(|_| ResourceError::Undecodable {
        key: kv.key.clone(),
        message: "not UTF-8".into(),
    })?;
    let mut resource = Resource::from_json(text).map_err(|e| ResourceError::Undecodable {
        key: kv.key.clone(),
        message: e.to_string(),
    })?;
    resource.meta_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(resource)
}

/// The stored form: no `resourceVersion` (it is the mod revision).
fn encode(resource: &Resource) -> Vec<u8> {
    let mut stored = resource.clone();
    stored.meta_mut().resource_version = None;
    stored.to_json().into_bytes()
}

/// Content equality for `apply`: everything but the server-managed metadata.
fn same_content(stored: &Resource, wanted: &Resource) -> bool {
    let strip = |r: &Resource| {
        let mut r = r.clone();
        let meta = r.meta_mut();
        meta.resource_version = None;
        meta.uid = None;
        meta.creation_timestamp = None;
        meta.generation = None;
        r
    };
    strip(stored) == strip(wanted)
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

impl ResourceStore {
    /// Typed access over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads one object; `namespace` is ignored for cluster-scoped kinds and defaults to
    /// `default` for namespaced ones.
    pub async fn get(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Resource>, ResourceError> {
        let namespace = kind
            .is_namespaced()
            .then(|| namespace.unwrap_or(crate::resource::DEFAULT_NAMESPACE));
        let key = resource_key(kind.plural(), namespace, name);
        self.store.get(&key).await?.as_ref().map(decode).transpose()
    }

    /// Lists a kind: one namespace, or every namespace when `namespace` is `None` (or the kind
    /// is cluster-scoped). Sorted by namespace then name.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<Vec<Resource>, ResourceError> {
        let prefix = match namespace {
            Some(ns) if kind.is_namespaced() => namespace_prefix(kind.plural(), ns),
            _ => resource_prefix(kind.plural()),
        };
        let listing = self.store.list(&prefix).await?;
        listing.kvs.iter().map(decode).collect()
    }

    /// Performs `verb` on every resource as one transaction. Resources are normalized and
    /// validated first; on any error nothing is written. Outcomes are in input order.
    pub async fn write(
        &self,
        verb: Verb,
        resources: &[Resource],
    ) -> Result<Vec<Outcome>, ResourceError> {
        let mut wanted = Vec::with_capacity(resources.len());
        let mut seen = BTreeSet::new();
        for resource in resources {
            let mut resource = resource.clone();
            resource.normalize();
            let id = resource.display_id();
            if verb != Verb::Delete {
                resource
                    .validate()
                    .map_err(|source| ResourceError::Invalid {
                        id: id.clone(),
                        source,
                    })?;
            }
            let key = key_of(&resource);
            if !seen.insert(key.clone()) {
                return Err(ResourceError::Duplicate { id });
            }
            wanted.push((key, id, resource));
        }
        for _ in 0..RACE_RETRIES {
            let current = self.read_all(&wanted).await?;
            let plan = plan(verb, &wanted, &current)?;
            let writes: Vec<Write> = plan.iter().filter_map(|p| p.write.clone()).collect();
            match self.store.commit(&writes).await {
                Ok(revision) => {
                    return Ok(plan
                        .into_iter()
                        .map(|p| Outcome {
                            id: p.id,
                            change: p.change,
                            revision: if p.write.is_some() {
                                revision
                            } else {
                                p.current_revision
                            },
                        })
                        .collect());
                }
                // Someone wrote one of these objects between our read and our commit:
                // re-read and re-plan (the plan's preconditions are checked again).
                Err(DatastoreError::Conflict { .. })
                | Err(DatastoreError::AlreadyExists { .. })
                | Err(DatastoreError::NotFound { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(ResourceError::Contended)
    }

    async fn read_all(
        &self,
        wanted: &[(String, String, Resource)],
    ) -> Result<Vec<Option<(Resource, i64)>>, ResourceError> {
        let reads = wanted.iter().map(|(key, _, _)| self.store.get(key));
        let kvs = futures::future::try_join_all(reads).await?;
        kvs.into_iter()
            .map(|kv| {
                kv.map(|kv| decode(&kv).map(|r| (r, kv.mod_revision)))
                    .transpose()
            })
            .collect()
    }
}

/// One object's step in a call.
struct Planned {
    id: String,
    change: Change,
    write: Option<Write>,
    current_revision: i64,
}

/// Decides each object's write from what is stored. Pure.
fn plan(
    verb: Verb,
    wanted: &[(String, String, Resource)],
    current: &[Option<(Resource, i64)>],
) -> Result<Vec<Planned>, ResourceError> {
    let mut steps = Vec::with_capacity(wanted.len());
    for ((key, id, resource), current) in wanted.iter().zip(current) {
        // A resourceVersion on input is a precondition.
        if let (Some(given), Some((_, stored))) = (&resource.meta().resource_version, current)
            && given.parse::<i64>().ok() != Some(*stored)
        {
            return Err(ResourceError::StaleVersion {
                id: id.clone(),
                given: given.clone(),
                stored: *stored,
            });
        }
        let step = match (verb, current) {
            (Verb::Create, Some(_)) => return Err(ResourceError::AlreadyExists { id: id.clone() }),
            (Verb::Replace | Verb::Delete, None) => {
                return Err(ResourceError::NotFound { id: id.clone() });
            }
            (Verb::Create | Verb::Apply, None) => {
                let mut new = resource.clone();
                let meta = new.meta_mut();
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.creation_timestamp = Some(now_rfc3339());
                Planned {
                    id: id.clone(),
                    change: Change::Created,
                    write: Some(Write::Create {
                        key: key.clone(),
                        value: encode(&new),
                    }),
                    current_revision: 0,
                }
            }
            (Verb::Delete, Some((_, revision))) => Planned {
                id: id.clone(),
                change: Change::Deleted,
                write: Some(Write::Delete {
                    key: key.clone(),
                    mod_revision: *revision,
                }),
                current_revision: *revision,
            },
            (Verb::Replace | Verb::Apply, Some((stored, revision))) => {
                if verb == Verb::Apply && same_content(stored, resource) {
                    Planned {
                        id: id.clone(),
                        change: Change::Unchanged,
                        write: None,
                        current_revision: *revision,
                    }
                } else {
                    let mut new = resource.clone();
                    let meta = new.meta_mut();
                    meta.uid = stored.meta().uid.clone();
                    meta.creation_timestamp = stored.meta().creation_timestamp.clone();
                    Planned {
                        id: id.clone(),
                        change: Change::Updated,
                        write: Some(Write::Update {
                            key: key.clone(),
                            value: encode(&new),
                            mod_revision: *revision,
                        }),
                        current_revision: *revision,
                    }
                }
            }
        };
        steps.push(step);
    }
    Ok(steps)
}
