//! Connection collision detection (RFC 4271 §6.8, RFC 6286 §2.3).
//!
//! Each TCP connection to a peer runs its own [`Session`]. When a second connection appears,
//! the caller asks [`detect`] which one must go and feeds that one
//! [`super::Input::OpenCollisionDump`] (it sends Cease/Connection Collision Resolution).

use std::net::Ipv4Addr;

use super::{Direction, Session, State};

/// Which connection survives a collision, given both identifiers and ASNs.
///
/// RFC 4271 §6.8: if the local identifier is lower, keep the connection the peer opened,
/// otherwise keep ours. RFC 6286 §2.3: with equal identifiers (allowed across ASes), keep the
/// connection opened by the speaker with the larger AS number.
pub fn surviving_direction(
    local_id: Ipv4Addr,
    local_asn: u32,
    remote_id: Ipv4Addr,
    remote_asn: u32,
) -> Direction {
    use std::cmp::Ordering;
    match local_id.cmp(&remote_id) {
        Ordering::Less => Direction::Incoming,
        Ordering::Greater => Direction::Outgoing,
        Ordering::Equal if local_asn > remote_asn => Direction::Outgoing,
        Ordering::Equal => Direction::Incoming,
    }
}

/// Which of two sessions to the same peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loser {
    /// The first session passed to [`detect`].
    First,
    /// The second session passed to [`detect`].
    Second,
}

/// Decides a collision between two connections to the same peer, or `None` while there is
/// nothing to decide yet (the peer's identifier is known only after its OPEN).
///
/// An Established session always wins (RFC 4271 §6.8: a collision with an Established
/// connection closes the new one). Otherwise a decision needs one session to have received the
/// peer's OPEN (OpenConfirm or later) and the other to be past Idle.
pub fn detect(first: &Session, second: &Session) -> Option<Loser> {
    let live = |s: &Session| !matches!(s.state(), State::Idle);
    if !live(first) || !live(second) {
        return None;
    }
    match (first.state(), second.state()) {
        (State::Established, State::Established) => return None,
        (State::Established, _) => return Some(Loser::Second),
        (_, State::Established) => return Some(Loser::First),
        _ => {}
    }
    let remote_id = first.remote_id().or(second.remote_id())?;
    let config = first.config();
    let keep = surviving_direction(
        config.local_id,
        config.local_asn,
        remote_id,
        config.remote_asn,
    );
    match (first.direction(), second.direction()) {
        (Some(d1), Some(d2)) if d1 != d2 => Some(if d1 == keep {
            Loser::Second
        } else {
            Loser::First
        }),
        _ => None,
    }
}
