//! End to end: a real etcd, a node namespace with three pod namespaces attached by veths
//! named with the ownership rule, the agent running in-process inside the node namespace.
//!
//! 1. WorkloadEndpoints + a confirmed IPAM block written with `ResourceStore` (two before
//!    the agent starts, one after) → `/32` routes (protocol 80) to each veth, a blackhole
//!    for the block, and the per-veth sysctls.
//! 2. The pods ping each other through the node (global forwarding stays off in the node:
//!    the agent's per-veth `forwarding=1` is what routes).
//! 3. A route deleted by hand comes back at the next resync; the repair is counted.
//! 4. Deleting a WorkloadEndpoint removes its route.
//! 5. Stopping the agent leaves the routes; a restarted agent adopts them with no
//!    `Deleted` event in `ip monitor route`.
//!
//! With the nftables dataplane: default allow, allow-from-label, a label change, filtering
//! that stays when the agent stops, a restart that deletes no route and leaves the table
//! identical, and an nft element removed by hand restored by the periodic resync.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use datastore::etcd::EtcdConfig;
use datastore::ipam::{AffinityState, AllocationBlock, BlockAffinity};
use datastore::keys::{ipam_affinity_key, ipam_block_key};
use datastore::resource::Resource;
use felix::agent::{Agent, AgentConfig};
use ipnetwork::IpNetwork;
use support::{
    Attached, Resources, WAIT, agent_in_sync, attach_pod, namespace, pod_ipv4, uplink,
    workload_endpoint, yaml,
};
use test_support::etcd::Etcd;
use test_support::{Netns, RouteMonitor, eventually, eventually_ok};

const NODE: &str = "node-a";
const NAMESPACE: &str = "prod";
const BLOCK: &str = "10.66.0.0/26";

struct Pod {
    ns: Netns,
    wep_name: String,
    ip: IpAddr,
    veth: String,
}

fn wep(pod: &Pod) -> Resource {
    wep_labelled(pod, &format!("app: {}", pod.wep_name))
}

fn wep_labelled(pod: &Pod, labels: &str) -> Resource {
    let nets = format!("{}/32", pod.ip);
    workload_endpoint(NODE, NAMESPACE, &pod.wep_name, &pod.veth, labels, &nets)
}

/// The node namespace: an uplink with a default route (so proxy ARP has a route to answer
/// for the pods' gateway, as on a real host), and three pods attached like the CNI plugin
/// attaches them.
fn topology() -> (Netns, Vec<Pod>) {
    let node = Netns::new("felixnode").unwrap();
    uplink(&node, None);
    let pods = (0..3u8)
        .map(|i| {
            let pod = format!("pod{i}");
            let Attached { ns, wep_name, veth } = attach_pod(&node, NODE, NAMESPACE, &pod, &pod);
            let ip = Ipv4Addr::new(10, 66, 0, i + 1);
            pod_ipv4(&ns, ip);
            Pod {
                ns,
                wep_name,
                ip: ip.into(),
                veth,
            }
        })
        .collect();
    (node, pods)
}

fn proto80(node: &Netns) -> String {
    node.ip(&["route", "show", "proto", "80"]).unwrap()
}

fn has_route(node: &Netns, pod: &Pod) -> Result<(), String> {
    let routes = proto80(node);
    let want = format!("{} dev {} scope link", pod.ip, pod.veth);
    if routes.contains(&want) {
        Ok(())
    } else {
        Err(format!("no `{want}` in:\n{routes}"))
    }
}

/// Reads a per-veth sysctl from inside the node namespace.
fn sysctl_of(node: &Netns, template: &str, iface: &str) -> String {
    node.sysctl_get(&template.replace("{}", iface).replace('/', "."))
        .unwrap()
}

fn start_agent(etcd: &Etcd, node: &Netns) -> Agent {
    start_agent_with(
        AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()])).in_netns(node.name()),
    )
}

fn start_agent_with(mut config: AgentConfig) -> Agent {
    config.resync_interval = Duration::from_secs(1);
    agent_in_sync(config)
}

