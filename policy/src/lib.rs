//! The policy engine: the single source of truth for what traffic is allowed.
//!
//! A pure library (no I/O, no clock): Calico's selector language ([`selector`]), the policy
//! model with validation ([`model`]), the evaluator that explains its verdicts, and the compiler
//! to abstract rules that `felix` renders into nftables.

mod fingerprint;
pub mod selector;

pub use selector::{Selector, SelectorError};
