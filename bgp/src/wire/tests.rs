//! Round-trip and error-disposition tests on real wire vectors.
//!
//! Vectors marked "bgp.md §6.7" were captured with tcpdump from BIRD 2.0.12 and gobgpd 3.10
//! sessions in network namespaces (reference/bgp.md §6.7). Crafted vectors reproduce the raw
//! injector cases of reference/bgp.md §6.6, whose BIRD reactions are recorded there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

mod captured;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

const BIRD_OPEN: &str = "ffffffffffffffffffffffffffffffff003f0104fc0000f00a0000022202200104000100010200400600780001010041040000fc0045040001010346004700";
const GOBGP_OPEN: &str = "ffffffffffffffffffffffffffffffff00490104fc00005a0a0000032c022a0200490402766d0001040001000141040000fc0040060078000101000506000100010002450400010103";
const REFLECTED_ADD_PATH: &str = "ffffffffffffffffffffffffffffffff00590200000039400101004002004003040a00000440050400000064c00804fc0000648009040a000004800a040a000001c0200c0000fc000000000100000001000000041a0af40300";
const UNKNOWN_PARTIAL: &str = "ffffffffffffffffffffffffffffffff004a020000002a400101004002004003040a000004400504000000648009040a000004800a040a000001e0990400000064000000041a0af40400";
const ADD_PATH_WITHDRAW: &str =
    "ffffffffffffffffffffffffffffffff0029020012000000051a0af4010000000005200af401050000";
const IPV6_MP_REACH: &str = "ffffffffffffffffffffffffffffffff004f0200000038900e002600020110fd000000000000000000000000000002007afd1002440001000000000000000000004001010040020040050400000064";
const IPV4_EOR: &str = "ffffffffffffffffffffffffffffffff00170200000000";
const IPV6_EOR: &str = "ffffffffffffffffffffffffffffffff001d0200000006800f03000201";
const CEASE_ADMIN_RESET: &str = "ffffffffffffffffffffffffffffffff0015030604";
const MALFORMED_ORIGIN: &str = "ffffffffffffffffffffffffffffffff00310200000015400101054002004003040a000004400504000000641a0af40500";

fn ibgp_add_path() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        add_path_receive: FamilySet::of(&[Family::Ipv4Unicast]),
        add_path_send: FamilySet::of(&[Family::Ipv4Unicast]),
        extended_message: false,
    }
}

fn ibgp() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        ..CodecContext::default()
    }
}

/// Decodes, re-encodes and checks the bytes are identical; returns the decoded message.
fn round_trip(vector: &str, ctx: &CodecContext) -> Message {
    let bytes = hex(vector);
    let msg = decode_message(&bytes, ctx).unwrap();
    let again = encode_message(&msg, ctx).unwrap();
    assert_eq!(to_hex(&again), vector, "re-encoding {msg}");
    msg
}

#[test]
fn bird_open_decodes_every_capability() {
    let Message::Open(open) = decode_message(&hex(BIRD_OPEN), &CodecContext::default()).unwrap()
    else {
        panic!("not an open")
    };
    assert_eq!(open.asn(), 64512);
    assert_eq!(open.hold_time, 240);
    assert_eq!(open.router_id, Ipv4Addr::new(10, 0, 0, 2));
    assert!(open.four_octet_as());
    let caps = &open.capabilities;
    assert!(caps.contains(&Capability::MultiProtocol(Family::Ipv4Unicast.afi_safi())));
    assert!(caps.contains(&Capability::RouteRefresh));
    assert!(caps.contains(&Capability::EnhancedRouteRefresh));
    assert!(caps.contains(&Capability::AddPath(vec![(
        Family::Ipv4Unicast.afi_safi(),
        AddPathMode::Both
    )])));
    let gr = caps
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(gr.restart_time, 120);
    assert!(!gr.restart_state);
    // BIRD without `graceful restart` forwarding state: F bit clear.
    assert_eq!(gr.families, vec![(Family::Ipv4Unicast.afi_safi(), false)]);
    // LLGR (code 71) is kept opaque.
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::Other(o) if o.code() == 71))
    );
}

