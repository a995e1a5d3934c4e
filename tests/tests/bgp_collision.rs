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

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bgp_support::{CLUSTER_AS, Vrouter, config, peer, raw_message, raw_open, read_raw};
use test_support::{Lab, assert_eventually};

/// Reads one message type; 0 when the connection closed.
fn read_type(stream: &mut TcpStream) -> u8 {
    read_raw(stream).0
}

#[test]
fn a_collision_with_a_pending_session_back_in_active_is_settled_once() {
    let lab = Lab::star(2).unwrap();
    let (r, v) = (lab.node(0).clone(), lab.node(1).clone());
    let (r_ip, v_ip) = (r.ip(), v.ip());
    let listener = r
        .run(move || TcpListener::bind((r_ip, 179)).unwrap())
        .unwrap();
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
    let mut b = r
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap())
        .unwrap();
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
    a.write_all(&raw_open(r_ip)).unwrap();
    a.write_all(&raw_message(4, &[])).unwrap();
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
    a.write_all(&raw_message(4, &[])).unwrap();
    vr.established(r_ip.into()).unwrap();
    drop(a);
    drop(listener);
}
