//! `vrouter-reflector`: a dedicated BGP route-reflector host (RFC 4456) for vrouter clusters.
//! The reflection rules live in `bgp::rr` and the speaker in `bgp::speaker`; this crate wires
//! them to etcd and to the process.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | flags, `VROUTER_REFLECTOR_*` environment and the YAML file → [`config::Config`] |
//! | [`clients`] | Node resources + client selector → the reflector's peers (pure) |
//! | [`agent`] | [`agent::Reflector`]: the speaker with a cluster id and the etcd syncer feeding it |
//! | [`metrics`] | the `/metrics` and `/healthz` endpoint |

pub mod agent;
pub mod clients;
pub mod config;
pub mod metrics;

pub use agent::{Reflector, ReflectorError};
