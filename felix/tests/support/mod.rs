//! Shared by the tests that run the agent in-process (`agent_e2e`, `nat`, `mtu`): resources
//! written to the test etcd, the agent started and in sync, a node uplink, and pods attached
//! to the node the way the CNI plugin attaches them.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use datastore::etcd::{EtcdConfig, Store};
use datastore::resource::{Resource, parse_and_validate_documents};
use datastore::resource_store::{ResourceStore, Verb};
use felix::agent::{Agent, AgentConfig};
use felix::ownership::{endpoint_id, host_veth_name};
use test_support::etcd::Etcd;
use test_support::{Netns, eventually, veth_pair};

/// How long a test waits for the agent to converge.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// The pods' gateway: a link-scope address no interface holds (the host veth answers ARP
/// for it by proxy ARP), as the CNI plugin sets it up.
pub(crate) const POD_GATEWAY: &str = "169.254.1.1";

/// The one resource in `text`.
pub(crate) fn yaml(text: &str) -> Resource {
    parse_and_validate_documents(text).unwrap().remove(0)
}

/// Writes resources to the test etcd, blocking.
pub(crate) struct Resources {
    runtime: tokio::runtime::Runtime,
    store: Store,
}

impl Resources {
    /// Connects to `etcd` on a runtime of its own.
    pub(crate) fn connect(etcd: &Etcd) -> Resources {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = runtime
            .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
            .unwrap();
        Resources { runtime, store }
    }

    /// Creates or replaces `items`, in one transaction.
    pub(crate) fn apply(&self, items: &[Resource]) {
        self.write(Verb::Apply, items);
    }

    /// Deletes `items`, in one transaction.
    pub(crate) fn delete(&self, items: &[Resource]) {
        self.write(Verb::Delete, items);
    }

    fn write(&self, verb: Verb, items: &[Resource]) {
        let resources = ResourceStore::new(self.store.clone());
        self.runtime.block_on(resources.write(verb, items)).unwrap();
    }

    /// The raw store (IPAM keys).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `future` on the runtime the store is connected on.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Starts the agent and waits until it is in sync with the datastore.
pub(crate) fn agent_in_sync(config: AgentConfig) -> Agent {
    let agent = Agent::start(config).unwrap();
    assert!(
        eventually(WAIT, || agent.status().in_sync()),
        "agent never got in sync"
    );
    agent
}

/// The node's uplink: `up0` (a veth whose peer `up1` stays in the node too) with
/// `192.0.2.1/30` and the default route via `192.0.2.2`, so proxy ARP has a route to answer
/// for the pods' gateway, as on a real host. `mtu`: the uplink's, when not 1500.
pub(crate) fn uplink(node: &Netns, mtu: Option<&str>) {
    let mut link = vec!["link", "add", "up0"];
    if let Some(mtu) = mtu {
        link.extend(["mtu", mtu]);
    }
    link.extend(["type", "veth", "peer", "name", "up1"]);
    node.ip(&link).unwrap();
    node.set_up("up0").unwrap();
    node.set_up("up1").unwrap();
    node.add_addr("up0", "192.0.2.1/30").unwrap();
    node.add_route("default", "192.0.2.2").unwrap();
}

/// A pod namespace attached to a node: its `eth0` is the peer of the host veth named by the
/// ownership rule for WorkloadEndpoint `wep_name`.
pub(crate) struct Attached {
    /// The pod's namespace.
    pub(crate) ns: Netns,
    /// The WorkloadEndpoint's name, `<node>-k8s-<pod>-eth0` escaped as Calico does.
    pub(crate) wep_name: String,
    /// The host end of the veth.
    pub(crate) veth: String,
}

/// Attaches pod `pod` (WorkloadEndpoint on node `node_name` in `namespace`) to `node`; its
/// namespace is named after `ns_hint`.
pub(crate) fn attach_pod(
    node: &Netns,
    node_name: &str,
    namespace: &str,
    pod: &str,
    ns_hint: &str,
) -> Attached {
    let ns = Netns::new(ns_hint).unwrap();
    let wep_name = format!("{node_name}-k8s-{pod}-eth0").replace('-', "--");
    let veth = host_veth_name(&endpoint_id(namespace, &wep_name));
    veth_pair(node, &veth, &ns, "eth0").unwrap();
    Attached { ns, wep_name, veth }
}

/// The pod side of IPv4 as the CNI plugin leaves it: `ip/32` on `eth0`, the gateway on the
/// link, the default route via the gateway.
pub(crate) fn pod_ipv4(pod: &Netns, ip: Ipv4Addr) {
    pod.add_addr("eth0", &format!("{ip}/32")).unwrap();
    pod.ip(&["route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link"])
        .unwrap();
    pod.add_route("default", POD_GATEWAY).unwrap();
}

/// WorkloadEndpoint `wep_name` (host veth `veth`) on node `node_name` in `namespace`, with
/// `labels` (YAML flow mapping entries) and `nets` (the `ipNetworks` entries).
pub(crate) fn workload_endpoint(
    node_name: &str,
    namespace: &str,
    wep_name: &str,
    veth: &str,
    labels: &str,
    nets: &str,
) -> Resource {
    yaml(&format!(
        "apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{{labels}}}
spec:
  node: {node_name}
  orchestrator: k8s
  pod: {name}
  endpoint: eth0
  interfaceName: {veth}
  ipNetworks: [{nets}]
",
        name = wep_name,
    ))
}

/// The Namespace resource `name`.
pub(crate) fn namespace(name: &str) -> Resource {
    yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    ))
}
