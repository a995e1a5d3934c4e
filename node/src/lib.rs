//! `vrouterd`: the node daemon. It wires the datastore syncer, the `felix` agent, the `bgp`
//! speaker, the control socket and the metrics endpoint into one process.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | flags, `VROUTER_*` environment, YAML file → one validated [`config::Config`] |
//! | [`autodetect`] | the node's IPv4/IPv6 address (Calico's methods), explained in the log |
//! | [`registration`] | the `Node` resource (owned fields, CAS) and the liveness lease |
//! | [`tunnel`] | the VXLAN tunnel address (IPAM handle `vxlan-tunnel-addr-<node>`) and the Node's VTEP fields |
//! | [`control`] | the control socket's backend (BIRD protocol, `bgp::ctl`) with a felix row |
//! | [`kernel_state`] | what a previous instance left in the kernel (graceful restart) |
//! | [`metrics`] | vrouterd's Prometheus metrics (BGP, process, build) next to felix's |
//! | [`metrics_http`] | the `/metrics` and `/healthz` HTTP endpoint |
//! | [`logging`] | the tracing subscriber (pretty or JSON) with a reloadable filter |
//! | [`daemon`] | start-up order, readiness, signals (SIGTERM, SIGHUP), shutdown |

pub mod autodetect;
pub mod config;
pub mod control;
pub mod daemon;
pub mod kernel_state;
pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod registration;
pub mod tunnel;
