//! The BGP session state machine (RFC 4271 §8), Sans-IO.
//!
//! `Session::handle(now, input) -> Vec<Output>`: the caller (the future `speaker`) owns the
//! socket and the clock, decodes bytes with [`Session::codec`], feeds events in and carries
//! outputs out (send this, connect, close, arm that timer, hand these routes to the RIB).
//! Timers are outputs carrying deadlines; an expiry fed back for a timer that was re-armed or
//! stopped since is ignored, so a late wake-up can never kill a healthy session.
//!
//! One `Session` per TCP connection; two connections to one peer are resolved with
//! [`collision::detect`]. Beyond RFC 4271 the session implements:
//! - capability negotiation into a [`SessionContext`] ([`context::negotiate`]), with the
//!   NOTIFICATIONs for bad peer AS, bad identifier, unacceptable hold time, unsupported
//!   capability;
//! - RFC 6608 FSM error subcodes; RFC 4486 Cease subcodes; RFC 7606 via [`crate::wire`];
//! - graceful restart (RFC 4724, receiving-speaker role): when a GR session drops the output
//!   says which families to keep as stale; the restart timer bounds the wait for the peer to
//!   come back, then End-of-RIB (or the stale-path timer) ends it per family. Restarting-speaker
//!   role: the R and F bits in our OPEN from [`GracefulRestartConfig`];
//! - route refresh (RFC 2918/7313) and ADD-PATH (RFC 7911) negotiation.
//!
//! RFC event numbers are noted on each [`Input`] variant.

pub mod collision;
mod context;
mod state;
mod timers;

pub use context::{
    GracefulRestartConfig, PeerGracefulRestart, SessionConfig, SessionContext, negotiate,
};
pub use state::{Direction, DownReason, State, Timer};

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::{
    CodecContext, Family, FamilySet, Message, MessageError, Notification, Open, RouteRefresh,
    Update,
};
use timers::Timers;

/// An event for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Event 1 (ManualStart), or event 4 when the configuration is passive.
    ManualStart,
    /// Event 2 (ManualStop): send Cease/Administrative Shutdown if a session is open.
    ManualStop,
    /// Event 16 (Tcp_CR_Acked, outgoing) or 17 (TcpConnectionConfirmed, incoming).
    TcpConnected(Direction),
    /// Event 18 (TcpConnectionFails): the connection failed or closed.
    TcpConnectionFails,
    /// Events 19–27: a decoded message.
    Message(Message),
    /// Events 21, 22, 28 (header, OPEN or UPDATE error): send its NOTIFICATION and close.
    MessageError(MessageError),
    /// Events 9–13 and the GR timers: a timer the caller armed has reached its deadline.
    TimerExpired(Timer),
    /// Event 23 (OpenCollisionDump): this connection lost a collision.
    OpenCollisionDump,
    /// Send an UPDATE (only in Established).
    SendUpdate(Update),
    /// Ask the peer to re-send a family (only if route refresh was negotiated).
    RequestRouteRefresh(Family),
}

/// Routes to keep (as stale) when a graceful-restart peer goes down (RFC 4724 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrRetention {
    /// Families whose routes stay, marked stale; every other family is flushed.
    pub families: FamilySet,
    /// How long the peer has to come back (its advertised restart time).
    pub restart_time: Duration,
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Close the TCP connection (after writing any `Send` before it).
    Disconnect,
    /// Write this message.
    Send(Message),
    /// (Re)arm a timer; feed [`Input::TimerExpired`] at `deadline`.
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        deadline: Instant,
    },
    /// Cancel a timer.
    StopTimer(Timer),
    /// The state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session reached Established with this negotiated context: start sending routes.
    Established(SessionContext),
    /// The session left Established. Without `retain` the peer's routes must be removed;
    /// with it, routes of `retain.families` become stale and the others are removed.
    Down {
        /// Why.
        reason: DownReason,
        /// Graceful-restart retention, if GR applies.
        retain: Option<GrRetention>,
    },
    /// Routes from the peer for the RIB.
    Update(Update),
    /// The peer finished its initial (or post-restart) advertisement of a family: stale routes
    /// of that family not refreshed by now must be removed.
    EndOfRib(Family),
    /// Remove every stale route of these families (restart or stale-path timer expired, or the
    /// peer came back without preserving them).
    SweepStale(FamilySet),
    /// The peer asked us to re-send a family (route refresh; `subtype` per RFC 7313).
    RouteRefresh {
        /// Family to re-advertise.
        family: Family,
        /// 0 request, 1 begin, 2 end of route refresh.
        subtype: u8,
    },
}

