//! The delta between the table we want ([`TableSpec`]) and the table the kernel has
//! ([`TableView`]: chains as rule-comment lists, sets with elements), as an ordered list of
//! [`Op`]s for one atomic batch. Pure.
//!
//! Order inside the batch, so every reference is valid at each step: new sets → new chains
//! (empty) → element deletions, then additions (map elements refer to chains) → rewritten and new chains' rules → obsolete chains flushed, then deleted → obsolete
//! sets deleted. Unchanged chains and sets produce no message at all.

use std::collections::BTreeMap;

use super::rendered::Touched;
use super::spec::{ElemValue, Hook, RuleSpec, SetKind, TableSpec};

/// A set as seen in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetView {
    /// `None`: the kernel's set has a key type or flags we do not program.
    pub(crate) kind: Option<SetKind>,
    pub(crate) elems: BTreeMap<Vec<u8>, ElemValue>,
}

/// What is in the kernel's table (or what we last committed to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableView {
    /// Chain name → comments of its rules in order.
    pub(crate) chains: BTreeMap<String, Vec<String>>,
    pub(crate) sets: BTreeMap<String, SetView>,
}

impl TableView {
    /// The view a successfully committed `spec` leaves behind: its rule comments and set
    /// elements (the rules themselves are not kept).
    pub(crate) fn of(spec: &TableSpec) -> TableView {
        TableView {
            chains: spec
                .chains
                .iter()
                .map(|(n, c)| {
                    (
                        n.clone(),
                        c.rules.iter().map(|r| r.comment.clone()).collect(),
                    )
                })
                .collect(),
            sets: spec
                .sets
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        SetView {
                            kind: Some(s.kind),
                            elems: s.elems.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl TableView {
    /// Makes the view match `want` over `scope` (everything when `None` or `scope.all`):
    /// what the kernel holds after a batch planned over the same scope was committed.
    pub(crate) fn sync(&mut self, want: &TableSpec, scope: &Touched) {
        if scope.all {
            *self = TableView::of(want);
            return;
        }
        for name in &scope.chains {
            match want.chains.get(name) {
                Some(c) => {
                    self.chains.insert(
                        name.clone(),
                        c.rules.iter().map(|r| r.comment.clone()).collect(),
                    );
                }
                None => {
                    self.chains.remove(name);
                }
            }
        }
        for (name, keys) in &scope.sets {
            let Some(w) = want.sets.get(name) else {
                self.sets.remove(name);
                continue;
            };
            match (keys, self.sets.get_mut(name)) {
                (Some(keys), Some(v)) => {
                    for k in keys {
                        match w.elems.get(k) {
                            Some(val) => {
                                v.elems.insert(k.clone(), val.clone());
                            }
                            None => {
                                v.elems.remove(k);
                            }
                        }
                    }
                }
                _ => {
                    self.sets.insert(
                        name.clone(),
                        SetView {
                            kind: Some(w.kind),
                            elems: w.elems.clone(),
                        },
                    );
                }
            }
        }
    }
}

/// Elements of one set or map, borrowed from the wanted or present table.
pub(crate) type Elems<'a> = Vec<(&'a Vec<u8>, &'a ElemValue)>;

/// One message of a batch (borrowing names, rules and elements from the tables compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    AddSet { name: &'a str, kind: SetKind },
    AddChain { name: &'a str, hook: Option<Hook> },
    DelElems { set: &'a str, elems: Elems<'a> },
    AddElems { set: &'a str, elems: Elems<'a> },
    FlushChain { name: &'a str },
    AddRule { chain: &'a str, rule: &'a RuleSpec },
    DelChain { name: &'a str },
    DelSet { name: &'a str },
}

impl std::fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::AddSet { name, .. } => write!(f, "add set {name}"),
            Op::AddChain { name, .. } => write!(f, "add chain {name}"),
            Op::DelElems { set, .. } => write!(f, "delete element from {set}"),
            Op::AddElems { set, .. } => write!(f, "add element to {set}"),
            Op::FlushChain { name } => write!(f, "flush chain {name}"),
            Op::AddRule { chain, rule } => write!(f, "add rule {chain} {}", rule.body_text()),
            Op::DelChain { name } => write!(f, "delete chain {name}"),
            Op::DelSet { name } => write!(f, "delete set {name}"),
        }
    }
}

/// Why no delta could be computed: the kernel's table must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeedsRebuild(pub(crate) String);

/// The delta from `have` to `want`: over everything, or (`scope`) only over the chains,
/// sets and set elements a render touched, so its cost follows the change, not the table.
pub(crate) fn plan<'a>(
    want: &'a TableSpec,
    have: &'a TableView,
    scope: Option<&'a Touched>,
) -> Result<Vec<Op<'a>>, NeedsRebuild> {
    let scope = scope.filter(|t| !t.all);
    let mut ops = Vec::new();
    // Element additions go after chain creation: map elements refer to chains.
    let (mut dels, mut adds) = (Vec::new(), Vec::new());
    let mut set_names: Vec<&'a String> = match scope {
        None => want.sets.keys().collect(),
        Some(t) => t
            .sets
            .keys()
            .filter(|n| want.sets.contains_key(*n))
            .collect(),
    };
    // New sets are created in the kernel's preferred lookup order (most used first); worth
    // a pass over the rules only when many sets are new (a full load).
    if set_names.len() > 16
        && set_names
            .iter()
            .filter(|n| !have.sets.contains_key(**n))
            .count()
            > 16
    {
        want.order_sets(&mut set_names);
    }
    for name in set_names {
        let set = &want.sets[name];
        match have.sets.get(name) {
            None => {
                ops.push(Op::AddSet {
                    name,
                    kind: set.kind,
                });
                if !set.elems.is_empty() {
                    adds.push(Op::AddElems {
                        set: name,
                        elems: set.elems.iter().collect(),
                    });
                }
            }
            Some(v) if v.kind != Some(set.kind) => {
                return Err(NeedsRebuild(format!("set {name} has another type")));
            }
            Some(v) => {
                let (del, add): (Elems<'a>, Elems<'a>) = match scope
                    .and_then(|t| t.sets.get(name))
                    .and_then(Option::as_ref)
                {
                    Some(keys) => {
                        let mut del = Vec::new();
                        let mut add = Vec::new();
                        for k in keys {
                            let (w, h) = (set.elems.get_key_value(k), v.elems.get_key_value(k));
                            if w.map(|x| x.1) == h.map(|x| x.1) {
                                continue;
                            }
                            if let Some((hk, hv)) = h {
                                del.push((hk, hv));
                            }
                            if let Some((wk, wv)) = w {
                                add.push((wk, wv));
                            }
                        }
                        (del, add)
                    }
                    None => (
                        v.elems
                            .iter()
                            .filter(|(k, val)| set.elems.get(*k) != Some(*val))
                            .collect(),
                        set.elems
                            .iter()
                            .filter(|(k, val)| v.elems.get(*k) != Some(*val))
                            .collect(),
                    ),
                };
                if !del.is_empty() {
                    dels.push(Op::DelElems {
                        set: name,
                        elems: del,
                    });
                }
                if !add.is_empty() {
                    adds.push(Op::AddElems {
                        set: name,
                        elems: add,
                    });
                }
            }
        }
    }
    let chain_names: Vec<&'a String> = match scope {
        None => want.chains.keys().collect(),
        Some(t) => t
            .chains
            .iter()
            .filter(|n| want.chains.contains_key(*n))
            .collect(),
    };
    for name in &chain_names {
        if !have.chains.contains_key(*name) {
            ops.push(Op::AddChain {
                name,
                hook: want.chains[*name].hook,
            });
        }
    }
    ops.extend(dels);
    ops.extend(adds);
    for name in chain_names {
        let chain = &want.chains[name];
        match have.chains.get(name) {
            Some(comments) if comments.iter().eq(chain.rules.iter().map(|r| &r.comment)) => {
                continue;
            }
            Some(comments) if !comments.is_empty() => ops.push(Op::FlushChain { name }),
            _ => {}
        }
        for rule in &chain.rules {
            ops.push(Op::AddRule { chain: name, rule });
        }
    }
    let obsolete: Vec<&'a String> = match scope {
        None => have
            .chains
            .keys()
            .filter(|n| !want.chains.contains_key(*n))
            .collect(),
        Some(t) => t
            .chains
            .iter()
            .filter_map(|n| have.chains.get_key_value(n).map(|(k, _)| k))
            .filter(|n| !want.chains.contains_key(*n))
            .collect(),
    };
    for name in &obsolete {
        if !have.chains[*name].is_empty() {
            ops.push(Op::FlushChain { name });
        }
    }
    for name in obsolete {
        ops.push(Op::DelChain { name });
    }
    let obsolete_sets: Vec<&'a String> = match scope {
        None => have.sets.keys().collect(),
        Some(t) => t
            .sets
            .keys()
            .filter_map(|n| have.sets.get_key_value(n).map(|(k, _)| k))
            .collect(),
    };
    for name in obsolete_sets {
        if !want.sets.contains_key(name) {
            ops.push(Op::DelSet { name });
        }
    }
    Ok(ops)
}

