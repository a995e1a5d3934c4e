//! NOTIFICATION messages (RFC 4271 §4.5, §6): codes, subcodes, data, and the constructors the
//! FSM uses for each error it reports, including RFC 6608 FSM subcodes, RFC 4486 Cease subcodes
//! and RFC 8203/9003 shutdown communication.

use std::fmt;

use rustbgpd_wire::notification as codec;

/// A NOTIFICATION: error code, subcode and data, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (1 header, 2 OPEN, 3 UPDATE, 4 hold timer, 5 FSM, 6 Cease, 7 route refresh).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data field (meaning depends on code and subcode).
    pub data: Vec<u8>,
}

impl Notification {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM_ERROR: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;

    /// OPEN subcode 2: Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// OPEN subcode 3: Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// OPEN subcode 6: Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// OPEN subcode 7: Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;

    /// Cease subcode 2: Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Cease subcode 3: Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Cease subcode 4: Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Cease subcode 5: Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Cease subcode 7: Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Cease subcode 9: Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;

    /// A NOTIFICATION with the given fields.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Hold Timer Expired (4/0).
    pub fn hold_timer_expired() -> Notification {
        Notification::new(Self::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// FSM Error with an RFC 6608 subcode: 1 unexpected message in OpenSent, 2 in
    /// OpenConfirm, 3 in Established.
    pub fn fsm_error(subcode: u8) -> Notification {
        Notification::new(Self::FSM_ERROR, subcode, Vec::new())
    }

    /// A Cease with the given subcode and no data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(Self::CEASE, subcode, Vec::new())
    }

    /// An Administrative Shutdown or Reset carrying an RFC 9003 shutdown communication.
    pub fn cease_with_reason(subcode: u8, reason: &str) -> Notification {
        Notification::new(
            Self::CEASE,
            subcode,
            codec::encode_shutdown_communication(reason).to_vec(),
        )
    }

    /// An OPEN Message Error with the given subcode and data.
    pub fn open_error(subcode: u8, data: Vec<u8>) -> Notification {
        Notification::new(Self::OPEN_MESSAGE, subcode, data)
    }

    /// The RFC 9003 shutdown communication carried by a Cease 2/4, if well formed.
    pub fn shutdown_reason(&self) -> Option<String> {
        if self.code == Self::CEASE
            && matches!(
                self.subcode,
                Self::ADMINISTRATIVE_SHUTDOWN | Self::ADMINISTRATIVE_RESET
            )
        {
            codec::decode_shutdown_communication(&self.data)
        } else {
            None
        }
    }

    /// Whether this is a Cease/Hard Reset, which RFC 8538 says must not keep GR state.
    pub fn is_hard_reset(&self) -> bool {
        self.code == Self::CEASE && self.subcode == Self::HARD_RESET
    }

    /// Human-readable name of the code and subcode (IANA registry wording).
    pub fn description(&self) -> &'static str {
        codec::description(codec::NotificationCode::from_u8(self.code), self.subcode)
    }

    pub(crate) fn to_codec(&self) -> rustbgpd_wire::NotificationMessage {
        rustbgpd_wire::NotificationMessage::new(
            codec::NotificationCode::from_u8(self.code),
            self.subcode,
            self.data.clone().into(),
        )
    }

    pub(crate) fn from_codec(msg: &rustbgpd_wire::NotificationMessage) -> Notification {
        Notification::new(msg.code.as_u8(), msg.subcode, msg.data.to_vec())
    }

    pub(crate) fn from_codec_parts(
        code: codec::NotificationCode,
        subcode: u8,
        data: &[u8],
    ) -> Notification {
        Notification::new(code.as_u8(), subcode, data.to_vec())
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.code, self.subcode, self.description())
    }
}
