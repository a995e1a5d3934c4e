//! `Store` against a real etcd: CAS create/update/delete, all-or-nothing transactions,
//! listings (paged, keys-only) and one-round-trip reads, multi-member clusters, and a clear error when etcd is unreachable.

use std::time::{Duration, Instant};

use datastore::etcd::{DatastoreError, EtcdConfig, Read, Store, Write};
use test_support::etcd::{Etcd, EtcdCluster};

async fn connect(endpoints: Vec<String>) -> Store {
    Store::connect(&EtcdConfig::new(endpoints))
        .await
        .expect("connect")
}

#[tokio::test]
async fn cas_detects_conflicts() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    let key = "/vrouter/resources/ippools/pool-a";

    let created = store.create(key, b"v1".to_vec()).await.expect("create");
    let err = store
        .create(key, b"v1b".to_vec())
        .await
        .expect_err("second create");
    assert!(matches!(err, DatastoreError::AlreadyExists { .. }), "{err}");

    let updated = store
        .update(key, b"v2".to_vec(), created)
        .await
        .expect("update at the read revision");
    let err = store
        .update(key, b"v3".to_vec(), created)
        .await
        .expect_err("stale update");
    match err {
        DatastoreError::Conflict {
            expected, found, ..
        } => assert_eq!((expected, found), (created, updated)),
        other => panic!("expected a conflict, got {other}"),
    }
    let err = store.delete(key, created).await.expect_err("stale delete");
    assert!(matches!(err, DatastoreError::Conflict { .. }), "{err}");

    let kv = store.get(key).await.expect("get").expect("present");
    assert_eq!(kv.value, b"v2");
    assert_eq!(kv.mod_revision, updated);

    store.delete(key, updated).await.expect("delete");
    assert_eq!(store.get(key).await.expect("get"), None);
    let err = store
        .update(key, b"x".to_vec(), updated)
        .await
        .expect_err("gone");
    assert!(matches!(err, DatastoreError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn fifty_writes_with_one_bad_write_nothing() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    store
        .create("/vrouter/t/25", b"already here".to_vec())
        .await
        .expect("seed");
    let before = store.current_revision().await.expect("revision");

    let writes: Vec<Write> = (0..50)
        .map(|i| Write::Create {
            key: format!("/vrouter/t/{i}"),
            value: format!("v{i}").into_bytes(),
        })
        .collect();
    let err = store
        .commit(&writes)
        .await
        .expect_err("one create conflicts");
    match &err {
        DatastoreError::AlreadyExists { key } => assert_eq!(key, "/vrouter/t/25"),
        other => panic!("expected AlreadyExists, got {other}"),
    }
    let listing = store.list("/vrouter/t/").await.expect("list");
    assert_eq!(listing.kvs.len(), 1, "nothing but the seed was written");
    assert_eq!(listing.revision, before, "the store revision did not move");

    let good: Vec<Write> = writes
        .into_iter()
        .filter(|w| w.key() != "/vrouter/t/25")
        .collect();
    let revision = store.commit(&good).await.expect("49 creates");
    let listing = store.list("/vrouter/t/").await.expect("list");
    assert_eq!(listing.kvs.len(), 50);
    assert!(
        listing
            .kvs
            .iter()
            .filter(|kv| kv.key != "/vrouter/t/25")
            .all(|kv| kv.mod_revision == revision),
        "all 49 landed in one revision"
    );
}

#[tokio::test]
async fn listing_pages_through_large_prefixes_at_one_revision() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    for chunk in 0..12 {
        let writes: Vec<Write> = (0..100)
            .map(|i| Write::Create {
                key: format!("/vrouter/big/{:05}", chunk * 100 + i),
                value: vec![b'x'; 64],
            })
            .collect();
        store.commit(&writes).await.expect("batch");
    }
    store
        .create("/vrouter/bigger", b"outside".to_vec())
        .await
        .expect("neighbour");
    let listing = store.list("/vrouter/big/").await.expect("list");
    assert_eq!(listing.kvs.len(), 1200);
    let keys: Vec<&str> = listing.kvs.iter().map(|kv| kv.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(keys, sorted, "in key order, no duplicates across pages");
    // The keys-only listing pages the same way and names the same keys.
    let names = store.list_keys("/vrouter/big/").await.expect("list keys");
    assert_eq!(names, keys);
}

#[tokio::test]
async fn read_takes_keys_and_small_prefixes_in_one_answer_in_request_order() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    let writes: Vec<Write> = [
        "/vrouter/r/a/1",
        "/vrouter/r/a/2",
        "/vrouter/r/b",
        "/vrouter/r/ab",
    ]
    .into_iter()
    .map(|key| Write::Create {
        key: key.to_string(),
        value: key.as_bytes().to_vec(),
    })
    .collect();
    let revision = store.commit(&writes).await.expect("seed");
    let answers = store
        .read(&[
            Read::Key("/vrouter/r/b".into()),
            Read::Prefix("/vrouter/r/a/".into()),
            Read::Key("/vrouter/r/missing".into()),
            Read::Prefix("/vrouter/r/none/".into()),
        ])
        .await
        .expect("read");
    let keys: Vec<Vec<&str>> = answers
        .iter()
        .map(|kvs| kvs.iter().map(|kv| kv.key.as_str()).collect())
        .collect();
    assert_eq!(
        keys,
        [
            vec!["/vrouter/r/b"],
            vec!["/vrouter/r/a/1", "/vrouter/r/a/2"],
            vec![],
            vec![]
        ]
    );
    assert_eq!(answers[0][0].value, b"/vrouter/r/b");
    assert_eq!(answers[1][1].mod_revision, revision);
}