/// Every op needed to create `want` from nothing (after the table itself).
pub(crate) fn create_all(want: &TableSpec) -> Vec<Op<'_>> {
    static EMPTY: std::sync::LazyLock<TableView> = std::sync::LazyLock::new(TableView::default);
    match plan(want, &EMPTY, None) {
        Ok(ops) => ops,
        Err(_) => unreachable!("an empty view never conflicts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::spec::{ChainSpec, Family, SetSpec, Verdict};

    fn table() -> TableSpec {
        let mut t = TableSpec::default();
        let mut s = SetSpec::new(SetKind::Addrs(Family::V4));
        s.elems.insert(
            vec![10, 0, 0, 1],
            ElemValue::IntervalTo(Some(vec![10, 0, 0, 2])),
        );
        t.sets.insert("vr-s-a-4".into(), s);
        t.chains.insert(
            "vr-x".into(),
            ChainSpec::regular(vec![RuleSpec::new(vec![], vec![], Verdict::Drop)]),
        );
        t
    }

    #[test]
    fn identical_tables_need_nothing() {
        let t = table();
        assert_eq!(plan(&t, &TableView::of(&t), None), Ok(vec![]));
    }

    #[test]
    fn element_change_touches_only_elements() {
        let t = table();
        let have = TableView::of(&t);
        let mut want = t.clone();
        if let Some(s) = want.sets.get_mut("vr-s-a-4") {
            s.elems.insert(
                vec![10, 0, 0, 9],
                ElemValue::IntervalTo(Some(vec![10, 0, 0, 10])),
            );
            s.elems.remove(&vec![10, 0, 0, 1]);
        }
        let ops = plan(&want, &have, None).expect("plan");
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert!(matches!(&ops[0], Op::DelElems { elems, .. } if elems.len() == 1));
        assert!(matches!(&ops[1], Op::AddElems { elems, .. } if elems.len() == 1));
    }

    #[test]
    fn changed_and_obsolete_chains() {
        let t = table();
        let mut have = TableView::of(&t);
        have.chains.insert("vr-old".into(), vec!["vr:1".into()]);
        have.chains.insert("vr-x".into(), vec!["vr:other".into()]);
        have.sets.insert(
            "vr-gone".into(),
            SetView {
                kind: Some(SetKind::Ifaces),
                elems: BTreeMap::new(),
            },
        );
        let ops = plan(&t, &have, None).expect("plan");
        let names: Vec<String> = ops
            .iter()
            .map(|o| match o {
                Op::FlushChain { name } => format!("flush {name}"),
                Op::AddRule { chain, .. } => format!("rule {chain}"),
                Op::DelChain { name } => format!("del {name}"),
                Op::DelSet { name } => format!("delset {name}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "flush vr-x",
                "rule vr-x",
                "flush vr-old",
                "del vr-old",
                "delset vr-gone"
            ]
        );
    }

    #[test]
    fn set_of_another_type_forces_rebuild() {
        let t = table();
        let mut have = TableView::of(&t);
        if let Some(s) = have.sets.get_mut("vr-s-a-4") {
            s.kind = None;
        }
        assert!(plan(&t, &have, None).is_err());
        let all = create_all(&t);
        assert!(matches!(all[0], Op::AddSet { .. }));
        assert!(matches!(all[1], Op::AddChain { .. }));
        assert!(matches!(all[2], Op::AddElems { .. }));
        assert_eq!(all.len(), 4);
    }
}
