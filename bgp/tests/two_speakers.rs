//! Two Sans-IO speakers wired back to back through the wire codec, the way the future `speaker`
//! module will drive the core: FSM outputs become bytes, bytes become FSM inputs, received
//! routes go to the RIB, local routes leave through an Adj-RIB-Out. Covers session setup,
//! route exchange (IPv4 body NLRI and IPv6 MP_REACH, ADD-PATH), withdraw, and a graceful
//! restart where the receiver keeps routes stale until End-of-RIB.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns: a panic is the failure report

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::{Direction, Input, Output, Session, SessionConfig, State};
use bgp::rib::{AdjRibOut, BestPathConfig, PeerInfo, Rib};
use bgp::wire::{
    Family, FamilySet, MpNextHop, Origin, PathAttributes, Prefix, decode_message, encode_message,
};

const AS: u32 = 64512;

struct Speaker {
    address: Ipv4Addr,
    session: Session,
    rib: Rib,
    out: Option<AdjRibOut>,
    /// Bytes written to the connection, oldest first.
    wire: Vec<Vec<u8>>,
}

impl Speaker {
    fn new(address: Ipv4Addr, passive: bool) -> Speaker {
        let mut config = SessionConfig::new(AS, AS, address);
        config.passive = passive;
        Speaker {
            address,
            session: Session::new(config),
            rib: Rib::new(AS, address, BestPathConfig::default()),
            out: None,
            wire: Vec::new(),
        }
    }

    fn attrs(&self) -> PathAttributes {
        let v6 = format!("fd00::{}", self.address.octets()[3])
            .parse()
            .unwrap();
        PathAttributes {
            origin: Origin::Igp,
            next_hop: Some(self.address),
            mp_next_hop: Some(MpNextHop {
                global: IpAddr::V6(v6),
                link_local: None,
            }),
            local_pref: Some(100),
            ..PathAttributes::default()
        }
    }

    fn originate(&mut self, prefix: &str) {
        let attrs = self.attrs();
        self.rib.originate(prefix.parse().unwrap(), attrs);
        self.export(prefix.parse().unwrap());
    }

    fn withdraw(&mut self, prefix: &str) {
        let prefix: Prefix = prefix.parse().unwrap();
        self.rib.withdraw_local(prefix);
        self.export(prefix);
    }

    /// Export policy for this test: advertise our own best local routes over iBGP.
    fn export(&mut self, prefix: Prefix) {
        let Some(out) = &mut self.out else { return };
        let attrs: Vec<Arc<PathAttributes>> = self
            .rib
            .best(&prefix)
            .filter(|p| p.source.is_local())
            .map(|p| Arc::clone(&p.attributes))
            .into_iter()
            .collect();
        out.set(prefix, &attrs);
    }

    fn flush(&mut self, now: Instant) -> Vec<Output> {
        let updates = self
            .out
            .as_mut()
            .map(|o| o.flush().unwrap())
            .unwrap_or_default();
        let mut outputs = Vec::new();
        for u in updates {
            outputs.extend(self.session.handle(now, Input::SendUpdate(u)));
        }
        outputs
    }

    /// Carries out FSM outputs, including the ones they cause in turn.
    fn act(&mut self, now: Instant, outputs: Vec<Output>) {
        let mut queue = outputs;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for output in queue {
                match output {
                    Output::Send(message) => {
                        let bytes = encode_message(&message, &self.session.codec()).unwrap();
                        assert!(bytes.len() <= 4096);
                        self.wire.push(bytes);
                    }
                    Output::Established(ctx) => {
                        let peer = PeerInfo {
                            address: IpAddr::V4(ctx.remote_id),
                            router_id: ctx.remote_id,
                            asn: ctx.remote_asn,
                            ibgp: ctx.ibgp(),
                            rr_client: false,
                        };
                        self.rib.peer_up(peer);
                        self.out = Some(AdjRibOut::new(ctx.codec()));
                        let local: Vec<Prefix> = self
                            .rib
                            .loc_rib()
                            .iter()
                            .filter(|(_, d)| d.best().is_some_and(|p| p.source.is_local()))
                            .map(|(p, _)| *p)
                            .collect();
                        for prefix in local {
                            self.export(prefix);
                        }
                        next.extend(self.flush(now));
                        for family in ctx.families.iter() {
                            let eor = AdjRibOut::end_of_rib(family);
                            next.extend(self.session.handle(now, Input::SendUpdate(eor)));
                        }
                    }
                    Output::Update(update) => {
                        let peer = IpAddr::V4(self.session.remote_id().unwrap());
                        self.rib.apply_update(peer, &update).unwrap();
                    }
                    Output::EndOfRib(family) => {
                        let peer = IpAddr::V4(self.session.remote_id().unwrap());
                        self.rib.end_of_rib(peer, family);
                    }
                    Output::Down { retain, .. } => {
                        let peer = self.rib_peer();
                        let keep = retain.map_or(FamilySet::EMPTY, |r| r.families);
                        self.rib.peer_down(peer, keep);
                        self.out = None;
                    }
                    Output::SweepStale(families) => {
                        let peer = self.rib_peer();
                        self.rib.sweep_stale(peer, families);
                    }
                    _ => {}
                }
            }
            queue = next;
        }
    }

    fn rib_peer(&self) -> IpAddr {
        // Both test speakers use x.x.x.1 and x.x.x.2.
        let other = if self.address.octets()[3] == 1 { 2 } else { 1 };
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, other))
    }

    fn has(&self, prefix: &str) -> bool {
        self.rib.best(&prefix.parse().unwrap()).is_some()
    }

    fn stale(&self, prefix: &str) -> bool {
        self.rib
            .best(&prefix.parse().unwrap())
            .is_some_and(|p| p.stale)
    }
}

