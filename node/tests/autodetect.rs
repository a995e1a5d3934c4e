//! Address autodetection against a real namespace with several interfaces, read through
//! rtnetlink like vrouterd does at start:
//!
//! ```text
//!   lo 127.0.0.1 | docker0 172.17.0.1/16 | eth0 192.0.2.10/24 (down)
//!   eth1 10.97.1.5/24 | eth2 10.97.2.5/24, route 10.200.0.0/16 dev eth2
//! ```
//!
//! first-found → eth1 (lo, docker0 on the skip list; eth0 down); interface=eth2 → eth2;
//! skip-interface=eth1 → eth2; can-reach=10.200.0.1 → eth2 (the kernel's source address);
//! cidr=10.97.2.0/24 → eth2; IPv6 first-found → eth1's global address, never its link-local one.
#![allow(clippy::unwrap_used)]

mod support;

use node::autodetect::{choose, interfaces, kernel_source_for};
use node::config::Method;
use test_support::Netns;

/// An interface `name` (a veth whose peer `veth-<name>` is up, so the link has carrier).
fn dummy(ns: &Netns, name: &str, addrs: &[&str], up: bool) {
    let peer = format!("veth-{name}");
    ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
        .unwrap();
    ns.set_up(&peer).unwrap();
    for addr in addrs {
        ns.add_addr(name, addr).unwrap();
    }
    if up {
        ns.set_up(name).unwrap();
    }
}

#[test]
fn methods_choose_the_expected_interface_in_a_multi_nic_namespace() {
    test_support::trace_init();
    let ns = Netns::new("autodet").unwrap();
    dummy(&ns, "docker0", &["172.17.0.1/16"], true);
    dummy(&ns, "eth0", &["192.0.2.10/24"], false);
    dummy(&ns, "eth1", &["10.97.1.5/24", "fd00:97:1::5/64"], true);
    dummy(&ns, "eth2", &["10.97.2.5/24"], true);
    ns.ip(&["route", "add", "10.200.0.0/16", "dev", "eth2"])
        .unwrap();

    let (list, reach, reach_v6_err) = ns
        .run(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let list = runtime.block_on(interfaces()).unwrap();
            let reach = kernel_source_for("10.200.0.1", true).unwrap();
            let unreachable = kernel_source_for("fd99::1", false).is_err();
            (list, reach, unreachable)
        })
        .unwrap();
    // The veth peers are on the default skip list; leave them out of the picture.
    let list: Vec<_> = list
        .into_iter()
        .filter(|i| !i.name.starts_with("veth-"))
        .collect();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["lo", "docker0", "eth0", "eth1", "eth2"]);
    assert!(!list[2].up, "eth0 is down");
    assert_eq!(reach.to_string(), "10.97.2.5");
    assert!(reach_v6_err, "no IPv6 route to fd99::1");

    let pick = |method: &str, v4: bool| {
        let method = Method::parse(method).unwrap().unwrap();
        choose(&method, v4, &list, Some(reach)).unwrap()
    };
    let first = pick("first-found", true);
    assert_eq!(
        (first.interface.as_str(), first.address.to_string()),
        ("eth1", "10.97.1.5/24".to_string())
    );
    let skipped: Vec<String> = first
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.interface, s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            "lo: on the default skip list (^lo$)",
            "docker0: on the default skip list (^docker.*)",
            "eth0: interface is down",
        ]
    );
    assert_eq!(
        pick("interface=eth2", true).address.to_string(),
        "10.97.2.5/24"
    );
    assert_eq!(pick("skip-interface=eth1", true).interface, "eth2");
    let reach_pick = pick("can-reach=10.200.0.1", true);
    assert_eq!(reach_pick.address.to_string(), "10.97.2.5/24");
    assert!(reach_pick.rule.contains("can-reach"), "{}", reach_pick.rule);
    assert_eq!(pick("cidr=10.97.2.0/24", true).interface, "eth2");
    let v6 = pick("first-found", false);
    assert_eq!(v6.address.to_string(), "fd00:97:1::5/64");
    // eth1 also holds a link-local address (the kernel adds it when the link comes up).
    assert!(
        list[3]
            .addresses
            .iter()
            .any(|a| a.to_string().starts_with("fe80:")),
        "{:?}",
        list[3]
    );
}
