//! Bitset Adj-RIB-Out and prefix index tests: announce, re-announce with a changed attribute
//! set, withdraw of a sent and of a never-sent prefix, route refresh, packing by attribute-set
//! identity, and when prefix ids are freed and reused.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::*;
use crate::wire::{CodecContext, Family, Nlri, PathAttributes, Prefix};

fn ctx() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        ..CodecContext::default()
    }
}

fn attrs(local_pref: u32) -> Arc<PathAttributes> {
    Arc::new(PathAttributes {
        origin: crate::wire::Origin::Igp,
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        mp_next_hop: Some(crate::wire::MpNextHop {
            global: "fd00::1".parse().unwrap(),
            link_local: None,
        }),
        local_pref: Some(local_pref),
        ..PathAttributes::default()
    })
}

fn v4(i: u32) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 6))), 26).unwrap()
}

fn v6(i: u32) -> Prefix {
    Prefix::new(
        IpAddr::V6(Ipv6Addr::from(0xfd10_u128 << 112 | u128::from(i) << 64)),
        64,
    )
    .unwrap()
}

/// What export says, per prefix (absent: nothing to announce).
type Exports = HashMap<Prefix, Arc<PathAttributes>>;

/// Flushes with `exports` as export policy; returns (announced, withdrawn) per UPDATE.
fn flush(
    out: &mut AdjRibOutBits,
    index: &mut PrefixIndex,
    exports: &Exports,
) -> Vec<(Vec<Prefix>, Vec<Prefix>)> {
    out.flush_packed(index, |_, p| exports.get(&p).cloned())
        .unwrap()
        .into_iter()
        .map(|packed| {
            let update = packed.into_update();
            let prefixes = |n: &[Nlri]| n.iter().map(|n| n.prefix).collect::<Vec<_>>();
            (prefixes(&update.announced), prefixes(&update.withdrawn))
        })
        .collect()
}

/// Adds `prefix` to the Loc-RIB side of `index` and marks it on `out`.
fn change(out: &mut AdjRibOutBits, index: &mut PrefixIndex, prefix: Prefix, live: bool) -> u32 {
    let id = index.insert(prefix);
    out.mark(id);
    index.set_live(id, live);
    id
}

#[test]
fn id_sets_count_iterate_and_merge() {
    let mut a = IdSet::default();
    assert!(a.insert(3) && a.insert(64) && a.insert(200));
    assert!(!a.insert(64));
    assert_eq!(a.len(), 3);
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![3, 64, 200]);
    assert!(a.remove(3) && !a.remove(3) && !a.remove(10_000));
    let mut b = IdSet::default();
    b.insert(1);
    b.insert(64);
    b.union_with(&a);
    assert_eq!(b.iter().collect::<Vec<_>>(), vec![1, 64, 200]);
    assert_eq!(b.len(), 3);
    b.clear();
    assert!(b.is_empty() && !b.contains(64));
}

#[test]
fn a_marked_prefix_is_announced_once_and_held() {
    let mut index = PrefixIndex::default();
    let mut out = AdjRibOutBits::new(ctx());
    let id = change(&mut out, &mut index, v4(1), true);
    let exports: Exports = [(v4(1), attrs(100))].into();
    assert!(out.has_pending());
    assert_eq!(
        flush(&mut out, &mut index, &exports),
        vec![(vec![v4(1)], vec![])]
    );
    assert!(out.holds(id) && !out.has_pending());
    assert_eq!(out.len(), 1);
    // Nothing marked, nothing sent.
    assert!(flush(&mut out, &mut index, &exports).is_empty());
}

#[test]
fn a_changed_attribute_set_is_re_announced_without_a_withdraw() {
    let mut index = PrefixIndex::default();
    let mut out = AdjRibOutBits::new(ctx());
    change(&mut out, &mut index, v4(1), true);
    flush(&mut out, &mut index, &[(v4(1), attrs(100))].into());
    change(&mut out, &mut index, v4(1), true);
    let exports: Exports = [(v4(1), attrs(200))].into();
    let updates = out
        .flush_packed(&mut index, |_, p| exports.get(&p).cloned())
        .unwrap();
    assert_eq!(updates.len(), 1);
    let update = updates[0].clone().into_update();
    assert!(update.withdrawn.is_empty());
    assert_eq!(update.announced, vec![Nlri::new(v4(1))]);
    assert_eq!(update.attributes.local_pref, Some(200));
}

