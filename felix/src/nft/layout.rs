//! The table layout: names, the fail-closed skeleton and the helpers the renderer
//! (`rendered`) uses to turn the desired [`PolicyState`] into the [`TableSpec`] to program.
//! Pure.
//!
//! ```text
//! vr-forward (hook forward)   ct established,related accept; ct invalid drop;
//!                             iifname "vr*" jump vr-from-wl-dispatch; oifname "vr*" jump vr-to-wl-dispatch
//! vr-input   (hook input)     NDP accept; ct …; iifname "vr*" jump vr-from-wl-dispatch;
//!                             jump vr-from-host-dispatch
//! vr-output  (hook output)    oifname "vr*" oifname != @vr-wl-ifaces drop; jump vr-to-host-dispatch
//! vr-from-wl-dispatch         iifname . ip saddr != @vr-wl-src-4 drop (anti-spoofing, v4 and v6)
//!                             iifname vmap @vr-from-wl  ("vr…" : goto vr-fw-vr…); drop
//! vr-to-wl-dispatch           oifname vmap @vr-to-wl    ("vr…" : goto vr-tw-vr…); drop
//! vr-from-host-dispatch       iifname vmap @vr-from-hep ("eth0" : goto vr-fh-eth0)
//! vr-to-host-dispatch         oifname vmap @vr-to-hep   ("eth0" : goto vr-th-eth0)
//! vr-fw-<iface> / vr-tw-<iface>   jump vr-wl-pol-out / -in, profiles, drop (fixed per endpoint)
//! vr-wl-pol-out / vr-wl-pol-in    every tier and policy in order, each policy's jump guarded by
//!                             `iifname|oifname @vr-ap-<h>` (the workloads it selects) and by
//!                             what all its rules need (`meta nfproto`, `meta l4proto`), each
//!                             tier's end-of-tier drop by `@vr-at-<h>-o|i`
//! vr-fh-<iface> / vr-th-<iface>   host endpoint: failsafe ports, then ingress / egress tiers
//! vr-failsafe-in / -out       accept failsafe ports (FelixConfiguration)
//! vr-po-<h> / vr-pi-<h>       one policy's egress / ingress rules (shared by all endpoints;
//!                             a one-family policy's rules test no family: see `rules`)
//! vr-ap-<h> / vr-at-<h>-o|i   workload interfaces a policy selector / a tier (per direction) applies to
//! vr-pro-<h> / vr-pri-<h>     one profile's rules
//! vr-allow / vr-pass          set the accept / pass mark bit and return (policies `goto` them)
//! vr-s-<h>-4|6, vr-n-…, vr-p-… the policy engine's IP sets, split per family
//! ```
//!
//! Verdicts travel between chains in two packet-mark bits, as in Felix: a policy's `Allow` is
//! `goto vr-allow` (sets [`MARK_ACCEPT`], returns to the endpoint chain), `Pass` is
//! `goto vr-pass` (sets [`MARK_PASS`]), `Deny` drops at once,
//! `Log` logs and continues. The endpoint chain skips the remaining policies of a tier once a
//! bit is set, returns on accept, and drops at the end of a tier whose default is `Deny` unless
//! a policy passed. The bits are cleared again before the packet leaves the base chain.
//!
//! Which policies apply to a workload is data, not rules: the shared chains `vr-wl-pol-*`
//! list every policy of the ruleset once, and a workload's interface is an element of the
//! membership set of each policy (and tier) that selects it. A label change or a new workload
//! therefore changes set elements (and dispatch-map entries) only. That matters beyond the
//! message count: any batch that adds a rule with a verdict or a verdict-map element makes the
//! kernel re-validate every chain reachable from the base chains (`nft_table_validate`), which
//! costs time in proportion to the whole table. Host endpoints (few, rarely changing) keep the
//! policy jumps in their own chains.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use policy::compile::{Ruleset, Side};
use policy::ipset::IpSetId;
use policy::model::{Direction, PolicyId};

use super::spec::{
    CT_ESTABLISHED, CT_INVALID, CT_RELATED, ChainSpec, Cond, ElemValue, End, Family, Hook, IfDir,
    RuleSpec, SetKind, SetSpec, Stmt, TableSpec, Verdict, fnv64,
};
use crate::calc::{Failsafe, FailsafePort, PolicyDesired};
use crate::ownership::HOST_VETH_PREFIX;

