//! Wire errors: what went wrong, what RFC 7606 says to do about it, and which NOTIFICATION
//! (RFC 4271 §6) to send when the answer is a session reset.

use std::fmt;

use super::notification::Notification;

/// RFC 7606 §2 error-handling approach, ordered weakest to strongest (the strongest wins when
/// an UPDATE has several errors, §3 (h)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Disposition {
    /// Drop the malformed attribute and keep the routes (attributes with no effect on selection).
    AttributeDiscard,
    /// Treat every NLRI in the UPDATE as withdrawn; the session stays up.
    TreatAsWithdraw,
    /// Send the NOTIFICATION and close the session (the NLRI cannot be trusted).
    SessionReset,
}

impl Disposition {
    /// Stable lower-case label (`attribute-discard`, `treat-as-withdraw`, `session-reset`).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::AttributeDiscard => "attribute-discard",
            Disposition::TreatAsWithdraw => "treat-as-withdraw",
            Disposition::SessionReset => "session-reset",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed path attribute the decoder recovered from (RFC 7606): the UPDATE was still
/// decoded and the disposition already applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeError {
    /// Attribute type code (0 if the header was too short to carry one).
    pub type_code: u8,
    /// What was done about it.
    pub disposition: Disposition,
    /// The NOTIFICATION RFC 4271 §6.3 would send for this error (sent only on session reset).
    pub notification: Notification,
    /// Description for logs.
    pub reason: String,
}

/// A message that cannot be used: the session must send `notification` and close
/// (RFC 7606 session reset, or any OPEN/header error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message, notification {notification}: {reason}")]
pub struct MessageError {
    /// The NOTIFICATION to send before closing.
    pub notification: Notification,
    /// Description for logs.
    pub reason: String,
    /// True when the buffer holds less than one message: read more, do not reset.
    pub incomplete: bool,
}

impl MessageError {
    pub(crate) fn from_codec(error: &rustbgpd_wire::DecodeError) -> MessageError {
        let (code, subcode, data) = error.to_notification();
        MessageError {
            notification: Notification::from_codec_parts(code, subcode, &data),
            reason: error.to_string(),
            incomplete: matches!(error, rustbgpd_wire::DecodeError::Incomplete { .. }),
        }
    }

    /// RFC 7606 always resets on these.
    pub fn disposition(&self) -> Disposition {
        Disposition::SessionReset
    }
}

/// A message that cannot be encoded (too long for the negotiated size, or a value the wire
/// format cannot carry, such as AS 0 or an AS_SET under RFC 9774).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message exceeds the negotiated maximum.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Encoded size.
        size: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// A field cannot be represented on the wire.
    #[error("cannot encode {field}: {detail}")]
    Unrepresentable {
        /// The field at fault.
        field: &'static str,
        /// Why.
        detail: String,
    },
}

impl EncodeError {
    pub(crate) fn from_codec(error: &rustbgpd_wire::EncodeError, max: usize) -> EncodeError {
        match error {
            rustbgpd_wire::EncodeError::MessageTooLong { size } => {
                EncodeError::TooLong { size: *size, max }
            }
            rustbgpd_wire::EncodeError::ValueOutOfRange { field, value } => {
                EncodeError::Unrepresentable {
                    field,
                    detail: value.clone(),
                }
            }
            other => EncodeError::Unrepresentable {
                field: "message",
                detail: other.to_string(),
            },
        }
    }
}
