//! Established-state, collision and graceful-restart tests (RFC 4271 §8.2.2, §6.8; RFC 4724).

use std::net::Ipv4Addr;

use super::*;

// --- Established ---

fn established() -> Harness {
    let mut h = Harness::new(config());
    h.establish(peer_open(AS, PEER_ID, 90));
    h
}

#[test]
fn keepalive_received_restarts_the_hold_timer() {
    let mut h = established();
    let out = h.step(60, Input::Message(Message::Keepalive));
    assert_eq!(armed(&out, Timer::Hold), Some(h.at(150)));
    // The original deadline (t=90) is now stale: the wake-up is ignored.
    assert!(h.step(90, Input::TimerExpired(Timer::Hold)).is_empty());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn hold_timer_expiry_in_established_sends_4_0_and_reports_down() {
    let mut h = established();
    let out = h.step(90, Input::TimerExpired(Timer::Hold));
    assert_eq!(notification(&out), Some((4, 0, vec![])));
    assert_eq!(h.state(), State::Idle);
    let (reason, retain) = down(&out).unwrap();
    assert_eq!(reason, DownReason::HoldTimerExpired);
    assert_eq!(
        retain, None,
        "hold expiry sends a NOTIFICATION: no GR without the N bit"
    );
}

#[test]
fn keepalive_timer_in_established_sends_keepalive_and_rearms() {
    let mut h = established();
    let out = h.step(30, Input::TimerExpired(Timer::Keepalive));
    assert_eq!(sent(&out), vec![&Message::Keepalive]);
    assert_eq!(armed(&out, Timer::Keepalive), Some(h.at(60)));
}

#[test]
fn update_in_established_goes_to_the_rib_and_restarts_hold() {
    let mut h = established();
    let update = update_for("10.244.1.0/26");
    let out = h.step(10, Input::Message(Message::Update(update.clone())));
    assert!(out.contains(&Output::Update(update)));
    assert_eq!(armed(&out, Timer::Hold), Some(h.at(100)));
}

#[test]
fn end_of_rib_is_reported_separately() {
    let mut h = established();
    let out = h.step(
        1,
        Input::Message(Message::Update(Update::end_of_rib(Family::Ipv6Unicast))),
    );
    assert!(out.contains(&Output::EndOfRib(Family::Ipv6Unicast)));
    assert!(!out.iter().any(|o| matches!(o, Output::Update(_))));
}

#[test]
fn open_in_established_is_fsm_error_3() {
    let mut h = established();
    let out = h.step(1, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    assert_eq!(notification(&out), Some((5, 3, vec![])));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn notification_in_established_reports_down() {
    let mut h = established();
    let cease = Notification::cease(Notification::ADMINISTRATIVE_RESET);
    let out = h.step(1, Input::Message(Message::Notification(cease.clone())));
    assert!(notification(&out).is_none(), "never answer a NOTIFICATION");
    assert_eq!(
        down(&out).unwrap().0,
        DownReason::NotificationReceived(cease)
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn malformed_update_sends_its_notification_and_closes() {
    let mut h = established();
    let error = MessageError {
        notification: Notification::new(3, 10, vec![33, 10]),
        reason: "prefix length 33".into(),
        incomplete: false,
    };
    let out = h.step(1, Input::MessageError(error));
    assert_eq!(notification(&out), Some((3, 10, vec![33, 10])));
    assert!(out.contains(&Output::Disconnect));
    assert!(down(&out).is_some());
}

#[test]
fn manual_stop_in_established_sends_cease_and_flushes() {
    let mut h = established();
    let out = h.step(1, Input::ManualStop);
    assert_eq!(notification(&out), Some((6, 2, vec![])));
    assert_eq!(down(&out), Some((DownReason::ManualStop, None)));
    assert_eq!(h.session.next_deadline(), None, "every timer stopped");
}

#[test]
fn send_update_only_in_established() {
    let mut h = open_confirm();
    assert!(
        h.step(1, Input::SendUpdate(update_for("10.1.0.0/24")))
            .is_empty()
    );
    h.step(1, Input::Message(Message::Keepalive));
    let out = h.step(1, Input::SendUpdate(update_for("10.1.0.0/24")));
    assert!(matches!(sent(&out)[0], Message::Update(_)));
}

#[test]
fn route_refresh_request_is_sent_when_negotiated() {
    let mut h = established();
    let out = h.step(1, Input::RequestRouteRefresh(Family::Ipv6Unicast));
    assert_eq!(
        sent(&out),
        vec![&Message::RouteRefresh(RouteRefresh {
            afi_safi: Family::Ipv6Unicast.afi_safi(),
            subtype: 0
        })]
    );
}

#[test]
fn route_refresh_is_not_sent_without_the_capability() {
    let mut h = Harness::new(config());
    h.establish(open_with(vec![Capability::MultiProtocol(
        Family::Ipv4Unicast.afi_safi(),
    )]));
    assert!(
        h.step(1, Input::RequestRouteRefresh(Family::Ipv4Unicast))
            .is_empty()
    );
}

#[test]
fn received_route_refresh_asks_for_readvertisement() {
    let mut h = established();
    let rr = RouteRefresh {
        afi_safi: Family::Ipv4Unicast.afi_safi(),
        subtype: 0,
    };
    let out = h.step(1, Input::Message(Message::RouteRefresh(rr)));
    assert_eq!(
        out,
        vec![Output::RouteRefresh {
            family: Family::Ipv4Unicast,
            subtype: 0
        }]
    );
    // A family that was not negotiated is ignored.
    let odd = RouteRefresh {
        afi_safi: crate::wire::AfiSafi { afi: 1, safi: 128 },
        subtype: 0,
    };
    assert!(
        h.step(1, Input::Message(Message::RouteRefresh(odd)))
            .is_empty()
    );
}

// --- Collision detection (RFC 4271 §6.8) ---

#[test]
fn collision_lower_local_id_keeps_the_incoming_connection() {
    let keep = collision::surviving_direction(LOCAL_ID, AS, PEER_ID, AS);
    assert_eq!(keep, Direction::Incoming);
}

#[test]
fn collision_higher_local_id_keeps_the_outgoing_connection() {
    let keep = collision::surviving_direction(Ipv4Addr::new(10, 0, 0, 9), AS, PEER_ID, AS);
    assert_eq!(keep, Direction::Outgoing);
}

#[test]
fn collision_with_equal_ids_keeps_the_larger_as_connection() {
    let id = Ipv4Addr::new(1, 1, 1, 1);
    assert_eq!(
        collision::surviving_direction(id, 65002, id, 65001),
        Direction::Outgoing
    );
    assert_eq!(
        collision::surviving_direction(id, 65001, id, 65002),
        Direction::Incoming
    );
}

#[test]
fn collision_detect_dumps_the_losing_connection() {
    let t = base();
    let mut outgoing = Session::new(config());
    outgoing.handle(t, Input::ManualStart);
    outgoing.handle(t, Input::TcpConnected(Direction::Outgoing));
    let mut incoming = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    incoming.handle(t, Input::ManualStart);
    incoming.handle(t, Input::TcpConnected(Direction::Incoming));
    // Nothing to decide until one side has the peer's identifier.
    assert_eq!(collision::detect(&outgoing, &incoming), None);
    incoming.handle(t, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    // Our id 10.0.0.1 < 10.0.0.2: the connection the peer opened survives.
    assert_eq!(collision::detect(&outgoing, &incoming), Some(Loser::First));
    let out = outgoing.handle(t, Input::OpenCollisionDump);
    assert_eq!(notification(&out), Some((6, 7, vec![])));
    assert_eq!(outgoing.state(), State::Idle);
}

#[test]
fn collision_with_an_established_session_closes_the_new_one() {
    let h = established();
    let mut newer = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    newer.handle(h.at(5), Input::ManualStart);
    newer.handle(h.at(5), Input::TcpConnected(Direction::Incoming));
    assert_eq!(collision::detect(&h.session, &newer), Some(Loser::Second));
    assert_eq!(collision::detect(&newer, &h.session), Some(Loser::First));
}

// --- Graceful restart (RFC 4724) ---

#[test]
fn gr_connection_loss_keeps_routes_stale_and_arms_restart_timer() {
    let mut h = established();
    let out = h.step(10, Input::TcpConnectionFails);
    let (reason, retain) = down(&out).unwrap();
    assert_eq!(reason, DownReason::ConnectionLost);
    let retain = retain.expect("GR applies to a TCP failure");
    assert_eq!(retain.families, FamilySet::of(&Family::ALL));
    assert_eq!(armed(&out, Timer::Restart), Some(h.at(130)));
    assert_eq!(h.session.stale_families(), FamilySet::of(&Family::ALL));
}

#[test]
fn gr_restart_timer_expiry_sweeps_stale_routes() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    let out = h.step(130, Input::TimerExpired(Timer::Restart));
    assert!(out.contains(&Output::SweepStale(FamilySet::of(&Family::ALL))));
    assert!(h.session.stale_families().is_empty());
}

#[test]
fn gr_peer_back_with_forwarding_state_keeps_stale_until_end_of_rib() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    h.step(15, Input::TimerExpired(Timer::IdleHold));
    h.step(15, Input::TcpConnected(Direction::Outgoing));
    let mut open = peer_open(AS, PEER_ID, 90);
    open.capabilities[3] = gr_cap(true, true, false);
    h.step(16, Input::Message(Message::Open(open)));
    let out = h.step(16, Input::Message(Message::Keepalive));
    assert!(out.contains(&Output::StopTimer(Timer::Restart)));
    assert!(!out.iter().any(|o| matches!(o, Output::SweepStale(_))));
    assert_eq!(armed(&out, Timer::StalePath), Some(h.at(136)));
    assert!(
        established_ctx(&out)
            .graceful_restart
            .unwrap()
            .restart_state
    );
    let out = h.step(
        20,
        Input::Message(Message::Update(Update::end_of_rib(Family::Ipv4Unicast))),
    );
    assert!(out.contains(&Output::EndOfRib(Family::Ipv4Unicast)));
    assert_eq!(
        h.session.stale_families(),
        FamilySet::of(&[Family::Ipv6Unicast])
    );
    let out = h.step(
        21,
        Input::Message(Message::Update(Update::end_of_rib(Family::Ipv6Unicast))),
    );
    assert!(out.contains(&Output::StopTimer(Timer::StalePath)));
    assert!(h.session.stale_families().is_empty());
}

#[test]
fn gr_peer_back_without_forwarding_state_sweeps_immediately() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    h.step(15, Input::TimerExpired(Timer::IdleHold));
    h.step(15, Input::TcpConnected(Direction::Outgoing));
    let mut open = peer_open(AS, PEER_ID, 90);
    open.capabilities[3] = gr_cap(false, true, false);
    h.step(16, Input::Message(Message::Open(open)));
    let out = h.step(16, Input::Message(Message::Keepalive));
    assert!(out.contains(&Output::SweepStale(FamilySet::of(&Family::ALL))));
    assert_eq!(armed(&out, Timer::StalePath), None);
}

#[test]
fn gr_stale_path_timer_sweeps_when_end_of_rib_never_comes() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    h.step(15, Input::TimerExpired(Timer::IdleHold));
    h.step(15, Input::TcpConnected(Direction::Outgoing));
    h.step(
        16,
        Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))),
    );
    h.step(16, Input::Message(Message::Keepalive));
    let out = h.step(136, Input::TimerExpired(Timer::StalePath));
    assert!(out.contains(&Output::SweepStale(FamilySet::of(&Family::ALL))));
}

