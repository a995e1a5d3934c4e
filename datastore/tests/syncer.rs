//! The syncer against a real etcd: start of day, live changes, compaction while disconnected,
//! an etcd kill + restart, and undecodable values — with no lost and no phantom updates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datastore::etcd::{EtcdConfig, Store};
use datastore::syncer::{SyncEvent, SyncStatus, Syncer, Update};
use test_support::etcd::Etcd;
use test_support::proxy::TcpProxy;

const PREFIX: &str = "/vrouter/resources/ippools/";
const STEP: Duration = Duration::from_secs(20);

async fn connect(endpoint: String) -> Store {
    Store::connect(&EtcdConfig::new([endpoint]))
        .await
        .expect("connect")
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

async fn next(syncer: &mut Syncer<Vec<u8>>) -> SyncEvent<Vec<u8>> {
    tokio::time::timeout(STEP, syncer.next())
        .await
        .expect("syncer event in time")
        .expect("syncer running")
}

/// Collects updates until `status` arrives; panics on any other status in between.
async fn updates_until(
    syncer: &mut Syncer<Vec<u8>>,
    status: SyncStatus,
) -> BTreeMap<String, Option<String>> {
    let mut updates = BTreeMap::new();
    loop {
        match next(syncer).await {
            SyncEvent::Status(s) if s == status => return updates,
            SyncEvent::Status(_) => {}
            SyncEvent::Update(Update { key, value, .. }) => {
                let value = value.map(|v| String::from_utf8(v).expect("utf8"));
                assert!(
                    updates.insert(key.clone(), value).is_none(),
                    "{key} reported twice in one round"
                );
            }
            SyncEvent::Invalid { key, .. } => panic!("unexpected invalid value at {key}"),
        }
    }
}

async fn wait_status(syncer: &mut Syncer<Vec<u8>>, status: SyncStatus) {
    loop {
        match next(syncer).await {
            SyncEvent::Status(s) if s == status => return,
            SyncEvent::Update(Update { key, value, .. }) => {
                panic!("unexpected update of {key} ({value:?}) while waiting for {status:?}")
            }
            _ => {}
        }
    }
}

async fn live_update(syncer: &mut Syncer<Vec<u8>>) -> (String, Option<String>) {
    loop {
        if let SyncEvent::Update(Update { key, value, .. }) = next(syncer).await {
            return (key, value.map(|v| String::from_utf8(v).expect("utf8")));
        }
    }
}

#[tokio::test]
async fn start_of_day_then_live_changes() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(etcd.endpoint()).await;
    store.create(&key("a"), b"1".to_vec()).await.expect("a");
    store.create(&key("b"), b"2".to_vec()).await.expect("b");
    store
        .create("/vrouter/resources/nodes/n1", b"other prefix".to_vec())
        .await
        .expect("n1");

    let mut syncer = Syncer::spawn_raw(store.clone(), PREFIX);
    assert_eq!(
        next(&mut syncer).await,
        SyncEvent::Status(SyncStatus::WaitForDatastore)
    );
    assert_eq!(
        next(&mut syncer).await,
        SyncEvent::Status(SyncStatus::ResyncInProgress)
    );
    let initial = updates_until(&mut syncer, SyncStatus::InSync).await;
    assert_eq!(
        initial,
        BTreeMap::from([
            (key("a"), Some("1".to_string())),
            (key("b"), Some("2".to_string()))
        ])
    );

    let rev = store.create(&key("c"), b"3".to_vec()).await.expect("c");
    assert_eq!(live_update(&mut syncer).await, (key("c"), Some("3".into())));
    store
        .update(&key("c"), b"33".to_vec(), rev)
        .await
        .expect("c2");
    assert_eq!(
        live_update(&mut syncer).await,
        (key("c"), Some("33".into()))
    );
    let a = store.get(&key("a")).await.expect("get").expect("a");
    store
        .delete(&key("a"), a.mod_revision)
        .await
        .expect("del a");
    assert_eq!(live_update(&mut syncer).await, (key("a"), None));
}

