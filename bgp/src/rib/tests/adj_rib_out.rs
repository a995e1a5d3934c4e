//! Adj-RIB-Out tests: packing within 4,096 bytes, grouping by attribute set, ADD-PATH path ids,
//! withdrawals, route refresh and End-of-RIB — every UPDATE is encoded and decoded back.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::*;
use crate::wire::{
    CodecContext, FamilySet, MAX_MESSAGE_LEN, Message, MpNextHop, decode_message, encode_message,
};

fn ctx(add_path: bool) -> CodecContext {
    let set = if add_path {
        FamilySet::of(&Family::ALL)
    } else {
        FamilySet::EMPTY
    };
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        add_path_receive: set,
        add_path_send: set,
        extended_message: false,
    }
}

fn out_attrs(local_pref: u32) -> Arc<PathAttributes> {
    Arc::new(PathAttributes {
        origin: Origin::Igp,
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        mp_next_hop: Some(MpNextHop {
            global: "fd00::1".parse().unwrap(),
            link_local: None,
        }),
        local_pref: Some(local_pref),
        communities: vec![0xfc00_0064],
        ..PathAttributes::default()
    })
}

/// Encodes every update, checks the size limit, and decodes it back.
fn wire_round_trip(updates: &[Update], ctx: &CodecContext) -> Vec<Update> {
    updates
        .iter()
        .map(|u| {
            let bytes = encode_message(&Message::Update(u.clone()), ctx).unwrap();
            assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
            let Message::Update(back) = decode_message(&bytes, ctx).unwrap() else {
                panic!()
            };
            back
        })
        .collect()
}

fn v4(i: u32) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 32).unwrap()
}

fn v6(i: u32) -> Prefix {
    Prefix::new(
        IpAddr::V6(Ipv6Addr::from(
            0xfd10_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        )),
        128,
    )
    .unwrap()
}

#[test]
fn packs_thousands_of_prefixes_into_full_updates_under_4096_bytes() {
    for add_path in [false, true] {
        let ctx = ctx(add_path);
        let mut out = AdjRibOut::new(ctx);
        let attrs = out_attrs(100);
        for i in 0..3000 {
            out.set(v4(i), std::slice::from_ref(&attrs));
            out.set(v6(i), std::slice::from_ref(&attrs));
        }
        let updates = out.flush().unwrap();
        let back = wire_round_trip(&updates, &ctx);
        let sent: BTreeSet<Prefix> = back
            .iter()
            .flat_map(|u| u.announced.iter().map(|n| n.prefix))
            .collect();
        assert_eq!(sent.len(), 6000);
        // Packed, not one prefix per message: at most one partly filled UPDATE per family
        // beyond what the NLRI bytes need at ~3,900 usable bytes per message.
        let path_id: usize = if add_path { 4 } else { 0 };
        let bytes_v4 = 3000 * (5 + path_id);
        let bytes_v6 = 3000 * (17 + path_id);
        let bound = bytes_v4.div_ceil(3900) + bytes_v6.div_ceil(3900);
        assert!(
            updates.len() <= bound,
            "{} updates, bound {bound}",
            updates.len()
        );
        // Each family's UPDATE carries only its own next hop; everything else is as given.
        for u in &back {
            let mut want = (*attrs).clone();
            match u.announced[0].prefix.family() {
                Family::Ipv4Unicast => want.mp_next_hop = None,
                Family::Ipv6Unicast => want.next_hop = None,
            }
            assert_eq!(u.attributes, want);
        }
        assert!(!out.has_pending());
    }
}

#[test]
fn groups_prefixes_by_attribute_set() {
    let mut out = AdjRibOut::new(ctx(false));
    let a = out_attrs(100);
    let b = out_attrs(200);
    for i in 0..10 {
        out.set(
            v4(i),
            std::slice::from_ref(if i % 2 == 0 { &a } else { &b }),
        );
    }
    let updates = out.flush().unwrap();
    assert_eq!(updates.len(), 2);
    for u in &updates {
        assert_eq!(u.announced.len(), 5);
    }
}

