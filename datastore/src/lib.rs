//! The cluster datastore: every piece of intent and allocation state lives in etcd.
//!
//! - [`resource`]: typed resources in Calico's `projectcalico.org/v3` and Kubernetes'
//!   `networking.k8s.io/v1` / `v1` YAML, with strict parsing (unknown fields are errors).
//! - [`keys`]: the etcd key layout (design.md §4), in one place.
//! - [`etcd`]: the only code that talks to etcd: connection (endpoints, TLS), CAS
//!   create/update/delete and all-or-nothing transactions.
//! - [`resource_store`]: typed get/list and calicoctl's create/replace/apply/delete of many
//!   resources as one transaction.
//! - [`syncer`]: list + watch of a prefix, delivering `(key, Option<value>, revision)` and
//!   `InSync` with Felix's syncer contract (no spurious deletes, survives compaction and
//!   etcd restarts).

pub mod etcd;
pub mod ipam;
pub mod keys;
pub mod resource;
pub mod resource_store;
pub mod syncer;
