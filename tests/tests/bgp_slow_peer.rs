//! A route-reflector client that stops reading does not stall the others, and gets the
//! coalesced final state once it reads again.
//!
//! ```text
//!   namespace vt-slowpeer-*, everything on lo:
//!     vrouter speaker 127.0.0.1:179, cluster id 10.255.0.1 (in-process, memory FIB)
//!     clients A 127.1.0.1 (announces), B 127.1.0.2 (reads), S 127.1.0.3 (tiny receive
//!     buffer, does not read at first): raw sessions from this test
//!   socket buffers capped at 64 KiB in the namespace (net.ipv4.tcp_wmem / tcp_rmem)
//! ```
//!
//! 1. A announces ROUNDS × PREFIXES UPDATEs, every one with its own attribute set (MED =
//!    round and prefix), so nothing packs and the bytes for S are far more than the socket
//!    buffers between the speaker and S hold.
//! 2. B receives every prefix with its final MED while S still reads nothing, and S's
//!    session stays Established.
//! 3. The speaker wrote S fewer UPDATEs than B (S's changes coalesced while its socket was
//!    full).
//! 4. S starts reading and ends with every prefix at its final MED; it is still Established.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp::fsm::State;
use bgp::speaker::netns::{FibChoice, NetnsSpeaker};
use bgp::speaker::{MemoryFib, PeerConfig, PeerStatus, SpeakerConfig};
use bgp::wire::{
    Capability, CodecContext, Family, Message, Nlri, Open, Origin, PathAttributes, Prefix, Update,
    decode_message, encode_message,
};
use test_support::Netns;

const ASN: u32 = 64512;
const SPEAKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const ROUNDS: u32 = 10;
const PREFIXES: u32 = 300;
const WAIT: Duration = Duration::from_secs(60);

fn ctx() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        ..CodecContext::default()
    }
}

fn client_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 0, i)
}

fn prefix(i: u32) -> Prefix {
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    Prefix::new(IpAddr::V4(Ipv4Addr::from(base + i * 64)), 26).unwrap()
}