#[test]
fn bird_open_round_trips_byte_for_byte() {
    round_trip(BIRD_OPEN, &CodecContext::default());
}

#[test]
fn gobgp_open_decodes_and_re_encodes_equivalently() {
    let ctx = CodecContext::default();
    let msg = decode_message(&hex(GOBGP_OPEN), &ctx).unwrap();
    let Message::Open(open) = &msg else {
        panic!("not an open")
    };
    assert_eq!(open.asn(), 64512);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.router_id, Ipv4Addr::new(10, 0, 0, 3));
    // Extended next hop (5) and FQDN (73) are kept opaque.
    let codes: Vec<u8> = open.capabilities.iter().map(Capability::code).collect();
    assert!(codes.contains(&5) && codes.contains(&73), "codes {codes:?}");
    // GoBGP and the codec lay out optional parameters the same way here; a decode of our
    // encoding must at least give the same message.
    let again = encode_message(&msg, &ctx).unwrap();
    assert_eq!(decode_message(&again, &ctx).unwrap(), msg);
}

#[test]
fn reflected_add_path_update_round_trips() {
    let msg = round_trip(REFLECTED_ADD_PATH, &ibgp_add_path());
    let Message::Update(u) = msg else {
        panic!("not an update")
    };
    assert_eq!(u.announced, vec![Nlri::with_path_id(p("10.244.3.0/26"), 4)]);
    let a = &u.attributes;
    assert_eq!(a.origin, Origin::Igp);
    assert_eq!(a.as_path, AsPath::default());
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 0, 0, 4)));
    assert_eq!(a.local_pref, Some(100));
    assert_eq!(a.communities, vec![(64512 << 16) | 100]);
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 1
        }]
    );
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 0, 0, 4)));
    assert_eq!(a.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 1)]);
    assert!(u.errors.is_empty());
}

#[test]
fn unknown_optional_transitive_attribute_is_kept_with_partial() {
    let msg = round_trip(UNKNOWN_PARTIAL, &ibgp_add_path());
    let Message::Update(u) = msg else {
        panic!("not an update")
    };
    assert_eq!(u.attributes.other.len(), 1);
    let other = &u.attributes.other[0];
    assert_eq!(other.type_code(), 0x99);
    assert_eq!(other.flags(), 0xe0);
    assert_eq!(other.raw_value(), Some(&[0, 0, 0, 100][..]));
}

#[test]
fn add_path_withdraw_round_trips() {
    let msg = round_trip(ADD_PATH_WITHDRAW, &ibgp_add_path());
    let Message::Update(u) = msg else {
        panic!("not an update")
    };
    assert_eq!(
        u.withdrawn,
        vec![
            Nlri::with_path_id(p("10.244.1.0/26"), 5),
            Nlri::with_path_id(p("10.244.1.5/32"), 5)
        ]
    );
    assert!(u.announced.is_empty() && u.end_of_rib.is_none());
}

#[test]
fn ipv6_mp_reach_decodes_and_re_encodes_equivalently() {
    let ctx = ibgp();
    let msg = decode_message(&hex(IPV6_MP_REACH), &ctx).unwrap();
    let Message::Update(u) = &msg else {
        panic!("not an update")
    };
    assert_eq!(u.announced, vec![Nlri::new(p("fd10:244:1::/122"))]);
    let nh: Ipv6Addr = "fd00::2".parse().unwrap();
    assert_eq!(
        u.attributes.next_hop_for(Family::Ipv6Unicast),
        Some(IpAddr::V6(nh))
    );
    assert_eq!(u.attributes.local_pref, Some(100));
    // BIRD sets the extended-length flag on MP_REACH (0x90); the codec uses it only when
    // needed (0x80). Both are valid: compare the decoded messages.
    let again = encode_message(&msg, &ctx).unwrap();
    assert_eq!(decode_message(&again, &ctx).unwrap(), msg);
    let expected = hex(IPV6_MP_REACH);
    assert_eq!(
        again.len() + 1,
        expected.len(),
        "only the extended length octet differs"
    );
}

