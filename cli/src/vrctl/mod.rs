//! `vrctl` subcommand groups, one module each (add siblings such as `apply.rs`, `get.rs` here
//! and a variant in `src/bin/vrctl.rs`).

pub mod bgp;
pub mod connection;
pub mod ipam;
pub mod lab;
pub mod manifest;
pub mod node;
pub mod output;
pub mod policy;
pub mod resources;
