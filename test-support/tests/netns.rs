//! Real-kernel tests of the namespace harness: veth and bridge connectivity, cleanup on drop
//! and on panic, unique names under parallel creation, and the stale-namespace sweep.
//! Needs root. Traffic goes only to addresses inside namespaces these tests create.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::netns::{cleanup_stale, list_namespaces, owner_pid};
use test_support::{Bridge, Lab, Netns, trace_init, veth_pair};

fn exists(name: &str) -> bool {
    list_namespaces()
        .expect("ip netns list")
        .iter()
        .any(|n| n == name)
}

#[test]
fn veth_pair_carries_ping_both_ways() {
    trace_init();
    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    veth_pair(&a, "eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.250.0.1/30").unwrap();
    b.add_addr("eth0", "10.250.0.2/30").unwrap();
    a.add_addr("eth0", "fd00:250::1/64").unwrap();
    b.add_addr("eth0", "fd00:250::2/64").unwrap();
    a.ping("10.250.0.2".parse().unwrap()).unwrap();
    b.ping("10.250.0.1".parse().unwrap()).unwrap();
    a.ping("fd00:250::2".parse().unwrap()).unwrap();
    // A routed prefix behind b, reached through the veth.
    b.add_addr("lo", "10.251.0.1/32").unwrap();
    assert!(a.ping("10.251.0.1".parse().unwrap()).is_err());
    a.add_route("10.251.0.0/24", "10.250.0.2").unwrap();
    a.ping("10.251.0.1".parse().unwrap()).unwrap();
    assert!(
        a.routes()
            .unwrap()
            .contains("10.251.0.0/24 via 10.250.0.2 dev eth0")
    );
}

#[test]
fn namespace_is_deleted_on_drop_and_clones_share_it() {
    let ns = Netns::new("drop").unwrap();
    let name = ns.name().to_string();
    assert!(exists(&name));
    assert_eq!(owner_pid(&name), Some(std::process::id()));
    let clone = ns.clone();
    drop(ns);
    assert!(exists(&name), "a clone still holds the namespace");
    clone.exec_ok(&["true"]).unwrap();
    drop(clone);
    assert!(!exists(&name));
}

#[test]
fn namespace_and_processes_are_cleaned_up_after_a_panic() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let ns = Netns::new("panic").unwrap();
        let guard = ns.spawn(&["sleep", "600"]).unwrap();
        // A leaked process (guard forgotten) must not survive either: the namespace kills it.
        let leaked = ns.spawn(&["sleep", "601"]).unwrap().into_child().unwrap();
        tx.send((ns.name().to_string(), guard.id().unwrap(), leaked))
            .unwrap();
        panic!("test body failed");
    });
    assert!(result.is_err());
    let (name, pid, mut leaked) = rx.recv().unwrap();
    assert!(!exists(&name), "{name} survived the panic");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // The leaked child was SIGKILLed when its namespace went away; reap it.
    let status = test_support::eventually_ok(Duration::from_secs(5), || match leaked.try_wait() {
        Ok(Some(status)) => Ok(status),
        other => Err(format!("{other:?}")),
    })
    .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status}");
}

#[test]
fn parallel_creation_gives_distinct_names() {
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| Netns::new("par").unwrap()))
        .collect();
    let namespaces: Vec<Netns> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let names: HashSet<&str> = namespaces.iter().map(Netns::name).collect();
    assert_eq!(names.len(), 8);
    for name in &names {
        assert!(exists(name));
        assert!(name.starts_with("vt-par-"));
    }
}

#[test]
fn long_or_odd_prefixes_are_trimmed() {
    let ns = Netns::new("a very/long:prefix!").unwrap();
    assert!(ns.name().starts_with("vt-averylon-"), "{}", ns.name());
    assert!(veth_pair(&ns, "this-name-is-too-long", &ns, "x").is_err());
}