#[test]
fn end_of_rib_markers_round_trip() {
    let Message::Update(v4) = round_trip(IPV4_EOR, &ibgp()) else {
        panic!()
    };
    assert_eq!(v4.end_of_rib, Some(Family::Ipv4Unicast));
    let Message::Update(v6) = round_trip(IPV6_EOR, &ibgp()) else {
        panic!()
    };
    assert_eq!(v6.end_of_rib, Some(Family::Ipv6Unicast));
    assert_eq!(
        to_hex(
            &encode_message(
                &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
                &ibgp()
            )
            .unwrap()
        ),
        IPV6_EOR
    );
}

#[test]
fn cease_notification_round_trips() {
    let Message::Notification(n) = round_trip(CEASE_ADMIN_RESET, &CodecContext::default()) else {
        panic!()
    };
    assert_eq!((n.code, n.subcode), (6, 4));
    assert_eq!(n.to_string(), "6/4 (Administrative Reset)");
}

#[test]
fn keepalive_and_route_refresh_round_trip() {
    let ctx = CodecContext::default();
    round_trip("ffffffffffffffffffffffffffffffff001304", &ctx);
    let rr = round_trip("ffffffffffffffffffffffffffffffff00170500020001", &ctx);
    assert_eq!(
        rr,
        Message::RouteRefresh(RouteRefresh {
            afi_safi: Family::Ipv6Unicast.afi_safi(),
            subtype: 0
        })
    );
}

#[test]
fn malformed_origin_is_treat_as_withdraw() {
    let Message::Update(u) = decode_message(&hex(MALFORMED_ORIGIN), &ibgp()).unwrap() else {
        panic!()
    };
    assert_eq!(u.disposition(), Some(Disposition::TreatAsWithdraw));
    assert!(u.announced.is_empty());
    assert_eq!(u.withdrawn, vec![Nlri::new(p("10.244.5.0/26"))]);
    let e = &u.errors[0];
    assert_eq!(e.type_code, 1);
    assert_eq!((e.notification.code, e.notification.subcode), (3, 6));
    assert_eq!(e.notification.data, vec![0x40, 1, 1, 5]);
}

// Raw UPDATE builders mirroring the reference/bgp.md §6.6 injector.
fn raw_update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    m.push(2);
    m.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m
}

/// An UPDATE announcing 10.1.2.0/24 with `attrs`, decoded as from an iBGP peer.
fn ibgp_update_of_10_1_2(attrs: &[u8]) -> Update {
    let raw = raw_update(&[], attrs, &[24, 10, 1, 2]);
    let Message::Update(u) = decode_message(&raw, &ibgp()).unwrap() else {
        panic!("not an UPDATE")
    };
    u
}

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH: [u8; 3] = [0x40, 2, 0];
const NH: [u8; 7] = [0x40, 3, 4, 10, 0, 0, 4];
const LP: [u8; 7] = [0x40, 5, 4, 0, 0, 0, 100];

#[test]
fn missing_next_hop_on_ibgp_is_treat_as_withdraw() {
    let attrs = [&ORIGIN[..], &AS_PATH, &LP].concat();
    let u = ibgp_update_of_10_1_2(&attrs);
    assert_eq!(u.disposition(), Some(Disposition::TreatAsWithdraw));
    assert_eq!(u.withdrawn, vec![Nlri::new(p("10.1.2.0/24"))]);
    let e = u.errors.iter().find(|e| e.type_code == 3).unwrap();
    assert_eq!(
        (
            e.notification.code,
            e.notification.subcode,
            e.notification.data.clone()
        ),
        (3, 3, vec![3])
    );
}

#[test]
fn nlri_length_33_is_session_reset_with_invalid_network_field() {
    let attrs = [&ORIGIN[..], &AS_PATH, &NH, &LP].concat();
    let err = decode_message(&raw_update(&[], &attrs, &[33, 10, 0, 0, 0, 0]), &ibgp()).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (3, 10));
    assert_eq!(err.disposition(), Disposition::SessionReset);
    assert!(!err.incomplete);
}

