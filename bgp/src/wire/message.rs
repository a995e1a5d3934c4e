//! The BGP [`Message`] (RFC 4271 §4) with our OPEN, UPDATE and ROUTE-REFRESH types, framing,
//! decoding with RFC 7606 dispositions applied, and encoding with per-family ADD-PATH.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use rustbgpd_wire as codec;

use super::attribute::{MpNextHop, PathAttributes};
use super::capability::{AfiSafi, Capability};
use super::error::{AttributeError, Disposition, EncodeError, MessageError};
use super::notification::Notification;
use super::{AS_TRANS, CodecContext, Family, MAX_MESSAGE_LEN, Nlri, Prefix};

/// An OPEN message (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet "My Autonomous System" field (`AS_TRANS` for a 4-octet ASN).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities, in the order advertised.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, putting `AS_TRANS` in the 2-octet field when `asn` needs 4 octets.
    /// The caller includes [`Capability::FourOctetAs`] in `capabilities`.
    pub fn new(
        asn: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Open {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        Open {
            my_as,
            hold_time,
            router_id,
            capabilities,
        }
    }

    /// The sender's ASN: the 4-octet capability if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the sender advertised 4-octet AS support.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }
}

/// A ROUTE-REFRESH message (RFC 2918; subtype per RFC 7313: 0 request, 1 BoRR, 2 EoRR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub afi_safi: AfiSafi,
    /// 0 normal request, 1 begin-of-route-refresh, 2 end-of-route-refresh.
    pub subtype: u8,
}

/// An UPDATE, decoded for one session context, with RFC 7606 already applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn routes, IPv4 (body) and IPv6 (MP_UNREACH). Under treat-as-withdraw this also
    /// holds every NLRI the UPDATE announced.
    pub withdrawn: Vec<Nlri>,
    /// Announced routes, IPv4 (body) and IPv6 (MP_REACH), all sharing `attributes`.
    pub announced: Vec<Nlri>,
    /// The path attributes of `announced`.
    pub attributes: PathAttributes,
    /// Set when the UPDATE is an End-of-RIB marker (RFC 4724 §2) for that family.
    pub end_of_rib: Option<Family>,
    /// Errors recovered from (attribute discard or treat-as-withdraw) with their NOTIFICATION.
    pub errors: Vec<AttributeError>,
}

impl Update {
    /// An End-of-RIB marker for `family`.
    pub fn end_of_rib(family: Family) -> Update {
        Update {
            end_of_rib: Some(family),
            ..Update::default()
        }
    }

    /// An UPDATE announcing `nlri` with `attributes`.
    pub fn announce(attributes: PathAttributes, nlri: Vec<Nlri>) -> Update {
        Update {
            announced: nlri,
            attributes,
            ..Update::default()
        }
    }

    /// An UPDATE withdrawing `nlri`.
    pub fn withdraw(nlri: Vec<Nlri>) -> Update {
        Update {
            withdrawn: nlri,
            ..Update::default()
        }
    }

    /// The strongest RFC 7606 disposition applied while decoding, if any error was found.
    pub fn disposition(&self) -> Option<Disposition> {
        self.errors.iter().map(|e| e.disposition).max()
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "open",
            Message::Update(_) => "update",
            Message::Notification(_) => "notification",
            Message::Keepalive => "keepalive",
            Message::RouteRefresh(_) => "route-refresh",
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Open(o) => write!(
                f,
                "OPEN as {} hold {} id {}",
                o.asn(),
                o.hold_time,
                o.router_id
            ),
            Message::Update(u) => write!(
                f,
                "UPDATE {} announced, {} withdrawn{}",
                u.announced.len(),
                u.withdrawn.len(),
                u.end_of_rib
                    .map(|f| format!(", end-of-rib {f}"))
                    .unwrap_or_default()
            ),
            Message::Notification(n) => write!(f, "NOTIFICATION {n}"),
            Message::Keepalive => f.write_str("KEEPALIVE"),
            Message::RouteRefresh(r) => {
                write!(f, "ROUTE-REFRESH {} subtype {}", r.afi_safi, r.subtype)
            }
        }
    }
}

/// The length of the message at the start of `buf`: `Ok(None)` if fewer than 19 bytes are
/// there, an error (with its NOTIFICATION) for a bad marker, length or type.
pub fn frame_length(buf: &[u8], ctx: &CodecContext) -> Result<Option<usize>, MessageError> {
    let max = u16::try_from(ctx.max_message_len()).unwrap_or(u16::MAX);
    codec::peek_message_length(buf, max)
        .map(|len| len.map(usize::from))
        .map_err(|e| MessageError::from_codec(&e))
}

