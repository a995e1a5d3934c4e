//! [`PolicyDataplane`]: owns the netlink socket and table `inet vrouter`; adopts an existing
//! table on start, applies deltas as single atomic batches, reads the kernel's table back to
//! repair drift, and rebuilds the whole table atomically after repeated kernel errors.
//!
//! The rendered table is kept between applies ([`Rendered`]): a change re-renders only what
//! the state's [`crate::calc::PolicyChanges`] names, and the delta is planned over only what
//! that touched, against the view of what was last committed.

use std::collections::BTreeMap;
use std::time::Instant;

use super::NftError;
use super::dump::{self, DumpKind};
use super::layout::{self, PolicyState};
use super::netlink::{KernelError, Netlink};
use super::plan::{self, NeedsRebuild, Op, SetView, TableView};
use super::rendered::{Rendered, Touched};
use super::spec::{ElemValue, SetKind, TableSpec};
use super::wire::{self, Msg};
use crate::calc::PolicyChanges;
use crate::ownership::NFT_TABLE;

/// What one [`PolicyDataplane::apply`] or [`PolicyDataplane::resync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Netlink messages sent (all batches, excluding batch begin/end).
    pub messages: usize,
    /// Chains created.
    pub chains_created: usize,
    /// Existing chains whose rules were replaced.
    pub chains_rewritten: usize,
    /// Chains deleted.
    pub chains_deleted: usize,
    /// Rules added (in created or rewritten chains).
    pub rules_added: usize,
    /// Sets and maps created.
    pub sets_created: usize,
    /// Sets and maps deleted.
    pub sets_deleted: usize,
    /// Set and map elements added (an interval counts once).
    pub elements_added: usize,
    /// Set and map elements removed.
    pub elements_removed: usize,
    /// The kernel's table was read back before computing the delta.
    pub read_back: bool,
    /// Batches the kernel rejected before the final one succeeded.
    pub kernel_errors: usize,
    /// The whole table was replaced in one atomic batch.
    pub full_rebuild: bool,
    /// Wall time of the whole call, in microseconds.
    pub micros: u64,
}

impl ApplyReport {
    /// True when nothing had to change.
    pub fn is_noop(&self) -> bool {
        self.messages == 0
    }

    /// True when only set and map elements changed (no chain, rule or set was touched).
    pub fn only_elements_changed(&self) -> bool {
        self.chains_created == 0
            && self.chains_rewritten == 0
            && self.chains_deleted == 0
            && self.rules_added == 0
            && self.sets_created == 0
            && self.sets_deleted == 0
            && !self.full_rebuild
    }

    fn count(&mut self, ops: &[Op<'_>]) {
        for op in ops {
            match op {
                Op::AddSet { .. } => self.sets_created += 1,
                Op::AddChain { .. } => self.chains_created += 1,
                Op::DelElems { elems, .. } => self.elements_removed += elems.len(),
                Op::AddElems { elems, .. } => self.elements_added += elems.len(),
                Op::FlushChain { .. } => self.chains_rewritten += 1,
                Op::AddRule { .. } => self.rules_added += 1,
                Op::DelChain { .. } => self.chains_deleted += 1,
                Op::DelSet { .. } => self.sets_deleted += 1,
            }
        }
        // A deleted chain is flushed first; count it once.
        self.chains_rewritten = self.chains_rewritten.saturating_sub(self.chains_deleted);
    }
}

/// The nftables policy dataplane of one network namespace.
///
/// `set_desired` is cheap and does no I/O; `apply` programs the delta. The table and its
/// fail-closed base chains outlive this value (dropping it only closes the socket).
#[derive(Debug)]
pub struct PolicyDataplane {
    sock: Netlink,
    /// The latest state handed over and not yet rendered.
    pending: Option<PolicyState>,
    /// Changes of the states handed over since the last render.
    pending_changes: PolicyChanges,
    /// The table for the last rendered state (`None`: no state yet).
    rendered: Option<Rendered>,
    dirty: bool,
    /// What the kernel has, as far as we know (`None`: unknown, read it back first).
    committed: Option<TableView>,
}

impl PolicyDataplane {
    /// Opens a netlink socket in the current thread's network namespace. An existing
    /// `inet vrouter` table is adopted untouched (its content is compared and repaired by the
    /// first `apply`); otherwise the fail-closed skeleton (base chains, empty dispatch maps:
    /// every `vr*` interface dropped) is created in one batch.
    pub fn new() -> Result<PolicyDataplane, NftError> {
        let mut dp = PolicyDataplane {
            sock: Netlink::open()?,
            pending: None,
            pending_changes: PolicyChanges::default(),
            rendered: None,
            dirty: false,
            committed: None,
        };
        if dp.table_exists()? {
            tracing::info!(table = NFT_TABLE, "adopting existing nftables table");
        } else {
            let skeleton = layout::skeleton(&crate::calc::Failsafe::default());
            dp.committed = Some(dp.rebuild(&skeleton, &mut ApplyReport::default())?);
            tracing::info!(table = NFT_TABLE, "created nftables table (fail closed)");
        }
        Ok(dp)
    }

