//! `vrctl` subcommand groups, one module each (add siblings such as `apply.rs`, `get.rs` here
//! and a variant in `src/bin/vrctl.rs`).

pub mod policy;
