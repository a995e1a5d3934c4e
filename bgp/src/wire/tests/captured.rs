//! Messages captured from real BIRD and GoBGP, decoded and re-encoded.
//!
//! How they were captured (2026-11-23, this machine): two throwaway namespaces `vrcap-a`
//! (10.99.0.1, fd99::1) and `vrcap-b` (10.99.0.2, fd99::2) joined by a veth pair. In `vrcap-a` a
//! 40-line Python passive speaker (AS 64512, id 10.99.0.1) offered MP IPv4+IPv6, route refresh,
//! 4-octet AS, ADD-PATH both ways for both families and GR, and logged every message in hex.
//! In `vrcap-b`:
//! - BIRD 2.0.12 with `protocol bgp vr { local 10.99.0.2 as 64512; neighbor 10.99.0.1 as 64512;
//!   graceful restart on; ipv4 { export where source = RTS_STATIC; next hop self; add paths on; };
//!   ipv6 { ...; next hop address fd99::2; add paths on; }; }`, statics 10.244.1.0/26,
//!   10.244.1.5/32 and fd10:244:1::/122; then `birdc disable pods4` (withdraw) and
//!   `birdc disable vr` (Cease 6/2);
//! - gobgpd 3.10 with the reference/bgp.md §6.3 neighbor config plus an ipv6-unicast afi-safi;
//!   then `gobgp global rib add 10.244.7.0/26 community 64512:100`, `gobgp global rib add -a
//!   ipv6 fd10:244:7::/122 nexthop fd99::2`, `gobgp global rib del 10.244.7.0/26`, and
//!   `gobgp neighbor 10.99.0.1 shutdown` (Cease 6/2).
//!
//! The namespaces and daemons were removed afterwards.

use super::*;

const BIRD_OPEN: &str = "ffffffffffffffffffffffffffffffff004d0104fc00005a0a63000230022e0104000100010104000200010200400a0078000101000002010041040000fc004508000101030002010346004700";
const BIRD_V4_ADD_PATH: &str = "ffffffffffffffffffffffffffffffff003e0200000015400101004002004003040a63000240050400000064000000031a0af4010000000003200af40105";
const BIRD_V6_ADD_PATH: &str = "ffffffffffffffffffffffffffffffff0053020000003c900e002a00020110fd99000000000000000000000000000200000000047afd1002440001000000000000000000004001010040020040050400000064";
const BIRD_V4_WITHDRAW: &str =
    "ffffffffffffffffffffffffffffffff0029020012000000031a0af4010000000003200af401050000";
const BIRD_CEASE: &str = "ffffffffffffffffffffffffffffffff0015030602";
const GOBGP_OPEN: &str = "ffffffffffffffffffffffffffffffff00530104fc00005a0a6300023602340200490402766d0001040001000101040002000141040000fc00400a007800010100000201000506000100010002450400010103";
const GOBGP_V4_ADD_PATH: &str = "ffffffffffffffffffffffffffffffff003c020000001c400101024002004003040a63000240050400000064c00804fc000064000000011a0af40700";
const GOBGP_V6: &str = "ffffffffffffffffffffffffffffffff004e02000000374001010240020040050400000064800e2600020110fd990000000000000000000000000002007afd100244000700000000000000000000";
const GOBGP_V4_WITHDRAW: &str = "ffffffffffffffffffffffffffffffff0020020009000000011a0af407000000";

/// BIRD negotiated ADD-PATH both ways for both families with our capture peer.
fn bird_ctx() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        add_path_receive: FamilySet::of(&Family::ALL),
        add_path_send: FamilySet::of(&Family::ALL),
        extended_message: false,
    }
}

/// GoBGP offered ADD-PATH for IPv4 only.
fn gobgp_ctx() -> CodecContext {
    CodecContext {
        add_path_receive: FamilySet::of(&[Family::Ipv4Unicast]),
        add_path_send: FamilySet::of(&[Family::Ipv4Unicast]),
        ..bird_ctx()
    }
}

/// Decode, encode, decode: the two decodes agree.
fn same_after_re_encoding(vector: &str, ctx: &CodecContext) -> Message {
    let msg = decode_message(&hex(vector), ctx).unwrap();
    let again = encode_message(&msg, ctx).unwrap();
    assert_eq!(decode_message(&again, ctx).unwrap(), msg);
    msg
}

