//! Outbound NAT (IPPool `natOutgoing`) with the agent in-process, real etcd and real
//! namespaces on a switched underlay (`test_support::Lab`):
//!
//! ```text
//!   node A (agent)            node B                outside
//!   pod0 10.67.0.1  ┐         listener              listener
//!   pod1 10.67.0.2  ┴ eth0 ── br0 ── eth0  ──────── eth0
//!                   default via outside   10.67/16 via A     no route to 10.67/16
//! ```
//!
//! - `natOutgoing: true`: a pod's TCP connection to the outside listener arrives from node
//!   A's address; `false` (toggled live): the outside cannot answer, the connection fails.
//! - In both cases pod-to-pod (pod0 → pod1, through node A's forward path) and pod-to-node
//!   (pod0 → node B, a node address) keep the pod's source address.
//! - The same for IPv6; the masquerade counter reaches the metrics; flushed rules and a
//!   deleted chain come back through the counters read-back.
//!
//! And the NAT dataplane alone: toggling is one set element, a restart adopts its objects,
//! the policy dataplane's read-back of the shared table leaves them alone.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use datastore::etcd::EtcdConfig;
use datastore::resource::Resource;
use felix::agent::{Agent, AgentConfig};
use felix::nft::{NatDataplane, NatState, PolicyDataplane, PolicyState};
use support::{
    Attached, Resources, WAIT, agent_in_sync, attach_pod, namespace, pod_ipv4, workload_endpoint,
    yaml,
};
use test_support::etcd::Etcd;
use test_support::lab::Lab;
use test_support::{HarnessError, Netns, SourceRecorder, eventually, eventually_ok, traffic};

const NODE: &str = "nat-node-a";
const NAMESPACE: &str = "natns";
const PORT: u16 = 8099;
const LIST_NAT_CHAIN: [&str; 6] = [
    "nft",
    "list",
    "chain",
    "inet",
    "vrouter",
    "vr-nat-postrouting",
];

/// A listener on `[::]:PORT` inside `ns` recording the source of every connection.
fn listen(ns: &Netns) -> SourceRecorder {
    SourceRecorder::start(ns.name(), SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT))).unwrap()
}

/// Opens a TCP connection from inside `ns` to `to` (closed at once).
fn connect(ns: &Netns, to: IpAddr) -> Result<(), HarnessError> {
    traffic::tcp_connect(ns.name(), SocketAddr::new(to, PORT), Duration::from_secs(2))
}

/// Connects from `from` to `to` and checks the listener saw `source`.
fn seen_from(
    from: &Netns,
    to: IpAddr,
    listener: &SourceRecorder,
    source: IpAddr,
) -> Result<(), HarnessError> {
    listener.check_source(from.name(), SocketAddr::new(to, PORT), source)
}

struct Pod {
    ns: Netns,
    wep_name: String,
    v4: IpAddr,
    v6: IpAddr,
    veth: String,
}

fn pod(node: &Netns, i: u8) -> Pod {
    let Attached { ns, wep_name, veth } = attach_pod(
        node,
        NODE,
        NAMESPACE,
        &format!("pod{i}"),
        &format!("natpod{i}"),
    );
    // As the CNI plugin leaves it: MAC ee:ee:ee:ee:ee:ee, so the pods' IPv6 gateway
    // fe80::ecee:eeff:feee:eeee is the host veth's link-local address.
    node.ip(&["link", "set", "dev", &veth, "address", "ee:ee:ee:ee:ee:ee"])
        .unwrap();
    add6(node, "fe80::ecee:eeff:feee:eeee/64", &veth);
    let v4 = Ipv4Addr::new(10, 67, 0, i + 1);
    let v6: IpAddr = format!("fd00:67::{}", i + 1).parse().unwrap();
    pod_ipv4(&ns, v4);
    add6(&ns, &format!("{v6}/128"), "eth0");
    ns.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fe80::ecee:eeff:feee:eeee",
        "dev",
        "eth0",
    ])
    .unwrap();
    Pod {
        ns,
        wep_name,
        v4: v4.into(),
        v6,
        veth,
    }
}

/// An IPv6 address on `dev`, usable at once (no duplicate address detection).
fn add6(ns: &Netns, cidr: &str, dev: &str) {
    ns.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"])
        .unwrap();
}

fn wep(pod: &Pod) -> Resource {
    let labels = format!("app: {}", pod.wep_name);
    let nets = format!("{}/32, {}/128", pod.v4, pod.v6);
    workload_endpoint(NODE, NAMESPACE, &pod.wep_name, &pod.veth, &labels, &nets)
}

