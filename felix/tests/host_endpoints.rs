//! Host endpoints and failsafe ports against the real kernel: a node namespace whose uplink
//! (`up0`, a veth to an "outside" namespace) is a HostEndpoint. With a deny-all policy the
//! failsafe ports (SSH 22, BGP 179 inbound; BGP 179 outbound) still work and other ports are
//! blocked; a policy allowing a port opens it. Real TCP connections, each verdict on a
//! non-failsafe port also checked against the policy evaluator. Needs root.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use felix::calc::{LocalHostEndpoint, PolicyDesired};
use felix::nft::PolicyDataplane;
use policy::model::EndpointId;
use policy::rule::Protocol;
use policy::{Flow, Model, Peer, Verdict};
use test_support::{Netns, traffic, veth_pair};

const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OUT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const TIMEOUT: Duration = Duration::from_millis(600);

/// TCP listeners answering "ok", on detached threads for the life of the test.
fn serve(ns: &Netns, ports: &[u16]) {
    let addrs: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, *p)))
        .collect();
    traffic::serve_tcp_ok(ns.name(), &addrs).expect("listen");
}

fn connects(ns: &Netns, to: Ipv4Addr, port: u16) -> bool {
    traffic::tcp_ok(ns.name(), SocketAddr::from((to, port)), TIMEOUT).expect("netns")
}

const HEP: &str = "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\n\
    metadata: {name: n1-up0, labels: {role: uplink}}\n\
    spec: {node: n1, interfaceName: up0, expectedIPs: [192.0.2.1]}\n";

const DENY_ALL: &str = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
    metadata: {name: uplink-deny}\n\
    spec: {order: 100, selector: role == 'uplink', types: [Ingress, Egress]}\n";

const ALLOW_8080: &str = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
    metadata: {name: uplink-8080}\n\
    spec: {order: 10, selector: role == 'uplink', types: [Ingress], \
    ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]}\n";

fn model_of(yaml: &str) -> Model {
    let docs = datastore::resource::parse_documents(yaml).expect("yaml");
    policy::convert::model_from_resources(&docs).expect("model")
}

fn apply(dp: &mut PolicyDataplane, model: &Model) {
    let state = PolicyDesired::new(policy::compile::compile(model), vec![]).with_host_endpoints([
        LocalHostEndpoint {
            id: EndpointId::host("n1-up0"),
            iface: "up0".into(),
        },
    ]);
    dp.set_desired(state);
    dp.apply().expect("apply");
}

/// The evaluator's verdict for outside → host endpoint on `port` (no failsafe there).
fn evaluated(model: &Model, port: u16) -> bool {
    let flow = Flow::new(
        Peer::Addr(OUT_IP.into()),
        Peer::Endpoint(EndpointId::host("n1-up0")),
        Protocol::TCP,
        Some(port),
    );
    model.evaluate(&flow).expect("evaluate").verdict == Verdict::Allow
}

#[test]
fn failsafe_ports_survive_a_deny_all_host_endpoint_policy() {
    test_support::trace_init();
    let node = Netns::new("hepnode").expect("node ns");
    let out = Netns::new("hepout").expect("outside ns");
    veth_pair(&node, "up0", &out, "eth0").expect("veth");
    node.add_addr("up0", &format!("{NODE_IP}/24"))
        .expect("addr");
    out.add_addr("eth0", &format!("{OUT_IP}/24")).expect("addr");
    serve(&node, &[22, 179, 8080]);
    serve(&out, &[179, 8080]);
    assert!(connects(&out, NODE_IP, 8080), "no policy dataplane yet");

    let mut dp = node
        .run(|| PolicyDataplane::new().expect("dataplane"))
        .expect("netns");

    // A host endpoint with no policy at all: default deny except failsafe.
    let bare = model_of(HEP);
    apply(&mut dp, &bare);
    assert!(connects(&out, NODE_IP, 22), "SSH is failsafe");
    assert!(!connects(&out, NODE_IP, 8080), "no policy: denied");
    assert!(!evaluated(&bare, 8080));

    // Deny-all policy: failsafe inbound (22, 179) and outbound (179) still work.
    let deny = model_of(&format!("{HEP}{DENY_ALL}"));
    apply(&mut dp, &deny);
    assert!(connects(&out, NODE_IP, 22), "SSH is failsafe");
    assert!(connects(&out, NODE_IP, 179), "BGP is failsafe inbound");
    assert!(connects(&node, OUT_IP, 179), "BGP is failsafe outbound");
    assert!(!connects(&out, NODE_IP, 8080), "other ports are blocked");
    assert!(!connects(&node, OUT_IP, 8080), "egress is blocked too");
    assert!(!evaluated(&deny, 8080));

    // A policy allowing 8080 (ordered before the deny) opens it, inbound only.
    let allow = model_of(&format!("{HEP}{DENY_ALL}{ALLOW_8080}"));
    apply(&mut dp, &allow);
    assert!(connects(&out, NODE_IP, 8080), "allowed by policy");
    assert!(evaluated(&allow, 8080));
    assert!(!connects(&node, OUT_IP, 8080), "egress still denied");
    assert!(connects(&out, NODE_IP, 22));

    let listing = node
        .exec_ok(&["nft", "list", "chain", "inet", "vrouter", "vr-fh-up0"])
        .expect("nft list");
    assert!(listing.contains("jump vr-failsafe-in"), "{listing}");
}
