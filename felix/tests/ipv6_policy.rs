//! IPv6 through the nftables policy dataplane with real traffic: two pods with IPv6
//! addresses behind a node namespace, a policy allowing one port, checked against the policy
//! evaluator; and anti-spoofing for a WorkloadEndpoint whose ipNetworks is wider than a host
//! (/30): every address of it may be used as a source, others are dropped. Needs root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use felix::calc::{LocalEndpoint, PolicyDesired};
use felix::nft::PolicyDataplane;
use policy::model::EndpointId;
use policy::rule::Protocol;
use policy::{Flow, Model, Peer, Verdict};
use test_support::{Netns, traffic, veth_pair};

const TIMEOUT: Duration = Duration::from_millis(600);

fn serve(ns: &Netns) {
    let tcp = [80, 8080].map(|p| SocketAddr::from((Ipv6Addr::UNSPECIFIED, p)));
    traffic::serve_tcp_ok(ns.name(), &tcp).expect("listen");
    traffic::serve_udp_echo(ns.name(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53))).expect("udp");
}

fn tcp(ns: &Netns, to: IpAddr, port: u16) -> bool {
    traffic::tcp_ok(ns.name(), SocketAddr::new(to, port), TIMEOUT).expect("netns")
}

fn udp_from(ns: &Netns, from: IpAddr, to: IpAddr) -> bool {
    traffic::udp_echo(ns.name(), from, SocketAddr::new(to, 53), TIMEOUT).expect("bind")
}

struct Pod {
    ns: Netns,
    name: &'static str,
    iface: String,
    v4: &'static str,
    v6: &'static str,
}

fn pod(node: &Netns, i: usize, name: &'static str, v4: &'static str, v6: &'static str) -> Pod {
    let ns = Netns::new(&format!("v6{name}")).expect("pod ns");
    let iface = format!("vr{:011x}", 0x6600 + i);
    veth_pair(node, &iface, &ns, "eth0").expect("veth");
    node.ip(&["addr", "add", "169.254.1.1/32", "dev", &iface])
        .expect("gw");
    node.ip(&[
        "-6",
        "addr",
        "add",
        "fd66::ffff/128",
        "dev",
        &iface,
        "nodad",
    ])
    .expect("gw6");
    node.ip(&["route", "add", v4, "dev", &iface])
        .expect("route");
    node.ip(&["-6", "route", "add", &format!("{v6}/128"), "dev", &iface])
        .expect("route6");
    let first = v4.split('/').next().expect("addr");
    ns.add_addr("eth0", &format!("{first}/32")).expect("addr");
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{v6}/128"),
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("addr6");
    ns.ip(&["route", "add", "169.254.1.1", "dev", "eth0"])
        .expect("gw route");
    ns.add_route("default", "169.254.1.1").expect("default");
    ns.ip(&["-6", "route", "add", "fd66::ffff", "dev", "eth0"])
        .expect("gw6 route");
    ns.ip(&["-6", "route", "add", "default", "via", "fd66::ffff"])
        .expect("default6");
    serve(&ns);
    Pod {
        ns,
        name,
        iface,
        v4,
        v6,
    }
}

impl Pod {
    fn endpoint(&self) -> LocalEndpoint {
        LocalEndpoint {
            id: EndpointId::new("prod", self.name),
            iface: self.iface.clone(),
            nets: vec![
                self.v4.parse().expect("net"),
                format!("{}/128", self.v6).parse().expect("net"),
            ],
            mac: None,
        }
    }

    fn yaml(&self, app: &str) -> String {
        format!(
            "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: {}, namespace: prod, labels: {{app: {app}}}}}\n\
             spec: {{interfaceName: {}, ipNetworks: ['{}', '{}/128']}}\n",
            self.name, self.iface, self.v4, self.v6
        )
    }
}

const POLICY: &str = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
    metadata: {name: web-80-from-client, namespace: prod}\n\
    spec: {selector: app == 'web', ingress: [{action: Allow, protocol: TCP, \
    source: {selector: app == 'client'}, destination: {ports: [80]}}, \
    {action: Allow, protocol: UDP}]}\n";

/// `POLICY`'s TCP rule for IPv4 only.
const POLICY_V4: &str = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
    metadata: {name: web-80-from-client, namespace: prod}\n\
    spec: {selector: app == 'web', ingress: [{action: Allow, ipVersion: 4, protocol: TCP, \
    source: {selector: app == 'client'}, destination: {ports: [80]}}]}\n";

