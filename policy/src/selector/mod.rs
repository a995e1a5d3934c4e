//! Calico's selector language: `policy::selector::Selector` is parsed once, evaluated many times
//! against label maps, and printed in Calico's canonical form (which re-parses to the same
//! meaning). Submodules: [`lexer`] (tokens), [`parser`] (grammar), [`ast`] (tree, evaluation,
//! canonical printing), [`error`] (positioned parse errors).

mod ast;
mod error;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

pub use ast::{Expr, LabelLookup};
pub use error::{SelectorError, SelectorErrorKind};
pub use lexer::is_valid_label;

use crate::fingerprint::fingerprint;

/// The label every namespaced entity carries with its namespace name (Calico's
/// `projectcalico.org/namespace`).
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// The label carrying a workload's service account name.
pub const SERVICE_ACCOUNT_LABEL: &str = "projectcalico.org/serviceaccount";
/// Prefix under which a namespace's labels are copied onto the entities in it (`pcns.`).
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";

/// A parsed selector together with its canonical text.
#[derive(Debug, Clone)]
pub struct Selector {
    expr: Expr,
    canonical: String,
}

impl Selector {
    /// Parses selector text (Calico grammar). The empty string selects everything.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        Ok(Selector::from_expr(parser::parse_expr(text)?))
    }

    /// Wraps an already-built expression.
    pub fn from_expr(expr: Expr) -> Selector {
        let canonical = expr.to_string();
        Selector { expr, canonical }
    }

    /// `all()`.
    pub fn all() -> Selector {
        Selector::from_expr(Expr::All)
    }

    /// The parsed tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Calico's canonical form (`Selector.String()`), e.g. `(a == "b" && has(c))`.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// True when the labels satisfy the selector.
    pub fn matches(&self, labels: &impl LabelLookup) -> bool {
        self.expr.matches(labels)
    }

    /// True for `all()` (and the empty selector).
    pub fn is_all(&self) -> bool {
        self.expr == Expr::All
    }

    /// True when the selector is exactly `global()`.
    pub fn is_global(&self) -> bool {
        self.expr == Expr::Global
    }

    /// True when `global()` appears anywhere in the selector.
    pub fn uses_global(&self) -> bool {
        self.expr.uses_global()
    }

    /// The label keys the selector reads: its result can only change when one of them does.
    pub fn label_keys(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        self.expr.collect_keys(&mut keys);
        keys
    }

    /// A short stable identifier derived from the canonical form (equal meaning-preserving
    /// spellings get the same id).
    pub fn unique_id(&self) -> String {
        format!("s:{:016x}", fingerprint(self.canonical.as_bytes()))
    }

    /// `self && other`, dropping `all()` operands and flattening nested `&&`.
    pub fn and(&self, other: &Selector) -> Selector {
        let mut operands = Vec::new();
        for e in [&self.expr, &other.expr] {
            match e {
                Expr::All => {}
                Expr::And(es) => operands.extend(es.iter().cloned()),
                e => operands.push(e.clone()),
            }
        }
        match operands.len() {
            0 => Selector::all(),
            1 => Selector::from_expr(operands.remove(0)),
            _ => Selector::from_expr(Expr::And(operands)),
        }
    }

    /// Turns a namespace selector (over namespace labels) into the equivalent selector over
    /// the labels of namespaced entities, as Calico does: keys get the `pcns.` prefix,
    /// `all()` means "any namespaced entity" and `global()` "any non-namespaced entity".
    pub fn namespace_to_entity(&self) -> Selector {
        let all = Expr::Has(NAMESPACE_LABEL.to_string());
        let global = Expr::Not(Box::new(all.clone()));
        Selector::from_expr(self.expr.clone().rewrite_for_namespace(
            NAMESPACE_LABEL_PREFIX,
            &all,
            &global,
        ))
    }

    /// `projectcalico.org/namespace == "<ns>"`.
    pub fn in_namespace(namespace: &str) -> Selector {
        Selector::from_expr(Expr::Eq(NAMESPACE_LABEL.to_string(), namespace.to_string()))
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Selector {}

impl Hash for Selector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl PartialOrd for Selector {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Selector {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.canonical.cmp(&other.canonical)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}
