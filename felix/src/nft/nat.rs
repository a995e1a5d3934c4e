//! Outbound NAT for pods (IPPool `natOutgoing`): its chain and sets in table `inet vrouter`,
//! and [`NatDataplane`], which programs them and reads their counters back.
//!
//! ```text
//! chain vr-nat-postrouting  type nat hook postrouting priority srcnat + 10 (after kube-proxy)
//!   meta nfproto ipv4 ip saddr @vr-masq-pools-4 ip daddr != @vr-all-pools-4
//!                     ip daddr != @vr-nodes-4 counter masquerade
//!   meta nfproto ipv6 ip6 saddr @vr-masq-pools-6 … @vr-all-pools-6 … @vr-nodes-6 counter masquerade
//! set vr-masq-pools-4|6   CIDRs of the pools with natOutgoing (interval sets)
//! set vr-all-pools-4|6    CIDRs of every pool: pod-to-pod traffic is never NATed
//! set vr-nodes-4|6        every node's addresses: pod-to-node traffic is never NATed
//! ```
//!
//! A nat chain sees only the first packet of each connection (conntrack applies the mapping
//! to the rest), so a rule's counter counts connections. Toggling `natOutgoing` changes set
//! elements only; the chain is written once.
//!
//! These objects share the policy dataplane's table but not its socket or its bookkeeping:
//! the policy dataplane leaves every name in [`owns`] alone when it reads the table back,
//! and this dataplane re-creates its objects when they are missing (a policy rebuild replaces
//! the whole table), found at the latest by the next [`NatDataplane::counters`] or resync.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::NftError;
use super::dataplane::intervals;
use super::dump::{self, DumpKind};
use super::layout::interval_elems;
use super::netlink::{KernelError, Netlink};
use super::spec::{
    ChainSpec, Cond, ElemValue, End, Family, Hook, RuleSpec, SetKind, SetSpec, Stmt, Verdict,
};
use super::wire;
use crate::ownership::NFT_TABLE;

/// The NAT base chain.
pub(crate) const CHAIN_NAT: &str = "vr-nat-postrouting";
const MASQ_POOLS: [&str; 2] = ["vr-masq-pools-4", "vr-masq-pools-6"];
const ALL_POOLS: [&str; 2] = ["vr-all-pools-4", "vr-all-pools-6"];
const NODES: [&str; 2] = ["vr-nodes-4", "vr-nodes-6"];
const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// True for the chain and set names this module owns in table `inet vrouter`.
pub(crate) fn owns(name: &str) -> bool {
    name == CHAIN_NAT
        || MASQ_POOLS.contains(&name)
        || ALL_POOLS.contains(&name)
        || NODES.contains(&name)
}

/// What the NAT chain needs to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatState {
    /// CIDRs of the pools with `natOutgoing: true`.
    pub masq_pools: Vec<IpNetwork>,
    /// CIDRs of every pool.
    pub all_pools: Vec<IpNetwork>,
    /// Every node's addresses (BGP peering and tunnel addresses).
    pub node_addrs: Vec<IpAddr>,
}

/// Masqueraded connections since the rules were created, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// IPv4: (connections, bytes of their first packets).
    pub v4: (u64, u64),
    /// IPv6: likewise.
    pub v6: (u64, u64),
}

fn index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The masquerade rule of one family.
fn masquerade_rule(family: Family) -> RuleSpec {
    let i = index(family);
    let addr = |end, set: &str, negated| Cond::Addr {
        family,
        end,
        set: set.to_string(),
        negated,
    };
    RuleSpec::new(
        vec![
            Cond::NfProto(family),
            addr(End::Src, MASQ_POOLS[i], false),
            addr(End::Dst, ALL_POOLS[i], true),
            addr(End::Dst, NODES[i], true),
        ],
        vec![Stmt::Counter],
        Verdict::Masquerade,
    )
}