#[test]
fn gr_does_not_apply_to_notification_without_n_bit() {
    let mut h = established();
    let out = h.step(
        1,
        Input::Message(Message::Notification(Notification::cease(4))),
    );
    assert_eq!(down(&out).unwrap().1, None);
}

#[test]
fn gr_with_n_bit_applies_to_notification_but_not_hard_reset() {
    let gr = GracefulRestartConfig {
        notification: true,
        ..GracefulRestartConfig::default()
    };
    let ours = SessionConfig {
        graceful_restart: Some(gr),
        ..config()
    };
    let mut open = peer_open(AS, PEER_ID, 90);
    open.capabilities[3] = gr_cap(true, false, true);

    let mut h = Harness::new(ours.clone());
    h.establish(open.clone());
    let out = h.step(
        1,
        Input::Message(Message::Notification(Notification::cease(4))),
    );
    assert!(
        down(&out).unwrap().1.is_some(),
        "RFC 8538: GR covers a Cease"
    );

    let mut h = Harness::new(ours);
    h.establish(open);
    let out = h.step(
        1,
        Input::Message(Message::Notification(Notification::cease(9))),
    );
    assert_eq!(down(&out).unwrap().1, None, "hard reset drops GR state");
}

#[test]
fn session_without_gr_flushes_routes_on_connection_loss() {
    let mut h = Harness::new(SessionConfig {
        graceful_restart: None,
        ..config()
    });
    let ctx = established_ctx(&h.establish(peer_open(AS, PEER_ID, 90)));
    assert!(ctx.graceful_restart.is_none());
    let out = h.step(1, Input::TcpConnectionFails);
    assert_eq!(down(&out), Some((DownReason::ConnectionLost, None)));
}

