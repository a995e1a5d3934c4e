//! The agent keeps each local host veth at its pod end's MTU capped at the ceiling: the
//! underlay's MTU (the default route's interface, or FelixConfiguration `mtuIfacePattern`),
//! 50 less for a VXLAN pool (or `vxlanMTU`) — after a pool or configuration change, and after
//! drift at the next resync. The pod end is read, never changed. Real etcd, the agent
//! in-process in a node namespace.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

mod support;

use std::time::Duration;

use datastore::etcd::EtcdConfig;
use datastore::resource::Resource;
use felix::agent::AgentConfig;
use support::{
    Attached, Resources, WAIT, agent_in_sync, attach_pod, uplink, workload_endpoint, yaml,
};
use test_support::etcd::Etcd;
use test_support::{Netns, eventually_ok};

const NODE: &str = "mtu-node";
const NAMESPACE: &str = "mtuns";

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
    uplink(&node, Some("1400"));
    node.ip(&[
        "link", "add", "eth9", "mtu", "1300", "type", "veth", "peer", "name", "eth9p",
    ])
    .unwrap();
    let Attached {
        ns: pod,
        wep_name,
        veth,
    } = attach_pod(&node, NODE, NAMESPACE, "pod", "mtupod");
    assert_eq!(mtu_of(&node, &veth), 1500);

    let resources = Resources::connect(&etcd);
    let write = |items: Vec<Resource>| resources.apply(&items);
    let wep = workload_endpoint(NODE, NAMESPACE, &wep_name, &veth, "", "10.68.0.1/32");
    write(vec![pool("Never"), wep]);
    let mut config =
        AgentConfig::new(NODE, EtcdConfig::new([etcd.endpoint()])).in_netns(node.name());
    config.resync_interval = Duration::from_secs(1);
    let agent = agent_in_sync(config);

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
