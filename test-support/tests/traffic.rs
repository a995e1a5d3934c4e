//! Real-kernel tests of code run inside namespaces: `run_in` threads, the traffic helpers
//! (listeners, probes, the source recorder) and the route monitor. Needs root. Traffic goes
//! only to addresses inside the namespaces these tests create.
#![allow(clippy::unwrap_used)] // the helper outside #[test] fns: a panic is the failure report

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use test_support::{Netns, RouteMonitor, SourceRecorder, trace_init, traffic, veth_pair};

const TIMEOUT: Duration = Duration::from_millis(600);

/// Two namespaces on one veth: a = 10.252.0.1, b = 10.252.0.2.
fn pair() -> (Netns, Netns) {
    trace_init();
    let a = Netns::new("tra").unwrap();
    let b = Netns::new("trb").unwrap();
    veth_pair(&a, "eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.252.0.1/24").unwrap();
    b.add_addr("eth0", "10.252.0.2/24").unwrap();
    (a, b)
}

#[test]
fn run_in_binds_sockets_in_the_namespace_and_resumes_panics() {
    let (a, _b) = pair();
    // 10.252.0.1 exists only inside a.
    let bound = a
        .run(|| TcpListener::bind("10.252.0.1:0").map(drop).is_ok())
        .unwrap();
    assert!(bound);
    assert!(
        TcpListener::bind("10.252.0.1:0").is_err(),
        "not in the host"
    );
    let panicked = catch_unwind(AssertUnwindSafe(|| a.run(|| -> u8 { panic!("inside") })));
    assert!(panicked.is_err(), "a panic inside reaches the caller");
    assert!(test_support::run_in("vt-no-such-namespace", || ()).is_err());
}

#[test]
fn probes_see_listeners_and_echo_servers() {
    let (a, b) = pair();
    let b_ip = Ipv4Addr::new(10, 252, 0, 2);
    traffic::serve_tcp_ok(b.name(), &[SocketAddr::from((b_ip, 8080))]).unwrap();
    traffic::serve_udp_echo(b.name(), SocketAddr::from((b_ip, 5353))).unwrap();
    let tcp = |port| traffic::tcp_ok(a.name(), SocketAddr::from((b_ip, port)), TIMEOUT).unwrap();
    assert!(tcp(8080));
    assert!(!tcp(8081), "nothing listens there");
    let from = IpAddr::V4(Ipv4Addr::new(10, 252, 0, 1));
    let echo = traffic::udp_echo(a.name(), from, SocketAddr::from((b_ip, 5353)), TIMEOUT);
    assert!(echo.unwrap());
    traffic::tcp_connect(a.name(), SocketAddr::from((b_ip, 8080)), TIMEOUT).unwrap();
    assert!(traffic::tcp_connect(a.name(), SocketAddr::from((b_ip, 8081)), TIMEOUT).is_err());
}

#[test]
fn source_recorder_names_the_source_it_saw() {
    let (a, b) = pair();
    let recorder = SourceRecorder::start(b.name(), "0.0.0.0:8090".parse().unwrap()).unwrap();
    let to: SocketAddr = "10.252.0.2:8090".parse().unwrap();
    let a_ip: IpAddr = "10.252.0.1".parse().unwrap();
    recorder.check_source(a.name(), to, a_ip).unwrap();
    let wrong: IpAddr = "10.252.0.9".parse().unwrap();
    let err = recorder.check_source(a.name(), to, wrong).unwrap_err();
    assert!(err.to_string().contains("10.252.0.1"), "{err}");
    assert!(recorder.take().is_empty(), "check_source takes what it saw");
}

#[test]
fn route_monitor_sees_deletes_and_rewrites() {
    let (a, _b) = pair();
    a.add_route("10.253.0.0/24", "10.252.0.2").unwrap();
    let monitor = RouteMonitor::start(&a, "eth0", 1).unwrap();
    // Nothing touched 10.253.0.0/24 since the monitor started.
    monitor.assert_untouched(200, "10.253.0.");
    a.ip(&["route", "del", "10.253.0.0/24"]).unwrap();
    let deleted = catch_unwind(AssertUnwindSafe(|| {
        monitor.assert_untouched(201, "10.253.0.");
    }));
    assert!(deleted.is_err(), "a deleted route fails the check");
    assert!(monitor.events().contains("Deleted"));
}
