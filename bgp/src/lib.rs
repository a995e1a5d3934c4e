//! BGP speaker for vrouter (design.md §6).
//!
//! Planned layout: `wire` (over rustbgpd-wire), `fsm` (Sans-IO, RFC 4271), `rib`,
//! `best_path`, `rr` (RFC 4456), `speaker` (the only code owning TCP sockets), `ctl` (BIRD
//! control protocol). Not built yet: see the BGP speaker issue.
