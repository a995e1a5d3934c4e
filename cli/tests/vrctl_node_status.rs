//! `vrctl node status` against a 3-node mesh configured from a real etcd: each node runs a
//! ClusterAgent (speaker in its namespace) and a control socket in a temp dir; node0's
//! status shows its two peers Established as `node-to-node mesh` in calicoctl's table, and
//! a socket nobody serves prints `vrouterd is not running.` with exit 1.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bgp::ctl::{CtlOptions, CtlServer, SpeakerBackend};
use bgp::speaker::cluster::{ClusterAgent, ClusterOptions, Launch};
use bgp::speaker::netns::FibChoice;
use bgp::speaker::{Shutdown, SpeakerConfig};
use datastore::etcd::{EtcdConfig, Store};
use datastore::resource::document::parse_documents;
use datastore::resource_store::{ResourceStore, Verb};
use test_support::etcd::Etcd;
use test_support::{Lab, assert_eventually};

fn vrctl_status(socket: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .args(["node", "status", "--socket"])
        .arg(socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Probe: the status output lists both peers Established.
fn both_established(socket: &Path, peers: &[String]) -> Result<String, String> {
    let (code, out) = vrctl_status(socket);
    if code != 0 {
        return Err(format!("exit {code}: {out}"));
    }
    for ip in peers {
        let established = out.lines().any(|l| {
            l.starts_with(&format!("| {ip} "))
                && l.contains("| node-to-node mesh | up    |")
                && l.trim_end().ends_with("| Established |")
        });
        if !established {
            return Err(format!("{ip} not Established:\n{out}"));
        }
    }
    Ok(out)
}

#[test]
fn node_status_shows_the_mesh_established() {
    test_support::trace_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let etcd = Etcd::start().unwrap();
    let store = runtime
        .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
        .unwrap();
    let lab = Lab::star(3).unwrap();
    let mut yaml = String::new();
    for (i, node) in lab.nodes().iter().enumerate() {
        yaml.push_str(&format!(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: node{i}}}\n\
             spec: {{bgp: {{ipv4Address: {}/24}}}}\n---\n",
            node.ip()
        ));
    }
    let resources = parse_documents(&yaml).unwrap();
    runtime
        .block_on(ResourceStore::new(store.clone()).write(Verb::Apply, &resources))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut agents: Vec<ClusterAgent> = Vec::new();
    let mut servers: Vec<CtlServer> = Vec::new();
    let mut sockets: Vec<PathBuf> = Vec::new();
    for (i, node) in lab.nodes().iter().enumerate() {
        let _guard = runtime.enter();
        let mut base = SpeakerConfig::new(node.ip(), 64512);
        base.hold_time = 30;
        base.connect_retry = Duration::from_secs(1);
        base.idle_hold = Duration::from_secs(1);
        let agent = ClusterAgent::spawn(
            store.clone(),
            ClusterOptions {
                node_name: format!("node{i}"),
                base,
                launch: Launch::Netns(
                    PathBuf::from(format!("/var/run/netns/{}", node.name())),
                    FibChoice::Memory(bgp::speaker::MemoryFib::new()),
                ),
                secrets: None,
            },
        );
        let backend = Arc::new(SpeakerBackend::new("vrouterd", "0.1.0", agent.handles()));
        backend.set_router_id(node.ip());
        let socket = dir.path().join(format!("node{i}/vrouter.ctl"));
        let options = CtlOptions {
            layout: if i == 1 {
                bgp::ctl::Layout::Bird16
            } else {
                bgp::ctl::Layout::Bird2
            },
            ..CtlOptions::default()
        };
        servers.push(
            runtime
                .block_on(bgp::ctl::serve(&socket, options, backend))
                .unwrap(),
        );
        sockets.push(socket);
        agents.push(agent);
    }

    let ips: Vec<String> = lab.nodes().iter().map(|n| n.ip().to_string()).collect();
    let out = assert_eventually!(
        timeout = Duration::from_secs(60),
        both_established(&sockets[0], &ips[1..])
    );
    assert!(
        out.starts_with("vrouterd is running.\n\nIPv4 BGP status\n+-"),
        "{out}"
    );
    // Column widths follow the content; these do not depend on the lab's addresses.
    assert!(
        out.contains(" PEER ADDRESS |     PEER TYPE     | STATE |    SINCE     |    INFO     |\n"),
        "{out}"
    );
    assert!(
        out.ends_with("IPv6 BGP status\nNo IPv6 peers found.\n\n"),
        "{out}"
    );
    // node1 serves the BIRD 1.6 layout, which is what calicoctl parses: same result.
    let peers_of_1 = vec![ips[0].clone(), ips[2].clone()];
    assert_eventually!(both_established(&sockets[1], &peers_of_1));

    // Nothing listening: a clear line and exit 1.
    let (code, out) = vrctl_status(&dir.path().join("absent.ctl"));
    assert_eq!((code, out.as_str()), (1, "vrouterd is not running.\n"));

    for server in servers {
        runtime.block_on(server.shutdown());
    }
    let (code, _) = vrctl_status(&sockets[0]);
    assert_eq!(code, 1, "socket removed with the server");
    for agent in agents {
        runtime.block_on(agent.stop(Shutdown::Stop));
    }
}
