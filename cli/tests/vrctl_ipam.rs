//! `vrctl ipam show|release|check` through the real binary against a real etcd holding
//! allocations made with `datastore::ipam`: an address whose WorkloadEndpoint never existed
//! and a block affine to a node that does not exist are reported by `check` (exit 3), shown
//! by `show --show-blocks`, and `release --ip` clears them.

use std::collections::BTreeMap;
use std::process::Command;

use datastore::etcd::{EtcdConfig, Store};
use datastore::ipam::{ATTR_ENDPOINT, ATTR_NAMESPACE, AssignArgs, Ipam};
use datastore::keys::resource_key;
use datastore::resource::{IpPool, Kind, Resource};
use test_support::etcd::Etcd;

struct Run {
    code: i32,
    stdout: String,
}

fn vrctl(etcd: &Etcd, config: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .env_remove("VROUTER_ETCD_ENDPOINTS")
        .arg("--etcd-endpoints")
        .arg(etcd.endpoint())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run vrctl");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[tokio::test]
async fn show_check_and_release() {
    let etcd = Etcd::start().expect("etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vrctl.yaml");
    std::fs::write(&config, "").expect("config");
    let store = Store::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .expect("connect");
    store
        .create(
            &resource_key(Kind::IpPool.plural(), None, "pool"),
            Resource::IpPool(IpPool::new("pool", "10.90.0.0/24"))
                .to_json()
                .into_bytes(),
        )
        .await
        .expect("pool");
    let ipam = Ipam::new(store);
    let assigned = ipam
        .auto_assign(&AssignArgs {
            node: "vanished-node".into(),
            handle: "k8s-pod-network.c1".into(),
            attrs: BTreeMap::from([
                (ATTR_NAMESPACE.to_string(), "default".to_string()),
                (ATTR_ENDPOINT.to_string(), "gone-k8s-web-eth0".to_string()),
            ]),
            num_v4: 3,
            ..AssignArgs::default()
        })
        .await
        .expect("assign");
    let ips: Vec<String> = assigned.ips().iter().map(ToString::to_string).collect();

    let show = vrctl(&etcd, &config, &["ipam", "show", "--show-blocks"]);
    assert_eq!(show.code, 0, "{}", show.stdout);
    let pool_row = show
        .stdout
        .lines()
        .find(|l| l.starts_with("IP Pool"))
        .expect("pool row");
    let cells: Vec<&str> = pool_row.split_whitespace().collect();
    assert_eq!(
        cells[2..6],
        ["10.90.0.0/24", "256", "3", "253"],
        "{pool_row}"
    );
    let block_row = show
        .stdout
        .lines()
        .find(|l| l.starts_with("Block"))
        .expect("block row");
    assert!(block_row.contains("10.90.0."), "{block_row}");
    assert!(block_row.ends_with("vanished-node"), "{block_row}");

    let check = vrctl(&etcd, &config, &["ipam", "check"]);
    assert_eq!(check.code, 3, "{}", check.stdout);
    assert!(
        check.stdout.contains("which does not exist"),
        "{}",
        check.stdout
    );
    for ip in &ips {
        assert!(
            check
                .stdout
                .contains(&format!("{ip} (handle k8s-pod-network.c1)")),
            "{}",
            check.stdout
        );
    }
    assert!(
        check.stdout.contains("node vanished-node"),
        "{}",
        check.stdout
    );

    let mut args = vec!["ipam", "release"];
    for ip in &ips {
        args.extend(["--ip", ip.as_str()]);
    }
    let release = vrctl(&etcd, &config, &args);
    assert_eq!(release.code, 0, "{}", release.stdout);
    assert_eq!(release.stdout.lines().count(), 3);
    let again = vrctl(&etcd, &config, &["ipam", "release", "--ip", &ips[0]]);
    assert_eq!(again.code, 1);
    assert!(
        again.stdout.contains("is not allocated"),
        "{}",
        again.stdout
    );

    let clean = vrctl(&etcd, &config, &["ipam", "check"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(
        clean.stdout.contains("no problems found"),
        "{}",
        clean.stdout
    );
}