/// The chain (`.0`) and the sets (`.1`) for `state`. Pure.
pub(crate) fn render(state: &NatState) -> (ChainSpec, BTreeMap<String, SetSpec>) {
    let chain = ChainSpec {
        hook: Some(Hook::Postrouting),
        rules: FAMILIES.iter().map(|f| masquerade_rule(*f)).collect(),
    };
    let nodes: Vec<IpNetwork> = state
        .node_addrs
        .iter()
        .map(|a| IpNetwork::from(*a))
        .collect();
    let mut sets = BTreeMap::new();
    for family in FAMILIES {
        let i = index(family);
        for (name, nets) in [
            (MASQ_POOLS[i], &state.masq_pools),
            (ALL_POOLS[i], &state.all_pools),
            (NODES[i], &nodes),
        ] {
            sets.insert(
                name.to_string(),
                SetSpec {
                    kind: SetKind::Addrs(family),
                    elems: interval_elems(nets.iter(), family),
                },
            );
        }
    }
    (chain, sets)
}

/// What the kernel holds of our objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NatView {
    /// Comments of the chain's rules (`None`: no chain).
    chain: Option<Vec<String>>,
    /// Sets that exist with the right type, with their elements.
    sets: BTreeMap<String, BTreeMap<Vec<u8>, ElemValue>>,
    /// Sets that exist with another type (re-created).
    foreign: Vec<String>,
}

/// What one apply changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatReport {
    /// Set elements added and removed.
    pub elements: usize,
    /// Chains and sets created (all of them after a rebuild of the NAT objects).
    pub objects: usize,
    /// The kernel's objects were read back first, after an earlier apply (a resync, or the
    /// chain went missing): what changed was drift.
    pub read_back: bool,
}

/// The NAT dataplane of one network namespace: `set_desired` is cheap, `apply` programs the
/// delta in one atomic batch.
#[derive(Debug)]
pub struct NatDataplane {
    sock: Netlink,
    desired: Option<NatState>,
    dirty: bool,
    committed: Option<NatView>,
    /// An apply succeeded before: a later read-back finds drift, not a fresh start.
    applied: bool,
}

impl NatDataplane {
    /// Opens a netlink socket in the current thread's network namespace; nothing is
    /// programmed before the first `apply`.
    pub fn new() -> Result<NatDataplane, NftError> {
        Ok(NatDataplane {
            sock: Netlink::open()?,
            desired: None,
            dirty: false,
            committed: None,
            applied: false,
        })
    }

    /// Replaces the desired state; no I/O.
    pub fn set_desired(&mut self, state: NatState) {
        if self.desired.as_ref() != Some(&state) {
            self.desired = Some(state);
            self.dirty = true;
        }
    }

    /// True when an apply has something to do.
    pub fn has_pending_work(&self) -> bool {
        self.desired.is_some() && (self.dirty || self.committed.is_none())
    }

    /// Forget what the kernel holds: the next apply reads it back and repairs drift.
    pub fn request_resync(&mut self) {
        self.committed = None;
    }