/// Packet-mark bit: a policy or profile allowed the packet.
pub const MARK_ACCEPT: u32 = 0x0100_0000;
/// Packet-mark bit: a policy passed the packet to the next tier.
pub const MARK_PASS: u32 = 0x0200_0000;

pub(crate) const CHAIN_FORWARD: &str = "vr-forward";
pub(crate) const CHAIN_INPUT: &str = "vr-input";
pub(crate) const CHAIN_OUTPUT: &str = "vr-output";
pub(crate) const CHAIN_FROM_WL: &str = "vr-from-wl-dispatch";
pub(crate) const CHAIN_TO_WL: &str = "vr-to-wl-dispatch";
/// `goto` target of policy `Allow` rules: sets the accept bit and returns to the endpoint chain.
pub(crate) const CHAIN_ALLOW: &str = "vr-allow";
/// `goto` target of policy `Pass` rules: sets the pass bit and returns to the endpoint chain.
pub(crate) const CHAIN_PASS: &str = "vr-pass";
pub(crate) const MAP_FROM_WL: &str = "vr-from-wl";
pub(crate) const MAP_TO_WL: &str = "vr-to-wl";
pub(crate) const SET_WL_SRC4: &str = "vr-wl-src-4";
pub(crate) const SET_WL_SRC6: &str = "vr-wl-src-6";
pub(crate) const SET_WL_IFACES: &str = "vr-wl-ifaces";
pub(crate) const CHAIN_FROM_HOST: &str = "vr-from-host-dispatch";
pub(crate) const CHAIN_TO_HOST: &str = "vr-to-host-dispatch";
pub(crate) const CHAIN_FAILSAFE_IN: &str = "vr-failsafe-in";
pub(crate) const CHAIN_FAILSAFE_OUT: &str = "vr-failsafe-out";
pub(crate) const MAP_FROM_HOST: &str = "vr-from-hep";
/// Shared chain: every policy's egress rules for workloads (traffic from `iifname`).
pub(crate) const CHAIN_WL_POL_OUT: &str = "vr-wl-pol-out";
/// Shared chain: every policy's ingress rules for workloads (traffic to `oifname`).
pub(crate) const CHAIN_WL_POL_IN: &str = "vr-wl-pol-in";
pub(crate) const MAP_TO_HOST: &str = "vr-to-hep";

/// Everything the policy dataplane should program: calc's [`PolicyDesired`] (the compiled
/// ruleset, this node's workload and host endpoints, failsafe ports, what changed).
pub type PolicyState = PolicyDesired;

/// Chain of a policy for one direction.
pub(crate) fn policy_chain(id: &PolicyId, direction: Direction) -> String {
    let h = fnv64(id.to_string().as_bytes());
    match direction {
        Direction::Ingress => format!("vr-pi-{h:016x}"),
        Direction::Egress => format!("vr-po-{h:016x}"),
    }
}

/// The set of workload interfaces a policy applies to (`vr-ap-<hash>`), shared by every
/// policy with the same endpoint selector (`Ruleset::policy_selectors`; the policy id when
/// the ruleset has none for it): fewer sets for the kernel to search by name, fewer elements
/// per label change.
pub(crate) fn policy_member_set(ruleset: &Ruleset, id: &PolicyId) -> String {
    let h = match ruleset.policy_selectors.get(id) {
        Some(selector) => fnv64(selector.as_bytes()),
        None => fnv64(id.to_string().as_bytes()),
    };
    format!("vr-ap-{h:016x}")
}

/// The set of workload interfaces at least one policy of a tier applies to, per direction.
pub(crate) fn tier_member_set(tier: &str, direction: Direction) -> String {
    let h = fnv64(tier.as_bytes());
    match direction {
        Direction::Ingress => format!("vr-at-{h:016x}-i"),
        Direction::Egress => format!("vr-at-{h:016x}-o"),
    }
}

/// The shared workload policy chain for one direction.
pub(crate) fn workload_policy_chain(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => CHAIN_WL_POL_IN,
        Direction::Egress => CHAIN_WL_POL_OUT,
    }
}

