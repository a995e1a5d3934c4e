//! Path attributes (RFC 4271 §5, RFC 1997, 4360, 4456, 4760, 6793, 8092) as one struct per
//! UPDATE, the shape the RIB interns and best path reads. MP_REACH/MP_UNREACH NLRI live in
//! [`super::Update`]; only the MP next hop is kept here. Attributes we do not model are kept
//! opaque in [`OtherAttribute`] and passed on (unknown optional transitive gain Partial).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustbgpd_wire as codec;

use super::Family;

/// ORIGIN (RFC 4271 §5.1.1); the derived order is the preference order (IGP best).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Origin {
    /// Learned by an interior protocol.
    Igp,
    /// Learned by EGP.
    Egp,
    /// Anything else (redistributed).
    #[default]
    Incomplete,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "IGP",
            Origin::Egp => "EGP",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsPathSegment {
    /// AS_SEQUENCE: ordered.
    Sequence(Vec<u32>),
    /// AS_SET: unordered, counts as one hop.
    Set(Vec<u32>),
}

/// AS_PATH in 4-octet form (AS4_PATH already merged by the decoder, RFC 6793 §4.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments, leftmost (most recent) first.
    pub segments: Vec<AsPathSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: &[u32]) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsPathSegment::Sequence(asns.to_vec())],
        }
    }

    /// Path length for best-path selection: an AS_SET counts as one (RFC 4271 §9.1.2.2 a).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsPathSegment::Sequence(asns) => asns.len(),
                AsPathSegment::Set(asns) => usize::from(!asns.is_empty()),
            })
            .sum()
    }

    /// The neighbor AS: the first AS of a leading AS_SEQUENCE (used to group MEDs).
    pub fn neighbor_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsPathSegment::Sequence(asns)) => asns.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| match s {
            AsPathSegment::Sequence(asns) | AsPathSegment::Set(asns) => asns.contains(&asn),
        })
    }

    /// The path with `asn` prepended (what an eBGP speaker does on export).
    pub fn prepend(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(AsPathSegment::Sequence(asns)) if asns.len() < 255 => asns.insert(0, asn),
            _ => segments.insert(0, AsPathSegment::Sequence(vec![asn])),
        }
        AsPath { segments }
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match segment {
                AsPathSegment::Sequence(asns) => {
                    let parts: Vec<String> = asns.iter().map(u32::to_string).collect();
                    f.write_str(&parts.join(" "))?;
                }
                AsPathSegment::Set(asns) => {
                    let parts: Vec<String> = asns.iter().map(u32::to_string).collect();
                    write!(f, "{{{}}}", parts.join(","))?;
                }
            }
        }
        Ok(())
    }
}

/// AGGREGATOR in 4-octet form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// AS of the aggregating speaker.
    pub asn: u32,
    /// BGP identifier of the aggregating speaker.
    pub router_id: Ipv4Addr,
}

/// An RFC 8092 large community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator (an ASN).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

/// The MP_REACH_NLRI next hop (RFC 4760 §3; RFC 2545: global plus optional link-local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpNextHop {
    /// Global next hop (IPv6 for IPv6 unicast; IPv6 or IPv4 for IPv4 unicast per RFC 8950).
    pub global: IpAddr,
    /// Link-local IPv6 next hop when the next-hop field is 32 octets.
    pub link_local: Option<Ipv6Addr>,
}

/// A path attribute we do not model, kept as decoded and passed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherAttribute(pub(crate) codec::PathAttribute);

impl OtherAttribute {
    /// An unknown attribute with the given flags, type code and value.
    pub fn raw(flags: u8, type_code: u8, data: Vec<u8>) -> OtherAttribute {
        OtherAttribute(codec::PathAttribute::Unknown(codec::RawAttribute {
            flags,
            type_code,
            data: data.into(),
        }))
    }

    /// The type code.
    pub fn type_code(&self) -> u8 {
        self.0.type_code()
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.0.flags()
    }

    /// The raw value, for attributes the codec did not type.
    pub fn raw_value(&self) -> Option<&[u8]> {
        match &self.0 {
            codec::PathAttribute::Unknown(raw) => Some(&raw.data),
            _ => None,
        }
    }
}

/// The path attributes of one UPDATE (all but MP_REACH/MP_UNREACH NLRI).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN (mandatory for announcements).
    pub origin: Origin,
    /// AS_PATH (mandatory for announcements; empty for iBGP-originated routes).
    pub as_path: AsPath,
    /// NEXT_HOP for IPv4 NLRI in the UPDATE body.
    pub next_hop: Option<Ipv4Addr>,
    /// The next hop carried in MP_REACH_NLRI.
    pub mp_next_hop: Option<MpNextHop>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// RFC 1997 communities (high 16 bits ASN, low 16 bits value).
    pub communities: Vec<u32>,
    /// RFC 4360 extended communities as 64-bit values.
    pub extended_communities: Vec<u64>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// RFC 4456 ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// RFC 4456 CLUSTER_LIST (empty when absent).
    pub cluster_list: Vec<Ipv4Addr>,
    /// Everything else, passed on as received.
    pub other: Vec<OtherAttribute>,
}

