//! Operator CLIs: `vrctl` (calicoctl-compatible resource CLI over etcd) and `vrouterc`
//! (birdc-like shell over the control socket).
//!
//! [`vrctl`] holds one module per `vrctl` subcommand group; the binary in `src/bin/vrctl.rs`
//! only parses arguments and dispatches. [`lab`] builds a whole cluster on one machine
//! (`vrctl lab`, `make demo`, the end-to-end tests).

pub mod lab;
pub mod vrctl;
pub mod vrouterc;