/// Decodes the one message at the start of `buf` (extra bytes after it are ignored).
///
/// UPDATEs come back with RFC 7606 applied: attribute-discard drops the attribute,
/// treat-as-withdraw moves the announced NLRI to `withdrawn`; both are listed in
/// [`Update::errors`]. A session-reset error, or any header/OPEN error, is an `Err` carrying
/// the NOTIFICATION to send.
pub fn decode_message(buf: &[u8], ctx: &CodecContext) -> Result<Message, MessageError> {
    let len = match frame_length(buf, ctx)? {
        Some(len) if len <= buf.len() => len,
        _ => {
            return Err(MessageError {
                notification: Notification::new(Notification::MESSAGE_HEADER, 2, Vec::new()),
                reason: format!("incomplete message: {} bytes", buf.len()),
                incomplete: true,
            });
        }
    };
    let max = u16::try_from(ctx.max_message_len()).unwrap_or(u16::MAX);
    let mut bytes = buf[..len].to_vec().into();
    let message =
        codec::decode_message(&mut bytes, max).map_err(|e| MessageError::from_codec(&e))?;
    Ok(match message {
        codec::Message::Open(open) => Message::Open(Open {
            my_as: open.my_as,
            hold_time: open.hold_time,
            router_id: open.bgp_identifier,
            capabilities: open
                .capabilities
                .iter()
                .map(Capability::from_codec)
                .collect(),
        }),
        codec::Message::Update(update) => Message::Update(decode_update(&update, ctx)?),
        codec::Message::Notification(n) => Message::Notification(Notification::from_codec(&n)),
        codec::Message::Keepalive => Message::Keepalive,
        codec::Message::RouteRefresh(rr) => Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi {
                afi: rr.afi_raw,
                safi: rr.safi_raw,
            },
            subtype: rr.subtype_raw,
        }),
        other => {
            return Err(MessageError {
                notification: Notification::new(Notification::MESSAGE_HEADER, 3, Vec::new()),
                reason: format!("unsupported message {other}"),
                incomplete: false,
            });
        }
    })
}

fn codec_family(family: Family) -> (codec::Afi, codec::Safi) {
    match family {
        Family::Ipv4Unicast => (codec::Afi::Ipv4, codec::Safi::Unicast),
        Family::Ipv6Unicast => (codec::Afi::Ipv6, codec::Safi::Unicast),
    }
}

fn unicast_family(afi: codec::Afi, safi: codec::Safi) -> Option<Family> {
    match (afi, safi) {
        (codec::Afi::Ipv4, codec::Safi::Unicast) => Some(Family::Ipv4Unicast),
        (codec::Afi::Ipv6, codec::Safi::Unicast) => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

fn our_prefix(prefix: &codec::Prefix) -> Option<Prefix> {
    match prefix {
        codec::Prefix::V4(p) => Prefix::new(IpAddr::V4(p.addr), p.len),
        codec::Prefix::V6(p) => Prefix::new(IpAddr::V6(p.addr), p.len),
    }
}

fn v4_nlri(entries: &[codec::Ipv4NlriEntry]) -> impl Iterator<Item = Nlri> + '_ {
    entries.iter().filter_map(|e| {
        Prefix::new(IpAddr::V4(e.prefix.addr), e.prefix.len)
            .map(|p| Nlri::with_path_id(p, e.path_id))
    })
}

fn mp_nlri(entries: &[codec::NlriEntry]) -> impl Iterator<Item = Nlri> + '_ {
    entries
        .iter()
        .filter_map(|e| our_prefix(&e.prefix).map(|p| Nlri::with_path_id(p, e.path_id)))
}