/// Which interface identifies the workload in a direction: `iifname` for traffic from it
/// (egress), `oifname` for traffic to it (ingress).
pub(crate) fn workload_if(direction: Direction) -> IfDir {
    match direction {
        Direction::Ingress => IfDir::Out,
        Direction::Egress => IfDir::In,
    }
}

/// Chain of a profile for one direction.
pub(crate) fn profile_chain(name: &str, direction: Direction) -> String {
    let h = fnv64(name.as_bytes());
    match direction {
        Direction::Ingress => format!("vr-pri-{h:016x}"),
        Direction::Egress => format!("vr-pro-{h:016x}"),
    }
}

/// Chain for traffic arriving at the host on (ingress) or leaving it through (egress) a
/// host endpoint's interface.
pub(crate) fn host_chain(iface: &str, direction: Direction) -> String {
    match direction {
        Direction::Ingress => format!("vr-fh-{iface}"),
        Direction::Egress => format!("vr-th-{iface}"),
    }
}

/// Chain for traffic from (egress) or to (ingress) a workload interface.
pub(crate) fn endpoint_chain(iface: &str, direction: Direction) -> String {
    match direction {
        Direction::Egress => format!("vr-fw-{iface}"),
        Direction::Ingress => format!("vr-tw-{iface}"),
    }
}

/// The nft set holding one family of an IP set (`s:0123…` → `vr-s-0123…-4`).
pub(crate) fn set_name(id: &IpSetId, family: Family) -> String {
    // Built in place: one allocation (this runs for every rule matching a set).
    let mut name = String::with_capacity(id.0.len() + 5);
    name.push_str("vr-");
    name.extend(id.0.chars().map(|c| if c == ':' { '-' } else { c }));
    name.push_str(match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    });
    name
}

pub(crate) fn rule(conds: Vec<Cond>, verdict: Verdict) -> RuleSpec {
    RuleSpec::new(conds, Vec::new(), verdict)
}

fn ndp_accept() -> Vec<RuleSpec> {
    (133..=136)
        .map(|t| {
            rule(
                vec![
                    Cond::NfProto(Family::V6),
                    Cond::L4Proto {
                        proto: 58,
                        negated: false,
                    },
                    Cond::Icmp {
                        icmp_type: t,
                        code: None,
                        negated: false,
                    },
                ],
                Verdict::Accept,
            )
        })
        .collect()
}

pub(crate) fn conntrack() -> Vec<RuleSpec> {
    vec![
        rule(
            vec![Cond::CtState(CT_ESTABLISHED | CT_RELATED)],
            Verdict::Accept,
        ),
        rule(vec![Cond::CtState(CT_INVALID)], Verdict::Drop),
    ]
}

fn clear_marks() -> RuleSpec {
    RuleSpec::new(
        Vec::new(),
        vec![Stmt::MarkClear(MARK_ACCEPT | MARK_PASS)],
        Verdict::Continue,
    )
}

fn if_prefix(dir: IfDir) -> Cond {
    Cond::IfPrefix {
        dir,
        prefix: HOST_VETH_PREFIX.to_string(),
    }
}

/// The set matching a failsafe port's peer network.
fn failsafe_net_set(net: &IpNetwork) -> String {
    let family = match family_of(net) {
        Family::V4 => "4",
        Family::V6 => "6",
    };
    format!("vr-fsn-{:016x}-{family}", fnv64(net.to_string().as_bytes()))
}

/// `accept` rules for failsafe ports: `meta l4proto P th dport N [ip saddr|daddr @net] accept`.
fn failsafe_chain(t: &mut TableSpec, ports: &[FailsafePort], peer: End) -> ChainSpec {
    let mut rules = Vec::new();
    for p in ports {
        let mut conds = Vec::new();
        if let Some(net) = &p.net {
            let family = family_of(net);
            let set = failsafe_net_set(net);
            t.sets.insert(
                set.clone(),
                SetSpec {
                    kind: SetKind::Addrs(family),
                    elems: interval_elems(std::iter::once(net), family),
                },
            );
            conds.push(Cond::NfProto(family));
            conds.push(Cond::Addr {
                family,
                end: peer,
                set,
                negated: false,
            });
        }
        conds.push(Cond::L4Proto {
            proto: p.protocol,
            negated: false,
        });
        conds.push(Cond::Port {
            end: End::Dst,
            first: p.port,
            last: p.port,
            negated: false,
        });
        rules.push(rule(conds, Verdict::Accept));
    }
    ChainSpec::regular(rules)
}