#[test]
fn local_pref_length_overrun_is_treat_as_withdraw() {
    let attrs = [&ORIGIN[..], &AS_PATH, &NH, &[0x40, 5, 40, 0, 0, 0, 100]].concat();
    let u = ibgp_update_of_10_1_2(&attrs);
    assert_eq!(u.disposition(), Some(Disposition::TreatAsWithdraw));
    assert_eq!(u.withdrawn, vec![Nlri::new(p("10.1.2.0/24"))]);
}

#[test]
fn malformed_aggregator_is_attribute_discard_and_keeps_the_route() {
    // AGGREGATOR of length 3 (must be 8 with 4-octet AS): RFC 7606 §7.7.
    let attrs = [&ORIGIN[..], &AS_PATH, &NH, &LP, &[0xc0, 7, 3, 1, 2, 3]].concat();
    let u = ibgp_update_of_10_1_2(&attrs);
    assert_eq!(u.disposition(), Some(Disposition::AttributeDiscard));
    assert_eq!(u.announced, vec![Nlri::new(p("10.1.2.0/24"))]);
    assert!(u.withdrawn.is_empty());
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(u.errors[0].type_code, 7);
    assert_eq!(u.errors[0].notification.code, 3);
}

#[test]
fn malformed_local_pref_from_ebgp_is_discarded_but_from_ibgp_withdraws() {
    let attrs = [
        &ORIGIN[..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9],
        &NH,
        &[0x40, 5, 2, 0, 100],
    ]
    .concat();
    let msg = raw_update(&[], &attrs, &[24, 10, 1, 2]);
    let ebgp = CodecContext {
        four_octet_as: true,
        ..CodecContext::default()
    };
    let Message::Update(u) = decode_message(&msg, &ebgp).unwrap() else {
        panic!()
    };
    assert_eq!(u.disposition(), Some(Disposition::AttributeDiscard));
    assert_eq!(u.announced.len(), 1);
    let Message::Update(u) = decode_message(&msg, &ibgp()).unwrap() else {
        panic!()
    };
    assert_eq!(u.disposition(), Some(Disposition::TreatAsWithdraw));
    assert!(u.announced.is_empty());
}

#[test]
fn bad_marker_is_connection_not_synchronized() {
    let mut bytes = hex(IPV4_EOR);
    bytes[..16].fill(0);
    let err = decode_message(&bytes, &ibgp()).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 1));
}

#[test]
fn bad_length_and_type_map_to_header_errors() {
    let mut long = hex(IPV4_EOR);
    long[16..18].copy_from_slice(&5000u16.to_be_bytes());
    let err = frame_length(&long, &ibgp()).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 2));
    assert_eq!(err.notification.data, 5000u16.to_be_bytes().to_vec());
    let mut bad_type = hex(IPV4_EOR);
    bad_type[18] = 9;
    let err = decode_message(&bad_type, &ibgp()).unwrap_err();
    assert_eq!(
        (
            err.notification.code,
            err.notification.subcode,
            err.notification.data
        ),
        (1, 3, vec![9])
    );
}

#[test]
fn short_buffer_is_incomplete_not_malformed() {
    let bytes = hex(REFLECTED_ADD_PATH);
    assert_eq!(frame_length(&bytes[..10], &ibgp()).unwrap(), None);
    let err = decode_message(&bytes[..40], &ibgp_add_path()).unwrap_err();
    assert!(err.incomplete);
    assert_eq!(frame_length(&bytes, &ibgp()).unwrap(), Some(bytes.len()));
}

#[test]
fn unsupported_version_is_open_error_1() {
    let mut bytes = hex(BIRD_OPEN);
    bytes[19] = 3;
    let err = decode_message(&bytes, &CodecContext::default()).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (2, 1));
    assert_eq!(err.notification.data, vec![0, 4]);
}