    /// Replaces the desired state; no I/O. Its `changes` say what differs from the state
    /// handed over before (states handed over without an apply in between accumulate).
    pub fn set_desired(&mut self, mut state: PolicyState) {
        self.pending_changes
            .merge(std::mem::take(&mut state.changes));
        self.pending = Some(state);
        self.dirty = true;
    }

    /// Renders the pending state into the kept table and lets go of it (the ruleset is
    /// shared with calc, which then updates it in place).
    fn render_pending(&mut self) {
        if let Some(state) = self.pending.take() {
            let changes = std::mem::take(&mut self.pending_changes);
            match self.rendered.as_mut() {
                Some(r) => r.update(&state, &changes),
                None => self.rendered = Some(Rendered::of(&state)),
            }
        }
    }

    /// Programs the difference between the desired state and the kernel in one atomic
    /// batch. If the kernel rejects it, the table is read back and the delta retried once;
    /// if that fails too, the whole table is replaced atomically.
    pub fn apply(&mut self) -> Result<ApplyReport, NftError> {
        let start = Instant::now();
        let mut report = ApplyReport::default();
        self.render_pending();
        if self.rendered.is_none() || (!self.dirty && self.committed.is_some()) {
            return Ok(report);
        }
        self.converge(&mut report)?;
        self.dirty = false;
        report.micros = start.elapsed().as_micros() as u64;
        Ok(report)
    }

    /// Reads the table back from the kernel and repairs any drift (a deleted set element,
    /// chain or rule, or a missing table). Without a desired state it only makes sure the
    /// fail-closed skeleton exists.
    pub fn resync(&mut self) -> Result<ApplyReport, NftError> {
        let start = Instant::now();
        let mut report = ApplyReport::default();
        self.committed = None;
        self.render_pending();
        if self.rendered.is_none() {
            if !self.table_exists()? {
                let skeleton = layout::skeleton(&crate::calc::Failsafe::default());
                self.committed = Some(self.rebuild(&skeleton, &mut report)?);
            }
        } else {
            self.converge(&mut report)?;
            self.dirty = false;
        }
        report.micros = start.elapsed().as_micros() as u64;
        Ok(report)
    }

    /// The `nft -f` script equivalent to the desired state (empty skeleton if none).
    pub fn desired_script(&mut self) -> String {
        self.render_pending();
        match &self.rendered {
            Some(r) => r.table().to_nft_text(NFT_TABLE),
            None => layout::skeleton(&crate::calc::Failsafe::default()).to_nft_text(NFT_TABLE),
        }
    }

    fn converge(&mut self, report: &mut ApplyReport) -> Result<(), NftError> {
        let Some(mut rendered) = self.rendered.take() else {
            return Ok(());
        };
        let result = self.converge_to(&mut rendered, report);
        self.rendered = Some(rendered);
        result
    }

    fn converge_to(
        &mut self,
        rendered: &mut Rendered,
        report: &mut ApplyReport,
    ) -> Result<(), NftError> {
        let result = self.converge_scoped(rendered, report);
        if result.is_ok() {
            rendered.committed();
        }
        result
    }

    fn converge_scoped(
        &mut self,
        rendered: &Rendered,
        report: &mut ApplyReport,
    ) -> Result<(), NftError> {
        let want = rendered.table();
        let everything = Touched {
            all: true,
            ..Default::default()
        };
        // After a read-back or a rejected batch, compare everything, not just the changes.
        let mut scope = rendered.touched();
        for _attempt in 0..2 {
            let mut have = match self.committed.take() {
                Some(v) => v,
                None => {
                    report.read_back = true;
                    scope = &everything;
                    match self.read_back(want)? {
                        Some(v) => v,
                        None => {
                            self.committed = Some(self.rebuild(want, report)?);
                            return Ok(());
                        }
                    }
                }
            };
            let ops = match plan::plan(want, &have, Some(scope)) {
                Ok(ops) => ops,
                Err(NeedsRebuild(why)) => {
                    tracing::warn!(%why, "nftables table cannot be patched; rebuilding");
                    self.committed = Some(self.rebuild(want, report)?);
                    return Ok(());
                }
            };
            if ops.is_empty() {
                drop(ops);
                self.committed = Some(have);
                return Ok(());
            }
            match self.send(&ops, false, report) {
                Ok(()) => {
                    report.count(&ops);
                    drop(ops);
                    have.sync(want, scope);
                    self.committed = Some(have);
                    return Ok(());
                }
                Err(e) => {
                    report.kernel_errors += 1;
                    tracing::warn!(error = %e, "nftables batch rejected; re-reading the table");
                }
            }
        }
        tracing::warn!("nftables batch rejected twice; rebuilding the table atomically");
        self.committed = Some(self.rebuild(want, report)?);
        Ok(())
    }