#[test]
fn withdrawals_are_packed_per_family_and_sent_first() {
    let ctx = ctx(false);
    let mut out = AdjRibOut::new(ctx);
    let attrs = out_attrs(100);
    for i in 0..2000 {
        out.set(v4(i), std::slice::from_ref(&attrs));
        out.set(v6(i), std::slice::from_ref(&attrs));
    }
    out.flush().unwrap();
    for i in 0..2000 {
        out.set(v4(i), &[]);
        out.set(v6(i), &[]);
    }
    out.set(v4(5000), std::slice::from_ref(&attrs));
    let updates = out.flush().unwrap();
    let back = wire_round_trip(&updates, &ctx);
    let withdrawn: usize = back.iter().map(|u| u.withdrawn.len()).sum();
    assert_eq!(withdrawn, 4000);
    assert!(back.last().unwrap().announced == vec![Nlri::new(v4(5000))]);
    assert!(
        back[..back.len() - 1]
            .iter()
            .all(|u| u.announced.is_empty())
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn without_add_path_only_the_best_is_advertised() {
    let mut out = AdjRibOut::new(ctx(false));
    let p = v4(1);
    out.set(p, &[out_attrs(200), out_attrs(100)]);
    let updates = out.flush().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].announced, vec![Nlri::new(p)]);
    assert_eq!(updates[0].attributes.local_pref, Some(200));
    // A new best replaces it in place (implicit withdraw), no explicit withdraw.
    out.set(p, &[out_attrs(300)]);
    let updates = out.flush().unwrap();
    assert_eq!(updates.len(), 1);
    assert!(updates[0].withdrawn.is_empty());
    assert_eq!(updates[0].attributes.local_pref, Some(300));
}

#[test]
fn unchanged_routes_are_not_resent() {
    let mut out = AdjRibOut::new(ctx(false));
    out.set(v4(1), &[out_attrs(100)]);
    out.flush().unwrap();
    out.set(v4(1), &[out_attrs(100)]);
    assert!(!out.has_pending());
    assert!(out.flush().unwrap().is_empty());
}

#[test]
fn a_route_withdrawn_before_it_was_sent_produces_nothing() {
    let mut out = AdjRibOut::new(ctx(false));
    out.set(v4(1), &[out_attrs(100)]);
    out.set(v4(1), &[]);
    assert!(out.flush().unwrap().is_empty());
    assert!(out.is_empty());
}

#[test]
fn add_path_send_keeps_path_ids_stable() {
    let ctx = ctx(true);
    let mut out = AdjRibOut::new(ctx);
    let p = v4(7);
    let (a, b, c) = (out_attrs(100), out_attrs(200), out_attrs(300));
    out.set(p, &[Arc::clone(&a), Arc::clone(&b)]);
    let first = wire_round_trip(&out.flush().unwrap(), &ctx);
    let mut ids: Vec<u32> = first
        .iter()
        .flat_map(|u| u.announced.iter().map(|n| n.path_id))
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(out.get(&Nlri::with_path_id(p, 2)), Some(&b));
    // Path a goes away: only its id is withdrawn; b keeps id 2.
    out.set(p, std::slice::from_ref(&b));
    let second = wire_round_trip(&out.flush().unwrap(), &ctx);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].withdrawn, vec![Nlri::with_path_id(p, 1)]);
    // A new path takes the free id 1; b is not resent.
    out.set(p, &[Arc::clone(&c), Arc::clone(&b)]);
    let third = wire_round_trip(&out.flush().unwrap(), &ctx);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].announced, vec![Nlri::with_path_id(p, 1)]);
    assert_eq!(third[0].attributes.local_pref, Some(300));
}

#[test]
fn route_refresh_requeues_one_family() {
    let mut out = AdjRibOut::new(ctx(false));
    out.set(v4(1), &[out_attrs(100)]);
    out.set(v6(1), &[out_attrs(100)]);
    out.flush().unwrap();
    out.refresh(Family::Ipv6Unicast);
    let updates = out.flush().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].announced, vec![Nlri::new(v6(1))]);
}

#[test]
fn end_of_rib_markers_match_the_bird_vectors() {
    let ctx = ctx(false);
    let v4_eor = encode_message(
        &Message::Update(AdjRibOut::end_of_rib(Family::Ipv4Unicast)),
        &ctx,
    )
    .unwrap();
    assert_eq!(
        v4_eor,
        crate::wire::tests::hex("ffffffffffffffffffffffffffffffff00170200000000")
    );
    let v6_eor = encode_message(
        &Message::Update(AdjRibOut::end_of_rib(Family::Ipv6Unicast)),
        &ctx,
    )
    .unwrap();
    assert_eq!(
        v6_eor,
        crate::wire::tests::hex("ffffffffffffffffffffffffffffffff001d0200000006800f03000201")
    );
}

#[test]
fn huge_attribute_sets_still_fit() {
    let mut attrs = (*out_attrs(100)).clone();
    attrs.communities = (0..900).collect(); // 3.6 KB of communities
    let attrs = Arc::new(attrs);
    let ctx = ctx(false);
    let mut out = AdjRibOut::new(ctx);
    for i in 0..200 {
        out.set(v6(i), std::slice::from_ref(&attrs));
    }
    let updates = out.flush().unwrap();
    let back = wire_round_trip(&updates, &ctx);
    assert_eq!(back.iter().map(|u| u.announced.len()).sum::<usize>(), 200);
}
