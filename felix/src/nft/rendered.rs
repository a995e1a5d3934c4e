//! [`Rendered`]: the table content for the desired [`PolicyState`], kept between applies and
//! updated per change. Pure.
//!
//! A full render writes the shared workload policy chains (`vr-wl-pol-*`, every policy of the
//! ruleset in order, see `layout`) and places every endpoint; afterwards [`Rendered::update`]
//! re-renders only the endpoints and IP sets named in the state's [`PolicyChanges`]: an
//! endpoint's own chains (unchanged for a workload unless its profiles change), its
//! policy-membership, dispatch-map, interface and anti-spoofing elements, and the members of
//! changed sets. Policy chains are rendered once per full render for workloads; host
//! endpoints refer to them too, and profile chains are rendered when the first endpoint
//! refers to them and removed (with the sets only they used) when the last one stops.
//! Everything written is recorded in [`Touched`], so the planner compares only that against
//! the kernel's view: a label change costs the changed set elements, independent of the
//! number of endpoints, and adds no rule (which would make the kernel re-validate the table).

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::IpNetwork;
use policy::compile::{CompiledRule, EndpointRules, Match, Ruleset};
use policy::ipset::{IpSetId, Member, SetKey};
use policy::model::{Direction, EndpointId, PolicyId, TierDefaultAction};
use policy::rule::Action;

use super::layout::{
    CHAIN_ALLOW, CHAIN_FAILSAFE_IN, CHAIN_FAILSAFE_OUT, CHAIN_PASS, MAP_FROM_HOST, MAP_FROM_WL,
    MAP_TO_HOST, MAP_TO_WL, MARK_ACCEPT, MARK_PASS, PolicyState, SET_WL_IFACES, SET_WL_SRC4,
    SET_WL_SRC6, addr_bytes, conntrack, end_of, endpoint_chain, family_of, host_chain,
    interval_elems, log_prefix, policy_chain, policy_member_set, profile_chain, rule, set_name,
    skeleton, tier_member_set, workload_if, workload_policy_chain,
};
use super::spec::{
    ChainSpec, Cond, ElemValue, Family, IfDir, RuleSpec, SetKind, SetSpec, Stmt, TableSpec,
    Verdict, ifname_key,
};
use crate::calc::PolicyChanges;

/// What changed in the rendered table since the last successful commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    /// Everything (a full render): compare the whole table.
    pub(crate) all: bool,
    /// Chains written or removed.
    pub(crate) chains: BTreeSet<String>,
    /// Sets written or removed: `None` compares the whole set, `Some` only these keys.
    pub(crate) sets: BTreeMap<String, Option<BTreeSet<Vec<u8>>>>,
}

impl Touched {
    fn chain(&mut self, name: &str) {
        if !self.all && !self.chains.contains(name) {
            self.chains.insert(name.to_string());
        }
    }

    fn set(&mut self, name: &str) {
        if !self.all {
            self.sets.insert(name.to_string(), None);
        }
    }

    fn elem(&mut self, set: &str, key: &[u8]) {
        if self.all {
            return;
        }
        match self.sets.get_mut(set) {
            Some(None) => {}
            Some(Some(keys)) => {
                keys.insert(key.to_vec());
            }
            None => {
                self.sets
                    .insert(set.to_string(), Some(BTreeSet::from([key.to_vec()])));
            }
        }
    }
}

/// What one endpoint put into the table.
#[derive(Debug, Clone, Default)]
struct Placed {
    /// Its own chains.
    chains: Vec<String>,
    /// Shared (policy and profile) chains its chains jump to.
    refs: Vec<String>,
    /// Elements it added: (set, key).
    elems: Vec<(String, Vec<u8>)>,
}

/// A policy or profile chain and the sets its rules use.
#[derive(Debug, Clone)]
struct Shared {
    refs: usize,
    sets: Vec<(IpSetId, Family)>,
}

