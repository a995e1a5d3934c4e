//! A policy's or profile's compiled rules as nft rules (pure): one rule per address family
//! and positive port range of each compiled rule, and the conditions that can be checked once
//! instead of in every rule.
//!
//! A policy chain is entered only through jumps the renderer writes (the shared workload
//! chains and host endpoint chains), so what every rule of a policy needs moves onto those
//! jumps ([`PolicyRules::guard`]): the protocol when all rules share it, and the address
//! family when all rules are for one family. Then no rule of the chain tests the family: two
//! of the seven expressions of a typical rule (`meta nfproto ipv4 ip saddr @set th dport 80
//! goto vr-allow`), and expressions are most of the kernel's work when it loads a large
//! ruleset (each one's type is looked up by name in the list of every registered type). An
//! address match reads the network header at a fixed offset; the chain is entered only for
//! packets of its family.
//!
//! A policy with rules for both families (or family-independent ones besides) keeps the
//! family test in each family-specific rule. Splitting it into a chain per family would save
//! those tests too, but every commit walks all chains of the table (`nf_tables_commit`), so a
//! chain more per policy slows every later label change (measured: 1,000 more chains, ~7 µs
//! more per change).
//!
//! Profile chains are jumped to from every endpoint that uses them, so they keep the family
//! test in each rule and check a protocol shared by all rules once, in a `return` rule at the
//! top.
//!
//! The `nft` text of such a rule (`ip saddr @set th dport 80 goto vr-allow`) is the same
//! either way: `nft -f` adds the family test it implies. `nft list` prints a family-less
//! address match in an `inet` table as the raw payload (`@nh,96,32 @vr-s-…-4`).

use policy::compile::{CompiledRule, Match, Ruleset};
use policy::ipset::{IpSetId, SetKey};
use policy::rule::Action;

use super::layout::{CHAIN_ALLOW, CHAIN_PASS, end_of, family_of, rule, set_name};
use super::spec::{Cond, Family, RuleSpec, Stmt, Verdict};

/// A policy's rules for one direction, ready for its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyRules {
    /// The policy chain's rules.
    pub(crate) rules: Vec<RuleSpec>,
    /// Conditions every rule needs: the jumps into the chain check them instead.
    pub(crate) guard: Vec<Cond>,
}

/// One nft rule of a compiled rule, its family test held apart.
#[derive(Debug, Clone)]
struct Variant {
    family: Option<Family>,
    conds: Vec<Cond>,
    stmts: Vec<Stmt>,
    verdict: Verdict,
}

impl Variant {
    /// The rule with its family test (if any) in front.
    fn with_family(self) -> RuleSpec {
        let mut conds: Vec<Cond> = self.family.map(Cond::NfProto).into_iter().collect();
        conds.extend(self.conds);
        RuleSpec::new(conds, self.stmts, self.verdict)
    }

    /// The rule without its family test (its chain is entered only for that family).
    fn without_family(self) -> RuleSpec {
        RuleSpec::new(self.conds, self.stmts, self.verdict)
    }
}

/// The rules of a policy chain; records the (set, family) pairs they use.
pub(crate) fn policy_rules(
    ruleset: &Ruleset,
    compiled: &[CompiledRule],
    prefix: &str,
    used: &mut Vec<(IpSetId, Family)>,
) -> PolicyRules {
    let mut all = variants_of(ruleset, compiled, prefix, false, used);
    let mut guard = Vec::new();
    if let Some(proto) = common_protocol(&all) {
        for v in &mut all {
            v.conds.retain(|c| c != &proto);
        }
        guard.push(proto);
    }
    let family = all.first().and_then(|v| v.family);
    let rules = match family {
        Some(f) if all.iter().all(|v| v.family == Some(f)) => {
            guard.insert(0, Cond::NfProto(f));
            all.into_iter().map(Variant::without_family).collect()
        }
        // Both families, or family-independent rules: each rule tests its own family.
        _ => all.into_iter().map(Variant::with_family).collect(),
    };
    PolicyRules { rules, guard }
}

