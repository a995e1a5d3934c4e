//! The selector syntax tree, its evaluation against a label map, and Calico's canonical
//! printed form (`Selector.String()` in libcalico-go: `&&`/`||` groups in parentheses, set
//! members sorted and de-duplicated, `"` quotes unless the value contains one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};

/// Anything labels can be looked up in.
pub trait LabelLookup {
    /// The value of `key`, if the label is present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> LabelLookup for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// One node of a parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `all()` (and the empty selector): matches everything.
    All,
    /// `global()`: matches everything when evaluated; as a whole `namespaceSelector` it means
    /// "non-namespaced entities".
    Global,
    /// `has(k)`: the label is present.
    Has(String),
    /// `k == "v"`: present with exactly this value.
    Eq(String, String),
    /// `k != "v"`: absent, or present with another value.
    Ne(String, String),
    /// `k in {...}`: present with one of the values.
    In(String, BTreeSet<String>),
    /// `k not in {...}`: absent, or present with none of the values.
    NotIn(String, BTreeSet<String>),
    /// `k contains "s"`: present and contains the substring.
    Contains(String, String),
    /// `k starts with "s"`: present and has the prefix.
    StartsWith(String, String),
    /// `k ends with "s"`: present and has the suffix.
    EndsWith(String, String),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b && ...` (two or more operands).
    And(Vec<Expr>),
    /// `a || b || ...` (two or more operands).
    Or(Vec<Expr>),
}

impl Expr {
    /// Evaluates the expression against a label map.
    pub fn matches(&self, labels: &impl LabelLookup) -> bool {
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => labels.label(k).is_some(),
            Expr::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Expr::Ne(k, v) => labels.label(k) != Some(v.as_str()),
            Expr::In(k, set) => labels.label(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => labels.label(k).is_none_or(|v| !set.contains(v)),
            Expr::Contains(k, s) => labels.label(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => labels.label(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => labels.label(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(es) => es.iter().all(|e| e.matches(labels)),
            Expr::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// Adds every label key the expression reads to `out`.
    pub(crate) fn collect_keys<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Expr::All | Expr::Global => {}
            Expr::Has(k)
            | Expr::Eq(k, _)
            | Expr::Ne(k, _)
            | Expr::In(k, _)
            | Expr::NotIn(k, _)
            | Expr::Contains(k, _)
            | Expr::StartsWith(k, _)
            | Expr::EndsWith(k, _) => {
                out.insert(k);
            }
            Expr::Not(e) => e.collect_keys(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.collect_keys(out)),
        }
    }

    /// True when `global()` appears anywhere in the expression.
    pub(crate) fn uses_global(&self) -> bool {
        match self {
            Expr::Global => true,
            Expr::Not(e) => e.uses_global(),
            Expr::And(es) | Expr::Or(es) => es.iter().any(Expr::uses_global),
            _ => false,
        }
    }

    /// Rewrites every label key `k` to `prefix + k`, and `all()`/`global()` with the given
    /// replacements (used to turn a namespace selector into an endpoint selector).
    pub(crate) fn rewrite_for_namespace(self, prefix: &str, all: &Expr, global: &Expr) -> Expr {
        let p = |k: String| format!("{prefix}{k}");
        match self {
            Expr::All => all.clone(),
            Expr::Global => global.clone(),
            Expr::Has(k) => Expr::Has(p(k)),
            Expr::Eq(k, v) => Expr::Eq(p(k), v),
            Expr::Ne(k, v) => Expr::Ne(p(k), v),
            Expr::In(k, s) => Expr::In(p(k), s),
            Expr::NotIn(k, s) => Expr::NotIn(p(k), s),
            Expr::Contains(k, v) => Expr::Contains(p(k), v),
            Expr::StartsWith(k, v) => Expr::StartsWith(p(k), v),
            Expr::EndsWith(k, v) => Expr::EndsWith(p(k), v),
            Expr::Not(e) => Expr::Not(Box::new(e.rewrite_for_namespace(prefix, all, global))),
            Expr::And(es) => Expr::And(
                es.into_iter()
                    .map(|e| e.rewrite_for_namespace(prefix, all, global))
                    .collect(),
            ),
            Expr::Or(es) => Expr::Or(
                es.into_iter()
                    .map(|e| e.rewrite_for_namespace(prefix, all, global))
                    .collect(),
            ),
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let q = if s.contains('"') { '\'' } else { '"' };
    f.write_char(q)?;
    f.write_str(s)?;
    f.write_char(q)
}

fn write_set(f: &mut fmt::Formatter<'_>, k: &str, op: &str, set: &BTreeSet<String>) -> fmt::Result {
    write!(f, "{k} {op} {{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, v)?;
    }
    f.write_char('}')
}

fn write_group(f: &mut fmt::Formatter<'_>, es: &[Expr], op: &str) -> fmt::Result {
    f.write_char('(')?;
    for (i, e) in es.iter().enumerate() {
        if i > 0 {
            f.write_str(op)?;
        }
        fmt::Display::fmt(e, f)?;
    }
    f.write_char(')')
}

/// The canonical form, identical to Calico's `Selector.String()`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => {
                write!(f, "{k} == ")?;
                write_quoted(f, v)
            }
            Expr::Ne(k, v) => {
                write!(f, "{k} != ")?;
                write_quoted(f, v)
            }
            Expr::Contains(k, v) => {
                write!(f, "{k} contains ")?;
                write_quoted(f, v)
            }
            Expr::StartsWith(k, v) => {
                write!(f, "{k} starts with ")?;
                write_quoted(f, v)
            }
            Expr::EndsWith(k, v) => {
                write!(f, "{k} ends with ")?;
                write_quoted(f, v)
            }
            Expr::In(k, set) => write_set(f, k, "in", set),
            Expr::NotIn(k, set) => write_set(f, k, "not in", set),
            Expr::Not(e) => {
                f.write_char('!')?;
                fmt::Display::fmt(e, f)
            }
            Expr::And(es) => write_group(f, es, " && "),
            Expr::Or(es) => write_group(f, es, " || "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::labels;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn absent_label_semantics() {
        let empty = labels(&[]);
        assert!(!Expr::Eq("a".into(), "b".into()).matches(&empty));
        assert!(Expr::Ne("a".into(), "b".into()).matches(&empty));
        assert!(!Expr::In("a".into(), set(&["b"])).matches(&empty));
        assert!(Expr::NotIn("a".into(), set(&["b"])).matches(&empty));
        assert!(!Expr::Has("a".into()).matches(&empty));
        assert!(!Expr::Contains("a".into(), String::new()).matches(&empty));
        assert!(!Expr::StartsWith("a".into(), String::new()).matches(&empty));
        assert!(!Expr::EndsWith("a".into(), String::new()).matches(&empty));
        assert!(Expr::All.matches(&empty));
        assert!(Expr::Global.matches(&empty));
    }

    #[test]
    fn hash_map_lookup_works_too() {
        let map: HashMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert!(Expr::Eq("a".into(), "b".into()).matches(&map));
    }

    #[test]
    fn printing_picks_quotes() {
        assert_eq!(
            Expr::Eq("a".into(), "it's".into()).to_string(),
            r#"a == "it's""#
        );
        assert_eq!(
            Expr::Eq("a".into(), r#"say "x""#.into()).to_string(),
            r#"a == 'say "x"'"#
        );
        assert_eq!(
            Expr::In("a".into(), set(&["\"", "b"])).to_string(),
            r#"a in {'"', "b"}"#
        );
    }

    #[test]
    fn keys_and_global_detection() {
        let e = Expr::And(vec![
            Expr::Has("x".into()),
            Expr::Not(Box::new(Expr::Or(vec![
                Expr::Eq("y".into(), "1".into()),
                Expr::Global,
            ]))),
        ]);
        let mut keys = BTreeSet::new();
        e.collect_keys(&mut keys);
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec!["x", "y"]);
        assert!(e.uses_global());
        assert!(!Expr::Has("x".into()).uses_global());
    }

    #[test]
    fn namespace_rewrite_prefixes_keys() {
        let e = Expr::Or(vec![Expr::Eq("team".into(), "a".into()), Expr::All]);
        let out = e.rewrite_for_namespace("pcns.", &Expr::Has("ns".into()), &Expr::Global);
        assert_eq!(out.to_string(), r#"(pcns.team == "a" || has(ns))"#);
    }
}