    /// Programs the difference between the desired state and the kernel in one batch.
    pub fn apply(&mut self) -> Result<NatReport, NftError> {
        let mut report = NatReport::default();
        let Some(state) = &self.desired else {
            return Ok(report);
        };
        let (chain, sets) = render(state);
        let have = match self.committed.take() {
            Some(v) => v,
            None => {
                report.read_back = self.applied;
                self.read_back()?
            }
        };
        let mut batch = nftnl::Batch::new();
        let mut what: Vec<String> = Vec::new();
        let mut push = |m: wire::Msg, w: String, batch: &mut nftnl::Batch| {
            batch.add(&m, nftnl::MsgType::Add);
            what.push(w);
        };
        push(wire::add_table(NFT_TABLE)?, "add table".into(), &mut batch);
        let rebuild = !have.foreign.is_empty();
        let mut chain_present = have.chain.is_some();
        if rebuild {
            // A set of another type cannot be altered: drop all our objects and start over.
            if chain_present {
                push(
                    wire::flush_chain(NFT_TABLE, CHAIN_NAT)?,
                    format!("flush chain {CHAIN_NAT}"),
                    &mut batch,
                );
                push(
                    wire::del_chain(NFT_TABLE, CHAIN_NAT)?,
                    format!("delete chain {CHAIN_NAT}"),
                    &mut batch,
                );
            }
            for name in have.sets.keys().chain(&have.foreign) {
                push(
                    wire::del_set(NFT_TABLE, name)?,
                    format!("delete set {name}"),
                    &mut batch,
                );
            }
            chain_present = false;
        }
        let empty = BTreeMap::new();
        for (name, set) in &sets {
            let current = if rebuild { None } else { have.sets.get(name) };
            if current.is_none() {
                push(
                    wire::add_set(NFT_TABLE, name, set.kind)?,
                    format!("add set {name}"),
                    &mut batch,
                );
                report.objects += 1;
            }
            let current = current.unwrap_or(&empty);
            let del: Vec<(&Vec<u8>, &ElemValue)> = current
                .iter()
                .filter(|(k, v)| set.elems.get(*k) != Some(*v))
                .collect();
            let add: Vec<(&Vec<u8>, &ElemValue)> = set
                .elems
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(*v))
                .collect();
            report.elements += del.len() + add.len();
            for m in wire::elems(NFT_TABLE, name, del.into_iter(), false)? {
                push(m, format!("delete element from {name}"), &mut batch);
            }
            for m in wire::elems(NFT_TABLE, name, add.into_iter(), true)? {
                push(m, format!("add element to {name}"), &mut batch);
            }
        }
        let comments: Vec<String> = chain.rules.iter().map(|r| r.comment.clone()).collect();
        let rules_ok = chain_present && have.chain.as_ref() == Some(&comments);
        if !rules_ok {
            if chain_present {
                push(
                    wire::flush_chain(NFT_TABLE, CHAIN_NAT)?,
                    format!("flush chain {CHAIN_NAT}"),
                    &mut batch,
                );
            } else {
                push(
                    wire::add_chain(NFT_TABLE, CHAIN_NAT, chain.hook)?,
                    format!("add chain {CHAIN_NAT}"),
                    &mut batch,
                );
                report.objects += 1;
            }
            for r in &chain.rules {
                push(
                    wire::add_rule(NFT_TABLE, CHAIN_NAT, r)?,
                    format!("add rule {CHAIN_NAT} {}", r.body_text()),
                    &mut batch,
                );
            }
        }
        if what.len() > 1 {
            let batch = batch.finalize();
            let errors = self.sock.send_batch(&batch)?;
            if let Some(KernelError { seq, errno }) = errors.first() {
                let seqs = batch.sequence_numbers();
                // Sequence numbers: BEGIN (if acknowledged), the messages, END.
                let first = if (seqs.end - seqs.start) as usize > what.len() {
                    seqs.start + 1
                } else {
                    seqs.start
                };
                let failed = seq
                    .checked_sub(first)
                    .and_then(|i| what.get(i as usize))
                    .cloned()
                    .unwrap_or_else(|| format!("batch message {seq}"));
                return Err(NftError::Kernel {
                    what: failed,
                    errno: *errno,
                });
            }
        }
        self.committed = Some(NatView {
            chain: Some(comments),
            sets: sets.into_iter().map(|(n, s)| (n, s.elems)).collect(),
            foreign: Vec::new(),
        });
        self.dirty = false;
        self.applied = true;
        Ok(report)
    }

    fn dump(&mut self, kind: DumpKind) -> Result<Option<Vec<Vec<u8>>>, NftError> {
        let seq = self.sock.next_seq();
        let req = dump::dump_request(kind, NFT_TABLE, seq)?;
        self.sock.dump(&req, seq)
    }

    fn read_back(&mut self) -> Result<NatView, NftError> {
        let mut view = NatView::default();
        let mut chain_exists = false;
        for m in self.dump(DumpKind::Chains)?.unwrap_or_default() {
            let (table, name) = dump::parse_chain(&m)?;
            chain_exists |= table == NFT_TABLE && name == CHAIN_NAT;
        }
        if chain_exists {
            let mut comments = Vec::new();
            for m in self
                .dump(DumpKind::ChainRules(CHAIN_NAT.into()))?
                .unwrap_or_default()
            {
                comments.push(dump::parse_rule_counter(&m)?.comment);
            }
            view.chain = Some(comments);
        }
        let mut ours = Vec::new();
        for m in self.dump(DumpKind::Sets)?.unwrap_or_default() {
            let info = dump::parse_set(&m)?;
            if info.table == NFT_TABLE && owns(&info.name) {
                ours.push(info);
            }
        }
        for info in ours {
            let family = if info.name.ends_with("-6") {
                Family::V6
            } else {
                Family::V4
            };
            if !info.matches(SetKind::Addrs(family)) {
                view.foreign.push(info.name);
                continue;
            }
            let mut raw = Vec::new();
            for m in self
                .dump(DumpKind::Elems(info.name.clone()))?
                .unwrap_or_default()
            {
                raw.extend(dump::parse_elems(&m)?);
            }
            view.sets.insert(info.name, intervals(raw));
        }
        Ok(view)
    }

    /// The masquerade rules' counters. When the chain or its rules turn out to be missing (a
    /// policy rebuild replaced the table, or someone deleted them), the next apply re-creates
    /// them.
    pub fn counters(&mut self) -> Result<NatCounters, NftError> {
        let mut out = NatCounters::default();
        let rules = self
            .dump(DumpKind::ChainRules(CHAIN_NAT.into()))?
            .unwrap_or_default();
        let wanted: Vec<(Family, String)> = FAMILIES
            .iter()
            .map(|f| (*f, masquerade_rule(*f).comment))
            .collect();
        let mut found = 0;
        for m in rules {
            let rule = dump::parse_rule_counter(&m)?;
            if rule.chain != CHAIN_NAT {
                continue;
            }
            for (family, comment) in &wanted {
                if rule.comment == *comment
                    && let Some(counts) = rule.packets_bytes
                {
                    found += 1;
                    match family {
                        Family::V4 => out.v4 = counts,
                        Family::V6 => out.v6 = counts,
                    }
                }
            }
        }
        if found < wanted.len() && self.desired.is_some() && self.committed.is_some() {
            tracing::warn!(chain = CHAIN_NAT, "NAT rules missing; re-creating them");
            self.committed = None;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> NatState {
        NatState {
            masq_pools: vec![
                "10.65.0.0/16".parse().unwrap(),
                "fd00:65::/64".parse().unwrap(),
            ],
            all_pools: vec![
                "10.65.0.0/16".parse().unwrap(),
                "10.70.0.0/16".parse().unwrap(),
                "fd00:65::/64".parse().unwrap(),
            ],
            node_addrs: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        }
    }

    #[test]
    fn chain_text_matches_the_design() {
        let (chain, sets) = render(&state());
        assert_eq!(chain.hook, Some(Hook::Postrouting));
        assert_eq!(
            chain.rules[0].body_text(),
            "meta nfproto ipv4 ip saddr @vr-masq-pools-4 ip daddr != @vr-all-pools-4 \
             ip daddr != @vr-nodes-4 counter masquerade"
        );
        assert_eq!(
            chain.rules[1].body_text(),
            "meta nfproto ipv6 ip6 saddr @vr-masq-pools-6 ip6 daddr != @vr-all-pools-6 \
             ip6 daddr != @vr-nodes-6 counter masquerade"
        );
        assert_eq!(sets.len(), 6);
        assert!(sets.keys().all(|n| owns(n)));
        assert!(owns(CHAIN_NAT) && !owns("vr-forward"));
        assert_eq!(sets["vr-all-pools-4"].elems.len(), 2);
        assert_eq!(
            sets["vr-nodes-4"].elems.get(&vec![192, 0, 2, 1]),
            Some(&ElemValue::IntervalTo(Some(vec![192, 0, 2, 2])))
        );
        assert_eq!(sets["vr-masq-pools-6"].elems.len(), 1);
        assert!(sets["vr-nodes-6"].elems.len() == 1);
    }

    #[test]
    fn toggling_nat_changes_only_set_elements() {
        let on = state();
        let mut off = on.clone();
        off.masq_pools.clear();
        let (chain_on, sets_on) = render(&on);
        let (chain_off, sets_off) = render(&off);
        assert_eq!(chain_on, chain_off, "the chain is independent of the pools");
        assert!(sets_off["vr-masq-pools-4"].elems.is_empty());
        assert_eq!(sets_on["vr-all-pools-4"], sets_off["vr-all-pools-4"]);
    }

    #[test]
    fn nft_text_declares_a_nat_chain() {
        let (chain, sets) = render(&state());
        let mut t = super::super::spec::TableSpec::default();
        t.chains.insert(CHAIN_NAT.into(), chain);
        t.sets = sets;
        let text = t.to_nft_text("vrouter");
        assert!(
            text.contains("type nat hook postrouting priority srcnat + 10; policy accept;"),
            "{text}"
        );
        assert!(text.contains("10.65.0.0-10.65.255.255"), "{text}");
    }
}