/// One BGP session (one TCP connection's worth of RFC 4271 state).
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: Timers,
    direction: Option<Direction>,
    context: Option<SessionContext>,
    remote_open: Option<Open>,
    connect_retry_counter: u32,
    /// Families kept stale for a GR peer, until End-of-RIB, restart or stale-path timer.
    stale: FamilySet,
    last_down: Option<DownReason>,
}

impl Session {
    /// A session in Idle.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            state: State::Idle,
            timers: Timers::default(),
            direction: None,
            context: None,
            remote_open: None,
            connect_retry_counter: 0,
            stale: FamilySet::EMPTY,
            last_down: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The negotiated context (from OpenConfirm on).
    pub fn context(&self) -> Option<&SessionContext> {
        self.context.as_ref()
    }

    /// The peer's BGP identifier, once its OPEN arrived.
    pub fn remote_id(&self) -> Option<Ipv4Addr> {
        self.remote_open.as_ref().map(|o| o.router_id)
    }

    /// Direction of the current connection.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// RFC 4271 ConnectRetryCounter.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Families whose routes are currently held stale for graceful restart.
    pub fn stale_families(&self) -> FamilySet {
        self.stale
    }

    /// Why the session last went down.
    pub fn last_down(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// The earliest running timer and its deadline (for the caller's sleep).
    pub fn next_deadline(&self) -> Option<(Timer, Instant)> {
        self.timers.next()
    }

    /// How to decode the next message received on this connection.
    pub fn codec(&self) -> CodecContext {
        match (&self.context, self.state) {
            (Some(ctx), State::OpenConfirm | State::Established) => ctx.codec(),
            _ => CodecContext::default(),
        }
    }

    /// Takes over the graceful-restart state (stale families, restart and stale-path timers)
    /// of `previous`, an earlier session to the same peer that this one replaces (for example
    /// the winner of a collision, or a fresh object for a reconnecting peer). `previous` keeps
    /// no GR state afterwards; the outputs arm this session's copies of the timers.
    pub fn inherit_graceful_restart(&mut self, previous: &mut Session) -> Vec<Output> {
        let mut out = Vec::new();
        let mut discarded = Vec::new();
        let mut stale = self.stale;
        for family in std::mem::take(&mut previous.stale).iter() {
            stale.insert(family);
        }
        self.stale = stale;
        for timer in [Timer::Restart, Timer::StalePath] {
            if let Some(deadline) = previous.timers.deadline(timer) {
                previous.timers.stop(&mut discarded, timer);
                self.timers.arm_at(&mut out, timer, deadline);
            }
        }
        out
    }

    /// Feeds one event at time `now` and returns what to do.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::ManualStart => self.start(now, &mut out),
            Input::ManualStop => self.manual_stop(&mut out),
            Input::TcpConnected(direction) => self.tcp_connected(now, direction, &mut out),
            Input::TcpConnectionFails => self.tcp_fails(now, &mut out),
            Input::Message(message) => self.message(now, message, &mut out),
            Input::MessageError(error) => {
                if matches!(self.state, State::Idle | State::Connect | State::Active) {
                    self.enter_idle(now, &mut out, None);
                } else {
                    self.send_and_close(now, &mut out, error.notification);
                }
            }
            Input::TimerExpired(timer) => {
                if self.timers.take_due(timer, now) {
                    self.timer(now, timer, &mut out);
                }
            }
            Input::OpenCollisionDump => {
                if !matches!(self.state, State::Idle | State::Connect | State::Active) {
                    let cease = Notification::cease(Notification::CONNECTION_COLLISION_RESOLUTION);
                    self.send_and_close(now, &mut out, cease);
                }
            }
            Input::SendUpdate(update) => {
                if self.state == State::Established {
                    out.push(Output::Send(Message::Update(update)));
                }
            }
            Input::RequestRouteRefresh(family) => {
                let negotiated = self
                    .context
                    .as_ref()
                    .is_some_and(|c| c.route_refresh && c.families.contains(family));
                if self.state == State::Established && negotiated {
                    out.push(Output::Send(Message::RouteRefresh(RouteRefresh {
                        afi_safi: family.afi_safi(),
                        subtype: 0,
                    })));
                }
            }
        }
        out
    }

    fn set_state(&mut self, out: &mut Vec<Output>, to: State) {
        if self.state != to {
            out.push(Output::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            return; // RFC 4271 §8.2.2: start events are ignored outside Idle.
        }
        self.timers.stop(out, Timer::IdleHold);
        self.connect_retry_counter = 0;
        if self.config.passive {
            self.set_state(out, State::Active);
        } else {
            self.timers
                .arm(out, Timer::ConnectRetry, now, self.config.connect_retry);
            self.set_state(out, State::Connect);
            out.push(Output::Connect);
        }
    }

    fn manual_stop(&mut self, out: &mut Vec<Output>) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            out.push(Output::Send(Message::Notification(Notification::cease(
                Notification::ADMINISTRATIVE_SHUTDOWN,
            ))));
        }
        let was_established = self.state == State::Established;
        if self.state != State::Idle {
            out.push(Output::Disconnect);
        }
        self.connect_retry_counter = 0;
        self.stop_session_timers(out);
        self.timers.stop(out, Timer::IdleHold);
        // We chose to stop: the peer's routes go now, stale ones included (no GR helper role).
        for timer in [Timer::Restart, Timer::StalePath] {
            self.timers.stop(out, timer);
        }
        if !self.stale.is_empty() {
            out.push(Output::SweepStale(std::mem::take(&mut self.stale)));
        }
        if was_established {
            self.last_down = Some(DownReason::ManualStop);
            out.push(Output::Down {
                reason: DownReason::ManualStop,
                retain: None,
            });
        }
        self.reset_connection();
        self.set_state(out, State::Idle);
    }

    fn tcp_connected(&mut self, now: Instant, direction: Direction, out: &mut Vec<Output>) {
        match self.state {
            State::Connect | State::Active => {
                self.direction = Some(direction);
                self.timers.stop(out, Timer::ConnectRetry);
                if let Some(delay) = self.config.delay_open {
                    self.timers.arm(out, Timer::DelayOpen, now, delay);
                } else {
                    self.send_open(now, out);
                }
            }
            // Idle refuses connections; a connection in a later state is the caller's second
            // connection and belongs to a second Session (collision detection).
            _ => out.push(Output::Disconnect),
        }
    }

    fn send_open(&mut self, now: Instant, out: &mut Vec<Output>) {
        out.push(Output::Send(Message::Open(self.config.open())));
        self.timers
            .arm(out, Timer::Hold, now, self.config.open_hold_time);
        self.set_state(out, State::OpenSent);
    }

    fn tcp_fails(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self.state {
            State::Idle => {}
            State::Connect | State::Active if self.timers.running(Timer::DelayOpen) => {
                // RFC 4271 §8.2.2 Connect/Active, event 18 with DelayOpenTimer running.
                self.timers.stop(out, Timer::DelayOpen);
                self.direction = None;
                self.timers
                    .arm(out, Timer::ConnectRetry, now, self.config.connect_retry);
                self.set_state(out, State::Active);
            }
            State::OpenSent => {
                // RFC 4271 §8.2.2 OpenSent, event 18: back to Active and wait for a retry.
                out.push(Output::Disconnect);
                self.timers.stop(out, Timer::Hold);
                self.direction = None;
                self.timers
                    .arm(out, Timer::ConnectRetry, now, self.config.connect_retry);
                self.set_state(out, State::Active);
            }
            _ => {
                out.push(Output::Disconnect);
                self.enter_idle(now, out, Some(DownReason::ConnectionLost));
            }
        }
    }

    fn message(&mut self, now: Instant, message: Message, out: &mut Vec<Output>) {
        if let Message::Notification(n) = &message {
            if self.state != State::Idle {
                out.push(Output::Disconnect);
                self.enter_idle(now, out, Some(DownReason::NotificationReceived(n.clone())));
            }
            return;
        }
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => match message {
                Message::Open(open) if self.timers.running(Timer::DelayOpen) => {
                    // Event 20: OPEN while DelayOpenTimer runs: answer with OPEN + KEEPALIVE.
                    self.timers.stop(out, Timer::DelayOpen);
                    out.push(Output::Send(Message::Open(self.config.open())));
                    self.accept_open(now, open, out);
                }
                _ => {
                    out.push(Output::Disconnect);
                    self.enter_idle(now, out, None);
                }
            },
            State::OpenSent => match message {
                Message::Open(open) => self.accept_open(now, open, out),
                _ => self.send_and_close(now, out, Notification::fsm_error(1)),
            },
            State::OpenConfirm => match message {
                Message::Keepalive => self.established(now, out),
                _ => self.send_and_close(now, out, Notification::fsm_error(2)),
            },
            State::Established => self.established_message(now, message, out),
        }
    }

    fn accept_open(&mut self, now: Instant, open: Open, out: &mut Vec<Output>) {
        match negotiate(&self.config, &open) {
            Err(notification) => self.send_and_close(now, out, notification),
            Ok(ctx) => {
                self.remote_open = Some(open);
                out.push(Output::Send(Message::Keepalive));
                self.timers.stop(out, Timer::ConnectRetry);
                self.timers.stop(out, Timer::Hold);
                if ctx.hold_time > 0 {
                    self.timers.arm(out, Timer::Hold, now, hold(ctx.hold_time));
                }
                if let Some(interval) = ctx.keepalive_interval() {
                    self.timers.arm(out, Timer::Keepalive, now, interval);
                }
                self.context = Some(ctx);
                self.set_state(out, State::OpenConfirm);
            }
        }
    }

    fn established(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(ctx) = self.context.clone() else {
            self.send_and_close(now, out, Notification::fsm_error(2));
            return;
        };
        self.restart_hold(now, out);
        self.set_state(out, State::Established);
        self.connect_retry_counter = 0;
        if let Some(gr) = &mut self.config.graceful_restart {
            gr.restarting = false; // RFC 4724 §4.1: the R bit is for the first OPEN only.
        }
        out.push(Output::Established(ctx.clone()));
        // RFC 4724 §4.2: the peer is back. Stale families it no longer preserves go now; the
        // rest wait for its End-of-RIB, bounded by the stale-path timer.
        self.timers.stop(out, Timer::Restart);
        if !self.stale.is_empty() {
            let kept: Vec<Family> = ctx
                .graceful_restart
                .as_ref()
                .map(|gr| {
                    self.stale
                        .iter()
                        .filter(|f| gr.forwarding_preserved.contains(*f))
                        .collect()
                })
                .unwrap_or_default();
            let swept: Vec<Family> = self.stale.iter().filter(|f| !kept.contains(f)).collect();
            if !swept.is_empty() {
                out.push(Output::SweepStale(FamilySet::of(&swept)));
            }
            self.stale = FamilySet::of(&kept);
            if !self.stale.is_empty() {
                let stale_time = self
                    .config
                    .graceful_restart
                    .as_ref()
                    .map_or(Duration::from_secs(120), |g| g.stale_time);
                self.timers.arm(out, Timer::StalePath, now, stale_time);
            }
        }
    }

    fn established_message(&mut self, now: Instant, message: Message, out: &mut Vec<Output>) {
        match message {
            Message::Keepalive => self.restart_hold(now, out),
            Message::Update(update) => {
                self.restart_hold(now, out);
                match update.end_of_rib {
                    Some(family) => {
                        out.push(Output::EndOfRib(family));
                        if self.stale.contains(family) {
                            let remaining: Vec<Family> =
                                self.stale.iter().filter(|f| *f != family).collect();
                            self.stale = FamilySet::of(&remaining);
                            if self.stale.is_empty() {
                                self.timers.stop(out, Timer::StalePath);
                            }
                        }
                    }
                    None => out.push(Output::Update(update)),
                }
            }
            Message::RouteRefresh(rr) => {
                let family = Family::from_afi_safi(rr.afi_safi);
                let ctx = self.context.as_ref();
                match family {
                    Some(family)
                        if ctx.is_some_and(|c| c.route_refresh && c.families.contains(family)) =>
                    {
                        out.push(Output::RouteRefresh {
                            family,
                            subtype: rr.subtype,
                        });
                    }
                    // RFC 7313 §5: a refresh for a family not negotiated is ignored.
                    _ => tracing::debug!(afi_safi = %rr.afi_safi, "ignoring route refresh"),
                }
            }
            Message::Open(_) => self.send_and_close(now, out, Notification::fsm_error(3)),
            Message::Notification(_) => {} // handled in `message`
        }
    }

    fn timer(&mut self, now: Instant, timer: Timer, out: &mut Vec<Output>) {
        match timer {
            Timer::ConnectRetry => match self.state {
                State::Connect => {
                    // RFC 4271: drop the attempt, retry.
                    out.push(Output::Disconnect);
                    self.timers
                        .arm(out, Timer::ConnectRetry, now, self.config.connect_retry);
                    out.push(Output::Connect);
                }
                State::Active if !self.config.passive => {
                    self.timers
                        .arm(out, Timer::ConnectRetry, now, self.config.connect_retry);
                    self.set_state(out, State::Connect);
                    out.push(Output::Connect);
                }
                _ => {}
            },
            Timer::DelayOpen => {
                if matches!(self.state, State::Connect | State::Active) {
                    self.send_open(now, out);
                }
            }
            Timer::Hold => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    self.send_and_close(now, out, Notification::hold_timer_expired());
                }
            }
            Timer::Keepalive => {
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    out.push(Output::Send(Message::Keepalive));
                    if let Some(interval) =
                        self.context.as_ref().and_then(|c| c.keepalive_interval())
                    {
                        self.timers.arm(out, Timer::Keepalive, now, interval);
                    }
                }
            }
            Timer::IdleHold => {
                if self.state == State::Idle {
                    let counter = self.connect_retry_counter;
                    self.start(now, out);
                    self.connect_retry_counter = counter; // automatic start keeps the count
                }
            }
            Timer::Restart | Timer::StalePath => {
                // The peer did not come back (restart) or did not finish (stale path) in time.
                if !self.stale.is_empty() {
                    out.push(Output::SweepStale(std::mem::take(&mut self.stale)));
                }
                self.timers.stop(out, Timer::StalePath);
            }
        }
    }

    fn restart_hold(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(ctx) = &self.context
            && ctx.hold_time > 0
        {
            self.timers.arm(out, Timer::Hold, now, hold(ctx.hold_time));
        }
    }

    fn send_and_close(&mut self, now: Instant, out: &mut Vec<Output>, notification: Notification) {
        tracing::debug!(%notification, state = %self.state, "closing session");
        out.push(Output::Send(Message::Notification(notification.clone())));
        out.push(Output::Disconnect);
        let reason = if notification.code == Notification::HOLD_TIMER_EXPIRED {
            DownReason::HoldTimerExpired
        } else {
            DownReason::NotificationSent(notification)
        };
        self.enter_idle(now, out, Some(reason));
    }

    fn stop_session_timers(&mut self, out: &mut Vec<Output>) {
        for timer in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::DelayOpen,
        ] {
            self.timers.stop(out, timer);
        }
    }

    fn reset_connection(&mut self) {
        self.direction = None;
        self.context = None;
        self.remote_open = None;
    }

    /// Leaves the session in Idle after a failure: RFC 4271 "release all resources, increment
    /// the ConnectRetryCounter", plus GR retention and the automatic restart timer.
    fn enter_idle(&mut self, now: Instant, out: &mut Vec<Output>, reason: Option<DownReason>) {
        let was_established = self.state == State::Established;
        self.stop_session_timers(out);
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        if was_established && let Some(reason) = reason {
            let retain = self.retention(&reason);
            if let Some(retain) = &retain {
                // Families already stale from an earlier restart stay stale.
                let mut stale = self.stale;
                for family in retain.families.iter() {
                    stale.insert(family);
                }
                self.stale = stale;
                self.timers.stop(out, Timer::StalePath);
                self.timers
                    .arm(out, Timer::Restart, now, retain.restart_time);
            } else if !self.stale.is_empty() {
                out.push(Output::SweepStale(std::mem::take(&mut self.stale)));
                self.timers.stop(out, Timer::StalePath);
            }
            self.last_down = Some(reason.clone());
            out.push(Output::Down { reason, retain });
        }
        self.reset_connection();
        self.set_state(out, State::Idle);
        if let Some(idle_hold) = self.config.idle_hold {
            self.timers.arm(out, Timer::IdleHold, now, idle_hold);
        }
    }

    /// RFC 4724 §4.2 (TCP failure) and RFC 8538 (NOTIFICATION, when both sent the N bit, unless
    /// it is a Hard Reset): whether and what to keep when an Established session drops.
    fn retention(&self, reason: &DownReason) -> Option<GrRetention> {
        let gr = self.context.as_ref()?.graceful_restart.as_ref()?;
        let applies = match reason {
            DownReason::ConnectionLost => true,
            DownReason::HoldTimerExpired => gr.notification,
            DownReason::NotificationReceived(n) | DownReason::NotificationSent(n) => {
                gr.notification && !n.is_hard_reset()
            }
            DownReason::ManualStop => false,
        };
        (applies && !gr.families.is_empty() && !gr.restart_time.is_zero()).then_some(GrRetention {
            families: gr.families,
            restart_time: gr.restart_time,
        })
    }
}

fn hold(seconds: u16) -> Duration {
    Duration::from_secs(u64::from(seconds))
}

#[cfg(test)]
mod tests;
