//! The nftables policy dataplane against the real kernel: a node namespace with pod
//! namespaces attached by `vr…` veths, policies from YAML, reachability measured with real
//! TCP/UDP connections and checked against the policy evaluator, plus the lifecycle (fail
//! closed, kill, adopt, resync, label change, rebuild). Needs root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use felix::calc::LocalEndpoint;
use felix::nft::{ApplyReport, PolicyDataplane, PolicyState};
use policy::model::EndpointId;
use policy::rule::Protocol;
use policy::{Flow, Model, Peer, Verdict};
use test_support::{Netns, veth_pair};

const TCP_PORTS: [u16; 3] = [80, 5432, 8080];
const UDP_PORT: u16 = 53;
const PROBE_TIMEOUT: Duration = Duration::from_millis(600);

/// Runs `f` on a thread inside `ns`'s network namespace.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

struct Pod {
    ns: Netns,
    namespace: &'static str,
    name: &'static str,
    iface: String,
    ip: Ipv4Addr,
}

impl Pod {
    fn id(&self) -> EndpointId {
        EndpointId::new(self.namespace, self.name)
    }

    fn workload(&self) -> LocalEndpoint {
        LocalEndpoint {
            id: self.id(),
            iface: self.iface.clone(),
            nets: vec![format!("{}/32", self.ip).parse().expect("net")],
            mac: None,
        }
    }
}

/// A node namespace and its pods; every pod listens on TCP 80, 5432, 8080 and UDP 53.
struct Lab {
    node: Netns,
    pods: Vec<Pod>,
}

const PODS: [(&str, &str); 4] = [("prod", "a"), ("prod", "b"), ("dev", "c"), ("dev", "d")];

impl Lab {
    fn new(n: usize) -> Lab {
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

    fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .expect("pod exists")
    }

