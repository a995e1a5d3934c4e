//! Malformed UPDATEs injected over a live session by a raw-socket peer (reference/bgp.md
//! §6.6), against a vrouter speaker.
//!
//! ```text
//!   node 0: raw peer (std TcpStream opened inside the namespace)  ── br0 ──  node 1: vrouter
//! ```
//!
//! The raw peer opens the session by hand (OPEN with MP IPv4 and 4-octet AS, KEEPALIVE),
//! announces a valid route, then sends crafted bytes:
//! 1. treat-as-withdraw (RFC 7606): the same NLRI without NEXT_HOP → the route is removed, the
//!    session stays Established;
//! 2. attribute-discard: a valid UPDATE with a malformed AGGREGATOR → the route is kept;
//! 3. session reset: an NLRI of length 33 → NOTIFICATION 3/10 (Invalid Network Field) and the
//!    connection is closed;
//! 4. a bad marker → NOTIFICATION 1/1 (Connection Not Synchronized).
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use bgp_support::{CLUSTER_AS, Vrouter, config, peer, raw_message, raw_open, read_raw};
use test_support::{Lab, Node, assert_eventually};

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH: [u8; 3] = [0x40, 2, 0];
const LOCAL_PREF: [u8; 7] = [0x40, 5, 4, 0, 0, 0, 100];

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    raw_message(2, &body)
}

fn next_hop(ip: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0x40, 3, 4];
    a.extend_from_slice(&ip.octets());
    a
}

/// The raw peer's end of a session.
struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    /// Connects from inside `node`'s namespace and brings the session to Established.
    fn establish(node: &Node, to: SocketAddr) -> RawPeer {
        let stream = node
            .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap())
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut peer = RawPeer { stream };
        peer.send(&raw_open(node.ip()));
        assert_eq!(peer.read().0, 1, "expected the speaker's OPEN");
        peer.send(&raw_message(4, &[]));
        loop {
            if peer.read().0 == 4 {
                break;
            }
        }
        peer
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one message: (type, body). Type 0 means the connection closed.
    fn read(&mut self) -> (u8, Vec<u8>) {
        read_raw(&mut self.stream)
    }

    /// Reads until a NOTIFICATION arrives; returns (code, subcode) and checks the close.
    fn notification(&mut self) -> (u8, u8) {
        loop {
            match self.read() {
                (3, body) => {
                    let got = (body[0], body[1]);
                    assert_eq!(self.read().0, 0, "connection closed after the NOTIFICATION");
                    return got;
                }
                (0, _) => panic!("connection closed without a NOTIFICATION"),
                _ => {}
            }
        }
    }
}

fn setup() -> (Lab, Vrouter, RawPeer) {
    let lab = Lab::star(2).unwrap();
    let (r, v) = (lab.node(0).clone(), lab.node(1).clone());
    let mut cfg = config(&v, CLUSTER_AS);
    cfg.peers.push(peer(r.ip().into(), CLUSTER_AS, true));
    let vr = Vrouter::start(&v, cfg);
    let raw = RawPeer::establish(&r, SocketAddr::new(v.ip().into(), 179));
    assert_eventually!(vr.established(r.ip().into()));
    (lab, vr, raw)
}

fn valid_announce(nh: Ipv4Addr) -> Vec<u8> {
    let mut attrs = ORIGIN.to_vec();
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&next_hop(nh));
    attrs.extend_from_slice(&LOCAL_PREF);
    update(&attrs, &[24, 10, 244, 9])
}

#[test]
fn treat_as_withdraw_keeps_the_session_and_removes_the_route() {
    let (lab, vr, mut raw) = setup();
    let r = lab.node(0);
    raw.send(&valid_announce(r.ip()));
    assert_eventually!(vr.kernel_route("10.244.9.0/24"));
    // The same NLRI without NEXT_HOP (iBGP): RFC 7606 treat-as-withdraw.
    let mut attrs = ORIGIN.to_vec();
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&LOCAL_PREF);
    raw.send(&update(&attrs, &[24, 10, 244, 9]));
    assert_eventually!(vr.no_route("10.244.9.0/24"));
    assert_eventually!(vr.no_kernel_route("10.244.9.0/24"));
    let status = vr.established(r.ip().into()).unwrap();
    assert_eq!(status.malformed_updates, 1);
    // Still usable: a valid announcement is accepted again.
    raw.send(&valid_announce(r.ip()));
    assert_eventually!(vr.route("10.244.9.0/24"));
}

#[test]
fn attribute_discard_keeps_the_route() {
    let (lab, vr, mut raw) = setup();
    let r = lab.node(0);
    let mut attrs = ORIGIN.to_vec();
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&next_hop(r.ip()));
    attrs.extend_from_slice(&LOCAL_PREF);
    // AGGREGATOR (optional transitive, type 7) with 3 bytes instead of 8.
    attrs.extend_from_slice(&[0xc0, 7, 3, 1, 2, 3]);
    raw.send(&update(&attrs, &[24, 10, 244, 9]));
    let route = assert_eventually!(vr.route("10.244.9.0/24"));
    assert_eq!(route.from, Some(r.ip().into()));
    let status = vr.established(r.ip().into()).unwrap();
    assert_eq!(status.malformed_updates, 1);
}

#[test]
fn invalid_network_field_resets_the_session_with_3_10() {
    let (lab, vr, mut raw) = setup();
    let mut attrs = ORIGIN.to_vec();
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&next_hop(lab.node(0).ip()));
    raw.send(&update(&attrs, &[33, 10, 244, 9, 0, 0]));
    assert_eq!(raw.notification(), (3, 10));
    let status = vr.peer(lab.node(0).ip().into()).unwrap();
    assert!(status.last_error.unwrap().contains("notification"));
}

#[test]
fn bad_marker_resets_the_session_with_1_1() {
    let (_lab, _vr, mut raw) = setup();
    let mut bad = raw_message(4, &[]);
    bad[0] = 0;
    raw.send(&bad);
    assert_eq!(raw.notification(), (1, 1));
}
