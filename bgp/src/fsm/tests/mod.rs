//! Spec-style FSM tests (rustybgp style): one RFC 4271 §8.2.2 state × event per test, with an
//! injected clock (a base `Instant` plus offsets; the FSM never reads the clock itself).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::collision::{self, Loser};
use super::*;
use crate::wire::{
    AS_TRANS, AddPathMode, Capability, GracefulRestartCap, Message, MessageError, Nlri,
    Notification, Open, Prefix, RouteRefresh, Update,
};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const AS: u32 = 64512;

#[allow(clippy::disallowed_methods)] // tests pick the base instant; the FSM only adds to it
fn base() -> Instant {
    Instant::now()
}

struct Harness {
    session: Session,
    t0: Instant,
}

impl Harness {
    fn new(config: SessionConfig) -> Harness {
        Harness {
            session: Session::new(config),
            t0: base(),
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn step(&mut self, secs: u64, input: Input) -> Vec<Output> {
        let now = self.at(secs);
        self.session.handle(now, input)
    }

    fn state(&self) -> State {
        self.session.state()
    }

    /// Drives ManualStart → Connect → OpenSent → OpenConfirm → Established at t=0.
    fn establish(&mut self, open: Open) -> Vec<Output> {
        self.step(0, Input::ManualStart);
        self.step(0, Input::TcpConnected(Direction::Outgoing));
        self.step(0, Input::Message(Message::Open(open)));
        self.step(0, Input::Message(Message::Keepalive))
    }
}

fn config() -> SessionConfig {
    SessionConfig::new(AS, AS, LOCAL_ID)
}

fn gr_cap(f_bit: bool, restart_state: bool, n_bit: bool) -> Capability {
    Capability::GracefulRestart(GracefulRestartCap {
        restart_state,
        notification: n_bit,
        restart_time: 120,
        families: Family::ALL.iter().map(|f| (f.afi_safi(), f_bit)).collect(),
    })
}

/// An OPEN like BIRD's under Calico's template: both families, route refresh, GR, 4-octet AS,
/// ADD-PATH both ways.
fn peer_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    let caps = vec![
        Capability::MultiProtocol(Family::Ipv4Unicast.afi_safi()),
        Capability::MultiProtocol(Family::Ipv6Unicast.afi_safi()),
        Capability::RouteRefresh,
        gr_cap(true, false, false),
        Capability::FourOctetAs(asn),
        Capability::AddPath(
            Family::ALL
                .iter()
                .map(|f| (f.afi_safi(), AddPathMode::Both))
                .collect(),
        ),
    ];
    Open::new(asn, hold, id, caps)
}

fn open_with(caps: Vec<Capability>) -> Open {
    Open::new(AS, 90, PEER_ID, caps)
}

fn sent(out: &[Output]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(out: &[Output]) -> Option<(u8, u8, Vec<u8>)> {
    sent(out).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.subcode, n.data.clone())),
        _ => None,
    })
}

fn armed(out: &[Output], timer: Timer) -> Option<Instant> {
    out.iter().find_map(|o| match o {
        Output::ArmTimer { timer: t, deadline } if *t == timer => Some(*deadline),
        _ => None,
    })
}

fn established_ctx(out: &[Output]) -> SessionContext {
    out.iter()
        .find_map(|o| match o {
            Output::Established(ctx) => Some(ctx.clone()),
            _ => None,
        })
        .expect("no Established output")
}

fn down(out: &[Output]) -> Option<(DownReason, Option<GrRetention>)> {
    out.iter().find_map(|o| match o {
        Output::Down { reason, retain } => Some((reason.clone(), retain.clone())),
        _ => None,
    })
}

fn update_for(prefix: &str) -> Update {
    let prefix: Prefix = prefix.parse().unwrap();
    Update::announce(Default::default(), vec![Nlri::new(prefix)])
}

// --- Idle ---

#[test]
fn manual_start_enters_connect_and_connects() {
    let mut h = Harness::new(config());
    let out = h.step(0, Input::ManualStart);
    assert_eq!(h.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(h.at(5)));
}