    /// The cluster's resources: namespaces and one WorkloadEndpoint per pod.
    fn base_yaml(&self, labels: &[(&str, &str)]) -> String {
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

    fn dataplane(&self) -> PolicyDataplane {
        in_netns(&self.node, || PolicyDataplane::new().expect("dataplane"))
    }

    fn nft(&self, args: &[&str]) -> String {
        let mut full = vec!["nft"];
        full.extend(args);
        self.node.exec_ok(&full).expect("nft")
    }

    fn listing(&self) -> String {
        self.nft(&["list", "table", "inet", "vrouter"])
    }
}

/// Listeners for every probed port, served on detached threads for the life of the test.
fn serve(ns: &Netns) {
    let (tcp, udp) = in_netns(ns, || {
        let tcp: Vec<TcpListener> = TCP_PORTS
            .iter()
            .map(|p| TcpListener::bind(("0.0.0.0", *p)).expect("tcp listen"))
            .collect();
        let udp = UdpSocket::bind(("0.0.0.0", UDP_PORT)).expect("udp bind");
        (tcp, udp)
    });
    for l in tcp {
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let _ = s.write_all(b"ok");
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
}

/// One probe: a TCP connection (reads "ok") or a UDP round trip, from `src` (optionally
/// from a chosen source address, UDP only) to `dst`.
#[derive(Debug, Clone, Copy)]
struct Probe {
    src: usize,
    dst: usize,
    protocol: Protocol,
    port: u16,
}

fn reach(ns: &Netns, from: Option<Ipv4Addr>, to: SocketAddr, protocol: Protocol) -> bool {
    in_netns(ns, move || {
        if protocol == Protocol::TCP {
            let Ok(mut s) = TcpStream::connect_timeout(&to, PROBE_TIMEOUT) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).is_ok() && buf == b"ok"
        } else {
            let bind = from.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let s = UdpSocket::bind((bind, 0)).expect("udp client");
            let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
            if s.send_to(b"ping", to).is_err() {
                return false;
            }
            let mut buf = [0u8; 16];
            matches!(s.recv_from(&mut buf), Ok((4, _)))
        }
    })
}

/// Runs probes concurrently; returns whether each got through.
fn run_probes(lab: &Lab, probes: &[Probe]) -> Vec<bool> {
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

fn model_of(yaml: &str) -> Model {
    let docs = datastore::resource::parse_documents(yaml).expect("yaml");
    policy::convert::model_from_resources(&docs).expect("model")
}

fn state_of(lab: &Lab, model: &Model, pods: &[&str]) -> PolicyState {
    PolicyState::new(
        policy::compile::compile(model),
        pods.iter().map(|p| lab.pod(p).workload()),
    )
}

fn evaluate(lab: &Lab, model: &Model, p: &Probe) -> bool {
    let flow = Flow::new(
        Peer::Endpoint(lab.pods[p.src].id()),
        Peer::Endpoint(lab.pods[p.dst].id()),
        p.protocol,
        Some(p.port),
    );
    model.evaluate(&flow).expect("evaluate").verdict == Verdict::Allow
}

fn idx(lab: &Lab, name: &str) -> usize {
    lab.pods
        .iter()
        .position(|p| p.name == name)
        .expect("pod exists")
}

/// `(src, dst, protocol, port, expected)`.
type Case = (&'static str, &'static str, Protocol, u16, bool);

/// Applies `policies` (on top of the base resources) and checks every case three ways:
/// expectation, evaluator, and real traffic.
fn check(
    lab: &Lab,
    dp: &mut PolicyDataplane,
    labels: &[(&str, &str)],
    policies: &str,
    cases: &[Case],
) {
    let yaml = format!("{}{policies}", lab.base_yaml(labels));
    let model = model_of(&yaml);
    let names: Vec<&str> = lab.pods.iter().map(|p| p.name).collect();
    dp.set_desired(state_of(lab, &model, &names));
    dp.apply().expect("apply");
    let probes: Vec<Probe> = cases
        .iter()
        .map(|(s, d, protocol, port, _)| Probe {
            src: idx(lab, s),
            dst: idx(lab, d),
            protocol: *protocol,
            port: *port,
        })
        .collect();
    let got = run_probes(lab, &probes);
    for ((case, probe), actual) in cases.iter().zip(&probes).zip(got) {
        let evaluated = evaluate(lab, &model, probe);
        assert_eq!(
            evaluated, case.4,
            "evaluator disagrees with the expectation for {case:?}"
        );
        assert_eq!(
            actual,
            evaluated,
            "kernel verdict differs from the evaluator for {case:?}\n{}",
            lab.listing()
        );
    }
}

const LABELS: [(&str, &str); 3] = [
    (
        "a",
        "{app: web, role: frontend, projectcalico.org/orchestrator: k8s}",
    ),
    ("b", "{app: db, projectcalico.org/orchestrator: k8s}"),
    ("c", "{app: tool, projectcalico.org/orchestrator: k8s}"),
];

const TCP: Protocol = Protocol::TCP;
const UDP: Protocol = Protocol::UDP;

#[test]
fn reachability_matches_the_evaluator_for_every_scenario() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();

    // Default allow: no policy selects anything.
    check(
        &lab,
        &mut dp,
        &LABELS,
        "",
        &[
            ("a", "b", TCP, 80, true),
            ("c", "a", TCP, 8080, true),
            ("b", "c", UDP, 53, true),
        ],
    );

    // Kubernetes default-deny-ingress in prod.
    let deny = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                metadata: {name: default-deny, namespace: prod}\n\
                spec: {podSelector: {}, policyTypes: [Ingress]}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        deny,
        &[
            ("c", "a", TCP, 80, false),
            ("a", "b", TCP, 5432, false),
            ("c", "b", UDP, 53, false),
            ("a", "c", TCP, 80, true),
            ("b", "c", UDP, 53, true),
        ],
    );