/// Delivers every written message to the other side until both are quiet.
fn pump(a: &mut Speaker, b: &mut Speaker, now: Instant) {
    for _ in 0..100 {
        let from_a = std::mem::take(&mut a.wire);
        let from_b = std::mem::take(&mut b.wire);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for bytes in from_a {
            let message = decode_message(&bytes, &b.session.codec()).unwrap();
            let out = b.session.handle(now, Input::Message(message));
            b.act(now, out);
        }
        for bytes in from_b {
            let message = decode_message(&bytes, &a.session.codec()).unwrap();
            let out = a.session.handle(now, Input::Message(message));
            a.act(now, out);
        }
    }
    panic!("speakers never went quiet");
}

fn connect(a: &mut Speaker, b: &mut Speaker, now: Instant) {
    let out = a
        .session
        .handle(now, Input::TcpConnected(Direction::Outgoing));
    a.act(now, out);
    let out = b
        .session
        .handle(now, Input::TcpConnected(Direction::Incoming));
    b.act(now, out);
    pump(a, b, now);
}

#[allow(clippy::disallowed_methods)] // the test is the I/O shell: it owns the clock
fn t0() -> Instant {
    Instant::now()
}

#[test]
fn two_speakers_exchange_routes_and_survive_a_graceful_restart() {
    let t0 = t0();
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    // Calico mesh rule: the lower address connects, the higher is passive.
    let mut a = Speaker::new(ip_a, false);
    let mut b = Speaker::new(ip_b, true);
    a.originate("10.244.1.0/26");
    a.originate("10.244.1.64/26");
    a.originate("fd10:244:1::/122");
    b.originate("10.244.2.0/26");

    let out = a.session.handle(t0, Input::ManualStart);
    assert!(out.contains(&Output::Connect));
    a.act(t0, out);
    let out = b.session.handle(t0, Input::ManualStart);
    b.act(t0, out);
    connect(&mut a, &mut b, t0);

    assert_eq!(a.session.state(), State::Established);
    assert_eq!(b.session.state(), State::Established);
    let ctx = b.session.context().unwrap();
    assert_eq!(ctx.families, FamilySet::of(&Family::ALL));
    assert!(ctx.add_path_receive.contains(Family::Ipv4Unicast));
    for prefix in ["10.244.1.0/26", "10.244.1.64/26", "fd10:244:1::/122"] {
        assert!(b.has(prefix), "{prefix} missing at b");
    }
    let v6 = b.rib.best(&"fd10:244:1::/122".parse().unwrap()).unwrap();
    assert_eq!(v6.next_hop, Some("fd00::1".parse().unwrap()));
    assert!(a.has("10.244.2.0/26"));

    // Withdraw travels through the Adj-RIB-Out.
    let t1 = t0 + Duration::from_secs(1);
    a.withdraw("10.244.1.64/26");
    let out = a.flush(t1);
    a.act(t1, out);
    pump(&mut a, &mut b, t1);
    assert!(!b.has("10.244.1.64/26"));

    // Keepalives keep the session up across hold-time multiples.
    for s in [30u64, 60, 90, 120] {
        let now = t0 + Duration::from_secs(s);
        for sp in [&mut a, &mut b] {
            let out = sp
                .session
                .handle(now, Input::TimerExpired(bgp::fsm::Timer::Keepalive));
            sp.act(now, out);
        }
        pump(&mut a, &mut b, now);
    }
    assert_eq!(b.session.state(), State::Established);

    // A restarts: the TCP connection drops. B keeps A's routes, stale (RFC 4724).
    let t2 = t0 + Duration::from_secs(130);
    let out = b.session.handle(t2, Input::TcpConnectionFails);
    b.act(t2, out);
    assert!(b.stale("10.244.1.0/26") && b.stale("fd10:244:1::/122"));
    let mut a = Speaker::new(ip_a, false);
    a.originate("10.244.1.0/26"); // the v6 block is gone after the restart
    let t3 = t2 + Duration::from_secs(5);
    let out = b
        .session
        .handle(t3, Input::TimerExpired(bgp::fsm::Timer::IdleHold));
    b.act(t3, out);
    let out = a.session.handle(t3, Input::ManualStart);
    a.act(t3, out);
    connect(&mut a, &mut b, t3);
    assert_eq!(b.session.state(), State::Established);
    // A re-advertised 10.244.1.0/26 and sent End-of-RIB for both families: the refreshed
    // route is fresh, the one A no longer has is swept.
    assert!(b.has("10.244.1.0/26") && !b.stale("10.244.1.0/26"));
    assert!(!b.has("fd10:244:1::/122"));
    assert!(b.session.stale_families().is_empty());
}
