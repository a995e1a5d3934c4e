//! End-to-end VXLAN on the lab (`cli::lab`) with two underlay subnets: nodes n0, n1 on subnet
//! A, n2, n3 on subnet B, joined by a router namespace that has no route to any pod CIDR.
//! Real etcd, `vrouterd` (BGP backend) in every node namespace, one pod per node made through
//! `vrouter-cni`; the pool's `vxlanMode` is changed live, the pods stay as they are.
//!
//! 1. `Never`: same-subnet pods reach each other (BGP routes), cross-subnet pods do not — the
//!    router really carries no pod routes.
//! 2. `CrossSubnet`: every pod reaches every other; on n0's underlay, tcpdump sees n0 → n1
//!    pod traffic unencapsulated (TCP between pod addresses) and n0 → n2 traffic only as UDP
//!    4789 between node addresses. n0's routes: n1's block via n1's address, n2's block via
//!    n2's tunnel address `onlink` on `vxlan.vrouter`, all protocol 80 (none from BGP).
//! 3. `Always`: every pod reaches every other; n0 → n1 is now on UDP 4789 too.
//! 4. `Never` again: cross-subnet unreachable again, the tunnel address released, the Node's
//!    VTEP fields cleared and the device gone.
//!
//! A second lab runs `vrouterd --networking-backend vxlan` (no BGP speaker at all) with an
//! `Always` pool from the start: every pod reaches every other, across the router too; a node
//! whose `vrouterd` is killed and started again keeps its device (same ifindex), and the
//! kernel sees no route or neighbour deleted.
//!
//! Needs the binaries: `cargo build --bins` first when running only `-p vrouter-tests`.
#![allow(clippy::unwrap_used)]

mod e2e_support;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::lab::{self, Lab};
use datastore::resource::Resource;
use e2e_support::{CONVERGE, all_reachable, block_of, dump_logs, ip, routes, runtime, spec};
use test_support::traffic;

const DEVICE: &str = "vxlan.vrouter";

fn pool_yaml(state: &lab::state::State, vxlan: &str) -> String {
    lab::pool_yaml(&state.pool, state.block_size)
        .replace("vxlanMode: Never", &format!("vxlanMode: {vxlan}"))
}

/// The Node resource `name` from the lab's etcd.
fn node(lab: &Lab, name: &str) -> datastore::resource::Node {
    let endpoint = lab.etcd_endpoint().unwrap();
    runtime().block_on(async {
        let store = datastore::etcd::Store::connect(&datastore::etcd::EtcdConfig::new([endpoint]))
            .await
            .unwrap();
        let resources = datastore::resource_store::ResourceStore::new(store);
        match resources
            .get(datastore::resource::Kind::Node, None, name)
            .await
            .unwrap()
        {
            Some(Resource::Node(n)) => n,
            other => panic!("node {name}: {other:?}"),
        }
    })
}