#[test]
fn passive_manual_start_enters_active_without_connecting() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..config()
    });
    let out = h.step(0, Input::ManualStart);
    assert_eq!(h.state(), State::Active);
    assert!(!out.contains(&Output::Connect));
    assert_eq!(armed(&out, Timer::ConnectRetry), None);
}

#[test]
fn manual_start_is_ignored_outside_idle() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    assert!(h.step(1, Input::ManualStart).is_empty());
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn idle_refuses_incoming_connection() {
    let mut h = Harness::new(config());
    let out = h.step(0, Input::TcpConnected(Direction::Incoming));
    assert_eq!(out, vec![Output::Disconnect]);
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn idle_ignores_messages() {
    let mut h = Harness::new(config());
    assert!(h.step(0, Input::Message(Message::Keepalive)).is_empty());
    assert_eq!(h.state(), State::Idle);
}

// --- Connect / Active ---

#[test]
fn connect_tcp_acked_sends_open_and_enters_open_sent() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    let out = h.step(1, Input::TcpConnected(Direction::Outgoing));
    assert_eq!(h.state(), State::OpenSent);
    let Some(Message::Open(open)) = sent(&out).first().copied() else {
        panic!("no OPEN")
    };
    assert_eq!(open, &config().open());
    assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));
    // RFC 4271 §8.2.2: the hold timer is set to a large value (4 minutes) until the OPEN.
    assert_eq!(armed(&out, Timer::Hold), Some(h.at(241)));
    assert_eq!(h.session.direction(), Some(Direction::Outgoing));
}

#[test]
fn active_incoming_connection_sends_open() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..config()
    });
    h.step(0, Input::ManualStart);
    let out = h.step(3, Input::TcpConnected(Direction::Incoming));
    assert_eq!(h.state(), State::OpenSent);
    assert!(matches!(sent(&out)[0], Message::Open(_)));
    assert_eq!(h.session.direction(), Some(Direction::Incoming));
}

#[test]
fn connect_retry_expiry_in_connect_retries_the_connection() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    let out = h.step(5, Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(h.state(), State::Connect);
    assert_eq!(out.iter().filter(|o| **o == Output::Connect).count(), 1);
    assert!(out.contains(&Output::Disconnect));
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(h.at(10)));
}

#[test]
fn connect_retry_expiry_in_active_moves_to_connect() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    h.step(1, Input::TcpConnectionFails); // OpenSent → Active with ConnectRetry armed
    assert_eq!(h.state(), State::Active);
    let out = h.step(6, Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(h.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
}

#[test]
fn early_timer_wakeup_is_ignored() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    assert!(
        h.step(4, Input::TimerExpired(Timer::ConnectRetry))
            .is_empty()
    );
    assert!(
        h.step(4, Input::TimerExpired(Timer::Hold)).is_empty(),
        "hold not armed"
    );
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn tcp_failure_in_connect_goes_idle_and_arms_idle_hold() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    let out = h.step(1, Input::TcpConnectionFails);
    assert_eq!(h.state(), State::Idle);
    assert_eq!(armed(&out, Timer::IdleHold), Some(h.at(6)));
    assert_eq!(h.session.connect_retry_counter(), 1);
    assert!(
        down(&out).is_none(),
        "never established, nothing to withdraw"
    );
}

#[test]
fn idle_hold_expiry_restarts_automatically() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(1, Input::TcpConnectionFails);
    let out = h.step(6, Input::TimerExpired(Timer::IdleHold));
    assert_eq!(h.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert_eq!(
        h.session.connect_retry_counter(),
        1,
        "automatic start keeps the counter"
    );
}

#[test]
fn without_idle_hold_a_failed_session_stays_idle() {
    let mut h = Harness::new(SessionConfig {
        idle_hold: None,
        ..config()
    });
    h.step(0, Input::ManualStart);
    let out = h.step(1, Input::TcpConnectionFails);
    assert_eq!(h.state(), State::Idle);
    assert_eq!(armed(&out, Timer::IdleHold), None);
}

