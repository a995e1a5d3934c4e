//! The liveness record against a real etcd: written under a lease, renewed, written again
//! under a new lease when the old one is lost (revoked behind our back, as after an etcd
//! outage longer than the TTL), updated in place, and deleted by `stop(revoke = true)`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use datastore::etcd::{EtcdConfig, Store};
use datastore::keys::status_key;
use node::registration::{Liveness, LivenessRecord};
use test_support::etcd::Etcd;
use test_support::eventually_ok;

const WAIT: Duration = Duration::from_secs(20);

fn lease_of(etcd: &Etcd, key: &str) -> Result<String, String> {
    let json = etcd
        .etcdctl(&["get", key, "-w", "json"])
        .map_err(|e| e.to_string())?;
    let lease = json
        .split("\"lease\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .map(|l| l.trim().to_string())
        .ok_or_else(|| format!("no key or no lease: {json}"))?;
    if lease == "0" {
        return Err(format!("not under a lease: {json}"));
    }
    Ok(lease)
}

#[test]
fn liveness_survives_a_lost_lease_and_revokes_on_request() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
        .unwrap();
    let key = status_key("node-l");
    let record = LivenessRecord {
        version: "test".into(),
        started: "2026-11-23T00:00:00Z".into(),
        pid: 1,
        ipv4: Some("10.0.0.1/24".into()),
        ipv6: None,
    };
    let liveness = {
        let _guard = rt.enter();
        Liveness::spawn(store, "node-l", record.clone(), Duration::from_secs(3))
    };
    let first = eventually_ok(WAIT, || lease_of(&etcd, &key)).unwrap();

    // The lease (hex in etcdctl's revoke, decimal in its JSON) is lost behind our back.
    let id: i64 = first.parse().unwrap();
    etcd.etcdctl(&["lease", "revoke", &format!("{id:x}")])
        .unwrap();
    let second = eventually_ok(WAIT, || {
        let lease = lease_of(&etcd, &key)?;
        if lease == first {
            Err("still the old lease".to_string())
        } else {
            Ok(lease)
        }
    })
    .unwrap();
    assert_ne!(second, first);

    // An updated record is written at once.
    liveness.update(LivenessRecord {
        ipv4: Some("10.0.0.9/24".into()),
        ..record
    });
    eventually_ok(WAIT, || {
        let value = etcd
            .etcdctl(&["get", &key, "--print-value-only"])
            .map_err(|e| e.to_string())?;
        if value.contains("10.0.0.9/24") {
            Ok(())
        } else {
            Err(value)
        }
    })
    .unwrap();

    rt.block_on(liveness.stop(true));
    let after = etcd.etcdctl(&["get", &key, "--print-value-only"]).unwrap();
    assert_eq!(after.trim(), "", "revoked: the record is gone");
}