#[test]
fn sysctl_is_per_namespace() {
    let ns = Netns::new("sysctl").unwrap();
    assert_eq!(ns.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");
    ns.enable_forwarding().unwrap();
    assert_eq!(ns.sysctl_get("net.ipv4.ip_forward").unwrap(), "1");
    let fresh = Netns::new("sysctl").unwrap();
    assert_eq!(fresh.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");
}

#[test]
fn spawned_process_runs_inside_and_stops_on_drop() {
    let ns = Netns::new("spawn").unwrap();
    ns.add_addr("lo", "10.252.0.1/32").unwrap();
    let mut server = ns
        .spawn(&["python3", "-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1', 4555))\ns.listen()\nprint('listening', flush=True)\ntime.sleep(600)"])
        .unwrap();
    ns.wait_for_listen(4555, Duration::from_secs(10)).unwrap();
    assert!(server.is_running());
    let pid = server.id().unwrap();
    assert!(ns.pids().contains(&pid), "pid {pid} not in {:?}", ns.pids());
    let log = server.log_path().unwrap().to_path_buf();
    server
        .wait_until("the listening line", Duration::from_secs(10), || {
            let tail = test_support::process::file_tail(&log, 5);
            if tail.contains("listening") {
                Ok(())
            } else {
                Err(tail)
            }
        })
        .unwrap();
    drop(server);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!ns.is_listening(4555).unwrap());
    assert!(ns.pids().is_empty());
}

#[test]
fn exec_reports_failures_with_stderr() {
    let ns = Netns::new("exec").unwrap();
    let out = ns.exec(&["sh", "-c", "exit 4"]).unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = ns
        .exec_ok(&["ip", "link", "show", "nosuchdev"])
        .unwrap_err();
    assert!(err.to_string().contains("nosuchdev"), "{err}");
    assert!(ns.exec(&[]).is_err());
    assert!(ns.exec_ok(&["ip", "-br", "link"]).unwrap().contains("lo"));
}

#[test]
fn bridge_connects_several_namespaces() {
    let sw = Netns::new("sw").unwrap();
    let br = Bridge::new(&sw, "br0").unwrap();
    let nodes: Vec<Netns> = (0..3).map(|_| Netns::new("brn").unwrap()).collect();
    for (i, node) in nodes.iter().enumerate() {
        let port = br.attach(node, "eth0").unwrap();
        assert_eq!(port, format!("br0-{i}"));
        node.add_addr("eth0", &format!("10.253.0.{}/24", i + 1))
            .unwrap();
    }
    let mut ports = br.ports().unwrap();
    ports.sort();
    assert_eq!(ports, vec!["br0-0", "br0-1", "br0-2"]);
    nodes[0].ping("10.253.0.3".parse().unwrap()).unwrap();
    nodes[2].ping("10.253.0.2".parse().unwrap()).unwrap();
    assert!(
        Bridge::new(&sw, "bridgename").is_err(),
        "names over 9 bytes are refused"
    );
}

#[test]
fn lab_star_nodes_reach_each_other_on_unique_subnets() {
    let lab = Lab::star(3).unwrap();
    let other = Lab::star(1).unwrap();
    assert_ne!(lab.subnet(), other.subnet());
    assert_ne!(lab.subnet6(), other.subnet6());
    assert_eq!(lab.nodes().len(), 3);
    for node in lab.nodes() {
        for peer in lab.nodes() {
            if node.index() != peer.index() {
                node.ping(IpAddr::V4(peer.ip())).unwrap();
            }
        }
    }
    lab.node(0).ping(IpAddr::V6(lab.node(2).ip6())).unwrap();
    // Separate labs are separate L2 domains.
    assert!(other.node(0).ping(IpAddr::V4(lab.node(1).ip())).is_err());
    let names: Vec<String> = lab.nodes().iter().map(|n| n.name().to_string()).collect();
    let switch = lab.switch().name().to_string();
    drop(lab);
    for name in names.iter().chain([&switch]) {
        assert!(!exists(name), "{name} left behind");
    }
}

#[test]
fn lab_grows_with_add_node() {
    let mut lab = Lab::star(1).unwrap();
    let ip = lab.add_node().unwrap().ip();
    assert_eq!(ip.octets()[3], 2);
    lab.node(0).ping(IpAddr::V4(ip)).unwrap();
}

#[test]
fn stale_sweep_removes_only_dead_owners() {
    // Creating a namespace first finishes this process's one-time automatic sweep, which
    // would otherwise race with this test for the stale namespace below.
    let live = Netns::new("live").unwrap();
    // A PID that certainly belonged to a process that has exited and been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let stale = format!("vt-stale-{dead_pid}-0");
    let foreign = format!("stale-{dead_pid}-0");
    for name in [&stale, &foreign] {
        test_support::run_ok(Command::new("ip").args(["netns", "add", name])).unwrap();
    }
    let removed = cleanup_stale().unwrap();
    let still_there = exists(&foreign);
    // Remove the foreign one ourselves before asserting, so a failure leaves nothing behind.
    test_support::run_ok(Command::new("ip").args(["netns", "del", &foreign])).unwrap();
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!exists(&stale));
    assert!(still_there, "a namespace without our marker was deleted");
    assert!(
        exists(live.name()),
        "a live process's namespace was deleted"
    );
}