/// The rules of a profile chain; records the (set, family) pairs they use.
pub(crate) fn profile_rules(
    ruleset: &Ruleset,
    compiled: &[CompiledRule],
    prefix: &str,
    used: &mut Vec<(IpSetId, Family)>,
) -> Vec<RuleSpec> {
    let mut all = variants_of(ruleset, compiled, prefix, true, used);
    let mut out = Vec::new();
    if all.len() >= HOIST_MIN_RULES
        && let Some(Cond::L4Proto { proto, negated }) = common_protocol(&all)
    {
        for v in &mut all {
            v.conds.retain(|c| c != &Cond::L4Proto { proto, negated });
        }
        out.push(rule(
            vec![Cond::L4Proto {
                proto,
                negated: !negated,
            }],
            Verdict::Return,
        ));
    }
    out.extend(all.into_iter().map(Variant::with_family));
    out
}

/// Fewest rules for which checking a shared protocol in a `return` rule at the top of a
/// profile chain pays (it adds one rule).
const HOIST_MIN_RULES: usize = 3;

/// The protocol condition (`meta l4proto [!=] N`) every variant has, if any: a packet of
/// another protocol matches none of them, so checking it once before the rules decides the
/// same.
fn common_protocol(all: &[Variant]) -> Option<Cond> {
    let proto = all
        .first()?
        .conds
        .iter()
        .find(|c| matches!(c, Cond::L4Proto { .. }))?
        .clone();
    all.iter()
        .all(|v| v.conds.contains(&proto))
        .then_some(proto)
}

/// Every variant of `compiled`, in order.
fn variants_of(
    ruleset: &Ruleset,
    compiled: &[CompiledRule],
    prefix: &str,
    profile: bool,
    used: &mut Vec<(IpSetId, Family)>,
) -> Vec<Variant> {
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
        for (family, conds) in variants(ruleset, c, used) {
            out.push(Variant {
                family,
                conds,
                stmts: stmts.clone(),
                verdict: verdict.clone(),
            });
        }
    }
    out
}

/// Whether a fixed-networks set has members of `family` (`None`: not a fixed set).
fn nets_set_has(ruleset: &Ruleset, id: &IpSetId, family: Family) -> Option<bool> {
    match ruleset.ip_sets.key(id) {
        Some(SetKey::Nets(nets)) => Some(nets.iter().any(|n| family_of(n) == family)),
        _ => None,
    }
}

/// The nft condition lists equivalent to one compiled rule (ORed): one per address family
/// it can match (`Some`: the conditions hold only for packets of that family), times one per
/// positive port range.
fn variants(
    ruleset: &Ruleset,
    c: &CompiledRule,
    used: &mut Vec<(IpSetId, Family)>,
) -> Vec<(Option<Family>, Vec<Cond>)> {
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
    let families: &[Option<Family>] = match version {
        Some(Family::V4) => &[Some(Family::V4)],
        Some(Family::V6) => &[Some(Family::V6)],
        None if family_specific => &[Some(Family::V4), Some(Family::V6)],
        None => &[None],
    };
    let mut out = Vec::with_capacity(families.len());
    'family: for &family in families {
        let mut conds: Vec<Cond> = Vec::with_capacity(c.matches.len() + 1);
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
                    match (nets_set_has(ruleset, set, f), negated) {
                        (Some(false), false) => continue 'family,
                        (Some(false), true) => continue,
                        _ => {}
                    }
                    note_used(used, set, f);
                    conds.push(Cond::Addr {
                        family: f,
                        end: end_of(*side),
                        set: set_name(set, f),
                        negated: *negated,
                    });
                }
                Match::NamedPortSet { side, set, negated } => {
                    let Some(f) = family else { continue };
                    note_used(used, set, f);
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
        if alternatives.len() == 1 {
            conds.extend(alternatives.pop().into_iter().flatten());
            out.push((family, conds));
            continue;
        }
        for alt in &alternatives {
            let mut all = conds.clone();
            all.extend(alt.iter().cloned());
            out.push((family, all));
        }
    }
    out
}

/// Records that a rule uses one family of `set` (a policy uses a few sets: a list is enough).
fn note_used(used: &mut Vec<(IpSetId, Family)>, set: &IpSetId, family: Family) {
    if !used.iter().any(|(s, f)| s == set && *f == family) {
        used.push((set.clone(), family));
    }
}
