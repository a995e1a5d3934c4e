//! The table layout: turns the desired [`PolicyState`] (the policy engine's compiled
//! [`Ruleset`] plus this node's workload interfaces) into the [`TableSpec`] to program. Pure.
//!
//! ```text
//! vr-forward (hook forward)   ct established,related accept; ct invalid drop;
//!                             iifname "vr*" jump vr-from-wl-dispatch; oifname "vr*" jump vr-to-wl-dispatch
//! vr-input   (hook input)     NDP accept; ct …; iifname "vr*" jump vr-from-wl-dispatch
//! vr-output  (hook output)    oifname "vr*" oifname != @vr-wl-ifaces drop
//! vr-from-wl-dispatch         iifname . ip saddr != @vr-wl-src-4 drop (anti-spoofing, v4 and v6)
//!                             iifname vmap @vr-from-wl  ("vr…" : goto vr-fw-vr…); drop
//! vr-to-wl-dispatch           oifname vmap @vr-to-wl    ("vr…" : goto vr-tw-vr…); drop
//! vr-fw-<iface> / vr-tw-<iface>   egress / ingress tiers → policy chains, profiles, drop
//! vr-po-<h> / vr-pi-<h>       one policy's egress / ingress rules (shared by all endpoints)
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

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::IpNetwork;
use policy::compile::{CompiledRule, Match, Ruleset, Side};
use policy::ipset::{IpSetId, Member, SetKey};
use policy::model::{Direction, EndpointId, PolicyId};
use policy::rule::Action;

use super::spec::{
    CT_ESTABLISHED, CT_INVALID, CT_RELATED, ChainSpec, Cond, ElemValue, End, Family, Hook, IfDir,
    RuleSpec, SetKind, SetSpec, Stmt, TableSpec, Verdict, fnv64, ifname_key,
};
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

/// One local workload's host-side interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIface {
    /// The endpoint the interface belongs to (its chains come from the ruleset's entry).
    pub endpoint: EndpointId,
    /// Host-side interface name (`vr` + 11 hex digits).
    pub iface: String,
    /// The workload's addresses; traffic from the interface must come from one of them.
    pub addrs: Vec<IpNetwork>,
}

/// Everything the policy dataplane should program.
#[derive(Debug, Clone)]
pub struct PolicyState {
    /// The policy engine's compiled ruleset (cluster-wide).
    pub ruleset: Ruleset,
    /// The workloads on this node.
    pub workloads: Vec<WorkloadIface>,
}