/// Cross-subnet pairs unreachable and same-subnet pairs reachable (both ways, TCP and ICMP).
fn split_by_subnet(lab: &Lab, subnet_of: &dyn Fn(&str) -> usize) -> Result<(), String> {
    let m = lab.measure().map_err(|e| format!("{e:#}"))?;
    let pods = &lab.state().pods;
    let mut wrong = Vec::new();
    for from in pods {
        for to in pods {
            let Some(cell) = m.get(&from.name, &to.name) else {
                continue;
            };
            let same = subnet_of(&from.node) == subnet_of(&to.node);
            if cell.tcp != same || cell.icmp != same {
                wrong.push(format!("{} -> {}: {cell:?}", from.name, to.name));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// A TCP connection from namespace `from` to `to:port` (the lab pods' listeners).
fn connect(from: &str, to: Ipv4Addr, port: u16) {
    traffic::tcp_connect(from, SocketAddr::from((to, port)), Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// tcpdump on a node's underlay interface, text output in a file; killed when dropped.
struct Capture {
    child: Child,
    out: PathBuf,
}

impl Capture {
    fn start(ns: &str, filter: &str, dir: &std::path::Path, tag: &str) -> Capture {
        let out = dir.join(format!("tcpdump-{tag}.txt"));
        let err = dir.join(format!("tcpdump-{tag}.err"));
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-i", "eth0", "-nn", "-l", "-U",
            ])
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("tcpdump (run `make deps`)");
        let start = Instant::now();
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "tcpdump did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { child, out }
    }

    /// Stops the capture (SIGINT flushes) and returns its lines.
    fn finish(mut self) -> Vec<String> {
        // Packets still in flight are written within a moment with -U.
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects from pod `from` to each of `to` while capturing on `node`'s underlay; returns
/// (UDP 4789 lines, unencapsulated TCP lines to the pods' listener port).
fn capture(lab: &Lab, node: &str, from: &str, to: &[Ipv4Addr]) -> (Vec<String>, Vec<String>) {
    let port = lab.state().listen_port;
    let dir = lab.dir().to_path_buf();
    let udp = Capture::start(node, "udp port 4789", &dir, "udp");
    let tcp = Capture::start(node, &format!("tcp port {port}"), &dir, "tcp");
    for ip in to {
        connect(from, *ip, port);
    }
    (udp.finish(), tcp.finish())
}

fn lines_with<'a>(lines: &'a [String], needle: &str) -> Vec<&'a String> {
    lines.iter().filter(|l| l.contains(needle)).collect()
}

#[test]
fn vxlan_cross_subnet_always_and_never_on_two_subnets() {
    let mut s = spec("x", 4, 1);
    s.subnets = 2;
    let lab = Lab::up(&s).unwrap();
    let state = lab.state().clone();
    let second = state.underlay2.expect("a second subnet");
    let subnet_of = move |node_name: &str| -> usize {
        let n = state.node(node_name).unwrap();
        usize::from(n.ip.octets()[..3] == second)
    };
    let state = lab.state().clone();
    let nodes: Vec<_> = state.nodes.clone();
    assert_eq!(
        nodes.iter().map(|n| subnet_of(&n.name)).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    let pod_on = |i: usize| {
        state
            .pods
            .iter()
            .find(|p| p.node == nodes[i].name)
            .unwrap()
            .clone()
    };
    let (p0, p1, p2) = (pod_on(0), pod_on(1), pod_on(2));
    let fail = |lab: &Lab, what: &str, e: test_support::HarnessError| -> ! {
        dump_logs(lab);
        panic!(
            "{what}: {e}\nn0 routes:\n{}",
            ip(&nodes[0].name, &["route"])
        );
    };

    // 1. Never: the router carries no pod routes.
    if let Err(e) =
        test_support::eventually::poll_probe(CONVERGE, || split_by_subnet(&lab, &subnet_of))
    {
        fail(&lab, "Never: same-subnet reachable, cross-subnet not", e);
    }

    // 2. CrossSubnet, applied live.
    lab.apply_yaml(&pool_yaml(&state, "CrossSubnet")).unwrap();
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || all_reachable(&lab)) {
        fail(&lab, "CrossSubnet: full reachability", e);
    }
    let n0 = &nodes[0].name;
    let vtep = |i: usize| {
        node(&lab, &nodes[i].name)
            .spec
            .ipv4_vxlan_tunnel_addr
            .expect("a tunnel address")
    };
    let tunnel2 = vtep(2);
    let r80 = routes(n0, "80");
    let b1 = block_of(p1.ip.unwrap());
    let b2 = block_of(p2.ip.unwrap());
    assert!(
        r80.contains(&format!("{b1} via {} dev eth0", nodes[1].ip)),
        "same subnet natively: {r80:?}"
    );
    assert!(
        r80.contains(&format!("{b2} via {tunnel2} dev {DEVICE} onlink")),
        "other subnet through the tunnel: {r80:?}"
    );
    assert!(
        routes(n0, "81").iter().all(|r| !r.starts_with("10.244.")),
        "BGP installs no route of a VXLAN pool: {:?}",
        routes(n0, "81")
    );
    let link = ip(n0, &["-d", "link", "show", DEVICE]);
    assert!(
        link.contains("vxlan id 4096") && link.contains("dstport 4789"),
        "{link}"
    );
    let (udp, tcp) = capture(&lab, n0, &p0.name, &[p1.ip.unwrap(), p2.ip.unwrap()]);
    let (n0_ip, n1_ip, n2_ip) = (nodes[0].ip, nodes[1].ip, nodes[2].ip);
    assert!(
        !lines_with(&udp, &format!("{n0_ip}.")).is_empty()
            && !lines_with(&udp, &format!("> {n2_ip}.4789")).is_empty(),
        "cross-subnet traffic on UDP 4789: {udp:?}"
    );
    assert!(
        lines_with(&udp, &format!("> {n1_ip}.4789")).is_empty(),
        "same-subnet traffic is not encapsulated: {udp:?}"
    );
    assert!(
        !lines_with(&tcp, &format!("> {}.", p1.ip.unwrap())).is_empty(),
        "same-subnet pod traffic on the wire as is: {tcp:?}"
    );
    assert!(
        lines_with(&tcp, &format!("> {}.", p2.ip.unwrap())).is_empty(),
        "no unencapsulated pod traffic towards the other subnet: {tcp:?}"
    );

    // 3. Always: everything through the tunnel, same subnet included.
    lab.apply_yaml(&pool_yaml(&state, "Always")).unwrap();
    let tunnel1 = vtep(1);
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || {
        let r = routes(n0, "80");
        if r.contains(&format!("{b1} via {tunnel1} dev {DEVICE} onlink")) {
            all_reachable(&lab)
        } else {
            Err(format!("n0 routes: {r:?}"))
        }
    }) {
        fail(&lab, "Always: tunnel routes and full reachability", e);
    }
    let (udp, tcp) = capture(&lab, n0, &p0.name, &[p1.ip.unwrap()]);
    assert!(
        !lines_with(&udp, &format!("> {n1_ip}.4789")).is_empty(),
        "same-subnet traffic encapsulated with Always: {udp:?}"
    );
    assert!(
        lines_with(&tcp, &format!("> {}.", p1.ip.unwrap())).is_empty(),
        "{tcp:?}"
    );

    // 4. Never again: the router drops cross-subnet pod traffic; the VTEP goes away.
    lab.apply_yaml(&pool_yaml(&state, "Never")).unwrap();
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || {
        let n = node(&lab, n0);
        if n.spec.ipv4_vxlan_tunnel_addr.is_some() || n.spec.vxlan_tunnel_mac_addr.is_some() {
            return Err(format!("VTEP fields still set: {:?}", n.spec));
        }
        if ip(n0, &["link"]).contains(DEVICE) {
            return Err("vxlan.vrouter still there".to_string());
        }
        split_by_subnet(&lab, &subnet_of)
    }) {
        fail(&lab, "Never again", e);
    }
    assert!(
        !e2e_support::ip_allocated(&lab, tunnel2.parse().unwrap()),
        "tunnel address released"
    );
    lab.down().unwrap();
}

#[test]
fn vxlan_only_backend_needs_no_bgp() {
    let mut s = spec("w", 3, 1);
    s.subnets = 2;
    s.daemon_args = vec!["--networking-backend".into(), "vxlan".into()];
    s.bootstrap_yaml = Some(
        lab::pool_yaml(lab::DEFAULT_POOL, 26).replace("vxlanMode: Never", "vxlanMode: Always"),
    );
    let mut lab = Lab::up(&s).unwrap();
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || all_reachable(&lab)) {
        dump_logs(&lab);
        panic!("VXLAN without BGP: {e}");
    }
    for n in &lab.state().nodes {
        assert!(routes(&n.name, "81").is_empty(), "{}: BGP routes", n.name);
        let listening = Command::new("ss")
            .args(["-N", &n.name, "-Hltn"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listening.stdout);
        assert!(
            !text.contains(":179 "),
            "{}: a BGP listener: {text}",
            n.name
        );
        assert!(ip(&n.name, &["link"]).contains(DEVICE));
    }

    // Restart without churn: kill n0's vrouterd (a crash) and start it again.
    let n0 = lab.state().nodes[0].name.clone();
    let ifindex = |ns: &str| {
        ip(ns, &["-o", "link", "show", DEVICE])
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let before = (ifindex(&n0), routes(&n0, "80"));
    let events = lab.dir().join("monitor.txt");
    let mut monitor = Command::new("ip")
        .args(["-n", &n0, "monitor", "route", "neigh"])
        .stdout(File::create(&events).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The monitor is live once it prints a marker route.
    let mut live = false;
    for i in 1..50u8 {
        let marker = format!("192.0.2.{i}");
        ip(&n0, &["route", "add", "blackhole", &format!("{marker}/32")]);
        std::thread::sleep(Duration::from_millis(100));
        if std::fs::read_to_string(&events).unwrap().contains(&marker) {
            live = true;
            break;
        }
    }
    assert!(live, "ip monitor never started");
    lab.stop_daemon(0, "KILL").unwrap();
    lab.start_daemon(0, &s.daemon_args).unwrap();
    if let Err(e) = test_support::eventually::poll_probe(CONVERGE, || all_reachable(&lab)) {
        dump_logs(&lab);
        panic!("after the restart: {e}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert_eq!(
        (ifindex(&n0), routes(&n0, "80")),
        before,
        "device and routes kept"
    );
    let text = std::fs::read_to_string(&events).unwrap();
    let deleted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Deleted") && !l.contains("192.0.2."))
        .collect();
    assert!(deleted.is_empty(), "deletions on restart: {deleted:?}");
    lab.down().unwrap();
}
