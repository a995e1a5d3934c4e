//! The agent keeps each local host veth at its pod end's MTU capped at the ceiling: the
//! underlay's MTU (the default route's interface, or FelixConfiguration `mtuIfacePattern`),
//! 50 less for a VXLAN pool (or `vxlanMTU`) — after a pool or configuration change, and after
//! drift at the next resync. The pod end is read, never changed. Real etcd, the agent
//! in-process in a node namespace.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

use std::time::Duration;

use datastore::etcd::{EtcdConfig, Store};
use datastore::resource::{Resource, parse_and_validate_documents};
use datastore::resource_store::{ResourceStore, Verb};
use felix::agent::{Agent, AgentConfig};
use felix::ownership::{endpoint_id, host_veth_name};
use test_support::etcd::Etcd;
use test_support::{Netns, eventually, eventually_ok, veth_pair};

const NODE: &str = "mtu-node";
const NAMESPACE: &str = "mtuns";
const WAIT: Duration = Duration::from_secs(20);

fn yaml(text: &str) -> Resource {
    parse_and_validate_documents(text).unwrap().remove(0)
}

fn pool(vxlan: &str) -> Resource {
    yaml(&format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: mtu-pool\n\
         spec:\n  cidr: 10.68.0.0/16\n  vxlanMode: {vxlan}\n"
    ))
}

fn felix_config(spec: &str) -> Resource {
    yaml(&format!(
        "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\n\
         metadata:\n  name: default\nspec:\n{spec}"
    ))
}

fn mtu_of(ns: &Netns, dev: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", dev]).unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap()
}

fn mtu_is(ns: &Netns, dev: &str, want: u32) -> Result<(), String> {
    match mtu_of(ns, dev) {
        m if m == want => Ok(()),
        m => Err(format!("{dev} has MTU {m}, want {want}")),
    }
}

#[test]
fn agent_lowers_host_veths_to_the_pod_mtu_ceiling() {
    test_support::trace_init();
    let etcd = Etcd::start().unwrap();
    let node = Netns::new("mtunode").unwrap();
    // Underlay: up0 (MTU 1400) holds the default route; eth9 (MTU 1300) is another NIC.
    node.ip(&[
        "link", "add", "up0", "mtu", "1400", "type", "veth", "peer", "name", "up1",
    ])
    .unwrap();
    node.set_up("up0").unwrap();
    node.set_up("up1").unwrap();
    node.add_addr("up0", "192.0.2.1/30").unwrap();
    node.add_route("default", "192.0.2.2").unwrap();
    node.ip(&[
        "link", "add", "eth9", "mtu", "1300", "type", "veth", "peer", "name", "eth9p",
    ])
    .unwrap();
    let pod = Netns::new("mtupod").unwrap();
    let wep_name = format!("{NODE}-k8s-pod-eth0").replace('-', "--");
    let veth = host_veth_name(&endpoint_id(NAMESPACE, &wep_name));
    veth_pair(&node, &veth, &pod, "eth0").unwrap();
    assert_eq!(mtu_of(&node, &veth), 1500);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
        .unwrap();
    let resources = ResourceStore::new(store);
    let write = |items: Vec<Resource>| {
        runtime
            .block_on(resources.write(Verb::Apply, &items))
            .unwrap()
    };
    let wep = yaml(&format!(
        "apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: {wep_name}
  namespace: {NAMESPACE}
spec:
  node: {NODE}
  orchestrator: k8s
  pod: pod
  endpoint: eth0
  interfaceName: {veth}
  ipNetworks: [10.68.0.1/32]
"
    ));
    write(vec![pool("Never"), wep]);
    let mut config =
        AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()])).in_netns(node.name());
    config.resync_interval = Duration::from_secs(1);
    let agent = Agent::start(config).unwrap();
    assert!(eventually(WAIT, || agent.status().in_sync()));

    // Native pool: the default route's interface.
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1400)).unwrap();
    // The pool moves to VXLAN: 50 less.
    write(vec![pool("Always")]);
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1350)).unwrap();
    // Drift is repaired at the next resync.
    node.ip(&["link", "set", "dev", &veth, "mtu", "9000"])
        .unwrap();
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1350)).unwrap();
    // Lowered by hand: back to the pod end's MTU capped at the ceiling.
    node.ip(&["link", "set", "dev", &veth, "mtu", "1280"])
        .unwrap();
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1350)).unwrap();
    // A pod end with a smaller MTU (a CNI configuration's `mtu`): the host end follows it.
    pod.ip(&["link", "set", "dev", "eth0", "mtu", "1300"])
        .unwrap();
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1300)).unwrap();
    pod.ip(&["link", "set", "dev", "eth0", "mtu", "1500"])
        .unwrap();
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1350)).unwrap();
    // FelixConfiguration: the underlay is the smallest interface matching the pattern…
    write(vec![felix_config("  mtuIfacePattern: ^eth9$\n")]);
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1250)).unwrap();
    // …and vxlanMTU sets the VXLAN pods' MTU directly.
    write(vec![felix_config(
        "  mtuIfacePattern: ^eth9$\n  vxlanMTU: 1200\n",
    )]);
    eventually_ok(WAIT, || mtu_is(&node, &veth, 1200)).unwrap();
    // The pod's end is the CNI plugin's: the agent does not enter pod namespaces.
    assert_eq!(mtu_of(&pod, "eth0"), 1500);
    agent.stop().unwrap();
}