#[tokio::test]
async fn get_many_reads_in_key_order_across_chunks() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    // 250 keys: more than two transactions' worth; every third one is absent.
    let keys: Vec<String> = (0..250).map(|i| format!("/vrouter/many/{i:03}")).collect();
    let writes: Vec<Write> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| !i.is_multiple_of(3))
        .map(|(i, key)| Write::Create {
            key: key.clone(),
            value: format!("v{i}").into_bytes(),
        })
        .collect();
    for chunk in writes.chunks(100) {
        store.commit(chunk).await.expect("seed");
    }
    // Reversed, so the answer order must follow the request, not the key order.
    let wanted: Vec<String> = keys.iter().rev().cloned().collect();
    let found = store.get_many(&wanted).await.expect("get many");
    assert_eq!(found.len(), wanted.len());
    for (key, kv) in wanted.iter().zip(&found) {
        let i: usize = key
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("index");
        if i.is_multiple_of(3) {
            assert_eq!(kv, &None, "{key}");
        } else {
            let kv = kv.as_ref().unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(kv.key, *key);
            assert_eq!(kv.value, format!("v{i}").into_bytes());
        }
    }
    assert!(store.get_many(&[]).await.expect("nothing").is_empty());
}

#[tokio::test]
async fn three_member_cluster_keeps_serving_with_one_member_killed() {
    let mut cluster = EtcdCluster::start(3).expect("cluster");
    let store = connect(cluster.endpoints()).await;
    let rev = store
        .create("/vrouter/c/a", b"1".to_vec())
        .await
        .expect("create");
    cluster.kill_member(0);
    for i in 0..20 {
        let key = format!("/vrouter/c/n{i}");
        store
            .create(&key, b"x".to_vec())
            .await
            .expect("create with a member down");
        assert!(store.get(&key).await.expect("get").is_some());
    }
    store
        .update("/vrouter/c/a", b"2".to_vec(), rev)
        .await
        .expect("update");
    assert_eq!(store.list("/vrouter/c/").await.expect("list").kvs.len(), 21);
}

#[tokio::test]
async fn unreachable_etcd_is_one_clear_error_within_seconds() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = Store::connect(&EtcdConfig::new([endpoint.clone()]))
        .await
        .expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(matches!(err, DatastoreError::Unavailable { .. }), "{text}");
    assert!(text.contains(&endpoint), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    // Connected lazily, the first request gives the same error.
    let lazy = Store::connect_lazy(&EtcdConfig::new([endpoint.clone()]))
        .await
        .expect("no request yet");
    let err = lazy.get("/vrouter/x").await.expect_err("nothing listens");
    let text = err.to_string();
    assert!(matches!(err, DatastoreError::Unavailable { .. }), "{text}");
    assert!(text.contains(&endpoint), "{text}");
}

#[tokio::test]
async fn leases_expire_keys() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(vec![etcd.endpoint()]).await;
    let lease = store
        .grant_lease(Duration::from_secs(2))
        .await
        .expect("lease");
    store
        .put_with_lease("/vrouter/status/n1", b"up".to_vec(), lease)
        .await
        .expect("put");
    assert!(store.keep_alive(lease).await.expect("keepalive") > 0);
    assert!(
        store
            .get("/vrouter/status/n1")
            .await
            .expect("get")
            .is_some()
    );
    test_support_wait(Duration::from_secs(10), || async {
        store
            .get("/vrouter/status/n1")
            .await
            .expect("get")
            .is_none()
    })
    .await;
}

async fn test_support_wait<F, Fut>(timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within {timeout:?}");
}
