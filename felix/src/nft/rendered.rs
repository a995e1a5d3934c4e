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
use policy::compile::{EndpointRules, Ruleset};
use policy::ipset::{IpSetId, Member, SetKey};
use policy::model::{Direction, EndpointId, PolicyId, TierDefaultAction};

use super::layout::{
    CHAIN_FAILSAFE_IN, CHAIN_FAILSAFE_OUT, MAP_FROM_HOST, MAP_FROM_WL, MAP_TO_HOST, MAP_TO_WL,
    MARK_ACCEPT, MARK_PASS, PolicyState, SET_WL_IFACES, SET_WL_SRC4, SET_WL_SRC6, addr_bytes,
    conntrack, endpoint_chain, family_of, host_chain, interval_elems, log_prefix, policy_chain,
    policy_member_set, profile_chain, rule, set_name, skeleton, tier_member_set, workload_if,
    workload_policy_chain,
};
use super::rules::{policy_rules, profile_rules};
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

/// A policy or profile chain, the sets its rules use, and what a jump into it checks.
#[derive(Debug, Clone)]
struct Shared {
    refs: usize,
    sets: Vec<(IpSetId, Family)>,
    /// Conditions every rule of the chain needs, checked by the jumps into it.
    guard: Vec<Cond>,
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
                let (chain, mut guard) = self.acquire_policy(ruleset, id, direction);
                let set = policy_member_set(ruleset, id);
                self.add_member_set(&set);
                guard.push(member_of(dir, set));
                rules.push(jump_if_undecided(chain, guard));
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
                let (chain, guard) = self.acquire_policy(ruleset, p, direction);
                placed.refs.push(chain.clone());
                rules.push(jump_if_undecided(chain, guard));
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
            rules.push(rule(Vec::new(), Verdict::Jump(chain.into())));
            rules.push(return_if_accepted());
        }
        rules.push(rule(Vec::new(), Verdict::Drop));
        ChainSpec::regular(rules)
    }

    /// A policy's chain for `direction` (rendered on first use) and the conditions a jump
    /// into it must check.
    fn acquire_policy(
        &mut self,
        ruleset: &Ruleset,
        id: &PolicyId,
        direction: Direction,
    ) -> (String, Vec<Cond>) {
        let name = policy_chain(id, direction);
        if let Some(s) = self.shared.get_mut(&name) {
            s.refs += 1;
            return (name, s.guard.clone());
        }
        let prefix = log_prefix(&id.to_string(), direction);
        let compiled = ruleset.policy_rules(id, direction);
        let mut used = Vec::new();
        let r = policy_rules(ruleset, compiled, &prefix, &mut used);
        self.put_chain(&name, r.rules);
        self.add_shared(ruleset, &name, used, r.guard.clone());
        (name, r.guard)
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
        let mut used = Vec::new();
        let rules = profile_rules(ruleset, compiled, &prefix, &mut used);
        self.put_chain(&name, rules);
        self.add_shared(ruleset, &name, used, Vec::new());
        name
    }

    fn put_chain(&mut self, name: &str, rules: Vec<RuleSpec>) {
        self.table
            .chains
            .insert(name.to_string(), ChainSpec::regular(rules));
        self.touched.chain(name);
    }

    /// Records shared chain `name` (already in the table) and fills the sets it uses.
    fn add_shared(
        &mut self,
        ruleset: &Ruleset,
        name: &str,
        used: Vec<(IpSetId, Family)>,
        guard: Vec<Cond>,
    ) {
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
                sets: used,
                guard,
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

/// Jump to a policy chain while nothing has accepted or passed yet and `guard` holds (what
/// every rule of the policy needs, and in the shared workload chain the membership test).
fn jump_if_undecided(chain: String, guard: Vec<Cond>) -> RuleSpec {
    let mut conds = vec![Cond::Mark {
        mask: MARK_ACCEPT | MARK_PASS,
        zero: true,
    }];
    conds.extend(guard);
    rule(conds, Verdict::Jump(chain.into()))
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

/// A full render of `state` (for the `nft -f` script and tests).
pub(crate) fn render(state: &PolicyState) -> TableSpec {
    Rendered::of(state).table
}