fn decode_update(
    update: &codec::UpdateMessage,
    ctx: &CodecContext,
) -> Result<Update, MessageError> {
    let add_path: Vec<(codec::Afi, codec::Safi)> =
        ctx.add_path_receive.iter().map(codec_family).collect();
    let revised = update
        .parse_revised(
            ctx.four_octet_as,
            ctx.ibgp,
            ctx.add_path_receive.contains(Family::Ipv4Unicast),
            &add_path,
        )
        .map_err(|e| MessageError::from_codec(&e))?;
    let parsed = &revised.update;
    let mut out = Update {
        withdrawn: v4_nlri(&parsed.withdrawn).collect(),
        announced: v4_nlri(&parsed.announced).collect(),
        attributes: PathAttributes::from_codec(&parsed.attributes),
        ..Update::default()
    };
    let body_nlri = !out.announced.is_empty();
    let mut mp_unreach_only = None;
    for attr in &parsed.attributes {
        match attr {
            codec::PathAttribute::MpReachNlri(mp) if unicast_family(mp.afi, mp.safi).is_some() => {
                out.announced.extend(mp_nlri(&mp.announced));
                let mut link_local = mp.link_local_next_hop;
                // RFC 2545 §3: the second next hop of a 32-octet field is link-local. Anything
                // else is an invalid next hop: treat-as-withdraw (RFC 7606 §7.11, §7.3).
                if link_local.is_some_and(|ll| !is_link_local(ll)) {
                    link_local = None;
                    out.errors.push(AttributeError {
                        type_code: 14,
                        disposition: Disposition::TreatAsWithdraw,
                        notification: Notification::new(
                            Notification::UPDATE_MESSAGE,
                            9,
                            Vec::new(),
                        ),
                        reason: "MP_REACH_NLRI second next hop is not link-local".to_string(),
                    });
                }
                out.attributes.mp_next_hop = Some(MpNextHop {
                    global: mp.next_hop,
                    link_local,
                });
            }
            codec::PathAttribute::MpUnreachNlri(mp) => {
                if let Some(family) = unicast_family(mp.afi, mp.safi) {
                    out.withdrawn.extend(mp_nlri(&mp.withdrawn));
                    if mp.withdrawn.is_empty() && parsed.attributes.len() == 1 {
                        mp_unreach_only = Some(family);
                    }
                }
            }
            _ => {}
        }
    }
    // RFC 4724 §2: an UPDATE with nothing in it is the IPv4 End-of-RIB; one holding only an
    // empty MP_UNREACH_NLRI is the End-of-RIB of that family.
    if update.withdrawn_routes.is_empty() && update.nlri.is_empty() {
        if update.path_attributes.is_empty() {
            out.end_of_rib = Some(Family::Ipv4Unicast);
        } else if revised.malformed.is_empty() {
            out.end_of_rib = mp_unreach_only;
        }
    }
    for m in &revised.malformed {
        let (code, subcode, data) = m.error.to_notification();
        out.errors.push(AttributeError {
            type_code: m.type_code,
            disposition: disposition(m.disposition),
            notification: Notification::from_codec_parts(code, subcode, &data),
            reason: m.error.to_string(),
        });
    }
    let has_nlri = !out.announced.is_empty();
    if let Err(e) = codec::validate::validate_update_attributes_with_context(
        &parsed.attributes,
        has_nlri,
        body_nlri,
        !ctx.ibgp,
        codec::UpdateValidationOptions::default(),
    ) && !out
        .errors
        .iter()
        .any(|known| known.type_code == e.type_code)
    {
        out.errors.push(AttributeError {
            type_code: e.type_code,
            disposition: disposition(e.error.disposition),
            notification: Notification::new(
                Notification::UPDATE_MESSAGE,
                e.error.subcode,
                e.error.data.clone(),
            ),
            reason: format!("attribute {} failed validation", e.type_code),
        });
    }
    // RFC 4271 §5.1.3: NEXT_HOP is mandatory with body NLRI on internal sessions too (the codec
    // checks only eBGP). RFC 7606 §3 (d): a missing mandatory attribute is treat-as-withdraw.
    if ctx.ibgp && body_nlri && out.attributes.next_hop.is_none() {
        out.errors.push(AttributeError {
            type_code: 3,
            disposition: Disposition::TreatAsWithdraw,
            notification: Notification::new(Notification::UPDATE_MESSAGE, 3, vec![3]),
            reason: "missing mandatory NEXT_HOP".to_string(),
        });
    }
    match out.disposition() {
        Some(Disposition::SessionReset) => {
            let worst = out
                .errors
                .iter()
                .find(|e| e.disposition == Disposition::SessionReset)
                .cloned();
            if let Some(worst) = worst {
                return Err(MessageError {
                    notification: worst.notification,
                    reason: worst.reason,
                    incomplete: false,
                });
            }
        }
        Some(Disposition::TreatAsWithdraw) => {
            let announced = std::mem::take(&mut out.announced);
            out.withdrawn.extend(announced);
        }
        Some(Disposition::AttributeDiscard) | None => {}
    }
    Ok(out)
}