#[test]
fn restarting_speaker_sets_the_r_bit_only_in_the_first_open() {
    let gr = GracefulRestartConfig {
        restarting: true,
        ..GracefulRestartConfig::default()
    };
    let mut h = Harness::new(SessionConfig {
        graceful_restart: Some(gr),
        ..config()
    });
    let r_bit = |open: &Open| {
        open.capabilities
            .iter()
            .any(|c| matches!(c, Capability::GracefulRestart(g) if g.restart_state))
    };
    assert!(r_bit(&h.session.config().open()));
    h.establish(peer_open(AS, PEER_ID, 90));
    assert!(!r_bit(&h.session.config().open()));
}

#[test]
fn forwarding_state_bit_is_advertised_per_family() {
    let gr = GracefulRestartConfig {
        forwarding_preserved: true,
        ..GracefulRestartConfig::default()
    };
    let open = SessionConfig {
        graceful_restart: Some(gr),
        ..config()
    }
    .open();
    let families = open
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.families.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        families,
        Family::ALL
            .iter()
            .map(|f| (f.afi_safi(), true))
            .collect::<Vec<_>>()
    );
}

#[test]
fn manual_stop_sweeps_routes_held_for_a_restarting_peer() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    let out = h.step(11, Input::ManualStop);
    assert!(out.contains(&Output::SweepStale(FamilySet::of(&Family::ALL))));
    assert!(out.contains(&Output::StopTimer(Timer::Restart)));
}