#[test]
fn manual_stop_in_connect_closes_without_notification() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    let out = h.step(1, Input::ManualStop);
    assert_eq!(h.state(), State::Idle);
    assert!(notification(&out).is_none());
    assert!(out.contains(&Output::Disconnect));
    assert_eq!(
        armed(&out, Timer::IdleHold),
        None,
        "manual stop does not restart"
    );
}

#[test]
fn unexpected_message_in_connect_drops_to_idle() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::Message(Message::Keepalive));
    assert_eq!(h.state(), State::Idle);
}

// --- DelayOpen ---

#[test]
fn delay_open_waits_before_sending_open() {
    let mut h = Harness::new(SessionConfig {
        delay_open: Some(Duration::from_secs(2)),
        ..config()
    });
    h.step(0, Input::ManualStart);
    let out = h.step(0, Input::TcpConnected(Direction::Outgoing));
    assert!(sent(&out).is_empty());
    assert_eq!(armed(&out, Timer::DelayOpen), Some(h.at(2)));
    assert_eq!(h.state(), State::Connect);
    let out = h.step(2, Input::TimerExpired(Timer::DelayOpen));
    assert!(matches!(sent(&out)[0], Message::Open(_)));
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn open_during_delay_open_answers_open_and_keepalive() {
    let mut h = Harness::new(SessionConfig {
        delay_open: Some(Duration::from_secs(2)),
        ..config()
    });
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Incoming));
    let out = h.step(1, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    let msgs = sent(&out);
    assert!(matches!(msgs[0], Message::Open(_)));
    assert_eq!(msgs[1], &Message::Keepalive);
    assert_eq!(h.state(), State::OpenConfirm);
    assert!(out.contains(&Output::StopTimer(Timer::DelayOpen)));
}

#[test]
fn tcp_failure_during_delay_open_goes_active() {
    let mut h = Harness::new(SessionConfig {
        delay_open: Some(Duration::from_secs(2)),
        ..config()
    });
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(1, Input::TcpConnectionFails);
    assert_eq!(h.state(), State::Active);
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(h.at(6)));
}

// --- OpenSent ---

#[test]
fn open_exchange_reaches_open_confirm_and_sends_keepalive() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(1, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    assert_eq!(h.state(), State::OpenConfirm);
    assert_eq!(sent(&out), vec![&Message::Keepalive]);
    assert_eq!(armed(&out, Timer::Hold), Some(h.at(91)));
    assert_eq!(armed(&out, Timer::Keepalive), Some(h.at(31)));
    assert_eq!(h.session.remote_id(), Some(PEER_ID));
}

#[test]
fn open_exchange_reaches_established() {
    let mut h = Harness::new(config());
    let out = h.establish(peer_open(AS, PEER_ID, 90));
    assert_eq!(h.state(), State::Established);
    assert!(out.contains(&Output::StateChanged {
        from: State::OpenConfirm,
        to: State::Established
    }));
    established_ctx(&out);
    assert_eq!(h.session.connect_retry_counter(), 0);
}

#[test]
fn established_context_carries_negotiated_capabilities() {
    let mut h = Harness::new(config());
    let ctx = established_ctx(&h.establish(peer_open(AS, PEER_ID, 90)));
    assert_eq!(ctx.remote_asn, AS);
    assert_eq!(ctx.remote_id, PEER_ID);
    assert!(ctx.ibgp());
    assert_eq!(ctx.families, FamilySet::of(&Family::ALL));
    assert!(ctx.four_octet_as && ctx.route_refresh && !ctx.enhanced_route_refresh);
    assert_eq!(ctx.add_path_receive, FamilySet::of(&Family::ALL));
    assert_eq!(ctx.add_path_send, FamilySet::of(&Family::ALL));
    let gr = ctx.graceful_restart.clone().unwrap();
    assert_eq!(gr.restart_time, Duration::from_secs(120));
    assert_eq!(gr.forwarding_preserved, FamilySet::of(&Family::ALL));
    assert_eq!(h.session.codec(), ctx.codec());
}