fn pool(name: &str, cidr: &str, nat: bool) -> Resource {
    yaml(&format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\n\
         spec:\n  cidr: {cidr}\n  natOutgoing: {nat}\n"
    ))
}

fn node_resource(name: &str, v4: IpAddr, v6: IpAddr) -> Resource {
    yaml(&format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n\
         spec:\n  bgp:\n    ipv4Address: {v4}/24\n    ipv6Address: {v6}/64\n"
    ))
}

fn metric(agent: &Agent, family: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, agent.registry()).unwrap();
    let prefix = format!("vrouter_nat_outgoing_connections_total{{family=\"{family}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn nat_outgoing_masquerades_only_traffic_leaving_the_cluster() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let lab = Lab::star(3).unwrap();
    let (a, b, outside) = (lab.node(0), lab.node(1), lab.node(2));
    // Node A routes (as every real host does) and sends everything else to the outside.
    a.enable_forwarding().unwrap();
    a.add_route("default", &outside.ip().to_string()).unwrap();
    a.ns()
        .ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &outside.ip6().to_string(),
        ])
        .unwrap();
    // Node B knows the pods (BGP would tell it); the outside does not.
    b.add_route("10.67.0.0/16", &a.ip().to_string()).unwrap();
    b.ns()
        .ip(&[
            "-6",
            "route",
            "add",
            "fd00:67::/64",
            "via",
            &a.ip6().to_string(),
        ])
        .unwrap();
    let pods = [pod(a, 0), pod(a, 1)];

    let resources = Resources::connect(&etcd);
    let write = |items: Vec<Resource>| resources.apply(&items);
    write(vec![
        namespace(NAMESPACE),
        pool("pods-v4", "10.67.0.0/16", true),
        pool("pods-v6", "fd00:67::/64", true),
        node_resource(NODE, IpAddr::V4(a.ip()), IpAddr::V6(a.ip6())),
        node_resource("nat-node-b", IpAddr::V4(b.ip()), IpAddr::V6(b.ip6())),
        wep(&pods[0]),
        wep(&pods[1]),
    ]);
    let mut config = AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()]))
        .in_netns(a.name())
        .with_nftables();
    // No periodic resync during the test: repairs below come from the counters read-back.
    config.resync_interval = Duration::from_secs(3600);
    let agent = agent_in_sync(config);

    let at_outside = listen(outside);
    let at_b = listen(b);
    let at_pod1 = listen(&pods[1].ns);
    let table = a
        .exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .unwrap();
    let (out4, out6) = (IpAddr::V4(outside.ip()), IpAddr::V6(outside.ip6()));
    let (a4, a6) = (IpAddr::V4(a.ip()), IpAddr::V6(a.ip6()));
    let (b4, b6) = (IpAddr::V4(b.ip()), IpAddr::V6(b.ip6()));
    let p0 = &pods[0];

    // natOutgoing: true — the outside sees node A; inside the cluster, the pod.
    eventually_ok(WAIT, || seen_from(&p0.ns, out4, &at_outside, a4)).unwrap_or_else(|e| {
        panic!(
            "{e}\n{table}\n{}",
            a.exec_ok(&["nft", "list", "table", "inet", "vrouter"])
                .unwrap()
        )
    });
    eventually_ok(WAIT, || seen_from(&p0.ns, out6, &at_outside, a6)).unwrap();
    eventually_ok(WAIT, || seen_from(&p0.ns, pods[1].v4, &at_pod1, p0.v4)).unwrap();
    eventually_ok(WAIT, || seen_from(&p0.ns, pods[1].v6, &at_pod1, p0.v6)).unwrap();
    eventually_ok(WAIT, || seen_from(&p0.ns, b4, &at_b, p0.v4)).unwrap();
    eventually_ok(WAIT, || seen_from(&p0.ns, b6, &at_b, p0.v6)).unwrap();
    let table = a
        .exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .unwrap();
    assert!(table.contains("chain vr-nat-postrouting"), "{table}");
    assert!(
        table.contains("type nat hook postrouting priority srcnat + 10"),
        "{table}"
    );
    // The counter reaches the metrics (read back every few seconds).
    assert!(eventually(WAIT, || metric(&agent, "ipv4") >= 1
        && metric(&agent, "ipv6") >= 1));

    // natOutgoing: false, live — the outside cannot answer the pod's own address.
    write(vec![
        pool("pods-v4", "10.67.0.0/16", false),
        pool("pods-v6", "fd00:67::/64", false),
    ]);
    eventually_ok(WAIT, || match connect(&p0.ns, out4) {
        Ok(()) => Err("the outside still answers over IPv4".to_string()),
        Err(_) => Ok(()),
    })
    .unwrap();
    eventually_ok(WAIT, || match connect(&p0.ns, out6) {
        Ok(()) => Err("the outside still answers over IPv6".to_string()),
        Err(_) => Ok(()),
    })
    .unwrap();
    assert!(
        at_outside.take().iter().all(|p| *p == a4 || *p == a6),
        "no pod-sourced accept"
    );
    seen_from(&p0.ns, pods[1].v4, &at_pod1, p0.v4).unwrap();
    seen_from(&p0.ns, pods[1].v6, &at_pod1, p0.v6).unwrap();
    seen_from(&p0.ns, b4, &at_b, p0.v4).unwrap();
    seen_from(&p0.ns, b6, &at_b, p0.v6).unwrap();
    let off = a
        .exec_ok(&["nft", "list", "set", "inet", "vrouter", "vr-masq-pools-4"])
        .unwrap();
    assert!(!off.contains("10.67.0.0"), "{off}");

    // Back on, live.
    write(vec![pool("pods-v4", "10.67.0.0/16", true)]);
    eventually_ok(WAIT, || seen_from(&p0.ns, out4, &at_outside, a4)).unwrap();

    // Flushed rules, then a deleted chain, are put back by the counters read-back (every
    // few seconds; the periodic resync is an hour away).
    let restored = || {
        let t = a.exec_ok(&LIST_NAT_CHAIN).map_err(|e| e.to_string())?;
        if t.matches("masquerade").count() == 2 {
            Ok(())
        } else {
            Err(format!("NAT rules not restored:\n{t}"))
        }
    };
    let nft = |verb: &str| {
        a.exec_ok(&[
            "nft",
            verb,
            "chain",
            "inet",
            "vrouter",
            "vr-nat-postrouting",
        ])
        .unwrap();
    };
    nft("flush");
    eventually_ok(WAIT, restored).unwrap();
    nft("flush");
    nft("delete");
    eventually_ok(WAIT, restored).unwrap();
    eventually_ok(WAIT, || seen_from(&p0.ns, out4, &at_outside, a4)).unwrap();
    agent.stop().unwrap();
}