/// The rendered table and the bookkeeping to update it per change.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    table: TableSpec,
    placed: BTreeMap<EndpointId, Placed>,
    shared: BTreeMap<String, Shared>,
    set_refs: BTreeMap<(IpSetId, Family), usize>,
    touched: Touched,
    rendered_once: bool,
}

impl Default for Rendered {
    fn default() -> Self {
        Rendered {
            table: skeleton(&crate::calc::Failsafe::default()),
            placed: BTreeMap::new(),
            shared: BTreeMap::new(),
            set_refs: BTreeMap::new(),
            touched: Touched {
                all: true,
                ..Default::default()
            },
            rendered_once: false,
        }
    }
}

impl Rendered {
    /// A full render of `state`.
    pub(crate) fn of(state: &PolicyState) -> Rendered {
        let mut r = Rendered::default();
        r.reset(state);
        r
    }

    /// The table content.
    pub(crate) fn table(&self) -> &TableSpec {
        &self.table
    }

    /// What changed since [`Rendered::committed`].
    pub(crate) fn touched(&self) -> &Touched {
        &self.touched
    }

    /// The kernel has everything: start a new change record.
    pub(crate) fn committed(&mut self) {
        self.touched = Touched::default();
    }

    /// Treat the whole table as changed (after a read-back or a failed commit).
    pub(crate) fn touch_all(&mut self) {
        self.touched = Touched {
            all: true,
            ..Default::default()
        };
    }

    /// Brings the table up to `state`, re-rendering what `changes` names (everything on
    /// the first call or when `changes.all`).
    pub(crate) fn update(&mut self, state: &PolicyState, changes: &PolicyChanges) {
        if changes.all || !self.rendered_once {
            self.reset(state);
            return;
        }
        for id in &changes.endpoints {
            // Place the new version before releasing the old one's shared chains, so a
            // policy chain both use is kept rather than removed and rendered again.
            let old = self.remove_endpoint(id);
            self.place_endpoint(state, id);
            for chain in old.refs {
                self.release(&chain);
            }
        }
        for set in &changes.sets {
            for family in [Family::V4, Family::V6] {
                if self.set_refs.contains_key(&(set.clone(), family)) {
                    self.fill_set(&state.ruleset, set, family);
                }
            }
        }
    }

    fn reset(&mut self, state: &PolicyState) {
        self.table = skeleton(&state.failsafe);
        self.placed.clear();
        self.shared.clear();
        self.set_refs.clear();
        self.touch_all();
        self.rendered_once = true;
        for direction in [Direction::Egress, Direction::Ingress] {
            self.workload_policies(&state.ruleset, direction);
        }
        for id in state.workloads.keys().chain(state.host_endpoints.keys()) {
            self.place_endpoint(state, id);
        }
    }

    /// Takes an endpoint's own chains and elements out; returns what it placed (its shared
    /// chains are still held: the caller releases them).
    fn remove_endpoint(&mut self, id: &EndpointId) -> Placed {
        let Some(p) = self.placed.remove(id) else {
            return Placed::default();
        };
        for chain in &p.chains {
            self.table.chains.remove(chain);
            self.touched.chain(chain);
        }
        for (set, key) in &p.elems {
            if let Some(s) = self.table.sets.get_mut(set.as_str()) {
                s.elems.remove(key);
            }
            self.touched.elem(set, key);
        }
        p
    }