/// Chain of a policy for one direction.
pub(crate) fn policy_chain(id: &PolicyId, direction: Direction) -> String {
    let h = fnv64(id.to_string().as_bytes());
    match direction {
        Direction::Ingress => format!("vr-pi-{h:016x}"),
        Direction::Egress => format!("vr-po-{h:016x}"),
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

/// Chain for traffic from (egress) or to (ingress) a workload interface.
pub(crate) fn endpoint_chain(iface: &str, direction: Direction) -> String {
    match direction {
        Direction::Egress => format!("vr-fw-{iface}"),
        Direction::Ingress => format!("vr-tw-{iface}"),
    }
}

/// The nft set holding one family of an IP set (`s:0123…` → `vr-s-0123…-4`).
pub(crate) fn set_name(id: &IpSetId, family: Family) -> String {
    let suffix = match family {
        Family::V4 => "4",
        Family::V6 => "6",
    };
    format!("vr-{}-{suffix}", id.0.replace(':', "-"))
}

fn rule(conds: Vec<Cond>, verdict: Verdict) -> RuleSpec {
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

fn conntrack() -> Vec<RuleSpec> {
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

/// The part of the table that exists even with no workloads: base chains, dispatch chains,
/// their maps and sets. A `vr*` interface not in the maps is dropped.
pub(crate) fn skeleton() -> TableSpec {
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
    input.push(clear_marks());
    let output = vec![rule(
        vec![
            if_prefix(IfDir::Out),
            Cond::IfInSet {
                dir: IfDir::Out,
                set: SET_WL_IFACES.into(),
                negated: true,
            },
        ],
        Verdict::Drop,
    )];
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

fn family_of(net: &IpNetwork) -> Family {
    match net {
        IpNetwork::V4(_) => Family::V4,
        IpNetwork::V6(_) => Family::V6,
    }
}

fn addr_bytes(addr: std::net::IpAddr) -> Vec<u8> {
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

/// Renders everything.
pub(crate) fn render(state: &PolicyState) -> TableSpec {
    let mut r = Renderer {
        ruleset: &state.ruleset,
        table: skeleton(),
        used_sets: BTreeSet::new(),
        set_keys: state
            .ruleset
            .ip_sets
            .sets()
            .map(|(id, k)| (id.clone(), k.clone()))
            .collect(),
    };
    for wl in &state.workloads {
        let Some(ep) = state.ruleset.endpoints.get(&wl.endpoint) else {
            tracing::warn!(endpoint = %wl.endpoint, iface = %wl.iface,
                "workload has no compiled rules; its interface stays unknown (dropped)");
            continue;
        };
        let key = ifname_key(&wl.iface);
        for direction in [Direction::Egress, Direction::Ingress] {
            let chain = r.endpoint(ep, direction);
            let name = endpoint_chain(&wl.iface, direction);
            r.table.chains.insert(name.clone(), chain);
            let map = match direction {
                Direction::Egress => MAP_FROM_WL,
                Direction::Ingress => MAP_TO_WL,
            };
            if let Some(m) = r.table.sets.get_mut(map) {
                m.elems.insert(key.clone(), ElemValue::Goto(name));
            }
        }
        if let Some(s) = r.table.sets.get_mut(SET_WL_IFACES) {
            s.elems.insert(key.clone(), ElemValue::Key);
        }
        for net in &wl.addrs {
            let set = match family_of(net) {
                Family::V4 => SET_WL_SRC4,
                Family::V6 => SET_WL_SRC6,
            };
            let mut k = key.clone();
            k.extend(addr_bytes(net.ip()));
            if let Some(s) = r.table.sets.get_mut(set) {
                s.elems.insert(k, ElemValue::Key);
            }
        }
    }
    r.fill_sets();
    r.table
}

struct Renderer<'a> {
    ruleset: &'a Ruleset,
    table: TableSpec,
    used_sets: BTreeSet<(IpSetId, Family)>,
    set_keys: BTreeMap<IpSetId, SetKey>,
}

impl Renderer<'_> {
    fn endpoint(&mut self, ep: &policy::compile::EndpointRules, direction: Direction) -> ChainSpec {
        let mut rules = vec![RuleSpec::new(
            Vec::new(),
            vec![Stmt::MarkClear(MARK_ACCEPT | MARK_PASS)],
            Verdict::Continue,
        )];
        let tiers = ep.tiers(direction);
        for (i, tier) in tiers.iter().enumerate() {
            if i > 0 {
                rules.push(RuleSpec::new(
                    Vec::new(),
                    vec![Stmt::MarkClear(MARK_PASS)],
                    Verdict::Continue,
                ));
            }
            for p in &tier.policies {
                let chain = self.policy(p, direction);
                rules.push(rule(
                    vec![Cond::Mark {
                        mask: MARK_ACCEPT | MARK_PASS,
                        zero: true,
                    }],
                    Verdict::Jump(chain),
                ));
            }
            rules.push(rule(
                vec![Cond::Mark {
                    mask: MARK_ACCEPT,
                    zero: false,
                }],
                Verdict::Return,
            ));
            if tier.default_action == policy::model::TierDefaultAction::Deny {
                rules.push(rule(
                    vec![Cond::Mark {
                        mask: MARK_PASS,
                        zero: true,
                    }],
                    Verdict::Drop,
                ));
            }
        }
        for profile in &ep.profiles {
            if !self.ruleset.profiles.contains_key(profile) {
                continue;
            }
            let chain = self.profile(profile, direction);
            rules.push(rule(Vec::new(), Verdict::Jump(chain)));
            rules.push(rule(
                vec![Cond::Mark {
                    mask: MARK_ACCEPT,
                    zero: false,
                }],
                Verdict::Return,
            ));
        }
        rules.push(rule(Vec::new(), Verdict::Drop));
        ChainSpec::regular(rules)
    }

    fn policy(&mut self, id: &PolicyId, direction: Direction) -> String {
        let name = policy_chain(id, direction);
        if !self.table.chains.contains_key(&name) {
            let prefix = log_prefix(&id.to_string(), direction);
            let compiled = self.ruleset.policy_rules(id, direction).to_vec();
            let rules = self.rules(&compiled, &prefix, false);
            self.table
                .chains
                .insert(name.clone(), ChainSpec::regular(rules));
        }
        name
    }

    fn profile(&mut self, profile: &str, direction: Direction) -> String {
        let name = profile_chain(profile, direction);
        if !self.table.chains.contains_key(&name) {
            let prefix = log_prefix(&format!("Profile {profile}"), direction);
            let compiled = self
                .ruleset
                .profiles
                .get(profile)
                .map(|c| match direction {
                    Direction::Ingress => c.ingress.clone(),
                    Direction::Egress => c.egress.clone(),
                })
                .unwrap_or_default();
            let rules = self.rules(&compiled, &prefix, true);
            self.table
                .chains
                .insert(name.clone(), ChainSpec::regular(rules));
        }
        name
    }

    fn rules(&mut self, compiled: &[CompiledRule], prefix: &str, profile: bool) -> Vec<RuleSpec> {
        let mut out = Vec::new();
        for c in compiled {
            let (stmts, verdict) = match (c.action, profile) {
                // `goto`: the helper chain's `return` leaves this policy chain too.
                (Action::Allow, _) => (Vec::new(), Verdict::Goto(CHAIN_ALLOW.into())),
                (Action::Deny, _) => (Vec::new(), Verdict::Drop),
                (Action::Pass, false) => (Vec::new(), Verdict::Goto(CHAIN_PASS.into())),
                // In a profile, Pass ends that profile and moves on to the next one.
                (Action::Pass, true) => (Vec::new(), Verdict::Return),
                (Action::Log, _) => (vec![Stmt::Log(prefix.to_string())], Verdict::Continue),
            };
            for conds in self.variants(c) {
                out.push(RuleSpec::new(conds, stmts.clone(), verdict.clone()));
            }
        }
        out
    }

    /// Whether a fixed-networks set has members of `family` (`None`: not a fixed set).
    fn nets_set_has(&self, id: &IpSetId, family: Family) -> Option<bool> {
        match self.set_keys.get(id) {
            Some(SetKey::Nets(nets)) => Some(nets.iter().any(|n| family_of(n) == family)),
            _ => None,
        }
    }

    /// The nft condition lists equivalent to one compiled rule (ORed): one per address
    /// family it can match, times one per positive port range.
    fn variants(&mut self, c: &CompiledRule) -> Vec<Vec<Cond>> {
        let version = c.matches.iter().find_map(|m| match m {
            Match::IpVersion(v) => Some(match v {
                policy::rule::IpVersion::V4 => Family::V4,
                policy::rule::IpVersion::V6 => Family::V6,
            }),
            _ => None,
        });
        let family_specific = c
            .matches
            .iter()
            .any(|m| matches!(m, Match::AddrInSet { .. } | Match::NamedPortSet { .. }));
        let families: Vec<Option<Family>> = match version {
            Some(f) => vec![Some(f)],
            None if family_specific => vec![Some(Family::V4), Some(Family::V6)],
            None => vec![None],
        };
        let mut out = Vec::new();
        'family: for family in families {
            let mut conds: Vec<Cond> = family.map(Cond::NfProto).into_iter().collect();
            let mut alternatives: Vec<Vec<Cond>> = vec![Vec::new()];
            for m in &c.matches {
                match m {
                    Match::IpVersion(_) => {}
                    Match::Protocol(p) => conds.push(Cond::L4Proto {
                        proto: p.0,
                        negated: false,
                    }),
                    Match::NotProtocol(p) => conds.push(Cond::L4Proto {
                        proto: p.0,
                        negated: true,
                    }),
                    Match::Icmp(i) | Match::NotIcmp(i) => conds.push(Cond::Icmp {
                        icmp_type: i.icmp_type,
                        code: i.code,
                        negated: matches!(m, Match::NotIcmp(_)),
                    }),
                    Match::AddrInSet { side, set, negated } => {
                        let Some(f) = family else { continue };
                        match (self.nets_set_has(set, f), negated) {
                            (Some(false), false) => continue 'family,
                            (Some(false), true) => continue,
                            _ => {}
                        }
                        self.used_sets.insert((set.clone(), f));
                        conds.push(Cond::Addr {
                            family: f,
                            end: end_of(*side),
                            set: set_name(set, f),
                            negated: *negated,
                        });
                    }
                    Match::NamedPortSet { side, set, negated } => {
                        let Some(f) = family else { continue };
                        self.used_sets.insert((set.clone(), f));
                        conds.push(Cond::NamedPort {
                            family: f,
                            end: end_of(*side),
                            set: set_name(set, f),
                            negated: *negated,
                        });
                    }
                    Match::Ports {
                        side,
                        ranges,
                        negated: true,
                    } => {
                        for (first, last) in ranges {
                            conds.push(Cond::Port {
                                end: end_of(*side),
                                first: *first,
                                last: *last,
                                negated: true,
                            });
                        }
                    }
                    Match::Ports {
                        side,
                        ranges,
                        negated: false,
                    } => {
                        let mut next = Vec::new();
                        for alt in &alternatives {
                            for (first, last) in ranges {
                                let mut a = alt.clone();
                                a.push(Cond::Port {
                                    end: end_of(*side),
                                    first: *first,
                                    last: *last,
                                    negated: false,
                                });
                                next.push(a);
                            }
                        }
                        alternatives = next;
                    }
                }
            }
            for alt in &alternatives {
                let mut all = conds.clone();
                all.extend(alt.iter().cloned());
                out.push(all);
            }
        }
        out
    }

    fn fill_sets(&mut self) {
        let used = std::mem::take(&mut self.used_sets);
        for (id, family) in used {
            let name = set_name(&id, family);
            let members = self.ruleset.set_members(&id);
            let named = matches!(self.set_keys.get(&id), Some(SetKey::NamedPort { .. }));
            let spec = if named {
                let mut s = SetSpec::new(SetKind::NamedPorts(family));
                for m in &members {
                    if let Member::NamedPort {
                        addr,
                        protocol,
                        port,
                    } = m
                        && (addr.is_ipv4() == (family == Family::V4))
                    {
                        let mut k = addr_bytes(*addr);
                        k.extend([protocol.0, 0, 0, 0]);
                        k.extend(port.to_be_bytes());
                        k.extend([0, 0]);
                        s.elems.insert(k, ElemValue::Key);
                    }
                }
                s
            } else {
                let nets: Vec<IpNetwork> = members
                    .iter()
                    .filter_map(|m| match m {
                        Member::Net(n) => Some(*n),
                        Member::NamedPort { .. } => None,
                    })
                    .collect();
                SetSpec {
                    kind: SetKind::Addrs(family),
                    elems: interval_elems(nets.iter(), family),
                }
            };
            self.table.sets.insert(name, spec);
        }
    }
}

fn end_of(side: Side) -> End {
    match side {
        Side::Source => End::Src,
        Side::Destination => End::Dst,
    }
}

/// `log prefix` naming the policy (the kernel limits prefixes to 127 bytes).
fn log_prefix(what: &str, direction: Direction) -> String {
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