    /// Replaces the whole table in one batch: `add table; delete table; add table; …`
    /// (the first add makes the delete valid whether or not the table exists). Returns the
    /// view of what the kernel then holds.
    fn rebuild(
        &mut self,
        want: &TableSpec,
        report: &mut ApplyReport,
    ) -> Result<TableView, NftError> {
        let ops = plan::create_all(want);
        self.send(&ops, true, report)?;
        report.count(&ops);
        report.full_rebuild = true;
        drop(ops);
        Ok(TableView::of(want))
    }

    fn send(
        &mut self,
        ops: &[Op<'_>],
        rebuild: bool,
        report: &mut ApplyReport,
    ) -> Result<(), NftError> {
        let mut batch = nftnl::Batch::new();
        let mut scratch = Vec::with_capacity(1024);
        // For each message, the op it came from (`None`: the rebuild's table messages);
        // descriptions are only formatted when the kernel rejects something.
        let mut origin: Vec<Option<usize>> = Vec::new();
        if rebuild {
            for m in [
                wire::add_table(NFT_TABLE)?,
                wire::del_table(NFT_TABLE)?,
                wire::add_table(NFT_TABLE)?,
            ] {
                batch.add(&m, nftnl::MsgType::Add);
                origin.push(None);
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let one = |m: Msg, batch: &mut nftnl::Batch, origin: &mut Vec<Option<usize>>| {
                batch.add(&m, nftnl::MsgType::Add);
                origin.push(Some(i));
            };
            match op {
                Op::AddSet { name, kind } => one(
                    wire::add_set(NFT_TABLE, name, *kind)?,
                    &mut batch,
                    &mut origin,
                ),
                Op::AddChain { name, hook } => one(
                    wire::add_chain(NFT_TABLE, name, *hook)?,
                    &mut batch,
                    &mut origin,
                ),
                Op::DelElems { set, elems } | Op::AddElems { set, elems } => {
                    let is_add = matches!(op, Op::AddElems { .. });
                    for m in wire::elems(NFT_TABLE, set, elems.iter().copied(), is_add)? {
                        one(m, &mut batch, &mut origin);
                    }
                }
                Op::FlushChain { name } => {
                    one(wire::flush_chain(NFT_TABLE, name)?, &mut batch, &mut origin)
                }
                Op::AddRule { chain, rule } => {
                    let m = wire::add_rule_in(&mut scratch, NFT_TABLE, chain, rule)?;
                    batch.add(&m, nftnl::MsgType::Add);
                    origin.push(Some(i));
                }
                Op::DelChain { name } => {
                    one(wire::del_chain(NFT_TABLE, name)?, &mut batch, &mut origin)
                }
                Op::DelSet { name } => {
                    one(wire::del_set(NFT_TABLE, name)?, &mut batch, &mut origin)
                }
            }
        }
        let batch = batch.finalize();
        report.messages += origin.len();
        let errors = self.sock.send_batch(&batch)?;
        if let Some(KernelError { seq, errno }) = errors.first() {
            // Sequence numbers: BEGIN (if acknowledged), the messages, END.
            let seqs = batch.sequence_numbers();
            let span = (seqs.end - seqs.start) as usize;
            let first = if span > origin.len() {
                seqs.start + 1
            } else {
                seqs.start
            };
            let what = seq
                .checked_sub(first)
                .and_then(|i| origin.get(i as usize))
                .map(|o| match o {
                    Some(i) => ops[*i].to_string(),
                    None => "table replacement".to_string(),
                })
                .unwrap_or_else(|| format!("batch message {seq}"));
            return Err(NftError::Kernel {
                what,
                errno: *errno,
            });
        }
        Ok(())
    }

    fn dump(&mut self, kind: DumpKind) -> Result<Option<Vec<Vec<u8>>>, NftError> {
        let seq = self.sock.next_seq();
        let req = dump::dump_request(kind, NFT_TABLE, seq)?;
        self.sock.dump(&req, seq)
    }

    fn table_exists(&mut self) -> Result<bool, NftError> {
        let tables = self.dump(DumpKind::Tables)?.unwrap_or_default();
        for m in &tables {
            if dump::parse_table(m)? == NFT_TABLE {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The kernel's table as a [`TableView`] (`None`: no table). Set kinds are recognised
    /// against `want`'s sets of the same name.
    fn read_back(&mut self, want: &TableSpec) -> Result<Option<TableView>, NftError> {
        if !self.table_exists()? {
            return Ok(None);
        }
        let mut view = TableView::default();
        for m in self.dump(DumpKind::Chains)?.unwrap_or_default() {
            let (table, name) = dump::parse_chain(&m)?;
            // The NAT dataplane's objects are not ours to compare or remove.
            if table == NFT_TABLE && !super::nat::owns(&name) {
                view.chains.insert(name, Vec::new());
            }
        }
        for m in self.dump(DumpKind::Rules)?.unwrap_or_default() {
            let (table, chain, comment) = dump::parse_rule(&m)?;
            if table == NFT_TABLE && !super::nat::owns(&chain) {
                view.chains.entry(chain).or_default().push(comment);
            }
        }
        let mut sets = Vec::new();
        for m in self.dump(DumpKind::Sets)?.unwrap_or_default() {
            let info = dump::parse_set(&m)?;
            if info.table == NFT_TABLE && !super::nat::owns(&info.name) {
                sets.push(info);
            }
        }
        for info in sets {
            let kind = want
                .sets
                .get(&info.name)
                .map(|s| s.kind)
                .filter(|k| info.matches(*k));
            let mut raw = Vec::new();
            for m in self
                .dump(DumpKind::Elems(info.name.clone()))?
                .unwrap_or_default()
            {
                raw.extend(dump::parse_elems(&m)?);
            }
            let elems = match kind {
                Some(k) => elems_of(k, raw),
                None => BTreeMap::new(),
            };
            view.sets.insert(info.name, SetView { kind, elems });
        }
        Ok(Some(view))
    }
}

/// Kernel elements as our element map: interval starts paired with the end that follows.
fn elems_of(kind: SetKind, raw: Vec<dump::RawElem>) -> BTreeMap<Vec<u8>, ElemValue> {
    if kind.interval() {
        return intervals(raw);
    }
    raw.into_iter()
        .map(|(key, _, chain)| {
            let value = match (kind.is_vmap(), chain) {
                (true, Some(c)) => ElemValue::Goto(c),
                _ => ElemValue::Key,
            };
            (key, value)
        })
        .collect()
}

/// Interval elements as the kernel lists them (starts and interval-end flags, in any order)
/// as start → end (`None`: open to the end of the address space).
pub(super) fn intervals(mut raw: Vec<dump::RawElem>) -> BTreeMap<Vec<u8>, ElemValue> {
    let mut out = BTreeMap::new();
    // Ends sort before starts at the same key (an end closes the previous interval).
    raw.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut pending: Option<Vec<u8>> = None;
    for (key, is_end, _) in raw {
        if is_end {
            if let Some(start) = pending.take() {
                out.insert(start, ElemValue::IntervalTo(Some(key)));
            }
        } else {
            if let Some(start) = pending.take() {
                out.insert(start, ElemValue::IntervalTo(None));
            }
            pending = Some(key);
        }
    }
    if let Some(start) = pending {
        out.insert(start, ElemValue::IntervalTo(None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::spec::Family;

    #[test]
    fn intervals_pair_up_in_any_dump_order() {
        let raw = vec![
            (vec![10, 0, 1, 0], true, None),
            (vec![10, 0, 0, 0], false, None),
            (vec![192, 168, 0, 0], false, None),
        ];
        let m = elems_of(SetKind::Addrs(Family::V4), raw);
        assert_eq!(
            m.get(&vec![10, 0, 0, 0]),
            Some(&ElemValue::IntervalTo(Some(vec![10, 0, 1, 0])))
        );
        assert_eq!(
            m.get(&vec![192, 168, 0, 0]),
            Some(&ElemValue::IntervalTo(None))
        );
        let vm = elems_of(
            SetKind::IfaceVmap,
            vec![(vec![1; 16], false, Some("vr-fw-x".into()))],
        );
        assert_eq!(
            vm.get(&vec![1; 16]),
            Some(&ElemValue::Goto("vr-fw-x".into()))
        );
    }

    #[test]
    fn report_classifies_changes() {
        let mut r = ApplyReport::default();
        let (k, v) = (vec![1], ElemValue::Key);
        r.count(&[Op::AddElems {
            set: "s",
            elems: vec![(&k, &v)],
        }]);
        assert!(r.only_elements_changed());
        assert_eq!(r.elements_added, 1);
        r.count(&[Op::FlushChain { name: "c" }, Op::DelChain { name: "c" }]);
        assert_eq!((r.chains_rewritten, r.chains_deleted), (0, 1));
        assert!(!r.only_elements_changed());
    }
}