/// The NAT dataplane on its own in a namespace: the first apply creates the chain and six
/// sets; toggling a pool's NAT is one set element; a restarted dataplane adopts the objects
/// without a change; a policy dataplane reading the same table back leaves them alone.
#[test]
fn nat_toggle_is_an_element_change_and_a_restart_adopts() {
    test_support::trace_init();
    let ns = Netns::new("natdp").unwrap();
    let on = NatState {
        masq_pools: vec!["10.69.0.0/16".parse().unwrap()],
        all_pools: vec![
            "10.69.0.0/16".parse().unwrap(),
            "fd00:69::/64".parse().unwrap(),
        ],
        node_addrs: vec!["192.0.2.1".parse().unwrap()],
    };
    let mut off = on.clone();
    off.masq_pools.clear();
    let reports = ns.run(move || {
        let mut dp = NatDataplane::new().unwrap();
        dp.set_desired(on.clone());
        let first = dp.apply().unwrap();
        dp.set_desired(off);
        let toggled = dp.apply().unwrap();
        dp.set_desired(on.clone());
        let back = dp.apply().unwrap();
        // The policy dataplane adopts the table and resyncs: the NAT objects stay.
        let mut filter = PolicyDataplane::new().unwrap();
        let model = policy::Model::new(policy::ModelParts::default()).unwrap();
        filter.set_desired(PolicyState::new(policy::compile::compile(&model), vec![]));
        filter.apply().unwrap();
        let repaired = filter.resync().unwrap();
        assert_eq!(
            repaired.chains_deleted + repaired.sets_deleted,
            0,
            "{repaired:?}"
        );
        drop(dp);
        let mut again = NatDataplane::new().unwrap();
        again.set_desired(on);
        let adopted = again.apply().unwrap();
        (first, toggled, back, adopted)
    });
    let reports = reports.unwrap();
    let (first, toggled, back, adopted) = reports;
    assert_eq!(first.objects, 7, "{first:?}");
    assert_eq!((toggled.objects, toggled.elements), (0, 1), "{toggled:?}");
    assert_eq!((back.objects, back.elements), (0, 1), "{back:?}");
    assert_eq!((adopted.objects, adopted.elements), (0, 0), "{adopted:?}");
    let chain = ns.exec_ok(&LIST_NAT_CHAIN).unwrap();
    assert!(
        chain.contains("ip saddr @vr-masq-pools-4 ip daddr != @vr-all-pools-4"),
        "{chain}"
    );
    let set = ns
        .exec_ok(&["nft", "list", "set", "inet", "vrouter", "vr-masq-pools-4"])
        .unwrap();
    assert!(set.contains("10.69.0.0/16"), "{set}");
}
