//! The policy engine: the single source of truth for what traffic is allowed.
//!
//! A pure library (no I/O, no clock):
//! - [`selector`]: Calico's selector language (parse, evaluate, canonical form);
//! - [`rule`] and [`model`]: the normalized, validated policy model (tiers, policies, profiles,
//!   namespaces, endpoints, network sets);
//! - [`evaluate`]: decides a flow in both directions and explains the verdict;
//! - [`compile`] and [`ipset`]: per-endpoint abstract rule lists over named IP sets, with
//!   incremental selector → IP-set membership, for `felix` to render.

pub mod compile;
pub mod convert;
pub mod evaluate;
mod fingerprint;
pub mod ipset;
pub mod model;
pub mod rule;
pub mod selector;
#[cfg(test)]
mod test_util;

pub use evaluate::{Flow, FlowVerdict, Peer, Verdict};
pub use model::{Model, ModelError, ModelParts};
pub use selector::{Selector, SelectorError};