#[test]
fn codec_context_is_default_until_open_confirm() {
    let mut h = Harness::new(config());
    h.step(0, Input::ManualStart);
    h.step(0, Input::TcpConnected(Direction::Outgoing));
    assert_eq!(h.session.codec(), crate::wire::CodecContext::default());
    h.step(0, Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))));
    assert!(h.session.codec().four_octet_as);
    assert!(
        h.session
            .codec()
            .add_path_receive
            .contains(Family::Ipv4Unicast)
    );
}

#[test]
fn gr_state_moves_to_the_session_that_replaces_the_old_one() {
    let mut h = established();
    h.step(10, Input::TcpConnectionFails);
    let mut fresh = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    let out = fresh.inherit_graceful_restart(&mut h.session);
    assert_eq!(
        out,
        vec![Output::ArmTimer {
            timer: Timer::Restart,
            deadline: h.at(130)
        }]
    );
    assert!(h.session.stale_families().is_empty());
    assert_eq!(fresh.stale_families(), FamilySet::of(&Family::ALL));
    // The peer comes back on the new session and finishes with End-of-RIB.
    fresh.handle(h.at(20), Input::ManualStart);
    fresh.handle(h.at(20), Input::TcpConnected(Direction::Incoming));
    fresh.handle(
        h.at(20),
        Input::Message(Message::Open(peer_open(AS, PEER_ID, 90))),
    );
    let out = fresh.handle(h.at(20), Input::Message(Message::Keepalive));
    assert!(out.contains(&Output::StopTimer(Timer::Restart)));
    assert_eq!(armed(&out, Timer::StalePath), Some(h.at(140)));
}