/// The part of the table that exists even with no endpoints: base chains, dispatch chains,
/// their maps and sets, failsafe chains. A `vr*` interface not in the maps is dropped.
///
/// Host endpoints: traffic to the host arriving on one (`input`) goes through
/// `vr-fh-<iface>` (failsafe ports, then its ingress policy), traffic from the host leaving
/// through one (`output`) through `vr-th-<iface>` (conntrack, failsafe ports, its egress
/// policy). Forwarded traffic is not filtered by host endpoints (Calico applies only
/// `applyOnForward` policies there, which the policy model does not carry).
pub(crate) fn skeleton(failsafe: &Failsafe) -> TableSpec {
    let mut t = TableSpec::default();
    let mut forward = conntrack();
    forward.push(rule(
        vec![if_prefix(IfDir::In)],
        Verdict::Jump(CHAIN_FROM_WL.into()),
    ));
    forward.push(rule(
        vec![if_prefix(IfDir::Out)],
        Verdict::Jump(CHAIN_TO_WL.into()),
    ));
    forward.push(clear_marks());
    let mut input = ndp_accept();
    input.extend(conntrack());
    input.push(rule(
        vec![if_prefix(IfDir::In)],
        Verdict::Jump(CHAIN_FROM_WL.into()),
    ));
    input.push(rule(Vec::new(), Verdict::Jump(CHAIN_FROM_HOST.into())));
    input.push(clear_marks());
    let output = vec![
        rule(
            vec![
                if_prefix(IfDir::Out),
                Cond::IfInSet {
                    dir: IfDir::Out,
                    set: SET_WL_IFACES.into(),
                    negated: true,
                },
            ],
            Verdict::Drop,
        ),
        rule(Vec::new(), Verdict::Jump(CHAIN_TO_HOST.into())),
        clear_marks(),
    ];
    for (name, hook, rules) in [
        (CHAIN_FORWARD, Hook::Forward, forward),
        (CHAIN_INPUT, Hook::Input, input),
        (CHAIN_OUTPUT, Hook::Output, output),
    ] {
        t.chains.insert(
            name.into(),
            ChainSpec {
                hook: Some(hook),
                rules,
            },
        );
    }
    let mut from = Vec::new();
    for (family, set) in [(Family::V4, SET_WL_SRC4), (Family::V6, SET_WL_SRC6)] {
        from.push(rule(
            vec![
                Cond::NfProto(family),
                Cond::IfaceAddr {
                    family,
                    set: set.into(),
                    negated: true,
                },
            ],
            Verdict::Drop,
        ));
    }
    from.push(rule(
        Vec::new(),
        Verdict::Vmap {
            dir: IfDir::In,
            map: MAP_FROM_WL.into(),
        },
    ));
    from.push(rule(Vec::new(), Verdict::Drop));
    let to = vec![
        rule(
            Vec::new(),
            Verdict::Vmap {
                dir: IfDir::Out,
                map: MAP_TO_WL.into(),
            },
        ),
        rule(Vec::new(), Verdict::Drop),
    ];
    for (name, bit) in [(CHAIN_ALLOW, MARK_ACCEPT), (CHAIN_PASS, MARK_PASS)] {
        let set_bit = RuleSpec::new(Vec::new(), vec![Stmt::MarkOr(bit)], Verdict::Return);
        t.chains
            .insert(name.into(), ChainSpec::regular(vec![set_bit]));
    }
    t.chains
        .insert(CHAIN_FROM_WL.into(), ChainSpec::regular(from));
    t.chains.insert(CHAIN_TO_WL.into(), ChainSpec::regular(to));
    for (chain, dir, map) in [
        (CHAIN_FROM_HOST, IfDir::In, MAP_FROM_HOST),
        (CHAIN_TO_HOST, IfDir::Out, MAP_TO_HOST),
    ] {
        let dispatch = rule(
            Vec::new(),
            Verdict::Vmap {
                dir,
                map: map.into(),
            },
        );
        t.chains
            .insert(chain.into(), ChainSpec::regular(vec![dispatch]));
        t.sets.insert(map.into(), SetSpec::new(SetKind::IfaceVmap));
    }
    let fs_in = failsafe_chain(&mut t, &failsafe.inbound, End::Src);
    let fs_out = failsafe_chain(&mut t, &failsafe.outbound, End::Dst);
    t.chains.insert(CHAIN_FAILSAFE_IN.into(), fs_in);
    t.chains.insert(CHAIN_FAILSAFE_OUT.into(), fs_out);
    t.sets
        .insert(MAP_FROM_WL.into(), SetSpec::new(SetKind::IfaceVmap));
    t.sets
        .insert(MAP_TO_WL.into(), SetSpec::new(SetKind::IfaceVmap));
    t.sets.insert(
        SET_WL_SRC4.into(),
        SetSpec::new(SetKind::IfaceAddrs(Family::V4)),
    );
    t.sets.insert(
        SET_WL_SRC6.into(),
        SetSpec::new(SetKind::IfaceAddrs(Family::V6)),
    );
    t.sets
        .insert(SET_WL_IFACES.into(), SetSpec::new(SetKind::Ifaces));
    t
}