#[test]
fn agent_programs_routes_and_sysctls_and_pods_talk_through_the_node() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let (node, pods) = topology();
    let resources = Resources::connect(&etcd);
    let store = resources.store();

    // The block and two endpoints exist before the agent starts.
    let block: IpNetwork = BLOCK.parse().unwrap();
    resources.block_on(async {
        store
            .create(
                &ipam_block_key(&block),
                AllocationBlock::new(block, Some(NODE)).unwrap().to_json(),
            )
            .await
            .unwrap();
        store
            .create(
                &ipam_affinity_key(NODE, &block),
                BlockAffinity::new(AffinityState::Confirmed).to_json(),
            )
            .await
            .unwrap();
    });
    resources.apply(&[wep(&pods[0]), wep(&pods[1])]);
    let agent = start_agent(&etcd, &node);
    resources.apply(&[wep(&pods[2])]);

    // 1. Routes and sysctls.
    for pod in &pods {
        eventually_ok(WAIT, || has_route(&node, pod)).unwrap();
    }
    assert!(proto80(&node).contains(&format!("blackhole {BLOCK}")));
    for pod in &pods {
        for (template, want) in [
            ("net/ipv4/conf/{}/proxy_arp", "1"),
            ("net/ipv4/conf/{}/forwarding", "1"),
            ("net/ipv4/conf/{}/rp_filter", "1"),
            ("net/ipv6/conf/{}/accept_ra", "0"),
        ] {
            assert!(
                eventually(WAIT, || sysctl_of(&node, template, &pod.veth) == want),
                "{template} on {}",
                pod.veth
            );
        }
    }
    assert_eq!(node.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");

    // 2. Pods reach each other through the node.
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        eventually_ok(WAIT, || pods[a].ns.ping(pods[b].ip)).unwrap();
    }

    // 3. Drift repair.
    node.ip(&["route", "del", &format!("{}/32", pods[1].ip), "proto", "80"])
        .unwrap();
    eventually_ok(WAIT, || has_route(&node, &pods[1])).unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, agent.registry()).unwrap();
    assert!(
        text.contains("vrouter_felix_resync_repairs_total{part=\"routes\"}"),
        "{text}"
    );
    assert!(text.contains("vrouter_felix_apply_seconds_count{part=\"routes\"}"));

    // 4. Deleting an endpoint removes its route.
    resources.delete(&[wep(&pods[2])]);
    assert!(eventually(WAIT, || !proto80(&node).contains(&pods[2].ip.to_string())));
    resources.apply(&[wep(&pods[2])]);
    eventually_ok(WAIT, || has_route(&node, &pods[2])).unwrap();

    // 5. Stop: routes stay. Restart: adopted, no delete events.
    agent.stop().unwrap();
    let before = proto80(&node);
    for pod in &pods {
        has_route(&node, pod).unwrap();
    }
    let monitor = RouteMonitor::start(&node, "up0", 1).unwrap();
    let agent = start_agent(&etcd, &node);
    // Let it run through a resync too.
    let resyncs = agent.status().resyncs();
    assert!(eventually(WAIT, || agent.status().resyncs() > resyncs + 1));
    monitor.assert_untouched(200, "10.66.0.");
    assert_eq!(proto80(&node), before);
    for (a, b) in [(0, 2), (2, 1)] {
        eventually_ok(WAIT, || pods[a].ns.ping(pods[b].ip)).unwrap();
    }
    agent.stop().unwrap();
}

fn blocked(from: &Pod, to: &Pod) -> Result<(), String> {
    match from.ns.ping(to.ip) {
        Ok(()) => Err(format!("{} still reaches {}", from.wep_name, to.ip)),
        Err(_) => Ok(()),
    }
}

