//! The kernel policy lab shared by felix's dataplane tests and cli's `vrctl policy test`
//! agreement test (included there with `#[path]`): a node namespace with pod namespaces
//! attached by `vr…` veths, listeners on every probed port, TCP/UDP probes, and the policy
//! evaluator's verdict for the same flow. Needs root.

#![allow(dead_code)] // each including test uses a different part

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use felix::calc::LocalEndpoint;
use felix::nft::{PolicyDataplane, PolicyState};
use policy::model::EndpointId;
use policy::rule::Protocol;
use policy::{Flow, Model, Peer, Verdict};
use test_support::{Netns, traffic, veth_pair};

pub(crate) const TCP_PORTS: [u16; 3] = [80, 5432, 8080];
pub(crate) const UDP_PORT: u16 = 53;
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(600);

pub(crate) struct Pod {
    pub(crate) ns: Netns,
    pub(crate) namespace: &'static str,
    pub(crate) name: &'static str,
    pub(crate) iface: String,
    pub(crate) ip: Ipv4Addr,
}

impl Pod {
    pub(crate) fn id(&self) -> EndpointId {
        EndpointId::new(self.namespace, self.name)
    }

    pub(crate) fn workload(&self) -> LocalEndpoint {
        LocalEndpoint {
            id: self.id(),
            iface: self.iface.clone(),
            nets: vec![format!("{}/32", self.ip).parse().expect("net")],
            mac: None,
        }
    }
}

/// A node namespace and its pods; every pod listens on TCP 80, 5432, 8080 and UDP 53.
pub(crate) struct Lab {
    pub(crate) node: Netns,
    pub(crate) pods: Vec<Pod>,
}

pub(crate) const PODS: [(&str, &str); 4] =
    [("prod", "a"), ("prod", "b"), ("dev", "c"), ("dev", "d")];

impl Lab {
    pub(crate) fn new(n: usize) -> Lab {
        test_support::trace_init();
        let node = Netns::new("nftnode").expect("node ns");
        node.enable_forwarding().expect("forwarding");
        let mut pods = Vec::new();
        for (i, (namespace, name)) in PODS.iter().take(n).enumerate() {
            let ns = Netns::new(&format!("pod{name}")).expect("pod ns");
            let iface = format!("vr{:011x}", 0xabc0 + i);
            let ip = Ipv4Addr::new(10, 65, 0, i as u8 + 1);
            veth_pair(&node, &iface, &ns, "eth0").expect("veth");
            node.ip(&["addr", "add", "169.254.1.1/32", "dev", &iface])
                .expect("gw addr");
            node.add_dev_route(&format!("{ip}/32"), &iface)
                .expect("route");
            ns.add_addr("eth0", &format!("{ip}/32")).expect("addr");
            ns.ip(&["route", "add", "169.254.1.1", "dev", "eth0"])
                .expect("gw route");
            ns.add_route("default", "169.254.1.1").expect("default");
            serve(&ns);
            pods.push(Pod {
                ns,
                namespace,
                name,
                iface,
                ip,
            });
        }
        Lab { node, pods }
    }

    pub(crate) fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .expect("pod exists")
    }

    /// The cluster's resources: namespaces and one WorkloadEndpoint per pod.
    pub(crate) fn base_yaml(&self, labels: &[(&str, &str)]) -> String {
        let mut y = String::from(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n",
        );
        for p in &self.pods {
            let l = labels
                .iter()
                .find(|(n, _)| *n == p.name)
                .map(|(_, l)| *l)
                .unwrap_or("{}");
            y.push_str(&format!(
                "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
                 metadata: {{name: {}, namespace: {}, labels: {l}}}\n\
                 spec: {{orchestrator: k8s, interfaceName: {}, ipNetworks: [{}/32], \
                 ports: [{{name: dbport, protocol: TCP, port: 5432}}]}}\n",
                p.name, p.namespace, p.iface, p.ip
            ));
        }
        y
    }

    pub(crate) fn dataplane(&self) -> PolicyDataplane {
        self.node
            .run(|| PolicyDataplane::new().expect("dataplane"))
            .expect("netns")
    }

    pub(crate) fn nft(&self, args: &[&str]) -> String {
        let mut full = vec!["nft"];
        full.extend(args);
        self.node.exec_ok(&full).expect("nft")
    }

    pub(crate) fn listing(&self) -> String {
        self.nft(&["list", "table", "inet", "vrouter"])
    }
}

/// Listeners for every probed port, served on detached threads for the life of the test.
pub(crate) fn serve(ns: &Netns) {
    let tcp: Vec<SocketAddr> = TCP_PORTS
        .iter()
        .map(|p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, *p)))
        .collect();
    traffic::serve_tcp_ok(ns.name(), &tcp).expect("tcp listen");
    traffic::serve_udp_echo(
        ns.name(),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, UDP_PORT)),
    )
    .expect("udp bind");
}

/// One probe: a TCP connection (reads "ok") or a UDP round trip, from `src` (optionally
/// from a chosen source address, UDP only) to `dst`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) src: usize,
    pub(crate) dst: usize,
    pub(crate) protocol: Protocol,
    pub(crate) port: u16,
}

pub(crate) fn reach(
    ns: &Netns,
    from: Option<Ipv4Addr>,
    to: SocketAddr,
    protocol: Protocol,
) -> bool {
    if protocol == Protocol::TCP {
        traffic::tcp_ok(ns.name(), to, PROBE_TIMEOUT).expect("netns")
    } else {
        let from = from.unwrap_or(Ipv4Addr::UNSPECIFIED).into();
        traffic::udp_echo(ns.name(), from, to, PROBE_TIMEOUT).expect("udp client")
    }
}

/// Runs probes concurrently; returns whether each got through.
pub(crate) fn run_probes(lab: &Lab, probes: &[Probe]) -> Vec<bool> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = probes
            .iter()
            .map(|p| {
                let ns = &lab.pods[p.src].ns;
                let to = SocketAddr::from((lab.pods[p.dst].ip, p.port));
                scope.spawn(move || reach(ns, None, to, p.protocol))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe"))
            .collect()
    })
}

pub(crate) fn model_of(yaml: &str) -> Model {
    let docs = datastore::resource::parse_documents(yaml).expect("yaml");
    policy::convert::model_from_resources(&docs).expect("model")
}

pub(crate) fn state_of(lab: &Lab, model: &Model, pods: &[&str]) -> PolicyState {
    PolicyState::new(
        policy::compile::compile(model),
        pods.iter().map(|p| lab.pod(p).workload()),
    )
}

pub(crate) fn evaluate(lab: &Lab, model: &Model, p: &Probe) -> bool {
    let flow = Flow::new(
        Peer::Endpoint(lab.pods[p.src].id()),
        Peer::Endpoint(lab.pods[p.dst].id()),
        p.protocol,
        Some(p.port),
    );
    model.evaluate(&flow).expect("evaluate").verdict == Verdict::Allow
}

pub(crate) fn idx(lab: &Lab, name: &str) -> usize {
    lab.pods
        .iter()
        .position(|p| p.name == name)
        .expect("pod exists")
}

pub(crate) const LABELS: [(&str, &str); 3] = [
    (
        "a",
        "{app: web, role: frontend, projectcalico.org/orchestrator: k8s}",
    ),
    ("b", "{app: db, projectcalico.org/orchestrator: k8s}"),
    ("c", "{app: tool, projectcalico.org/orchestrator: k8s}"),
];

pub(crate) const TCP: Protocol = Protocol::TCP;
pub(crate) const UDP: Protocol = Protocol::UDP;