fn update(msg: Message) -> Update {
    let Message::Update(u) = msg else {
        panic!("not an update: {msg}")
    };
    u
}

fn open(msg: Message) -> Open {
    let Message::Open(o) = msg else {
        panic!("not an open: {msg}")
    };
    o
}

#[test]
fn bird_open_with_two_families_round_trips() {
    let o = open(round_trip(BIRD_OPEN, &CodecContext::default()));
    assert_eq!(
        (o.asn(), o.hold_time, o.router_id),
        (64512, 90, Ipv4Addr::new(10, 99, 0, 2))
    );
    assert!(o.capabilities.contains(&Capability::AddPath(vec![
        (Family::Ipv4Unicast.afi_safi(), AddPathMode::Both),
        (Family::Ipv6Unicast.afi_safi(), AddPathMode::Both),
    ])));
    let gr = o.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    let gr = gr.unwrap();
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
}

#[test]
fn bird_ipv4_add_path_update_round_trips() {
    let u = update(round_trip(BIRD_V4_ADD_PATH, &bird_ctx()));
    assert_eq!(
        u.announced,
        vec![
            Nlri::with_path_id(p("10.244.1.0/26"), 3),
            Nlri::with_path_id(p("10.244.1.5/32"), 3)
        ]
    );
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 99, 0, 2)));
    assert_eq!(u.attributes.local_pref, Some(100));
}

#[test]
fn bird_ipv6_add_path_update_decodes_and_re_encodes() {
    let u = update(same_after_re_encoding(BIRD_V6_ADD_PATH, &bird_ctx()));
    assert_eq!(
        u.announced,
        vec![Nlri::with_path_id(p("fd10:244:1::/122"), 4)]
    );
    let nh: IpAddr = "fd99::2".parse().unwrap();
    assert_eq!(u.attributes.next_hop_for(Family::Ipv6Unicast), Some(nh));
}

#[test]
fn bird_withdraw_end_of_rib_and_cease_round_trip() {
    let u = update(round_trip(BIRD_V4_WITHDRAW, &bird_ctx()));
    assert_eq!(
        u.withdrawn,
        vec![
            Nlri::with_path_id(p("10.244.1.0/26"), 3),
            Nlri::with_path_id(p("10.244.1.5/32"), 3)
        ]
    );
    let Message::Notification(n) = round_trip(BIRD_CEASE, &bird_ctx()) else {
        panic!()
    };
    assert_eq!((n.code, n.subcode), (6, 2));
}

#[test]
fn gobgp_open_with_fqdn_round_trips() {
    let o = open(round_trip(GOBGP_OPEN, &CodecContext::default()));
    assert_eq!(o.asn(), 64512);
    assert!(o.capabilities.iter().any(|c| c.code() == 73), "FQDN kept");
    assert!(o.capabilities.contains(&Capability::AddPath(vec![(
        Family::Ipv4Unicast.afi_safi(),
        AddPathMode::Both
    )])));
}

#[test]
fn gobgp_ipv4_add_path_update_round_trips() {
    let u = update(round_trip(GOBGP_V4_ADD_PATH, &gobgp_ctx()));
    assert_eq!(u.announced, vec![Nlri::with_path_id(p("10.244.7.0/26"), 1)]);
    assert_eq!(u.attributes.origin, Origin::Incomplete);
    assert_eq!(u.attributes.communities, vec![(64512 << 16) | 100]);
    let w = update(round_trip(GOBGP_V4_WITHDRAW, &gobgp_ctx()));
    assert_eq!(w.withdrawn, vec![Nlri::with_path_id(p("10.244.7.0/26"), 1)]);
}

#[test]
fn gobgp_ipv6_update_decodes_and_re_encodes() {
    // GoBGP puts MP_REACH_NLRI last; we put it first (as BIRD does): same message, other order.
    let u = update(same_after_re_encoding(GOBGP_V6, &gobgp_ctx()));
    assert_eq!(u.announced, vec![Nlri::new(p("fd10:244:7::/122"))]);
    let nh: IpAddr = "fd99::2".parse().unwrap();
    assert_eq!(u.attributes.next_hop_for(Family::Ipv6Unicast), Some(nh));
    assert_eq!(u.attributes.origin, Origin::Incomplete);
}
