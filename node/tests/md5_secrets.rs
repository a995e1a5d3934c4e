//! TCP-MD5 mesh passwords from secret files, between two real vrouterd processes in two
//! namespaces, with the real kernel's TCP_MD5SIG:
//!
//! ```text
//!   ns a: eth0 10.97.0.1/24 ── veth ── ns b: eth0 10.97.0.2/24
//!   BGPConfiguration default: nodeMeshPassword {secretKeyRef: {name: bgp, key: mesh}}
//!   a: <secrets a>/bgp/mesh = "s3cret"      b: <secrets b>/bgp/mesh = (missing → wrong → right)
//! ```
//!
//! 1. b's file is missing: b logs the peer, the secret and the path and does not start the
//!    peer (fail closed); no session.
//! 2. b's file holds a wrong key (SIGHUP re-checks): b runs the peer with it, and the kernel
//!    drops every segment: no session over many connect attempts.
//! 3. b's file holds the right key (SIGHUP): the session establishes on both sides.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use datastore::resource::parse_and_validate_documents;
use datastore::resource_store::{ResourceStore, Verb};
use support::{Vrouterd, WAIT, ctl, etcd_in, etcd_store};
use test_support::etcd::Etcd;
use test_support::{Netns, eventually_ok, veth_pair};

fn write_secret(dir: &Path, key: Option<&str>) {
    let path = dir.join("bgp").join("mesh");
    match key {
        Some(key) => {
            std::fs::create_dir_all(dir.join("bgp")).unwrap();
            std::fs::write(&path, format!("{key}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn established(socket: &Path) -> Result<String, String> {
    let text = ctl(socket, "show protocols")?;
    if text.contains("Established") {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn mesh_md5_keys_from_secret_files_fail_closed_and_establish_with_the_right_key() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let (rt, store) = etcd_store(&etcd);
    let config = parse_and_validate_documents(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
         spec: {nodeMeshPassword: {secretKeyRef: {name: bgp, key: mesh}}}\n",
    )
    .unwrap();
    rt.block_on(ResourceStore::new(store.clone()).write(Verb::Apply, &config))
        .unwrap();

    let a = Netns::new("md5a").unwrap();
    let b = Netns::new("md5b").unwrap();
    veth_pair(&a, "eth0", &b, "eth0").unwrap();
    for (ns, addr) in [(&a, "10.97.0.1/24"), (&b, "10.97.0.2/24")] {
        ns.add_addr("eth0", addr).unwrap();
        ns.set_up("eth0").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let start = |ns: &Netns, name: &str| {
        let proxy = etcd_in(ns, &etcd);
        let secrets = dir.path().join(format!("secrets-{name}"));
        let socket = dir.path().join(format!("{name}.ctl"));
        let args: Vec<String> = [
            "--config",
            "/dev/null",
            "--node-name",
            name,
            "--etcd-endpoints",
            &proxy.url(),
            "--ipv4-autodetect",
            "interface=eth0",
            "--control-socket",
            socket.to_str().unwrap(),
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--metrics-listen",
            "off",
            "--no-policy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = dir.path().join(format!("{name}.log"));
        (Vrouterd::start(ns, &args, &log), proxy, secrets, socket)
    };
    write_secret(&dir.path().join("secrets-node-a"), Some("s3cret"));
    let (mut da, _pa, _secrets_a, socket_a) = start(&a, "node-a");
    let (mut db, _pb, secrets_b, socket_b) = start(&b, "node-b");
    da.wait_log("vrouterd ready", 1);
    db.wait_log("vrouterd ready", 1);

    // 1. Missing on b: named in the log, peer not started.
    db.wait_log("BGP password unavailable", 1);
    let log_b = db.log_text();
    let line = log_b
        .lines()
        .find(|l| l.contains("BGP password unavailable"))
        .unwrap();
    assert!(line.contains("10.97.0.1"), "{line}");
    assert!(line.contains("bgp/mesh"), "{line}");
    assert!(
        line.contains(secrets_b.join("bgp").join("mesh").to_str().unwrap()),
        "{line}"
    );
    assert!(
        !ctl(&socket_b, "show protocols")
            .unwrap()
            .contains("10_97_0_1")
            && !ctl(&socket_b, "show protocols")
                .unwrap()
                .contains("10.97.0.1"),
        "b must not run the peer without its key:\n{}",
        ctl(&socket_b, "show protocols").unwrap()
    );

    // 2. A wrong key on b: the peer runs, nothing establishes.
    write_secret(&secrets_b, Some("wrong"));
    db.signal("HUP");
    db.wait_log("BGP password readable again", 1);
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert!(
            established(&socket_a).is_err(),
            "a established with a wrong key"
        );
        assert!(
            established(&socket_b).is_err(),
            "b established with a wrong key"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // 3. The right key: both sides establish.
    write_secret(&secrets_b, Some("s3cret"));
    db.signal("HUP");
    eventually_ok(WAIT * 2, || established(&socket_a)).unwrap();
    eventually_ok(WAIT, || established(&socket_b)).unwrap();
    assert_eq!(da.terminate().code(), Some(0));
    assert_eq!(db.terminate().code(), Some(0));
}
