//! FSM vocabulary: the six RFC 4271 §8.2.2 states, the timers, why a session went down, and
//! which direction a connection was opened in.

use std::fmt;

use crate::wire::Notification;

/// Session state (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Refuses connections; waits for a start event.
    Idle,
    /// Waiting for the outgoing TCP connection to complete.
    Connect,
    /// Listening for an incoming connection (or waiting to retry).
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Session up: UPDATEs flow.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// The session's timers; the caller sleeps until a deadline and feeds back
/// [`super::Input::TimerExpired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetryTimer (RFC 4271 §10).
    ConnectRetry,
    /// HoldTimer: negotiated hold time; 4 minutes while waiting for the OPEN.
    Hold,
    /// KeepaliveTimer: a third of the negotiated hold time.
    Keepalive,
    /// DelayOpenTimer (RFC 4271 §8.1.1, optional attribute DelayOpen).
    DelayOpen,
    /// IdleHoldTimer: automatic restart after an error (BIRD's "error wait").
    IdleHold,
    /// RFC 4724 §4.2 restart timer: how long to keep a restarting peer's routes while it is down.
    Restart,
    /// RFC 4724 §4.2 stale-path bound: how long to wait for End-of-RIB after re-establishment.
    StalePath,
}

impl Timer {
    pub(crate) const ALL: [Timer; 7] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::DelayOpen,
        Timer::IdleHold,
        Timer::Restart,
        Timer::StalePath,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
            Timer::DelayOpen => 3,
            Timer::IdleHold => 4,
            Timer::Restart => 5,
            Timer::StalePath => 6,
        }
    }
}

/// Who opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer (RFC 4271 event 16, Tcp_CR_Acked).
    Outgoing,
    /// The peer connected to us (event 17, TcpConnectionConfirmed).
    Incoming,
}

/// Why a session left Established or failed to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// ManualStop: we closed it (Cease sent).
    ManualStop,
    /// The hold timer expired (4/0 sent).
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent this NOTIFICATION (malformed message, bad OPEN, FSM error, collision).
    NotificationSent(Notification),
    /// The TCP connection failed or closed without a NOTIFICATION.
    ConnectionLost,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ManualStop => f.write_str("manual stop"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => write!(f, "received notification {n}"),
            DownReason::NotificationSent(n) => write!(f, "sent notification {n}"),
            DownReason::ConnectionLost => f.write_str("connection lost"),
        }
    }
}