#[tokio::test]
async fn compaction_while_disconnected_resyncs_without_phantoms() {
    let etcd = Etcd::start().expect("etcd");
    let proxy = TcpProxy::start(&etcd.endpoint()).expect("proxy");
    let direct = connect(etcd.endpoint()).await;
    for name in ["keep", "change", "remove"] {
        direct
            .create(&key(name), b"v1".to_vec())
            .await
            .expect("seed");
    }
    let via_proxy = connect(proxy.url()).await;
    let mut syncer = Syncer::spawn_raw(via_proxy, PREFIX);
    let initial = updates_until(&mut syncer, SyncStatus::InSync).await;
    assert_eq!(initial.len(), 3);

    // Partition the syncer from etcd, change things behind its back, and compact history
    // past every revision it has seen.
    proxy.cut();
    wait_status(&mut syncer, SyncStatus::WaitForDatastore).await;
    let change = direct
        .get(&key("change"))
        .await
        .expect("get")
        .expect("present");
    direct
        .update(&key("change"), b"v2".to_vec(), change.mod_revision)
        .await
        .expect("change");
    let remove = direct
        .get(&key("remove"))
        .await
        .expect("get")
        .expect("present");
    direct
        .delete(&key("remove"), remove.mod_revision)
        .await
        .expect("remove");
    direct
        .create(&key("new"), b"v1".to_vec())
        .await
        .expect("new");
    // Churn that nets out to nothing must not surface either.
    let tmp = direct
        .create(&key("tmp"), b"x".to_vec())
        .await
        .expect("tmp");
    direct.delete(&key("tmp"), tmp).await.expect("tmp gone");
    let now = direct.current_revision().await.expect("revision");
    etcd.etcdctl(&["compact", &now.to_string()])
        .expect("etcdctl compact");

    proxy.restore();
    let resynced = updates_until(&mut syncer, SyncStatus::InSync).await;
    assert_eq!(
        resynced,
        BTreeMap::from([
            (key("change"), Some("v2".to_string())),
            (key("new"), Some("v1".to_string())),
            (key("remove"), None),
        ]),
        "exactly the missed changes: nothing lost, no phantom for `keep` or `tmp`"
    );

    // And it keeps watching after the resync.
    direct
        .create(&key("after"), b"v1".to_vec())
        .await
        .expect("after");
    assert_eq!(
        live_update(&mut syncer).await,
        (key("after"), Some("v1".into()))
    );
}

#[tokio::test]
async fn etcd_restart_brings_no_spurious_deletes() {
    let mut etcd = Etcd::start().expect("etcd");
    let store = connect(etcd.endpoint()).await;
    for name in ["a", "b"] {
        store.create(&key(name), b"1".to_vec()).await.expect("seed");
    }
    let mut syncer = Syncer::spawn_raw(store.clone(), PREFIX);
    assert_eq!(
        updates_until(&mut syncer, SyncStatus::InSync).await.len(),
        2
    );

    etcd.kill();
    wait_status(&mut syncer, SyncStatus::WaitForDatastore).await;
    // Down for a while: the syncer keeps retrying and reports nothing.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), syncer.next())
            .await
            .is_err(),
        "no event while etcd is down"
    );
    etcd.restart().expect("restart");
    wait_status(&mut syncer, SyncStatus::InSync).await;

    store
        .create(&key("c"), b"1".to_vec())
        .await
        .expect("c after restart");
    assert_eq!(live_update(&mut syncer).await, (key("c"), Some("1".into())));
}

#[tokio::test]
async fn undecodable_values_are_reported_and_absent() {
    let etcd = Etcd::start().expect("etcd");
    let store = connect(etcd.endpoint()).await;
    store
        .create(&key("good"), b"7".to_vec())
        .await
        .expect("good");
    store
        .create(&key("bad"), b"seven".to_vec())
        .await
        .expect("bad");
    let decode = Arc::new(|_key: &str, value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| format!("{:?} is not a number", String::from_utf8_lossy(value)))
    });
    let mut syncer = Syncer::spawn(store.clone(), PREFIX, decode);
    let mut values = BTreeMap::new();
    let mut invalid = Vec::new();
    loop {
        let event = tokio::time::timeout(STEP, syncer.next())
            .await
            .expect("in time")
            .expect("running");
        match event {
            SyncEvent::Status(SyncStatus::InSync) => break,
            SyncEvent::Status(_) => {}
            SyncEvent::Update(u) => {
                values.insert(u.key, u.value);
            }
            SyncEvent::Invalid { key, error, .. } => invalid.push((key, error)),
        }
    }
    assert_eq!(
        values,
        BTreeMap::from([(key("good"), Some(7)), (key("bad"), None)])
    );
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].0, key("bad"));
    assert!(invalid[0].1.contains("seven"), "{}", invalid[0].1);

    // A fix to the bad value comes through as a normal update.
    let bad = store.get(&key("bad")).await.expect("get").expect("present");
    store
        .update(&key("bad"), b"8".to_vec(), bad.mod_revision)
        .await
        .expect("fix");
    loop {
        let event = tokio::time::timeout(STEP, syncer.next())
            .await
            .expect("in time")
            .expect("running");
        if let SyncEvent::Update(u) = event {
            assert_eq!((u.key, u.value), (key("bad"), Some(8)));
            break;
        }
    }
}