    // Allow from a label (on top of the default deny).
    let from_label = format!(
        "{deny}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: db-from-frontend, namespace: prod}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  \
         - from: [{{podSelector: {{matchLabels: {{role: frontend}}}}}}]\n    \
         ports: [{{protocol: TCP, port: 5432}}]\n"
    );
    check(
        &lab,
        &mut dp,
        &LABELS,
        &from_label,
        &[
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 80, false),
            ("c", "b", TCP, 5432, false),
        ],
    );

    // ipBlock with except.
    let ipblock = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                   metadata: {name: web-from-block, namespace: prod}\n\
                   spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  \
                   - from: [{ipBlock: {cidr: 10.65.0.0/24, except: [10.65.0.3/32]}}]\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        ipblock,
        &[
            ("b", "a", TCP, 80, true),
            ("b", "a", UDP, 53, true),
            ("c", "a", TCP, 80, false),
            ("c", "b", TCP, 80, true),
        ],
    );

    // Named port (Calico NetworkPolicy).
    let named = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                 metadata: {name: db-named-port, namespace: prod}\n\
                 spec:\n  selector: app == 'db'\n  ingress:\n  \
                 - {action: Allow, protocol: TCP, destination: {ports: [dbport]}}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        named,
        &[
            ("c", "b", TCP, 5432, true),
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 8080, false),
            ("c", "a", TCP, 5432, true),
        ],
    );

    // Egress deny.
    let egress = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                  metadata: {name: web-egress, namespace: prod}\n\
                  spec:\n  selector: app == 'web'\n  types: [Egress]\n  egress:\n  \
                  - {action: Deny, protocol: UDP, destination: {ports: [53]}}\n  \
                  - {action: Deny, protocol: TCP, destination: {nets: [10.65.0.3/32], notPorts: [8080]}}\n  \
                  - {action: Allow}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        egress,
        &[
            ("a", "c", UDP, 53, false),
            ("a", "b", UDP, 53, false),
            ("a", "c", TCP, 80, false),
            ("a", "c", TCP, 8080, true),
            ("a", "b", TCP, 80, true),
            ("b", "a", UDP, 53, true),
        ],
    );

    // A Calico GNP in a Deny tier with Log and Pass rules.
    let tiered = "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\n\
                  spec: {order: 100}\n---\napiVersion: projectcalico.org/v3\n\
                  kind: GlobalNetworkPolicy\nmetadata: {name: security.gate}\n\
                  spec:\n  tier: security\n  order: 10\n  selector: all()\n  types: [Ingress]\n  ingress:\n  \
                  - {action: Log}\n  \
                  - {action: Pass, source: {selector: app == 'web'}}\n  \
                  - {action: Deny, source: {selector: app == 'tool'}}\n  \
                  - {action: Allow, protocol: UDP}\n---\n\
                  apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                  metadata: {name: db-only-5432, namespace: prod}\n\
                  spec:\n  selector: app == 'db'\n  ingress:\n  \
                  - {action: Allow, protocol: TCP, destination: {ports: [5432]}}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        tiered,
        &[
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 80, false),
            ("a", "c", TCP, 80, true),
            ("c", "b", TCP, 5432, false),
            ("b", "a", TCP, 80, false),
            ("b", "a", UDP, 53, true),
        ],
    );
}

fn apply_state(
    lab: &Lab,
    dp: &mut PolicyDataplane,
    policies: &str,
    labels: &[(&str, &str)],
    pods: &[&str],
) -> ApplyReport {
    let model = model_of(&format!("{}{policies}", lab.base_yaml(labels)));
    dp.set_desired(state_of(lab, &model, pods));
    dp.apply().expect("apply")
}

fn udp_from(lab: &Lab, src: &str, from: Ipv4Addr, dst: &str) -> bool {
    let to = SocketAddr::from((lab.pod(dst).ip, UDP_PORT));
    reach(&lab.pod(src).ns, Some(from), to, UDP)
}

fn tcp(lab: &Lab, src: &str, dst: &str, port: u16) -> bool {
    let to = SocketAddr::from((lab.pod(dst).ip, port));
    reach(&lab.pod(src).ns, None, to, TCP)
}

#[test]
fn spoofed_sources_and_unknown_interfaces_are_dropped() {
    let lab = Lab::new(4);
    let a = lab.pod("a");
    let spoof = Ipv4Addr::new(10, 65, 0, 99);
    a.ns.add_addr("eth0", &format!("{spoof}/32"))
        .expect("extra addr");
    lab.node
        .add_dev_route(&format!("{spoof}/32"), &a.iface)
        .expect("route back");
    let mut dp = lab.dataplane();

    // Before any state: every vr* interface is unknown, so nothing passes.
    assert!(!tcp(&lab, "a", "b", 80));

    apply_state(&lab, &mut dp, "", &LABELS, &["a", "b", "c"]);
    assert!(udp_from(&lab, "a", a.ip, "b"), "own address passes");
    assert!(
        !udp_from(&lab, "a", spoof, "b"),
        "spoofed source is dropped"
    );
    // d's veth is a vr* interface the maps do not know: nothing in or out.
    assert!(!tcp(&lab, "d", "a", 80));
    assert!(!tcp(&lab, "a", "d", 80));
    assert!(tcp(&lab, "a", "c", 80));

    // Positive controls: the same packets pass once the address / interface is known.
    let model = model_of(&lab.base_yaml(&LABELS));
    let mut pods: Vec<LocalEndpoint> = ["a", "b", "c", "d"]
        .iter()
        .map(|p| lab.pod(p).workload())
        .collect();
    pods[0]
        .nets
        .push(format!("{spoof}/32").parse().expect("net"));
    dp.set_desired(PolicyState::new(policy::compile::compile(&model), pods));
    let report = dp.apply().expect("apply");
    assert_eq!(report.chains_rewritten, 0, "{report:?}");
    assert_eq!(
        report.chains_created, 2,
        "only d's two endpoint chains: {report:?}"
    );
    assert!(udp_from(&lab, "a", spoof, "b"));
    assert!(tcp(&lab, "d", "a", 80));
}