#[test]
fn four_octet_asn_toward_two_octet_peer_uses_as_trans_and_as4_path() {
    let mut attrs = PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath::sequence(&[4_200_000_001, 65001]),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    };
    let update = Update::announce(attrs.clone(), vec![Nlri::new(p("10.9.0.0/16"))]);
    let two_octet = CodecContext::default();
    let bytes = encode_message(&Message::Update(update.clone()), &two_octet).unwrap();
    // AS_PATH carries AS_TRANS (0x5ba0), AS4_PATH (type 17) the real ASN.
    let h = to_hex(&bytes);
    assert!(h.contains("5ba0fde9"), "{h}");
    assert!(h.contains("c011"), "AS4_PATH missing: {h}");
    let Message::Update(back) = decode_message(&bytes, &two_octet).unwrap() else {
        panic!()
    };
    assert_eq!(back.attributes.as_path, attrs.as_path);
    // The same path to a 4-octet peer has no AS4_PATH.
    attrs.as_path = AsPath::sequence(&[4_200_000_001]);
    let four = encode_message(
        &Message::Update(Update::announce(attrs, vec![Nlri::new(p("10.9.0.0/16"))])),
        &ibgp(),
    )
    .unwrap();
    assert!(!to_hex(&four).contains("c011"));
}

#[test]
fn open_for_four_octet_asn_puts_as_trans_in_my_as() {
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(1, 1, 1, 1),
        vec![Capability::FourOctetAs(4_200_000_001)],
    );
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_001);
    let bytes = encode_message(&Message::Open(open.clone()), &CodecContext::default()).unwrap();
    assert_eq!(
        decode_message(&bytes, &CodecContext::default()).unwrap(),
        Message::Open(open)
    );
}