#[test]
fn negotiated_hold_time_is_the_minimum_and_keepalive_a_third() {
    let mut h = Harness::new(config()); // we offer 240
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(0, Input::Message(Message::Open(peer_open(AS, PEER_ID, 30))));
    assert_eq!(h.session.context().unwrap().hold_time, 30);
    assert_eq!(armed(&out, Timer::Hold), Some(h.at(30)));
    assert_eq!(armed(&out, Timer::Keepalive), Some(h.at(10)));
}

#[test]
fn zero_hold_time_disables_hold_and_keepalive_timers() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(0, Input::Message(Message::Open(peer_open(AS, PEER_ID, 0))));
    assert_eq!(armed(&out, Timer::Hold), None);
    assert_eq!(armed(&out, Timer::Keepalive), None);
    assert!(out.contains(&Output::StopTimer(Timer::Hold)));
    h.step(0, Input::Message(Message::Keepalive));
    assert_eq!(h.state(), State::Established);
    assert_eq!(h.session.next_deadline(), None);
}

#[test]
fn unacceptable_hold_time_sends_open_error_6() {
    for hold in [1u16, 2] {
        let mut h = Harness::new(config());
        h.step(0, Input::ManualStart);
        h.step(0, Input::TcpConnected(Direction::Outgoing));
        let out = h.step(
            0,
            Input::Message(Message::Open(peer_open(AS, PEER_ID, hold))),
        );
        assert_eq!(
            notification(&out),
            Some((2, 6, hold.to_be_bytes().to_vec()))
        );
        assert_eq!(h.state(), State::Idle);
    }
}

#[test]
fn bad_peer_as_sends_open_error_2_with_the_as_field() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(
        0,
        Input::Message(Message::Open(peer_open(65001, PEER_ID, 90))),
    );
    assert_eq!(
        notification(&out),
        Some((2, 2, 65001u16.to_be_bytes().to_vec()))
    );
    assert!(out.contains(&Output::Disconnect));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn as_zero_is_bad_peer_as() {
    let open = Open::new(0, 90, PEER_ID, vec![]);
    assert_eq!(
        negotiate(&SessionConfig::new(AS, 0, LOCAL_ID), &open)
            .unwrap_err()
            .subcode,
        Notification::BAD_PEER_AS
    );
}

#[test]
fn zero_bgp_identifier_sends_open_error_3() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(
        0,
        Input::Message(Message::Open(peer_open(AS, Ipv4Addr::UNSPECIFIED, 90))),
    );
    assert_eq!(notification(&out), Some((2, 3, vec![0, 0, 0, 0])));
}

#[test]
fn ibgp_peer_with_our_identifier_is_bad_bgp_identifier() {
    let err = negotiate(&config(), &peer_open(AS, LOCAL_ID, 90)).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 3));
}

#[test]
fn ebgp_peer_with_our_identifier_is_accepted_per_rfc6286() {
    let ctx = negotiate(
        &SessionConfig::new(AS, 65001, LOCAL_ID),
        &peer_open(65001, LOCAL_ID, 90),
    )
    .unwrap();
    assert!(!ctx.ibgp());
}

#[test]
fn no_common_family_sends_unsupported_capability() {
    let ours = SessionConfig {
        families: FamilySet::of(&[Family::Ipv6Unicast]),
        ..config()
    };
    let open = open_with(vec![Capability::MultiProtocol(
        Family::Ipv4Unicast.afi_safi(),
    )]);
    let err = negotiate(&ours, &open).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 7));
    // Data: the MP capability we need (code 1, length 4, AFI 2, SAFI 1).
    assert_eq!(err.data, vec![1, 4, 0, 2, 0, 1]);
}

#[test]
fn peer_without_multiprotocol_capability_speaks_ipv4_unicast() {
    let ctx = negotiate(&config(), &open_with(vec![])).unwrap();
    assert_eq!(ctx.families, FamilySet::of(&[Family::Ipv4Unicast]));
    assert!(!ctx.four_octet_as && !ctx.route_refresh && ctx.graceful_restart.is_none());
}

