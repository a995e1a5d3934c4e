//! OPEN capabilities (RFC 5492) that the FSM negotiates: multiprotocol (RFC 4760), route
//! refresh (RFC 2918/7313), 4-octet AS (RFC 6793), graceful restart (RFC 4724), ADD-PATH
//! (RFC 7911), extended messages (RFC 8654). Everything else is kept opaque in
//! [`OtherCapability`] so an OPEN re-encodes as received.

use std::fmt;

use rustbgpd_wire as codec;

/// A raw AFI/SAFI pair (any value, including families we do not route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    /// Address Family Identifier.
    pub afi: u16,
    /// Subsequent Address Family Identifier.
    pub safi: u8,
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.afi, self.safi)
    }
}

impl AfiSafi {
    fn from_codec(afi: codec::Afi, safi: codec::Safi) -> AfiSafi {
        AfiSafi {
            afi: afi as u16,
            safi: safi as u8,
        }
    }

    fn to_codec(self) -> Option<(codec::Afi, codec::Safi)> {
        Some((
            codec::Afi::from_u16(self.afi)?,
            codec::Safi::from_u8(self.safi)?,
        ))
    }
}

/// ADD-PATH direction for one family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    /// Able to receive multiple paths.
    Receive,
    /// Able to send multiple paths.
    Send,
    /// Both.
    Both,
}

impl AddPathMode {
    /// Whether this mode includes receiving.
    pub fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }

    /// Whether this mode includes sending.
    pub fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }

    fn to_codec(self) -> codec::AddPathMode {
        match self {
            AddPathMode::Receive => codec::AddPathMode::Receive,
            AddPathMode::Send => codec::AddPathMode::Send,
            AddPathMode::Both => codec::AddPathMode::Both,
        }
    }

    fn from_codec(mode: codec::AddPathMode) -> AddPathMode {
        match mode {
            codec::AddPathMode::Receive => AddPathMode::Receive,
            codec::AddPathMode::Send => AddPathMode::Send,
            codec::AddPathMode::Both => AddPathMode::Both,
        }
    }
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartCap {
    /// R bit: the sender has restarted (its peers must not wait for its EoR to advertise).
    pub restart_state: bool,
    /// N bit (RFC 8538): GR also applies to sessions closed by NOTIFICATION.
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families GR covers, each with its F bit (forwarding state preserved).
    pub families: Vec<(AfiSafi, bool)>,
}

/// A capability we do not negotiate, kept as decoded so it re-encodes unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherCapability(pub(crate) codec::Capability);

impl OtherCapability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        self.0.code()
    }
}

/// One capability advertised in an OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one AFI/SAFI (code 1).
    MultiProtocol(AfiSafi),
    /// Route refresh (code 2).
    RouteRefresh,
    /// Enhanced route refresh (code 70).
    EnhancedRouteRefresh,
    /// Extended messages (code 6).
    ExtendedMessage,
    /// 4-octet AS number support, carrying the speaker's real ASN (code 65).
    FourOctetAs(u32),
    /// Graceful restart (code 64).
    GracefulRestart(GracefulRestartCap),
    /// ADD-PATH per family (code 69).
    AddPath(Vec<(AfiSafi, AddPathMode)>),
    /// Anything else (LLGR, extended next hop, FQDN, role, unknown codes).
    Other(OtherCapability),
}

impl Capability {
    /// The capability code on the wire.
    pub fn code(&self) -> u8 {
        match self {
            Capability::MultiProtocol(_) => 1,
            Capability::RouteRefresh => 2,
            Capability::ExtendedMessage => 6,
            Capability::GracefulRestart(_) => 64,
            Capability::FourOctetAs(_) => 65,
            Capability::AddPath(_) => 69,
            Capability::EnhancedRouteRefresh => 70,
            Capability::Other(other) => other.code(),
        }
    }

    /// The encoded capability TLV (code, length, value), for NOTIFICATION 2/7 data.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // Encoding a capability we built or decoded cannot overflow: values fit in 255 bytes.
        if self.to_codec().encode(&mut buf).is_err() {
            buf.clear();
        }
        buf
    }

    pub(crate) fn from_codec(cap: &codec::Capability) -> Capability {
        match cap {
            codec::Capability::MultiProtocol { afi, safi } => {
                Capability::MultiProtocol(AfiSafi::from_codec(*afi, *safi))
            }
            codec::Capability::RouteRefresh => Capability::RouteRefresh,
            codec::Capability::EnhancedRouteRefresh => Capability::EnhancedRouteRefresh,
            codec::Capability::ExtendedMessage => Capability::ExtendedMessage,
            codec::Capability::FourOctetAs { asn } => Capability::FourOctetAs(*asn),
            codec::Capability::GracefulRestart {
                restart_state,
                notification,
                restart_time,
                families,
            } => Capability::GracefulRestart(GracefulRestartCap {
                restart_state: *restart_state,
                notification: *notification,
                restart_time: *restart_time,
                families: families
                    .iter()
                    .map(|f| (AfiSafi::from_codec(f.afi, f.safi), f.forwarding_preserved))
                    .collect(),
            }),
            codec::Capability::AddPath(families) => Capability::AddPath(
                families
                    .iter()
                    .map(|f| {
                        (
                            AfiSafi::from_codec(f.afi, f.safi),
                            AddPathMode::from_codec(f.send_receive),
                        )
                    })
                    .collect(),
            ),
            other => Capability::Other(OtherCapability(other.clone())),
        }
    }

    pub(crate) fn to_codec(&self) -> codec::Capability {
        match self {
            Capability::MultiProtocol(afi_safi) => match afi_safi.to_codec() {
                Some((afi, safi)) => codec::Capability::MultiProtocol { afi, safi },
                None => {
                    let mut data = afi_safi.afi.to_be_bytes().to_vec();
                    data.extend_from_slice(&[0, afi_safi.safi]);
                    codec::Capability::Unknown {
                        code: 1,
                        data: data.into(),
                    }
                }
            },
            Capability::RouteRefresh => codec::Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh => codec::Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage => codec::Capability::ExtendedMessage,
            Capability::FourOctetAs(asn) => codec::Capability::FourOctetAs { asn: *asn },
            Capability::GracefulRestart(gr) => codec::Capability::GracefulRestart {
                restart_state: gr.restart_state,
                notification: gr.notification,
                restart_time: gr.restart_time,
                families: gr
                    .families
                    .iter()
                    .filter_map(|(afi_safi, forwarding)| {
                        let (afi, safi) = afi_safi.to_codec()?;
                        Some(codec::GracefulRestartFamily {
                            afi,
                            safi,
                            forwarding_preserved: *forwarding,
                        })
                    })
                    .collect(),
            },
            Capability::AddPath(families) => codec::Capability::AddPath(
                families
                    .iter()
                    .filter_map(|(afi_safi, mode)| {
                        let (afi, safi) = afi_safi.to_codec()?;
                        Some(codec::AddPathFamily {
                            afi,
                            safi,
                            send_receive: mode.to_codec(),
                        })
                    })
                    .collect(),
            ),
            Capability::Other(other) => other.0.clone(),
        }
    }
}