#[test]
fn only_a_sent_prefix_is_withdrawn() {
    let mut index = PrefixIndex::default();
    let mut out = AdjRibOutBits::new(ctx());
    let sent = change(&mut out, &mut index, v4(1), true);
    flush(&mut out, &mut index, &[(v4(1), attrs(100))].into());
    // v4(1) leaves the Loc-RIB; v4(2) comes and goes before any flush.
    change(&mut out, &mut index, v4(1), false);
    change(&mut out, &mut index, v4(2), true);
    change(&mut out, &mut index, v4(2), false);
    assert_eq!(
        flush(&mut out, &mut index, &Exports::new()),
        vec![(vec![], vec![v4(1)])]
    );
    assert!(!out.holds(sent) && out.is_empty());
}

#[test]
fn routes_of_one_attribute_set_pack_into_one_update() {
    let mut index = PrefixIndex::default();
    let mut out = AdjRibOutBits::new(ctx());
    let shared = attrs(100);
    let mut exports = Exports::new();
    for i in 0..4 {
        change(&mut out, &mut index, v4(i), true);
        exports.insert(v4(i), Arc::clone(&shared));
    }
    change(&mut out, &mut index, v4(9), true);
    exports.insert(v4(9), attrs(100)); // equal contents, another set: its own UPDATE
    let updates = flush(&mut out, &mut index, &exports);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].0, vec![v4(0), v4(1), v4(2), v4(3)]);
    assert_eq!(updates[1].0, vec![v4(9)]);
}

#[test]
fn route_refresh_requeues_what_the_peer_holds_of_one_family() {
    let mut index = PrefixIndex::default();
    let mut out = AdjRibOutBits::new(ctx());
    change(&mut out, &mut index, v4(1), true);
    change(&mut out, &mut index, v6(1), true);
    change(&mut out, &mut index, v4(2), true);
    let exports: Exports = [(v4(1), attrs(100)), (v6(1), attrs(100))].into();
    flush(&mut out, &mut index, &exports);
    out.refresh(Family::Ipv4Unicast, &index);
    assert_eq!(
        flush(&mut out, &mut index, &exports),
        vec![(vec![v4(1)], vec![])]
    );
    out.refresh(Family::Ipv6Unicast, &index);
    assert_eq!(
        flush(&mut out, &mut index, &exports),
        vec![(vec![v6(1)], vec![])]
    );
}

#[test]
fn a_new_session_is_marked_with_every_live_prefix_of_its_families() {
    let mut index = PrefixIndex::default();
    for i in 0..3 {
        let id = index.insert(v4(i));
        index.set_live(id, true);
    }
    let id = index.insert(v6(0));
    index.set_live(id, true);
    let mut out = AdjRibOutBits::new(ctx());
    out.mark_all(index.live(Family::Ipv4Unicast));
    let shared = attrs(100);
    let exports: Exports = (0..3).map(|i| (v4(i), Arc::clone(&shared))).collect();
    let updates = flush(&mut out, &mut index, &exports);
    assert_eq!(updates, vec![(vec![v4(0), v4(1), v4(2)], vec![])]);
}

#[test]
fn ids_are_freed_once_no_peer_holds_a_gone_prefix_and_then_reused() {
    let mut index = PrefixIndex::default();
    let mut a = AdjRibOutBits::new(ctx());
    let mut b = AdjRibOutBits::new(ctx());
    let id = index.insert(v4(1));
    index.set_live(id, true);
    a.mark(id);
    b.mark(id);
    let exports: Exports = [(v4(1), attrs(100))].into();
    flush(&mut a, &mut index, &exports);
    flush(&mut b, &mut index, &exports);
    // Gone from the Loc-RIB: both peers still hold it, so the id stays.
    a.mark(id);
    b.mark(id);
    index.set_live(id, false);
    assert_eq!(index.prefix(id), Some(v4(1)));
    flush(&mut a, &mut index, &Exports::new());
    assert_eq!(index.get(&v4(1)), Some(id), "b still holds it");
    // b's session goes away instead of withdrawing: its reference goes with it.
    b.release(&mut index);
    assert_eq!(index.prefix(id), None);
    assert!(index.is_empty());
    // The id is reused; a stale mark for it only makes a peer look at the new prefix.
    assert_eq!(index.insert(v4(7)), id);
    let id2 = index.insert(v4(8));
    assert_ne!(id2, id);
    assert_eq!(index.len(), 2);
    // A never-held id of a gone prefix is freed at once.
    index.set_live(id2, true);
    index.set_live(id2, false);
    assert_eq!(index.get(&v4(8)), None);
}