fn evaluated(model: &Model, src: &str, dst: &str, port: u16) -> bool {
    let flow = Flow::new(
        Peer::Endpoint(EndpointId::new("prod", src)),
        Peer::Endpoint(EndpointId::new("prod", dst)),
        Protocol::TCP,
        Some(port),
    );
    model.evaluate(&flow).expect("evaluate").verdict == Verdict::Allow
}

#[test]
fn ipv6_policy_and_anti_spoofing_of_a_wider_endpoint_network() {
    test_support::trace_init();
    let node = Netns::new("v6node").expect("node");
    node.enable_forwarding().expect("forwarding");
    // The client owns 10.66.0.4/30; the server one address. The client's IPv6 source holds
    // the bytes 0a42:0004 (10.66.0.4) at offset 12 of its header, where an IPv4 header has
    // the source address: read as IPv4 it is in the client's selector set (see the
    // IPv4-only policy below).
    let client = pod(&node, 0, "client", "10.66.0.4/30", "fd66:0:a42:4::1");
    let web = pod(&node, 1, "web", "10.66.1.1/32", "fd66::2");
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: prod}}\n{}{}{POLICY}",
        client.yaml("client"),
        web.yaml("web")
    );
    // Neighbour discovery settles before filtering starts (the first packets of a fresh
    // veth can be lost while addresses resolve).
    for (from, to) in [(&client, web.v6), (&web, client.v6)] {
        let live = (0..20).any(|_| from.ns.ping(to.parse().expect("addr")).is_ok());
        assert!(live, "no IPv6 path {} → {to}", from.name);
    }
    let docs = datastore::resource::parse_documents(&yaml).expect("yaml");
    let model = policy::convert::model_from_resources(&docs).expect("model");
    let mut dp = node
        .run(|| PolicyDataplane::new().expect("dataplane"))
        .expect("netns");
    dp.set_desired(PolicyDesired::new(
        policy::compile::compile(&model),
        [client.endpoint(), web.endpoint()],
    ));
    dp.apply().expect("apply");

    let web6: IpAddr = web.v6.parse().expect("addr");
    for (port, expected) in [(80, true), (8080, false)] {
        assert_eq!(evaluated(&model, "client", "web", port), expected);
        assert_eq!(
            tcp(&client.ns, web6, port),
            expected,
            "IPv6 client → web:{port}"
        );
    }
    // The same policy over IPv4 (its rules for both families share the chain, each testing
    // its family).
    let web4: IpAddr = "10.66.1.1".parse().expect("addr");
    for (port, expected) in [(80, true), (8080, false)] {
        assert_eq!(
            tcp(&client.ns, web4, port),
            expected,
            "IPv4 client → web:{port}"
        );
    }
    // No policy selects the client: default allow, both ways agree.
    assert!(evaluated(&model, "web", "client", 8080));
    assert!(tcp(&web.ns, client.v6.parse().expect("addr"), 8080));

    // Anti-spoofing: sources inside the client's /30 pass, outside it are dropped.
    client
        .ns
        .ip(&["addr", "add", "10.66.0.6/32", "dev", "eth0"])
        .expect("second address");
    client
        .ns
        .ip(&["addr", "add", "10.66.0.9/32", "dev", "eth0"])
        .expect("outside address");
    assert!(udp_from(&client.ns, "10.66.0.4".parse().expect("a"), web4));
    assert!(
        udp_from(&client.ns, "10.66.0.6".parse().expect("a"), web4),
        "an address of the /30 is the endpoint's own"
    );
    assert!(
        !udp_from(&client.ns, "10.66.0.9".parse().expect("a"), web4),
        "outside the /30: spoofed, dropped"
    );

    // An IPv4-only rule: its policy chain is entered for IPv4 only (and tests no family
    // itself); IPv6 traffic the policy selects finds no rule and is dropped at the end of
    // the tier, IPv4 traffic is allowed as before. (Were the IPv6 packet evaluated by the
    // IPv4 rule, the bytes at the IPv4 source offset, 0a42:0004, would match the set.)
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: prod}}\n{}{}{POLICY_V4}",
        client.yaml("client"),
        web.yaml("web")
    );
    let docs = datastore::resource::parse_documents(&yaml).expect("yaml");
    let model = policy::convert::model_from_resources(&docs).expect("model");
    dp.set_desired(PolicyDesired::new(
        policy::compile::compile(&model),
        [client.endpoint(), web.endpoint()],
    ));
    dp.apply().expect("apply");
    assert!(tcp(&client.ns, web4, 80), "IPv4 client → web:80");
    assert!(!tcp(&client.ns, web6, 80), "IPv6 client → web:80");
    assert!(!tcp(&client.ns, web4, 8080), "IPv4 client → web:8080");
}