    fn place_endpoint(&mut self, state: &PolicyState, id: &EndpointId) {
        let (iface, host) = if let Some(w) = state.workloads.get(id) {
            (w.iface.as_str(), false)
        } else if let Some(h) = state.host_endpoints.get(id) {
            (h.iface.as_str(), true)
        } else {
            return;
        };
        let Some(rules) = state.ruleset.endpoints.get(id) else {
            tracing::warn!(endpoint = %id, iface,
                "endpoint has no compiled rules; its interface stays unknown");
            return;
        };
        let key = ifname_key(iface);
        let mut placed = Placed::default();
        for direction in [Direction::Egress, Direction::Ingress] {
            let (name, map, prefix) = if host {
                let (map, prefix) = match direction {
                    Direction::Ingress => (
                        MAP_FROM_HOST,
                        vec![rule(Vec::new(), Verdict::Jump(CHAIN_FAILSAFE_IN.into()))],
                    ),
                    Direction::Egress => {
                        let mut p = conntrack();
                        p.push(rule(Vec::new(), Verdict::Jump(CHAIN_FAILSAFE_OUT.into())));
                        (MAP_TO_HOST, p)
                    }
                };
                (host_chain(iface, direction), map, prefix)
            } else {
                let map = match direction {
                    Direction::Egress => MAP_FROM_WL,
                    Direction::Ingress => MAP_TO_WL,
                };
                (endpoint_chain(iface, direction), map, Vec::new())
            };
            let chain = self.endpoint(&state.ruleset, rules, direction, prefix, host, &mut placed);
            self.table.chains.insert(name.clone(), chain);
            self.touched.chain(&name);
            self.insert_elem(map, key.clone(), ElemValue::Goto(name.clone()), &mut placed);
            placed.chains.push(name);
            if !host {
                // The policies (and tiers) that apply to this workload: membership elements.
                for tier in rules.tiers(direction) {
                    for p in &tier.policies {
                        let set = policy_member_set(&state.ruleset, p);
                        self.insert_elem(&set, key.clone(), ElemValue::Key, &mut placed);
                    }
                    if tier.default_action == TierDefaultAction::Deny {
                        let set = tier_member_set(&tier.tier, direction);
                        self.insert_elem(&set, key.clone(), ElemValue::Key, &mut placed);
                    }
                }
            }
        }
        if !host && let Some(w) = state.workloads.get(id) {
            self.insert_elem(SET_WL_IFACES, key.clone(), ElemValue::Key, &mut placed);
            for net in &w.nets {
                let set = match family_of(net) {
                    Family::V4 => SET_WL_SRC4,
                    Family::V6 => SET_WL_SRC6,
                };
                for addr in source_addrs(id, net) {
                    let mut k = key.clone();
                    k.extend(addr_bytes(addr));
                    self.insert_elem(set, k, ElemValue::Key, &mut placed);
                }
            }
        }
        self.placed.insert(id.clone(), placed);
    }

    fn insert_elem(&mut self, set: &str, key: Vec<u8>, value: ElemValue, placed: &mut Placed) {
        let Some(s) = self.table.sets.get_mut(set) else {
            return;
        };
        if s.elems.insert(key.clone(), value).is_some() {
            // Already there (a policy applying in both directions): recorded once.
            return;
        }
        self.touched.elem(set, &key);
        placed.elems.push((set.to_string(), key));
    }

    /// The shared chain deciding the policies for workloads in `direction`: every tier and
    /// policy of the ruleset in order, each guarded by its membership set (created empty here;
    /// placing a workload adds its interface to the sets of what selects it).
    fn workload_policies(&mut self, ruleset: &Ruleset, direction: Direction) {
        let dir = workload_if(direction);
        let mut rules = Vec::new();
        for tier in &ruleset.tiers {
            let ids = tier.policies(direction);
            if ids.is_empty() {
                continue;
            }
            if !rules.is_empty() {
                rules.push(clear_pass());
            }
            for id in ids {
                let chain = self.acquire_policy(ruleset, id, direction);
                let set = policy_member_set(ruleset, id);
                self.add_member_set(&set);
                rules.push(jump_if_undecided(chain, Some(member_of(dir, set))));
            }
            rules.push(return_if_accepted());
            if tier.default_action == TierDefaultAction::Deny {
                let set = tier_member_set(&tier.tier, direction);
                self.add_member_set(&set);
                rules.push(end_of_tier_drop(Some(member_of(dir, set))));
            }
        }
        let name = workload_policy_chain(direction);
        self.table
            .chains
            .insert(name.to_string(), ChainSpec::regular(rules));
        self.touched.chain(name);
    }