const DEFAULT_DENY: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: default-deny, namespace: prod}\n\
    spec: {podSelector: {}, policyTypes: [Ingress]}\n---\n\
    apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: db-from-frontend, namespace: prod}\n\
    spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  \
    - from: [{podSelector: {matchLabels: {role: frontend}}}]\n";

#[test]
fn filtering_survives_the_agent_and_a_new_agent_adopts_the_table_unchanged() {
    let lab = Lab::new(4);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "c", "b", 80));
    let before = lab.listing();
    drop(dp); // the agent is gone

    assert!(!tcp(&lab, "c", "b", 80), "policy stays enforced");
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "d", "a", 80), "unknown vr* still dropped");
    assert_eq!(lab.listing(), before);

    let mut dp = lab.dataplane();
    assert_eq!(lab.listing(), before, "adopting changes nothing");
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.read_back, "{report:?}");
    assert!(report.is_noop(), "same state, nothing to send: {report:?}");
    assert_eq!(lab.listing(), before);
    // The re-applied state is in place and incremental again.
    let again = dp.apply().expect("apply");
    assert!(again.is_noop() && !again.read_back);
}

/// The name of the nft set (IPv4) that holds `addr` among the `vr-s-…` selector sets.
fn selector_set_with(lab: &Lab, addr: Ipv4Addr) -> String {
    let listing = lab.listing();
    let mut current = None;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("set ") {
            current = rest.split_whitespace().next().map(str::to_string);
        }
        if t.contains(&addr.to_string())
            && let Some(name) = &current
            && name.starts_with("vr-s-")
        {
            return name.clone();
        }
    }
    panic!("no selector set holds {addr}:\n{listing}");
}

#[test]
fn resync_restores_elements_removed_by_hand() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    let before = lab.listing();
    assert!(tcp(&lab, "a", "b", 80));

    let set = selector_set_with(&lab, lab.pod("a").ip);
    let elem = format!("{{ {} }}", lab.pod("a").ip);
    lab.nft(&["delete", "element", "inet", "vrouter", &set, &elem]);
    let dispatch = format!("{{ \"{}\" }}", lab.pod("b").iface);
    lab.nft(&[
        "delete", "element", "inet", "vrouter", "vr-to-wl", &dispatch,
    ]);
    assert!(!tcp(&lab, "a", "b", 80), "drift takes effect");

    // apply() trusts its own record; resync() reads the kernel back.
    assert!(dp.apply().expect("apply").is_noop());
    let report = dp.resync().expect("resync");
    assert!(report.read_back);
    assert_eq!(report.elements_added, 2, "{report:?}");
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(lab.listing(), before);
    assert!(tcp(&lab, "a", "b", 80));
    assert!(dp.resync().expect("resync").is_noop());
}