#[test]
fn mixed_family_update_uses_per_family_add_path() {
    let attrs = PathAttributes {
        origin: Origin::Igp,
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        mp_next_hop: Some(MpNextHop {
            global: "fd00::1".parse().unwrap(),
            link_local: None,
        }),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    let ctx = CodecContext {
        four_octet_as: true,
        ibgp: true,
        add_path_receive: FamilySet::of(&[Family::Ipv6Unicast]),
        add_path_send: FamilySet::of(&[Family::Ipv6Unicast]),
        extended_message: false,
    };
    let update = Update::announce(
        attrs,
        vec![
            Nlri::new(p("10.1.0.0/24")),
            Nlri::with_path_id(p("fd10::/64"), 7),
        ],
    );
    let bytes = encode_message(&Message::Update(update.clone()), &ctx).unwrap();
    let Message::Update(back) = decode_message(&bytes, &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(back.announced, update.announced);
    assert_eq!(back.attributes, update.attributes);
}

#[test]
fn shutdown_communication_round_trips() {
    let n = Notification::cease_with_reason(Notification::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    assert_eq!(n.shutdown_reason().as_deref(), Some("maintenance"));
    let bytes =
        encode_message(&Message::Notification(n.clone()), &CodecContext::default()).unwrap();
    assert_eq!(
        decode_message(&bytes, &CodecContext::default()).unwrap(),
        Message::Notification(n)
    );
}

#[test]
fn non_link_local_second_next_hop_is_treat_as_withdraw() {
    // Found by the bgp_decode fuzz target: an IPv6 MP_REACH with a 32-octet next hop whose
    // second address is not link-local (the codec refuses to re-encode it).
    let mut bytes = hex(IPV6_MP_REACH);
    bytes[30] = 0x20; // next-hop length 32: the following 16 bytes become the second address
    let Message::Update(u) = decode_message(&bytes, &ibgp()).unwrap() else {
        panic!()
    };
    assert_eq!(u.disposition(), Some(Disposition::TreatAsWithdraw));
    assert!(u.announced.is_empty());
    let again = encode_message(&Message::Update(u), &ibgp()).unwrap();
    assert!(decode_message(&again, &ibgp()).is_ok());
    let bad = MpNextHop {
        global: "fd00::1".parse().unwrap(),
        link_local: Some("fd00::2".parse().unwrap()),
    };
    let attrs = PathAttributes {
        mp_next_hop: Some(bad),
        ..PathAttributes::default()
    };
    let update = Update::announce(attrs, vec![Nlri::new(p("fd10::/64"))]);
    assert!(encode_message(&Message::Update(update), &ibgp()).is_err());
}

#[test]
fn ipv4_routes_need_an_ipv4_next_hop_to_be_encoded() {
    let mut attrs = PathAttributes::default();
    let update = |a: &PathAttributes| {
        Message::Update(Update::announce(
            a.clone(),
            vec![Nlri::new(p("10.1.0.0/24"))],
        ))
    };
    assert!(encode_message(&update(&attrs), &ibgp()).is_err());
    // An IPv4 next hop that arrived in MP_REACH_NLRI moves to the body NEXT_HOP.
    attrs.mp_next_hop = Some(MpNextHop {
        global: "10.0.0.7".parse().unwrap(),
        link_local: None,
    });
    let bytes = encode_message(&update(&attrs), &ibgp()).unwrap();
    let Message::Update(back) = decode_message(&bytes, &ibgp()).unwrap() else {
        panic!()
    };
    assert_eq!(back.attributes.next_hop, Some(Ipv4Addr::new(10, 0, 0, 7)));
    assert!(back.errors.is_empty());
}

#[test]
fn prefix_parsing_masks_host_bits_and_rejects_bad_lengths() {
    assert_eq!(p("10.244.3.7/26").to_string(), "10.244.3.0/26");
    assert_eq!(p("fd10::1/64").to_string(), "fd10::/64");
    assert!("10.0.0.0/33".parse::<Prefix>().is_err());
    assert_eq!(p("10.0.0.0/26").nlri_len(), 5);
    assert_eq!(p("0.0.0.0/0").nlri_len(), 1);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_prefix() -> impl Strategy<Value = Prefix> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, l)| Prefix::new(IpAddr::V4(a.into()), l).unwrap()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, l)| Prefix::new(IpAddr::V6(a.into()), l).unwrap()),
        ]
    }

    fn arb_attrs() -> impl Strategy<Value = PathAttributes> {
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            proptest::collection::vec(1u32..=u32::MAX, 0..5),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(any::<u32>(), 0..4),
            proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 0..3),
        )
            .prop_map(
                |(origin, path, med, lp, communities, clusters)| PathAttributes {
                    origin,
                    as_path: AsPath::sequence(&path),
                    next_hop: Some(Ipv4Addr::new(10, 0, 0, 9)),
                    mp_next_hop: Some(MpNextHop {
                        global: "fd00::9".parse().unwrap(),
                        link_local: None,
                    }),
                    med,
                    local_pref: lp,
                    communities,
                    cluster_list: clusters,
                    ..PathAttributes::default()
                },
            )
    }

    proptest! {
        #[test]
        fn update_decode_of_encode_is_identity(
            attrs in arb_attrs(),
            prefixes in proptest::collection::btree_set(arb_prefix(), 1..20),
            four_octet in any::<bool>(),
            add_path in any::<bool>(),
        ) {
            let set = if add_path { FamilySet::of(&Family::ALL) } else { FamilySet::EMPTY };
            let ctx = CodecContext {
                four_octet_as: four_octet,
                ibgp: true,
                add_path_receive: set,
                add_path_send: set,
                extended_message: false,
            };
            let nlri: Vec<Nlri> = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| Nlri::with_path_id(*p, if add_path { u32::try_from(i).unwrap() + 1 } else { 0 }))
                .collect();
            let mut attrs = attrs;
            // Each next hop travels only with NLRI of its family.
            if !nlri.iter().any(|n| n.prefix.family() == Family::Ipv6Unicast) {
                attrs.mp_next_hop = None;
            }
            if !nlri.iter().any(|n| n.prefix.family() == Family::Ipv4Unicast) {
                attrs.next_hop = None;
            }
            let update = Update::announce(attrs, nlri);
            let bytes = encode_message(&Message::Update(update.clone()), &ctx).unwrap();
            let Message::Update(mut back) = decode_message(&bytes, &ctx).unwrap() else { panic!() };
            back.announced.sort();
            let mut want = update.announced.clone();
            want.sort();
            prop_assert_eq!(back.announced, want);
            prop_assert_eq!(back.attributes, update.attributes);
        }

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..200), kind in 1u8..=5) {
            let mut m = vec![0xff; 16];
            m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
            m.push(kind);
            m.extend_from_slice(&body);
            let _ = decode_message(&m, &ibgp_add_path());
        }
    }
}