fn is_link_local(addr: std::net::Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

fn disposition(d: codec::ErrorDisposition) -> Disposition {
    match d {
        codec::ErrorDisposition::AttributeDiscard => Disposition::AttributeDiscard,
        codec::ErrorDisposition::TreatAsWithdraw => Disposition::TreatAsWithdraw,
        codec::ErrorDisposition::SessionReset => Disposition::SessionReset,
    }
}

fn mp_unreach(family: Family, withdrawn: Vec<codec::NlriEntry>) -> codec::PathAttribute {
    let (afi, safi) = codec_family(family);
    codec::PathAttribute::MpUnreachNlri(Box::new(codec::MpUnreachNlri {
        afi,
        safi,
        withdrawn,
        flowspec_withdrawn: Vec::new(),
        evpn_withdrawn: Vec::new(),
        bgpls_withdrawn: Vec::new(),
        vpn_withdrawn: Vec::new(),
        labeled_withdrawn: Vec::new(),
        rtc_withdrawn: Vec::new(),
    }))
}

fn mp_reach(
    next_hop: MpNextHop,
    announced: Vec<codec::NlriEntry>,
) -> Result<codec::PathAttribute, EncodeError> {
    if next_hop.link_local.is_some_and(|ll| !is_link_local(ll)) {
        return Err(EncodeError::Unrepresentable {
            field: "MP_REACH_NLRI",
            detail: "second next hop is not link-local".to_string(),
        });
    }
    let (afi, safi) = codec_family(Family::Ipv6Unicast);
    Ok(codec::PathAttribute::MpReachNlri(Box::new(
        codec::MpReachNlri {
            afi,
            safi,
            next_hop: next_hop.global,
            link_local_next_hop: next_hop.link_local,
            announced,
            flowspec_announced: Vec::new(),
            evpn_announced: Vec::new(),
            bgpls_announced: Vec::new(),
            vpn_announced: Vec::new(),
            labeled_announced: Vec::new(),
            rtc_announced: Vec::new(),
        },
    )))
}

fn codec_prefix(prefix: Prefix) -> codec::Prefix {
    match prefix.addr() {
        IpAddr::V4(a) => codec::Prefix::V4(codec::Ipv4Prefix::new(a, prefix.prefix_len())),
        IpAddr::V6(a) => codec::Prefix::V6(codec::Ipv6Prefix::new(a, prefix.prefix_len())),
    }
}

fn body_nlri(nlri: &[Nlri], add_path: bool) -> Vec<u8> {
    let entries: Vec<codec::Ipv4NlriEntry> = nlri
        .iter()
        .filter_map(|n| match codec_prefix(n.prefix) {
            codec::Prefix::V4(prefix) => Some(codec::Ipv4NlriEntry {
                path_id: n.path_id,
                prefix,
            }),
            codec::Prefix::V6(_) => None,
        })
        .collect();
    let mut buf = Vec::new();
    if add_path {
        codec::nlri::encode_nlri_addpath(&entries, &mut buf);
    } else {
        let prefixes: Vec<codec::Ipv4Prefix> = entries.iter().map(|e| e.prefix).collect();
        codec::nlri::encode_nlri(&prefixes, &mut buf);
    }
    buf
}

fn mp_entries(nlri: &[Nlri]) -> Vec<codec::NlriEntry> {
    nlri.iter()
        .filter(|n| n.prefix.family() == Family::Ipv6Unicast)
        .map(|n| codec::NlriEntry {
            path_id: n.path_id,
            prefix: codec_prefix(n.prefix),
        })
        .collect()
}

fn encode_update(update: &Update, ctx: &CodecContext) -> Result<codec::UpdateMessage, EncodeError> {
    let max = ctx.max_message_len();
    let v4 = |n: &&Nlri| n.prefix.family() == Family::Ipv4Unicast;
    let v4_announced: Vec<Nlri> = update.announced.iter().filter(v4).copied().collect();
    let v4_withdrawn: Vec<Nlri> = update.withdrawn.iter().filter(v4).copied().collect();
    let v6_announced = mp_entries(&update.announced);
    let v6_withdrawn = mp_entries(&update.withdrawn);

    let mut attrs = Vec::new();
    if update.end_of_rib == Some(Family::Ipv6Unicast) || !v6_withdrawn.is_empty() {
        attrs.push(mp_unreach(Family::Ipv6Unicast, v6_withdrawn));
    }
    if !v6_announced.is_empty() {
        let next_hop = update
            .attributes
            .mp_next_hop
            .ok_or(EncodeError::Unrepresentable {
                field: "MP_REACH_NLRI",
                detail: "IPv6 routes without an MP next hop".to_string(),
            })?;
        attrs.push(mp_reach(next_hop, v6_announced)?);
    }
    if !v4_announced.is_empty() && update.attributes.next_hop.is_none() {
        // IPv4 NLRI received in MP_REACH carry their next hop there; we send IPv4 in the body,
        // which needs NEXT_HOP (RFC 4271 §5.1.3). An IPv6 next hop (RFC 8950) is not supported.
        let Some(IpAddr::V4(next_hop)) = update.attributes.mp_next_hop.map(|nh| nh.global) else {
            return Err(EncodeError::Unrepresentable {
                field: "NEXT_HOP",
                detail: "IPv4 routes without an IPv4 next hop".to_string(),
            });
        };
        let mut attributes = update.attributes.clone();
        attributes.next_hop = Some(next_hop);
        attrs.extend(attributes.to_codec(true));
    } else if !update.announced.is_empty() {
        attrs.extend(update.attributes.to_codec(!v4_announced.is_empty()));
    }
    let mut path_attributes = Vec::new();
    codec::attribute::encode_path_attributes(
        &attrs,
        &mut path_attributes,
        ctx.four_octet_as,
        ctx.add_path_send.contains(Family::Ipv6Unicast),
    )
    .map_err(|e| EncodeError::from_codec(&e, max))?;
    let add_path_v4 = ctx.add_path_send.contains(Family::Ipv4Unicast);
    Ok(codec::UpdateMessage {
        withdrawn_routes: body_nlri(&v4_withdrawn, add_path_v4).into(),
        path_attributes: path_attributes.into(),
        nlri: body_nlri(&v4_announced, add_path_v4).into(),
    })
}

/// Bytes the path-attribute section takes for an UPDATE of `family` carrying `attributes`
/// and no NLRI (for IPv6 this includes an empty MP_REACH_NLRI with its next hop). Update
/// packing adds NLRI to this until the message is full.
pub fn attributes_len(
    attributes: &PathAttributes,
    family: Family,
    ctx: &CodecContext,
) -> Result<usize, EncodeError> {
    let mut attrs = Vec::new();
    match family {
        Family::Ipv4Unicast => attrs.extend(attributes.to_codec(true)),
        Family::Ipv6Unicast => {
            let next_hop = attributes.mp_next_hop.ok_or(EncodeError::Unrepresentable {
                field: "MP_REACH_NLRI",
                detail: "IPv6 routes without an MP next hop".to_string(),
            })?;
            attrs.push(mp_reach(next_hop, Vec::new())?);
            attrs.extend(attributes.to_codec(false));
        }
    }
    let mut buf = Vec::new();
    codec::attribute::encode_path_attributes(
        &attrs,
        &mut buf,
        ctx.four_octet_as,
        ctx.add_path_send.contains(family),
    )
    .map_err(|e| EncodeError::from_codec(&e, ctx.max_message_len()))?;
    Ok(buf.len())
}

/// Encodes `message` for a session with context `ctx` (header included).
pub fn encode_message(message: &Message, ctx: &CodecContext) -> Result<Vec<u8>, EncodeError> {
    let (encoded, max) = match message {
        Message::Open(open) => (
            codec::Message::Open(codec::OpenMessage {
                version: 4,
                my_as: open.my_as,
                hold_time: open.hold_time,
                bgp_identifier: open.router_id,
                capabilities: open.capabilities.iter().map(Capability::to_codec).collect(),
            }),
            MAX_MESSAGE_LEN,
        ),
        Message::Update(update) => (
            codec::Message::Update(encode_update(update, ctx)?),
            ctx.max_message_len(),
        ),
        Message::Notification(n) => (
            codec::Message::Notification(n.to_codec()),
            ctx.max_message_len(),
        ),
        Message::Keepalive => (codec::Message::Keepalive, MAX_MESSAGE_LEN),
        Message::RouteRefresh(rr) => (
            codec::Message::RouteRefresh(codec::RouteRefreshMessage {
                afi_raw: rr.afi_safi.afi,
                subtype_raw: rr.subtype,
                safi_raw: rr.afi_safi.safi,
                orf: None,
            }),
            ctx.max_message_len(),
        ),
    };
    let limit = u16::try_from(max).unwrap_or(u16::MAX);
    codec::encode_message_with_limit(&encoded, limit)
        .map(|b| b.to_vec())
        .map_err(|e| EncodeError::from_codec(&e, max))
}