pub(crate) fn family_of(net: &IpNetwork) -> Family {
    match net {
        IpNetwork::V4(_) => Family::V4,
        IpNetwork::V6(_) => Family::V6,
    }
}

pub(crate) fn addr_bytes(addr: std::net::IpAddr) -> Vec<u8> {
    match addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `[start, end)` of a network as integers in a 129-bit-safe space.
fn net_range(net: &IpNetwork) -> (u128, Option<u128>) {
    match net {
        IpNetwork::V4(n) => {
            let start = u128::from(u32::from(n.network()));
            let size = 1u128 << (32 - u32::from(n.prefix()));
            let end = start + size;
            (start, (end < (1u128 << 32)).then_some(end))
        }
        IpNetwork::V6(n) => {
            let start = u128::from(n.network());
            let bits = 128 - u32::from(n.prefix());
            if bits == 128 {
                return (0, None);
            }
            let size = 1u128 << bits;
            (start, start.checked_add(size))
        }
    }
}

fn int_bytes(v: u128, family: Family) -> Vec<u8> {
    match family {
        Family::V4 => (v as u32).to_be_bytes().to_vec(),
        Family::V6 => v.to_be_bytes().to_vec(),
    }
}

/// Interval-set elements for a list of networks: overlapping and adjacent networks merged
/// (the kernel rejects overlapping intervals).
pub(crate) fn interval_elems<'a>(
    nets: impl Iterator<Item = &'a IpNetwork>,
    family: Family,
) -> BTreeMap<Vec<u8>, ElemValue> {
    let mut ranges: Vec<(u128, Option<u128>)> = nets
        .filter(|n| family_of(n) == family)
        .map(net_range)
        .collect();
    ranges.sort();
    let mut merged: Vec<(u128, Option<u128>)> = Vec::new();
    for (s, e) in ranges {
        if let Some(last) = merged.last_mut() {
            match last.1 {
                None => continue,
                Some(le) if s <= le => {
                    last.1 = match (le, e) {
                        (_, None) => None,
                        (le, Some(e)) => Some(le.max(e)),
                    };
                    continue;
                }
                _ => {}
            }
        }
        merged.push((s, e));
    }
    merged
        .into_iter()
        .map(|(s, e)| {
            (
                int_bytes(s, family),
                ElemValue::IntervalTo(e.map(|e| int_bytes(e, family))),
            )
        })
        .collect()
}

pub(crate) fn end_of(side: Side) -> End {
    match side {
        Side::Source => End::Src,
        Side::Destination => End::Dst,
    }
}

/// `log prefix` naming the policy (the kernel limits prefixes to 127 bytes).
pub(crate) fn log_prefix(what: &str, direction: Direction) -> String {
    let mut p = format!("vr {direction} {what}: ");
    p.retain(|c| c != '"' && c != '\\');
    if p.len() > 120 {
        let mut cut = 120;
        while !p.is_char_boundary(cut) {
            cut -= 1;
        }
        p.truncate(cut);
    }
    p
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