#[test]
fn four_octet_peer_is_recognised_through_as_trans() {
    let big = 4_200_000_001;
    let open = peer_open(big, PEER_ID, 90);
    assert_eq!(open.my_as, AS_TRANS);
    let ctx = negotiate(&SessionConfig::new(AS, big, LOCAL_ID), &open).unwrap();
    assert_eq!(ctx.remote_asn, big);
    assert!(ctx.four_octet_as);
}

#[test]
fn four_octet_capability_with_wrong_my_as_is_bad_peer_as() {
    let big = 4_200_000_001;
    let mut open = peer_open(big, PEER_ID, 90);
    open.my_as = 100;
    let err = negotiate(&SessionConfig::new(AS, big, LOCAL_ID), &open).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 2));
}

#[test]
fn add_path_is_negotiated_per_direction_and_family() {
    let open = open_with(vec![
        Capability::MultiProtocol(Family::Ipv4Unicast.afi_safi()),
        Capability::MultiProtocol(Family::Ipv6Unicast.afi_safi()),
        Capability::AddPath(vec![
            (Family::Ipv4Unicast.afi_safi(), AddPathMode::Send),
            (Family::Ipv6Unicast.afi_safi(), AddPathMode::Receive),
        ]),
    ]);
    let ctx = negotiate(&config(), &open).unwrap();
    assert_eq!(ctx.add_path_receive, FamilySet::of(&[Family::Ipv4Unicast]));
    assert_eq!(ctx.add_path_send, FamilySet::of(&[Family::Ipv6Unicast]));
}

#[test]
fn hold_timer_expiry_in_open_sent_sends_4_0() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(240, Input::TimerExpired(Timer::Hold));
    assert_eq!(notification(&out), Some((4, 0, vec![])));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn update_in_open_sent_is_fsm_error_1() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(0, Input::Message(Message::Keepalive));
    assert_eq!(notification(&out), Some((5, 1, vec![])));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn notification_in_open_sent_goes_idle_without_reply() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(
        0,
        Input::Message(Message::Notification(Notification::cease(5))),
    );
    assert!(notification(&out).is_none());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn tcp_failure_in_open_sent_returns_to_active() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let out = h.step(2, Input::TcpConnectionFails);
    assert_eq!(h.state(), State::Active);
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(h.at(7)));
    assert!(out.contains(&Output::StopTimer(Timer::Hold)));
}

#[test]
fn open_header_error_sends_its_notification() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    let error = MessageError {
        notification: Notification::new(1, 1, vec![]),
        reason: "bad marker".into(),
        incomplete: false,
    };
    let out = h.step(0, Input::MessageError(error));
    assert_eq!(notification(&out), Some((1, 1, vec![])));
    assert_eq!(h.state(), State::Idle);
}

// --- OpenConfirm ---

fn open_confirm() -> Harness {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    h.step(0, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    assert_eq!(h.state(), State::OpenConfirm);
    h
}

#[test]
fn hold_timer_expiry_in_open_confirm_sends_4_0() {
    let mut h = open_confirm();
    let out = h.step(90, Input::TimerExpired(Timer::Hold));
    assert_eq!(notification(&out), Some((4, 0, vec![])));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn keepalive_timer_in_open_confirm_sends_keepalive() {
    let mut h = open_confirm();
    let out = h.step(30, Input::TimerExpired(Timer::Keepalive));
    assert_eq!(sent(&out), vec![&Message::Keepalive]);
    assert_eq!(armed(&out, Timer::Keepalive), Some(h.at(60)));
}

#[test]
fn update_in_open_confirm_is_fsm_error_2() {
    let mut h = open_confirm();
    let out = h.step(
        1,
        Input::Message(Message::Update(update_for("10.0.0.0/24"))),
    );
    assert_eq!(notification(&out), Some((5, 2, vec![])));
}

#[test]
fn manual_stop_in_open_confirm_sends_cease_2() {
    let mut h = open_confirm();
    let out = h.step(1, Input::ManualStop);
    assert_eq!(notification(&out), Some((6, 2, vec![])));
    assert_eq!(h.state(), State::Idle);
}

mod established;
