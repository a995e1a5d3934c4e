//! End-to-end outbound NAT and pod MTU on the lab (`cli::lab`): real etcd, `vrouterd` in two
//! node namespaces, pods made through `vrouter-cni`.
//!
//! The "outside" is a namespace on the underlay at the nodes' default gateway (`.254`): the
//! nodes reach it, it has no route back to the pod pool.
//!
//! 1. `natOutgoing: true`: a pod's TCP connection to a listener outside arrives from its
//!    node's underlay address; a connection to a pod on the other node keeps the pod source.
//! 2. `natOutgoing: false` (applied live): the outside cannot answer, the connection fails;
//!    pod-to-pod across nodes still keeps the pod source.
//! 3. Pod `eth0` MTU: the underlay's (node `eth0`) for the native pool; 50 less for a pod
//!    created after the pool switched to `vxlanMode: Always`.
//!
//! Needs the binaries: `cargo build --bins` first when running only `-p vrouter-tests`.
#![allow(clippy::unwrap_used)]

mod e2e_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cli::lab::{self, underlay};
use e2e_support::{dump_logs, ip, spec, up};
use test_support::{HarnessError, Netns, SourceRecorder, traffic};

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 8098;

/// A listener on `0.0.0.0:PORT` in namespace `ns` recording the source of every connection.
fn listen(ns: &str) -> SourceRecorder {
    SourceRecorder::start(ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT))).unwrap()
}

fn connect(ns: &str, to: Ipv4Addr) -> Result<(), HarnessError> {
    traffic::tcp_connect(ns, SocketAddr::from((to, PORT)), Duration::from_secs(2))
}

/// Connects from pod `from` to `to` and checks the listener saw exactly `source`.
fn seen_from(
    from: &str,
    to: Ipv4Addr,
    listener: &SourceRecorder,
    source: Ipv4Addr,
) -> Result<(), HarnessError> {
    listener.check_source(from, SocketAddr::from((to, PORT)), source.into())
}

fn pool_yaml(state: &lab::state::State, nat: bool, vxlan: &str) -> String {
    lab::pool_yaml(&state.pool, state.block_size)
        .replace("natOutgoing: false", &format!("natOutgoing: {nat}"))
        .replace("vxlanMode: Never", &format!("vxlanMode: {vxlan}"))
}

fn mtu(ns: &str, dev: &str) -> u32 {
    ip(ns, &["-o", "link", "show", "dev", dev])
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap()
}

#[test]
fn nat_outgoing_and_pod_mtu_on_the_lab() {
    let mut lab = up(&spec("o", 2, 1));
    let state = lab.state().clone();
    let (n0, n1) = (&state.nodes[0], &state.nodes[1]);
    let p0 = state
        .pods
        .iter()
        .find(|p| p.node == n0.name)
        .unwrap()
        .clone();
    let p1 = state
        .pods
        .iter()
        .find(|p| p.node == n1.name)
        .unwrap()
        .clone();

    // The outside: at the nodes' default gateway, no route to the pods.
    let outside = Netns::new("natout").unwrap();
    let ul = underlay::underlay_ns(&state.lab);
    ip(
        &ul,
        &[
            "link",
            "add",
            "natout",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.name(),
        ],
    );
    ip(
        &ul,
        &["link", "set", "natout", "master", underlay::BRIDGE, "up"],
    );
    let [a, b, c] = state.underlay;
    let outside_ip = Ipv4Addr::new(a, b, c, underlay::GATEWAY_HOST);
    outside
        .add_addr("eth0", &format!("{outside_ip}/24"))
        .unwrap();
    outside.set_up("eth0").unwrap();
    let at_outside = listen(outside.name());
    let at_p1 = listen(&p1.name);
    let p1_ip = p1.ip.unwrap();
    let p0_ip = p0.ip.unwrap();

    // natOutgoing: true.
    lab.apply_yaml(&pool_yaml(&state, true, "Never")).unwrap();
    test_support::eventually_ok(WAIT, || seen_from(&p0.name, outside_ip, &at_outside, n0.ip))
        .unwrap_or_else(|e| {
            dump_logs(&lab);
            panic!("{e}\n{}", ip(&n0.name, &["route"]));
        });
    test_support::eventually_ok(WAIT, || seen_from(&p0.name, p1_ip, &at_p1, p0_ip)).unwrap();
    test_support::eventually_ok(WAIT, || seen_from(&p1.name, outside_ip, &at_outside, n1.ip))
        .unwrap();

    // natOutgoing: false — the outside has no way back to a pod address.
    lab.apply_yaml(&pool_yaml(&state, false, "Never")).unwrap();
    test_support::eventually_ok(WAIT, || match connect(&p0.name, outside_ip) {
        Ok(()) => Err("the outside still answers".to_string()),
        Err(_) => Ok(()),
    })
    .unwrap();
    let accepted = at_outside.take();
    assert!(
        accepted
            .iter()
            .all(|p| *p == IpAddr::V4(n0.ip) || *p == IpAddr::V4(n1.ip)),
        "the outside accepted a pod-sourced connection: {accepted:?}"
    );
    seen_from(&p0.name, p1_ip, &at_p1, p0_ip).unwrap();
    seen_from(&p1.name, p0_ip, &listen(&p0.name), p1_ip).unwrap();

    // MTU: the underlay's for the native pool, 50 less for a VXLAN pool's new pod.
    let underlay_mtu = mtu(&n0.name, underlay::NODE_DEV);
    assert_eq!(mtu(&p0.name, lab::pod::POD_DEV), underlay_mtu);
    lab.apply_yaml(&pool_yaml(&state, false, "Always")).unwrap();
    let vxlan_pod = lab.add_pod(0).unwrap();
    assert_eq!(mtu(&vxlan_pod.name, lab::pod::POD_DEV), underlay_mtu - 50);
    drop(at_outside);
    drop(at_p1);
    lab.down().unwrap();
}
