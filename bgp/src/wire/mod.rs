//! BGP wire format: our own message types over the `rustbgpd-wire` codec (=0.27.0).
//!
//! This module is the only place in the workspace that names the codec crate (design.md §3,
//! reference/bgp.md §5.6): every type the rest of `bgp` sees is ours, so the codec can be
//! swapped or vendored. What the codec gives us: framing, OPEN/capability, UPDATE attribute and
//! NLRI coding, AS4_PATH merge (decode) and AS4_PATH/AS_TRANS generation toward 2-octet peers
//! (encode), and per-attribute RFC 7606 dispositions. What we add here:
//! - the mapping of every error to the RFC 4271 §6 NOTIFICATION (code, subcode, data) and the
//!   RFC 7606 disposition the session applies ([`Disposition`], [`AttributeError`]);
//! - applying treat-as-withdraw while decoding (announced NLRI move to `withdrawn`), plus the
//!   RFC 4271 §6.3 "missing NEXT_HOP" check for iBGP, which the codec only applies to eBGP;
//! - End-of-RIB detection and construction (RFC 4724 §2) for IPv4 and IPv6 unicast;
//! - per-family ADD-PATH on encode: the codec's `try_build` takes one ADD-PATH flag for both the
//!   body NLRI and MP_REACH, so we encode the body NLRI ourselves with the IPv4 flag and the
//!   attributes with the IPv6 flag and assemble the UPDATE from its three sections.
//!
//! Layout: `message` (the [`Message`] enum, decode/encode, framing), `attribute`
//! ([`PathAttributes`]), `capability`, `notification`, `error`.

mod attribute;
mod capability;
mod error;
mod message;
mod notification;

pub use attribute::{
    Aggregator, AsPath, AsPathSegment, LargeCommunity, MpNextHop, Origin, OtherAttribute,
    PathAttributes,
};
pub use capability::{AddPathMode, AfiSafi, Capability, GracefulRestartCap, OtherCapability};
pub use error::{AttributeError, Disposition, EncodeError, MessageError};
pub use message::{
    Message, Open, RouteRefresh, Update, attributes_len, decode_message, encode_message,
    frame_length,
};
pub use notification::Notification;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the fixed BGP header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Maximum BGP message size without RFC 8654 Extended Messages.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// `AS_TRANS` (RFC 6793): the 2-octet stand-in for a 4-octet ASN in OPEN and AS_PATH.
pub const AS_TRANS: u16 = 23456;

/// An address family this speaker routes: IPv4 or IPv6 unicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// Both families, in a fixed order.
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The AFI/SAFI pair on the wire.
    pub fn afi_safi(self) -> AfiSafi {
        match self {
            Family::Ipv4Unicast => AfiSafi { afi: 1, safi: 1 },
            Family::Ipv6Unicast => AfiSafi { afi: 2, safi: 1 },
        }
    }

    /// The family of an AFI/SAFI pair, if it is one we route.
    pub fn from_afi_safi(afi_safi: AfiSafi) -> Option<Family> {
        match (afi_safi.afi, afi_safi.safi) {
            (1, 1) => Some(Family::Ipv4Unicast),
            (2, 1) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Family::Ipv4Unicast => 0,
            Family::Ipv6Unicast => 1,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// A set of [`Family`] values (tiny, `Copy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FamilySet([bool; 2]);

impl FamilySet {
    /// The empty set.
    pub const EMPTY: FamilySet = FamilySet([false; 2]);

    /// A set holding exactly the given families.
    pub fn of(families: &[Family]) -> FamilySet {
        let mut set = FamilySet::EMPTY;
        for family in families {
            set.insert(*family);
        }
        set
    }

    /// Adds a family.
    pub fn insert(&mut self, family: Family) {
        self.0[family.index()] = true;
    }

    /// Whether the set holds `family`.
    pub fn contains(self, family: Family) -> bool {
        self.0[family.index()]
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        !self.0.iter().any(|b| *b)
    }

    /// The families in the set, IPv4 first.
    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// An IP prefix in canonical form (host bits zero, length within the family's width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Builds a prefix, masking host bits; `None` if `len` exceeds the address width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        match addr {
            IpAddr::V4(v4) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Some(Prefix {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
                    len,
                })
            }
            IpAddr::V6(v6) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Some(Prefix {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    len,
                })
            }
            _ => None,
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is a default route (length 0).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// The address family of the prefix.
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// Bytes this prefix takes as NLRI (length octet plus significant address octets).
    pub fn nlri_len(&self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("prefix {s:?} has no '/'"))?;
        let addr: IpAddr = addr.parse().map_err(|e| format!("prefix {s:?}: {e}"))?;
        let len: u8 = len.parse().map_err(|e| format!("prefix {s:?}: {e}"))?;
        Prefix::new(addr, len).ok_or_else(|| format!("prefix {s:?}: length out of range"))
    }
}

/// One NLRI entry: a prefix and its RFC 7911 path identifier (0 without ADD-PATH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nlri {
    /// The prefix.
    pub prefix: Prefix,
    /// ADD-PATH path identifier; 0 when ADD-PATH is not negotiated for the family.
    pub path_id: u32,
}

impl Nlri {
    /// An NLRI without a path identifier.
    pub fn new(prefix: Prefix) -> Nlri {
        Nlri { prefix, path_id: 0 }
    }

    /// An NLRI with a path identifier.
    pub fn with_path_id(prefix: Prefix, path_id: u32) -> Nlri {
        Nlri { prefix, path_id }
    }
}

/// What the codec needs to know about the session: the result of capability negotiation.
///
/// Before a session is Established (OPEN, NOTIFICATION and KEEPALIVE only) the
/// [`Default`] context is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CodecContext {
    /// RFC 6793: AS numbers in AS_PATH/AGGREGATOR are 4 octets.
    pub four_octet_as: bool,
    /// The peer is internal (same AS): selects the RFC 7606 §7.5/§7.9/§7.10 branches.
    pub ibgp: bool,
    /// Families for which the peer sends path identifiers (we negotiated ADD-PATH receive).
    pub add_path_receive: FamilySet,
    /// Families for which we send path identifiers (we negotiated ADD-PATH send).
    pub add_path_send: FamilySet,
    /// RFC 8654 Extended Messages negotiated (65535-byte UPDATEs).
    pub extended_message: bool,
}

impl CodecContext {
    /// The largest message this session may carry (OPEN and KEEPALIVE stay at 4096).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            65535
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