    fn add_member_set(&mut self, name: &str) {
        if !self.table.sets.contains_key(name) {
            self.table
                .sets
                .insert(name.to_string(), SetSpec::new(SetKind::Ifaces));
            self.touched.set(name);
        }
    }

    /// One endpoint's chain for `direction`: `prefix`, then the policies (a workload: the
    /// shared chain; a host endpoint: its tiers inline), profiles, drop.
    fn endpoint(
        &mut self,
        ruleset: &Ruleset,
        ep: &EndpointRules,
        direction: Direction,
        mut rules: Vec<RuleSpec>,
        host: bool,
        placed: &mut Placed,
    ) -> ChainSpec {
        rules.push(RuleSpec::new(
            Vec::new(),
            vec![Stmt::MarkClear(MARK_ACCEPT | MARK_PASS)],
            Verdict::Continue,
        ));
        if !host {
            rules.push(rule(
                Vec::new(),
                Verdict::Jump(workload_policy_chain(direction).into()),
            ));
            rules.push(return_if_accepted());
        }
        let host_tiers = if host { ep.tiers(direction) } else { &[] };
        for (i, tier) in host_tiers.iter().enumerate() {
            if i > 0 {
                rules.push(clear_pass());
            }
            for p in &tier.policies {
                let chain = self.acquire_policy(ruleset, p, direction);
                placed.refs.push(chain.clone());
                rules.push(jump_if_undecided(chain, None));
            }
            rules.push(return_if_accepted());
            if tier.default_action == TierDefaultAction::Deny {
                rules.push(end_of_tier_drop(None));
            }
        }
        for profile in &ep.profiles {
            if !ruleset.profiles.contains_key(profile) {
                continue;
            }
            let chain = self.acquire_profile(ruleset, profile, direction);
            placed.refs.push(chain.clone());
            rules.push(rule(Vec::new(), Verdict::Jump(chain)));
            rules.push(return_if_accepted());
        }
        rules.push(rule(Vec::new(), Verdict::Drop));
        ChainSpec::regular(rules)
    }

    fn acquire_policy(&mut self, ruleset: &Ruleset, id: &PolicyId, direction: Direction) -> String {
        let name = policy_chain(id, direction);
        if let Some(s) = self.shared.get_mut(&name) {
            s.refs += 1;
            return name;
        }
        let prefix = log_prefix(&id.to_string(), direction);
        let compiled = ruleset.policy_rules(id, direction);
        self.add_shared(ruleset, &name, compiled, &prefix, false);
        name
    }

    fn acquire_profile(
        &mut self,
        ruleset: &Ruleset,
        profile: &str,
        direction: Direction,
    ) -> String {
        let name = profile_chain(profile, direction);
        if let Some(s) = self.shared.get_mut(&name) {
            s.refs += 1;
            return name;
        }
        let prefix = log_prefix(&format!("Profile {profile}"), direction);
        let compiled = ruleset
            .profiles
            .get(profile)
            .map(|c| match direction {
                Direction::Ingress => c.ingress.as_slice(),
                Direction::Egress => c.egress.as_slice(),
            })
            .unwrap_or_default();
        self.add_shared(ruleset, &name, compiled, &prefix, true);
        name
    }

    fn add_shared(
        &mut self,
        ruleset: &Ruleset,
        name: &str,
        compiled: &[CompiledRule],
        prefix: &str,
        profile: bool,
    ) {
        let mut used = BTreeSet::new();
        let rules = rules(ruleset, compiled, prefix, profile, &mut used);
        self.table
            .chains
            .insert(name.to_string(), ChainSpec::regular(rules));
        self.touched.chain(name);
        for (id, family) in &used {
            let count = self.set_refs.entry((id.clone(), *family)).or_insert(0);
            *count += 1;
            if *count == 1 {
                self.fill_set(ruleset, id, *family);
            }
        }
        self.shared.insert(
            name.to_string(),
            Shared {
                refs: 1,
                sets: used.into_iter().collect(),
            },
        );
    }

