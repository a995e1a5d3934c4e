//! `ResourceStore` against a real etcd: calicoctl's verbs, all-or-nothing writes, idempotent
//! apply, server-filled metadata and `resourceVersion` preconditions.

use datastore::etcd::{EtcdConfig, Store};
use datastore::resource::{Kind, Resource, parse_documents};
use datastore::resource_store::{Change, ResourceError, ResourceStore, Verb};
use test_support::etcd::Etcd;

async fn store(etcd: &Etcd) -> ResourceStore {
    ResourceStore::new(
        Store::connect(&EtcdConfig::new([etcd.endpoint()]))
            .await
            .expect("connect"),
    )
}

fn pool(name: &str, cidr: &str) -> Resource {
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n"
    );
    parse_documents(&yaml).expect("pool yaml").remove(0)
}

fn policy(name: &str, selector: &str) -> Resource {
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: {name}\nspec:\n  selector: {selector}\n  ingress:\n  - action: Allow\n"
    );
    parse_documents(&yaml).expect("policy yaml").remove(0)
}

#[tokio::test]
async fn fifty_resources_with_one_invalid_write_nothing() {
    let etcd = Etcd::start().expect("etcd");
    let store = store(&etcd).await;
    let before = store.store().current_revision().await.expect("rev");
    let mut resources: Vec<Resource> = (0..49)
        .map(|i| pool(&format!("pool-{i}"), &format!("10.{i}.0.0/16")))
        .collect();
    resources.insert(30, pool("broken", "10.0.0.0/33"));
    let err = store
        .write(Verb::Apply, &resources)
        .await
        .expect_err("one invalid pool");
    let text = err.to_string();
    assert!(matches!(err, ResourceError::Invalid { .. }), "{text}");
    assert!(text.contains("IPPool/broken"), "{text}");
    assert!(text.contains("10.0.0.0/33"), "{text}");
    assert!(
        store
            .list(Kind::IpPool, None)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.store().current_revision().await.expect("rev"), before);

    // The same 50 with one that already exists, under `create`: nothing written either.
    store
        .write(Verb::Create, &[pool("pool-7", "10.7.0.0/16")])
        .await
        .expect("seed");
    resources.remove(30);
    resources.push(pool("pool-extra", "10.200.0.0/16"));
    let err = store
        .write(Verb::Create, &resources)
        .await
        .expect_err("pool-7 exists");
    assert!(
        matches!(err, ResourceError::AlreadyExists { ref id } if id == "IPPool/pool-7"),
        "{err}"
    );
    assert_eq!(store.list(Kind::IpPool, None).await.expect("list").len(), 1);
}

#[tokio::test]
async fn calicoctl_verbs_and_idempotent_apply() {
    let etcd = Etcd::start().expect("etcd");
    let store = store(&etcd).await;
    let p = policy("allow-web", "app == 'web'");

    let err = store
        .write(Verb::Replace, std::slice::from_ref(&p))
        .await
        .expect_err("missing");
    assert!(matches!(err, ResourceError::NotFound { .. }), "{err}");
    let created = store
        .write(Verb::Create, std::slice::from_ref(&p))
        .await
        .expect("create");
    assert_eq!(created[0].change, Change::Created);
    assert_eq!(created[0].id, "NetworkPolicy/default/allow-web");
    let err = store
        .write(Verb::Create, std::slice::from_ref(&p))
        .await
        .expect_err("exists");
    assert!(matches!(err, ResourceError::AlreadyExists { .. }), "{err}");

    // Server-filled metadata; the namespace defaulted.
    let got = store
        .get(Kind::NetworkPolicy, None, "allow-web")
        .await
        .expect("get")
        .expect("present");
    let meta = got.meta();
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(
        meta.resource_version.as_deref(),
        Some(created[0].revision.to_string().as_str())
    );
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(
        meta.creation_timestamp
            .as_deref()
            .is_some_and(|t| t.ends_with('Z'))
    );

    // Re-applying the same content writes nothing, not even a revision.
    let before = store.store().current_revision().await.expect("rev");
    let again = store
        .write(Verb::Apply, std::slice::from_ref(&p))
        .await
        .expect("apply");
    assert_eq!(again[0].change, Change::Unchanged);
    assert_eq!(store.store().current_revision().await.expect("rev"), before);
    // Applying `get` output back is accepted (and is also unchanged).
    let back = store
        .write(Verb::Apply, std::slice::from_ref(&got))
        .await
        .expect("apply get output");
    assert_eq!(back[0].change, Change::Unchanged);

    // A change updates and keeps uid and creationTimestamp.
    let changed = policy("allow-web", "app == 'api'");
    let updated = store
        .write(Verb::Apply, &[changed])
        .await
        .expect("apply change");
    assert_eq!(updated[0].change, Change::Updated);
    let now = store
        .get(Kind::NetworkPolicy, Some("default"), "allow-web")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(now.meta().uid, got.meta().uid);
    assert_eq!(now.meta().creation_timestamp, got.meta().creation_timestamp);
    assert_ne!(now.meta().resource_version, got.meta().resource_version);

    // The old resourceVersion is now a failed precondition.
    let mut stale = got.clone();
    if let Resource::NetworkPolicy(np) = &mut stale {
        np.metadata.labels.insert("x".into(), "y".into());
    }
    let err = store
        .write(Verb::Replace, &[stale])
        .await
        .expect_err("stale");
    assert!(matches!(err, ResourceError::StaleVersion { .. }), "{err}");

    let deleted = store
        .write(Verb::Delete, std::slice::from_ref(&p))
        .await
        .expect("delete");
    assert_eq!(deleted[0].change, Change::Deleted);
    let err = store.write(Verb::Delete, &[p]).await.expect_err("gone");
    assert!(matches!(err, ResourceError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn lists_by_namespace_and_rejects_duplicates() {
    let etcd = Etcd::start().expect("etcd");
    let store = store(&etcd).await;
    let mut in_prod = policy("a", "all()");
    in_prod.meta_mut().namespace = Some("prod".into());
    store
        .write(Verb::Apply, &[in_prod.clone(), policy("b", "all()")])
        .await
        .expect("apply");
    assert_eq!(
        store
            .list(Kind::NetworkPolicy, None)
            .await
            .expect("all")
            .len(),
        2
    );
    let prod = store
        .list(Kind::NetworkPolicy, Some("prod"))
        .await
        .expect("prod");
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0].name(), "a");
    let err = store
        .write(Verb::Apply, &[in_prod.clone(), in_prod])
        .await
        .expect_err("duplicate");
    assert!(matches!(err, ResourceError::Duplicate { .. }), "{err}");
}

#[tokio::test]
async fn one_thousand_policies_apply_in_one_transaction() {
    let etcd = Etcd::start().expect("etcd");
    let store = store(&etcd).await;
    let policies: Vec<Resource> = (0..1000)
        .map(|i| policy(&format!("p{i:04}"), &format!("app == 'a{i}'")))
        .collect();
    let outcomes = store
        .write(Verb::Apply, &policies)
        .await
        .expect("apply 1000");
    let revision = outcomes[0].revision;
    assert!(
        outcomes
            .iter()
            .all(|o| o.change == Change::Created && o.revision == revision)
    );
    assert_eq!(
        store
            .list(Kind::NetworkPolicy, None)
            .await
            .expect("list")
            .len(),
        1000
    );
}
