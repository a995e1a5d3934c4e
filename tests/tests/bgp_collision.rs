//! A connection collision settled once: a raw-socket peer makes the vrouter speaker hold two
//! connections for it, the second of which has failed back to Active, then completes the first.
//!
//! ```text
//!   node 0: raw peer (listens on 179, connects to 179)  ── br0 ──  node 1: vrouter (active)
//! ```
//!
//! 1. The speaker connects out (connection A) and sends OPEN: OpenSent, outgoing.
//! 2. The raw peer connects in (connection B): the speaker keeps it as the pending session of
//!    a possible collision and sends OPEN on it too.
//! 3. The raw peer closes B: the pending session goes back to Active (RFC 4271 §8.2.2).
//! 4. The raw peer answers on A (OPEN, KEEPALIVE): A is Established, and the pending session
//!    (Active) loses the collision. Such a loser ignores OpenCollisionDump; settling it must
//!    not start again from inside its own dump (it once recursed until vrouterd's stack
//!    overflowed, after an underlay link came back in the lab).
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use bgp_support::{CLUSTER_AS, Vrouter, config, netns_path, peer};
use test_support::{Lab, Node, assert_eventually};

fn in_netns<T: Send + 'static>(node: &Node, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = netns_path(node);
    std::thread::spawn(move || {
        let ns = File::open(path).unwrap();
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        f()
    })
    .join()
    .unwrap()
}

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn open(id: Ipv4Addr) -> Vec<u8> {
    let caps = [
        2, 6, 1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        2, 6, 65, 4, 0, 0, 0xfc, 0, // 4-octet AS 64512
    ];
    let mut body = vec![4, 0xfc, 0, 0, 90];
    body.extend_from_slice(&id.octets());
    body.push(u8::try_from(caps.len()).unwrap());
    body.extend_from_slice(&caps);
    msg(1, &body)
}

/// Reads one message type; 0 when the connection closed.
fn read_type(stream: &mut TcpStream) -> u8 {
    let mut header = [0u8; 19];
    if stream.read_exact(&mut header).is_err() {
        return 0;
    }
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut body = vec![0u8; len - 19];
    if stream.read_exact(&mut body).is_err() {
        return 0;
    }
    header[18]
}

#[test]
fn a_collision_with_a_pending_session_back_in_active_is_settled_once() {
    let lab = Lab::star(2).unwrap();
    let (r, v) = (lab.node(0).clone(), lab.node(1).clone());
    let (r_ip, v_ip) = (r.ip(), v.ip());
    let listener = in_netns(&r, move || TcpListener::bind((r_ip, 179)).unwrap());
    listener.set_nonblocking(true).unwrap();

    let mut cfg = config(&v, CLUSTER_AS);
    cfg.peers.push(peer(r_ip.into(), CLUSTER_AS, false));
    let vr = Vrouter::start(&v, cfg);

    // 1. The speaker's own connection.
    let start = Instant::now();
    let mut a = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the speaker never connected"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    a.set_nonblocking(false).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_type(&mut a), 1, "the speaker's OPEN on its connection");

    // 2. The peer's connection: the pending side of a collision.
    let to = SocketAddr::new(v_ip.into(), 179);
    let mut b = in_netns(&r, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap()
    });
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        read_type(&mut b),
        1,
        "the speaker's OPEN on the incoming connection"
    );

    // 3. It fails: the pending session goes back to Active. Give the speaker a moment to
    //    read the close before the first connection completes (ordering, not timing).
    drop(b);
    std::thread::sleep(Duration::from_millis(500));

    // 4. The first connection completes.
    a.write_all(&open(r_ip)).unwrap();
    a.write_all(&msg(4, &[])).unwrap();
    loop {
        match read_type(&mut a) {
            4 => break,
            0 => panic!("the speaker closed its connection"),
            _ => {}
        }
    }
    assert_eventually!(vr.established(r_ip.into()));
    // Still the same session and still answering (a stack overflow would have aborted the
    // process; a wrong winner would have closed A).
    a.write_all(&msg(4, &[])).unwrap();
    vr.established(r_ip.into()).unwrap();
    drop(a);
    drop(listener);
}