    fn release(&mut self, chain: &str) {
        let Some(s) = self.shared.get_mut(chain) else {
            return;
        };
        s.refs -= 1;
        if s.refs > 0 {
            return;
        }
        let Some(s) = self.shared.remove(chain) else {
            return;
        };
        self.table.chains.remove(chain);
        self.touched.chain(chain);
        for key in s.sets {
            let gone = match self.set_refs.get_mut(&key) {
                Some(n) => {
                    *n -= 1;
                    *n == 0
                }
                None => false,
            };
            if gone {
                self.set_refs.remove(&key);
                let name = set_name(&key.0, key.1);
                self.table.sets.remove(&name);
                self.touched.set(&name);
            }
        }
    }

    /// (Re)writes one family of an IP set from the ruleset's current members.
    fn fill_set(&mut self, ruleset: &Ruleset, id: &IpSetId, family: Family) {
        let name = set_name(id, family);
        let members = ruleset.set_members(id);
        let named = matches!(ruleset.ip_sets.key(id), Some(SetKey::NamedPort { .. }));
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
        self.table.sets.insert(name.clone(), spec);
        self.touched.set(&name);
    }
}

/// Most addresses one endpoint network may contribute to the anti-spoofing sets.
pub(crate) const MAX_SOURCE_ADDRS: u128 = 256;

/// The source addresses a workload may use from one of its networks: every address of a
/// network up to [`MAX_SOURCE_ADDRS`] (a `/30` on a WorkloadEndpoint allows its four
/// addresses); a wider network is refused (its traffic stays dropped: fail closed).
pub(crate) fn source_addrs(id: &EndpointId, net: &IpNetwork) -> Vec<std::net::IpAddr> {
    let host_bits = match net {
        IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
        IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
    };
    if host_bits >= 128 || (1u128 << host_bits) > MAX_SOURCE_ADDRS {
        tracing::warn!(endpoint = %id, %net, max = MAX_SOURCE_ADDRS,
            "endpoint network too wide for anti-spoofing; its sources stay dropped");
        return Vec::new();
    }
    let count = 1u128 << host_bits;
    match net {
        IpNetwork::V4(n) => {
            let start = u128::from(u32::from(n.network()));
            (0..count)
                .map(|i| std::net::IpAddr::V4(std::net::Ipv4Addr::from((start + i) as u32)))
                .collect()
        }
        IpNetwork::V6(n) => {
            let start = u128::from(n.network());
            (0..count)
                .map(|i| std::net::IpAddr::V6(std::net::Ipv6Addr::from(start + i)))
                .collect()
        }
    }
}

/// `ifname @set`: the packet's workload interface is a member of `set`.
fn member_of(dir: IfDir, set: String) -> Cond {
    Cond::IfInSet {
        dir,
        set,
        negated: false,
    }
}

/// Between tiers: a Pass in the previous tier no longer counts.
fn clear_pass() -> RuleSpec {
    RuleSpec::new(
        Vec::new(),
        vec![Stmt::MarkClear(MARK_PASS)],
        Verdict::Continue,
    )
}

/// Jump to a policy or profile chain while nothing has accepted or passed yet (and, for the
/// shared workload chain, only when `guard` holds).
fn jump_if_undecided(chain: String, guard: Option<Cond>) -> RuleSpec {
    let mut conds = vec![Cond::Mark {
        mask: MARK_ACCEPT | MARK_PASS,
        zero: true,
    }];
    conds.extend(guard);
    rule(conds, Verdict::Jump(chain))
}

/// Back to the caller once a policy has accepted.
fn return_if_accepted() -> RuleSpec {
    rule(
        vec![Cond::Mark {
            mask: MARK_ACCEPT,
            zero: false,
        }],
        Verdict::Return,
    )
}

