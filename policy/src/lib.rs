//! The policy engine: the single source of truth for what traffic is allowed.
//!
//! A pure library (no I/O, no clock): Calico's selector language, the policy model with
//! validation, the evaluator that explains its verdicts, and the compiler to abstract rules that
//! `felix` renders into nftables. Being built under the policy-engine issue.