/// A client's session: a blocking socket opened inside the namespace.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    /// Connects from `me` (inside `ns`), with a small receive buffer if asked, and brings the
    /// session to Established.
    fn establish(ns: &Netns, me: Ipv4Addr, receive_buffer: Option<u32>) -> Client {
        let stream = ns
            .run(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    if let Some(size) = receive_buffer {
                        socket.set_recv_buffer_size(size).unwrap();
                    }
                    socket.bind(SocketAddr::new(me.into(), 0)).unwrap();
                    let stream = socket
                        .connect(SocketAddr::new(SPEAKER.into(), 179))
                        .await
                        .unwrap();
                    let stream = stream.into_std().unwrap();
                    stream.set_nonblocking(false).unwrap();
                    stream
                })
            })
            .unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut client = Client {
            stream,
            pending: Vec::new(),
        };
        let caps = vec![
            Capability::MultiProtocol(Family::Ipv4Unicast.afi_safi()),
            Capability::FourOctetAs(ASN),
        ];
        client.send(&Message::Open(Open::new(ASN, 240, me, caps)));
        assert!(matches!(client.read(), Some(Message::Open(_))));
        client.send(&Message::Keepalive);
        loop {
            match client.read() {
                Some(Message::Keepalive) => break,
                Some(_) => {}
                None => panic!("session from {me} closed while opening"),
            }
        }
        client
    }

    fn send(&mut self, message: &Message) {
        let bytes = encode_message(message, &ctx()).unwrap();
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next message; `None` when the connection closed.
    fn read(&mut self) -> Option<Message> {
        loop {
            if self.pending.len() >= 19 {
                let size = usize::from(u16::from_be_bytes([self.pending[16], self.pending[17]]));
                if self.pending.len() >= size {
                    let message = decode_message(&self.pending[..size], &ctx()).unwrap();
                    self.pending.drain(..size);
                    return Some(message);
                }
            }
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// What a reading client holds: prefix → MED of its latest announcement.
type View = Arc<Mutex<HashMap<Prefix, u32>>>;

/// Reads `client`'s session on a thread until it closes, recording every announcement.
fn follow(mut client: Client) -> View {
    let view: View = Arc::default();
    let held = Arc::clone(&view);
    std::thread::spawn(move || {
        while let Some(message) = client.read() {
            if let Message::Update(update) = message {
                let mut held = held.lock().unwrap();
                for nlri in &update.withdrawn {
                    held.remove(&nlri.prefix);
                }
                for nlri in &update.announced {
                    held.insert(nlri.prefix, update.attributes.med.unwrap_or(0));
                }
            }
        }
    });
    view
}

fn med(round: u32, i: u32) -> u32 {
    round * 100_000 + i
}

/// Waits until `view` holds every prefix with its last round's MED.
fn wait_final(view: &View, who: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (have, last) = {
            let held = view.lock().unwrap();
            let last = (0..PREFIXES)
                .filter(|i| held.get(&prefix(*i)) == Some(&med(ROUNDS - 1, *i)))
                .count();
            (held.len(), last)
        };
        if last == PREFIXES as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who}: {last} of {PREFIXES} prefixes at their final MED ({have} held)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn peer_status(speaker: &NetnsSpeaker, runtime: &tokio::runtime::Runtime, i: u8) -> PeerStatus {
    let address = IpAddr::V4(client_ip(i));
    runtime
        .block_on(speaker.handle().peer(address))
        .unwrap()
        .unwrap()
}

#[test]
fn a_client_that_does_not_read_neither_stalls_the_others_nor_misses_the_final_state() {
    test_support::trace_init();
    let ns = Netns::new("slowpeer").unwrap();
    // Small socket buffers (per namespace), so what S does not read fills them quickly.
    ns.sysctl("net.ipv4.tcp_wmem", "4096 16384 65536").unwrap();
    ns.sysctl("net.ipv4.tcp_rmem", "4096 16384 65536").unwrap();
    let mut config = SpeakerConfig::new(SPEAKER, ASN);
    config.cluster_id = Some(Ipv4Addr::new(10, 255, 0, 1));
    config.graceful_restart = None;
    for i in 1..=3 {
        let mut peer = PeerConfig::new(IpAddr::V4(client_ip(i)), ASN).passive(true);
        peer.route_reflector_client = true;
        config.peers.push(peer);
    }
    let speaker =
        NetnsSpeaker::spawn(&ns.path(), config, FibChoice::Memory(MemoryFib::new())).unwrap();
    ns.wait_for_listen(179, Duration::from_secs(10)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut a = Client::establish(&ns, client_ip(1), None);
    let b = follow(Client::establish(&ns, client_ip(2), None));
    let s = Client::establish(&ns, client_ip(3), Some(4096));

    // 1. A's rounds: every UPDATE its own attribute set, ~0.5 KB each.
    for round in 0..ROUNDS {
        for i in 0..PREFIXES {
            let attrs = PathAttributes {
                origin: Origin::Igp,
                next_hop: Some(Ipv4Addr::new(10, 1, 0, 1)),
                local_pref: Some(100),
                med: Some(med(round, i)),
                communities: (0..100).collect(),
                ..PathAttributes::default()
            };
            a.send(&Message::Update(Update::announce(
                attrs,
                vec![Nlri::new(prefix(i))],
            )));
        }
    }

    // 2. B gets the final state while S reads nothing; S stays up.
    wait_final(&b, "B");
    let (sent_b, sent_s) = (
        peer_status(&speaker, &runtime, 2),
        peer_status(&speaker, &runtime, 3),
    );
    assert_eq!(sent_s.state, State::Established, "{sent_s:?}");
    // 3. Coalesced: S was written fewer UPDATEs than B.
    assert!(
        sent_s.updates_sent < sent_b.updates_sent,
        "S {} UPDATEs, B {}",
        sent_s.updates_sent,
        sent_b.updates_sent
    );

    // 4. S reads: it ends with the final state.
    let s = follow(s);
    wait_final(&s, "S");
    let (sent_b, sent_s) = (
        peer_status(&speaker, &runtime, 2),
        peer_status(&speaker, &runtime, 3),
    );
    assert_eq!(sent_s.state, State::Established, "{sent_s:?}");
    assert!(
        sent_s.updates_sent < sent_b.updates_sent,
        "S {} UPDATEs, B {}",
        sent_s.updates_sent,
        sent_b.updates_sent
    );
    eprintln!(
        "UPDATEs written: B {}, S {}",
        sent_b.updates_sent, sent_s.updates_sent
    );
    speaker.kill();
}