/// A tier's end-of-tier deny: drop unless a policy of the tier passed (and `guard` holds).
fn end_of_tier_drop(guard: Option<Cond>) -> RuleSpec {
    let mut conds = vec![Cond::Mark {
        mask: MARK_PASS,
        zero: true,
    }];
    conds.extend(guard);
    rule(conds, Verdict::Drop)
}

/// A policy's or profile's rules; records the (set, family) pairs they use.
fn rules(
    ruleset: &Ruleset,
    compiled: &[CompiledRule],
    prefix: &str,
    profile: bool,
    used: &mut BTreeSet<(IpSetId, Family)>,
) -> Vec<RuleSpec> {
    let mut out: Vec<(Vec<Cond>, Vec<Stmt>, Verdict)> = Vec::new();
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
        for conds in variants(ruleset, c, used) {
            out.push((conds, stmts.clone(), verdict.clone()));
        }
    }
    let mut head = hoist_common(&mut out);
    head.extend(
        out.into_iter()
            .map(|(conds, stmts, verdict)| RuleSpec::new(conds, stmts, verdict)),
    );
    head
}

/// Fewest rules for which hoisting a shared condition pays (it adds one rule).
const HOIST_MIN_RULES: usize = 3;

/// When every rule of a policy or profile chain matches the same protocol (`meta l4proto 6`),
/// checks it once at the top instead: a rule `return`ing when it does not hold, and the
/// condition taken off every rule. Fewer expressions for the kernel to parse, validate and
/// evaluate, same verdicts: a packet of another protocol matches none of the rules, and
/// falling off the end of the chain is a `return` as well. (The family condition stays in
/// each rule: `nft` adds it back to any rule with an `ip`/`ip6` address match, and the
/// table must stay what its `nft` text says.)
fn hoist_common(rules: &mut [(Vec<Cond>, Vec<Stmt>, Verdict)]) -> Vec<RuleSpec> {
    if rules.len() < HOIST_MIN_RULES {
        return Vec::new();
    }
    let Some(proto) = rules[0]
        .0
        .iter()
        .find(|c| matches!(c, Cond::L4Proto { .. }))
        .cloned()
    else {
        return Vec::new();
    };
    if !rules.iter().all(|r| r.0.contains(&proto)) {
        return Vec::new();
    }
    let Cond::L4Proto { proto: p, negated } = proto else {
        return Vec::new();
    };
    for r in rules.iter_mut() {
        r.0.retain(|c| c != &proto);
    }
    vec![rule(
        vec![Cond::L4Proto {
            proto: p,
            negated: !negated,
        }],
        Verdict::Return,
    )]
}

/// Whether a fixed-networks set has members of `family` (`None`: not a fixed set).
fn nets_set_has(ruleset: &Ruleset, id: &IpSetId, family: Family) -> Option<bool> {
    match ruleset.ip_sets.key(id) {
        Some(SetKey::Nets(nets)) => Some(nets.iter().any(|n| family_of(n) == family)),
        _ => None,
    }
}

/// The nft condition lists equivalent to one compiled rule (ORed): one per address family
/// it can match, times one per positive port range.
fn variants(
    ruleset: &Ruleset,
    c: &CompiledRule,
    used: &mut BTreeSet<(IpSetId, Family)>,
) -> Vec<Vec<Cond>> {
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
                    match (nets_set_has(ruleset, set, f), negated) {
                        (Some(false), false) => continue 'family,
                        (Some(false), true) => continue,
                        _ => {}
                    }
                    used.insert((set.clone(), f));
                    conds.push(Cond::Addr {
                        family: f,
                        end: end_of(*side),
                        set: set_name(set, f),
                        negated: *negated,
                    });
                }
                Match::NamedPortSet { side, set, negated } => {
                    let Some(f) = family else { continue };
                    used.insert((set.clone(), f));
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

/// A full render of `state` (for the `nft -f` script and tests).
pub(crate) fn render(state: &PolicyState) -> TableSpec {
    Rendered::of(state).table
}
