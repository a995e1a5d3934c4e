//! The etcd launchers start real servers, survive a kill + restart, and clean up on drop.

use test_support::etcd::{Etcd, EtcdCluster};

fn etcd_pids_with(marker: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn single_member_serves_restarts_and_is_removed_on_drop() {
    let mut etcd = Etcd::start().expect("start etcd");
    let endpoint = etcd.endpoint();
    etcd.etcdctl(&["put", "/t/a", "1"]).expect("put");
    etcd.kill();
    assert!(
        etcd.etcdctl(&["get", "/t/a"]).is_err(),
        "killed etcd still answers"
    );
    etcd.restart().expect("restart");
    let got = etcd
        .etcdctl(&["get", "/t/a", "--print-value-only"])
        .expect("get");
    assert_eq!(got.trim(), "1", "data survives a restart");
    drop(etcd);
    let port = endpoint.rsplit(':').next().expect("port");
    assert_eq!(
        etcd_pids_with(&format!("127.0.0.1:{port}")),
        0,
        "etcd left running"
    );
}

#[test]
fn cluster_keeps_serving_with_one_member_killed() {
    let mut cluster = EtcdCluster::start(3).expect("start cluster");
    assert_eq!(cluster.endpoints().len(), 3);
    cluster.etcdctl(&["put", "/t/b", "2"]).expect("put");
    cluster.kill_member(0);
    // A write that raced the leader's death may time out; after the election the cluster
    // serves again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match cluster.etcdctl(&["put", "/t/b", "3"]) {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("put with one member down: {e}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
    let got = cluster
        .etcdctl(&["get", "/t/b", "--print-value-only"])
        .expect("get");
    assert_eq!(got.trim(), "3");
}