#[test]
fn a_label_change_only_changes_set_elements() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(tcp(&lab, "a", "b", 80));

    // a loses `role: frontend`: it leaves the selector's set, nothing else changes.
    let relabelled = [
        ("a", "{app: web, projectcalico.org/orchestrator: k8s}"),
        LABELS[1],
        LABELS[2],
    ];
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &relabelled, &["a", "b", "c"]);
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(
        (report.elements_added, report.elements_removed),
        (0, 1),
        "{report:?}"
    );
    let model = model_of(&format!("{}{DEFAULT_DENY}", lab.base_yaml(&relabelled)));
    let probe = Probe {
        src: idx(&lab, "a"),
        dst: idx(&lab, "b"),
        protocol: TCP,
        port: 80,
    };
    assert!(!evaluate(&lab, &model, &probe));
    assert!(!tcp(&lab, "a", "b", 80));

    // And back.
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(
        (report.elements_added, report.elements_removed),
        (1, 0),
        "{report:?}"
    );
    assert!(tcp(&lab, "a", "b", 80));

    // The local endpoint b stops being `app: db`: db-from-frontend no longer applies to it.
    // That is a membership element (b's interface leaves the policy's set), no rule.
    let not_db = [
        LABELS[0],
        ("b", "{app: cache, projectcalico.org/orchestrator: k8s}"),
        LABELS[2],
    ];
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &not_db, &["a", "b", "c"]);
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(
        (report.elements_added, report.elements_removed),
        (0, 1),
        "{report:?}"
    );
    let model = model_of(&format!("{}{DEFAULT_DENY}", lab.base_yaml(&not_db)));
    let probe = Probe {
        src: idx(&lab, "a"),
        dst: idx(&lab, "b"),
        protocol: TCP,
        port: 80,
    };
    assert!(!evaluate(&lab, &model, &probe));
    assert!(!tcp(&lab, "a", "b", 80));
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.only_elements_changed(), "{report:?}");
    assert!(tcp(&lab, "a", "b", 80));
}

/// A listing as a sorted list of its blocks (nft lists objects in creation order, which
/// differs between an incrementally built table and one loaded from a script).
fn blocks(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = listing
        .split("\n\n")
        .map(|b| {
            b.trim()
                .trim_start_matches("table inet vrouter {")
                .trim_end_matches('}')
                .trim()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_nft_text_is_valid_and_programs_the_same_table() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    let policies = format!(
        "{DEFAULT_DENY}---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
         metadata: {{name: icmp-and-ports}}\nspec:\n  selector: all()\n  ingress:\n  \
         - {{action: Log}}\n  - {{action: Allow, protocol: ICMP, icmp: {{type: 8, code: 0}}}}\n  \
         - {{action: Deny, protocol: ICMP, notICMP: {{type: 3}}}}\n  \
         - {{action: Allow, protocol: TCP, source: {{notNets: [10.66.0.0/16]}}, destination: {{ports: [22, '8000:8100', dbport], notPorts: [8050]}}}}\n  \
         - {{action: Pass, protocol: UDP, notProtocol: TCP}}\n"
    );
    apply_state(&lab, &mut dp, &policies, &LABELS, &["a", "b", "c"]);
    let script = dp.desired_script();
    // Only prefixed names: nft parses its own listing and our script.
    let path = std::env::temp_dir().join(format!("vr-nft-{}.nft", std::process::id()));
    std::fs::write(&path, &script).expect("write script");
    let p = path.to_string_lossy().to_string();
    lab.nft(&["-c", "-f", &p]);
    // Loaded by nft in a fresh namespace, the script gives the listing our batches gave.
    let other = Netns::new("nftcmp").expect("ns");
    other.exec_ok(&["nft", "-f", &p]).expect("nft -f");
    let theirs = other
        .exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .expect("list");
    let _ = std::fs::remove_file(&path);
    assert_eq!(blocks(&lab.listing()), blocks(&theirs));
    // And nft can re-read the listing (no keyword clashes in names).
    let listing_path = std::env::temp_dir().join(format!("vr-nft-list-{}.nft", std::process::id()));
    std::fs::write(&listing_path, lab.listing()).expect("write listing");
    other
        .exec_ok(&["nft", "-c", "-f", &listing_path.to_string_lossy()])
        .expect("listing re-parses");
    let _ = std::fs::remove_file(&listing_path);
}

#[test]
fn a_table_that_cannot_be_patched_is_rebuilt_atomically() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    let before = lab.listing();
    drop(dp);
    // Someone replaces a set by one of another type.
    lab.nft(&["flush", "chain", "inet", "vrouter", "vr-output"]);
    lab.nft(&["delete", "set", "inet", "vrouter", "vr-wl-ifaces"]);
    lab.nft(&[
        "add",
        "set",
        "inet",
        "vrouter",
        "vr-wl-ifaces",
        "{ type ipv4_addr; }",
    ]);
    let mut dp = lab.dataplane();
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.full_rebuild, "{report:?}");
    assert_eq!(blocks(&lab.listing()), blocks(&before));
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "c", "b", 80));
}