impl PathAttributes {
    /// The next hop for routes of `family` carried with these attributes.
    pub fn next_hop_for(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4Unicast => self
                .next_hop
                .map(IpAddr::V4)
                .or_else(|| self.mp_next_hop.map(|nh| nh.global)),
            Family::Ipv6Unicast => self.mp_next_hop.map(|nh| nh.global),
        }
    }

    /// Builds our attributes from the codec's list, ignoring MP_REACH/MP_UNREACH (the caller
    /// takes their NLRI and next hop).
    pub(crate) fn from_codec(attrs: &[codec::PathAttribute]) -> PathAttributes {
        let mut out = PathAttributes::default();
        for attr in attrs {
            match attr {
                codec::PathAttribute::Origin(origin) => {
                    out.origin = match origin {
                        codec::Origin::Igp => Origin::Igp,
                        codec::Origin::Egp => Origin::Egp,
                        codec::Origin::Incomplete => Origin::Incomplete,
                    }
                }
                codec::PathAttribute::AsPath(path) => {
                    out.as_path = AsPath {
                        segments: path
                            .segments
                            .iter()
                            .map(|s| match s {
                                codec::AsPathSegment::AsSequence(a) => {
                                    AsPathSegment::Sequence(a.clone())
                                }
                                codec::AsPathSegment::AsSet(a) => AsPathSegment::Set(a.clone()),
                            })
                            .collect(),
                    }
                }
                codec::PathAttribute::NextHop(nh) => out.next_hop = Some(*nh),
                codec::PathAttribute::Med(med) => out.med = Some(*med),
                codec::PathAttribute::LocalPref(lp) => out.local_pref = Some(*lp),
                codec::PathAttribute::AtomicAggregate => out.atomic_aggregate = true,
                codec::PathAttribute::Aggregator(a) => {
                    out.aggregator = Some(Aggregator {
                        asn: a.asn,
                        router_id: a.router_id,
                    })
                }
                codec::PathAttribute::Communities(c)
                | codec::PathAttribute::CommunitiesPartial(c) => out.communities = c.clone(),
                codec::PathAttribute::ExtendedCommunities(c)
                | codec::PathAttribute::ExtendedCommunitiesPartial(c) => {
                    out.extended_communities = c.iter().map(|e| e.as_u64()).collect()
                }
                codec::PathAttribute::LargeCommunities(c)
                | codec::PathAttribute::LargeCommunitiesPartial(c) => {
                    out.large_communities = c
                        .iter()
                        .map(|l| LargeCommunity {
                            global: l.global_admin,
                            local1: l.local_data1,
                            local2: l.local_data2,
                        })
                        .collect()
                }
                codec::PathAttribute::OriginatorId(id) => out.originator_id = Some(*id),
                codec::PathAttribute::ClusterList(list) => out.cluster_list = list.clone(),
                codec::PathAttribute::MpReachNlri(_) | codec::PathAttribute::MpUnreachNlri(_) => {}
                other => out.other.push(OtherAttribute(other.clone())),
            }
        }
        out
    }

    /// The codec's attribute list, in type-code order (MP attributes are added by the caller).
    /// `with_next_hop` controls whether the body NEXT_HOP is included (only with body NLRI).
    pub(crate) fn to_codec(&self, with_next_hop: bool) -> Vec<codec::PathAttribute> {
        use codec::PathAttribute as A;
        let mut out = vec![
            A::Origin(match self.origin {
                Origin::Igp => codec::Origin::Igp,
                Origin::Egp => codec::Origin::Egp,
                Origin::Incomplete => codec::Origin::Incomplete,
            }),
            A::AsPath(codec::AsPath {
                segments: self
                    .as_path
                    .segments
                    .iter()
                    .map(|s| match s {
                        AsPathSegment::Sequence(a) => codec::AsPathSegment::AsSequence(a.clone()),
                        AsPathSegment::Set(a) => codec::AsPathSegment::AsSet(a.clone()),
                    })
                    .collect(),
            }),
        ];
        if let (true, Some(nh)) = (with_next_hop, self.next_hop) {
            out.push(A::NextHop(nh));
        }
        if let Some(med) = self.med {
            out.push(A::Med(med));
        }
        if let Some(lp) = self.local_pref {
            out.push(A::LocalPref(lp));
        }
        if self.atomic_aggregate {
            out.push(A::AtomicAggregate);
        }
        if let Some(a) = self.aggregator {
            out.push(A::Aggregator(codec::Aggregator {
                asn: a.asn,
                router_id: a.router_id,
                partial: false,
            }));
        }
        if !self.communities.is_empty() {
            out.push(A::Communities(self.communities.clone()));
        }
        if let Some(id) = self.originator_id {
            out.push(A::OriginatorId(id));
        }
        if !self.cluster_list.is_empty() {
            out.push(A::ClusterList(self.cluster_list.clone()));
        }
        if !self.extended_communities.is_empty() {
            out.push(A::ExtendedCommunities(
                self.extended_communities
                    .iter()
                    .map(|e| codec::ExtendedCommunity::new(*e))
                    .collect(),
            ));
        }
        if !self.large_communities.is_empty() {
            out.push(A::LargeCommunities(
                self.large_communities
                    .iter()
                    .map(|l| codec::LargeCommunity::new(l.global, l.local1, l.local2))
                    .collect(),
            ));
        }
        out.extend(self.other.iter().map(|o| o.0.clone()));
        out
    }
}