/// The agent with the nftables policy dataplane: default allow through the namespace
/// profile, an allow-from-label policy (which implies deny for everyone else), a label
/// change that admits another pod, and filtering that stays when the agent stops.
#[test]
fn agent_enforces_policy_with_nftables() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let (node, pods) = topology();
    let resources = Resources::connect(&etcd);
    resources.apply(&[
        namespace(NAMESPACE),
        wep(&pods[0]),
        wep(&pods[1]),
        wep(&pods[2]),
    ]);
    let agent = start_agent_with(
        AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()]))
            .in_netns(node.name())
            .with_nftables(),
    );
    for pod in &pods {
        eventually_ok(WAIT, || has_route(&node, pod)).unwrap();
    }
    let table = node
        .exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .unwrap();
    assert!(table.contains("chain"), "{table}");

    // Default allow (namespace profile).
    for (a, b) in [(0, 1), (2, 1), (1, 0)] {
        eventually_ok(WAIT, || pods[a].ns.ping(pods[b].ip)).unwrap();
    }

    // Only pods labelled allowed=yes may reach pod1.
    let policy = yaml(&format!(
        "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: pod1-from-allowed
  namespace: {NAMESPACE}
spec:
  selector: app == '{}'
  types: [Ingress]
  ingress:
  - action: Allow
    source:
      selector: allowed == 'yes'
",
        pods[1].wep_name
    ));
    resources.apply(&[
        policy,
        wep_labelled(
            &pods[0],
            &format!("app: {}, allowed: 'yes'", pods[0].wep_name),
        ),
    ]);
    eventually_ok(WAIT, || blocked(&pods[2], &pods[1])).unwrap();
    eventually_ok(WAIT, || pods[0].ns.ping(pods[1].ip)).unwrap();
    // Egress from pod1 and traffic to others is unaffected.
    eventually_ok(WAIT, || pods[2].ns.ping(pods[0].ip)).unwrap();

    // A label change admits pod2.
    resources.apply(&[wep_labelled(
        &pods[2],
        &format!("app: {}, allowed: 'yes'", pods[2].wep_name),
    )]);
    eventually_ok(WAIT, || pods[2].ns.ping(pods[1].ip)).unwrap();
    resources.apply(&[wep(&pods[2])]);
    eventually_ok(WAIT, || blocked(&pods[2], &pods[1])).unwrap();

    // Killing the agent leaves the filtering in place.
    agent.stop().unwrap();
    blocked(&pods[2], &pods[1]).unwrap();
    pods[0].ns.ping(pods[1].ip).unwrap();

    // Restarting it removes and re-adds no route and leaves the table content identical.
    let nft_list = || {
        node.exec_ok(&["nft", "list", "table", "inet", "vrouter"])
            .unwrap()
    };
    let table = nft_list();
    let routes = proto80(&node);
    let monitor = RouteMonitor::start(&node, "up0", 101).unwrap();
    let agent = start_agent_with(
        AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()]))
            .in_netns(node.name())
            .with_nftables(),
    );
    let resyncs = agent.status().resyncs();
    assert!(eventually(WAIT, || agent.status().resyncs() > resyncs + 1));
    assert_eq!(nft_list(), table, "the restarted agent changed the table");
    assert_eq!(proto80(&node), routes);
    monitor.assert_untouched(250, "10.66.0.");
    blocked(&pods[2], &pods[1]).unwrap();
    pods[0].ns.ping(pods[1].ip).unwrap();

    // An nft element removed by hand (pod0's address in the policy's source set) comes back
    // at the next periodic resync.
    let set = table
        .split("\n\tset ")
        .find(|b| b.starts_with("vr-s-") && b.contains(&pods[0].ip.to_string()))
        .and_then(|b| b.split_whitespace().next())
        .unwrap()
        .to_string();
    node.exec_ok(&[
        "nft",
        "delete",
        "element",
        "inet",
        "vrouter",
        &set,
        &format!("{{ {} }}", pods[0].ip),
    ])
    .unwrap();
    assert_ne!(nft_list(), table);
    assert!(eventually(WAIT, || nft_list() == table), "{}", nft_list());
    eventually_ok(WAIT, || pods[0].ns.ping(pods[1].ip)).unwrap();
    agent.stop().unwrap();
}
